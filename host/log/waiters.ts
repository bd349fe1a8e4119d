// Promises parked until one of the log's offsets reaches a target: appends waiting for the
// fsync that covers them (the appender), retried duplicates waiting until their original is
// readable (the composer). Bounded by what can be waiting: the appender's queue bound
// (maxPendingAppendBytes) and the requests in flight. And the listeners told of each advance of
// one of the log's ends (the broker's, which wake its parked readers): one per partition and end.
export interface OffsetWaiter {
  /** Resolve when the watched offset reaches this. */
  offset: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class OffsetWaiters {
  private list: OffsetWaiter[] = [];

  get size(): number {
    return this.list.length;
  }

  /** Resolves once `settle` reaches `offset` (at once when `current` already has). */
  wait(current: number, offset: number, failure: unknown): Promise<void> {
    if (current >= offset) return Promise.resolve();
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => this.list.push({ offset, resolve, reject }));
  }

  push(w: OffsetWaiter): void {
    this.list.push(w);
  }

  /** The watched offset reached `reached`: resolve every waiter at or below it. */
  settle(reached: number): void {
    if (this.list.length === 0) return;
    let keep: OffsetWaiter[] | null = null;
    for (const w of this.list) {
      if (w.offset <= reached) w.resolve();
      else (keep ??= []).push(w);
    }
    this.list = keep ?? [];
  }

  rejectAll(err: unknown): void {
    for (const w of this.list.splice(0)) w.reject(err);
  }
}

/** Listeners told of each advance of one of the log's ends; one that throws is reported, the others are still told. */
export class OffsetListeners {
  private readonly listeners = new Set<(offset: number) => void>();

  constructor(private readonly threw: (err: unknown) => void) {}

  /** Adds `listener`; returns its unsubscribe function. */
  add(listener: (offset: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  tell(offset: number): void {
    for (const l of this.listeners) {
      try {
        l(offset);
      } catch (err) {
        this.threw(err);
      }
    }
  }
}
