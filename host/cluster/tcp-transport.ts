// The Transport seam (transport.ts) over TCP between the voters of one cluster (node:net).
// Each node listens on `cluster.listen` and dials every peer; a connection carries frames one
// way, dialer → listener (so each pair of nodes holds two connections, one per direction, and a
// reconnect on one side never races a reconnect on the other).
//
// Bytes on a connection, all integers big-endian:
//
//   dialer → listener   hello  := length:uint32 version:uint8 (=1) kind:uint8 (1 peer, 2 status)
//                                 from:uint32 to:uint32 clusterIdLength:uint16 clusterId:utf8
//   listener → dialer   answer := length:uint32 version:uint8 (=1) accepted:uint8 (0|1)
//                                 reasonLength:uint16 reason:utf8
//   then, kind 1:       frame* (dialer → listener), each frame := length:uint32 body, as written
//                       by raft-codec.ts (and forward frames of quorum.ts): the transport reads
//                       only the length, and refuses one past frameBytesMax from its four bytes
//                       (the connection closes: a peer that sends that is broken or hostile)
//   then, kind 2:       answer is followed by one frame: length:uint32 JSON status (UTF-8), and
//                       the listener closes (`tributary cluster status` reads it)
//
// At most connectionsMax inbound connections are held; one that sends no hello within
// handshakeTimeoutMs is closed (a stranger cannot pin memory by connecting and waiting).
// A hello naming another cluster id, a node id that is not this node, or a sender that is not a
// voter is refused: the listener logs why, answers accepted=0 with the reason (the dialer logs it
// too) and closes. The dialer sends no frame before an accepting answer.
//
// Bounds: per peer at most sendQueueMax frames and sendQueueBytesMax bytes wait for the socket;
// at either bound the OLDEST are dropped and counted — Raft tolerates loss (a lost Append is resent after the next heartbeat)
// and the newest messages carry the newest term and commit index. The socket's own buffer is
// bounded by writing only while socket.write() says it has room ('drain' resumes). A connection
// that fails is redialled after a backoff doubling from reconnectBackoffMsMin to
// reconnectBackoffMsMax (reset by an accepted handshake). Nothing here survives a restart.
//
// TLS (`cluster.tls`): the same bytes inside TLS. The listener serves its certificate (and with
// requestCert requires the dialer's, signed by caFile); the dialer verifies the listener's
// certificate against caFile and the voter's address (a SAN for that host or IP), and presents
// its own certificate and key. The hello is written only once the TLS handshake is done.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { clientTlsOptions, ServerTls, type TlsOptions } from '../security/tls.js';
import type { Logger } from '../logging.js';
import { BrokerError } from '../errors/broker-error.js';
import { frameLength } from './raft-codec.js';
import type { NodeName, Transport } from './transport.js';

export const HANDSHAKE_VERSION = 1;
export const HELLO_PEER = 1;
export const HELLO_STATUS = 2;
/** A hello or an answer is small; this bounds what is buffered before a handshake completes. */
const HANDSHAKE_BYTES_MAX = 1024;

export interface HostPort {
  host: string;
  port: number;
}

export interface TcpTransportOptions {
  clusterId: string;
  nodeId: number;
  /** Where to listen (port 0 picks a free one: see `address`). */
  listen: HostPort;
  /** Every other voter's inter-node address. */
  peers: ReadonlyMap<number, HostPort>;
  /** Largest frame accepted or sent, length prefix included. */
  frameBytesMax: number;
  /** Frames waiting per peer; past it the oldest is dropped. */
  sendQueueMax: number;
  /** Bytes waiting per peer; past it the oldest frames are dropped. */
  sendQueueBytesMax: number;
  reconnectBackoffMsMin: number;
  reconnectBackoffMsMax: number;
  /** Inbound connections held at once (peers, their reconnects, status readers); past it a new one is closed. */
  connectionsMax: number;
  /** An inbound connection that has not sent its hello by then is closed. */
  handshakeTimeoutMs: number;
  logger: Logger;
  /** Answers a status connection (kind 2); absent = status connections are refused. */
  status?: () => unknown;
  /** TLS for the listener and every dial (`cluster.tls`); null/absent = plain TCP. */
  tls?: TlsOptions | null;
}

