// Delivery of records to subscribed sockets, over the broker's one read path.
//
// Each subscribed partition of each socket is a `PartCursor`: the next offset that socket
// must receive, and where that cursor is being served from:
//
//   live     riding the partition's shared `Tail`. One Tail per (topic, partition) reads the
//            log once, decodes each batch once, and encodes each frame once per
//            (encoding, text encoding, key filter); the same frame object goes to every live
//            socket at that position.
//   catchup  reading the log on its own (history, or after a pause), one read at a time under
//            a global semaphore, until its cursor reaches the tail's position; then it joins.
//   paused   its socket's send buffer passed `sendBufferPauseBytes`; nothing is sent and no
//            memory is held for it beyond uWS's buffer. The socket's drain event resumes it
//            as a catch-up from its own cursor.
//
// Why not uWS publish/topics: publish silently skips a receiver past maxBackpressure, so a
// slow subscriber would lose records without knowing which; our own loop pauses it at an exact
// offset instead. The per-socket cost left is one native send of an already-encoded frame.
//
// Memory is bounded whatever the number of slow clients: a paused socket holds at most
// sendBufferPauseBytes + one frame in uWS, catch-up reads in flight are at most
// maxConcurrentCatchUps × readBytesMax, and a tail holds one read.
//
// Concurrency notes: JavaScript runs one callback at a time; every state change of a cursor
// happens synchronously between awaits, and every await is followed by a re-check that the
// subscription is still open and the cursor still in the state that started the await.
import type { BrokerApi, TopicPartition } from '../../host/broker/api.js';
import { asBrokerError, BrokerError } from '../../host/errors/index.js';
import type { Logger } from '../../host/logging.js';
import type { Counter } from '../../host/metrics/registry.js';
import { approxRecordBytes, encodeFrame, encodeRecords, errorFrame, type Encoding, type OutRecord, type RequestId, type TextEncodingName, type ValueDecoder } from './protocol.js';
import type { KeyMatcher } from './filter.js';
import { PartitionCursor, type RetryPolicy } from '../../host/broker/cursor.js';
import { SendStatus } from './uws-loader.js';

/** What the fan-out needs of a socket. */
export interface Peer {
  readonly encoding: Encoding;
  /** False once the socket closed: nothing may be sent. */
  readonly alive: boolean;
  bufferedBytes(): number;
  /** Sends one frame; the result says whether backpressure built up. */
  send(frame: string | Uint8Array): SendStatus;
}

export interface FanoutSettings {
  sendBufferPauseBytes: number;
  frameBytesMax: number;
  readBytesMax: number;
  maxConcurrentCatchUps: number;
  tailLingerMs: number;
  tailLingerMaxMs: number;
  tailMaxWaitMs: number;
}

export interface FanoutMetrics {
  recordsSent: Counter;
  framesSent: Counter;
  pauses: Counter;
}

type CursorState = 'live' | 'catchup' | 'paused' | 'stopped';

export class PartCursor {
  state: CursorState = 'stopped';
  /** Nothing below this offset is sent to this socket. */
  cursor: number;
  constructor(
    readonly sub: Subscription,
    readonly partition: number,
    startOffset: number,
  ) {
    this.cursor = startOffset;
  }
}

/** One topic subscription of one socket. */
export class Subscription {
  readonly parts = new Map<number, PartCursor>();
  closed = false;
  /** Frames are shared among cursors with the same key. */
  shareKey: string;
  /** Set for `decode: confluent` subscriptions (values decoded through the schema registry). */
  decode: ValueDecoder | undefined;
  constructor(
    readonly peer: Peer,
    readonly requestId: RequestId,
    readonly topic: string,
    readonly textEncoding: TextEncodingName,
    readonly filter: string | undefined,
    readonly matcher: KeyMatcher | undefined,
    /** The consumer group this subscription is a member of (partitions come from the group). */
    readonly groupId?: string,
  ) {
    this.shareKey = `${peer.encoding}|${textEncoding}|${filter ?? ''}`;
  }
}

const keyText = (key: Uint8Array | null): string | null => (key === null ? null : Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('utf8'));

