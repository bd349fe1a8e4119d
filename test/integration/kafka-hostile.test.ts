// Hostile Kafka frames over raw sockets: bad sizes, truncated headers, unknown APIs and
// versions, lying lengths and counts, corrupt batches, compression bombs, too many connections.
// Each gets an error response or a closed connection, and a fresh kafkajs client still works.
import t, { type Test } from 'tap';
import net from 'node:net';
import { createGzip } from 'node:zlib';
import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';
import { crc32c } from '@node-rs/crc32';
import { eventually } from '../helpers/index.js';
import { startInProcess, type KafkaUnderTest } from '../unit/kafka/harness.js';
import { Writer, Reader, encode } from '../../host/kafka/protocol/codec.js';
import { handlers } from '../../host/kafka/apis/index.js';

const require = createRequire(import.meta.url);
const kjs = (p: string) => require(`kafkajs/src/protocol/${p}`);
const { Kafka, logLevel } = kafkajs;

/** A raw TCP client that reads size-prefixed frames and notices when the broker hangs up. */
class RawClient {
  private buf = Buffer.alloc(0);
  private frames: Buffer[] = [];
  private waiter: (() => void) | null = null;
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readInt32BE(0)) {
        const n = this.buf.readInt32BE(0);
        this.frames.push(this.buf.subarray(4, 4 + n));
        this.buf = this.buf.subarray(4 + n);
      }
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => {});
  }
  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }
  send(b: Buffer): void {
    this.socket.write(b);
  }
  /** The next response frame, or 'closed' when the broker closed the connection first. */
  async next(timeoutMs = 5000): Promise<Buffer | 'closed'> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.closed) return 'closed';
      if (Date.now() > deadline) throw new Error('no response and no close (a hang)');
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 50);
      });
    }
    return this.frames.shift()!;
  }
  end(): void {
    this.socket.destroy();
  }
}

/** A request frame: header v1 (+ tagged fields for flexible) and a body written by `body`. */
function frame(apiKey: number, apiVersion: number, correlationId: number, body: (w: Writer) => void, flexibleHeader = false): Buffer {
  const w = new Writer();
  w.int32(0);
  w.int16(apiKey);
  w.int16(apiVersion);
  w.int32(correlationId);
  w.string('hostile-test', false);
  if (flexibleHeader) w.uvarint(0);
  body(w);
  const b = Buffer.concat(w.finish());
  b.writeInt32BE(b.length - 4, 0);
  return b;
}

const apiVersionsV0 = (cid: number) => frame(18, 0, cid, () => {});

async function expectWorking(t: Test, k: KafkaUnderTest, topic: string) {
  const kafka = new Kafka({ brokers: [k.bootstrap], clientId: 'fresh', logLevel: logLevel.NOTHING, retry: { retries: 2 } });
  const producer = kafka.producer();
  await producer.connect();
  const [r] = await producer.send({ topic, acks: 1, messages: [{ key: 'k', value: 'still alive' }] });
  await producer.disconnect();
  t.equal(r!.errorCode, 0, 'a fresh kafkajs client still produces');
}


async function batchBytes(value: Buffer, opts: { compression?: number } = {}): Promise<Buffer> {
  const { RecordBatch } = kjs('recordBatch/v0/index.js');
  const Record = kjs('recordBatch/record/v0/index.js');
  const e = await RecordBatch({ compression: opts.compression ?? 0, records: [Record({ key: Buffer.from('k'), value, headers: {} })] });
  return e.buffer as Buffer;
}

function produceFrame(cid: number, topic: string, records: Buffer, acks = 1): Buffer {
  return frame(0, 3, cid, (w) => encode(handlers.get(0)!.request, { transactionalId: null, acks, timeoutMs: 5000, topicData: [{ name: topic, partitionData: [{ index: 0, records }] }] }, 3, false, w));
}

function produceError(resp: Buffer): number {
  const r = new Reader(resp, 4); // skip correlation id
  // v3 response: [topics: name, [partition, error_code, base_offset, log_append_time]], throttle
  r.int32();
  r.string(false, false);
  r.int32();
  r.int32();
  return r.int16();
}

