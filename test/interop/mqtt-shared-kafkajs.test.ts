// One consumer group, two protocols: a kafkajs consumer in group `mixed` and an mqtt.js device
// subscribed to `$share/mixed/sensors/#` split the partitions of `sensors` on the real broker
// process; each record reaches exactly one of them, and when the device drops, kafkajs takes
// every partition and resumes from the offsets the device committed.
import t from 'tap';
import mqtt from 'mqtt';
import { Kafka, logLevel } from 'kafkajs';
import { eventually, sleep, startBroker, tempDir } from '../helpers/index.js';

const TOPIC = 'sensors';

t.test('a kafkajs consumer and an MQTT shared subscription share one consumer group', async (t) => {
  const proc = await startBroker(t, {
    dataDir: await tempDir(t, 'tributary-share-kafkajs-'),
    env: {
      TRIBUTARY_GROUPS_INITIAL_REBALANCE_DELAY_MS: '300',
      TRIBUTARY_GROUPS_MIN_SESSION_TIMEOUT_MS: '1000',
      TRIBUTARY_MQTT_SHARED_SESSION_TIMEOUT_MS: '6000',
      TRIBUTARY_MQTT_SHARED_COMMIT_INTERVAL_MS: '200',
      TRIBUTARY_LOG_LEVEL: 'warn',
    },
  });
  const kafka = new Kafka({ clientId: 'kjs', brokers: [`127.0.0.1:${proc.port('kafka')}`], logLevel: logLevel.NOTHING, retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 1000 } });
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 4 }] });

  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${proc.port('mqtt')}`, { clientId: 'pi-device', reconnectPeriod: 0 });
  t.teardown(() => device.endAsync(true).catch(() => undefined));
  const deviceGot: string[] = [];
  device.on('message', (_topic, payload) => deviceGot.push(payload.toString()));
  t.same((await device.subscribeAsync(`$share/mixed/${TOPIC}/#`, { qos: 1 })).map((g) => g.qos), [1]);

  const consumer = kafka.consumer({ groupId: 'mixed', sessionTimeout: 6000, rebalanceTimeout: 8000, heartbeatInterval: 300, maxWaitTimeInMs: 200 });
  t.teardown(() => consumer.disconnect().catch(() => undefined));
  let kjsAssigned: number[] = [];
  const kjsGot: string[] = [];
  consumer.on(consumer.events.GROUP_JOIN, (e) => (kjsAssigned = [...(e.payload.memberAssignment[TOPIC] ?? [])].sort()));
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: false });
  await consumer.run({ eachMessage: async ({ message }) => void kjsGot.push(message.value!.toString()) });

  const described = (await eventually(async () => {
    const { groups } = await admin.describeGroups(['mixed']);
    const g = groups[0];
    return g.state === 'Stable' && g.members.length === 2 && kjsAssigned.length > 0 && kjsAssigned.length < 4 ? g : undefined;
  }, 30_000, 100))!;
  t.same(described.members.map((m) => m.clientId).sort(), ['kjs', 'pi-device'], 'both doors are members of one group');
  t.equal(described.protocolType, 'consumer');
  t.pass(`kafkajs owns partitions ${kjsAssigned.join(',')}, the device the others`);
  await sleep(500); // kafkajs fetches from its positions

  // records keyed by an MQTT topic (as an MQTT publish would be), produced by Kafka
  const producer = kafka.producer();
  await producer.connect();
  const values = Array.from({ length: 16 }, (_, i) => `k${i}`);
  await producer.send({ topic: TOPIC, acks: -1, messages: values.map((v, i) => ({ key: `${TOPIC}/dev${i}`, value: v, partition: i % 4 })) });
  await eventually(() => deviceGot.length + kjsGot.length >= 16, 15_000);
  await sleep(500);
  t.equal(deviceGot.length + kjsGot.length, 16, 'each record to exactly one member');
  t.same([...deviceGot, ...kjsGot].sort(), [...values].sort(), 'together: every record');
  t.ok(deviceGot.length > 0 && kjsGot.length > 0, `both received (${deviceGot.length} device / ${kjsGot.length} kafkajs)`);
  const devicePartitions = [0, 1, 2, 3].filter((p) => !kjsAssigned.includes(p));
  t.same(deviceGot.map((v) => Number(v.slice(1)) % 4).filter((p) => !devicePartitions.includes(p)), [], 'the device got only records of its partitions');

  // the device drops: kafkajs takes every partition, from the offsets the device committed
  await device.endAsync(true);
  await eventually(() => kjsAssigned.length === 4, 30_000, 100);
  const before = kjsGot.length;
  const later = Array.from({ length: 8 }, (_, i) => `later${i}`);
  await producer.send({ topic: TOPIC, acks: -1, messages: later.map((v, i) => ({ key: `${TOPIC}/dev${i}`, value: v, partition: i % 4 })) });
  await eventually(() => kjsGot.length - before >= 8, 15_000);
  await sleep(500);
  t.same(kjsGot.slice(before).sort(), [...later].sort(), 'kafkajs resumes where the device stopped: no repeat, no loss');
  await producer.disconnect();
});
