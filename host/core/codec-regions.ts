// Scratch layout for one codec call (LZ4, Snappy) in wasm memory, shared by lz4.ts and snappy.ts.
//
//   heapBase ─┬─ input (copied in, unless it already is a view into wasm memory) ─ 64-byte margin
//             └─ output (aligned to 64) ─────────────────────────────────────────── 64-byte margin
//
// The margins exist because the codecs copy in 16-byte strides: they may read up to 15 bytes
// past the end of the input and write up to 15 bytes past the end of the output (see
// assembly/codec-helper.ts); every length is still checked against the logical ends.
// Regions live only for the synchronous call that laid them out: a codec call may overwrite
// any scratch memory above its input.
import { BrokerError } from '../errors/index.js';
import { memU8, heapBase } from './wasm.js';

/** Spare bytes after each region (must be >= COPY_MARGIN in assembly/codec-helper.ts). */
export const REGION_MARGIN_BYTES = 64;
const memoryEnd = memU8.byteLength;

const memoryBuffer = memU8.buffer;
const align64 = (n: number): number => (n + 63) & ~63;

/**
 * The regions of the current call, set by layoutRegions (module state rather than a returned
 * object: this runs once per batch on the hot path, and JavaScript runs one call at a time).
 */
export const regions = {
  /** Where the input sits in wasm memory. */
  srcPtr: 0,
  /** First byte of the output region. */
  dstPtr: 0,
  /** Bytes the output region can hold (margin excluded). */
  dstRoom: 0,
};

/**
 * Places `src` in wasm memory (in place when it already is a view of it, else one copy at
 * heapBase) and sets `regions` to it and the output region that follows it.
 */
export function layoutRegions(src: Uint8Array, codec: string): void {
  const len = src.byteLength;
  let srcPtr: number;
  if (src.buffer === memoryBuffer && src.byteOffset >= heapBase) {
    srcPtr = src.byteOffset;
  } else {
    srcPtr = heapBase;
    if (srcPtr + len + REGION_MARGIN_BYTES > memoryEnd) throw tooLarge(codec, len);
    memU8.set(src, srcPtr);
  }
  const dstPtr = align64(srcPtr + len + REGION_MARGIN_BYTES);
  const dstRoom = memoryEnd - REGION_MARGIN_BYTES - dstPtr;
  if (dstRoom < 0) throw tooLarge(codec, len);
  regions.srcPtr = srcPtr;
  regions.dstPtr = dstPtr;
  regions.dstRoom = dstRoom;
}

/** Largest input + output a single codec call can hold (the wasm core's scratch memory). */
export const codecScratchBytes = memoryEnd - heapBase - 2 * REGION_MARGIN_BYTES - 64;

export function tooLarge(codec: string, bytes: number): BrokerError {
  return new BrokerError(
    'MESSAGE_TOO_LARGE',
    `${codec}: ${bytes} bytes do not fit the wasm core's scratch memory (input plus output at most ${codecScratchBytes} bytes)`,
  );
}

/** The output would not fit the scratch memory left after the input (only when maxOutBytes exceeds it). */
export function outputTooLarge(codec: string, roomBytes: number): BrokerError {
  return new BrokerError(
    'MESSAGE_TOO_LARGE',
    `${codec}: decompressed output exceeds the ${roomBytes} bytes of wasm core scratch memory left after the input`,
  );
}

export function checkMaxOut(maxOutBytes: number): void {
  if (!Number.isSafeInteger(maxOutBytes) || maxOutBytes < 0) throw new RangeError(`maxOutBytes must be a non-negative integer, got ${maxOutBytes}`);
}

/**
 * A view of wasm memory (no copy). Valid only until the next call into the core: the next
 * codec or batch call may overwrite it. For callers that consume the bytes at once (e.g.
 * walking the decompressed records of a batch in the core) and must not pay for a copy.
 */
export function viewOut(ptr: number, len: number): Uint8Array {
  return memU8.subarray(ptr, ptr + len);
}

/** One copy out of wasm memory into a fresh array the caller owns. */
export function copyOut(ptr: number, len: number): Uint8Array {
  // new + set measured 2-4x faster than memU8.slice() for MiB-sized results on Node 20.
  const out = new Uint8Array(len);
  out.set(memU8.subarray(ptr, ptr + len));
  return out;
}
