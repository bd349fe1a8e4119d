// The node engine's HTTP request and response objects: the uWebSockets.js HttpRequest /
// HttpResponse methods the door uses, over `node:http`, with uWS's rules kept:
//
//   - the request is read synchronously in the handler (getHeader with a lower-case name, the
//     first of repeated headers, '' when absent; getQuery decodes %XX and '+', undefined when
//     absent; getUrl without the query; getMethod lower case; getParameter raw, undecoded);
//   - a response is written once: status first, headers, then end(body, closeConnection),
//     which adds Content-Length; after end() or after onAborted fired, every call throws the
//     error uWS.js throws, so a handler that answers late fails loudly on both engines;
//   - onData delivers the body as ArrayBuffer chunks, the last with isLast = true (a request
//     without a body gets one empty last chunk, as uWS does);
//   - onAborted fires once when the client goes away before the answer was sent.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ERRORS } from '../../host/errors/index.js';
import { principalFromCertificateSubject, type Principal } from '../../host/security/principal.js';

/** What uWS.js throws on a response used after its answer or after abort. */
export const DISCARDED_RESPONSE =
  'uWS.HttpResponse must not be accessed after uWS.HttpResponse.onAborted callback, or after a successful response. See documentation for uWS.HttpResponse and consult the user manual.';

type Body = string | ArrayBuffer | ArrayBufferView | undefined;

function bodyBytes(body: Body): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** "%41+b" → "A b"; a malformed escape is kept as written (uWS decodes it to garbage). */
function decodeQueryValue(raw: string): string {
  const spaced = raw.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

export class NodeHttpRequest {
  private readonly path: string;
  private readonly query: string;
  constructor(
    private readonly req: IncomingMessage,
    private readonly params: string[],
  ) {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    this.path = q < 0 ? url : url.slice(0, q);
    this.query = q < 0 ? '' : url.slice(q + 1);
  }
  getHeader(lowerCaseKey: string): string {
    const raw = this.req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === lowerCaseKey) return raw[i + 1];
    return '';
  }
  getQuery(): string;
  getQuery(key: string): string | undefined;
  getQuery(key?: string): string | undefined {
    if (key === undefined) return this.query;
    for (const pair of this.query.split('&')) {
      const eq = pair.indexOf('=');
      const k = eq < 0 ? pair : pair.slice(0, eq);
      if (k === key) return decodeQueryValue(eq < 0 ? '' : pair.slice(eq + 1));
    }
    return undefined;
  }
  getUrl(): string {
    return this.path;
  }
  getMethod(): string {
    return (this.req.method ?? 'GET').toLowerCase();
  }
  getParameter(index: number): string | undefined {
    return this.params[index];
  }
}

/** Where a response's bytes go: a node:http ServerResponse, or the raw socket of an upgrade request. */
interface Sink {
  send(status: string, headers: Array<[string, string]>, body: Buffer, closeConnection: boolean): void;
}

function statusParts(status: string): { code: number; text: string } {
  const m = /^(\d{3})\s*(.*)$/.exec(status.trim());
  // A status line the door never writes (it always writes "<code> <text>"): answered as the table's server error.
  return m ? { code: Number(m[1]), text: m[2] } : { code: ERRORS.UNKNOWN_SERVER_ERROR.http, text: 'Internal Server Error' };
}

export class ServerResponseSink implements Sink {
  constructor(private readonly res: ServerResponse) {}
  send(status: string, headers: Array<[string, string]>, body: Buffer, closeConnection: boolean): void {
    const { code, text } = statusParts(status);
    const flat: string[] = [];
    for (const [k, v] of headers) flat.push(k, v);
    flat.push('content-length', String(body.byteLength));
    if (closeConnection) flat.push('connection', 'close');
    // Otherwise no Connection / Keep-Alive headers, as uWS: node:http would advertise
    // "Keep-Alive: timeout=10", and a client trusting it to the second races the server's close
    // of an idle connection under load (ECONNRESET on a POST, which is not retried).
    else this.res.removeHeader('connection');
    this.res.writeHead(code, text, flat);
    this.res.end(body);
  }
}

/** An upgrade request answered with plain HTTP (a refused handshake): written raw, then the socket closes. */
export class RawSocketSink implements Sink {
  constructor(private readonly socket: Socket) {}
  send(status: string, headers: Array<[string, string]>, body: Buffer): void {
    const lines = [`HTTP/1.1 ${status}`, ...headers.map(([k, v]) => `${k}: ${v}`), `Content-Length: ${body.byteLength}`, 'Connection: close', '', ''];
    this.socket.end(Buffer.concat([Buffer.from(lines.join('\r\n')), body]));
  }
}

