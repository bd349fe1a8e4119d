// The HTTP + WebSocket door: dashboards and light devices on uWebSockets.js.
//
//   /ws              the dashboard protocol (protocol.ts; docs/websocket.md)
//   /topics...       HTTP API, /healthz, /metrics, /stats, /groups (http.ts; docs/http.md)
//   /                the web console (console/, static files)
//
// Connection flow: upgrade (subprotocol, token, socket limit decided here, synchronously) →
// open (a refused socket is closed at once with its code from the error table: NOT_AUTHORIZED
// 1008, LIMIT_EXCEEDED 4429) → messages → close.
// A socket's work is bounded: maxSubscriptionsPerSocket, maxInFlightProducesPerSocket,
// maxPayloadBytes per frame, sendBufferPauseBytes of buffered output before it is paused.
import type { BrokerApi, TopicInfo } from '../../host/broker/api.js';
import type { GroupApi } from './group-session.js';
import { asBrokerError, BrokerError, ERRORS, type ErrorName } from '../../host/errors/index.js';
import type { Logger } from '../../host/logging.js';
import type { MetricsRegistry } from '../../host/metrics/registry.js';
import { Authenticator, certificatePrincipal, refuseCrossOrigin, type Access } from './auth.js';
import { CLUSTER_NAME, doorSecurity, Operation, ResourceType, type DoorSecurity } from '../../host/security/index.js';
import { resolveStart } from '../../host/broker/cursor.js';
import { Fanout, PartCursor, Subscription, type Peer } from './fanout.js';
import { compileKeyFilter } from './filter.js';
import { GroupSessions } from './group-session.js';
import { registerHttpRoutes, type GatewayStats } from './http.js';
import type { UplinkStatus } from '../../host/sync/uplink.js';
import { defaultWsGatewayOptions, validateWsGatewayOptions, type WsGatewayOptions } from './options.js';
import type { Listener, TlsOptions } from '../../host/config/listener.js';
import { certificateRefusal, loadTlsMaterial, ServerTls } from '../../host/security/tls.js';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import {
  CBOR_PROTOCOL,
  decodeFrame,
  encodeFrame,
  errorFrame,
  idOf,
  JSON_PROTOCOL,
  parseRequest,
  type ClientRequest,
  type CommitRequest,
  type Encoding,
  type ProduceRequest,
  type SubscribeRequest,
  type ValueDecoder,
} from './protocol.js';
import { sendStatus, SendStatus, type Uws, type UwsTypes } from './uws-loader.js';
import { selectHttpEngine, type HttpEngine } from './engine.js';

export { defaultWsGatewayOptions, type WsGatewayOptions } from './options.js';
export { UwsUnavailableError, loadUws } from './uws-loader.js';
export { selectHttpEngine, type HttpEngine } from './engine.js';
export { JSON_PROTOCOL, CBOR_PROTOCOL } from './protocol.js';

export type { Listener } from '../../host/config/listener.js';

export interface WsGatewayDeps {
  broker: BrokerApi;
  groups?: GroupApi;
  logger: Logger;
  metrics: MetricsRegistry;
  /** True once every listener is up and every log recovered, false again while stopping (GET /readyz). */
  health: () => boolean;
  /** The node's listeners and whether each still listens (GET /healthz); absent: not checked. */
  listeners?: () => Array<{ name: string; up: boolean }>;
  /** The schema registry's decoder for `decode: confluent` readers (absent: such a request is refused). */
  decodeValue?: ValueDecoder;
  /** The node's one authorizer, login limiter and user store (host/security/doors.ts); default: authorization off, no users. */
  security?: DoorSecurity;
  /** The uplink's status view for GET /stats and the console (host/sync/uplink.ts); absent or null: no uplink. */
  uplink?: () => UplinkStatus | null;
  /** The cluster's status as this node sees it (`tributary cluster status --json`'s), for GET /stats and the console; absent or null: a single node. */
  cluster?: () => unknown;
}

/**
 * The close code for a connection-level fault: the `ws` column of the one error table
 * (host/errors/codes.ts; RFC 6455 §7.4, our 4xxx mirror HTTP statuses).
 */
