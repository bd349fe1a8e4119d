// Purpose: ingest validation at the broker's one write path, through every door (issue 15), on
// a real broker process: a topic with `schema.validation=reject` and a JSON Schema refuses a
// bad payload with each protocol's own answer — MQTT 5 PUBACK 0x99; MQTT 3.1.1 an ordinary
// PUBACK once the record is dead-lettered (3.1.1 has no negative ack), counted; WebSocket and
// HTTP an error naming the failing path — while the valid records of the same burst are stored;
// every refused record is in `<topic>.dlq` with its reasons; `warn` stores and counts.
import t from 'tap';
import mqtt from 'mqtt';
import kafkajs from 'kafkajs';
import { eventually, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { Client } from '../unit/ws/harness.js';

const { Kafka, logLevel } = kafkajs;
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const SENSOR = {
  type: 'object',
  properties: { t: { type: 'number', minimum: -50, maximum: 150 }, id: { type: 'string' } },
  required: ['t', 'id'],
};

interface Tap {
  teardown(fn: () => unknown): void;
}

async function setup(t: Tap): Promise<{ p: BrokerProcess; http: string; read: (topic: string) => Promise<Array<{ value: string; headers: Array<[string, string]> }>>; metric: (line: RegExp) => Promise<number> }> {
  const dataDir = await tempDir(t, 'tributary-schemas-validation-');
  const p = await startBroker(t, { dataDir, args: ['--set', 'schemas.port=0'] });
  const sr = `http://${(p.listeners as Record<string, string>).schemas}`;
  const reg = await fetch(`${sr}/subjects/sensors-value/versions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ schemaType: 'JSON', schema: JSON.stringify(SENSOR) }) });
  if (reg.status !== 200) throw new Error(`schema not registered: ${await reg.text()}`);
  const kafka = new Kafka({ clientId: 'v', brokers: [`127.0.0.1:${p.port('kafka')}`], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic: 'sensors', numPartitions: 2, configEntries: [{ name: 'schema.validation', value: 'reject' }] },
      { topic: 'loose', numPartitions: 1, configEntries: [{ name: 'schema.validation', value: 'warn' }, { name: 'schema.subject', value: 'sensors-value' }] },
    ],
  });
  await admin.disconnect();
  const http = `http://127.0.0.1:${p.port('http')}`;
  const read = async (topic: string) => {
    const out = [];
    for (const partition of [0, 1]) {
      const r = await fetch(`${http}/topics/${topic}/records?partition=${partition}&limit=1000`);
      if (r.status !== 200) continue;
      out.push(...(await r.json()).records);
    }
    return out;
  };
  const metric = async (line: RegExp) => {
    const text = await (await fetch(`${http}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => line.test(l))
      .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
  };
  return { p, http, read, metric };
}

t.test('MQTT 5 hears 0x99, MQTT 3.1.1 is acknowledged and dead-lettered; valid records of the same burst are stored', async (t) => {
  const { p, read, metric } = await setup(t);
  const url = `mqtt://127.0.0.1:${p.port('mqtt')}`;
  const c5 = await mqtt.connectAsync(url, { clientId: 'v5', protocolVersion: 5, reconnectPeriod: 0 });
  t.teardown(() => c5.endAsync(true));
  const reasons = new Map<number, number>();
  c5.on('packetreceive', (pk) => {
    if (pk.cmd === 'puback') reasons.set(pk.messageId!, pk.reasonCode ?? 0);
  });
  const pub5 = (payload: unknown) =>
    c5.publishAsync('sensors/a', JSON.stringify(payload), { qos: 1 }).then(
      () => 0,
      (e: { code?: number }) => e.code ?? -1,
    );
  t.equal(await pub5({ t: 21.5, id: 'a' }), 0, 'MQTT 5 valid: PUBACK success');
  t.equal(await pub5({ t: 'warm', id: 'a' }), 0x99, 'MQTT 5 wrong type: PUBACK 0x99 payload format invalid');
  t.equal(await pub5({ t: 500, id: 'a' }), 0x99, 'MQTT 5 above maximum: 0x99');
  t.ok(c5.connected, 'MQTT 5 client still connected');

  // 3.1.1: a burst mixing valid and invalid publishes from one client; the gateway batches them
  // into shared produce calls, so a refusal must not take the valid ones down with it
  const c3 = await mqtt.connectAsync(url, { clientId: 'v3', protocolVersion: 4, reconnectPeriod: 0 });
  t.teardown(() => c3.endAsync(true));
  const burst = Array.from({ length: 40 }, (_, i) => (i % 4 === 3 ? { t: 'bad', id: `b${i}` } : { t: i, id: `g${i}` }));
  await Promise.all(burst.map((b, i) => c3.publishAsync(`sensors/dev${i % 3}`, JSON.stringify(b), { qos: 1 })));
  t.ok(c3.connected, 'MQTT 3.1.1 client acknowledged every publish and stays connected');

  const stored = (await read('sensors')).map((r) => JSON.parse(r.value));
  const good = burst.filter((b) => typeof b.t === 'number').map((b) => b.id);
  t.same(stored.map((s) => s.id).filter((id) => id !== 'a').sort(), good.sort(), 'every valid 3.1.1 record of the burst stored, no invalid one');
  t.equal(stored.filter((s) => s.id === 'a').length, 1, 'one MQTT 5 record stored (the valid one)');
  const dlq = (await eventually(async () => {
    const d = await read('sensors.dlq');
    return d.length >= 12 ? d : undefined;
  }))!;
  t.equal(dlq.length, 12, '10 refused 3.1.1 records + 2 refused MQTT 5 records dead-lettered');
  const h = Object.fromEntries(dlq.find((d) => JSON.parse(d.value).t === 500)!.headers);
  t.equal(h['schema.topic'], 'sensors');
  t.equal(h['schema.rule'], 'json-schema');
  t.equal(h['schema.path'], '/t', 'the path of the failing field');
  t.match(h['schema.error'], /must be <= 150/);
  t.equal(h['mqtt.topic'], 'sensors/a', 'the original headers travel along');
  t.equal(await metric(/^tributary_schema_refused_total\{.*topic="sensors"/), 12, 'refusals counted');
  t.equal(await metric(/^tributary_mqtt_refused_total\{.*rule="schema-invalid"/), 12, 'and counted by the MQTT gateway under rule schema-invalid');
  t.equal(await metric(/^tributary_schema_dead_lettered_total\{.*topic="sensors"/), 12, 'dead letters counted');
  await p.stop();
});

t.test('WebSocket and HTTP produce: an error naming the failing path; warn stores and counts', async (t) => {
  const { p, http, read, metric } = await setup(t);
  const ws = await Client.open(t, `ws://127.0.0.1:${p.port('http')}/ws`);
  const ok = await ws.request({ type: 'produce', topic: 'sensors', records: [{ key: 'k', value: { t: 1, id: 'ws' } }] });
  t.equal(ok.type, 'ack', 'WebSocket valid: ack');
  const bad = await ws.request({ type: 'produce', topic: 'sensors', records: [{ key: 'k', value: { t: 2, id: 'ws' } }, { key: 'k', value: { t: 3 } }] });
  t.equal(bad.type, 'error', 'WebSocket invalid: error');
  t.equal(bad.code, 'INVALID_RECORD');
  t.match(bad.message, /record 1 .*required property 'id'/, `the message names the record and the failing rule: ${bad.message}`);

  const res = await fetch(`${http}/topics/sensors/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ value: { t: 9, id: 'h', extra: { deep: 1 } } }, { value: { t: -80, id: 'h' } }]) });
  t.equal(res.status, 400, 'HTTP invalid: 400');
  const body = await res.json();
  t.match(JSON.stringify(body), /\/t must be >= -50/, `the answer names the failing path: ${JSON.stringify(body)}`);
  const notJson = await fetch(`${http}/topics/sensors/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ value: 'plain text' }]) });
  t.equal(notJson.status, 400, 'HTTP: a value that is not JSON is refused');
  t.match(JSON.stringify(await notJson.json()), /json-parse|not JSON/);
  const stored = (await read('sensors')).map((r) => JSON.parse(r.value));
  t.same(stored, [{ t: 1, id: 'ws' }], 'only the valid WebSocket record was stored (a refused batch is atomic)');
  t.equal((await read('sensors.dlq')).length, 3, 'the three invalid records dead-lettered');

  const warned = await ws.request({ type: 'produce', topic: 'loose', records: [{ value: { t: 'x', id: 'w' } }] });
  t.equal(warned.type, 'ack', 'warn: stored anyway');
  t.same((await read('loose')).map((r) => JSON.parse(r.value)), [{ t: 'x', id: 'w' }]);
  t.equal(await metric(/^tributary_schema_warned_total\{.*topic="loose"/), 1, 'warn: counted');
  t.equal((await read('loose.dlq')).length, 0, 'warn: no dead letter');
  await p.stop();
});
