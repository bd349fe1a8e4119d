// Hostile RecordBatches: truncation at every length, every single-bit flip, lying lengths and
// counts inside CRC-valid batches, malformed varints, bad codecs, decompression bombs. Each
// must end in a BrokerError with a specific code — never a wasm trap, an out-of-bounds read,
// a hang or unbounded memory.
import t from 'tap';
import { gzipSync } from 'node:zlib';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { BrokerError } from '../../../host/errors/index.js';
import {
  codecSupport, decodeBatch, decodeBatches, defaultVerifyOptions, encodeBatch, verifyBatches,
  ATTRIBUTES, CRC, RECORDS, type VerifyOptions,
} from '../../../host/core/index.js';
import { compress } from '../../../host/core/compression.js';
import { seededRandom } from '../../helpers/seeded-random.js';

const enc = (s: string) => new TextEncoder().encode(s);
const opts: VerifyOptions = { ...defaultVerifyOptions, maxBatchBytes: 1 << 20, maxDecompressedBytes: 1 << 20, deep: true };

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

/** Test-side writer of Kafka's zigzag varints (independent of the core). */
function varint(v: number): number[] {
  let u = v >= 0 ? v * 2 : -v * 2 - 1;
  const out: number[] = [];
  while (u >= 0x80) {
    out.push((u % 128) | 0x80);
    u = Math.floor(u / 128);
  }
  out.push(u);
  return out;
}

interface RawRecord {
  lengthOverride?: number;
  tsDelta?: number;
  offsetDelta: number;
  keyLen?: number; // written as given; bytes written = max(0, key.length)
  key?: number[];
  valueLen?: number;
  value?: number[];
  headerCount?: number;
  headers?: number[]; // raw header bytes
}

function rawRecord(r: RawRecord): number[] {
  const key = r.key ?? [];
  const value = r.value ?? [];
  const body = [
    0,
    ...varint(r.tsDelta ?? 0),
    ...varint(r.offsetDelta),
    ...varint(r.keyLen ?? key.length),
    ...key,
    ...varint(r.valueLen ?? value.length),
    ...value,
    ...varint(r.headerCount ?? 0),
    ...(r.headers ?? []),
  ];
  return [...varint(r.lengthOverride ?? body.length), ...body];
}

/** Wraps raw records bytes in a v2 header with a correct CRC (computed by @node-rs/crc32). */
function rawBatch(records: number[], count: number, opts: { lastOffsetDelta?: number; attributes?: number } = {}): Uint8Array {
  const buf = new Uint8Array(RECORDS + records.length);
  const v = new DataView(buf.buffer);
  v.setInt32(8, buf.length - 12);
  v.setInt32(12, 0);
  v.setInt8(16, 2);
  v.setInt16(21, opts.attributes ?? 0);
  v.setInt32(23, opts.lastOffsetDelta ?? count - 1);
  v.setBigInt64(43, -1n);
  v.setInt16(51, -1);
  v.setInt32(53, -1);
  v.setInt32(57, count);
  buf.set(records, RECORDS);
  v.setUint32(CRC, nativeCrc32c(Buffer.from(buf.subarray(ATTRIBUTES))));
  return buf;
}

function expectCode(t: Tap, fn: () => unknown, code: string, pattern?: RegExp, label?: string): void {
  const err = caught(fn);
  const ok = err instanceof BrokerError && err.code === code && (!pattern || pattern.test(err.message));
  t.ok(ok, `${label ?? code}: ${err instanceof Error ? `${(err as BrokerError).code ?? err.name} ${err.message}` : 'no error'}`);
}
type Tap = import('tap').Test;

const sample = encodeBatch(
  [
    { key: enc('site/a/temp'), value: enc('{"t":21.5,"h":40}'), timestampMs: 1_700_000_000_000, headers: [{ key: 'mqtt-topic', value: enc('site/a/temp') }] },
    { key: null, value: enc('{"t":21.6}'), timestampMs: 1_700_000_000_010 },
  ],
  { baseOffset: 0 },
);

t.test('hostile: the sample batch itself is valid', async (t) => {
  t.equal(verifyBatches(sample, opts).length, 1);
});

