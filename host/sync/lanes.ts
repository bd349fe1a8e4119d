// The uplink's reserved lane (uplink.reservedTopics; docs/uplink.md, "Reserved lane"): commands and
// alarms are never stuck behind a telemetry backlog. A partition of a reserved topic
//   - skips the priority gate (it waits for no class),
//   - is served first by the bandwidth cap's token bucket (host/sync/flow.ts, `reserved`),
//   - has its produce requests queued ahead of the others on the connection (`urgent`), so it
//     waits only for requests already written (at most uplink.inFlightMax per connection),
//   - and while any reserved partition is busy (has unsent data), every other partition keeps at
//     most one batch in flight instead of uplink.inFlightBatchesMax, so what is written ahead of a
//     reserved batch stays small.
// Nothing here buffers: each of these is a choice of who goes next.
import { topicMatches } from './options.js';

export class ReservedLane {
  /** Reserved partitions (keys) that have unsent data. */
  private readonly busy = new Set<string>();

  constructor(readonly patterns: readonly string[]) {}

  /** Whether a source topic rides the reserved lane. */
  has(topic: string): boolean {
    return this.patterns.length > 0 && topicMatches(this.patterns, topic);
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
}
