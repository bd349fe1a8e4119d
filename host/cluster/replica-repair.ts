// A replica whose stored batches fail their CRC is never elected and repairs from its peers
// (issue 11). At start, before this node registers and before any replica fetcher runs, every
// replicated partition's segments are walked with CRC checks (host/log/verify.ts). (The
// controller may already count the node live from its quorum traffic: a node restarted before
// it was fenced is still in its ISRs meanwhile; docs/cluster.md says what that window costs.) A
// damaged replica:
//   1. leaves the ISR at once: a partitionChange proposed with the epoch it was decided on
//      (`basedOn`); if this node leads the partition, the change also gives the leadership up
//      (leader none, epoch + 1) and the controller elects the next in-sync replica, so only an
//      undamaged replica can lead. Were the proposal to race another change, the leader's lag
//      check still removes it (it cannot catch up past the damage without the cut below).
//   2. is cut at its first damaged batch by its replica fetcher, before any fetch (everything
//      from that batch on goes, later sound batches included: the log has no holes), and refetches
//      the rest from the leader; the leader adds it back to the ISR once it has caught up, as any
//      follower (host/cluster/replication.ts).
// The one exception: when this node is the partition's only in-sync replica, no peer holds what
// the damaged batch held; the log is left as it is (reads report the damaged batch) and the
// node says so at error level. An unclean election (an out-of-sync replica leading) stays off.
import type { Logger } from '../logging.js';
import type { Broker } from '../broker/broker.js';
import type { Partition } from '../broker/partition.js';
import { NO_LEADER, partitionStateOf, type PartitionChangeRecord } from '../broker/metadata/records.js';
import { verifyLog, type Damage } from '../log/verify.js';
import type { QuorumMetadataStore } from './quorum-metadata-store.js';

/** Where each damaged replica must be cut before its next fetch (its first damaged offset). */
export type Repairs = Map<Partition, number>;

/**
 * Verifies every replicated partition of this node (one at a time: a sequential read of the
 * replicated data) and returns the cuts to make; proposes each damaged replica out of its ISR.
 */
export async function verifyReplicas(broker: Broker, store: QuorumMetadataStore, nodeId: number, log: Logger): Promise<Repairs> {
  const repairs: Repairs = new Map();
  const started = Date.now();
  let bytes = 0;
  let partitions = 0;
  for (const { partition: p } of broker.replicatedPartitions()) {
    if (p.retired) continue;
    const report = await verifyLog(p.dir);
    bytes += report.bytes;
    partitions++;
    if (!report.damage) continue;
    const name = `${p.tp.topic}-${p.tp.partition}`;
    const damage = report.damage;
    if (!(await leaveIsr(store, p, nodeId, damage, log))) continue;
    repairs.set(p, Math.max(damage.offset, p.log.logStartOffset));
    log.error(
      { tp: name, offset: damage.offset, segment: damage.segment, position: damage.position, defect: damage.defect, logEndOffset: p.log.logEndOffset },
      'replica damaged: a batch fails its CRC check; out of the ISR, it is cut there and refetched from the leader',
    );
  }
  log.info({ partitions, bytes, ms: Date.now() - started, damaged: repairs.size }, 'replicas verified (CRC of every stored batch)');
  return repairs;
}

/** Proposes this node out of the partition's ISR (and leadership). False when it is the only in-sync replica: nothing to repair from. */
async function leaveIsr(store: QuorumMetadataStore, p: Partition, nodeId: number, damage: Damage, log: Logger): Promise<boolean> {
  const t = store.image().topics.get(p.tp.topic);
  if (!t) return false;
  const s = partitionStateOf(t, p.tp.partition);
  const name = `${p.tp.topic}-${p.tp.partition}`;
  if (!s.isr.includes(nodeId)) return true; // out already (fenced while it was down): just repair
  const isr = s.isr.filter((id) => id !== nodeId);
  if (isr.length === 0) {
    log.error({ tp: name, offset: damage.offset, segment: damage.segment, position: damage.position, defect: damage.defect }, 'replica damaged, and it is the only in-sync replica: nothing to repair from; the damaged batch stays (reads report it)');
    return false;
  }
  const leads = s.leader === nodeId;
  const change: PartitionChangeRecord = { type: 'partitionChange', topic: p.tp.topic, partition: p.tp.partition, basedOn: s.partitionEpoch, leader: leads ? NO_LEADER : s.leader, leaderEpoch: leads ? s.leaderEpoch + 1 : s.leaderEpoch, isr };
  try {
    await store.propose([change]);
    log.warn({ tp: name, isr, gaveUpLeadership: leads }, 'damaged replica left the ISR');
  } catch (err) {
    // A raced change: the leader's lag check removes it (it cannot catch up before the cut).
    log.warn({ tp: name, err: (err as Error).message }, 'damaged replica could not leave the ISR now; the leader drops it by lag');
  }
  return true;
}
