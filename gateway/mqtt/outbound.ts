// Deliveries toward one client, between aedes' subscription functions and its writer. aedes
// calls `client.deliverQoS` / `client.deliver0` once per matching subscription, then its
// `authorizeForward` hook just before writing; this class replaces the first two and serves
// the hook. What it owns:
//
//   one copy per message   aedes drops a second copy with a per-client high-water mark of
//                          `brokerCounter` ("dedupe"), which assumes messages reach a client in
//                          counter order. The gateway breaks that order on purpose — a QoS 1/2
//                          publish is emitted only after its fsync, while a later QoS 0 one is
//                          emitted at once; the Receive Maximum queue below holds QoS 1/2 behind
//                          QoS 0 — so aedes would drop the held message as "older" (issue 9,
//                          defects 1 and 3). aedes' mark is disabled for the client and copies
//                          are recognised by message identity (brokerId, brokerCounter) instead.
//   QoS and identifiers    the copy sent carries the highest QoS among the client's matching
//                          subscriptions (capped by the publish's, MQTT-3.3.4-2/-8, MQTT-3.3.5-1)
//                          whichever subscription's function aedes called first, and, in MQTT 5,
//                          every matching Subscription Identifier (MQTT-3.3.4-4). aedes' own
//                          writer would then lower it to the QoS of a subscription naming the
//                          exact topic; when that differs, the copy is written here instead.
//   retained on SUBSCRIBE  at min(message QoS, the QoS granted to the new subscriptions that match
//                          it) (MQTT-3.8.4-6): aedes sends it at the message's QoS.
//   one filter twice       in one SUBSCRIBE gets one return code per filter (MQTT-3.8.4-5,
//                          MQTT-3.9.3-1): aedes keeps the last and answers once, so for such a
//                          packet its SUBACK is suppressed and written here.
//   Receive Maximum        never more unacknowledged QoS 1/2 deliveries than the client allowed
//                          (MQTT-3.3.4-9); more wait in a queue bounded by `deliveryQueueMax`.
//                          A client that lets it fill is disconnected and counted: a slow
//                          subscriber is never buffered without limit.
//   slow client            while more than `deliveryBytesQueuedMax` bytes wait in the socket
//                          toward the client, a QoS 0 delivery is dropped and counted
//                          (reason slow-client-qos0, as Mosquitto's max_queued_messages) and a
//                          QoS 1/2 one waits in the queue above (bounded, its session keeps the
//                          stored copy) until 'drain'. Either way aedes' delivery slot is given
//                          back at once, so one slow reader does not stall every publisher; a
//                          client that drains nothing for `drainTimeoutMs` is disconnected.
//   Maximum Packet Size    a delivery larger than the client accepts is dropped for that client
//                          (MQTT-3.1.2-25) and counted.
//   message expiry         an expired message is dropped; others carry the remaining seconds.
//   Topic Aliases          server → client aliases up to the client's Topic Alias Maximum, for
//                          packets written straight away (QoS 0, and QoS 1/2 of sessions that
//                          keep no copy): a copy kept for redelivery must name its topic, since
//                          aliases die with the connection (MQTT-3.3.2-7).
//
// Concurrency: aedes calls the subscription functions of one message synchronously, one after
// the other, and `forward` synchronously just before scheduling the write, so the identity set
// only needs the last few messages and alias numbers are handed out in write order.
import { Transform, type Readable } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import type { Logger } from '../../host/logging.js';
import type { Counter } from '../../host/metrics/registry.js';
import { mqttDisconnectReason } from '../../host/errors/codes.js';
import type { MqttGatewayOptions } from './options.js';
import { filterMatches } from './routes.js';

interface Packet {
  cmd?: string;
  topic: string;
  payload: Buffer | string;
  qos: number;
  retain: boolean;
  brokerId?: string | null;
  brokerCounter?: number;
  messageId?: number;
  messageExpiry?: number;
  properties?: Record<string, unknown>;
  [k: string]: unknown;
}

type Deliver = (packet: Packet, cb: () => void) => void;

