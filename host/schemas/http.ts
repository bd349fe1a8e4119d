// The registry's REST listener (node:http; the API is small and off the data path): the subset
// of Confluent Schema Registry's API that clients use (docs/schemas.md lists it). Bodies are
// JSON, sent and answered as application/vnd.schemaregistry.v1+json (application/json and
// application/vnd.schemaregistry+json are accepted too). Every error answers
// `{error_code, message}` with Confluent's numbers from REGISTRY_ERRORS.
//
// Bounds: a body larger than requestBytesMax is refused (413): the rest is read and discarded,
// never buffered, and the answer goes out when it ends (bounded; see readBody); at most requestsInFlightMax requests are served at once, so at most
// requestsInFlightMax × requestBytesMax of bodies are in memory. A request beyond that waits its
// turn with its body unread (past one stream buffer the socket stops being read: the kernel's buffers hold it, not ours); the
// waiting line is at most one request per connection, so connectionsMax bounds it. A burst of
// registrations (a fleet rolling out a firmware) is served in turn, never refused.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ServerTls } from '../security/tls.js';
import { ERRORS, REGISTRY_ERRORS } from '../errors/index.js';
import type { Logger } from '../logging.js';
import type { MetricsRegistry } from '../metrics/registry.js';
import type { SchemaRegistry, SchemaRequest } from './registry.js';
import { RegistryError, SCHEMA_TYPES } from './schema-types.js';
import type { RegistryAuth } from './auth.js';
import { CLUSTER_NAME, Operation, principalText, ResourceType } from '../security/index.js';

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
const ACCEPTED_BODY_TYPES = ['application/vnd.schemaregistry.v1+json', 'application/vnd.schemaregistry+json', 'application/json', 'application/octet-stream'];

interface Ctx {
  method: string;
  parts: string[];
  query: URLSearchParams;
  body: unknown;
  /** May the caller do `operation` on the resource? (host/schemas/auth.ts; always true without auth.) */
  can(operation: number, type: number, name: string): boolean;
}

type Handler = (r: SchemaRegistry, c: Ctx) => unknown;
interface Route {
  method: string;
  pattern: string[];
  /** What the caller must be allowed before the handler runs (auth.ts maps Confluent's model onto the ACLs). */
  needs: (r: SchemaRegistry, c: Ctx) => boolean;
  handler: Handler;
}

const open = () => true;
/** An operation on the subject at path segment `i` (checked as the topic resource of that name). */
const onSubject = (operation: number, i: number) => (_r: SchemaRegistry, c: Ctx) => c.can(operation, ResourceType.TOPIC, c.parts[i]);
const onCluster = (operation: number) => (_r: SchemaRegistry, c: Ctx) => c.can(operation, ResourceType.CLUSTER, CLUSTER_NAME);
/** A schema by id: READ on some subject that uses it (an id nobody uses answers its 404). */
const onSchemaId = (r: SchemaRegistry, c: Ctx) => {
  const id = /^\d{1,10}$/.test(c.parts[2]) ? Number(c.parts[2]) : NaN;
  let uses: Array<{ subject: string }> = [];
  try {
    uses = Number.isSafeInteger(id) ? r.usesOf(id, true) : [];
  } catch (err) {
    if (!(err instanceof RegistryError)) throw err; // an unknown id: the handler answers its 404
  }
  return uses.length === 0 || uses.some((u) => c.can(Operation.READ, ResourceType.TOPIC, u.subject));
};

const flag = (c: Ctx, name: string) => c.query.get(name) === 'true';
const body = (c: Ctx) => c.body as SchemaRequest;
const subjectOf = (c: Ctx, i: number) => c.parts[i];

