// LZ4 frame codec of the wasm core: round-trips, cross-checks in both directions with
// implementations nobody here wrote (lz4-napi, lz4js, @platformatic/wasm-utils,
// lz4-wasm-nodejs), the exact frame header Kafka's producer writes, hand-built frames for every
// optional feature, and hostile frames that must end in BrokerError('CORRUPT_MESSAGE') —
// never a wasm trap, an out-of-bounds read, a hang, or output past maxOutBytes.
import t, { type Test } from 'tap';
import { createRequire } from 'node:module';
import { BrokerError } from '../../../host/errors/index.js';
import {
  lz4FrameCompress, lz4FrameDecompress, lz4FrameDecompressView, lz4BlockCompress, lz4BlockDecompress, lz4FrameCompressBound, xxhash32,
} from '../../../host/core/lz4.js';
import { core, memU8, heapBase } from '../../../host/core/wasm.js';
import { prng, randomBytes, sensorJson, mixedBytes, corrupt } from '../../helpers/codec-inputs.js';

const require = createRequire(import.meta.url);
const lz4napi = require('lz4-napi') as {
  compressFrameSync(src: Buffer, options?: { contentChecksum?: boolean; blockChecksums?: boolean }): Buffer;
  decompressFrameSync(src: Buffer): Buffer;
};
const lz4js = require('lz4js') as { compress(src: Uint8Array): Uint8Array; decompress(src: Uint8Array, maxSize?: number): Uint8Array };
const lz4jsXxh = require('lz4js/xxh32.js') as { hash(seed: number, src: Uint8Array, index: number, len: number): number };
const lz4wasm = require('lz4-wasm-nodejs') as { compress(src: Uint8Array): Uint8Array; decompress(src: Uint8Array): Uint8Array };
const wasmUtils = (await import('@platformatic/wasm-utils')) as unknown as { lz4Compress(src: Buffer): Buffer; lz4Decompress(src: Buffer): Buffer };

// ---------------------------------------------------------------- test-side helpers (independent of the core)

const xxh32 = (b: Uint8Array, seed = 0) => lz4jsXxh.hash(seed, b, 0, b.length) >>> 0;
const u32le = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

interface FrameSpec {
  flg?: number;
  bd?: number;
  contentSize?: bigint;
  dictId?: number;
  headerChecksum?: number;
  blocks: { data: Uint8Array; stored?: boolean; sizeOverride?: number; checksum?: number }[];
  blockChecksums?: boolean;
  contentChecksum?: number;
  noEndMark?: boolean;
}

/** Test-side LZ4 frame writer (FLG/BD given; header checksum computed with lz4js's xxh32). */
function frame(spec: FrameSpec): Buffer {
  let flg = spec.flg ?? 0x60;
  if (spec.contentSize !== undefined) flg |= 0x08;
  if (spec.blockChecksums) flg |= 0x10;
  if (spec.contentChecksum !== undefined) flg |= 0x04;
  if (spec.dictId !== undefined) flg |= 0x01;
  const desc = [flg, spec.bd ?? 0x40];
  if (spec.contentSize !== undefined) {
    const cs = Buffer.alloc(8);
    cs.writeBigUInt64LE(spec.contentSize);
    desc.push(...cs);
  }
  if (spec.dictId !== undefined) desc.push(...u32le(spec.dictId));
  const hc = spec.headerChecksum ?? (xxh32(Uint8Array.from(desc)) >>> 8) & 0xff;
  const out: number[] = [...u32le(0x184d2204), ...desc, hc];
  for (const b of spec.blocks) {
    const size = (b.sizeOverride ?? b.data.length) | (b.stored ? 0x80000000 : 0);
    out.push(...u32le(size >>> 0), ...b.data);
    if (spec.blockChecksums) out.push(...u32le(b.checksum ?? xxh32(b.data)));
  }
  if (!spec.noEndMark) out.push(0, 0, 0, 0);
  if (spec.contentChecksum !== undefined) out.push(...u32le(spec.contentChecksum));
  return Buffer.from(out);
}

