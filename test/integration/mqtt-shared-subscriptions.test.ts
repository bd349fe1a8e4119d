// Shared subscriptions as consumer groups, end to end on the real broker process: mqtt.js
// devices subscribed to `$share/{group}/{filter}` share the records of group `{group}` (each
// record to exactly one member), a leaving member's partitions move to the others, committed
// offsets survive a restart, an unacknowledged QoS 1 delivery is delivered again to another
// member when its device drops, malformed share names get a SUBACK failure, and the limits
// (memberships, in-flight window) hold at their boundary.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import t from 'tap';
import mqtt from 'mqtt';
import { AssignerProtocol, Kafka, logLevel } from 'kafkajs';
import { eventually, haveCommand, sleep, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { RawMqttClient } from '../helpers/mqtt-raw.js';

const FAST_GROUPS = {
  TRIBUTARY_GROUPS_INITIAL_REBALANCE_DELAY_MS: '300',
  TRIBUTARY_GROUPS_MIN_SESSION_TIMEOUT_MS: '1000',
  TRIBUTARY_MQTT_SHARED_SESSION_TIMEOUT_MS: '3000',
  TRIBUTARY_MQTT_SHARED_COMMIT_INTERVAL_MS: '200',
  TRIBUTARY_LOG_LEVEL: 'warn',
};

interface Tap {
  teardown(fn: () => unknown): void;
}

async function start(t: Tap, dataDir: string, env: Record<string, string> = {}): Promise<BrokerProcess> {
  return startBroker(t, { dataDir, env: { ...FAST_GROUPS, ...env } });
}

function kafkaOf(proc: BrokerProcess): Kafka {
  return new Kafka({ clientId: 'shared-test', brokers: [`127.0.0.1:${proc.port('kafka')}`], logLevel: logLevel.NOTHING, retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 1000 } });
}

async function createTopic(proc: BrokerProcess, topic: string, partitions: number): Promise<void> {
  const admin = kafkaOf(proc).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
  } finally {
    await admin.disconnect();
  }
}

/** clientId → partitions of `topic`, once the group is Stable with `members` members. */
/** Waits until the group's committed offsets on `topic` add up to at least `total` records. */
async function committedAtLeast(proc: BrokerProcess, group: string, topic: string, total: number): Promise<void> {
  const admin = kafkaOf(proc).admin();
  await admin.connect();
  try {
    await eventually(async () => {
      const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const sum = t.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
      return sum >= total ? true : undefined;
    }, 15_000, 100);
  } finally {
    await admin.disconnect();
  }
}

async function stableAssignment(proc: BrokerProcess, group: string, topic: string, members: number): Promise<Map<string, number[]>> {
  const admin = kafkaOf(proc).admin();
  await admin.connect();
  try {
    const found = await eventually(async () => {
      const { groups } = await admin.describeGroups([group]);
      const g = groups[0];
      if (g.state !== 'Stable' || g.members.length !== members) return undefined;
      const out = new Map<string, number[]>();
      for (const m of g.members) {
        const a = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
        out.set(m.clientId, [...((a?.assignment as Record<string, number[]>)?.[topic] ?? [])].sort());
      }
      const all = [...out.values()].flat();
      if (new Set(all).size !== all.length) return undefined;
      return out;
    }, 30_000, 100);
    return found!;
  } finally {
    await admin.disconnect();
  }
}

async function device(t: Tap, proc: BrokerProcess, clientId: string, clean = true): Promise<{ client: mqtt.MqttClient; got: Array<{ topic: string; payload: string; qos: number }> }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${proc.port('mqtt')}`, { clientId, clean, reconnectPeriod: 0, protocolVersion: 4 });
  t.teardown(() => client.endAsync(true).catch(() => undefined));
  const got: Array<{ topic: string; payload: string; qos: number }> = [];
  client.on('message', (topic, payload, p) => got.push({ topic, payload: payload.toString(), qos: p.qos }));
  return { client, got };
}

async function publishAll(proc: BrokerProcess, topics: string[], tag: string, qos: 0 | 1 | 2 = 1): Promise<string[]> {
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${proc.port('mqtt')}`, { clientId: `pub-${tag}`, reconnectPeriod: 0 });
  const payloads: string[] = [];
  for (let i = 0; i < topics.length; i++) {
    const payload = `${tag}-${i}`;
    payloads.push(payload);
    await pub.publishAsync(topics[i], payload, { qos });
  }
  await pub.endAsync();
  return payloads;
}

const deviceTopics = (n: number, prefix = 'sensors') => Array.from({ length: n }, (_, i) => `${prefix}/dev${i}/temp`);

// One broker process for the tests without options of their own (each uses its own stream
// topic and group); restarts, crashes and limits get theirs.
let common: Promise<BrokerProcess> | undefined;
const commonBroker = async () => (common ??= tempDir(t, 'tributary-share-common-').then((dir) => start(t, dir)));

