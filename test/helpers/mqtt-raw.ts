// A raw MQTT 3.1.1 client over TCP for tests that must behave as no library lets them: never
// acknowledge a delivery, send a share name mqtt.js refuses, read the SUBACK codes byte by byte.
import { connect, type Socket } from 'node:net';
import { packet, str, u16 } from './mqtt-packets.js';
import { eventually } from './index.js';

export interface RawPublish {
  topic: string;
  qos: number;
  dup: boolean;
  messageId?: number;
  payload: Buffer;
}

export class RawMqttClient {
  readonly publishes: RawPublish[] = [];
  readonly subacks: Array<{ messageId: number; codes: number[] }> = [];
  connack: number | undefined;
  closed = false;
  private buf = Buffer.alloc(0);
  private nextId = 1;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d) => this.onData(d));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  static async connect(port: number, clientId: string, opts: { clean?: boolean; keepaliveSeconds?: number } = {}): Promise<RawMqttClient> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawMqttClient(socket);
    const flags = opts.clean === false ? 0x00 : 0x02;
    const body = Buffer.concat([str('MQTT'), Buffer.from([4, flags]), u16(opts.keepaliveSeconds ?? 60), str(clientId)]);
    socket.write(packet(0x10, body));
    await eventually(() => c.connack !== undefined || c.closed, 5_000);
    if (c.connack !== 0) throw new Error(`CONNACK ${c.connack} (closed ${c.closed})`);
    return c;
  }

  /** SUBSCRIBE with one or more filters; resolves with the SUBACK codes. */
  async subscribe(filters: Array<[string, number]>): Promise<number[]> {
    const id = this.nextId++;
    const body = Buffer.concat([u16(id), ...filters.map(([f, q]) => Buffer.concat([str(f), Buffer.from([q])]))]);
    this.socket.write(packet(0x82, body));
    const ack = await eventually(() => this.subacks.find((s) => s.messageId === id) ?? (this.closed ? { messageId: id, codes: [] } : undefined), 10_000);
    if (!ack || ack.codes.length === 0) throw new Error('connection closed before SUBACK');
    return ack.codes;
  }

  async unsubscribe(filter: string): Promise<void> {
    this.socket.write(packet(0xa2, Buffer.concat([u16(this.nextId++), str(filter)])));
  }

  puback(messageId: number): void {
    this.socket.write(packet(0x40, u16(messageId)));
  }

  /** Cuts the TCP connection without DISCONNECT (a device losing power). */
  destroy(): void {
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      let len = 0;
      let mul = 1;
      let i = 1;
      for (; ; i++) {
        if (i >= this.buf.length) return;
        len += (this.buf[i] & 0x7f) * mul;
        mul *= 128;
        if ((this.buf[i] & 0x80) === 0) break;
      }
      const start = i + 1;
      if (this.buf.length < start + len) return;
      const type = this.buf[0] >> 4;
      const flags = this.buf[0] & 0x0f;
      const body = this.buf.subarray(start, start + len);
      this.buf = this.buf.subarray(start + len);
      if (type === 2) this.connack = body[1];
      else if (type === 9) this.subacks.push({ messageId: body.readUInt16BE(0), codes: [...body.subarray(2)] });
      else if (type === 3) {
        const qos = (flags >> 1) & 3;
        const tlen = body.readUInt16BE(0);
        const topic = body.toString('utf8', 2, 2 + tlen);
        let pos = 2 + tlen;
        let messageId: number | undefined;
        if (qos > 0) {
          messageId = body.readUInt16BE(pos);
          pos += 2;
        }
        this.publishes.push({ topic, qos, dup: (flags & 8) !== 0, messageId, payload: Buffer.from(body.subarray(pos)) });
      }
    }
  }
}