/** Test-side LZ4 sequence writer: literals, then (if offset) a match of matchLen (>= 4). */
function sequence(literals: number[] | Uint8Array, offset?: number, matchLen?: number): number[] {
  const lit = [...literals];
  const out: number[] = [];
  const litCode = Math.min(lit.length, 15);
  const mCode = offset === undefined ? 0 : Math.min(matchLen! - 4, 15);
  out.push((litCode << 4) | mCode);
  if (lit.length >= 15) {
    let rest = lit.length - 15;
    while (rest >= 255) {
      out.push(255);
      rest -= 255;
    }
    out.push(rest);
  }
  out.push(...lit);
  if (offset !== undefined) {
    out.push(offset & 0xff, offset >> 8);
    if (matchLen! - 4 >= 15) {
      let rest = matchLen! - 4 - 15;
      while (rest >= 255) {
        out.push(255);
        rest -= 255;
      }
      out.push(rest);
    }
  }
  return out;
}

/** Walks a frame with the test's own parser: block sizes, flags, trailing bytes. */
function walkFrame(f: Uint8Array): { flg: number; bd: number; blocks: { size: number; stored: boolean }[]; end: number } {
  const v = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  const flg = v[4];
  const bd = v[5];
  let p = 7;
  const blocks: { size: number; stored: boolean }[] = [];
  for (;;) {
    const w = v.readUInt32LE(p);
    p += 4;
    if (w === 0) break;
    blocks.push({ size: w & 0x7fffffff, stored: (w & 0x80000000) !== 0 });
    p += w & 0x7fffffff;
  }
  return { flg, bd, blocks, end: p };
}

// ---------------------------------------------------------------- tests

t.test('xxhash32 agrees with lz4js\'s independent xxh32 and the empty-input vector', async (t) => {
  t.equal(xxhash32(new Uint8Array(0)), 0x02cc5d05, 'xxh32("", 0) = 0x02CC5D05');
  for (let n = 0; n <= 70; n++) {
    const b = randomBytes(n, 100 + n);
    t.equal(xxhash32(b), xxh32(b), `length ${n}`);
    t.equal(xxhash32(b, 0x9747b28c), xxh32(b, 0x9747b28c), `length ${n}, seed`);
  }
  const big = randomBytes(100_003, 5);
  t.equal(xxhash32(big), xxh32(big), 'length 100003');
});

t.test('frames carry the header Kafka\'s producer writes: v01, independent 64 KiB blocks, KIP-57 checksum', async (t) => {
  const data = sensorJson(300_000);
  const f = lz4FrameCompress(data);
  t.same([...f.subarray(0, 7)], [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, (xxh32(Uint8Array.from([0x60, 0x40])) >>> 8) & 0xff]);
  t.equal(f[6], 0x82, 'header checksum byte of FLG 0x60 BD 0x40 is 0x82');
  const w = walkFrame(f);
  t.equal(w.end, f.length, 'nothing after the end mark (no content checksum)');
  t.equal(w.blocks.length, Math.ceil(data.length / 65536), 'one block per 64 KiB of input');
  t.ok(w.blocks.every((b) => b.size <= 65536), 'every block within 64 KiB');
  const empty = lz4FrameCompress(new Uint8Array(0));
  t.same([...empty], [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 0, 0, 0, 0], 'empty input: header and end mark only');
  const rnd = walkFrame(lz4FrameCompress(randomBytes(100_000, 9)));
  t.ok(rnd.blocks.every((b) => b.stored), 'incompressible blocks are stored raw');
});

const corpus: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['1 byte', Buffer.from([0x41])],
  ['12 bytes (below the minimum match window)', Buffer.from('abcabcabcabc')],
  ['13 bytes', Buffer.from('abcabcabcabca')],
  ['incompressible 100 KB', randomBytes(100_000, 1)],
  ['zeros 1 MiB', Buffer.alloc(1 << 20)],
  ['"ab" repeated 200 KB', Buffer.from('ab'.repeat(100_000))],
  ['period-7 pattern 70 KB', Buffer.from('abcdefg'.repeat(10_000))],
  ['exactly 64 KiB', sensorJson(65536, 2)],
  ['64 KiB + 1', sensorJson(65537, 3)],
  ['sensor JSON 16 KiB', sensorJson(16384, 4)],
  ['sensor JSON 3 MiB', sensorJson(3 << 20, 5)],
  ['mixed 500 KB', mixedBytes(500_000, 6)],
];

