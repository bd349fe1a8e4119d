// One partition's log on disk: a directory of segments (see segment.ts for the file layout),
// producer-state snapshots, and small checkpoints (checkpoints.ts).
//
// Directory:
//   00000000000000000000.log | .index | .timeindex     one segment per base offset
//   <offset>.snapshot                                   idempotent-producer state (producer-state.ts)
//   log-start-offset, recovery-point, leader-epoch-checkpoint, clean-shutdown
//   *.cleaned / *.swap / *.deleted / *.tmp              transient files of compaction and atomic writes
//
// Write path. `append` is one synchronous step up to the queue: verify the batches (core,
// deep), check producer sequences, assign offsets by rewriting baseOffset in the caller's
// buffer (outside the CRC), set the partition leader epoch, restamp for LogAppendTime, apply
// the producer state and push the write on the queue. There is no await between the offset
// assignment and the push, so queue order = offset order = call order. One writer drains the
// queue: consecutive writes go to the file in one writev; a roll happens between writes.
//
// Durability (group commit). With flush=always an append resolves after an fdatasync that
// covers it. One fsync is in flight at a time; when it returns, every append written before
// it started is acknowledged, and if more were written meanwhile the next fsync starts at once
// and covers them all. So N concurrent appenders pay about one fsync per round, not N.
// flush=interval fsyncs every flush.interval.ms, flush=never only at roll and close; both
// acknowledge once written (in the OS page cache). `durable: false` (acks=0) never waits.
//
// Visibility: reads serve only what is acknowledged under the flush policy: with flush=always,
// bytes up to the last completed fsync (a consumer never sees a record a power cut can take
// back); otherwise bytes up to the last completed write. `logEndOffset` is that end.
//
// Recovery: see `recover()`; retention and compaction: `applyRetention()`, `compact()`.
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging.js';
import { LATENCY_BUCKETS_MS, type Counter, type Gauge, type Histogram, type MetricsRegistry } from '../metrics/registry.js';
import { BrokerError } from '../errors/index.js';
import {
  LOG_OVERHEAD,
  RECORDS,
  readInt64,
  restampLogAppendTime,
  setBaseOffset,
  setPartitionLeaderEpoch,
  verifyBatches,
  decodeBatch,
  type BatchHeader,
} from '../core/index.js';
import { crc32cRange } from '../core/crc32c.js';
import type { AppendInfo, LogOptions, LogReadResult, PartitionLogApi } from './api.js';
import { probeBatch, viewOf, type BatchDefect } from './batch.js';
import {
  CLEAN_SHUTDOWN_FILE,
  LEADER_EPOCH_FILE,
  LOG_START_FILE,
  RECOVERY_POINT_FILE,
  LeaderEpochCache,
  readOffsetCheckpoint,
  writeOffsetCheckpoint,
  type EpochEntry,
} from './checkpoints.js';
import {
  closeFd,
  fdatasync,
  fstatSize,
  fsyncDir,
  ftruncate,
  openFd,
  preadFull,
  pwritevAll,
  readFileOrNull,
  sleepMs,
  unlinkIfExists,
  writeFileAtomic,
} from './io.js';
import { ProducerStateTable, lastSeqOf, type ProducerEntry } from './producer-state.js';
import { scanBatches } from './scan.js';
import {
  CLEANED_SUFFIX,
  DELETED_SUFFIX,
  INDEX_SUFFIX,
  LOG_SUFFIX,
  SNAPSHOT_SUFFIX,
  SWAP_SUFFIX,
  Segment,
  TIME_INDEX_SUFFIX,
  fileNameFor,
  parseBaseOffset,
} from './segment.js';
import { OffsetIndex, TimeIndex } from './sparse-index.js';
import { compactSegments } from './compaction.js';

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
const MAX_BATCH_BYTES_ON_DISK = 1 << 30;
/** At most this many bytes go to the file in one writev. */
const WRITE_RUN_BYTES_MAX = 8 * 1024 * 1024;
const EMPTY = new Uint8Array(0);
const MAX_SEGMENT_BYTES = 2 ** 31 - 1; // positions are u32 in the index; Kafka caps segment.bytes at Int.MAX too
const MAX_RELATIVE_OFFSET = 2 ** 32 - 1;

interface PendingWrite {
  bytes: Uint8Array;
  headers: BatchHeader[];
  info: AppendInfo;
  durable: boolean;
  resolve: (info: AppendInfo) => void;
  reject: (err: unknown) => void;
}

interface OffsetWaiter {
  /** Resolve when the watched end reaches this offset. */
  offset: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface LogMetrics {
  appendedBytes: Counter;
  appendedRecords: Counter;
  fsyncs: Counter;
  fsyncMs: Histogram;
  segments: Gauge;
  recoverySeconds: Gauge;
  truncatedBytes: Counter;
  corruptions: Counter;
}

export interface RecoveryReport {
  clean: boolean;
  /** True when the partition had no segment yet (a new log): nothing was recovered. */
  created?: boolean;
  durationMs: number;
  scannedBytes: number;
  truncatedBytes: number;
  segmentsScanned: number;
  segmentsDeleted: number;
}

export class PartitionLog implements PartitionLogApi {
  private options: Required<LogOptions>;
  private readonly logger: Logger;
  private readonly label: { partition: string };
  private readonly metrics: LogMetrics | null;

  private segments: Segment[] = [];
  private active!: Segment;
  private _logStartOffset = 0;
  /** Next offset to assign. */
  private nextOffset = 0;
  /** Offset after the last completed write. */
  private writtenOffset = 0;
  /** Offset after the last batch covered by a completed fsync. */
  private durableOffset = 0;
  /** Readable end (see "Visibility"). */
  private visibleOffset = 0;
  private visibleSegment!: Segment;
  private visiblePosition = 0;
  private totalBytes = 0;

  private readonly queue: PendingWrite[] = [];
  private pendingBytes = 0;
  private drainScheduled = false;
  private writerChain: Promise<unknown> = Promise.resolve();
  private writerTasks = 0;
  private maintenanceChain: Promise<unknown> = Promise.resolve();
  private fsyncing = false;
  private fsyncAgain = false;
  private durableWaiters: OffsetWaiter[] = [];
  private visibleWaiters: OffsetWaiter[] = [];
  private readonly endListeners = new Set<(logEndOffset: number) => void>();
  private flushTimer: NodeJS.Timeout | null = null;

  private readonly fdCache = new Set<Segment>();
  private readonly indexCache = new Set<Segment>();
  private readonly indexLoading = new Map<Segment, Promise<void>>();

  private readonly producers: ProducerStateTable;
  private readonly leaderEpochs: LeaderEpochCache;
  private snapshotOffsets: number[] = [];
  /** Compaction's progress in this process (a restart compacts everything once). */
  private compactedUpTo = -1;
  private nextTombstoneExpiryMs = Infinity;

  private failure: BrokerError | null = null;
  private closing = false;
  private closed = false;
  recovery: RecoveryReport = { clean: true, durationMs: 0, scannedBytes: 0, truncatedBytes: 0, segmentsScanned: 0, segmentsDeleted: 0 };

  private constructor(
    readonly dir: string,
    options: LogOptions,
    deps: { logger: Logger; metrics?: MetricsRegistry; topicPartition?: string },
  ) {
    this.options = validateOptions({ ...defaultLogOptions, ...stripUndefined(options) });
    const name = deps.topicPartition ?? basename(dir);
    this.label = { partition: name };
    this.logger = deps.logger.child({ component: 'log', partition: name });
    this.metrics = deps.metrics ? createMetrics(deps.metrics) : null;
    this.producers = new ProducerStateTable(this.options.maxProducerIds);
    this.leaderEpochs = new LeaderEpochCache(dir);
  }

  /** Opens (creating if needed) the log in `dir`, recovering it if it was not closed cleanly. */
  static async open(
    dir: string,
    options: LogOptions,
    deps: { logger: Logger; metrics?: MetricsRegistry; topicPartition?: string },
  ): Promise<PartitionLog> {
    const log = new PartitionLog(dir, options, deps);
    await log.recover();
    return log;
  }

  // --- offsets ----------------------------------------------------------------------------------

  get logStartOffset(): number {
    return this._logStartOffset;
  }
  get logEndOffset(): number {
    return this.visibleOffset;
  }
  get sizeBytes(): number {
    return this.totalBytes;
  }
  get segmentCount(): number {
    return this.segments.length;
  }
  /** Base offsets of the segments, oldest first (tests, admin). */
  get segmentBaseOffsets(): number[] {
    return this.segments.map((s) => s.baseOffset);
  }
  /** Read descriptors of closed segments currently open (bounded by maxOpenSegmentFiles while idle). */
  get openSegmentFiles(): number {
    return this.fdCache.size;
  }
  /** Bytes of closed segments' index entries in memory (bounded by indexCacheBytes). */
  get cachedIndexBytes(): number {
    return this.indexBytesCached();
  }
  get currentOptions(): Readonly<Required<LogOptions>> {
    return this.options;
  }

