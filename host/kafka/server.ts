// The Kafka listener: TCP framing, request dispatch, in-order responses, bounds.
//
// Frame: int32 size (of what follows) + request header + body. The size is checked the moment
// its 4 bytes arrive, before anything is allocated for the frame: ≤ 0 or > maxRequestBytes logs
// and closes the connection (the stream cannot be resynchronised). A frame arriving whole in
// one socket chunk is a view of that chunk (no copy); otherwise it is assembled once.
//
// Order: requests on one connection are dispatched as they arrive and may complete out of
// order (a long-poll fetch behind a produce), but responses are written strictly in request
// order (Kafka's guarantee to clients). A Produce with acks=0 holds its slot and writes nothing.
//
// Bounds (per connection): at most maxInFlightRequestsPerConnection requests, and at most
// maxInFlightBytesPerConnection request bytes, between arrival and response write; past either,
// the socket is paused (TCP backpressure reaches the client) and resumed as responses drain.
// The same pause happens while the socket's write buffer is full ('drain' resumes). Beyond
// connectionsMax a new connection is closed at once with a log line.
//
// Malformed input: an unparseable header or body closes the connection with a warn log (Kafka
// does the same); an unknown API key or unsupported version whose header parsed gets an
// UNSUPPORTED_VERSION (35) answer — for ApiVersions, Kafka's v0-format answer listing our
// versions; for other APIs, a response header followed by the int16 error code 35.
import net from 'node:net';
import type { BrokerApi } from '../broker/api.js';
import type { Logger } from '../logging.js';
import type { MetricsRegistry } from '../metrics/registry.js';
import { LATENCY_BUCKETS_MS } from '../metrics/registry.js';
import { ProducerIds } from '../broker/producer-ids.js';
import { decode, encode, ProtocolError, Reader } from './protocol/codec.js';
import { finishFrame, readHeaderTaggedFields, readRequestHeader, startResponse, type RequestHeader } from './protocol/header.js';
import { apiRegistry } from './apis/registry.js';
import { API_VERSIONS_KEY, apiVersionList, apiVersionsResponseSchema } from './apis/api-versions.js';
import { isLazyApi, NO_RESPONSE, NO_RESPONSE_CLOSE, type ApiEntry, type ApiHandler, type ClusterView, type GroupCoordinatorRef, type NodeInfo, type RequestContext } from './apis/types.js';
import { join } from 'node:path';
import { defaultKafkaServerOptions, validateKafkaOptions, type KafkaServerOptions } from './options.js';
import type { Listener } from '../config/listener.js';
import { ERRORS } from '../errors/index.js';
import { principalText, type Principal } from '../security/index.js';
import { peerPrincipal, ServerTls } from '../security/tls.js';
import { anonymousAllowed, kafkaSecurity, SaslSession, type KafkaSecurity } from './security.js';
import type { MetadataStore } from '../broker/metadata/store.js';

/** Requests a client may send before (or between) SASL sessions. */
const SASL_HANDSHAKE_KEY = 17;
const SASL_AUTHENTICATE_KEY = 36;
const ALWAYS_ALLOWED = new Set([API_VERSIONS_KEY, SASL_HANDSHAKE_KEY, SASL_AUTHENTICATE_KEY]);

// The options live in options.ts so the API handlers can read them without importing the server.
export { defaultKafkaServerOptions, type KafkaServerOptions } from './options.js';

export type { Listener } from '../config/listener.js';

export interface KafkaServerDeps {
  broker: BrokerApi;
  groups: GroupCoordinatorRef;
  logger: Logger;
  metrics: MetricsRegistry;
  /** Producer-id allocator; opened under options.dataDir when absent. */
  producerIds?: ProducerIds;
  /** Handler table (tests may pass a subset); the registered table when absent. */
  handlers?: ReadonlyMap<number, ApiEntry>;
  /** SASL, ACLs and the login limiter; built from the defaults and the broker's metadata store when absent. */
  security?: KafkaSecurity;
  /** A cluster's brokers and controller (Metadata, DescribeCluster); absent on one node. */
  cluster?: ClusterView;
}