function closeCode(name: ErrorName): number {
  return ERRORS[name].ws;
}

/**
 * Frames between maxPayloadBytes and maxPayloadBytes + this margin are closed with 1009 and a
 * reason; past the margin uWS drops the connection itself. 64 KiB bounds the extra buffering.
 */
const PAYLOAD_HARD_MARGIN_BYTES = 65_536;

interface SocketData {
  id: number;
  encoding: Encoding;
  access: Access | undefined;
  /** Set at upgrade when the socket must be closed as soon as it opens. */
  refused?: { code: number; reason: string };
  remote: string;
  peer?: SocketPeer;
}

class SocketPeer implements Peer {
  alive = true;
  readonly subs = new Map<string, Subscription>();
  inFlightProduces = 0;
  constructor(
    readonly ws: UwsTypes.WebSocket<SocketData>,
    readonly encoding: Encoding,
    readonly access: Access,
    readonly id: number,
    readonly remote: string,
  ) {}
  /**
   * True once a send reported buffered bytes; false again when the buffer is seen empty. While
   * false the buffer is known to be empty, so the fan-out skips a native call per frame.
   */
  private backpressured = false;
  bufferedBytes(): number {
    if (!this.alive) return Number.MAX_SAFE_INTEGER;
    if (!this.backpressured) return 0;
    const n = this.ws.getBufferedAmount();
    if (n === 0) this.backpressured = false;
    return n;
  }
  /** One frame, written at once (uWS writes an uncorked socket directly: one frame = one write either way). */
  send(frame: string | Uint8Array): SendStatus {
    if (!this.alive) return SendStatus.Dropped;
    const status = sendStatus(this.ws.send(frame, typeof frame !== 'string'));
    if (status !== SendStatus.Sent) this.backpressured = true;
    return status;
  }
  answer(frame: Record<string, unknown>): void {
    this.send(encodeFrame(this.encoding, frame));
  }
}

/** Picks our subprotocol from the client's offer: null = none offered (JSON), undefined = none acceptable. */
function chooseProtocol(header: string): { protocol: string; encoding: Encoding } | null | undefined {
  if (!header.trim()) return null;
  for (const p of header.split(',').map((s) => s.trim())) {
    if (p === JSON_PROTOCOL) return { protocol: p, encoding: 'json' };
    if (p === CBOR_PROTOCOL) return { protocol: p, encoding: 'cbor' };
  }
  return undefined;
}

/**
 * Starts the door in named steps: options checked, the engine chosen (`http.engine`: native
 * uWS or node:http + ws), the socket route, the heartbeat, the HTTP routes on the same app, then the listen.
 */
export async function startWsGateway(deps: WsGatewayDeps, options: WsGatewayOptions): Promise<Listener> {
  const opts: WsGatewayOptions = { ...defaultWsGatewayOptions, ...options };
  validateWsGatewayOptions(opts);
  const engine = await selectHttpEngine(opts.engine, deps.logger, opts.tls); // engine 'uws' without a native build: UwsUnavailableError
  const gateway = new WsGateway(deps, opts, engine);
  const uws = engine.uws;
  gateway.registerSocketRoute();
  gateway.startHeartbeat();
  registerHttpRoutes(gateway.app, uws, { ...deps, auth: gateway.auth, stats: () => gateway.stats(), groupSessions: gateway.groupSessions }, opts);
  return gateway.listen();
}

/** The door's app and, with TLS, what SIGHUP does to it. */
export interface DoorApp {
  app: UwsTypes.TemplatedApp;
  reloadTls?: () => Array<{ listener: string; ok: boolean }>;
}

/**
 * The door's app: plain, or TLS. On the node engine an https server from host/security/tls.ts's
 * options (client certificates with requestCert, the CRL, the handshake bound), tracked so SIGHUP
 * swaps its context live. On uWS an SSLApp reading the PEM files itself: it cannot swap a live
 * context for every client (gateway/ws/engine.ts), so a SIGHUP re-checks the files and says they
 * apply at the next start. The one place an app is made.
 */