/** What a dialler passes to tls.connect for `cluster.tls`: verify against caFile, present our own certificate. */
export function clusterClientTls(o: TlsOptions): ConnectionOptions {
  return clientTlsOptions('cluster.tls', { caFile: o.caFile, certFile: o.certFile, keyFile: o.keyFile, serverName: null });
}

/** A socket to `address`, in TLS when `tls` is given; `onReady` runs once bytes may be sent. */
function dialSocket(address: HostPort, tls: ConnectionOptions | null, onReady: () => void): Socket {
  if (!tls) {
    const s = createConnection({ host: address.host, port: address.port });
    s.on('connect', onReady);
    return s;
  }
  const s = tlsConnect({ ...tls, host: address.host, port: address.port });
  s.on('secureConnect', onReady);
  return s;
}

export interface TcpTransportStats {
  framesSent: number;
  framesReceived: number;
  /** Oldest frames dropped because a peer's send queue was full. */
  queueDrops: number;
  /** Frames refused by send() (unknown peer, closed, larger than frameBytesMax). */
  refused: number;
  handshakesRefused: number;
  /** Inbound connections closed at once because connectionsMax were open, or for a late hello. */
  connectionsRefused: number;
  oversizedFrames: number;
  reconnects: number;
}

export function encodeHello(kind: number, from: number, to: number, clusterId: string): Buffer {
  const id = Buffer.from(clusterId, 'utf8');
  const b = Buffer.alloc(4 + 1 + 1 + 4 + 4 + 2 + id.length);
  b.writeUInt32BE(b.length - 4, 0);
  b.writeUInt8(HANDSHAKE_VERSION, 4);
  b.writeUInt8(kind, 5);
  b.writeUInt32BE(from, 6);
  b.writeUInt32BE(to, 10);
  b.writeUInt16BE(id.length, 14);
  id.copy(b, 16);
  return b;
}

export function decodeHello(b: Buffer): { kind: number; from: number; to: number; clusterId: string } {
  if (b.length < 16 || b.readUInt8(4) !== HANDSHAKE_VERSION) throw new BrokerError('UNSUPPORTED_VERSION', `handshake version ${b.length > 4 ? b.readUInt8(4) : '?'}, this node speaks ${HANDSHAKE_VERSION}`);
  const idLength = b.readUInt16BE(14);
  if (16 + idLength !== b.length) throw new BrokerError('CORRUPT_MESSAGE', `handshake: cluster id of ${idLength} bytes in a ${b.length}-byte hello`);
  return { kind: b.readUInt8(5), from: b.readUInt32BE(6), to: b.readUInt32BE(10), clusterId: b.toString('utf8', 16) };
}

export function encodeAnswer(accepted: boolean, reason: string): Buffer {
  const r = Buffer.from(reason.slice(0, 500), 'utf8');
  const b = Buffer.alloc(8 + r.length);
  b.writeUInt32BE(b.length - 4, 0);
  b.writeUInt8(HANDSHAKE_VERSION, 4);
  b.writeUInt8(accepted ? 1 : 0, 5);
  b.writeUInt16BE(r.length, 6);
  r.copy(b, 8);
  return b;
}

export function decodeAnswer(b: Buffer): { accepted: boolean; reason: string } {
  if (b.length < 8 || b.readUInt8(4) !== HANDSHAKE_VERSION) throw new BrokerError('UNSUPPORTED_VERSION', 'handshake answer of another version');
  return { accepted: b.readUInt8(5) === 1, reason: b.toString('utf8', 8, 8 + b.readUInt16BE(6)) };
}