t.test('two members of $share/g/sensors/# split the records: disjoint, and together every record', async (t) => {
  const proc = await commonBroker();
  await createTopic(proc, 'sensors', 4);
  const a = await device(t, proc, 'member-a');
  const b = await device(t, proc, 'member-b');
  const plain = await device(t, proc, 'plain');
  t.same((await a.client.subscribeAsync('$share/g/sensors/#', { qos: 1 })).map((g) => g.qos), [1], 'SUBACK grants QoS 1');
  t.same((await b.client.subscribeAsync('$share/g/sensors/#', { qos: 1 })).map((g) => g.qos), [1]);
  await plain.client.subscribeAsync('sensors/#', { qos: 1 });
  const assigned = await stableAssignment(proc, 'g', 'sensors', 2);
  t.equal(assigned.get('member-a')!.length, 2, `member-a owns 2 of 4 partitions (${assigned.get('member-a')})`);
  t.equal(assigned.get('member-b')!.length, 2, `member-b owns 2 of 4 partitions (${assigned.get('member-b')})`);

  const sent = await publishAll(proc, deviceTopics(40), 'split');
  await eventually(() => a.got.length + b.got.length >= 40 && plain.got.length >= 40, 15_000);
  await sleep(300);
  const av = a.got.map((m) => m.payload);
  const bv = b.got.map((m) => m.payload);
  t.equal(av.length + bv.length, 40, 'no record delivered twice');
  t.same(new Set([...av, ...bv]).size, 40);
  t.same([...av, ...bv].sort(), [...sent].sort(), 'together: every record');
  t.ok(av.length > 0 && bv.length > 0, `both received some (${av.length} / ${bv.length})`);
  t.equal(plain.got.length, 40, 'a plain subscriber still receives every record');
  t.ok(a.got.every((m) => m.qos === 1 && m.topic.startsWith('sensors/dev')), 'delivered at QoS 1 under the MQTT topic');

  // a member leaving: its partitions go to the other, which then receives everything
  await a.client.endAsync();
  const after = await stableAssignment(proc, 'g', 'sensors', 1);
  t.same(after.get('member-b'), [0, 1, 2, 3], 'member-b took every partition');
  const before = b.got.length;
  const sent2 = await publishAll(proc, deviceTopics(20), 'after-leave');
  await eventually(() => b.got.length - before >= 20, 15_000);
  t.same(b.got.slice(before).map((m) => m.payload).sort(), [...sent2].sort(), 'every later record reaches the remaining member');
});

t.test('records of an assigned partition that do not match the filter are passed over', async (t) => {
  const proc = await commonBroker();
  await createTopic(proc, 'rooms', 2);
  const k = await device(t, proc, 'kitchen-reader');
  await k.client.subscribeAsync('$share/k/rooms/kitchen/#', { qos: 0 });
  await stableAssignment(proc, 'k', 'rooms', 1);
  const topics = [...Array.from({ length: 5 }, (_, i) => `rooms/kitchen/t${i}`), ...Array.from({ length: 5 }, (_, i) => `rooms/garage/t${i}`)];
  await publishAll(proc, topics, 'filter');
  await eventually(() => k.got.length >= 5, 10_000);
  await sleep(500);
  t.equal(k.got.length, 5);
  t.ok(k.got.every((m) => m.topic.startsWith('rooms/kitchen/') && m.qos === 0), 'only the kitchen records, at the subscription QoS 0');
});

t.test('a restart resumes from the committed offsets: nothing lost, nothing acknowledged delivered again', async (t) => {
  const dataDir = await tempDir(t, 'tributary-share-restart-');
  let proc = await start(t, dataDir);
  await createTopic(proc, 'sensors', 3);
  const first = await device(t, proc, 'resumer');
  await first.client.subscribeAsync('$share/r/sensors/#', { qos: 1 });
  await stableAssignment(proc, 'r', 'sensors', 1);
  const sent1 = await publishAll(proc, deviceTopics(15), 'before');
  await eventually(() => first.got.length >= 15, 10_000);
  t.same(first.got.map((m) => m.payload).sort(), [...sent1].sort());
  // `got` is the device's side: the broker commits a delivery once its PUBACK arrives. Stopping
  // before the last PUBACK is read would rightly deliver that record again (QoS 1, unacknowledged).
  await committedAtLeast(proc, 'r', 'sensors', 15);
  t.equal(await proc.stop(), 0, 'clean stop');

  proc = await start(t, dataDir);
  // published while no member exists: the group's committed offsets keep them for the next member
  const sent2 = await publishAll(proc, deviceTopics(9), 'while-away');
  const second = await device(t, proc, 'resumer');
  await second.client.subscribeAsync('$share/r/sensors/#', { qos: 1 });
  await eventually(() => second.got.length >= 9, 15_000);
  await sleep(500);
  t.same(second.got.map((m) => m.payload).sort(), [...sent2].sort(), 'exactly the records after the committed offsets');
});

