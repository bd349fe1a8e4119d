// Reverse delivery: records appended to a stream topic by anyone but this gateway (Kafka
// clients, the WebSocket gateway, the uplink) reach MQTT subscribers.
//
// One tail reader per stream topic that has MQTT interest, reading through the one partition
// reader (host/broker/cursor.ts: a cursor per partition, committed isolation, out-of-range →
// nearest end, transient errors retried) from the visible end at the moment interest
// appeared, waiting on all its partitions at once when caught up. Each record's MQTT topic
// comes from the router; the record is handed to aedes with `aedes.publish`, which delivers
// to live subscribers and queues it for offline persistent sessions.
//
// No double delivery: publishes that came in over MQTT were already delivered by aedes at
// publish time, and their records carry the header `mqtt.origin` = this gateway's id; the
// tail skips those: it jumps past the offset ranges the gateway's own appends returned
// (append.ts OwnAppends) without reading them, and drops any it still reads by that header.
// (Routing MQTT→MQTT delivery through the log instead would add an fsync
// to every delivery; aedes' direct path keeps MQTT latency what devices expect.)
//
// Interest: a subscription's filter names stream topics through the routes
// (Router.streamTopicsFor); a filter whose first level is a wildcard could match any
// topic, so every non-internal topic is tailed (bounded by tailTopicsMax, rescanned every
// tailRescanMs for new topics). Interest is counted from live subscriptions (aedes'
// `subscribe` event, handled synchronously so a record produced after the SUBACK is seen)
// and persisted sessions; readers whose interest is gone stop at the next recount.
import type { BrokerApi, TopicPartition } from '../../host/broker/api.js';
import { PartitionCursor, type RetryPolicy } from '../../host/broker/cursor.js';
import type { Logger } from '../../host/logging.js';
import type { Router } from './routes.js';
import { headersToProperties } from './headers.js';
import type { OwnAppends } from './append.js';

export const ORIGIN_HEADER = 'mqtt.origin';
export const TOPIC_HEADER = 'mqtt.topic';
const WAIT_MS = 5_000;
const TOPIC_APPEAR_POLL_MS = 50;

export interface Publisher {
  publish(packet: { cmd: 'publish'; topic: string; payload: Buffer; qos: 0 | 1; retain: boolean; dup: boolean; properties?: Record<string, unknown>; messageExpiry?: number }, done: (err?: Error | null) => void): void;
}

/** Told, before each delivery is published, which stream record it was read from (the gateway checks READ on the topic per subscriber; a cluster's session handover notes the offset). */
export type ReadFrom = (payload: Buffer, streamTopic: string, partition: number, offset: number) => void;

export interface TailOptions {
  tailTopicsMax: number;
  tailReadBytesMax: number;
  tailRescanMs: number;
  reverseQos: 0 | 1;
}

/**
 * How a tail reader's cursor retries a transient read error (the error table's `retriable`):
 * for as long as it takes, once a second, each retry logged — a reverse route has no caller to
 * hand the error to, and subscribers get the records once the partition reads again.
 */
const TAIL_RETRY: RetryPolicy = { attemptsMax: Number.POSITIVE_INFINITY, backoffMs: 1_000, backoffMaxMs: 1_000 };

class TailReader {
  /** One cursor per partition (host/broker/cursor.ts), committed isolation: what every client may see. */
  private readonly cursors = new Map<number, PartitionCursor>();
  /** Partition → every record below was handed on (its aedes publish, offline queueing included, done): a session handover's position. */
  readonly handedOn = new Map<number, number>();
  private readonly abort = new AbortController();
  private stopped = false;
  delivered = 0;

  constructor(
    readonly topic: string,
    private readonly m: TailManager,
    /** The topic appeared after the interest did: everything in it is new to the subscribers. */
    fromStart = false,
  ) {
    // synchronous: positions are the log ends at the moment interest appeared
    this.everEmpty = fromStart;
    this.addPartitions(fromStart);
    void this.run();
  }

