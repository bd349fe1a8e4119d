// The write path of one partition log after offsets are assigned: a queue of writes in offset
// order, one writer draining it (consecutive writes go to the file in one writev; a roll
// happens between writes), group-commit fsync, and the appends waiting for it.
//
// Durability (group commit). With flush=always an append resolves after an fdatasync that
// covers it. One fsync is in flight at a time; when it returns, every append written before
// it started is acknowledged, and if more were written meanwhile the next fsync starts at once
// and covers them all. So N concurrent appenders pay about one fsync per round, not N.
// flush=interval fsyncs every flush.interval.ms, flush=never only at roll and close; both
// acknowledge once written (in the OS page cache). `durable: false` (acks=0) never waits.
//
// The appender owns no offset: it tells its host (the log, which keeps the offset ladder) what
// was written and what was synced, and reads the host's written/durable offsets back.
//
// A full disk (ENOSPC, EDQUOT) while writing or rolling is not a failure of the log: the writer
// cuts the active segment back to the end of the last complete write (a short write may have
// left part of a batch), refuses every queued append with STORAGE_FULL (their offsets were
// assigned after the failed ones, so none may be written past the gap), and asks the host to
// take its next offset back to the written one. The log then takes appends again: the next one
// that fits is written. A failed fsync stays fatal (the kernel may have dropped the dirty pages
// it could not write: after "fsyncgate" nothing written before can be trusted to be on disk
// until recovery has read it back), and the health check reports the failed partition.
import { performance } from 'node:perf_hooks';
import type { BatchHeader } from '../core/index.js';
import { BrokerError } from '../errors/index.js';
import type { Logger } from '../logging.js';
import type { AppendInfo, LogOptions } from './api.js';
import { fdatasync, ftruncate, pwritevAll, sleepMs } from './io.js';
import type { LogLabel, LogMetrics } from './metrics.js';
import { MAX_RELATIVE_OFFSET } from './options.js';
import { createSegment, type Segment } from './segment.js';
import type { SegmentSet } from './segment-set.js';
import type { LeaderEpochCache } from './checkpoints.js';
import type { ProducerStore } from './producer-store.js';
import { OffsetWaiters } from './waiters.js';

/** At most this many bytes go to the file in one writev. */
const WRITE_RUN_BYTES_MAX = 8 * 1024 * 1024;

/** One append, offsets assigned, waiting for the writer. */
export interface PendingWrite {
  bytes: Uint8Array;
  headers: BatchHeader[];
  info: AppendInfo;
  durable: boolean;
  resolve: (info: AppendInfo) => void;
  reject: (err: unknown) => void;
}

export interface AppenderHost {
  readonly writtenOffset: number;
  readonly durableOffset: number;
  readonly failure: BrokerError | null;
  /** Bytes below `position` of `seg` (offsets below `offset`) are in the file. */
  wrote(seg: Segment, position: number, offset: number): void;
  /** An fsync covering bytes below `position` of `seg` (offsets below `offset`) returned. */
  synced(seg: Segment, position: number, offset: number): void;
  /** A roll made everything below `baseOffset` durable with its indexes (snapshots, recovery point). */
  rolled(baseOffset: number): Promise<void>;
  /**
   * Work to finish before a write (the leader-epoch checkpoint must not lag the batches that use
   * an epoch), or null: then the writev is dispatched synchronously (see drain).
   */
  beforeWrite(): Promise<void> | null;
  fail(err: unknown): void;
  /**
   * The disk was full: from now until `rewound` resolves, appends are refused with `err`
   * (called synchronously where the write failed, before anything else can queue).
   */
  suspend(err: BrokerError): void;
  /** Queue emptied and file cut back: next offset back to the written one; appends resume. */
  rewound(idempotentLost: boolean): Promise<void>;
}

export interface AppenderDeps {
  dir: string;
  options: () => Required<LogOptions>;
  logger: Logger;
  metrics: LogMetrics | null;
  label: LogLabel;
}

