// Group append: publishes from many devices for one stream topic (and fixed partition, if a
// route names one) are gathered into one `broker.produce` call, so one wasm encode and one
// fsync serve them all. At most one produce per queue is in flight; records arriving while
// it runs form the next batch (group commit). When nothing is in flight, a queue waits
// `lingerMs` for company before it goes. A batch never exceeds `batchBytesMax` or
// `batchRecordsMax`.
//
// Commit linger (`commitLingerMs`): a queue's next produce starts no sooner than that long after
// its previous one started, unless the batch is already full. At a paced rate (a publish every
// fraction of a millisecond, each group commit finishing before the next publish) every commit
// would otherwise carry one or two records, and each commit costs far more CPU than a record
// (encode, verify, a file write and an fdatasync, their thread-pool round trips, the tail's
// wake-up). A record waits for it at most `commitLingerMs` (plus the 1 ms timer resolution)
// beyond its turn; a flood, whose commits take longer than the linger anyway, never waits. Only
// the start of the append is moved: a QoS 1/2 PUBACK still follows the fsync that covers it.
//
// With `appendsInFlightMax` = 2 the next batch is written while the previous one's fsync runs,
// so the log's group commit starts the next fsync at once. The broker appends produce calls in
// call order, so per-key order holds.
//
// Memory: `pendingBytes` counts every byte accepted and not yet appended (payload, key and
// headers, roughly what the batch encodes: batches are cut by it), `pendingMemoryBytes` adds
// what each record costs in heap beyond those bytes (RECORD_HEAP_BYTES); the connection guard
// stops reading sockets while that is above `pendingBytesTotalMax`, and `onDrain` listeners
// hear each time it falls.
import { performance } from 'node:perf_hooks';
import type { BrokerApi, RecordInput } from '../../host/broker/api.js';
import { isInternalTopic } from '../../host/broker/topic-name.js';
import type { Logger } from '../../host/logging.js';
import { BrokerError } from '../../host/errors/index.js';

/** What a resubmitted record is counted as (payload, key and headers). */
function approxBytes(r: RecordInput): number {
  let n = (r.value?.length ?? 0) + (r.key?.length ?? 0) + 64;
  for (const h of r.headers ?? []) n += h.key.length + (h.value?.length ?? 0);
  return n;
}

/**
 * Heap a record waiting for its append costs beyond its counted bytes: the record and its
 * header objects, the Buffer views of its key and value, its callback and that closure's
 * context, the batcher's array slots. Measured (Node 20, x64, after a full GC): 20,000 QoS 0
 * publishes of ~100 B JSON from 20 connections held unappended cost ~990 B each of heap +
 * external, of which the counted bytes were ~220 (before the callback stopped holding aedes'
 * `done` and packet: ~1,390 B).
 */
export const RECORD_HEAP_BYTES = 800;

/** `offset` and `partition`: where the record landed (absent on error and for acks=0 appends whose answer carries none). */
export type AppendCallback = (err: Error | null, offset?: number, partition?: number) => void;

interface Queue {
  topic: string;
  partition: number | undefined;
  records: RecordInput[];
  callbacks: AppendCallback[];
  sizes: number[];
  bytes: number;
  durable: boolean;
  /** produce calls of this queue in flight. */
  inflight: number;
  /** A linger timer or immediate is armed (never cancelled: a stale one finds nothing to do). */
  timer: boolean;
  /** performance.now() when this queue's last produce started (commit linger). */
  lastStartMs: number;
}

export interface BatcherOptions {
  lingerMs: number;
  /** The next produce of a queue starts at least this long after its previous one started, unless its batch is full (0: off). */
  commitLingerMs?: number;
  /** produce calls per queue in flight (2 writes the next batch while the previous fsync runs). */
  appendsInFlightMax: number;
  batchBytesMax: number;
  batchRecordsMax: number;
}

