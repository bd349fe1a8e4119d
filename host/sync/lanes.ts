// The uplink's reserved lane (uplink.reservedTopics; docs/uplink.md, "Reserved lane"): commands and
// alarms are never stuck behind a telemetry backlog. A partition of a reserved topic
//   - skips the priority gate (it waits for no class),
//   - is served first by the bandwidth cap's token bucket (host/sync/flow.ts, `reserved`),
//   - has its produce requests queued ahead of the others on the connection (`urgent`), so it
//     waits only for requests already written (at most uplink.inFlightMax per connection),
//   - and while any reserved partition is busy (has unsent data), every other partition keeps at
//     most one batch in flight instead of uplink.inFlightBatchesMax, so what is written ahead of a
//     reserved batch stays small.
// A floor for the others (uplink.reservedShareMax = s < 1, `ShareFloor`): a lane with more to send
// than the link carries would otherwise starve every other partition for as long as it lasts (a
// device flooding `alarms`). While the others wait, each unit the lane sends earns them (1 − s)/s
// units, and while they are owed anything they go before the lane; so while both have data the
// lane takes at most s of the units and the others at least 1 − s. Units are bytes under a cap
// (the token bucket keeps the balance) and produce requests without one (`turn`/`answered` here).
// With a floor a reserved partition holds no lower priority class at the gate (the share decides
// between the lane and the others); under a cap it holds the others in the bucket instead while it
// has unsent data, unless they are owed.
// Nothing here buffers: each of these is a choice of who goes next.
import { topicMatches } from './options.js';

/**
 * What the others are owed by the lane, in units (bytes or batches). Positive: the others go
 * first. It never rises above what one lane unit earns (the lane stops while anything is owed) and
 * never falls below −`creditMax`: the lane may run that many others' units (creditMax × s/(1 − s)
 * of its own) ahead of its share before the floor applies, so a burst of alarms after quiet
 * telemetry-only traffic is never held, while a sustained flood is.
 */
export class ShareFloor {
  private owed = 0;

  constructor(
    /** uplink.reservedShareMax: 0 < share ≤ 1; 1 = a strict lane (nothing is ever owed). */
    readonly share: number,
    private readonly creditMax: number,
  ) {
    if (!(share > 0 && share <= 1)) throw new Error(`uplink.reservedShareMax must be a number greater than 0 and at most 1, got ${share}`);
  }

  /** The lane sent `units`; `othersWaiting`: some other partition wanted to send meanwhile (only then is anything owed). */
  laneSent(units: number, othersWaiting: boolean): void {
    if (othersWaiting && this.share < 1) this.owed += (units * (1 - this.share)) / this.share;
  }

  /** Another partition sent `units`. */
  othersSent(units: number): void {
    this.owed = Math.max(-this.creditMax, this.owed - units);
  }

  /** True while the others are owed: the lane waits for them if they want to send. */
  othersFirst(): boolean {
    return this.owed > 0;
  }
}

export class ReservedLane {
  /** Reserved partitions (keys) that have unsent data. */
  private readonly busy = new Set<string>();
  /** Batches of other partitions admitted by `turn` and not yet answered (no cap only). */
  private othersUnanswered = 0;
  private waiters: Array<() => void> = [];

  constructor(
    readonly patterns: readonly string[],
    /** The floor counted in produce requests, used when there is no bandwidth cap (under a cap the token bucket counts bytes). */
    readonly batchFloor: ShareFloor = new ShareFloor(1, 0),
  ) {}

  /** Whether a source topic rides the reserved lane. */
  has(topic: string): boolean {
    return this.patterns.length > 0 && topicMatches(this.patterns, topic);
  }

  /** Whether the lane is strict (uplink.reservedShareMax = 1): its partitions then also hold lower priority classes. */
  get strict(): boolean {
    return this.batchFloor.share === 1;
  }

  setBusy(key: string, busy: boolean): void {
    if (busy) this.busy.add(key);
    else this.busy.delete(key);
  }

  /** True while a reserved partition has unsent data. */
  active(): boolean {
    return this.busy.size > 0;
  }

  /** Batches a partition may keep in flight: `configured`, except 1 for a partition outside the lane while the lane is active. */
  pipelineMax(reserved: boolean, configured: number): number {
    return reserved || this.busy.size === 0 ? configured : 1;
  }

  /**
   * No cap: a batch's turn to be started. A reserved batch waits while the others are owed and
   * one of theirs is unanswered (queued behind the lane's urgent requests, or in flight); another
   * partition's batch never waits here, it is counted until `answered`. Resolves at once when
   * nothing is owed; on abort too.
   */
  async turn(reserved: boolean, signal: AbortSignal): Promise<void> {
    if (!reserved) {
      this.othersUnanswered++;
      this.batchFloor.othersSent(1);
      this.wake();
      return;
    }
    while (this.othersUnanswered > 0 && this.batchFloor.othersFirst() && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.waiters.push(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
    this.batchFloor.laneSent(1, this.othersUnanswered > 0);
  }

  /** No cap: another partition's batch counted by `turn` was answered, or never started. */
  answered(): void {
    this.othersUnanswered = Math.max(0, this.othersUnanswered - 1);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
