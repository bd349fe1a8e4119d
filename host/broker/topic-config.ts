// Per-topic configuration: Kafka-named keys, their defaults (each with its reason), what each
// key allows, and the mapping onto the partition log's options.
//
// Kafka clients send config values as strings ("604800000"); gateways and code send numbers.
// Both are accepted; anything else (a float, a word where a number belongs, a value out of
// range, a key we do not know) is refused with INVALID_CONFIG naming the key, the value and
// what is allowed. A topic stores only its overrides; its effective config is the broker's
// defaults with the overrides on top, so changing a broker default reaches every topic that
// did not override it (as Kafka does).
import { BrokerError } from '../errors/index.js';
import type { CleanupPolicy, CompressionType, FlushPolicy, TopicConfig } from './api.js';
import type { LogOptions } from '../log/api.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const INT32_MAX = 2_147_483_647;

/** Topic config defaults: Kafka's unless the edge gives a reason to differ. */
export const defaultTopicConfig: TopicConfig = {
  // Kafka's default (7 days): a week of sensor data survives a long uplink outage.
  'retention.ms': 7 * DAY_MS,
  // Kafka's default (unbounded per partition); set it on small SD cards.
  'retention.bytes': -1,
  // 64 MiB, not Kafka's 1 GiB: retention deletes whole segments, so smaller segments free a
  // small disk in smaller steps and recovery scans less after a power cut.
  'segment.bytes': 64 * 1024 * 1024,
  // Kafka's default (7 days): a quiet topic still rolls, so time retention can delete it.
  'segment.ms': 7 * DAY_MS,
  // 1 MiB, not Kafka's 10 MiB: with 64 MiB segments and a 4 KiB interval an index needs
  // 16,384 entries × 8 bytes = 128 KiB; 1 MiB leaves room for small batches.
  'segment.index.bytes': 1024 * 1024,
  // Kafka's default (4 KiB of log per index entry): a read scans at most ~4 KiB to its batch.
  'index.interval.bytes': 4096,
  // Kafka's default: time/size retention.
  'cleanup.policy': 'delete',
  // Kafka's default (1 day): consumers have a day to see a tombstone before it goes.
  'delete.retention.ms': DAY_MS,
  // Kafka's default (0): a record may be compacted as soon as a newer one for its key exists.
  'min.compaction.lag.ms': 0,
  // Kafka's default (1 MiB + 12 bytes of log overhead): fits a client's default 1 MiB request.
  'max.message.bytes': 1_048_588,
  // Kafka's default: store client batches exactly as sent (one copy, no recompression).
  'compression.type': 'producer',
  // Kafka's default: the producer's timestamp.
  'message.timestamp.type': 'CreateTime',
  // Edge default: fsync before acknowledging (group commit shares one fsync); gateways lose power.
  flush: 'always',
  // With flush=interval: at most one second of acknowledged records at risk.
  'flush.interval.ms': 1000,
  // Off: validation costs CPU per record; a topic opts in once its schema is registered.
  'schema.validation': 'off',
  // Empty = Confluent's TopicNameStrategy (`<topic>-value`), what serializers register under.
  'schema.subject': '',
  // 2, not Kafka's 1 (issue 11): at replication factor 3 an acks=all write is on two disks before
  // it is acknowledged, or refused (NOT_ENOUGH_REPLICAS) rather than kept on one. Capped by the
  // topic's replication factor, so a one-node topic still takes acks=all.
  'min.insync.replicas': 2,
};

interface IntSpec {
  kind: 'int';
  min: number;
  max: number;
  /** One line for docs and error messages. */
  doc: string;
}
interface StringSpec {
  kind: 'string';
  lengthMax: number;
  doc: string;
}
interface EnumSpec {
  kind: 'enum';
  values: readonly string[];
  doc: string;
}
export type ConfigKeySpec = IntSpec | EnumSpec | StringSpec;

const SAFE_MAX = Number.MAX_SAFE_INTEGER;

