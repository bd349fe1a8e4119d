// The HTTP API on the same uWS app as /ws (docs/http.md).
//
//   POST /topics/{topic}/records   JSON array or NDJSON → offsets
//   POST /topics, DELETE /topics/{topic}   create / delete a topic (CREATE / DELETE; tokens need admin: true)
//   GET  /topics                   topics with partition count and record totals
//   GET  /topics/{topic}           partitions with offsets, config
//   GET  /topics/{topic}/records   snapshot read: ?partition&offset&limit&encoding&decode=confluent
//   GET  /groups, /groups/{id}     consumer groups and their lag (when groups are available)
//   GET  /healthz                  200 healthy; 503 naming what is not (failed partition, disk below its floor, listener down)
//   GET  /readyz                   200 once every listener is up and every log recovered, else 503 (starting, stopping)
//   GET  /metrics                  Prometheus text: the broker's registry + process metrics
//   GET  /stats                    JSON for the console: connections per door, process, ws fan-out, uplink, cluster
//   GET  /, /console/*             the web console (static files, read once at start)
//
// uWS rules kept here: a handler that does not answer before returning registers onAborted
// first; request data (headers, url, parameters) is read before any await; body chunks are
// copied as they arrive (their ArrayBuffers are neutered after each callback), counted, and
// refused with 413 the moment they pass httpBodyBytesMax — never buffered whole first.
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { BrokerApi, RecordInput } from '../../host/broker/api.js';
import type { GroupApi } from './group-session.js';
import { asBrokerError, BrokerError, ERRORS } from '../../host/errors/index.js';
import type { Logger } from '../../host/logging.js';
import type { Counter, MetricsRegistry } from '../../host/metrics/registry.js';
import { certificatePrincipal, type Access, type Authenticator } from './auth.js';
import { CLUSTER_NAME, Operation, ResourceType } from '../../host/security/index.js';
import type { GroupSessions } from './group-session.js';
import type { WsGatewayOptions } from './options.js';
import { decodeField, decodedRecordJson, parseRecordFields, type OutRecord, type TextEncodingName, type ValueDecoder } from './protocol.js';
import { PartitionCursor } from '../../host/broker/cursor.js';
import type { Uws, UwsTypes } from './uws-loader.js';
import type { UplinkStatus } from '../../host/sync/uplink.js';

export interface GatewayStats {
  build: string;
  /** Which engine serves the door (http.engine): native uWS or node:http + ws. */
  engine: 'uws' | 'node';
  sockets: number;
  subscriptions: number;
  tails: number;
  peers: Array<{ id: number; encoding: string; subscriptions: string[]; bufferedBytes: number }>;
}

export interface HttpDeps {
  broker: BrokerApi;
  groups?: GroupApi;
  groupSessions?: GroupSessions;
  logger: Logger;
  metrics: MetricsRegistry;
  health: () => boolean;
  listeners?: () => Array<{ name: string; up: boolean }>;
  auth: Authenticator;
  stats: () => GatewayStats;
  decodeValue?: ValueDecoder;
  /** The uplink's status (bounded rows, totals over all); absent or null: no uplink, and /stats says `uplink: null`. */
  uplink?: () => UplinkStatus | null;
  /** The cluster's status (nodes, controller, term, voters' lag on the controller, brokers, partitions' leaders and ISR, bounded rows); absent or null: a single node, and /stats says `cluster: null`. */
  cluster?: () => unknown;
}

