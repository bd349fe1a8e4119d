// Purpose: broker options are validated at start, each bad one named; defaults are complete.
import t from 'tap';
import { defaultBrokerOptions, validateBrokerOptions } from '../../../host/broker/limits.js';

t.test('broker options: defaults validate and are complete', async (t) => {
  const v = validateBrokerOptions({});
  t.same({ ...v, topicDefaults: {} }, { ...defaultBrokerOptions, topicDefaults: {} });
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
  t.throws(() => validateBrokerOptions({ topicDefaults: { flush: 'maybe' as 'always' } }), /topicDefaults.*"flush"/);
  t.throws(() => validateBrokerOptions({ maxMessageBytesMax: 1000 }), /maxMessageBytesMax.*1048588/);
  t.throws(() => validateBrokerOptions({ maxMessageBytesMax: 2000, topicDefaults: { 'max.message.bytes': 2001 } }), /max\.message\.bytes/);
  const ok = validateBrokerOptions({ maxMessageBytesMax: 2000, maxPendingAppendBytes: 2000, topicDefaults: { 'max.message.bytes': '2000' as unknown as number } });
  t.equal(ok.topicDefaults['max.message.bytes'], 2000, 'string values in topicDefaults are parsed');
});
