// The partition log's contract with the broker core (host/broker). One PartitionLog per
// partition directory. Offsets and timestamps are JS numbers (safe integers).
import type { FlushPolicy, CleanupPolicy } from '../broker/api.js';

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
  // --- added by the log (optional: defaults in host/log/partition-log.ts defaultLogOptions) ---
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

export interface PartitionLogApi {
  readonly logStartOffset: number;
  readonly logEndOffset: number;
  /** Bytes on disk over all segments. */
  readonly sizeBytes: number;
  /**
   * Verifies (core), checks producer sequences, assigns offsets, writes. The returned promise
   * resolves when the flush policy is met; `durable: false` resolves as soon as written.
   */
  append(batches: Uint8Array, options: { leaderEpoch: number; durable: boolean }): Promise<AppendInfo>;
  read(offset: number, maxBytes: number): Promise<LogReadResult>;
  offsetForTimestamp(timestampMs: number): Promise<{ offset: number; timestampMs: number } | null>;
  /** Largest timestamp in the log and its offset (ListOffsets MAX_TIMESTAMP). */
  maxTimestamp(): { offset: number; timestampMs: number } | null;
  flush(): Promise<void>;
  /** Deletes segments past retention; returns bytes freed. Never blocks appends. */
  applyRetention(nowMs: number): Promise<number>;
  compact(nowMs: number): Promise<void>;
  updateOptions(options: Partial<LogOptions>): void;
  /** Clean shutdown: flush, fsync, write the clean-shutdown marker. */
  close(): Promise<void>;
  /** Removes the partition's files (topic deletion). */
  destroy(): Promise<void>;
  // --- added by the log ---------------------------------------------------------------------
  /** Called whenever logEndOffset advances (wakes long-poll readers); returns an unsubscribe function. */
  onEndOffsetAdvance?(listener: (logEndOffset: number) => void): () => void;
  /** Follower path: drops every batch ending at or after `offset`; resolves with the new log end offset. */
  truncateTo?(offset: number): Promise<number>;
  /** Leader-epoch cache (epoch → first offset), oldest first. */
  leaderEpochEntries?(): Array<{ epoch: number; startOffset: number }>;
  /** OffsetsForLeaderEpoch: the end offset of `epoch` (start of the next epoch, or the log end). */
  endOffsetForEpoch?(epoch: number): { epoch: number; endOffset: number };
}
