// Purpose: SASL/OAUTHBEARER end to end, both directions, against clients nobody here wrote.
//   - A Tributary target refusing anonymous clients and offering OAUTHBEARER only checks JWTs
//     against a JWKS file (security.oauthbearer, issuer and audience set, no clock skew).
//   - kcat (librdkafka's OIDC login: client credentials at a token endpoint, the test's own
//     identity provider on loopback) produces and consumes with a signed token; a kcat whose
//     identity provider signs with a key the target does not hold is refused, and the target
//     logs why.
//   - The uplink toward that target with a token endpoint (OAuth client credentials): tokens live
//     3 s, so the target's sessions end after 3 s; the edge forwards for three lifetimes, renews
//     on the same connection with a fresh token each time (KIP-368; the identity provider issues
//     several), the target closes nothing for an expired session, and every acknowledged record
//     is in the target once, in order (read back by kcat); the client secret is in no log line.
//   - The uplink with a token file forwards; with an expired token in the file its partition
//     retries with the target's refusal ("token expired") as the reason.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { eventually, sh, sleep, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatReadAll, startSaslEdge, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { claimsFor, signJwt, startTokenEndpoint, testKey, writeJwks } from '../helpers/oauth-idp.js';

const SITE = 'edge1';
const EDGE_SECRET = 'edge-gw-client-secret-4711';
const TOKEN_LIFETIME_SEC = 3;

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('SASL/OAUTHBEARER: kcat via OIDC, the uplink via client credentials and a token file, sessions ending with their tokens', { timeout: 120_000 }, async (t) => {
    const dir = await tempDir(t);
    const key = testKey('idp-key-1', 'RS256');
    const jwksFile = await writeJwks(dir, [key]);
    const idp = await startTokenEndpoint(key, { reader: { secret: 'reader-secret', sub: 'reader' }, 'edge-gw': { secret: EDGE_SECRET, sub: 'edge-gw', lifetimeSec: TOKEN_LIFETIME_SEC } }, 600);
    t.teardown(() => idp.close());
    const rogueKey = testKey('idp-key-1', 'RS256'); // same kid, another key: a forger who guessed the kid
    const rogue = await startTokenEndpoint(rogueKey, { reader: { secret: 'reader-secret', sub: 'admin' } }, 600);
    t.teardown(() => rogue.close());

    const config = join(dir, 'target.json');
    await writeFile(config, JSON.stringify({ security: { allowAnonymous: false, saslMechanisms: ['OAUTHBEARER'], oauthbearer: { jwksFile, issuer: 'https://idp.test', audience: ['tributary'], clockSkewMs: 0 } } }));
    const target = await startBroker(t, { dataDir: join(dir, 'target'), args: ['--config', config] });
    const k = target.listeners.kafka!;
    const oidc = (url: string) => ['-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=OAUTHBEARER', '-X', 'sasl.oauthbearer.method=oidc', '-X', 'sasl.oauthbearer.client.id=reader', '-X', 'sasl.oauthbearer.client.secret=reader-secret', '-X', `sasl.oauthbearer.token.endpoint.url=${url}`];

    // kcat with a token from the identity provider: produce, then read back.
    const values = Array.from({ length: 20 }, (_, i) => `kcat-${i}`);
    const p = await sh('kcat', ['-P', '-b', k, ...oidc(idp.url), '-t', 'direct', '-p', '0', '-X', 'acks=all'], values.join('\n') + '\n');
    t.equal(p.code, 0, `kcat (librdkafka OIDC login) produced 20 records: ${p.stderr.slice(0, 300)}`);
    const read = await kcatReadAll(k, 'direct', oidc(idp.url));
    t.same(read.map((r) => r.value), values, 'and read them back with a token');
    t.ok(target.logs.some((l) => l.msg === 'SASL authenticated' && l.user === 'reader' && l.mechanism === 'OAUTHBEARER'), 'the target logged the OAUTHBEARER login as reader');

    // A token signed by a key the target does not hold.
    const bad = await sh('kcat', ['-L', '-b', k, ...oidc(rogue.url), '-m', '5']);
    t.not(bad.code, 0, 'kcat with a forged token: refused');
    const why = await eventually(() => target.logs.find((l) => /SASL authentication failed: token signature does not verify/.test(String(l.msg))), 10_000, 100);
    t.ok(why, `the target logged the reason: ${why?.msg}`);
    t.notOk(target.logs.some((l) => l.msg === 'SASL authenticated' && l.user === 'admin'), 'nobody logged in as the forged token\'s admin');

    // The uplink with client credentials; tokens (and so sessions) of 3 s, three lifetimes of traffic.
    const edge = await startSaslEdge(t, SITE, k, 'up', { mechanism: 'OAUTHBEARER', tokenUrl: idp.url, clientId: 'edge-gw', clientSecret: EDGE_SECRET });
    const acked = await produceFor(t, edge, 'up', 3 * TOKEN_LIFETIME_SEC * 1000);
    const v = await eventually(async () => {
      const got = verdict(await kcatReadAll(k, `${SITE}.up`, oidc(idp.url)).catch(() => []), { site: SITE, topic: 'up', partition: 0 }, acked);
      return got.found >= acked.length ? got : Promise.reject(new Error(`found ${got.found} of ${acked.length}`));
    }, 30_000, 200);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: acked.length, lost: 0, duplicated: 0, reordered: 0 }, `client credentials: all ${acked.length} acknowledged records once, in order, in the target`);
    const perConn = new Map<string, number>();
    for (const l of target.logs) if (l.msg === 'SASL authenticated' && l.user === 'edge-gw') perConn.set(String(l.conn), (perConn.get(String(l.conn)) ?? 0) + 1);
    const most = Math.max(0, ...perConn.values());
    t.ok(most >= 3, `one connection logged in ${most} times as edge-gw (the first login and ${most - 1} renewals before each token's end; want ≥ 3)`);
    t.ok(idp.issuedTo('edge-gw') >= 3, `the identity provider issued ${idp.issuedTo('edge-gw')} tokens to edge-gw (a fresh one per renewal; want ≥ 3)`);
    const lifetimes = target.logs.filter((l) => l.msg === 'SASL authenticated' && l.user === 'edge-gw').map((l) => Number(l.sessionLifetimeMs));
    t.ok(lifetimes.every((ms) => ms > 0 && ms <= TOKEN_LIFETIME_SEC * 1000), `each session ended no later than its token (lifetimes ${lifetimes.join(', ')} ms)`);
    t.equal(target.logs.filter((l) => /SASL session expired/.test(String(l.msg))).length, 0, 'the target closed no connection for an expired session');
    t.notOk(edge.logs.some((l) => JSON.stringify(l).includes(EDGE_SECRET)), 'the client secret is in no log line of the edge');
    t.equal(await edge.stop(), 0, 'the edge stops cleanly');

    // A token file: good, then expired.
    const tokenFile = join(dir, 'token.jwt');
    await writeFile(tokenFile, signJwt(key, claimsFor('edge-file', 600)) + '\n', { mode: 0o600 });
    const fileEdge = await startSaslEdge(t, SITE, k, 'filed', { mechanism: 'OAUTHBEARER', tokenFile });
    const fileValues = Array.from({ length: 20 }, (_, i) => `file-${i}`);
    t.equal((await sh('kcat', ['-P', '-b', fileEdge.listeners.kafka!, '-t', 'filed', '-p', '0', '-X', 'acks=all'], fileValues.join('\n') + '\n')).code, 0, '20 records acknowledged by the token-file edge');
    const fv = await eventually(async () => {
      const got = verdict(await kcatReadAll(k, `${SITE}.filed`, oidc(idp.url)).catch(() => []), { site: SITE, topic: 'filed', partition: 0 }, fileValues);
      return got.found >= fileValues.length ? got : Promise.reject(new Error(`found ${got.found}`));
    }, 30_000, 200);
    t.same({ found: fv.found, lost: fv.lost.length, duplicated: fv.duplicated.length }, { found: 20, lost: 0, duplicated: 0 }, 'token file: every record once in the target');
    t.equal(await fileEdge.stop(), 0, 'the token-file edge stops cleanly');

    const expiredFile = join(dir, 'expired.jwt');
    await writeFile(expiredFile, signJwt(key, claimsFor('edge-file', -60)), { mode: 0o600 });
    const expiredEdge = await startSaslEdge(t, SITE, k, 'late', { mechanism: 'OAUTHBEARER', tokenFile: expiredFile });
    await sh('kcat', ['-P', '-b', expiredEdge.listeners.kafka!, '-t', 'late', '-p', '0', '-X', 'acks=all'], 'x\n');
    const retrying = await eventually(() => expiredEdge.logs.find((l) => l.msg === 'uplink partition retrying' && /refused SASL OAUTHBEARER .*token expired at/.test(String(l.err))), 30_000, 100);
    t.ok(retrying, `an expired token: the partition retries with the target's refusal: ${String(retrying?.err)}`);
  });
}

/** Produces 5 records every 150 ms for `ms` (acks all, idempotent); returns the values acknowledged, in order. */
async function produceFor(t: { teardown(f: () => unknown): void }, edge: BrokerProcess, topic: string, ms: number): Promise<string[]> {
  const producer = new kafkajs.Kafka({ clientId: `oauth-${topic}`, brokers: [edge.listeners.kafka!], logLevel: kafkajs.logLevel.NOTHING }).producer({ allowAutoTopicCreation: true, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.teardown(() => producer.disconnect());
  const acked: string[] = [];
  const until = Date.now() + ms;
  for (let round = 0; Date.now() < until; round++) {
    const values = Array.from({ length: 5 }, (_, i) => `${topic}-${round}-${i}`);
    await producer.send({ topic, acks: -1, messages: values.map((value) => ({ value, partition: 0 })) });
    acked.push(...values);
    await sleep(150);
  }
  return acked;
}
