// Zigzag varint/varlong of the wasm core: byte-exact against kafkajs's encoder, round trips
// at edge values, and malformed encodings (too long, truncated) refused.
import t from 'tap';
import { createRequire } from 'node:module';
import { core, memU8, heapBase } from '../../../host/core/wasm.js';

const require = createRequire(import.meta.url);
// kafkajs internals (tests only): an independent varint writer.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const KafkaEncoder: any = require('kafkajs/src/protocol/encoder');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const Long: any = require('kafkajs/src/utils/long');

const varintWrite = core.varintWrite as (p: number, v: number) => number;
const varlongWrite = core.varlongWrite as (p: number, v: number) => number;
const varintRead = core.varintRead as (p: number, len: number) => number;
const varlongRead = core.varlongRead as (p: number, len: number) => number;
const varintReadLength = core.varintReadLength as () => number;

const P = heapBase;

function bytesOfVarint(v: number): number[] {
  const n = varintWrite(P, v);
  return Array.from(memU8.subarray(P, P + n));
}
function bytesOfVarlong(v: number): number[] {
  const n = varlongWrite(P, v);
  return Array.from(memU8.subarray(P, P + n));
}

const int32Edges = [0, 1, -1, 2, -2, 63, -64, 64, -65, 127, 128, 8191, -8192, 8192, 2 ** 20, -(2 ** 20), 2 ** 31 - 1, -(2 ** 31)];
const int64Edges = [...int32Edges, 2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 35 + 7, -(2 ** 42), 1_700_000_000_000, -1_700_000_000_000, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];

t.test('varint: bytes match kafkajs writeVarInt and read back', async (t) => {
  for (const v of int32Edges) {
    const ours = bytesOfVarint(v);
    const theirs = Array.from(new KafkaEncoder().writeVarInt(v).buffer as Buffer);
    t.same(ours, theirs, `bytes of ${v}`);
    memU8.set(ours, P);
    t.equal(varintRead(P, ours.length), v, `value of ${v}`);
    t.equal(varintReadLength(), ours.length, `length of ${v}`);
  }
});

t.test('varlong: bytes match kafkajs writeVarLong and read back', async (t) => {
  for (const v of int64Edges) {
    const ours = bytesOfVarlong(v);
    const theirs = Array.from(new KafkaEncoder().writeVarLong(Long.fromNumber(v)).buffer as Buffer);
    t.same(ours, theirs, `bytes of ${v}`);
    memU8.set(ours, P);
    t.equal(varlongRead(P, ours.length), v, `value of ${v}`);
    t.equal(varintReadLength(), ours.length, `length of ${v}`);
  }
});

t.test('varint: sizes are minimal (1 byte for -64..63, 5 bytes for int32 extremes)', async (t) => {
  t.equal(bytesOfVarint(63).length, 1);
  t.equal(bytesOfVarint(-64).length, 1);
  t.equal(bytesOfVarint(64).length, 2);
  t.equal(bytesOfVarint(2 ** 31 - 1).length, 5);
  t.equal(bytesOfVarint(-(2 ** 31)).length, 5);
  t.equal(bytesOfVarlong(-1).length, 1);
});

t.test('varint: random round trips', async (t) => {
  let x = 12345;
  let bad = 0;
  for (let i = 0; i < 5000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    const v = x >> (i % 31);
    const n = varintWrite(P, v);
    if (varintRead(P, n) !== v || varintReadLength() !== n) bad++;
    const l = v * 3001 + (i % 7);
    const m = varlongWrite(P, l);
    if (varlongRead(P, m) !== l || varintReadLength() !== m) bad++;
  }
  t.equal(bad, 0);
});

t.test('varint: malformed encodings are refused, never read past the limit', async (t) => {
  memU8.set([0x80, 0x80, 0x80, 0x80, 0x80, 0x01], P);
  varintRead(P, 6);
  t.equal(varintReadLength(), -1, 'six-byte varint is too long');
  memU8.set([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], P);
  varlongRead(P, 11);
  t.equal(varintReadLength(), -1, 'eleven-byte varlong is too long');
  memU8.set([0x96, 0x01], P);
  varintRead(P, 1);
  t.equal(varintReadLength(), -1, 'continuation bit on the last available byte');
  varintRead(P, 0);
  t.equal(varintReadLength(), -1, 'no bytes at all');
  varintRead(P, 2);
  t.equal(varintReadLength(), 2, 'the same bytes with room are fine');
});
