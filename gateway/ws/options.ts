// Every limit and setting of the HTTP/WebSocket gateway, with the reason for each default.
// Validated once at start (`validateWsGatewayOptions`): a bad value stops the gateway with a
// message naming the option, never a surprise later. `wsSchema` is the `http` config section's schema.
import { listenerSchemas, renameDeprecated, tlsRefusal, type ListenerOptions } from '../../host/config/listener.js';
import { TokenTable, type TokenConfig } from '../../host/security/tokens.js';
import { boolean, checkOptions, int32, list, object, oneOf, section, string, type KeySchema, type SectionSchema } from '../../host/config/schema.js';

/** `http.engine` (gateway/ws/engine.ts decides). */
export type HttpEngineChoice = 'auto' | 'uws' | 'node';
export const HTTP_ENGINE_CHOICES: readonly HttpEngineChoice[] = ['auto', 'uws', 'node'];

/** An `http.tokens` entry: the one token model (host/security/tokens.ts), shared with the schema registry. */
export type WsAccessToken = TokenConfig;

/** Host, port, connectionsMax (simultaneous WebSocket connections; the next one is closed with 4429) and tls are the listener's. */
export interface WsGatewayOptions extends ListenerOptions {
  /** @deprecated the old name of `connectionsMax` (still accepted; validateWsGatewayOptions moves it). */
  maxSockets?: number;
  /** WebSocket endpoint path. */
  path: string;
  /** Bearer tokens; empty = no authentication (every request is User:ANONYMOUS: the ACLs, or with authorization off the defaults, decide). */
  tokens: WsAccessToken[];
  /** Largest WebSocket message a client may send, bytes (uWS maxPayloadLength; past it: close 1009). */
  maxPayloadBytes: number;
  /** Subscriptions one socket may hold; the next subscribe is answered LIMIT_EXCEEDED. */
  maxSubscriptionsPerSocket: number;
  /** Produce requests one socket may have waiting for their ack; past it: LIMIT_EXCEEDED. */
  maxInFlightProducesPerSocket: number;
  /** Seconds without any frame in either direction before uWS closes the socket (0 = never; uWS needs ≥ 8). */
  idleTimeoutSec: number;
  /** A subscriber whose send buffer passes this many bytes stops being fed until it drains. */
  sendBufferPauseBytes: number;
  /** uWS maxBackpressure: a socket past it is closed (a frame that still does not fit). */
  maxBackpressureBytes: number;
  /** Target size of one records frame, bytes of encoded output (a single larger record still travels alone). */
  frameBytesMax: number;
  /** Bytes asked of broker.read per call (tail and catch-up); the first batch is whole even if larger. */
  readBytesMax: number;
  /** Catch-up reads running at once across all sockets (slow or historical subscribers). */
  maxConcurrentCatchUps: number;
  /** After a tail wakes up, wait this long for more appends so one frame carries several records. */
  tailLingerMs: number;
  /**
   * With many sockets on one tail the linger grows (tailLingerMs per 100 sockets) up to this:
   * fan-out cost is sockets × frames, so busier tails send fewer, fuller frames.
   */
  tailLingerMaxMs: number;
  /** A tail with no new data re-checks the log after this long (waitForData's maxWait). */
  tailMaxWaitMs: number;
  /** Interval of the heartbeat/lag frame sent to each socket with subscriptions (0 = off). */
  heartbeatIntervalMs: number;
  /** Largest HTTP request body, bytes, counted while streaming (past it: 413, body not buffered). */
  httpBodyBytesMax: number;
  /** Records one HTTP POST may carry. */
  httpRecordsMax: number;
  /** Largest `limit` for GET /topics/{topic}/records. */
  httpReadLimitMax: number;
  /** Deepest nesting of a structured key/value stored as JSON text (HTTP produce, WebSocket produce); deeper → 400 / INVALID_REQUEST naming the field. */
  valueDepthMax: number;
  /** Session timeout of a WebSocket consumer-group member (heartbeats every third of it). */
  groupSessionTimeoutMs: number;
  /** How long a rebalance waits for members to rejoin. */
  groupRebalanceTimeoutMs: number;
  /** Delivered positions of group subscriptions are committed this often (and on rebalance/leave). */
  groupAutoCommitIntervalMs: number;
  /** Serve the web console at `/`. */
  console: boolean;
  /** What serves the door: native uWebSockets.js, node:http + ws, or auto (node with tls; else uws when it loads, else node). */
  engine: HttpEngineChoice;
}