t.test('a crash loses nothing: acknowledged progress was committed within sharedCommitIntervalMs', async (t) => {
  const dataDir = await tempDir(t, 'tributary-share-crash-');
  let proc = await start(t, dataDir);
  await createTopic(proc, 'sensors', 2);
  const first = await device(t, proc, 'crasher');
  await first.client.subscribeAsync('$share/c/sensors/#', { qos: 1 });
  await stableAssignment(proc, 'c', 'sensors', 1);
  const sent1 = await publishAll(proc, deviceTopics(10), 'pre-crash');
  await eventually(() => first.got.length >= 10, 10_000);
  await sleep(800); // > sharedCommitIntervalMs (200 ms): the acknowledged offsets are committed
  await proc.kill();
  first.client.end(true);

  proc = await start(t, dataDir);
  const sent2 = await publishAll(proc, deviceTopics(6), 'post-crash');
  const second = await device(t, proc, 'crasher-2');
  await second.client.subscribeAsync('$share/c/sensors/#', { qos: 1 });
  // the crashed gateway's member is still in the restored group until its session expires
  await eventually(() => second.got.length >= 6, 20_000);
  await sleep(500);
  const got = second.got.map((m) => m.payload);
  t.same(got.sort(), [...sent2].sort(), 'every record after the crash, none of the acknowledged ones');
  t.notOk(got.some((p) => sent1.includes(p)));
});

t.test('a QoS 1 delivery never acknowledged is delivered to another member when its device drops', async (t) => {
  const proc = await commonBroker();
  await createTopic(proc, 'unacked', 2);
  const raw = await RawMqttClient.connect(proc.port('mqtt'), 'never-acks');
  t.teardown(() => raw.destroy());
  t.same(await raw.subscribe([['$share/q/unacked/#', 1]]), [1]);
  await stableAssignment(proc, 'q', 'unacked', 1);
  const sent = await publishAll(proc, deviceTopics(5, 'unacked'), 'unacked');
  await eventually(() => raw.publishes.length >= 5, 10_000);
  t.ok(raw.publishes.every((p) => p.qos === 1 && p.messageId !== undefined), 'QoS 1 deliveries with packet ids');

  const other = await device(t, proc, 'taker');
  await other.client.subscribeAsync('$share/q/unacked/#', { qos: 1 });
  await stableAssignment(proc, 'q', 'unacked', 2);
  raw.destroy(); // power cut: no PUBACK ever came
  await eventually(() => new Set(other.got.map((m) => m.payload)).size >= 5, 15_000);
  t.same([...new Set(other.got.map((m) => m.payload))].sort(), [...sent].sort(), 'every unacknowledged record reached the other member');
});

t.test('malformed share names get a SUBACK failure (0x80 in 3.1.1) and the connection stays', async (t) => {
  const proc = await commonBroker();
  const raw = await RawMqttClient.connect(proc.port('mqtt'), 'bad-names');
  t.teardown(() => raw.destroy());
  const codes = await raw.subscribe([
    ['$share/g', 1], // no filter
    ['$share/a+b/x', 1], // wildcard inside the share name
    ['$share/+/x', 1], // wildcard as the share name
    ['$share/#', 0],
    ['$share//x', 0], // empty share name
    ['$share/g/', 0], // empty filter
    ['$share/ok/sensors/#', 1],
  ]);
  t.same(codes, [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1]);
  t.notOk(raw.closed, 'still connected');
  t.same(await raw.subscribe([['plain/#', 0]]), [0], 'and serving');
});

t.test('one share name carries one filter: a second filter in the same group is refused', async (t) => {
  const proc = await commonBroker();
  const a = await RawMqttClient.connect(proc.port('mqtt'), 'filter-a');
  const b = await RawMqttClient.connect(proc.port('mqtt'), 'filter-b');
  t.teardown(() => (a.destroy(), b.destroy()));
  t.same(await a.subscribe([['$share/m/doors/#', 1]]), [1]);
  t.same(await b.subscribe([['$share/m/alarms/#', 1]]), [0x80], 'a different filter under the same share name');
  t.same(await b.subscribe([['$share/m/doors/#', 0]]), [0], 'the same filter joins');
  t.ok(proc.logs.some((l) => String(l.msg).includes('one share name carries one filter')), 'the refusal is logged with its rule');
});

