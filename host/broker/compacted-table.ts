// A keyed table kept in a compacted internal topic: the one piece behind every bit of broker
// state that must survive a restart and travel with replication (group offsets and group
// metadata in `__consumer_offsets`; MQTT sessions and retained messages, uplink checkpoints
// and cluster-local state next).
//
//   open/load   replays the topic, partition by partition, through the one partition cursor
//               (host/broker/cursor.ts) at isolation `committed` (only what every replica
//               holds), keeping the last value per key; a tombstone (null value) deletes it
//   write       appends through BrokerApi.produce with acks=all (-1) as an internal writer on
//               this node only (leaderOnly: an internal write is never forwarded; a node that
//               does not lead the partition gets NOT_LEADER_OR_FOLLOWER), and
//               moves the in-memory entry only once the broker acknowledged it (durable under
//               the topic's flush=always), so what a caller was told is what a replay rebuilds
//   bounded     at most `maxEntries` live keys; a write adding keys past it is refused with
//               LIMIT_EXCEEDED naming the table and the option (tombstones and overwrites are
//               always accepted, so a full table can still be emptied). A replay that finds more
//               keys than that keeps them all (dropping durable state would be worse) and warns;
//               new keys are refused until the table shrinks.
//   corrupt     a record whose key or value does not decode (or has no key) is skipped, logged
//               (the first few of a replay, then a count) and counted in
//               tributary_table_skipped_records_total{topic}; it never stops the load
//
// Record bytes are the codec's business (each table's file states its layout and version). Keys
// are compared by their encoded bytes, so one key always has one entry. A key must always be
// written to the same partition (the owner's `partitionOf`), which is what makes "last value
// per key" in one partition's order the truth.
//
// Concurrency: writes to one partition reach the log in call order (the broker appends one
// partition's produce calls in order); entries move in acknowledgement order, and an older
// acknowledgement never replaces a newer entry (offsets compared). The room check and the
// reservation of new keys happen with no await between them.
import type { BrokerApi, RecordInput, TopicConfig } from './api.js';
import type { Logger } from '../logging.js';
import type { MetricsRegistry, Counter } from '../metrics/registry.js';
import { BrokerError } from '../errors/index.js';
import { PartitionCursor } from './cursor.js';

/** A record header as tables write and read them. */
export interface TableHeader {
  key: string;
  value: Uint8Array | null;
}

export interface TableCodec<K, V> {
  encodeKey(key: K): Uint8Array;
  /** Throws on bytes that are not a key of this table (the record is skipped). */
  decodeKey(bytes: Uint8Array): K;
  encodeValue(value: V, key: K): Uint8Array;
  /** Throws on bytes (and headers) that are not a value for `key` (the record is skipped). */
  decodeValue(bytes: Uint8Array, key: K, headers: readonly TableHeader[]): V;
  /** Headers written with a value (tables whose layout keeps part of a value in headers, e.g. MQTT's qos). */
  encodeHeaders?(value: V, key: K): TableHeader[];
}

export interface CompactedTableOptions {
  topic: string;
  /** Partitions when the table creates its topic; an existing topic's count wins. */
  partitions: number;
  /** Config of the topic when created (cleanup.policy=compact and flush=always are forced). */
  topicConfig?: Partial<TopicConfig>;
  /** Live keys held at most; past it a write adding keys gets LIMIT_EXCEEDED. */
  maxEntries: number;
  /** Name of the setting behind maxEntries, for the refusal's message (e.g. "groups.maxCommittedOffsets"). */
  maxEntriesSetting?: string;
  /** Bytes per read while replaying. */
  readBytes: number;
  /** Client id on the table's appends (logs, metrics). */
  clientId: string;
}

export interface TableEntry<K, V> {
  key: K;
  value: V;
  partition: number;
  /** Offset of the record that set this value. */
  offset: number;
}

/** Most bytes of records handed to one produce call (well under any table's max.message.bytes). */
const CHUNK_BYTES_MAX = 256 * 1024;
/** Skipped records logged one by one per replay; the rest are counted in one line. */
const SKIP_WARNINGS_MAX = 10;

export class CompactedTable<K, V> {
  private readonly entries = new Map<string, TableEntry<K, V>>();
  private partitionCount: number;
  private topicReady: Promise<void> | null = null;
  /** New keys of writes in flight, counted against maxEntries until acknowledged. */
  private reserved = 0;
  private skippedTotal = 0;
  private readonly skippedCounter: Counter | undefined;