export const defaultWsGatewayOptions: WsGatewayOptions = {
  host: '0.0.0.0', // serve the LAN: dashboards run on other machines
  port: 8080, // the user's contract: HTTP + WebSocket on 8080
  path: '/ws', // one endpoint; everything else under / is HTTP
  tokens: [], // an edge box on a private network starts open; add tokens before exposing it
  maxPayloadBytes: 1_048_576, // 1 MiB: the topic default max.message.bytes, so any acceptable record fits in one produce frame
  connectionsMax: 2_000, // 2× the benchmark target of 1,000 dashboards; bounds memory at ≈ connectionsMax × (pause + frame) bytes
  maxSubscriptionsPerSocket: 64, // a dashboard watches a handful of topics; 64 leaves room without letting one socket fan out the broker
  maxInFlightProducesPerSocket: 256, // enough to keep group commit busy from one device, small enough to bound pending promises
  idleTimeoutSec: 120, // uWS default; a dashboard with nothing to receive still gets heartbeats, a dead peer is dropped in 2 minutes
  sendBufferPauseBytes: 65_536, // 64 KiB: a few frames in flight keep a healthy client busy; beyond it we stop and let it drain
  maxBackpressureBytes: 1_048_576, // 1 MiB: only a single oversized frame can get here; past it the receiver is closed
  frameBytesMax: 65_536, // 64 KiB frames: several records per frame without making slow sockets hold large buffers
  readBytesMax: 262_144, // 256 KiB per read: a few batches per syscall, bounded memory per concurrent read
  maxConcurrentCatchUps: 16, // at most 16 × readBytesMax (4 MiB) of catch-up reads in memory, whatever the number of slow clients
  tailLingerMs: 5, // 5 ms: coalesces a 2,000 records/s stream into ~200 frames/s per tail while p99 latency stays well under 50 ms
  tailLingerMaxMs: 20, // 1,000 sockets on a tail: ≤ 50 frames/s each instead of 200, still inside a 50 ms p99 budget
  tailMaxWaitMs: 1_000, // re-check the log once a second even if no append woke us (belt and braces against a missed wakeup)
  heartbeatIntervalMs: 5_000, // dashboards show lag and liveness every 5 s; cheap (one small frame per socket)
  httpBodyBytesMax: 4_194_304, // 4 MiB: a batch of device readings; larger uploads belong on the Kafka door
  httpRecordsMax: 10_000, // records per POST: bounds one request's work and its response size
  httpReadLimitMax: 1_000, // records per snapshot read: a page for a dashboard, not an export tool
  valueDepthMax: 64, // levels of arrays/maps in a structured (JSON/CBOR) key or value stored as JSON text: sensor documents are shallow; bounds the walk and the stack
  groupSessionTimeoutMs: 30_000, // a browser tab that vanished without closing its socket frees its partitions in 30 s
  groupRebalanceTimeoutMs: 30_000, // as long as the session: a member busy in a long frame still rejoins in time
  groupAutoCommitIntervalMs: 5_000, // Kafka's auto.commit.interval.ms: a reconnecting dashboard re-sees at most 5 s of records
  console: true, // the web console is the point of an edge dashboard; disable on headless deployments
  tls: null, // plain TCP until certificate files are named (https/wss with them, on the node engine under auto: reload, client certificates, CRLs)
  engine: 'auto', // uWS where a native build loads (fastest), except with tls (uWS cannot reload a certificate, require a client's or check a CRL); node:http + ws elsewhere (Node 22/24 on glibc < 2.38), so the door is never missing
};

const tokenSchema: KeySchema = object(
  // token/hash: any string here, checked by tokenEntryProblem (host/security/tokens.ts) whose
  // messages name the entry without quoting the secret (a schema failure prints the value).
  { token: string(0), hash: string(0), principal: string(6), read: list(string(1)), write: list(string(1)), admin: boolean() },
  [],
);