/**
 * Splits a byte stream into length-prefixed frames. Holds at most one partial frame (≤ limit).
 * `limit` throws MESSAGE_TOO_LARGE from the length prefix alone.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private limit: number) {}

  setLimit(limit: number): void {
    this.limit = limit;
  }

  /** Appends bytes; returns the complete frames they finish, in order. */
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    let pos = 0;
    for (;;) {
      const total = frameLength(this.buf, pos, this.limit);
      if (total === null || this.buf.length - pos < total) break;
      out.push(this.buf.subarray(pos, pos + total));
      pos += total;
    }
    // Copied so the (possibly large) chunk a frame came in is not kept alive by the leftover.
    this.buf = pos === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(pos));
    return out;
  }
}

class Peer {
  readonly queue: Uint8Array[] = [];
  queueBytes = 0;
  socket: Socket | null = null;
  ready = false;
  backoffMs: number;
  timer: NodeJS.Timeout | null = null;
  /** Last refusal logged, so a peer refusing every second logs once per distinct reason. */
  lastRefusal = '';

  constructor(
    readonly id: number,
    readonly address: HostPort,
    backoffMs: number,
  ) {
    this.backoffMs = backoffMs;
  }
}

export class TcpTransport implements Transport<Uint8Array> {
  readonly name: NodeName;
  readonly stats: TcpTransportStats = { framesSent: 0, framesReceived: 0, queueDrops: 0, refused: 0, handshakesRefused: 0, connectionsRefused: 0, oversizedFrames: 0, reconnects: 0 };
  private handler: ((from: NodeName, message: Uint8Array) => void) | null = null;
  private readonly peers = new Map<number, Peer>();
  private readonly inbound = new Set<Socket>();
  private closed = false;

  /** The dialler's TLS options (null = plain TCP); the listener's files and reload. */
  private readonly clientTls: ConnectionOptions | null;
  readonly serverTls: ServerTls | null;

  private constructor(
    private readonly opts: TcpTransportOptions,
    private readonly server: Server,
    serverTls: ServerTls | null,
  ) {
    this.serverTls = serverTls;
    this.clientTls = opts.tls ? clusterClientTls(opts.tls) : null;
    this.name = String(opts.nodeId);
    for (const [id, address] of opts.peers) {
      if (id !== opts.nodeId) this.peers.set(id, new Peer(id, address, opts.reconnectBackoffMsMin));
    }
  }

