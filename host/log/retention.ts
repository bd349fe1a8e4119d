// Retention and compaction of one partition log: which closed segments go (retention.ms by the
// segment's largest timestamp, retention.bytes oldest first) and when compaction runs (see
// compaction.ts for what it keeps). One maintenance job at a time, beside appends and never
// blocking them; readers holding a deleted segment keep reading the unlinked file (POSIX).
// The log start moves through the host (the log), persisted before any file goes.
import type { Logger } from '../logging.js';
import type { LogOptions } from './api.js';
import type { LogLabel, LogMetrics } from './metrics.js';
import { compactSegments } from './compaction.js';
import type { Segment } from './segment.js';
import type { SegmentSet } from './segment-set.js';

export interface RetentionHost {
  readonly logStartOffset: number;
  /** True once the log is closing, closed or failed: maintenance does nothing. */
  readonly stopped: boolean;
  /** Rolls the active segment when it is not empty and nothing is queued (under the writer). */
  rollIdleActive(): Promise<void>;
  /** Moves the log start forward (checkpoint and epochs persisted before it returns). */
  advanceLogStart(offset: number): Promise<void>;
  /** Base offset of each idempotent producer's last batch (compaction keeps those). */
  lastBatchOfEachProducer(): Map<number, number>;
}

export interface RetentionDeps {
  dir: string;
  options: () => Required<LogOptions>;
  logger: Logger;
  metrics?: LogMetrics | null;
  label?: LogLabel;
}

export class Retention {
  private chain: Promise<unknown> = Promise.resolve();
  /** Compaction's progress in this process (a restart compacts everything once). */
  private compactedUpTo = -1;
  private nextTombstoneExpiryMs = Infinity;

  constructor(
    private readonly deps: RetentionDeps,
    private readonly segments: SegmentSet,
    private readonly host: RetentionHost,
  ) {}

  /** One background job at a time (retention, compaction, truncation), never blocking appends. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Resolves when the job running now (if any) is done. */
  idle(): Promise<unknown> {
    return this.chain;
  }

  /** The log was truncated: compaction maps everything again. */
  forgetProgress(): void {
    this.compactedUpTo = -1;
    this.nextTombstoneExpiryMs = Infinity;
  }

  /**
   * Deletes whole segments past retention.ms or beyond retention.bytes, advancing the log start
   * offset; returns the bytes freed. The active segment is deleted only as Kafka does: when
   * every segment is past retention.ms, the active one is rolled first (so the log keeps an
   * empty active segment at the log end).
   */
  apply(nowMs: number, keepFrom = Infinity): Promise<number> {
    return this.exclusive(() => this.retain(nowMs, keepFrom));
  }

  private async retain(nowMs: number, keepFrom: number): Promise<number> {
    const o = this.deps.options();
    if (this.host.stopped || !o.cleanupPolicy.includes('delete')) return 0;
    const expired = (s: Segment) => o.retentionMs >= 0 && s.maxTimestampMs >= 0 && s.maxTimestampMs < nowMs - o.retentionMs;
    const active = this.segments.active;
    // A hold (keepFrom) keeps every segment holding an offset at or above it: none past it may go.
    const held = (s: Segment) => s.nextOffset > keepFrom;
    if (o.retentionMs >= 0 && active.sizeBytes > 0 && !held(active) && this.segments.segments.every((s) => s === active || expired(s)) && expired(active)) {
      await this.host.rollIdleActive();
    }
    const victims = await this.victims(expired, o.retentionBytes);
    const firstHeld = victims.findIndex(held);
    if (firstHeld >= 0) victims.length = firstHeld;
    if (victims.length === 0) return 0;
    const next = this.segments.segments[victims.length];
    const newStart = Math.max(this.host.logStartOffset, next.baseOffset);
    await this.host.advanceLogStart(newStart);
    let freed = 0;
    for (const seg of victims) freed += await this.segments.remove(seg);
    if (this.deps.label) this.deps.metrics?.segmentsDeleted.inc(this.deps.label, victims.length);
    this.deps.logger.info({ segments: victims.map((s) => s.baseOffset), freedBytes: freed, logStartOffset: newStart }, 'retention deleted segments');
    return freed;
  }

