// One partition's log on disk, composed of parts that each own their state:
//
//   SegmentSet  (segment-set.ts)   the segments, read fds and index caches; locate, read, cut
//   Appender    (appender.ts)      the write queue, rolls, group-commit fsync, appends waiting on it
//   loadLog     (loader.ts)        recovery: the directory on disk → a LoadedLog this log is built from
//   Retention   (retention.ts)     retention and compaction runs, one maintenance job at a time
//   ProducerStore, LeaderEpochCache   idempotent-producer state and leader epochs, with their files
//
// This file wires them together and owns the offsets. Directory:
//   00000000000000000000.log | .index | .timeindex     one segment per base offset (segment.ts)
//   <offset>.snapshot                                   idempotent-producer state (producer-state.ts)
//   log-start-offset, recovery-point, leader-epoch-checkpoint, clean-shutdown   (checkpoints.ts)
//   *.cleaned / *.swap / *.deleted / *.tmp              transient files of compaction and atomic writes
//
// The offset ladder, asserted on every change (a violation is a bug here: it throws):
//   next ≥ written ≥ durable        next: the next offset to assign (appends queued up to it),
//                                   written: after the last completed write, durable: after the
//                                   last batch a completed fsync covers;
//   written ≥ visible               visible (= logEndOffset): what reads serve (`throughWritten`:
//                                   up to written = writtenEndOffset, a leader serving followers);
//   durable ≥ visible               with flush=always (the default) a consumer never sees a record
//                                   a power cut can take back. Under flush=interval/never an
//                                   append is acknowledged once written, so visible follows
//                                   written and may lead durable (by what was made visible so).
//
// Write path: `appendAsLeader`/`appendAsFollower` are synchronous up to the queue (verify,
// sequences, offsets: append-batches.ts), so queue order = offset order = call order.
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { BrokerError } from '../errors/index.js';
import type { Logger } from '../logging.js';
import type { MetricsRegistry } from '../metrics/registry.js';
import type { AppendInfo, EpochEntry, LogOptions, LogReadOptions, LogReadResult, PartitionLogApi } from './api.js';
import { prepareFollowerAppend, prepareLeaderAppend, type AppendContext, type PreparedAppend } from './append-batches.js';
import { Appender, isNoSpace, storageError, takeBackRefused, type AppenderHost } from './appender.js';
import { CLEAN_SHUTDOWN_FILE, LOG_START_FILE, RECOVERY_POINT_FILE, LeaderEpochCache, readOffsetCheckpoint, writeOffsetCheckpoint } from './checkpoints.js';
import { writeFileAtomic } from './io.js';
import { loadLog, type LoadedLog, type RecoveryReport } from './loader.js';
import { createMetrics, type LogLabel, type LogMetrics } from './metrics.js';
import { defaultLogOptions, resolveOptions } from './options.js';
import type { ProducerEntry } from './producer-state.js';
import type { ProducerStore } from './producer-store.js';
import { Retention, type RetentionHost } from './retention.js';
import type { Segment } from './segment.js';
import type { ReadBound, SegmentSet } from './segment-set.js';
import { OffsetListeners, OffsetWaiters } from './waiters.js';

export { defaultLogOptions };
export type { RecoveryReport };

export interface LogDeps {
  logger: Logger;
  metrics?: MetricsRegistry;
  topicPartition?: string;
}

/** The options in force; parts read them through it, so updateOptions reaches every part. */
interface OptionsCell {
  current: Required<LogOptions>;
}

export class PartitionLog implements PartitionLogApi {
  private readonly segments: SegmentSet;
  private readonly appender: Appender;
  private readonly retention: Retention;
  private readonly producers: ProducerStore;
  private readonly leaderEpochs: LeaderEpochCache;
  readonly recovery: RecoveryReport;

  // The ladder (see the header); only the methods under "offset ladder" change these.
  private _logStartOffset: number;
  private nextOffset: number;
  private writtenOffset: number;
  private durableOffset: number;
  private visibleOffset: number;
  private visibleSegment: Segment;
  private visiblePosition: number;
  /** Where the written bytes end (a `throughWritten` read's bound), as visibleSegment/Position for visible. */
  private writtenSegment: Segment; private writtenPosition: number;
  /** Highest offset made visible on write alone (flush=interval/never): visible may lead durable up to it. */
  private visibleUnsynced = -1;

