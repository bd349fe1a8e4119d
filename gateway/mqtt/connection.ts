// One connection's guard: strict packet checks before aedes sees a byte (guard.ts holds the
// rules), and flow control — the connection stops being read while it is over a bound:
//   rate      publishes per second (token bucket), resumed by a timer
//   inflight  QoS 1/2 publishes not yet durably appended, resumed as appends complete
//   pending   memory held by this connection's publishes not yet appended (QoS 0 included)
//   total     memory held by all connections' publishes not yet appended
//   outgoing  bytes queued toward this client, resumed on 'drain'
//   connack   packets after CONNECT wait until aedes has answered it
//   deliveries  aedes' delivery queue (mqemitter parks publishes past its concurrency in an
//              array) holds `deliveriesQueuedMax` messages: every connection stops handing
//              publishes over until it is below half (DeliveryGate), so a socket read of
//              hundreds of publishes per connection cannot pile up thousands of messages there
// Holding = the connection's `read()` answers null, so aedes takes no bytes; the stream's
// buffer fills to its high-water mark, the socket stops reading, the kernel's receive
// buffer fills and TCP pushes back on the device. Releasing reads again.
//
// Read size: aedes reads `conn.read(null)` (all the stream holds, a 64 KiB socket read or
// more) and parses every packet of it before the holds above can look again; ~350 small
// publishes of one read became ~2 KiB of heap each. A read hands aedes at most `readBytesMax`
// bytes instead (the rest stays in the stream's buffer, where it applies TCP back-pressure),
// except that the bytes a packet announced and still lacks are taken whole, so a large
// packet is not rebuilt from many small pieces. A read may end inside a packet: the guard
// keeps the partial packet, and reads on by itself when no packet of aedes' is in flight (the
// stream keeps bytes back, so its 'readable' event, aedes' other reason to read, does not come).
//
// Concurrency: `pump` runs synchronously; aedes handles the packets it is given inside
// `deliver` (also synchronously up to the publish authorisation hook), so the counters read
// after a `deliver` already include those packets.
import type { Duplex } from 'node:stream';
import type { Logger } from '../../host/logging.js';
import type { Counter } from '../../host/metrics/registry.js';
import { RECORD_HEAP_BYTES, type AppendBatcher } from './append.js';
import type { MqttGatewayOptions } from './options.js';
import { mqttAckReason, mqttDisconnectReason } from '../../host/errors/codes.js';
import { MALFORMED } from './properties.js';
import { CONNECT, RECEIVE_MAXIMUM_DEFAULT, checkConnect, checkPacket, readFixedHeader, type PublishRefusal, type Refusal, type Violation } from './guard.js';

/** The parts of an aedes Client the guard touches (aedes 1.2 lib/client.js). */
export interface AedesClientInternals {
  id: string | null;
  closed: boolean;
  connackSent: boolean;
  _parser: { parse(buf: Buffer): unknown; prependListener(event: 'packet', fn: (packet: { cmd: string; properties?: Record<string, unknown> }) => void): unknown };
  /** MQTT 5: sends DISCONNECT with a reason code, then closes (aedes 2 lib/client.js). */
  disconnect(opts: { reasonCode: number }, done?: () => void): void;
  _parsingBatch: number;
  _nextBatch(err?: Error): void;
}

export interface GuardShared {
  options: MqttGatewayOptions;
  logger: Logger;
  batcher: AppendBatcher;
  violations: Counter;
  /** Publishes refused with an answer (a v5 reason code, or a logged close in 3.1.1), by rule. */
  refused: Counter;
  holds: Counter;
  /** Logs at most one line per key per few seconds (refusals can come once per message). */
  rareLog(key: string, fields: Record<string, unknown>, msg: string): void;
  /** Guards waiting for the total of pending bytes to fall. */
  totalWaiters: Set<ConnectionGuard>;
  /** aedes' queue of messages waiting to be delivered, and the guards waiting for it to shrink. */
  deliveries: DeliveryGate;
}

