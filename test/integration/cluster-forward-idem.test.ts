// Purpose: forwarding is exactly once per forwarded append (issue 11; host/cluster/forward.ts).
// An MQTT publish or HTTP produce on a node that does not lead the partition is forwarded to the
// leader; when the connection loses the leader's answer after the leader appended, the forwarder
// sends the same batch again, and the leader — or the next leader — must answer it as a
// duplicate with the original offsets instead of storing it twice.
//
// Real processes: three `tributary start` nodes on loopback. Each node's Kafka listener is bound
// on 127.0.0.1:P and registered (kafka.advertisedHost) as 127.0.0.2:P, where a fault proxy
// (test/helpers/fault-proxy.ts) listens and passes everything on. The proxy's faults apply only
// to the forwarder's connections (client id `tributary-forward-N`), so replication and kcat keep
// working while a forward's answers are dropped (`blackhole-down`: the request reaches the leader,
// its answer never comes back). The clients are mqtt.js, Node's fetch and kcat (librdkafka), which
// nobody here wrote; the log is read with kcat.
//
//   lost answer   blackhole-down on the leader's proxy, a QoS 1 publish and an HTTP produce on a
//                 follower: kcat proves the leader stored each record (committed) while no PUBACK
//                 / 200 came back; the MQTT forward's attempt times out (its resends stall too),
//                 the HTTP forward's connection is reset (resent at once); then the proxy passes
//                 again: the client is acknowledged once, with the offset the record really has,
//                 and the log holds each record exactly once.
//   leader moves  the same loss, then the leader is killed (kill -9) while the forwarder
//                 retries: its resend goes to the new leader (or appends locally if the door
//                 became the leader), which replicated the batch and its producer state: still
//                 exactly once, acknowledged once.
import t from 'tap';
import mqtt from 'mqtt';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { eventually, haveCommand, sleep, tempDir } from '../helpers/index.js';
import { Cluster, freePort, type ClusterNode } from '../helpers/cluster.js';
import { createTopic, waitForIsr } from '../helpers/replicas.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { resolveClusterOptions, defaultClusterOptions } from '../../host/cluster/options.js';
import { stampProducer, offsetsSpanned } from '../../host/cluster/forward.js';
import { encodeBatch, readBatchHeader, verifyBatches } from '../../host/core/index.js';

const ATTEMPT_MS = 1500;
const FAST = [
  'cluster.tickMs=50',
  'cluster.sessionTimeoutMs=1000',
  'cluster.replicaLagTimeMaxMs=4000',
  'cluster.replicationCheckIntervalMs=100',
  `cluster.forwardRequestTimeoutMs=${ATTEMPT_MS}`,
];
const ADVERTISED_HOST = '127.0.0.2';

/** Kafka request header v1+: size i32, apiKey i16, apiVersion i16, correlationId i32, clientId (i16 length + bytes). */
function clientIdOf(first: Buffer): string {
  if (first.length < 14) return '';
  const len = first.readInt16BE(12);
  return len > 0 ? first.subarray(14, 14 + len).toString('utf8') : '';
}

