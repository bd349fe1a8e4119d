// Purpose: transactions mode's checkpoint topic is compacted on the target (host/sync/txn-link.ts):
// a missing one is created with cleanup.policy=compact, a pre-existing one with cleanup.policy=delete
// is altered to compact (logged), a compacted one is left alone — against a real Tributary target
// process, each checked with kafkajs's DescribeConfigs (a client nobody here wrote); and against
// librdkafka's mock (no CreateTopics, no DescribeConfigs) the check says so in a warning and does
// not stop the link.
import t from 'tap';
import kafkajs from 'kafkajs';
import { pino } from 'pino';
import { startBroker, tempDir } from '../helpers/index.js';
import { startMockCluster, uplinkToolsPresent } from '../helpers/uplink.js';
import { KafkaClient } from '../../host/kafka/client/client.js';
import { checkCheckpointTopic } from '../../host/sync/txn-link.js';

const { Kafka, logLevel } = kafkajs;
const clientOptions = (bootstrap: string) => ({ bootstrap: bootstrap.split(','), clientId: 'ckpt-test', connectTimeoutMs: 5000, requestTimeoutMs: 10_000, inFlightMax: 5, queuedMax: 100, responseBytesMax: 16 << 20, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 500 });

function capturingLogger() {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { logger, lines };
}

t.test('checkpoint topic on a Tributary target: created compacted; a delete-policy one altered to compact; a compacted one left alone', async (t) => {
  const target = await startBroker(t, { dataDir: await tempDir(t) });
  const bootstrap = target.listeners.kafka!;
  const client = new KafkaClient(clientOptions(bootstrap));
  t.teardown(() => client.close());
  const admin = new Kafka({ clientId: 'ckpt-admin', brokers: [bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const policyOf = async (topic: string) => (await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: topic, configNames: ['cleanup.policy'] }] })).resources[0].configEntries[0].configValue;
  const { logger, lines } = capturingLogger();

  t.equal(await checkCheckpointTopic(client, 'ckpt-new', logger), 'created compacted', 'missing: created');
  t.equal(await policyOf('ckpt-new'), 'compact', 'kafkajs DescribeConfigs: cleanup.policy=compact');
  const md = await admin.fetchTopicMetadata({ topics: ['ckpt-new'] });
  t.equal(md.topics[0].partitions.length, 1, 'one partition');
  t.equal(await checkCheckpointTopic(client, 'ckpt-new', logger), 'compacted', 'checked again: already compacted, nothing done');

  await admin.createTopics({ topics: [{ topic: 'ckpt-old', numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'delete' }] }] });
  t.equal(await policyOf('ckpt-old'), 'delete', 'a pre-existing checkpoint topic with cleanup.policy=delete (made by kafkajs)');
  t.equal(await checkCheckpointTopic(client, 'ckpt-old', logger), 'altered to compacted', 'altered');
  t.equal(await policyOf('ckpt-old'), 'compact', 'kafkajs DescribeConfigs: now cleanup.policy=compact');
  t.ok(lines.some((l) => /ckpt-old existed with cleanup.policy=delete: altered to compact/.test(l.msg)), 'the alteration is logged, naming the old policy');
});

if (uplinkToolsPresent(t, ['mock'])) {
  t.test('checkpoint topic on the mock (no DescribeConfigs): a warning saying the policy cannot be read, not a stop', async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    const client = new KafkaClient(clientOptions(mock.bootstrap));
    t.teardown(() => client.close());
    const { logger, lines } = capturingLogger();
    t.equal(await checkCheckpointTopic(client, 'ckpt-mock', logger), 'unknown', 'the mock cannot say');
    t.ok(lines.some((l) => l.level === 40 && /ckpt-mock: cannot read its cleanup.policy/.test(l.msg)), `warned: ${lines.map((l) => l.msg).join(' | ')}`);
  });
}