interface Slot {
  done: boolean;
  chunks: Uint8Array[] | null; // null = nothing to write (acks=0)
  requestBytes: number;
  /** Close the connection once this slot's turn comes (earlier responses are written first). */
  closeAfter?: boolean;
}

let nextConnectionId = 1;

/** Frames below this size are copied out of the socket chunk rather than viewed (see drainIncoming). */
const SMALL_FRAME_BYTES = 16 * 1024;

class Connection {
  readonly id = nextConnectionId++;
  private readonly pending: Slot[] = [];
  /** Resolves when the latest dispatched request lets the next one start. */
  private gate: Promise<void> = Promise.resolve();
  private inFlightBytes = 0;
  private readonly incoming: Buffer[] = [];
  private incomingBytes = 0;
  private writeBlocked = false;
  private readPaused = false;
  /** The next frame's API handler is loading (host/kafka/apis/registry.ts): reading waits. */
  private apiLoading = false;
  private closed = false;
  private unsupportedLogged = 0;
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private readonly remote: string;
  readonly session: SaslSession;

  constructor(
    private readonly socket: net.Socket,
    private readonly server: KafkaServer,
  ) {
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.log = server.log.child({ conn: this.id, remote: this.remote });
    this.session = new SaslSession(anonymousAllowed(server.security.options, server.options.host));
    socket.setNoDelay(true);
    socket.setTimeout(server.options.idleTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      this.writeBlocked = false;
      this.updateFlow();
    });
    socket.on('timeout', () => {
      if (this.pending.length === 0) {
        this.log.info('closing idle connection');
        socket.destroy();
      } else {
        socket.setTimeout(server.options.idleTimeoutMs); // busy, not idle: look again later
      }
    });
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'socket error'));
    socket.on('close', () => this.onClose());
  }

  private onClose(): void {
    this.closed = true;
    this.abort.abort();
    this.server.connectionClosed(this);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private fail(reason: string, extra: Record<string, unknown> = {}): void {
    if (this.closed) return;
    this.log.warn({ ...extra }, `closing connection: ${reason}`);
    this.server.metrics_.protocolErrors.inc();
    this.closed = true;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.incoming.push(chunk);
    this.incomingBytes += chunk.length;
    this.drainIncoming();
  }

  private peekInt32(): number {
    const first = this.incoming[0]!;
    if (first.length >= 4) return first.readInt32BE(0);
    const four = Buffer.allocUnsafe(4);
    this.copyOut(four, 0, 4);
    return four.readInt32BE(0);
  }

  /** Copies `n` bytes starting at `from` of the incoming queue into `dst` (without consuming). */
  private copyOut(dst: Buffer, from: number, n: number): void {
    let written = 0;
    let skip = from;
    for (const c of this.incoming) {
      if (skip >= c.length) {
        skip -= c.length;
        continue;
      }
      const take = Math.min(c.length - skip, n - written);
      c.copy(dst, written, skip, skip + take);
      written += take;
      skip = 0;
      if (written === n) return;
    }
  }

  private consume(n: number): void {
    this.incomingBytes -= n;
    while (n > 0) {
      const c = this.incoming[0]!;
      if (c.length <= n) {
        n -= c.length;
        this.incoming.shift();
      } else {
        this.incoming[0] = c.subarray(n);
        n = 0;
      }
    }
  }

  private drainIncoming(): void {
    const opts = this.server.options;
    while (!this.closed && this.incomingBytes >= 4 && !this.atLimit() && !this.apiLoading) {
      const size = this.peekInt32();
      if (size <= 0 || size > opts.maxRequestBytes) {
        return this.fail(`request size ${size} outside 1..${opts.maxRequestBytes} (maxRequestBytes)`, { size });
      }
      if (this.incomingBytes < 4 + size) break;
      // The frame's API handler not loaded yet: leave the frame queued, read nothing more, and
      // come back once its module has loaded (or failed), so requests still run in arrival order.
      const loading = size >= 4 ? this.server.apiLoad(this.peekInt16(4), this.peekInt16(6)) : null;
      if (loading) {
        this.waitForApi(loading);
        break;
      }
      let frame: Buffer;
      const first = this.incoming[0]!;
      if (first.length >= 4 + size) {
        // A view of the socket chunk (no copy), except for small frames: a view would keep the
        // whole chunk (up to 64 KiB) alive while the request is in flight, past what
        // maxInFlightBytesPerConnection accounts for.
        frame = size >= SMALL_FRAME_BYTES ? first.subarray(4, 4 + size) : Buffer.from(first.subarray(4, 4 + size));
      } else {
        frame = Buffer.allocUnsafe(size);
        this.copyOut(frame, 4, size);
      }
      this.consume(4 + size);
      this.dispatch(frame);
    }
    this.updateFlow();
  }

  /** The int16 at `from` of the incoming queue (the first frame's API key at 4, its version at 6). */
  private peekInt16(from: number): number {
    const two = Buffer.allocUnsafe(2);
    this.copyOut(two, from, 2);
    return two.readInt16BE(0);
  }

  private waitForApi(loading: Promise<void>): void {
    this.apiLoading = true;
    void loading.then(() => {
      this.apiLoading = false;
      if (!this.closed) this.drainIncoming();
    });
  }

  private atLimit(): boolean {
    const o = this.server.options;
    return this.pending.length >= o.maxInFlightRequestsPerConnection || this.inFlightBytes >= o.maxInFlightBytesPerConnection;
  }

  private updateFlow(): void {
    if (this.closed) return;
    const shouldPause = this.writeBlocked || this.atLimit() || this.apiLoading;
    if (shouldPause && !this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    } else if (!shouldPause && this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
      if (this.incomingBytes >= 4) this.drainIncoming();
    }
  }

  /** Header → version check → body → session check → the handler, in arrival order → the response. */
  private dispatch(frame: Buffer): void {
    const r = new Reader(frame);
    let header: RequestHeader;
    try {
      header = readRequestHeader(r);
    } catch (err) {
      return this.fail(`unparseable request header: ${(err as Error).message}`);
    }
    const entry = this.server.handlers.get(header.apiKey);
    const slot: Slot = { done: false, chunks: null, requestBytes: frame.length };
    this.pending.push(slot);
    this.inFlightBytes += frame.length;
    if (!entry || header.apiVersion < entry.minVersion || header.apiVersion > entry.maxVersion) return this.answerUnsupported(slot, header, entry);
    const handler = this.server.loadedHandler(entry);
    if (!handler) return this.answerUnloaded(slot, header, entry);
    const flexible = header.apiVersion >= handler.flexibleFrom;
    let body: unknown;
    try {
      if (flexible) readHeaderTaggedFields(r);
      body = decode(handler.request, r, header.apiVersion, flexible);
    } catch (err) {
      if (!(err instanceof ProtocolError)) this.log.error({ err, api: handler.name }, 'request decoding failed unexpectedly');
      return this.fail(`malformed ${handler.name} v${header.apiVersion} request: ${(err as Error).message}`, { clientId: header.clientId, correlationId: header.correlationId });
    }
    if (this.refusedBySession(header.apiKey, handler.name, frame.length)) return;
    this.run(slot, header, handler, body, flexible);
  }

  /**
   * A request whose handler module failed to load (logged by the server with the module and the
   * cause): answered UNKNOWN_SERVER_ERROR in the same short form as an unsupported version, and
   * the connection stays open for the APIs that did load.
   */
  private answerUnloaded(slot: Slot, header: RequestHeader, entry: ApiEntry): void {
    this.server.metrics_.unloaded.inc({ api: entry.name });
    const w = startResponse(header.correlationId, 0);
    w.int16(ERRORS.UNKNOWN_SERVER_ERROR.kafka);
    this.complete(slot, finishFrame(w));
  }

  /** An unknown API key or a version outside the handler's range: Kafka's UNSUPPORTED_VERSION answer. */
  private answerUnsupported(slot: Slot, header: RequestHeader, handler: ApiEntry | undefined): void {
    this.server.metrics_.unsupported.inc({ api: String(header.apiKey) });
    // Logged once per connection at info (a client probing versions, or a flood), then at debug.
    const level = this.unsupportedLogged++ === 0 ? 'info' : 'debug';
    this.log[level]({ apiKey: header.apiKey, apiVersion: header.apiVersion, clientId: header.clientId }, handler ? `unsupported ${handler.name} version` : 'unknown API key');
    this.complete(slot, this.unsupportedResponse(header));
  }

  /** What a handler sees of this request and this connection. */
  private requestContext(slot: Slot, header: RequestHeader): RequestContext {
    return {
      ...this.securityContext(slot),
      apiKey: header.apiKey,
      apiVersion: header.apiVersion,
      correlationId: header.correlationId,
      clientId: header.clientId,
      connectionId: this.id,
      remoteAddress: this.remote,
      broker: this.server.broker,
      groups: this.server.groups,
      logger: this.log,
      metrics: this.server.metrics,
      node: this.server.nodeInfo(this.socket),
      signal: this.abort.signal,
      handlers: this.server.handlers,
      producerIds: this.server.producerIds,
      options: this.server.options,
      release: () => {},
    };
  }

  /** Runs the handler once the previous request let go (RequestContext.release), then answers. */
  private run(slot: Slot, header: RequestHeader, handler: ApiHandler, body: unknown, flexible: boolean): void {
    const ctx = this.requestContext(slot, header);
    // One request at a time takes effect, in arrival order (see RequestContext.release).
    const previous = this.gate;
    let release!: () => void;
    this.gate = new Promise<void>((r) => (release = r));
    ctx.release = release;
    const started = performance.now();
    const m = this.server.metrics_;
    previous
      .then(() => handler.handle(body, ctx))
      .finally(release)
      .then(
        (res) => {
          m.requests.inc({ api: handler.name });
          m.latency.observe(performance.now() - started, { api: handler.name });
          this.answer(slot, header, handler, res, flexible);
        },
        (err: unknown) => {
          this.log.error({ err, api: handler.name, apiVersion: header.apiVersion }, 'request handler failed');
          this.fail(`${handler.name} handler failed: ${(err as Error)?.message ?? err}`);
        },
      );
  }

  /** Encodes a handler's response into its slot (or none: NO_RESPONSE / NO_RESPONSE_CLOSE). */
  private answer(slot: Slot, header: RequestHeader, handler: ApiHandler, res: unknown, flexible: boolean): void {
    if (this.closed) return;
    if (res === NO_RESPONSE) return this.complete(slot, null);
    if (res === NO_RESPONSE_CLOSE) {
      slot.closeAfter = true;
      return this.complete(slot, null);
    }
    const headerVersion = header.apiKey === API_VERSIONS_KEY || !flexible ? 0 : 1;
    let chunks: Uint8Array[];
    try {
      const w = startResponse(header.correlationId, headerVersion);
      encode(handler.response, res as object, header.apiVersion, flexible, w);
      chunks = finishFrame(w);
    } catch (err) {
      // A response we cannot encode is our bug: say so, and drop only this connection.
      this.log.error({ err, api: handler.name, apiVersion: header.apiVersion }, 'response encoding failed');
      return this.fail(`${handler.name} v${header.apiVersion} response could not be encoded`);
    }
    this.complete(slot, chunks);
  }

  /**
   * Before authentication (when anonymous clients are not allowed), during a SASL exchange or
   * after the session expired, only ApiVersions/SaslHandshake/SaslAuthenticate may run: anything
   * else closes the connection without an answer, as Kafka does (the log says why).
   */
  private refusedBySession(apiKey: number, api: string, frameBytes: number): boolean {
    if (ALWAYS_ALLOWED.has(apiKey)) return false;
    const refusal = this.session.refusal(Date.now());
    if (!refusal) return false;
    this.pending.pop(); // this request's slot, pushed last
    this.inFlightBytes -= frameBytes;
    this.log.info({ api, principal: principalText(this.session.principal) }, `closing connection: ${refusal}`);
    this.closed = true;
    this.socket.destroy();
    return true;
  }

  /** The request's principal and the one authorize() seam, bound to this connection's session and address. */
  private securityContext(slot: Slot): Pick<RequestContext, 'principal' | 'principalText' | 'authorize' | 'session' | 'security' | 'closeAfterResponse'> {
    const session = this.session;
    const security = this.server.security;
    const host = this.remote.replace(/:\d+$/, '').replace(/^\[|\]$/g, '').replace(/^::ffff:/, '');
    return {
      principal: session.principal,
      principalText: principalText(session.principal),
      authorize: (operation, resourceType, name) => security.authorizer.authorize(session.principal, operation, { type: resourceType, name }, host),
      session,
      security,
      closeAfterResponse: () => void (slot.closeAfter = true),
    };
  }

  private unsupportedResponse(header: RequestHeader): Uint8Array[] {
    const w = startResponse(header.correlationId, 0);
    if (header.apiKey === API_VERSIONS_KEY) {
      // Kafka answers an unknown ApiVersions version in v0 format with our range (KIP-511).
      encode(apiVersionsResponseSchema, { errorCode: ERRORS.UNSUPPORTED_VERSION.kafka, apiKeys: apiVersionList(this.server.handlers) }, 0, false, w);
    } else {
      w.int16(ERRORS.UNSUPPORTED_VERSION.kafka);
    }
    return finishFrame(w);
  }

  private complete(slot: Slot, chunks: Uint8Array[] | null): void {
    slot.done = true;
    slot.chunks = chunks;
    let wrote = false;
    while (this.pending.length > 0 && this.pending[0]!.done) {
      const s = this.pending.shift()!;
      this.inFlightBytes -= s.requestBytes;
      if (s.closeAfter && !this.closed) {
        if (s.chunks) {
          // A response that ends the connection (a failed SASL exchange): written, then closed.
          if (!wrote) this.socket.cork();
          for (const c of s.chunks) this.socket.write(c);
          wrote = true;
        }
        if (wrote) this.socket.uncork();
        wrote = false;
        this.log.info(s.chunks ? 'closing connection after its last response' : 'closing connection: an acks=0 produce failed (the client learns it this way, as with Kafka)');
        this.closed = true;
        this.socket.end(); // flushes what was written before
        setTimeout(() => this.socket.destroy(), 1000).unref(); // a peer that never closes its side
        return;
      }
      if (!s.chunks || this.closed) continue;
      if (!wrote) this.socket.cork();
      wrote = true;
      let ok = true;
      for (const c of s.chunks) ok = this.socket.write(c);
      if (!ok) this.writeBlocked = true;
    }
    if (wrote) this.socket.uncork();
    this.updateFlow();
  }
}

