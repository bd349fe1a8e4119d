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
// (shared-subscriptions.ts), wired per connection in `wireSharedMember`; share-adapter.ts gets
// their filters past aedes' own refusal and rewrites the CONNACK and SUBACK for them.
// QoS 0 is handed to the batcher and the callback returns at once (unless the
// connection's or the gateway's pending bytes are over their bound: then it waits, which
// stops aedes reading the socket).
import { randomUUID } from 'node:crypto';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { BrokerApi, RecordInput } from '../../host/broker/api.js';
import type { Logger } from '../../host/logging.js';
import { LATENCY_BUCKETS_MS, type MetricsRegistry } from '../../host/metrics/registry.js';
import { AppendBatcher } from './append.js';
import { Authorizer } from './auth.js';
import { ConnectionGuard, DeliveryGate, refuseConnection, type AedesClientInternals, type GuardShared } from './connection.js';
import { resolveMqttOptions, type MqttGatewayOptions } from './options.js';
import type { Listener } from '../../host/config/listener.js';
import { LogPersistence, type AedesPacket, type Sub } from './persistence.js';
import { Router } from './routes.js';
import { ORIGIN_HEADER, TailManager, TOPIC_HEADER } from './tail.js';
import { BrokerError } from '../../host/errors/index.js';
import { isUtf8 } from 'node:buffer';
import { headersToProperties, propertiesToHeaders } from './headers.js';
import { Outbound, retainedAtGrantedQoS, type OutboundClient } from './outbound.js';
import type { PublishRefusal } from './guard.js';
import { isSharedFilter, parseSharedFilter, SharedSubscriptions, SUBACK, type SharedGroupApi, type SharedMember } from './shared-subscriptions.js';
import { hideShare, isHiddenShare, onPacketWrite, revealShare, type WrittenPacket } from './share-adapter.js';

export { defaultMqttGatewayOptions, resolveMqttOptions, validateMqttOptions, type MqttGatewayOptions, type MqttRoute, type MqttReverseRoute, type MqttUser } from './options.js';
export { hashPassword, hashPasswordSync, verifyPassword } from './auth.js';

export type { Listener } from '../../host/config/listener.js';

