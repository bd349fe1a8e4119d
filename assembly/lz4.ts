// LZ4 frame format (lz4/doc/lz4_Frame_format.md) and block format (lz4_Block_format.md), as
// Kafka uses them for compression.type=lz4 (attributes codec 3).
//
// Frame layout (all integers little-endian):
//   magic u32 0x184D2204
//   FLG u8   bits 7-6 version (01) | 5 block independence | 4 block checksum | 3 content size
//            | 2 content checksum | 1 reserved (0) | 0 dictionary id
//   BD u8    bit 7 reserved | bits 6-4 block max size id (4=64 KiB, 5=256 KiB, 6=1 MiB, 7=4 MiB)
//            | bits 3-0 reserved
//   [content size u64]  [dictionary id u32]
//   HC u8    (xxh32(FLG .. last descriptor byte, seed 0) >> 8) & 0xFF   — KIP-57: Kafka >= 0.10
//            computes it over the descriptor only, as the spec says (0.8/0.9 wrongly included the magic)
//   blocks:  u32 size (bit 31 set = stored uncompressed) then data [then u32 xxh32 of the data]
//   end mark u32 0  [then u32 xxh32 of the whole content]
//
// What we write is exactly what Kafka's own producer (KafkaLZ4BlockOutputStream) writes:
// FLG 0x60 (version 01, independent blocks, no checksums, no content size), BD 0x40 (64 KiB).
// Independent 64 KiB blocks are what every Kafka consumer accepts (the Java client rejects
// dependent blocks); a content checksum would cost an xxh32 pass over the data while the
// batch's CRC-32C already covers the compressed bytes end to end; no content size because
// the Java producer never writes one. Incompressible blocks are stored raw (bit 31), so the
// frame is never more than 11 + 4 bytes per 64 KiB larger than its input.
//
// What we read: any valid frame — either block mode, any block size, block and content
// checksums (verified), content size (checked), skippable frames and concatenated frames.
// Dictionary ids are refused (Kafka never uses them).
//
// Block format: sequences of token (literal length << 4 | match length - 4), literal length
// extension bytes (255 = more), literals, u16 offset, match length extension bytes. The last
// sequence has literals only; an encoder leaves the last 5 bytes as literals and starts no
// match within 12 bytes of the end (LAST_LITERALS, MF_LIMIT), which decoders may rely on.
import { xxhash32 } from './xxhash32';
import { wildCopy, matchCopy, countEqual } from './codec-helper';

export { xxhash32 };

const MAGIC: u32 = 0x184d2204;
const SKIPPABLE_MASK: u32 = 0xfffffff0;
const SKIPPABLE_MAGIC: u32 = 0x184d2a50;
const MIN_MATCH: usize = 4;
const LAST_LITERALS: usize = 5;
const MF_LIMIT: usize = 12;
const WRITE_BLOCK_SIZE_ID: u32 = 4;
const WRITE_BLOCK_BYTES: usize = <usize>1 << (8 + 2 * WRITE_BLOCK_SIZE_ID);
const MAX_DISTANCE: u32 = 65535;
const FLG_WRITTEN: u8 = 0x60;
const BD_WRITTEN: u8 = <u8>(WRITE_BLOCK_SIZE_ID << 4);

// Hash table: 2^HASH_LOG u32 absolute positions (16 KiB, stays in L1), keyed by a hash of the
// 5 bytes at a position (the reference's choice for large inputs: on sensor JSON it finds
// longer matches than hashing 4 — 7-9 % better ratio at the same speed). Entries
// are never cleared: a candidate is used only if it lies inside the current block, before the
// current position, and its 4 bytes compare equal, so a stale entry can cost a miss but never
// produce a wrong match.
const HASH_LOG: u32 = 12;
const HASH_TABLE: usize = memory.data(4 << HASH_LOG, 64);
// Search acceleration: after 2^SKIP_TRIGGER misses the search stride grows by one (the
// reference uses 6; 5 measured 40 % faster on incompressible input at the same ratio on JSON).
const SKIP_TRIGGER: u32 = 5;