/** Per node: the Kafka listener on 127.0.0.1:P, registered as 127.0.0.2:P where its proxy listens. */
class ProxiedCluster extends Cluster {
  kafkaPorts = new Map<number, number>();
  override args(n: ClusterNode, extra: string[] = []): string[] {
    return super.args(n, [`kafka.port=${this.kafkaPorts.get(n.id)}`, `kafka.advertisedHost=${ADVERTISED_HOST}`, ...extra]);
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function kcatPresent(t: any): boolean {
  if (haveCommand('kcat')) return true;
  if (process.env.CI === 'true') t.fail('required in CI: kcat (Debian kcat)');
  else t.skip('kcat not installed');
  return false;
}

/**
 * Every record of partition 0 as kcat reads it (committed data), value → offsets. Asynchronous:
 * kcat reaches the leader through this process's proxies, which a blocking spawn would stall.
 */
async function kcatRead(address: string, topic: string): Promise<Map<string, number[]>> {
  const child = spawn('kcat', ['-C', '-b', address, '-t', topic, '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%o\t%s\n'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`kcat read ${topic}: ${code} ${stderr}`);
  const out = new Map<string, number[]>();
  for (const line of stdout.split('\n').filter((l) => l !== '')) {
    const [offset, value] = line.split('\t') as [string, string];
    out.set(value, [...(out.get(value) ?? []), Number(offset)]);
  }
  return out;
}

/** A QoS 1 publish whose PUBACKs are counted off the wire (mqtt.js resolves a publish only once). */
function publishCounted(client: mqtt.MqttClient, topic: string, value: string) {
  const state = { acked: false, err: '', pubacks: 0, messageId: -1 };
  client.on('packetsend', (p) => {
    if (p.cmd === 'publish' && String(p.payload) === value) state.messageId = p.messageId ?? -1;
  });
  client.on('packetreceive', (p) => {
    if (p.cmd === 'puback' && p.messageId === state.messageId) state.pubacks++;
  });
  client.publish(topic, value, { qos: 1 }, (err) => (err ? (state.err = err.message) : (state.acked = true)));
  return state;
}

t.test('forward stamping: producer id, epoch and consecutive sequences land in every batch with a valid CRC', { timeout: 10_000 }, async (t) => {
  const two = encodeBatch([1, 2].map((v) => ({ key: null, value: new Uint8Array([v]) })), { compression: 0 });
  const three = encodeBatch([1, 2, 3].map((v) => ({ key: null, value: new Uint8Array([v]) })), { compression: 0 });
  const both = Buffer.concat([two, three]);
  const next = stampProducer(both, 4242, 7, 2 ** 31 - 3);
  t.doesNotThrow(() => verifyBatches(both, { maxBatchBytes: 1 << 20, maxDecompressedBytes: 1 << 20, deep: true, strictOffsets: false }), 'both batches verify (CRC recomputed)');
  const a = readBatchHeader(both, 0);
  const b = readBatchHeader(both, two.byteLength);
  t.same([a.producerId, a.producerEpoch, a.baseSequence], [4242, 7, 2 ** 31 - 3]);
  t.same([b.producerId, b.producerEpoch, b.baseSequence], [4242, 7, 2 ** 31 - 1], 'the second batch follows the first');
  t.equal(next, 2, 'sequences wrap at 2^31 (Kafka): 2^31−1, then 0, 1; the next is 2');
  t.equal(offsetsSpanned(both), 5);
});

t.test('cluster.forwardRequestTimeoutMs: bounded, and never above cluster.forwardTimeoutMs', { timeout: 40_000 }, async (t) => {
  const base = { ...defaultClusterOptions, nodeId: 1, listen: '127.0.0.1:9093', voters: ['1@127.0.0.1:9093'] };
  t.ok(resolveClusterOptions({ ...base, forwardRequestTimeoutMs: 15_000, forwardTimeoutMs: 15_000 }), 'equal to the forward timeout: accepted');
  t.throws(() => resolveClusterOptions({ ...base, forwardRequestTimeoutMs: 15_001, forwardTimeoutMs: 15_000 }), /cluster\.forwardRequestTimeoutMs \(15001\) must not exceed cluster\.forwardTimeoutMs/);
  const dir = await tempDir(t, 'tributary-fwd-timeout-');
  const tooShort = spawnSync(process.execPath, [join(import.meta.dirname, '../../host/main.js'), 'start', '--data-dir', dir, '--set', 'cluster.forwardRequestTimeoutMs=99'], { encoding: 'utf8', timeout: 30_000 });
  t.not(tooShort.status, 0, 'a start with 99 ms refuses');
  t.match(tooShort.stderr, /cluster\.forwardRequestTimeoutMs/, `naming the key: ${tooShort.stderr.trim().split('\n')[0]}`);
});

t.test('forwarding is exactly once: a lost answer, then a leader change during the resend', { timeout: 150_000 }, async (t) => {
  if (!kcatPresent(t)) return;
  const loopbackAlias = spawnSync('node', ['-e', `require('net').createServer().listen(0, '${ADVERTISED_HOST}', function () { this.close(); })`]);
  if (loopbackAlias.status !== 0) {
    (t as unknown as { skip(m: string): void }).skip(`${ADVERTISED_HOST} is not bindable here (127.0.0.0/8 is loopback on Linux)`);
    return;
  }

  // Proxies first (their ports are what the nodes register), upstreams fixed before the nodes start.
  const root = await tempDir(t, 'tributary-fwd-idem-');
  const nodes: ClusterNode[] = [];
  for (let id = 1; id <= 3; id++) nodes.push({ id, dataDir: join(root, `node${id}`), clusterPort: await freePort(), proc: null, stopped: false });
  const c = new ProxiedCluster(t, nodes, nodes.map((x) => `${x.id}@127.0.0.1:${x.clusterPort}`).join(','), { set: FAST });
  const proxies = new Map<number, FaultProxy>();
  const forwarderOnly = (first: Buffer) => clientIdOf(first).startsWith('tributary-forward-');
  for (const n of nodes) {
    const port = await freePort();
    c.kafkaPorts.set(n.id, port);
    const proxy = await startFaultProxy({ host: '127.0.0.1', port }, { listenHost: ADVERTISED_HOST, listenPort: port, affects: forwarderOnly });
    proxies.set(n.id, proxy);
    t.teardown(() => proxy.close());
  }
  t.teardown(() => c.stopAll());
  await Promise.all(nodes.map((x) => c.start(x.id)));
  await c.waitForBrokers([1, 2, 3]);

  await createTopic(c, 1, 'idem', 1);
  const meta = await waitForIsr(c, 1, 'idem', [1, 2, 3]);
  const leader = meta[0]!.leader;
  // The door is the follower elected last (the controller takes the ISR in assignment order), so
  // when the leader dies the resend must travel to another node, the new leader.
  const followers = meta[0]!.replicas.filter((id) => id !== leader);
  const [third, door] = followers as [number, number];
  const kcatAt = (id: number) => `127.0.0.1:${c.kafkaPorts.get(id)}`;
  t.comment(`idem-0 replicas [${meta[0]!.replicas.join(', ')}], leader node ${leader}; MQTT/HTTP door node ${door}; third node ${third}`);

  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${c.node(door).proc!.port('mqtt')}`, { protocolVersion: 5, clientId: 'pi-idem', reconnectPeriod: 0 });
  t.teardown(() => pub.end(true));
  // Warm-up through the forward (it opens the forwarder's connection and reserves its producer id).
  await pub.publishAsync('idem/pi', 'warm', { qos: 1 });
  const proxy = proxies.get(leader)!;

  // 1. The answer to an MQTT QoS 1 forward is lost; the leader has the record.
  proxy.setMode('blackhole-down');
  const mq = publishCounted(pub, 'idem/pi', 'lost-mqtt');
  await eventually(async () => (await kcatRead(kcatAt(leader), 'idem')).has('lost-mqtt') || null, 10_000, 200);
  t.pass(`the leader stored and committed "lost-mqtt" (kcat reads it) while its answer was dropped (${proxy.dropped.down} bytes down)`);
  await sleep(ATTEMPT_MS * 2); // the attempt times out; the resend's connection hears nothing either
  t.equal(mq.pubacks, 0, `no PUBACK while the leader's answers are lost (${proxy.dropped.down} bytes of answers dropped)`);
  t.ok(proxy.dropped.down > 0, 'the fault really dropped answers');
  proxy.setMode('pass');
  await eventually(() => mq.acked || mq.err !== '' || null, 20_000, 20);
  t.equal(mq.err, '', 'the publish was acknowledged, not refused');
  await sleep(300);
  t.equal(mq.pubacks, 1, 'exactly one PUBACK');

  // 2. The same for an HTTP produce (two records in one forwarded batch): the 200's offsets are the stored ones.
  proxy.setMode('blackhole-down');
  const httpDone = fetch(`${c.httpUrl(door)}/topics/idem/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ key: 'k', value: 'lost-http-0' }, { key: 'k', value: 'lost-http-1' }]) });
  let httpAnswered = false;
  void httpDone.finally(() => (httpAnswered = true));
  await eventually(async () => (await kcatRead(kcatAt(leader), 'idem')).has('lost-http-1') || null, 10_000, 200);
  // This time the connection breaks (RST) instead of going silent: the resend is at once.
  proxy.setMode('reset');
  await sleep(500);
  t.notOk(httpAnswered, 'no HTTP answer while the answer is lost and the link then reset');
  proxy.setMode('pass');
  const res = await httpDone;
  const body = (await res.json()) as { offsets?: Array<{ offset: number }> };
  t.equal(res.status, 200, `HTTP produce answered 200 after the link came back: ${JSON.stringify(body)}`);
  const log1 = await kcatRead(kcatAt(leader), 'idem');
  t.same(body.offsets?.map((o) => o.offset), [...(log1.get('lost-http-0') ?? []), ...(log1.get('lost-http-1') ?? [])], 'with the offsets the records have in the log (the original append\'s)');
  for (const v of ['warm', 'lost-mqtt', 'lost-http-0', 'lost-http-1']) t.same(log1.get(v)?.length, 1, `"${v}" is in the leader's log exactly once (offset ${log1.get(v)?.join(', ')})`);

  // 3. A leader change while the forward is being retried.
  proxy.setMode('blackhole-down');
  const moved = publishCounted(pub, 'idem/pi', 'moved');
  await eventually(async () => (await kcatRead(kcatAt(door), 'idem')).has('moved') || null, 10_000, 200);
  t.pass('the old leader stored "moved" and it is committed (read through the door node) while the answer was lost');
  await c.kill9(leader);
  const killedAt = Date.now();
  await eventually(() => moved.acked || moved.err !== '' || null, 30_000, 20);
  t.equal(moved.err, '', `acknowledged ${Date.now() - killedAt} ms after the leader's kill -9`);
  const after = await waitForIsr(c, door, 'idem', [door, third]);
  t.comment(`new leader: node ${after[0]!.leader} (${after[0]!.leader === door ? 'the door itself: the resend was appended locally' : 'the resend went to it'})`);
  await sleep(300);
  t.equal(moved.pubacks, 1, 'exactly one PUBACK');
  const log2 = await kcatRead(kcatAt(door), 'idem');
  for (const v of ['warm', 'lost-mqtt', 'lost-http-0', 'lost-http-1', 'moved']) t.same(log2.get(v)?.length, 1, `"${v}" is in the new leader's log exactly once (offset ${log2.get(v)?.join(', ')})`);
  // The publisher carries on through the new leader.
  await pub.publishAsync('idem/pi', 'after', { qos: 1 });
  t.same((await kcatRead(kcatAt(door), 'idem')).get('after')?.length, 1, 'a publish after the failover is stored once');
  await pub.endAsync();
  await c.stopAll();
});
