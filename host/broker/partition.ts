// One partition as the broker sees it: its log, its replica state (role, leader epoch, high
// watermark), its parked readers, and a count of the calls using the log right now, so a topic
// deletion can wait for them before removing files.
//
// Offsets, in the order asserted on every change (Kafka's: log start ≤ HW ≤ LEO):
//   logEndOffset    what this replica has stored and acknowledged (the log's readable end)
//   highWatermark   what every replica in sync has stored: the end of what clients may read
//                   (isolation `committed`). On one node the broker is the only replica, so
//                   HW follows LEO (`hwFollowsLogEnd`); the cluster issue clears that flag and
//                   advances HW from follower fetch positions instead.
// Readers park on one of three lists, one per isolation: `waiters` (woken when HW passes them:
// every client), `logEndWaiters` (woken when LEO passes them) and `writtenWaiters` (woken when
// the written end passes them: followers' fetches). acks=all producers park on a
// third, `acks`, woken when HW passes their batch (bounded by the broker's pending-bytes limit:
// a waiting batch's bytes stay counted until it is answered).
//
// Replication (issue 11, Kafka's ReplicaManager/Partition in our words): the metadata names a
// leader, a leader epoch and the in-sync replicas; the broker calls becomeLeader/becomeFollower.
// As leader the partition keeps each follower's durable end (what its fsync covers: the end a
// pipelining follower reports apart from its fetch offset, else its fetch offset, since such a
// follower fetches from its log end after its fsync) and the last time it had caught up, and
// moves HW to the lowest of those among the ISR, this one's log end included. Followers copy what the
// leader has written before its own fsync returns (isolation `written`), so the two fsyncs
// overlap; the HW never passes this node's log end, which under flush=always is what its fsync
// covers, nor a follower's reported durable end, which is what its fsync covers: a record is
// committed only once every in-sync replica has it on disk. As follower, HW is what the leader
// sent, capped at this log end.
import type { PartitionState, TopicPartition } from './api.js';
import type { PartitionLogApi } from '../log/api.js';
import type { PartitionWaiters, WakeReason } from './waiters.js';
import { BrokerError } from '../errors/index.js';

/** `<topic>-<partition>`: Kafka's directory name (and the metrics/log label). */
export function partitionDirName(topic: string, partition: number): string {
  return `${topic}-${partition}`;
}

/** Leader: takes appends and decides the HW. Follower: stores the leader's batches as sent. */
export type PartitionRole = 'leader' | 'follower';

/** What the leader knows of one follower from its fetches. */
export interface FollowerState {
  /**
   * The follower's log end as it counts for the HW and the ISR: what its fsync covers (its
   * reported durable end; without one, the offset of its last fetch, which it sends only once its
   * append is acknowledged under its flush policy).
   */
  logEndOffset: number;
  /** Last time (ms) the follower's log end reached this leader's log end as it was at an earlier fetch of it. */
  caughtUpMs: number;
  /** Last fetch time (ms). */
  fetchMs: number;
  /**
   * This leader's log end at the follower's recent fetches, oldest first (Kafka's
   * lastFetchLeaderLogEndOffset, kept for more than the last fetch: a pipelining follower's
   * durable end trails its fetch offset by the fsync it has in flight). Bounded by
   * LEADER_ENDS_KEPT_MAX; an entry only when the leader's end moved since the last one.
   */
  leaderEndsAtFetch: Array<{ leaderEnd: number; atMs: number }>;
}

/** Leader ends kept per follower for its caught-up time: a few fetch round trips of pipelining. */
const LEADER_ENDS_KEPT_MAX = 16;

interface AckWaiter {
  offset: number;
  resolve(): void;
  reject(err: BrokerError): void;
  timer: NodeJS.Timeout;
}

export class Partition {
  role: PartitionRole = 'leader';
  /** The leader's node id (-1: none known); on one node, this node. */
  leaderId = -1;
  /** In-sync replicas as the metadata names them (node ids). */
  isr: readonly number[] = [];
  /** Every replica of the partition (assignment). */
  replicas: readonly number[] = [];
  /** Followers' fetch positions, by node id (leader only). */
  readonly followers = new Map<number, FollowerState>();
  private acks: AckWaiter[] = [];
  /** The epoch of the current leader (KIP-101); stamped into batches this node writes as leader. */
  leaderEpoch: number;
  /** One node: HW = LEO after every append. False once other replicas must confirm first. */
  hwFollowsLogEnd = true;
  private hw: number;
  /** Set once the topic is being deleted or the broker closes: new calls are refused. */
  retired = false;
  /** Detaches the log's end-offset listener (set by the broker). */
  unsubscribe: () => void = () => undefined;
  private inUse = 0;
  private idle: Array<() => void> = [];

