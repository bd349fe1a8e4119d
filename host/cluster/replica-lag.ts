// Follower lag of the partitions this node leads, for `tributary cluster status`, GET /stats and
// the console. Only a partition's leader knows how far each follower is: a follower's position is
// the offset of its last fetch, which arrives at the leader and nowhere else. So each node reports
// the partitions it leads, and the status command asks every node and joins the answers.
//
// For each follower: its log end (the offset of its last fetch; -1 before its first fetch in this
// leader's epoch), how many offsets it is behind this leader's log end, how long ago it last
// reached the log end (what the ISR shrink measures against `cluster.replicaLagTimeMaxMs`) and how
// long ago it last fetched.
import type { Broker } from '../broker/broker.js';

export interface FollowerLag {
  nodeId: number;
  /** -1: no fetch yet in this leader's epoch. */
  logEndOffset: number;
  /** This leader's log end minus the follower's (the whole log end when it has not fetched yet). */
  offsetsBehind: number;
  /** Since the follower last reached this leader's log end (ms). */
  caughtUpAgoMs: number;
  /** Since its last fetch (ms); null before its first fetch in this epoch. */
  lastFetchAgoMs: number | null;
  inSync: boolean;
}

export interface LedPartitionLag {
  topic: string;
  partition: number;
  leaderEpoch: number;
  logEndOffset: number;
  highWatermark: number;
  followers: FollowerLag[];
}

/** The partitions this node leads (at most `max`, the rest counted) with each follower's lag. */
export function replicaLagOf(broker: Pick<Broker, 'replicatedPartitions'>, nowMs: number, max: number): { led: LedPartitionLag[]; ledTotal: number } {
  const led: LedPartitionLag[] = [];
  let ledTotal = 0;
  for (const { partition: p } of broker.replicatedPartitions()) {
    if (p.role !== 'leader' || p.retired) continue;
    ledTotal++;
    if (led.length >= max) continue;
    const logEnd = p.log.logEndOffset;
    const followers: FollowerLag[] = [];
    for (const [nodeId, f] of p.followers) {
      followers.push({
        nodeId,
        logEndOffset: f.logEndOffset,
        offsetsBehind: Math.max(0, logEnd - Math.max(0, f.logEndOffset)),
        caughtUpAgoMs: Math.max(0, nowMs - f.caughtUpMs),
        lastFetchAgoMs: f.fetchMs > 0 ? Math.max(0, nowMs - f.fetchMs) : null,
        inSync: p.isr.includes(nodeId),
      });
    }
    followers.sort((a, b) => a.nodeId - b.nodeId);
    led.push({ topic: p.tp.topic, partition: p.tp.partition, leaderEpoch: p.leaderEpoch, logEndOffset: logEnd, highWatermark: p.highWatermark, followers });
  }
  return { led, ledTotal };
}

/**
 * One follower's lag as the status command and the console print it: `2: 0`, `3: 1,204 (9.1 s)`,
 * `3: 1,204 (no fetch yet)` (a replica listed in sync at creation that has not fetched since).
 */
export function describeFollowerLag(f: FollowerLag): string {
  const behind = f.offsetsBehind.toLocaleString('en-US');
  if (f.lastFetchAgoMs === null) return `${f.nodeId}: ${behind} (no fetch yet)`;
  return f.offsetsBehind === 0 ? `${f.nodeId}: 0` : `${f.nodeId}: ${behind} (${(f.caughtUpAgoMs / 1000).toFixed(1)} s)`;
}
