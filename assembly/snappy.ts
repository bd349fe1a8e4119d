// Snappy (google/snappy format_description.txt) and the xerial framing that snappy-java's
// SnappyOutputStream writes — the form Kafka's Java producer uses for compression.type=snappy
// (attributes codec 2).
//
// Raw block layout:
//   preamble  varint (LEB128, at most 5 bytes) uncompressed length
//   elements  tag byte, low 2 bits = kind:
//     00 literal  len-1 in bits 7-2 when < 60; 60..63 = len-1 follows in 1..4 bytes LE
//     01 copy-1   len-4 in bits 4-2 (4..11), offset bits 10-8 in bits 7-5, then offset low byte
//     10 copy-2   len-1 in bits 7-2 (1..64), then offset u16 LE
//     11 copy-4   len-1 in bits 7-2 (1..64), then offset u32 LE
//   An offset of 0 or one reaching before the start of the output is invalid; the elements
//   must produce exactly the preamble's length.
//
// Xerial framing (snappy-java SnappyCodec / SnappyOutputStream):
//   magic    0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00
//   version  i32 BE (1)   compatible version i32 BE (1)
//   chunks   i32 BE length, then a raw snappy block of that many bytes (each block encodes
//            at most 32 KiB: SnappyOutputStream's default block size, which Kafka keeps)
// A decoder that does not see the magic treats the whole input as one raw block — what
// snappy-java's SnappyInputStream and kafkajs both do.
//
// The compressor follows the reference's fast path: a hash table of 4-byte sequences, input
// cut into fragments of at most 64 KiB (so every offset fits copy-1/copy-2), a search stride
// that grows after 32 consecutive misses, and the last 15 bytes of a fragment always literal.
import { wildCopy, matchCopy, countEqual } from './codec-helper';

const HASH_LOG: u32 = 14;
// u16 positions relative to the fragment start (32 KiB: stays in L1 cache); never cleared —
// a candidate is used only if it lies before the current position and its 4 bytes compare
// equal, so an entry left by an earlier fragment or call can only cost a miss.
const HASH_TABLE: usize = memory.data(2 << HASH_LOG, 64);
const FRAGMENT_BYTES: usize = 65536;
const INPUT_MARGIN: usize = 15;
const XERIAL_CHUNK_BYTES: usize = 32768;
const XERIAL_HEADER_BYTES: usize = 16;
// 0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00 read as a little-endian u64.
const XERIAL_MAGIC: u64 = 0x00595050414e5382;

export const SNAPPY_ERR_TRUNCATED: i32 = -1;
export const SNAPPY_ERR_BAD_PREAMBLE: i32 = -2;
export const SNAPPY_ERR_OUTPUT_LIMIT: i32 = -3;
export const SNAPPY_ERR_BAD_OFFSET: i32 = -4;
export const SNAPPY_ERR_LENGTH_MISMATCH: i32 = -5;
export const SNAPPY_ERR_BAD_CHUNK: i32 = -6;
export const SNAPPY_ERR_EMPTY: i32 = -7;

// Per copy tag: bits 0-7 length, bits 8-10 offset bits 10..8 (copy-1), bits 11-13 number of
// offset bytes after the tag. Literal tags (low bits 00) are not looked up.
const COPY_INFO: usize = memory.data(512, 64);
const EXTRA_MASK: usize = memory.data<u32>([0, 0xff, 0xffff, 0xffffff, 0xffffffff]);
for (let tag: u32 = 0; tag < 256; tag++) {
  const kind = tag & 3;
  let info: u32 = 0;
  if (kind == 1) info = (((tag >> 2) & 7) + 4) | ((tag >> 5) << 8) | (1 << 11);
  else if (kind == 2) info = ((tag >> 2) + 1) | (2 << 11);
  else if (kind == 3) info = ((tag >> 2) + 1) | (4 << 11);
  store<u16>(COPY_INFO + (<usize>tag << 1), <u16>info);
}

let errorAt: usize = 0;

/** Input byte offset where the last decode error was detected. */
export function snappyErrorOffset(): u32 {
  return <u32>errorAt;
}

// @ts-ignore: decorator
@inline function hash(bytes: u32): usize {
  return <usize>((bytes * 0x1e35a7bd) >> (32 - HASH_LOG));
}

