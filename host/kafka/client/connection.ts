// One client connection to a Kafka-protocol broker: framing, correlation ids, a timeout per
// request, a bounded in-flight window, and clean errors when the socket goes.
//
// Frame (both ways): int32 size of what follows. Request = header v1 (api_key int16,
// api_version int16, correlation_id int32, client_id nullable string) + tagged fields (header v2)
// in flexible versions + body. Response = correlation_id int32 + tagged fields in flexible
// versions (except ApiVersions, whose response header is always v0: KIP-511) + body.
//
// Correlation: each request gets the next id; the broker answers a connection's requests in
// order, so an answer whose id is not the oldest pending request's is a protocol fault and
// closes the connection (the stream cannot be trusted after it).
//
// Bounds: at most `inFlightMax` requests written and unanswered; up to `queuedMax` more wait
// their turn in order (an `urgent` request — the uplink's reserved lane — goes ahead of every
// queued request that is not urgent, behind the urgent ones: each caller's own requests stay in
// call order); past that a request is refused at once (fault `limit`). An answer larger
// than `responseBytesMax` closes the connection before its bytes are gathered.
//
// Failure: a request unanswered after `requestTimeoutMs` fails with fault `timeout` and closes
// the connection (like Kafka's clients: a late answer on that socket could no longer be matched
// safely). When the socket closes, every written request fails `disconnected` and every queued
// one `closed`. Written-and-unanswered failures are `indefinite`: the broker may have applied
// them. The connection is never reopened here; the cluster client opens a new one.
//
// SASL (when `sasl` is set): after ApiVersions, SaslHandshake v1 names the mechanism, then
// SaslAuthenticate carries the tokens — PLAIN in one round (RFC 4616: "\0user\0password"),
// SCRAM-SHA-256/512 in two (RFC 5802/7677, host/security/scram.ts's client; the server's final
// signature is checked, so a peer that does not know the credential is not trusted). A refusal
// fails the connection with fault `auth` and the broker's message; the password never appears in
// an error or a log line. OAUTHBEARER (RFC 7628) sends `n,,` 0x01 `auth=Bearer <token>` 0x01 0x01
// in one round; the token is got before the handshake (a slow identity provider never leaves the
// broker mid-exchange), and a token source that fails fails the login with fault `auth` too.
//
// Re-authentication (KIP-368): a broker that ends sessions says so in SaslAuthenticate v1+
// (`sessionLifetimeMs` > 0; the client asks the highest version both speak, so v1+ whenever the
// broker has it). Past that lifetime the broker closes the connection on any request but
// SaslHandshake/SaslAuthenticate. So at a random point between 85% and 95% of the lifetime (as
// Kafka's Java client does: connections opened together do not all re-authenticate at once) the
// connection holds its queue — new requests wait, in order, instead of being written (the window's
// free slots wait in the queue too, so a renewal never causes a `limit` refusal) — waits for
// the answers of the requests already written, runs SaslHandshake + SaslAuthenticate again with
// the same mechanism and credential, and then writes what waited. No other request is on the wire
// during the exchange, so the broker never sees one between handshake and authenticate, and
// written requests keep their exactly-once meaning (none is failed or re-sent for this). Each new
// session's lifetime schedules the next round. A refused or failed re-authentication fails the
// connection with fault `auth` (queued requests `closed`, never written); the cluster client opens
// a new connection as after any failure.
import net from 'node:net';
import tls from 'node:tls';
import { decode, encode, ProtocolError, Reader, Writer } from '../protocol/codec.js';
import { readHeaderTaggedFields } from '../protocol/header.js';
import { CLIENT_APIS, negotiate, type ClientApi, type PeerVersions } from './apis.js';
import { KafkaClientError } from './errors.js';
import { FrameReader } from './frame-reader.js';
import { ERRORS } from '../../errors/index.js';
import { ScramClient } from '../../security/scram.js';

/** SASL toward the broker (over TLS when `tls` is set too: SASL_SSL; else SASL_PLAINTEXT). */
export interface SaslOptions {
  /** TRIBUTARY-NODE: a cluster's node toward another (host/security/node-identity.ts); `user` is its node id, `prove` signs the challenge. */
  mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512' | 'OAUTHBEARER' | 'TRIBUTARY-NODE';
  /** Who logs in, as errors and logs name it (OAUTHBEARER: the token source's description). */
  user: string;
  password: string;
  /** OAUTHBEARER only: the bearer token to present (host/kafka/client/oauth-token.ts). */
  token?: () => Promise<string>;
  /** TRIBUTARY-NODE only: the answer to the challenge of the server at `address` (base64 text in, base64 text out). */
  prove?: (challenge: string, address: string) => string;
}