/** The parts of an aedes 2 Client this class uses (lib/client.js). */
export interface OutboundClient {
  id: string | null;
  version: number | null;
  clean: boolean;
  closed: boolean;
  subscriptions: Record<string, { qos: number; si?: number }>;
  duplicates: Record<string, number>;
  deliverQoS: Deliver;
  deliver0: Deliver;
  disconnect(opts: { reasonCode: number }, done?: () => void): void;
  conn: NodeJS.WritableStream & { destroy(): void; readonly writableLength: number; on(event: 'drain', fn: () => void): unknown };
  // aedes 2 lib/client.js internals its deliverQoS uses; `writeQoS` below does the same
  connecting: boolean;
  connected: boolean;
  errored?: boolean;
  _nextId: number;
  _wireVersion: number | null;
  _parser: { prependListener(event: 'packet', fn: (packet: SubscribePacket) => void): unknown };
  waitForDrain(cb: () => void): void;
  emit(event: 'error', err: Error): boolean;
  broker: {
    authorizeForward(client: OutboundClient, packet: Packet): Packet | null | undefined;
    persistence: {
      outgoingUpdate(c: OutboundClient, p: Packet): Promise<void>;
      outgoingClearMessageId(c: OutboundClient, p: Packet): Promise<unknown>;
      outgoingEnqueue(sub: { clientId: string }, p: Packet): Promise<void>;
    };
  };
}

interface SubscribePacket {
  cmd: string;
  messageId?: number;
  subscriptions?: Array<{ topic: string; qos: number }>;
}

/** A SUBSCRIBE naming a filter more than once: its filters in packet order, and its packet id for the SUBACK written here. */
interface RepeatedSubscribe {
  packet: SubscribePacket;
  messageId: number;
  requested: Array<{ topic: string; qos: number }>;
}

/** SUBSCRIBEs with a repeated filter awaiting their SUBACK; more pending at once than this is a client gone wrong, the oldest is forgotten. */
const REPEATED_SUBSCRIBES_MAX = 16;

/** What the connection guard learnt from CONNECT. */
export interface ClientLimits {
  v5: boolean;
  receiveMaximum: number;
  maximumPacketSize: number;
  topicAliasMaximum: number;
}

export interface OutboundShared {
  options: MqttGatewayOptions;
  logger: Logger;
  dropped: Counter;
  rareLog(key: string, fields: Record<string, unknown>, msg: string): void;
}

/**
 * brokerId of a retained message sent on SUBSCRIBE to a persistent session and kept in its
 * store until acknowledged (aedes keeps no copy of those); brokerCounter numbers them from the
 * start time, so identities stay unique across restarts.
 */
export const RETAINED_ON_SUBSCRIBE = 'retained-on-subscribe';
let retainedCounter = Date.now();

/** Recent message identities kept per client: the copies of one message arrive back to back. */
const RECENT_MAX = 64;

/** aedes' dedupe reads `duplicates[brokerId] || 0` and keeps a message when it is below the counter: with nothing stored it keeps all. */
const NO_MARKS: Record<string, number> = new Proxy({} as Record<string, number>, {
  get: () => undefined,
  set: () => true,
  deleteProperty: () => true,
});

export class Outbound {
  /** QoS 1/2 deliveries written (or reserved for writing) and not yet acknowledged. */
  inflight = 0;
  private readonly queue: Array<[Packet, Deliver]> = [];
  /**
   * The identities (brokerId, brokerCounter) of the last RECENT_MAX live messages delivered, a
   * ring: scanned, not hashed, so a delivery builds no identity string and no set entry.
   */
  private readonly recentIds: Array<string | undefined> = new Array<string | undefined>(RECENT_MAX).fill(undefined);
  private readonly recentCounters = new Float64Array(RECENT_MAX);
  /** The ring's slot the next identity goes in (the oldest once it is full). */
  private recentNext = 0;
  private readonly aliases = new Map<string, number>();
  /** Queued messages (offline replay) counted in `inflight` before aedes forwards them. */
  /** by identity, with how many copies: a session subscribed twice to a topic has a copy per subscription queued */
  private readonly reserved = new Map<string, number>();
  private readonly origQoS: Deliver;
  private readonly orig0: Deliver;
  private closed = false;
  private windowWaiters: Array<() => void> = [];
  private readonly repeated: RepeatedSubscribe[] = [];
  /** The packet `writeQoS` is forwarding: `forward` counts it at its own QoS, not aedes' lowered one. */
  private unlowered: Packet | undefined;