  /** Partitions seen for the first time start at the visible end, or at the log start when the topic appeared after the interest. */
  private addPartitions(fromStart: boolean): void {
    const info = this.m.broker.describeTopic(this.topic);
    if (!info) return;
    for (let p = 0; p < info.partitions; p++) {
      if (this.cursors.has(p)) continue;
      const tp: TopicPartition = { topic: this.topic, partition: p };
      const o = this.m.broker.offsets(tp);
      const cursor = new PartitionCursor(this.m.broker, tp, fromStart || this.everEmpty ? o.logStartOffset : o.highWatermark, {
        maxBytes: this.m.options.tailReadBytesMax,
        // retention moved the log start past us (or the log was cut below us): go on from the nearest end
        onOutOfRange: 'nearest',
        retry: TAIL_RETRY,
        signal: this.abort.signal,
        onRetry: (err) => this.m.logger.warn({ topic: this.topic, partition: p, err: err.message }, 'mqtt: reverse delivery read failed; retrying'),
      });
      this.cursors.set(p, cursor);
      this.handedOn.set(p, cursor.position);
    }
  }

  readPosition(partition: number): number | undefined {
    return this.cursors.get(partition)?.position;
  }

  /** True when the reader started before its topic existed. */
  private everEmpty = false;

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  private async run(): Promise<void> {
    if (this.cursors.size === 0) this.everEmpty = true;
    while (!this.stopped) {
      try {
        if (this.cursors.size === 0 || this.m.broker.describeTopic(this.topic)?.partitions !== this.cursors.size) {
          this.addPartitions(this.everEmpty);
          if (this.cursors.size === 0) {
            // the topic does not exist yet: look again soon (a map lookup), so the first
            // records of a topic created after the SUBSCRIBE arrive without delay
            await sleep(TOPIC_APPEAR_POLL_MS, this.abort.signal);
            continue;
          }
        }
        let progressed = false;
        // our own appends of this topic running now: wait for their offsets so they are skipped, not read back
        const own = this.m.own;
        const running = own?.settled(this.topic);
        if (running) await running;
        for (const [partition, cursor] of this.cursors) {
          if (this.stopped) return;
          const at = cursor.position;
          const offset = own ? own.skip(this.topic, partition, at) : at;
          if (offset !== at) {
            cursor.seek(offset);
            this.handedOn.set(partition, offset);
            progressed = true;
          }
          // Nothing visible past the position (most often: the commit that woke us was all our
          // own publishes, just skipped): no read, back to the wait, which parks past it. At a
          // paced rate this saves a read, a decode and a retry wrapper per group commit.
          if (cursor.caughtUp()) continue;
          // decoded by the cursor: records below the position and control batches dropped
          const { records, from, nextOffset } = await cursor.read();
          for (const r of records) await this.deliver(partition, r.offset, r.key, r.value, r.headers);
          if (nextOffset > from) progressed = true;
          // after the whole batch: meanwhile the batch's start stands (lower, so never past a record not handed on)
          this.handedOn.set(partition, cursor.position);
        }
        if (!progressed && !this.stopped) await PartitionCursor.waitAny([...this.cursors.values()], WAIT_MS, this.abort.signal);
      } catch (err) {
        if (this.stopped) return;
        // not worth the same read again (the topic was deleted, a wait refused): look again in a second
        this.m.logger.warn({ topic: this.topic, err: (err as Error).message }, 'mqtt: reverse delivery read failed; retrying');
        await sleep(1_000, this.abort.signal);
        if (!this.m.broker.describeTopic(this.topic)) this.cursors.clear();
      }
    }
  }

  private deliver(partition: number, offset: number, key: Uint8Array | null, value: Uint8Array | null, headers: Array<{ key: string; value: Uint8Array | null }>): Promise<void> | void {
    let headerTopic: string | undefined;
    for (const h of headers) {
      if (h.key === ORIGIN_HEADER && h.value !== null && bytesEqual(h.value, this.m.originBytes)) return;
      if (h.key === TOPIC_HEADER && h.value !== null) headerTopic = Buffer.from(h.value.buffer, h.value.byteOffset, h.value.byteLength).toString('utf8');
    }
    const mqttTopic = this.m.router.reverse(this.topic, partition, key, headerTopic);
    if (mqttTopic === undefined) return;
    // MQTT 5 properties travel as headers (headers.ts); an expired message is not delivered
    const { properties, messageExpiry } = headersToProperties(headers);
    if (messageExpiry !== undefined && messageExpiry <= Date.now()) return;
    this.delivered++;
    const payload = value === null ? Buffer.alloc(0) : Buffer.from(value);
    this.m.readFrom?.(payload, this.topic, partition, offset);
    return new Promise<void>((resolve) => {
      this.m.aedes.publish(
        { cmd: 'publish', topic: mqttTopic, payload, qos: this.m.options.reverseQos, retain: false, dup: false, ...(properties ? { properties } : {}), ...(messageExpiry !== undefined ? { messageExpiry } : {}) },
        (err) => {
          if (err) this.m.logger.warn({ topic: mqttTopic, err: err.message }, 'mqtt: reverse delivery failed');
          resolve();
        },
      );
    });
  }
}