t.test('hostile frames: each is answered with an error or closes its connection; the broker keeps serving', async (t) => {
  const k = await startInProcess(t, { maxRequestBytes: 64 * 1024 });

  await t.test('a negative, zero or oversized size prefix closes the connection', async (t) => {
    for (const size of [-1, 0, 64 * 1024 + 1, 0x7fffffff]) {
      const c = await RawClient.connect(k.port);
      const b = Buffer.alloc(4);
      b.writeInt32BE(size);
      c.send(b);
      t.equal(await c.next(), 'closed', `size ${size} closes`);
    }
  });

  await t.test('a request of exactly maxRequestBytes is served, one byte more is refused', async (t) => {
    const exact = frame(18, 0, 1, (w) => w.raw(Buffer.alloc(64 * 1024 - 22, 0)));
    t.equal(exact.length - 4, 64 * 1024, 'frame is exactly the limit');
    const c = await RawClient.connect(k.port);
    c.send(exact);
    const resp = await c.next();
    t.not(resp, 'closed');
    t.equal((resp as Buffer).readInt32BE(0), 1, 'answered with its correlation id');
    c.end();
    const over = frame(18, 0, 2, (w) => w.raw(Buffer.alloc(64 * 1024 - 21, 0)));
    const c2 = await RawClient.connect(k.port);
    c2.send(over);
    t.equal(await c2.next(), 'closed');
  });

  await t.test('a truncated header closes the connection', async (t) => {
    const c = await RawClient.connect(k.port);
    c.send(Buffer.from([0, 0, 0, 3, 0, 18, 0]));
    t.equal(await c.next(), 'closed');
  });

  await t.test('an unknown API key gets UNSUPPORTED_VERSION and the connection keeps working', async (t) => {
    const c = await RawClient.connect(k.port);
    c.send(frame(999, 0, 41, () => {}));
    const r = (await c.next()) as Buffer;
    t.equal(r.readInt32BE(0), 41);
    t.equal(r.readInt16BE(4), 35, 'error 35');
    c.send(apiVersionsV0(42));
    t.equal(((await c.next()) as Buffer).readInt32BE(0), 42, 'next request still answered');
    c.end();
  });

  await t.test('an unsupported ApiVersions version gets error 35 with our versions in v0 format', async (t) => {
    const c = await RawClient.connect(k.port);
    c.send(frame(18, 77, 5, () => {}, true));
    const r = (await c.next()) as Buffer;
    // kafkajs's v0 decoder throws on 35 (which is how kafkajs learns to step down); read it by hand.
    const rd = new Reader(r, 4);
    t.equal(rd.int16(), 35, 'error 35');
    const n = rd.int32();
    const list: Array<{ apiKey: number; maxVersion: number }> = [];
    for (let i = 0; i < n; i++) list.push({ apiKey: rd.int16(), ...(rd.int16(), { maxVersion: rd.int16() }) });
    t.equal(rd.remaining, 0, 'exactly the v0 layout');
    t.ok(list.some((a: { apiKey: number; maxVersion: number }) => a.apiKey === 3 && a.maxVersion === 12), 'lists Metadata 0–12');
    c.send(frame(3, 99, 6, () => {}));
    const m = (await c.next()) as Buffer;
    t.equal(m.readInt32BE(0), 6);
    t.equal(m.readInt16BE(4), 35, 'Metadata v99 → 35');
    c.end();
  });

  await t.test('a string length past the end of the frame closes the connection', async (t) => {
    const c = await RawClient.connect(k.port);
    c.send(frame(3, 1, 7, (w) => {
      w.int32(1);
      w.int16(500);
      w.raw(Buffer.from('short'));
    }));
    t.equal(await c.next(), 'closed');
  });

  await t.test('a garbage client id length closes the connection', async (t) => {
    const c = await RawClient.connect(k.port);
    const b = Buffer.from([0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0x7f, 0xff]);
    c.send(b);
    t.equal(await c.next(), 'closed');
  });

  await t.test('a negative array count (other than null) closes the connection; -1 (null) is all topics', async (t) => {
    const c = await RawClient.connect(k.port);
    c.send(frame(3, 1, 8, (w) => w.int32(-5)));
    t.equal(await c.next(), 'closed');
    const c2 = await RawClient.connect(k.port);
    c2.send(frame(3, 1, 9, (w) => w.int32(-1)));
    const r = await c2.next();
    t.not(r, 'closed', 'null topics = all topics is answered');
    c2.end();
  });

  await t.test('a batch with a corrupted CRC is refused with CORRUPT_MESSAGE', async (t) => {
    const batch = await batchBytes(Buffer.from('payload-payload'));
    batch[batch.length - 3] ^= 0xff;
    const c = await RawClient.connect(k.port);
    c.send(produceFrame(10, 'hostile-crc', batch));
    const r = (await c.next()) as Buffer;
    t.equal(produceError(r), 2, 'CORRUPT_MESSAGE');
    c.end();
  });

  await t.test('a batch whose record count lies (CRC recomputed) is refused', async (t) => {
    const batch = await batchBytes(Buffer.from('payload'));
    batch.writeInt32BE(5, 57); // says 5 records, holds 1
    batch.writeUInt32BE(crc32c(batch.subarray(21)) >>> 0, 17);
    const c = await RawClient.connect(k.port);
    c.send(produceFrame(11, 'hostile-count', batch));
    const code = produceError((await c.next()) as Buffer);
    t.ok(code === 2 || code === 87, `CORRUPT_MESSAGE or INVALID_RECORD (got ${code})`);
    c.end();
  });

  await expectWorking(t, k, 'after-hostile');
});

