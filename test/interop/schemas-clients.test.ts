// Purpose: clients nobody here wrote, unchanged, against Tributary's registry (issue 15):
// @kafkajs/confluent-schema-registry registers, encodes and decodes (Avro and JSON Schema); a
// kafkajs producer sends its Avro-encoded records to a topic with `schema.validation=reject`
// and a WebSocket dashboard reads them as JSON (`decode: confluent`), as does the HTTP read; a
// record whose schema id is not the subject's is refused with INVALID_RECORD and lands in the
// dead-letter topic with its reasons. Then Python's confluent_kafka SchemaRegistryClient when
// it imports (it needs python3-requests).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import kafkajs from 'kafkajs';
import confluent from '@kafkajs/confluent-schema-registry';
import { eventually, startBroker, tempDir } from '../helpers/index.js';
import { Client } from '../unit/ws/harness.js';

const { Kafka, logLevel } = kafkajs;
const { SchemaRegistry, SchemaType } = confluent;
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const READING = {
  type: 'record',
  name: 'Reading',
  namespace: 'io.tributary.test',
  fields: [
    { name: 'sensor', type: 'string' },
    { name: 'temperature', type: 'double' },
    { name: 'ok', type: 'boolean' },
    { name: 'count', type: 'long' },
  ],
};

t.test('@kafkajs/confluent-schema-registry and kafkajs through the registry, read back as JSON by a WebSocket dashboard', async (t) => {
  const dataDir = await tempDir(t, 'tributary-schemas-clients-');
  const proc = await startBroker(t, { dataDir, args: ['--set', 'schemas.port=0'] });
  const host = `http://${(proc.listeners as Record<string, string>).schemas}`;
  const registry = new SchemaRegistry({ host });

  const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(READING) }, { subject: 'readings-value' });
  t.equal(id, 1, 'registered: id 1');
  t.same(await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(READING) }, { subject: 'readings-value' }), { id: 1 }, 'registering again: the same id');
  t.equal(await registry.getLatestSchemaId('readings-value'), 1, 'latest id by subject');
  t.equal(await registry.getRegistryIdBySchema('readings-value', { type: SchemaType.AVRO, schema: JSON.stringify(READING) }), 1, 'id by schema (lookup)');
  const reading = { sensor: 'boiler-1', temperature: 71.5, ok: true, count: 42 };
  const encoded = await registry.encode(id, reading);
  t.equal(encoded[0], 0, 'wire format: magic 0');
  t.equal(encoded.readUInt32BE(1), 1, 'wire format: schema id 1');
  t.same(await registry.decode(encoded), reading, 'decoded by the client through GET /schemas/ids/1');

  const jsonSchema = { type: 'object', properties: { level: { type: 'number' } }, required: ['level'] };
  const j = await registry.register({ type: SchemaType.JSON, schema: JSON.stringify(jsonSchema) }, { subject: 'levels-value' });
  t.equal(j.id, 2, 'JSON Schema registered: id 2');
  const jEncoded = await registry.encode(j.id, { level: 3 });
  t.same(await registry.decode(jEncoded), { level: 3 }, 'JSON Schema round trip');
  await t.rejects(registry.encode(j.id, { level: 'high' }), 'the client itself refuses a value its JSON Schema forbids');

  // kafkajs producer → topic with reject validation → WebSocket dashboard decodes to JSON
  const kafka = new Kafka({ clientId: 'schemas', brokers: [`127.0.0.1:${proc.port('kafka')}`], logLevel: logLevel.NOTHING, retry: { retries: 2 } });
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  await admin.createTopics({ topics: [{ topic: 'readings', numPartitions: 1, configEntries: [{ name: 'schema.validation', value: 'reject' }] }] });
  const dash = await Client.open(t, `ws://127.0.0.1:${proc.port('http')}/ws`);
  const sub = await dash.request({ type: 'subscribe', topic: 'readings', start: 'earliest', decode: 'confluent' });
  t.equal(sub.type, 'subscribed');
  const producer = kafka.producer();
  await producer.connect();
  t.teardown(() => producer.disconnect());
  const sent = [reading, { sensor: 'boiler-2', temperature: -3.25, ok: false, count: 7 }];
  await producer.send({ topic: 'readings', acks: -1, messages: await Promise.all(sent.map(async (r) => ({ key: r.sensor, value: await registry.encode(id, r) }))) });
  const got = await dash.waitForRecords(2, 'readings');
  t.same(got.map((r) => r.value), sent, 'the dashboard received the Avro records as JSON objects');
  t.same(got.map((r) => r.schemaId), [1, 1], 'with their schema id');
  const http = await (await fetch(`http://127.0.0.1:${proc.port('http')}/topics/readings/records?decode=confluent`)).json();
  t.same(http.records.map((r: { value: unknown }) => r.value), sent, 'the HTTP read decodes too');
  const badDecode = await fetch(`http://127.0.0.1:${proc.port('http')}/topics/readings/records?decode=avro`);
  t.equal(badDecode.status, 400, 'HTTP decode=avro: 400');
  t.match((await badDecode.json()).error.message, /decode: must be "confluent" or "none"/);
  const badSub = await dash.request({ type: 'subscribe', topic: 'levels', decode: 'avro' });
  t.equal(badSub.type, 'error', 'WebSocket decode: "avro" refused');
  t.match(badSub.message, /decode: must be "confluent"/);
  const raw = await (await fetch(`http://127.0.0.1:${proc.port('http')}/topics/readings/records`)).json();
  t.equal(Buffer.from(raw.records[0].value, 'utf8')[0], 0, 'without decode the stored bytes come as they are');

  // a record carrying an id that is not the subject's: INVALID_RECORD, dead-lettered
  const wrongId = await registry.encode(j.id, { level: 1 });
  const refused = await producer.send({ topic: 'readings', acks: -1, messages: [{ key: 'x', value: wrongId }] }).then(
    () => undefined,
    (err: { type?: string; message: string }) => err,
  );
  t.equal(refused?.type, 'INVALID_RECORD', `kafkajs hears INVALID_RECORD (${refused?.message})`);
  const truncated = (await registry.encode(id, reading)).subarray(0, 8);
  const refused2 = await producer.send({ topic: 'readings', acks: -1, messages: [{ key: 'y', value: truncated }] }).then(
    () => undefined,
    (err: { type?: string }) => err,
  );
  t.equal(refused2?.type, 'INVALID_RECORD', 'an Avro payload that does not decode: INVALID_RECORD');
  const dlq = await eventually(async () => {
    const r = await (await fetch(`http://127.0.0.1:${proc.port('http')}/topics/readings.dlq/records`)).json();
    return r.records?.length >= 2 ? r : undefined;
  });
  const headers = Object.fromEntries(dlq.records[0].headers);
  t.equal(headers['schema.topic'], 'readings', 'dead letter: topic header');
  t.equal(headers['schema.rule'], 'schema-id-unknown', 'dead letter: rule header');
  t.equal(headers['schema.path'], '/', 'dead letter: path header');
  t.equal(Object.fromEntries(dlq.records[1].headers)['schema.rule'], 'avro-decode', 'second dead letter: avro-decode');
  t.equal(dash.records('readings').length, 2, 'nothing refused reached the topic');
  await proc.stop();
});