// Status codes (negative returns). The host turns each into a message naming the fault and
// the input byte where it was found (lz4ErrorOffset).
export const LZ4_ERR_TRUNCATED: i32 = -1;
export const LZ4_ERR_BAD_MAGIC: i32 = -2;
export const LZ4_ERR_BAD_VERSION: i32 = -3;
export const LZ4_ERR_RESERVED_BITS: i32 = -4;
export const LZ4_ERR_BLOCK_SIZE_ID: i32 = -5;
export const LZ4_ERR_HEADER_CHECKSUM: i32 = -6;
export const LZ4_ERR_DICTIONARY: i32 = -7;
export const LZ4_ERR_BLOCK_TOO_LARGE: i32 = -8;
export const LZ4_ERR_BLOCK_CHECKSUM: i32 = -9;
export const LZ4_ERR_CONTENT_CHECKSUM: i32 = -10;
export const LZ4_ERR_CONTENT_SIZE: i32 = -11;
export const LZ4_ERR_BAD_OFFSET: i32 = -12;
export const LZ4_ERR_OUTPUT_LIMIT: i32 = -13;
export const LZ4_ERR_BLOCK_OVERFLOW: i32 = -14;
export const LZ4_ERR_EMPTY: i32 = -15;

let errorAt: usize = 0;

/** Input byte offset where the last decode error was detected. */
export function lz4ErrorOffset(): u32 {
  return <u32>errorAt;
}

// @ts-ignore: decorator
@inline function hashAt(p: usize): usize {
  // Low 5 bytes of the u64 at p (shifted to the top), times a 64-bit odd constant, top bits.
  return <usize>(((load<u64>(p) << 24) * 889523592379) >> (64 - HASH_LOG));
}

// @ts-ignore: decorator
@inline function writeLength(op: usize, extra: usize): usize {
  while (extra >= 255) {
    store<u8>(op++, 255);
    extra -= 255;
  }
  store<u8>(op++, <u8>extra);
  return op;
}

/**
 * Compresses one independent block (len <= 64 KiB) into dst; returns the compressed length
 * (with `giveUp`, returns `len` as soon as the block cannot come out smaller than its input).
 * dst needs len + len/255 + 16 bytes plus the copy margin.
 */
function compressBlock(src: usize, len: usize, dst: usize, giveUp: bool): usize {
  const iend = src + len;
  let op = dst;
  let anchor = src;
  if (len >= MF_LIMIT + 1) {
    const mfLimitPlusOne = iend - MF_LIMIT + 1;
    const matchLimit = iend - LAST_LITERALS;
    let ip = src;
    store<u32>(HASH_TABLE + (hashAt(ip) << 2), <u32>ip);
    ip++;
    let forwardHash = hashAt(ip);
    while (true) {
      // Find a match: greedy, stride grows with consecutive misses.
      let match: usize = 0;
      let forwardIp = ip;
      let step: usize = 1;
      let searchCount: u32 = 1 << SKIP_TRIGGER;
      do {
        const h = forwardHash;
        ip = forwardIp;
        forwardIp += step;
        step = <usize>(searchCount++ >> SKIP_TRIGGER);
        if (forwardIp > mfLimitPlusOne) break;
        match = <usize>load<u32>(HASH_TABLE + (h << 2));
        forwardHash = hashAt(forwardIp);
        store<u32>(HASH_TABLE + (h << 2), <u32>ip);
        if (<u32>(ip - match - 1) < MAX_DISTANCE && match >= src && load<u32>(match) == load<u32>(ip)) break;
        match = 0;
      } while (true);
      if (match == 0) break;

      // Extend backwards over equal bytes not yet emitted.
      while (ip > anchor && match > src && load<u8>(ip - 1) == load<u8>(match - 1)) {
        ip--;
        match--;
      }

      // Literals.
      const litLen = ip - anchor;
      let token = op++;
      if (litLen >= 15) {
        store<u8>(token, 15 << 4);
        op = writeLength(op, litLen - 15);
      } else {
        store<u8>(token, <u8>(litLen << 4));
      }
      if (litLen > 0) wildCopy(op, anchor, litLen);
      op += litLen;

      // Match (and immediate follow-on matches with no literals between them).
      let atEnd = false;
      while (true) {
        store<u16>(op, <u16>(ip - match));
        op += 2;
        const extra = countEqual(ip + MIN_MATCH, match + MIN_MATCH, matchLimit);
        ip += MIN_MATCH + extra;
        if (extra >= 15) {
          store<u8>(token, load<u8>(token) | 15);
          op = writeLength(op, extra - 15);
        } else {
          store<u8>(token, load<u8>(token) | <u8>extra);
        }
        anchor = ip;
        if (ip >= mfLimitPlusOne) {
          atEnd = true;
          break;
        }
        // Index a position inside the match, then test the next position right away.
        const back = ip - 2;
        store<u32>(HASH_TABLE + (hashAt(back) << 2), <u32>back);
        const h = hashAt(ip);
        match = <usize>load<u32>(HASH_TABLE + (h << 2));
        store<u32>(HASH_TABLE + (h << 2), <u32>ip);
        if (<u32>(ip - match - 1) < MAX_DISTANCE && match >= src && load<u32>(match) == load<u32>(ip)) {
          token = op++;
          store<u8>(token, 0);
          continue;
        }
        break;
      }
      if (atEnd) break;
      ip++;
      forwardHash = hashAt(ip);
    }
  }
  // Last literals. If they would make the block no smaller than its input, stop here: the
  // caller stores the block raw (saves copying incompressible input twice).
  const lastLen = iend - anchor;
  if (giveUp && op - dst + lastLen + 1 >= len) return len;
  if (lastLen >= 15) {
    store<u8>(op++, 15 << 4);
    op = writeLength(op, lastLen - 15);
  } else {
    store<u8>(op++, <u8>(lastLen << 4));
  }
  if (lastLen > 0) wildCopy(op, anchor, lastLen);
  op += lastLen;
  return op - dst;
}