export class Appender {
  private readonly queue: PendingWrite[] = [];
  private queuedBytes = 0;
  private drainScheduled = false;
  private writerChain: Promise<unknown> = Promise.resolve();
  private writerTasks = 0;
  private fsyncing = false;
  private fsyncAgain = false;
  private readonly durableWaiters = new OffsetWaiters();
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly deps: AppenderDeps,
    private readonly segments: SegmentSet,
    private readonly host: AppenderHost,
  ) {}

  /** Bytes queued for the disk (bounded by maxPendingAppendBytes at the door). */
  get pendingBytes(): number {
    return this.queuedBytes;
  }
  get queueLength(): number {
    return this.queue.length;
  }

  /** Queues a write (offsets already assigned: queue order is offset order). */
  enqueue(w: PendingWrite): void {
    this.queue.push(w);
    this.queuedBytes += w.bytes.byteLength;
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    void this.withWriter(() => this.drain()).catch((err) => this.host.fail(err));
  }

  /** Runs `fn` with the write path to itself (queue drains, rolls, truncation, close). */
  withWriter<T>(fn: () => Promise<T>): Promise<T> {
    // When the writer is idle the job starts synchronously, so a write is handed to the kernel
    // while the caller goes on verifying the next appends (pipelining CPU and I/O).
    const idle = this.writerTasks === 0;
    this.writerTasks++;
    const run = idle ? fn() : this.writerChain.then(fn, fn);
    const done = run.finally(() => this.writerTasks--);
    this.writerChain = done.catch(() => undefined);
    return done;
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
        acked = [];
        acked = await next;
      }
    } catch (err) {
      if (!isNoSpace(err)) throw err;
      await this.rewind(storageError(err));
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

  private needsRoll(seg: Segment, projectedBytes: number, w: PendingWrite, nowMs: number): boolean {
    if (projectedBytes === 0) return false;
    const o = this.deps.options();
    if (projectedBytes + w.bytes.byteLength > o.segmentBytes) return true;
    if (seg.rollBaseMs >= 0 && nowMs - seg.rollBaseMs >= o.segmentMs) return true;
    if (seg.indexFull) return true;
    return w.info.lastOffset - seg.baseOffset > MAX_RELATIVE_OFFSET;
  }

  /** The longest run of queued writes that fits the active segment (null: roll first). */
  private takeRun(seg: Segment, nowMs: number): PendingWrite[] | null {
    const run: PendingWrite[] = [];
    let runBytes = 0;
    while (this.queue.length) {
      const w = this.queue[0];
      if (this.needsRoll(seg, seg.sizeBytes + runBytes, w, nowMs)) return run.length ? run : null;
      this.queue.shift();
      run.push(w);
      runBytes += w.bytes.byteLength;
      if (runBytes >= WRITE_RUN_BYTES_MAX) break;
    }
    return run;
  }

  /**
   * Writes the longest run of queued appends that fits the active segment, in one writev.
   * Returns the appends acknowledged by the write itself (the caller resolves them; see drain).
   */
  private async writeSome(): Promise<PendingWrite[]> {
    if (this.host.failure) throw this.host.failure;
    const seg = this.segments.active;
    const nowMs = Date.now();
    const run = this.takeRun(seg, nowMs);
    if (run === null) {
      await this.roll(this.queue[0].info.baseOffset);
      return [];
    }
    if (run.length === 0) return [];
    const before = this.host.beforeWrite();
    if (before) await before;
    const start = seg.sizeBytes;
    try {
      await pwritevAll(seg.fd!, run.map((w) => w.bytes), start);
    } catch (err) {
      // Back at the head of the queue: whoever handles the error (rewind or fail) refuses them.
      this.queue.unshift(...run);
      throw err;
    }
    const runBytes = this.track(seg, run, start, nowMs);
    this.queuedBytes -= runBytes;
    this.segments.totalBytes += runBytes;
    // The active segment's index entries stay in memory until the segment rolls or the log
    // closes (seal writes them): after a crash they are rebuilt from the log anyway, so writing
    // them on every append would only add two syscalls to the write path.
    this.host.wrote(seg, seg.sizeBytes, seg.nextOffset);
    if (this.deps.options().flush !== 'always') return run;
    const written: PendingWrite[] = [];
    for (const w of run) {
      if (w.durable) {
        // Keep only what the acknowledgement needs (not the written bytes) while the fsync runs.
        const { info, resolve, reject } = w;
        this.durableWaiters.push({ offset: info.lastOffset + 1, resolve: () => resolve(info), reject });
      } else written.push(w);
    }
    this.kickFsync();
    return written;
  }

  /** Accounts the written run in the segment (stats, index entries); returns its bytes. */
  private track(seg: Segment, run: PendingWrite[], start: number, nowMs: number): number {
    const indexIntervalBytes = this.deps.options().indexIntervalBytes;
    let pos = start;
    let records = 0;
    for (const w of run) {
      for (const h of w.headers) {
        seg.track(h, pos, indexIntervalBytes, nowMs);
        pos += h.totalBytes;
      }
      records += w.info.recordCount;
    }
    if (this.deps.metrics) {
      this.deps.metrics.appendedBytes.inc(this.deps.label, pos - start);
      this.deps.metrics.appendedRecords.inc(this.deps.label, records);
    }
    return pos - start;
  }

  // --- durability -------------------------------------------------------------------------------

  kickFsync(): void {
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
        const seg = this.segments.active;
        const position = seg.sizeBytes;
        const offset = seg.nextOffset;
        if (offset <= this.host.durableOffset) continue;
        seg.users++;
        const t0 = performance.now();
        try {
          // Benchmarks and tests: a slow disk (an SD card). Before the fdatasync, so the bytes
          // reach the disk only at the end, as on the slow device: a power-cut test's storage
          // shim (test/helpers/power-cut.ts) then sees them unsynced for the whole delay.
          const delayMs = this.deps.options().injectedFlushDelayMs;
          if (delayMs > 0) await sleepMs(delayMs);
          await fdatasync(seg.fd!);
        } finally {
          this.segments.release(seg);
        }
        if (this.deps.metrics) {
          this.deps.metrics.fsyncs.inc(this.deps.label);
          this.deps.metrics.fsyncMs.observe(performance.now() - t0, this.deps.label);
        }
        this.synced(seg, position, offset);
      } while (this.fsyncAgain);
    } catch (err) {
      this.host.fail(err);
    } finally {
      this.fsyncing = false;
    }
  }

  private synced(seg: Segment, position: number, offset: number): void {
    if (offset <= this.host.durableOffset) return;
    this.host.synced(seg, position, offset);
    this.durableWaiters.settle(offset);
  }

  /** Everything written so far reaches the disk; the caller holds the writer (or needs no order). */
  async syncWritten(): Promise<void> {
    const target = this.host.writtenOffset;
    if (target <= this.host.durableOffset) return;
    this.kickFsync();
    await this.durableWaiters.wait(this.host.durableOffset, target, this.host.failure);
  }

  /** Everything appended so far reaches the disk (whatever the flush policy). */
  async flush(): Promise<void> {
    await this.withWriter(async () => undefined);
    await this.syncWritten();
  }

  /** (Re)starts the flush=interval timer for the current options. */
  startFlushTimer(): void {
    this.stopFlushTimer();
    const o = this.deps.options();
    if (o.flush !== 'interval') return;
    this.flushTimer = setInterval(() => {
      if (this.host.writtenOffset > this.host.durableOffset && !this.host.failure) this.kickFsync();
    }, o.flushIntervalMs);
    this.flushTimer.unref();
  }

  stopFlushTimer(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = null;
  }

  /** Rejects every queued and waiting append (the log failed or was abandoned). */
  rejectAll(err: unknown): void {
    for (const w of this.queue.splice(0)) w.reject(err);
    this.queuedBytes = 0;
    this.durableWaiters.rejectAll(err);
  }

  /**
   * The disk was full (writer only): refuse every queued append, cut the active segment back to
   * its last complete write, and let the host take the next offset back. Writes already made
   * and waiting for their fsync stay where they are and are acknowledged by it.
   */
  private async rewind(err: BrokerError): Promise<void> {
    this.host.suspend(err);
    const refused = this.queue.splice(0);
    this.queuedBytes = 0;
    const idempotentLost = refused.some((w) => w.headers.some((h) => h.producerId >= 0));
    const seg = this.segments.active;
    try {
      // Cutting a file never needs free space. A partial batch past sizeBytes would otherwise be
      // overwritten by the next write anyway, but a crash before that would leave it for recovery.
      await ftruncate(seg.fd!, seg.sizeBytes);
      await this.host.rewound(idempotentLost);
    } finally {
      // Refused only once the log is consistent again: a client retrying at once is accepted
      // when space has returned (and meets the same refusal, not a sequence error, when not).
      for (const w of refused) w.reject(err);
    }
    this.deps.metrics?.diskFullRewinds.inc(this.deps.label);
    this.deps.logger.warn({ err: err.message, refusedAppends: refused.length, logEndBytes: seg.sizeBytes }, 'disk full: queued appends refused, log cut back to its last complete write; appends resume when space returns');
  }

  // --- roll -------------------------------------------------------------------------------------

  /** Closes the active segment (durably) and starts a new one at `baseOffset`. Writer only. */
  async roll(baseOffset: number): Promise<void> {
    const old = this.segments.active;
    await this.sealActive();
    const seg = await createSegment(this.deps.dir, baseOffset, this.deps.options().segmentIndexBytes);
    this.segments.addActive(seg);
    this.synced(old, old.sizeBytes, old.nextOffset);
    // Everything below baseOffset is now durable with its indexes: the next recovery starts here.
    await this.host.rolled(baseOffset);
    this.deps.logger.debug({ baseOffset, previousBytes: old.sizeBytes }, 'rolled segment');
  }

  /** The active segment's indexes written and cut to size, its log fdatasynced (roll, close). */
  async sealActive(): Promise<void> {
    const seg = this.segments.active;
    seg.finalTimeIndexEntry();
    await seg.offsetIndex.seal();
    await seg.timeIndex.seal();
    seg.users++;
    try {
      await fdatasync(seg.fd!);
    } finally {
      this.segments.release(seg);
    }
  }
}

