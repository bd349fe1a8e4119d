// Purpose: topics are created, described, altered (live), grown and deleted with Kafka's error
// codes, auto-created only when allowed, and survive close/reopen with their configs and data.
import t from 'tap';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BrokerError } from '../../../host/errors/index.js';
import { defaultTopicConfig } from '../../../host/broker/topic-config.js';
import { Broker } from '../../../host/broker/broker.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { silentLogger } from '../../../host/logging.js';
import { openBroker, bytes, readAll, batchOfSize } from './broker-fixture.js';

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err instanceof BrokerError ? err.code : `not a BrokerError: ${(err as Error).message}`;
  }
  return undefined;
}

t.test('topics: create, describe, list; partition directories are made Kafka style', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  const info = await broker.createTopic('sensors', 3, { 'retention.ms': 3_600_000 });
  t.equal(info.name, 'sensors');
  t.equal(info.partitions, 3);
  t.equal(info.internal, false);
  t.equal(info.config['retention.ms'], 3_600_000);
  t.equal(info.config['segment.bytes'], defaultTopicConfig['segment.bytes'], 'unset keys take the defaults');
  t.same(info.overrides, { 'retention.ms': 3_600_000 });
  t.match(info.topicId, /^[0-9a-f-]{36}$/);
  t.same(broker.describeTopic('sensors'), info);
  t.equal(broker.describeTopic('nope'), undefined);
  t.same(broker.listTopics().map((x) => x.name), ['sensors']);
  const dirs = (await readdir(dataDir)).sort();
  t.ok(dirs.includes('sensors-0') && dirs.includes('sensors-1') && dirs.includes('sensors-2'), dirs.join(','));
  t.ok(dirs.includes('topics.json'));
  const internal = await broker.createTopic('__consumer_offsets', 2, { 'cleanup.policy': 'compact' });
  t.equal(internal.internal, true);
});

t.test('topics: bad creates get TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_CONFIG', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('a.b', 1);
  t.equal(await codeOf(broker.createTopic('a.b', 1)), 'TOPIC_ALREADY_EXISTS');
  t.equal(await codeOf(broker.createTopic('a_b', 1)), 'INVALID_TOPIC_EXCEPTION', "collides with a.b ('.' vs '_')");
  t.equal(await codeOf(broker.createTopic('bad/name', 1)), 'INVALID_TOPIC_EXCEPTION');
  t.equal(await codeOf(broker.createTopic('..', 1)), 'INVALID_TOPIC_EXCEPTION');
  t.equal(await codeOf(broker.createTopic('x', 0)), 'INVALID_PARTITIONS');
  t.equal(await codeOf(broker.createTopic('x', 1.5)), 'INVALID_PARTITIONS');
  const err = await broker.createTopic('x', 1, { 'retention.ms': 'soon' as unknown as number }).catch((e) => e);
  t.equal(err.code, 'INVALID_CONFIG');
  t.match(err.message, /"soon".*"retention\.ms".*integer/);
  const unknownKey = await broker.createTopic('x', 1, { 'no.such.key': 1 } as never).catch((e) => e);
  t.equal(unknownKey.code, 'INVALID_CONFIG');
  t.match(unknownKey.message, /no\.such\.key/);
  t.equal(broker.describeTopic('x'), undefined, 'nothing half-created');
});

t.test('topics: ensureTopic auto-creates with defaults when allowed', async (t) => {
  const { broker } = await openBroker(t, { defaultPartitions: 2 });
  const info = await broker.ensureTopic('auto');
  t.equal(info.partitions, 2);
  t.same(info.config, defaultTopicConfig);
  t.same(await broker.ensureTopic('auto'), info, 'second call returns the same topic');
  // Many concurrent ensures of one new topic: one creation, no errors.
  const all = await Promise.all(Array.from({ length: 10 }, () => broker.ensureTopic('raced')));
  t.equal(new Set(all.map((i) => i.topicId)).size, 1);
  t.equal(await codeOf(broker.ensureTopic('bad name')), 'INVALID_TOPIC_EXCEPTION');
  const produced = await broker.produce('via-produce', [{ key: null, value: bytes('x') }], { acks: 1 });
  t.equal(produced[0].offset, 0, 'produce auto-creates too');
});