t.test('round-trips, and lz4-napi, lz4js and @platformatic/wasm-utils decode what the core writes', async (t) => {
  for (const [name, data] of corpus) {
    const f = lz4FrameCompress(data);
    t.ok(same(lz4FrameDecompress(f, data.length), data), `${name}: core → core`);
    t.ok(same(lz4napi.decompressFrameSync(Buffer.from(f)), data), `${name}: core → lz4-napi`);
    t.ok(same(lz4js.decompress(f), data), `${name}: core → lz4js`);
    t.ok(same(wasmUtils.lz4Decompress(Buffer.from(f)), data), `${name}: core → @platformatic/wasm-utils`);
    if (data.length > 1000 && name.startsWith('sensor')) t.ok(f.length < data.length / 3, `${name}: compresses (${data.length} → ${f.length})`);
  }
});

t.test('decodes frames written by lz4-napi (with and without checksums), @platformatic/wasm-utils and lz4js', async (t) => {
  for (const [name, data] of corpus) {
    t.ok(same(lz4FrameDecompress(lz4napi.compressFrameSync(data), data.length), data), `${name}: lz4-napi → core`);
    t.ok(same(lz4FrameDecompress(lz4napi.compressFrameSync(data, { contentChecksum: true, blockChecksums: true }), data.length), data), `${name}: lz4-napi with block + content checksums → core`);
    t.ok(same(lz4FrameDecompress(wasmUtils.lz4Compress(data), data.length), data), `${name}: @platformatic/wasm-utils → core`);
    t.ok(same(lz4FrameDecompress(lz4js.compress(data), data.length), data), `${name}: lz4js → core`);
  }
});

t.test('dependent-block frames (lz4js, 4 MiB blocks) whose matches cross block boundaries decode', async (t) => {
  const data = sensorJson(9 << 20, 7);
  const f = lz4js.compress(data);
  const w = walkFrame(f);
  t.equal(w.flg & 0x20, 0, 'lz4js marks its blocks dependent');
  t.equal(w.blocks.length, 3, 'three 4 MiB blocks');
  t.ok(same(lz4FrameDecompress(f, data.length), data), 'decoded');
});

t.test('raw blocks cross-check with lz4-wasm-nodejs (block format, 4-byte size prefix)', async (t) => {
  for (const [name, data] of corpus) {
    if (data.length > 65536) continue;
    const block = lz4BlockCompress(data);
    const prefixed = Buffer.concat([Buffer.from(u32le(data.length)), block]);
    t.ok(same(lz4wasm.decompress(prefixed), data), `${name}: core block → lz4-wasm-nodejs`);
  }
  for (const [name, data] of corpus) {
    const theirs = lz4wasm.compress(data);
    t.ok(same(lz4BlockDecompress(theirs.subarray(4), data.length), data), `${name}: lz4-wasm-nodejs block → core`);
  }
});

t.test('property: 250 seeded random inputs round-trip and decode in lz4-napi', async (t) => {
  const rnd = prng(2024);
  let failures = 0;
  for (let i = 0; i < 250; i++) {
    const n = rnd() < 0.2 ? (rnd() * 40) | 0 : (rnd() * 150_000) | 0;
    const data = rnd() < 0.5 ? mixedBytes(n, i) : sensorJson(n, i);
    const f = lz4FrameCompress(data);
    if (!same(lz4FrameDecompress(f, n), data) || !same(lz4napi.decompressFrameSync(Buffer.from(f)), data)) {
      failures++;
      t.fail(`input ${i} (${n} bytes) does not round-trip`);
    }
    if (!same(lz4FrameDecompress(lz4napi.compressFrameSync(data), n), data)) {
      failures++;
      t.fail(`input ${i} (${n} bytes): lz4-napi frame does not decode`);
    }
  }
  t.equal(failures, 0);
});