export function createApp(engine: Pick<HttpEngine, 'name' | 'uws' | 'node'>, tls: TlsOptions | null, logger: Logger, onRefused: (reason: string) => void = () => undefined): DoorApp {
  if (!tls) return { app: engine.uws.App() };
  if (engine.node) {
    const serverTls = new ServerTls('http', 'http.tls', tls, logger);
    // Mutual TLS: the handshake completes and every request of a connection whose certificate is
    // refused gets 401 / close 1008 with the reason (ServerTls.serverOptions 'door').
    const refusal = tls.requestCert
      ? (socket: TLSSocket) => {
          const reason = certificateRefusal(socket, 'http.tls');
          if (reason !== null) onRefused(reason);
          return reason;
        }
      : undefined;
    const app = engine.node.SecureApp(serverTls.serverOptions('door'), refusal);
    serverTls.track(app.server as unknown as TlsServer); // an https.Server is a tls.Server
    return { app: app as unknown as UwsTypes.TemplatedApp, reloadTls: () => [serverTls.reload()] };
  }
  loadTlsMaterial('http.tls', tls); // the node checked the files already; code callers get the same errors
  logger.warn({ listener: 'http', setting: 'http.engine' }, 'http.engine uws with http.tls: a renewed certificate applies at the next start (uWebSockets.js cannot swap it live), see docs/security.md#tls');
  return { app: engine.uws.SSLApp({ key_file_name: tls.keyFile, cert_file_name: tls.certFile }), reloadTls: () => reloadUwsTls(tls, logger) };
}

/** SIGHUP on the uWS door: the files are checked (a broken one is reported now), but take effect at the next start. */
function reloadUwsTls(tls: TlsOptions, logger: Logger): Array<{ listener: string; ok: boolean }> {
  try {
    loadTlsMaterial('http.tls', tls);
  } catch (err) {
    logger.warn({ listener: 'http', setting: 'http.tls' }, `TLS reload failed, keeping the previous certificate: ${(err as Error).message}`);
    return [{ listener: 'http', ok: false }];
  }
  logger.warn({ listener: 'http', setting: 'http.tls' }, 'TLS files checked; uWebSockets.js applies them at the next start (it cannot swap a live certificate; http.engine auto or node can)');
  return [{ listener: 'http', ok: false }];
}

type WsMetrics = ReturnType<typeof wsMetrics>;

function wsMetrics(metrics: MetricsRegistry) {
  return {
    connections: metrics.gauge('tributary_ws_connections', 'Open WebSocket connections (HTTP/WebSocket gateway)'),
    wsFramesIn: metrics.counter('tributary_ws_frames_received_total', 'WebSocket frames received, by type'),
    wsErrors: metrics.counter('tributary_ws_errors_total', 'Error answers sent on WebSocket, by code'),
    wsClosed: metrics.counter('tributary_ws_refused_total', 'WebSocket connections refused or closed by a limit, by close code'),
    certificateRefusals: metrics.counter('tributary_http_client_certificate_refused_total', 'HTTP requests and WebSocket upgrades refused for their client certificate (http.tls.requestCert: none, another CA, expired, revoked)'),
  };
}