t.test('topics: with autoCreateTopics off, unknown topics are UNKNOWN_TOPIC_OR_PARTITION', async (t) => {
  const { broker } = await openBroker(t, { autoCreateTopics: false });
  t.equal(await codeOf(broker.ensureTopic('auto')), 'UNKNOWN_TOPIC_OR_PARTITION');
  t.equal(await codeOf(broker.produce('auto', [{ key: null, value: bytes('x') }], { acks: 1 })), 'UNKNOWN_TOPIC_OR_PARTITION');
  t.equal(broker.describeTopic('auto'), undefined);
  await broker.createTopic('explicit', 1);
  t.equal((await broker.ensureTopic('explicit')).name, 'explicit', 'existing topics still resolve');
});

t.test('topics: createPartitions only grows; keyed records follow the new count', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  await broker.createTopic('grow', 2);
  t.equal(await codeOf(broker.createPartitions('grow', 2)), 'INVALID_PARTITIONS');
  t.equal(await codeOf(broker.createPartitions('grow', 1)), 'INVALID_PARTITIONS');
  t.equal(await codeOf(broker.createPartitions('missing', 3)), 'UNKNOWN_TOPIC_OR_PARTITION');
  await broker.createPartitions('grow', 5);
  t.equal(broker.describeTopic('grow')!.partitions, 5);
  t.ok((await stat(join(dataDir, 'grow-4'))).isDirectory());
  const r = await broker.produce('grow', [{ key: null, value: bytes('v') }], { acks: 1, partition: 4 });
  t.same(r, [{ topic: 'grow', partition: 4, offset: 0 }]);
});

t.test('topics: alterTopicConfig validates, applies live, resets with null, and persists', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  await broker.createTopic('alt', 1);
  const big = batchOfSize(2000);
  await broker.append({ topic: 'alt', partition: 0 }, big, { acks: 1 });
  const altered = await broker.alterTopicConfig('alt', { 'max.message.bytes': '1999', 'retention.ms': 60_000 });
  t.equal(altered.config['max.message.bytes'], 1999);
  t.same(altered.overrides, { 'max.message.bytes': 1999, 'retention.ms': 60_000 });
  t.equal(await codeOf(broker.append({ topic: 'alt', partition: 0 }, batchOfSize(2000), { acks: 1 })), 'MESSAGE_TOO_LARGE', 'the new limit applies to the open log');
  const bad = await broker.alterTopicConfig('alt', { flush: 'sometimes' }).catch((e) => e);
  t.equal(bad.code, 'INVALID_CONFIG');
  t.match(bad.message, /"sometimes".*"flush"/);
  t.equal(broker.describeTopic('alt')!.config.flush, 'always', 'a refused change changes nothing');
  t.equal(await codeOf(broker.alterTopicConfig('alt', { 'nope.key': 1 } as never)), 'INVALID_CONFIG');
  t.equal(await codeOf(broker.alterTopicConfig('missing', { 'retention.ms': 1 })), 'UNKNOWN_TOPIC_OR_PARTITION');
  const reset = await broker.alterTopicConfig('alt', { 'max.message.bytes': null });
  t.equal(reset.config['max.message.bytes'], defaultTopicConfig['max.message.bytes']);
  t.same(reset.overrides, { 'retention.ms': 60_000 });
  await broker.append({ topic: 'alt', partition: 0 }, batchOfSize(2000), { acks: 1 });
  await broker.close();
  const { broker: again } = await openBroker(t, { dataDir });
  t.same(again.describeTopic('alt')!.overrides, { 'retention.ms': 60_000 });
});

t.test('topics: deleteTopic removes files and waiters; a re-created topic starts empty', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  await broker.createTopic('gone', 2);
  await broker.produce('gone', [{ key: bytes('k'), value: bytes('v') }], { acks: 1 });
  const parked = broker.waitForData([{ topic: 'gone', partition: 0, afterOffset: 100 }], 30_000);
  await broker.deleteTopic('gone');
  await parked;
  t.equal(broker.waitingReaders, 0, 'the parked reader was released');
  t.equal(broker.describeTopic('gone'), undefined);
  const dirs = await readdir(dataDir);
  t.notOk(dirs.some((d) => d.startsWith('gone-')), dirs.join(','));
  t.equal(await codeOf(broker.deleteTopic('gone')), 'UNKNOWN_TOPIC_OR_PARTITION');
  t.equal(await codeOf(broker.read({ topic: 'gone', partition: 0 }, 0, { maxBytes: 1000 })), 'UNKNOWN_TOPIC_OR_PARTITION');
  const again = await broker.createTopic('gone', 1);
  t.same(broker.offsets({ topic: 'gone', partition: 0 }), { logStartOffset: 0, highWatermark: 0, logEndOffset: 0 });
  t.not(again.topicId, undefined);
  await broker.createTopic('__internal', 1);
  t.equal(await codeOf(broker.deleteTopic('__internal')), 'POLICY_VIOLATION');
});

