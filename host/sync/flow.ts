// What decides when a partition of the uplink may send its next batch: a bandwidth cap shared by
// the link (a token bucket on bytes) and strict priority between topic classes. Both are waits
// before a batch is started, never buffers: the batch stays a source read until its turn.
//
// Token bucket: `rateBytesPerSec` tokens a second, at most `burstBytes` stored. A batch of n
// bytes waits until the bucket holds min(n, burstBytes) tokens, then takes n (the balance may go
// below zero: a batch larger than the burst is sent whole, and the debt is waited out by the
// batches after it), so over any period long compared with one batch the bytes sent are at most
// burst + rate × time. Waiters are served one at a time in arrival order, so partitions share the
// cap instead of racing for it — except the reserved lane's (uplink.reservedTopics, `reserved`):
// they have their own arrival-order queue, and while one waits no other waiter takes tokens, so a
// reserved batch waits only for the reserved batches ahead of it and for the bucket to hold its
// bytes (from a balance never below −(largest batch − burst)), never for the queue of the others —
// unless the others are owed their floor (uplink.reservedShareMax < 1, `floor`, host/sync/lanes.ts):
// then the others' waiter goes first, and a reserved waiter waits until it has taken its bytes.
//
// Priority: each source partition has a class (0 = highest: the index of the first matching
// uplink.priorities pattern; unmatched topics come last). A partition may start a batch only while
// no partition of a higher class is busy (has unsent data, or has not yet found out whether it
// has: it starts busy). A partition that is blocked (the target cannot take its data) is not busy,
// so it never holds the others back.
import { topicMatches } from './options.js';
import { sleep } from '../kafka/client/producer.js';
import { ShareFloor } from './lanes.js';

export class TokenBucket {
  private tokens: number;
  private lastMs: number;
  private queue: Promise<void> = Promise.resolve();
  private reservedQueue: Promise<void> = Promise.resolve();
  /** Reserved takes not yet served: while above 0 the others take nothing (unless owed by `floor`). */
  private reservedPending = 0;
  /** The others' takes not yet served (one waits at a time; the rest queue behind it). */
  private othersPending = 0;
  /** Woken at every take served or given up: whose turn it is may have changed. */
  private turnWaiters: Array<() => void> = [];

  constructor(
    readonly rateBytesPerSec: number,
    readonly burstBytes: number,
    private readonly nowMs: () => number = () => performance.now(),
    /** The others' floor in bytes (uplink.reservedShareMax); the default is a strict lane. Credit: one burst. */
    readonly floor: ShareFloor = new ShareFloor(1, 0),
    /**
     * With a floor: whether a reserved partition has unsent data (ReservedLane.active). The others
     * then wait here unless owed, even before its take is pending (while it reads), the hold the
     * priority gate gives a strict lane; call `laneIdle` when it turns false.
     */
    private readonly laneBusy: () => boolean = () => false,
  ) {
    this.tokens = burstBytes;
    this.lastMs = nowMs();
  }

  private refill(): void {
    const now = this.nowMs();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.lastMs) * this.rateBytesPerSec) / 1000);
    this.lastMs = now;
  }

  /** Resolves when `bytes` may be sent (taken from the bucket), or when `signal` aborts; `reserved`: the reserved lane, served first. */
  take(bytes: number, signal: AbortSignal, reserved = false): Promise<void> {
    if (reserved) {
      this.reservedPending++;
      const turn = this.reservedQueue.then(() => this.waitFor(bytes, signal, true)).finally(() => {
        this.reservedPending--;
        this.wakeTurns();
      });
      this.reservedQueue = turn.catch(() => undefined);
      return turn;
    }
    this.othersPending++;
    const turn = this.queue.then(() => this.waitFor(bytes, signal, false)).finally(() => {
      this.othersPending--;
      this.wakeTurns();
    });
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** A take was served or given up: the waiters held for their turn look again. */
  private wakeTurns(): void {
    const w = this.turnWaiters;
    this.turnWaiters = [];
    for (const f of w) f();
  }

  /** Whether a waiter of the lane (`reserved`) or of the others may take tokens now. */
  private myTurn(reserved: boolean): boolean {
    if (reserved) return !(this.othersPending > 0 && this.floor.othersFirst());
    return (this.reservedPending === 0 && !this.laneBusy()) || this.floor.othersFirst();
  }

  /** The reserved lane has no unsent data any more: the others' waiters look again. */
  laneIdle(): void {
    this.wakeTurns();
  }

  private async waitFor(bytes: number, signal: AbortSignal, reserved: boolean): Promise<void> {
    const needed = Math.min(bytes, this.burstBytes);
    for (;;) {
      if (signal.aborted) return;
      if (!this.myTurn(reserved)) {
        await nextWake(this.turnWaiters, signal);
        continue;
      }
      this.refill();
      if (this.tokens >= needed) {
        this.tokens -= bytes;
        if (reserved) this.floor.laneSent(bytes, this.othersPending > 0);
        else this.floor.othersSent(bytes);
        return;
      }
      await sleep(Math.max(1, Math.ceil(((needed - this.tokens) * 1000) / this.rateBytesPerSec)), signal);
    }
  }
}

export class PriorityGate {
  /** Busy partitions per class. */
  private readonly busy = new Map<number, Set<string>>();
  private waiters: Array<() => void> = [];

  constructor(readonly patterns: readonly string[]) {}

  /** The class of a source topic: the index of the first matching pattern, else the lowest. */
  classOf(topic: string): number {
    const i = this.patterns.findIndex((p) => topicMatches([p], topic));
    return i < 0 ? this.patterns.length : i;
  }

  setBusy(key: string, cls: number, busy: boolean): void {
    let set = this.busy.get(cls);
    if (!set) this.busy.set(cls, (set = new Set()));
    const was = set.has(key);
    if (busy) set.add(key);
    else set.delete(key);
    if (was && !busy) this.wake();
  }

  /** True while any partition of a class above `cls` is busy. */
  held(cls: number): boolean {
    for (const [c, set] of this.busy) if (c < cls && set.size > 0) return true;
    return false;
  }

  /** Resolves when no higher class is busy (at once when none is), or on abort. */
  async turn(cls: number, signal: AbortSignal): Promise<void> {
    while (this.held(cls) && !signal.aborted) {
      await nextWake(this.waiters, signal);
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** Resolves at the next wake of `waiters` (the owner calls and clears them) or when `signal` aborts. */
function nextWake(waiters: Array<() => void>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    waiters.push(done);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * A bound on bytes held at once by many holders (the link's batches in flight): `acquire` waits
 * while the bytes held plus its own would pass the bound, except when nothing is held (one item
 * larger than the bound still passes alone, so nothing waits forever). Waiters are woken on every
 * release and served in arrival order.
 */
export class ByteBound {
  held = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly bytesMax: number) {}

  /** `urgent` (the reserved lane) is counted but never waits: the bound may be passed by the reserved partitions' pipelines (docs/uplink.md). */
  async acquire(bytes: number, signal: AbortSignal, urgent = false): Promise<void> {
    while (!urgent && this.held > 0 && this.held + bytes > this.bytesMax && !signal.aborted) {
      await nextWake(this.waiters, signal);
    }
    this.held += bytes;
  }

  release(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

