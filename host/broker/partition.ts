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
// Readers park on one of two lists: `waiters` (woken when HW passes them: every client) and
// `logEndWaiters` (woken when LEO passes them: followers only).
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

export class Partition {
  role: PartitionRole = 'leader';
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
    /** Readers up to the log end (followers): woken when the log end passes them. */
    readonly logEndWaiters: PartitionWaiters,
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
    return { role: this.role, leaderEpoch: this.leaderEpoch, logStartOffset: this.log.logStartOffset, highWatermark: this.hw, logEndOffset };
  }

  /** The log end moved (an append became readable): wakes log-end readers, and moves HW on one node. */
  logEndAdvanced(logEndOffset: number): void {
    this.logEndWaiters.wake(logEndOffset);
    if (this.hwFollowsLogEnd) this.advanceHighWatermark(logEndOffset);
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
  }

  /** After a truncation (a follower's log cut back to the leader's): HW may not exceed the new end. */
  logTruncated(): void {
    this.hw = Math.min(this.hw, this.log.logEndOffset);
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
    this.waiters.wakeAll(reason);
    this.logEndWaiters.wakeAll(reason);
  }

  /** Retires the partition and resolves once no call is using its log. */
  drain(): Promise<void> {
    this.retired = true;
    this.unsubscribe();
    if (this.inUse === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }
}
