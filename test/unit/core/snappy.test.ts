// Snappy codec of the wasm core: raw blocks and the xerial framing Kafka's Java producer
// writes. Round-trips; cross-checks in both directions with implementations nobody here wrote
// (snappyjs, snappy (napi), @platformatic/wasm-utils); xerial parsed by the test's own reader;
// raw-vs-xerial auto-detection; hostile input that must end in BrokerError('CORRUPT_MESSAGE')
// — never a wasm trap, an out-of-bounds read, a hang, or output past maxOutBytes.
import t, { type Test } from 'tap';
import { createRequire } from 'node:module';
import { BrokerError } from '../../../host/errors/index.js';
import {
  snappyCompress, snappyDecompress, snappyDecompressView, snappyRawCompress, snappyRawDecompress, snappyRawCompressBound, snappyXerialCompressBound,
} from '../../../host/core/snappy.js';
import { core, memU8 } from '../../../host/core/wasm.js';
import { prng, randomBytes, sensorJson, mixedBytes, corrupt } from '../../helpers/codec-inputs.js';

const require = createRequire(import.meta.url);
const snappyjs = require('snappyjs') as { compress(src: Uint8Array): Uint8Array; uncompress(src: Uint8Array, maxLength?: number): Uint8Array };
const snappyNapi = require('snappy') as { compressSync(src: Uint8Array): Buffer; uncompressSync(src: Uint8Array, options?: { asBuffer?: boolean }): Buffer | string };
const wasmUtils = (await import('@platformatic/wasm-utils')) as unknown as { snappyCompress(src: Buffer): Buffer; snappyDecompress(src: Buffer): Buffer };

// ---------------------------------------------------------------- test-side helpers (independent of the core)

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
const XERIAL_HEADER = [0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1];

/** Test-side xerial reader: the header and each chunk's raw block. */
function readXerial(x: Uint8Array): { header: number[]; chunks: Buffer[] } {
  const b = Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  const chunks: Buffer[] = [];
  let p = 16;
  while (p < b.length) {
    const n = b.readInt32BE(p);
    chunks.push(b.subarray(p + 4, p + 4 + n));
    p += 4 + n;
  }
  if (p !== b.length) throw new Error('xerial chunks overrun the input');
  return { header: [...b.subarray(0, 16)], chunks };
}

/** Test-side xerial writer around raw blocks made by someone else. */
function writeXerial(blocks: Uint8Array[]): Buffer {
  const parts: Buffer[] = [Buffer.from(XERIAL_HEADER)];
  for (const block of blocks) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(block.length);
    parts.push(len, Buffer.from(block));
  }
  return Buffer.concat(parts);
}

function varint(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

const corpus: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['1 byte', Buffer.from([0x41])],
  ['14 bytes (below the input margin)', Buffer.from('abcabcabcabcab')],
  ['16 bytes', Buffer.from('abcabcabcabcabca')],
  ['incompressible 100 KB', randomBytes(100_000, 1)],
  ['zeros 1 MiB', Buffer.alloc(1 << 20)],
  ['"ab" repeated 200 KB', Buffer.from('ab'.repeat(100_000))],
  ['period-7 pattern 70 KB', Buffer.from('abcdefg'.repeat(10_000))],
  ['exactly 32 KiB', sensorJson(32768, 2)],
  ['32 KiB + 1', sensorJson(32769, 3)],
  ['exactly 64 KiB', sensorJson(65536, 2)],
  ['sensor JSON 16 KiB', sensorJson(16384, 4)],
  ['sensor JSON 3 MiB', sensorJson(3 << 20, 5)],
  ['mixed 500 KB', mixedBytes(500_000, 6)],
];

// ---------------------------------------------------------------- tests