/** Records after filtering, cut into frames near frameBytesMax, encoded once. */
function buildFrames(sub: Subscription, tp: TopicPartition, records: OutRecord[], frameBytesMax: number): Array<{ frame: string | Uint8Array; firstOffset: number; nextOffset: number; count: number }> {
  const chosen = sub.matcher ? records.filter((r) => sub.matcher!(keyText(r.key))) : records;
  const frames: Array<{ frame: string | Uint8Array; firstOffset: number; nextOffset: number; count: number }> = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < chosen.length; i++) {
    const size = approxRecordBytes(chosen[i], sub.textEncoding);
    if (i > start && bytes + size > frameBytesMax) {
      frames.push(encodeSlice(sub, tp, chosen, start, i));
      start = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (start < chosen.length) frames.push(encodeSlice(sub, tp, chosen, start, chosen.length));
  return frames;
}

function encodeSlice(sub: Subscription, tp: TopicPartition, recs: OutRecord[], from: number, to: number) {
  const slice = recs.slice(from, to);
  return {
    frame: encodeRecords(sub.peer.encoding, sub.textEncoding, tp.topic, tp.partition, slice, sub.decode),
    firstOffset: slice[0].offset,
    nextOffset: slice[slice.length - 1].offset + 1,
    count: slice.length,
  };
}

/** A FIFO counting semaphore; its queue holds at most one entry per cursor (bounded by sockets × subscriptions). */
class Semaphore {
  private readonly waiting: Array<() => void> = [];
  constructor(private free: number) {}
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/**
 * The one retry rule of this gateway's readers (host/broker/cursor.ts): transient errors are
 * retried without end, backing off to a second; a reader stops only when its members leave.
 */
const READ_RETRY: RetryPolicy = { attemptsMax: Number.POSITIVE_INFINITY, backoffMs: 10, backoffMaxMs: 1_000 };

/** The shared live reader of one partition. */
class Tail {
  readonly members = new Set<PartCursor>();
  private abort = new AbortController();
  private running = false;
  private readonly reader: PartitionCursor;

  constructor(
    readonly fanout: Fanout,
    readonly tp: TopicPartition,
    readonly key: string,
  ) {
    const { broker, settings, logger } = fanout;
    const tail = this;
    this.reader = new PartitionCursor(broker, tp, broker.offsets(tp).highWatermark, {
      maxBytes: settings.readBytesMax,
      // Retention removed what the tail was about to read: members behind it catch up on their own.
      onOutOfRange: 'nearest',
      retry: READ_RETRY,
      get signal() {
        return tail.abort.signal; // replaced when a member joins a tail that had emptied
      },
      onRetry: (err, attempt) => {
        if (attempt % 100 === 1) logger.warn({ err: err.message, topic: tp.topic, partition: tp.partition }, 'ws tail read failed; retrying');
      },
      emptyReadBackoffMs: settings.tailLingerMs || 1,
    });
  }

  /** Nothing below it is left to deliver to live members. */
  get position(): number {
    return this.reader.position;
  }

  add(c: PartCursor): void {
    c.state = 'live';
    this.members.add(c);
    if (this.abort.signal.aborted) this.abort = new AbortController();
    if (!this.running) {
      this.running = true;
      void this.loop();
    }
  }

  remove(c: PartCursor): void {
    this.members.delete(c);
    if (this.members.size === 0) this.abort.abort();
  }

  private async loop(): Promise<void> {
    const { settings } = this.fanout;
    while (this.members.size > 0) {
      try {
        const parked = this.reader.caughtUp();
        if (!(await this.reader.wait(settings.tailMaxWaitMs)) || this.members.size === 0) continue;
        if (parked) {
          // Woken by an append: let a few more land so one read serves them all.
          const lingerMs = Math.min(settings.tailLingerMaxMs, settings.tailLingerMs * Math.ceil(this.members.size / 100));
          if (lingerMs > 0) await new Promise((r) => setTimeout(r, lingerMs));
          if (this.members.size === 0) break;
        }
        const { records, from, nextOffset } = await this.reader.read();
        if (nextOffset > from) this.deliver(records, from, nextOffset);
      } catch (err) {
        // Not transient (the topic was deleted, ...): every member is told, the tail ends.
        const e = asBrokerError(err);
        if (e.code !== 'UNKNOWN_TOPIC_OR_PARTITION') this.fanout.logger.warn({ err: e.message, topic: this.tp.topic, partition: this.tp.partition }, 'ws tail stopped');
        for (const m of [...this.members]) {
          this.fanout.notify(m, e);
          m.state = 'stopped';
        }
        this.members.clear();
        break;
      }
    }
    this.running = false;
    this.fanout.dropTail(this);
  }

  /** Sends [from, next) to every live member: one encoding per share key, one send per socket. */
  private deliver(records: OutRecord[], from: number, next: number): void {
    const shared = new Map<string, ReturnType<typeof buildFrames>>();
    for (const m of [...this.members]) {
      const sub = m.sub;
      if (sub.closed || !sub.peer.alive) {
        this.members.delete(m);
        continue;
      }
      if (m.cursor < from) {
        // The member missed records (should not happen); it reads them itself.
        this.members.delete(m);
        this.fanout.startCatchUp(m);
        continue;
      }
      let frames: ReturnType<typeof buildFrames>;
      if (m.cursor === from) {
        frames = shared.get(sub.shareKey) ?? buildFrames(sub, this.tp, records, this.fanout.settings.frameBytesMax);
        shared.set(sub.shareKey, frames);
      } else {
        frames = buildFrames(sub, this.tp, records.filter((r) => r.offset >= m.cursor), this.fanout.settings.frameBytesMax);
      }
      if (!this.fanout.sendFrames(m, frames, next)) {
        this.members.delete(m); // paused: resumes from its cursor on drain
      }
    }
    if (this.members.size === 0) this.abort.abort();
  }
}

export class Fanout {
  private readonly tails = new Map<string, Tail>();
  private readonly catchUps: Semaphore;
  /** Cursors paused per peer, resumed on drain. */
  private readonly paused = new Map<Peer, Set<PartCursor>>();

  constructor(
    readonly broker: BrokerApi,
    readonly settings: FanoutSettings,
    readonly logger: Logger,
    readonly metrics: FanoutMetrics,
  ) {
    this.catchUps = new Semaphore(settings.maxConcurrentCatchUps);
  }

  get tailCount(): number {
    return this.tails.size;
  }

  /** Starts delivering a cursor from its offset. */
  start(c: PartCursor): void {
    this.startCatchUp(c);
  }

  /** Stops a cursor (unsubscribe, close, group revocation). */
  stop(c: PartCursor): void {
    c.state = 'stopped';
    this.tails.get(tpKey(c.sub.topic, c.partition))?.remove(c);
    const set = this.paused.get(c.sub.peer);
    if (set) {
      set.delete(c);
      if (set.size === 0) this.paused.delete(c.sub.peer);
    }
  }

  /** The socket drained: every paused cursor of it continues from its own position. */
  drained(peer: Peer): void {
    const set = this.paused.get(peer);
    if (!set || peer.bufferedBytes() >= this.settings.sendBufferPauseBytes) return;
    this.paused.delete(peer);
    for (const c of set) if (c.state === 'paused') this.startCatchUp(c);
  }

  /** Forgets a closed socket's paused cursors. */
  forget(peer: Peer): void {
    this.paused.delete(peer);
  }

  dropTail(t: Tail): void {
    if (this.tails.get(t.key) === t && t.members.size === 0) this.tails.delete(t.key);
  }

  /** Where a cursor must be to ride the partition's tail (a tail starts at the high watermark). */
  private tailPosition(tp: TopicPartition): number {
    return this.tails.get(tpKey(tp.topic, tp.partition))?.position ?? this.broker.offsets(tp).highWatermark;
  }

  private tailFor(tp: TopicPartition): Tail {
    const key = tpKey(tp.topic, tp.partition);
    let t = this.tails.get(key);
    if (!t) this.tails.set(key, (t = new Tail(this, { topic: tp.topic, partition: tp.partition }, key)));
    return t;
  }

  /** Sends frames to one cursor while its socket is under the pause bound; false = paused. */
  sendFrames(c: PartCursor, frames: ReturnType<typeof buildFrames>, next: number): boolean {
    const peer = c.sub.peer;
    for (const f of frames) {
      if (f.nextOffset <= c.cursor) continue;
      if (peer.bufferedBytes() >= this.settings.sendBufferPauseBytes) {
        this.pause(c);
        return false;
      }
      const status = peer.send(f.frame);
      if (status === SendStatus.Dropped) {
        this.pause(c); // uWS refused it (past maxBackpressure): the socket is being closed
        return false;
      }
      c.cursor = f.nextOffset;
      this.metrics.recordsSent.inc({ topic: c.sub.topic }, f.count);
      this.metrics.framesSent.inc({ topic: c.sub.topic });
    }
    c.cursor = Math.max(c.cursor, next); // records filtered out or compacted away still count as passed
    return true;
  }

  private pause(c: PartCursor): void {
    c.state = 'paused';
    this.metrics.pauses.inc({ topic: c.sub.topic });
    let set = this.paused.get(c.sub.peer);
    if (!set) this.paused.set(c.sub.peer, (set = new Set()));
    set.add(c);
  }

  /** Reads the log for one cursor until it reaches its partition's tail, then joins it. */
  startCatchUp(c: PartCursor): void {
    if (c.sub.closed || !c.sub.peer.alive) return;
    c.state = 'catchup';
    this.catchUp(c).catch((err) => {
      // Anything unexpected (a topic deleted between two calls, ...) ends this cursor only.
      const e = asBrokerError(err);
      if (e.code === 'UNKNOWN_SERVER_ERROR') this.logger.warn({ err, topic: c.sub.topic, partition: c.partition }, 'ws catch-up failed');
      this.notify(c, e);
      c.state = 'stopped';
    });
  }

  private async catchUp(c: PartCursor): Promise<void> {
    const tp = { topic: c.sub.topic, partition: c.partition };
    const live = () => c.state === 'catchup' && !c.sub.closed && c.sub.peer.alive;
    const reader = new PartitionCursor(this.broker, tp, c.cursor, {
      maxBytes: this.settings.readBytesMax,
      onOutOfRange: 'nearest',
      retry: READ_RETRY,
      onReset: (from, to, o) => {
        if (live()) this.notify(c, new BrokerError('OFFSET_OUT_OF_RANGE', `offset ${from} of ${tp.topic}/${tp.partition} is out of range [${o.logStartOffset}, ${o.highWatermark}]; continuing at ${to}`));
      },
    });
    while (live()) {
      if (c.cursor >= this.tailPosition(tp)) {
        this.tailFor(tp).add(c);
        return;
      }
      if (c.sub.peer.bufferedBytes() >= this.settings.sendBufferPauseBytes) {
        this.pause(c);
        return;
      }
      await this.catchUps.acquire();
      try {
        if (!live()) return;
        reader.seek(c.cursor); // a pause may have left the socket behind what was read
        let result;
        try {
          result = await reader.read();
        } catch (err) {
          if (!live()) return;
          this.notify(c, asBrokerError(err));
          c.state = 'stopped';
          return;
        }
        if (!live()) return;
        c.cursor = result.from; // where an out-of-range reset put it (else unchanged)
        if (result.nextOffset === result.from) {
          // Nothing stored past the cursor yet: wait on the tail.
          this.tailFor(tp).add(c);
          return;
        }
        const frames = buildFrames(c.sub, tp, result.records, this.settings.frameBytesMax);
        if (!this.sendFrames(c, frames, result.nextOffset)) return;
      } finally {
        this.catchUps.release();
      }
    }
  }

  /** A non-fatal problem with one subscription: an error frame naming the subscribe request. */
  notify(c: PartCursor, err: BrokerError): void {
    if (c.sub.peer.alive) c.sub.peer.send(encodeFrame(c.sub.peer.encoding, { ...errorFrame(c.sub.requestId, err), topic: c.sub.topic, partition: c.partition }));
  }
}

export function tpKey(topic: string, partition: number): string {
  return `${partition}:${topic}`;
}