class KafkaServer {
  readonly connections = new Set<Connection>();
  /** Set after construction by startKafkaServer (a cluster's view; absent on one node). */
  cluster: ClusterView | undefined;
  readonly log: Logger;
  readonly metrics_: {
    requests: ReturnType<MetricsRegistry['counter']>;
    unsupported: ReturnType<MetricsRegistry['counter']>;
    protocolErrors: ReturnType<MetricsRegistry['counter']>;
    refused: ReturnType<MetricsRegistry['counter']>;
    latency: ReturnType<MetricsRegistry['histogram']>;
    connections: ReturnType<MetricsRegistry['gauge']>;
    unloaded: ReturnType<MetricsRegistry['counter']>;
  };

  constructor(
    readonly broker: BrokerApi,
    readonly groups: GroupCoordinatorRef,
    logger: Logger,
    readonly metrics: MetricsRegistry,
    readonly options: KafkaServerOptions,
    readonly handlers: ReadonlyMap<number, ApiEntry>,
    readonly producerIds: ProducerIds,
    readonly security: KafkaSecurity,
  ) {
    this.log = logger.child({ component: 'kafka' });
    this.metrics_ = {
      requests: metrics.counter('tributary_kafka_requests_total', 'Kafka requests answered, by API'),
      unsupported: metrics.counter('tributary_kafka_unsupported_requests_total', 'Kafka requests with an unknown API key or unsupported version'),
      protocolErrors: metrics.counter('tributary_kafka_protocol_errors_total', 'Kafka connections closed for malformed input'),
      refused: metrics.counter('tributary_kafka_refused_connections_total', 'Kafka connections refused at connectionsMax'),
      latency: metrics.histogram('tributary_kafka_request_latency_ms', 'Kafka request handling time in milliseconds, by API', LATENCY_BUCKETS_MS),
      connections: metrics.gauge('tributary_kafka_connections', 'Open Kafka connections'),
      unloaded: metrics.counter('tributary_kafka_handler_load_failures_total', 'Kafka requests answered UNKNOWN_SERVER_ERROR because their API handler module failed to load, by API'),
    };
  }