  constructor(
    private readonly client: OutboundClient,
    private readonly limits: ClientLimits,
    private readonly shared: OutboundShared,
  ) {
    this.origQoS = client.deliverQoS;
    this.orig0 = client.deliver0;
    client.duplicates = NO_MARKS;
    client.deliverQoS = (p, cb) => this.deliver(p, cb, true);
    client.deliver0 = (p, cb) => this.deliver(p, cb, false);
    client.conn.on('drain', () => {
      if (this.stallTimer) clearTimeout(this.stallTimer);
      this.stallTimer = undefined;
      this.pump();
    });
    // before aedes' own listener dedupes the filters (lib/handlers/subscribe.js `_dedupe`)
    client._parser.prependListener('packet', (p) => this.onSubscribe(p));
  }

  private stallTimer: NodeJS.Timeout | undefined;

  /** More than `deliveryBytesQueuedMax` bytes wait toward the client; arms the drain timeout. */
  private stalled(): boolean {
    if (this.client.conn.writableLength < this.shared.options.deliveryBytesQueuedMax) return false;
    if (!this.stallTimer && !this.closed && this.shared.options.drainTimeoutMs > 0) {
      this.stallTimer = setTimeout(() => {
        this.stallTimer = undefined;
        if (this.closed || this.client.conn.writableLength < this.shared.options.deliveryBytesQueuedMax) return;
        this.shared.logger.warn({ clientId: this.client.id, drainTimeoutMs: this.shared.options.drainTimeoutMs }, 'mqtt: client read nothing for drainTimeoutMs with deliveries waiting; disconnected');
        this.close();
        this.client.conn.destroy();
      }, this.shared.options.drainTimeoutMs);
      this.stallTimer.unref();
    }
    return true;
  }

  private onSubscribe(p: SubscribePacket): void {
    if (p.cmd !== 'subscribe' || !p.subscriptions || p.subscriptions.length < 2 || p.messageId === undefined) return;
    const topics = new Set(p.subscriptions.map((s) => s.topic));
    if (topics.size === p.subscriptions.length) return;
    if (this.repeated.length >= REPEATED_SUBSCRIBES_MAX) this.repeated.shift();
    this.repeated.push({ packet: p, messageId: p.messageId, requested: p.subscriptions.map((s) => ({ topic: s.topic, qos: s.qos })) });
    // aedes writes a SUBACK only for a packet with an id: this one's is written by `subscribed`
    delete p.messageId;
  }

  /**
   * aedes' 'subscribe' event, emitted where it writes the SUBACK: `subs` are the packet's
   * deduplicated subscriptions with the granted QoS (or failure code) in `qos`. A SUBSCRIBE
   * that named a filter twice gets its SUBACK here, one code per filter in packet order: each
   * occurrence replaces the previous (MQTT-3.8.4-3), so each is granted its own QoS as capped
   * for the last, and a refusal refuses all.
   */
  subscribed(subs: Array<{ topic: string; qos: number }>): void {
    const i = this.repeated.findIndex((r) => r.packet.subscriptions === subs);
    if (i < 0) return;
    const [r] = this.repeated.splice(i, 1);
    const final = new Map(subs.map((s) => [s.topic, s.qos]));
    const lastRequested = new Map(r.requested.map((s) => [s.topic, s.qos]));
    const granted = r.requested.map(({ topic, qos }) => {
      const g = final.get(topic) ?? 0x80;
      if (g >= 0x80) return g;
      // the server's cap, as seen on the last occurrence
      const cap = g < lastRequested.get(topic)! ? g : 2;
      return Math.min(qos, cap);
    });
    // each occurrence re-sends the retained messages at its own QoS (MQTT-3.8.4-3): one copy at their maximum
    const retained = new Map<string, number>();
    r.requested.forEach(({ topic }, k) => {
      if (granted[k] < 0x80) retained.set(topic, Math.max(retained.get(topic) ?? 0, granted[k]));
    });
    Object.defineProperty(subs, RETAINED_QOS, { value: retained });
    const c = this.client;
    if (c.closed || !(c.connecting || c.connected)) return;
    try {
      mqttPacket.writeToStream({ cmd: 'suback', messageId: r.messageId, granted } as never, c.conn as never, { protocolVersion: c._wireVersion ?? 4 } as never);
    } catch (err) {
      c.emit('error', err as Error);
    }
  }

