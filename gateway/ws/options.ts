// Every limit and setting of the HTTP/WebSocket gateway, with the reason for each default.
// Validated once at start (`validateWsGatewayOptions`): a bad value stops the gateway with a
// message naming the option, never a surprise later.

/** One bearer token and what it may do. Topic patterns: exact names, `*` for all, or a `prefix*`. */
export interface WsAccessToken {
  token: string;
  /** Topics this token may subscribe to and read over HTTP. */
  read: string[];
  /** Topics this token may produce to. */
  write: string[];
  /** May see /metrics, /stats and /groups (default true); false = 403 CLUSTER_AUTHORIZATION_FAILED there. */
  admin?: boolean;
}

export interface WsGatewayOptions {
  host: string;
  port: number;
  /** WebSocket endpoint path. */
  path: string;
  /** Bearer tokens; empty = no authentication (everyone may read and write every topic). */
  tokens: WsAccessToken[];
  /** Largest WebSocket message a client may send, bytes (uWS maxPayloadLength; past it: close 1009). */
  maxPayloadBytes: number;
  /** Simultaneous WebSocket connections; the next one is closed with 4429. */
  maxSockets: number;
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
}

export const defaultWsGatewayOptions: WsGatewayOptions = {
  host: '0.0.0.0', // serve the LAN: dashboards run on other machines
  port: 8080, // the user's contract: HTTP + WebSocket on 8080
  path: '/ws', // one endpoint; everything else under / is HTTP
  tokens: [], // an edge box on a private network starts open; add tokens before exposing it
  maxPayloadBytes: 1_048_576, // 1 MiB: the topic default max.message.bytes, so any acceptable record fits in one produce frame
  maxSockets: 2_000, // 2× the benchmark target of 1,000 dashboards; bounds memory at ≈ maxSockets × (pause + frame) bytes
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
};

/** Throws an Error naming the first bad option. */
export function validateWsGatewayOptions(o: WsGatewayOptions): void {
  const positiveInts: Array<keyof WsGatewayOptions> = [
    'maxPayloadBytes',
    'maxSockets',
    'maxSubscriptionsPerSocket',
    'maxInFlightProducesPerSocket',
    'sendBufferPauseBytes',
    'maxBackpressureBytes',
    'frameBytesMax',
    'readBytesMax',
    'maxConcurrentCatchUps',
    'tailMaxWaitMs',
    'httpBodyBytesMax',
    'httpRecordsMax',
    'httpReadLimitMax',
    'valueDepthMax',
    'groupSessionTimeoutMs',
    'groupRebalanceTimeoutMs',
    'groupAutoCommitIntervalMs',
  ];
  for (const k of positiveInts) {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new Error(`ws gateway option ${k} must be a positive integer, got ${String(v)}`);
  }
  for (const k of ['tailLingerMs', 'tailLingerMaxMs', 'heartbeatIntervalMs', 'idleTimeoutSec'] as const) {
    const v = o[k];
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`ws gateway option ${k} must be a non-negative integer, got ${String(v)}`);
  }
  if (o.tailLingerMaxMs < o.tailLingerMs) throw new Error(`ws gateway option tailLingerMaxMs (${o.tailLingerMaxMs}) must be at least tailLingerMs (${o.tailLingerMs})`);
  if (o.idleTimeoutSec !== 0 && o.idleTimeoutSec < 8) throw new Error(`ws gateway option idleTimeoutSec must be 0 or at least 8 (uWS granularity is 4 s), got ${o.idleTimeoutSec}`);
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error(`ws gateway option port must be 0..65535, got ${o.port}`);
  if (!o.path.startsWith('/')) throw new Error(`ws gateway option path must start with "/", got ${o.path}`);
  if (o.maxBackpressureBytes < o.sendBufferPauseBytes + o.frameBytesMax) {
    throw new Error(`ws gateway option maxBackpressureBytes (${o.maxBackpressureBytes}) must be at least sendBufferPauseBytes + frameBytesMax (${o.sendBufferPauseBytes + o.frameBytesMax})`);
  }
  for (const t of o.tokens) {
    if (typeof t.token !== 'string' || t.token.length < 8) throw new Error('ws gateway option tokens[].token must be a string of at least 8 characters');
    if (!Array.isArray(t.read) || !Array.isArray(t.write)) throw new Error('ws gateway option tokens[].read and .write must be arrays of topic patterns');
  }
}
