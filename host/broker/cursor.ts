// The one reader of a partition. Every loop that follows a partition (WebSocket tail and
// catch-up, HTTP read, Kafka Fetch, groups replay, and the MQTT tail and persistence scan)
// drives this cursor over the broker's one read path (`read`, `waitForData`) instead of
// re-implementing read → decode → skip → wait → out-of-range recovery with its own rules.
//
// What the caller chooses, explicitly:
//   start        earliest | latest | offset (clamped into [log start, visible end]) | timestamp
//                (the first offset at or after it; the visible end when none is)
//   isolation    `committed` (below the high watermark: every client); `written` (followers:
//                what the leader has written, fsynced or not) or `logEnd` (api.ts, Isolation)
//   maxBytes     per read (the first batch comes whole even when larger: KIP-74)
//   onOutOfRange what a position outside the log becomes: earliest, latest, nearest (below the
//                start → start, past the end → end) or fail (the error goes to the caller)
//   retry        how often a transient error (the error table's `retriable`, except a partition
//                that no longer exists) of a read or a wait is retried, with linear backoff;
//                every other error is the caller's
//   raw/decoded  `readRaw` gives the stored batches as on disk (Kafka Fetch, groups replay);
//                `read` decodes them with the core, drops records below the position (the first
//                batch may start earlier) and control batches
//
// Waiting goes through the broker's waiters (woken by the append or HW move that passes the
// position, no polling). The cursor holds at most one read's bytes, and only while its caller
// holds the result.
//
// Concurrency: one caller drives a cursor at a time (each await finishes before the next call).
import type { BrokerApi, Isolation, PartitionOffsets, TopicPartition } from './api.js';
import { ERRORS, asBrokerError, BrokerError } from '../errors/index.js';
import { decodeBatches, type DecodedRecord } from '../core/index.js';

export type CursorStart = { kind: 'earliest' } | { kind: 'latest' } | { kind: 'offset'; offset: number } | { kind: 'timestamp'; timestampMs: number };
export type OutOfRangePolicy = 'earliest' | 'latest' | 'nearest' | 'fail';

export interface RetryPolicy {
  /** Retries of one read after a transient error (0 = none: the first error goes to the caller). */
  attemptsMax: number;
  /** Wait before retry n is n × backoffMs, at most backoffMaxMs. */
  backoffMs: number;
  backoffMaxMs: number;
}

/** The caller (a Kafka client, an HTTP client) retries on its own. */
export const NO_RETRY: RetryPolicy = { attemptsMax: 0, backoffMs: 0, backoffMaxMs: 0 };

export interface CursorOptions {
  /** Default `committed`: every client. `written` and `logEnd` are for followers only. */
  isolation?: Isolation;
  maxBytes: number;
  onOutOfRange: OutOfRangePolicy;
  /** Default NO_RETRY. */
  retry?: RetryPolicy;
  /** Aborts waits and backoffs (the read in flight finishes). */
  signal?: AbortSignal;
  /** Told of each reset after OFFSET_OUT_OF_RANGE, before reading on from `to`. */
  onReset?: (from: number, to: number, offsets: PartitionOffsets) => void;
  /** Told of each transient error about to be retried. */
  onRetry?: (err: BrokerError, attempt: number) => void;
  /** A read that came back empty below the visible end (HW inside a batch) waits this long before the next. Default 1. */
  emptyReadBackoffMs?: number;
}

export interface RawRead {
  /** Whole stored batches (may be empty); the first may start below `from`. */
  records: Uint8Array;
  /** The position this read started at. */
  from: number;
  /** The position after it (= from when nothing was readable). */
  nextOffset: number;
  /** The partition's offsets as the read saw them. */
  offsets: PartitionOffsets;
}

export interface DecodedRead extends Omit<RawRead, 'records'> {
  /** Records at or after `from`, in offset order; control batches skipped. */
  records: DecodedRecord[];
}

/** Resets after OFFSET_OUT_OF_RANGE within one read before giving up (retention racing the reader). */
const RESETS_PER_READ_MAX = 8;

/** Where a cursor starts: the rules every door shares. */
export async function resolveStart(broker: BrokerApi, tp: TopicPartition, start: CursorStart, isolation: Isolation = 'committed'): Promise<number> {
  const offsets = broker.offsets(tp);
  const end = broker.visibleEnd(tp, isolation);
  switch (start.kind) {
    case 'earliest':
      return offsets.logStartOffset;
    case 'latest':
      return end;
    case 'offset':
      return Math.min(Math.max(start.offset, offsets.logStartOffset), end);
    case 'timestamp': {
      const found = await broker.listOffset(tp, start.timestampMs);
      return found.offset < 0 ? end : Math.min(found.offset, end);
    }
  }
}

/** A transient error: worth the same read again. A partition that is gone stays gone for this cursor. */
export function isTransient(e: BrokerError): boolean {
  return ERRORS[e.code].retriable && e.code !== 'UNKNOWN_TOPIC_OR_PARTITION';
}

export class PartitionCursor {
  /** The next offset this cursor reads. */
  position: number;
  /** The visible end the last read or wait saw (Kafka Fetch waits past it). */
  endSeen: number;
  private readonly isolation: Isolation;
  private readonly retry: RetryPolicy;
  /** The position of the last read that came back empty, or -1. */
  private emptyAt = -1;

