// The partition log's contract with the broker core (host/broker) and, later, the replica
// fetcher (host/cluster). One PartitionLog per partition directory. Offsets and timestamps are
// JS numbers (safe integers). Every method is required: a second implementation (a replicated
// or an in-memory log) must pass test/unit/log/conformance*.ts against this interface.
//
// The log's own offsets (see partition-log.ts, "offset ladder"):
//   logStartOffset ≤ logEndOffset          what can be read (logEndOffset: acknowledged under
//                                          the flush policy; a read never goes past it)
//   logEndOffset ≤ writtenEndOffset        what is in the segment files, fsynced or not: only a
//                                          read with `throughWritten` (a leader serving its
//                                          followers) goes past logEndOffset, up to it
// The broker adds the high watermark on top (≤ logEndOffset; equal on one node) and passes it
// to `read` as `upTo` for every client read.

import type { BrokerError } from '../errors/index.js';

/** When an append is acknowledged: after an fsync covering it, on an interval, or never forced. */
export type FlushPolicy = 'always' | 'interval' | 'never';
/** Kafka's cleanup.policy: delete old segments, keep the latest record per key, or both. */
export type CleanupPolicy = 'delete' | 'compact' | 'compact,delete';

export interface LogOptions {
  segmentBytes: number; // roll when the active segment would pass this
  segmentMs: number; // roll when the active segment is older than this
  indexIntervalBytes: number; // one sparse index entry per this many log bytes
  segmentIndexBytes: number; // max size of one .index/.timeindex file
  flush: FlushPolicy;
  flushIntervalMs: number;
  retentionMs: number; // -1 = forever
  retentionBytes: number; // -1 = unbounded
  cleanupPolicy: CleanupPolicy;
  deleteRetentionMs: number;
  minCompactionLagMs: number;
  maxMessageBytes: number;
  logAppendTime: boolean; // message.timestamp.type = LogAppendTime
  /** Bench/test only: extra delay added to every fsync to imitate an SD card. */
  injectedFlushDelayMs?: number;
  // --- the log's own limits (optional: defaults in host/log/options.ts defaultLogOptions) ---
  /** Largest size a batch may decompress to when verified on append (zip-bomb bound). */
  maxDecompressedBytes?: number;
  /** Bytes of appends queued for the disk per partition; past it append fails with LIMIT_EXCEEDED. */
  maxPendingAppendBytes?: number;
  /** Read file descriptors kept open for closed segments (an LRU), per partition. */
  maxOpenSegmentFiles?: number;
  /** Bytes of closed segments' index entries kept in memory (an LRU), per partition. */
  indexCacheBytes?: number;
  /** Idempotent producer ids remembered per partition (least recently used forgotten first). */
  maxProducerIds?: number;
  /** A producer id idle this long is forgotten (Kafka's producer.id.expiration.ms). */
  producerIdExpirationMs?: number;
  /** Check CRCs of batches read from segments not yet verified by this process. */
  verifyOldSegmentReads?: boolean;
  /** Producer-state snapshot files kept. */
  producerSnapshotsKept?: number;
  /** Memory bound of compaction's key map (bytes, approximate). */
  compactionMapBytes?: number;
}

export interface AppendInfo {
  baseOffset: number;
  lastOffset: number;
  maxTimestampMs: number;
  logAppendTimeMs: number; // -1 unless logAppendTime
  recordCount: number;
  /** Set when an idempotent producer retried a batch already in the log: nothing was written. */
  duplicate: boolean;
}

export interface LogReadResult {
  /** Whole batches as stored. */
  records: Uint8Array;
  /** First offset after the returned bytes (the next position to read). */
  nextOffset: number;
}

/** One leader epoch: the epoch and the first offset written in it (KIP-101). */
export interface EpochEntry {
  epoch: number;
  startOffset: number;
}

/** What a read does at a batch failing its CRC (default: serve the readable prefix, go on at the next segment). */
export interface LogReadOptions {
  /** Skip the damaged batch and read on after it (internal topics: a damaged commit never keeps a node down). */
  skipDamaged?: boolean;
  /**
   * Fail with CORRUPT_MESSAGE instead of going on past the damage: a follower's fetch, which
   * would otherwise store a gap where the damaged batches were and count as caught up.
   */
  failOnDamage?: boolean;
  /**
   * Bound the read by the written end instead of the readable end: batches written to the file
   * but not yet covered by an fsync come back too. For a leader serving its followers only: they
   * fsync what they fetch before acknowledging it, so their fsyncs overlap the leader's own,
   * while the high watermark (what clients read) stays within every in-sync replica's fsynced end.
   */
  throughWritten?: boolean;
}