/**
 * What each key allows. `max.message.bytes` has a further ceiling from the broker options
 * (`maxMessageBytesMax`), applied in `validateTopicConfig`.
 */
export const topicConfigSpecs: Record<keyof TopicConfig, ConfigKeySpec> = {
  'retention.ms': { kind: 'int', min: -1, max: SAFE_MAX, doc: 'ms to keep a segment after its newest record; -1 = forever' },
  'retention.bytes': { kind: 'int', min: -1, max: SAFE_MAX, doc: 'bytes kept per partition before the oldest segments go; -1 = unbounded' },
  'segment.bytes': { kind: 'int', min: 1024, max: INT32_MAX, doc: 'roll to a new segment file past this many bytes' },
  'segment.ms': { kind: 'int', min: 1, max: SAFE_MAX, doc: 'roll to a new segment file once the active one is this old' },
  'segment.index.bytes': { kind: 'int', min: 1024, max: 100 * 1024 * 1024, doc: 'largest size of one .index/.timeindex file' },
  'index.interval.bytes': { kind: 'int', min: 0, max: INT32_MAX, doc: 'one sparse index entry per this many log bytes' },
  'cleanup.policy': { kind: 'enum', values: ['delete', 'compact', 'compact,delete'], doc: 'delete old segments, keep the latest record per key, or both' },
  'delete.retention.ms': { kind: 'int', min: 0, max: SAFE_MAX, doc: 'how long compaction keeps a tombstone' },
  'min.compaction.lag.ms': { kind: 'int', min: 0, max: SAFE_MAX, doc: 'a record stays uncompacted at least this long' },
  'max.message.bytes': { kind: 'int', min: 61, max: INT32_MAX, doc: 'largest record batch accepted (bytes, as stored)' },
  'compression.type': {
    kind: 'enum',
    values: ['producer', 'uncompressed', 'gzip', 'snappy', 'lz4', 'zstd'],
    doc: 'codec for batches the broker builds (gateways); client batches are stored as sent',
  },
  'message.timestamp.type': { kind: 'enum', values: ['CreateTime', 'LogAppendTime'], doc: "the producer's timestamp or the broker's append time" },
  flush: { kind: 'enum', values: ['always', 'interval', 'never'], doc: 'when an acknowledged append is fsynced: before the ack, every flush.interval.ms, or never' },
  'flush.interval.ms': { kind: 'int', min: 1, max: INT32_MAX, doc: 'with flush=interval: the longest time between fsyncs' },
  'schema.validation': { kind: 'enum', values: ['off', 'warn', 'reject'], doc: 'check record values against the registry: no, count and log, or refuse and dead-letter' },
  'schema.subject': { kind: 'string', lengthMax: 1024, doc: "the registry subject records are checked against; '' = <topic>-value" },
  'min.insync.replicas': { kind: 'int', min: 1, max: 1000, doc: 'in-sync replicas an acks=all produce needs (capped by the replication factor), else NOT_ENOUGH_REPLICAS' },
};

export const topicConfigKeys = Object.keys(topicConfigSpecs) as Array<keyof TopicConfig>;

export function isTopicConfigKey(key: string): key is keyof TopicConfig {
  return Object.prototype.hasOwnProperty.call(topicConfigSpecs, key);
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return typeof value;
}

function invalid(key: string, value: unknown, allowed: string): BrokerError {
  return new BrokerError('INVALID_CONFIG', `invalid value ${describeValue(value)} for config "${key}": ${allowed}`);
}

/** Kafka lists accept either order and spaces: "delete, compact" is "compact,delete". */
function normaliseCleanupPolicy(raw: string): string {
  const parts = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const set = new Set(parts);
  if (set.size === 2 && set.has('compact') && set.has('delete')) return 'compact,delete';
  return parts.length === 1 ? parts[0] : raw;
}

/**
 * Parses one value for `key` (number or numeric string for int keys, string for enums).
 * `maxMessageBytesMax` is the broker's ceiling on `max.message.bytes`.
 */