t.test('hand-built frames: content size, checksums, stored blocks, skippable and concatenated frames', async (t) => {
  const text = Buffer.from('hello hello hello hello, world');
  const block = Uint8Array.from([...sequence([...Buffer.from('hello ')], 6, 17), ...sequence([...Buffer.from(', world')])]);
  t.ok(same(lz4FrameDecompress(frame({ blocks: [{ data: block }] }), 100), text), 'plain');
  t.ok(same(lz4FrameDecompress(frame({ contentSize: BigInt(text.length), blocks: [{ data: block }] }), 100), text), 'with content size');
  t.ok(same(lz4FrameDecompress(frame({ blockChecksums: true, contentChecksum: xxh32(text), blocks: [{ data: block }] }), 100), text), 'with block and content checksums');
  t.ok(same(lz4FrameDecompress(frame({ blocks: [{ data: text, stored: true }, { data: block }] }), 100), Buffer.concat([text, text])), 'stored then compressed block');
  const skippable = Buffer.from([...u32le(0x184d2a53), ...u32le(3), 1, 2, 3]);
  const f = frame({ blocks: [{ data: block }] });
  t.ok(same(lz4FrameDecompress(Buffer.concat([skippable, f, f]), 100), Buffer.concat([text, text])), 'skippable frame then two concatenated frames');
  // Dependent blocks: the second block's match reaches back into the first block.
  const dep = frame({ flg: 0x40, blocks: [{ data: Uint8Array.from(sequence([...Buffer.from('abcdefgh')])) }, { data: Uint8Array.from([...sequence([0x21], 9, 8), ...sequence([0x21])]) }] });
  t.ok(same(lz4FrameDecompress(dep, 100), Buffer.from('abcdefgh!abcdefgh!')), 'dependent blocks reach across the boundary');
  t.ok(same(lz4FrameDecompress(frame({ bd: 0x70, blocks: [{ data: block }] }), 100), text), '4 MiB block size id accepted');
});

t.test('output bound: exactly maxOutBytes passes, one byte less is refused', async (t) => {
  const data = sensorJson(200_000, 11);
  const f = lz4FrameCompress(data);
  t.ok(same(lz4FrameDecompress(f, data.length), data), 'maxOutBytes = decoded length');
  corrupt(t, () => lz4FrameDecompress(f, data.length - 1), /maxOutBytes \(199999\)/, 'one byte short');
  corrupt(t, () => lz4FrameDecompress(f, 0), /maxOutBytes/, 'zero');
  const stored = lz4FrameCompress(randomBytes(5000, 3));
  corrupt(t, () => lz4FrameDecompress(stored, 4999), /maxOutBytes/, 'stored block one byte over');
  t.throws(() => lz4FrameDecompress(f, -1), RangeError, 'negative maxOutBytes is a programmer error');
});

t.test('decompression bombs are refused at the bound, quickly', async (t) => {
  // 2,000 blocks of 64 KiB of zeros: ~131 MB claimed from ~600 KB of input.
  const zeros = lz4FrameCompress(Buffer.alloc(65536));
  const w = walkFrame(zeros);
  const oneBlock = zeros.subarray(7, 7 + 4 + w.blocks[0].size);
  const parts = [zeros.subarray(0, 7)];
  for (let i = 0; i < 2000; i++) parts.push(oneBlock);
  parts.push(new Uint8Array(4));
  const bomb = Buffer.concat(parts);
  const started = Date.now();
  corrupt(t, () => lz4FrameDecompress(bomb, 1 << 20), /more than maxOutBytes \(1048576\)/, 'block bomb');
  t.ok(Date.now() - started < 2000, 'refused without decoding the whole bomb');
  corrupt(t, () => lz4FrameDecompress(frame({ contentSize: 1n << 40n, blocks: [{ data: Uint8Array.from(sequence([1])) }] }), 1 << 20), /maxOutBytes/, 'declared content size over the bound');
  // One block whose match length extension claims ~510 KB from 2 KB of input.
  const longMatch = [0x1f, 0x61, 1, 0, ...new Array(2000).fill(255), 0];
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: Uint8Array.from(longMatch) }] }), 1 << 20), /maxOutBytes|block maximum/, 'huge match length');
});