export interface PartitionLogApi {
  readonly logStartOffset: number;
  /** Readable end: everything below it is acknowledged under the flush policy. */
  readonly logEndOffset: number;
  /**
   * End of what is written to the segment files, fsynced or not (≥ logEndOffset; equal once an
   * fsync covers it, and always under flush=interval/never). A crash may take back what lies
   * between the two; a read reaches it only with `throughWritten`.
   */
  readonly writtenEndOffset: number;
  /** Bytes on disk over all segments. */
  readonly sizeBytes: number;
  /** The error that stopped appends for good (until the partition is reopened), or null (health checks). */
  readonly failed: BrokerError | null;
  /**
   * Leader path: verifies (core, deep), checks idempotent-producer sequences, assigns offsets
   * from the log end and stamps `leaderEpoch` into every batch, then writes. Resolves when the
   * flush policy is met; `durable: false` resolves as soon as written.
   */
  appendAsLeader(batches: Uint8Array, options: { leaderEpoch: number; durable: boolean }): Promise<AppendInfo>;
  /**
   * Follower path: stores the leader's batches unchanged (offsets, leader epochs, timestamps).
   * The first batch must start at or after the log end and each batch after the one before
   * (gaps are legal: a compacted leader's log has them); OFFSET_OUT_OF_RANGE otherwise.
   */
  appendAsFollower(batches: Uint8Array, options: { durable: boolean }): Promise<AppendInfo>;
  /**
   * Whole batches from the one containing `offset`, at most `maxBytes` (the first batch comes
   * whole even when larger: KIP-74), never a batch reaching `upTo` or the log end.
   */
  read(offset: number, maxBytes: number, upTo: number, options?: LogReadOptions): Promise<LogReadResult>;
  offsetForTimestamp(timestampMs: number): Promise<{ offset: number; timestampMs: number } | null>;
  /** Largest timestamp in the log and its offset (ListOffsets MAX_TIMESTAMP). */
  maxTimestamp(): { offset: number; timestampMs: number } | null;
  /** Calls `listener` whenever logEndOffset advances (wakes long-poll readers); returns an unsubscribe function. */
  onEndOffsetAdvance(listener: (logEndOffset: number) => void): () => void;
  /** Calls `listener` whenever writtenEndOffset advances (a write returned, before its fsync); returns an unsubscribe function. */
  onWrittenEndAdvance(listener: (writtenEndOffset: number) => void): () => void;
  /**
   * Drops every batch ending at or after `offset` (a batch containing it goes whole); resolves
   * with the new log end. `full` (Kafka's truncateFullyAndStartAt): drops every batch and
   * restarts the log empty at `offset` (log start = log end = offset), even past the old end: a
   * follower whose log ends below its leader's log start (retention ran while it was away).
   */
  truncateTo(offset: number, options?: { full?: boolean }): Promise<number>;
  /** OffsetsForLeaderEpoch (KIP-101/279): see LeaderEpochCache.endOffsetFor. */
  endOffsetForEpoch(epoch: number): { epoch: number; endOffset: number };
  /** The leader-epoch cache (epoch → first offset), oldest first. */
  leaderEpochEntries(): EpochEntry[];
  flush(): Promise<void>;
  /**
   * Deletes segments past retention; returns bytes freed. Never blocks appends. `keepFrom`: a
   * segment holding any offset at or above it is kept whatever its age or size (the uplink's hold
   * on records not yet forwarded under its `block` policy); default: no hold.
   */
  applyRetention(nowMs: number, keepFrom?: number): Promise<number>;
  /**
   * Bytes stored from the batch holding `from` to the batch holding `to` (exclusive), from the
   * segment sizes and the sparse offset index, no file read: an estimate from above by less than
   * index.interval.bytes plus one batch (a closed segment whose index is not in memory is
   * interpolated by offset).
   */
  bytesBetween(from: number, to: number): number;
  compact(nowMs: number): Promise<void>;
  /** The oldest closed segment (newest timestamp in it, -1 if unknown; bytes), or null when only the active one is left. */
  oldestClosedSegment(): { maxTimestampMs: number; sizeBytes: number; nextOffset: number } | null;
  /** Deletes the oldest closed segment whatever its age (the broker's retention budget); returns bytes freed (0: none closed). */
  deleteOldestSegment(): Promise<number>;
  updateOptions(options: Partial<LogOptions>): void;
  /** Clean shutdown: flush, fsync, write the clean-shutdown marker. */
  close(): Promise<void>;
  /** Removes the partition's files (topic deletion). */
  destroy(): Promise<void>;
}