/**
 * Connections corked in this event-loop turn, uncorked by one immediate for all (in the order
 * they were corked) rather than one each: at a paced rate a group commit's PUBACKs go to as many
 * connections as it has publishes.
 */
let uncorks: Array<() => void> = [];

function uncorkNextTurn(uncork: () => void): void {
  if (uncorks.length === 0) setImmediate(uncorkAll);
  uncorks.push(uncork);
}

function uncorkAll(): void {
  const due = uncorks;
  uncorks = []; // a write while uncorking corks again and goes with the next turn
  for (const uncork of due) uncork();
}

/** Publishes handed to aedes at once before the flow-control checks look again. */
const DELIVER_SLICE_PUBLISHES = 64;
/** Longest a hold for aedes' delivery queue lasts while the queue does not fall below half (a healthy queue of 1,000 drains in tens of ms). */
const DELIVERY_HOLD_MS_MAX = 100;

type HoldReason = 'rate' | 'inflight' | 'pending' | 'total' | 'outgoing' | 'connack' | 'deliveries';

/**
 * Watches aedes' delivery queue (`aedes.mq.length`: messages mqemitter has parked because its
 * `concurrency` deliveries are running). Guards hold while it is at `max`; once any guard
 * waits, the gate looks again every event-loop turn and releases them all below `max / 2`
 * (hysteresis, so they do not flap at the bound). Nothing runs while nobody waits.
 */
export class DeliveryGate {
  /** Set once aedes exists (the guard's shared state is built before it). */
  source: { length: number } | undefined;
  private readonly waiters = new Set<ConnectionGuard>();
  private armed = false;
  private waitingSinceMs: number | undefined;

  constructor(readonly max: number) {}

  get queued(): number {
    return this.source?.length ?? 0;
  }

  full(): boolean {
    return this.queued >= this.max;
  }

  wait(g: ConnectionGuard): void {
    this.waiters.add(g);
    this.arm();
  }

  forget(g: ConnectionGuard): void {
    this.waiters.delete(g);
  }

  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    setImmediate(() => this.check());
  }

  private check(): void {
    this.armed = false;
    if (this.waiters.size === 0) {
      this.waitingSinceMs = undefined;
      return;
    }
    this.waitingSinceMs ??= Date.now();
    // a queue that does not shrink at all must not stop every publisher for good (seen in the
    // crash-retransmit test: a persistent-session publisher across kill -9 restarts stalled
    // behind the gate; why aedes' queue stays full there is not yet known): past
    // DELIVERY_HOLD_MS_MAX the waiters go on, one slice each
    if (this.queued * 2 >= this.max && Date.now() - this.waitingSinceMs < DELIVERY_HOLD_MS_MAX) return this.arm();
    this.waitingSinceMs = undefined;
    const ready = [...this.waiters];
    this.waiters.clear();
    for (const g of ready) g.wakeDeliveries();
  }
}

export class ConnectionGuard {
  /** Bytes of this connection's publishes accepted and not yet appended. */
  pendingBytes = 0;
  /** QoS 1/2 publishes of this connection not yet acknowledged. */
  inflight = 0;
  /** Set once CONNECT passed the checks. */
  clientIdBytes: Buffer | undefined;
  /** The address part of `remote` (what ACL host rules and the login limiter see), once asked. */
  host: string | undefined;
  /**
   * The headers of this connection's last stored publish without properties (index.ts
   * `recordOf`): a device publishing on one topic at one QoS reuses them (records are never
   * mutated), instead of encoding its topic and building five header objects per message.
   */
  lastRecordHeaders: { topic: string; qos: number; retain: boolean; topicBytes: Buffer; headers: Array<{ key: string; value: Uint8Array | null }> } | undefined;
  /** The connection speaks MQTT 5 (set at CONNECT). */
  v5 = false;
  /** MQTT 5 limits the client set at CONNECT for what the server sends it. */
  topicAliasMaximum = 0;
  receiveMaximum = RECEIVE_MAXIMUM_DEFAULT;
  maximumPacketSize = 0;
  /**
   * User Properties of the PUBLISH packets handed to aedes, in wire order, oldest first:
   * the parser's 'packet' listener (installed before aedes' own) takes one per PUBLISH and
   * puts it on the packet, because mqtt-packet loses their order (MQTT-3.3.2-18). Bounded by
   * the packets of one chunk.
   */
  private readonly userProps: Array<Array<[string, string]> | undefined> = [];
  buf: Buffer | null = null;
  private connectSeen = false;
  holding: HoldReason | null = null;
  private dead = false;
  private pumping = false;
  private tokens: number;
  private refillAtMs = Date.now();
  private readonly parse: (buf: Buffer) => unknown;
  private readonly rawRead: (size?: number) => Buffer | null;
  /** Bytes the packet at the front of `buf` announced and has not received yet (0 = none, or its header is incomplete). */
  private missing = 0;

