// Purpose: the group coordinator fails over with its `__consumer_offsets` partition (issue 11).
// Three real `tributary start` processes on loopback; the client is librdkafka (confluent_kafka
// under /usr/bin/python3), which nobody here wrote. One consumer in a group reads half of a
// topic and commits synchronously: the offsets the commit acknowledged are the claim. Then the
// node leading the group's `__consumer_offsets` partition (its coordinator) is killed with
// kill -9. The same consumer, without restarting, must find the new coordinator by itself,
// fetch exactly the acknowledged offsets from it, read the rest of the topic and commit again
// there; a fresh process in the same group then reads the second commit back. Every record of
// the topic is consumed exactly once across the kill (no gap, no repeat).
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import mqtt from 'mqtt';
import { eventually, sleep, tempDir } from '../helpers/index.js';
import { startCluster } from '../helpers/cluster.js';
import { Client } from '../unit/ws/harness.js';
import { bootstrap, createTopic, metadata, waitForIsr, kafkaClientsPresent } from '../helpers/replicas.js';
import { partitionForGroup } from '../../host/broker/groups/records.js';
import { KafkaConnection } from '../../host/kafka/client/connection.js';
import type { ClientApi } from '../../host/kafka/client/apis.js';
import type { ApiHandler } from '../../host/kafka/apis/types.js';
import { findCoordinator } from '../../host/kafka/apis/groups/find-coordinator.js';
import { offsetFetch } from '../../host/kafka/apis/groups/offset-fetch.js';
import { ERRORS } from '../../host/errors/index.js';
import type { Cluster } from '../helpers/cluster.js';

const FAST = ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100'];
const PYTHON = '/usr/bin/python3';
const TOPIC = 'readings';
const PARTITIONS = 2;
const TOTAL = 200;
const FIRST = 100;
const GROUP = 'dashboards';

// Produces `count` records "v-<i>" keyed by i with acks=all; prints how many were acknowledged.
const PRODUCER = `
import sys, json
from confluent_kafka import Producer
bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
acked = []
p = Producer({'bootstrap.servers': bootstrap, 'acks': 'all', 'linger.ms': 5})
for i in range(count):
    p.produce(topic, key=str(i).encode(), value=('v-%d' % i).encode(), on_delivery=lambda e, m: acked.append(1) if e is None else None)
    p.poll(0)
p.flush(30)
print(json.dumps({'acked': len(acked)}))
`;

// The consumer under test. Phase 1: read FIRST records, commit synchronously, print what the
// commit acknowledged; then stay in the group (paused, heartbeating) until the go file exists.
// Phase 2: fetch the committed offsets (retrying while the coordinator moves), read up to TOTAL
// records, commit again, print everything read. Mode "fetch": only print the committed offsets.
const CONSUMER = `
import sys, json, time, os
from confluent_kafka import Consumer, TopicPartition, KafkaException
mode, bootstrap, topic, group, parts, total, first, gofile = sys.argv[1:9]
parts, total, first = int(parts), int(total), int(first)
def say(**kw): print(json.dumps(kw), flush=True)
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group, 'enable.auto.commit': False, 'auto.offset.reset': 'earliest',
              'session.timeout.ms': 10000, 'heartbeat.interval.ms': 500, 'topic.metadata.refresh.interval.ms': 1000,
              'coordinator.query.interval.ms': 1000, 'reconnect.backoff.max.ms': 500})
def committed():
    tps = [TopicPartition(topic, p) for p in range(parts)]
    deadline = time.time() + 40
    while True:
        try:
            # -1001 (OFFSET_INVALID): nothing committed for that partition
            return {str(tp.partition): tp.offset for tp in c.committed(tps, timeout=5) if tp.offset >= 0}
        except KafkaException as e:
            if time.time() > deadline: raise
            say(event='retry', what='committed', err=str(e)); time.sleep(0.3)
if mode == 'fetch':
    say(event='fetched', offsets=committed()); c.close(); sys.exit(0)
seen = []
def consume_until(n, seconds):
    deadline = time.time() + seconds
    while len(seen) < n and time.time() < deadline:
        m = c.poll(0.2)
        if m is None or m.error(): continue
        seen.append([m.partition(), m.offset(), m.value().decode()])
def commit():
    # Explicit offsets (one past the last record read per partition), not the client's positions:
    # a partition read to its end before a rebalance has no position afterwards.
    ends = {}
    for p, off, v in seen: ends[p] = max(ends.get(p, 0), off + 1)
    tps = [TopicPartition(topic, p, off) for p, off in sorted(ends.items())]
    deadline = time.time() + 40
    while True:
        try:
            return {str(tp.partition): tp.offset for tp in c.commit(offsets=tps, asynchronous=False)}
        except KafkaException as e:
            if time.time() > deadline: raise
            say(event='retry', what='commit', err=str(e)); time.sleep(0.3)
c.subscribe([topic])
consume_until(first, 30)
say(event='committed', offsets=commit(), consumed=len(seen))
c.pause(c.assignment())
while not os.path.exists(gofile):
    c.poll(0.2)
say(event='fetched', offsets=committed())
c.resume(c.assignment())
consume_until(total, 40)
say(event='committed2', offsets=commit(), consumed=len(seen))
c.close()
say(event='done', seen=seen)
`;