type Res = UwsTypes.HttpResponse;
type Req = UwsTypes.HttpRequest;

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  411: 'Length Required',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** One response's life: answered once, never after the client went away. */
class Reply {
  aborted = false;
  done = false;
  constructor(private readonly res: Res) {}
  /** Call before the first await. */
  watch(): this {
    this.res.onAborted(() => (this.aborted = true));
    return this;
  }
  /** Headers added to the answer (writeStatus must come first in uWS, so they wait here). */
  readonly extraHeaders: Array<[string, string]> = [];
  send(status: number, body: string | Uint8Array, contentType = 'application/json', closeConnection = false): void {
    if (this.aborted || this.done) return;
    this.done = true;
    this.res.cork(() => {
      this.res.writeStatus(`${status} ${STATUS_TEXT[status] ?? ''}`).writeHeader('content-type', contentType).writeHeader('cache-control', 'no-store');
      for (const [k, v] of this.extraHeaders) this.res.writeHeader(k, v);
      this.res.end(body, closeConnection);
    });
  }
  json(status: number, value: unknown): void {
    this.send(status, JSON.stringify(value));
  }
  error(err: unknown, logger?: Logger): void {
    const e = asBrokerError(err);
    const status = ERRORS[e.code].http;
    // A full disk is an expected state, logged once by the broker (disk.ts), not per request.
    if (status >= 500 && e.code !== 'STORAGE_FULL') logger?.warn({ err }, 'http request failed');
    this.json(status, { error: { code: e.code, kafkaCode: ERRORS[e.code].kafka, message: e.message } });
  }
}

const consoleDir = fileURLToPath(new URL('../../../gateway/ws/console/', import.meta.url));
const CONTENT_TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml' };

function loadConsole(logger: Logger): Map<string, { body: Buffer; type: string }> {
  const files = new Map<string, { body: Buffer; type: string }>();
  try {
    for (const name of readdirSync(consoleDir)) {
      const ext = name.slice(name.lastIndexOf('.') + 1);
      if (CONTENT_TYPES[ext]) files.set(name, { body: readFileSync(consoleDir + name), type: CONTENT_TYPES[ext] });
    }
  } catch (err) {
    logger.warn({ err: (err as Error).message, consoleDir }, 'web console files not found; / will answer 404');
  }
  return files;
}

/** `application/json`, `application/x-ndjson`, `application/vnd.x+json`: types a browser will not send cross-site without a CORS preflight. */
const JSON_CONTENT_TYPE = /^application\/[\w.+-]*json[\w.+-]*\s*(;.*)?$/i;

/** The peer's address (ACL host), as the Kafka door computes it. */
function remoteHost(res: Res): string {
  return Buffer.from(res.getRemoteAddressAsText()).toString().replace(/^::ffff:/, '');
}

function param(req: Req, i: number): string {
  try {
    return decodeURIComponent(req.getParameter(i) ?? '');
  } catch {
    return '';
  }
}

/** Non-negative integer query parameter; BrokerError naming it when malformed. */
function intQuery(raw: string, name: string, fallback: number | undefined): number | undefined {
  if (raw === '') return fallback;
  if (!/^\d{1,15}$/.test(raw)) throw new BrokerError('INVALID_REQUEST', `${name}: must be a non-negative integer, got "${raw}"`);
  return Number(raw);
}

function encodingQuery(raw: string): TextEncodingName {
  if (raw === '' || raw === 'utf8') return 'utf8';
  if (raw === 'base64') return 'base64';
  throw new BrokerError('INVALID_REQUEST', `encoding: must be "utf8" or "base64", got "${raw}"`);
}

/** `?decode=confluent`: values decoded through the schema registry (docs/schemas.md). */
function decodeQuery(raw: string, decoder: ValueDecoder | undefined): ValueDecoder | undefined {
  let asked;
  try {
    asked = decodeField(raw === '' ? undefined : raw, 'decode');
  } catch (err) {
    throw new BrokerError('INVALID_REQUEST', (err as Error).message);
  }
  if (asked && !decoder) throw new BrokerError('INVALID_REQUEST', 'decode: no schema registry on this broker');
  return asked ? decoder : undefined;
}

function text(bytes: Uint8Array | null, enc: TextEncodingName): string | null {
  if (bytes === null) return null;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(enc === 'base64' ? 'base64' : 'utf8');
}

function recordJson(r: OutRecord, enc: TextEncodingName) {
  return { offset: r.offset, timestamp: r.timestampMs, key: text(r.key, enc), value: text(r.value, enc), headers: r.headers.map((h) => [h.key, text(h.value, enc)]) };
}

export function registerHttpRoutes(app: UwsTypes.TemplatedApp, _uws: Uws, deps: HttpDeps, opts: WsGatewayOptions): void {
  const routes = new HttpRoutes(deps, opts);
  for (const [method, pattern, name, handler] of routes.table()) routes.route(app, method, pattern, name, handler);
  routes.registerConsole(app);
  routes.registerFallback(app);
}

