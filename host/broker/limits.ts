// The broker core's options: every limit in one place, each default with its reason,
// validated once at start (`validateBrokerOptions`) so a bad config stops the broker with a
// message naming the option instead of failing later under load.
import type { TopicConfig } from './api.js';
import type { LogOptions } from '../log/api.js';
import { defaultLogOptions } from '../log/options.js';
import { defaultTopicConfig, validateTopicConfig } from './topic-config.js';

/** The partition log's own limits (not tied to a topic config key), passed to every log. */
export type LogLimits = Partial<
  Pick<
    LogOptions,
    | 'maxDecompressedBytes'
    | 'maxPendingAppendBytes'
    | 'maxOpenSegmentFiles'
    | 'indexCacheBytes'
    | 'maxProducerIds'
    | 'producerIdExpirationMs'
    | 'verifyOldSegmentReads'
    | 'producerSnapshotsKept'
    | 'compactionMapBytes'
  >
>;
const LOG_LIMIT_KEYS = [
  'maxDecompressedBytes',
  'maxPendingAppendBytes',
  'maxOpenSegmentFiles',
  'indexCacheBytes',
  'maxProducerIds',
  'producerIdExpirationMs',
  'verifyOldSegmentReads',
  'producerSnapshotsKept',
  'compactionMapBytes',
] as const;

export interface BrokerOptions {
  /** Where topics.json and the `<topic>-<partition>/` directories live. */
  dataDir: string;
  /** ensureTopic (and produce) create unknown topics with the defaults; off → UNKNOWN_TOPIC_OR_PARTITION. */
  autoCreateTopics: boolean;
  /** Partitions of an auto-created topic (Kafka's num.partitions). */
  defaultPartitions: number;
  /** Broker-wide topic config defaults (Kafka's log.* settings); topics override per key. */
  topicDefaults: Partial<TopicConfig>;
  /** Most topics (internal ones included); past it createTopic → POLICY_VIOLATION. */
  maxTopics: number;
  /** Most partitions in one topic; past it → INVALID_PARTITIONS. */
  maxPartitionsPerTopic: number;
  /** Most partitions over all topics (each holds open files); past it → POLICY_VIOLATION. */
  maxPartitionsTotal: number;
  /** Ceiling on any topic's max.message.bytes (the largest batch the broker will hold in memory). */
  maxMessageBytesMax: number;
  /** Bytes of appends waiting for their flush, over all partitions; past it → LIMIT_EXCEEDED (retriable: broker busy). */
  maxPendingAppendBytes: number;
  /** Readers parked in waitForData at once; past it → LIMIT_EXCEEDED. */
  maxWaitingReaders: number;
  /** Largest `maxBytes` one read returns (larger requests are clamped; the first batch is still whole). */
  maxReadBytes: number;
  /** Longest waitForData wait (longer requests are clamped). */
  maxWaitMsMax: number;
  /** Most records in one produce() call; past it → RECORD_LIST_TOO_LARGE. */
  maxRecordsPerProduce: number;
  /** acks=all in a cluster: longest wait for the in-sync replicas when the caller names no timeout (ms); then REQUEST_TIMED_OUT. */
  ackTimeoutMs: number;
  /** Sticky partitioner: unkeyed records move to another partition once a batch holds this many bytes. */
  stickyBatchBytes: number;
  /** How often retention and compaction run over every partition (ms). */
  retentionCheckIntervalMs: number;
  /** Partition logs opened (and recovered) in parallel at start. */
  openConcurrency: number;
  /** Keep at least this many bytes free on the data dir's filesystem; below the floor client writes get STORAGE_FULL (docs/broker.md). */
  diskFreeFloorBytes: number;
  /** ... or this percentage of the filesystem, whichever is larger (the floor is capped at half the filesystem). */
  diskFreeFloorPercent: number;
  /** How often the data dir's free space is measured (statfs); also measured at once when a write meets ENOSPC. */
  diskCheckIntervalMs: number;
  /** Bytes all topic logs together may hold; past it retention deletes the oldest segments. -1: sized from the disk (see docs/broker.md). */
  retentionBudgetBytes: number;
  /** With retentionBudgetBytes -1: the budget is this percentage of (bytes the logs hold + bytes free − the floor). */
  retentionBudgetPercent: number;
  /** Most of the budget one topic may hold, in percent; 0: a topic gives up its oldest segments first when it holds more than an equal share and the budget is exceeded. */
  retentionTopicSharePercent: number;
  /** Per-partition log limits (host/log defaults apply to keys not set). */
  log: LogLimits;
  /** Benchmarks and tests only: extra delay (ms) after every partition-log fsync, to imitate an SD card. */
  injectedFlushDelayMs?: number;
}

