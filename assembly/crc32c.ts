// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as Kafka's RecordBatch v2 uses
// over attributes..end of batch.
//
// Method: slicing-by-8 (eight 256-entry tables, 8 input bytes per step) run on four
// interleaved streams. One stream is bound by the latency of its own dependency chain
// (each step needs the previous CRC); four independent chains keep the CPU's load units busy.
// Each block of 4 × STREAM_BYTES is split into four equal streams; streams 1..3 start from a
// zero register, and the results are joined with the "shift by STREAM_BYTES zero bytes"
// operator, which is linear over GF(2) and therefore tabulated like a slicing table:
//   crc(A ‖ B) = shift_|B|(crc(A)) ⊕ crc₀(B)   (raw register, no pre/post inversion).
//
// Exports take the raw register so the host can feed a long input in pieces:
//   crc = ~crc32cUpdate(~0, ptr, len)

const POLY: u32 = 0x82f63b78;
const STREAM_BYTES: usize = 256;
const BLOCK_BYTES: usize = STREAM_BYTES * 4;

// Tables: T[t][b] = register after byte b followed by t zero bytes. 8 × 1 KiB.
const TABLES: usize = memory.data(8 * 1024, 64);
// Shift operator for STREAM_BYTES zero bytes, one 256-entry table per register byte. 4 × 1 KiB.
const SHIFT: usize = memory.data(4 * 1024, 64);

function initTables(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (POLY & (0 - (c & 1)));
    store<u32>(TABLES + (<usize>i << 2), c);
  }
  for (let i: usize = 0; i < 256; i++) {
    let c = load<u32>(TABLES + (i << 2));
    for (let t: usize = 1; t < 8; t++) {
      c = (c >>> 8) ^ load<u32>(TABLES + (<usize>(c & 0xff) << 2));
      store<u32>(TABLES + (t << 10) + (i << 2), c);
    }
  }
  for (let k: usize = 0; k < 4; k++) {
    for (let b: usize = 0; b < 256; b++) {
      let c = <u32>b << (<u32>k * 8);
      for (let n: usize = 0; n < STREAM_BYTES; n++) c = (c >>> 8) ^ load<u32>(TABLES + (<usize>(c & 0xff) << 2));
      store<u32>(SHIFT + (k << 10) + (b << 2), c);
    }
  }
}
initTables();

// @ts-ignore: decorator
@inline function step8(c: u32, p: usize): u32 {
  const lo = load<u32>(p) ^ c;
  const hi = load<u32>(p, 4);
  return (
    load<u32>(TABLES + ((lo & 0xff) << 2), 7 << 10) ^
    load<u32>(TABLES + (((lo >>> 8) & 0xff) << 2), 6 << 10) ^
    load<u32>(TABLES + (((lo >>> 16) & 0xff) << 2), 5 << 10) ^
    load<u32>(TABLES + ((lo >>> 24) << 2), 4 << 10) ^
    load<u32>(TABLES + ((hi & 0xff) << 2), 3 << 10) ^
    load<u32>(TABLES + (((hi >>> 8) & 0xff) << 2), 2 << 10) ^
    load<u32>(TABLES + (((hi >>> 16) & 0xff) << 2), 1 << 10) ^
    load<u32>(TABLES + ((hi >>> 24) << 2))
  );
}

// @ts-ignore: decorator
@inline function shiftStream(c: u32): u32 {
  return (
    load<u32>(SHIFT + ((c & 0xff) << 2)) ^
    load<u32>(SHIFT + (((c >>> 8) & 0xff) << 2), 1 << 10) ^
    load<u32>(SHIFT + (((c >>> 16) & 0xff) << 2), 2 << 10) ^
    load<u32>(SHIFT + ((c >>> 24) << 2), 3 << 10)
  );
}

/** Advances the raw CRC-32C register over len bytes at ptr. */
export function crc32cUpdate(crc: u32, ptr: usize, len: usize): u32 {
  let c = crc;
  let p = ptr;
  const end = ptr + len;
  while (end - p >= BLOCK_BYTES) {
    let c0 = c;
    let c1: u32 = 0;
    let c2: u32 = 0;
    let c3: u32 = 0;
    const streamEnd = p + STREAM_BYTES;
    let q = p;
    while (q < streamEnd) {
      c0 = step8(c0, q);
      c1 = step8(c1, q + STREAM_BYTES);
      c2 = step8(c2, q + 2 * STREAM_BYTES);
      c3 = step8(c3, q + 3 * STREAM_BYTES);
      q += 8;
    }
    c = shiftStream(c0) ^ c1;
    c = shiftStream(c) ^ c2;
    c = shiftStream(c) ^ c3;
    p += BLOCK_BYTES;
  }
  while (end - p >= 8) {
    c = step8(c, p);
    p += 8;
  }
  while (p < end) {
    c = (c >>> 8) ^ load<u32>(TABLES + (((c ^ <u32>load<u8>(p)) & 0xff) << 2));
    p++;
  }
  return c;
}

/** CRC-32C of len bytes at ptr (inverted in and out, the standard value). */
export function crc32c(ptr: usize, len: usize): u32 {
  return ~crc32cUpdate(0xffffffff, ptr, len);
}