  /** Handlers of lazy APIs, once loaded; and the error of each that failed (logged once). */
  private readonly loadedApis = new Map<number, ApiHandler | Error>();
  private readonly loadingApis = new Map<number, Promise<void>>();

  /**
   * Null when a request of `apiKey` at `apiVersion` can be dispatched now (its handler loaded,
   * failed or eager; an unknown key or a version outside the declared range, answered without
   * loading anything); else a promise that settles once its module has loaded or failed. Never
   * rejects: a failure is logged with the module and the cause, and its requests are answered
   * with an error.
   */
  apiLoad(apiKey: number, apiVersion: number): Promise<void> | null {
    const entry = this.handlers.get(apiKey);
    if (!entry || !isLazyApi(entry) || this.loadedApis.has(apiKey)) return null;
    if (apiVersion < entry.minVersion || apiVersion > entry.maxVersion) return null;
    let loading = this.loadingApis.get(apiKey);
    if (!loading) {
      const started = performance.now();
      loading = entry
        .load()
        .then(
          (handler) => {
            this.loadedApis.set(apiKey, handler);
            this.log.debug({ api: entry.name, ms: Math.round(performance.now() - started) }, `loaded the ${entry.name} handler`);
          },
          (err: unknown) => {
            const error = err instanceof Error ? err : new Error(String(err));
            this.loadedApis.set(apiKey, error);
            this.log.error({ err: error, api: entry.name, module: `host/kafka/apis/${entry.module}` }, `the ${entry.name} handler (host/kafka/apis/${entry.module}) failed to load: its requests are answered UNKNOWN_SERVER_ERROR until the node restarts`);
          },
        )
        .finally(() => this.loadingApis.delete(apiKey));
      this.loadingApis.set(apiKey, loading);
    }
    return loading;
  }