  private get windowMax(): number {
    return this.limits.v5 ? this.limits.receiveMaximum : Number.MAX_SAFE_INTEGER;
  }

  private deliver(packet: Packet, cb: () => void, qosPath: boolean): void {
    // a shared-subscription delivery (index.ts) is its own message: its QoS and identifier are its subscription's
    const live = typeof packet.brokerId === 'string' && typeof packet.brokerCounter === 'number' && packet.sharedDelivery !== true;
    if (live) {
      if (this.seenRecently(packet.brokerId as string, packet.brokerCounter as number)) {
        setImmediate(cb);
        return;
      }
      this.merge(packet);
    }
    // a live message takes the path of its merged QoS, not of the subscription aedes called first
    if ((!live && !qosPath) || packet.qos === 0) {
      packet.qos = 0;
      if (this.stalled()) {
        this.shared.dropped.inc({ reason: 'slow-client-qos0' });
        setImmediate(cb);
        return;
      }
      // the bytes are bounded above: aedes' slot need not wait for the socket to drain
      this.orig0(packet, noop);
      setImmediate(cb);
      return;
    }
    // a retained message sent on SUBSCRIBE at QoS 1/2 to a persistent session is resent on
    // reconnect until acknowledged, like any other delivery (MQTT-4.4.0-1)
    const send = !live && packet.retain && !this.client.clean && this.client.id ? this.sendKept : this.sendQoS;
    if (this.queue.length > 0 || this.inflight >= this.windowMax || this.stalled()) {
      if (this.queue.length >= this.shared.options.deliveryQueueMax) {
        this.overflow();
        setImmediate(cb);
        return;
      }
      this.queue.push([packet, send]);
      // the message is ours now (bounded queue); mqemitter must not wait on one slow client
      setImmediate(cb);
      return;
    }
    send(packet, cb);
  }

  /** True if this identity is among the last RECENT_MAX delivered; else it is noted (the oldest forgotten). */
  private seenRecently(brokerId: string, brokerCounter: number): boolean {
    const ids = this.recentIds;
    const counters = this.recentCounters;
    for (let i = 0; i < RECENT_MAX; i++) if (counters[i] === brokerCounter && ids[i] === brokerId) return true;
    ids[this.recentNext] = brokerId;
    counters[this.recentNext] = brokerCounter;
    this.recentNext = (this.recentNext + 1) % RECENT_MAX;
    return false;
  }

  /** Stores a retained message sent on SUBSCRIBE in the session, then writes it (see `deliver`). */
  private readonly sendKept: Deliver = (packet, cb) => {
    const c = this.client;
    packet.brokerId = RETAINED_ON_SUBSCRIBE;
    packet.brokerCounter = ++retainedCounter;
    c.broker.persistence.outgoingEnqueue({ clientId: c.id! }, packet).then(
      () => this.writeQoS(packet, cb, true),
      () => this.writeQoS(packet, cb, false),
    );
  };

  private readonly sendQoS: Deliver = (packet, cb) => {
    const exact = this.client.subscriptions[packet.topic];
    if (!exact || exact.qos >= packet.qos) return this.origQoS(packet, cb);
    this.writeQoS(packet, cb);
  };