  constructor(
    readonly tp: TopicPartition,
    readonly dir: string,
    readonly log: PartitionLogApi,
    /** Readers of committed data (every client): woken when the high watermark passes them. */
    readonly waiters: PartitionWaiters,
    /** Readers up to the log end: woken when the log end passes them. */
    readonly logEndWaiters: PartitionWaiters,
    /** Readers up to the written end (followers): woken when a write passes them, before its fsync returns. */
    readonly writtenWaiters: PartitionWaiters,
    leaderEpoch = 0,
  ) {
    this.leaderEpoch = leaderEpoch;
    this.hw = log.logEndOffset; // recovery keeps only what was acknowledged: all of it is committed on one node
  }

  get highWatermark(): number {
    return this.hw;
  }

  /** The replica state the doors see (BrokerApi.partitionState). */
  state(): PartitionState {
    const logEndOffset = this.log.logEndOffset;
    return { role: this.role, leaderEpoch: this.leaderEpoch, leaderId: this.leaderId, isr: this.isr, replicas: this.replicas, logStartOffset: this.log.logStartOffset, highWatermark: this.hw, logEndOffset };
  }

  /** The written end moved (a write returned, its fsync may still run): wakes followers' fetches (isolation `written`). */
  writtenEndAdvanced(writtenEndOffset: number): void {
    this.writtenWaiters.wake(writtenEndOffset);
  }

  /** The log end moved (an append became readable): wakes log-end readers, and moves HW on one node. */
  logEndAdvanced(logEndOffset: number): void {
    this.logEndWaiters.wake(logEndOffset);
    if (this.hwFollowsLogEnd) this.advanceHighWatermark(logEndOffset);
    else if (this.role === 'leader') this.recomputeHighWatermark();
  }

  /**
   * Replicated from now on (a cluster): HW no longer follows the log end but the ISR. HW starts
   * at the log start: a restarted replica does not know what was committed until the leader
   * (or, as leader, its followers) tell it, and a client must never read what may be truncated.
   */
  replicated(selfId: number): void {
    this.hwFollowsLogEnd = false;
    this.selfId = selfId;
    this.hw = this.log.logStartOffset;
  }

  private selfId = -1;
  /** The epoch this node last became leader in (-1: not leading). */
  private ledEpoch = -1;
  /** The log end when this node became leader in its epoch: a follower rejoins the ISR only past it (Kafka's rule). */
  epochStartOffset = 0;

  /** This node leads from `epoch` with `isr` (KIP-101: its appends are stamped with the epoch). */
  becomeLeader(epoch: number, isr: readonly number[], replicas: readonly number[], nowMs: number): void {
    // A new leadership (not an ISR change within it): also the first call, whose role was the one-node default.
    const newTerm = this.ledEpoch !== epoch;
    this.ledEpoch = epoch;
    this.role = 'leader';
    this.leaderId = this.selfId;
    this.leaderEpoch = epoch;
    this.isr = [...isr];
    this.replicas = [...replicas];
    if (newTerm) {
      this.epochStartOffset = this.log.logEndOffset;
      // Kafka: a new leader starts every follower's state afresh, caught up as of now, so the
      // lag clock of a follower starts when this leader does.
      this.followers.clear();
      for (const r of replicas) if (r !== this.selfId) this.followers.set(r, { logEndOffset: -1, caughtUpMs: nowMs, fetchMs: 0, leaderEndsAtFetch: [] });
    }
    this.recomputeHighWatermark();
  }

  /** This node follows `leader` in `epoch`: appends are refused, the replica fetcher fills the log. */
  becomeFollower(leader: number, epoch: number, isr: readonly number[], replicas: readonly number[]): void {
    this.role = 'follower';
    this.ledEpoch = -1;
    this.leaderId = leader;
    this.leaderEpoch = epoch;
    this.isr = [...isr];
    this.replicas = [...replicas];
    this.followers.clear();
    this.failAcks(new BrokerError('NOT_LEADER_OR_FOLLOWER', `${this.tp.topic}-${this.tp.partition}: this node is no longer the leader (leader ${leader}, epoch ${epoch}); the outcome of the write is unknown`));
  }

  /**
   * A follower fetched from `fetchOffset` (leader only); may move HW. `durableEndOffset` (a
   * pipelining follower, replica-fetcher.ts) is the end its fsync covers, at most the fetch
   * offset: only that counts for the HW and the ISR. Without it the fetch offset is the follower's
   * log end (it fetches only once its append is acknowledged under its flush policy).
   */
  followerFetched(replicaId: number, fetchOffset: number, nowMs: number, durableEndOffset = fetchOffset): void {
    const f = this.followers.get(replicaId);
    if (!f) return;
    const end = Math.min(fetchOffset, durableEndOffset);
    const leaderEnd = this.log.logEndOffset;
    // Kafka's rule, over more than one fetch: caught up now if it holds this leader's log end, or
    // as of the latest earlier fetch whose leader log end it holds now.
    if (end >= leaderEnd) f.caughtUpMs = nowMs;
    const ends = f.leaderEndsAtFetch;
    while (ends.length > 0 && ends[0]!.leaderEnd <= end) f.caughtUpMs = Math.max(f.caughtUpMs, ends.shift()!.atMs);
    if (end < leaderEnd && (ends.length === 0 || ends.at(-1)!.leaderEnd < leaderEnd)) {
      // Past the bound the oldest goes: its time is the earliest, so only a later (stricter) one is credited.
      if (ends.length >= LEADER_ENDS_KEPT_MAX) ends.shift();
      ends.push({ leaderEnd, atMs: nowMs });
    }
    f.logEndOffset = end;
    f.fetchMs = nowMs;
    this.recomputeHighWatermark();
  }

