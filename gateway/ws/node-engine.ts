// The second engine for the HTTP/WebSocket door: `node:http` (or `node:https`) + `ws`, behind
// exactly the part of the uWebSockets.js API the door uses, so the door's code is the same on
// both engines and the same tests run against both (test/integration/http-engine-*.test.ts).
//
// Why: on Pi OS Bookworm (glibc 2.36) with Node 22 or 24 no native uWS build loads (20.30 has
// no ABI 127/137 binary, 20.57 needs GLIBC_2.38); without this engine the HTTP API, /healthz,
// /metrics, /ws and the console would be gone there. gateway/ws/engine.ts chooses.
//
// The subset (uWS names):
//   App() / SSLApp(tls)      get, post, del, any, ws, listen(host, port, cb)
//   SecureApp(options)       (ours) https from node's options: live certificate swap, mutual TLS, CRL
//   HttpResponse, HttpRequest   node-engine-http.ts
//   WebSocket                   node-engine-ws.ts
//   us_listen_socket_close, us_socket_local_port, DISABLED
//
// Routing as uWS routes: a method's own routes before `any` routes; among them, segment by
// segment, a literal before a `:parameter` (one non-empty segment) before `*` (the rest); an
// upgrade request on a `ws` route upgrades, any other request skips `ws` routes.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type * as Https from 'node:https';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { ERRORS } from '../../host/errors/index.js';
import { NodeHttpRequest, NodeHttpResponse, RawSocketSink, ServerResponseSink } from './node-engine-http.js';
import { dropOnProtocolError, NodeWebSocket, type NodeWsBehavior } from './node-engine-ws.js';

/** How the engine names itself in the ready line, /healthz, /stats and the bench. */
export const NODE_ENGINE_BUILD = `node:http + ws ${wsVersion()} (Node ${process.versions.node})`;

function wsVersion(): string {
  try {
    return (createRequire(import.meta.url)('ws/package.json') as { version: string }).version;
  } catch {
    return '8';
  }
}

/** uWS's SSLApp option names (the ones a PEM-file TLS listener needs). */
export interface NodeTlsOptions {
  key_file_name: string;
  cert_file_name: string;
  ca_file_name?: string;
  passphrase?: string;
}

type HttpHandler = (res: NodeHttpResponse, req: NodeHttpRequest) => void;

interface Route {
  method: string; // lower case, '*' = any
  segments: string[];
  http?: HttpHandler;
  ws?: { behavior: NodeWsBehavior; server: WebSocketServer };
}

/** Segment rank: literal 0, parameter 1, wildcard 2 (lower is tried first). */
function rank(segment: string): number {
  return segment === '*' ? 2 : segment.startsWith(':') ? 1 : 0;
}

/** The parameters when `path` matches the route, else undefined. */
function matchRoute(route: Route, parts: string[]): string[] | undefined {
  const params: string[] = [];
  for (let i = 0; i < route.segments.length; i++) {
    const s = route.segments[i];
    if (s === '*') return params;
    if (i >= parts.length) return undefined;
    if (s.startsWith(':')) {
      if (parts[i] === '') return undefined;
      params.push(parts[i]);
    } else if (s !== parts[i]) return undefined;
  }
  return parts.length === route.segments.length ? params : undefined;
}

function compareRoutes(a: Route, b: Route): number {
  if ((a.method === '*') !== (b.method === '*')) return a.method === '*' ? 1 : -1;
  for (let i = 0; i < Math.min(a.segments.length, b.segments.length); i++) {
    const d = rank(a.segments[i]) - rank(b.segments[i]);
    if (d !== 0) return d;
  }
  return 0;
}

/** The listen socket handed to listen()'s callback (uWS: us_listen_socket). */
export interface NodeListenSocket {
  readonly server: Server;
}

export class NodeApp {
  private readonly routes: Route[] = [];
  private readonly sockets = new Set<NodeWebSocket>();
  private idleTimer: NodeJS.Timeout | undefined;
  readonly server: Server;

  /** Mutual TLS checked per request (SecureApp): a reason = refused; null = the connection's certificate was verified. */
  private readonly refusal: ((socket: TLSSocket) => string | null) | undefined;