  /**
   * aedes' deliverQoS (lib/client.js) without its last step, which lowers the QoS to that of a
   * subscription naming the exact topic: here the QoS already is the maximum over the matching
   * subscriptions (MQTT-3.3.5-1), or for a retained message the QoS of the new subscription
   * that matched it (MQTT-3.8.4-6). Same order of work: no-local, the forward hook, a packet id,
   * the session's store for a persistent client, then the write.
   */
  private writeQoS(packet: Packet, cb: () => void, kept = false): void {
    const c = this.client;
    if (packet.clientId === c.id && packet.nl) return void setImmediate(cb);
    this.unlowered = packet;
    let out: Packet | null | undefined;
    try {
      out = c.broker.authorizeForward(c, packet);
    } finally {
      this.unlowered = undefined;
    }
    if (!out) {
      if (!c.clean) c.broker.persistence.outgoingClearMessageId(c, packet).then(noop, noop);
      return void setImmediate(cb);
    }
    const fwd = out;
    setImmediate(() => {
      let messageId = fwd.messageId;
      if (!messageId) {
        messageId = c._nextId;
        c._nextId = c._nextId >= 65535 ? 1 : c._nextId + 1;
      }
      const p: Packet = { ...fwd, cmd: 'publish', payload: fwd.payload ?? Buffer.alloc(0), retain: fwd.retain ?? false, dup: false, messageId };
      const write = () => {
        if (!(c.connecting || c.connected)) return void setImmediate(cb);
        let ok = true;
        try {
          ok = mqttPacket.writeToStream(p as never, c.conn as never, { protocolVersion: c._wireVersion ?? 4 } as never);
        } catch (err) {
          c.emit('error', err as Error);
        }
        // aedes fails a drain wait with "connection closed" when the connection ends first; the
        // error is not the caller's to handle (it is aedes' retained stream or mqemitter, which
        // would throw it: an unhandled 'error', the process gone — differential seed 409103), so
        // it is dropped here as aedes' own deliverQoS drops it
        if (!ok && !c.errored) c.waitForDrain(() => cb());
        else setImmediate(cb);
      };
      // a kept retained message: its packet id is recorded, or (store full) it is sent anyway
      if (kept) c.broker.persistence.outgoingUpdate(c, p).then(write, write);
      else if (c.clean || p.retain) write();
      else
        c.broker.persistence.outgoingUpdate(c, p).then(write, (err: Error) => {
          c.emit('error', err);
          cb();
        });
    });
  }

  /** Highest QoS among the client's matching subscriptions and (MQTT 5) all their identifiers. */
  private merge(packet: Packet): void {
    let qos = -1;
    let ids: number[] | undefined;
    const subs = this.client.subscriptions;
    for (const filter in subs) {
      if (!filterMatches(filter, packet.topic)) continue;
      const s = subs[filter];
      if (s.qos > qos) qos = s.qos;
      if (s.si !== undefined) (ids ??= []).push(s.si);
    }
    if (qos >= 0 && packet.qos > qos) packet.qos = qos;
    if (this.limits.v5 && ids && ids.length > 1) packet.properties = { ...packet.properties, subscriptionIdentifier: ids };
  }

  /** aedes' authorizeForward: the packet to write to this client, or null to drop it. */
  forward(packet: Packet): Packet | null {
    // nothing reserved (no offline replay running): no identity string to build per delivery
    const wasReserved = this.reserved.size > 0 && typeof packet.brokerId === 'string' && this.unmark(`${packet.brokerId}\u0000${packet.brokerCounter}`);
    if (packet.messageExpiry !== undefined) {
      const leftMs = packet.messageExpiry - Date.now();
      if (leftMs <= 0) {
        if (wasReserved) this.release();
        return this.drop('expired', packet);
      }
      if (this.limits.v5) packet = { ...packet, properties: { ...packet.properties, messageExpiryInterval: Math.ceil(leftMs / 1000) } };
    }
    if (wasReserved && !this.replayAsSubscribed(packet)) {
      this.release();
      return null;
    }
    if (this.limits.v5 && this.limits.maximumPacketSize > 0 && wireBytes(packet) > this.limits.maximumPacketSize) {
      if (wasReserved) this.release();
      return this.drop('packet-too-large', packet);
    }
    // aedes then lowers the QoS to that of a subscription naming this exact topic (not when `writeQoS` writes it)
    const exact = this.client.subscriptions[packet.topic];
    const qos = exact && exact.qos < packet.qos && packet !== this.unlowered ? exact.qos : packet.qos;
    if (qos > 0 && !wasReserved) this.inflight++;
    if (this.limits.v5 && this.limits.topicAliasMaximum > 0 && (qos === 0 || this.client.clean)) packet = this.alias(packet);
    return packet;
  }