interface Event {
  event: string;
  offsets?: Record<string, number>;
  consumed?: number;
  seen?: Array<[number, number, string]>;
  err?: string;
  what?: string;
}

/** Our client's connection over the server's own schemas: only to ask one chosen node (librdkafka picks its own). */
const asClientApi = (h: ApiHandler): ClientApi => ({ key: h.apiKey, name: h.name, minVersion: h.minVersion, maxVersion: h.maxVersion, flexibleFrom: h.flexibleFrom, request: h.request, response: h.response });

async function connectTo(c: Cluster, id: number): Promise<KafkaConnection> {
  const [host, port] = c.node(id).proc!.listeners.kafka!.split(':');
  return KafkaConnection.connect({ host: host!, port: Number(port), clientId: 'cluster-groups-test', connectTimeoutMs: 5000, requestTimeoutMs: 10_000, inFlightMax: 4, queuedMax: 16, responseBytesMax: 1 << 20 });
}

/**
 * Asks every node: FindCoordinator v4 (batched keys) and v0 name the leader of each group's
 * `__consumer_offsets` partition; OffsetFetch answers `acknowledged` on that node only and
 * NOT_COORDINATOR on the others.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function checkCoordinators(t: any, c: Cluster, leaders: number[], acknowledged: Record<string, number>): Promise<void> {
  const groups = [GROUP, 'other-a', 'other-b', 'other-c'];
  for (const n of c.live()) {
    const conn = await connectTo(c, n.id);
    try {
      const v4 = await conn.send(asClientApi(findCoordinator), 4, { keyType: 0, coordinatorKeys: groups });
      const named = v4.coordinators.map((x: { key: string; nodeId: number; port: number; errorCode: number }) => [x.key, x.nodeId, x.errorCode, x.port]);
      const expected = groups.map((g) => {
        const leader = leaders[partitionForGroup(g, leaders.length)]!;
        return [g, leader, ERRORS.NONE.kafka, Number(c.node(leader).proc!.listeners.kafka!.split(':')[1])];
      });
      t.same(named, expected, `node ${n.id}: FindCoordinator v4 names each group's partition leader with its Kafka port`);
      const v0 = await conn.send(asClientApi(findCoordinator), 0, { key: GROUP });
      t.equal(v0.nodeId, expected[0]![1], `node ${n.id}: FindCoordinator v0 names node ${expected[0]![1]} for ${GROUP}`);
      const fetched = await conn.send(asClientApi(offsetFetch), 3, { groupId: GROUP, topics: null });
      const coordinator = expected[0]![1] === n.id;
      if (coordinator) {
        const offsets = Object.fromEntries(fetched.topics.flatMap((x: { partitions: Array<{ partitionIndex: number; committedOffset: number }> }) => x.partitions.map((p) => [String(p.partitionIndex), p.committedOffset])));
        t.same({ errorCode: fetched.errorCode, offsets }, { errorCode: ERRORS.NONE.kafka, offsets: acknowledged }, `node ${n.id} (coordinator): OffsetFetch answers the acknowledged offsets`);
      } else {
        t.equal(fetched.errorCode, ERRORS.NOT_COORDINATOR.kafka, `node ${n.id} (not the coordinator): OffsetFetch answers NOT_COORDINATOR`);
      }
    } finally {
      conn.close();
    }
  }
}

/** Runs a python script; its JSON lines arrive as events (the next one of a kind by `next`). */
function runPython(t: { teardown(fn: () => unknown): void }, script: string, args: string[]) {
  const child: ChildProcess = spawn(PYTHON, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.exitCode === null && child.kill('SIGKILL'));
  const events: Event[] = [];
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      events.push(JSON.parse(line) as Event);
    } catch {
      // librdkafka's own lines go to stderr; anything else is ignored
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return {
    events,
    exited,
    stderr: () => stderr,
    next: (kind: string, timeoutMs: number) =>
      eventually(() => {
        if (child.exitCode !== null && !events.some((e) => e.event === kind)) throw new Error(`python exited ${child.exitCode} before "${kind}": ${stderr}`);
        return events.find((e) => e.event === kind) ?? null;
      }, timeoutMs, 50) as Promise<Event>,
  };
}