t.test('hostile: every truncation of a batch is CORRUPT_MESSAGE (verify, deep and shallow, and decode)', async (t) => {
  let bad = 0;
  for (let n = 1; n < sample.length; n++) {
    const cut = sample.subarray(0, n);
    for (const fn of [() => verifyBatches(cut, opts), () => verifyBatches(cut, { ...opts, deep: false }), () => decodeBatch(cut)]) {
      const err = caught(fn);
      if (!(err instanceof BrokerError) || err.code !== 'CORRUPT_MESSAGE') {
        if (bad++ < 3) t.fail(`length ${n}: ${String(err)}`);
      }
    }
  }
  t.equal(bad, 0, 'every cut refused as corrupt');
  expectCode(t, () => verifyBatches(new Uint8Array(0), opts), 'CORRUPT_MESSAGE', /empty/, 'empty input');
});

t.test('hostile: every single-bit flip inside the CRC-covered region or the frame is caught', async (t) => {
  let missed = 0;
  let wrongCode = 0;
  for (let byte = 8; byte < sample.length; byte++) {
    if (byte >= 12 && byte < 16) continue; // partitionLeaderEpoch: outside the CRC by design
    for (let bit = 0; bit < 8; bit++) {
      const copy = sample.slice();
      copy[byte] ^= 1 << bit;
      const err = caught(() => verifyBatches(copy, opts));
      if (err === undefined) {
        if (missed++ < 3) t.fail(`flip at byte ${byte} bit ${bit} passed`);
      } else if (!(err instanceof BrokerError) || !['CORRUPT_MESSAGE', 'MESSAGE_TOO_LARGE'].includes(err.code)) {
        if (wrongCode++ < 3) t.fail(`flip at byte ${byte} bit ${bit}: ${String(err)}`);
      }
    }
  }
  t.equal(missed, 0, 'no flip passes');
  t.equal(wrongCode, 0, 'every flip is CORRUPT_MESSAGE (or MESSAGE_TOO_LARGE for a grown length)');
  // Outside the CRC by design: baseOffset and partitionLeaderEpoch (the broker rewrites them).
  const copy = sample.slice();
  copy[3] ^= 0x10;
  copy[14] ^= 0x01;
  t.equal(verifyBatches(copy, opts).length, 1, 'baseOffset / partitionLeaderEpoch changes keep the batch valid');
});

t.test('hostile: lying record framing inside CRC-valid batches is INVALID_RECORD naming the record', async (t) => {
  const good = (i: number) => rawRecord({ offsetDelta: i, key: [1, 2], value: [3, 4, 5] });
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['record length negative', rawBatch(rawRecord({ offsetDelta: 0, lengthOverride: -5 }), 1), /record 0: record length/],
    ['record length past the end', rawBatch(rawRecord({ offsetDelta: 0, lengthOverride: 500 }), 1), /record 0: record length/],
    ['record length shorter than its fields', rawBatch([...good(0).slice(0, 0), ...rawRecord({ offsetDelta: 0, key: [1, 2], value: [3, 4, 5], lengthOverride: 9 })], 1), /record 0/],
    ['key length -2', rawBatch(rawRecord({ offsetDelta: 0, keyLen: -2 }), 1), /record 0: key length/],
    ['key length past the record', rawBatch(rawRecord({ offsetDelta: 0, keyLen: 1000, key: [1] }), 1), /record 0: key length/],
    ['key length 2^31-1', rawBatch(rawRecord({ offsetDelta: 0, keyLen: 2 ** 31 - 1 }), 1), /record 0: key length/],
    ['value length -7', rawBatch(rawRecord({ offsetDelta: 0, valueLen: -7 }), 1), /record 0: value length/],
    ['value length past the record', rawBatch(rawRecord({ offsetDelta: 0, valueLen: 50, value: [1, 2] }), 1), /record 0: value length/],
    ['header count negative', rawBatch(rawRecord({ offsetDelta: 0, headerCount: -1 }), 1), /record 0: header count/],
    ['header count huge', rawBatch(rawRecord({ offsetDelta: 0, headerCount: 1_000_000, headers: [2, 65, 0] }), 1), /record 0: header count/],
    ['null header key', rawBatch(rawRecord({ offsetDelta: 0, headerCount: 1, headers: [...varint(-1), ...varint(0)] }), 1), /record 0: header key/],
    ['header value past the record', rawBatch(rawRecord({ offsetDelta: 0, headerCount: 1, headers: [...varint(1), 65, ...varint(40)] }), 1), /record 0: header value/],
    ['second record broken', rawBatch([...good(0), ...rawRecord({ offsetDelta: 1, keyLen: -3 })], 2), /record 1: key length/],
    ['count larger than the records', rawBatch([...good(0)], 2), /recordCount 2/],
    ['count far larger than the bytes allow', rawBatch([...good(0)], 2 ** 31 - 1, { lastOffsetDelta: 2 ** 31 - 2 }), /recordCount/],
    ['count smaller than the records', rawBatch([...good(0), ...good(1)], 1), /bytes remain after the last record/],
    ['offset delta not the record index', rawBatch([...good(0), ...rawRecord({ offsetDelta: 5, key: [1] })], 2), /record 1: offset delta/],
    ['six-byte varint for the record length', rawBatch([0x80, 0x80, 0x80, 0x80, 0x80, 0x01, ...good(0).slice(1)], 1), /record 0/],
    ['eleven-byte varlong timestamp delta', rawBatch([20, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 1, 1, 0, 0, 0, 0, 0], 1), /record 0/],
  ];
  for (const [label, batch, pattern] of cases) {
    expectCode(t, () => verifyBatches(batch, opts), 'INVALID_RECORD', pattern, `verify: ${label}`);
    expectCode(t, () => decodeBatch(batch, 0, { strictOffsets: true }), 'INVALID_RECORD', pattern, `decode: ${label}`);
  }
  t.equal(verifyBatches(rawBatch([...good(0), ...good(1)], 2), opts).length, 1, 'the same builder makes a valid batch');
  t.equal(verifyBatches(rawBatch([...good(0), ...good(1)], 2), { ...opts, deep: false }).length, 1, 'shallow verify does not look at records');
});