const KNOWN_TOPICS_MAX = 10_000; // topics known to exist; past it, ensureTopic is asked again
/** Empty queues kept (with the commit linger on) so the linger knows when each topic last committed; past it they are dropped as before. */
const IDLE_QUEUES_KEPT_MAX = 1_024;
const OWN_RANGES_PER_PARTITION_MAX = 64; // the tail reader passes them within a read or two
const OWN_PARTITIONS_MAX = 4_096; // past it, every range is forgotten (the tail falls back to the origin header)

/**
 * Offset ranges this gateway appended, per partition, so the reverse-delivery tail reader can
 * jump past them instead of reading back, decoding and dropping every MQTT publish (they were
 * delivered by aedes at publish time). Records others appended between two of our ranges lie
 * outside every range and are read as before. Bounded: a forgotten range only costs a read,
 * since the tail still drops records carrying this gateway's origin header.
 */
export class OwnAppends {
  private readonly ranges = new Map<string, Array<[number, number]>>();
  private readonly inflight = new Map<string, Set<Promise<unknown>>>();
  /** Records the tail reader jumped over without reading (tests, diagnostics). */
  skippedRecords = 0;

  /** A produce of ours to `topic` is running: its offsets are not known yet. */
  track(topic: string, p: Promise<unknown>): void {
    let set = this.inflight.get(topic);
    if (!set) this.inflight.set(topic, (set = new Set()));
    set.add(p);
    const done = () => {
      set.delete(p);
      if (set.size === 0 && this.inflight.get(topic) === set) this.inflight.delete(topic);
    };
    p.then(done, done);
  }

  /** Resolves when the produces of ours to `topic` running now have settled (their ranges recorded); undefined when none runs. */
  settled(topic: string): Promise<void> | undefined {
    const set = this.inflight.get(topic);
    if (!set || set.size === 0) return undefined;
    return Promise.allSettled([...set]).then(() => undefined);
  }

  /** Records the offsets one produce returned (contiguous per partition: one batch each). */
  record(topic: string, written: ReadonlyArray<{ partition: number; offset: number }>): void {
    const bounds = new Map<number, [number, number]>();
    for (const w of written) {
      const b = bounds.get(w.partition);
      if (!b) bounds.set(w.partition, [w.offset, w.offset + 1]);
      else {
        if (w.offset < b[0]) b[0] = w.offset;
        if (w.offset + 1 > b[1]) b[1] = w.offset + 1;
      }
    }
    for (const [partition, range] of bounds) {
      const key = `${topic}\u0000${partition}`;
      let list = this.ranges.get(key);
      if (!list) {
        if (this.ranges.size >= OWN_PARTITIONS_MAX) this.ranges.clear();
        this.ranges.set(key, (list = []));
      }
      // kept in offset order (two produces in flight may settle out of order); adjacent ones merge
      let i = list.length;
      while (i > 0 && list[i - 1][0] > range[0]) i--;
      if (i > 0 && list[i - 1][1] === range[0]) list[i - 1][1] = range[1];
      else list.splice(i, 0, range);
      if (i < list.length - 1 && list[i][1] === list[i + 1][0]) {
        list[i][1] = list[i + 1][1];
        list.splice(i + 1, 1);
      }
      if (list.length > OWN_RANGES_PER_PARTITION_MAX) list.shift();
    }
  }

  /** Where a reader at `offset` continues: past any of our ranges starting at or before it. Ranges behind it are forgotten. */
  skip(topic: string, partition: number, offset: number): number {
    const list = this.ranges.get(`${topic}\u0000${partition}`);
    if (!list) return offset;
    while (list.length > 0 && list[0][1] <= offset) list.shift();
    const from = offset;
    while (list.length > 0 && list[0][0] <= offset) offset = list.shift()![1];
    this.skippedRecords += offset - from;
    return offset;
  }
}

export class AppendBatcher {
  pendingBytes = 0;
  /** Records accepted and not yet appended (or refused). */
  pendingRecords = 0;
  private readonly queues = new Map<string, Queue>();
  private readonly knownTopics = new Set<string>();
  private readonly drainListeners = new Set<() => void>();
  private closed = false;
  /** What this gateway appended, for the tail reader to skip. */
  readonly own = new OwnAppends();
  /** Appends completed, batches sent: for metrics and the bench. */
  appendedRecords = 0;
  batches = 0;

