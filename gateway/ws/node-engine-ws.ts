// The node engine's WebSocket side: a `ws` socket behind the uWebSockets.js WebSocket methods
// the door uses, with uWS's semantics where they differ from `ws`:
//
//   send      returns uWS's SendStatus numbers: 1 written, 0 written with bytes left buffered
//             (backpressure), 2 dropped because the socket was already past maxBackpressure;
//             with closeOnBackpressureLimit a send that passes it closes the socket at once
//             (close handler with 1006, as uWS does), so the next call throws;
//   drain     called once the buffered bytes reported by a backpressured send are written out;
//   end       sends the close frame and calls the close handler at once (uWS calls it inside
//             end()); afterwards every method throws, as uWS.js does on a closed socket;
//   errors   a frame past maxPayloadLength, invalid UTF-8 in a text frame, any protocol error:
//             the connection is dropped without a close frame (the peer sees 1006), as uWS does;
//             the door closes frames between its own limit and that ceiling with 1009 itself;
//   idle      no frame received for idleTimeout seconds closes the socket (1006 at the peer); with
//             sendPingsAutomatically a ping goes out half-way, and its pong counts as a frame.
import type { WebSocket } from 'ws';

export const CLOSED_SOCKET = 'Invalid access of closed uWS.WebSocket/SSLWebSocket.';

/** SendStatus values of uWS (gateway/ws/uws-loader.ts reads them with sendStatus()). */
const SENT = 1;
const BACKPRESSURE = 0;
const DROPPED = 2;

/** The WebSocketBehavior fields the door sets (uWS names). */
export interface NodeWsBehavior {
  maxPayloadLength?: number;
  idleTimeout?: number;
  maxBackpressure?: number;
  closeOnBackpressureLimit?: boolean | number;
  sendPingsAutomatically?: boolean;
  compression?: number;
  upgrade?: (res: never, req: never, context: never) => void;
  open?: (ws: NodeWebSocket) => void;
  message?: (ws: NodeWebSocket, message: ArrayBuffer, isBinary: boolean) => void;
  drain?: (ws: NodeWebSocket) => void;
  close?: (ws: NodeWebSocket, code: number, message: ArrayBuffer) => void;
}

/** ws refuses to send these codes in a close frame (RFC 6455 §7.4.1: reserved or out of range). */
function sendableCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** A close reason fits in 123 bytes (RFC 6455 §5.5: control frame payload ≤ 125, 2 for the code). */
function closeReason(reason: string): string {
  let r = reason;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}

/** The message as uWS hands it over: an ArrayBuffer of exactly its bytes (copied only when `ws` gave a view into a larger one). */
function toArrayBuffer(data: Buffer): ArrayBuffer {
  if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) return data.buffer as ArrayBuffer;
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
}

export class NodeWebSocket {
  /** Set once the close handler has returned: the socket is unusable from then on (uWS.js: it throws). */
  private closed = false;
  /** Set when closing starts, so the close handler runs once. */
  private closing = false;
  /** Set when a send left bytes buffered; drain is reported once they are written. */
  private backpressured = false;
  /** Receive time of the last frame (idle timeout), and whether the half-way ping is out. */
  lastReceivedMs = Date.now();
  pinged = false;
  private readonly afterWrite = () => this.written();