t.test('hostile: header-level lies are refused with the field named', async (t) => {
  const rec = rawRecord({ offsetDelta: 0, value: [1] });
  expectCode(t, () => verifyBatches(rawBatch(rec, -1), opts), 'CORRUPT_MESSAGE', /recordCount -1 is negative/);
  expectCode(t, () => verifyBatches(rawBatch(rec, 1, { lastOffsetDelta: 3 }), opts), 'INVALID_RECORD', /lastOffsetDelta 3/);
  for (const codec of [5, 6, 7]) {
    expectCode(t, () => verifyBatches(rawBatch(rec, 1, { attributes: codec }), opts), 'UNSUPPORTED_COMPRESSION_TYPE', new RegExp(`codec ${codec}`), `codec ${codec}`);
    expectCode(t, () => decodeBatch(rawBatch(rec, 1, { attributes: codec })), 'UNSUPPORTED_COMPRESSION_TYPE', undefined, `decode codec ${codec}`);
  }
  const wrongMagic = sample.slice();
  wrongMagic[16] = 1;
  expectCode(t, () => verifyBatches(wrongMagic, opts), 'CORRUPT_MESSAGE', /magic 1/);
  const shortLen = sample.slice();
  new DataView(shortLen.buffer).setInt32(8, 10);
  expectCode(t, () => verifyBatches(shortLen, opts), 'CORRUPT_MESSAGE', /batchLength 10 is below/);
  const negLen = sample.slice();
  new DataView(negLen.buffer).setInt32(8, -1);
  expectCode(t, () => verifyBatches(negLen, opts), 'CORRUPT_MESSAGE', /batchLength -1/);
  const hugeLen = sample.slice();
  new DataView(hugeLen.buffer).setInt32(8, 2 ** 31 - 1);
  expectCode(t, () => verifyBatches(hugeLen, opts), 'MESSAGE_TOO_LARGE', /batch 0/);
  expectCode(t, () => verifyBatches(hugeLen, { ...opts, maxBatchBytes: 2 ** 31 + 100 }), 'CORRUPT_MESSAGE', /runs past the end/);
  const two = Buffer.concat([sample, sample.subarray(0, 30)]);
  expectCode(t, () => verifyBatches(two, opts), 'CORRUPT_MESSAGE', /batch 1 at byte \d+: truncated header/, 'second batch truncated');
});

t.test('hostile: lying records inside compressed batches are INVALID_RECORD (every available codec)', async (t) => {
  const support = codecSupport();
  const good = rawRecord({ offsetDelta: 0, key: [1, 2], value: [3, 4, 5] });
  const lying = rawRecord({ offsetDelta: 1, keyLen: 500, key: [1] });
  for (const [codec, name] of [[1, 'gzip'], [2, 'snappy'], [3, 'lz4'], [4, 'zstd']] as const) {
    if (!support[name].compress || !support[name].decompress) continue;
    const packed = [...compress(codec, Uint8Array.from([...good, ...lying]))];
    expectCode(t, () => verifyBatches(rawBatch(packed, 2, { attributes: codec }), opts), 'INVALID_RECORD', /record 1: key length/, `${name}: lying key length`);
    expectCode(t, () => decodeBatch(rawBatch(packed, 2, { attributes: codec })), 'INVALID_RECORD', /record 1: key length/, `${name}: decode`);
    const short = [...compress(codec, Uint8Array.from(good))];
    expectCode(t, () => verifyBatches(rawBatch(short, 3, { attributes: codec }), opts), 'INVALID_RECORD', /recordCount 3/, `${name}: count larger than the records`);
    const fine = [...compress(codec, Uint8Array.from([...good, ...rawRecord({ offsetDelta: 1, value: [9] })]))];
    t.equal(verifyBatches(rawBatch(fine, 2, { attributes: codec }), opts).length, 1, `${name}: the same builder makes a valid compressed batch`);
  }
});

