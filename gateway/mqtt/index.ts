// The MQTT gateway: aedes on TCP and on WebSocket, over the broker's one append path and
// one read path.
//
// A publish flows: socket → connection guard (strict MQTT 3.1.1 / 5 checks, flow control) →
// aedes parser → aedes' publish handler → `authorizePublish` (ACL, route, append) → only
// when the append has met the topic's flush policy does the callback return, and only then
// does aedes write PUBACK (QoS 1) or store the packet and write PUBREC (QoS 2) — aedes
// 2's handlers/publish.js runs `authorizePublish` before `enqueuePublish`, which acks.
// A refused publish is answered by the guard: MQTT 5 gets a PUBACK/PUBREC reason code from
// the error table (or DISCONNECT for QoS 0), MQTT 3.1.1 a logged close.
//
// Deliveries flow back through `Outbound` (outbound.ts), one per client: one copy per
// message for overlapping subscriptions, the client's Receive Maximum, Maximum Packet Size,
// Topic Aliases and message expiry.
// Shared subscriptions (`$share/{group}/{filter}`) are consumer-group members
// (shared-subscriptions.ts), wired per connection in shared-wiring.ts; share-adapter.ts gets
// their filters past aedes' own refusal and rewrites the CONNACK and SUBACK for them.
// QoS 0 is handed to the batcher and the callback returns at once (unless the
// connection's or the gateway's pending bytes are over their bound: then it waits, which
// stops aedes reading the socket).
// first: before aedes and mqtt-packet load (their disabled debug loggers become no-ops, and the
// parser keeps its bytes in a plain buffer list: no readable-stream)
import './quiet-debug.js';
import './parser-buffer-list.js';
import { randomUUID } from 'node:crypto';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { coalesceWrites, peerPrincipal, ServerTls } from '../../host/security/tls.js';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { Aedes } from 'aedes';
import mqttPacket from 'mqtt-packet';
import type { BrokerApi, RecordInput } from '../../host/broker/api.js';
import type { Logger } from '../../host/logging.js';
import { LATENCY_BUCKETS_MS, type MetricsRegistry } from '../../host/metrics/registry.js';
import { AppendBatcher, RECORD_HEAP_BYTES } from './append.js';
import { Authorizer, MqttAccess } from './auth.js';
import { addressOf as hostOfRemote, doorSecurity, type DoorSecurity, type Principal } from '../../host/security/index.js';
import { ConnectionGuard, DeliveryGate, refuseConnection, type GuardShared } from './connection.js';
import { resolveMqttOptions, type MqttGatewayOptions } from './options.js';
import type { Listener } from '../../host/config/listener.js';
import { LogPersistence, type AedesPacket, type PersistenceCluster, type Sub } from './persistence.js';
import { Router } from './routes.js';
import { ORIGIN_HEADER, TailManager, TOPIC_HEADER } from './tail.js';
import { BrokerError, mqttAckReason } from '../../host/errors/index.js';
import { isUtf8 } from 'node:buffer';
import { propertiesToHeaders } from './headers.js';
import { Outbound, retainedAtGrantedQoS, type OutboundClient } from './outbound.js';
import type { PublishRefusal } from './guard.js';
import { SharedSubscriptions, type SharedGroupApi } from './shared-subscriptions.js';
import { revealShare } from './share-adapter.js';
import { notShared, SharedWiring, type AedesClient } from './shared-wiring.js';
import { LazyWsTransport, WS_TRANSPORT_ENGINE } from './ws-transport.js';

export { defaultMqttGatewayOptions, resolveMqttOptions, validateMqttOptions, type MqttGatewayOptions, type MqttRoute, type MqttReverseRoute, type MqttUser } from './options.js';
export { hashPassword, hashPasswordSync, verifyPassword } from './auth.js';

export type { Listener } from '../../host/config/listener.js';

export interface MqttGatewayDeps {
  broker: BrokerApi;
  logger: Logger;
  metrics: MetricsRegistry;
  /** The group coordinator: `$share/{group}/{filter}` subscriptions join its groups (none → refused). */
  groups?: SharedGroupApi;
  /** The node's one authorizer, login limiter and user store (host/security/doors.ts); default: authorization off, no users. */
  security?: DoorSecurity;
  /** The cluster this node votes in (absent: a single node): retained messages are then replicated and followed (persistence.ts). */
  cluster?: PersistenceCluster;
}

/** What tests and the bench need beyond the listeners. */
export interface MqttGateway {
  listeners: Listener[];
  aedes: Aedes;
  persistence: LogPersistence;
  batcher: AppendBatcher;
  tails: TailManager;
  /** Shared subscriptions (undefined without a coordinator or with sharedSubscriptions false). */
  shared: SharedSubscriptions | undefined;
  /** The guard of a connected client (tests, diagnostics). */
  guardOf(clientId: string): ConnectionGuard | undefined;
  /** Closes every listener, then aedes, the readers, and flushes pending appends. */
  close(): Promise<void>;
}

const QOS_BYTES = [Buffer.from('0'), Buffer.from('1'), Buffer.from('2')];
const QOS_LABELS = [{ qos: '0' }, { qos: '1' }, { qos: '2' }]; // a label object per publish would be garbage
const TRUE_BYTES = Buffer.from('true');
const FALSE_BYTES = Buffer.from('false');
const LOG_INTERVAL_MS = 5_000; // at most one line per kind of repeated event per 5 s

/** A session handover waits at most this long for aedes to close the old connection (a cluster). */
const CLOSE_WAIT_MS = 5_000;

export async function startMqttGateway(deps: MqttGatewayDeps, options: MqttGatewayOptions): Promise<Listener[]> {
  return (await openMqttGateway(deps, options)).listeners;
}

/**
 * Opens the gateway in named steps (the order matters: aedes' event listeners run in the order
 * they are added, sessions expired while the broker was down are wiped before the listeners
 * bind, and wills cut by the previous shutdown are published before any client connects).
 */
export async function openMqttGateway(deps: MqttGatewayDeps, options: Partial<MqttGatewayOptions>): Promise<MqttGateway> {
  const gateway = new AedesGateway(deps, resolveMqttOptions(options));
  await gateway.createAedes();
  gateway.wireReverseDelivery();
  gateway.wireDeliveryEvents();
  await gateway.wireSessionExpiry();
  gateway.wireDiagnostics();
  await gateway.publishOrphanWills();
  await gateway.startListeners();
  return gateway.view();
}

/**
 * The state the gateway's aedes hooks, events and listeners share, with one method per concern.
 * Built by `openMqttGateway`; tests and the bench see it through the `MqttGateway` view.
 */
