// A minimal MQTT 3.1.1 client for load generation (bench only): CONNECT, SUBSCRIBE, PUBLISH at
// QoS 0/1, PUBACK. mqtt.js costs the load generator 15–25 µs per message, which on a 2-core
// machine shared with the server under test would cap every server at the generator's pace;
// this client writes pre-encoded packets and parses only what it needs, so the server is the
// bottleneck.
//
// Bytes (MQTT 3.1.1 §2–3):
//   fixed header  byte 0 = type << 4 | flags; remaining length as 1–4 base-128 bytes
//   PUBLISH       topic (u16 length + UTF-8), packet id (u16, QoS > 0 only), payload
//   PUBACK        0x40 0x02 id(u16)
// Bench payloads start with the send time (float64 LE, `performance.now()` of this process):
// publishers and subscribers live in the same process, so delivery latency is one subtraction.
import { connect, type Socket } from 'node:net';

export const PAYLOAD_BYTES = 100;

const CONNACK = 2;
const PUBLISH = 3;
const PUBACK = 4;
const SUBACK = 9;

export interface LoadClientOptions {
  clientId: string;
  clean?: boolean;
  /** Seconds; 0 = no keep-alive (the bench's runs are short and busy). */
  keepaliveS?: number;
  connectTimeoutMs?: number;
}

function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** One PUBLISH packet's size for a topic of `topicBytes` and the bench payload. */
export function publishBytes(topicBytes: number, qos: 0 | 1): number {
  const body = 2 + topicBytes + (qos > 0 ? 2 : 0) + PAYLOAD_BYTES;
  return 1 + remainingLength(body).length + body;
}

/** Writes one PUBLISH at `at` in `out`; returns the end offset. Payload: send time, publisher, seq, filler. */
export function writePublish(out: Buffer, at: number, topic: Buffer, qos: 0 | 1, packetId: number, sentMs: number, publisher: number, seq: number): number {
  const body = 2 + topic.length + (qos > 0 ? 2 : 0) + PAYLOAD_BYTES;
  out[at++] = (PUBLISH << 4) | (qos << 1);
  for (const b of remainingLength(body)) out[at++] = b;
  out.writeUInt16BE(topic.length, at);
  at += 2;
  topic.copy(out, at);
  at += topic.length;
  if (qos > 0) {
    out.writeUInt16BE(packetId, at);
    at += 2;
  }
  out.writeDoubleLE(sentMs, at);
  out.writeUInt32LE(publisher, at + 8);
  out.writeUInt32LE(seq, at + 12);
  FILLER.copy(out, at + 16);
  return at + PAYLOAD_BYTES;
}

// ~100 B like the JSON readings of the other rows; the content itself is never parsed
const FILLER = Buffer.from('{"device":"dev-00","temp":21.5,"humidity":40,"ts":1700000000000,"unit":"C"}'.padEnd(PAYLOAD_BYTES - 16, ' '));

export class LoadClient {
  /** Called for every PUBLISH received, with the payload as a view (valid only during the call). */
  onPublish: ((payload: Buffer, qos: number) => void) | undefined;
  /** Called for every PUBACK received. */
  onPuback: ((packetId: number) => void) | undefined;
  /** Set when the server closed the connection (or it failed). */
  closed = false;
  private buf: Buffer | null = null;
  private subackWaiter: (() => void) | undefined;
  private readonly pubacks: number[] = [];

  private constructor(readonly socket: Socket) {}

