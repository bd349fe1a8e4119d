// A small Kafka request client for the admin CLI's security commands (`tributary users|acls`):
// one TCP connection, requests one at a time, optionally SASL/SCRAM-SHA-512 first. It speaks
// through the same schemas the listener answers with (host/kafka/apis), so the CLI and the broker
// cannot disagree about a field. Not a general client (host/kafka/client/ is that work).
//
// Frame: int32 size | request header v1 (api_key, api_version, correlation_id, client_id) [+ empty
// tagged fields for a flexible version] | body. Response: int32 size | correlation_id [+ tagged
// fields] | body.
import net from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { decode, encode, Reader, Writer } from '../kafka/protocol/codec.js';
import { readHeaderTaggedFields } from '../kafka/protocol/header.js';
import type { ApiHandler } from '../kafka/apis/types.js';
import { ScramClient } from '../security/index.js';

const CLIENT_ID = 'tributary-cli';
const RESPONSE_BYTES_MAX = 64 * 1024 * 1024; // an admin answer (ACL list) far below this; a bigger size is a wrong port

export class KafkaAdminConnection {
  private correlationId = 0;
  private buffered = Buffer.alloc(0);
  private waiting: { resolve: (frame: Buffer) => void; reject: (err: Error) => void } | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.deliver();
    });
    const end = (err?: Error) => {
      this.failure ??= err ?? new Error('the broker closed the connection');
      this.waiting?.reject(this.failure);
      this.waiting = null;
    };
    socket.on('error', end);
    socket.on('close', () => end());
  }

  /** `tls`: connect in TLS with these options (the server's certificate verified); absent = plain TCP. */
  static async open(address: string, timeoutMs = 10_000, tls?: import('node:tls').ConnectionOptions): Promise<KafkaAdminConnection> {
    const at = address.lastIndexOf(':');
    const host = address.slice(0, at).replace(/^\[|\]$/g, '');
    const port = Number(address.slice(at + 1));
    if (at <= 0 || !Number.isInteger(port)) throw new Error(`--kafka must be host:port, got "${address}"`);
    const socket = tls ? tlsConnect({ ...tls, host, port }) : net.connect({ host, port });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from ${address} within ${timeoutMs} ms`)), timeoutMs);
      socket.once(tls ? 'secureConnect' : 'connect', () => (clearTimeout(timer), resolve()));
      socket.once('error', (err) => (clearTimeout(timer), reject(err)));
    });
    return new KafkaAdminConnection(socket);
  }

  private deliver(): void {
    if (!this.waiting || this.buffered.length < 4) return;
    const size = this.buffered.readInt32BE(0);
    if (size < 4 || size > RESPONSE_BYTES_MAX) return void this.socket.destroy(new Error(`response size ${size}: not a Kafka listener?`));
    if (this.buffered.length < 4 + size) return;
    const frame = this.buffered.subarray(4, 4 + size);
    this.buffered = this.buffered.subarray(4 + size);
    const w = this.waiting;
    this.waiting = null;
    w.resolve(frame);
  }

  /** Sends one request at `version` and decodes its response. */
  async request<T>(api: ApiHandler, version: number, body: object): Promise<T> {
    if (this.failure) throw this.failure;
    const flexible = version >= api.flexibleFrom;
    const w = new Writer();
    w.int32(0);
    w.int16(api.apiKey);
    w.int16(version);
    const correlationId = ++this.correlationId;
    w.int32(correlationId);
    w.string(CLIENT_ID, false);
    if (flexible) w.uvarint(0);
    encode(api.request, body, version, flexible, w);
    const size = w.length - 4;
    const chunks = w.finish();
    w.head.writeInt32BE(size, 0);
    const answer = new Promise<Buffer>((resolve, reject) => (this.waiting = { resolve, reject }));
    for (const c of chunks) this.socket.write(c);
    const frame = await answer;
    const r = new Reader(frame);
    const got = r.int32('correlationId');
    if (got !== correlationId) throw new Error(`response for request ${got}, expected ${correlationId}`);
    if (flexible && api.apiKey !== 18) readHeaderTaggedFields(r);
    return decode<T>(api.response, r, version, flexible);
  }

  /** SaslHandshake + SaslAuthenticate with SCRAM-SHA-512; throws with the broker's message on failure. */
  async authenticate(handshake: ApiHandler, authenticate: ApiHandler, user: string, password: string): Promise<void> {
    const mechanism = 'SCRAM-SHA-512';
    const h = await this.request<{ errorCode: number; mechanisms: string[] }>(handshake, 1, { mechanism });
    if (h.errorCode !== 0) throw new Error(`the broker does not offer ${mechanism} (it offers ${h.mechanisms.join(', ') || 'nothing'})`);
    const client = new ScramClient(user, password, mechanism);
    type Auth = { errorCode: number; errorMessage: string | null; authBytes: Uint8Array };
    const first = await this.request<Auth>(authenticate, 1, { authBytes: Buffer.from(client.first()) });
    if (first.errorCode !== 0) throw new Error(first.errorMessage ?? 'authentication failed');
    const final = await this.request<Auth>(authenticate, 1, { authBytes: Buffer.from(client.final(Buffer.from(first.authBytes).toString())) });
    if (final.errorCode !== 0) throw new Error(final.errorMessage ?? 'authentication failed');
    if (!client.verify(Buffer.from(final.authBytes).toString())) throw new Error('the broker did not prove it knows the credential (server signature mismatch)');
  }

  close(): void {
    this.socket.destroy();
  }
}
