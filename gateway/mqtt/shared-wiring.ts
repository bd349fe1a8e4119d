// Each MQTT connection's side of shared subscriptions (`$share/{group}/{filter}`): its
// `$share/` filters are hidden from aedes on SUBSCRIBE and its CONNACK / SUBACK rewritten
// (share-adapter.ts); with the feature on, the connection is also a member of the groups in
// shared-subscriptions.ts, whose QoS 1/2 deliveries its PUBACK / PUBCOMP settle.
//
// This part owns what the gateway keeps per connection and per packet for that: the member of
// each client, the SUBACK code of each refused shared subscription, the settle-on-drop callback
// of each pending delivery, and the ids given to deliveries a persistent session tracks.
import type { Duplex } from 'node:stream';
import type { Counter } from '../../host/metrics/registry.js';
import type { MqttAccess } from './auth.js';
import type { AedesClientInternals, ConnectionGuard } from './connection.js';
import { headersToProperties } from './headers.js';
import type { AedesPacket, LogPersistence, Sub } from './persistence.js';
import { hideShare, isHiddenShare, onPacketWrite, type WrittenPacket } from './share-adapter.js';
import { isSharedFilter, parseSharedFilter, SUBACK, type SharedDelivery, type SharedMember, type SharedSubscriptions } from './shared-subscriptions.js';

export type AedesClient = AedesClientInternals & { id: string; clean: boolean; conn: Duplex; subscriptions: Record<string, unknown> };
/** aedes 2 client internals the shared-subscription wiring uses (lib/client.js, lib/qos-packet.js). */
export interface SharedClientInternals {
  version: number | null;
  closed: boolean;
  _nextId: number;
  _parser: NodeJS.EventEmitter;
  deliver0(packet: object, cb: () => void): void;
  deliverQoS(packet: object, cb: () => void): void;
}
/** A SUBSCRIBE as aedes' parser hands it over (aedes dedupes `subscriptions` in place, same order as the SUBACK). */
interface SubscribePacket {
  cmd: string;
  messageId?: number;
  subscriptions?: Array<{ topic: string; qos: number }>;
}
/** A member's QoS 1/2 deliveries waiting for PUBACK / PUBCOMP, by packet id. */
type PendingAcks = Map<number, { acked: (err?: Error | null) => void; packet: AedesPacket }>;

/** What the shared-subscription ACL check needs of the gateway. */
export interface SharedWiringDeps {
  subs: SharedSubscriptions | undefined;
  persistence: LogPersistence;
  access: MqttAccess;
  hostOf: (client: object) => string;
  /** The user name each authenticated client connected with. */
  users: WeakMap<object, string>;
  denied: Counter;
  rareLog: (kind: string, fields: Record<string, unknown>, msg: string) => void;
  gatewayId: string;
}

/** `$share/` entries and placeholders (share-adapter.ts) are no filters for the tail readers. */
export const notShared = (f: string): boolean => !isSharedFilter(f) && !isHiddenShare(f);

export class SharedWiring {
  /** Each connection as a shared-subscription member (built in `wireConnection`). */
  private readonly members = new WeakMap<object, SharedMember>();
  /** SUBACK reason code of each refused shared subscription object (aedes itself would say 0x87 / 0x80). */
  private readonly shareCodes = new WeakMap<object, number>();
  /** Pending deliveries to shared members, for the ones `authorizeForward` drops (expired, too large): done, not redelivered. */
  private readonly sharedDropped = new WeakMap<object, () => void>();
  private readonly brokerId: string;
  private counter = 0;

  constructor(private readonly deps: SharedWiringDeps) {
    this.brokerId = `${deps.gatewayId}/shared`;
  }

