// Purpose: topic creation has one set of checks (the broker's, host/broker/topic-admin.ts), so
// the same bad input gets the same error through every door of a real broker process: HTTP
// POST /topics, kafkajs's admin (CreateTopics, with and without validateOnly) and librdkafka's
// AdminClient (confluent_kafka through /usr/bin/python3). Each refusal is compared by its
// Kafka error code (HTTP carries it beside its status) and its message must name the field.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import kafkajs from 'kafkajs';
import { startBroker, tempDir } from '../helpers/index.js';
import { defaultBrokerOptions } from '../../host/broker/limits.js';
import { ERRORS } from '../../host/errors/index.js';

const { Kafka, logLevel } = kafkajs;
const PYTHON = '/usr/bin/python3';

interface BadInput {
  what: string;
  name: string;
  partitions: number;
  replicationFactor: number;
  config?: Record<string, string>;
  code: keyof typeof ERRORS;
  /** The message names the field at fault. */
  names: RegExp;
}

const TOO_MANY = defaultBrokerOptions.maxPartitionsPerTopic + 1;
const BAD: BadInput[] = [
  { what: 'bad name', name: 'bad name!', partitions: 1, replicationFactor: 1, code: 'INVALID_TOPIC_EXCEPTION', names: /bad name!/ },
  { what: 'too many partitions', name: 'wide', partitions: TOO_MANY, replicationFactor: 1, code: 'INVALID_PARTITIONS', names: /maxPartitionsPerTopic/ },
  { what: 'replication factor 3 on one node', name: 'replicated', partitions: 1, replicationFactor: 3, code: 'INVALID_REPLICATION_FACTOR', names: /replicationFactor: replication factor 3/ },
  { what: 'bad config value', name: 'badcfg', partitions: 1, replicationFactor: 1, config: { 'retention.ms': 'soon' }, code: 'INVALID_CONFIG', names: /retention\.ms/ },
];

/** What HTTP POST /topics answers for a spec: status, error name, Kafka code, message. */
async function viaHttp(base: string, b: BadInput) {
  const res = await fetch(`${base}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: b.name, partitions: b.partitions, replicationFactor: b.replicationFactor, config: b.config }) });
  const body = (await res.json()) as { error?: { code: string; kafkaCode: number; message: string } };
  return { status: res.status, code: body.error?.code, kafkaCode: body.error?.kafkaCode, message: body.error?.message ?? '' };
}

/** kafkajs's CreateTopics: the per-topic error code and message of a refusal. */
async function viaKafkajs(admin: kafkajs.Admin, b: BadInput, validateOnly: boolean) {
  try {
    await admin.createTopics({ validateOnly, topics: [{ topic: b.name, numPartitions: b.partitions, replicationFactor: b.replicationFactor, configEntries: Object.entries(b.config ?? {}).map(([name, value]) => ({ name, value })) }] });
  } catch (err) {
    const first = (err as { errors?: Array<{ code?: number; message?: string }> }).errors?.[0];
    return { kafkaCode: first?.code, message: first?.message ?? '' };
  }
  return { kafkaCode: ERRORS.NONE.kafka, message: '' };
}

/** librdkafka's AdminClient.create_topics for every bad input; one Python run, JSON out. */
function viaLibrdkafka(bootstrap: string, inputs: BadInput[], validateOnly: boolean): Array<{ code: number; message: string }> {
  const script = `
import json, sys
from confluent_kafka.admin import AdminClient, NewTopic
specs = json.loads(sys.argv[2])
admin = AdminClient({'bootstrap.servers': sys.argv[1]})
out = []
for s in specs:
    topic = NewTopic(s['name'], num_partitions=s['partitions'], replication_factor=s['replicationFactor'], config=s.get('config') or {})
    fut = admin.create_topics([topic], operation_timeout=10, request_timeout=15, validate_only=${validateOnly ? 'True' : 'False'})[s['name']]
    try:
        fut.result()
        out.append({'code': 0, 'message': ''})
    except Exception as e:
        err = e.args[0]
        out.append({'code': err.code(), 'message': err.str()})
print(json.dumps(out))
`;
  const r = spawnSync(PYTHON, ['-c', script, bootstrap, JSON.stringify(inputs)], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function haveConfluentKafka(): boolean {
  return existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import confluent_kafka.admin'], { stdio: 'ignore' }).status === 0;
}

t.test('topic admin: HTTP POST /topics, kafkajs and librdkafka CreateTopics give the same errors for the same bad inputs', async (t) => {
  const dataDir = await tempDir(t, 'tributary-admin-doors-');
  const b = await startBroker(t, { dataDir });
  const http = `http://${b.listeners.http}`;
  const kafka = new Kafka({ brokers: [b.listeners.kafka!], clientId: 'doors-test', logLevel: logLevel.NOTHING, retry: { retries: 0 } });
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());

  for (const bad of BAD) {
    const expected = ERRORS[bad.code];
    const h = await viaHttp(http, bad);
    t.same([h.status, h.code, h.kafkaCode], [expected.http, bad.code, expected.kafka], `HTTP, ${bad.what}: ${expected.http} ${bad.code}`);
    t.match(h.message, bad.names, `HTTP, ${bad.what}: the message names the field`);
    for (const validateOnly of [false, true]) {
      const k = await viaKafkajs(admin, bad, validateOnly);
      // kafkajs shows its own text for a code, not the broker's message: the code is compared.
      t.equal(k.kafkaCode, expected.kafka, `kafkajs${validateOnly ? ' validateOnly' : ''}, ${bad.what}: ${bad.code}`);
    }
  }

  const python = haveConfluentKafka();
  if (!python && process.env.CI) t.fail(`${PYTHON} with confluent_kafka is needed (Debian package python3-confluent-kafka)`);
  await t.test('librdkafka AdminClient (confluent_kafka)', { skip: python ? false : `${PYTHON} with confluent_kafka not installed` }, async (t) => {
    for (const validateOnly of [false, true]) {
      const got = viaLibrdkafka(b.listeners.kafka!, BAD, validateOnly);
      BAD.forEach((bad, i) => {
        t.equal(got[i].code, ERRORS[bad.code].kafka, `librdkafka${validateOnly ? ' validate_only' : ''}, ${bad.what}: ${bad.code}`);
        t.match(got[i].message, bad.names, `librdkafka, ${bad.what}: the message names the field`);
      });
    }
  });

  // Nothing was half-created by any refusal, and a good create through each door still works.
  t.same((await admin.listTopics()).filter((n) => BAD.some((bad) => bad.name === n)), [], 'no refused topic exists');
  const ok = await fetch(`${http}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'via-http', partitions: 2, replicationFactor: 1 }) });
  t.equal(ok.status, 200);
  t.equal(await admin.createTopics({ topics: [{ topic: 'via-kafka', numPartitions: 2, replicationFactor: -1 }] }), true);
  const meta = await admin.fetchTopicMetadata({ topics: ['via-http', 'via-kafka'] });
  t.same(meta.topics.map((m) => m.partitions.map((p) => p.replicas)), [[[0], [0]], [[0], [0]]], 'both on this node, replication factor 1');
  await b.stop();
});