// @ts-ignore: decorator
@inline function emitLiteral(op: usize, src: usize, len: usize): usize {
  const n = len - 1;
  if (n < 60) {
    store<u8>(op++, <u8>(n << 2));
  } else if (n < 256) {
    store<u8>(op++, 60 << 2);
    store<u8>(op++, <u8>n);
  } else if (n < 65536) {
    store<u8>(op++, 61 << 2);
    store<u16>(op, <u16>n);
    op += 2;
  } else if (n < 16777216) {
    store<u8>(op++, 62 << 2);
    store<u16>(op, <u16>n);
    store<u8>(op + 2, <u8>(n >> 16));
    op += 3;
  } else {
    store<u8>(op++, 63 << 2);
    store<u32>(op, <u32>n);
    op += 4;
  }
  wildCopy(op, src, len);
  return op + len;
}

// @ts-ignore: decorator
@inline function emitCopy(op: usize, offset: usize, len: usize): usize {
  while (len >= 68) {
    store<u8>(op, (63 << 2) | 2);
    store<u16>(op + 1, <u16>offset);
    op += 3;
    len -= 64;
  }
  if (len > 64) {
    store<u8>(op, (59 << 2) | 2);
    store<u16>(op + 1, <u16>offset);
    op += 3;
    len -= 60;
  }
  if (len < 12 && offset < 2048) {
    store<u8>(op, <u8>(1 | ((len - 4) << 2) | ((offset >> 8) << 5)));
    store<u8>(op + 1, <u8>offset);
    return op + 2;
  }
  store<u8>(op, <u8>(2 | ((len - 1) << 2)));
  store<u16>(op + 1, <u16>offset);
  return op + 3;
}

/** Compresses one fragment (len <= 64 KiB) into dst (elements only); returns the new output pointer. */
function compressFragment(src: usize, len: usize, op: usize): usize {
  const iend = src + len;
  let nextEmit = src;
  if (len >= INPUT_MARGIN) {
    const ipLimit = iend - INPUT_MARGIN;
    let ip = src + 1;
    // The 4 bytes at the next position to probe, kept so each probe loads them once.
    let nextBytes = load<u32>(ip);
    while (true) {
      let skip: u32 = 32;
      let nextIp = ip;
      let candidate: usize = 0;
      let found = false;
      do {
        ip = nextIp;
        const bytes = nextBytes;
        const h = hash(bytes);
        nextIp = ip + <usize>(skip++ >> 5);
        if (nextIp > ipLimit) break;
        nextBytes = load<u32>(nextIp);
        candidate = src + <usize>load<u16>(HASH_TABLE + (h << 1));
        store<u16>(HASH_TABLE + (h << 1), <u16>(ip - src));
        if (<u32>(ip - candidate - 1) < <u32>(ip - src) && load<u32>(candidate) == bytes) {
          found = true;
          break;
        }
      } while (true);
      if (!found) break;

      op = emitLiteral(op, nextEmit, ip - nextEmit);
      // Emit copies for as long as the next position matches too. One 8-byte load at ip-1
      // gives the bytes for ip-1 (indexed), ip (probed) and ip+1 (the next search start).
      let window: u64 = 0;
      let again = false;
      do {
        const base = ip;
        const matched = <usize>4 + countEqual(ip + 4, candidate + 4, iend);
        ip += matched;
        op = emitCopy(op, base - candidate, matched);
        nextEmit = ip;
        if (ip >= ipLimit) break;
        window = load<u64>(ip - 1);
        store<u16>(HASH_TABLE + (hash(<u32>window) << 1), <u16>(ip - 1 - src));
        const cur = <u32>(window >> 8);
        const h = hash(cur);
        candidate = src + <usize>load<u16>(HASH_TABLE + (h << 1));
        store<u16>(HASH_TABLE + (h << 1), <u16>(ip - src));
        again = <u32>(ip - candidate - 1) < <u32>(ip - src) && load<u32>(candidate) == cur;
      } while (again);
      if (ip >= ipLimit) break;
      ip++;
      nextBytes = <u32>(window >> 16);
    }
  }
  if (nextEmit < iend) op = emitLiteral(op, nextEmit, iend - nextEmit);
  return op;
}

// @ts-ignore: decorator
@inline function writeVarint(op: usize, v: u32): usize {
  while (v >= 0x80) {
    store<u8>(op++, <u8>(v | 0x80));
    v >>= 7;
  }
  store<u8>(op++, <u8>v);
  return op;
}

function compressRaw(src: usize, len: usize, dst: usize): usize {
  let op = writeVarint(dst, <u32>len);
  let ip = src;
  const iend = src + len;
  while (ip < iend) {
    const n = min<usize>(iend - ip, FRAGMENT_BYTES);
    op = compressFragment(ip, n, op);
    ip += n;
  }
  return op - dst;
}