type Method = 'get' | 'post' | 'del';
type Handler = (res: Res, req: Req, reply: Reply) => void | Promise<void>;

/** The HTTP API's state (deps, options, the console files, the request counter, the loop-delay monitors) and one method per route. */
class HttpRoutes {
  private readonly broker: BrokerApi;
  private readonly logger: Logger;
  private readonly metrics: MetricsRegistry;
  private readonly auth: Authenticator;
  private readonly consoleFiles: Map<string, { body: Buffer; type: string }>;
  private readonly httpRequests: Counter;
  private readonly statsLoopDelay: IntervalHistogram;

  constructor(
    private readonly deps: HttpDeps,
    private readonly opts: WsGatewayOptions,
  ) {
    const { broker, logger, metrics, auth } = deps;
    this.broker = broker;
    this.logger = logger;
    this.metrics = metrics;
    this.auth = auth;
    this.consoleFiles = opts.console ? loadConsole(logger) : new Map<string, { body: Buffer; type: string }>();
    this.httpRequests = metrics.counter('tributary_http_requests_total', 'HTTP requests, by route and status');
    this.statsLoopDelay = registerLoopMetrics(metrics);
  }

  /** Every API route: method, uWS pattern, the name counted in tributary_http_requests_total, handler. */
  table(): Array<[Method, string, string, Handler]> {
    // Handlers: anything asynchronous calls reply.watch() before its first await.
    return [
      ['get', '/healthz', 'healthz', (res, req, reply) => this.healthz(res, req, reply)],
      ['get', '/readyz', 'readyz', (res, req, reply) => this.readyz(res, req, reply)],
      ['get', '/metrics', 'metrics', (res, req, reply) => this.metricsText(res, req, reply)],
      ['get', '/stats', 'stats', (res, req, reply) => this.stats(res, req, reply)],
      ['get', '/topics', 'topics', (res, req, reply) => this.listTopics(res, req, reply)],
      ['get', '/topics/:topic', 'topic', (res, req, reply) => this.describeTopic(res, req, reply)],
      ['get', '/topics/:topic/records', 'read', (res, req, reply) => this.readRecords(res, req, reply)],
      ['post', '/topics/:topic/records', 'produce', (res, req, reply) => this.produce(res, req, reply)],
      ['post', '/topics', 'create-topic', (res, req, reply) => this.createTopic(res, req, reply)],
      ['del', '/topics/:topic', 'delete-topic', (res, req, reply) => this.deleteTopic(res, req, reply)],
      ['get', '/groups', 'groups', (res, req, reply) => this.listGroups(res, req, reply)],
      ['get', '/groups/:id', 'group', (res, req, reply) => this.describeGroup(res, req, reply)],
    ];
  }

  /** Registers one route: a Reply per request, errors answered from the error table, the request counted. */
  route(app: UwsTypes.TemplatedApp, method: Method, pattern: string, name: string, handler: Handler): void {
    app[method](pattern, (res, req) => {
      const reply = new Reply(res);
      let result: void | Promise<void>;
      if (method !== 'get' && this.refuseNonJsonBody(req, reply)) {
        this.httpRequests.inc({ route: name });
        return;
      }
      try {
        result = handler(res, req, reply);
      } catch (err) {
        reply.error(err, this.logger);
        this.httpRequests.inc({ route: name });
        return;
      }
      if (result instanceof Promise) {
        if (!reply.done && !reply.aborted) reply.watch();
        result.catch((err) => reply.error(err, this.logger));
      }
      this.httpRequests.inc({ route: name });
    });
  }

  /** Reads auth from a request (synchronously); undefined = 401 already answered. */
  private access(res: Res, req: Req, reply: Reply): Access | undefined {
    const a = this.auth.authenticate(req.getHeader('authorization'), req.getQuery('access_token') ?? '', remoteHost(res), certificatePrincipal(res));
    if (!a) {
      reply.extraHeaders.push(['www-authenticate', 'Bearer']);
      reply.error(new BrokerError('NOT_AUTHORIZED', 'missing or unknown bearer token (Authorization: Bearer <token> or ?access_token=)'));
    }
    return a;
  }