/** Largest frame lz4FrameCompress can write for `len` input bytes (copy margin not included). */
export function lz4FrameCompressBound(len: u32): u32 {
  const blocks = (len + <u32>WRITE_BLOCK_BYTES - 1) / <u32>WRITE_BLOCK_BYTES;
  return 7 + 4 + blocks * (4 + <u32>WRITE_BLOCK_BYTES + <u32>WRITE_BLOCK_BYTES / 255 + 16);
}

/** Compresses `len` bytes at `src` into one Kafka-style LZ4 frame at `dst`; returns its length. */
export function lz4FrameCompress(src: usize, len: u32, dst: usize): u32 {
  store<u32>(dst, MAGIC);
  store<u8>(dst + 4, FLG_WRITTEN);
  store<u8>(dst + 5, BD_WRITTEN);
  store<u8>(dst + 6, <u8>(xxhash32(dst + 4, 2, 0) >> 8));
  let op = dst + 7;
  let ip = src;
  const iend = src + <usize>len;
  while (ip < iend) {
    const blockLen = min<usize>(iend - ip, WRITE_BLOCK_BYTES);
    const packed = compressBlock(ip, blockLen, op + 4, true);
    if (packed < blockLen) {
      store<u32>(op, <u32>packed);
      op += 4 + packed;
    } else {
      store<u32>(op, <u32>blockLen | 0x80000000);
      wildCopy(op + 4, ip, blockLen);
      op += 4 + blockLen;
    }
    ip += blockLen;
  }
  store<u32>(op, 0);
  op += 4;
  return <u32>(op - dst);
}

/** Compresses `len` bytes at `src` as one raw LZ4 block (no frame) at `dst`; for tests against block-format peers. */
export function lz4BlockCompress(src: usize, len: u32, dst: usize): u32 {
  // Blocks longer than 64 KiB would need offsets the hash-window check does not allow for.
  if (<usize>len > WRITE_BLOCK_BYTES) return 0;
  return <u32>compressBlock(src, <usize>len, dst, false);
}

/**
 * Decodes one block from [ip, iend) to op, never writing a byte past `oend` (logical) nor
 * referring before `low`. Returns the new output pointer, or a negative status.
 */
