// Purpose: the uplink's own Kafka client re-authenticates (KIP-368) on the same connection before
// the target ends its SASL session. The target is a Tributary process that refuses anonymous
// clients and gives sessions a lifetime of 1.5 s (`security.reauthMs`); past it, any request but
// SaslHandshake/SaslAuthenticate makes it close the connection and log why. Two edges (PLAIN and
// SCRAM-SHA-256) forward records for several lifetimes while the test keeps producing; then:
//   - the target logged 'SASL authenticated' several times on one connection per mechanism (the
//     same `conn` id: re-authentications, not reconnects);
//   - it closed no connection for an expired session;
//   - every record the edges acknowledged is in the target once and in order (read back by kcat).
// The client's connection alone, with requests pipelined without pause for three lifetimes,
// renews with no request failed or refused (the queue holds them while the renewal runs).
// Then a third edge logs in as carol, who is removed from the target while the edge is connected:
// the renewal on that connection is refused (the target logs the failure on the connection carol
// had logged in on), the client fails that connection instead of carrying on, and the partition
// retries with carol's refusal as its reason.
// Without the client's re-authentication the target closes each connection at its first request
// after 1.5 s and the first two checks fail.
import t, { type Test } from 'tap';
import kafkajs from 'kafkajs';
import { cliJs, eventually, sh, startBroker, tempDir } from '../helpers/index.js';
import { KafkaConnection } from '../../host/kafka/client/connection.js';
import { CLIENT_APIS } from '../../host/kafka/client/apis.js';
import { kcatReadScram, produceRounds, startSaslEdge, uplinkToolsPresent, verdict } from '../helpers/uplink.js';

const SITE = 'edge1';
const PASSWORD = 'alice-reauth-secret';
const SESSION_MS = 1500;
/** Production lasts this long: five session lifetimes. */
const PRODUCE_FOR_MS = 5 * SESSION_MS;
const ROUND_GAP_MS = 150;
const PER_ROUND = 5;