class AedesGateway {
  private readonly logger: Logger;
  private readonly broker: BrokerApi;
  private readonly gatewayId = randomUUID();
  private readonly originBytes: Buffer;
  private readonly router: Router;
  private readonly access: MqttAccess;
  /** The stream topic each message in flight was stored in (or read from), keyed by its payload, which aedes' packet copies keep. */
  private readonly streamTopicOf = new WeakMap<object, string>();
  private readonly sharedSubs: SharedSubscriptions | undefined;
  private readonly sharing: SharedWiring;
  private readonly metrics: ReturnType<typeof gatewayMetrics>;
  private readonly batcher: AppendBatcher;
  private readonly persistence: LogPersistence;
  private readonly guards = new WeakMap<object, ConnectionGuard>();
  /** The user name each authenticated client connected with. */
  private readonly users = new WeakMap<object, string>();
  private readonly lastLog = new Map<string, number>();
  private readonly guardShared: GuardShared;
  private readonly outbounds = new WeakMap<object, Outbound>();
  /** Set when the gateway closes: disconnects from then on are ours, not the clients'. */
  private closingGateway = false;
  /**
   * A client's QoS 1/2 publishes complete in the order they came (MQTT 3.1.1 §4.6, MQTT-4.6.0-2/-3:
   * acknowledged, and passed on to subscribers, in order): a retained one also waits for the
   * retained store, so a later one could otherwise overtake it. Bounded by the client's QoS 1/2
   * publishes in flight (inflightMax).
   */
  private readonly completions = new WeakMap<object, Array<{ settled: boolean; err: Error | null; done: (err: Error | null) => void }>>();
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  private aedes!: Aedes;
  private events!: NodeJS.EventEmitter;
  private tails!: TailManager;
  private open = 0;
  private readonly conns = new Set<Duplex>();
  private readonly listeners: Listener[] = [];
  private readonly servers: Array<NetServer | HttpServer> = [];
  private wsTransport: LazyWsTransport | undefined;
  private tls: ServerTls | null = null;
  private closing: Promise<void> | undefined;

  /** A cluster node: sessions are handed over between nodes (persistence.ts). */
  private readonly clustered: boolean;

  constructor(
    deps: MqttGatewayDeps,
    private readonly o: MqttGatewayOptions,
  ) {
    this.logger = deps.logger.child({ component: 'mqtt' });
    this.broker = deps.broker;
    this.clustered = deps.cluster !== undefined;
    this.originBytes = Buffer.from(this.gatewayId);
    this.router = new Router(o.routes, o.defaultRoute, o.reverseRoutes);
    const security = deps.security ?? doorSecurity(undefined, () => undefined);
    this.access = new MqttAccess({ security, legacy: o.auth.enabled ? new Authorizer(o.auth.users) : undefined, required: o.auth.enabled, router: this.router });
    this.sharedSubs = deps.groups && o.sharedSubscriptions ? openSharedSubscriptions(deps, deps.groups, this.router, this.logger, o) : undefined;
    this.metrics = gatewayMetrics(deps.metrics);
    this.batcher = new AppendBatcher(this.broker, this.logger, { lingerMs: o.lingerMs, commitLingerMs: o.commitLingerMs, appendsInFlightMax: o.appendsInFlightMax, batchBytesMax: o.batchBytesMax, batchRecordsMax: o.batchRecordsMax });
    this.persistence = new LogPersistence(this.broker, this.batcher, this.logger, o, deps.metrics, deps.cluster);
    this.persistence.gateOf = (client) => this.outbounds.get(client);
    this.sharing = new SharedWiring({ subs: this.sharedSubs, persistence: this.persistence, access: this.access, hostOf: (client) => this.hostOf(client), users: this.users, denied: this.metrics.denied, rareLog: this.rareLog, gatewayId: this.gatewayId });
    this.guardShared = { options: o, logger: this.logger, batcher: this.batcher, violations: this.metrics.violations, refused: this.metrics.publishRefused, holds: this.metrics.holds, rareLog: this.rareLog, totalWaiters: new Set(), deliveries: new DeliveryGate(o.deliveriesQueuedMax) };
    this.batcher.onDrain(() => {
      if (this.guardShared.totalWaiters.size === 0 || this.batcher.pendingMemoryBytes >= o.pendingBytesTotalMax) return;
      for (const g of [...this.guardShared.totalWaiters]) g.wakeTotal();
    });
  }

  /** At most one line per kind of repeated event per LOG_INTERVAL_MS. */
  private readonly rareLog = (kind: string, fields: Record<string, unknown>, msg: string): void => {
    const now = Date.now();
    if (now - (this.lastLog.get(kind) ?? 0) < LOG_INTERVAL_MS) return;
    if (this.lastLog.size >= 1_000) this.lastLog.clear(); // kinds include rule names only; bounded anyway
    this.lastLog.set(kind, now);
    this.logger.warn(fields, msg);
  };

  // --- aedes hooks ------------------------------------------------------------------------------

  /** The source address of a client (ACL host, login limiter). */
  private hostOf(client: object): string {
    const guard = this.guards.get(client);
    if (guard === undefined) return '*';
    // asked for every publish and every delivery (ACL checks): parsed once per connection
    return (guard.host ??= hostOfRemote(guard.remote));
  }

  /** The principal of the client's verified certificate (mutual TLS, over TCP or WebSocket), or null. */
  private certificateOf(client: AedesClient): Principal | null {
    const c = client as AedesClient & { conn?: unknown; req?: IncomingMessage };
    // By its `encrypted` flag, not instanceof: node:tls is loaded only when a door has TLS (issue 14).
    const isTls = (x: unknown): x is TLSSocket => (x as { encrypted?: boolean } | undefined)?.encrypted === true;
    const socket = isTls(c.conn) ? c.conn : isTls(c.req?.socket) ? c.req.socket : undefined;
    return socket ? peerPrincipal(socket) : null;
  }