t.test('hostile: compressed records that are garbage are CORRUPT_MESSAGE', async (t) => {
  const support = codecSupport();
  const garbage = Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
  for (const [codec, name] of [[1, 'gzip'], [2, 'snappy'], [3, 'lz4'], [4, 'zstd']] as const) {
    if (!support[name].decompress) continue;
    expectCode(t, () => verifyBatches(rawBatch(garbage, 1, { attributes: codec }), opts), 'CORRUPT_MESSAGE', /batch 0/, `${name} garbage`);
  }
});

t.test('hostile: decompression bombs stop at the limit (gzip, zstd, and the wasm codecs)', async (t) => {
  const zeros = new Uint8Array(64 << 20);
  const limit = 1 << 20;
  const bombOpts = { ...opts, maxDecompressedBytes: limit };
  const gz = gzipSync(zeros, { level: 1 });
  t.ok(gz.byteLength < 400_000, `64 MiB of zeros gzip to ${gz.byteLength} bytes`);
  const rssBefore = process.memoryUsage.rss();
  expectCode(t, () => verifyBatches(rawBatch([...gz], 1000, { attributes: 1 }), bombOpts), 'CORRUPT_MESSAGE', /limit of 1048576/, 'gzip bomb');
  expectCode(t, () => decodeBatch(rawBatch([...gz], 1000, { attributes: 1 }), 0, { maxDecompressedBytes: limit }), 'CORRUPT_MESSAGE', /limit of 1048576/, 'gzip bomb (decode)');
  const support = codecSupport();
  for (const [codec, name] of [[4, 'zstd'], [3, 'lz4'], [2, 'snappy']] as const) {
    if (!support[name].compress || !support[name].decompress) {
      t.comment(`${name} not available: bomb not tried`);
      continue;
    }
    const bomb = compress(codec, zeros.subarray(0, 8 << 20));
    expectCode(t, () => verifyBatches(rawBatch([...bomb], 1000, { attributes: codec }), bombOpts), 'CORRUPT_MESSAGE', /1048576/, `${name} bomb (${bomb.byteLength} bytes)`);
  }
  const grownMiB = (process.memoryUsage.rss() - rssBefore) / 1048576;
  t.ok(grownMiB < 200, `RSS grew ${grownMiB.toFixed(1)} MiB while refusing bombs`);
});

t.test('hostile: random garbage and mutated-then-resealed batches only ever raise BrokerErrors', async (t) => {
  const rand = seededRandom(987654321);
  const base = encodeBatch(
    Array.from({ length: 20 }, (_, i) => ({ key: i % 3 ? enc(`k${i}`) : null, value: enc(`v${'x'.repeat(i)}`), timestampMs: 1000 + i, headers: i % 2 ? [{ key: 'a', value: enc('b') }] : [] })),
  );
  const started = Date.now();
  let foreign = 0;
  let accepted = 0;
  for (let round = 0; round < 3000; round++) {
    let buf: Uint8Array;
    if (round % 3 === 0) {
      buf = Uint8Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256));
    } else {
      buf = base.slice();
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) buf[RECORDS + Math.floor(rand() * (buf.length - RECORDS))] = Math.floor(rand() * 256);
      new DataView(buf.buffer).setUint32(CRC, nativeCrc32c(Buffer.from(buf.subarray(ATTRIBUTES)))); // reseal: exercise the record walk
    }
    for (const fn of [() => verifyBatches(buf, opts), () => decodeBatches(buf)]) {
      const err = caught(fn);
      if (err === undefined) accepted++;
      else if (!(err instanceof BrokerError)) {
        if (foreign++ < 3) t.fail(`round ${round}: ${String(err)}`);
      }
    }
  }
  t.equal(foreign, 0, 'no error other than BrokerError (no wasm trap, no RangeError)');
  t.ok(Date.now() - started < 20_000, 'finishes quickly');
  t.comment(`${accepted} mutated inputs were still valid batches`);
});