t.test('xerial output: snappy-java header, then [int32 BE length][raw block] chunks of at most 32 KiB', async (t) => {
  const data = sensorJson(100_000, 9);
  const x = snappyCompress(data);
  const { header, chunks } = readXerial(x);
  t.same(header, XERIAL_HEADER, 'magic 0x82 SNAPPY 0x00, version 1, compatible 1');
  t.equal(chunks.length, Math.ceil(data.length / 32768), 'one chunk per 32 KiB');
  const decoded = chunks.map((c) => Buffer.from(snappyjs.uncompress(c)));
  t.ok(decoded.slice(0, -1).every((d) => d.length === 32768), 'full chunks hold 32 KiB');
  t.ok(same(Buffer.concat(decoded), data), 'snappyjs decodes every chunk; they concatenate to the input');
  t.same([...snappyCompress(new Uint8Array(0))], XERIAL_HEADER, 'empty input: header only');
});

t.test('round-trips; snappyjs, snappy (napi) and @platformatic/wasm-utils decode what the core writes', async (t) => {
  for (const [name, data] of corpus) {
    const raw = snappyRawCompress(data);
    t.ok(same(snappyRawDecompress(raw, data.length), data), `${name}: raw core → core`);
    t.ok(same(snappyDecompress(raw, data.length), data), `${name}: raw core → core (auto-detect)`);
    t.ok(same(snappyjs.uncompress(raw), data), `${name}: raw core → snappyjs`);
    t.ok(same(snappyNapi.uncompressSync(raw, { asBuffer: true }) as Buffer, data), `${name}: raw core → snappy napi`);
    t.ok(same(wasmUtils.snappyDecompress(Buffer.from(raw)), data), `${name}: raw core → @platformatic/wasm-utils`);
    const x = snappyCompress(data);
    t.ok(same(snappyDecompress(x, data.length), data), `${name}: xerial core → core`);
    const chunks = readXerial(x).chunks.map((c) => snappyNapi.uncompressSync(c, { asBuffer: true }) as Buffer);
    t.ok(same(Buffer.concat(chunks), data), `${name}: xerial core → test reader + snappy napi per chunk`);
    if (name.startsWith('sensor')) t.ok(raw.length < data.length / 3, `${name}: compresses (${data.length} → ${raw.length})`);
  }
});

t.test('decodes raw blocks from snappyjs, snappy (napi) and @platformatic/wasm-utils, and xerial built around them', async (t) => {
  for (const [name, data] of corpus) {
    const napi = snappyNapi.compressSync(data);
    t.ok(same(snappyDecompress(napi, data.length), data), `${name}: snappy napi → core (auto-detect)`);
    t.ok(same(snappyRawDecompress(snappyjs.compress(data), data.length), data), `${name}: snappyjs → core`);
    t.ok(same(snappyDecompress(wasmUtils.snappyCompress(data), data.length), data), `${name}: @platformatic/wasm-utils → core`);
    const blocks: Uint8Array[] = [];
    for (let i = 0; i < data.length; i += 32768) blocks.push(snappyNapi.compressSync(data.subarray(i, i + 32768)));
    t.ok(same(snappyDecompress(writeXerial(blocks), data.length), data), `${name}: xerial around snappy napi chunks → core`);
  }
  // Chunk sizes other than 32 KiB (snappy-java's block size is configurable).
  const data = sensorJson(200_000, 8);
  const odd = [0, 1000, 71_000, 200_000].slice(1).map((end, i, a) => snappyNapi.compressSync(data.subarray(i === 0 ? 0 : a[i - 1], end)));
  t.ok(same(snappyDecompress(writeXerial(odd), data.length), data), 'uneven xerial chunks');
});

t.test('the core writes the same raw bytes as the reference-derived encoders it mirrors, or smaller', async (t) => {
  for (const [name, data] of corpus) {
    const ours = snappyRawCompress(data).length;
    const napi = snappyNapi.compressSync(data).length;
    t.ok(ours <= napi * 1.01 + 8, `${name}: ${ours} bytes vs snappy napi ${napi}`);
  }
});

