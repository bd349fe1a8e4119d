// Purpose: SASL/OAUTHBEARER end to end, both directions, against clients nobody here wrote.
//   - A Tributary target refusing anonymous clients and offering OAUTHBEARER only checks JWTs
//     against a JWKS file (security.oauthbearer, issuer and audience set, no clock skew).
//   - librdkafka (confluent_kafka under /usr/bin/python3, its OAUTHBEARER login fed a token by
//     `oauth_cb`; Debian's librdkafka has no OIDC login of its own) produces and consumes with a
//     signed token; a token signed by a key the target does not hold, and librdkafka's own
//     unsigned development token (`enable.sasl.oauthbearer.unsecure.jwt`), are refused, and the
//     target logs why. kafkajs's OAUTHBEARER provider logs in too.
//   - The uplink toward that target with a token endpoint (OAuth client credentials, the test's
//     identity provider on loopback): tokens live 3 s, so the target's sessions end after 3 s; the
//     edge forwards for three lifetimes, renews on the same connection with a fresh token each time
//     (KIP-368; the identity provider issues several), the target closes nothing for an expired
//     session, and every acknowledged record is in the target once, in order (read back by
//     librdkafka); the client secret is in no log line.
//   - The uplink with a token file forwards; with an expired token in the file its partition
//     retries with the target's refusal ("token expired") as the reason.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { eventually, sh, startBroker, tempDir } from '../helpers/index.js';
import { produceRounds, startSaslEdge, uplinkToolsPresent, verdict, type TargetRecord } from '../helpers/uplink.js';
import { claimsFor, signJwt, startTokenEndpoint, testKey, writeJwks } from '../helpers/oauth-idp.js';

const SITE = 'edge1';
const EDGE_SECRET = 'edge-gw-client-secret-4711';
const TOKEN_LIFETIME_SEC = 3;
const PYTHON = '/usr/bin/python3';

// librdkafka with a token given by oauth_cb (argv: mode bootstrap topic token exp; produce reads
// values from stdin, consume prints one JSON line per record, metadata lists topics). `unsigned`
// as the token: librdkafka's own unsecured JWT instead (alg none).
const CLIENT = `
import sys, json
from confluent_kafka import Producer, Consumer, KafkaException
mode, bootstrap, topic, token, exp = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
conf = {'bootstrap.servers': bootstrap, 'security.protocol': 'SASL_PLAINTEXT', 'sasl.mechanisms': 'OAUTHBEARER'}
if token == 'unsigned':
    conf.update({'enable.sasl.oauthbearer.unsecure.jwt': True, 'sasl.oauthbearer.config': 'principal=admin'})
else:
    conf['oauth_cb'] = lambda _cfg: (token, exp)
errors = []
conf['error_cb'] = lambda e: errors.append(str(e))
if mode == 'produce':
    p = Producer(dict(conf, acks='all'))
    for line in sys.stdin.read().split('\\n'):
        if line: p.produce(topic, value=line.encode(), partition=0)
    left = p.flush(20)
    sys.exit(0 if left == 0 else 1)
elif mode == 'consume':
    c = Consumer(dict(conf, **{'group.id': 'oauth-reader', 'auto.offset.reset': 'earliest', 'enable.auto.commit': False, 'enable.partition.eof': True}))
    c.subscribe([topic])
    eof, idle = False, 0
    while not eof and idle < 100:
        m = c.poll(0.2)
        if m is None: idle += 1; continue
        if m.error():
            if m.error().code() == -191: eof = True; continue
            raise KafkaException(m.error())
        h = {k: (v or b'').decode() for k, v in (m.headers() or [])}
        print(json.dumps({'partition': m.partition(), 'offset': m.offset(), 'value': m.value().decode(), 'headers': h}))
    c.close()
else:
    p = Producer(conf)
    p.poll(0.5)  # oauth_cb runs inside poll: the token must be set before the first login
    try:
        md = p.list_topics(timeout=5)
        print('metadata', len(md.brokers))
    except KafkaException as e:
        print('refused', e, errors)
        sys.exit(2)
`;

async function librdkafka(dir: string, args: string[], input = ''): ReturnType<typeof sh> {
  const script = join(dir, 'oauth-client.py');
  await writeFile(script, CLIENT);
  return sh(PYTHON, [script, ...args], input);
}