  constructor(
    private readonly client: AedesClientInternals,
    private readonly conn: Duplex,
    private readonly shared: GuardShared,
    readonly remote: string,
  ) {
    this.tokens = shared.options.publishBurst;
    const parser = client._parser;
    this.parse = parser.parse.bind(parser);
    parser.parse = (chunk: Buffer) => this.onData(chunk);
    parser.prependListener('packet', (packet: { cmd: string; properties?: Record<string, unknown> }) => {
      if (packet.cmd !== 'publish' || !this.v5) return;
      const user = this.userProps.shift();
      if (user && packet.properties) packet.properties.userProperties = user.map(([k, v]) => ({ [k]: v }));
    });
    this.rawRead = conn.read.bind(conn);
    conn.read = (size?: number) => {
      if (this.holding !== null && !this.dead) return null;
      return size === undefined || size === null ? this.readCapped() : this.rawRead(size);
    };
    // One writev per event-loop turn: mqtt-packet corks and uncorks around every packet (one
    // syscall each); the first write of a turn corks once more and the next turn's check phase
    // uncorks, so the PUBACKs of a group commit and the deliveries of a burst leave together.
    // end() uncorks fully, so a closing connection still flushes.
    const write = conn.write.bind(conn) as (...args: unknown[]) => boolean;
    conn.write = ((...args: unknown[]) => {
      if (!this.corked && !conn.writableEnded && !conn.destroyed) {
        this.corked = true;
        conn.cork();
        uncorkNextTurn(this.uncork);
      }
      return write(...args);
    }) as typeof conn.write;
  }

  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    if (this.conn.writableCorked > 0) this.conn.uncork();
  };

  /** aedes sent CONNACK 0: packets after CONNECT may flow. */
  connackSent(): void {
    if (this.holding === 'connack') setImmediate(() => this.release());
  }

  /** Counters of this connection fell: re-check a hold. */
  wake(): void {
    if (this.holding === 'inflight' || this.holding === 'pending') this.release();
  }

  /** The total of pending bytes fell. */
  wakeTotal(): void {
    if (this.holding === 'total') this.release();
  }

  /** aedes' delivery queue fell below half its bound. */
  wakeDeliveries(): void {
    if (this.holding === 'deliveries') this.release();
  }

  /** What aedes' `read(null)` gets: at most `readBytesMax` bytes, or what the partial packet lacks. */
  private readCapped(): Buffer | null {
    const want = Math.max(this.shared.options.readBytesMax, this.missing);
    // read(n) answers null when fewer than n bytes are buffered: ask for a size only below that
    const capped = !this.conn.readableObjectMode && this.conn.readableLength > want;
    return capped ? this.rawRead(want) : this.rawRead();
  }

  /**
   * Reads on when aedes will not: nothing of its is in flight (no completion would call
   * `read`) and the stream still holds bytes. Returns true when bytes were appended to `buf`.
   */
  private pullMore(): boolean {
    if (this.dead || this.holding !== null || this.client._parsingBatch > 0 || this.client.closed) return false;
    if (this.conn.readableLength === 0 || this.conn.destroyed) return false;
    const chunk = this.readCapped();
    if (chunk === null || chunk.length === 0) return false;
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    this.pump();
  }

  /**
   * Walks `this.buf` frame by frame. Not re-entrant: handing packets to aedes can make it
   * read the socket again (when they complete synchronously), and that data is appended to
   * `this.buf` and walked by the same loop.
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      do {
        while (this.buf !== null && this.holding === null && !this.dead) {
          const buf = this.buf;
          this.buf = null;
          const consumed = this.pass(buf);
          if (this.dead) return;
          const arrived = this.buf !== null;
          if (consumed < buf.length) {
            const rest = buf.subarray(consumed);
            const tail = this.buf as Buffer | null;
            this.buf = tail === null ? (consumed === 0 ? buf : Buffer.from(rest)) : Buffer.concat([rest, tail]);
          }
          if (!arrived && this.holding === null) break; // an incomplete packet: wait for bytes
        }
      } while (this.pullMore());
    } finally {
      this.pumping = false;
    }
  }

  /** One walk over `buf`; returns how many bytes were handed over (or judged). */
  private pass(buf: Buffer): number {
    const o = this.shared.options;
    let pos = 0;
    /** Start of the bytes not yet handed to aedes (a refused publish is skipped). */
    let from = 0;
    let runBytes = 0;
    let runInflight = 0;
    let runPublishes = 0;
    this.missing = 0;
    if (this.refuseFirstByte(buf)) return buf.length;
    for (;;) {
      const h = readFixedHeader(buf, pos, o.packetBytesMax);
      if (h === undefined) break;
      if (!Array.isArray(h)) {
        this.killAfter(buf, from, pos, h);
        return buf.length;
      }
      const [type, flags, len, headerBytes] = h;
      const s = pos + headerBytes;
      const e = s + len;
      if (e > buf.length) {
        this.missing = e - buf.length;
        break;
      }
      if (!this.connectSeen) return this.passConnect(buf, from, pos, s, e);
      const r = checkPacket(type, flags, buf, s, e, { v5: this.v5, topicLevelsMax: o.topicLevelsMax });
      if (r !== undefined) {
        if ('rule' in r) {
          this.killAfter(buf, from, pos, r);
          return buf.length;
        }
        const wait = this.mustWait(r.qos, runBytes, runInflight);
        if (wait !== null) {
          // hold first: handing over the packets before this one must not make aedes read
          this.hold(wait[0], wait[1]);
          if (pos > from) this.deliver(buf.subarray(from, pos));
          return pos;
        }
        if (o.publishRatePerSecond > 0) this.tokens -= 1;
        if (r.refusal) {
          // answered here; aedes never sees this publish
          if (pos > from) this.deliver(buf.subarray(from, pos));
          from = e;
          pos = e;
          if (!this.refusePublish(r.refusal, r.qos, r.packetId) || this.dead) return buf.length;
          continue;
        }
        runBytes += len + RECORD_HEAP_BYTES; // as the append will charge it
        if (r.qos > 0) runInflight++;
        if (this.v5) this.userProps.push(r.user);
        if (++runPublishes >= DELIVER_SLICE_PUBLISHES) {
          // hand over a slice, so the next publish's checks see what these did (aedes' delivery
          // queue, the counters); a socket read can hold thousands of small publishes
          this.deliver(buf.subarray(from, e));
          if (this.dead) return buf.length;
          from = e;
          runBytes = 0;
          runInflight = 0;
          runPublishes = 0;
        }
      }
      pos = e;
    }
    if (pos > from) this.deliver(buf.subarray(from, pos));
    return pos;
  }

  /**
   * MQTT-3.1.0-1: the first packet is judged on its first byte, so an HTTP request (whose bytes
   * read as a long remaining length) is not left waiting for bytes that never come. Returns true
   * when the connection was killed.
   */
  private refuseFirstByte(buf: Buffer): boolean {
    if (this.connectSeen || buf.length === 0 || buf[0] === 0x10) return false;
    const v: Violation = buf[0] >> 4 === CONNECT ? { rule: 'MQTT-2.2.2-2', message: 'CONNECT fixed header flags are not 0' } : { rule: 'MQTT-3.1.0-1', message: 'first packet is not CONNECT' };
    this.kill(v);
    return true;
  }

  /** The CONNECT at [s, e): checked, its limits kept, handed to aedes; returns the bytes consumed. */
  private passConnect(buf: Buffer, from: number, pos: number, s: number, e: number): number {
    const o = this.shared.options;
    const c = checkConnect(buf, s, e, o);
    if ('rule' in c && !('returnCode' in c)) {
      this.killAfter(buf, from, pos, c);
      return buf.length;
    }
    if ('returnCode' in c) {
      this.refuse(c);
      return buf.length;
    }
    this.connectSeen = true;
    this.v5 = c.protocolLevel === 5;
    this.topicAliasMaximum = c.topicAliasMaximum;
    this.receiveMaximum = c.receiveMaximum;
    this.maximumPacketSize = c.maximumPacketSize;
    // an empty id gets one from aedes (aedes_<uuid>); the header then takes that one
    if (c.clientId.length > 0) this.clientIdBytes = Buffer.from(c.clientId);
    this.deliver(buf.subarray(0, e));
    // packets after CONNECT wait for aedes' answer (it queues them otherwise, up to 42)
    if (!this.client.connackSent && !this.dead && !this.client.closed) this.hold('connack');
    return e;
  }

  /**
   * Answers a refused publish: counted by rule and logged; MQTT 5 gets PUBACK / PUBREC with
   * the error table's reason code (QoS 1/2) or a DISCONNECT with it (QoS 0 has no ack);
   * MQTT 3.1.1 has no negative acknowledgement, so the connection is closed. Returns true
   * while the connection stays open.
   */
  refusePublish(r: PublishRefusal, qos: number, packetId: number, closeV3 = true): boolean {
    // each packet type allows its own reason codes; a row's code outside them becomes 0x80
    const reason = qos > 0 ? (r.ackReason ?? mqttAckReason(r.error)) : mqttDisconnectReason(r.error);
    this.shared.refused.inc({ rule: r.rule });
    const answer = !this.v5 ? 'connection closed (MQTT 3.1.1 has no negative acknowledgement)' : qos > 0 ? `${qos === 1 ? 'PUBACK' : 'PUBREC'} reason 0x${reason.toString(16)}` : `DISCONNECT reason 0x${reason.toString(16)}`;
    this.shared.rareLog(`refused-${r.rule}`, { rule: r.rule, clientId: this.client.id ?? undefined, remote: this.remote, reason: this.v5 ? reason : undefined }, `mqtt: PUBLISH refused: ${r.message} (${r.rule}); ${answer}`);
    if (!this.v5) {
      if (closeV3) {
        this.dead = true;
        this.buf = null;
        this.conn.destroy();
      }
      return false;
    }
    if (qos > 0) {
      // MQTT 5 §3.4.2 / §3.5.2: type, remaining length 3, packet id, reason code
      this.conn.write(Buffer.from([qos === 1 ? 0x40 : 0x50, 0x03, packetId >> 8, packetId & 0xff, reason]));
      return true;
    }
    this.dead = true;
    this.buf = null;
    this.sendDisconnect(reason);
    return false;
  }

  /** MQTT 5 §3.14: DISCONNECT with a reason code, then the connection is closed once it is flushed. */
  private sendDisconnect(reason: number): void {
    refuseConnection(this.conn, Buffer.from([0xe0, 0x01, reason]));
  }

  private mustWait(qos: number, runBytes: number, runInflight: number): [HoldReason, number] | null {
    const o = this.shared.options;
    if (o.publishRatePerSecond > 0) {
      const now = Date.now();
      this.tokens = Math.min(o.publishBurst, this.tokens + ((now - this.refillAtMs) * o.publishRatePerSecond) / 1000);
      this.refillAtMs = now;
      if (this.tokens < 1) return ['rate', Math.ceil(((1 - this.tokens) * 1000) / o.publishRatePerSecond)];
    }
    if (qos > 0 && this.inflight + runInflight >= o.inflightMax) return ['inflight', 0];
    const mine = this.pendingBytes + runBytes;
    if (mine > 0 && mine >= o.pendingBytesPerConnectionMax) return ['pending', 0];
    if (this.shared.batcher.pendingMemoryBytes >= o.pendingBytesTotalMax) return ['total', 0];
    if (this.conn.writableLength >= o.outgoingBytesMax) return ['outgoing', 0];
    if (this.shared.deliveries.full()) return ['deliveries', 0];
    return null;
  }

  private hold(reason: HoldReason, delayMs = 0): void {
    this.holding = reason;
    this.shared.holds.inc({ reason });
    if (reason === 'rate') setTimeout(() => this.release(), delayMs);
    else if (reason === 'outgoing') this.conn.once('drain', () => this.release());
    else if (reason === 'total') this.shared.totalWaiters.add(this);
    else if (reason === 'deliveries') this.shared.deliveries.wait(this);
    else if (reason === 'inflight' || reason === 'pending') {
      // the counters may already have fallen while the packets were being handed over
      if (this.mustWait(1, 0, 0)?.[0] !== reason) setImmediate(() => this.release());
    }
  }

  private release(): void {
    if (this.holding === null || this.dead) return;
    if (this.holding === 'total') this.shared.totalWaiters.delete(this);
    if (this.holding === 'deliveries') this.shared.deliveries.forget(this);
    this.holding = null;
    this.pump();
    // aedes reads again when its packets in flight complete; with none in flight, nothing
    // would make it read, so start it
    if (this.holding === null && !this.dead && this.client._parsingBatch <= 0) this.client._nextBatch();
  }

  private deliver(bytes: Buffer): void {
    if (this.client.closed) {
      this.dead = true;
      return;
    }
    this.parse(bytes);
  }

  /** Delivers the valid packets before the offending one, then closes the connection. */
  private killAfter(buf: Buffer, from: number, pos: number, v: Violation): void {
    if (pos > from) this.deliver(buf.subarray(from, pos));
    this.kill(v);
  }

  kill(v: Violation): void {
    if (this.dead) return;
    this.dead = true;
    this.buf = null;
    this.shared.totalWaiters.delete(this);
    this.shared.deliveries.forget(this);
    this.shared.violations.inc({ rule: v.rule });
    // MQTT 5 after CONNACK: say why before closing (MQTT-4.13.1-1), 0x81 Malformed Packet unless the rule names another
    const reason = this.v5 && this.client.connackSent ? (v.reason ?? MALFORMED) : undefined;
    this.shared.logger.warn({ rule: v.rule, clientId: this.client.id ?? undefined, remote: this.remote, reason }, `mqtt: ${v.message} (${v.rule}); ${reason !== undefined ? `DISCONNECT reason 0x${reason.toString(16)} sent, ` : ''}connection closed`);
    if (reason !== undefined) this.sendDisconnect(reason);
    else this.conn.destroy();
  }

  private refuse(r: Refusal): void {
    this.dead = true;
    this.buf = null;
    this.shared.violations.inc({ rule: r.rule ?? `connack-${r.returnCode}` });
    this.shared.logger.warn({ rule: r.rule, returnCode: r.returnCode, remote: this.remote }, `mqtt: ${r.message}; CONNACK sent, connection closed`);
    // MQTT 5 §3.2: CONNACK = 0x20, remaining length 3, flags 0, reason, properties length 0.
    // MQTT 3.1.1 §3.2: CONNACK = 0x20, remaining length 2, flags 0, return code.
    const connack = r.v5 ? Buffer.from([0x20, 0x03, 0x00, r.returnCode, 0x00]) : Buffer.from([0x20, 0x02, 0x00, r.returnCode]);
    refuseConnection(this.conn, connack);
  }
}

/** Writes a CONNACK and closes the connection once it is flushed (or after a second). */
export function refuseConnection(conn: Duplex, connack: Buffer): void {
  conn.end(connack);
  const t = setTimeout(() => conn.destroy(), 1_000);
  t.unref();
  conn.once('close', () => clearTimeout(t));
}
