// MQTT publishes land in the right stream topic, partition and key with their headers, with
// mqtt.js as the client over TCP and WebSocket; routes, unrouted publishes, reverse
// delivery of records produced through the broker, and MQTT 5 and 3.1 clients.
import t from 'tap';
import mqtt from 'mqtt';
import { openStack, readTopic } from '../unit/mqtt/fixture.js';
import { eventually } from '../helpers/index.js';

const json = (o: unknown) => JSON.stringify(o);

t.test('publish at QoS 0, 1 and 2: one record each in the first-level topic, keyed by the MQTT topic, with headers', async (t) => {
  const s = await openStack(t, { broker: { defaultPartitions: 4 } });
  const c = await mqtt.connectAsync(s.url, { clientId: 'dev-1', protocolVersion: 4 });
  t.teardown(() => c.endAsync(true));
  await c.publishAsync('sensors/dev-1/temp', json({ v: 0 }), { qos: 0 });
  await c.publishAsync('sensors/dev-1/temp', json({ v: 1 }), { qos: 1 });
  await c.publishAsync('sensors/dev-1/temp', json({ v: 2 }), { qos: 2, retain: true });
  const recs = (await eventually(async () => {
    const r = await readTopic(s.broker, 'sensors');
    return r.length === 3 ? r : undefined;
  }))!;
  const expectedPartition = s.broker.partitionForKey('sensors', Buffer.from('sensors/dev-1/temp'));
  for (const [i, r] of recs.sort((a, b) => a.offset - b.offset).entries()) {
    t.equal(r.key, 'sensors/dev-1/temp');
    t.equal(r.partition, expectedPartition, 'partition chosen from the key');
    t.same(JSON.parse(r.value!), { v: i });
    t.equal(r.headers['mqtt.topic'], 'sensors/dev-1/temp');
    t.equal(r.headers['mqtt.qos'], String(i));
    t.equal(r.headers['mqtt.retain'], i === 2 ? 'true' : 'false');
    t.equal(r.headers['mqtt.clientId'], 'dev-1');
  }
});

t.test('PUBACK comes after the record is in the log', async (t) => {
  const s = await openStack(t);
  const c = await mqtt.connectAsync(s.url, { clientId: 'acker' });
  t.teardown(() => c.endAsync(true));
  for (let i = 0; i < 20; i++) {
    await c.publishAsync('acks/a', String(i), { qos: 1 });
    // no polling: the record must already be readable when the PUBACK arrived
    const recs = await readTopic(s.broker, 'acks');
    t.equal(recs.length, i + 1, `record ${i} present at PUBACK`);
  }
});

t.test('many devices publishing at once share appends (fewer batches than publishes)', async (t) => {
  const s = await openStack(t);
  const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => mqtt.connectAsync(s.url, { clientId: `many-${i}` })));
  t.teardown(() => Promise.all(clients.map((c) => c.endAsync(true))));
  const before = s.gateway.batcher.batches;
  await Promise.all(clients.flatMap((c, i) => Array.from({ length: 10 }, (_, k) => c.publishAsync(`fleet/d${i}/m`, String(k), { qos: 1 }))));
  const recs = await readTopic(s.broker, 'fleet');
  t.equal(recs.length, 200);
  const batches = s.gateway.batcher.batches - before;
  t.ok(batches < 200, `200 publishes in ${batches} appends`);
  // per-device order is kept
  for (let i = 0; i < 20; i++) {
    const mine = recs.filter((r) => r.key === `fleet/d${i}/m`).sort((a, b) => a.offset - b.offset).map((r) => Number(r.value));
    t.same(mine, [...Array(10).keys()], `device ${i} in order`);
  }
});

t.test('routes: first match wins, templates fill topic and key, fixed partition; default route sanitises', async (t) => {
  const s = await openStack(t, {
    broker: { defaultPartitions: 3 },
    mqtt: {
      routes: [
        { match: 'site/+/alarm/#', topic: 'alarms', key: '{2}', partition: 2 },
        { match: 'site/+/+', topic: 'metrics-{3}', key: '{clientId}:{2}' },
      ],
    },
  });
  const c = await mqtt.connectAsync(s.url, { clientId: 'gw7' });
  t.teardown(() => c.endAsync(true));
  await c.publishAsync('site/boiler/alarm/overheat', 'hot', { qos: 1 });
  await c.publishAsync('site/boiler/temp', '71', { qos: 1 });
  await c.publishAsync('home assistant/x', 'y', { qos: 1 });
  const alarms = await readTopic(s.broker, 'alarms');
  t.equal(alarms.length, 1);
  t.equal(alarms[0].key, 'boiler');
  t.equal(alarms[0].partition, 2);
  const temps = await readTopic(s.broker, 'metrics-temp');
  t.equal(temps[0].key, 'gw7:boiler');
  const sanitised = await readTopic(s.broker, 'home_assistant');
  t.equal(sanitised[0].key, 'home assistant/x', 'space in the first level became _ in the stream topic');
});