/** Largest raw block snappyRawCompress writes for `len` input bytes (copy margin not included). */
export function snappyRawCompressBound(len: u32): u32 {
  return 32 + len + len / 6;
}

/** Compresses `len` bytes at `src` as one raw snappy block at `dst`; returns its length. */
export function snappyRawCompress(src: usize, len: u32, dst: usize): u32 {
  return <u32>compressRaw(src, <usize>len, dst);
}

/** Largest xerial stream snappyXerialCompress writes for `len` input bytes. */
export function snappyXerialCompressBound(len: u32): u32 {
  const chunks = (len + <u32>XERIAL_CHUNK_BYTES - 1) / <u32>XERIAL_CHUNK_BYTES;
  return <u32>XERIAL_HEADER_BYTES + chunks * (4 + snappyRawCompressBound(<u32>XERIAL_CHUNK_BYTES));
}

/** Compresses `len` bytes at `src` in xerial framing (32 KiB chunks) at `dst`; returns its length. */
export function snappyXerialCompress(src: usize, len: u32, dst: usize): u32 {
  store<u64>(dst, XERIAL_MAGIC);
  store<u32>(dst + 8, bswap<u32>(1));
  store<u32>(dst + 12, bswap<u32>(1));
  let op = dst + XERIAL_HEADER_BYTES;
  let ip = src;
  const iend = src + <usize>len;
  while (ip < iend) {
    const n = min<usize>(iend - ip, XERIAL_CHUNK_BYTES);
    const written = compressRaw(ip, n, op + 4);
    store<u32>(op, bswap<u32>(<u32>written));
    op += 4 + written;
    ip += n;
  }
  return <u32>(op - dst);
}

/** Reads the preamble at [ip, iend): returns the length and sets `preambleEnd`; -1 when malformed, -2 when cut short. */
let preambleEnd: usize = 0;
function readPreamble(ip: usize, iend: usize): i64 {
  let v: u64 = 0;
  let shift: u64 = 0;
  while (ip < iend) {
    const b = <u64>load<u8>(ip++);
    v |= (b & 0x7f) << shift;
    if (b < 0x80) {
      preambleEnd = ip;
      return v > 0xffffffff ? -1 : <i64>v;
    }
    shift += 7;
    if (shift >= 35) return -1;
  }
  return -2;
}

/** Decodes elements [ip, iend) into [op, oend) exactly; 0 on success or a negative status. */
function decodeElements(src: usize, ip: usize, iend: usize, low: usize, op: usize, oend: usize): i32 {
  while (ip < iend) {
    const tag = <usize>load<u8>(ip++);
    const kind = tag & 3;
    if (kind == 0) {
      let len = (tag >> 2) + 1;
      // Shortcut: a literal of at most 60 bytes (no length bytes) far from both ends: 16-byte
      // copies, all inside the 64 bytes checked.
      if (len <= 60 && iend - ip >= 64 && oend - op >= 64) {
        let d = op;
        let s = ip;
        const end = op + len;
        do {
          v128.store(d, v128.load(s));
          d += 16;
          s += 16;
        } while (d < end);
        op = end;
        ip += len;
        continue;
      }
      if (len > 60) {
        const extra = len - 60;
        if (iend - ip < extra) {
          errorAt = ip - src;
          return SNAPPY_ERR_TRUNCATED;
        }
        // 1..4 little-endian bytes of len-1 (read as u32 and masked; the input margin covers the over-read).
        const mask: u32 = extra == 4 ? 0xffffffff : (<u32>1 << (<u32>extra * 8)) - 1;
        len = <usize>(load<u32>(ip) & mask) + 1;
        ip += extra;
        if (len == 0) {
          // len-1 was 0xFFFFFFFF: larger than any input we accept.
          errorAt = ip - src;
          return SNAPPY_ERR_TRUNCATED;
        }
      }
      if (len > iend - ip) {
        errorAt = ip - src;
        return SNAPPY_ERR_TRUNCATED;
      }
      if (len > oend - op) {
        errorAt = ip - src;
        return SNAPPY_ERR_LENGTH_MISMATCH;
      }
      wildCopy(op, ip, len);
      op += len;
      ip += len;
      continue;
    }
    // Copies: one table lookup gives the length, the number of offset bytes that follow and
    // the offset's high bits, so copy-1/2/4 share one branch-free path.
    const info = <usize>load<u16>(COPY_INFO + (tag << 1));
    const extra = info >> 11;
    if (iend - ip < extra) {
      errorAt = ip - src;
      return SNAPPY_ERR_TRUNCATED;
    }
    const len = info & 0xff;
    // Reads 4 bytes and masks to `extra` of them (the input margin covers the over-read).
    const offset = (info & 0x700) | <usize>(load<u32>(ip) & load<u32>(EXTRA_MASK + (extra << 2)));
    ip += extra;
    // offset - 1 wraps for offset 0, so one unsigned compare refuses 0 and too-far offsets.
    if (offset - 1 >= op - low) {
      errorAt = ip - 1 - src;
      return SNAPPY_ERR_BAD_OFFSET;
    }
    // Shortcut: no overlap within 16 bytes and room for the at most 64 bytes a copy makes.
    if (offset >= 16 && oend - op >= 64) {
      let d = op;
      let s = op - offset;
      const end = op + len;
      do {
        v128.store(d, v128.load(s));
        d += 16;
        s += 16;
      } while (d < end);
      op = end;
      continue;
    }
    if (len > oend - op) {
      errorAt = ip - src;
      return SNAPPY_ERR_LENGTH_MISMATCH;
    }
    matchCopy(op, offset, len);
    op += len;
  }
  if (op != oend) {
    errorAt = ip - src;
    return SNAPPY_ERR_LENGTH_MISMATCH;
  }
  return 0;
}

