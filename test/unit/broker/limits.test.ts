// Purpose: broker options are validated at start, each bad one named; defaults are complete.
import t from 'tap';
import { defaultBrokerOptions, validateBrokerOptions } from '../../../host/broker/limits.js';

t.test('broker options: defaults validate and are complete', async (t) => {
  const v = validateBrokerOptions({});
  t.same(v, defaultBrokerOptions);
  t.equal(validateBrokerOptions({ dataDir: '/x', maxTopics: undefined }).maxTopics, defaultBrokerOptions.maxTopics, 'undefined means default');
});

t.test('broker options: bad values are refused naming the option', async (t) => {
  t.throws(() => validateBrokerOptions({ maxTopics: 0 }), /maxTopics=0/);
  t.throws(() => validateBrokerOptions({ maxWaitingReaders: -1 }), /maxWaitingReaders/);
  t.throws(() => validateBrokerOptions({ maxPendingAppendBytes: 1.5 }), /maxPendingAppendBytes/);
  t.throws(() => validateBrokerOptions({ maxMessageBytesMax: 1024 * 1024, maxPendingAppendBytes: 1024 * 1024 - 1 }), /maxPendingAppendBytes.*at least|from 1048576/);
  t.throws(() => validateBrokerOptions({ defaultPartitions: 5, maxPartitionsPerTopic: 4 }), /defaultPartitions/);
  t.throws(() => validateBrokerOptions({ autoCreateTopics: 'yes' as unknown as boolean }), /autoCreateTopics/);
  t.throws(() => validateBrokerOptions({ dataDir: '' }), /dataDir/);
  t.throws(() => validateBrokerOptions({ retentionCheckIntervalMs: 0 }), /retentionCheckIntervalMs/);
  t.throws(() => validateBrokerOptions({ ackTimeoutMs: -1 }), /ackTimeoutMs/);
  t.equal(validateBrokerOptions({ ackTimeoutMs: 0 }).ackTimeoutMs, 0, 'ackTimeoutMs 0 (answer at once unless HW is there) is the lower bound');
  t.throws(() => validateBrokerOptions({ topicDefaults: { flush: 'maybe' as 'always' } }), /topicDefaults.*"flush"/);
  t.throws(() => validateBrokerOptions({ maxMessageBytesMax: 1000 }), /maxMessageBytesMax.*1048588/);
  t.throws(() => validateBrokerOptions({ maxMessageBytesMax: 2000, topicDefaults: { 'max.message.bytes': 2001 } }), /max\.message\.bytes/);
  const ok = validateBrokerOptions({ maxMessageBytesMax: 2000, maxPendingAppendBytes: 2000, topicDefaults: { 'max.message.bytes': '2000' as unknown as number } });
  t.equal(ok.topicDefaults['max.message.bytes'], 2000, 'string values in topicDefaults are parsed');
});

t.test('broker options: log limits pass through, checked by key and type', async (t) => {
  t.same(validateBrokerOptions({ log: { maxOpenSegmentFiles: 4, verifyOldSegmentReads: false } }).log, { maxOpenSegmentFiles: 4, verifyOldSegmentReads: false });
  t.throws(() => validateBrokerOptions({ log: { maxOpenSegmentFiles: 0 } }), /log\.maxOpenSegmentFiles/);
  t.throws(() => validateBrokerOptions({ log: { verifyOldSegmentReads: 'no' as unknown as boolean } }), /log\.verifyOldSegmentReads/);
  t.throws(() => validateBrokerOptions({ log: { segmentBytes: 1 } as never }), /log\.segmentBytes.*unknown key/);
  t.throws(() => validateBrokerOptions({ log: { maxDecompressedBytes: 1024 } }), /log\.maxDecompressedBytes.*at least maxMessageBytesMax/);
  t.throws(() => validateBrokerOptions({ log: [] as never }), /invalid broker option log=/);
});

t.test('options: the disk contract keys are validated at their boundaries', async (t) => {
  const ok = (o: Record<string, number>) => validateBrokerOptions({ dataDir: '/x', ...o });
  t.equal(ok({ diskFreeFloorBytes: 0 }).diskFreeFloorBytes, 0, 'a floor of 0 bytes (off) is allowed');
  t.throws(() => ok({ diskFreeFloorBytes: -1 }), /diskFreeFloorBytes=-1/);
  t.equal(ok({ diskFreeFloorPercent: 50 }).diskFreeFloorPercent, 50);
  t.throws(() => ok({ diskFreeFloorPercent: 51 }), /diskFreeFloorPercent=51: an integer from 0 to 50/);
  t.equal(ok({ diskCheckIntervalMs: 10 }).diskCheckIntervalMs, 10);
  t.throws(() => ok({ diskCheckIntervalMs: 9 }), /diskCheckIntervalMs=9/);
  t.equal(ok({ retentionBudgetBytes: -1 }).retentionBudgetBytes, -1, '-1: sized from the disk');
  t.throws(() => ok({ retentionBudgetBytes: -2 }), /retentionBudgetBytes=-2/);
  t.throws(() => ok({ retentionBudgetPercent: 0 }), /retentionBudgetPercent=0: an integer from 1 to 100/);
  t.equal(ok({ retentionBudgetPercent: 100 }).retentionBudgetPercent, 100);
  t.throws(() => ok({ retentionTopicSharePercent: 101 }), /retentionTopicSharePercent=101/);
  t.same(
    [defaultBrokerOptions.diskFreeFloorBytes, defaultBrokerOptions.diskFreeFloorPercent, defaultBrokerOptions.retentionBudgetBytes],
    [256 * 1024 * 1024, 5, -1],
    'defaults: keep max(5 %, 256 MiB) free; budget sized from the disk',
  );
});