const MiB = 1024 * 1024;

export const defaultBrokerOptions: BrokerOptions = {
  // The user's contract: data in ./data.
  dataDir: './data',
  // Kafka's default (auto.create.topics.enable=true): a sensor publishing to a new MQTT topic just works.
  autoCreateTopics: true,
  // Kafka's default (num.partitions=1): order over the whole topic unless the user asks for more.
  defaultPartitions: 1,
  // No broker-wide overrides: the topic defaults in topic-config.ts apply.
  topicDefaults: {},
  // A Pi holds a few files per partition open; 1,000 topics is far past any gateway's need
  // and keeps a client that invents topic names from exhausting file descriptors.
  maxTopics: 1000,
  // Kafka has no per-topic cap; 1,000 stops a typo (100000) from opening 300,000 files.
  maxPartitionsPerTopic: 1000,
  // Each partition holds ~3 files open; 4,000 partitions stay under a 16k descriptor limit.
  maxPartitionsTotal: 4000,
  // 8 MiB: a batch is held whole in memory and in the wasm core's 128 MiB scratch (with its
  // decompressed form); 8× Kafka's default max.message.bytes is room enough at the edge.
  maxMessageBytesMax: 8 * MiB,
  // 64 MiB of appends waiting for fsync (group commit) is seconds of an SD card's bandwidth;
  // more only grows RSS on a 1 GB device while the disk is the bottleneck.
  maxPendingAppendBytes: 64 * MiB,
  // A parked reader costs a timer and a few hundred bytes; 10,000 covers every connection the
  // doors allow while bounding memory if a client floods long polls.
  maxWaitingReaders: 10_000,
  // 16 MiB per read (Kafka's fetch.max.bytes is 50 MiB): one read's copy stays small on a Pi.
  maxReadBytes: 16 * MiB,
  // 5 minutes: no door needs a longer poll; a timer never outlives a forgotten connection for long.
  maxWaitMsMax: 5 * 60 * 1000,
  // 100,000 records per call: a gateway's batch of small readings fits; max.message.bytes
  // bounds the bytes anyway, this bounds the per-record work done before that check.
  maxRecordsPerProduce: 100_000,
  // 30 s, Kafka's request.timeout.ms: a door without a timeout of its own (MQTT, WebSocket)
  // waits as long as a Kafka producer would for its in-sync replicas.
  ackTimeoutMs: 30_000,
  // Kafka's batch.size default (16 KiB): the point at which a client's sticky batch is full.
  stickyBatchBytes: 16 * 1024,
  // 60 s, not Kafka's 5 minutes: edge disks are small, so retention should act promptly;
  // one pass over idle partitions costs a stat per segment.
  retentionCheckIntervalMs: 60_000,
  // 2: a Pi has few cores and one SD card; more parallel recoveries only contend for the disk.
  openConcurrency: 2,
  // 256 MiB or 5 %: on an SD card the OS, journald and apt need room to keep working (and so
  // do our own topics.json, checkpoints and a topic deletion); 5 % scales it to a larger SSD,
  // the same share ext4 reserves for root, which a broker running as its own user cannot use.
  diskFreeFloorBytes: 256 * MiB,
  // 5 % of the filesystem when that is more than diskFreeFloorBytes: the floor scales to an SSD.
  diskFreeFloorPercent: 5,
  // 2 s: one statfs is a few microseconds; writes resume within 2 s of space being freed.
  diskCheckIntervalMs: 2_000,
  // -1: sized from the device, so an unattended gateway's own data never reaches the floor.
  retentionBudgetBytes: -1,
  // 90 %: retention starts deleting while a tenth of the usable space is still free, so a
  // burst between two retention passes (retentionCheckIntervalMs) does not reach the floor.
  retentionBudgetPercent: 90,
  // 0 (equal shares): one chatty topic cannot push out every other topic's history, and a
  // gateway with one topic may still use the whole budget.
  retentionTopicSharePercent: 0,
  // Empty: the log's own defaults (host/log/options.ts, each with its reason) apply.
  log: {},
  // For benchmarks and tests only, never production: 0 (off). A delay in ms added after every
  // fsync of a partition log, to imitate an SD card's slow fsync (~5 ms) on a fast disk
  // (bench/replication.bench.ts); it only slows the broker down and changes no guarantee.
  injectedFlushDelayMs: 0,
};