  /**
   * A message replayed from the session (queued while offline, or unacknowledged): stored as
   * published, it goes out at min(its QoS, the highest QoS of the matching subscriptions)
   * (MQTT-3.8.4-6) and, being sent for an established subscription, with RETAIN 0 (MQTT-3.3.1-9)
   * unless a matching MQTT 5 subscription asked for Retain As Published. aedes writes this very
   * packet object, so it is changed in place. False: a matching subscription at QoS 0 — such a
   * message is not kept for a session (MQTT-3.1.2-5 keeps QoS 1/2 ones); it is dropped.
   */
  private replayAsSubscribed(packet: Packet): boolean {
    let qos = -1;
    let rap = false;
    const subs = this.client.subscriptions as Record<string, { qos: number; rap?: boolean }>;
    for (const filter in subs) {
      if (!filterMatches(filter, packet.topic)) continue;
      if (subs[filter].qos > qos) qos = subs[filter].qos;
      if (subs[filter].rap) rap = true;
    }
    // a retained message sent on SUBSCRIBE is resent as first sent
    if (qos < 0 || packet.brokerId === RETAINED_ON_SUBSCRIBE) return true; // (or unsubscribed since: delivered as stored)
    if (qos === 0) return false;
    if (packet.qos > qos) packet.qos = qos;
    if (!rap) packet.retain = false;
    return true;
  }

  private alias(packet: Packet): Packet {
    const known = this.aliases.get(packet.topic);
    if (known !== undefined) return { ...packet, topic: '', properties: { ...packet.properties, topicAlias: known } };
    if (this.aliases.size >= this.limits.topicAliasMaximum) return packet;
    const n = this.aliases.size + 1;
    this.aliases.set(packet.topic, n);
    return { ...packet, properties: { ...packet.properties, topicAlias: n } };
  }

  private drop(reason: string, packet: Packet): null {
    this.shared.dropped.inc({ reason });
    this.shared.rareLog(`drop-${reason}`, { clientId: this.client.id, topic: packet.topic, reason, maximumPacketSize: this.limits.maximumPacketSize || undefined }, `mqtt: delivery dropped for this client (${reason})`);
    return null;
  }

  /** A PUBACK or PUBCOMP came: the window has room for the next queued delivery. */
  acked(): void {
    this.release();
  }

