// One consumer group, two doors: a kafkajs consumer and a WebSocket dashboard (the `ws` client)
// join the same group on the real broker process, split the partitions between them, each
// record reaches exactly one of them, and when the dashboard leaves kafkajs takes everything.
import t from 'tap';
import { Kafka, logLevel } from 'kafkajs';
import { eventually, sleep, startBroker, tempDir } from '../helpers/index.js';
import { Client, type Frame } from '../unit/ws/harness.js';

const TOPIC = 'shared';

const wsAssigned = (c: Client): number[] => {
  const frames = c.frames.filter((f) => (f.type === 'subscribed' || f.type === 'assignment') && f.group);
  const last = frames[frames.length - 1];
  return last ? last.partitions.map((p: Frame) => p.partition as number).sort() : [];
};

t.test('a kafkajs consumer and a WebSocket dashboard share one consumer group', async (t) => {
  const dataDir = await tempDir(t, 'tributary-kafka-groups-ws-');
  const proc = await startBroker(t, {
    dataDir,
    env: {
      TRIBUTARY_GROUPS_INITIAL_REBALANCE_DELAY_MS: '300',
      TRIBUTARY_GROUPS_MIN_SESSION_TIMEOUT_MS: '1000',
      TRIBUTARY_HTTP_GROUP_SESSION_TIMEOUT_MS: '6000',
      TRIBUTARY_HTTP_GROUP_REBALANCE_TIMEOUT_MS: '6000',
    },
  });
  const kafka = new Kafka({ clientId: 'mixed', brokers: [`127.0.0.1:${proc.port('kafka')}`], logLevel: logLevel.NOTHING, retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 1000 } });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 4 }] });

  const dash = await Client.open(t, `ws://127.0.0.1:${proc.port('http')}/ws`);
  const sub = await dash.request({ type: 'subscribe', topic: TOPIC, group: 'mixed', start: 'latest' }, 20_000);
  t.equal(sub.type, 'subscribed');

  const consumer = kafka.consumer({ groupId: 'mixed', sessionTimeout: 6000, rebalanceTimeout: 8000, heartbeatInterval: 300, maxWaitTimeInMs: 200 });
  t.teardown(() => consumer.disconnect().catch(() => undefined));
  let kjsAssigned: number[] = [];
  const kjsReceived: Array<{ partition: number; value: string }> = [];
  consumer.on(consumer.events.GROUP_JOIN, (e) => (kjsAssigned = [...(e.payload.memberAssignment[TOPIC] ?? [])].sort()));
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: false });
  await consumer.run({ eachMessage: async ({ partition, message }) => void kjsReceived.push({ partition, value: message.value!.toString() }) });

  await eventually(() => {
    const a = wsAssigned(dash);
    const all = [...a, ...kjsAssigned].sort();
    return a.length > 0 && kjsAssigned.length > 0 && all.join() === '0,1,2,3';
  }, 30_000, 100);
  t.pass(`split: dashboard ${wsAssigned(dash).join(',')} / kafkajs ${kjsAssigned.join(',')}`);
  const described = await admin.describeGroups(['mixed']);
  t.equal(described.groups[0].members.length, 2);
  t.same(described.groups[0].members.map((m) => m.clientId).sort(), ['mixed', 'tributary-ws']);

  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 8 }, (_, i) => ({ value: `v${i}`, partition: i % 4 })) });
  await producer.disconnect();
  const dashValues = () => dash.records(TOPIC).map((r) => String(r.value));
  await eventually(() => dashValues().length + kjsReceived.length >= 8, 20_000, 50);
  await sleep(300);
  t.same([...dashValues(), ...kjsReceived.map((r) => r.value)].sort(), Array.from({ length: 8 }, (_, i) => `v${i}`), 'each record reached exactly one member');
  t.ok(dash.records(TOPIC).every((r) => wsAssigned(dash).includes(r.partition)), 'the dashboard got only its partitions');
  t.ok(kjsReceived.every((r) => kjsAssigned.includes(r.partition)), 'kafkajs got only its partitions');

  dash.ws.close();
  await eventually(() => kjsAssigned.join() === '0,1,2,3', 30_000, 100);
  t.pass('after the dashboard left, kafkajs owns every partition');
  await consumer.disconnect();
  await admin.disconnect();
});