  /** The handler that answers `entry`'s requests, or null when its module failed to load. */
  loadedHandler(entry: ApiEntry): ApiHandler | null {
    if (!isLazyApi(entry)) return entry;
    const handler = this.loadedApis.get(entry.apiKey);
    return handler && !(handler instanceof Error) ? handler : null;
  }

  /** The listener's TLS (files, reload); null = plain TCP. */
  tls: ServerTls | null = null;

  accept(socket: net.Socket, certPrincipal: Principal | null = null): void {
    if (this.connections.size >= this.options.connectionsMax) {
      this.metrics_.refused.inc();
      this.log.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}`, connectionsMax: this.options.connectionsMax }, 'refusing connection: connectionsMax reached');
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, this);
    // Mutual TLS: the certificate's subject is who this connection is, as Kafka's SSL principal;
    // a later SASL login on the same connection replaces it, as Kafka's SASL_SSL does.
    if (certPrincipal) conn.session.authenticateByCertificate(certPrincipal);
    this.connections.add(conn);
    this.metrics_.connections.set(this.connections.size);
  }

  connectionClosed(conn: Connection): void {
    this.connections.delete(conn);
    this.metrics_.connections.set(this.connections.size);
  }

  nodeInfo(socket: net.Socket): NodeInfo {
    let host = this.options.advertisedHost ?? socket.localAddress ?? '127.0.0.1';
    if (host.startsWith('::ffff:')) host = host.slice(7);
    return {
      nodeId: this.options.nodeId,
      clusterId: this.options.clusterId,
      host,
      port: this.options.advertisedPort ?? socket.localPort ?? this.options.port,
      autoCreateTopics: this.options.autoCreateTopicsOnMetadata,
      cluster: this.cluster,
    };
  }
}

/**
 * The listening socket: plain TCP, or TLS (SSL / SASL_SSL in Kafka's words) when `opts.tls` names
 * the files. With TLS a connection reaches `accept` once its handshake is done; a client that
 * speaks plain text to the TLS port fails the handshake and is dropped (counted, logged at debug),
 * the others are not disturbed. With requestCert, the certificate subject is the principal.
 */
function createListenSocket(server: KafkaServer, opts: KafkaServerOptions, logger: Logger): net.Server {
  if (!opts.tls) return net.createServer({ noDelay: true }, (socket) => server.accept(socket));
  server.tls = new ServerTls('kafka', 'kafka.tls', opts.tls, logger.child({ component: 'kafka' }));
  const tcp = server.tls.createServer((socket) => server.accept(socket, peerPrincipal(socket)));
  // Sockets still in their handshake count too: connectionsMax bounds every socket this door holds.
  tcp.maxConnections = opts.connectionsMax;
  tcp.on('drop', (d?: { remoteAddress?: string; remotePort?: number }) => {
    server.metrics_.refused.inc();
    server.log.warn({ remote: `${d?.remoteAddress}:${d?.remotePort}`, connectionsMax: opts.connectionsMax }, 'refusing connection: connectionsMax reached');
  });
  return tcp;
}

/** Starts the Kafka listener; resolves once bound. */
export async function startKafkaServer(deps: KafkaServerDeps, options: Partial<KafkaServerOptions> = {}): Promise<Listener> {
  const opts: KafkaServerOptions = { ...defaultKafkaServerOptions, ...options };
  validateKafkaOptions(opts);
  // Unset, the broker's own default partition count applies (one setting, not two).
  if (opts.defaultPartitions === null) {
    const fromBroker = (deps.broker as { options?: { defaultPartitions?: unknown } }).options?.defaultPartitions;
    opts.defaultPartitions = Number.isInteger(fromBroker) && (fromBroker as number) > 0 ? (fromBroker as number) : 1;
  }
  // Producer ids live in the broker's data dir unless told otherwise, so they share its fate.
  const dataDir = opts.dataDir ?? (deps.broker as { options?: { dataDir?: unknown } }).options?.dataDir ?? './data';
  if (typeof dataDir !== 'string') throw new Error('kafka option dataDir must be a path');
  const producerIds = deps.producerIds ?? (await ProducerIds.open(join(dataDir, 'producer-ids'), { blockSize: opts.producerIdBlockSize }));
  // In code without a `security` dep (tests, embedding): the defaults over the broker's own store.
  const security = deps.security ?? kafkaSecurity(undefined, (deps.broker as { metadata?: MetadataStore }).metadata);
  const server = new KafkaServer(deps.broker, deps.groups, deps.logger, deps.metrics, opts, deps.handlers ?? apiRegistry, producerIds, security);
  server.cluster = deps.cluster;
  const tcp = createListenSocket(server, opts, deps.logger);
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(opts.port, opts.host, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  tcp.on('error', (err) => server.log.error({ err }, 'kafka listener error'));
  const addr = tcp.address() as net.AddressInfo;
  const address = `${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}`;
  server.log.info({ address, maxRequestBytes: opts.maxRequestBytes, connectionsMax: opts.connectionsMax, tls: opts.tls !== null, mutualTls: opts.tls?.requestCert === true }, 'kafka listener bound');
  let closing: Promise<void> | null = null;
  const serverTls = server.tls;
  return {
    name: 'kafka',
    address,
    listening: () => tcp.listening,
    ...(serverTls ? { reloadTls: () => [serverTls.reload()] } : {}),
    close() {
      closing ??= new Promise<void>((resolve) => {
        tcp.close(() => resolve());
        for (const c of server.connections) c.destroy();
      });
      return closing;
    },
  };
}
