// kafkajs consumer groups against Tributary: three consumers share a six-partition topic
// (every partition assigned exactly once through joins, leaves and rebalances), commit, the
// broker restarts, and a consumer of the same group resumes exactly after the committed offsets.
import t from 'tap';
import { Kafka, logLevel, type Consumer, type EachMessagePayload } from 'kafkajs';
import { eventually, startBroker, tempDir } from '../helpers/index.js';
import { startStack } from './kafka-groups-stack.js';

const TOPIC = 'orders';
const PARTITIONS = 6;

interface Tracked {
  consumer: Consumer;
  name: string;
  /** Latest assignment from GROUP_JOIN: partitions of TOPIC. */
  assignment: number[];
  received: Array<{ partition: number; offset: number; key: string; value: string }>;
}

function kafkaFor(address: string, clientId: string) {
  return new Kafka({ clientId, brokers: [address], logLevel: logLevel.NOTHING, retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 1000 } });
}

async function startConsumer(address: string, name: string, groupId: string): Promise<Tracked> {
  const consumer = kafkaFor(address, name).consumer({ groupId, sessionTimeout: 6000, rebalanceTimeout: 8000, heartbeatInterval: 300, maxWaitTimeInMs: 200 });
  const tracked: Tracked = { consumer, name, assignment: [], received: [] };
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    tracked.assignment = [...(e.payload.memberAssignment[TOPIC] ?? [])].sort((a, b) => a - b);
  });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }: EachMessagePayload) => {
      tracked.received.push({ partition, offset: Number(message.offset), key: message.key!.toString(), value: message.value!.toString() });
    },
  });
  return tracked;
}

/** True when the consumers' latest assignments cover every partition exactly once. */
function coversExactlyOnce(consumers: Tracked[]): boolean {
  const all = consumers.flatMap((c) => c.assignment).sort((a, b) => a - b);
  return all.length === PARTITIONS && all.every((p, i) => p === i);
}

async function produce(address: string, from: number, count: number) {
  const producer = kafkaFor(address, 'producer').producer();
  await producer.connect();
  const messages = [];
  for (let i = from; i < from + count; i++) messages.push({ key: `k${i % 12}`, value: `m${i}`, partition: i % PARTITIONS });
  await producer.send({ topic: TOPIC, acks: -1, messages });
  await producer.disconnect();
}