t.test('property: 250 seeded random inputs round-trip (raw and xerial) and decode in snappyjs', async (t) => {
  const rnd = prng(4242);
  let failures = 0;
  for (let i = 0; i < 250; i++) {
    const n = rnd() < 0.2 ? (rnd() * 40) | 0 : (rnd() * 150_000) | 0;
    const data = rnd() < 0.5 ? mixedBytes(n, i) : sensorJson(n, i);
    const raw = snappyRawCompress(data);
    const ok = same(snappyRawDecompress(raw, n), data) && same(snappyjs.uncompress(raw), data) && same(snappyDecompress(snappyCompress(data), n), data)
      && same(snappyDecompress(snappyNapi.compressSync(data), n), data);
    if (!ok) {
      failures++;
      t.fail(`input ${i} (${n} bytes)`);
    }
  }
  t.equal(failures, 0);
});

t.test('output bound: exactly maxOutBytes passes, one byte less is refused before decoding', async (t) => {
  const data = sensorJson(200_000, 11);
  const raw = snappyRawCompress(data);
  const x = snappyCompress(data);
  t.ok(same(snappyDecompress(raw, data.length), data), 'raw at the bound');
  t.ok(same(snappyDecompress(x, data.length), data), 'xerial at the bound');
  corrupt(t, () => snappyDecompress(raw, data.length - 1), /exceeds maxOutBytes \(199999\)/, 'raw one byte short');
  corrupt(t, () => snappyDecompress(x, data.length - 1), /exceeds maxOutBytes \(199999\)/, 'xerial one byte short');
  t.throws(() => snappyDecompress(raw, Number.NaN), RangeError, 'NaN maxOutBytes is a programmer error');
});

t.test('decompression bombs: a declared length over the bound is refused without decoding', async (t) => {
  corrupt(t, () => snappyDecompress(Uint8Array.from([...varint(0xffffffff), 0]), 1 << 20), /exceeds maxOutBytes/, 'raw preamble 4 GiB');
  // Xerial: many chunks each declaring 1 MiB of zeros (~50 KB of input each).
  const chunk = snappyNapi.compressSync(Buffer.alloc(1 << 20));
  const blocks = new Array(200).fill(chunk);
  const started = Date.now();
  corrupt(t, () => snappyDecompress(writeXerial(blocks), 8 << 20), /exceeds maxOutBytes \(8388608\)/, 'xerial chunks past the bound');
  t.ok(Date.now() - started < 2000, 'refused quickly');
});

t.test('hostile input ends in CORRUPT_MESSAGE naming the fault', async (t) => {
  corrupt(t, () => snappyDecompress(new Uint8Array(0), 100), /empty/, 'empty input');
  corrupt(t, () => snappyDecompress(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), 100), /preamble/, 'preamble varint longer than 5 bytes');
  corrupt(t, () => snappyDecompress(Uint8Array.from([0x80, 0x80]), 100), /ends inside/, 'preamble cut short');
  corrupt(t, () => snappyDecompress(Uint8Array.from([5, 4 << 2, 1, 2]), 100), /ends inside/, 'literal past the end of input');
  corrupt(t, () => snappyDecompress(Uint8Array.from([5, 60 << 2]), 100), /ends inside/, 'literal length byte missing');
  corrupt(t, () => snappyDecompress(Uint8Array.from([8, 0, 0x41, 0x01 | (0 << 2), 0]), 100), /offset is zero/, 'copy-1 offset 0');
  corrupt(t, () => snappyDecompress(Uint8Array.from([8, 0, 0x41, 0x01, 2]), 100), /before the start/, 'copy-1 offset before the start');
  corrupt(t, () => snappyDecompress(Uint8Array.from([8, 0, 0x41, 0x02 | (6 << 2), 5, 0]), 100), /before the start/, 'copy-2 offset before the start');
  corrupt(t, () => snappyDecompress(Uint8Array.from([8, 0, 0x41, 0x03 | (6 << 2), 1, 0, 0, 0x80]), 100), /before the start/, 'copy-4 offset 2^31');
  corrupt(t, () => snappyDecompress(Uint8Array.from([8, 0, 0x41, 0x02 | (6 << 2), 1]), 100), /ends inside/, 'copy-2 cut short');
  corrupt(t, () => snappyDecompress(Uint8Array.from([4, 0, 0x41, 0x01 | (7 << 2), 1]), 100), /exactly the declared/, 'copy length past the declared end');
  corrupt(t, () => snappyDecompress(Uint8Array.from([9, 0, 0x41, 0x01 | (0 << 2), 1]), 100), /exactly the declared/, 'fewer bytes than declared');
  corrupt(t, () => snappyDecompress(Uint8Array.from([1, 4, 0x41, 0x42]), 100), /exactly the declared/, 'literal longer than declared');
  // Xerial framing.
  corrupt(t, () => snappyDecompress(Buffer.from(XERIAL_HEADER.slice(0, 12)), 100), /ends inside/, 'xerial header cut short');
  corrupt(t, () => snappyDecompress(Buffer.concat([Buffer.from(XERIAL_HEADER), Buffer.from([0, 0, 1])]), 100), /ends inside/, 'chunk length cut short');
  corrupt(t, () => snappyDecompress(Buffer.concat([Buffer.from(XERIAL_HEADER), Buffer.from([0, 0, 0, 0])]), 100), /chunk length/, 'zero chunk length');
  corrupt(t, () => snappyDecompress(Buffer.concat([Buffer.from(XERIAL_HEADER), Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 0])]), 100), /chunk length/, 'negative chunk length');
  corrupt(t, () => snappyDecompress(Buffer.concat([Buffer.from(XERIAL_HEADER), Buffer.from([0, 0, 0, 50, 1, 0, 0x41])]), 100), /ends inside/, 'chunk length past the end');
  const x = Buffer.from(snappyCompress(sensorJson(70_000, 3)));
  corrupt(t, () => snappyDecompress(x.subarray(0, x.length - 1), 1 << 20), /ends inside|exactly/, 'last chunk cut by one byte');
});

