// The log's options: defaults (each with its reason), validation, and the bounds the parts
// share. Options change at run time (updateOptions): parts read them through a getter, never
// keep a copy.
import { RECORDS } from '../core/index.js';
import { BrokerError } from '../errors/index.js';
import type { LogOptions } from './api.js';

/** Everything a log can be told, with defaults chosen for an SD-card gateway. */
export const defaultLogOptions: Required<LogOptions> = {
  // 128 MiB (Kafka: 1 GiB): an unclean restart rescans at most one active segment, and retention frees space in smaller steps on a small card.
  segmentBytes: 128 * 1024 * 1024,
  // 7 days (Kafka's segment.ms): a quiet topic still rolls, so time retention can delete it.
  segmentMs: 7 * 24 * 3600 * 1000,
  // 4 KiB (Kafka): a read scans at most ~4 KiB of headers past an index entry; 8 bytes of index per 4 KiB of log.
  indexIntervalBytes: 4096,
  // 10 MiB (Kafka): room for ~1.3 M entries, far more than a 128 MiB segment needs; preallocated sparse, trimmed on roll.
  segmentIndexBytes: 10 * 1024 * 1024,
  // Acknowledge only what is on the card: gateways lose power (architecture.md, "durability is the edge default").
  flush: 'always',
  // 1 s: with flush=interval, at most one second of acknowledged writes is at risk.
  flushIntervalMs: 1000,
  // 7 days (Kafka's retention.ms).
  retentionMs: 7 * 24 * 3600 * 1000,
  // Unbounded by size (Kafka): set it on small cards.
  retentionBytes: -1,
  cleanupPolicy: 'delete',
  // 1 day (Kafka's delete.retention.ms): how long a tombstone survives compaction.
  deleteRetentionMs: 24 * 3600 * 1000,
  // 0 (Kafka): any record in a closed segment may be compacted.
  minCompactionLagMs: 0,
  // 1 MiB + 12 (Kafka's max.message.bytes): the largest batch accepted.
  maxMessageBytes: 1048588,
  logAppendTime: false,
  injectedFlushDelayMs: 0,
  // 16 MiB: a batch may inflate to at most this when decompressed for verification (zip-bomb bound).
  maxDecompressedBytes: 16 * 1024 * 1024,
  // 64 MiB of appends waiting for the disk per partition; past it appends fail with LIMIT_EXCEEDED (retriable).
  maxPendingAppendBytes: 64 * 1024 * 1024,
  // 8 read fds per partition (plus the active segment's): catch-up readers of old segments reuse them, a Pi's fd limit is not spent.
  maxOpenSegmentFiles: 8,
  // 8 MiB of closed segments' index entries in memory per partition (a 128 MiB segment's index is ~256 KiB).
  indexCacheBytes: 8 * 1024 * 1024,
  // 10 000 idempotent producers remembered per partition (Kafka bounds them by expiry only); least recent forgotten first.
  maxProducerIds: 10_000,
  // 1 day (Kafka's producer.id.expiration.ms): an idle producer's sequence state is dropped after this.
  producerIdExpirationMs: 24 * 3600 * 1000,
  // Check CRCs of batches served from segments not verified since start (old segments): a flipped bit on the card is reported, not served.
  verifyOldSegmentReads: true,
  // 2 snapshots kept: the newest plus one older in case the newest is damaged.
  producerSnapshotsKept: 2,
  // 16 MiB for compaction's key map: ~200k distinct keys of 20 bytes per run; more keys are cleaned over several runs.
  compactionMapBytes: 16 * 1024 * 1024,
};

/** Sanity bound on a batch length read from disk (independent of max.message.bytes, which may have been lowered since). */
export const MAX_BATCH_BYTES_ON_DISK = 1 << 30;
/** positions are u32 in the index; Kafka caps segment.bytes at Int.MAX too */
const MAX_SEGMENT_BYTES = 2 ** 31 - 1;
/** A segment never spans more offsets than a u32 relative offset holds (rolled before). */
export const MAX_RELATIVE_OFFSET = 2 ** 32 - 1;

/** Defaults, then `options` (undefined keys ignored), validated. */
export function resolveOptions(base: Required<LogOptions>, options: Partial<LogOptions>): Required<LogOptions> {
  return validateOptions({ ...base, ...stripUndefined(options) });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

export function validateOptions(o: Required<LogOptions>): Required<LogOptions> {
  const bad = (name: string, why: string) => new BrokerError('INVALID_CONFIG', `log option ${name}=${(o as Record<string, unknown>)[name]}: ${why}`);
  const intIn = (name: keyof LogOptions, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const v = o[name] as number;
    if (!Number.isSafeInteger(v) || v < min || v > max) throw bad(name, `must be an integer in [${min}, ${max}]`);
  };
  intIn('segmentBytes', RECORDS + 1, MAX_SEGMENT_BYTES);
  intIn('segmentMs', 1);
  intIn('indexIntervalBytes', 0);
  intIn('segmentIndexBytes', 12 * 2, 2 ** 31 - 1);
  intIn('flushIntervalMs', 1);
  intIn('retentionMs', -1);
  intIn('retentionBytes', -1);
  intIn('deleteRetentionMs', 0);
  intIn('minCompactionLagMs', 0);
  intIn('maxMessageBytes', RECORDS);
  intIn('injectedFlushDelayMs', 0, 60_000);
  intIn('maxDecompressedBytes', 1);
  intIn('maxPendingAppendBytes', 1);
  intIn('maxOpenSegmentFiles', 1);
  intIn('indexCacheBytes', 0);
  intIn('maxProducerIds', 1);
  intIn('producerIdExpirationMs', 1);
  intIn('producerSnapshotsKept', 1);
  intIn('compactionMapBytes', 1);
  if (!['always', 'interval', 'never'].includes(o.flush)) throw bad('flush', 'must be always, interval or never');
  if (!['delete', 'compact', 'compact,delete'].includes(o.cleanupPolicy)) throw bad('cleanupPolicy', 'must be delete, compact or compact,delete');
  return o;
}