  constructor(
    readonly broker: BrokerApi,
    readonly tp: TopicPartition,
    position: number,
    readonly options: CursorOptions,
  ) {
    this.position = position;
    this.endSeen = position;
    this.isolation = options.isolation ?? 'committed';
    this.retry = options.retry ?? NO_RETRY;
  }

  /** A cursor at `start`, resolved now. */
  static async open(broker: BrokerApi, tp: TopicPartition, start: CursorStart, options: CursorOptions): Promise<PartitionCursor> {
    return new PartitionCursor(broker, tp, await resolveStart(broker, tp, start, options.isolation), options);
  }

  /** Moves the cursor (a caller that delivered less than it read resumes from what it delivered). */
  seek(offset: number): void {
    this.position = offset;
  }

  /** The end of what this cursor may read now (HW under `committed`; the broker decides: BrokerApi.visibleEnd). */
  visibleEnd(): number {
    return this.broker.visibleEnd(this.tp, this.isolation);
  }

  caughtUp(): boolean {
    return this.position >= this.visibleEnd();
  }

  /** The partition's offsets now (and the visible end, noted as seen). */
  offsets(): PartitionOffsets {
    const offsets = this.broker.offsets(this.tp);
    this.endSeen = Math.max(this.position, this.visibleEnd());
    return offsets;
  }

  /** One bounded read of stored batches from the position (at most `maxBytes`, default the cursor's); advances past them. */
  async readRaw(maxBytes = this.options.maxBytes): Promise<RawRead> {
    for (let resets = 0; ; resets++) {
      const from = this.position;
      try {
        const r = await this.withRetry(() => this.broker.read(this.tp, from, { maxBytes, isolation: this.isolation }));
        const offsets = { logStartOffset: r.logStartOffset, highWatermark: r.highWatermark, logEndOffset: r.logEndOffset };
        this.endSeen = Math.max(from, r.visibleEnd);
        const nextOffset = Math.max(r.nextOffset, from);
        this.emptyAt = r.records.byteLength === 0 ? from : -1;
        if (this.position === from) this.position = nextOffset; // a seek during the read wins
        return { records: r.records, from, nextOffset, offsets };
      } catch (err) {
        const e = asBrokerError(err);
        if (e.code !== 'OFFSET_OUT_OF_RANGE' || this.options.onOutOfRange === 'fail' || resets >= RESETS_PER_READ_MAX) throw e;
        this.reset(from);
      }
    }
  }

  /** One bounded read, decoded: records at or after the position, control batches skipped. */
  async read(): Promise<DecodedRead> {
    const raw = await this.readRaw();
    return { ...raw, records: decodeFrom(raw.records, raw.from) };
  }

  /**
   * Resolves once there is something past the position to read (true), or after maxWaitMs or
   * an abort (false). Returns at once when data is already visible.
   */
  async wait(maxWaitMs: number): Promise<boolean> {
    const end = this.visibleEnd();
    if (end > this.position) {
      if (this.emptyAt !== this.position) return true;
      // Visible but not readable yet (the visible end falls inside a batch): do not spin.
      await sleep(Math.min(maxWaitMs, this.options.emptyReadBackoffMs ?? 1), this.options.signal);
      return this.visibleEnd() > this.position;
    }
    // LIMIT_EXCEEDED (too many parked readers) is transient: the same retry rule as a read.
    await this.withRetry(() => this.broker.waitForData([{ ...this.tp, afterOffset: this.position }], maxWaitMs, this.options.signal, this.isolation));
    this.endSeen = Math.max(this.endSeen, this.visibleEnd());
    return this.visibleEnd() > this.position;
  }

  /**
   * Long poll over several cursors (one Fetch): resolves when any partition's visible end
   * passes what its cursor last saw, after maxWaitMs, or on abort. All cursors share an isolation.
   */
  static async waitAny(cursors: PartitionCursor[], maxWaitMs: number, signal?: AbortSignal): Promise<void> {
    if (cursors.length === 0) return;
    const positions = cursors.map((c) => ({ ...c.tp, afterOffset: Math.max(c.position, c.endSeen) }));
    await cursors[0].broker.waitForData(positions, maxWaitMs, signal, cursors[0].isolation);
  }

  /** After OFFSET_OUT_OF_RANGE: where the policy says, from the partition's offsets now. */
  private reset(from: number): void {
    const offsets = this.broker.offsets(this.tp);
    const end = this.visibleEnd();
    const policy = this.options.onOutOfRange;
    const to = policy === 'earliest' ? offsets.logStartOffset : policy === 'latest' ? end : from < offsets.logStartOffset ? offsets.logStartOffset : end;
    this.position = to;
    this.options.onReset?.(from, to, offsets);
  }

  /** The one retry rule: transient errors, at most attemptsMax times, linear backoff. */
  private async withRetry<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const e = asBrokerError(err);
        if (!isTransient(e) || attempt > this.retry.attemptsMax || this.options.signal?.aborted) throw e;
        this.options.onRetry?.(e, attempt);
        await sleep(Math.min(this.retry.backoffMaxMs, this.retry.backoffMs * attempt), this.options.signal);
      }
    }
  }
}

/** Records at or after `from` of whole stored batches; control batches (transaction markers) carry none. */
export function decodeFrom(bytes: Uint8Array, from: number): DecodedRecord[] {
  const records: DecodedRecord[] = [];
  for (const b of decodeBatches(bytes, { partialTail: 'ignore' })) {
    if (b.header.isControl) continue;
    for (const r of b.records) if (r.offset >= from) records.push(r);
  }
  return records;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