t.test('hostile frames end in CORRUPT_MESSAGE naming the fault', async (t) => {
  const good = lz4FrameCompress(sensorJson(3000, 12));
  const lit = Uint8Array.from(sequence([...Buffer.from('abcdefgh')]));
  corrupt(t, () => lz4FrameDecompress(new Uint8Array(0), 100), /empty/, 'empty input');
  corrupt(t, () => lz4FrameDecompress(Buffer.from('not an lz4 frame at all'), 100), /magic/, 'bad magic');
  corrupt(t, () => lz4FrameDecompress(frame({ flg: 0xa0, blocks: [{ data: lit }] }), 100), /version/, 'version 10');
  corrupt(t, () => lz4FrameDecompress(frame({ flg: 0x62, blocks: [{ data: lit }] }), 100), /reserved/, 'FLG reserved bit');
  corrupt(t, () => lz4FrameDecompress(frame({ bd: 0x41, blocks: [{ data: lit }] }), 100), /reserved/, 'BD low reserved bits');
  corrupt(t, () => lz4FrameDecompress(frame({ bd: 0xc0, blocks: [{ data: lit }] }), 100), /reserved/, 'BD high reserved bit');
  corrupt(t, () => lz4FrameDecompress(frame({ bd: 0x30, blocks: [{ data: lit }] }), 100), /block maximum size id/, 'block size id 3');
  const badHc = Buffer.from(good);
  badHc[6] ^= 0xff;
  corrupt(t, () => lz4FrameDecompress(badHc, 1 << 20), /header checksum/, 'header checksum');
  // Kafka 0.8/0.9's broken checksum (computed over magic + descriptor) is refused too.
  const legacyHc = Buffer.from(good);
  legacyHc[6] = (xxh32(good.subarray(0, 6)) >>> 8) & 0xff;
  if (legacyHc[6] !== good[6]) corrupt(t, () => lz4FrameDecompress(legacyHc, 1 << 20), /header checksum/, 'pre-KIP-57 header checksum');
  corrupt(t, () => lz4FrameDecompress(frame({ dictId: 7, blocks: [{ data: lit }] }), 100), /dictionar/, 'dictionary id');
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: new Uint8Array(70_000), stored: true }] }), 1 << 20), /larger than the frame's block maximum/, 'stored block over 64 KiB');
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: lit, sizeOverride: 5000 }] }), 1 << 20), /ends inside/, 'block size past the end of input');
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: lit }], noEndMark: true }), 1 << 20), /ends inside/, 'missing end mark');
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: Uint8Array.from(sequence([1, 2, 3], 0, 4)) }] }), 100), /offset is zero/, 'match offset 0');
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: Uint8Array.from([...sequence([1, 2, 3], 4, 4), ...sequence([9])]) }] }), 100), /before the start/, 'offset before the start of output');
  const twoIndependent = frame({ blocks: [{ data: lit }, { data: Uint8Array.from([...sequence([0x21], 9, 8), ...sequence([0x21])]) }] });
  corrupt(t, () => lz4FrameDecompress(twoIndependent, 100), /before the start/, 'independent block reaching into the previous block');
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: Uint8Array.from([0x80, 1, 2, 3]) }] }), 100), /ends inside/, 'literal run past the end of the block');
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: Uint8Array.from([0xf0, 255, 255]) }] }), 100), /ends inside/, 'literal length extension runs off the block');
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: Uint8Array.from([...sequence([1, 2, 3, 4]), 4]) }] }), 100), /ends inside/, 'block ends inside a match offset');
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: Uint8Array.from([0x1f, 1, 1, 0, 255, 255]) }] }), 1 << 20), /ends inside/, 'match length extension runs off the block');
  const overBlock = Uint8Array.from([...sequence([7], 1, 70_000), ...sequence([7])]);
  corrupt(t, () => lz4FrameDecompress(frame({ blocks: [{ data: overBlock }] }), 1 << 20), /more than the frame's block maximum size/, 'block decodes past 64 KiB');
  corrupt(t, () => lz4FrameDecompress(frame({ blockChecksums: true, blocks: [{ data: lit, checksum: 1234 }] }), 100), /block checksum/, 'block checksum');
  corrupt(t, () => lz4FrameDecompress(frame({ contentChecksum: 1234, blocks: [{ data: lit }] }), 100), /content checksum/, 'content checksum');
  corrupt(t, () => lz4FrameDecompress(frame({ contentSize: 9n, blocks: [{ data: lit }] }), 100), /content size/, 'content size mismatch');
  corrupt(t, () => lz4FrameDecompress(Buffer.concat([good, Buffer.from([1, 2])]), 1 << 20), /ends inside/, 'trailing garbage after the frame');
});

