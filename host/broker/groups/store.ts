// The coordinator's durable side: the compacted internal topic `__consumer_offsets`, written
// through the broker's one append path (`produce`, acks -1, flush=always) and replayed on open.
// Record layout: records.ts.
//
// Ordering: each group's writes go through one promise chain, so they reach the log in the
// order the coordinator issued them and replay (last value per key wins) rebuilds the state
// the clients were told about. Different groups write concurrently (the broker's group commit
// shares their fsyncs).
import type { BrokerApi, RecordInput, TopicInfo } from '../api.js';
import { BrokerError } from '../../errors/index.js';
import { PartitionCursor } from '../cursor.js';

export const OFFSETS_TOPIC = '__consumer_offsets';

/** Most bytes of records handed to one produce call (well under the topic's max.message.bytes). */
const CHUNK_BYTES_MAX = 256 * 1024;

export interface StoreRecord {
  key: Uint8Array;
  value: Uint8Array | null;
}

export interface StoreOptions {
  partitions: number;
  segmentBytes: number;
  maxMessageBytes: number;
  readBytes: number;
}

export class OffsetsStore {
  private partitionCount: number;
  private topicReady: Promise<void> | null = null;

  constructor(
    private readonly broker: BrokerApi,
    private readonly options: StoreOptions,
  ) {
    this.partitionCount = broker.describeTopic(OFFSETS_TOPIC)?.partitions ?? options.partitions;
  }

  /** Partitions of the topic: the existing topic's count wins over the option (groups never move). */
  get partitions(): number {
    return this.partitionCount;
  }

  private ensureTopic(): Promise<void> {
    if (!this.topicReady) {
      this.topicReady = this.createIfMissing().catch((err) => {
        this.topicReady = null; // let the next write try again
        throw err;
      });
    }
    return this.topicReady;
  }

  private async createIfMissing(): Promise<void> {
    let info: TopicInfo | undefined = this.broker.describeTopic(OFFSETS_TOPIC);
    if (!info) {
      try {
        info = await this.broker.createTopic(OFFSETS_TOPIC, this.options.partitions, {
          'cleanup.policy': 'compact',
          flush: 'always',
          'segment.bytes': this.options.segmentBytes,
          'max.message.bytes': this.options.maxMessageBytes,
          'retention.ms': -1,
        });
      } catch (err) {
        if (!(err instanceof BrokerError && err.code === 'TOPIC_ALREADY_EXISTS')) throw err;
        info = this.broker.describeTopic(OFFSETS_TOPIC);
        if (!info) throw err;
      }
    }
    this.partitionCount = info.partitions;
  }

  /**
   * Appends records to one partition; resolves with each record's offset once the flush policy
   * is met. Large calls are split in chunks (each durable before the next is sent).
   */
  async append(partition: number, records: StoreRecord[]): Promise<number[]> {
    await this.ensureTopic();
    const offsets: number[] = [];
    let chunk: RecordInput[] = [];
    let chunkBytes = 0;
    const flush = async () => {
      if (chunk.length === 0) return;
      const res = await this.broker.produce(OFFSETS_TOPIC, chunk, { acks: -1, partition, clientId: 'group-coordinator', internal: true });
      for (const r of res) offsets.push(r.offset);
      chunk = [];
      chunkBytes = 0;
    };
    for (const r of records) {
      const size = r.key.length + (r.value?.length ?? 0) + 32;
      if (chunkBytes + size > CHUNK_BYTES_MAX) await flush();
      chunk.push({ key: r.key, value: r.value });
      chunkBytes += size;
    }
    await flush();
    if (offsets.length !== records.length) throw new BrokerError('UNKNOWN_SERVER_ERROR', `offsets topic: ${records.length} records written, ${offsets.length} offsets returned`);
    return offsets;
  }

  /** Reads every record of the topic in log order, partition by partition. */
  async replay(onRecord: (key: Uint8Array, value: Uint8Array | null, offset: number, partition: number) => void): Promise<number> {
    const info = this.broker.describeTopic(OFFSETS_TOPIC);
    if (!info) return 0;
    this.partitionCount = info.partitions;
    this.topicReady = Promise.resolve();
    let count = 0;
    for (let partition = 0; partition < info.partitions; partition++) {
      const tp = { topic: OFFSETS_TOPIC, partition };
      // Everything committed when the replay starts (later writes are this coordinator's own).
      const reader = new PartitionCursor(this.broker, tp, this.broker.offsets(tp).logStartOffset, { maxBytes: this.options.readBytes, onOutOfRange: 'fail' });
      const end = reader.visibleEnd();
      while (reader.position < end) {
        // Decoded by the cursor: records below `from` and control batches already dropped.
        const { records, from, nextOffset } = await reader.read();
        if (nextOffset === from) break;
        for (const r of records) {
          if (r.key === null) continue;
          onRecord(r.key, r.value, r.offset, partition);
          count++;
        }
        // nextOffset counts batches emptied by compaction too.
        if (nextOffset <= from) throw new BrokerError('COORDINATOR_NOT_AVAILABLE', `offsets topic partition ${partition}: no progress reading at offset ${from}`);
      }
    }
    return count;
  }
}