  /**
   * Like access(), and the route's (operation, resource) must be authorized (the one authorizer
   * and the token's scope, gateway/ws/auth.ts); a refusal throws the table's 403 row.
   */
  private accessFor(res: Res, req: Req, reply: Reply, operation: number, type: number, name: string): Access | undefined {
    const a = this.access(res, req, reply);
    a?.check(operation, type, name);
    return a;
  }

  /**
   * CSRF (finding 4): a state-changing request with a body must say it is JSON. A browser sends
   * `text/plain`, form and multipart bodies cross-site without asking (no CORS preflight);
   * `application/json` (and NDJSON) it does not, so refusing the others (415) keeps another
   * site's page from producing or creating topics through a visitor's browser.
   */
  private refuseNonJsonBody(req: Req, reply: Reply): boolean {
    const length = req.getHeader('content-length');
    const hasBody = (length !== '' && length !== '0') || req.getHeader('transfer-encoding') !== '';
    const type = req.getHeader('content-type');
    if (!hasBody || JSON_CONTENT_TYPE.test(type)) return false;
    reply.error(new BrokerError('UNSUPPORTED_MEDIA_TYPE', `content-type: a request body must be application/json (or application/x-ndjson), got ${type === '' ? 'none' : `"${type}"`}`));
    return true;
  }

  /**
   * /healthz: should a supervisor restart this broker? 503 lists each reason, so systemd (or
   * an operator) sees which partition failed, which path is full or which door went away.
   */
  private healthz(_res: Res, _req: Req, reply: Reply): void {
    const ready = this.deps.health();
    const { failedPartitions, disk } = this.broker.health();
    const listeners = this.deps.listeners?.() ?? [];
    const { engine, build } = this.deps.stats();
    const problems: string[] = [];
    if (!ready) problems.push('not ready: starting or stopping');
    for (const p of failedPartitions) problems.push(`partition ${p}`);
    if (disk.belowFloor) problems.push(`disk: data dir ${disk.path} is below its free-space floor (${disk.freeBytes} bytes free, floor ${disk.floorBytes}); client writes are refused`);
    for (const l of listeners) if (!l.up) problems.push(`listener ${l.name} is down`);
    const body = {
      status: problems.length ? 'unhealthy' : 'ok',
      problems,
      failedPartitions,
      disk,
      listeners: Object.fromEntries(listeners.map((l) => [l.name, l.up ? 'up' : 'down'])),
      http: { engine, build },
    };
    reply.json(problems.length ? ERRORS.LEADER_NOT_AVAILABLE.http : ERRORS.NONE.http, body);
  }

  /** /readyz: may traffic be sent here? Only between the ready line and the start of a stop. */
  private readyz(_res: Res, _req: Req, reply: Reply): void {
    const ready = this.deps.health();
    reply.json(ready ? ERRORS.NONE.http : ERRORS.LEADER_NOT_AVAILABLE.http, { status: ready ? 'ready' : 'not ready' });
  }

  /** GET /metrics: the registry as Prometheus text (admin). */
  private metricsText(res: Res, req: Req, reply: Reply): void {
    if (!this.accessFor(res, req, reply, Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME)) return;
    reply.send(200, this.metrics.render(), 'text/plain; version=0.0.4; charset=utf-8');
  }