  private authenticate(client: AedesClient, username: string | undefined, password: Buffer | undefined, done: (err: (Error & { returnCode?: number }) | null, ok: boolean | null) => void): void {
    const address = this.hostOf(client);
    const v5 = (client as AedesClient & { version?: number }).version === 5;
    this.access.login(username, password, address, v5, this.certificateOf(client)).then(
      (r) => {
        // a will is a publish made later, maybe after a restart that forgot who made it:
        // checked now, as Mosquitto does (WRITE on its stream topic; refused CONNACK 5 / 0x87)
        const will = (client as AedesClient & { _will?: { topic: string } })._will;
        if (r.ok && will && !this.access.canPublish(r.username, client.id, will.topic, this.router.forward(will.topic, client.id)?.topic, address)) {
          r = { ok: false, returnCode: 5, reason: `not authorised to publish the will to ${will.topic}`, counted: false, rateLimited: false };
        }
        if (r.ok) {
          if (r.username !== undefined) this.users.set(client, r.username);
          if (r.username !== undefined && this.o.auth.enabled) this.metrics.logins.inc();
          return done(null, true);
        }
        this.metrics.denied.inc({ what: r.rateLimited ? 'connect-rate-limited' : 'connect' });
        if (r.counted) this.metrics.loginFailures.inc();
        this.rareLog(`deny-connect-${r.rateLimited}`, { clientId: client.id, username, remote: address }, `mqtt: CONNECT refused: ${r.reason} (CONNACK ${v5 ? `0x${(r.returnCode === 4 ? 0x86 : 0x87).toString(16)}` : r.returnCode})`);
        done(Object.assign(new Error(r.reason), { returnCode: r.returnCode }), false);
      },
      (err: Error) => done(Object.assign(err, { returnCode: 3 }), false),
    );
  }

  private authorizeSubscribe(client: AedesClient, sub: Sub, done: (err: Error | null, sub?: Sub | null) => void): void {
    const shareTopic = revealShare(sub);
    if (shareTopic !== undefined) return this.sharing.authorize(client, sub, shareTopic, done);
    if (!this.access.canSubscribe(this.users.get(client), client.id, sub.topic, this.hostOf(client))) {
      this.metrics.denied.inc({ what: 'subscribe' });
      this.rareLog('deny-sub', { clientId: client.id, filter: sub.topic }, 'mqtt: SUBSCRIBE refused by ACL (SUBACK 0x80)');
      return done(null, null);
    }
    done(null, sub);
  }

  /**
   * Answers a refused publish. A client's publish: the guard counts, logs and answers (MQTT 5
   * reason code; the packet is marked so aedes neither acks nor publishes it). A will (no
   * connection): counted and logged, not published.
   */
  private refuse(client: AedesClient | null, packet: AedesPacket, r: PublishRefusal, done: (err?: Error | null) => void): void {
    const guard = client ? this.guards.get(client) : undefined;
    if (!guard) {
      this.metrics.publishRefused.inc({ rule: r.rule });
      this.rareLog(`refused-${r.rule}`, { rule: r.rule, clientId: packet.clientId, topic: packet.topic }, `mqtt: will refused: ${r.message} (${r.rule}); not published`);
      return done(new Error(r.message));
    }
    if (guard.v5) {
      guard.refusePublish(r, packet.qos, packet.messageId ?? 0);
      packet._notAuthorized = true;
      return done(null);
    }
    // 3.1.1: aedes closes the connection on the error
    guard.refusePublish(r, packet.qos, packet.messageId ?? 0, false);
    done(new Error(r.message));
  }

  /** A publish refused before routing ($SYS, ACL, payload format, retained limit), or undefined. */
  private publishRefusal(client: AedesClient | null, packet: AedesPacket, clientId: string, target: RouteTarget | undefined): PublishRefusal | undefined {
    const topic = packet.topic;
    // $SYS/ is the server's (MQTT 4.7.2); other $-topics are ordinary topics, as in Mosquitto,
    // which wildcards at the first level do not match (MQTT-4.7.2-1, aedes enforces it)
    if (topic.startsWith('$SYS/') || topic === '$SYS') return { rule: 'sys-topic-reserved', message: `topics under $SYS are the server's: ${topic}`, error: 'NOT_AUTHORIZED' };
    if (client && !this.access.canPublish(this.users.get(client), clientId, topic, target?.topic, this.hostOf(client))) {
      this.metrics.denied.inc({ what: 'publish' });
      return { rule: 'acl', message: `not authorised to publish to ${topic}`, error: 'NOT_AUTHORIZED' };
    }
    const props = packet.properties as Record<string, unknown> | undefined;
    if (props?.payloadFormatIndicator === 1 || props?.payloadFormatIndicator === true) {
      // MQTT 5 §3.3.2.3.2: the server may check that a payload said to be UTF-8 is; 0x99
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      if (!isUtf8(payload)) return { rule: 'payload-format-invalid', message: 'payload format indicator says UTF-8 but the payload is not', error: 'INVALID_RECORD' };
    }
    if (packet.retain && client && this.guards.get(client)?.v5 && !this.persistence.canRetain(topic, packet.payload)) {
      // MQTT 5 can say why (0x97); 3.1.1 keeps the publish and logs that it was not retained
      return { rule: 'retained-messages-max', message: `retainedMessagesMax (${this.o.retainedMessagesMax}) reached`, error: 'LIMIT_EXCEEDED' };
    }
    return undefined;
  }

  private authorizePublish(client: AedesClient | null, packet: AedesPacket, done: (err?: Error | null) => void): void {
    const topic = packet.topic;
    const clientId = client?.id ?? packet.clientId ?? '';
    // routed once: the ACL check and the append both use this target
    const target = this.router.forward(topic, clientId);
    const refusal = this.publishRefusal(client, packet, clientId, target);
    if (refusal) return this.refuse(client, packet, refusal, done);
    this.metrics.publishes.inc(QOS_LABELS[packet.qos]);
    this.streamTopicOf.set(packet.payload as object, target?.topic ?? topic);
    if (!target) {
      this.metrics.unrouted.inc();
      if (this.o.unrouted === 'disconnect') return this.refuse(client, packet, { rule: 'unrouted', message: `no route for ${topic} (unrouted: disconnect)`, error: 'UNKNOWN_TOPIC_OR_PARTITION' }, done);
      this.rareLog('unrouted', { clientId, topic }, 'mqtt: PUBLISH matches no route: delivered to MQTT subscribers only, not stored (unrouted: mqtt-only)');
      return done(null);
    }
    const stored = (err?: Error | null) => this.stored(client, packet, target, clientId, err, done);
    if (packet.qos === 2 && client) {
      // a retransmitted QoS 2 publish (same packet id, before PUBREL) is already stored
      this.persistence.incomingGetPacket(client, packet).then(
        () => done(null),
        () => this.appendAndRetain(client, packet, target, clientId, stored),
      );
      return;
    }
    this.appendAndRetain(client, packet, target, clientId, stored);
  }