  constructor(
    private readonly broker: BrokerApi,
    private readonly logger: Logger,
    private readonly options: BatcherOptions,
  ) {}

  /** What the records waiting for their append cost in memory: what `pendingBytesTotalMax` bounds. */
  get pendingMemoryBytes(): number {
    return this.pendingBytes + this.pendingRecords * RECORD_HEAP_BYTES;
  }

  onDrain(fn: () => void): () => void {
    this.drainListeners.add(fn);
    return () => this.drainListeners.delete(fn);
  }

  /**
   * Queues one record. `durable` asks for acks -1 (the topic's flush policy met before the
   * callback). `bytes` is what the record costs in memory until appended.
   */
  append(topic: string, partition: number | undefined, record: RecordInput, bytes: number, durable: boolean, cb: AppendCallback): void {
    if (this.closed) {
      cb(new Error('MQTT gateway is closing'));
      return;
    }
    const id = partition === undefined ? topic : `${topic}\u0000${partition}`;
    let q = this.queues.get(id);
    if (!q) {
      q = { topic, partition, records: [], callbacks: [], sizes: [], bytes: 0, durable: false, inflight: 0, timer: false, lastStartMs: -Infinity };
      this.queues.set(id, q);
    }
    q.records.push(record);
    q.callbacks.push(cb);
    q.sizes.push(bytes);
    q.bytes += bytes;
    q.durable ||= durable;
    this.pendingBytes += bytes;
    this.pendingRecords++;
    if (q.inflight >= this.inflightMax(q)) return;
    if (this.full(q)) {
      this.flush(q);
    } else if (!q.timer) {
      q.timer = true;
      const queue = q;
      const waitMs = Math.max(this.options.lingerMs, this.commitLingerLeftMs(q));
      // linger 0 still lets the rest of this socket chunk (and other sockets' chunks) join
      if (waitMs === 0) setImmediate(() => this.flush(queue));
      else setTimeout(() => this.flush(queue), waitMs);
    }
  }

  private full(q: Queue): boolean {
    return q.bytes >= this.options.batchBytesMax || q.records.length >= this.options.batchRecordsMax;
  }

  /** How long until the queue's commit linger allows its next produce (0: now). */
  private commitLingerLeftMs(q: Queue): number {
    const linger = this.options.commitLingerMs ?? 0;
    if (linger === 0) return 0;
    const left = q.lastStartMs + linger - performance.now();
    return left > 0 ? Math.ceil(left) : 0;
  }

  /** After a produce settled: the queued records go now, or once the commit linger allows (never later than it). */
  private next(q: Queue): void {
    if (q.records.length === 0 || q.inflight >= this.inflightMax(q)) return;
    const waitMs = this.full(q) ? 0 : this.commitLingerLeftMs(q);
    if (waitMs === 0) return this.flush(q);
    if (q.timer) return;
    q.timer = true;
    setTimeout(() => this.flush(q), waitMs);
  }

  /** One produce at a time until the topic is known to exist (a second could overtake the first while it creates the topic). */
  private inflightMax(q: Queue): number {
    return this.knownTopics.has(q.topic) ? this.options.appendsInFlightMax : 1;
  }

  private flush(q: Queue): void {
    q.timer = false;
    if (q.inflight >= this.inflightMax(q) || q.records.length === 0) return;
    let n = 0;
    let bytes = 0;
    while (n < q.records.length && n < this.options.batchRecordsMax && (n === 0 || bytes + q.sizes[n] <= this.options.batchBytesMax)) {
      bytes += q.sizes[n];
      n++;
    }
    const records = q.records.splice(0, n);
    const callbacks = q.callbacks.splice(0, n);
    q.sizes.splice(0, n);
    q.bytes -= bytes;
    const durable = q.durable;
    q.durable = q.records.length > 0 && durable;
    q.inflight++;
    q.lastStartMs = performance.now();
    this.batches++;
    void this.produce(q.topic, q.partition, records, durable).then(
      (landed) => this.settle(q, callbacks, bytes, null, landed),
      (err: Error) => {
        if (!this.requeueValid(q, records, callbacks, durable, err)) this.settle(q, callbacks, bytes, err);
        else this.settle(q, [], bytes, null);
      },
    );
  }