  /**
   * A `$share/{group}/{filter}` subscription (renamed to a placeholder, share-adapter.ts): the
   * ACL applies to the filter the member reads; the shared-subscription module grants it or
   * names the reason code, which the SUBACK rewrite puts in place of aedes' 0x87 / 0x80.
   */
  authorize(client: AedesClient, sub: Sub, topic: string, done: (err: Error | null, sub?: Sub | null) => void): void {
    const { access, users, subs, rareLog } = this.deps;
    const v5 = (client as AedesClient & SharedClientInternals).version === 5;
    const refuse = (code: number) => {
      this.shareCodes.set(sub, code);
      done(null, null);
    };
    const share = parseSharedFilter(topic);
    if ('filter' in share && !access.canSubscribe(users.get(client), client.id, share.filter, this.deps.hostOf(client), share.group)) {
      this.deps.denied.inc({ what: 'subscribe' });
      rareLog('deny-sub', { clientId: client.id, filter: topic }, `mqtt: SUBSCRIBE refused by ACL (SUBACK ${v5 ? '0x87' : '0x80'})`);
      return refuse(v5 ? 0x87 : SUBACK.UNSPECIFIED);
    }
    const member = this.members.get(client);
    if (!subs || !member) {
      rareLog('share-off', { clientId: client.id, filter: topic }, `mqtt: shared SUBSCRIBE refused: shared subscriptions are off (SUBACK ${v5 ? '0x9E' : '0x80'})`);
      return refuse(v5 ? SUBACK.SHARED_NOT_SUPPORTED : SUBACK.UNSPECIFIED);
    }
    const s = sub as Sub & { subscriptionIdentifier?: number };
    const code = subs.subscribeTopic(member, topic, sub.qos as 0 | 1 | 2, s.subscriptionIdentifier);
    if (code >= 0x80) return refuse(code);
    // granted: aedes keeps an inert `$share/...` entry under its real name, so a persistent
    // session stores and restores the membership
    sub.topic = topic;
    done(null, sub);
  }

  /** aedes' 'unsubscribe' event: a live connection leaves the groups of its `$share/` filters. */
  unsubscribed(topics: string[], client: AedesClient): void {
    if (client.closed) return; // the connection's close ends every membership
    for (const t of topics) {
      const p = isSharedFilter(t) ? parseSharedFilter(t) : undefined;
      if (p && 'group' in p) void this.deps.subs!.unsubscribe(this.members.get(client)!, p.group, p.filter);
    }
  }

  /** `authorizeForward` dropped this packet (expired, too large): a shared delivery is done, no ack will come. */
  dropped(packet: object): void {
    this.sharedDropped.get(packet)?.();
  }

  /**
   * Shared subscriptions: every connection gets its `$share/...` filters past aedes (share-adapter.ts)
   * and its CONNACK / SUBACK rewritten; with the feature on, it is also a member whose
   * deliveries PUBACK / PUBCOMP settle.
   */
  wireConnection(client: AedesClient, conn: Duplex, remote: string, guard: ConnectionGuard): void {
    const c = client as AedesClient & SharedClientInternals;
    this.rewriteShareFilters(c, conn);
    const subs = this.deps.subs;
    if (!subs) return;
    const acks: PendingAcks = new Map();
    const member = this.memberOf(c, remote, guard, acks);
    this.members.set(client, member);
    c._parser.on('packet', (p: { cmd: string; messageId?: number }) => {
      if (p.cmd === 'puback' || p.cmd === 'pubcomp') {
        const entry = p.messageId === undefined ? undefined : acks.get(p.messageId);
        if (entry) {
          acks.delete(p.messageId!);
          entry.acked(null);
        }
      }
    });
    conn.once('close', () => {
      const unacked = [...acks.values()];
      acks.clear();
      for (const e of unacked) e.acked(new Error('connection closed'));
      if (!c.clean) void this.deps.persistence.dropSharedDeliveries(c.id, unacked.map((e) => e.packet)).catch(() => undefined);
      void subs.disconnected(member);
    });
  }