async function readTarget(dir: string, bootstrap: string, topic: string, token: string, exp: number): Promise<TargetRecord[]> {
  const r = await librdkafka(dir, ['consume', bootstrap, topic, token, String(exp)]);
  if (r.code !== 0) throw new Error(`librdkafka consume failed: ${r.stderr.slice(0, 300)}`);
  return r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as TargetRecord);
}

if (uplinkToolsPresent(t, ['kcat', 'mock'])) {
  t.test('SASL/OAUTHBEARER: librdkafka and kafkajs, the uplink via client credentials and a token file, sessions ending with their tokens', { timeout: 240_000 }, async (t) => {
    const dir = await tempDir(t);
    const key = testKey('idp-key-1', 'RS256');
    const jwksFile = await writeJwks(dir, [key]);
    const idp = await startTokenEndpoint(key, { 'edge-gw': { secret: EDGE_SECRET, sub: 'edge-gw', lifetimeSec: TOKEN_LIFETIME_SEC } }, 600);
    t.teardown(() => idp.close());
    const rogueKey = testKey('idp-key-1', 'RS256'); // same kid, another key: a forger who guessed the kid

    const config = join(dir, 'target.json');
    await writeFile(config, JSON.stringify({ security: { allowAnonymous: false, loginFailuresMax: 10_000, saslMechanisms: ['OAUTHBEARER'], oauthbearer: { jwksFile, issuer: 'https://idp.test', audience: ['tributary'], clockSkewMs: 0 } } }));
    const target = await startBroker(t, { dataDir: join(dir, 'target'), args: ['--config', config] });
    const k = target.listeners.kafka!;
    const readerClaims = claimsFor('reader', 600);
    const readerToken = signJwt(key, readerClaims);
    const readerExp = readerClaims.exp as number;

    // librdkafka with a signed token: produce, then read back.
    const values = Array.from({ length: 20 }, (_, i) => `rdkafka-${i}`);
    const p = await librdkafka(dir, ['produce', k, 'direct', readerToken, String(readerExp)], values.join('\n') + '\n');
    t.equal(p.code, 0, `librdkafka (OAUTHBEARER, a signed token) produced 20 records: ${p.stderr.slice(0, 300)}`);
    const read = await readTarget(dir, k, 'direct', readerToken, readerExp);
    t.same(read.map((r) => r.value), values, 'and read them back');
    t.ok(target.logs.some((l) => l.msg === 'SASL authenticated' && l.user === 'reader' && l.mechanism === 'OAUTHBEARER'), 'the target logged the OAUTHBEARER login as reader');

    // kafkajs's OAUTHBEARER provider.
    const kjs = new kafkajs.Kafka({ clientId: 'oauth-kafkajs', brokers: [k], logLevel: kafkajs.logLevel.NOTHING, sasl: { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: readerToken }) } });
    const admin = kjs.admin();
    await admin.connect();
    t.ok((await admin.listTopics()).includes('direct'), 'kafkajs logs in with the token and lists the topic');
    await admin.disconnect();

    // A token signed by a key the target does not hold; librdkafka's unsigned development token.
    const forged = signJwt(rogueKey, claimsFor('admin', 600));
    const bad = await librdkafka(dir, ['metadata', k, '-', forged, String(readerExp)]);
    t.equal(bad.code, 2, `librdkafka with a forged token: refused (${bad.stdout.trim().slice(0, 200)})`);
    const why = await eventually(() => target.logs.find((l) => /SASL authentication failed: token signature does not verify/.test(String(l.msg))), 10_000, 100);
    t.ok(why, `the target logged the reason: ${why?.msg}`);
    const unsigned = await librdkafka(dir, ['metadata', k, '-', 'unsigned', '0']);
    t.equal(unsigned.code, 2, 'librdkafka\'s unsecured JWT (alg none): refused');
    const whyNone = await eventually(() => target.logs.find((l) => /SASL authentication failed: token is not a signed JWT/.test(String(l.msg))), 10_000, 100);
    t.ok(whyNone, `the target logged the reason: ${whyNone?.msg}`);
    t.notOk(target.logs.some((l) => l.msg === 'SASL authenticated' && l.user === 'admin'), 'nobody logged in as admin');

    // Three edges at once (the test stays well inside its time under load): client credentials, a
    // token file, an expired token file. The last one's refused logins all come from 127.0.0.1, like
    // everyone's here: the target's failed-login limit is raised so it does not lock the others out.
    const clientCredentials = async () => {
      const edge = await startSaslEdge(t, SITE, k, 'up', { mechanism: 'OAUTHBEARER', tokenUrl: idp.url, clientId: 'edge-gw', clientSecret: EDGE_SECRET });
      const acked = await produceRounds(t, edge, 'up', 3 * TOKEN_LIFETIME_SEC * 1000);
      const v = await eventually(async () => {
        const got = verdict(await readTarget(dir, k, `${SITE}.up`, readerToken, readerExp).catch(() => []), { site: SITE, topic: 'up', partition: 0 }, acked);
        return got.found >= acked.length ? got : Promise.reject(new Error(`found ${got.found} of ${acked.length}`));
      }, 30_000, 200);
      t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: acked.length, lost: 0, duplicated: 0, reordered: 0 }, `client credentials: all ${acked.length} acknowledged records once, in order, in the target`);
      const perConn = new Map<string, number>();
      for (const l of target.logs) if (l.msg === 'SASL authenticated' && l.user === 'edge-gw') perConn.set(String(l.conn), (perConn.get(String(l.conn)) ?? 0) + 1);
      const most = Math.max(0, ...perConn.values());
      t.ok(most >= 3, `one connection logged in ${most} times as edge-gw (the first login and ${most - 1} renewals before each token's end; want ≥ 3)`);
      t.ok(idp.issuedTo('edge-gw') >= 3, `the identity provider issued ${idp.issuedTo('edge-gw')} tokens to edge-gw (a fresh one per renewal; want ≥ 3)`);
      const lifetimes = target.logs.filter((l) => l.msg === 'SASL authenticated' && l.user === 'edge-gw').map((l) => Number(l.sessionLifetimeMs));
      t.ok(lifetimes.every((ms) => ms > 0 && ms <= TOKEN_LIFETIME_SEC * 1000), `each session lasts at most a token's ${TOKEN_LIFETIME_SEC} s life (lifetimes ${lifetimes.join(', ')} ms)`);
      t.equal(target.logs.filter((l) => /SASL session expired/.test(String(l.msg))).length, 0, 'the target closed no connection for an expired session');
      t.notOk(edge.logs.some((l) => JSON.stringify(l).includes(EDGE_SECRET)), 'the client secret is in no log line of the edge');
      t.equal(await edge.stop(), 0, 'the edge stops cleanly');
    };
    const tokenFile = async () => {
      const file = join(dir, 'token.jwt');
      await writeFile(file, signJwt(key, claimsFor('edge-file', 600)) + '\n', { mode: 0o600 });
      const fileEdge = await startSaslEdge(t, SITE, k, 'filed', { mechanism: 'OAUTHBEARER', tokenFile: file });
      const fileValues = Array.from({ length: 20 }, (_, i) => `file-${i}`);
      t.equal((await sh('kcat', ['-P', '-b', fileEdge.listeners.kafka!, '-t', 'filed', '-p', '0', '-X', 'acks=all'], fileValues.join('\n') + '\n')).code, 0, '20 records acknowledged by the token-file edge');
      const fv = await eventually(async () => {
        const got = verdict(await readTarget(dir, k, `${SITE}.filed`, readerToken, readerExp).catch(() => []), { site: SITE, topic: 'filed', partition: 0 }, fileValues);
        return got.found >= fileValues.length ? got : Promise.reject(new Error(`found ${got.found}`));
      }, 30_000, 200);
      t.same({ found: fv.found, lost: fv.lost.length, duplicated: fv.duplicated.length }, { found: 20, lost: 0, duplicated: 0 }, 'token file: every record once in the target');
      t.equal(await fileEdge.stop(), 0, 'the token-file edge stops cleanly');
    };
    const expiredToken = async () => {
      const expiredFile = join(dir, 'expired.jwt');
      await writeFile(expiredFile, signJwt(key, claimsFor('edge-file', -60)), { mode: 0o600 });
      const expiredEdge = await startSaslEdge(t, SITE, k, 'late', { mechanism: 'OAUTHBEARER', tokenFile: expiredFile });
      await sh('kcat', ['-P', '-b', expiredEdge.listeners.kafka!, '-t', 'late', '-p', '0', '-X', 'acks=all'], 'x\n');
      const retrying = await eventually(() => expiredEdge.logs.find((l) => l.msg === 'uplink partition retrying' && /refused SASL OAUTHBEARER .*token expired at/.test(String(l.err))), 30_000, 100);
      t.ok(retrying, `an expired token: the partition retries with the target's refusal: ${String(retrying?.err)}`);
    };
    await Promise.all([clientCredentials(), tokenFile(), expiredToken()]);
  });
}
