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
//                          subscriptions (capped by the publish's, MQTT-3.3.4-2/-8) and, in
//                          MQTT 5, every matching Subscription Identifier (MQTT-3.3.4-4).
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
import mqttPacket from 'mqtt-packet';
import type { Logger } from '../../host/logging.js';
import type { Counter } from '../../host/metrics/registry.js';
import { ERRORS } from '../../host/errors/codes.js';
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
  conn: { destroy(): void; readonly writableLength: number; on(event: 'drain', fn: () => void): unknown };
}

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
  private readonly recent: string[] = [];
  private readonly recentSet = new Set<string>();
  private readonly aliases = new Map<string, number>();
  /** Queued messages (offline replay) counted in `inflight` before aedes forwards them. */
  private readonly reserved = new Set<string>();
  private readonly origQoS: Deliver;
  private readonly orig0: Deliver;
  private closed = false;
  private windowWaiters: Array<() => void> = [];

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

  private get windowMax(): number {
    return this.limits.v5 ? this.limits.receiveMaximum : Number.MAX_SAFE_INTEGER;
  }

  private deliver(packet: Packet, cb: () => void, qosPath: boolean): void {
    // a shared-subscription delivery (index.ts) is its own message: its QoS and identifier are its subscription's
    const live = typeof packet.brokerId === 'string' && typeof packet.brokerCounter === 'number' && packet.sharedDelivery !== true;
    if (live) {
      const key = `${packet.brokerId}\u0000${packet.brokerCounter}`;
      if (this.recentSet.has(key)) {
        setImmediate(cb);
        return;
      }
      this.recentSet.add(key);
      this.recent.push(key);
      if (this.recent.length > RECENT_MAX) this.recentSet.delete(this.recent.shift()!);
      this.merge(packet);
    }
    if (!qosPath || packet.qos === 0) {
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
    if (this.queue.length > 0 || this.inflight >= this.windowMax || this.stalled()) {
      if (this.queue.length >= this.shared.options.deliveryQueueMax) {
        this.overflow();
        setImmediate(cb);
        return;
      }
      this.queue.push([packet, this.origQoS]);
      // the message is ours now (bounded queue); mqemitter must not wait on one slow client
      setImmediate(cb);
      return;
    }
    this.origQoS(packet, cb);
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
    const key = typeof packet.brokerId === 'string' ? `${packet.brokerId}\u0000${packet.brokerCounter}` : undefined;
    const wasReserved = key !== undefined && this.reserved.delete(key);
    if (packet.messageExpiry !== undefined) {
      const leftMs = packet.messageExpiry - Date.now();
      if (leftMs <= 0) {
        if (wasReserved) this.release();
        return this.drop('expired', packet);
      }
      if (this.limits.v5) packet = { ...packet, properties: { ...packet.properties, messageExpiryInterval: Math.ceil(leftMs / 1000) } };
    }
    if (this.limits.v5 && this.limits.maximumPacketSize > 0 && wireBytes(packet) > this.limits.maximumPacketSize) {
      if (wasReserved) this.release();
      return this.drop('packet-too-large', packet);
    }
    // aedes then lowers the QoS to that of a subscription naming this exact topic
    const exact = this.client.subscriptions[packet.topic];
    const qos = exact && exact.qos < packet.qos ? exact.qos : packet.qos;
    if (qos > 0 && !wasReserved) this.inflight++;
    if (this.limits.v5 && this.limits.topicAliasMaximum > 0 && (qos === 0 || this.client.clean)) packet = this.alias(packet);
    return packet;
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
      this.reserved.add(`${packet.brokerId}\u0000${packet.brokerCounter}`);
      this.inflight++;
    }
  }

  /** The replayed message was dropped before being forwarded (expired, session cleaned). */
  unreserve(packet: { brokerId?: string | null; brokerCounter?: number }): void {
    if (packet.brokerId && this.reserved.delete(`${packet.brokerId}\u0000${packet.brokerCounter}`)) this.release();
  }

  private overflow(): void {
    if (this.closed) return;
    this.shared.dropped.inc({ reason: 'slow-client' }, this.queue.length + 1);
    this.shared.logger.warn({ clientId: this.client.id, deliveryQueueMax: this.shared.options.deliveryQueueMax, receiveMaximum: this.limits.receiveMaximum }, 'mqtt: client does not acknowledge its deliveries and its queue is full (deliveryQueueMax); disconnected');
    this.close();
    // a persistent session keeps its stored copies and gets them on reconnect
    if (this.limits.v5) this.client.disconnect({ reasonCode: ERRORS.LIMIT_EXCEEDED.mqtt });
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

/** Size of the PUBLISH on the wire in MQTT 5 (only computed for clients that set a maximum). */
function wireBytes(packet: Packet): number {
  try {
    return mqttPacket.generate({ ...packet, cmd: 'publish', messageId: packet.qos > 0 ? (packet.messageId ?? 1) : undefined } as never, { protocolVersion: 5 }).length;
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
}