  /** Hides `$share/` filters of a SUBSCRIBE from aedes and rewrites the CONNACK and SUBACK it writes. */
  private rewriteShareFilters(c: AedesClient & SharedClientInternals, conn: Duplex): void {
    /** SUBSCRIBEs holding a `$share/` filter, until their SUBACK is written (bounded by the 65,535 packet ids). */
    const subscribes = new Map<number, SubscribePacket>();
    // before aedes' own listener: see share-adapter.ts
    c._parser.prependListener('packet', (p: SubscribePacket) => {
      if (p.cmd !== 'subscribe' || !p.subscriptions || p.messageId === undefined) return;
      let any = false;
      for (const s of p.subscriptions) {
        if (!isSharedFilter(s.topic)) continue;
        hideShare(s);
        any = true;
      }
      if (any) subscribes.set(p.messageId, p);
    });
    onPacketWrite(conn, (p: WrittenPacket) => {
      if (p.cmd === 'connack') {
        // MQTT 5 §3.2.2.3.18: aedes says 0 (not available); with the feature on it is
        if (this.deps.subs && p.properties?.sharedSubscriptionAvailable === false) p.properties.sharedSubscriptionAvailable = true;
      } else if (p.cmd === 'suback' && p.messageId !== undefined && p.granted) {
        const sp = subscribes.get(p.messageId);
        if (!sp) return;
        subscribes.delete(p.messageId);
        sp.subscriptions!.forEach((s, i) => {
          const code = this.shareCodes.get(s);
          if (code !== undefined && i < p.granted!.length) p.granted![i] = code;
        });
      }
    });
  }

  /** The connection as a group member: its identity, its Receive Maximum, and how a delivery reaches it. */
  private memberOf(c: AedesClient & SharedClientInternals, remote: string, guard: ConnectionGuard, acks: PendingAcks): SharedMember {
    return {
      get clientId() {
        return c.id;
      },
      get protocolVersion() {
        return c.version ?? 4;
      },
      clientHost: remote,
      get receiveMaximum() {
        return guard.v5 ? guard.receiveMaximum : undefined;
      },
      deliver: (p, acked) => this.deliver(c, guard, acks, p, acked),
    };
  }

  /** One group delivery to a member: QoS 0 at once, QoS 1/2 with a packet id from aedes' counter, settled by its ack. */
  private deliver(c: AedesClient & SharedClientInternals, guard: ConnectionGuard, acks: PendingAcks, p: SharedDelivery, acked: (err?: Error | null) => void): void {
    const v5 = guard.v5;
    // the record's MQTT 5 properties (headers.ts) and the subscription's identifier
    const { properties, messageExpiry } = headersToProperties(p.headers);
    const props = v5 ? (p.subscriptionId !== undefined ? { ...properties, subscriptionIdentifier: p.subscriptionId } : properties) : undefined;
    const packet: AedesPacket & { messageId?: number; sharedDelivery: true } = { cmd: 'publish', topic: p.topic, payload: p.payload, qos: p.qos, retain: false, dup: false, sharedDelivery: true };
    if (props) packet.properties = props;
    if (messageExpiry !== undefined) packet.messageExpiry = messageExpiry;
    // aedes lowers the QoS to a plain subscription of the same topic name: follow it, or the ack never comes
    const own = c.subscriptions[p.topic] as { qos?: number } | undefined;
    const qos = (own && (own.qos ?? 0) < p.qos ? (own.qos ?? 0) : p.qos) as 0 | 1 | 2;
    if (qos === 0 || c.closed) {
      packet.qos = 0;
      return c.deliver0(packet, () => acked(c.closed ? new Error('connection closed') : null));
    }
    packet.qos = qos;
    // the packet id comes from aedes' own counter for this client, as its QoSPacket does
    const id = c._nextId;
    c._nextId = id >= 65535 ? 1 : id + 1;
    packet.messageId = id;
    acks.get(id)?.acked(new Error('packet id reused'));
    acks.set(id, { acked, packet });
    this.sharedDropped.set(packet, () => {
      if (acks.get(id)?.packet !== packet) return;
      acks.delete(id);
      acked(null);
    });
    // through the client's Outbound (outbound.ts): its Receive Maximum window counts
    // shared and plain deliveries together
    if (c.clean) return c.deliverQoS(packet, () => undefined);
    // a persistent session: aedes looks the delivery up in the session on PUBACK/PUBREC,
    // so it is put there, in memory only (the group redelivers it, not the session)
    packet.brokerId = this.brokerId;
    packet.brokerCounter = ++this.counter;
    this.deps.persistence.trackSharedDelivery(c.id, packet).then(
      () => c.deliverQoS(packet, () => undefined),
      () => c.deliverQoS(packet, () => undefined),
    );
  }
}