  private release(): void {
    if (this.inflight > 0) this.inflight--;
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.inflight < this.windowMax) {
      if (this.queue.length > 0 && this.windowWaiters.length === 0 && this.stalled()) return; // resumed on 'drain'
      const w = this.windowWaiters.shift();
      if (w) {
        w();
        continue;
      }
      const next = this.queue.shift();
      if (!next) return;
      const [packet, send] = next;
      if (packet.qos === 0) this.orig0(packet, noop);
      else send(packet, noop);
    }
  }

  /**
   * Offline replay: waits until the window has room, then counts the message (aedes writes it
   * without passing through the subscription functions).
   */
  async reserve(packet: Packet): Promise<void> {
    if (this.closed) return;
    while (this.inflight >= this.windowMax && !this.closed) await new Promise<void>((r) => this.windowWaiters.push(r));
    if (packet.brokerId && packet.brokerCounter !== undefined) {
      const key = `${packet.brokerId}\u0000${packet.brokerCounter}`;
      this.reserved.set(key, (this.reserved.get(key) ?? 0) + 1);
      this.inflight++;
    }
  }

  /** The replayed message was dropped before being forwarded (expired, session cleaned). */
  unreserve(packet: { brokerId?: string | null; brokerCounter?: number }): void {
    if (packet.brokerId && this.unmark(`${packet.brokerId}\u0000${packet.brokerCounter}`)) this.release();
  }

  /** Takes one reserved copy of a message: false when none was reserved. */
  private unmark(key: string): boolean {
    const n = this.reserved.get(key);
    if (n === undefined) return false;
    if (n <= 1) this.reserved.delete(key);
    else this.reserved.set(key, n - 1);
    return true;
  }

  private overflow(): void {
    if (this.closed) return;
    this.shared.dropped.inc({ reason: 'slow-client' }, this.queue.length + 1);
    this.shared.logger.warn({ clientId: this.client.id, deliveryQueueMax: this.shared.options.deliveryQueueMax, receiveMaximum: this.limits.receiveMaximum }, 'mqtt: client does not acknowledge its deliveries and its queue is full (deliveryQueueMax); disconnected');
    this.close();
    // a persistent session keeps its stored copies and gets them on reconnect
    if (this.limits.v5) this.client.disconnect({ reasonCode: mqttDisconnectReason('LIMIT_EXCEEDED') });
    else this.client.conn.destroy();
  }

  close(): void {
    this.closed = true;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.queue.length = 0;
    for (const w of this.windowWaiters) w();
    this.windowWaiters = [];
  }
}

function noop(): void {}

type Granted = Array<{ topic: string; qos: number }> & { [RETAINED_QOS]?: Map<string, number> };

/** On the subscriptions of aedes' 'subscribe' event, by `Outbound.subscribed`: the QoS retained messages go out at per filter named twice. */
const RETAINED_QOS = Symbol('retainedQoS');

/**
 * Makes retained messages sent on SUBSCRIBE arrive at min(message QoS, QoS granted) (MQTT-3.8.4-6):
 * aedes reads them with `persistence.createRetainedStreamCombi(filters)` and sends each at the
 * QoS it was published with. aedes emits 'subscribe' with the granted QoS of the packet's
 * subscriptions just before that call, in the same tick, so the stream is paired with them
 * here; each message gets the highest QoS granted to a new subscription matching it (one copy
 * at the maximum, as for live messages).
 */
export function retainedAtGrantedQoS(broker: NodeJS.EventEmitter, persistence: { createRetainedStreamCombi(patterns: string[]): Readable }): void {
  let granted: Granted | undefined;
  broker.on('subscribe', (subs: Granted) => {
    granted = subs;
    process.nextTick(() => (granted = undefined));
  });
  const open = persistence.createRetainedStreamCombi.bind(persistence);
  persistence.createRetainedStreamCombi = (patterns: string[]) => {
    const stream = open(patterns);
    const repeated = granted?.[RETAINED_QOS];
    const subs = granted?.filter((s) => s.qos < 0x80 && patterns.includes(s.topic)).map((s) => ({ topic: s.topic, qos: repeated?.get(s.topic) ?? s.qos })) ?? patterns.map((topic) => ({ topic, qos: 2 }));
    granted = undefined;
    const lower = new Transform({
      objectMode: true,
      transform(packet: Packet, _enc, cb) {
        let qos = -1;
        for (const s of subs) if (s.qos > qos && filterMatches(s.topic, packet.topic)) qos = s.qos;
        // none matches: a "$…" topic under a filter starting with a wildcard, which aedes' retained
        // store matches but must not (MQTT-4.7.2-1)
        if (qos < 0) return cb();
        cb(null, qos < packet.qos ? { ...packet, qos } : packet);
      },
    });
    stream.on('error', (err) => lower.destroy(err));
    return stream.pipe(lower);
  };
}

/** Size of the PUBLISH on the wire in MQTT 5 (only computed for clients that set a maximum). */
function wireBytes(packet: Packet): number {
  try {
    return mqttPacket.generate({ ...packet, cmd: 'publish', messageId: packet.qos > 0 ? (packet.messageId ?? 1) : undefined } as never, { protocolVersion: 5 }).length;
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
}