t.test('topics: topics, configs and data survive close and reopen', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  await broker.createTopic('keep', 3, { 'cleanup.policy': 'compact', 'segment.bytes': 4096 });
  const produced = await broker.produce(
    'keep',
    Array.from({ length: 30 }, (_, i) => ({ key: bytes(`k${i % 7}`), value: bytes(`v${i}`) })),
    { acks: -1 },
  );
  const before = broker.describeTopic('keep')!;
  await broker.close();
  t.equal(await codeOf(broker.createTopic('late', 1)), 'LEADER_NOT_AVAILABLE', 'a closed broker refuses work');

  const { broker: again } = await openBroker(t, { dataDir });
  t.same(again.describeTopic('keep'), before);
  for (const p of [0, 1, 2]) {
    const expected = produced.filter((r) => r.partition === p);
    const got = await readAll(again, { topic: 'keep', partition: p });
    t.equal(again.offsets({ topic: 'keep', partition: p }).logEndOffset, expected.length, `partition ${p} end offset`);
    t.same(
      got.map((r) => r.offset),
      expected.map((r) => r.offset),
    );
  }
  const all = await Promise.all([0, 1, 2].map((p) => readAll(again, { topic: 'keep', partition: p })));
  const values = all.flatMap((r) => r.map((x) => x.value)).sort();
  t.same(values, Array.from({ length: 30 }, (_, i) => `v${i}`).sort());
});

t.test('topics: a second broker on the same data dir is refused', async (t) => {
  const { dataDir } = await openBroker(t);
  await t.rejects(Broker.open({ dataDir }, { logger: silentLogger, metrics: new MetricsRegistry() }), /already open/);
});

t.test('topics: deletion and shutdown wait for in-flight appends (slow fsync) instead of cutting them off', async (t) => {
  const { broker, dataDir } = await openBroker(t, { injectedFlushDelayMs: 30 });
  await broker.createTopic('busy', 1);
  await broker.createTopic('stay', 1);
  const inFlight = Array.from({ length: 5 }, (_, i) => broker.produce('busy', [{ key: null, value: bytes(`b${i}`) }], { acks: 1 }));
  await broker.deleteTopic('busy');
  const outcomes = await Promise.allSettled(inFlight);
  t.ok(outcomes.every((o) => o.status === 'fulfilled'), 'appends already started completed before the files went');
  t.notOk((await readdir(dataDir)).includes('busy-0'));
  // Shutdown: acknowledged appends are on disk after reopen.
  const acked = await Promise.all(Array.from({ length: 5 }, (_, i) => broker.produce('stay', [{ key: null, value: bytes(`s${i}`) }], { acks: -1 }).then((r) => r[0].offset)));
  const pending = broker.produce('stay', [{ key: null, value: bytes('last') }], { acks: 1 });
  await broker.close();
  const last = await pending;
  const { broker: again } = await openBroker(t, { dataDir });
  const values = (await readAll(again, { topic: 'stay', partition: 0 })).map((r) => r.value);
  t.equal(values.length, acked.length + 1);
  t.equal(values[last[0].offset], 'last');
});

t.test('topics: validateCreateTopic checks like createTopic and creates nothing', async (t) => {
  const { broker, dataDir } = await openBroker(t, { maxTopics: 2 });
  await broker.createTopic('one', 1);
  const validate = (...args: Parameters<Broker['validateCreateTopic']>) => codeOf(() => broker.validateCreateTopic(...args));
  t.equal(await validate('two', 3, { 'retention.ms': '1000' as unknown as number }), undefined);
  t.equal(broker.describeTopic('two'), undefined);
  t.notOk((await readdir(dataDir)).some((d) => d.startsWith('two-')));
  t.equal(await validate('one', 1), 'TOPIC_ALREADY_EXISTS');
  t.equal(await validate('bad name', 1), 'INVALID_TOPIC_EXCEPTION');
  t.equal(await validate('two', 0), 'INVALID_PARTITIONS');
  t.equal(await validate('two', 1, { flush: 'maybe' as 'always' }), 'INVALID_CONFIG');
  await broker.createTopic('two', 1);
  t.equal(await validate('three', 1), 'POLICY_VIOLATION');
});
