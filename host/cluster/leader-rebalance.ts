// Preferred-leader rebalancing (Kafka's auto.leader.rebalance.enable, our own small version).
// Every failover and every restart of a node (a new broker epoch leaves the partitions it led
// leaderless, records.ts) moves leaderships away from their preferred replica (the first of a
// partition's assignment), and nothing else ever moves one back: after a rolling restart one
// node leads everything and carries every producer's and consumer's traffic. The controller
// therefore, at most once per `cluster.leaderRebalanceIntervalMs`, hands each partition back to
// its preferred replica where that is as safe as any election:
//
//   - the preferred replica is in the partition's ISR (never an out-of-sync replica: its log
//     holds everything below the high watermark, so no acknowledged record can be lost), and
//   - it is registered and unfenced in the image, and the controller heard it within the
//     session timeout by its own clock (not the grace a new controller gives every broker), so
//     leadership does not go to a node that is dying right now, and
//   - the partition has a leader (a leaderless one is the elections' job) that is not already it.
//
// The ISR is unchanged and the leader epoch rises (KIP-101: the old leader becomes a follower
// and truncates by epoch what it held past the new leader's log, all of it unacknowledged: an
// acks=all write waiting on the old leader fails with NOT_LEADER_OR_FOLLOWER and the client
// retries on the new one, an idempotent producer without duplicates).
//
// A restarted node is out of every ISR from its registration on (a new broker epoch) and back in
// only once it has caught up through a fetch of its new process, so "in the ISR" also means
// "registered with its current broker epoch and caught up"; the node registers its new epoch as
// soon as it has caught up with the metadata (early-registration.ts), before it opens its logs.
//
// No imbalance threshold (Kafka's leader.imbalance.per.broker.percentage): with the 3–5 nodes
// of a cabinet one misplaced leadership is a large share of a node's load, not noise, and the
// interval already bounds how often leaderships move.
import { NO_LEADER, partitionStateOf, type MetadataImage, type PartitionChangeRecord } from '../broker/metadata/records.js';
import { isReplicatedTopic } from '../broker/topic-name.js';

/** Partitions whose leadership a rebalance hands back to their preferred replica now (one record each). */
export function preferredLeaderMoves(image: MetadataImage, alive: (nodeId: number) => boolean): PartitionChangeRecord[] {
  const out: PartitionChangeRecord[] = [];
  for (const t of image.topics.values()) {
    if (!isReplicatedTopic(t.name)) continue;
    for (let p = 0; p < t.partitions; p++) {
      const preferred = t.assignment[p]?.[0];
      if (preferred === undefined) continue;
      const s = partitionStateOf(t, p);
      if (s.leader === NO_LEADER || s.leader === preferred || !s.isr.includes(preferred)) continue;
      const b = image.brokers.get(preferred);
      if (!b || b.fenced || !alive(preferred)) continue;
      out.push({ type: 'partitionChange', topic: t.name, partition: p, basedOn: s.partitionEpoch, leader: preferred, leaderEpoch: s.leaderEpoch + 1, isr: [...s.isr] });
    }
  }
  return out;
}

/**
 * When the controller looks again. The first look comes one interval after it became the
 * controller (a new controller has just seen brokers come and go); after a look that found
 * nothing or whose moves committed, one interval later; a proposal that failed (it raced another
 * change of the same partition) is decided again at the next pass. 0 = off.
 */
export class RebalanceSchedule {
  private dueMs = 0;

  constructor(private readonly intervalMs: number) {}

  get enabled(): boolean {
    return this.intervalMs > 0;
  }

  /** A new controller term (or this node stopped being the controller): start over. */
  reset(): void {
    this.dueMs = 0;
  }

  /** True when a look is due at `nowMs`; `controllerSinceMs` is when this node became the controller. */
  due(nowMs: number, controllerSinceMs: number): boolean {
    if (!this.enabled) return false;
    if (this.dueMs === 0) this.dueMs = controllerSinceMs + this.intervalMs;
    return nowMs >= this.dueMs;
  }

  /** The look found nothing to move, or its moves committed. */
  done(nowMs: number): void {
    this.dueMs = nowMs + this.intervalMs;
  }
}