/** Routes as data: `:x` matches one path segment. */
const ROUTES: Route[] = [
  { method: 'GET', pattern: [], needs: open, handler: () => ({}) },
  { method: 'GET', pattern: ['schemas', 'types'], needs: open, handler: () => SCHEMA_TYPES },
  { method: 'GET', pattern: ['schemas', 'ids', ':id'], needs: onSchemaId, handler: (r, c) => schemaAnswer(r, c.parts[2]) },
  { method: 'GET', pattern: ['schemas', 'ids', ':id', 'schema'], needs: onSchemaId, handler: (r, c) => JSON.parse(r.schemaById(idOf(c.parts[2])).schema) },
  { method: 'GET', pattern: ['schemas', 'ids', ':id', 'subjects'], needs: onSchemaId, handler: (r, c) => [...new Set(r.usesOf(idOf(c.parts[2]), flag(c, 'deleted')).map((u) => u.subject))] },
  { method: 'GET', pattern: ['schemas', 'ids', ':id', 'versions'], needs: onSchemaId, handler: (r, c) => r.usesOf(idOf(c.parts[2]), flag(c, 'deleted')) },
  { method: 'GET', pattern: ['subjects'], needs: open, handler: (r, c) => r.listSubjects(flag(c, 'deleted')).filter((subject) => c.can(Operation.DESCRIBE, ResourceType.TOPIC, subject)) },
  { method: 'POST', pattern: ['subjects', ':s'], needs: onSubject(Operation.READ, 1), handler: (r, c) => r.lookup(subjectOf(c, 1), body(c), flag(c, 'deleted')) },
  { method: 'DELETE', pattern: ['subjects', ':s'], needs: onSubject(Operation.DELETE, 1), handler: (r, c) => r.deleteSubject(subjectOf(c, 1), flag(c, 'permanent')) },
  { method: 'GET', pattern: ['subjects', ':s', 'versions'], needs: onSubject(Operation.READ, 1), handler: (r, c) => r.listVersions(subjectOf(c, 1), flag(c, 'deleted')) },
  { method: 'POST', pattern: ['subjects', ':s', 'versions'], needs: onSubject(Operation.WRITE, 1), handler: (r, c) => r.register(subjectOf(c, 1), body(c)) },
  { method: 'GET', pattern: ['subjects', ':s', 'versions', ':v'], needs: onSubject(Operation.READ, 1), handler: (r, c) => r.getVersion(subjectOf(c, 1), c.parts[3], flag(c, 'deleted')) },
  { method: 'GET', pattern: ['subjects', ':s', 'versions', ':v', 'schema'], needs: onSubject(Operation.READ, 1), handler: (r, c) => JSON.parse(r.getVersion(subjectOf(c, 1), c.parts[3], flag(c, 'deleted')).schema) },
  { method: 'DELETE', pattern: ['subjects', ':s', 'versions', ':v'], needs: onSubject(Operation.DELETE, 1), handler: (r, c) => r.deleteVersion(subjectOf(c, 1), c.parts[3], flag(c, 'permanent')) },
  { method: 'POST', pattern: ['compatibility', 'subjects', ':s', 'versions', ':v'], needs: onSubject(Operation.READ, 2), handler: (r, c) => compatAnswer(r, c, c.parts[4]) },
  { method: 'POST', pattern: ['compatibility', 'subjects', ':s', 'versions'], needs: onSubject(Operation.READ, 2), handler: (r, c) => compatAnswer(r, c, 'latest') },
  { method: 'GET', pattern: ['config'], needs: onCluster(Operation.DESCRIBE_CONFIGS), handler: (r) => ({ compatibilityLevel: r.getConfig(null, true) }) },
  { method: 'PUT', pattern: ['config'], needs: onCluster(Operation.ALTER_CONFIGS), handler: async (r, c) => ({ compatibility: await r.setConfig(null, levelIn(c)) }) },
  { method: 'DELETE', pattern: ['config'], needs: onCluster(Operation.ALTER_CONFIGS), handler: async (r) => ({ compatibilityLevel: await r.deleteConfig(null) }) },
  { method: 'GET', pattern: ['config', ':s'], needs: onSubject(Operation.DESCRIBE, 1), handler: (r, c) => ({ compatibilityLevel: r.getConfig(subjectOf(c, 1), flag(c, 'defaultToGlobal')) }) },
  { method: 'PUT', pattern: ['config', ':s'], needs: onSubject(Operation.ALTER_CONFIGS, 1), handler: async (r, c) => ({ compatibility: await r.setConfig(subjectOf(c, 1), levelIn(c)) }) },
  { method: 'DELETE', pattern: ['config', ':s'], needs: onSubject(Operation.ALTER_CONFIGS, 1), handler: async (r, c) => ({ compatibilityLevel: await r.deleteConfig(subjectOf(c, 1)) }) },
  { method: 'GET', pattern: ['mode'], needs: onCluster(Operation.DESCRIBE_CONFIGS), handler: (r) => ({ mode: r.getMode() }) },
  { method: 'PUT', pattern: ['mode'], needs: onCluster(Operation.ALTER_CONFIGS), handler: async (r, c) => ({ mode: await r.setMode((c.body as { mode?: unknown } | null)?.mode, flag(c, 'force')) }) },
];