export function parseTopicConfigValue<K extends keyof TopicConfig>(key: K, value: unknown, maxMessageBytesMax = INT32_MAX): TopicConfig[K] {
  const spec = topicConfigSpecs[key];
  if (spec.kind === 'int') {
    const max = key === 'max.message.bytes' ? Math.min(spec.max, maxMessageBytesMax) : spec.max;
    const allowed = `an integer from ${spec.min} to ${max} (${spec.doc})`;
    let n: number;
    if (typeof value === 'number') n = value;
    else if (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)) n = Number(value.trim());
    else throw invalid(key, value, allowed);
    if (!Number.isSafeInteger(n) || n < spec.min || n > max) throw invalid(key, value, allowed);
    return n as TopicConfig[K];
  }
  if (spec.kind === 'string') {
    const allowed = `a string of at most ${spec.lengthMax} characters without control characters (${spec.doc})`;
    if (typeof value !== 'string' || value.length > spec.lengthMax || /[\u0000-\u001f]/.test(value)) throw invalid(key, value, allowed);
    return value as TopicConfig[K];
  }
  const allowed = `one of ${spec.values.map((v) => `"${v}"`).join(', ')} (${spec.doc})`;
  if (typeof value !== 'string') throw invalid(key, value, allowed);
  const v = key === 'cleanup.policy' ? normaliseCleanupPolicy(value.trim()) : value.trim();
  if (!spec.values.includes(v)) throw invalid(key, value, allowed);
  return v as TopicConfig[K];
}

/**
 * Validates a set of config entries (unknown keys refused) and returns them typed. Throws
 * BrokerError INVALID_CONFIG naming the first bad key.
 */
export function validateTopicConfig(entries: Record<string, unknown> | undefined, maxMessageBytesMax = INT32_MAX): Partial<TopicConfig> {
  const out: Partial<Record<keyof TopicConfig, unknown>> = {};
  if (entries === undefined || entries === null) return {};
  if (typeof entries !== 'object' || Array.isArray(entries)) {
    throw new BrokerError('INVALID_CONFIG', `topic config must be an object of key → value, got ${describeValue(entries)}`);
  }
  for (const [key, value] of Object.entries(entries)) {
    if (!isTopicConfigKey(key)) {
      throw new BrokerError('INVALID_CONFIG', `unknown config "${key}"; known keys: ${topicConfigKeys.join(', ')}`);
    }
    if (value === undefined) continue;
    out[key] = parseTopicConfigValue(key, value, maxMessageBytesMax);
  }
  return out as Partial<TopicConfig>;
}

/** Defaults with overrides on top. */
export function effectiveTopicConfig(defaults: TopicConfig, overrides: Partial<TopicConfig>): TopicConfig {
  return { ...defaults, ...overrides };
}

/** The partition log's view of a topic config. */
export function logOptionsFor(config: TopicConfig): Omit<LogOptions, 'injectedFlushDelayMs'> {
  return {
    segmentBytes: config['segment.bytes'],
    segmentMs: config['segment.ms'],
    indexIntervalBytes: config['index.interval.bytes'],
    segmentIndexBytes: config['segment.index.bytes'],
    flush: config.flush as FlushPolicy,
    flushIntervalMs: config['flush.interval.ms'],
    retentionMs: config['retention.ms'],
    retentionBytes: config['retention.bytes'],
    cleanupPolicy: config['cleanup.policy'] as CleanupPolicy,
    deleteRetentionMs: config['delete.retention.ms'],
    minCompactionLagMs: config['min.compaction.lag.ms'],
    maxMessageBytes: config['max.message.bytes'],
    logAppendTime: config['message.timestamp.type'] === 'LogAppendTime',
  };
}

/** Codec for batches the broker builds itself: 'producer' and 'uncompressed' mean none. */
export function brokerBatchCompression(type: CompressionType): Exclude<CompressionType, 'producer' | 'uncompressed'> | 'none' {
  return type === 'producer' || type === 'uncompressed' ? 'none' : type;
}