  /** The answer to a publish once its append (and retained store) settled. */
  private stored(client: AedesClient | null, packet: AedesPacket, target: RouteTarget, clientId: string, err: Error | null | undefined, done: (err?: Error | null) => void): void {
    const topic = packet.topic;
    // a refusal that retrying cannot cure (an invalid or colliding stream topic) is answered,
    // not retried forever; a transient failure closes the connection so the client retransmits.
    // A full disk is answered too (MQTT 5: PUBACK/PUBREC 0x97 Quota exceeded): closing would
    // only make every device reconnect and resend in a loop until space returns.
    if (err instanceof BrokerError && err.code === 'INVALID_RECORD' && err.recordErrors) {
      // schema validation (host/schemas): MQTT 5 hears 0x99; 3.1.1 has no negative ack, so a
      // publish that was dead-lettered is acknowledged (and counted), else the connection closes
      if (err.deadLettered && client && !this.guards.get(client)?.v5) {
        this.metrics.publishRefused.inc({ rule: 'schema-invalid' });
        this.rareLog('refused-schema-invalid', { rule: 'schema-invalid', clientId, topic }, `mqtt: PUBLISH refused by schema validation and dead-lettered: ${err.message}`);
        return done(null);
      }
      return this.refuse(client, packet, { rule: 'schema-invalid', message: `${err.message} (stream topic ${target.topic})`, error: err.code }, done);
    }
    if (answeredRefusal(err)) {
      const rule = err.code === 'STORAGE_FULL' ? 'disk-full' : err.code === 'UPLINK_BACKLOG_FULL' ? 'uplink-backlog-full' : 'stream-topic-invalid';
      return this.refuse(client, packet, { rule, message: `${err.message} (stream topic ${target.topic})`, error: err.code }, done);
    }
    // MQTT 5 and a transient refusal (no in-sync quorum, no leader reached in a cluster, a
    // timeout): aedes would answer any error 0x87 Not authorized; the client hears the table's
    // reason instead (0x80 where the row's is not an acknowledgement's), keeps its connection
    // and may publish again. MQTT 3.1.1 has no negative ack: aedes closes, the client resends.
    if (err instanceof BrokerError && client && this.guards.get(client)?.v5) {
      return this.refuse(client, packet, { rule: 'append-unavailable', message: `${err.message} (stream topic ${target.topic})`, error: err.code, ackReason: mqttAckReason(err.code) }, done);
    }
    done(err);
  }

  /** Queues `done` behind the client's earlier QoS 1/2 publishes (see `completions`). */
  private inOrder(client: object, done: (err?: Error | null) => void): (err?: Error | null) => void {
    let queue = this.completions.get(client);
    if (!queue) this.completions.set(client, (queue = []));
    const entry = { settled: false, err: null as Error | null, done };
    queue.push(entry);
    return (err) => {
      entry.settled = true;
      entry.err = err ?? null;
      const q = queue!;
      while (q.length > 0 && q[0].settled) {
        const e = q.shift()!;
        e.done(e.err);
      }
    };
  }

  /**
   * Before a QoS 1/2 acknowledgement: the record is appended, a retained publish is stored as
   * retained, and the publish is queued for offline persistent sessions — all durable.
   */
  private appendAndRetain(client: AedesClient | null, packet: AedesPacket, target: RouteTarget, clientId: string, done: (err?: Error | null) => void): void {
    const persistence = this.persistence;
    if (packet.qos === 0) {
      // Started now, not awaited (QoS 0 promises no durability); aedes' own store call then
      // finds it started and emits at once, so the publisher's next message cannot overtake
      // this one while the retained append runs (MQTT-4.6.0-5). Stores stay in order per topic.
      if (packet.retain) persistence.storeRetainedBeforeAck(packet).catch((err: Error) => this.rareLog('qos0-retain-fail', { clientId, topic: packet.topic, err: err.message }, 'mqtt: QoS 0 retained message not stored'));
      return this.append(client, packet, target, clientId, done);
    }
    // the ids aedes gives the packet when it publishes it (aedes-packet keeps existing ones)
    const counters = this.aedes as unknown as { id: string; counter: number };
    packet.brokerId ??= counters.id;
    packet.brokerCounter ??= ++counters.counter;
    const finish = client ? this.inOrder(client, done) : done;
    const retained = packet.retain ? persistence.storeRetainedBeforeAck(packet) : undefined;
    const enqueued = persistence.enqueueBeforeAck(packet);
    // the common case, not retained and wanted by no persistent session: the append alone
    if (retained === undefined && enqueued === undefined) return this.append(client, packet, target, clientId, finish);
    let left = 1 + (retained ? 1 : 0) + (enqueued ? 1 : 0);
    let failed: Error | null = null;
    const all = (err?: Error | null) => {
      failed ??= err ?? null;
      if (--left === 0) finish(failed);
    };
    retained?.then(() => all(null), all);
    enqueued?.then(() => all(null), all);
    this.append(client, packet, target, clientId, all);
  }

  /** The record a publish is stored as: key from the route, the MQTT topic and properties as headers. */
  private recordOf(packet: AedesPacket, payload: Buffer, target: RouteTarget, clientId: string, guard: ConnectionGuard | undefined): RecordInput {
    const o = this.o;
    const last = guard?.lastRecordHeaders;
    const reusable = guard !== undefined && !packet.properties;
    if (reusable && last !== undefined && last.topic === packet.topic && last.qos === packet.qos && last.retain === packet.retain) {
      return { key: target.key === packet.topic ? last.topicBytes : Buffer.from(target.key), value: payload, headers: last.headers };
    }
    const headers: RecordInput['headers'] = [];
    // the key is most often the MQTT topic itself: encoded once, shared (records are not mutated)
    const topicBytes = Buffer.from(packet.topic);
    if (o.headers.topic) headers.push({ key: TOPIC_HEADER, value: topicBytes });
    if (o.headers.qos) headers.push({ key: 'mqtt.qos', value: QOS_BYTES[packet.qos] });
    if (o.headers.retain) headers.push({ key: 'mqtt.retain', value: packet.retain ? TRUE_BYTES : FALSE_BYTES });
    if (o.headers.clientId) headers.push({ key: 'mqtt.clientId', value: guard?.clientIdBytes ?? Buffer.from(clientId) });
    if (packet.properties) propertiesToHeaders(packet.properties as Record<string, unknown>, headers);
    headers.push({ key: ORIGIN_HEADER, value: this.originBytes });
    if (reusable) guard.lastRecordHeaders = { topic: packet.topic, qos: packet.qos, retain: packet.retain, topicBytes, headers };
    return { key: target.key === packet.topic ? topicBytes : Buffer.from(target.key), value: payload, headers };
  }