t.test('kafkajs: three consumers, rebalance on join and leave, commit, broker restart, exact resume', async (t) => {
  const dir = await tempDir(t, 'tributary-kafka-groups-');
  const stack = await startStack(t, dir);
  const admin = kafkaFor(stack.address, 'admin').admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }] });
  await produce(stack.address, 0, 60);

  const consumers: Tracked[] = [];
  t.teardown(async () => {
    for (const c of consumers) await c.consumer.disconnect().catch(() => undefined);
  });
  for (const name of ['c1', 'c2', 'c3']) consumers.push(await startConsumer(stack.address, name, 'g'));

  await eventually(() => consumers.every((c) => c.assignment.length === 2) && coversExactlyOnce(consumers), 30_000, 100);
  t.pass('3 consumers: 2 partitions each, every partition exactly once');
  await eventually(() => new Set(consumers.flatMap((c) => c.received.map((r) => r.value))).size === 60, 20_000, 100);
  t.pass('all 60 messages consumed');

  const described = await admin.describeGroups(['g']);
  t.equal(described.groups[0].state, 'Stable');
  t.equal(described.groups[0].protocolType, 'consumer');
  t.equal(described.groups[0].members.length, 3);
  const listed = await admin.listGroups();
  t.same(listed.groups.map((g) => g.groupId), ['g']);

  // One leaves: the other two take over its partitions.
  const leaving = consumers.pop()!;
  await leaving.consumer.disconnect();
  await eventually(() => consumers.every((c) => c.assignment.length === 3) && coversExactlyOnce(consumers), 20_000, 100);
  t.pass('after a leave: 3 partitions each, every partition exactly once');

  // Everything consumed is committed (kafkajs commits after each batch); then the group stops.
  await eventually(async () => {
    const offsets = await admin.fetchOffsets({ groupId: 'g', topics: [TOPIC] });
    return offsets[0].partitions.every((p) => p.offset === '10');
  }, 15_000, 200);
  t.pass('committed offsets reached the end of every partition');
  for (const c of consumers) await c.consumer.disconnect();
  consumers.length = 0;
  await admin.disconnect();

  await stack.restart();
  await produce(stack.address, 60, 30);
  const resumed = await startConsumer(stack.address, 'c4', 'g');
  consumers.push(resumed);
  await eventually(() => resumed.received.length >= 30, 20_000, 100);
  // Give a duplicate a chance to show up before judging.
  await new Promise((r) => setTimeout(r, 500));
  const values = resumed.received.map((r) => r.value).sort();
  const expected = Array.from({ length: 30 }, (_, i) => `m${60 + i}`).sort();
  t.same(values, expected, 'exactly the 30 new messages: nothing lost, nothing replayed');
  t.ok(resumed.received.every((r) => r.offset >= 10), 'each partition resumed after committed offset 10');
  for (let p = 0; p < PARTITIONS; p++) {
    const offs = resumed.received.filter((r) => r.partition === p).map((r) => r.offset);
    t.same(offs, [10, 11, 12, 13, 14].slice(0, offs.length), `partition ${p} in order from 10`);
  }

  // DeleteGroups: refused while a member is in, accepted once it left.
  const admin2 = kafkaFor(stack.address, 'admin2').admin();
  await admin2.connect();
  t.teardown(() => admin2.disconnect());
  const refused = await admin2.deleteGroups(['g']).then(
    () => null,
    (e: { groups?: Array<{ error?: { type?: string } }> }) => e.groups?.[0]?.error?.type,
  );
  t.equal(refused, 'NON_EMPTY_GROUP', 'a group with a member cannot be deleted');
  await resumed.consumer.disconnect();
  consumers.length = 0;
  const deleted = await admin2.deleteGroups(['g']);
  t.equal(deleted[0].errorCode, 0);
  const after = await admin2.fetchOffsets({ groupId: 'g', topics: [TOPIC] });
  t.ok(after[0].partitions.every((p) => p.offset === '-1'), 'no offsets after the group was deleted');
});

t.test('kafkajs: a consumer that committed part of what it read resumes at the commit (only the uncommitted is read again)', async (t) => {
  const dir = await tempDir(t, 'tributary-kafka-groups-');
  const stack = await startStack(t, dir);
  const kafka = kafkaFor(stack.address, 'manual');
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  await admin.createTopics({ topics: [{ topic: 'readings', numPartitions: 1 }] });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: 'readings', acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ key: 'sensor', value: `r${i}` })) });
  await producer.disconnect();

  const readAll = async (stopAfter: number, commitAt: number | null) => {
    const consumer = kafka.consumer({ groupId: 'manual', sessionTimeout: 6000, heartbeatInterval: 300, maxWaitTimeInMs: 200 });
    const seen: string[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic: 'readings', fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        seen.push(message.value!.toString());
      },
    });
    await eventually(() => seen.length >= stopAfter, 20_000, 50);
    if (commitAt !== null) await consumer.commitOffsets([{ topic: 'readings', partition: 0, offset: String(commitAt) }]);
    await consumer.disconnect();
    return seen;
  };
  const first = await readAll(10, 6);
  t.same(first, Array.from({ length: 10 }, (_, i) => `r${i}`), 'first run reads all ten in order');
  await stack.restart();
  const offsets = await kafkaFor(stack.address, 'check').admin();
  await offsets.connect();
  const committed = await offsets.fetchOffsets({ groupId: 'manual', topics: ['readings'] });
  await offsets.disconnect();
  t.equal(committed[0].partitions[0].offset, '6', 'the commit survived the restart');
  const second = await readAll(4, null);
  t.same(second, ['r6', 'r7', 'r8', 'r9'], 'resumes exactly at the committed offset');
});