t.test('groups: kill -9 of the coordinator; the consumer carries on from its acknowledged commit on the new one', { timeout: 140_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  const dir = await tempDir(t, 'tributary-groups-');
  const c = await startCluster(t, 3, { set: FAST });
  await createTopic(c, 1, TOPIC, PARTITIONS);
  await waitForIsr(c, 1, TOPIC, [1, 2, 3]);
  await writeFile(join(dir, 'producer.py'), PRODUCER);
  await writeFile(join(dir, 'consumer.py'), CONSUMER);
  const producer = runPython(t, join(dir, 'producer.py'), [bootstrap(c), TOPIC, String(TOTAL)]);
  await producer.exited;
  t.same(producer.events[0], { acked: TOTAL }, `${TOTAL} records acknowledged (acks=all)`);

  const gofile = join(dir, 'go');
  const consumer = runPython(t, join(dir, 'consumer.py'), ['group', bootstrap(c), TOPIC, GROUP, String(PARTITIONS), String(TOTAL), String(FIRST), gofile]);
  const first = await consumer.next('committed', 40_000);
  const acknowledged = first.offsets!;
  const sum = Object.values(acknowledged).reduce((a, b) => a + b, 0);
  t.equal(sum, FIRST, `the commit acknowledged ${JSON.stringify(acknowledged)}: ${FIRST} records consumed before the kill`);

  // The coordinator is the leader of the group's partition of the replicated __consumer_offsets.
  const offsetsMeta = metadata(c, 1, '__consumer_offsets');
  t.ok(offsetsMeta.length > 0 && offsetsMeta.every((p) => p.replicas.length === 3), `__consumer_offsets has ${offsetsMeta.length} partitions, each with 3 replicas`);
  const partition = partitionForGroup(GROUP, offsetsMeta.length);
  const inSync = await waitForIsr(c, 1, '__consumer_offsets', [1, 2, 3]);
  const victim = inSync[partition]!.leader;
  await checkCoordinators(t, c, inSync.map((p) => p.leader), acknowledged);
  await c.kill9(victim);
  const killedAt = Date.now();
  t.comment(`killed node ${victim}, the coordinator of ${GROUP} (__consumer_offsets-${partition})`);
  await writeFile(gofile, '');

  const fetched = await consumer.next('fetched', 40_000);
  t.same(fetched.offsets, acknowledged, 'the same consumer fetched exactly the acknowledged offsets from the new coordinator');
  t.comment(`committed offsets readable again ${Date.now() - killedAt} ms after the kill`);
  const second = await consumer.next('committed2', 45_000);
  t.equal(second.consumed, TOTAL, `it read the remaining ${TOTAL - FIRST} records`);
  const done = await consumer.next('done', 15_000);
  const retries = consumer.events.filter((e) => e.event === 'retry');
  t.comment(`client retries while the coordinator moved: ${retries.length} (${[...new Set(retries.map((r) => `${r.what}: ${r.err}`))].slice(0, 3).join('; ') || 'none'})`);

  // Every record exactly once, in offset order per partition, across the kill.
  const values = done.seen!.map((s) => s[2]);
  const missing = Array.from({ length: TOTAL }, (_, i) => `v-${i}`).filter((v) => !values.includes(v));
  const repeated = values.filter((v, i) => values.indexOf(v) !== i);
  t.same({ missing, repeated }, { missing: [], repeated: [] }, `all ${TOTAL} records consumed exactly once across the failover`);
  for (let p = 0; p < PARTITIONS; p++) {
    const offs = done.seen!.filter((s) => s[0] === p).map((s) => s[1]);
    t.same(offs, offs.map((_, i) => i), `partition ${p}: offsets 0..${offs.length - 1} in order, none skipped`);
  }

  const survivors = [1, 2, 3].filter((id) => id !== victim);
  const moved = await waitForIsr(c, survivors[0]!, '__consumer_offsets', survivors);
  t.not(moved[partition]!.leader, victim, `__consumer_offsets-${partition} is led by node ${moved[partition]!.leader} now`);
  const newCoordinator = moved[partition]!.leader;
  t.ok(
    c.node(newCoordinator).proc!.logs.some((l) => String(l.msg).includes(`coordinating the groups of __consumer_offsets-${partition}`)),
    `node ${newCoordinator} replayed __consumer_offsets-${partition} when it became its leader`,
  );
  await checkCoordinators(t, c, moved.map((p) => p.leader), second.offsets!);
  const reader = runPython(t, join(dir, 'consumer.py'), ['fetch', bootstrap(c), TOPIC, GROUP, String(PARTITIONS), '0', '0', gofile]);
  const readBack = await reader.next('fetched', 30_000);
  t.same(readBack.offsets, second.offsets, `a fresh client reads the second commit ${JSON.stringify(second.offsets)} back from the new coordinator`);
  await c.stopAll();
});