  /** `tls`: uWS's file names (SSLApp), or node's server options as host/security/tls.ts builds them (SecureApp). */
  constructor(tls?: NodeTlsOptions | Https.ServerOptions, refusal?: (socket: TLSSocket) => string | null) {
    this.refusal = refusal;
    const handler = (req: IncomingMessage, res: ServerResponse) => this.request(req, res);
    // node:https (and tls) only when asked for: a plain listener does not load them.
    const options: Https.ServerOptions | undefined =
      tls && 'key_file_name' in tls ? { key: readFileSync(tls.key_file_name), cert: readFileSync(tls.cert_file_name), ca: tls.ca_file_name ? readFileSync(tls.ca_file_name) : undefined, passphrase: tls.passphrase } : tls;
    this.server = options ? (createRequire(import.meta.url)('node:https') as typeof Https).createServer(options, handler) : createHttpServer(handler);
    this.server.keepAliveTimeout = 10_000; // uWS closes an idle HTTP connection after 10 s
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.upgradeRequest(req, socket, head));
  }

  private add(method: string, pattern: string, route: Omit<Route, 'method' | 'segments'>): this {
    this.routes.push({ method, segments: pattern.split('/').slice(1), ...route });
    this.routes.sort(compareRoutes); // stable: equal routes keep registration order
    return this;
  }
  get(pattern: string, handler: HttpHandler): this {
    return this.add('get', pattern, { http: handler });
  }
  post(pattern: string, handler: HttpHandler): this {
    return this.add('post', pattern, { http: handler });
  }
  del(pattern: string, handler: HttpHandler): this {
    return this.add('delete', pattern, { http: handler });
  }
  put(pattern: string, handler: HttpHandler): this {
    return this.add('put', pattern, { http: handler });
  }
  any(pattern: string, handler: HttpHandler): this {
    return this.add('*', pattern, { http: handler });
  }
  ws(pattern: string, behavior: NodeWsBehavior): this {
    // Compression off whatever `compression` says; the subprotocol is the one upgrade() chose.
    const server = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      clientTracking: false,
      maxPayload: behavior.maxPayloadLength ?? 16 * 1024, // uWS's default
      handleProtocols: (_offered, req) => (req as UpgradeRequest).chosenProtocol || false,
    });
    return this.add('get', pattern, { ws: { behavior, server } });
  }

  private find(method: string, url: string, upgrade: boolean): { route: Route; params: string[] } | undefined {
    const q = url.indexOf('?');
    const parts = (q < 0 ? url : url.slice(0, q)).split('/').slice(1);
    for (const route of this.routes) {
      if (route.method !== '*' && route.method !== method) continue;
      if (route.ws && !upgrade) continue;
      const params = matchRoute(route, parts);
      if (params) return { route, params };
    }
    return undefined;
  }

  /** The refusal of the request's connection (mutual TLS), or null. */
  private refused(req: IncomingMessage): string | null {
    return this.refusal ? this.refusal(req.socket as TLSSocket) : null;
  }

  private request(req: IncomingMessage, res: ServerResponse): void {
    const refusal = this.refused(req);
    if (refusal !== null) return void new NodeHttpResponse(req, new ServerResponseSink(res)).refuseCertificate(refusal);
    const found = this.find((req.method ?? 'GET').toLowerCase(), req.url ?? '/', false);
    if (!found?.route.http) {
      res.writeHead(404, { 'content-length': 0 }).end(); // uWS: no handler, nothing matched
      return;
    }
    const response = new NodeHttpResponse(req, new ServerResponseSink(res));
    res.on('close', () => response.abort()); // a no-op once answered
    this.run(found.route.http, response, new NodeHttpRequest(req, found.params));
  }

  /** A handler must answer or register onAborted before it returns (uWS.js enforces the same rule). */
  private run(handler: HttpHandler, res: NodeHttpResponse, req: NodeHttpRequest): void {
    handler(res, req);
    if (!res.settled) {
      process.emitWarning('HTTP handler returned without responding or registering onAborted (uWS would terminate the process); the response is aborted');
      res.abort();
    }
  }

  private upgradeRequest(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const found = this.find((req.method ?? 'GET').toLowerCase(), req.url ?? '/', true);
    const response = new NodeHttpResponse(req, new RawSocketSink(socket));
    socket.on('close', () => response.abort());
    socket.on('error', () => undefined);
    if (!found) return void socket.destroy();
    const refusal = this.refused(req);
    if (refusal !== null) return found.route.ws ? this.refuseSocket(req, socket, head, found.route.ws.server, refusal) : void response.refuseCertificate(refusal);
    if (!found.route.ws) return this.run(found.route.http!, response, new NodeHttpRequest(req, found.params));
    const { behavior, server } = found.route.ws;
    response.upgradeTo = (userData, _key, protocol) => this.completeUpgrade(req, socket, head, server, behavior, userData, protocol);
    if (behavior.upgrade) this.run(behavior.upgrade as unknown as HttpHandler, response, new NodeHttpRequest(req, found.params));
    else response.upgrade({}, '', '', '');
  }

  private completeUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, server: WebSocketServer, behavior: NodeWsBehavior, userData: unknown, protocol: string): void {
    (req as UpgradeRequest).chosenProtocol = protocol;
    server.handleUpgrade(req, socket, head, (ws) => {
      dropOnProtocolError(ws);
      const s = new NodeWebSocket(ws, userData, behavior, req.socket.remoteAddress ?? '', (x) => this.sockets.delete(x));
      this.sockets.add(s);
      this.watchIdle();
      behavior.open?.(s);
    });
  }

  /**
   * A WebSocket upgrade on a connection whose client certificate is refused: the socket opens
   * (with the first subprotocol offered, so a browser accepts the handshake and sees the code)
   * and is closed at once with the table's policy code and the reason. The door never sees it.
   */
  private refuseSocket(req: IncomingMessage, socket: Socket, head: Buffer, server: WebSocketServer, reason: string): void {
    (req as UpgradeRequest).chosenProtocol = String(req.headers['sec-websocket-protocol'] ?? '').split(',')[0].trim();
    server.handleUpgrade(req, socket, head, (ws) => {
      dropOnProtocolError(ws);
      // RFC 6455 §5.5: a close reason fits in 123 bytes.
      ws.close(ERRORS.CLIENT_CERTIFICATE_REFUSED.ws, Buffer.from(reason).subarray(0, 123).toString());
    });
  }

  /** One timer for every socket's idle check, at uWS's 4 s granularity. */
  private watchIdle(): void {
    if (this.idleTimer) return;
    this.idleTimer = setInterval(() => {
      const now = Date.now();
      for (const s of this.sockets) s.tick(now);
    }, 4_000);
    this.idleTimer.unref();
  }

  listen(host: string, port: number, cb: (socket: NodeListenSocket | false) => void): this {
    const onError = () => cb(false);
    this.server.once('error', onError);
    this.server.listen({ host, port }, () => {
      this.server.off('error', onError);
      cb({ server: this.server });
    });
    return this;
  }

  /** us_listen_socket_close: stop accepting; open connections stay (the door ends its sockets). */
  closeListener(): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    this.server.close();
    this.server.closeIdleConnections();
  }
}