  /** The oldest closed segment's newest timestamp and size, or null (only the active segment is left). */
  oldestClosed(): { maxTimestampMs: number; sizeBytes: number; nextOffset: number } | null {
    const first = this.segments.segments[0];
    if (!first || first.active) return null;
    return { maxTimestampMs: first.maxTimestampMs, sizeBytes: first.sizeBytes, nextOffset: first.nextOffset };
  }

  /**
   * Deletes the oldest closed segment whatever its age (the broker's retention budget, which
   * weighs segments across partitions); returns the bytes freed, 0 when none is closed.
   */
  dropOldest(): Promise<number> {
    return this.exclusive(async () => {
      if (this.host.stopped) return 0;
      const [first, next] = this.segments.segments;
      if (!first || first.active || !next) return 0;
      await this.host.advanceLogStart(Math.max(this.host.logStartOffset, next.baseOffset));
      const freed = await this.segments.remove(first);
      if (this.deps.label) this.deps.metrics?.segmentsDeleted.inc(this.deps.label);
      this.deps.logger.info({ segment: first.baseOffset, freedBytes: freed, logStartOffset: next.baseOffset }, 'retention budget deleted the oldest segment');
      return freed;
    });
  }

  /** The closed segments to delete, oldest first: expired ones, then enough to get under retention.bytes. */
  private async victims(expired: (s: Segment) => boolean, retentionBytes: number): Promise<Segment[]> {
    const victims: Segment[] = [];
    for (const seg of this.segments.segments) {
      if (seg.active) break;
      if (seg.maxTimestampMs < 0 && seg.sizeBytes > 0) await this.segments.ensureIndexes(seg);
      if (expired(seg)) victims.push(seg);
      else break;
    }
    if (retentionBytes < 0) return victims;
    let excess = this.segments.totalBytes - victims.reduce((n, s) => n + s.sizeBytes, 0) - retentionBytes;
    for (const seg of this.segments.segments.slice(victims.length)) {
      if (seg.active || excess < seg.sizeBytes) break;
      victims.push(seg);
      excess -= seg.sizeBytes;
    }
    return victims;
  }

  /** Compacts closed segments (cleanup.policy includes compact); see compaction.ts. */
  compact(nowMs: number): Promise<void> {
    return this.exclusive(async () => {
      const o = this.deps.options();
      if (this.host.stopped || !o.cleanupPolicy.includes('compact')) return;
      const cleanable = await this.cleanable(nowMs, o.minCompactionLagMs);
      if (cleanable.length === 0) return;
      // Nothing closed since the last run and no kept tombstone due: the log is already clean.
      const cleanableEnd = cleanable[cleanable.length - 1].nextOffset;
      if (cleanableEnd <= this.compactedUpTo && nowMs < this.nextTombstoneExpiryMs) return;
      const stats = await compactSegments({
        dir: this.deps.dir,
        segments: cleanable,
        nowMs,
        mapFrom: Math.max(0, this.compactedUpTo),
        options: o,
        logger: this.deps.logger,
        lastBatchOfProducer: this.host.lastBatchOfEachProducer(),
        acquire: (s) => this.segments.acquire(s),
        release: (s) => this.segments.release(s),
        replace: (old, fresh) => this.segments.replace(old, fresh),
      });
      this.compactedUpTo = stats.coveredEnd;
      this.nextTombstoneExpiryMs = stats.nextTombstoneExpiryMs;
    });
  }

  /** Closed segments, oldest first, up to the first younger than min.compaction.lag.ms. */
  private async cleanable(nowMs: number, minCompactionLagMs: number): Promise<Segment[]> {
    const cleanable: Segment[] = [];
    for (const seg of this.segments.segments.filter((s) => !s.active && !s.deleted)) {
      if (seg.maxTimestampMs < 0 && seg.sizeBytes > 0) await this.segments.ensureIndexes(seg);
      if (seg.maxTimestampMs > nowMs - minCompactionLagMs) break;
      cleanable.push(seg);
    }
    return cleanable;
  }
}