t.test('every truncation of a raw block and of a xerial stream is refused', async (t) => {
  const data = mixedBytes(100_000, 13);
  for (const [kind, packed] of [['raw', snappyRawCompress(data)], ['xerial', snappyCompress(data)]] as const) {
    const cuts = new Set<number>();
    for (let i = 0; i < 64; i++) cuts.add(i);
    for (let i = 64; i < packed.length; i += 89) cuts.add(i);
    for (let i = packed.length - 64; i < packed.length; i++) cuts.add(i);
    let refused = 0;
    for (const cut of cuts) {
      // A xerial stream cut exactly at a chunk boundary is a valid, shorter stream.
      try {
        const out = snappyDecompress(packed.subarray(0, cut), 1 << 20);
        if (kind === 'xerial' && data.subarray(0, out.length).equals(Buffer.from(out)) && out.length % 32768 === 0) refused++;
      } catch (err) {
        if (err instanceof BrokerError && err.code === 'CORRUPT_MESSAGE') refused++;
      }
    }
    t.equal(refused, cuts.size, `${kind}: all ${cuts.size} truncations refused (or a whole-chunk prefix)`);
  }
});

t.test('fuzz: bit flips and garbage end in CORRUPT_MESSAGE or bounded output, never anything else', async (t) => {
  const rnd = prng(99);
  const bases = [Buffer.from(snappyRawCompress(sensorJson(40_000, 14))), Buffer.from(snappyCompress(sensorJson(40_000, 15)))];
  const maxOut = 50_000;
  let other = 0;
  for (let i = 0; i < 3000; i++) {
    let input: Buffer;
    if (i % 3 === 2) input = randomBytes(1 + ((rnd() * 300) | 0), i);
    else {
      input = Buffer.from(bases[i % 2]);
      const flips = 1 + ((rnd() * 4) | 0);
      for (let k = 0; k < flips; k++) input[(rnd() * input.length) | 0] ^= 1 << ((rnd() * 8) | 0);
    }
    try {
      const out = snappyDecompress(input, maxOut);
      if (out.length > maxOut) other++;
    } catch (err) {
      if (!(err instanceof BrokerError && err.code === 'CORRUPT_MESSAGE')) {
        other++;
        t.fail(String(err));
      }
    }
  }
  t.equal(other, 0, 'only CORRUPT_MESSAGE or output within maxOutBytes');
});

