// Long-poll readers parked until data arrives. No polling: each partition keeps the readers
// waiting on it in two lists (host/broker/partition.ts): committed readers, woken when the high
// watermark passes their offset, and log-end readers (followers), woken when the log end does. A reader waiting on several partitions sits in each one's list and is removed from
// all of them when it finishes (woken, timed out, aborted or shut down), so nothing leaks.
//
// Bounded: at most `maxWaiting` readers at once; the next one is refused with LIMIT_EXCEEDED
// (retriable) instead of growing memory.
import { BrokerError } from '../errors/index.js';

/** Why a wait ended. */
export type WakeReason = 'data' | 'timeout' | 'abort' | 'shutdown';

interface Waiter {
  /** The partition lists this waiter sits in, with the offset it waits past in each. */
  lists: PartitionWaiters[];
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  resolve: (reason: WakeReason) => void;
  done: boolean;
}

/** One partition's parked readers: waiter → the log end offset it needs to exceed. */
export class PartitionWaiters {
  readonly waiting = new Map<Waiter, number>();

  constructor(private readonly owner: WaiterRegistry) {}

  get size(): number {
    return this.waiting.size;
  }

  /** Called after an append: wakes every reader whose offset the log end has passed. */
  wake(logEndOffset: number): void {
    if (this.waiting.size === 0) return;
    for (const [waiter, afterOffset] of this.waiting) {
      if (logEndOffset > afterOffset) this.owner.finish(waiter, 'data');
    }
  }

  /** Wakes everyone (topic deleted, broker closing). */
  wakeAll(reason: WakeReason): void {
    for (const waiter of [...this.waiting.keys()]) this.owner.finish(waiter, reason);
  }
}

export class WaiterRegistry {
  private count = 0;

  constructor(private readonly maxWaiting: number) {}

  /** Readers parked right now. */
  get size(): number {
    return this.count;
  }

  newPartitionList(): PartitionWaiters {
    return new PartitionWaiters(this);
  }

  /**
   * Parks a reader on each (list, afterOffset) pair until one list's log end passes its
   * offset, `maxWaitMs` passes, or `signal` aborts. The caller has already checked that no
   * position is satisfied now (with no await between that check and this call).
   */
  wait(positions: Array<{ list: PartitionWaiters; afterOffset: number }>, maxWaitMs: number, signal?: AbortSignal): Promise<WakeReason> {
    if (signal?.aborted) return Promise.resolve('abort');
    // No positions: nothing can wake it, but it still waits out maxWaitMs (a door looping on
    // an empty wait must not spin).
    if (maxWaitMs <= 0) return Promise.resolve('timeout');
    if (this.count >= this.maxWaiting) {
      return Promise.reject(new BrokerError('LIMIT_EXCEEDED', `too many waiting readers (maxWaitingReaders=${this.maxWaiting}); retry later`));
    }
    return new Promise<WakeReason>((resolve) => {
      const waiter: Waiter = { lists: [], timer: undefined, signal, onAbort: undefined, resolve, done: false };
      for (const { list, afterOffset } of positions) {
        // A reader listing one partition twice waits for the lower offset.
        const prev = list.waiting.get(waiter);
        list.waiting.set(waiter, prev === undefined ? afterOffset : Math.min(prev, afterOffset));
        if (prev === undefined) waiter.lists.push(list);
      }
      this.count++;
      waiter.timer = setTimeout(() => this.finish(waiter, 'timeout'), maxWaitMs);
      if (signal) {
        waiter.onAbort = () => this.finish(waiter, 'abort');
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
    });
  }

  /** Ends a wait: out of every list, timer and abort listener gone, promise resolved. */
  finish(waiter: Waiter, reason: WakeReason): void {
    if (waiter.done) return;
    waiter.done = true;
    for (const list of waiter.lists) list.waiting.delete(waiter);
    waiter.lists.length = 0;
    if (waiter.timer) clearTimeout(waiter.timer);
    if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
    this.count--;
    waiter.resolve(reason);
  }
}
