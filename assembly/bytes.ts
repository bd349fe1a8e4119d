// Byte-level helpers shared by the core: big-endian stores and Kafka's zigzag varints.
//
// Varint wire format (Kafka KIP-98, protobuf-compatible): a signed value is zigzag-mapped
// ((v << 1) ^ (v >> 63)) to an unsigned one, then written 7 bits per byte, least significant
// group first, high bit set on every byte but the last. A varint (int32) is at most 5 bytes,
// a varlong (int64) at most 10; a longer encoding is malformed.
//
// Readers work on a cursor (`cursor`) bounded by `limit`: any read that would pass the limit,
// or a varint longer than its maximum, sets `readFailed` and returns 0, so a caller checks one
// flag after a group of reads instead of every byte. Nothing is ever read at or past `limit`.

export let cursor: usize = 0;
export let limit: usize = 0;
export let readFailed: bool = false;

// @ts-ignore: decorator
@inline export function zigzag32(v: i32): u32 {
  return <u32>((v << 1) ^ (v >> 31));
}

// @ts-ignore: decorator
@inline export function zigzag64(v: i64): u64 {
  return <u64>((v << 1) ^ (v >> 63));
}

// @ts-ignore: decorator
@inline export function unzigzag32(u: u32): i32 {
  return <i32>(u >>> 1) ^ -(<i32>(u & 1));
}

// @ts-ignore: decorator
@inline export function unzigzag64(u: u64): i64 {
  return <i64>(u >>> 1) ^ -(<i64>(u & 1));
}

/** Bytes an unsigned 32-bit varint takes (1..5). */
// @ts-ignore: decorator
@inline export function varuSize32(u: u32): usize {
  const bits = 32 - <i32>clz<u32>(u | 1);
  return <usize>((bits + 6) / 7);
}

/** Bytes an unsigned 64-bit varint takes (1..10). */
// @ts-ignore: decorator
@inline export function varuSize64(u: u64): usize {
  const bits = 64 - <i32>clz<u64>(u | 1);
  return <usize>((bits + 6) / 7);
}

/** Writes an unsigned varint (T = u32 or u64) at p; returns the position after it. */
// @ts-ignore: decorator
@inline function writeVaru<T>(p: usize, u: T): usize {
  while (u >= <T>0x80) {
    store<u8>(p, <u8>((u & <T>0x7f) | <T>0x80));
    u >>>= <T>7;
    p++;
  }
  store<u8>(p, <u8>u);
  return p + 1;
}

// @ts-ignore: decorator
@inline export function writeVaru32(p: usize, u: u32): usize {
  return writeVaru<u32>(p, u);
}

// @ts-ignore: decorator
@inline export function writeVaru64(p: usize, u: u64): usize {
  return writeVaru<u64>(p, u);
}

/**
 * Reads an unsigned varint (T = u32: at most 5 bytes; u64: at most 10) at `cursor`. Generic so
 * both widths share one loop; AssemblyScript compiles one copy per width, no cost at run time.
 */
// @ts-ignore: decorator
@inline function readVaru<T>(): T {
  const maxBytes = sizeof<T>() == 4 ? 5 : 10;
  let p = cursor;
  if (p < limit) {
    const b = <T>load<u8>(p);
    if (b < <T>0x80) {
      cursor = p + 1;
      return b;
    }
  }
  let result = <T>0;
  let shift = <T>0;
  for (let i = 0; i < maxBytes; i++) {
    if (p >= limit) break;
    const b = <T>load<u8>(p++);
    result |= (b & <T>0x7f) << shift;
    if ((b & <T>0x80) == 0) {
      cursor = p;
      return result;
    }
    shift += <T>7;
  }
  readFailed = true;
  return <T>0;
}

/** Reads an unsigned varint of at most 5 bytes at `cursor`. */
export function readVaru32(): u32 {
  return readVaru<u32>();
}

/** Reads an unsigned varint of at most 10 bytes at `cursor`. */
export function readVaru64(): u64 {
  return readVaru<u64>();
}

// @ts-ignore: decorator
@inline export function readVarint(): i32 {
  return unzigzag32(readVaru32());
}

// @ts-ignore: decorator
@inline export function readVarlong(): i64 {
  return unzigzag64(readVaru64());
}

/** Big-endian 32-bit store (the batch header is big-endian; wasm is little-endian). */
// @ts-ignore: decorator
@inline export function storeBE32(p: usize, v: u32): void {
  store<u32>(p, bswap<u32>(v));
}

// @ts-ignore: decorator
@inline export function loadBE32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}

// --- exports for tests: varints through linear memory ----------------------------------

/** Writes zigzag varint(v) at p; returns bytes written. */
export function varintWrite(p: usize, v: i32): usize {
  return writeVaru32(p, zigzag32(v)) - p;
}

/** Writes zigzag varlong(v) at p (v passed as f64 so JS needs no BigInt); returns bytes written. */
export function varlongWrite(p: usize, v: f64): usize {
  return writeVaru64(p, zigzag64(<i64>v)) - p;
}

/** Reads a zigzag varint at p within len bytes; returns the value, or 0 with varintReadLength() == -1. */
let lastReadLength: i32 = 0;
export function varintRead(p: usize, len: usize): i32 {
  cursor = p;
  limit = p + len;
  readFailed = false;
  const v = readVarint();
  lastReadLength = readFailed ? -1 : <i32>(cursor - p);
  return v;
}

export function varlongRead(p: usize, len: usize): f64 {
  cursor = p;
  limit = p + len;
  readFailed = false;
  const v = readVarlong();
  lastReadLength = readFailed ? -1 : <i32>(cursor - p);
  return <f64>v;
}

export function varintReadLength(): i32 {
  return lastReadLength;
}