function decodeBlock(src: usize, ip: usize, iend: usize, low: usize, op: usize, oend: usize): isize {
  while (true) {
    if (ip >= iend) {
      errorAt = ip - src;
      return LZ4_ERR_TRUNCATED;
    }
    const token = <usize>load<u8>(ip++);
    let litLen = token >> 4;
    // Shortcut for the common sequence (short literals, short match) far from both ends:
    // one 16-byte literal copy and two 16-byte match copies, all inside the checked room.
    const roomy = litLen < 15 && iend - ip >= 32 && oend - op >= 32;
    if (roomy) {
      v128.store(op, v128.load(ip));
      op += litLen;
      ip += litLen;
    } else {
      if (litLen == 15) {
        let b: usize;
        do {
          if (ip >= iend) {
            errorAt = ip - src;
            return LZ4_ERR_TRUNCATED;
          }
          b = <usize>load<u8>(ip++);
          litLen += b;
          if (litLen > iend - ip) {
            errorAt = ip - src;
            return LZ4_ERR_TRUNCATED;
          }
        } while (b == 255);
      }
      if (litLen > iend - ip) {
        errorAt = ip - src;
        return LZ4_ERR_TRUNCATED;
      }
      if (litLen > oend - op) {
        errorAt = ip - src;
        return LZ4_ERR_OUTPUT_LIMIT;
      }
      if (litLen != 0) {
        wildCopy(op, ip, litLen);
        op += litLen;
        ip += litLen;
      }
      if (ip == iend) return <isize>op;
      if (iend - ip < 2) {
        errorAt = ip - src;
        return LZ4_ERR_TRUNCATED;
      }
    }
    const offset = <usize>load<u16>(ip);
    if (offset == 0 || offset > op - low) {
      errorAt = ip - src;
      return LZ4_ERR_BAD_OFFSET;
    }
    ip += 2;
    let matchLen = token & 15;
    if (roomy && matchLen != 15 && offset >= 16) {
      // matchLen + 4 <= 18 and at least 18 bytes of room remain after the literals.
      const m = op - offset;
      v128.store(op, v128.load(m));
      v128.store(op + 16, v128.load(m + 16));
      op += matchLen + MIN_MATCH;
      continue;
    }
    if (matchLen == 15) {
      let b: usize;
      do {
        if (ip >= iend) {
          errorAt = ip - src;
          return LZ4_ERR_TRUNCATED;
        }
        b = <usize>load<u8>(ip++);
        matchLen += b;
        if (matchLen > oend - op) {
          errorAt = ip - src;
          return LZ4_ERR_OUTPUT_LIMIT;
        }
      } while (b == 255);
    }
    matchLen += MIN_MATCH;
    if (matchLen > oend - op) {
      errorAt = ip - src;
      return LZ4_ERR_OUTPUT_LIMIT;
    }
    matchCopy(op, offset, matchLen);
    op += matchLen;
  }
  return 0;
}

/**
 * Decodes `len` bytes at `src` (one or more LZ4 frames) into `dst`, writing at most `cap`
 * bytes. Returns the decoded length or a negative status (see LZ4_ERR_*).
 */