  private append(client: AedesClient | null, packet: AedesPacket, target: RouteTarget, clientId: string, done: (err?: Error | null) => void): void {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const guard = client ? this.guards.get(client) : undefined;
    const record = this.recordOf(packet, payload, target, clientId, guard);
    const bytes = payload.length + packet.topic.length * 2 + 96;
    // what this connection is charged: the record's heap as well (pendingBytesPerConnectionMax is memory)
    const charged = bytes + RECORD_HEAP_BYTES;
    const durable = packet.qos > 0;
    const startMs = durable ? performance.now() : 0;
    // The callback below lives until the append: it must not hold aedes' `done` (whose
    // closures keep the parsed packet, aedes' copy and their Buffers) or the packet once the
    // publish was answered — measured ~7 Buffers and ~2.5 contexts per waiting QoS 0 publish.
    // So it reaches them through `answer`, cleared when answered.
    let answer: ((err?: Error | null) => void) | null = done;
    const topic = packet.topic;
    const streamTopic = target.topic;
    if (guard) {
      guard.pendingBytes += charged;
      if (durable) guard.inflight++;
    }
    // A cluster: where a QoS 1/2 record landed, so a session's delivery positions can pass it
    // (persistence.ts). Taken from the append's answer, never computed before it: the topic may
    // not exist yet (the append creates it), and a keyless record's partition is the append's pick.
    const notePosition = durable && this.clustered;
    this.batcher.append(target.topic, target.partition, record, bytes, durable, (err, offset, partition) => {
      if (notePosition && !err && offset !== undefined && partition !== undefined && record.value) this.persistence.noteStreamPosition(record.value, streamTopic, partition, offset);
      if (guard) {
        guard.pendingBytes -= charged;
        if (durable) {
          guard.inflight--;
        }
        guard.wake();
      }
      if (durable) {
        if (!err) this.metrics.ackLatency.observe(performance.now() - startMs);
        else if (!answeredRefusal(err)) this.logger.warn({ clientId, topic, streamTopic, err: err.message }, 'mqtt: QoS>0 publish not stored; connection closed so the client retransmits');
      } else if (err) {
        this.qos0Failed(topic, clientId, err);
      }
      if (answer) {
        const a = answer;
        answer = null;
        a(durable ? err : null);
      }
    });
    if (!durable && answer) {
      const over = (guard && guard.pendingBytes >= this.o.pendingBytesPerConnectionMax) || this.batcher.pendingMemoryBytes >= this.o.pendingBytesTotalMax;
      if (!over) {
        const a = answer;
        answer = null;
        a(null);
      }
    }
  }

  /** A QoS 0 publish whose append failed: counted when refused for good, logged either way. */
  private qos0Failed(topic: string, clientId: string, err: Error): void {
    const permanent = err instanceof BrokerError && !err.spec.retriable;
    // schema validation's refusal (dead-lettered) or an invalid stream topic
    const rule = permanent && err.code === 'INVALID_RECORD' && err.recordErrors ? 'schema-invalid' : 'stream-topic-invalid';
    if (permanent) this.metrics.publishRefused.inc({ rule });
    this.rareLog(permanent ? `refused-${rule}` : 'qos0-fail', { rule: permanent ? rule : undefined, clientId, topic, err: err.message }, `mqtt: QoS 0 PUBLISH ${permanent ? 'refused' : 'not stored'}: ${err.message}`);
  }

  /** GHSA-p8r9-qf8w-p73r: a clean start drops the inbound QoS 2 table before anything else. */
  private preConnect(_client: AedesClient, packet: { clean: boolean; clientId: string }, done: (err: Error | null, ok: boolean) => void): void {
    if (!packet.clean || packet.clientId === '') return done(null, true);
    this.persistence.cleanIncoming({ id: packet.clientId }).then(
      () => done(null, true),
      (err: Error) => done(err, false),
    );
  }

  private authorizeForward(client: AedesClient, packet: AedesPacket): unknown {
    // Every delivery, whatever filter let it here: READ on the stream topic it came from. A
    // packet restored from a session or the retained store has lost that: its MQTT topic's
    // forward route stands in (the stream topic a publish on it is stored in).
    const streamTopic = this.streamTopicOf.get(packet.payload as object) ?? this.router.forward(packet.topic, packet.clientId ?? '')?.topic ?? packet.topic;
    if (!this.access.canReceive(this.users.get(client), streamTopic, this.hostOf(client))) {
      this.metrics.denied.inc({ what: 'deliver' });
      this.rareLog('deny-deliver', { clientId: client.id, topic: packet.topic, streamTopic }, 'mqtt: delivery withheld: the subscriber may not read the stream topic');
      this.sharing.dropped(packet);
      return null;
    }
    const out = this.outbounds.get(client);
    const forwarded = out ? out.forward(packet as never) : packet;
    // a shared delivery dropped here (expired, too large for the client) is done: no ack will come
    if (forwarded === null) this.sharing.dropped(packet);
    return forwarded;
  }

  // --- steps of openMqttGateway -----------------------------------------------------------------

  async createAedes(): Promise<void> {
    const o = this.o;
    // mqtt-packet fills a table of 65,536 two-byte Buffers (one per packet id, ~6 MiB of heap for
    // the life of the process) at the first packet id it writes; without it, each id written
    // allocates its 2 bytes instead. A gateway's memory budget is worth more than that allocation.
    (mqttPacket.writeToStream as unknown as { cacheNumbers: boolean }).cacheNumbers = false;
    this.aedes = await Aedes.createBroker({
      id: this.gatewayId,
      persistence: this.persistence as never,
      preConnect: this.preConnect.bind(this) as never,
      authenticate: this.authenticate.bind(this) as never,
      authorizePublish: this.authorizePublish.bind(this) as never,
      authorizeSubscribe: this.authorizeSubscribe.bind(this) as never,
      authorizeForward: this.authorizeForward.bind(this) as never,
      connectTimeout: o.connectTimeoutMs,
      drainTimeout: o.drainTimeoutMs,
      maxClientsIdLength: Math.min(o.clientIdBytesMax, 65535),
      maxTopicLevels: o.topicLevelsMax,
      keepaliveLimit: o.keepaliveMaxSeconds,
      // MQTT 5 CONNACK: what this server accepts, so a client never has to be refused for it
      topicAliasMaximum: o.topicAliasMax,
      receiveMaximum: Math.min(o.inflightMax, 65535),
      maximumPacketSize: o.packetBytesMax + 1 + varintBytes(o.packetBytesMax),
      sessionExpiryIntervalLimit: o.sessionExpiryMaxSeconds,
      pendingSessionsLimit: o.pendingSessionsMax,
      responseInformation: o.responseInformation === '' ? null : (client: AedesClient) => o.responseInformation.replaceAll('{clientId}', client.id),
    } as never);
    this.events = this.aedes as unknown as NodeJS.EventEmitter;
    this.guardShared.deliveries.source = (this.aedes as unknown as { mq: { length: number } }).mq;
  }

