// One partition as the broker sees it: its log, its parked readers, and a count of the calls
// using the log right now, so a topic deletion can wait for them before removing files.
import type { TopicPartition } from './api.js';
import type { PartitionLogApi } from '../log/api.js';
import type { PartitionWaiters } from './waiters.js';
import { BrokerError } from '../errors/index.js';

/** `<topic>-<partition>`: Kafka's directory name (and the metrics/log label). */
export function partitionDirName(topic: string, partition: number): string {
  return `${topic}-${partition}`;
}

export class Partition {
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
    readonly waiters: PartitionWaiters,
  ) {}

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

  /** Retires the partition and resolves once no call is using its log. */
  drain(): Promise<void> {
    this.retired = true;
    this.unsubscribe();
    if (this.inUse === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }
}