t.test('a gzip bomb (256 MiB of zeros in ~256 KiB) is refused or stored without blowing up memory', async (t) => {
  const k = await startInProcess(t);
  // Compressed as a stream, so the test itself never holds 256 MiB.
  const gz = createGzip({ level: 9 });
  const parts: Buffer[] = [];
  gz.on('data', (d: Buffer) => parts.push(d));
  const done = new Promise((r) => gz.on('end', r));
  const mib = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < 256; i++) if (!gz.write(mib)) await new Promise((r) => gz.once('drain', r));
  gz.end();
  await done;
  const bomb = Buffer.concat(parts);
  const batch = await batchBytes(Buffer.from('x'));
  // The record area (after the 61-byte header) becomes the bomb: gzip attribute, length and CRC fixed.
  const evil = Buffer.concat([Buffer.from(batch.subarray(0, 61)), bomb]);
  evil.writeInt32BE(evil.length - 12, 8);
  evil.writeInt16BE(1, 21);
  evil.writeUInt32BE(crc32c(evil.subarray(21)) >>> 0, 17);
  const rssBefore = process.memoryUsage().rss;
  const c = await RawClient.connect(k.port);
  c.send(produceFrame(12, 'hostile-bomb', evil));
  const r = await c.next(20_000);
  t.not(r, 'closed', 'answered, not dropped');
  if (r !== 'closed') {
    const code = produceError(r);
    t.ok([0, 2, 10, 76, 87].includes(code), `answered with a Kafka code (${code})`);
  }
  t.ok(process.memoryUsage().rss - rssBefore < 200 * 1024 * 1024, 'memory did not grow by the bomb size');
  c.end();
  await expectWorking(t, k, 'after-bomb');
});

t.test('pipelining: responses come back in request order; acks=0 produce gets no response', async (t) => {
  const k = await startInProcess(t, { maxInFlightRequestsPerConnection: 2 });
  const c = await RawClient.connect(k.port);
  const batch = await batchBytes(Buffer.from('fire-and-forget'));
  const frames: Buffer[] = [];
  for (let i = 0; i < 30; i++) {
    if (i === 10) frames.push(produceFrame(1000, 'pipelined', batch, 0));
    frames.push(i % 3 === 0 ? frame(3, 1, i, (w) => w.int32(-1)) : apiVersionsV0(i));
  }
  c.send(Buffer.concat(frames));
  const seen: number[] = [];
  for (let i = 0; i < 30; i++) seen.push(((await c.next()) as Buffer).readInt32BE(0));
  t.same(seen, [...Array(30).keys()], 'in order, and the acks=0 produce (1000) answered nothing');
  // The acks=0 record was still stored (visible once flushed: poll the log end).
  let cid = 500;
  const leo = await eventually(async () => {
    c.send(frame(2, 1, ++cid, (w) => encode(handlers.get(2)!.request, { replicaId: -1, topics: [{ name: 'pipelined', partitions: [{ partitionIndex: 0, timestamp: -1 }] }] }, 1, false, w)));
    const r = new Reader((await c.next()) as Buffer, 4);
    r.int32();
    r.string(false, false);
    r.int32();
    r.int32();
    if (r.int16() !== 0) return 0;
    r.int64();
    return r.int64();
  });
  t.equal(leo, 1, 'log end offset 1: the acks=0 batch was appended');
  c.end();
});

t.test('a failed acks=0 produce closes the connection after the earlier responses', async (t) => {
  const k = await startInProcess(t);
  const batch = await batchBytes(Buffer.from('broken'));
  batch[batch.length - 2] ^= 0xff; // CRC mismatch
  const c = await RawClient.connect(k.port);
  c.send(Buffer.concat([apiVersionsV0(1), produceFrame(2, 'acks0-fail', batch, 0), apiVersionsV0(3)]));
  const first = await c.next();
  t.equal((first as Buffer).readInt32BE(0), 1, 'the request before it is answered');
  t.equal(await c.next(), 'closed', 'then the connection closes (Kafka: an acks=0 producer learns of a failure this way)');
  await expectWorking(t, k, 'after-acks0-failure');
});

t.test('max connections: the one past the limit is closed, a freed slot is reusable', async (t) => {
  const k = await startInProcess(t, { connectionsMax: 3 });
  const clients: RawClient[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await RawClient.connect(k.port);
    c.send(apiVersionsV0(i));
    t.not(await c.next(), 'closed', `connection ${i + 1} of 3 served`);
    clients.push(c);
  }
  const extra = await RawClient.connect(k.port);
  extra.send(apiVersionsV0(9));
  t.equal(await extra.next(), 'closed', 'the 4th is refused');
  clients[0]!.end();
  // The server notices the close asynchronously: retry until the freed slot is taken.
  const again = await eventually(async () => {
    const c = await RawClient.connect(k.port);
    c.send(apiVersionsV0(10));
    if ((await c.next()) !== 'closed') return c;
    return undefined;
  });
  t.pass('a freed slot is reusable');
  for (const c of [...clients, again!]) c.end();
});

void Reader;