t.test('the view variant returns wasm memory holding the decoded bytes', async (t) => {
  const data = sensorJson(50_000, 16);
  const view = snappyDecompressView(snappyCompress(data), data.length);
  t.equal(view.buffer, memU8.buffer);
  t.ok(same(view, data));
});

// kafkajs ships no Snappy codec: clients plug one in (kafkajs-snappy writes raw blocks and
// reads both xerial and raw). The core must fit kafkajs's codec interface both ways.
interface KafkajsCodec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}
const kafkajsCompression = require('kafkajs/src/protocol/message/compression') as { Codecs: Record<number, () => KafkajsCodec>; Types: Record<string, number> };
const kafkajsBatch = require('kafkajs/src/protocol/recordBatch/v0') as { RecordBatch(options: Record<string, unknown>): Promise<{ buffer: Buffer }> };
const kafkajsRecord = require('kafkajs/src/protocol/recordBatch/record/v0') as (r: Record<string, unknown>) => unknown;
const kafkajsDecodeBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder') as (d: unknown) => Promise<{ records: { key: Buffer; value: Buffer }[] }>;
const KafkajsDecoder = require('kafkajs/src/protocol/decoder') as new (b: Buffer) => unknown;

t.test('kafkajs: batches compressed by the core (xerial) and by a raw-snappy codec both decode through the core', async (t) => {
  const { Codecs, Types } = kafkajsCompression;
  const saved = Codecs[Types.Snappy];
  t.teardown(() => {
    Codecs[Types.Snappy] = saved;
  });
  const decompress = async (buffer: Buffer) => Buffer.from(snappyDecompress(buffer, 64 << 20));
  const values = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ device: `sensor-${i % 17}`, seq: i, temperature: 20 + (i % 7) / 10 }));
  const records = values.map((v, i) => kafkajsRecord({ offsetDelta: i, timestampDelta: i, key: Buffer.from(`k${i % 17}`), value: Buffer.from(v) }));
  for (const [writer, compress] of [
    ['core (xerial)', async (e: { buffer: Buffer }) => Buffer.from(snappyCompress(e.buffer))],
    ['snappy napi (raw, as kafkajs-snappy writes)', async (e: { buffer: Buffer }) => snappyNapi.compressSync(e.buffer)],
  ] as const) {
    Codecs[Types.Snappy] = () => ({ compress, decompress });
    const batch = await kafkajsBatch.RecordBatch({ compression: Types.Snappy, records, lastOffsetDelta: values.length - 1 });
    const decoded = await kafkajsDecodeBatch(new KafkajsDecoder(batch.buffer));
    t.equal(decoded.records.length, values.length, `${writer}: every record`);
    t.ok(decoded.records.every((r, i) => r.value.toString() === values[i]), `${writer}: values intact`);
  }
});

t.test('a declared length that cannot fit the core\'s scratch memory is MESSAGE_TOO_LARGE, not a crash', async (t) => {
  let err: unknown;
  try {
    snappyDecompress(Uint8Array.from([...varint(0xffffffff), 0]), Number.MAX_SAFE_INTEGER);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof BrokerError && err.code === 'MESSAGE_TOO_LARGE', 'refused');
  t.match((err as Error).message, /scratch memory left after the input/);
});

t.test('the host\'s bounds equal the core\'s and hold for incompressible input', async (t) => {
  for (const n of [0, 1, 32767, 32768, 32769, 65536, 1 << 20, 3_000_001]) {
    t.equal(snappyRawCompressBound(n), core.snappyRawCompressBound(n), `raw bound(${n})`);
    t.equal(snappyXerialCompressBound(n), core.snappyXerialCompressBound(n), `xerial bound(${n})`);
  }
  const worst = randomBytes(200_000, 21);
  t.ok(snappyRawCompress(worst).length <= snappyRawCompressBound(worst.length), 'raw within the bound');
  t.ok(snappyCompress(worst).length <= snappyXerialCompressBound(worst.length), 'xerial within the bound');
});