export interface ConnectionOptions {
  host: string;
  port: number;
  clientId: string;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  inFlightMax: number;
  queuedMax: number;
  responseBytesMax: number;
  /** Told of the bytes of each request written (the link's bytes-sent counter). */
  onBytesSent?: (bytes: number) => void;
  /** TLS (SSL in Kafka's words): the server's certificate is verified (rejectUnauthorized) against `ca` or the system's CAs; null/absent = plain TCP. */
  tls?: tls.ConnectionOptions | null;
  /** SASL after ApiVersions; null/absent = none. */
  sasl?: SaslOptions | null;
}

interface Pending {
  correlationId: number;
  api: ClientApi;
  version: number;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | null;
}

interface Queued {
  start(): void;
  fail(err: Error): void;
  urgent: boolean;
}

const API_VERSIONS_V0 = 0;

/** Re-authenticate at a random point in this share of the session lifetime (Kafka's Java client's window). */
const REAUTH_AT_MIN = 0.85;
const REAUTH_AT_SPREAD = 0.1;

/**
 * A broker that does not speak our ApiVersions version answers UNSUPPORTED_VERSION with its list
 * in v0 format (Kafka's rule, KIP-511), so an answer that does not parse at our version is read
 * again as v0.
 */
function decodeApiVersions(r: Reader, version: number, flexible: boolean): unknown {
  const at = r.pos;
  try {
    return decode(CLIENT_APIS.apiVersions.response, r, version, flexible);
  } catch (err) {
    if (version === API_VERSIONS_V0) throw err;
    r.pos = at;
    return decode(CLIENT_APIS.apiVersions.response, r, API_VERSIONS_V0, false);
  }
}

export class KafkaConnection {
  private readonly socket: net.Socket;
  /** The TCP socket under `socket` (the same one without TLS): what `reset` aborts. */
  private readonly tcp: net.Socket;
  private nextCorrelationId = 1;
  private readonly inFlight: Pending[] = [];
  private readonly queue: Queued[] = [];
  private readonly frames: FrameReader;
  private failure: Error | null = null;
  /** The peer's API versions (set by `handshake`). */
  versions: PeerVersions = new Map();
  /** Bytes written to this socket (requests), for the link's counters. */
  bytesSent = 0;
  /** Completed KIP-368 re-authentications on this connection. */
  reauthentications = 0;
  /** While true (a re-authentication), requests are queued, not written. */
  private holding = false;
  /** Resolved when nothing is in flight (what a re-authentication waits for). */
  private drained: (() => void) | null = null;
  private reauthTimer: NodeJS.Timeout | null = null;
  readonly closedPromise: Promise<void>;