function levelIn(c: Ctx): unknown {
  const b = c.body as { compatibility?: unknown } | null;
  return typeof b?.compatibility === 'string' ? b.compatibility.toUpperCase() : b?.compatibility;
}

function idOf(raw: string): number {
  const n = /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n)) throw new RegistryError('SCHEMA_NOT_FOUND', `Schema ${raw} not found`);
  return n;
}

function schemaAnswer(r: SchemaRegistry, raw: string): Record<string, unknown> {
  const s = r.schemaById(idOf(raw));
  const a: Record<string, unknown> = { schema: s.schema };
  if (s.schemaType !== 'AVRO') a.schemaType = s.schemaType;
  if (s.references.length > 0) a.references = s.references;
  return a;
}

function compatAnswer(r: SchemaRegistry, c: Ctx, version: string): Record<string, unknown> {
  const { is_compatible, messages } = r.testCompatibility(subjectOf(c, 2), version, body(c));
  return flag(c, 'verbose') ? { is_compatible, messages } : { is_compatible };
}

function match(method: string, parts: string[]): { route?: Route; pathKnown: boolean } {
  let pathKnown = false;
  for (const route of ROUTES) {
    if (route.pattern.length !== parts.length) continue;
    if (!route.pattern.every((p, i) => p.startsWith(':') || p === parts[i])) continue;
    pathKnown = true;
    if (route.method === method) return { route, pathKnown };
  }
  return { pathKnown };
}

function send(res: ServerResponse, status: number, payload: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, code: keyof typeof REGISTRY_ERRORS, message: string): void {
  const spec = REGISTRY_ERRORS[code];
  send(res, spec.http, { error_code: spec.code, message });
}

/**
 * Past requestBytesMax a body is discarded while it keeps streaming, and the 413 is sent once it
 * has ended: answering at once and closing would reset a connection the client is still writing
 * to, so it would see EPIPE instead of the 413. A client that keeps sending past this many times
 * requestBytesMax (or for REFUSED_BODY_LINGER_MS) is answered and cut off all the same.
 */
const REFUSED_BODY_DISCARD_FACTOR = 16;
const REFUSED_BODY_LINGER_MS = 5_000;

/** Reads a bounded body; undefined when it was refused (answered already). */
function readBody(req: IncomingMessage, res: ServerResponse, bytesMax: number): Promise<unknown | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let refusedAt = -1; // bytes read when the body went past the bound; -1 while it has not
    let linger: NodeJS.Timeout | undefined;
    const refuse = (cutOff: boolean) => {
      if (res.headersSent) return;
      clearTimeout(linger);
      res.setHeader('connection', 'close');
      sendError(res, 'BODY_TOO_LARGE', `request body above requestBytesMax ${bytesMax}`);
      if (cutOff) res.once('finish', () => req.socket.destroy());
      resolve(undefined);
    };
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (refusedAt >= 0) {
        if (bytes - refusedAt > REFUSED_BODY_DISCARD_FACTOR * bytesMax) refuse(true);
        return;
      }
      if (bytes > bytesMax) {
        refusedAt = bytes;
        chunks.length = 0;
        linger = setTimeout(() => refuse(true), REFUSED_BODY_LINGER_MS);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (refusedAt >= 0) return refuse(false);
      if (bytes === 0) return resolve(null);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        sendError(res, 'UNPROCESSABLE', `the body is not JSON: ${(err as Error).message}`);
        resolve(undefined);
      }
    });
    req.on('error', () => {
      clearTimeout(linger);
      resolve(undefined);
    });
    req.on('close', () => clearTimeout(linger));
  });
}