  private readonly visibleWaiters = new OffsetWaiters();
  private readonly endListeners = new OffsetListeners((err) => this.logger.warn({ err }, 'end-offset listener threw'));
  private readonly writtenListeners = new OffsetListeners((err) => this.logger.warn({ err }, 'written-end listener threw'));
  private failure: BrokerError | null = null;
  private suspended: BrokerError | null = null; // while the appender rewinds after a full disk (appender.ts)
  private closing = false;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly cell: OptionsCell,
    private readonly logger: Logger,
    private readonly label: LogLabel,
    private readonly metrics: LogMetrics | null,
    loaded: LoadedLog,
  ) {
    this.segments = loaded.segments;
    this.producers = loaded.producers;
    this.leaderEpochs = loaded.leaderEpochs;
    this.recovery = loaded.recovery;
    this._logStartOffset = loaded.logStartOffset;
    this.nextOffset = this.writtenOffset = this.durableOffset = this.visibleOffset = loaded.endOffset;
    this.visibleSegment = this.writtenSegment = this.segments.active;
    this.visiblePosition = this.writtenPosition = this.segments.active.sizeBytes;
    this.assertLadder();
    const deps = { dir, options: () => cell.current, logger, metrics, label };
    this.appender = new Appender(deps, this.segments, this.appenderHost());
    this.retention = new Retention(deps, this.segments, this.retentionHost());
  }

  /** Opens (creating if needed) the log in `dir`, recovering it if it was not closed cleanly. */
  static async open(dir: string, options: LogOptions, deps: LogDeps): Promise<PartitionLog> {
    const cell: OptionsCell = { current: resolveOptions(defaultLogOptions, options) };
    const name = deps.topicPartition ?? basename(dir);
    const label = { partition: name };
    const logger = deps.logger.child({ component: 'log', partition: name });
    const metrics = deps.metrics ? createMetrics(deps.metrics) : null;
    const loaded = await loadLog({ dir, options: () => cell.current, logger, metrics, label });
    const log = new PartitionLog(dir, cell, logger, label, metrics, loaded);
    log.appender.startFlushTimer();
    log.logOpened();
    return log;
  }

  private get options(): Required<LogOptions> {
    return this.cell.current;
  }

  // --- offsets and state ------------------------------------------------------------------------

  get logStartOffset(): number {
    return this._logStartOffset;
  }
  get logEndOffset(): number {
    return this.visibleOffset;
  }
  get writtenEndOffset(): number { return this.writtenOffset; } // ≥ logEndOffset: fsynced or not (api.ts)
  get sizeBytes(): number {
    return this.segments.totalBytes;
  }
  get segmentCount(): number {
    return this.segments.count;
  }
  /** Base offsets of the segments, oldest first (tests, admin). */
  get segmentBaseOffsets(): number[] {
    return this.segments.segments.map((s) => s.baseOffset);
  }
  /** Read descriptors of closed segments currently open (bounded by maxOpenSegmentFiles while idle). */
  get openSegmentFiles(): number {
    return this.segments.openFiles;
  }
  /** Bytes of closed segments' index entries in memory (bounded by indexCacheBytes). */
  get cachedIndexBytes(): number {
    return this.segments.cachedIndexBytes;
  }
  get currentOptions(): Readonly<Required<LogOptions>> {
    return this.options;
  }
  /** The active segment (tests reach it to fail its descriptor). */
  private get active(): Segment {
    return this.segments.active;
  }

  onEndOffsetAdvance = (listener: (logEndOffset: number) => void): (() => void) => this.endListeners.add(listener);
  onWrittenEndAdvance = (listener: (writtenEndOffset: number) => void): (() => void) => this.writtenListeners.add(listener);

  leaderEpochEntries(): EpochEntry[] {
    return this.leaderEpochs.entries.map((e) => ({ ...e }));
  }

  endOffsetForEpoch(epoch: number): { epoch: number; endOffset: number } {
    return this.leaderEpochs.endOffsetFor(epoch, this.nextOffset);
  }

  /** Idempotent-producer state for `producerId` (tests, admin). */
  producerState(producerId: number): ProducerEntry | undefined {
    return this.producers.get(producerId);
  }

  // --- offset ladder ----------------------------------------------------------------------------

  private assertLadder(): void {
    const { nextOffset: n, writtenOffset: w, durableOffset: d, visibleOffset: v } = this;
    if (n >= w && w >= d && w >= v && (d >= v || v <= this.visibleUnsynced)) return;
    throw new Error(`partition ${this.label.partition}: offset ladder broken: next ${n}, written ${w}, durable ${d}, visible ${v} (unsynced ${this.visibleUnsynced})`);
  }

  private assigned(next: number): void {
    this.nextOffset = next;
    this.assertLadder();
  }

  private wrote(seg: Segment, position: number, offset: number): void {
    this.writtenOffset = offset;
    [this.writtenSegment, this.writtenPosition] = [seg, position];
    if (this.options.flush !== 'always') {
      this.visibleUnsynced = offset;
      this.advanceVisible(seg, position, offset);
    }
    this.assertLadder();
    this.writtenListeners.tell(offset);
  }

  private synced(seg: Segment, position: number, offset: number): void {
    this.durableOffset = offset;
    // Durable is always readable (a no-op for interval/never, which are visible once written).
    this.advanceVisible(seg, position, offset);
    this.assertLadder();
  }

  private advanceVisible(seg: Segment, position: number, offset: number): void {
    if (offset <= this.visibleOffset) return;
    this.visibleOffset = offset;
    this.visibleSegment = seg;
    this.visiblePosition = position;
    this.assertLadder();
    this.visibleWaiters.settle(offset);
    this.endListeners.tell(offset);
  }

  /** Recovery or truncation: every rung at `end`, the readable end at the active segment's end. */
  private resetOffsets(end: number): void {
    this.nextOffset = this.writtenOffset = this.durableOffset = this.visibleOffset = end;
    this.visibleSegment = this.writtenSegment = this.segments.active;
    this.visiblePosition = this.writtenPosition = this.segments.active.sizeBytes;
    this.visibleUnsynced = -1;
    this.assertLadder();
  }

  // --- append -----------------------------------------------------------------------------------

  appendAsLeader(batches: Uint8Array, options: { leaderEpoch: number; durable: boolean }): Promise<AppendInfo> {
    try {
      this.assertWritable();
      return this.queueWrite(batches, prepareLeaderAppend(batches, options.leaderEpoch, this.appendContext()), options.durable);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  appendAsFollower(batches: Uint8Array, options: { durable: boolean }): Promise<AppendInfo> {
    try {
      this.assertWritable();
      return this.queueWrite(batches, prepareFollowerAppend(batches, this.appendContext()), options.durable);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private appendContext(): AppendContext {
    const { options, nextOffset, label } = this;
    return { options, producers: this.producers.table, nextOffset, pendingBytes: this.appender.pendingBytes, partition: label.partition, nowMs: Date.now() };
  }

  /** Synchronous: nothing may await between offset assignment (prepare) and the queue push. */
  private queueWrite(bytes: Uint8Array, prepared: PreparedAppend, durable: boolean): Promise<AppendInfo> {
    if (prepared.kind === 'duplicate') return this.duplicate(prepared.batch);
    const { headers, info, epochs } = prepared;
    for (const e of epochs) this.leaderEpochs.assign(e.epoch, e.startOffset);
    this.assigned(info.lastOffset + 1);
    return new Promise<AppendInfo>((resolve, reject) => this.appender.enqueue({ bytes, headers, info, durable, resolve, reject }));
  }

  /** A retried batch already in the log: nothing is written; answer once the original is readable. */
  private async duplicate(b: { firstOffset: number; lastOffset: number; maxTimestampMs: number }): Promise<AppendInfo> {
    await this.visibleWaiters.wait(this.visibleOffset, b.lastOffset + 1, this.failure);
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
    if (this.suspended) throw this.suspended;
    if (this.closing || this.closed) throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `partition ${this.label.partition} is closing`);
  }

  private appenderHost(): AppenderHost {
    const log = this;
    return {
      get writtenOffset() {
        return log.writtenOffset;
      },
      get durableOffset() {
        return log.durableOffset;
      },
      get failure() {
        return log.failure;
      },
      wrote: (seg, position, offset) => this.wrote(seg, position, offset),
      synced: (seg, position, offset) => this.synced(seg, position, offset),
      rolled: async (baseOffset) => {
        await this.producers.writeSnapshot(baseOffset);
        await writeOffsetCheckpoint(this.dir, RECOVERY_POINT_FILE, baseOffset);
      },
      beforeWrite: () => (this.leaderEpochs.isDirty ? this.leaderEpochs.persistIfDirty() : null),
      fail: (err) => this.fail(err),
      suspend: (err) => void (this.suspended = err),
      rewound: (idempotentLost) => this.rewound(idempotentLost),
    };
  }

  /** After a full disk (writer held, queue empty): the refused appends' offsets are given back (appender.ts). */
  private rewound(idempotentLost: boolean): Promise<void> {
    this.nextOffset = this.writtenOffset;
    this.assertLadder();
    const parts = { leaderEpochs: this.leaderEpochs, producers: this.producers, segments: this.segments };
    return takeBackRefused(this.writtenOffset, idempotentLost, parts).catch((err) => this.fail(err)).finally(() => void (this.suspended = null));
  }

  get failed(): BrokerError | null { return this.failure; } // the error that stopped this log for good, or null

  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = storageError(err);
    this.logger.error({ err }, 'log failed: no more appends are accepted until the partition is reopened');
    this.appender.rejectAll(this.failure);
    this.visibleWaiters.rejectAll(this.failure);
  }

  /** Everything appended so far reaches the disk (whatever the flush policy). */
  flush(): Promise<void> {
    return this.appender.flush();
  }

  // --- read -------------------------------------------------------------------------------------

  /** What a read may serve: below min(upTo, logEndOffset), within the visible bytes (the written ones with `throughWritten`). */
  private boundAt(upTo: number, o?: LogReadOptions): ReadBound {
    const [end, segment, position] = o?.throughWritten ? [this.writtenOffset, this.writtenSegment, this.writtenPosition] : [this.visibleOffset, this.visibleSegment, this.visiblePosition];
    return { offset: Math.min(upTo, end), segment, position, skipDamaged: o?.skipDamaged === true, failOnDamage: o?.failOnDamage === true };
  }

  read(offset: number, maxBytes: number, upTo: number = this.visibleOffset, options?: LogReadOptions): Promise<LogReadResult> {
    if (this.closed) return Promise.reject(new BrokerError('NOT_LEADER_OR_FOLLOWER', `partition ${this.label.partition} is closed`));
    if (!Number.isSafeInteger(offset)) return Promise.reject(new BrokerError('OFFSET_OUT_OF_RANGE', `offset ${offset} is not an integer`));
    if (!(maxBytes >= 0)) return Promise.reject(new BrokerError('INVALID_FETCH_SIZE', `maxBytes ${maxBytes} is negative`));
    if (!Number.isSafeInteger(upTo)) return Promise.reject(new BrokerError('INVALID_REQUEST', `read bound ${upTo} is not an integer`));
    if (offset < this._logStartOffset) {
      return Promise.reject(new BrokerError('OFFSET_OUT_OF_RANGE', `offset ${offset} is below the log start offset ${this._logStartOffset}`));
    }
    return this.segments.read(offset, maxBytes, this.boundAt(upTo, options));
  }

  offsetForTimestamp(timestampMs: number): Promise<{ offset: number; timestampMs: number } | null> {
    return this.segments.offsetForTimestamp(timestampMs, this._logStartOffset, this.boundAt(this.visibleOffset));
  }

  maxTimestamp(): { offset: number; timestampMs: number } | null {
    return this.segments.maxTimestamp(this.visibleOffset);
  }

  // --- retention, compaction, truncation --------------------------------------------------------

  applyRetention = (nowMs: number, keepFrom = Infinity): Promise<number> => this.retention.apply(nowMs, keepFrom);
  /** Bytes from the batch holding `from` to the one holding `to` (segment sizes and sparse index; an estimate from above). */
  bytesBetween = (from: number, to: number): number => Math.max(0, this.segments.bytesFrom(from) - this.segments.bytesFrom(to));

  compact(nowMs: number): Promise<void> {
    return this.retention.compact(nowMs);
  }

  oldestClosedSegment = () => this.retention.oldestClosed(); deleteOldestSegment = () => this.retention.dropOldest(); // for the broker's retention budget

  private retentionHost(): RetentionHost {
    const log = this;
    return {
      get logStartOffset() {
        return log._logStartOffset;
      },
      get stopped() {
        return log.closed || log.closing || log.failure !== null;
      },
      rollIdleActive: () =>
        this.appender.withWriter(async () => {
          if (this.segments.active.sizeBytes > 0 && this.appender.queueLength === 0) await this.appender.roll(this.nextOffset);
        }),
      advanceLogStart: (offset) => this.advanceLogStart(offset),
      lastBatchOfEachProducer: () => this.producers.lastBatchOfEachProducer(),
    };
  }

  /** Moves the log start forward (persisted before any file goes). */
  private async advanceLogStart(offset: number): Promise<void> {
    if (offset <= this._logStartOffset) return;
    this._logStartOffset = offset;
    await writeOffsetCheckpoint(this.dir, LOG_START_FILE, offset);
    this.leaderEpochs.truncateFromStart(offset);
    await this.leaderEpochs.persistIfDirty();
  }

  /**
   * Removes every batch that ends at or after `offset` (a batch containing it goes whole, as Kafka's
   * truncateTo): a follower before fetching from a new leader (to OffsetsForLeaderEpoch's end).
   * `full`: Kafka's truncateFullyAndStartAt, the log restarts empty at `offset` (api.ts). Returns the new end.
   */
  truncateTo(offset: number, options?: { full?: boolean }): Promise<number> {
    if (!Number.isSafeInteger(offset) || offset < 0) return Promise.reject(new BrokerError('OFFSET_OUT_OF_RANGE', `cannot truncate to offset ${offset}`));
    return this.retention.exclusive(() =>
      this.appender.withWriter(async () => {
        if (this.appender.queueLength) throw new Error('truncateTo with appends in flight');
        if (offset >= this.nextOffset && !options?.full) return this.nextOffset;
        await this.appender.syncWritten();
        if (offset > this._logStartOffset && !options?.full) return this.afterTruncate(await this.segments.truncateTo(offset));
        await this.segments.resetTo(offset);
        await writeOffsetCheckpoint(this.dir, LOG_START_FILE, (this._logStartOffset = offset));
        this.leaderEpochs.truncateFromEnd(0);
        return this.afterTruncate(offset);
      }),
    );
  }

  private async afterTruncate(end: number): Promise<number> {
    this.retention.forgetProgress();
    this.resetOffsets(end);
    this.leaderEpochs.truncateFromEnd(end);
    await this.leaderEpochs.persistIfDirty();
    await this.producers.rebuild(end, this.segments);
    const recoveryPoint = (await readOffsetCheckpoint(this.dir, RECOVERY_POINT_FILE)) ?? 0;
    if (recoveryPoint > end) await writeOffsetCheckpoint(this.dir, RECOVERY_POINT_FILE, this.segments.active.baseOffset);
    this.logger.info({ logEndOffset: end }, 'log truncated');
    return end;
  }

  // --- options, close, destroy ------------------------------------------------------------------

  updateOptions(options: Partial<LogOptions>): void {
    const before = this.options.flush;
    this.cell.current = resolveOptions(this.options, options);
    // Leaving flush=always: appends waiting for an fsync (and readers waiting to see them) get one now.
    if (before === 'always' && this.options.flush !== 'always' && this.writtenOffset > this.durableOffset) this.appender.kickFsync();
    this.producers.table.setMaxProducers(this.options.maxProducerIds);
    this.appender.startFlushTimer();
  }

  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    this.appender.stopFlushTimer();
    await this.retention.idle();
    await this.appender.withWriter(async () => {
      if (this.failure) return;
      await this.appender.syncWritten();
      // Full disk: no marker (always last), so the next open walks the tail with CRCs (all it loses).
      await this.writeCloseState().catch((err) => {
        if (!isNoSpace(err)) throw err;
        this.logger.warn({ err: (err as Error).message }, 'disk full at close: no clean-shutdown marker written; the next start recovers this log by its CRCs');
      });
    });
    this.closed = true;
    await this.segments.closeAll();
    this.logger.info({ logEndOffset: this.nextOffset }, 'log closed');
  }

  private async writeCloseState(): Promise<void> {
    await this.appender.sealActive();
    await this.producers.writeSnapshot(this.nextOffset);
    await this.leaderEpochs.persistIfDirty();
    for (const [file, offset] of [[LOG_START_FILE, this._logStartOffset], [RECOVERY_POINT_FILE, this.nextOffset]] as const) await writeOffsetCheckpoint(this.dir, file, offset);
    await writeFileAtomic(join(this.dir, CLEAN_SHUTDOWN_FILE), '');
  }

  /** Closes every fd without any of close()'s writes (tests simulating a crash, destroy). */
  async abandon(): Promise<void> {
    this.closing = true;
    this.appender.stopFlushTimer();
    this.closed = true;
    const gone = new BrokerError('NOT_LEADER_OR_FOLLOWER', `partition ${this.label.partition} was closed without flushing`);
    this.appender.rejectAll(gone);
    this.visibleWaiters.rejectAll(gone);
    await this.segments.closeAll();
  }

  async destroy(): Promise<void> {
    if (!this.closed) {
      this.closing = true;
      await this.retention.idle();
      await this.appender.withWriter(async () => undefined).catch(() => undefined);
      await this.abandon();
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  private logOpened(): void {
    const r = this.recovery;
    this.metrics?.segments.set(this.segments.count, this.label);
    this.metrics?.recoverySeconds.set(r.durationMs / 1000, this.label);
    const state = { clean: r.clean, durationMs: Math.round(r.durationMs), scannedBytes: r.scannedBytes, truncatedBytes: r.truncatedBytes };
    const offsets = { segments: this.segments.count, logStartOffset: this._logStartOffset, logEndOffset: this.nextOffset };
    this.logger.info({ ...state, ...offsets }, r.created ? 'log created' : r.clean ? 'log opened after a clean shutdown' : 'log recovered after an unclean shutdown');
  }
}