export function lz4FrameDecompress(src: usize, len: u32, dst: usize, cap: u32): i32 {
  let ip = src;
  const iend = src + <usize>len;
  let op = dst;
  const oend = dst + <usize>cap;
  errorAt = 0;
  if (len == 0) return LZ4_ERR_EMPTY;
  while (ip < iend) {
    if (iend - ip < 4) {
      errorAt = ip - src;
      return LZ4_ERR_TRUNCATED;
    }
    const magic = load<u32>(ip);
    if ((magic & SKIPPABLE_MASK) == SKIPPABLE_MAGIC) {
      if (iend - ip < 8) {
        errorAt = ip - src;
        return LZ4_ERR_TRUNCATED;
      }
      const skip = <usize>load<u32>(ip, 4);
      if (skip > iend - ip - 8) {
        errorAt = ip - src;
        return LZ4_ERR_TRUNCATED;
      }
      ip += 8 + skip;
      continue;
    }
    if (magic != MAGIC) {
      errorAt = ip - src;
      return LZ4_ERR_BAD_MAGIC;
    }
    if (iend - ip < 7) {
      errorAt = ip - src;
      return LZ4_ERR_TRUNCATED;
    }
    const flg = <u32>load<u8>(ip, 4);
    const bd = <u32>load<u8>(ip, 5);
    if (flg >> 6 != 1) {
      errorAt = ip + 4 - src;
      return LZ4_ERR_BAD_VERSION;
    }
    if ((flg & 0x02) != 0 || (bd & 0x8f) != 0) {
      errorAt = ip + 4 - src;
      return LZ4_ERR_RESERVED_BITS;
    }
    const blockSizeId = (bd >> 4) & 7;
    if (blockSizeId < 4) {
      errorAt = ip + 5 - src;
      return LZ4_ERR_BLOCK_SIZE_ID;
    }
    const blockMax: usize = <usize>1 << (8 + 2 * blockSizeId);
    const independent = (flg & 0x20) != 0;
    const blockChecksum = (flg & 0x10) != 0;
    const hasContentSize = (flg & 0x08) != 0;
    const contentChecksum = (flg & 0x04) != 0;
    const hasDictionary = (flg & 0x01) != 0;
    const descLen: usize = 2 + (hasContentSize ? 8 : 0) + (hasDictionary ? 4 : 0);
    if (iend - ip < 4 + descLen + 1) {
      errorAt = ip - src;
      return LZ4_ERR_TRUNCATED;
    }
    if (<u32>load<u8>(ip + 4 + descLen) != ((xxhash32(ip + 4, descLen, 0) >> 8) & 0xff)) {
      errorAt = ip + 4 + descLen - src;
      return LZ4_ERR_HEADER_CHECKSUM;
    }
    if (hasDictionary) {
      errorAt = ip + 4 - src;
      return LZ4_ERR_DICTIONARY;
    }
    let contentSize: u64 = 0;
    if (hasContentSize) {
      contentSize = load<u64>(ip, 6);
      // Refuse a declared size over the limit before writing anything (decompression bomb).
      if (contentSize > <u64>(oend - op)) {
        errorAt = ip + 6 - src;
        return LZ4_ERR_OUTPUT_LIMIT;
      }
    }
    ip += 4 + descLen + 1;
    const frameStart = op;
    while (true) {
      if (iend - ip < 4) {
        errorAt = ip - src;
        return LZ4_ERR_TRUNCATED;
      }
      const word = load<u32>(ip);
      ip += 4;
      if (word == 0) break;
      const stored = (word & 0x80000000) != 0;
      const blockLen = <usize>(word & 0x7fffffff);
      if (blockLen > blockMax) {
        errorAt = ip - 4 - src;
        return LZ4_ERR_BLOCK_TOO_LARGE;
      }
      if (blockLen > iend - ip || (blockChecksum && iend - ip - blockLen < 4)) {
        errorAt = ip - 4 - src;
        return LZ4_ERR_TRUNCATED;
      }
      if (blockChecksum && xxhash32(ip, blockLen, 0) != load<u32>(ip + blockLen)) {
        errorAt = ip + blockLen - src;
        return LZ4_ERR_BLOCK_CHECKSUM;
      }
      if (stored) {
        if (blockLen > oend - op) {
          errorAt = ip - src;
          return LZ4_ERR_OUTPUT_LIMIT;
        }
        memory.copy(op, ip, blockLen);
        op += blockLen;
      } else {
        const blockLimited = blockMax < oend - op;
        const blockEnd = blockLimited ? op + blockMax : oend;
        const r = decodeBlock(src, ip, ip + blockLen, independent ? op : frameStart, op, blockEnd);
        if (r < 0) {
          if (r == LZ4_ERR_OUTPUT_LIMIT && blockLimited) return LZ4_ERR_BLOCK_OVERFLOW;
          return <i32>r;
        }
        op = <usize>r;
      }
      ip += blockLen + (blockChecksum ? 4 : 0);
    }
    if (contentChecksum) {
      if (iend - ip < 4) {
        errorAt = ip - src;
        return LZ4_ERR_TRUNCATED;
      }
      if (xxhash32(frameStart, op - frameStart, 0) != load<u32>(ip)) {
        errorAt = ip - src;
        return LZ4_ERR_CONTENT_CHECKSUM;
      }
      ip += 4;
    }
    if (hasContentSize && <u64>(op - frameStart) != contentSize) {
      errorAt = ip - src;
      return LZ4_ERR_CONTENT_SIZE;
    }
  }
  return <i32>(op - dst);
}

/** Decodes one raw LZ4 block (no frame) into at most `cap` bytes; for tests against block-format peers. */
export function lz4BlockDecompress(src: usize, len: u32, dst: usize, cap: u32): i32 {
  errorAt = 0;
  const r = decodeBlock(src, src, src + <usize>len, dst, dst, dst + <usize>cap);
  return r < 0 ? <i32>r : <i32>(<usize>r - dst);
}