/**
 * After a full disk: what the refused appends registered beside their offsets is taken back
 * (leader epochs starting at or past `end`; producer sequences, rebuilt when an idempotent
 * batch was refused). The epoch checkpoint may not fit now: it stays dirty and is written
 * before the next write (beforeWrite).
 */
export async function takeBackRefused(end: number, idempotentLost: boolean, parts: { leaderEpochs: LeaderEpochCache; producers: ProducerStore; segments: SegmentSet }): Promise<void> {
  parts.leaderEpochs.truncateFromEnd(end);
  if (idempotentLost) await parts.producers.rebuild(end, parts.segments);
  await parts.leaderEpochs.persistIfDirty().catch(() => parts.leaderEpochs.markDirty());
}

/** ENOSPC (no space) or EDQUOT (quota): the disk is full, not broken. */
export function isNoSpace(err: unknown): boolean {
  if (err instanceof BrokerError) return err.code === 'STORAGE_FULL';
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** An I/O failure as the error every append sees from then on. */
export function storageError(err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  const e = err as NodeJS.ErrnoException;
  if (isNoSpace(e)) return new BrokerError('STORAGE_FULL', `the disk holding the log is full (${e.code}): appends resume when space is freed`, { cause: err });
  return new BrokerError('KAFKA_STORAGE_ERROR', `log storage failed: ${e?.code ?? ''} ${e?.message ?? String(err)}`.trim(), { cause: err });
}