/** The door's state (sockets, fan-out, group sessions, the uWS app) with one method per socket event and request type. */
class WsGateway {
  readonly auth: Authenticator;
  private readonly security: DoorSecurity;
  readonly app: UwsTypes.TemplatedApp;
  private readonly reloadTls: DoorApp['reloadTls'];
  readonly groupSessions: GroupSessions | undefined;
  private readonly broker: BrokerApi;
  private readonly logger: Logger;
  private readonly metrics: WsMetrics;
  private readonly fanout: Fanout;
  private readonly sockets = new Set<SocketPeer>();
  private socketsOpenOrOpening = 0;
  private nextSocketId = 1;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: WsGatewayDeps,
    private readonly opts: WsGatewayOptions,
    private readonly engine: HttpEngine,
  ) {
    const { broker, logger, metrics } = deps;
    this.broker = broker;
    this.logger = logger;
    this.security = deps.security ?? doorSecurity(undefined, () => undefined);
    this.auth = new Authenticator(opts.tokens, this.security);
    this.metrics = wsMetrics(metrics);
    this.fanout = new Fanout(broker, opts, logger, {
      recordsSent: metrics.counter('tributary_ws_records_sent_total', 'Records sent to WebSocket subscribers, by topic'),
      framesSent: metrics.counter('tributary_ws_frames_sent_total', 'records frames sent to WebSocket subscribers, by topic'),
      pauses: metrics.counter('tributary_ws_subscriber_pauses_total', 'Times a WebSocket subscriber was paused for backpressure, by topic'),
    });
    this.groupSessions = deps.groups
      ? new GroupSessions(
          deps.groups,
          broker,
          this.fanout,
          logger,
          { sessionTimeoutMs: opts.groupSessionTimeoutMs, rebalanceTimeoutMs: opts.groupRebalanceTimeoutMs, autoCommitIntervalMs: opts.groupAutoCommitIntervalMs },
          (sub) => (sub.peer as SocketPeer).remote,
        )
      : undefined;
    this.metrics.connections.set(0);
    const door = createApp(engine, opts.tls, logger, (reason) => {
      this.metrics.certificateRefusals.inc();
      logger.debug({ clientCertificate: reason }, 'request refused: client certificate (401 / close 1008)');
    });
    this.app = door.app;
    this.reloadTls = door.reloadTls;
  }

  private get uws(): Uws {
    return this.engine.uws;
  }

  /** The dashboard protocol's route (`opts.path`). */
  registerSocketRoute(): void {
    const opts = this.opts;
    this.app.ws<SocketData>(opts.path, {
      // uWS drops a connection past maxPayloadLength without a close frame (the peer sees 1006);
      // we let frames up to a hard ceiling through and close the ones past our limit with 1009.
      maxPayloadLength: opts.maxPayloadBytes + PAYLOAD_HARD_MARGIN_BYTES,
      idleTimeout: opts.idleTimeoutSec,
      maxBackpressure: opts.maxBackpressureBytes,
      closeOnBackpressureLimit: true as unknown as number, // typed as number in 20.30's d.ts, a boolean in the C++ API
      sendPingsAutomatically: true,
      compression: this.uws.DISABLED,
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (ws) => this.open(ws),
      message: (ws, message, isBinary) => this.message(ws, message, isBinary),
      drain: (ws) => {
        const peer = ws.getUserData().peer;
        if (peer) this.fanout.drained(peer);
      },
      close: (ws, code) => this.close(ws, code),
    });
  }

  /** Subprotocol, token and socket limit, decided here, synchronously. */
  private upgrade(res: UwsTypes.HttpResponse, req: UwsTypes.HttpRequest, context: UwsTypes.us_socket_context_t): void {
    // Everything is read synchronously: req is valid only inside this callback.
    if (refuseCrossOrigin(res, req, this.security.options.allowedOrigins, this.logger, this.metrics.wsClosed)) return;
    const key = req.getHeader('sec-websocket-key');
    const offered = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const authorization = req.getHeader('authorization');
    const queryToken = req.getQuery('access_token') ?? '';
    const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
    const chosen = chooseProtocol(offered);
    if (chosen === undefined) {
      this.metrics.wsClosed.inc({ code: '400' });
      res.writeStatus('400 Bad Request').writeHeader('content-type', 'text/plain').end(`unsupported WebSocket subprotocol "${offered}": use ${JSON_PROTOCOL} or ${CBOR_PROTOCOL}\n`);
      return;
    }
    const access = this.auth.authenticate(authorization, queryToken, remote.replace(/^::ffff:/, ''), certificatePrincipal(res));
    const data: SocketData = { id: this.nextSocketId++, encoding: chosen?.encoding ?? 'json', access, remote };
    if (!access) data.refused = { code: closeCode('NOT_AUTHORIZED'), reason: 'unauthorized: missing or unknown bearer token' };
    else if (this.socketsOpenOrOpening >= this.opts.connectionsMax) data.refused = { code: closeCode('LIMIT_EXCEEDED'), reason: `too many sockets (connectionsMax=${this.opts.connectionsMax})` };
    else this.socketsOpenOrOpening++;
    res.upgrade(data, key, chosen?.protocol ?? '', extensions, context);
  }

  /** A refused socket is closed at once with its code; an accepted one becomes a peer. */
  private open(ws: UwsTypes.WebSocket<SocketData>): void {
    const data = ws.getUserData();
    if (data.refused) {
      this.metrics.wsClosed.inc({ code: String(data.refused.code) });
      ws.end(data.refused.code, data.refused.reason);
      return;
    }
    const peer = new SocketPeer(ws, data.encoding, data.access!, data.id, data.remote);
    data.peer = peer;
    this.sockets.add(peer);
    this.metrics.connections.set(this.sockets.size);
  }

  private message(ws: UwsTypes.WebSocket<SocketData>, message: ArrayBuffer, isBinary: boolean): void {
    const peer = ws.getUserData().peer;
    if (!peer) return;
    if (message.byteLength > this.opts.maxPayloadBytes) {
      this.metrics.wsClosed.inc({ code: String(closeCode('MESSAGE_TOO_LARGE')) });
      ws.end(closeCode('MESSAGE_TOO_LARGE'), `frame of ${message.byteLength} bytes is larger than maxPayloadBytes=${this.opts.maxPayloadBytes}`);
      return;
    }
    // The ArrayBuffer is neutered when this callback returns: parse (JSON copies into a
    // string) or copy (CBOR) before anything asynchronous.
    let frame: unknown;
    let req: ClientRequest;
    try {
      const bytes = peer.encoding === 'cbor' ? new Uint8Array(message.slice(0)) : new Uint8Array(message);
      frame = decodeFrame(peer.encoding, bytes, isBinary);
      req = parseRequest(frame, this.opts.valueDepthMax);
    } catch (err) {
      this.sendError(peer, idOf(frame), err);
      return;
    }
    this.metrics.wsFramesIn.inc({ type: req.type });
    void this.handle(peer, req).catch((err) => this.sendError(peer, req.id, err));
  }

  private close(ws: UwsTypes.WebSocket<SocketData>, code: number): void {
    const data = ws.getUserData();
    const peer = data.peer;
    if (!peer) return;
    peer.alive = false;
    this.socketsOpenOrOpening--;
    this.sockets.delete(peer);
    this.metrics.connections.set(this.sockets.size);
    for (const sub of peer.subs.values()) this.endSubscription(sub);
    peer.subs.clear();
    this.fanout.forget(peer);
    void code;
  }

  private sendError(peer: SocketPeer, id: string | number | null, err: unknown): void {
    const e = asBrokerError(err);
    if (e.code === 'UNKNOWN_SERVER_ERROR') this.logger.warn({ err }, 'ws request failed');
    this.metrics.wsErrors.inc({ code: e.code });
    peer.answer(errorFrame(id, e));
  }

  private endSubscription(sub: Subscription): void {
    sub.closed = true;
    for (const c of sub.parts.values()) this.fanout.stop(c);
    if (sub.groupId !== undefined && this.groupSessions) void this.groupSessions.leave(sub);
  }

  private async handle(peer: SocketPeer, req: ClientRequest): Promise<void> {
    switch (req.type) {
      case 'ping':
        peer.answer({ type: 'pong', id: req.id, time: Date.now() });
        return;
      case 'subscribe':
        return this.subscribe(peer, req);
      case 'unsubscribe': {
        const sub = peer.subs.get(req.topic);
        if (!sub) throw new BrokerError('INVALID_REQUEST', `topic: not subscribed to ${req.topic}`);
        peer.subs.delete(req.topic);
        this.endSubscription(sub);
        peer.answer({ type: 'unsubscribed', id: req.id, topic: req.topic });
        return;
      }
      case 'produce':
        return this.produce(peer, req);
      case 'commit':
        return this.commit(peer, req);
    }
  }

  private async subscribe(peer: SocketPeer, req: SubscribeRequest): Promise<void> {
    const { opts, broker, groupSessions, deps } = this;
    peer.access.check(Operation.READ, ResourceType.TOPIC, req.topic);
    if (req.group !== undefined) peer.access.check(Operation.READ, ResourceType.GROUP, req.group);
    if (peer.subs.has(req.topic)) throw new BrokerError('INVALID_REQUEST', `topic: already subscribed to ${req.topic} on this socket; unsubscribe first`);
    if (peer.subs.size >= opts.maxSubscriptionsPerSocket) throw new BrokerError('LIMIT_EXCEEDED', `too many subscriptions on this socket (maxSubscriptionsPerSocket=${opts.maxSubscriptionsPerSocket})`);
    const info = broker.describeTopic(req.topic);
    if (!info) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic ${req.topic}`);
    const matcher = req.filter !== undefined ? compileKeyFilter(req.filter) : undefined;
    if (req.partitions !== 'all') {
      for (const p of req.partitions) if (p >= info.partitions) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `partitions: topic ${req.topic} has partitions 0..${info.partitions - 1}, not ${p}`);
    }
    if (req.group !== undefined && !groupSessions) throw new BrokerError('COORDINATOR_NOT_AVAILABLE', 'group: consumer groups are not available on this broker');

    // Reserve the slot before any await so two concurrent subscribes cannot both pass the checks.
    if (req.decode && !deps.decodeValue) throw new BrokerError('INVALID_REQUEST', 'decode: no schema registry on this broker');
    const sub = new Subscription(peer, req.id, req.topic, req.encoding, req.filter, matcher, req.group);
    if (req.decode) {
      sub.decode = deps.decodeValue;
      sub.shareKey += '|confluent';
    }
    peer.subs.set(req.topic, sub);
    try {
      if (req.group !== undefined) {
        await groupSessions!.join(sub, req, info);
        return;
      }
      const partitions = req.partitions === 'all' ? [...Array(info.partitions).keys()] : req.partitions;
      const starts = await Promise.all(partitions.map((p) => this.startOffset(info, p, req)));
      if (sub.closed) return;
      partitions.forEach((p, i) => sub.parts.set(p, new PartCursor(sub, p, starts[i])));
      peer.answer({
        type: 'subscribed',
        id: req.id,
        topic: req.topic,
        partitions: partitions.map((p, i) => ({ partition: p, offset: starts[i], highWatermark: broker.offsets({ topic: req.topic, partition: p }).highWatermark })),
      });
      for (const c of sub.parts.values()) this.fanout.start(c);
    } catch (err) {
      if (peer.subs.get(req.topic) === sub) peer.subs.delete(req.topic);
      this.endSubscription(sub);
      throw err;
    }
  }

  /** Where a partition's delivery starts; explicit offsets are clamped into [logStart, highWatermark]. */
  private startOffset(info: TopicInfo, partition: number, req: SubscribeRequest): Promise<number> {
    return resolveStart(this.broker, { topic: info.name, partition }, req.start);
  }

  private async produce(peer: SocketPeer, req: ProduceRequest): Promise<void> {
    const { opts, broker } = this;
    peer.access.check(Operation.WRITE, ResourceType.TOPIC, req.topic);
    if (!broker.describeTopic(req.topic) && !peer.access.can(Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)) peer.access.check(Operation.CREATE, ResourceType.TOPIC, req.topic);
    if (peer.inFlightProduces >= opts.maxInFlightProducesPerSocket) {
      throw new BrokerError('LIMIT_EXCEEDED', `too many produce requests waiting for their ack on this socket (maxInFlightProducesPerSocket=${opts.maxInFlightProducesPerSocket})`);
    }
    peer.inFlightProduces++;
    try {
      const info = await broker.ensureTopic(req.topic);
      if (req.partition !== undefined && req.partition >= info.partitions) {
        throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `partition: topic ${req.topic} has partitions 0..${info.partitions - 1}, not ${req.partition}`);
      }
      const results = await broker.produce(req.topic, req.records, { acks: -1, partition: req.partition });
      peer.answer({ type: 'ack', id: req.id, topic: req.topic, offsets: results.map((r) => ({ partition: r.partition, offset: r.offset })) });
    } finally {
      peer.inFlightProduces--;
    }
  }

  private async commit(peer: SocketPeer, req: CommitRequest): Promise<void> {
    const sub = peer.subs.get(req.topic);
    if (!sub || sub.groupId === undefined || !this.groupSessions) throw new BrokerError('INVALID_REQUEST', `topic: commit needs a group subscription to ${req.topic} on this socket`);
    await this.groupSessions.commit(sub, req.offsets);
    peer.answer({ type: 'committed', id: req.id, topic: req.topic });
  }

  /** Heartbeat/lag frames: one per socket with subscriptions, skipped while the socket is backed up. */
  startHeartbeat(): void {
    if (this.opts.heartbeatIntervalMs <= 0) return;
    this.heartbeat = setInterval(() => this.sendHeartbeats(), this.opts.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  private sendHeartbeats(): void {
    const now = Date.now();
    for (const peer of this.sockets) {
      if (peer.subs.size === 0 || peer.bufferedBytes() >= this.opts.sendBufferPauseBytes) continue;
      const subscriptions: Array<Record<string, unknown>> = [];
      for (const sub of peer.subs.values()) {
        for (const c of sub.parts.values()) {
          let hw = -1;
          try {
            hw = this.broker.offsets({ topic: sub.topic, partition: c.partition }).highWatermark;
          } catch {
            hw = -1; // topic deleted meanwhile
          }
          subscriptions.push({ topic: sub.topic, partition: c.partition, offset: c.cursor, highWatermark: hw, lag: hw < 0 ? null : Math.max(0, hw - c.cursor), state: c.state });
        }
      }
      peer.answer({ type: 'heartbeat', time: now, subscriptions });
    }
  }

  stats(): GatewayStats {
    const sockets = this.sockets;
    return {
      build: this.engine.build,
      engine: this.engine.name,
      sockets: sockets.size,
      subscriptions: [...sockets].reduce((n, p) => n + p.subs.size, 0),
      tails: this.fanout.tailCount,
      peers: [...sockets].slice(0, 200).map((p) => ({ id: p.id, encoding: p.encoding, subscriptions: [...p.subs.keys()], bufferedBytes: p.bufferedBytes() })),
    };
  }

  /** Binds the app; the listener closes every socket with BROKER_NOT_AVAILABLE and ends the group sessions. */
  async listen(): Promise<Listener> {
    const { opts, uws, app } = this;
    const listenSocket = await new Promise<UwsTypes.us_listen_socket>((resolve, reject) => {
      app.listen(opts.host, opts.port, (s) => (s ? resolve(s) : reject(new Error(`HTTP/WebSocket listener could not bind ${opts.host}:${opts.port} (address in use or not permitted)`))));
    });
    const port = uws.us_socket_local_port(listenSocket as unknown as UwsTypes.us_socket);
    const address = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
    this.logger.info({ address, engine: this.engine.name, build: this.engine.build, path: opts.path, tls: opts.tls !== null, mutualTls: opts.tls?.requestCert === true, crl: Boolean(opts.tls?.crlFile) }, `HTTP and WebSocket listener up on ${this.engine.name === 'uws' ? 'uWebSockets.js' : 'node:http + ws'}`);

    let closed = false;
    const reloadTls = this.reloadTls;
    return {
      name: 'http',
      address,
      engine: `${this.engine.name}: ${this.engine.build}`,
      listening: () => !closed,
      ...(reloadTls ? { reloadTls } : {}),
      close: async () => {
        if (closed) return;
        closed = true;
        if (this.heartbeat) clearInterval(this.heartbeat);
        uws.us_listen_socket_close(listenSocket);
        for (const peer of [...this.sockets]) {
          try {
            peer.ws.end(closeCode('BROKER_NOT_AVAILABLE'), 'broker shutting down');
          } catch {
            // already closed
          }
        }
        await this.groupSessions?.closeAll();
      },
    };
  }
}