  /** Binds the listener and starts dialling every peer. */
  static async start(opts: TcpTransportOptions): Promise<TcpTransport> {
    let t: TcpTransport | undefined;
    const serverTls = opts.tls ? new ServerTls('cluster', 'cluster.tls', opts.tls, opts.logger) : null;
    const server = serverTls ? serverTls.createServer((s) => t!.accept(s)) : createServer((s) => t!.accept(s));
    t = new TcpTransport(opts, server, serverTls);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.listen.port, opts.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => opts.logger.error({ err: err.message }, 'cluster listener error'));
    for (const p of t.peers.values()) t.dial(p);
    return t;
  }

  /** The bound address (the real port when 0 was asked). */
  get address(): HostPort {
    const a = this.server.address();
    return typeof a === 'object' && a ? { host: a.address, port: a.port } : this.opts.listen;
  }

  send(to: NodeName, message: Uint8Array): boolean {
    const peer = this.peers.get(Number(to));
    if (this.closed || !peer || message.length > this.opts.frameBytesMax) {
      this.stats.refused++;
      return false;
    }
    while (peer.queue.length && (peer.queue.length >= this.opts.sendQueueMax || peer.queueBytes + message.length > this.opts.sendQueueBytesMax)) {
      peer.queueBytes -= peer.queue.shift()!.length;
      this.stats.queueDrops++;
    }
    peer.queue.push(message);
    peer.queueBytes += message.length;
    this.flush(peer);
    return true;
  }

  onMessage(handler: (from: NodeName, message: Uint8Array) => void): void {
    this.handler = handler;
  }

  /** Frames waiting for `peer` (tests and status). */
  queued(peer: number): number {
    return this.peers.get(peer)?.queue.length ?? 0;
  }

  connected(peer: number): boolean {
    return this.peers.get(peer)?.ready ?? false;
  }

  /** This node's status, as a status connection (kind 2) reads it; null when none is configured. */
  status(): unknown {
    return this.opts.status?.() ?? null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.close();
    for (const p of this.peers.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.socket?.destroy();
      p.queue.length = 0;
      p.queueBytes = 0;
    }
    for (const s of this.inbound) s.destroy();
  }

  // ---- the dialling side ----

  private dial(peer: Peer): void {
    if (this.closed) return;
    peer.timer = null;
    const socket = dialSocket(peer.address, this.clientTls, () => socket.write(encodeHello(HELLO_PEER, this.opts.nodeId, peer.id, this.opts.clusterId)));
    socket.setNoDelay(true);
    peer.socket = socket;
    peer.ready = false;
    const reader = new FrameReader(HANDSHAKE_BYTES_MAX);
    socket.on('data', (chunk: Buffer) => {
      if (peer.ready) return; // nothing flows listener → dialer after the answer
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      if (!frames.length) return;
      let answer: { accepted: boolean; reason: string };
      try {
        answer = decodeAnswer(frames[0]!);
      } catch (err) {
        // Something else listens at the peer's address (or a node of another version).
        answer = { accepted: false, reason: `unreadable handshake answer: ${(err as Error).message}` };
      }
      if (!answer.accepted) {
        this.stats.handshakesRefused++;
        if (answer.reason !== peer.lastRefusal) this.opts.logger.error({ peer: peer.id, address: `${peer.address.host}:${peer.address.port}`, reason: answer.reason }, 'cluster peer refused our handshake');
        peer.lastRefusal = answer.reason;
        socket.destroy();
        return;
      }
      peer.ready = true;
      peer.lastRefusal = '';
      peer.backoffMs = this.opts.reconnectBackoffMsMin;
      this.opts.logger.info({ peer: peer.id }, 'cluster peer connected');
      this.flush(peer);
    });
    socket.on('drain', () => this.flush(peer));
    socket.on('error', (err: Error & { code?: string }) => {
      // A TLS failure (wrong CA, a name not in the certificate) is worth saying once per reason.
      if (this.clientTls && err.code && err.code !== 'ECONNREFUSED' && err.code !== 'ECONNRESET' && err.code !== peer.lastRefusal) {
        peer.lastRefusal = err.code;
        this.opts.logger.error({ peer: peer.id, err: err.message }, 'cluster peer: TLS connection failed');
      }
    }); // 'close' follows and schedules the redial
    socket.on('close', () => {
      if (peer.socket !== socket) return;
      if (peer.ready) this.opts.logger.warn({ peer: peer.id }, 'cluster peer disconnected');
      peer.socket = null;
      peer.ready = false;
      this.redial(peer);
    });
  }

  private redial(peer: Peer): void {
    if (this.closed || peer.timer) return;
    this.stats.reconnects++;
    peer.timer = setTimeout(() => this.dial(peer), peer.backoffMs);
    peer.backoffMs = Math.min(this.opts.reconnectBackoffMsMax, peer.backoffMs * 2);
  }

  private flush(peer: Peer): void {
    const s = peer.socket;
    if (!s || !peer.ready) return;
    while (peer.queue.length) {
      const frame = peer.queue.shift()!;
      peer.queueBytes -= frame.length;
      this.stats.framesSent++;
      if (!s.write(frame)) return; // resumes on 'drain'
    }
  }

  // ---- the listening side ----

  private accept(socket: Socket): void {
    if (this.closed) return void socket.destroy();
    if (this.inbound.size >= this.opts.connectionsMax) {
      this.stats.connectionsRefused++;
      this.opts.logger.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}`, connectionsMax: this.opts.connectionsMax }, 'cluster connection refused: cluster.connectionsMax open');
      return void socket.destroy();
    }
    this.inbound.add(socket);
    socket.setNoDelay(true);
    const reader = new FrameReader(HANDSHAKE_BYTES_MAX);
    let from: NodeName | null = null;
    const helloTimer = setTimeout(() => {
      this.stats.connectionsRefused++;
      this.opts.logger.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'cluster connection closed: no hello within cluster.handshakeTimeoutMs');
      socket.destroy();
    }, this.opts.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        this.stats.oversizedFrames++;
        this.opts.logger.warn({ peer: from, err: (err as Error).message }, 'cluster connection closed: frame over the limit');
        socket.destroy();
        return;
      }
      for (const f of frames) {
        if (from === null) {
          clearTimeout(helloTimer);
          from = this.handshake(socket, f);
          if (from === null) return;
          reader.setLimit(this.opts.frameBytesMax);
          continue;
        }
        this.stats.framesReceived++;
        // Copied: the frame is a view of a socket chunk that the next read may reuse.
        this.handler?.(from, new Uint8Array(f));
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(helloTimer);
      this.inbound.delete(socket);
    });
  }

  /** Checks a hello; returns the peer's name, or null after refusing (or answering a status read). */
  private handshake(socket: Socket, frame: Buffer): NodeName | null {
    let reason = '';
    let hello: ReturnType<typeof decodeHello> | null = null;
    try {
      hello = decodeHello(frame);
    } catch (err) {
      reason = (err as Error).message;
    }
    if (hello && hello.kind === HELLO_STATUS && this.opts.status) {
      socket.write(encodeAnswer(true, ''));
      const body = Buffer.from(JSON.stringify(this.opts.status()), 'utf8');
      const head = Buffer.alloc(4);
      head.writeUInt32BE(body.length);
      socket.end(Buffer.concat([head, body]));
      return null;
    }
    if (hello && !reason) {
      if (hello.kind !== HELLO_PEER) reason = `handshake kind ${hello.kind} is not served here`;
      else if (hello.clusterId !== this.opts.clusterId) reason = `cluster id mismatch: this node is in cluster "${this.opts.clusterId}", the peer says "${hello.clusterId}"`;
      else if (hello.to !== this.opts.nodeId) reason = `node id mismatch: this is node ${this.opts.nodeId}, the peer dialled node ${hello.to}`;
      else if (!this.peers.has(hello.from)) reason = `node ${hello.from} is not a voter of this cluster (voters: ${[this.opts.nodeId, ...this.peers.keys()].sort((a, b) => a - b).join(', ')})`;
    }
    if (reason) {
      this.stats.handshakesRefused++;
      this.opts.logger.error({ remote: `${socket.remoteAddress}:${socket.remotePort}`, reason }, 'cluster handshake refused');
      socket.end(encodeAnswer(false, reason));
      return null;
    }
    socket.write(encodeAnswer(true, ''));
    return String(hello!.from);
  }
}

/** Reads a node's status over its cluster listener (kind 2 hello); rejects after timeoutMs. */
export function readStatus(address: HostPort, timeoutMs: number, frameBytesMax = 1 << 20, tls: ConnectionOptions | null = null): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = dialSocket(address, tls, () => socket.write(encodeHello(HELLO_STATUS, 0, 0, '')));
    // The answer and the status often arrive in one chunk, both parsed before the limit could be
    // raised after the answer: the status's own bound applies from the start.
    const reader = new FrameReader(Math.max(HANDSHAKE_BYTES_MAX, frameBytesMax));
    let answered = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new BrokerError('REQUEST_TIMED_OUT', `no status from ${address.host}:${address.port} within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.on('error', (err) => fail(new BrokerError('NETWORK_EXCEPTION', `cannot reach ${address.host}:${address.port}: ${err.message}`)));
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        return fail(err as Error);
      }
      try {
        for (const f of frames) {
          if (!answered) {
            const a = decodeAnswer(f);
            if (!a.accepted) return fail(new BrokerError('INVALID_REQUEST', `status refused: ${a.reason}`));
            answered = true;
            reader.setLimit(frameBytesMax);
            continue;
          }
          clearTimeout(timer);
          socket.destroy();
          return resolve(JSON.parse(f.toString('utf8', 4)));
        }
      } catch (err) {
        fail(new BrokerError('CORRUPT_MESSAGE', `${address.host}:${address.port} is not a cluster listener: ${(err as Error).message}`));
      }
    });
  });
}