  /** Leader: HW = the lowest log end among the in-sync replicas (this one included). */
  private recomputeHighWatermark(): void {
    if (this.role !== 'leader' || this.hwFollowsLogEnd) return;
    let low = this.log.logEndOffset;
    for (const id of this.isr) {
      if (id === this.selfId) continue;
      const f = this.followers.get(id);
      low = Math.min(low, f ? Math.max(f.logEndOffset, 0) : 0);
    }
    this.advanceHighWatermark(low);
  }

  /** Follower: the leader's HW as its fetch answer said, never past this log end. */
  followerHighWatermark(leaderHw: number): void {
    this.advanceHighWatermark(Math.min(leaderHw, this.log.logEndOffset));
  }

  /**
   * acks=all: resolves once HW passes `offset` (the batch's next offset); REQUEST_TIMED_OUT
   * after `timeoutMs`; NOT_LEADER_OR_FOLLOWER if this node stops leading first.
   */
  awaitHighWatermark(offset: number, timeoutMs: number): Promise<void> {
    if (this.hw >= offset) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w: AckWaiter = {
        offset,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.acks = this.acks.filter((x) => x !== w);
          reject(new BrokerError('REQUEST_TIMED_OUT', `${this.tp.topic}-${this.tp.partition}: the in-sync replicas [${this.isr.join(', ')}] did not confirm offset ${offset - 1} within ${timeoutMs} ms (high watermark ${this.hw}); the write may still commit`));
        }, Math.max(0, timeoutMs)),
      };
      this.acks.push(w);
    });
  }

  private failAcks(err: BrokerError): void {
    const all = this.acks;
    this.acks = [];
    for (const w of all) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  private wakeAcks(): void {
    if (this.acks.length === 0) return;
    const keep: AckWaiter[] = [];
    for (const w of this.acks) {
      if (w.offset <= this.hw) {
        clearTimeout(w.timer);
        w.resolve();
      } else keep.push(w);
    }
    this.acks = keep;
  }

  /**
   * Moves the high watermark forward to `offset` (never past the log end, never back) and wakes
   * committed readers it passes. The broker calls it; the cluster issue will call it with the
   * lowest in-sync follower fetch position.
   */
  advanceHighWatermark(offset: number): void {
    const next = Math.min(offset, this.log.logEndOffset);
    if (next <= this.hw) return;
    this.hw = next;
    this.assertOffsets();
    this.waiters.wake(next);
    this.wakeAcks();
    // A leader's parked follower fetches answer now, carrying the new HW: a follower's clients
    // (MQTT subscribers, WebSocket tails on that node) read only below the HW it learnt, so it
    // must not wait out a whole long poll (replicaFetchWaitMs) to hear it.
    if (this.role === 'leader' && !this.hwFollowsLogEnd) {
      this.writtenWaiters.wakeAll('data');
      this.logEndWaiters.wakeAll('data');
    }
  }

  /** After a truncation (a follower's log cut back to the leader's): HW may not exceed the new end, nor lag a reset log's start. */
  logTruncated(): void {
    this.hw = Math.max(this.log.logStartOffset, Math.min(this.hw, this.log.logEndOffset));
    this.assertOffsets();
  }

  /** HW ≤ LEO; a violation is a programmer error (a bad caller), not an operating one. */
  private assertOffsets(): void {
    const leo = this.log.logEndOffset;
    if (!(this.hw <= leo)) throw new Error(`partition ${this.tp.topic}-${this.tp.partition}: high watermark ${this.hw} past log end ${leo}`);
  }

  /** Runs `fn` against the log, counted so `drain()` can wait for it. */
  async use<T>(fn: (log: PartitionLogApi) => Promise<T>): Promise<T> {
    if (this.retired) {
      throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `partition ${this.tp.topic}-${this.tp.partition} is being removed`);
    }
    this.inUse++;
    try {
      return await fn(this.log);
    } finally {
      if (--this.inUse === 0 && this.idle.length > 0) {
        const waiting = this.idle;
        this.idle = [];
        for (const resolve of waiting) resolve();
      }
    }
  }

  /** Ends every parked reader of this partition (topic deleted, broker closing). */
  wakeAll(reason: WakeReason): void {
    this.failAcks(new BrokerError('NOT_LEADER_OR_FOLLOWER', `${this.tp.topic}-${this.tp.partition} is closing; the outcome of the write is unknown`));
    this.waiters.wakeAll(reason);
    this.logEndWaiters.wakeAll(reason);
    this.writtenWaiters.wakeAll(reason);
  }

  /** Retires the partition and resolves once no call is using its log. */
  drain(): Promise<void> {
    this.retired = true;
    this.unsubscribe();
    if (this.inUse === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }
}