  /**
   * Schema validation refused some records of a batch (host/schemas): a batch is atomic, so
   * the others were refused with them although they are valid. Those go back to the front of
   * the queue (their bytes stay counted) and only the invalid ones hear the error.
   */
  private requeueValid(q: Queue, records: RecordInput[], callbacks: AppendCallback[], durable: boolean, err: Error): boolean {
    if (!(err instanceof BrokerError) || err.code !== 'INVALID_RECORD' || !err.recordErrors || records.length < 2) return false;
    const bad = new Map(err.recordErrors.map((e) => [e.batchIndex, e.message]));
    if (bad.size === 0 || bad.size === records.length) return false;
    const keep: number[] = [];
    for (let i = 0; i < records.length; i++) if (!bad.has(i)) keep.push(i);
    const sizes = keep.map((i) => approxBytes(records[i]));
    q.records.unshift(...keep.map((i) => records[i]));
    q.callbacks.unshift(...keep.map((i) => callbacks[i]));
    q.sizes.unshift(...sizes);
    const kept = sizes.reduce((a, b) => a + b, 0);
    q.bytes += kept;
    q.durable ||= durable; // a QoS 1/2 publish among them still waits for its fsync
    this.pendingBytes += kept;
    this.pendingRecords -= bad.size;
    for (const [i, message] of bad) {
      const e = new BrokerError('INVALID_RECORD', message);
      e.recordErrors = [{ batchIndex: 0, message }];
      e.deadLettered = err.deadLettered;
      callbacks[i](e);
    }
    return true;
  }

  private async produce(topic: string, partition: number | undefined, records: RecordInput[], durable: boolean): Promise<Array<{ partition: number; offset: number }>> {
    if (!this.knownTopics.has(topic)) {
      await this.broker.ensureTopic(topic);
      if (this.knownTopics.size >= KNOWN_TOPICS_MAX) this.knownTopics.clear();
      this.knownTopics.add(topic);
    }
    // Routes never target internal topics (routes.ts refuses `__*`), so only this gateway's
    // own persistence reaches here with one.
    // `__*` only: `_schemas` is the registry's, never a gateway's (the broker refuses a route to it)
    const internal = isInternalTopic(topic) && topic.startsWith('__');
    const produced = this.broker.produce(topic, records, { acks: durable ? -1 : 0, partition, internal });
    if (internal) return await produced; // never tailed by TailManager
    this.own.track(topic, produced);
    const result = await produced;
    this.own.record(topic, result);
    return result;
  }

  private settle(q: Queue, callbacks: AppendCallback[], bytes: number, err: Error | null, landed?: ReadonlyArray<{ partition: number; offset: number }>): void {
    q.inflight--;
    this.pendingBytes -= bytes;
    this.pendingRecords -= callbacks.length;
    if (err) {
      this.knownTopics.delete(q.topic);
      this.logger.warn({ topic: q.topic, records: callbacks.length, err: err.message }, 'mqtt: append failed');
    } else {
      this.appendedRecords += callbacks.length;
    }
    callbacks.forEach((cb, i) => cb(err, landed?.[i]?.offset, landed?.[i]?.partition));
    if (q.records.length > 0) this.next(q);
    else if (!q.timer && q.inflight === 0 && (!this.options.commitLingerMs || this.queues.size > IDLE_QUEUES_KEPT_MAX)) {
      this.queues.delete(q.partition === undefined ? q.topic : `${q.topic}\u0000${q.partition}`);
    }
    for (const fn of this.drainListeners) fn();
  }

  /** Flushes what is queued and waits for every append in flight. */
  async close(): Promise<void> {
    for (const q of this.queues.values()) this.flush(q);
    const deadline = Date.now() + 10_000;
    while (this.pendingBytes > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const off = this.onDrain(() => {
          off();
          resolve();
        });
        setTimeout(() => {
          off();
          resolve();
        }, 50);
      });
    }
    this.closed = true;
  }
}