  /** Reverse delivery: tail readers follow the filters of live and persisted sessions. */
  wireReverseDelivery(): void {
    const { persistence, events } = this;
    const liveFilters = (): string[] => {
      const out: string[] = [];
      const clients = (this.aedes as unknown as { clients: Record<string, AedesClient> }).clients;
      for (const id in clients) out.push(...Object.keys(clients[id].subscriptions).filter(notShared));
      return out;
    };
    const tails = new TailManager(this.broker, this.aedes as never, this.router, this.o, this.logger, this.gatewayId, () => [...liveFilters(), ...persistence.persistedFilters().filter(notShared)], this.batcher.own, (payload, streamTopic, partition, offset) => {
      this.streamTopicOf.set(payload, streamTopic);
      if (this.clustered) persistence.noteStreamPosition(payload, streamTopic, partition, offset);
    });
    this.tails = tails;
    if (this.clustered) {
      const clients = (this.aedes as unknown as { clients: Record<string, { close(done: () => void): void } | undefined> }).clients;
      persistence.handover = {
        // aedes calls back once the will is handled; a close that never calls back holds the release no longer than this
        closeClient: (clientId) => new Promise<void>((resolve) => {
          if (!clients[clientId]) return resolve();
          setTimeout(resolve, CLOSE_WAIT_MS).unref();
          clients[clientId]!.close(() => resolve());
        }),
        connected: (clientId) => clients[clientId] !== undefined && !(clients[clientId] as { closed?: boolean }).closed,
        tailPosition: (topic, partition, which) => tails.position(topic, partition, which),
        sessionLoaded: (filters) => (this.o.reverse ? tails.subscribed(filters) : undefined),
        router: this.router,
        reverseQos: this.o.reverseQos,
        // a fenced node's will (fenced-wills.ts): the path of a will cut by a restart (publishOrphanWills)
        publishWill: (will) =>
          new Promise<boolean>((resolve, reject) =>
            this.authorizePublish(null, will, (err) => {
              if (!err) return this.aedes.publish(will as never, () => resolve(true));
              // a transient failure (no quorum, no leader yet) is tried again; a refusal is final
              if (err instanceof BrokerError && err.spec.retriable) reject(err);
              else resolve(false);
            }),
          ),
        closeWithoutWill: (clientId) => {
          const client = clients[clientId] as { will?: unknown; _will?: unknown; close(done: () => void): void } | undefined;
          if (!client) return;
          client.will = null; // aedes publishes `will` when a connection closes without DISCONNECT
          client._will = null;
          client.close(() => undefined);
        },
      };
    }
    if (this.o.reverse) {
      events.on('subscribe', (subs: Array<{ topic: string }>) => tails.subscribed(subs.map((s) => s.topic).filter(notShared)));
      events.on('unsubscribe', () => tails.changed());
      events.on('clientDisconnect', () => tails.changed());
      persistence.onSessionsChanged = () => tails.changed();
      tails.subscribed(persistence.persistedFilters().filter(notShared));
    }
    if (this.sharedSubs) events.on('unsubscribe', (topics: string[], client: AedesClient) => this.sharing.unsubscribed(topics, client));
  }

  /** CONNACK releases the guard; SUBSCRIBE and PUBACK / PUBCOMP reach the client's Outbound. */
  wireDeliveryEvents(): void {
    const events = this.events;
    events.on('connackSent', (packet: { returnCode?: number; reasonCode?: number }, client: AedesClient) => {
      if ((packet.returnCode ?? packet.reasonCode) === 0) this.guards.get(client)?.connackSent();
    });
    // a SUBSCRIBE naming a filter twice is answered by its Outbound; retained messages sent on
    // SUBSCRIBE at the granted QoS (outbound.ts)
    events.on('subscribe', (subs: Array<{ topic: string; qos: number }>, client: AedesClient) => this.outbounds.get(client)?.subscribed(subs));
    retainedAtGrantedQoS(events, this.persistence as never);
    // the Receive Maximum window reopens on PUBACK / PUBCOMP
    events.on('ack', (_packet: unknown, client: AedesClient) => this.outbounds.get(client)?.acked());
  }

  /**
   * MQTT 5 session expiry survives a restart: the deadline of a disconnected session is
   * recorded, and sessions whose deadline passes while the broker is down (or after a restart,
   * when aedes' own timer is gone) are wiped here.
   */
  async wireSessionExpiry(): Promise<void> {
    const { events, persistence, logger } = this;
    events.on('client', (client: AedesClient & { version?: number }) => {
      clearTimeout(this.expiryTimers.get(client.id));
      this.expiryTimers.delete(client.id);
      if (persistence.expiries.has(client.id)) void persistence.setSessionExpiry(client.id, null).catch(() => undefined);
    });
    events.on('clientDisconnect', (client: AedesClient & { version?: number; sessionExpiryInterval?: number }) => {
      const interval = client.sessionExpiryInterval ?? 0;
      if (client.version === 5 && !client.clean && interval > 0 && interval < 0xffffffff) {
        void persistence.setSessionExpiry(client.id, Date.now() + interval * 1000).catch(() => undefined);
      }
      this.outbounds.get(client)?.close();
      if (!client.clean) persistence.sessionEnded(client.id);
      // a session that ends with its connection keeps no inbound QoS 2 state (bounded memory)
      if (client.clean) void persistence.cleanIncoming(client).catch(() => undefined);
    });
    events.on('sessionExpired', (client: AedesClient) => {
      logger.info({ clientId: client.id }, 'mqtt: session expired (MQTT 5 Session Expiry Interval); its subscriptions and queue are dropped');
      void persistence.cleanIncoming(client).catch(() => undefined);
      void persistence.setSessionExpiry(client.id, null).catch(() => undefined);
    });
    for (const [clientId, atMs] of persistence.expiries) {
      if (atMs <= Date.now()) await persistence.wipeSession(clientId).catch((err: Error) => logger.warn({ clientId, err: err.message }, 'mqtt: expired session not wiped'));
      else this.armExpiry(clientId, atMs);
    }
  }