t.test('unrouted publishes: mqtt-only delivers live but stores nothing; disconnect closes the client', async (t) => {
  const s = await openStack(t, { mqtt: { defaultRoute: false, routes: [{ match: 'stored/#', topic: 'stored' }] } });
  const sub = await mqtt.connectAsync(s.url, { clientId: 'watcher' });
  t.teardown(() => sub.endAsync(true));
  await sub.subscribeAsync('free/#', { qos: 1 });
  const got = new Promise<string>((resolve) => sub.on('message', (_t, p) => resolve(p.toString())));
  const pub = await mqtt.connectAsync(s.url, { clientId: 'pub' });
  t.teardown(() => pub.endAsync(true));
  await pub.publishAsync('free/x', 'live only', { qos: 1 });
  t.equal(await got, 'live only');
  t.equal(s.broker.describeTopic('free'), undefined, 'no topic created for an unrouted publish');
  t.ok(s.logs.some((l) => String(l.msg).includes('matches no route')), 'logged');

  const s2 = await openStack(t, { mqtt: { defaultRoute: false, unrouted: 'disconnect' } });
  const bad = await mqtt.connectAsync(s2.url, { clientId: 'bad', reconnectPeriod: 0 });
  const closed = new Promise<void>((resolve) => bad.once('close', () => resolve()));
  bad.publish('nowhere/x', 'x', { qos: 1 });
  await closed;
  t.equal(s2.broker.listTopics().filter((x) => !x.internal).length, 0, 'nothing stored');
  bad.end(true);
});

t.test('reverse route: a record produced through the broker reaches the MQTT subscriber of its key', async (t) => {
  const s = await openStack(t);
  const dev = await mqtt.connectAsync(s.url, { clientId: 'device-9' });
  t.teardown(() => dev.endAsync(true));
  await dev.subscribeAsync('commands/device-9/#', { qos: 1 });
  const got = new Promise<{ topic: string; payload: string }>((resolve) => dev.on('message', (topic, p) => resolve({ topic, payload: p.toString() })));
  await s.broker.produce('commands', [{ key: Buffer.from('commands/device-9/reboot'), value: Buffer.from('now') }], { acks: -1 });
  t.same(await got, { topic: 'commands/device-9/reboot', payload: 'now' });
});

t.test('reverse route: MQTT-origin records are not delivered twice', async (t) => {
  const s = await openStack(t);
  const sub = await mqtt.connectAsync(s.url, { clientId: 'sub-once' });
  t.teardown(() => sub.endAsync(true));
  await sub.subscribeAsync('echo/#', { qos: 1 });
  const seen: string[] = [];
  sub.on('message', (_t, p) => seen.push(p.toString()));
  const pub = await mqtt.connectAsync(s.url, { clientId: 'pub-once' });
  t.teardown(() => pub.endAsync(true));
  await pub.publishAsync('echo/a', 'from-mqtt', { qos: 1 });
  await s.broker.produce('echo', [{ key: Buffer.from('echo/a'), value: Buffer.from('from-kafka') }], { acks: -1 });
  await eventually(() => seen.includes('from-kafka'));
  // the tail has passed the MQTT record (it precedes the Kafka one) by now
  t.same(seen.sort(), ['from-kafka', 'from-mqtt']);
});

t.test('reverse route: records of others between MQTT publishes reach a # subscriber once each, in order, while our own appends are skipped unread', async (t) => {
  const s = await openStack(t);
  const sub = await mqtt.connectAsync(s.url, { clientId: 'sub-mix' });
  t.teardown(() => sub.endAsync(true));
  await sub.subscribeAsync('#', { qos: 1 });
  const seen: string[] = [];
  sub.on('message', (_t, p) => seen.push(p.toString()));
  const pub = await mqtt.connectAsync(s.url, { clientId: 'pub-mix' });
  t.teardown(() => pub.endAsync(true));
  // one at a time: each Kafka record lies between two MQTT appends of the same partition
  const expected: string[] = [];
  for (let i = 0; i < 5; i++) {
    await pub.publishAsync('mix/a', `mqtt-${i}`, { qos: 1 });
    await s.broker.produce('mix', [{ key: Buffer.from('mix/a'), value: Buffer.from(`kafka-${i}`) }], { acks: -1 });
    expected.push(`mqtt-${i}`, `kafka-${i}`);
    await eventually(() => seen.includes(`kafka-${i}`));
  }
  t.same(seen, expected, 'each once, in log order');
  // then mixed without waiting: QoS 0 and 1 publishes, Kafka records in between
  const burst: Array<Promise<unknown>> = [];
  for (let i = 0; i < 50; i++) {
    burst.push(pub.publishAsync('mix/a', `burst-mqtt-${i}`, { qos: (i % 2) as 0 | 1 }));
    if (i % 5 === 0) burst.push(s.broker.produce('mix', [{ key: Buffer.from('mix/a'), value: Buffer.from(`burst-kafka-${i}`) }], { acks: -1 }));
  }
  await Promise.all(burst);
  const kafka = Array.from({ length: 10 }, (_, k) => `burst-kafka-${k * 5}`);
  await eventually(() => kafka.every((v) => seen.includes(v)) && seen.filter((v) => v.startsWith('burst-mqtt-')).length === 50);
  await new Promise((r) => setTimeout(r, 200));
  t.same(seen.filter((v) => v.startsWith('burst-kafka-')), kafka, 'every record of others delivered once, in order');
  t.equal(new Set(seen).size, seen.length, 'no MQTT publish delivered twice');
  t.ok(s.gateway.batcher.own.skippedRecords > 0, `the tail jumped over ${s.gateway.batcher.own.skippedRecords} records of this gateway's own without reading them`);
});