/** What each key of the `http` config section allows (host/config/schema.ts); cross-key rules stay in validateWsGatewayOptions. */
export const wsSchema: SectionSchema = section({
  ...listenerSchemas(),
  path: { type: 'string', pattern: '^/', 'x-allowed': 'a path starting with "/"' },
  tokens: list(tokenSchema, 'a list of { hash ("sha256:" + 64 hex digits, from `tributary tokens hash`) or token (8+ characters, in the clear: logs a warning), principal?: User:<name>, read?: [topic patterns], write?: [topic patterns], admin?: false }'),
  maxPayloadBytes: int32(1),
  maxSubscriptionsPerSocket: int32(1),
  maxInFlightProducesPerSocket: int32(1),
  idleTimeoutSec: { anyOf: [{ const: 0 }, { type: 'integer', minimum: 8, maximum: 2_147_483 }], 'x-allowed': '0 or at least 8 (0 = never; at most 2147483; uWS granularity is 4 s)' },
  sendBufferPauseBytes: int32(1),
  maxBackpressureBytes: int32(1),
  frameBytesMax: int32(1),
  readBytesMax: int32(1),
  maxConcurrentCatchUps: int32(1),
  tailLingerMs: int32(0),
  tailLingerMaxMs: int32(0),
  tailMaxWaitMs: int32(1),
  heartbeatIntervalMs: int32(0),
  httpBodyBytesMax: int32(1),
  httpRecordsMax: int32(1),
  httpReadLimitMax: int32(1),
  valueDepthMax: int32(1),
  groupSessionTimeoutMs: int32(1),
  groupRebalanceTimeoutMs: int32(1),
  groupAutoCommitIntervalMs: int32(1),
  console: boolean(),
  engine: oneOf(...HTTP_ENGINE_CHOICES),
});

/** Throws an Error naming the first bad option. */
export function validateWsGatewayOptions(o: WsGatewayOptions): void {
  const old = renameDeprecated('http', o as unknown as Record<string, unknown>);
  if (old && !(Number.isSafeInteger(o.connectionsMax) && o.connectionsMax > 0)) {
    throw new Error(`ws gateway option connectionsMax (formerly ${old}) must be a positive integer, got ${String(o.connectionsMax)}`);
  }
  if (typeof o.path !== 'string' || !o.path.startsWith('/')) throw new Error(`ws gateway option path must start with "/", got ${o.path}`);
  for (const t of o.tokens ?? []) {
    if ((t.read !== undefined && !Array.isArray(t.read)) || (t.write !== undefined && !Array.isArray(t.write))) throw new Error('ws gateway option tokens[].read and .write must be arrays of topic patterns');
  }
  try {
    new TokenTable(o.tokens ?? [], 'tokens'); // each entry's token/hash and principal, and no token twice: at start, not at the first request
  } catch (err) {
    throw new Error(`ws gateway option ${(err as Error).message}`);
  }
  // Ranges and types of every key: the `http` section's schema (the config loader has checked a node's own).
  checkOptions(wsSchema, o as unknown as Record<string, unknown>, 'ws gateway option ');
  // -1 (off) is a node's choice: the node does not start this gateway at all.
  if (o.port < 0) throw new Error(`ws gateway option port must be 0..65535 here (-1 turns the listener off in a node's config), got ${o.port}`);
  if (o.tailLingerMaxMs < o.tailLingerMs) throw new Error(`ws gateway option tailLingerMaxMs (${o.tailLingerMaxMs}) must be at least tailLingerMs (${o.tailLingerMs})`);
  if (o.maxBackpressureBytes < o.sendBufferPauseBytes + o.frameBytesMax) {
    throw new Error(`ws gateway option maxBackpressureBytes (${o.maxBackpressureBytes}) must be at least sendBufferPauseBytes + frameBytesMax (${o.sendBufferPauseBytes + o.frameBytesMax})`);
  }
  const tls = tlsRefusal(o.tls);
  if (tls) throw new Error(`ws gateway option tls: ${tls}`);
  const uwsRefusal = uwsTlsRefusal(o);
  if (uwsRefusal) throw new Error(`ws gateway option ${uwsRefusal}`);
}

/**
 * What `http.engine: uws` cannot do with `http.tls` (measured, gateway/ws/engine.ts): uWS
 * verifies a certificate a client sends against the CA file but admits a client that sends none,
 * takes no revocation list, and has its own handshake timeout. Refused rather than half-honoured;
 * `auto` (the default) serves TLS on the node engine, which does all three.
 */
export function uwsTlsRefusal(o: Pick<WsGatewayOptions, 'engine' | 'tls'>): string | null {
  if (o.engine !== 'uws' || !o.tls) return null;
  const instead = 'set http.engine to auto or node (node:http + ws serves TLS with it), or remove the key';
  if (o.tls.requestCert) return `tls.requestCert: http.engine uws cannot require a client certificate (uWebSockets.js admits clients that send none); ${instead}`;
  if (o.tls.crlFile) return `tls.crlFile: http.engine uws cannot check a revocation list (uWebSockets.js takes none); ${instead}`;
  if (o.tls.handshakeTimeoutMs !== undefined) return `tls.handshakeTimeoutMs: http.engine uws has its own handshake timeout and cannot take this one; ${instead}`;
  return null;
}