  private armExpiry(clientId: string, atMs: number): void {
    clearTimeout(this.expiryTimers.get(clientId));
    const t = setTimeout(() => {
      this.expiryTimers.delete(clientId);
      if ((this.aedes as unknown as { clients: Record<string, unknown> }).clients[clientId]) return;
      void this.persistence.wipeSession(clientId).then(
        () => this.logger.info({ clientId }, 'mqtt: session expired (recorded before a restart); its state is dropped'),
        (err: Error) => this.logger.warn({ clientId, err: err.message }, 'mqtt: expired session not wiped'),
      );
    }, Math.min(Math.max(0, atMs - Date.now()), 2_147_483_647));
    t.unref();
    this.expiryTimers.set(clientId, t);
  }

  /** aedes' warnings and errors, logged (an 'error' without a listener would throw). */
  wireDiagnostics(): void {
    const { events, logger } = this;
    events.on('sessionLimitReached', (client: AedesClient, info: { reason: string; limit: number }) => {
      this.rareLog('pending-sessions', { clientId: client.id, ...info }, 'mqtt: pendingSessionsMax reached: session or delayed will ended at once');
    });
    events.on('clientError', (client: AedesClient, err: Error) => {
      if (err.message !== 'connection closed') logger.debug({ clientId: client.id, err: err.message }, 'mqtt: client error');
    });
    events.on('connectionError', (_client: AedesClient, err: Error) => logger.debug({ err: err.message }, 'mqtt: connection error'));
    // aedes 2 reports persistence failures of its background work (a will's removal, a
    // session wipe) on 'error'; with no listener an EventEmitter throws, so log them instead
    events.on('error', (err: Error) => logger.warn({ err: err.message }, 'mqtt: background persistence step failed'));
    events.on('keepaliveTimeout', (client: AedesClient) => logger.info({ clientId: client.id }, 'mqtt: keep-alive expired (1.5 × the client\'s interval, MQTT-3.1.2-24); connection closed'));
  }

  /**
   * Wills of sessions cut by a crash or restart of this broker: publish them now rather
   * than after aedes' 4 × heartbeat sweep (the previous broker id is never coming back).
   */
  async publishOrphanWills(): Promise<void> {
    const { persistence, aedes, logger } = this;
    await new Promise<void>((resolve) => {
      const wills: AedesPacket[] = [];
      const s = persistence.streamWill({ [this.gatewayId]: Date.now() });
      s.on('data', (w: AedesPacket) => wills.push(w));
      s.on('error', () => resolve());
      s.on('end', async () => {
        for (const w of wills) {
          await new Promise<void>((r) => this.authorizePublish(null, w, (err) => (err ? r() : aedes.publish(w as never, () => r()))));
          await persistence.delWill({ id: w.clientId! });
        }
        if (wills.length > 0) logger.info({ wills: wills.length }, 'mqtt: wills of sessions cut by the previous shutdown published');
        resolve();
      });
    });
  }

  // --- connections ------------------------------------------------------------------------------

  private accept(conn: Duplex, remote: string, req?: IncomingMessage): void {
    const o = this.o;
    if (this.open >= o.connectionsMax) {
      this.metrics.refused.inc();
      this.rareLog('max-conn', { remote, connectionsMax: o.connectionsMax }, 'mqtt: connection refused: connectionsMax reached (CONNACK 3, server unavailable)');
      conn.on('error', () => undefined);
      const t = setTimeout(() => conn.destroy(), o.connectTimeoutMs);
      t.unref();
      conn.once('data', () => refuseConnection(conn, Buffer.from([0x20, 0x02, 0x00, 0x03])));
      conn.once('close', () => clearTimeout(t));
      return;
    }
    this.open++;
    this.conns.add(conn);
    this.metrics.connections.set(this.open);
    conn.once('close', () => {
      this.open--;
      this.conns.delete(conn);
      this.metrics.connections.set(this.open);
    });
    const client = this.aedes.handle(conn as never, req as never) as unknown as AedesClient;
    const guard = new ConnectionGuard(client, conn, this.guardShared, remote);
    this.guards.set(client, guard);
    this.outbounds.set(client, new Outbound(client as unknown as OutboundClient, guard, { options: o, logger: this.logger, dropped: this.metrics.deliveriesDropped, rareLog: this.rareLog }));
    this.sharing.wireConnection(client, conn, remote, guard);
  }

  /** Binds the TCP and WebSocket listeners; a failure undoes what was opened and rethrows. */
  async startListeners(): Promise<void> {
    const o = this.o;
    try {
      if (o.port >= 0) await this.listenTcp();
      if (o.wsPort >= 0) await this.listenWebSocket();
    } catch (err) {
      for (const s of this.servers) s.close();
      this.tails.close();
      await new Promise<void>((r) => this.aedes.close(() => r()));
      await this.batcher.close();
      await this.persistence.destroy().catch(() => undefined);
      this.logger.error({ err: (err as Error).message }, 'mqtt: gateway failed to start');
      throw err;
    }
    this.logger.info({ listeners: Object.fromEntries(this.listeners.map((l) => [l.name, l.address])), routes: o.routes.length, defaultRoute: o.defaultRoute, auth: o.auth.enabled }, 'mqtt: gateway listening');
  }

  /**
   * The listeners' TLS, made once for both (MQTT over TCP and over WebSocket share `mqtt.tls`);
   * null = plain. Sockets in their handshake count towards connectionsMax on each server.
   */
  private serverTls(): ServerTls | null {
    if (!this.o.tls) return null;
    this.tls ??= new ServerTls('mqtt', 'mqtt.tls', this.o.tls, this.logger);
    return this.tls;
  }

  /** The TLS reload for the first listener only: both servers share one ServerTls. */
  private reloadOf(): Pick<Listener, 'reloadTls'> {
    const tls = this.tls;
    if (!tls || this.listeners.length > 0) return {};
    return { reloadTls: () => [tls.reload()] };
  }

  private async listenTcp(): Promise<void> {
    const host = this.o.host;
    const onSocket = (socket: Socket) => this.accept(socket, `${socket.remoteAddress}:${socket.remotePort}`);
    const tls = this.serverTls();
    const server = tls ? tls.createServer((socket) => (coalesceWrites(socket), onSocket(socket))) : createNetServer({ noDelay: true }, onSocket);
    if (tls) server.maxConnections = this.o.connectionsMax;
    await listen(server, this.o.port, host, 'mqtt');
    this.servers.push(server);
    this.listeners.push({ name: 'mqtt', address: addressOf(server, host), listening: () => server.listening, close: () => this.close(), ...this.reloadOf() });
  }