export class TailManager {
  private readonly readers = new Map<string, TailReader>();
  private allTopics = false;
  private rescanTimer: NodeJS.Timeout | undefined;
  private recountTimer: NodeJS.Timeout | undefined;
  private limitLogged = false;
  readonly originBytes: Buffer;

  constructor(
    readonly broker: BrokerApi,
    readonly aedes: Publisher,
    readonly router: Router,
    readonly options: TailOptions,
    readonly logger: Logger,
    originId: string,
    /** Every filter with interest right now (live subscriptions and persisted sessions). */
    private readonly currentFilters: () => string[],
    /** This gateway's own appends, skipped instead of read back (the origin header stays the fallback). */
    readonly own?: OwnAppends,
    readonly readFrom?: ReadFrom,
  ) {
    this.originBytes = Buffer.from(originId);
  }

  /** New subscriptions: start readers now, synchronously. */
  subscribed(filters: string[]): void {
    for (const f of filters) {
      const topics = this.router.streamTopicsFor(f);
      if (topics === 'all') {
        this.allTopics = true;
        this.scanAll();
      } else for (const t of topics) this.ensure(t);
    }
    if (this.allTopics && !this.rescanTimer) {
      this.rescanTimer = setInterval(() => this.scanAll(), this.options.tailRescanMs);
      this.rescanTimer.unref();
    }
  }

  /** Interest may have shrunk: recount soon (debounced). */
  changed(): void {
    if (this.recountTimer) return;
    this.recountTimer = setTimeout(() => {
      this.recountTimer = undefined;
      this.recount();
    }, 200);
    this.recountTimer.unref();
  }

  private recount(): void {
    const wanted = new Set<string>();
    let all = false;
    for (const f of this.currentFilters()) {
      const topics = this.router.streamTopicsFor(f);
      if (topics === 'all') all = true;
      else for (const t of topics) wanted.add(t);
    }
    this.allTopics = all;
    if (!all) this.existingAtAll = undefined;
    if (!all && this.rescanTimer) {
      clearInterval(this.rescanTimer);
      this.rescanTimer = undefined;
    }
    for (const [topic, reader] of this.readers) {
      if (!all && !wanted.has(topic)) {
        reader.stop();
        this.readers.delete(topic);
      }
    }
    for (const t of wanted) this.ensure(t);
    if (all) this.subscribed(['#']);
  }

  /** Topics that existed when the wildcard interest began; later ones are read from their start. */
  private existingAtAll: Set<string> | undefined;

  private scanAll(): void {
    const topics = this.broker.listTopics();
    this.existingAtAll ??= new Set(topics.map((t) => t.name));
    for (const t of topics) if (!t.internal) this.ensure(t.name, !this.existingAtAll.has(t.name));
  }

  private ensure(topic: string, fromStart = false): void {
    if (this.readers.has(topic) || topic.startsWith('__')) return;
    if (this.readers.size >= this.options.tailTopicsMax) {
      if (!this.limitLogged) this.logger.warn({ topic, tailTopicsMax: this.options.tailTopicsMax }, 'mqtt: tailTopicsMax reached; records of further topics are not delivered to MQTT subscribers');
      this.limitLogged = true;
      return;
    }
    this.readers.set(topic, new TailReader(topic, this, fromStart));
  }

  /** A reader's position in a partition: `done` = every record below was handed on, `read` = read; undefined without a reader. */
  position(topic: string, partition: number, which: 'done' | 'read'): number | undefined {
    const r = this.readers.get(topic);
    return which === 'done' ? r?.handedOn.get(partition) : r?.readPosition(partition);
  }

  tailedTopics(): string[] {
    return [...this.readers.keys()];
  }

  close(): void {
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    if (this.recountTimer) clearTimeout(this.recountTimer);
    for (const r of this.readers.values()) r.stop();
    this.readers.clear();
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