async function serve(registry: SchemaRegistry, req: IncomingMessage, res: ServerResponse, log: Logger, auth: RegistryAuth | undefined): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://registry');
  let parts: string[];
  try {
    parts = url.pathname.split('/').filter((p) => p.length > 0).map(decodeURIComponent);
  } catch {
    return sendError(res, 'NOT_FOUND', 'malformed path');
  }
  const method = req.method ?? 'GET';
  const { route, pathKnown } = match(method, parts);
  if (!route) {
    req.resume();
    return pathKnown ? sendError(res, 'METHOD_NOT_ALLOWED', `${method} not allowed on ${url.pathname}`) : sendError(res, 'NOT_FOUND', `no such endpoint: ${url.pathname}`);
  }
  const caller = auth ? await auth.caller(req) : undefined;
  if (typeof caller === 'string') {
    req.resume();
    res.setHeader('www-authenticate', 'Basic realm="schema-registry"');
    return sendError(res, 'UNAUTHORIZED', caller);
  }
  const can = (operation: number, type: number, name: string) => !auth || !caller || auth.can(caller, operation, type, name);
  const ctx: Omit<Ctx, 'body'> = { method, parts, query: url.searchParams, can };
  if (!route.needs(registry, { ...ctx, body: null })) {
    req.resume();
    return sendError(res, 'FORBIDDEN', `${caller ? principalText(caller.principal) : 'the caller'} is not allowed to ${method} ${url.pathname}`);
  }
  let body: unknown = null;
  if (method === 'POST' || method === 'PUT') {
    const type = (req.headers['content-type'] ?? 'application/json').split(';')[0].trim().toLowerCase();
    if (!ACCEPTED_BODY_TYPES.includes(type)) {
      req.resume();
      return sendError(res, 'UNPROCESSABLE', `content type ${type} not accepted (send ${ACCEPTED_BODY_TYPES.slice(0, 3).join(', ')})`);
    }
    body = await readBody(req, res, registry.options.requestBytesMax);
    if (body === undefined) return;
  } else req.resume();
  try {
    send(res, ERRORS.NONE.http, await route.handler(registry, { ...ctx, body }));
  } catch (err) {
    if (err instanceof RegistryError) return sendError(res, err.code, err.message);
    log.error({ err: (err as Error).message, path: url.pathname }, 'schemas: request failed');
    sendError(res, 'STORE_ERROR', (err as Error).message);
  }
}

export interface RegistryListener {
  name: string;
  address: string;
  port: number;
  close(): Promise<void>;
  reloadTls?(): Array<{ listener: string; ok: boolean }>;
}

export async function startRegistryServer(registry: SchemaRegistry, log: Logger, metrics: MetricsRegistry, auth?: RegistryAuth): Promise<RegistryListener> {
  const o = registry.options;
  const refused = metrics.counter('tributary_schemas_refused_connections_total', 'schema registry connections refused at connectionsMax');
  let inflight = 0;
  const waiting: Array<() => void> = [];
  const start = (req: IncomingMessage, res: ServerResponse) => {
    inflight++;
    res.on('close', () => {
      inflight--;
      // the next waiting requests whose clients are still there (one that left starts nothing)
      while (inflight < o.requestsInFlightMax && waiting.length > 0) waiting.shift()!();
    });
    serve(registry, req, res, log, auth).catch((err) => {
      log.error({ err: (err as Error).message }, 'schemas: request crashed');
      sendError(res, 'STORE_ERROR', 'internal error');
    });
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (inflight < o.requestsInFlightMax) return start(req, res);
    // Pipelined requests on one connection are answered in order by Node, so this line holds at
    // most one per connection; past connectionsMax (never reached) the answer is a 503.
    if (waiting.length >= o.connectionsMax) {
      req.resume();
      res.setHeader('retry-after', '1');
      sendError(res, 'OVERLOADED', `requestsInFlightMax ${o.requestsInFlightMax} in flight and ${waiting.length} waiting; retry`);
      return;
    }
    // Not read until its turn: an unread request stream buffers one highWaterMark and then
    // stops reading the socket. (No explicit pause(): a paused stream would not start flowing
    // when serve() attaches its 'data' listener.)
    let gone = false;
    res.once('close', () => (gone = true));
    waiting.push(() => {
      if (!gone) start(req, res);
    });
  };
  // https with `schemas.tls` (same files, reload and handshake bound as every door: host/security/tls.ts).
  const serverTls = o.tls ? new ServerTls('schemas', 'schemas.tls', o.tls, log) : null;
  const server: Server = serverTls ? (serverTls.createHttpsServer(handler) as unknown as Server) : createServer(handler);
  // connectionsMax: Node closes a connection past it; each refusal is logged (rarely) and counted.
  server.maxConnections = o.connectionsMax;
  let lastDropLog = 0;
  server.on('drop', (d?: { remoteAddress?: string }) => {
    refused.inc();
    const now = Date.now();
    if (now - lastDropLog < 10_000) return;
    lastDropLog = now;
    log.warn({ remote: d?.remoteAddress, connectionsMax: o.connectionsMax }, 'schemas: refusing connection: connectionsMax reached');
  });
  server.maxHeadersCount = 64;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    name: 'schemas',
    address: `${host}:${addr.port}`,
    port: addr.port,
    ...(serverTls ? { reloadTls: () => [serverTls.reload()] } : {}),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