t.test('groups: an MQTT shared subscription on a node that is not its coordinator joins the one group the cluster has', { timeout: 140_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  const dir = await tempDir(t, 'tributary-groups-');
  const c = await startCluster(t, 3, { set: [...FAST, 'groups.minSessionTimeoutMs=1000', 'groups.initialRebalanceDelayMs=300', 'mqtt.sharedSessionTimeoutMs=3000', 'mqtt.sharedCommitIntervalMs=200', 'http.groupSessionTimeoutMs=6000', 'cluster.groupProxyMembersMax=2'] });
  await createTopic(c, 1, 'sensors', 2);
  await waitForIsr(c, 1, 'sensors', [1, 2, 3]);
  // The first FindCoordinator creates __consumer_offsets; ask until it names the coordinator.
  const conn = await connectTo(c, 1);
  const coordinator = await eventually(async () => {
    const r = await conn.send(asClientApi(findCoordinator), 0, { key: 'fleet' });
    return r.errorCode === 0 ? (r.nodeId as number) : null;
  }, 20_000, 100);
  conn.close();
  const door = [1, 2, 3].find((id) => id !== coordinator)!;
  t.comment(`group fleet: coordinator node ${coordinator}; the MQTT device connects to node ${door}`);
  const url = `mqtt://127.0.0.1:${c.node(door).proc!.port('mqtt')}`;
  const sub = await mqtt.connectAsync(url, { clientId: 'fleet-member', protocolVersion: 5, reconnectPeriod: 0 });
  t.teardown(() => sub.end(true));
  const got: string[] = [];
  sub.on('message', (_topic, payload) => got.push(payload.toString()));
  const granted = await sub.subscribeAsync('$share/fleet/sensors/#', { qos: 1 });
  t.same(granted.map((g) => g.qos), [1], 'the shared SUBSCRIBE is granted on the non-coordinator node');
  const pub = await mqtt.connectAsync(url, { clientId: 'fleet-publisher', protocolVersion: 5, reconnectPeriod: 0 });
  t.teardown(() => pub.end(true));
  // The member must own its partitions before records count as delivered to it.
  await sleep(1500);
  const sent = Array.from({ length: 20 }, (_, i) => `reading-${i}`);
  for (const [i, v] of sent.entries()) await pub.publishAsync(`sensors/s${i % 4}`, v, { qos: 1 });
  await eventually(() => (got.length >= sent.length ? true : null), 30_000, 100);
  t.same([...got].sort(), [...sent].sort(), 'every PUBACKed reading delivered once to the shared subscription');
  // A WebSocket group subscription on the same node, to a group another node coordinates.
  const ask = await connectTo(c, door);
  let panel = '';
  for (let i = 0; i < 50 && !panel; i++) {
    const r = await ask.send(asClientApi(findCoordinator), 0, { key: `panel-${i}` });
    if (r.errorCode === 0 && r.nodeId !== door) panel = `panel-${i}`;
  }
  ask.close();
  const ws = await Client.open(t, `ws://127.0.0.1:${c.node(door).proc!.port('http')}/ws`);
  const subscribed = await ws.request({ type: 'subscribe', topic: 'sensors', group: panel, start: 'earliest' }, 20_000);
  t.equal(subscribed.type, 'subscribed', `a WebSocket subscription in group ${panel} (coordinated elsewhere) joins from node ${door}`);
  await eventually(() => (ws.records().length >= sent.length ? true : null), 20_000, 100);
  const wsValues = ws.records().map((r) => String(r.value instanceof Uint8Array ? Buffer.from(r.value) : r.value));
  t.same([...wsValues].sort(), [...sent].sort(), 'the WebSocket group member receives every reading');
  // cluster.groupProxyMembersMax=2 at its boundary: a third remote member on this node is refused.
  const second = await mqtt.connectAsync(url, { clientId: 'fleet-second', protocolVersion: 5, reconnectPeriod: 0 });
  t.teardown(() => second.end(true));
  await second.subscribeAsync('$share/fleet/sensors/#', { qos: 1 });
  const refused = await eventually(() => c.node(door).proc!.logs.find((l) => l.clientId === 'fleet-second' && l.code === 'LIMIT_EXCEEDED') ?? null, 15_000, 100);
  t.match(String(refused!.err), /cluster\.groupProxyMembersMax/, 'a third remote member past cluster.groupProxyMembersMax=2 gets LIMIT_EXCEEDED naming the key');
  // It leaves now: it retries its join, and if the coordinator moves to this node below (the kill)
  // it is no longer a remote member, joins the group and rightly takes some readings (a shared
  // subscription delivers each to one member), which the member counted below would then miss.
  await second.endAsync();
  // The group lives at the coordinator: a librdkafka client reads its commits back from there.
  await writeFile(join(dir, 'consumer.py'), CONSUMER);
  const committed = await eventually(async () => {
    const reader = runPython(t, join(dir, 'consumer.py'), ['fetch', bootstrap(c), 'sensors', 'fleet', '2', '0', '0', join(dir, 'go')]);
    const e = await reader.next('fetched', 30_000);
    const sum = Object.values(e.offsets!).reduce((a, b) => a + b, 0);
    return sum >= sent.length ? e.offsets! : null;
  }, 30_000, 500);
  t.equal(Object.values(committed!).reduce((a, b) => a + b, 0), sent.length, `the door member's commits ${JSON.stringify(committed)} are at the coordinator, node ${coordinator}`);

  // The coordinator dies: the door member rejoins the new one by itself and keeps receiving.
  await c.kill9(coordinator!);
  const killedAt = Date.now();
  const more = Array.from({ length: 20 }, (_, i) => `after-${i}`);
  for (const [i, v] of more.entries()) await pub.publishAsync(`sensors/s${i % 4}`, v, { qos: 1 });
  try {
    await eventually(() => (more.every((v) => got.includes(v)) ? true : null), 45_000, 100);
  } catch (err) {
    // What the survivors said, for the next reader of a CI log (seen failing under load: the door
    // member got none of these after the coordinator's kill although every one was PUBACKed).
    t.comment(`received after the kill: ${got.filter((v) => v.startsWith('after-')).join(', ') || 'none'}`);
    for (const n of c.live()) {
      const lines = n.proc!.logs.filter((l) => Number(l.level) >= 40 || /group|coordinator|share|rejoin|leader/i.test(String(l.msg))).slice(-40);
      for (const l of lines) t.comment(`node ${n.id} [${l.level}] ${String(l.msg)} ${JSON.stringify({ ...l, msg: undefined, level: undefined, time: undefined, pid: undefined, hostname: undefined }).slice(0, 400)}`);
    }
    throw err;
  }
  t.pass(`all ${more.length} readings PUBACKed after kill -9 of the coordinator (node ${coordinator}) delivered to the shared subscription, the last ${Date.now() - killedAt} ms after the kill`);
  const early = got.filter((v) => v.startsWith('reading-'));
  t.equal(new Set(early).size, sent.length, `readings from before the kill: none lost (${early.length - sent.length} delivered again after the rejoin: at least once)`);
  await c.stopAll();
});