  /** GET /stats: JSON for the console — connections per door, process, WS fan-out, topics (admin). */
  private stats(res: Res, req: Req, reply: Reply): void {
    if (!this.accessFor(res, req, reply, Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME)) return;
    const connections: Record<string, number> = {};
    // Every door exports tributary_<door>_connections (a gauge, maybe with labels): summed per door.
    for (const line of this.metrics.render().split('\n')) {
      const declared = /^# TYPE tributary_([a-z0-9]+)_connections gauge$/.exec(line);
      if (declared) connections[declared[1]] ??= 0; // a door with no connection yet shows 0
      const m = /^tributary_([a-z0-9]+)_connections(?:\{[^}]*\})? (\d+(?:\.\d+)?)$/.exec(line);
      if (m) connections[m[1]] = (connections[m[1]] ?? 0) + Number(m[2]);
    }
    const u = process.cpuUsage();
    reply.json(200, {
      time: Date.now(),
      uptimeSec: Math.round(process.uptime()),
      process: { rssBytes: process.memoryUsage.rss(), cpuSeconds: (u.user + u.system) / 1e6, eventLoopDelayP99Ms: this.statsLoopDelay.percentile(99) / 1e6, eventLoopDelayMaxMs: this.statsLoopDelay.max / 1e6 },
      connections,
      ws: this.deps.stats(),
      topics: this.topicSummaries(),
      uplink: this.deps.uplink?.() ?? null,
      cluster: this.deps.cluster?.() ?? null,
    });
    this.statsLoopDelay.reset();
  }

  /** GET /topics: the topics this token may read, with partition count and record totals. */
  private listTopics(res: Res, req: Req, reply: Reply): void {
    const a = this.access(res, req, reply);
    if (!a) return;
    reply.json(200, { topics: this.topicSummaries().filter((t) => a.can(Operation.DESCRIBE, ResourceType.TOPIC, t.name)) });
  }

  /** GET /topics/{topic}: partitions with offsets, and the config. */
  private describeTopic(res: Res, req: Req, reply: Reply): void {
    const a = this.access(res, req, reply);
    if (!a) return;
    const topic = param(req, 0);
    a.check(Operation.DESCRIBE, ResourceType.TOPIC, topic);
    const info = this.broker.describeTopic(topic);
    if (!info) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic ${topic}`);
    const partitions = [...Array(info.partitions).keys()].map((p) => ({ partition: p, ...this.broker.offsets({ topic, partition: p }) }));
    reply.json(200, { name: info.name, internal: info.internal, partitions, config: info.config });
  }

  /** GET /topics/{topic}/records: a snapshot read of one partition, bounded by `limit`. */
  private async readRecords(res: Res, req: Req, reply: Reply): Promise<void> {
    const a = this.access(res, req, reply);
    if (!a) return;
    const topic = param(req, 0);
    const partitionQ = req.getQuery('partition') ?? '';
    const offsetQ = req.getQuery('offset') ?? '';
    const limitQ = req.getQuery('limit') ?? '';
    const enc = encodingQuery(req.getQuery('encoding') ?? '');
    const decode = decodeQuery(req.getQuery('decode') ?? '', this.deps.decodeValue);
    a.check(Operation.READ, ResourceType.TOPIC, topic);
    const info = this.broker.describeTopic(topic);
    if (!info) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic ${topic}`);
    const partition = intQuery(partitionQ, 'partition', 0)!;
    if (partition >= info.partitions) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `partition: topic ${topic} has partitions 0..${info.partitions - 1}, not ${partition}`);
    const tp = { topic, partition };
    const offsets = this.broker.offsets(tp);
    const offset = intQuery(offsetQ, 'offset', offsets.logStartOffset)!;
    const limit = intQuery(limitQ, 'limit', Math.min(100, this.opts.httpReadLimitMax))!;
    if (limit < 1 || limit > this.opts.httpReadLimitMax) throw new BrokerError('INVALID_REQUEST', `limit: must be 1..${this.opts.httpReadLimitMax}, got ${limit}`);
    if (offset < offsets.logStartOffset || offset > offsets.highWatermark) {
      throw new BrokerError('OFFSET_OUT_OF_RANGE', `offset: ${offset} is outside [${offsets.logStartOffset}, ${offsets.highWatermark}] of ${topic}/${partition}`);
    }
    reply.watch();
    const out: OutRecord[] = [];
    let next = offset;
    const reader = new PartitionCursor(this.broker, tp, offset, { maxBytes: this.opts.readBytesMax, onOutOfRange: 'fail' });
    // Bounded: at most `limit` records, at most ceil(limit) reads (every read returns ≥ 1 batch).
    for (let reads = 0; out.length < limit && !reader.caughtUp() && reads < limit; reads++) {
      reader.seek(next);
      const { records, nextOffset } = await reader.read();
      if (reply.aborted) return;
      if (nextOffset === next) break;
      for (const r of records) {
        if (out.length >= limit) break;
        out.push(r);
      }
      next = out.length >= limit ? out[out.length - 1].offset + 1 : Math.max(nextOffset, next + 1);
    }
    reply.json(200, { topic, partition, records: out.map((r) => (decode ? decodedRecordJson(r, enc, decode) : recordJson(r, enc))), nextOffset: next, highWatermark: this.broker.offsets(tp).highWatermark });
  }

  /** POST /topics/{topic}/records: a JSON array or NDJSON body, appended with acks=all. */
  private produce(res: Res, req: Req, reply: Reply): void {
    const a = this.access(res, req, reply);
    if (!a) return;
    const topic = param(req, 0);
    const contentType = req.getHeader('content-type');
    const lengthHeader = req.getHeader('content-length');
    const enc = encodingQuery(req.getQuery('encoding') ?? '');
    a.check(Operation.WRITE, ResourceType.TOPIC, topic);
    // auto-creation (Kafka's rule): CREATE on the cluster or on the topic, checked before anything is written
    if (!this.broker.describeTopic(topic) && !a.can(Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)) a.check(Operation.CREATE, ResourceType.TOPIC, topic);
    if (this.refuseByLength(lengthHeader, reply)) return; // answered at once; the body is never read
    const ndjson = /ndjson|jsonl|json-seq/i.test(contentType); // anything else without JSON in it was refused 415 by the route
    this.readBody(res, reply, (body) => this.produceBody(topic, body, ndjson, enc));
  }

  /** POST /topics: create a topic (admin) through the broker's one creation call. */
  private createTopic(res: Res, req: Req, reply: Reply): void {
    const a = this.access(res, req, reply);
    if (!a) return;
    if (this.refuseByLength(req.getHeader('content-length'), reply)) return;
    this.readBody(res, reply, async (body) => {
      let spec: unknown;
      try {
        spec = JSON.parse(body.toString('utf8'));
      } catch (err) {
        throw new BrokerError('INVALID_REQUEST', `body: not valid JSON: ${(err as Error).message}`);
      }
      const o = spec as { name?: unknown; partitions?: unknown; replicationFactor?: unknown; assignment?: unknown; config?: unknown } | null;
      if (!o || typeof o !== 'object' || typeof o.name !== 'string') throw new BrokerError('INVALID_REQUEST', 'name: required, a topic name');
      if (!a.can(Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)) a.check(Operation.CREATE, ResourceType.TOPIC, o.name);
      const partitions = o.partitions ?? 1;
      if (typeof partitions !== 'number' || !Number.isSafeInteger(partitions)) throw new BrokerError('INVALID_PARTITIONS', 'partitions: must be an integer');
      const replicationFactor = o.replicationFactor ?? undefined;
      if (replicationFactor !== undefined && (typeof replicationFactor !== 'number' || !Number.isSafeInteger(replicationFactor))) throw new BrokerError('INVALID_REPLICATION_FACTOR', 'replicationFactor: must be an integer');
      const assignment = o.assignment ?? undefined;
      if (assignment !== undefined && (!Array.isArray(assignment) || !assignment.every((r) => Array.isArray(r) && r.every((n) => Number.isSafeInteger(n))))) throw new BrokerError('INVALID_REQUEST', 'assignment: must be an array of node-id arrays, one per partition');
      if (o.config !== undefined && (typeof o.config !== 'object' || o.config === null || Array.isArray(o.config))) throw new BrokerError('INVALID_CONFIG', 'config: must be an object of key → value');
      // The broker's one creation call (shared with Kafka CreateTopics) makes every other check.
      const info = await this.broker.createTopicFrom({
        name: o.name,
        partitions: o.partitions === undefined || o.partitions === null ? (assignment === undefined ? 1 : undefined) : partitions,
        replicationFactor: replicationFactor as number | undefined,
        assignment: assignment as number[][] | undefined,
        config: o.config as Record<string, unknown> | undefined,
      });
      return { name: info.name, partitions: info.partitions, internal: info.internal, config: info.config };
    });
  }

  /** DELETE /topics/{topic} (admin). */
  private async deleteTopic(res: Res, req: Req, reply: Reply): Promise<void> {
    const topic = param(req, 0);
    if (!this.accessFor(res, req, reply, Operation.DELETE, ResourceType.TOPIC, topic)) return;
    reply.watch();
    await this.broker.deleteTopic(topic);
    reply.json(200, { deleted: topic });
  }

  /** GET /groups: consumer groups with their lag (admin). */
  private listGroups(res: Res, req: Req, reply: Reply): void {
    if (!this.accessFor(res, req, reply, Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME)) return;
    if (!this.deps.groupSessions) throw new BrokerError('COORDINATOR_NOT_AVAILABLE', 'consumer groups are not available on this broker');
    reply.json(200, { groups: this.deps.groupSessions.listWithLag() });
  }

  /** GET /groups/{id}: one group with its members and lag (admin). */
  private describeGroup(res: Res, req: Req, reply: Reply): void {
    const id = param(req, 0);
    if (!this.accessFor(res, req, reply, Operation.DESCRIBE, ResourceType.GROUP, id)) return;
    if (!this.deps.groupSessions) throw new BrokerError('COORDINATOR_NOT_AVAILABLE', 'consumer groups are not available on this broker');
    reply.json(200, this.deps.groupSessions.describeWithLag(id));
  }

  private topicSummaries() {
    return this.broker.listTopics().map((t) => {
      let records = 0;
      let endOffsets = 0;
      for (let p = 0; p < t.partitions; p++) {
        const o = this.broker.offsets({ topic: t.name, partition: p });
        records += o.highWatermark - o.logStartOffset;
        endOffsets += o.highWatermark;
      }
      return { name: t.name, partitions: t.partitions, internal: t.internal, records, endOffsets };
    });
  }

  /**
   * Streams a request body into memory up to httpBodyBytesMax (413 and close the moment it
   * passes), then answers with what `use` returns (or its error). Registers onAborted first.
   */
  private readBody(res: Res, reply: Reply, use: (body: Buffer) => Promise<unknown>): void {
    reply.watch();
    const chunks: Buffer[] = [];
    let received = 0;
    let refused = false;
    res.onData((chunk, isLast) => {
      if (refused || reply.aborted) return;
      received += chunk.byteLength;
      if (received > this.opts.httpBodyBytesMax) {
        refused = true;
        chunks.length = 0;
        reply.send(413, JSON.stringify({ error: { code: 'MESSAGE_TOO_LARGE', kafkaCode: ERRORS.MESSAGE_TOO_LARGE.kafka, message: `body larger than httpBodyBytesMax=${this.opts.httpBodyBytesMax}` } }), 'application/json', true);
        return;
      }
      chunks.push(Buffer.from(new Uint8Array(chunk))); // copy: the chunk is neutered after this callback
      if (isLast) {
        const body = Buffer.concat(chunks);
        chunks.length = 0;
        use(body).then(
          (value) => reply.json(200, value),
          (err) => reply.error(err, this.logger),
        );
      }
    });
  }

  /** 413 from Content-Length alone, before reading anything; true when answered. */
  private refuseByLength(lengthHeader: string, reply: Reply): boolean {
    if (!lengthHeader || Number(lengthHeader) <= this.opts.httpBodyBytesMax) return false;
    reply.send(413, JSON.stringify({ error: { code: 'MESSAGE_TOO_LARGE', kafkaCode: ERRORS.MESSAGE_TOO_LARGE.kafka, message: `body of ${lengthHeader} bytes is larger than httpBodyBytesMax=${this.opts.httpBodyBytesMax}` } }), 'application/json', true);
    return true;
  }

  private async produceBody(topic: string, body: Buffer, ndjson: boolean, enc: TextEncodingName) {
    const items = parseBody(body, ndjson);
    if (items.length > this.opts.httpRecordsMax) throw new BrokerError('RECORD_LIST_TOO_LARGE', `${items.length} records in one request; httpRecordsMax=${this.opts.httpRecordsMax}`);
    const parsed = items.map((item, i) => parseRecordFields(item, `records[${i}].`, enc, true, this.opts.valueDepthMax));
    const info = await this.broker.ensureTopic(topic);
    // Group by requested partition (undefined = the broker's partitioner), keeping order.
    const groups = new Map<number | undefined, Array<{ index: number; record: RecordInput }>>();
    parsed.forEach((p, index) => {
      if (p.partition !== undefined && p.partition >= info.partitions) {
        throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `records[${index}].partition: topic ${topic} has partitions 0..${info.partitions - 1}, not ${p.partition}`);
      }
      let g = groups.get(p.partition);
      if (!g) groups.set(p.partition, (g = []));
      g.push({ index, record: p.record });
    });
    const offsets: Array<{ partition: number; offset: number }> = new Array(parsed.length);
    await Promise.all(
      [...groups].map(async ([partition, list]) => {
        const results = await this.broker.produce(topic, list.map((l) => l.record), { acks: -1, partition });
        list.forEach((l, i) => (offsets[l.index] = { partition: results[i].partition, offset: results[i].offset })); // one result per record, input order
      }),
    );
    return { topic, offsets };
  }

  /** The console: static files, no auth (the page asks for a token when the API answers 401). */
  registerConsole(app: UwsTypes.TemplatedApp): void {
    const serveFile = (name: string) => (res: Res) => {
      const f = this.consoleFiles.get(name);
      const reply = new Reply(res);
      if (!f) reply.json(404, { error: { code: 'NOT_FOUND', message: this.opts.console ? `no console file ${name}` : 'the web console is disabled (console: false)' } });
      else reply.send(200, f.body, f.type);
    };
    app.get('/', serveFile('index.html'));
    app.get('/console/:file', (res, req) => serveFile(param(req, 0))(res));
  }

  /** Everything else: a clear 404 or 405, never a hang. */
  registerFallback(app: UwsTypes.TemplatedApp): void {
    app.any('/*', (res, req) => {
      const reply = new Reply(res);
      const url = req.getUrl();
      const method = req.getMethod().toUpperCase();
      const known = /^\/(topics(\/[^/]+(\/records)?)?|groups(\/[^/]+)?|healthz|readyz|metrics|stats)$/.test(url);
      if (known) reply.json(405, { error: { code: 'METHOD_NOT_ALLOWED', message: `${method} is not allowed on ${url}` } });
      else reply.json(404, { error: { code: 'NOT_FOUND', message: `no route ${method} ${url}` } });
    });
  }
}

