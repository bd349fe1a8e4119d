// Schemas of the `broker` and `groups` config sections (host/config/schema.ts). The defaults and
// their reasons live with the modules they configure (host/broker/limits.ts,
// host/broker/groups/options.ts); the schemas live here, below the broker, because they are data
// about keys and the config layer imports nothing above it. Rules that tie one key to another
// (defaultPartitions ≤ maxPartitionsPerTopic, a topic default's max.message.bytes ≤
// maxMessageBytesMax, ...) are checked by those modules' validators, which the node runs before
// anything opens.
import { boolean, int32, integer, object, section, type SectionSchema } from './schema.js';

export const brokerSchema: SectionSchema = section({
  autoCreateTopics: boolean(),
  defaultPartitions: integer(1, 1_000_000),
  // Kafka-named topic configs (retention.ms, max.message.bytes, ...): checked key by key by the
  // broker's topic-config validator, the same one CreateTopics uses.
  topicDefaults: { type: 'object', 'x-allowed': 'a mapping of topic configs (docs/broker.md)' },
  maxTopics: int32(1),
  maxPartitionsPerTopic: integer(1, 1_000_000),
  maxPartitionsTotal: int32(1),
  maxMessageBytesMax: integer(61, 2_147_483_647),
  maxPendingAppendBytes: integer(1),
  maxWaitingReaders: int32(0),
  maxReadBytes: int32(1),
  maxWaitMsMax: int32(0),
  maxRecordsPerProduce: int32(1),
  ackTimeoutMs: int32(0),
  stickyBatchBytes: int32(1),
  retentionCheckIntervalMs: int32(1),
  openConcurrency: integer(1, 256),
  // The disk contract (docs/broker.md): free-space floor and retention budget.
  diskFreeFloorBytes: integer(0),
  diskFreeFloorPercent: integer(0, 50),
  diskCheckIntervalMs: integer(10, 2_147_483_647),
  retentionBudgetBytes: integer(-1),
  retentionBudgetPercent: integer(1, 100),
  retentionTopicSharePercent: integer(0, 100),
  // Benchmarks and tests only (an SD card's slow fsync imitated on a fast disk).
  injectedFlushDelayMs: integer(0, 10_000),
  log: object(
    {
      maxDecompressedBytes: integer(1),
      maxPendingAppendBytes: integer(1),
      maxOpenSegmentFiles: int32(1),
      indexCacheBytes: integer(0),
      maxProducerIds: int32(1),
      producerIdExpirationMs: integer(1),
      verifyOldSegmentReads: boolean(),
      producerSnapshotsKept: int32(1),
      compactionMapBytes: integer(1),
    },
    [],
    'a mapping of maxDecompressedBytes, maxPendingAppendBytes, maxOpenSegmentFiles, indexCacheBytes, maxProducerIds, producerIdExpirationMs, verifyOldSegmentReads, producerSnapshotsKept, compactionMapBytes',
  ),
});

export const groupsSchema: SectionSchema = section({
  minSessionTimeoutMs: int32(1),
  maxSessionTimeoutMs: int32(1),
  initialRebalanceDelayMs: int32(0),
  groupMaxSize: int32(1),
  maxGroups: int32(1),
  groupIdMaxBytes: int32(1),
  memberMetadataMaxBytes: int32(1),
  memberAssignmentMaxBytes: int32(1),
  memberProtocolsMax: int32(1),
  maxCommittedOffsets: int32(1),
  offsetMetadataMaxBytes: int32(0),
  offsetsTopicPartitions: integer(1, 1_000_000),
  offsetsTopicSegmentBytes: int32(1),
  offsetsRetentionMs: integer(1),
  offsetsRetentionCheckIntervalMs: int32(1),
  loadReadBytes: int32(1),
  loadInBackground: boolean(),
});