interface UpgradeRequest extends IncomingMessage {
  chosenProtocol?: string;
}

const apps = new WeakMap<Server, NodeApp>();

/** The module object the door uses in place of the native uWS module. */
export const nodeEngine = {
  App(): NodeApp {
    const app = new NodeApp();
    apps.set(app.server, app);
    return app;
  },
  /** uWS's SSLApp: the same app over node:https with the PEM files named as uWS names them. */
  SSLApp(tls: NodeTlsOptions): NodeApp {
    const app = new NodeApp(tls);
    apps.set(app.server, app);
    return app;
  },
  /**
   * Not in uWS: an https app from node's server options (the door's TLS on this engine), so the
   * caller can swap its context (`server.setSecureContext`, SIGHUP), require client certificates
   * and check a CRL — what uWS's SSLApp cannot (gateway/ws/engine.ts). `refusal` is asked for
   * every request's connection: a reason answers 401 CLIENT_CERTIFICATE_REFUSED (a WebSocket
   * upgrade: close 1008) before any route runs, so no route can forget the check.
   */
  SecureApp(options: Https.ServerOptions, refusal?: (socket: TLSSocket) => string | null): NodeApp {
    const app = new NodeApp(options, refusal);
    apps.set(app.server, app);
    return app;
  },
  /** uWS's compression constant for "off"; this engine never compresses. */
  DISABLED: 0,
  us_listen_socket_close(socket: NodeListenSocket): void {
    apps.get(socket.server)?.closeListener();
  },
  us_socket_local_port(socket: NodeListenSocket): number {
    const address = socket.server.address();
    return typeof address === 'object' && address ? address.port : -1;
  },
};

export type NodeEngine = typeof nodeEngine;