/**
 * Decodes one raw block [ip, iend) to op with room up to oend; returns the new output pointer
 * or a negative status.
 */
function decodeRaw(src: usize, ip: usize, iend: usize, op: usize, oend: usize): isize {
  const declared = readPreamble(ip, iend);
  if (declared < 0) {
    errorAt = ip - src;
    return declared == -2 ? SNAPPY_ERR_TRUNCATED : SNAPPY_ERR_BAD_PREAMBLE;
  }
  // Refuse a declared length over the limit before writing anything (decompression bomb).
  if (<u64>declared > <u64>(oend - op)) {
    errorAt = ip - src;
    return SNAPPY_ERR_OUTPUT_LIMIT;
  }
  const end = op + <usize>declared;
  const r = decodeElements(src, preambleEnd, iend, op, op, end);
  return r < 0 ? <isize>r : <isize>end;
}

/** Decodes one raw snappy block into at most `cap` bytes; returns its length or a negative status. */
export function snappyRawDecompress(src: usize, len: u32, dst: usize, cap: u32): i32 {
  errorAt = 0;
  if (len == 0) return SNAPPY_ERR_EMPTY;
  const r = decodeRaw(src, src, src + <usize>len, dst, dst + <usize>cap);
  return r < 0 ? <i32>r : <i32>(<usize>r - dst);
}

/** True when the input starts with the xerial magic. */
export function snappyIsXerial(src: usize, len: u32): bool {
  return len >= 8 && load<u64>(src) == XERIAL_MAGIC;
}

/**
 * Decodes xerial-framed or raw snappy (auto-detected by the magic, as snappy-java and kafkajs
 * do) into at most `cap` bytes; returns the decoded length or a negative status.
 */
export function snappyDecompress(src: usize, len: u32, dst: usize, cap: u32): i32 {
  errorAt = 0;
  if (len == 0) return SNAPPY_ERR_EMPTY;
  if (!snappyIsXerial(src, len)) return snappyRawDecompress(src, len, dst, cap);
  const iend = src + <usize>len;
  if (<usize>len < XERIAL_HEADER_BYTES) {
    errorAt = 8;
    return SNAPPY_ERR_TRUNCATED;
  }
  let ip = src + XERIAL_HEADER_BYTES;
  let op = dst;
  const oend = dst + <usize>cap;
  while (ip < iend) {
    if (iend - ip < 4) {
      errorAt = ip - src;
      return SNAPPY_ERR_TRUNCATED;
    }
    const chunkLen = <usize>bswap<u32>(load<u32>(ip));
    ip += 4;
    if (chunkLen == 0 || chunkLen > 0x7fffffff) {
      errorAt = ip - 4 - src;
      return SNAPPY_ERR_BAD_CHUNK;
    }
    if (chunkLen > iend - ip) {
      errorAt = ip - 4 - src;
      return SNAPPY_ERR_TRUNCATED;
    }
    const r = decodeRaw(src, ip, ip + chunkLen, op, oend);
    if (r < 0) return <i32>r;
    op = <usize>r;
    ip += chunkLen;
  }
  return <i32>(op - dst);
}
