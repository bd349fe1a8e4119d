// CRC-32C of the wasm core: known vectors, and agreement with @node-rs/crc32 (native SSE4.2,
// written by others) over every length around the core's block boundaries and random data.
import t from 'tap';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { crc32c, crc32cRange, crc32cUpdateRange } from '../../../host/core/index.js';
import { CRC_CHUNK_BYTES } from '../../../host/core/crc32c.js';

const ascii = (s: string) => new TextEncoder().encode(s);

function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

t.test('crc32c: known vectors', async (t) => {
  t.equal(crc32c(ascii('123456789')), 0xe3069283, 'check value of CRC-32C');
  t.equal(crc32c(new Uint8Array(0)), 0, 'empty input');
  // RFC 3720 (iSCSI) appendix B.4 test patterns.
  t.equal(crc32c(new Uint8Array(32)), 0x8a9136aa, '32 bytes of zeros');
  t.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43, '32 bytes of 0xff');
  const inc = Uint8Array.from({ length: 32 }, (_, i) => i);
  t.equal(crc32c(inc), 0x46dd794e, '32 incrementing bytes');
  const dec = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
  t.equal(crc32c(dec), 0x113fdb5c, '32 decrementing bytes');
  t.equal(crc32c(ascii('The quick brown fox jumps over the lazy dog')), 0x22620404, 'pangram');
});

t.test('crc32c: result is an unsigned 32-bit number', async (t) => {
  for (let seed = 1; seed < 50; seed++) {
    const v = crc32c(randomBytes(37, seed));
    t.ok(Number.isInteger(v) && v >= 0 && v <= 0xffffffff, `seed ${seed}`);
  }
});

t.test('crc32c: agrees with @node-rs/crc32 at every length 0..2100 (covers stream and block edges)', async (t) => {
  const data = randomBytes(2100, 7);
  let bad = 0;
  for (let n = 0; n <= data.length; n++) {
    const sub = data.subarray(0, n);
    if (crc32c(sub) !== nativeCrc32c(Buffer.from(sub.buffer, sub.byteOffset, n))) bad++;
  }
  t.equal(bad, 0, 'no length disagrees');
});

t.test('crc32c: agrees with @node-rs/crc32 on large and unaligned inputs', async (t) => {
  const big = randomBytes(3 * 1024 * 1024 + 13, 99);
  t.equal(crc32c(big), nativeCrc32c(Buffer.from(big.buffer)), '3 MiB + 13');
  for (const off of [1, 3, 5, 7]) {
    const sub = big.subarray(off, off + 100_003);
    t.equal(crc32c(sub), nativeCrc32c(Buffer.from(sub.buffer, sub.byteOffset, sub.byteLength)), `offset ${off}`);
  }
});

t.test('crc32c: inputs longer than one wasm copy are fed in pieces with the same result', async (t) => {
  const n = CRC_CHUNK_BYTES * 2 + 12345;
  const big = randomBytes(n, 3);
  t.equal(crc32c(big), nativeCrc32c(Buffer.from(big.buffer)));
});

t.test('crc32c: ranges and incremental updates compose', async (t) => {
  const data = randomBytes(10_000, 5);
  t.equal(crc32cRange(data, 100, 9000), nativeCrc32c(Buffer.from(data.buffer, 100, 8900)));
  let reg = 0xffffffff;
  for (let p = 0; p < data.length; p += 777) reg = crc32cUpdateRange(reg, data, p, Math.min(data.length, p + 777));
  t.equal(~reg >>> 0, crc32c(data));
});