t.test('every truncation of a valid multi-block frame is refused', async (t) => {
  const data = mixedBytes(150_000, 13);
  const f = lz4FrameCompress(data);
  let refused = 0;
  const cuts = new Set<number>();
  for (let i = 0; i < 64; i++) cuts.add(i);
  for (let i = 64; i < f.length; i += 97) cuts.add(i);
  for (let i = f.length - 64; i < f.length; i++) cuts.add(i);
  for (const cut of cuts) {
    try {
      lz4FrameDecompress(f.subarray(0, cut), 1 << 20);
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'CORRUPT_MESSAGE') refused++;
    }
  }
  t.equal(refused, cuts.size, `all ${cuts.size} truncations refused`);
});

t.test('fuzz: bit flips and garbage end in CORRUPT_MESSAGE or bounded output, never anything else', async (t) => {
  const rnd = prng(77);
  const base = lz4FrameCompress(sensorJson(40_000, 14));
  const maxOut = 50_000;
  let other = 0;
  for (let i = 0; i < 3000; i++) {
    let input: Buffer;
    if (i % 3 === 2) input = randomBytes(1 + ((rnd() * 300) | 0), i);
    else {
      input = Buffer.from(base);
      const flips = 1 + ((rnd() * 4) | 0);
      for (let k = 0; k < flips; k++) input[(rnd() * input.length) | 0] ^= 1 << ((rnd() * 8) | 0);
      if (i % 3 === 1) input = Buffer.concat([input.subarray(0, 7), randomBytes(200, i), input.subarray(207)]);
    }
    try {
      const out = lz4FrameDecompress(input, maxOut);
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

t.test('input already in wasm memory is used in place; the view variant returns wasm memory', async (t) => {
  const data = sensorJson(100_000, 15);
  const f = lz4FrameCompress(data);
  const at = heapBase + 4096;
  memU8.set(f, at);
  const inPlace = memU8.subarray(at, at + f.length);
  t.ok(same(lz4FrameDecompress(inPlace, data.length), data), 'decoded from a view of wasm memory');
  const view = lz4FrameDecompressView(f, data.length);
  t.equal(view.buffer, memU8.buffer, 'view shares wasm memory');
  t.ok(same(view, data), 'view content');
});

t.test('inputs that cannot fit the core\'s scratch memory are refused with MESSAGE_TOO_LARGE', async (t) => {
  const huge = Buffer.alloc(memU8.byteLength - heapBase - 1024);
  let err: unknown;
  try {
    lz4FrameCompress(huge);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof BrokerError && err.code === 'MESSAGE_TOO_LARGE', 'compress refuses');
  t.match((err as Error).message, /scratch memory/);
});

// kafkajs ships no LZ4 codec: clients plug one in with kafkajs's codec interface
// ({ compress(encoder), decompress(buffer) } → Promise<Buffer>). The core must fit it both ways.
interface KafkajsCodec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}
const kafkajsCompression = require('kafkajs/src/protocol/message/compression') as { Codecs: Record<number, () => KafkajsCodec>; Types: Record<string, number> };
const kafkajsBatch = require('kafkajs/src/protocol/recordBatch/v0') as { RecordBatch(options: Record<string, unknown>): Promise<{ buffer: Buffer }> };
const kafkajsRecord = require('kafkajs/src/protocol/recordBatch/record/v0') as (r: Record<string, unknown>) => unknown;
const kafkajsDecodeBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder') as (d: unknown) => Promise<{ records: { key: Buffer; value: Buffer }[] }>;
const KafkajsDecoder = require('kafkajs/src/protocol/decoder') as new (b: Buffer) => unknown;

t.test('kafkajs: a batch compressed through the core as kafkajs\'s LZ4 codec decodes in kafkajs; lz4-napi reads its records section', async (t) => {
  const { Codecs, Types } = kafkajsCompression;
  const saved = Codecs[Types.LZ4];
  Codecs[Types.LZ4] = () => ({
    compress: async (encoder) => Buffer.from(lz4FrameCompress(encoder.buffer)),
    decompress: async (buffer) => Buffer.from(lz4FrameDecompress(buffer, 64 << 20)),
  });
  t.teardown(() => {
    Codecs[Types.LZ4] = saved;
  });
  const values = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ device: `sensor-${i % 17}`, seq: i, temperature: 20 + (i % 7) / 10 }));
  const records = values.map((v, i) => kafkajsRecord({ offsetDelta: i, timestampDelta: i, key: Buffer.from(`k${i % 17}`), value: Buffer.from(v), headers: { mqtt: 'plant/line-1' } }));
  const batch = await kafkajsBatch.RecordBatch({ compression: Types.LZ4, records, lastOffsetDelta: values.length - 1 });
  const decoded = await kafkajsDecodeBatch(new KafkajsDecoder(batch.buffer));
  t.equal(decoded.records.length, values.length, 'kafkajs decodes every record');
  t.ok(decoded.records.every((r, i) => r.value.toString() === values[i]), 'values intact');
  // Records section: after baseOffset(8) length(4) epoch(4) magic(1) crc(4) attributes(2)
  // lastOffsetDelta(4) timestamps(16) producer(10) baseSequence(4) count(4) = 61 bytes.
  const section = batch.buffer.subarray(61);
  t.equal(section.readUInt32LE(0), 0x184d2204, 'records section is an LZ4 frame');
  t.ok(same(lz4napi.decompressFrameSync(section), lz4FrameDecompress(section, 64 << 20)), 'lz4-napi reads the same records');
});