  /** Calls `listener` whenever the readable end advances (wakes long-poll readers). Returns an unsubscribe function. */
  onEndOffsetAdvance(listener: (logEndOffset: number) => void): () => void {
    this.endListeners.add(listener);
    return () => this.endListeners.delete(listener);
  }

  // --- append -----------------------------------------------------------------------------------

  append(batches: Uint8Array, options: { leaderEpoch: number; durable: boolean }): Promise<AppendInfo> {
    try {
      return this.appendNow(batches, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Synchronous until the write is queued: nothing may await between offset assignment and the push. */
  private appendNow(batches: Uint8Array, options: { leaderEpoch: number; durable: boolean }): Promise<AppendInfo> {
    this.assertWritable();
    const o = this.options;
    const headers = verifyBatches(batches, {
      maxBatchBytes: o.maxMessageBytes,
      maxDecompressedBytes: o.maxDecompressedBytes,
      deep: true,
      strictOffsets: true,
    });
    let pending: Map<number, { epoch: number; lastSeq: number }> | null = null;
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i];
      if (h.isTransactional || h.isControl) {
        throw new BrokerError('INVALID_RECORD', `batch ${i}: transactional and control batches are not supported (no transaction coordinator)`);
      }
      if (h.recordCount === 0) throw new BrokerError('INVALID_RECORD', 'a produced batch must hold at least one record');
      const check = this.producers.check(h, pending);
      if (check.kind === 'duplicate') return this.duplicate(check.batch);
      if (h.producerId >= 0) {
        (pending ??= new Map()).set(h.producerId, { epoch: h.producerEpoch, lastSeq: lastSeqOf(h) });
      }
    }
    if (this.pendingBytes + batches.byteLength > o.maxPendingAppendBytes && this.pendingBytes > 0) {
      throw new BrokerError(
        'LIMIT_EXCEEDED',
        `partition ${this.label.partition}: ${this.pendingBytes} bytes already wait for the disk (maxPendingAppendBytes ${o.maxPendingAppendBytes})`,
      );
    }
    const firstOffset = this.nextOffset;
    if (firstOffset + batches.byteLength > Number.MAX_SAFE_INTEGER) throw new BrokerError('KAFKA_STORAGE_ERROR', 'offset space exhausted');
    const nowMs = Date.now();
    const leaderEpoch = options.leaderEpoch;
    let offset = firstOffset;
    let pos = 0;
    let maxTimestampMs = -1;
    let recordCount = 0;
    const placed: BatchHeader[] = new Array(headers.length);
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i];
      setBaseOffset(batches, pos, offset);
      setPartitionLeaderEpoch(batches, pos, leaderEpoch);
      let maxTs = h.maxTimestamp;
      if (o.logAppendTime) {
        restampLogAppendTime(batches, pos, nowMs);
        maxTs = nowMs;
      }
      const final: BatchHeader = { ...h, baseOffset: offset, lastOffset: offset + h.lastOffsetDelta, partitionLeaderEpoch: leaderEpoch, maxTimestamp: maxTs };
      placed[i] = final;
      this.producers.apply(final, nowMs);
      if (maxTs > maxTimestampMs) maxTimestampMs = maxTs;
      recordCount += h.recordCount;
      offset += h.lastOffsetDelta + 1;
      pos += h.totalBytes;
    }
    this.leaderEpochs.assign(leaderEpoch, firstOffset);
    this.nextOffset = offset;
    const info: AppendInfo = {
      baseOffset: firstOffset,
      lastOffset: offset - 1,
      maxTimestampMs,
      logAppendTimeMs: o.logAppendTime ? nowMs : -1,
      recordCount,
      duplicate: false,
    };
    return new Promise<AppendInfo>((resolve, reject) => {
      this.queue.push({ bytes: batches, headers: placed, info, durable: options.durable, resolve, reject });
      this.pendingBytes += batches.byteLength;
      this.kickWriter();
    });
  }

  /** A retried batch already in the log: nothing is written; answer once the original is readable. */
  private async duplicate(b: { firstOffset: number; lastOffset: number; maxTimestampMs: number }): Promise<AppendInfo> {
    await this.waitFor(this.visibleWaiters, () => this.visibleOffset, b.lastOffset + 1);
    return {
      baseOffset: b.firstOffset,
      lastOffset: b.lastOffset,
      maxTimestampMs: b.maxTimestampMs,
      logAppendTimeMs: this.options.logAppendTime ? b.maxTimestampMs : -1,
      recordCount: b.lastOffset - b.firstOffset + 1,
      duplicate: true,
    };
  }