export interface MqttGatewayDeps {
  broker: BrokerApi;
  logger: Logger;
  metrics: MetricsRegistry;
  /** The group coordinator: `$share/{group}/{filter}` subscriptions join its groups (none → refused). */
  groups?: SharedGroupApi;
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

type AedesClient = AedesClientInternals & { id: string; clean: boolean; conn: Duplex; subscriptions: Record<string, unknown> };
/** aedes 2 client internals the shared-subscription wiring uses (lib/client.js, lib/qos-packet.js). */
interface SharedClientInternals {
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

const QOS_BYTES = [Buffer.from('0'), Buffer.from('1'), Buffer.from('2')];
const TRUE_BYTES = Buffer.from('true');
const FALSE_BYTES = Buffer.from('false');
const LOG_INTERVAL_MS = 5_000; // at most one line per kind of repeated event per 5 s

export async function startMqttGateway(deps: MqttGatewayDeps, options: MqttGatewayOptions): Promise<Listener[]> {
  return (await openMqttGateway(deps, options)).listeners;
}

export async function openMqttGateway(deps: MqttGatewayDeps, options: Partial<MqttGatewayOptions>): Promise<MqttGateway> {
  const o = resolveMqttOptions(options);
  const logger = deps.logger.child({ component: 'mqtt' });
  const broker = deps.broker;
  const gatewayId = randomUUID();
  const originBytes = Buffer.from(gatewayId);
  const router = new Router(o.routes, o.defaultRoute, o.reverseRoutes);
  const authorizer = o.auth.enabled ? new Authorizer(o.auth.users) : undefined;
  // --- shared subscriptions (gateway/mqtt/shared-subscriptions.ts): wiring begins -------------
  const sharedSubs =
    deps.groups && o.sharedSubscriptions
      ? new SharedSubscriptions(
          { broker, groups: deps.groups, router, logger, metrics: deps.metrics },
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
        )
      : undefined;
  /** Each connection as a shared-subscription member (built in accept). */
  const sharedMembers = new WeakMap<object, SharedMember>();
  /** SUBACK reason code of each refused shared subscription object (aedes itself would say 0x87 / 0x80). */
  const shareCodes = new WeakMap<object, number>();
  /** Pending deliveries to shared members, for the ones `authorizeForward` drops (expired, too large): done, not redelivered. */
  const sharedDropped = new WeakMap<object, () => void>();
  // `$share/` entries and placeholders (share-adapter.ts) are no filters for the tail readers
  const notShared = (f: string) => !isSharedFilter(f) && !isHiddenShare(f);
  const sharedBrokerId = `${gatewayId}/shared`;
  let sharedCounter = 0;
  // --- shared subscriptions: wiring ends --------------------------------------------------------
  const m = deps.metrics;
  const metrics = {
    connections: m.gauge('tributary_mqtt_connections', 'MQTT connections open'),
    publishes: m.counter('tributary_mqtt_publishes_total', 'MQTT publishes received, by QoS'),
    unrouted: m.counter('tributary_mqtt_unrouted_total', 'MQTT publishes matching no route (not stored)'),
    denied: m.counter('tributary_mqtt_denied_total', 'MQTT operations refused by an ACL or authentication'),
    violations: m.counter('tributary_mqtt_protocol_violations_total', 'MQTT connections closed for breaking a rule, by rule'),
    holds: m.counter('tributary_mqtt_read_holds_total', 'times an MQTT connection stopped being read, by reason'),
    refused: m.counter('tributary_mqtt_connections_refused_total', 'MQTT connections refused at connectionsMax'),
    publishRefused: m.counter('tributary_mqtt_refused_total', 'MQTT publishes refused with an answer (MQTT 5 reason code, or a logged close in 3.1.1), by rule'),
    deliveriesDropped: m.counter('tributary_mqtt_deliveries_dropped_total', 'MQTT deliveries not sent to a client, by reason (packet too large, expired, slow client)'),
    ackLatency: m.histogram('tributary_mqtt_durable_ack_ms', 'publish received → append durable (QoS 1/2)', LATENCY_BUCKETS_MS),
  };

  const batcher = new AppendBatcher(broker, logger, { lingerMs: o.lingerMs, appendsInFlightMax: o.appendsInFlightMax, batchBytesMax: o.batchBytesMax, batchRecordsMax: o.batchRecordsMax });
  const persistence = new LogPersistence(broker, batcher, logger, o);
  persistence.gateOf = (client) => outbounds.get(client);
  const guards = new WeakMap<object, ConnectionGuard>();
  const users = new WeakMap<object, string>();
  const lastLog = new Map<string, number>();
  const rareLog = (kind: string, fields: Record<string, unknown>, msg: string) => {
    const now = Date.now();
    if (now - (lastLog.get(kind) ?? 0) < LOG_INTERVAL_MS) return;
    if (lastLog.size >= 1_000) lastLog.clear(); // kinds include rule names only; bounded anyway
    lastLog.set(kind, now);
    logger.warn(fields, msg);
  };
  const shared: GuardShared = { options: o, logger, batcher, violations: metrics.violations, refused: metrics.publishRefused, holds: metrics.holds, rareLog, totalWaiters: new Set(), deliveries: new DeliveryGate(o.deliveriesQueuedMax) };
  const outbounds = new WeakMap<object, Outbound>();
  /** Set when the gateway closes: disconnects from then on are ours, not the clients'. */
  let closingGateway = false;
  batcher.onDrain(() => {
    if (shared.totalWaiters.size === 0 || batcher.pendingBytes >= o.pendingBytesTotalMax) return;
    for (const g of [...shared.totalWaiters]) g.wakeTotal();
  });

  // --- aedes hooks ------------------------------------------------------------------------------

  function authenticate(client: AedesClient, username: string | undefined, password: Buffer | undefined, done: (err: (Error & { returnCode?: number }) | null, ok: boolean | null) => void): void {
    if (!authorizer) return done(null, true);
    authorizer.authenticate(username, password).then(
      (ok) => {
        if (ok) {
          users.set(client, username!);
          return done(null, true);
        }
        metrics.denied.inc({ what: 'connect' });
        logger.warn({ clientId: client.id, username }, 'mqtt: CONNECT refused: bad user name or password (return code 4)');
        const err = Object.assign(new Error('bad user name or password'), { returnCode: 4 });
        done(err, false);
      },
      (err: Error) => done(Object.assign(err, { returnCode: 3 }), false),
    );
  }

  function authorizeSubscribe(client: AedesClient, sub: Sub, done: (err: Error | null, sub?: Sub | null) => void): void {
    const shareTopic = revealShare(sub);
    if (shareTopic !== undefined) return authorizeShared(client, sub, shareTopic, done);
    if (authorizer && !authorizer.canSubscribe(users.get(client), client.id, sub.topic)) {
      metrics.denied.inc({ what: 'subscribe' });
      rareLog('deny-sub', { clientId: client.id, filter: sub.topic }, 'mqtt: SUBSCRIBE refused by ACL (SUBACK 0x80)');
      return done(null, null);
    }
    done(null, sub);
  }

  /**
   * A `$share/{group}/{filter}` subscription (renamed to a placeholder, share-adapter.ts): the
   * ACL applies to the filter the member reads; the shared-subscription module grants it or
   * names the reason code, which the SUBACK rewrite puts in place of aedes' 0x87 / 0x80.
   */
  function authorizeShared(client: AedesClient, sub: Sub, topic: string, done: (err: Error | null, sub?: Sub | null) => void): void {
    const v5 = (client as AedesClient & SharedClientInternals).version === 5;
    const refuse = (code: number) => {
      shareCodes.set(sub, code);
      done(null, null);
    };
    const share = parseSharedFilter(topic);
    if (authorizer && 'filter' in share && !authorizer.canSubscribe(users.get(client), client.id, share.filter)) {
      metrics.denied.inc({ what: 'subscribe' });
      rareLog('deny-sub', { clientId: client.id, filter: topic }, `mqtt: SUBSCRIBE refused by ACL (SUBACK ${v5 ? '0x87' : '0x80'})`);
      return refuse(v5 ? 0x87 : SUBACK.UNSPECIFIED);
    }
    const member = sharedMembers.get(client);
    if (!sharedSubs || !member) {
      rareLog('share-off', { clientId: client.id, filter: topic }, `mqtt: shared SUBSCRIBE refused: shared subscriptions are off (SUBACK ${v5 ? '0x9E' : '0x80'})`);
      return refuse(v5 ? SUBACK.SHARED_NOT_SUPPORTED : SUBACK.UNSPECIFIED);
    }
    const s = sub as Sub & { subscriptionIdentifier?: number };
    const code = sharedSubs.subscribeTopic(member, topic, sub.qos as 0 | 1 | 2, s.subscriptionIdentifier);
    if (code >= 0x80) return refuse(code);
    // granted: aedes keeps an inert `$share/...` entry under its real name, so a persistent
    // session stores and restores the membership
    sub.topic = topic;
    done(null, sub);
  }

  /**
   * Answers a refused publish. A client's publish: the guard counts, logs and answers (MQTT 5
   * reason code; the packet is marked so aedes neither acks nor publishes it). A will (no
   * connection): counted and logged, not published.
   */
  function refuse(client: AedesClient | null, packet: AedesPacket, r: PublishRefusal, done: (err?: Error | null) => void): void {
    const guard = client ? guards.get(client) : undefined;
    if (!guard) {
      metrics.publishRefused.inc({ rule: r.rule });
      rareLog(`refused-${r.rule}`, { rule: r.rule, clientId: packet.clientId, topic: packet.topic }, `mqtt: will refused: ${r.message} (${r.rule}); not published`);
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

  function authorizePublish(client: AedesClient | null, packet: AedesPacket, done: (err?: Error | null) => void): void {
    const topic = packet.topic;
    const clientId = client?.id ?? packet.clientId ?? '';
    // $SYS/ is the server's (MQTT 4.7.2); other $-topics are ordinary topics, as in Mosquitto,
    // which wildcards at the first level do not match (MQTT-4.7.2-1, aedes enforces it)
    if (topic.startsWith('$SYS/') || topic === '$SYS') return refuse(client, packet, { rule: 'sys-topic-reserved', message: `topics under $SYS are the server's: ${topic}`, error: 'NOT_AUTHORIZED' }, done);
    if (authorizer && client && !authorizer.canPublish(users.get(client), clientId, topic)) {
      metrics.denied.inc({ what: 'publish' });
      return refuse(client, packet, { rule: 'acl', message: `not authorised to publish to ${topic}`, error: 'NOT_AUTHORIZED' }, done);
    }
    const props = packet.properties as Record<string, unknown> | undefined;
    if (props?.payloadFormatIndicator === 1 || props?.payloadFormatIndicator === true) {
      // MQTT 5 §3.3.2.3.2: the server may check that a payload said to be UTF-8 is; 0x99
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      if (!isUtf8(payload)) return refuse(client, packet, { rule: 'payload-format-invalid', message: 'payload format indicator says UTF-8 but the payload is not', error: 'INVALID_RECORD' }, done);
    }
    if (packet.retain && client && guards.get(client)?.v5 && !persistence.canRetain(topic, packet.payload)) {
      // MQTT 5 can say why (0x97); 3.1.1 keeps the publish and logs that it was not retained
      return refuse(client, packet, { rule: 'retained-messages-max', message: `retainedMessagesMax (${o.retainedMessagesMax}) reached`, error: 'LIMIT_EXCEEDED' }, done);
    }
    metrics.publishes.inc({ qos: String(packet.qos) });
    const target = router.forward(topic, clientId);
    if (!target) {
      metrics.unrouted.inc();
      if (o.unrouted === 'disconnect') return refuse(client, packet, { rule: 'unrouted', message: `no route for ${topic} (unrouted: disconnect)`, error: 'UNKNOWN_TOPIC_OR_PARTITION' }, done);
      rareLog('unrouted', { clientId, topic }, 'mqtt: PUBLISH matches no route: delivered to MQTT subscribers only, not stored (unrouted: mqtt-only)');
      return done(null);
    }
    const stored = (err?: Error | null) => {
      // a refusal that retrying cannot cure (an invalid or colliding stream topic) is answered,
      // not retried forever; a transient failure closes the connection so the client retransmits.
      // A full disk is answered too (MQTT 5: PUBACK/PUBREC 0x97 Quota exceeded): closing would
      // only make every device reconnect and resend in a loop until space returns.
      if (err instanceof BrokerError && err.code === 'INVALID_RECORD' && err.recordErrors) {
        // schema validation (host/schemas): MQTT 5 hears 0x99; 3.1.1 has no negative ack, so a
        // publish that was dead-lettered is acknowledged (and counted), else the connection closes
        if (err.deadLettered && client && !guards.get(client)?.v5) {
          metrics.publishRefused.inc({ rule: 'schema-invalid' });
          rareLog('refused-schema-invalid', { rule: 'schema-invalid', clientId, topic }, `mqtt: PUBLISH refused by schema validation and dead-lettered: ${err.message}`);
          return done(null);
        }
        return refuse(client, packet, { rule: 'schema-invalid', message: `${err.message} (stream topic ${target.topic})`, error: err.code }, done);
      }
      if (err instanceof BrokerError && (!err.spec.retriable || err.code === 'STORAGE_FULL')) {
        const rule = err.code === 'STORAGE_FULL' ? 'disk-full' : 'stream-topic-invalid';
        return refuse(client, packet, { rule, message: `${err.message} (stream topic ${target.topic})`, error: err.code }, done);
      }
      done(err);
    };
    if (packet.qos === 2 && client) {
      // a retransmitted QoS 2 publish (same packet id, before PUBREL) is already stored
      persistence.incomingGetPacket(client, packet).then(
        () => done(null),
        () => appendAndRetain(client, packet, target, clientId, stored),
      );
      return;
    }
    appendAndRetain(client, packet, target, clientId, stored);
  }

  /**
   * A client's QoS 1/2 publishes complete in the order they came (MQTT 3.1.1 §4.6, MQTT-4.6.0-2/-3:
   * acknowledged, and passed on to subscribers, in order): a retained one also waits for the
   * retained store, so a later one could otherwise overtake it. Bounded by the client's QoS 1/2
   * publishes in flight (inflightMax).
   */
  const completions = new WeakMap<object, Array<{ settled: boolean; err: Error | null; done: (err: Error | null) => void }>>();
  function inOrder(client: object, done: (err?: Error | null) => void): (err: Error | null) => void {
    let queue = completions.get(client);
    if (!queue) completions.set(client, (queue = []));
    const entry = { settled: false, err: null as Error | null, done };
    queue.push(entry);
    return (err) => {
      entry.settled = true;
      entry.err = err;
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
  function appendAndRetain(client: AedesClient | null, packet: AedesPacket, target: { topic: string; key: string; partition?: number }, clientId: string, done: (err?: Error | null) => void): void {
    if (packet.qos === 0) {
      // Started now, not awaited (QoS 0 promises no durability); aedes' own store call then
      // finds it started and emits at once, so the publisher's next message cannot overtake
      // this one while the retained append runs (MQTT-4.6.0-5). Stores stay in order per topic.
      if (packet.retain) persistence.storeRetainedBeforeAck(packet).catch((err: Error) => rareLog('qos0-retain-fail', { clientId, topic: packet.topic, err: err.message }, 'mqtt: QoS 0 retained message not stored'));
      return append(client, packet, target, clientId, done);
    }
    // the ids aedes gives the packet when it publishes it (aedes-packet keeps existing ones)
    const counters = aedes as unknown as { id: string; counter: number };
    packet.brokerId ??= counters.id;
    packet.brokerCounter ??= ++counters.counter;
    let left = packet.retain ? 3 : 2;
    let failed: Error | null = null;
    const finish = client ? inOrder(client, done) : done;
    const all = (err?: Error | null) => {
      failed ??= err ?? null;
      if (--left === 0) finish(failed);
    };
    if (packet.retain) persistence.storeRetainedBeforeAck(packet).then(() => all(null), all);
    persistence.enqueueBeforeAck(packet).then(() => all(null), all);
    append(client, packet, target, clientId, all);
  }

  function append(client: AedesClient | null, packet: AedesPacket, target: { topic: string; key: string; partition?: number }, clientId: string, done: (err?: Error | null) => void): void {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const guard = client ? guards.get(client) : undefined;
    const headers: RecordInput['headers'] = [];
    // the key is most often the MQTT topic itself: encoded once, shared (records are not mutated)
    const topicBytes = Buffer.from(packet.topic);
    if (o.headers.topic) headers.push({ key: TOPIC_HEADER, value: topicBytes });
    if (o.headers.qos) headers.push({ key: 'mqtt.qos', value: QOS_BYTES[packet.qos] });
    if (o.headers.retain) headers.push({ key: 'mqtt.retain', value: packet.retain ? TRUE_BYTES : FALSE_BYTES });
    if (o.headers.clientId) headers.push({ key: 'mqtt.clientId', value: guard?.clientIdBytes ?? Buffer.from(clientId) });
    if (packet.properties) propertiesToHeaders(packet.properties as Record<string, unknown>, headers);
    headers.push({ key: ORIGIN_HEADER, value: originBytes });
    const record: RecordInput = { key: target.key === packet.topic ? topicBytes : Buffer.from(target.key), value: payload, headers };
    const bytes = payload.length + packet.topic.length * 2 + 96;
    const durable = packet.qos > 0;
    const startMs = durable ? performance.now() : 0;
    let answered = false;
    if (guard) {
      guard.pendingBytes += bytes;
      if (durable) guard.inflight++;
    }
    batcher.append(target.topic, target.partition, record, bytes, durable, (err) => {
      if (guard) {
        guard.pendingBytes -= bytes;
        if (durable) {
          guard.inflight--;
        }
        guard.wake();
      }
      if (durable) {
        if (!err) metrics.ackLatency.observe(performance.now() - startMs);
        else if (!(err instanceof BrokerError && (!err.spec.retriable || err.code === 'STORAGE_FULL'))) logger.warn({ clientId, topic: packet.topic, streamTopic: target.topic, err: err.message }, 'mqtt: QoS>0 publish not stored; connection closed so the client retransmits');
      } else if (err) {
        const permanent = err instanceof BrokerError && !err.spec.retriable;
        // schema validation's refusal (dead-lettered) or an invalid stream topic
        const rule = permanent && err.code === 'INVALID_RECORD' && err.recordErrors ? 'schema-invalid' : 'stream-topic-invalid';
        if (permanent) metrics.publishRefused.inc({ rule });
        rareLog(permanent ? `refused-${rule}` : 'qos0-fail', { rule: permanent ? rule : undefined, clientId, topic: packet.topic, err: err.message }, `mqtt: QoS 0 PUBLISH ${permanent ? 'refused' : 'not stored'}: ${err.message}`);
      }
      if (!answered) {
        answered = true;
        done(durable ? err : null);
      }
    });
    if (!durable && !answered) {
      const over = (guard && guard.pendingBytes >= o.pendingBytesPerConnectionMax) || batcher.pendingBytes >= o.pendingBytesTotalMax;
      if (!over) {
        answered = true;
        done(null);
      }
    }
  }

  /** GHSA-p8r9-qf8w-p73r: a clean start drops the inbound QoS 2 table before anything else. */
  function preConnect(_client: AedesClient, packet: { clean: boolean; clientId: string }, done: (err: Error | null, ok: boolean) => void): void {
    if (!packet.clean || packet.clientId === '') return done(null, true);
    persistence.cleanIncoming({ id: packet.clientId }).then(
      () => done(null, true),
      (err: Error) => done(err, false),
    );
  }

  const aedes = await Aedes.createBroker({
    id: gatewayId,
    persistence: persistence as never,
    preConnect: preConnect as never,
    authenticate: authenticate as never,
    authorizePublish: authorizePublish as never,
    authorizeSubscribe: authorizeSubscribe as never,
    authorizeForward: ((client: AedesClient, packet: AedesPacket) => {
      const out = outbounds.get(client);
      const forwarded = out ? out.forward(packet as never) : packet;
      // a shared delivery dropped here (expired, too large for the client) is done: no ack will come
      if (forwarded === null) sharedDropped.get(packet)?.();
      return forwarded;
    }) as never,
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

  const events = aedes as unknown as NodeJS.EventEmitter;
  shared.deliveries.source = (aedes as unknown as { mq: { length: number } }).mq;

  // --- reverse delivery -------------------------------------------------------------------------

  const liveFilters = (): string[] => {
    const out: string[] = [];
    const clients = (aedes as unknown as { clients: Record<string, AedesClient> }).clients;
    for (const id in clients) out.push(...Object.keys(clients[id].subscriptions).filter(notShared));
    return out;
  };
  const tails = new TailManager(broker, aedes as never, router, o, logger, gatewayId, () => [...liveFilters(), ...persistence.persistedFilters().filter(notShared)], batcher.own);
  if (o.reverse) {
    events.on('subscribe', (subs: Array<{ topic: string }>) => tails.subscribed(subs.map((s) => s.topic).filter(notShared)));
    events.on('unsubscribe', () => tails.changed());
    events.on('clientDisconnect', () => tails.changed());
    persistence.onSessionsChanged = () => tails.changed();
    tails.subscribed(persistence.persistedFilters().filter(notShared));
  }
  if (sharedSubs) {
    events.on('unsubscribe', (topics: string[], client: AedesClient) => {
      if (client.closed) return; // the connection's close ends every membership
      for (const t of topics) {
        const p = isSharedFilter(t) ? parseSharedFilter(t) : undefined;
        if (p && 'group' in p) void sharedSubs.unsubscribe(sharedMembers.get(client)!, p.group, p.filter);
      }
    });
  }

  events.on('connackSent', (packet: { returnCode?: number; reasonCode?: number }, client: AedesClient) => {
    if ((packet.returnCode ?? packet.reasonCode) === 0) guards.get(client)?.connackSent();
  });
  // a SUBSCRIBE naming a filter twice is answered by its Outbound; retained messages sent on
  // SUBSCRIBE at the granted QoS (outbound.ts)
  events.on('subscribe', (subs: Array<{ topic: string; qos: number }>, client: AedesClient) => outbounds.get(client)?.subscribed(subs));
  retainedAtGrantedQoS(events, persistence as never);
  // the Receive Maximum window reopens on PUBACK / PUBCOMP
  events.on('ack', (_packet: unknown, client: AedesClient) => outbounds.get(client)?.acked());
  // MQTT 5 session expiry survives a restart: the deadline of a disconnected session is
  // recorded, and sessions whose deadline passes while the broker is down (or after a restart,
  // when aedes' own timer is gone) are wiped here
  const expiryTimers = new Map<string, NodeJS.Timeout>();
  const armExpiry = (clientId: string, atMs: number) => {
    clearTimeout(expiryTimers.get(clientId));
    const t = setTimeout(() => {
      expiryTimers.delete(clientId);
      if ((aedes as unknown as { clients: Record<string, unknown> }).clients[clientId]) return;
      void persistence.wipeSession(clientId).then(
        () => logger.info({ clientId }, 'mqtt: session expired (recorded before a restart); its state is dropped'),
        (err: Error) => logger.warn({ clientId, err: err.message }, 'mqtt: expired session not wiped'),
      );
    }, Math.min(Math.max(0, atMs - Date.now()), 2_147_483_647));
    t.unref();
    expiryTimers.set(clientId, t);
  };
  events.on('client', (client: AedesClient & { version?: number }) => {
    clearTimeout(expiryTimers.get(client.id));
    expiryTimers.delete(client.id);
    if (persistence.expiries.has(client.id)) void persistence.setSessionExpiry(client.id, null).catch(() => undefined);
  });
  events.on('clientDisconnect', (client: AedesClient & { version?: number; sessionExpiryInterval?: number }) => {
    const interval = client.sessionExpiryInterval ?? 0;
    if (client.version === 5 && !client.clean && interval > 0 && interval < 0xffffffff) {
      void persistence.setSessionExpiry(client.id, Date.now() + interval * 1000).catch(() => undefined);
    }
    outbounds.get(client)?.close();
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
    else armExpiry(clientId, atMs);
  }
  events.on('sessionLimitReached', (client: AedesClient, info: { reason: string; limit: number }) => {
    rareLog('pending-sessions', { clientId: client.id, ...info }, 'mqtt: pendingSessionsMax reached: session or delayed will ended at once');
  });
  events.on('clientError', (client: AedesClient, err: Error) => {
    if (err.message !== 'connection closed') logger.debug({ clientId: client.id, err: err.message }, 'mqtt: client error');
  });
  events.on('connectionError', (_client: AedesClient, err: Error) => logger.debug({ err: err.message }, 'mqtt: connection error'));
  // aedes 2 reports persistence failures of its background work (a will's removal, a
  // session wipe) on 'error'; with no listener an EventEmitter throws, so log them instead
  events.on('error', (err: Error) => logger.warn({ err: err.message }, 'mqtt: background persistence step failed'));
  events.on('keepaliveTimeout', (client: AedesClient) => logger.info({ clientId: client.id }, 'mqtt: keep-alive expired (1.5 × the client\'s interval, MQTT-3.1.2-24); connection closed'));

  // Wills of sessions cut by a crash or restart of this broker: publish them now rather
  // than after aedes' 4 × heartbeat sweep (the previous broker id is never coming back).
  await new Promise<void>((resolve) => {
    const wills: AedesPacket[] = [];
    const s = persistence.streamWill({ [gatewayId]: Date.now() });
    s.on('data', (w: AedesPacket) => wills.push(w));
    s.on('error', () => resolve());
    s.on('end', async () => {
      for (const w of wills) {
        await new Promise<void>((r) => authorizePublish(null, w, (err) => (err ? r() : aedes.publish(w as never, () => r()))));
        await persistence.delWill({ id: w.clientId! });
      }
      if (wills.length > 0) logger.info({ wills: wills.length }, 'mqtt: wills of sessions cut by the previous shutdown published');
      resolve();
    });
  });

  // --- connections ------------------------------------------------------------------------------

  let open = 0;
  const conns = new Set<Duplex>();
  function accept(conn: Duplex, remote: string, req?: IncomingMessage): void {
    if (open >= o.connectionsMax) {
      metrics.refused.inc();
      rareLog('max-conn', { remote, connectionsMax: o.connectionsMax }, 'mqtt: connection refused: connectionsMax reached (CONNACK 3, server unavailable)');
      conn.on('error', () => undefined);
      const t = setTimeout(() => conn.destroy(), o.connectTimeoutMs);
      t.unref();
      conn.once('data', () => refuseConnection(conn, Buffer.from([0x20, 0x02, 0x00, 0x03])));
      conn.once('close', () => clearTimeout(t));
      return;
    }
    open++;
    conns.add(conn);
    metrics.connections.set(open);
    conn.once('close', () => {
      open--;
      conns.delete(conn);
      metrics.connections.set(open);
    });
    const client = aedes.handle(conn as never, req as never) as unknown as AedesClient;
    const guard = new ConnectionGuard(client, conn, shared, remote);
    guards.set(client, guard);
    outbounds.set(client, new Outbound(client as unknown as OutboundClient, guard, { options: o, logger, dropped: metrics.deliveriesDropped, rareLog }));
    wireSharedMember(client, conn, remote, guard);
  }

  /**
   * Shared subscriptions: every connection gets its `$share/...` filters past aedes (share-adapter.ts)
   * and its CONNACK / SUBACK rewritten; with the feature on, it is also a member whose
   * deliveries PUBACK / PUBCOMP settle.
   */
  function wireSharedMember(client: AedesClient, conn: Duplex, remote: string, guard: ConnectionGuard): void {
    const c = client as AedesClient & SharedClientInternals;
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
        if (sharedSubs && p.properties?.sharedSubscriptionAvailable === false) p.properties.sharedSubscriptionAvailable = true;
      } else if (p.cmd === 'suback' && p.messageId !== undefined && p.granted) {
        const sp = subscribes.get(p.messageId);
        if (!sp) return;
        subscribes.delete(p.messageId);
        sp.subscriptions!.forEach((s, i) => {
          const code = shareCodes.get(s);
          if (code !== undefined && i < p.granted!.length) p.granted![i] = code;
        });
      }
    });
    if (!sharedSubs) return;
    const acks = new Map<number, { acked: (err?: Error | null) => void; packet: AedesPacket }>();
    const member: SharedMember = {
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
      deliver(p, acked) {
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
        sharedDropped.set(packet, () => {
          if (acks.get(id)?.packet !== packet) return;
          acks.delete(id);
          acked(null);
        });
        // through the client's Outbound (outbound.ts): its Receive Maximum window counts
        // shared and plain deliveries together
        if (c.clean) return c.deliverQoS(packet, () => undefined);
        // a persistent session: aedes looks the delivery up in the session on PUBACK/PUBREC,
        // so it is put there, in memory only (the group redelivers it, not the session)
        packet.brokerId = sharedBrokerId;
        packet.brokerCounter = ++sharedCounter;
        persistence.trackSharedDelivery(c.id, packet).then(
          () => c.deliverQoS(packet, () => undefined),
          () => c.deliverQoS(packet, () => undefined),
        );
      },
    };
    sharedMembers.set(client, member);
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
      if (!c.clean) void persistence.dropSharedDeliveries(c.id, unacked.map((e) => e.packet)).catch(() => undefined);
      void sharedSubs.disconnected(member);
    });
  }

  const listeners: Listener[] = [];
  const servers: Array<NetServer | HttpServer> = [];
  let wss: WebSocketServer | undefined;
  const host = o.host;
  try {
    if (o.port >= 0) {
      const server = createNetServer({ noDelay: true }, (socket: Socket) => accept(socket, `${socket.remoteAddress}:${socket.remotePort}`));
      await listen(server, o.port, host, 'mqtt');
      servers.push(server);
      listeners.push({ name: 'mqtt', address: addressOf(server, host), listening: () => server.listening, close: () => closeAll() });
    }
    if (o.wsPort >= 0) {
      const http = createHttpServer((_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end(`MQTT over WebSocket: connect to ${o.wsPath} with subprotocol "mqtt"\n`);
      });
      wss = new WebSocketServer({
        server: http,
        path: o.wsPath,
        maxPayload: o.packetBytesMax + 5,
        handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
      });
      // ws re-emits the HTTP server's errors (EADDRINUSE) on the WebSocketServer: without a
      // listener that is an uncaught exception; `listen` below reports it instead
      wss.on('error', () => undefined);
      wss.on('connection', (ws, req) => {
        const stream = createWebSocketStream(ws);
        stream.on('error', () => undefined);
        accept(stream, `${req.socket.remoteAddress}:${req.socket.remotePort}`, req);
      });
      await listen(http, o.wsPort, host, 'mqttWs');
      servers.push(http);
      listeners.push({ name: 'mqttWs', address: addressOf(http, host), listening: () => http.listening, close: () => closeAll() });
    }
  } catch (err) {
    for (const s of servers) s.close();
    tails.close();
    await new Promise<void>((r) => aedes.close(() => r()));
    await batcher.close();
    await persistence.destroy().catch(() => undefined);
    logger.error({ err: (err as Error).message }, 'mqtt: gateway failed to start');
    throw err;
  }
  logger.info({ listeners: Object.fromEntries(listeners.map((l) => [l.name, l.address])), routes: o.routes.length, defaultRoute: o.defaultRoute, auth: o.auth.enabled }, 'mqtt: gateway listening');

  let closing: Promise<void> | undefined;
  function closeAll(): Promise<void> {
    closing ??= (async () => {
      closingGateway = true;
      for (const t of expiryTimers.values()) clearTimeout(t);
      for (const s of servers) s.close();
      wss?.close();
      tails.close();
      await sharedSubs?.close(); // commits and leaves while the coordinator still serves
      await new Promise<void>((r) => aedes.close(() => r()));
      for (const c of conns) c.destroy();
      await batcher.close();
      await persistence.destroy().catch(() => undefined);
      await Promise.all(servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
    })();
    return closing;
  }

  const guardOf = (clientId: string) => {
    const client = (aedes as unknown as { clients: Record<string, object> }).clients[clientId];
    return client ? guards.get(client) : undefined;
  };
  return { listeners, aedes, persistence, batcher, tails, shared: sharedSubs, guardOf, close: closeAll };
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