t.test('sharedMembersMax: the membership past the limit is refused, and admitted once one leaves', async (t) => {
  const proc = await start(t, await tempDir(t, 'tributary-share-max-'), { TRIBUTARY_MQTT_SHARED_MEMBERS_MAX: '2' });
  const c = await Promise.all([0, 1, 2].map((i) => RawMqttClient.connect(proc.port('mqtt'), `max-${i}`)));
  t.teardown(() => c.forEach((x) => x.destroy()));
  t.same(await c[0].subscribe([['$share/x/sensors/#', 1]]), [1]);
  t.same(await c[1].subscribe([['$share/y/sensors/#', 1]]), [1], 'at the limit: admitted');
  t.same(await c[2].subscribe([['$share/x/sensors/#', 1]]), [0x80], 'past it: refused');
  c[0].destroy();
  await eventually(async () => (await c[2].subscribe([['$share/x/sensors/#', 1]]))[0] === 1, 10_000, 200);
  t.pass('admitted after a member left');
});

t.test('sharedInflightMax: at most that many deliveries await their PUBACK; each PUBACK lets one more go', async (t) => {
  const proc = await start(t, await tempDir(t, 'tributary-share-window-'), { TRIBUTARY_MQTT_SHARED_INFLIGHT_MAX: '3' });
  await createTopic(proc, 'sensors', 1);
  const raw = await RawMqttClient.connect(proc.port('mqtt'), 'slow-device');
  t.teardown(() => raw.destroy());
  t.same(await raw.subscribe([['$share/w/sensors/#', 1]]), [1]);
  await stableAssignment(proc, 'w', 'sensors', 1);
  const sent = await publishAll(proc, deviceTopics(7), 'window');
  await eventually(() => raw.publishes.length >= 3, 10_000);
  await sleep(500);
  t.equal(raw.publishes.length, 3, 'exactly sharedInflightMax in flight');
  raw.puback(raw.publishes[0].messageId!);
  await eventually(() => raw.publishes.length >= 4, 5_000);
  await sleep(300);
  t.equal(raw.publishes.length, 4, 'one PUBACK, one more delivery');
  for (let i = 1; i < 7; i++) {
    await eventually(() => raw.publishes.length > i, 5_000);
    raw.puback(raw.publishes[i].messageId!);
  }
  await eventually(() => raw.publishes.length >= 7, 5_000);
  t.same(raw.publishes.map((p) => p.payload.toString()), sent, 'in order within the partition');
});

t.test('a persistent session keeps its shared subscription: the device rejoins the group when it reconnects, QoS 2 settles', async (t) => {
  const proc = await commonBroker();
  await createTopic(proc, 'sticky', 2);
  const first = await device(t, proc, 'sticky', false);
  await first.client.subscribeAsync('$share/p/sticky/#', { qos: 2 });
  await stableAssignment(proc, 'p', 'sticky', 1);
  await first.client.endAsync();
  const again = await device(t, proc, 'sticky', false); // no SUBSCRIBE this time
  const assigned = await stableAssignment(proc, 'p', 'sticky', 1);
  t.same(assigned.get('sticky'), [0, 1], 'the restored subscription joined the group again');
  const sent = await publishAll(proc, deviceTopics(6, 'sticky'), 'sticky', 2);
  await eventually(() => again.got.length >= 6, 10_000);
  t.same(again.got.map((m) => m.payload).sort(), [...sent].sort());
  t.ok(again.got.every((m) => m.qos === 2), 'QoS 2 deliveries (PUBREC, PUBREL, PUBCOMP through the session)');
  // every PUBCOMP came back: the group's commits reach the log end
  const admin = kafkaOf(proc).admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  await eventually(async () => {
    const [fetched] = await admin.fetchOffsets({ groupId: 'p', topics: ['sticky'] });
    const ends = await admin.fetchTopicOffsets('sticky');
    return fetched.partitions.every((p) => p.offset === ends.find((e) => e.partition === p.partition)?.high);
  }, 10_000, 100);
  t.pass('committed up to the log end');
});

t.test('mosquitto_sub members share a group', { skip: haveCommand('mosquitto_sub') ? false : 'mosquitto_sub is not installed' }, async (t) => {
  const proc = await commonBroker();
  await createTopic(proc, 'mosq', 4);
  const outputs = ['mosq-1', 'mosq-2'].map((id) => {
    const child = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(proc.port('mqtt')), '-i', id, '-q', '1', '-t', '$share/mosq/mosq/#', '-F', '%p'], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => child.kill());
    const lines: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
    return lines;
  });
  const assigned = await stableAssignment(proc, 'mosq', 'mosq', 2);
  t.same([...assigned.values()].map((p) => p.length), [2, 2], 'two partitions each');
  const sent = await publishAll(proc, deviceTopics(24, 'mosq'), 'mosq');
  await eventually(() => outputs[0].length + outputs[1].length >= 24, 15_000);
  await sleep(300);
  t.equal(outputs[0].length + outputs[1].length, 24, 'each record once');
  t.same([...outputs[0], ...outputs[1]].sort(), [...sent].sort(), 'together: every record');
});