t.test('output that cannot fit the core\'s scratch memory is MESSAGE_TOO_LARGE, not a crash', async (t) => {
  // ~137 MB of zeros claimed by ~600 KB of blocks, with no maxOutBytes bound to stop it first.
  const zeros = lz4FrameCompress(Buffer.alloc(65536));
  const size = walkFrame(zeros).blocks[0].size;
  const parts = [zeros.subarray(0, 7)];
  for (let i = 0; i < Math.ceil(memU8.byteLength / 65536) + 4; i++) parts.push(zeros.subarray(7, 11 + size));
  parts.push(new Uint8Array(4));
  let err: unknown;
  try {
    lz4FrameDecompress(Buffer.concat(parts), Number.MAX_SAFE_INTEGER);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof BrokerError && err.code === 'MESSAGE_TOO_LARGE', 'refused');
  t.match((err as Error).message, /scratch memory left after the input/);
});

t.test('the host\'s frame bound equals the core\'s and holds for incompressible input', async (t) => {
  for (const n of [0, 1, 65535, 65536, 65537, 1 << 20, 3_000_001]) t.equal(lz4FrameCompressBound(n), core.lz4FrameCompressBound(n), `bound(${n})`);
  const worst = randomBytes(200_000, 21);
  t.ok(lz4FrameCompress(worst).length <= lz4FrameCompressBound(worst.length), 'random input within the bound');
});