  private constructor(
    socket: net.Socket,
    tcp: net.Socket,
    readonly options: ConnectionOptions,
  ) {
    this.socket = socket;
    this.tcp = tcp;
    this.frames = new FrameReader(
      { minBytes: 4, maxBytes: options.responseBytesMax },
      (frame) => this.onFrame(frame),
      (size) => this.fail(new KafkaClientError('protocol', `${this.address} sent a frame of ${size} bytes (responseBytesMax ${options.responseBytesMax})`, true)),
    );
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new KafkaClientError('disconnected', `connection to ${this.address} failed: ${err.message}`, false, { cause: err })));
    this.closedPromise = new Promise((resolve) => socket.once('close', () => {
      this.fail(new KafkaClientError('disconnected', `connection to ${this.address} closed`));
      resolve();
    }));
  }

  get address(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  get closed(): boolean {
    return this.failure !== null;
  }

  /** Opens a TCP (or TLS) connection and learns the peer's API versions (ApiVersions). */
  static async connect(options: ConnectionOptions): Promise<KafkaConnection> {
    // TLS runs over a TCP socket of our own, so `reset` can abort that one (a TLS socket cannot be reset).
    const tcp = net.connect({ host: options.host, port: options.port });
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      // With TLS the connection is usable once the handshake (and the certificate check) is done.
      const s = options.tls ? tls.connect({ ...options.tls, rejectUnauthorized: true, host: options.host, port: options.port, socket: tcp }) : tcp;
      const ready = options.tls ? 'secureConnect' : 'connect';
      const timer = setTimeout(() => {
        s.destroy();
        tcp.destroy();
        reject(new KafkaClientError('connect', `connect to ${options.host}:${options.port} timed out after ${options.connectTimeoutMs} ms`));
      }, options.connectTimeoutMs);
      s.once(ready, () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new KafkaClientError('connect', `connect to ${options.host}:${options.port} failed: ${err.message}`, false, { cause: err }));
      });
    });
    const conn = new KafkaConnection(socket, tcp, options);
    try {
      await conn.handshake();
      if (options.sasl) await conn.authenticate(options.sasl);
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  /**
   * ApiVersions at our highest version; a broker that does not speak it answers
   * UNSUPPORTED_VERSION with its list in v0 format (Kafka's rule), which is all we need.
   */
  private async handshake(): Promise<void> {
    const api = CLIENT_APIS.apiVersions;
    let res: { errorCode: number; apiKeys: Array<{ apiKey: number; minVersion: number; maxVersion: number }> } = await this.send(api, api.maxVersion, {
      clientSoftwareName: 'tributary',
      clientSoftwareVersion: '1',
    });
    // A broker that answers UNSUPPORTED_VERSION without its list (librdkafka's mock cluster does)
    // is asked again at v0, which every broker speaks.
    if (res.apiKeys.length === 0 && res.errorCode !== ERRORS.NONE.kafka) res = await this.send(api, API_VERSIONS_V0, {});
    if (res.apiKeys.length === 0) throw new KafkaClientError('protocol', `${this.address} answered ApiVersions with error ${res.errorCode} and no API list`);
    this.versions = new Map(res.apiKeys.map((k) => [k.apiKey, { minVersion: k.minVersion, maxVersion: k.maxVersion }]));
  }

  /**
   * SaslHandshake v1 + SaslAuthenticate rounds (file header); throws fault `auth` on a refusal.
   * Then schedules the re-authentication the new session's lifetime asks for, if any.
   * `again`: a re-authentication (its requests bypass the hold; the error says which it was).
   */
  private async authenticate(sasl: SaslOptions, again = false, prefetchedToken: string | null = null): Promise<void> {
    type Auth = { errorCode: number; errorMessage: string | null; authBytes: Uint8Array; sessionLifetimeMs?: number };
    const what = again ? 're-authentication (KIP-368) with SASL' : 'SASL';
    const refused = (why: string) => new KafkaClientError('auth', `${this.address} refused ${what} ${sasl.mechanism} for user "${sasl.user}": ${why}`);
    const ask = <T>(api: ClientApi, body: object) => this.send(api, this.versionFor(api), body, false, again) as Promise<T>;
    const bearer = sasl.mechanism === 'OAUTHBEARER' ? (prefetchedToken ?? (await this.bearerToken(sasl, what))) : null;
    const h = await ask<{ errorCode: number; mechanisms: string[] }>(CLIENT_APIS.saslHandshake, { mechanism: sasl.mechanism });
    if (h.errorCode !== ERRORS.NONE.kafka) throw refused(`the broker offers ${h.mechanisms.join(', ') || 'no mechanism'}`);
    let lifetimeMs = 0;
    const round = async (token: string): Promise<string> => {
      const a = await ask<Auth>(CLIENT_APIS.saslAuthenticate, { authBytes: Buffer.from(token, 'utf8') });
      if (a.errorCode !== ERRORS.NONE.kafka) throw refused(a.errorMessage ?? `error ${a.errorCode}`);
      lifetimeMs = Number(a.sessionLifetimeMs ?? 0); // absent below v1: the session never ends
      return Buffer.from(a.authBytes).toString('utf8');
    };
    if (sasl.mechanism === 'PLAIN') {
      await round(`\0${sasl.user}\0${sasl.password}`);
    } else if (sasl.mechanism === 'OAUTHBEARER') {
      await round(`n,,\u0001auth=Bearer ${bearer}\u0001\u0001`);
    } else if (sasl.mechanism === 'TRIBUTARY-NODE') {
      if (!sasl.prove) throw refused('no node proof configured');
      await round(sasl.prove(await round(sasl.user), this.address));
    } else {
      const scram = new ScramClient(sasl.user, sasl.password, sasl.mechanism as 'SCRAM-SHA-256' | 'SCRAM-SHA-512');
      const serverFinal = await round(scram.final(await round(scram.first())));
      if (!scram.verify(serverFinal)) throw refused('the broker did not prove it knows the credential (server signature mismatch)');
    }
    this.scheduleReauthentication(sasl, lifetimeMs);
  }

  /** OAUTHBEARER's token from its source; a source that fails fails the login (fault `auth`). */
  private async bearerToken(sasl: SaslOptions, what: string): Promise<string> {
    if (!sasl.token) throw new KafkaClientError('auth', `${what} OAUTHBEARER toward ${this.address}: no token source configured`);
    try {
      return await sasl.token();
    } catch (err) {
      throw new KafkaClientError('auth', `${what} OAUTHBEARER toward ${this.address}: no token (${(err as Error).message})`);
    }
  }

  /** Arms the timer for the next re-authentication of a session lasting `lifetimeMs` (0 = forever: none). */
  private scheduleReauthentication(sasl: SaslOptions, lifetimeMs: number): void {
    if (this.reauthTimer) clearTimeout(this.reauthTimer);
    this.reauthTimer = null;
    if (!(lifetimeMs > 0) || this.failure) return;
    const atMs = Math.floor(lifetimeMs * (REAUTH_AT_MIN + Math.random() * REAUTH_AT_SPREAD));
    this.reauthTimer = setTimeout(() => void this.reauthenticate(sasl), atMs);
    this.reauthTimer.unref(); // an idle connection must not keep the process alive
  }

  /** Hold the queue, let the written requests be answered, authenticate again, release (file header). */
  private async reauthenticate(sasl: SaslOptions): Promise<void> {
    this.reauthTimer = null;
    if (this.failure) return;
    let token: string | null = null;
    try {
      // Before the hold: a slow identity provider must not stall the connection's requests.
      if (sasl.mechanism === 'OAUTHBEARER') token = await this.bearerToken(sasl, 're-authentication (KIP-368) with SASL');
    } catch (err) {
      this.fail(err as KafkaClientError);
      return;
    }
    if (this.failure) return;
    this.holding = true;
    try {
      if (this.inFlight.length > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      if (this.failure) return;
      await this.authenticate(sasl, true, token);
      this.reauthentications++;
    } catch (err) {
      const e = err as KafkaClientError;
      // A refusal already names itself; a timeout or closed socket during the exchange is said to be one.
      this.fail(e.fault === 'auth' ? e : new KafkaClientError('auth', `${this.address}: re-authentication (KIP-368) failed: ${e.message}`, false, { cause: e }));
      return;
    } finally {
      this.holding = false;
      this.drained = null;
    }
    this.startQueued();
  }

  /** The version this connection uses for `api` (the highest both speak); throws `unsupported` when none. */
  versionFor(api: ClientApi): number {
    const v = negotiate(api, this.versions);
    if (v < 0) {
      const theirs = this.versions.get(api.key);
      throw new KafkaClientError('unsupported', `${this.address} does not speak ${api.name} ${api.minVersion}-${api.maxVersion} (it offers ${theirs ? `${theirs.minVersion}-${theirs.maxVersion}` : 'none'})`);
    }
    return v;
  }

  /** Sends `body` as `api` at the negotiated version and resolves with the decoded answer. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  request<T = any>(api: ClientApi, body: object, urgent = false): Promise<T> {
    return this.send(api, this.versionFor(api), body, urgent) as Promise<T>;
  }

  /**
   * Sends at an explicit version (tests, the handshake). Waits for a window slot when the window
   * is full, and while a re-authentication holds the queue (`bypassHold`: its own requests).
   */
  send(api: ClientApi, version: number, body: object, urgent = false, bypassHold = false): Promise<any> {
    if (this.failure) return Promise.reject(new KafkaClientError('closed', `connection to ${this.address} is closed`, false, { cause: this.failure }));
    return new Promise((resolve, reject) => {
      const start = () => this.write(api, version, body, resolve, reject);
      if (bypassHold || (!this.holding && this.inFlight.length < this.options.inFlightMax)) return start();
      // During a hold the window's free slots wait in the queue too (the renewal's own requests
      // take none of them): a re-authentication never turns into `limit` refusals.
      const room = this.options.queuedMax + (this.holding ? this.options.inFlightMax - this.callerRequestsInFlight() : 0);
      if (this.queue.length >= room) {
        return reject(new KafkaClientError('limit', `${this.address}: ${this.inFlight.length} requests in flight and ${this.queue.length} queued (queuedMax ${this.options.queuedMax})`));
      }
      const entry = { start, fail: reject, urgent };
      // Urgent: ahead of the queued requests that are not, behind the urgent ones already queued.
      const at = urgent ? this.queue.findIndex((q) => !q.urgent) : -1;
      if (at >= 0) this.queue.splice(at, 0, entry);
      else this.queue.push(entry);
    });
  }

  /** Written and unanswered requests other than a SASL exchange's (only `authenticate` sends those). */
  private callerRequestsInFlight(): number {
    let n = 0;
    for (const p of this.inFlight) if (p.api !== CLIENT_APIS.saslHandshake && p.api !== CLIENT_APIS.saslAuthenticate) n++;
    return n;
  }

  private write(api: ClientApi, version: number, body: object, resolve: (v: unknown) => void, reject: (e: Error) => void): void {
    if (this.failure) return reject(new KafkaClientError('closed', `connection to ${this.address} is closed`));
    const flexible = version >= api.flexibleFrom;
    const correlationId = this.nextCorrelationId;
    this.nextCorrelationId = (this.nextCorrelationId + 1) | 0 || 1;
    const w = new Writer();
    w.int32(0); // size, patched below
    w.int16(api.key);
    w.int16(version);
    w.int32(correlationId);
    w.string(this.options.clientId, false); // client_id keeps its int16 length in header v2
    if (flexible) w.uvarint(0);
    try {
      encode(api.request, body, version, flexible, w);
    } catch (err) {
      return reject(err as Error);
    }
    const size = w.length - 4;
    const chunks = w.finish();
    w.head.writeInt32BE(size, 0);
    const p: Pending = { correlationId, api, version, resolve, reject, timer: null };
    p.timer = setTimeout(() => this.onTimeout(p), this.options.requestTimeoutMs);
    this.inFlight.push(p);
    this.socket.cork();
    for (const c of chunks) this.socket.write(c);
    this.socket.uncork();
    this.bytesSent += size + 4;
    this.options.onBytesSent?.(size + 4);
  }

  private onTimeout(p: Pending): void {
    p.timer = null;
    this.fail(new KafkaClientError('timeout', `${p.api.name} to ${this.address} got no answer within ${this.options.requestTimeoutMs} ms`, true));
  }

  private onData(chunk: Buffer): void {
    if (!this.failure) this.frames.push(chunk);
  }

  private onFrame(frame: Buffer): void {
    const p = this.inFlight.shift();
    const r = new Reader(frame);
    try {
      const correlationId = r.int32('response.correlationId');
      if (!p || correlationId !== p.correlationId) {
        throw new ProtocolError(`answer with correlation id ${correlationId}, expected ${p ? p.correlationId : 'none'}`);
      }
      const flexible = p.version >= p.api.flexibleFrom;
      if (flexible && p.api.key !== CLIENT_APIS.apiVersions.key) readHeaderTaggedFields(r);
      const value = p.api.key === CLIENT_APIS.apiVersions.key ? decodeApiVersions(r, p.version, flexible) : decode(p.api.response, r, p.version, flexible);
      if (p.timer) clearTimeout(p.timer);
      p.resolve(value);
      if (this.inFlight.length === 0) this.drained?.();
    } catch (err) {
      if (p) this.inFlight.unshift(p);
      const fault = new KafkaClientError('protocol', `${this.address}: bad answer: ${(err as Error).message}`, true, { cause: err });
      return this.fail(fault);
    }
    this.startQueued();
  }

  private startQueued(): void {
    while (this.queue.length > 0 && this.inFlight.length < this.options.inFlightMax && !this.holding && !this.failure) this.queue.shift()!.start();
  }

  /** Fails every request (written ones indefinite, queued ones not) and closes the socket. Idempotent. */
  private fail(err: KafkaClientError): void {
    if (this.failure) return;
    this.failure = err;
    this.frames.stop();
    if (this.reauthTimer) clearTimeout(this.reauthTimer);
    this.reauthTimer = null;
    this.drained?.(); // a re-authentication waiting for answers that will not come sees the failure
    for (const p of this.inFlight.splice(0)) {
      if (p.timer) clearTimeout(p.timer);
      // Every request written and unanswered may have been applied: indefinite, whatever the cause.
      p.reject(new KafkaClientError(err.fault === 'protocol' || err.fault === 'timeout' ? err.fault : 'disconnected', err.message, true, { cause: err }));
    }
    for (const q of this.queue.splice(0)) q.fail(new KafkaClientError('closed', `connection to ${this.address} closed before the request was sent: ${err.message}`));
    this.socket.destroy();
  }

  /** Closes the connection; pending requests fail (indefinite when written). */
  close(): void {
    this.fail(new KafkaClientError('closed', `connection to ${this.address} closed by the client`));
  }

  /**
   * Aborts the connection: RST instead of FIN (SO_LINGER 0), so the kernel discards request bytes
   * still in its send buffer instead of delivering them later, e.g. once a blackholed link heals.
   * The uplink's cluster gate relies on it: a node that stops forwarding a partition must not have
   * bytes of it land after its successor's read-back. Pending requests fail as in `close`.
   */
  reset(): void {
    if (!this.tcp.destroyed) {
      try {
        this.tcp.resetAndDestroy();
      } catch {
        this.tcp.destroy(); // not connected yet: nothing was sent
      }
    }
    this.fail(new KafkaClientError('closed', `connection to ${this.address} reset by the client`));
  }
}