t.test('kafkajs: consumers connected through a broker restart carry on (restored group, no message lost)', async (t) => {
  const dir = await tempDir(t, 'tributary-kafka-groups-');
  const stack = await startStack(t, dir);
  const admin = kafkaFor(stack.address, 'admin').admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }] });
  await admin.disconnect();
  await produce(stack.address, 0, 30);
  const consumers = [await startConsumer(stack.address, 'a', 'live'), await startConsumer(stack.address, 'b', 'live')];
  t.teardown(async () => {
    for (const c of consumers) await c.consumer.disconnect().catch(() => undefined);
  });
  const seen = () => new Set(consumers.flatMap((c) => c.received.map((r) => r.value)));
  await eventually(() => seen().size === 30 && coversExactlyOnce(consumers), 30_000, 100);
  const generation = stack.groups.describeGroups(['live'])[0].generationId;
  await stack.restart();
  t.equal(stack.address.endsWith(`:${stack.port}`), true);
  t.equal(stack.groups.describeGroups(['live'])[0].state, 'Stable', 'the group comes back Stable from __consumer_offsets');
  await produce(stack.address, 30, 30);
  await eventually(() => seen().size === 60, 30_000, 100);
  t.pass('all 60 messages consumed across the restart');
  const all = consumers.flatMap((c) => c.received);
  const perPartition = new Map<number, number[]>();
  for (const r of all) perPartition.set(r.partition, [...(perPartition.get(r.partition) ?? []), r.offset]);
  for (const [p, offs] of perPartition) {
    const unique = [...new Set(offs)].sort((a, b) => a - b);
    t.same(unique, Array.from({ length: 10 }, (_, i) => i), `partition ${p}: offsets 0..9 all seen`);
  }
  const after = stack.groups.describeGroups(['live'])[0].generationId;
  t.comment(`generation before the restart ${generation}, after ${after}`);
  t.ok(after >= generation, `generation ${generation} kept or advanced`);
});

t.test('kafkajs against the real broker process: commits survive SIGKILL, the group resumes exactly after them', async (t) => {
  const dataDir = await tempDir(t, 'tributary-kafka-groups-proc-');
  const env = { TRIBUTARY_GROUPS_INITIAL_REBALANCE_DELAY_MS: '300', TRIBUTARY_GROUPS_MIN_SESSION_TIMEOUT_MS: '1000' };
  const first = await startBroker(t, { dataDir, env });
  const address = `127.0.0.1:${first.port('kafka')}`;
  const admin = kafkaFor(address, 'admin').admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }] });
  await admin.disconnect();
  await produce(address, 0, 60);
  const consumers = [await startConsumer(address, 'p1', 'proc'), await startConsumer(address, 'p2', 'proc')];
  t.teardown(async () => {
    for (const c of consumers) await c.consumer.disconnect().catch(() => undefined);
  });
  await eventually(() => new Set(consumers.flatMap((c) => c.received.map((r) => r.value))).size === 60 && coversExactlyOnce(consumers), 30_000, 100);
  const check = kafkaFor(address, 'check').admin();
  await check.connect();
  await eventually(async () => (await check.fetchOffsets({ groupId: 'proc', topics: [TOPIC] }))[0].partitions.every((p) => p.offset === '10'), 15_000, 200);
  await check.disconnect();
  for (const c of consumers) await c.consumer.disconnect();
  consumers.length = 0;

  await first.kill(); // a power cut, as far as the process is concerned
  const second = await startBroker(t, { dataDir, env });
  const address2 = `127.0.0.1:${second.port('kafka')}`;
  await produce(address2, 60, 30);
  const resumed = await startConsumer(address2, 'p3', 'proc');
  consumers.push(resumed);
  await eventually(() => resumed.received.length >= 30, 20_000, 100);
  await new Promise((r) => setTimeout(r, 500));
  t.same(resumed.received.map((r) => r.value).sort(), Array.from({ length: 30 }, (_, i) => `m${60 + i}`).sort(), 'exactly the 30 new messages after the SIGKILL');
  t.ok(resumed.received.every((r) => r.offset >= 10), 'every partition resumed after its committed offset');
  await resumed.consumer.disconnect();
  consumers.length = 0;
  t.equal(await second.stop(), 0, 'SIGTERM: clean exit');
});