t.test('reverse routes from config: template maps the record key into an MQTT topic', async (t) => {
  const s = await openStack(t, { mqtt: { reverseRoutes: [{ topic: 'cmds', mqttTopic: 'dev/{key}/cmd' }] } });
  const dev = await mqtt.connectAsync(s.url, { clientId: 'd1' });
  t.teardown(() => dev.endAsync(true));
  await dev.subscribeAsync('dev/d1/cmd', { qos: 1 });
  const got = new Promise<string>((resolve) => dev.on('message', (topic, p) => resolve(`${topic}=${p}`)));
  await s.broker.produce('cmds', [{ key: Buffer.from('d1'), value: Buffer.from('blink') }], { acks: -1 });
  t.equal(await got, 'dev/d1/cmd=blink');
});

t.test('MQTT over WebSocket publishes and subscribes', async (t) => {
  const s = await openStack(t);
  const c = await mqtt.connectAsync(s.wsUrl, { clientId: 'ws-1' });
  t.teardown(() => c.endAsync(true));
  await c.subscribeAsync('ws/#', { qos: 1 });
  const got = new Promise<string>((resolve) => c.on('message', (_t, p) => resolve(p.toString())));
  await c.publishAsync('ws/a', 'over-ws', { qos: 1 });
  t.equal(await got, 'over-ws');
  t.equal((await readTopic(s.broker, 'ws'))[0].value, 'over-ws');
});

t.test('MQTT 5 CONNECT gets a v5 CONNACK and its publishes are stored; 3.1 (MQIsdp) is accepted', async (t) => {
  const s = await openStack(t);
  const v5 = await mqtt.connectAsync(s.url, { protocolVersion: 5, clientId: 'five', reconnectPeriod: 0, connectTimeout: 3000 });
  await v5.publishAsync('modern/x', 'ok', { qos: 1 });
  t.equal((await readTopic(s.broker, 'modern')).length, 1, 'stored');
  await v5.endAsync(true);
  const v31 = await mqtt.connectAsync(s.url, { protocolVersion: 3, protocolId: 'MQIsdp', clientId: 'old' });
  await v31.publishAsync('legacy/x', 'ok', { qos: 1 });
  t.equal((await readTopic(s.broker, 'legacy')).length, 1);
  await v31.endAsync(true);
});

t.test('reverse route: a # subscriber gets records of a topic created after it subscribed, from the first one', async (t) => {
  const s = await openStack(t, { mqtt: { tailRescanMs: 200 } });
  const c = await mqtt.connectAsync(s.url, { clientId: 'everything' });
  t.teardown(() => c.endAsync(true));
  await c.subscribeAsync('#', { qos: 1 });
  const got: string[] = [];
  c.on('message', (topic, p) => got.push(`${topic}=${p}`));
  await s.broker.produce('brandnew', [{ key: Buffer.from('brandnew/a'), value: Buffer.from('1') }], { acks: -1 });
  await s.broker.produce('brandnew', [{ key: Buffer.from('brandnew/a'), value: Buffer.from('2') }], { acks: -1 });
  await eventually(() => got.length === 2);
  t.same(got, ['brandnew/a=1', 'brandnew/a=2']);
});

t.test('appendsInFlightMax 2: two appends of one topic in flight keep each device in order', async (t) => {
  const s = await openStack(t, { mqtt: { appendsInFlightMax: 2, lingerMs: 0 } });
  const clients = await Promise.all(Array.from({ length: 10 }, (_, i) => mqtt.connectAsync(s.url, { clientId: `pipe-${i}` })));
  t.teardown(() => Promise.all(clients.map((c) => c.endAsync(true))));
  await Promise.all(clients.flatMap((c, i) => Array.from({ length: 30 }, (_, k) => c.publishAsync(`pipe/d${i}`, String(k), { qos: 1 }))));
  const recs = await readTopic(s.broker, 'pipe');
  t.equal(recs.length, 300);
  for (let i = 0; i < 10; i++) {
    const mine = recs.filter((r) => r.key === `pipe/d${i}`).sort((a, b) => a.offset - b.offset).map((r) => Number(r.value));
    t.same(mine, [...Array(30).keys()], `device ${i} in order`);
  }
});