/**
 * Event-loop metrics, refreshed at each scrape (RSS, CPU, heap and descriptors are the host's:
 * host/metrics/process.ts). Two monitors: /metrics and /stats each report the delay since their
 * own previous call; returns the one /stats reads.
 */
function registerLoopMetrics(metrics: MetricsRegistry): IntervalHistogram {
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const statsLoopDelay = monitorEventLoopDelay({ resolution: 10 });
  statsLoopDelay.enable();
  const lag = metrics.gauge('nodejs_eventloop_lag_seconds', 'Event-loop delay since the previous scrape, by quantile');
  lag.collect(() => {
    lag.set(loopDelay.percentile(50) / 1e9, { quantile: '0.5' });
    lag.set(loopDelay.percentile(99) / 1e9, { quantile: '0.99' });
    lag.set(loopDelay.max / 1e9, { quantile: '1' });
    loopDelay.reset();
  });
  return statsLoopDelay;
}

function parseBody(body: Buffer, ndjson: boolean): unknown[] {
  const textBody = body.toString('utf8');
  if (ndjson) {
    const out: unknown[] = [];
    textBody.split('\n').forEach((line, i) => {
      if (!line.trim()) return;
      try {
        out.push(JSON.parse(line));
      } catch (err) {
        throw new BrokerError('INVALID_REQUEST', `line ${i + 1}: not valid JSON: ${(err as Error).message}`);
      }
    });
    if (out.length === 0) throw new BrokerError('INVALID_REQUEST', 'body: no records');
    return out;
  }
  let value: unknown;
  try {
    value = JSON.parse(textBody);
  } catch (err) {
    throw new BrokerError('INVALID_REQUEST', `body: not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(value)) value = [value];
  if ((value as unknown[]).length === 0) throw new BrokerError('INVALID_REQUEST', 'body: empty array, no records');
  return value as unknown[];
}