function fail(name: string, value: unknown, allowed: string): never {
  throw new Error(`invalid broker option ${name}=${JSON.stringify(value)}: ${allowed}`);
}

function int(options: BrokerOptions, name: keyof BrokerOptions, min: number, max = Number.MAX_SAFE_INTEGER): void {
  const v = options[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(name, v, `an integer from ${min} to ${max}`);
}

/** Fills defaults and checks every option; throws an Error naming the first bad one. */
export function validateBrokerOptions(partial: Partial<BrokerOptions>): BrokerOptions {
  const options: BrokerOptions = { ...defaultBrokerOptions, ...stripUndefined(partial) };
  if (typeof options.dataDir !== 'string' || options.dataDir.length === 0) fail('dataDir', options.dataDir, 'a directory path');
  if (typeof options.autoCreateTopics !== 'boolean') fail('autoCreateTopics', options.autoCreateTopics, 'true or false');
  int(options, 'maxTopics', 1);
  int(options, 'maxPartitionsPerTopic', 1, 1_000_000);
  int(options, 'maxPartitionsTotal', 1);
  int(options, 'defaultPartitions', 1, options.maxPartitionsPerTopic);
  int(options, 'maxMessageBytesMax', 61, 2_147_483_647);
  int(options, 'maxPendingAppendBytes', options.maxMessageBytesMax);
  int(options, 'maxWaitingReaders', 0);
  int(options, 'maxReadBytes', 1);
  int(options, 'maxWaitMsMax', 0, 2_147_483_647);
  int(options, 'maxRecordsPerProduce', 1);
  int(options, 'ackTimeoutMs', 0, 2_147_483_647);
  int(options, 'stickyBatchBytes', 1);
  int(options, 'retentionCheckIntervalMs', 1, 2_147_483_647);
  int(options, 'openConcurrency', 1, 256);
  int(options, 'diskFreeFloorBytes', 0);
  int(options, 'diskFreeFloorPercent', 0, 50);
  int(options, 'diskCheckIntervalMs', 10, 2_147_483_647);
  int(options, 'retentionBudgetBytes', -1);
  int(options, 'retentionBudgetPercent', 1, 100);
  int(options, 'retentionTopicSharePercent', 0, 100);
  if (options.injectedFlushDelayMs !== undefined) int(options, 'injectedFlushDelayMs', 0, 10_000);
  options.log = validateLogLimits(options.log, options.maxMessageBytesMax);
  try {
    options.topicDefaults = validateTopicConfig(options.topicDefaults as Record<string, unknown>, options.maxMessageBytesMax);
  } catch (err) {
    throw new Error(`invalid broker option topicDefaults: ${(err as Error).message}`);
  }
  const maxMessageBytes = options.topicDefaults['max.message.bytes'] ?? defaultTopicConfig['max.message.bytes'];
  if (maxMessageBytes > options.maxMessageBytesMax) {
    fail('maxMessageBytesMax', options.maxMessageBytesMax, `at least the default max.message.bytes (${maxMessageBytes})`);
  }
  return options;
}

function validateLogLimits(log: unknown, maxMessageBytesMax: number): LogLimits {
  if (log === undefined || log === null) return {};
  if (typeof log !== 'object' || Array.isArray(log)) fail('log', log, `a mapping of ${LOG_LIMIT_KEYS.join(', ')}`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(log as Record<string, unknown>)) {
    if (!(LOG_LIMIT_KEYS as readonly string[]).includes(key)) fail(`log.${key}`, value, `unknown key; keys are ${LOG_LIMIT_KEYS.join(', ')}`);
    if (value === undefined) continue;
    if (key === 'verifyOldSegmentReads') {
      if (typeof value !== 'boolean') fail(`log.${key}`, value, 'true or false');
    } else {
      const min = key === 'indexCacheBytes' ? 0 : 1;
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) fail(`log.${key}`, value, `an integer ≥ ${min}`);
    }
    out[key] = value;
  }
  // An uncompressed batch of the largest allowed size must pass the decompressed-size check.
  const decompressed = (out.maxDecompressedBytes as number | undefined) ?? defaultLogOptions.maxDecompressedBytes;
  if (decompressed < maxMessageBytesMax) fail('log.maxDecompressedBytes', decompressed, `at least maxMessageBytesMax (${maxMessageBytesMax})`);
  return out as LogLimits;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