  static connect(port: number, o: LoadClientOptions): Promise<LoadClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', noDelay: true });
      const c = new LoadClient(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`${o.clientId}: no CONNACK within ${o.connectTimeoutMs ?? 5_000} ms`));
      }, o.connectTimeoutMs ?? 5_000);
      let connacked = false;
      socket.once('error', (err) => {
        clearTimeout(timer);
        if (!connacked) reject(err);
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        c.closed = true;
        clearTimeout(timer);
        if (!connacked) reject(new Error(`${o.clientId}: closed before CONNACK`));
      });
      socket.on('connect', () => {
        const id = Buffer.from(o.clientId);
        const vh = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, o.clean === false ? 0 : 2, (o.keepaliveS ?? 0) >> 8, (o.keepaliveS ?? 0) & 0xff, id.length >> 8, id.length & 0xff]);
        const body = Buffer.concat([vh, id]);
        socket.write(Buffer.concat([Buffer.from([0x10, ...remainingLength(body.length)]), body]));
      });
      socket.on('data', (chunk: Buffer) => {
        c.onData(chunk, (rc) => {
          clearTimeout(timer);
          connacked = true;
          if (rc === 0) resolve(c);
          else {
            socket.destroy();
            reject(new Error(`${o.clientId}: CONNACK return code ${rc}`));
          }
        });
      });
    });
  }

  subscribe(filter: string, qos: 0 | 1, timeoutMs = 10_000): Promise<void> {
    const f = Buffer.from(filter);
    const body = Buffer.concat([Buffer.from([0, 1, f.length >> 8, f.length & 0xff]), f, Buffer.from([qos])]);
    this.socket.write(Buffer.concat([Buffer.from([0x82, ...remainingLength(body.length)]), body]));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no SUBACK for ${filter}`)), timeoutMs);
      this.subackWaiter = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  write(bytes: Buffer): boolean {
    return this.socket.write(bytes);
  }

  close(): void {
    this.socket.destroy();
  }

  private onConnack: ((rc: number) => void) | undefined;

  private onData(chunk: Buffer, onConnack: (rc: number) => void): void {
    this.onConnack ??= onConnack;
    // writes made by the handlers below (PUBACKs, a publisher's next publishes) leave in one writev
    this.socket.cork();
    try {
      this.parse(chunk);
    } finally {
      this.socket.uncork();
    }
  }

  private parse(chunk: Buffer): void {
    let buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    this.buf = null;
    let pos = 0;
    for (;;) {
      if (buf.length - pos < 2) break;
      const type = buf[pos] >> 4;
      let len = 0;
      let mul = 1;
      let i = pos + 1;
      let complete = false;
      for (; i < buf.length && i < pos + 5; i++) {
        len += (buf[i] & 0x7f) * mul;
        mul *= 128;
        if ((buf[i] & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete || i + len > buf.length) break;
      const s = i;
      const e = i + len;
      if (type === PUBLISH) {
        const qos = (buf[pos] >> 1) & 3;
        let p = s + 2 + buf.readUInt16BE(s);
        if (qos > 0) {
          this.pubacks.push(buf.readUInt16BE(p));
          p += 2;
        }
        this.onPublish?.(buf.subarray(p, e), qos);
      } else if (type === PUBACK) {
        this.onPuback?.(buf.readUInt16BE(s));
      } else if (type === CONNACK) {
        const cb = this.onConnack;
        this.onConnack = () => undefined;
        cb?.(buf[s + 1]);
      } else if (type === SUBACK) {
        if (buf[e - 1] === 0x80) this.socket.destroy(new Error('SUBACK refused'));
        this.subackWaiter?.();
        this.subackWaiter = undefined;
      }
      pos = e;
    }
    if (pos < buf.length) this.buf = Buffer.from(buf.subarray(pos));
    if (this.pubacks.length > 0) {
      // one write for every PUBACK of this chunk
      const out = Buffer.allocUnsafe(4 * this.pubacks.length);
      for (let k = 0; k < this.pubacks.length; k++) {
        out[4 * k] = PUBACK << 4;
        out[4 * k + 1] = 2;
        out.writeUInt16BE(this.pubacks[k], 4 * k + 2);
      }
      this.pubacks.length = 0;
      if (!this.socket.destroyed) this.socket.write(out);
    }
  }
}
