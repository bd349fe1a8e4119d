// The uplink's liveness alarm (uplink.stallAlarmSec; docs/uplink.md, "Liveness alarm"): a source
// partition whose forwarding has not moved for stallAlarmSec while it has records to send is
// stalled — a target that takes nothing, a link blackholed, a partition blocked, a loop wedged.
// Users of other store-and-forward tools report exactly this failing silently; here it is a
// warning once per episode, an info line when it clears, the gauge tributary_uplink_stalled and
// `tributary uplink status`.
//
// Progress is the partition's (position, records sent) pair: the position moves with every
// acknowledged batch (and past filtered or dropped records once the link runs), records sent
// with every acknowledged record. The lag counted here is the records stored after the first
// unforwarded offset (not the lag gauge, which is 0 before the first read-back: a target down
// since start must stall too). Checked every topicScanIntervalMs, so an episode is reported
// between stallAlarmSec and stallAlarmSec + topicScanIntervalMs after forwarding stopped.

export interface StallEvents {
  stalled(forMs: number, lagRecords: number): void;
  cleared(forMs: number): void;
}

export class StallWatch {
  private progress = '';
  private sinceMs: number;
  /** When the current episode was reported (null: not stalled). */
  stalledSinceMs: number | null = null;

  constructor(
    readonly thresholdMs: number,
    private readonly events: StallEvents,
    private readonly nowMs: () => number = Date.now,
  ) {
    this.sinceMs = nowMs();
  }

  /** One look: `progress` changes whenever forwarding moved; `lagRecords` are the records still to send. True while stalled. */
  check(progress: string, lagRecords: number): boolean {
    const now = this.nowMs();
    if (progress !== this.progress || lagRecords <= 0) {
      this.progress = progress;
      this.sinceMs = now;
      if (this.stalledSinceMs !== null) {
        this.events.cleared(now - this.stalledSinceMs);
        this.stalledSinceMs = null;
      }
      return false;
    }
    if (this.stalledSinceMs === null && this.thresholdMs > 0 && now - this.sinceMs >= this.thresholdMs) {
      this.stalledSinceMs = this.sinceMs;
      this.events.stalled(now - this.sinceMs, lagRecords);
    }
    return this.stalledSinceMs !== null;
  }

  /** Seconds the current episode has lasted (0 when not stalled). */
  stalledForSec(now = this.nowMs()): number {
    return this.stalledSinceMs === null ? 0 : Math.round((now - this.stalledSinceMs) / 1000);
  }
}