/** The request's body as uWS delivers it: chunks as they arrive, the last flagged. */
function streamBody(req: IncomingMessage, deliver: (chunk: ArrayBuffer, isLast: boolean) => void): void {
  const declared = req.headers['content-length'] === undefined ? -1 : Number(req.headers['content-length']);
  let received = 0;
  let lastSent = false;
  req.on('data', (chunk: Buffer) => {
    received += chunk.byteLength;
    const isLast = declared >= 0 && received >= declared;
    if (isLast) lastSent = true;
    // A fresh ArrayBuffer: node's chunk may be a view into a shared pool.
    deliver(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength) as ArrayBuffer, isLast);
  });
  req.on('end', () => {
    if (!lastSent) deliver(new ArrayBuffer(0), true);
  });
}

/** One HTTP response, uWS style. `upgradeTo` is set for requests on a WebSocket route. */
export class NodeHttpResponse {
  private status = '200 OK';
  private readonly headers: Array<[string, string]> = [];
  private state: 'open' | 'done' | 'aborted' = 'open';
  private abortHandler: (() => void) | undefined;
  /** Set by the engine for a WebSocket route's upgrade request. */
  upgradeTo: ((userData: unknown, key: string, protocol: string, extensions: string) => void) | undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly sink: Sink,
  ) {}

  private check(): void {
    if (this.state !== 'open') throw new Error(DISCARDED_RESPONSE);
  }
  /** True once answered (or upgraded) or aborted: the engine's "did the handler respond" check. */
  get settled(): boolean {
    return this.state !== 'open' || this.abortHandler !== undefined;
  }
  /** The client went away before the answer: onAborted once, then the response is unusable. */
  abort(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.abortHandler?.();
  }
  writeStatus(status: string): this {
    this.check();
    this.status = status;
    return this;
  }
  writeHeader(key: string, value: string): this {
    this.check();
    this.headers.push([key, String(value)]);
    return this;
  }
  end(body?: Body, closeConnection = false): this {
    this.check();
    this.state = 'done';
    this.sink.send(this.status, this.headers, bodyBytes(body), closeConnection);
    return this;
  }
  cork(cb: () => void): this {
    this.check();
    cb();
    return this;
  }
  onAborted(handler: () => void): this {
    this.check();
    this.abortHandler = handler;
    return this;
  }
  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): this {
    this.check();
    streamBody(this.req, (chunk, isLast) => {
      if (this.state === 'open') handler(chunk, isLast);
    });
    return this;
  }
  /** Not in uWS: the answer to a request on a connection whose client certificate is refused (mutual TLS), before any route. */
  refuseCertificate(reason: string): void {
    const e = ERRORS.CLIENT_CERTIFICATE_REFUSED;
    this.writeStatus(`${e.http} Unauthorized`).writeHeader('content-type', 'application/json').end(JSON.stringify({ error: { code: 'CLIENT_CERTIFICATE_REFUSED', kafkaCode: e.kafka, message: reason } }), true);
  }

  /**
   * Not in uWS: the principal of the client certificate verified on this connection
   * (`User:CN=…`, host/security/principal.ts), or null (plain HTTP, or no verified certificate).
   * The door asks for it where present (gateway/ws/auth.ts certificatePrincipal).
   */
  getPeerPrincipal(): Principal | null {
    const socket = this.req.socket as TLSSocket;
    if (!socket.encrypted || !socket.authorized) return null;
    const cert = socket.getPeerX509Certificate();
    return cert ? principalFromCertificateSubject(cert.subject) : null;
  }
  getRemoteAddressAsText(): ArrayBuffer {
    return new TextEncoder().encode(this.req.socket.remoteAddress ?? '').buffer as ArrayBuffer;
  }
  /** uWS's upgrade(userData, key, protocol, extensions, context); the context is the engine's own. */
  upgrade(userData: unknown, key: string, protocol: string, extensions: string, _context?: unknown): void {
    this.check();
    if (!this.upgradeTo) throw new Error('upgrade() outside a WebSocket route');
    this.state = 'done';
    this.upgradeTo(userData, key, protocol, extensions);
  }
}