  constructor(
    private readonly broker: BrokerApi,
    private readonly codec: TableCodec<K, V>,
    readonly options: CompactedTableOptions,
    private readonly deps: { logger: Logger; metrics?: MetricsRegistry },
  ) {
    if (!Number.isSafeInteger(options.maxEntries) || options.maxEntries <= 0) throw new Error(`table ${options.topic}: maxEntries must be a positive integer, got ${options.maxEntries}`);
    if (!Number.isSafeInteger(options.readBytes) || options.readBytes <= 0) throw new Error(`table ${options.topic}: readBytes must be a positive integer, got ${options.readBytes}`);
    this.partitionCount = broker.describeTopic(options.topic)?.partitions ?? options.partitions;
    this.skippedCounter = deps.metrics?.counter('tributary_table_skipped_records_total', 'Records of internal tables skipped on replay because they did not decode');
  }

  /** A table replayed from its topic (nothing to replay when the topic does not exist yet). */
  static async open<K, V>(broker: BrokerApi, codec: TableCodec<K, V>, options: CompactedTableOptions, deps: { logger: Logger; metrics?: MetricsRegistry }): Promise<CompactedTable<K, V>> {
    const table = new CompactedTable(broker, codec, options, deps);
    await table.load();
    return table;
  }

  /** Partitions of the topic (the existing topic's count wins over the option). */
  get partitions(): number {
    return this.partitionCount;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Records skipped because they did not decode, over every replay of this table. */
  get skipped(): number {
    return this.skippedTotal;
  }

  get(key: K): TableEntry<K, V> | undefined {
    return this.entries.get(idOf(this.codec.encodeKey(key)));
  }

  /** Every live entry (order: first set first). */
  values(): IterableIterator<TableEntry<K, V>> {
    return this.entries.values();
  }

  /**
   * Replays the topic into the table (replacing what it held). Reads what is committed when
   * each partition's replay starts; later records are this process's own writes.
   * Returns the records read (skipped ones included).
   */
  async load(): Promise<{ records: number; skipped: number }> {
    this.entries.clear();
    const info = this.broker.describeTopic(this.options.topic);
    if (!info) return { records: 0, skipped: 0 };
    this.partitionCount = info.partitions;
    this.topicReady = Promise.resolve();
    let records = 0;
    let skipped = 0;
    for (let partition = 0; partition < info.partitions; partition++) {
      const r = await this.replayPartition(partition);
      records += r.records;
      skipped += r.skipped;
    }
    this.warnAfterReplay(skipped);
    return { records, skipped };
  }

  /**
   * Replays one partition (replacing its entries): a cluster's owner loads only the partitions
   * it leads, when it becomes their leader (the group coordinator's failover).
   */
  async loadPartition(partition: number): Promise<{ records: number; skipped: number }> {
    this.dropPartition(partition);
    const info = this.broker.describeTopic(this.options.topic);
    if (!info || partition >= info.partitions) return { records: 0, skipped: 0 };
    this.partitionCount = info.partitions;
    this.topicReady = Promise.resolve();
    const r = await this.replayPartition(partition);
    this.warnAfterReplay(r.skipped);
    return r;
  }

  /** Forgets one partition's entries (its owner lost the partition's leadership). */
  dropPartition(partition: number): void {
    for (const [id, e] of this.entries) if (e.partition === partition) this.entries.delete(id);
  }

  /** Creates the topic when it does not exist yet (otherwise the first write does). */
  ensureTopic(): Promise<void> {
    this.topicReady ??= this.createIfMissing().catch((err) => {
      this.topicReady = null; // let the next write try again
      throw err;
    });
    return this.topicReady;
  }

  private async replayPartition(partition: number): Promise<{ records: number; skipped: number }> {
    let records = 0;
    let skipped = 0;
    const tp = { topic: this.options.topic, partition };
    const cursor = new PartitionCursor(this.broker, tp, this.broker.offsets(tp).logStartOffset, { isolation: 'committed', maxBytes: this.options.readBytes, onOutOfRange: 'fail' });
    const end = cursor.visibleEnd();
    while (cursor.position < end) {
      // Decoded by the cursor: records below `from` and control batches already dropped.
      const { records: batch, from, nextOffset } = await cursor.read();
      // nextOffset counts batches emptied by compaction too; nothing readable below the end
      // seen at the start (it fell inside a batch) ends this partition's replay.
      if (nextOffset <= from) break;
      for (const r of batch) {
        records++;
        if (!this.replayOne(r.key, r.value, r.headers, partition, r.offset)) skipped++;
      }
    }
    return { records, skipped };
  }

  private warnAfterReplay(skipped: number): void {
    if (skipped > SKIP_WARNINGS_MAX) this.deps.logger.warn({ topic: this.options.topic, skipped }, 'skipped records that did not decode while loading the table');
    if (this.entries.size > this.options.maxEntries) {
      this.deps.logger.warn({ topic: this.options.topic, entries: this.entries.size, maxEntries: this.options.maxEntries }, 'the table holds more entries than maxEntries; new keys are refused until it shrinks');
    }
  }

  /**
   * Appends entries (value null = tombstone) to one partition with acks=all; resolves with each
   * record's offset once acknowledged, after the entries moved. Large calls go in chunks, each
   * acknowledged before the next is sent (a failure leaves the earlier chunks applied).
   */
  async write(partition: number, changes: Array<{ key: K; value: V | null }>): Promise<number[]> {
    if (!Number.isInteger(partition) || partition < 0) throw new BrokerError('INVALID_REQUEST', `table ${this.options.topic}: no partition ${partition}`);
    const encoded = changes.map((c) => {
      const key = this.codec.encodeKey(c.key);
      const bytes: RecordInput = { key, value: c.value === null ? null : this.codec.encodeValue(c.value, c.key) };
      const headers = c.value === null ? undefined : this.codec.encodeHeaders?.(c.value, c.key);
      if (headers && headers.length > 0) bytes.headers = headers;
      return { ...c, id: idOf(key), bytes };
    });
    const adding = new Set(encoded.filter((e) => e.value !== null && !this.entries.has(e.id)).map((e) => e.id)).size;
    // No await between this check and the reservation: concurrent writes cannot overshoot.
    if (adding > 0 && this.entries.size + this.reserved + adding > this.options.maxEntries) {
      throw new BrokerError(
        'LIMIT_EXCEEDED',
        `table ${this.options.topic} holds ${this.entries.size + this.reserved} of at most ${this.options.maxEntries} entries (${this.options.maxEntriesSetting ?? 'maxEntries'}); cannot add ${adding} more`,
      );
    }
    this.reserved += adding;
    try {
      await this.ensureTopic();
      const offsets: number[] = [];
      let chunk: typeof encoded = [];
      let chunkBytes = 0;
      const flush = async () => {
        if (chunk.length === 0) return;
        const res = await this.broker.produce(this.options.topic, chunk.map((c) => c.bytes), { acks: -1, partition, clientId: this.options.clientId, internal: true, leaderOnly: true });
        if (res.length !== chunk.length) throw new BrokerError('UNKNOWN_SERVER_ERROR', `table ${this.options.topic}: ${chunk.length} records written, ${res.length} offsets returned`);
        chunk.forEach((c, i) => this.apply(c.id, c.key, c.value, partition, res[i].offset));
        for (const r of res) offsets.push(r.offset);
        chunk = [];
        chunkBytes = 0;
      };
      for (const e of encoded) {
        const size = e.bytes.key!.length + (e.bytes.value?.length ?? 0) + 32;
        if (chunkBytes + size > CHUNK_BYTES_MAX) await flush();
        chunk.push(e);
        chunkBytes += size;
      }
      await flush();
      return offsets;
    } finally {
      this.reserved -= adding;
    }
  }

  private replayOne(keyBytes: Uint8Array | null, valueBytes: Uint8Array | null, headers: readonly TableHeader[], partition: number, offset: number): boolean {
    try {
      if (keyBytes === null) throw new Error('the record has no key');
      const key = this.codec.decodeKey(keyBytes);
      const value = valueBytes === null ? null : this.codec.decodeValue(valueBytes, key, headers);
      this.apply(idOf(keyBytes), key, value, partition, offset);
      return true;
    } catch (err) {
      this.skippedTotal++;
      this.skippedCounter?.inc({ topic: this.options.topic });
      this.deps.logger.warn({ topic: this.options.topic, partition, offset, err: (err as Error).message }, 'skipping a table record that does not decode');
      return false;
    }
  }

  private apply(id: string, key: K, value: V | null, partition: number, offset: number): void {
    const current = this.entries.get(id);
    // An older acknowledgement never replaces a newer value of the same key (same partition).
    if (current && current.partition === partition && current.offset > offset) return;
    if (value === null) this.entries.delete(id);
    else this.entries.set(id, { key, value, partition, offset });
  }

  private async createIfMissing(): Promise<void> {
    let info = this.broker.describeTopic(this.options.topic);
    if (!info) {
      try {
        info = await this.broker.createTopic(this.options.topic, this.options.partitions, { ...this.options.topicConfig, 'cleanup.policy': 'compact', flush: 'always' });
      } catch (err) {
        if (!(err instanceof BrokerError && err.code === 'TOPIC_ALREADY_EXISTS')) throw err;
        info = this.broker.describeTopic(this.options.topic);
        if (!info) throw err;
      }
    }
    this.partitionCount = info.partitions;
  }
}

/** A key's identity: its encoded bytes (latin1 maps each byte to one char, losslessly). */
function idOf(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}