  private assertWritable(): void {
    if (this.failure) throw this.failure;
    if (this.closing || this.closed) throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `partition ${this.label.partition} is closing`);
  }

  private kickWriter(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    void this.withWriter(() => this.drain()).catch((err) => this.fail(err));
  }

  /**
   * Writes queued appends until the queue is empty. Pipelining: the appends a write acknowledges
   * are resolved only after the next write has been handed to the kernel (or, when nothing is
   * queued, once the writer is idle again), so their callers' next appends are verified on the
   * main thread while the disk works, instead of the two taking turns.
   */
  private async drain(): Promise<void> {
    let acked: PendingWrite[] = [];
    try {
      while (this.queue.length) {
        const next = this.writeSome(); // dispatches its writev synchronously
        for (const w of acked) w.resolve(w.info);
        acked = await next;
      }
    } finally {
      this.drainScheduled = false;
    }
    if (acked.length) {
      const last = acked;
      // After this job's bookkeeping (writerTasks) settles, so a resumed caller finds the writer idle.
      setImmediate(() => {
        for (const w of last) w.resolve(w.info);
      });
    }
  }

  /** Runs `fn` with the write path to itself (queue drains, rolls, truncation, close). */
  private withWriter<T>(fn: () => Promise<T>): Promise<T> {
    // When the writer is idle the job starts synchronously, so a write is handed to the kernel
    // while the caller goes on verifying the next appends (pipelining CPU and I/O).
    const idle = this.writerTasks === 0;
    this.writerTasks++;
    const run = idle ? fn() : this.writerChain.then(fn, fn);
    const done = run.finally(() => this.writerTasks--);
    this.writerChain = done.catch(() => undefined);
    return done;
  }

  /** One background job at a time (retention, compaction), never blocking appends. */
  private withMaintenance<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.maintenanceChain.then(fn, fn);
    this.maintenanceChain = run.catch(() => undefined);
    return run;
  }

  private needsRoll(seg: Segment, projectedBytes: number, w: PendingWrite, nowMs: number): boolean {
    if (projectedBytes === 0) return false;
    const o = this.options;
    if (projectedBytes + w.bytes.byteLength > o.segmentBytes) return true;
    if (seg.rollBaseMs >= 0 && nowMs - seg.rollBaseMs >= o.segmentMs) return true;
    if (seg.indexFull) return true;
    return w.info.lastOffset - seg.baseOffset > MAX_RELATIVE_OFFSET;
  }

  /**
   * Writes the longest run of queued appends that fits the active segment, in one writev.
   * Returns the appends acknowledged by the write itself (the caller resolves them; see drain).
   */
  private async writeSome(): Promise<PendingWrite[]> {
    if (this.failure) throw this.failure;
    const seg = this.active;
    const nowMs = Date.now();
    const run: PendingWrite[] = [];
    let runBytes = 0;
    while (this.queue.length) {
      const w = this.queue[0];
      if (this.needsRoll(seg, seg.sizeBytes + runBytes, w, nowMs)) {
        if (run.length === 0) {
          await this.roll(w.info.baseOffset);
          return [];
        }
        break;
      }
      this.queue.shift();
      run.push(w);
      runBytes += w.bytes.byteLength;
      if (runBytes >= WRITE_RUN_BYTES_MAX) break;
    }
    if (run.length === 0) return [];
    if (this.leaderEpochs.isDirty) await this.leaderEpochs.persistIfDirty();
    const start = seg.sizeBytes;
    try {
      await pwritevAll(seg.fd!, run.map((w) => w.bytes), start);
    } catch (err) {
      for (const w of run) w.reject(storageError(err));
      throw err;
    }
    let pos = start;
    let records = 0;
    for (const w of run) {
      for (const h of w.headers) {
        seg.track(h, pos, this.options.indexIntervalBytes, nowMs);
        pos += h.totalBytes;
      }
      records += w.info.recordCount;
    }
    this.pendingBytes -= runBytes;
    this.totalBytes += runBytes;
    this.writtenOffset = seg.nextOffset;
    // The active segment's index entries stay in memory until the segment rolls or the log
    // closes (seal writes them): after a crash they are rebuilt from the log anyway, so writing
    // them on every append would only add two syscalls to the write path.
    if (this.metrics) {
      this.metrics.appendedBytes.inc(this.label, runBytes);
      this.metrics.appendedRecords.inc(this.label, records);
    }
    const written: PendingWrite[] = [];
    if (this.options.flush === 'always') {
      for (const w of run) {
        if (w.durable) {
          // Keep only what the acknowledgement needs (not the written bytes) while the fsync runs.
          const { info, resolve, reject } = w;
          this.durableWaiters.push({ offset: info.lastOffset + 1, resolve: () => resolve(info), reject });
        } else written.push(w);
      }
      this.kickFsync();
    } else {
      this.advanceVisible(seg, seg.sizeBytes, seg.nextOffset);
      for (const w of run) written.push(w);
    }
    return written;
  }

  // --- durability -------------------------------------------------------------------------------

  private kickFsync(): void {
    if (this.fsyncing) {
      this.fsyncAgain = true;
      return;
    }
    void this.fsyncLoop();
  }

  /** Group commit: one fdatasync in flight; each covers everything written before it started. */
  private async fsyncLoop(): Promise<void> {
    this.fsyncing = true;
    try {
      do {
        this.fsyncAgain = false;
        const seg = this.active;
        const position = seg.sizeBytes;
        const offset = seg.nextOffset;
        if (offset <= this.durableOffset) continue;
        seg.users++;
        const t0 = performance.now();
        try {
          await fdatasync(seg.fd!);
          if (this.options.injectedFlushDelayMs > 0) await sleepMs(this.options.injectedFlushDelayMs);
        } finally {
          this.release(seg);
        }
        if (this.metrics) {
          this.metrics.fsyncs.inc(this.label);
          this.metrics.fsyncMs.observe(performance.now() - t0, this.label);
        }
        this.advanceDurable(seg, position, offset);
      } while (this.fsyncAgain);
    } catch (err) {
      this.fail(err);
    } finally {
      this.fsyncing = false;
    }
  }

  private advanceDurable(seg: Segment, position: number, offset: number): void {
    if (offset <= this.durableOffset) return;
    this.durableOffset = offset;
    // Durable is always readable (a no-op for interval/never, which are visible once written).
    this.advanceVisible(seg, position, offset);
    this.durableWaiters = settle(this.durableWaiters, offset);
  }

  private advanceVisible(seg: Segment, position: number, offset: number): void {
    if (offset <= this.visibleOffset) return;
    this.visibleOffset = offset;
    this.visibleSegment = seg;
    this.visiblePosition = position;
    if (this.visibleWaiters.length) this.visibleWaiters = settle(this.visibleWaiters, offset);
    for (const l of this.endListeners) {
      try {
        l(offset);
      } catch (err) {
        this.logger.warn({ err }, 'end-offset listener threw');
      }
    }
  }

  private waitFor(list: OffsetWaiter[], current: () => number, offset: number): Promise<void> {
    if (current() >= offset) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => list.push({ offset, resolve, reject }));
  }

  /** Everything appended so far reaches the disk (whatever the flush policy). */
  async flush(): Promise<void> {
    await this.withWriter(async () => undefined);
    const target = this.writtenOffset;
    if (target <= this.durableOffset) return;
    this.kickFsync();
    await this.waitFor(this.durableWaiters, () => this.durableOffset, target);
  }

  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = storageError(err);
    this.logger.error({ err }, 'log failed: no more appends are accepted until the partition is reopened');
    for (const w of this.queue.splice(0)) w.reject(this.failure);
    for (const w of this.durableWaiters.splice(0)) w.reject(this.failure);
    for (const w of this.visibleWaiters.splice(0)) w.reject(this.failure);
  }

  private startFlushTimer(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = null;
    if (this.options.flush !== 'interval') return;
    this.flushTimer = setInterval(() => {
      if (this.writtenOffset > this.durableOffset && !this.failure) this.kickFsync();
    }, this.options.flushIntervalMs);
    this.flushTimer.unref();
  }

  // --- roll -------------------------------------------------------------------------------------

  /** Closes the active segment (durably) and starts a new one at `baseOffset`. Writer only. */
  private async roll(baseOffset: number): Promise<void> {
    const old = this.active;
    old.finalTimeIndexEntry();
    await old.offsetIndex.seal();
    await old.timeIndex.seal();
    old.users++;
    try {
      await fdatasync(old.fd!);
    } finally {
      this.release(old);
    }
    const seg = await this.createSegment(baseOffset);
    old.active = false;
    this.segments.push(seg);
    this.active = seg;
    this.fdCache.add(old);
    this.indexCache.add(old);
    this.evictFds();
    this.evictIndexes();
    this.advanceDurable(old, old.sizeBytes, old.nextOffset);
    if (this.options.flush !== 'always') this.advanceVisible(old, old.sizeBytes, old.nextOffset);
    // Everything below baseOffset is now durable with its indexes: the next recovery starts here.
    await this.writeProducerSnapshot(baseOffset);
    await writeOffsetCheckpoint(this.dir, RECOVERY_POINT_FILE, baseOffset);
    this.metrics?.segments.set(this.segments.length, this.label);
    this.logger.debug({ baseOffset, previousBytes: old.sizeBytes }, 'rolled segment');
  }

  private async createSegment(baseOffset: number): Promise<Segment> {
    const seg = new Segment(this.dir, baseOffset, this.options.segmentIndexBytes);
    seg.fd = await openFd(seg.logPath, 'w+');
    await seg.offsetIndex.create();
    await seg.timeIndex.create();
    await fsyncDir(this.dir);
    seg.active = true;
    seg.uncheckedBelow = 0;
    seg.indexesTrusted = true;
    return seg;
  }

  // --- read -------------------------------------------------------------------------------------

  async read(offset: number, maxBytes: number): Promise<LogReadResult> {
    // A segment deleted (retention) or replaced (compaction) between lookup and open: look again.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.readOnce(offset, maxBytes);
      } catch (err) {
        if (!(err instanceof SegmentGone) || attempt >= 5) throw err;
      }
    }
  }

  private async readOnce(offset: number, maxBytes: number): Promise<LogReadResult> {
    if (this.closed) throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `partition ${this.label.partition} is closed`);
    if (!Number.isSafeInteger(offset)) throw new BrokerError('OFFSET_OUT_OF_RANGE', `offset ${offset} is not an integer`);
    if (!(maxBytes >= 0)) throw new BrokerError('INVALID_FETCH_SIZE', `maxBytes ${maxBytes} is negative`);
    if (offset < this._logStartOffset) {
      throw new BrokerError('OFFSET_OUT_OF_RANGE', `offset ${offset} is below the log start offset ${this._logStartOffset}`);
    }
    if (offset >= this.visibleOffset) return { records: EMPTY, nextOffset: offset };
    let seg: Segment | undefined = this.segments[this.segmentIndexFor(offset)];
    while (seg) {
      const limit = seg === this.visibleSegment ? this.visiblePosition : seg.readableBytes;
      const found = await this.readFromSegment(seg, offset, maxBytes, limit);
      if (found) return found;
      if (seg === this.visibleSegment || seg.baseOffset >= this.visibleOffset) break;
      // Nothing readable at or after `offset` in this segment (damage, or emptied by compaction): go on to the next.
      const i = this.segments.indexOf(seg);
      seg = i >= 0 ? this.segments[i + 1] : this.segments[this.segmentIndexFor(offset) + 1];
    }
    return { records: EMPTY, nextOffset: offset };
  }

  /** Index of the last segment whose base offset is <= offset (0 when below all). */
  private segmentIndexFor(offset: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.segments[mid].baseOffset <= offset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  private async readFromSegment(seg: Segment, offset: number, maxBytes: number, limit: number): Promise<LogReadResult | null> {
    if (limit <= 0) return null;
    const fd = await this.acquire(seg); // held while the index is used: the index cache skips segments in use
    try {
      await this.ensureIndexes(seg);
      const start = await this.locate(seg, fd, offset, limit);
      if (!start) return null;
      const want = Math.max(start.header.totalBytes, Math.min(maxBytes, limit - start.position));
      const out = Buffer.allocUnsafe(want);
      const got = await preadFull(fd, out, 0, want, start.position);
      const view = viewOf(out);
      let end = 0;
      let lastOffset = -1;
      const checkCrc = start.position < seg.uncheckedBelow && this.options.verifyOldSegmentReads;
      while (end + RECORDS <= got) {
        const total = view.getInt32(end + 8) + LOG_OVERHEAD;
        if (total < RECORDS || end + total > got) break;
        if (checkCrc && crc32cRange(out, end + 21, end + total) !== view.getUint32(end + 17)) {
          this.markCorrupt(seg, start.position + end, 'crc-mismatch');
          break;
        }
        lastOffset = readInt64(view, end) + view.getInt32(end + 23);
        end += total;
      }
      if (end === 0) {
        if (got < want) this.markCorrupt(seg, start.position, 'short-batch');
        return null;
      }
      return { records: end === want ? out : out.subarray(0, end), nextOffset: lastOffset + 1 };
    } finally {
      this.release(seg);
    }
  }

  /**
   * Finds the batch containing `offset` (or the first after it) in a segment: sparse index
   * lookup, then a forward walk over batch headers read in chunks.
   */
  private async locate(seg: Segment, fd: number, offset: number, limit: number): Promise<{ position: number; header: BatchHeader } | null> {
    const hint = offset > seg.baseOffset ? seg.offsetIndex.lookup(Math.min(offset - seg.baseOffset, MAX_RELATIVE_OFFSET)).position : 0;
    let pos = Math.min(hint, limit);
    const chunkBytes = Math.max(16 * 1024, 2 * this.options.indexIntervalBytes + RECORDS);
    const chunk = Buffer.allocUnsafe(chunkBytes);
    while (pos < limit) {
      const n = Math.min(chunkBytes, limit - pos);
      const got = await preadFull(fd, chunk, 0, n, pos);
      const buf = chunk.subarray(0, got);
      const view = viewOf(buf);
      let at = 0;
      while (at < got) {
        const probe = probeBatch(view, buf, at, MAX_BATCH_BYTES_ON_DISK, false);
        if (probe.defect === 'short-header' && pos + got < limit) break; // header continues in the next chunk
        if (probe.defect && probe.defect !== 'short-batch') {
          this.markCorrupt(seg, pos + at, probe.defect);
          return null;
        }
        const h = probe.header!;
        if (pos + at + h.totalBytes > limit) {
          this.markCorrupt(seg, pos + at, 'short-batch');
          return null;
        }
        if (h.lastOffset >= offset) return { position: pos + at, header: h };
        at += h.totalBytes;
      }
      if (at === 0 && got === 0) break;
      pos += at;
    }
    return null;
  }

  private markCorrupt(seg: Segment, position: number, defect: BatchDefect): void {
    if (seg.corruptAt >= 0 && seg.corruptAt <= position) return;
    seg.corruptAt = position;
    this.metrics?.corruptions.inc(this.label);
    this.logger.error(
      { segment: seg.baseOffset, position, defect, segmentBytes: seg.sizeBytes, unreadableBytes: seg.sizeBytes - position },
      'damaged batch in a segment: serving its readable prefix; reads past it continue at the next segment',
    );
  }

  // --- fd and index caches ----------------------------------------------------------------------

  private async acquire(seg: Segment): Promise<number> {
    if (seg.deleted && seg.fd === null) throw new SegmentGone();
    seg.users++;
    if (seg.fd !== null) {
      if (!seg.active) {
        this.fdCache.delete(seg);
        this.fdCache.add(seg);
      }
      return seg.fd;
    }
    try {
      if (!seg.fdOpening) {
        seg.fdOpening = openFd(seg.logPath, 'r').then((fd) => {
          if (seg.deleted) {
            // Replaced or removed while opening: this fd may be a different file now.
            void closeFd(fd).catch(() => undefined);
            seg.fdOpening = null;
            throw new SegmentGone();
          }
          seg.fd = fd;
          seg.fdOpening = null;
          this.fdCache.add(seg);
          this.evictFds();
          return fd;
        });
        seg.fdOpening.catch(() => (seg.fdOpening = null));
      }
      return await seg.fdOpening;
    } catch (err) {
      seg.users--;
      if (seg.deleted && (err as NodeJS.ErrnoException).code === 'ENOENT') throw new SegmentGone();
      throw err;
    }
  }

  private release(seg: Segment): void {
    seg.users--;
    if (seg.users === 0 && seg.fd !== null && (seg.deleted || this.closed)) {
      const fd = seg.fd;
      seg.fd = null;
      this.fdCache.delete(seg);
      void closeFd(fd).catch(() => undefined);
    } else if (this.fdCache.size > this.options.maxOpenSegmentFiles) this.evictFds();
  }

  private evictFds(): void {
    if (this.fdCache.size <= this.options.maxOpenSegmentFiles) return;
    for (const seg of this.fdCache) {
      if (this.fdCache.size <= this.options.maxOpenSegmentFiles) break;
      if (seg.users > 0 || seg.active || seg.fd === null) continue;
      const fd = seg.fd;
      seg.fd = null;
      this.fdCache.delete(seg);
      void closeFd(fd).catch(() => undefined);
    }
  }

  private indexBytesCached(): number {
    let n = 0;
    for (const s of this.indexCache) n += s.offsetIndex.bytesInMemory + s.timeIndex.bytesInMemory;
    return n;
  }

  private evictIndexes(): void {
    let bytes = this.indexBytesCached();
    for (const seg of this.indexCache) {
      if (bytes <= this.options.indexCacheBytes) break;
      if (seg.active || seg.users > 0 || this.indexLoading.has(seg)) continue;
      bytes -= seg.offsetIndex.bytesInMemory + seg.timeIndex.bytesInMemory;
      seg.offsetIndex.unload();
      seg.timeIndex.unload();
      this.indexCache.delete(seg);
    }
  }

  /** Loads a closed segment's indexes (validating them; rebuilding them from the log when they disagree). */
  private async ensureIndexes(seg: Segment): Promise<void> {
    if (seg.active) return;
    if (seg.offsetIndex.loaded && seg.timeIndex.loaded) {
      this.indexCache.delete(seg);
      this.indexCache.add(seg);
      return;
    }
    let loading = this.indexLoading.get(seg);
    if (!loading) {
      loading = this.loadIndexes(seg).finally(() => this.indexLoading.delete(seg));
      this.indexLoading.set(seg, loading);
    }
    await loading;
  }

  private async loadIndexes(seg: Segment): Promise<void> {
    const [oi, ti] = await Promise.all([seg.offsetIndex.readFile(), seg.timeIndex.readFile()]);
    let reason: string | null = null;
    if (!oi || !ti) reason = `${!oi ? 'offset' : 'time'} index missing`;
    else {
      const vo = OffsetIndex.validate(oi, seg.sizeBytes);
      const vt = TimeIndex.validate(ti, MAX_RELATIVE_OFFSET);
      if (!vo.ok) reason = `offset index invalid after entry ${vo.count}`;
      else if (!vt.ok) reason = `time index invalid after entry ${vt.count}`;
      else if (vo.count > 0 && !(await this.indexEntryMatches(seg, oi.readUInt32BE((vo.count - 1) * 8), oi.readUInt32BE((vo.count - 1) * 8 + 4)))) {
        reason = 'last offset-index entry does not point at its batch';
      } else {
        seg.offsetIndex.install(oi, vo.count);
        seg.timeIndex.install(ti, vt.count);
        if (vt.count > 0 && seg.maxTimestampMs < 0) {
          seg.maxTimestampMs = seg.timeIndex.timestampAt(vt.count - 1);
          seg.offsetOfMaxTimestamp = seg.baseOffset + seg.timeIndex.relativeOffsetAt(vt.count - 1);
        }
      }
    }
    if (reason) await this.rebuildIndexes(seg, reason);
    seg.indexesTrusted = true;
    this.indexCache.add(seg);
    this.evictIndexes();
  }

  private async indexEntryMatches(seg: Segment, rel: number, position: number): Promise<boolean> {
    const fd = await this.acquire(seg);
    try {
      const b = Buffer.alloc(RECORDS);
      const got = await preadFull(fd, b, 0, RECORDS, position);
      if (got < RECORDS) return false;
      const probe = probeBatch(viewOf(b), b, 0, MAX_BATCH_BYTES_ON_DISK, false);
      return (probe.defect === undefined || probe.defect === 'short-batch') && probe.header!.baseOffset === seg.baseOffset + rel;
    } finally {
      this.release(seg);
    }
  }

  /** Rebuilds a closed segment's indexes by walking its batch headers, and writes them atomically. */
  private async rebuildIndexes(seg: Segment, reason: string): Promise<void> {
    const fresh = new Segment(this.dir, seg.baseOffset, this.options.segmentIndexBytes);
    fresh.offsetIndex.startInMemory();
    fresh.timeIndex.startInMemory();
    const fd = await this.acquire(seg);
    let result;
    try {
      result = await scanBatches(fd, 0, seg.sizeBytes, { checkCrc: false, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK }, (h, pos) =>
        fresh.track(h, pos, this.options.indexIntervalBytes, h.maxTimestamp),
      );
    } finally {
      this.release(seg);
    }
    if (result.defect) this.markCorrupt(seg, result.defect.position, result.defect.kind);
    fresh.finalTimeIndexEntry();
    const oi = fresh.offsetIndex.entries();
    const ti = fresh.timeIndex.entries();
    await writeFileAtomic(seg.offsetIndex.path, oi);
    await writeFileAtomic(seg.timeIndex.path, ti);
    seg.offsetIndex.install(oi, fresh.offsetIndex.count);
    seg.timeIndex.install(ti, fresh.timeIndex.count);
    seg.maxTimestampMs = fresh.maxTimestampMs;
    seg.offsetOfMaxTimestamp = fresh.offsetOfMaxTimestamp;
    this.logger.warn({ segment: seg.baseOffset, reason, entries: fresh.offsetIndex.count }, 'rebuilt segment indexes from the log');
  }

  // --- timestamps -------------------------------------------------------------------------------

  async offsetForTimestamp(timestampMs: number): Promise<{ offset: number; timestampMs: number } | null> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.offsetForTimestampOnce(timestampMs);
      } catch (err) {
        if (!(err instanceof SegmentGone) || attempt >= 5) throw err;
      }
    }
  }

  private async offsetForTimestampOnce(timestampMs: number): Promise<{ offset: number; timestampMs: number } | null> {
    for (const seg of [...this.segments]) {
      if (seg.deleted) continue;
      if (!seg.active && seg.maxTimestampMs < 0 && !seg.indexesTrusted) await this.ensureIndexes(seg);
      if (seg.maxTimestampMs < timestampMs) continue;
      const found = await this.findTimestampIn(seg, timestampMs);
      if (found) return found;
    }
    return null;
  }

  private async findTimestampIn(seg: Segment, timestampMs: number): Promise<{ offset: number; timestampMs: number } | null> {
    const fd = await this.acquire(seg);
    try {
      await this.ensureIndexes(seg);
      const entry = seg.timeIndex.lookupBelow(timestampMs);
      const fromOffset = Math.max(entry ? seg.baseOffset + entry.relativeOffset : seg.baseOffset, this._logStartOffset);
      const limit = seg === this.visibleSegment ? this.visiblePosition : seg.readableBytes;
      const start = await this.locate(seg, fd, fromOffset, limit);
      if (!start) return null;
      let found: { position: number; header: BatchHeader } | null = null;
      await scanBatches(fd, start.position, limit, { checkCrc: false, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK, chunkBytes: 64 * 1024 }, (h, position) => {
        if (h.maxTimestamp < timestampMs) return false;
        found = { position, header: h };
        return true;
      });
      if (!found) return null;
      const { position, header } = found as { position: number; header: BatchHeader };
      const bytes = Buffer.allocUnsafe(header.totalBytes);
      await preadFull(fd, bytes, 0, header.totalBytes, position);
      const batch = decodeBatch(bytes, 0, { maxDecompressedBytes: this.options.maxDecompressedBytes });
      for (const rec of batch.records) {
        if (rec.timestampMs >= timestampMs && rec.offset >= this._logStartOffset) return { offset: rec.offset, timestampMs: rec.timestampMs };
      }
      return null;
    } finally {
      this.release(seg);
    }
  }

  maxTimestamp(): { offset: number; timestampMs: number } | null {
    let best: { offset: number; timestampMs: number } | null = null;
    for (const seg of this.segments) {
      if (seg.maxTimestampMs < 0 || seg.offsetOfMaxTimestamp >= this.visibleOffset) continue;
      if (!best || seg.maxTimestampMs > best.timestampMs) best = { offset: seg.offsetOfMaxTimestamp, timestampMs: seg.maxTimestampMs };
    }
    return best;
  }

  // --- leader epochs and producers --------------------------------------------------------------

  /** The leader-epoch cache (epoch → first offset), oldest first. */
  leaderEpochEntries(): EpochEntry[] {
    return this.leaderEpochs.entries.map((e) => ({ ...e }));
  }

  /** OffsetsForLeaderEpoch: end offset of `epoch` (start of the next epoch, or the log end). */
  endOffsetForEpoch(epoch: number): { epoch: number; endOffset: number } {
    return this.leaderEpochs.endOffsetFor(epoch, this.nextOffset);
  }

  /** Idempotent-producer state for `producerId` (tests, admin). */
  producerState(producerId: number): ProducerEntry | undefined {
    const e = this.producers.get(producerId);
    return e ? { ...e, batches: e.batches.map((b) => ({ ...b })) } : undefined;
  }

  private async writeProducerSnapshot(offset: number): Promise<void> {
    this.producers.expire(Date.now() - this.options.producerIdExpirationMs);
    await writeFileAtomic(join(this.dir, fileNameFor(offset, SNAPSHOT_SUFFIX)), this.producers.snapshot(offset));
    if (!this.snapshotOffsets.includes(offset)) this.snapshotOffsets.push(offset);
    this.snapshotOffsets.sort((a, b) => a - b);
    while (this.snapshotOffsets.length > this.options.producerSnapshotsKept) {
      const old = this.snapshotOffsets.shift()!;
      await unlinkIfExists(join(this.dir, fileNameFor(old, SNAPSHOT_SUFFIX)));
    }
  }

  /** Loads the newest usable snapshot at or below `endOffset` and replays the batches after it. */
  private async rebuildProducerState(endOffset: number): Promise<void> {
    for (const off of this.snapshotOffsets.filter((o) => o > endOffset)) {
      await unlinkIfExists(join(this.dir, fileNameFor(off, SNAPSHOT_SUFFIX)));
    }
    this.snapshotOffsets = this.snapshotOffsets.filter((o) => o <= endOffset);
    let from = this.segments[0].baseOffset;
    this.producers.clear();
    for (let i = this.snapshotOffsets.length - 1; i >= 0; i--) {
      const off = this.snapshotOffsets[i];
      const bytes = await readFileOrNull(join(this.dir, fileNameFor(off, SNAPSHOT_SUFFIX)));
      if (bytes && this.producers.load(bytes)) {
        from = off;
        break;
      }
      this.logger.warn({ snapshot: off }, 'producer-state snapshot unreadable; trying an older one');
    }
    if (from >= endOffset) return;
    for (const seg of this.segments) {
      if (seg.nextOffset <= from && seg !== this.active) continue;
      const limit = seg.readableBytes;
      const fd = await this.acquire(seg);
      try {
        await this.ensureIndexes(seg);
        const hint = from > seg.baseOffset ? seg.offsetIndex.lookup(Math.min(from - seg.baseOffset, MAX_RELATIVE_OFFSET)).position : 0;
        await scanBatches(fd, hint, limit, { checkCrc: false, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK }, (h) => {
          if (h.baseOffset >= from && h.lastOffset < endOffset) this.producers.apply(h, h.maxTimestamp > 0 ? h.maxTimestamp : Date.now());
        });
      } finally {
        this.release(seg);
      }
    }
  }

  // --- recovery ---------------------------------------------------------------------------------

  /**
   * Opening a log:
   *  1. finish or discard interrupted work: `.swap` files are renamed into place (a compaction
   *     that had fsynced its result), `.cleaned`, `.deleted` and `.tmp` files are removed;
   *  2. segments wholly below the log-start checkpoint are deleted (retention that crashed
   *     between checkpoint and unlink);
   *  3. with the clean-shutdown marker: indexes are trusted, the active segment's tail is walked
   *     from its last index entry, producer state comes from the snapshot at the log end;
   *  4. without it: every segment from the one holding the recovery point is walked with CRC
   *     checks; the first short, mis-sized, bad-magic or CRC-failing batch is the end of the
   *     log: the file is cut there and later segments are deleted (each logged with bytes and
   *     offsets); indexes of walked segments are rebuilt; producer state = newest snapshot +
   *     replay; the leader-epoch cache is cut to the log end;
   *  5. the marker is removed (durably) before the first append.
   */
  private async recover(): Promise<void> {
    const t0 = performance.now();
    await mkdir(this.dir, { recursive: true });
    const report = this.recovery;
    let names = await readdir(this.dir);
    for (const name of names) {
      if (name.endsWith(SWAP_SUFFIX)) {
        const target = name.slice(0, -SWAP_SUFFIX.length);
        const base = parseBaseOffset(target, LOG_SUFFIX);
        if (base !== null) {
          // The old segment's indexes describe the old file: drop them (rebuilt on first use).
          await unlinkIfExists(join(this.dir, fileNameFor(base, INDEX_SUFFIX)));
          await unlinkIfExists(join(this.dir, fileNameFor(base, TIME_INDEX_SUFFIX)));
        }
        await rename(join(this.dir, name), join(this.dir, target));
        await fsyncDir(this.dir);
        this.logger.warn({ file: target }, 'completed an interrupted compaction swap');
      } else if (name.endsWith(CLEANED_SUFFIX) || name.endsWith(DELETED_SUFFIX) || name.endsWith('.tmp')) {
        await unlinkIfExists(join(this.dir, name));
      }
    }
    names = await readdir(this.dir);
    const clean = names.includes(CLEAN_SHUTDOWN_FILE);
    report.clean = clean;
    const logStartCk = await readOffsetCheckpoint(this.dir, LOG_START_FILE);
    const recoveryPoint = clean ? null : await readOffsetCheckpoint(this.dir, RECOVERY_POINT_FILE);
    this.snapshotOffsets = names
      .map((n) => parseBaseOffset(n, SNAPSHOT_SUFFIX))
      .filter((n): n is number => n !== null)
      .sort((a, b) => a - b);
    const bases = names
      .map((n) => parseBaseOffset(n, LOG_SUFFIX))
      .filter((n): n is number => n !== null)
      .sort((a, b) => a - b);
    // Index files without a log are leftovers of a deletion interrupted by a crash.
    for (const n of names) {
      const b = parseBaseOffset(n, INDEX_SUFFIX) ?? parseBaseOffset(n, TIME_INDEX_SUFFIX);
      if (b !== null && !bases.includes(b)) await unlinkIfExists(join(this.dir, n));
    }
    await this.leaderEpochs.load();

    if (bases.length === 0) {
      // No segment on disk: a new partition (or one whose files were all removed), nothing to
      // recover, so no "unclean shutdown" to report.
      report.clean = true;
      report.created = true;
      const start = logStartCk ?? 0;
      this._logStartOffset = start;
      const seg = await this.createSegment(start);
      this.segments = [seg];
      this.active = seg;
      this.nextOffset = this.writtenOffset = this.durableOffset = this.visibleOffset = start;
      this.visibleSegment = seg;
      this.leaderEpochs.truncateFromEnd(start);
      await this.leaderEpochs.persistIfDirty();
      await this.rebuildProducerState(start);
      await writeOffsetCheckpoint(this.dir, LOG_START_FILE, start);
      await unlinkIfExists(join(this.dir, CLEAN_SHUTDOWN_FILE));
      this.finishOpen(t0);
      return;
    }

    let logStart = Math.max(logStartCk ?? bases[0], bases[0]);
    while (bases.length > 1 && bases[1] <= logStart) {
      const b = bases.shift()!;
      await this.deleteSegmentFiles(b);
      report.segmentsDeleted++;
      this.logger.info({ segment: b, logStartOffset: logStart }, 'deleted segment below the log start offset');
    }
    this.segments = bases.map((b) => new Segment(this.dir, b, this.options.segmentIndexBytes));
    for (let i = 0; i < this.segments.length; i++) {
      const seg = this.segments[i];
      const fd = await openFd(seg.logPath, 'r');
      try {
        seg.sizeBytes = await fstatSize(fd);
      } finally {
        await closeFd(fd);
      }
      seg.nextOffset = i + 1 < this.segments.length ? this.segments[i + 1].baseOffset : seg.baseOffset;
    }

    // Which segments get the full CRC walk.
    let firstScanned = this.segments.length - 1;
    if (!clean) {
      firstScanned = recoveryPoint === null ? 0 : Math.max(0, this.segmentIndexForList(recoveryPoint));
    }
    for (let i = 0; i < firstScanned; i++) await this.readLastTimeEntry(this.segments[i]);

    for (let i = firstScanned; i < this.segments.length; i++) {
      const seg = this.segments[i];
      const isLast = i === this.segments.length - 1;
      const fresh = new Segment(this.dir, seg.baseOffset, this.options.segmentIndexBytes);
      fresh.offsetIndex.startInMemory();
      fresh.timeIndex.startInMemory();
      let scanFrom = 0;
      if (clean) {
        // Trusted: continue from the last index entry of the (last) segment.
        const oi = await seg.offsetIndex.readFile();
        const ti = await seg.timeIndex.readFile();
        const vo = oi ? OffsetIndex.validate(oi, seg.sizeBytes) : { ok: false, count: 0 };
        const vt = ti ? TimeIndex.validate(ti, MAX_RELATIVE_OFFSET) : { ok: false, count: 0 };
        if (oi && ti && vo.ok && vt.ok && vo.count > 0) {
          const rel = oi.readUInt32BE((vo.count - 1) * 8);
          const position = oi.readUInt32BE((vo.count - 1) * 8 + 4);
          seg.fd = await openFd(seg.logPath, 'r+');
          const matches = await this.indexEntryMatches(seg, rel, position);
          await closeFd(seg.fd);
          seg.fd = null;
          if (matches) {
            fresh.offsetIndex.install(Buffer.from(oi.subarray(0, vo.count * 8)), vo.count);
            fresh.timeIndex.install(Buffer.from(ti.subarray(0, vt.count * 12)), vt.count);
            fresh.sizeBytes = position;
            fresh.nextOffset = seg.baseOffset + rel;
            if (vt.count > 0) {
              fresh.maxTimestampMs = fresh.timeIndex.timestampAt(vt.count - 1);
              fresh.offsetOfMaxTimestamp = seg.baseOffset + fresh.timeIndex.relativeOffsetAt(vt.count - 1);
            }
            scanFrom = position;
          }
        } else if (oi && ti && vo.ok && vt.ok) {
          fresh.offsetIndex.install(Buffer.alloc(0), 0);
          fresh.timeIndex.install(Buffer.from(ti.subarray(0, vt.count * 12)), vt.count);
          if (vt.count > 0) {
            fresh.maxTimestampMs = fresh.timeIndex.timestampAt(vt.count - 1);
            fresh.offsetOfMaxTimestamp = seg.baseOffset + fresh.timeIndex.relativeOffsetAt(vt.count - 1);
          }
        }
        if (!(oi && ti && vo.ok && vt.ok)) this.logger.warn({ segment: seg.baseOffset }, 'active segment indexes invalid after a clean shutdown: rebuilding');
      }
      const fd = await openFd(seg.logPath, 'r+');
      const sizeOnDisk = seg.sizeBytes;
      let result;
      try {
        result = await scanBatches(fd, scanFrom, sizeOnDisk, { checkCrc: !clean, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK }, (h, pos) => {
          fresh.track(h, pos, this.options.indexIntervalBytes, h.maxTimestamp);
          if (!clean) this.leaderEpochs.assign(h.partitionLeaderEpoch, h.baseOffset);
        });
        report.scannedBytes += sizeOnDisk - scanFrom;
        report.segmentsScanned++;
        if (result.validEnd < sizeOnDisk) {
          const cut = sizeOnDisk - result.validEnd;
          this.logger.warn(
            {
              segment: seg.baseOffset,
              truncatedBytes: cut,
              at: result.validEnd,
              defect: result.defect?.kind ?? 'short-header',
              lastValidOffset: fresh.nextOffset - 1,
              firstLostOffset: fresh.nextOffset,
            },
            'recovery: truncated the log at the first invalid batch',
          );
          await ftruncate(fd, result.validEnd);
          await fdatasync(fd);
          report.truncatedBytes += cut;
          this.metrics?.truncatedBytes.inc(this.label, cut);
          seg.sizeBytes = result.validEnd;
        }
      } catch (err) {
        await closeFd(fd).catch(() => undefined);
        throw err;
      }
      seg.nextOffset = fresh.nextOffset;
      seg.maxTimestampMs = fresh.maxTimestampMs;
      seg.offsetOfMaxTimestamp = fresh.offsetOfMaxTimestamp;
      seg.bytesSinceIndexEntry = fresh.bytesSinceIndexEntry;
      seg.rollBaseMs = fresh.sizeBytes > 0 ? Date.now() : -1;
      // CRC-checked by this process when walked with CRCs (unclean recovery); after a clean
      // shutdown only what gets appended from now on is.
      seg.uncheckedBelow = clean ? seg.sizeBytes : 0;
      const truncatedHere = result.validEnd < sizeOnDisk;
      if (truncatedHere && i < this.segments.length - 1) {
        // Everything after the first invalid batch is gone, including later segments.
        for (const later of this.segments.splice(i + 1)) {
          report.truncatedBytes += later.sizeBytes;
          this.logger.warn({ segment: later.baseOffset, bytes: later.sizeBytes }, 'recovery: deleted a segment that follows the truncation point');
          await this.deleteSegmentFiles(later.baseOffset);
          report.segmentsDeleted++;
        }
      }
      if (isLast || truncatedHere) {
        seg.fd = fd;
        seg.active = true;
        await seg.offsetIndex.reopenActive(fresh.offsetIndex.entries(), fresh.offsetIndex.count);
        await seg.timeIndex.reopenActive(fresh.timeIndex.entries(), fresh.timeIndex.count);
        seg.indexesTrusted = true;
        this.active = seg;
        break;
      }
      await closeFd(fd);
      fresh.finalTimeIndexEntry();
      seg.maxTimestampMs = fresh.maxTimestampMs;
      seg.offsetOfMaxTimestamp = fresh.offsetOfMaxTimestamp;
      await writeFileAtomic(seg.offsetIndex.path, fresh.offsetIndex.entries());
      await writeFileAtomic(seg.timeIndex.path, fresh.timeIndex.entries());
      seg.offsetIndex.install(fresh.offsetIndex.entries(), fresh.offsetIndex.count);
      seg.timeIndex.install(fresh.timeIndex.entries(), fresh.timeIndex.count);
      seg.indexesTrusted = true;
      this.indexCache.add(seg);
    }

    const end = this.active.nextOffset;
    logStart = Math.min(logStart, end);
    this._logStartOffset = logStart;
    this.nextOffset = this.writtenOffset = this.durableOffset = end;
    this.visibleOffset = end;
    this.visibleSegment = this.active;
    this.visiblePosition = this.active.sizeBytes;
    this.totalBytes = this.segments.reduce((n, s) => n + s.sizeBytes, 0);
    if (!clean) this.leaderEpochs.truncateFromEnd(end);
    this.leaderEpochs.truncateFromStart(logStart);
    await this.leaderEpochs.persistIfDirty();
    if (!clean || !this.snapshotOffsets.includes(end)) await this.rebuildProducerState(end);
    else {
      const bytes = await readFileOrNull(join(this.dir, fileNameFor(end, SNAPSHOT_SUFFIX)));
      if (!bytes || !this.producers.load(bytes)) await this.rebuildProducerState(end);
    }
    await writeOffsetCheckpoint(this.dir, LOG_START_FILE, logStart);
    if (await unlinkIfExists(join(this.dir, CLEAN_SHUTDOWN_FILE))) await fsyncDir(this.dir);
    this.finishOpen(t0);
  }

  private segmentIndexForList(offset: number): number {
    let found = 0;
    for (let i = 0; i < this.segments.length; i++) if (this.segments[i].baseOffset <= offset) found = i;
    return found;
  }

  /** A closed segment's max timestamp from the last entry of its time index (12 bytes read). */
  private async readLastTimeEntry(seg: Segment): Promise<void> {
    let fd: number;
    try {
      fd = await openFd(seg.timeIndex.path, 'r');
    } catch {
      return; // missing: rebuilt on first use
    }
    try {
      const size = await fstatSize(fd);
      if (size < 12 || size % 12 !== 0) return;
      const b = Buffer.alloc(12);
      await preadFull(fd, b, 0, 12, size - 12);
      const ts = Number(b.readBigInt64BE(0));
      seg.maxTimestampMs = ts;
      seg.offsetOfMaxTimestamp = seg.baseOffset + b.readUInt32BE(8);
    } finally {
      await closeFd(fd);
    }
  }

  private finishOpen(t0: number): void {
    this.segments.forEach((s) => (s.active = s === this.active));
    this.startFlushTimer();
    this.recovery.durationMs = performance.now() - t0;
    this.metrics?.segments.set(this.segments.length, this.label);
    this.metrics?.recoverySeconds.set(this.recovery.durationMs / 1000, this.label);
    const r = this.recovery;
    this.logger.info(
      {
        clean: r.clean,
        durationMs: Math.round(r.durationMs),
        scannedBytes: r.scannedBytes,
        truncatedBytes: r.truncatedBytes,
        segments: this.segments.length,
        logStartOffset: this._logStartOffset,
        logEndOffset: this.nextOffset,
      },
      r.created ? 'log created' : r.clean ? 'log opened after a clean shutdown' : 'log recovered after an unclean shutdown',
    );
  }

  private async deleteSegmentFiles(base: number): Promise<void> {
    for (const suffix of [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]) await unlinkIfExists(join(this.dir, fileNameFor(base, suffix)));
  }

  // --- retention --------------------------------------------------------------------------------

  /**
   * Deletes whole segments past retention.ms (by the segment's largest timestamp) or beyond
   * retention.bytes (oldest first), advancing the log start offset. The active segment is
   * deleted only as Kafka does: when every segment is past retention.ms, the active one is
   * rolled first (so the log keeps an empty active segment at the log end). Runs beside
   * appends; readers holding a deleted segment keep reading the unlinked file (POSIX).
   */
  applyRetention(nowMs: number): Promise<number> {
    return this.withMaintenance(() => this.retain(nowMs));
  }

  private async retain(nowMs: number): Promise<number> {
    if (this.closed || this.closing || this.failure) return 0;
    const o = this.options;
    if (!o.cleanupPolicy.includes('delete')) return 0;
    const expired = (s: Segment) => o.retentionMs >= 0 && s.maxTimestampMs >= 0 && s.maxTimestampMs < nowMs - o.retentionMs;
    if (o.retentionMs >= 0 && this.active.sizeBytes > 0 && this.segments.every((s) => s === this.active || expired(s)) && expired(this.active)) {
      await this.withWriter(async () => {
        if (this.active.sizeBytes > 0 && this.queue.length === 0) await this.roll(this.nextOffset);
      });
    }
    const victims: Segment[] = [];
    for (const seg of this.segments) {
      if (seg.active) break;
      if (seg.maxTimestampMs < 0 && seg.sizeBytes > 0) await this.ensureIndexes(seg);
      if (expired(seg)) victims.push(seg);
      else break;
    }
    if (o.retentionBytes >= 0) {
      let excess = this.totalBytes - victims.reduce((n, s) => n + s.sizeBytes, 0) - o.retentionBytes;
      for (const seg of this.segments.slice(victims.length)) {
        if (seg.active || excess < seg.sizeBytes) break;
        victims.push(seg);
        excess -= seg.sizeBytes;
      }
    }
    if (victims.length === 0) return 0;
    const next = this.segments[victims.length];
    const newStart = Math.max(this._logStartOffset, next.baseOffset);
    await this.advanceLogStart(newStart);
    let freed = 0;
    for (const seg of victims) freed += await this.removeSegment(seg);
    this.logger.info({ segments: victims.map((s) => s.baseOffset), freedBytes: freed, logStartOffset: newStart }, 'retention deleted segments');
    return freed;
  }

  /** Moves the log start forward (persisted before any file goes). */
  private async advanceLogStart(offset: number): Promise<void> {
    if (offset <= this._logStartOffset) return;
    this._logStartOffset = offset;
    await writeOffsetCheckpoint(this.dir, LOG_START_FILE, offset);
    this.leaderEpochs.truncateFromStart(offset);
    await this.leaderEpochs.persistIfDirty();
  }

  private async removeSegment(seg: Segment): Promise<number> {
    const i = this.segments.indexOf(seg);
    if (i >= 0) this.segments.splice(i, 1);
    seg.deleted = true;
    this.totalBytes -= seg.sizeBytes;
    this.fdCache.delete(seg);
    this.indexCache.delete(seg);
    seg.offsetIndex.unload();
    seg.timeIndex.unload();
    await this.deleteSegmentFiles(seg.baseOffset);
    if (seg.users === 0 && seg.fd !== null) {
      const fd = seg.fd;
      seg.fd = null;
      await closeFd(fd).catch(() => undefined);
    }
    this.metrics?.segments.set(this.segments.length, this.label);
    return seg.sizeBytes;
  }

  // --- compaction -------------------------------------------------------------------------------

  /** Compacts closed segments (cleanup.policy includes compact); see compaction.ts. */
  compact(nowMs: number): Promise<void> {
    return this.withMaintenance(async () => {
      if (this.closed || this.closing || this.failure || !this.options.cleanupPolicy.includes('compact')) return;
      const closedSegments = this.segments.filter((s) => !s.active && !s.deleted);
      const cleanable: Segment[] = [];
      for (const seg of closedSegments) {
        if (seg.maxTimestampMs < 0 && seg.sizeBytes > 0) await this.ensureIndexes(seg);
        if (seg.maxTimestampMs > nowMs - this.options.minCompactionLagMs) break;
        cleanable.push(seg);
      }
      if (cleanable.length === 0) return;
      // Nothing closed since the last run and no kept tombstone due: the log is already clean.
      const cleanableEnd = cleanable[cleanable.length - 1].nextOffset;
      if (cleanableEnd <= this.compactedUpTo && nowMs < this.nextTombstoneExpiryMs) return;
      const lastBatchOfProducer = new Map<number, number>();
      for (const [id, e] of this.producers.entries()) if (e.batches.length) lastBatchOfProducer.set(id, e.batches[e.batches.length - 1].firstOffset);
      const stats = await compactSegments({
        dir: this.dir,
        segments: cleanable,
        nowMs,
        mapFrom: Math.max(0, this.compactedUpTo),
        options: this.options,
        logger: this.logger,
        lastBatchOfProducer,
        acquire: (s) => this.acquire(s),
        release: (s) => this.release(s),
        replace: (old, fresh) => this.replaceSegment(old, fresh),
      });
      this.compactedUpTo = stats.coveredEnd;
      this.nextTombstoneExpiryMs = stats.nextTombstoneExpiryMs;
    });
  }

  private replaceSegment(old: Segment, fresh: Segment): void {
    const i = this.segments.indexOf(old);
    if (i < 0) return;
    this.segments[i] = fresh;
    this.totalBytes += fresh.sizeBytes - old.sizeBytes;
    old.deleted = true;
    this.fdCache.delete(old);
    this.indexCache.delete(old);
    if (old.users === 0 && old.fd !== null) {
      const fd = old.fd;
      old.fd = null;
      void closeFd(fd).catch(() => undefined);
    }
    this.indexCache.add(fresh);
    this.evictIndexes();
  }

  // --- truncation (follower path) ---------------------------------------------------------------

  /**
   * Removes every batch that ends at or after `offset` (a batch containing `offset` goes whole,
   * as Kafka's truncateTo). A follower calls this before fetching from a new leader. Returns the
   * new log end offset.
   */
  truncateTo(offset: number): Promise<number> {
    return this.withMaintenance(() =>
      this.withWriter(async () => {
        if (this.queue.length) throw new Error('truncateTo with appends in flight');
        if (offset >= this.nextOffset) return this.nextOffset;
        await this.flushUnlocked();
        if (offset <= this._logStartOffset) {
          for (const seg of [...this.segments]) await this.closeSegmentForRemoval(seg);
          const seg = await this.createSegment(offset);
          this.segments = [seg];
          this.active = seg;
          this._logStartOffset = offset;
          await writeOffsetCheckpoint(this.dir, LOG_START_FILE, offset);
          this.totalBytes = 0;
          return this.afterTruncate(offset);
        }
        while (this.segments.length > 1 && this.segments[this.segments.length - 1].baseOffset >= offset) {
          await this.closeSegmentForRemoval(this.segments[this.segments.length - 1]);
        }
        const seg = this.segments[this.segments.length - 1];
        if (!seg.active) {
          await this.ensureIndexes(seg);
          if (seg.fd !== null && seg.users === 0) await closeFd(seg.fd);
          seg.fd = await openFd(seg.logPath, 'r+');
          this.fdCache.delete(seg);
          this.indexCache.delete(seg);
          seg.active = true;
          this.active = seg;
        }
        const fd = seg.fd!;
        const fresh = new Segment(this.dir, seg.baseOffset, this.options.segmentIndexBytes);
        fresh.offsetIndex.startInMemory();
        fresh.timeIndex.startInMemory();
        let cut = -1;
        await scanBatches(fd, 0, seg.sizeBytes, { checkCrc: false, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK }, (h, pos) => {
          if (cut >= 0) return;
          if (h.lastOffset >= offset) {
            cut = pos;
            return;
          }
          fresh.track(h, pos, this.options.indexIntervalBytes, h.maxTimestamp);
        });
        if (cut < 0) cut = fresh.sizeBytes;
        this.totalBytes -= seg.sizeBytes - cut;
        await ftruncate(fd, cut);
        await fdatasync(fd);
        seg.resetStats();
        seg.sizeBytes = fresh.sizeBytes;
        seg.nextOffset = fresh.nextOffset;
        seg.maxTimestampMs = fresh.maxTimestampMs;
        seg.offsetOfMaxTimestamp = fresh.offsetOfMaxTimestamp;
        seg.bytesSinceIndexEntry = fresh.bytesSinceIndexEntry;
        seg.rollBaseMs = fresh.sizeBytes > 0 ? Date.now() : -1;
        await seg.offsetIndex.reopenActive(fresh.offsetIndex.entries(), fresh.offsetIndex.count);
        await seg.timeIndex.reopenActive(fresh.timeIndex.entries(), fresh.timeIndex.count);
        return this.afterTruncate(seg.nextOffset);
      }),
    );
  }

  private async afterTruncate(end: number): Promise<number> {
    this.compactedUpTo = -1;
    this.nextTombstoneExpiryMs = Infinity;
    this.nextOffset = this.writtenOffset = this.durableOffset = end;
    this.visibleOffset = end;
    this.visibleSegment = this.active;
    this.visiblePosition = this.active.sizeBytes;
    this.leaderEpochs.truncateFromEnd(end);
    await this.leaderEpochs.persistIfDirty();
    await this.rebuildProducerState(end);
    const rp = (await readOffsetCheckpoint(this.dir, RECOVERY_POINT_FILE)) ?? 0;
    if (rp > end) await writeOffsetCheckpoint(this.dir, RECOVERY_POINT_FILE, this.active.baseOffset);
    this.metrics?.segments.set(this.segments.length, this.label);
    this.logger.info({ logEndOffset: end }, 'log truncated');
    return end;
  }

  private async closeSegmentForRemoval(seg: Segment): Promise<void> {
    if (seg.active) {
      await seg.offsetIndex.closeQuietly();
      await seg.timeIndex.closeQuietly();
      seg.active = false;
    }
    await this.removeSegment(seg);
  }

  private async flushUnlocked(): Promise<void> {
    if (this.writtenOffset > this.durableOffset) {
      this.kickFsync();
      await this.waitFor(this.durableWaiters, () => this.durableOffset, this.writtenOffset);
    }
  }

  // --- options, close, destroy ------------------------------------------------------------------

  updateOptions(options: Partial<LogOptions>): void {
    const before = this.options.flush;
    this.options = validateOptions({ ...this.options, ...stripUndefined(options) });
    // Leaving flush=always: appends waiting for an fsync (and readers waiting to see them) get one now.
    if (before === 'always' && this.options.flush !== 'always' && this.writtenOffset > this.durableOffset) this.kickFsync();
    this.producers.setMaxProducers(this.options.maxProducerIds);
    this.startFlushTimer();
  }

  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = null;
    await this.maintenanceChain;
    await this.withWriter(async () => {
      if (this.failure) return;
      await this.flushUnlocked();
      const seg = this.active;
      seg.finalTimeIndexEntry();
      await seg.offsetIndex.seal();
      await seg.timeIndex.seal();
      await fdatasync(seg.fd!);
      const end = this.nextOffset;
      await this.writeProducerSnapshot(end);
      await this.leaderEpochs.persistIfDirty();
      await writeOffsetCheckpoint(this.dir, LOG_START_FILE, this._logStartOffset);
      await writeOffsetCheckpoint(this.dir, RECOVERY_POINT_FILE, end);
      await writeFileAtomic(join(this.dir, CLEAN_SHUTDOWN_FILE), '');
    });
    this.closed = true;
    await this.closeAllFds();
    this.logger.info({ logEndOffset: this.nextOffset }, 'log closed');
  }

  /** Closes every fd without any of close()'s writes (tests simulating a crash, destroy). */
  async abandon(): Promise<void> {
    this.closing = true;
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.closed = true;
    const gone = new BrokerError('NOT_LEADER_OR_FOLLOWER', `partition ${this.label.partition} was closed without flushing`);
    for (const w of this.queue.splice(0)) w.reject(gone);
    for (const w of this.durableWaiters.splice(0)) w.reject(gone);
    for (const w of this.visibleWaiters.splice(0)) w.reject(gone);
    await this.closeAllFds();
  }

  private async closeAllFds(): Promise<void> {
    for (const seg of this.segments) {
      await seg.offsetIndex.closeQuietly();
      await seg.timeIndex.closeQuietly();
      if (seg.fd !== null && seg.users === 0) {
        const fd = seg.fd;
        seg.fd = null;
        await closeFd(fd).catch(() => undefined);
      }
    }
    this.fdCache.clear();
  }

  async destroy(): Promise<void> {
    if (!this.closed) {
      this.closing = true;
      await this.maintenanceChain.catch(() => undefined);
      await this.withWriter(async () => undefined).catch(() => undefined);
      await this.abandon();
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

// --- helpers ------------------------------------------------------------------------------------

/** A segment went away (retention, compaction) while a reader was about to open it. */
class SegmentGone extends Error {}

function settle(list: OffsetWaiter[], reached: number): OffsetWaiter[] {
  let keep: OffsetWaiter[] | null = null;
  for (const w of list) {
    if (w.offset <= reached) w.resolve();
    else (keep ??= []).push(w);
  }
  return keep ?? [];
}

function storageError(err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  const e = err as NodeJS.ErrnoException;
  return new BrokerError('KAFKA_STORAGE_ERROR', `log storage failed: ${e?.code ?? ''} ${e?.message ?? String(err)}`.trim(), { cause: err });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

function validateOptions(o: Required<LogOptions>): Required<LogOptions> {
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

function createMetrics(r: MetricsRegistry): LogMetrics {
  return {
    appendedBytes: r.counter('tributary_log_appended_bytes_total', 'Bytes of record batches written to partition logs'),
    appendedRecords: r.counter('tributary_log_appended_records_total', 'Records written to partition logs'),
    fsyncs: r.counter('tributary_log_fsyncs_total', 'fdatasync calls made by partition logs (group commit)'),
    fsyncMs: r.histogram('tributary_log_fsync_ms', 'Latency of one partition-log fdatasync (ms)', LATENCY_BUCKETS_MS),
    segments: r.gauge('tributary_log_segments', 'Segments of a partition log'),
    recoverySeconds: r.gauge('tributary_log_recovery_seconds', 'Time the last open of a partition log took (recovery included)'),
    truncatedBytes: r.counter('tributary_log_recovery_truncated_bytes_total', 'Bytes cut from partition logs by recovery'),
    corruptions: r.counter('tributary_log_corrupt_batches_total', 'Damaged batches found in old segments while reading'),
  };
}