  constructor(
    private readonly ws: WebSocket,
    private readonly userData: unknown,
    private readonly behavior: NodeWsBehavior,
    private readonly remote: string,
    private readonly forget: (s: NodeWebSocket) => void,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.received();
      if (!this.closing) behavior.message?.(this, toArrayBuffer(data), isBinary);
    });
    ws.on('ping', () => this.received());
    ws.on('pong', () => this.received());
    ws.on('error', () => undefined); // every error also ends in 'close'
    ws.on('close', (code: number, reason: Buffer) => this.closedBy(code, reason));
  }

  private received(): void {
    this.lastReceivedMs = Date.now();
    this.pinged = false;
  }

  private check(): void {
    if (this.closed) throw new Error(CLOSED_SOCKET);
  }

  private written(): void {
    if (this.closing || !this.backpressured || this.ws.bufferedAmount > 0) return;
    this.backpressured = false;
    this.behavior.drain?.(this);
  }

  private closedBy(code: number, reason: Buffer): void {
    this.forget(this);
    if (this.closing) return;
    this.closing = true;
    try {
      this.behavior.close?.(this, code, toArrayBuffer(reason)); // the socket is still usable inside, as in uWS
    } finally {
      this.closed = true;
    }
  }

  send(message: string | ArrayBuffer | ArrayBufferView, isBinary = false): number {
    this.check();
    const max = this.behavior.maxBackpressure ?? 0;
    if (max > 0 && this.ws.bufferedAmount > max) {
      if (this.behavior.closeOnBackpressureLimit) this.close();
      return DROPPED;
    }
    const data = typeof message === 'string' || message instanceof ArrayBuffer ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
    this.ws.send(data, { binary: isBinary, compress: false }, this.afterWrite);
    const buffered = this.ws.bufferedAmount;
    if (buffered === 0) return SENT;
    this.backpressured = true;
    if (max > 0 && buffered > max && this.behavior.closeOnBackpressureLimit) this.close();
    return BACKPRESSURE;
  }

  /** Close frame with code and reason; the close handler runs now, as in uWS. */
  end(code = 0, reason = ''): void {
    this.check();
    if (this.closing) return;
    this.closing = true;
    if (sendableCode(code)) this.ws.close(code, closeReason(reason));
    else this.ws.close();
    try {
      this.behavior.close?.(this, code, toArrayBuffer(Buffer.from(reason)));
    } finally {
      this.closed = true;
    }
  }

  /** Drops the connection without a close frame (the peer sees 1006); the close handler runs now with 1006, as in uWS. */
  close(): void {
    this.check();
    this.ws.terminate();
    this.closedBy(1006, Buffer.alloc(0));
  }

  ping(message?: string | ArrayBuffer): number {
    this.check();
    this.ws.ping(message);
    return this.ws.bufferedAmount === 0 ? SENT : BACKPRESSURE;
  }

  getBufferedAmount(): number {
    this.check();
    return this.ws.bufferedAmount;
  }

  getUserData(): unknown {
    this.check();
    return this.userData;
  }

  getRemoteAddressAsText(): ArrayBuffer {
    this.check();
    return new TextEncoder().encode(this.remote).buffer as ArrayBuffer;
  }

  /** Idle check, once per timer tick: ping half-way, drop at idleTimeout (uWS granularity is 4 s too). */
  tick(nowMs: number): void {
    const idleMs = (this.behavior.idleTimeout ?? 0) * 1000;
    if (this.closing || idleMs <= 0) return;
    const idle = nowMs - this.lastReceivedMs;
    if (idle >= idleMs) this.ws.terminate();
    else if (idle >= idleMs / 2 && !this.pinged && this.behavior.sendPingsAutomatically !== false) {
      this.pinged = true;
      this.ws.ping();
    }
  }
}

/**
 * On a protocol error uWS drops the connection without a close frame (the peer sees 1006): a
 * frame past maxPayloadLength, invalid UTF-8 in a text frame, a bad opcode or close code. `ws`
 * would send 1009/1007/1002 instead. Its receiver reports the error before reading any payload
 * past the limit: we terminate first, so `ws`'s own close() finds the socket closing and sends
 * nothing. (`_receiver` is internal to ws 8, pinned exactly in package.json; without it the
 * peer gets ws's close code instead, and the differential test says so.)
 */
export function dropOnProtocolError(ws: WebSocket): void {
  const receiver = (ws as unknown as { _receiver?: { prependListener(e: 'error', f: () => void): void } })._receiver;
  receiver?.prependListener('error', () => ws.terminate());
}