const pyProbe = spawnSync('/usr/bin/python3', ['-c', 'from confluent_kafka.schema_registry import SchemaRegistryClient'], { encoding: 'utf8' });
if (pyProbe.status !== 0) {
  const why = (pyProbe.stderr || pyProbe.error?.message || '').trim().split('\n').pop();
  if (process.env.CI) t.fail(`python confluent_kafka.schema_registry does not import (${why}): .ci/run installs python3-confluent-kafka and python3-requests`);
  else t.test(`python confluent_kafka.schema_registry does not import (${why}): skipped`, { skip: true }, () => undefined);
} else {
  t.test('python confluent_kafka SchemaRegistryClient registers and reads back', async (t) => {
    const dataDir = await tempDir(t, 'tributary-schemas-py-');
    const proc = await startBroker(t, { dataDir, args: ['--set', 'schemas.port=0'] });
    const url = `http://${(proc.listeners as Record<string, string>).schemas}`;
    const script = `
import json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient, Schema
c = SchemaRegistryClient({'url': sys.argv[1]})
s = Schema(json.dumps(${JSON.stringify(READING)}), 'AVRO')
i = c.register_schema('py-value', s)
again = c.register_schema('py-value', s)
latest = c.get_latest_version('py-value')
got = c.get_schema(i)
print(json.dumps({'id': i, 'again': again, 'version': latest.version, 'latestId': latest.schema_id, 'subjects': c.get_subjects(), 'same': json.loads(got.schema_str) == ${JSON.stringify(READING)}}))
`;
    const r = spawnSync('/usr/bin/python3', ['-c', script, url], { encoding: 'utf8', timeout: 30_000 });
    t.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    t.same(out, { id: 1, again: 1, version: 1, latestId: 1, subjects: ['py-value'], same: true });
    await proc.stop();
  });
}