  private async listenWebSocket(): Promise<void> {
    const o = this.o;
    const host = o.host;
    const answer426 = (_req: IncomingMessage, res: import('node:http').ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end(`MQTT over WebSocket: connect to ${o.wsPath} with subprotocol "mqtt"\n`);
    };
    const tls = this.serverTls();
    const http: HttpServer = tls ? tls.createHttpsServer(answer426) : createHttpServer(answer426);
    if (tls) http.maxConnections = o.connectionsMax;
    // `ws` loads at the first upgrade request (ws-transport.ts): a node whose devices speak MQTT
    // over TCP only never holds it, though the listener is bound and named from the start.
    this.wsTransport = new LazyWsTransport(http, {
      path: o.wsPath,
      maxPayload: o.packetBytesMax + 5,
      verifyClient: (req, answer) => this.access.verifyOrigin(req, answer, this.rareLog, this.metrics.denied),
      accept: (stream, req) => this.accept(stream, `${req.socket.remoteAddress}:${req.socket.remotePort}`, req),
      loaded: (ms) => this.logger.info({ listener: 'mqttWs', loadMs: Math.round(ms) }, `mqtt: ws loaded for MQTT over WebSocket at the first upgrade (${Math.round(ms)} ms)`),
      failed: (err) => this.rareLog('ws-load', { listener: 'mqttWs', err: err.message }, 'mqtt: ws did not load: MQTT over WebSocket upgrade refused'),
    });
    await listen(http, o.wsPort, host, 'mqttWs');
    // An accept error after the bind (EMFILE) must not end the process: the listener keeps
    // serving (ws, listening on the server, used to swallow these the same way).
    http.on('error', (err: Error) => this.rareLog('ws-listener', { listener: 'mqttWs', err: err.message }, 'mqtt: WebSocket listener error'));
    this.servers.push(http);
    this.listeners.push({ name: 'mqttWs', address: addressOf(http, host), engine: WS_TRANSPORT_ENGINE, listening: () => http.listening, close: () => this.close(), ...this.reloadOf() });
  }

  /** Closes every listener, then aedes, the readers, and flushes pending appends (once). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closingGateway = true;
      for (const t of this.expiryTimers.values()) clearTimeout(t);
      for (const s of this.servers) s.close();
      this.wsTransport?.close();
      this.tails.close();
      await this.sharedSubs?.close(); // commits and leaves while the coordinator still serves
      await new Promise<void>((r) => this.aedes.close(() => r()));
      for (const c of this.conns) c.destroy();
      await this.batcher.close();
      await this.persistence.destroy().catch(() => undefined);
      await Promise.all(this.servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
    })();
    return this.closing;
  }

  /** What `openMqttGateway` returns. */
  view(): MqttGateway {
    const guardOf = (clientId: string) => {
      const client = (this.aedes as unknown as { clients: Record<string, object> }).clients[clientId];
      return client ? this.guards.get(client) : undefined;
    };
    return { listeners: this.listeners, aedes: this.aedes, persistence: this.persistence, batcher: this.batcher, tails: this.tails, shared: this.sharedSubs, guardOf, close: () => this.close() };
  }
}

type RouteTarget = { topic: string; key: string; partition?: number };

function gatewayMetrics(m: MetricsRegistry) {
  return {
    connections: m.gauge('tributary_mqtt_connections', 'MQTT connections open'),
    publishes: m.counter('tributary_mqtt_publishes_total', 'MQTT publishes received, by QoS'),
    unrouted: m.counter('tributary_mqtt_unrouted_total', 'MQTT publishes matching no route (not stored)'),
    denied: m.counter('tributary_mqtt_denied_total', 'MQTT operations refused by an ACL or authentication'),
    loginFailures: m.counter('tributary_mqtt_login_failures_total', 'MQTT CONNECTs with a wrong password or unknown user (counted against the source address, security.loginFailuresMax)'),
    logins: m.counter('tributary_mqtt_logins_total', 'MQTT CONNECTs authenticated as a user'),
    violations: m.counter('tributary_mqtt_protocol_violations_total', 'MQTT connections closed for breaking a rule, by rule'),
    holds: m.counter('tributary_mqtt_read_holds_total', 'times an MQTT connection stopped being read, by reason'),
    refused: m.counter('tributary_mqtt_connections_refused_total', 'MQTT connections refused at connectionsMax'),
    publishRefused: m.counter('tributary_mqtt_refused_total', 'MQTT publishes refused with an answer (MQTT 5 reason code, or a logged close in 3.1.1), by rule'),
    deliveriesDropped: m.counter('tributary_mqtt_deliveries_dropped_total', 'MQTT deliveries not sent to a client, by reason (packet too large, expired, slow client)'),
    ackLatency: m.histogram('tributary_mqtt_durable_ack_ms', 'publish received → append durable (QoS 1/2)', LATENCY_BUCKETS_MS),
  };
}

/** Shared subscriptions (gateway/mqtt/shared-subscriptions.ts) with the gateway's options. */
function openSharedSubscriptions(deps: MqttGatewayDeps, groups: SharedGroupApi, router: Router, logger: Logger, o: MqttGatewayOptions): SharedSubscriptions {
  return new SharedSubscriptions(
    { broker: deps.broker, groups, router, logger, metrics: deps.metrics },
    {
      membersMax: o.sharedMembersMax,
      inflightMax: o.sharedInflightMax,
      commitIntervalMs: o.sharedCommitIntervalMs,
      sessionTimeoutMs: o.sharedSessionTimeoutMs,
      ackWaitMs: o.sharedAckWaitMs,
      readBytesMax: o.sharedReadBytesMax,
      topicsMax: o.tailTopicsMax,
      rescanMs: o.tailRescanMs,
      reverseQos: o.reverseQos,
    },
  );
}

/** Bytes of MQTT's Variable Byte Integer for `n` (MQTT 5 §1.5.5). */
function varintBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

function listen(server: NetServer | HttpServer, port: number, host: string, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: Error & { code?: string }) => reject(Object.assign(new Error(`${name} listener failed to start on ${host}:${port}: ${err.code ?? err.message}`), { code: err.code, cause: err })));
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function addressOf(server: NetServer | HttpServer, host: string): string {
  const a = server.address();
  if (a && typeof a === 'object') return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  return `${host}`;
}

/**
 * A refusal answered to the device (MQTT 5: PUBACK/PUBREC with the table's reason) instead of
 * closing the connection for a retransmit: one retrying cannot cure, a full disk, or the uplink's
 * full byte budget (0x97 quota exceeded; closing would only make devices reconnect and resend in
 * a loop until space or the link returns).
 */
function answeredRefusal(err: unknown): err is BrokerError {
  return err instanceof BrokerError && (!err.spec.retriable || err.code === 'STORAGE_FULL' || err.code === 'UPLINK_BACKLOG_FULL');
}
