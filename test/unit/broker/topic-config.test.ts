// Purpose: topic configs accept Kafka's keys as numbers or strings, refuse bad ones naming key,
// value and what is allowed, and map onto the log's options.
import t, { type Test } from 'tap';
import {
  defaultTopicConfig,
  validateTopicConfig,
  parseTopicConfigValue,
  logOptionsFor,
  topicConfigSpecs,
  topicConfigKeys,
  brokerBatchCompression,
} from '../../../host/broker/topic-config.js';
import { BrokerError } from '../../../host/errors/index.js';

function refused(t: Test, fn: () => unknown, ...parts: RegExp[]) {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof BrokerError, 'a BrokerError');
  t.equal((caught as BrokerError).code, 'INVALID_CONFIG');
  for (const p of parts) t.match((caught as BrokerError).message, p);
}

t.test('topic config: every default passes its own validation', async (t) => {
  t.same(validateTopicConfig(defaultTopicConfig as unknown as Record<string, unknown>), defaultTopicConfig);
  t.same(Object.keys(defaultTopicConfig).sort(), [...topicConfigKeys].sort(), 'a spec for every key and a default for every spec');
});

t.test('topic config: numbers and numeric strings are both accepted (Kafka sends strings)', async (t) => {
  t.same(validateTopicConfig({ 'retention.ms': '3600000', 'segment.bytes': 1048576, 'retention.bytes': ' -1 ' }), {
    'retention.ms': 3600000,
    'segment.bytes': 1048576,
    'retention.bytes': -1,
  });
  t.same(validateTopicConfig({ 'cleanup.policy': 'delete, compact' }), { 'cleanup.policy': 'compact,delete' });
  t.same(validateTopicConfig({ 'cleanup.policy': 'compact' }), { 'cleanup.policy': 'compact' });
  t.same(validateTopicConfig(undefined), {});
});

t.test('topic config: wrong types and values are refused naming key, value and what is allowed', async (t) => {
  refused(t, () => validateTopicConfig({ 'retention.ms': 'a week' }), /"retention\.ms"/, /"a week"/, /integer from -1/);
  refused(t, () => validateTopicConfig({ 'retention.ms': 1.5 }), /"retention\.ms"/, /1\.5/);
  refused(t, () => validateTopicConfig({ 'retention.ms': -2 }), /-2/, /from -1/);
  refused(t, () => validateTopicConfig({ 'segment.bytes': 1023 }), /"segment\.bytes"/, /from 1024/);
  refused(t, () => validateTopicConfig({ 'cleanup.policy': 'forever' }), /"cleanup\.policy"/, /"forever"/, /"delete", "compact", "compact,delete"/);
  refused(t, () => validateTopicConfig({ flush: 'sometimes' }), /"flush"/, /"always", "interval", "never"/);
  refused(t, () => validateTopicConfig({ flush: 1 }), /"flush"/);
  refused(t, () => validateTopicConfig({ 'compression.type': 'brotli' }), /compression\.type/, /"lz4"/);
  refused(t, () => validateTopicConfig({ 'message.timestamp.type': 'createtime' }), /CreateTime/);
  refused(t, () => validateTopicConfig({ 'flush.interval.ms': 0 }), /flush\.interval\.ms/);
  refused(t, () => validateTopicConfig({ 'retention.ms': true }), /true/);
  // min.insync.replicas (issue 11): 1..1000, boundaries included.
  refused(t, () => validateTopicConfig({ 'min.insync.replicas': 0 }), /"min\.insync\.replicas"/, /from 1 to 1000/);
  refused(t, () => validateTopicConfig({ 'min.insync.replicas': 1001 }), /"min\.insync\.replicas"/);
  t.same(validateTopicConfig({ 'min.insync.replicas': '1' }), { 'min.insync.replicas': 1 }, 'min.insync.replicas 1 (lower bound) accepted');
  t.same(validateTopicConfig({ 'min.insync.replicas': 1000 }), { 'min.insync.replicas': 1000 }, 'min.insync.replicas 1000 (upper bound) accepted');
  refused(t, () => validateTopicConfig([] as unknown as Record<string, unknown>), /object/);
});

t.test('topic config: max.message.bytes is capped by the broker ceiling, boundary included', async (t) => {
  t.equal(parseTopicConfigValue('max.message.bytes', 4096, 4096), 4096, 'exactly at the ceiling is fine');
  refused(t, () => parseTopicConfigValue('max.message.bytes', 4097, 4096), /max\.message\.bytes/, /to 4096/);
  t.equal(parseTopicConfigValue('max.message.bytes', String(topicConfigSpecs['max.message.bytes'].kind === 'int' ? 61 : 0)), 61);
  refused(t, () => parseTopicConfigValue('max.message.bytes', 60), /from 61/);
});

t.test('topic config: maps onto the log options', async (t) => {
  const config = { ...defaultTopicConfig, 'message.timestamp.type': 'LogAppendTime' as const, flush: 'interval' as const, 'flush.interval.ms': 250 };
  const log = logOptionsFor(config);
  t.equal(log.segmentBytes, config['segment.bytes']);
  t.equal(log.segmentMs, config['segment.ms']);
  t.equal(log.indexIntervalBytes, config['index.interval.bytes']);
  t.equal(log.segmentIndexBytes, config['segment.index.bytes']);
  t.equal(log.flush, 'interval');
  t.equal(log.flushIntervalMs, 250);
  t.equal(log.retentionMs, config['retention.ms']);
  t.equal(log.retentionBytes, config['retention.bytes']);
  t.equal(log.cleanupPolicy, 'delete');
  t.equal(log.deleteRetentionMs, config['delete.retention.ms']);
  t.equal(log.minCompactionLagMs, config['min.compaction.lag.ms']);
  t.equal(log.maxMessageBytes, config['max.message.bytes']);
  t.equal(log.logAppendTime, true);
  t.equal(logOptionsFor(defaultTopicConfig).logAppendTime, false);
});

t.test('topic config: broker-built batches use no codec for producer/uncompressed', async (t) => {
  t.equal(brokerBatchCompression('producer'), 'none');
  t.equal(brokerBatchCompression('uncompressed'), 'none');
  t.equal(brokerBatchCompression('lz4'), 'lz4');
  t.equal(brokerBatchCompression('gzip'), 'gzip');
});