const readTarget = (bootstrap: string, topic: string) => kcatReadScram(bootstrap, topic, 'alice', PASSWORD);
const edgeWith = (t: Test, target: string, topic: string, sasl: object) => startSaslEdge(t, SITE, target, topic, sasl);

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('uplink SASL re-authentication (KIP-368): sessions of 1.5 s renewed on the same connection', { timeout: 120_000 }, async (t) => {
    const targetDir = await tempDir(t);
    const setup = await startBroker(t, { dataDir: targetDir });
    const add = await sh(process.execPath, [cliJs, 'users', 'add', 'alice', '--password', PASSWORD, '--kafka', setup.listeners.kafka!]);
    t.equal(add.code, 0, `users add alice: ${add.stderr}`);
    const addCarol = await sh(process.execPath, [cliJs, 'users', 'add', 'carol', '--password', PASSWORD, '--kafka', setup.listeners.kafka!]);
    t.equal(addCarol.code, 0, `users add carol: ${addCarol.stderr}`);
    t.equal(await setup.stop(), 0, 'the target set up with users alice and carol');
    const target = await startBroker(t, { dataDir: targetDir, args: ['--set', 'security.allowAnonymous=false', '--set', `security.reauthMs=${SESSION_MS}`] });
    const k = target.listeners.kafka!;

    const mechanisms = ['PLAIN', 'SCRAM-SHA-256'] as const;
    await Promise.all(mechanisms.map(async (mechanism) => {
      const topic = `r-${mechanism.toLowerCase()}`;
      const edge = await edgeWith(t, k, topic, { mechanism, user: 'alice', password: PASSWORD });
      const values = await produceRounds(t, edge, topic, PRODUCE_FOR_MS, PER_ROUND, ROUND_GAP_MS);
      const v = await eventually(async () => {
        const got = verdict(await readTarget(k, `${SITE}.${topic}`).catch(() => []), { site: SITE, topic, partition: 0 }, values);
        return got.found >= values.length ? got : Promise.reject(new Error(`found ${got.found} of ${values.length}`));
      }, 30_000, 200);
      t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: values.length, lost: 0, duplicated: 0, reordered: 0 }, `${mechanism}: all ${values.length} acknowledged records once, in order, in the target`);
      t.equal(await edge.stop(), 0, `${mechanism}: the edge stops cleanly`);
    }));

    // Re-authentications are logins on a connection that already had one: count them per connection.
    const loginsPerConn = new Map<string, { mechanism: string; logins: number }>();
    for (const l of target.logs) {
      if (l.msg !== 'SASL authenticated' || l.user !== 'alice') continue;
      const key = String(l.conn);
      const seen = loginsPerConn.get(key) ?? { mechanism: String(l.mechanism), logins: 0 };
      seen.logins++;
      loginsPerConn.set(key, seen);
    }
    for (const mechanism of mechanisms) {
      const most = Math.max(0, ...[...loginsPerConn.values()].filter((c) => c.mechanism === mechanism).map((c) => c.logins));
      // Production spans five lifetimes; re-authentication at 85–95% of each gives four or more. Three is the bound under load.
      t.ok(most >= 3, `${mechanism}: one connection authenticated ${most} times (the first login and ${most - 1} re-authentications; want ≥ 3 in all)`);
    }
    const expired = target.logs.filter((l) => /SASL session expired/.test(String(l.msg)));
    t.equal(expired.length, 0, `the target closed no connection for an expired session${expired.length ? `: ${JSON.stringify(expired[0])}` : ''}`);

    // The connection itself under a full pipeline: WINDOW requests outstanding at every moment.
    const [host, port] = [k.slice(0, k.lastIndexOf(':')), Number(k.slice(k.lastIndexOf(':') + 1))];
    const WINDOW = 4;
    const conn = await KafkaConnection.connect({ host, port, clientId: 'reauth-pipeline', connectTimeoutMs: 5000, requestTimeoutMs: 10_000, inFlightMax: WINDOW, queuedMax: 1, responseBytesMax: 1 << 20, sasl: { mechanism: 'SCRAM-SHA-512', user: 'alice', password: PASSWORD } });
    t.teardown(() => conn.close());
    let answered = 0;
    const failures: string[] = [];
    const until = Date.now() + 3 * SESSION_MS;
    await Promise.all(Array.from({ length: WINDOW + 1 }, async () => {
      while (Date.now() < until && failures.length === 0) {
        await conn.request(CLIENT_APIS.metadata, { topics: [], allowAutoTopicCreation: false }).then(() => answered++, (e: Error) => failures.push(e.message));
      }
    }));
    t.same(failures, [], `${answered} pipelined requests over three lifetimes: none failed or refused (${WINDOW} in flight + 1 queued at every moment)`);
    t.ok(conn.reauthentications >= 2, `the connection renewed its session ${conn.reauthentications} times (want ≥ 2)`);
    t.equal(conn.closed, false, 'and is still open');
    conn.close();

    // A renewal refused: carol is removed while her edge's connection is up.
    const topic = 'r-revoked';
    const edge = await edgeWith(t, k, topic, { mechanism: 'PLAIN', user: 'carol', password: PASSWORD });
    const producer = new kafkajs.Kafka({ clientId: 'reauth-revoked', brokers: [edge.listeners.kafka!], logLevel: kafkajs.logLevel.NOTHING }).producer({ allowAutoTopicCreation: true });
    await producer.connect();
    t.teardown(() => producer.disconnect());
    await producer.send({ topic, acks: -1, messages: [{ value: 'before-removal', partition: 0 }] });
    await eventually(async () => ((await readTarget(k, `${SITE}.${topic}`).catch(() => [])).length === 1 ? true : Promise.reject(new Error('not yet'))), 30_000, 200);
    const removed = await sh(process.execPath, [cliJs, 'users', 'remove', 'carol', '--kafka', k, '--sasl-user', 'alice', '--sasl-password', PASSWORD]);
    t.equal(removed.code, 0, `users remove carol: ${removed.stderr}`);
    const carolConns = new Set(target.logs.filter((l) => l.msg === 'SASL authenticated' && l.user === 'carol').map((l) => String(l.conn)));
    const refusedRenewal = await eventually(() => target.logs.find((l) => /SASL authentication failed/.test(String(l.msg)) && l.user === 'carol' && carolConns.has(String(l.conn))), 15_000, 100).catch(() => undefined);
    t.ok(refusedRenewal, `the target refused carol's renewal on the connection she had logged in on: ${JSON.stringify(refusedRenewal ?? null)}`);
    await producer.send({ topic, acks: -1, messages: [{ value: 'after-removal', partition: 0 }] });
    const retrying = await eventually(() => edge.logs.find((l) => l.msg === 'uplink partition retrying' && /for user "carol"/.test(String(l.err))), 30_000, 100).catch(() => undefined);
    t.ok(retrying, `the partition retries with carol's refusal as its reason: ${String(retrying?.err)}`);
    const expiredAfter = target.logs.filter((l) => /SASL session expired/.test(String(l.msg)));
    t.equal(expiredAfter.length, 0, 'no request was sent on carol\'s connection past its session either');
    t.equal(await edge.stop(), 0, 'the edge of the removed user stops cleanly');
  });
}
