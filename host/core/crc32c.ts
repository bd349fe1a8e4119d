// CRC-32C through the wasm core. Input is copied into wasm scratch memory once (in pieces
// of at most CRC_CHUNK_BYTES, carrying the register across pieces, so any length works).
import { core, memU8, heapBase, scratchBytes } from './wasm.js';

const crc32cUpdate = core.crc32cUpdate as (crc: number, ptr: number, len: number) => number;

/** Largest piece copied into wasm per call: 4 MiB stays in cache-friendly territory and well inside scratch. */
export const CRC_CHUNK_BYTES = Math.min(4 << 20, scratchBytes);

/** Raw (uninverted) register over buf[start, end); the building block for everything below. */
export function crc32cUpdateRange(crc: number, buf: Uint8Array, start: number, end: number): number {
  let c = crc;
  let p = start;
  while (p < end) {
    const n = Math.min(end - p, CRC_CHUNK_BYTES);
    memU8.set(n === buf.byteLength ? buf : buf.subarray(p, p + n), heapBase);
    c = crc32cUpdate(c, heapBase, n);
    p += n;
  }
  return c >>> 0;
}

/** CRC-32C of buf[start, end), unsigned. */
export function crc32cRange(buf: Uint8Array, start: number, end: number): number {
  return ~crc32cUpdateRange(0xffffffff, buf, start, end) >>> 0;
}

/** CRC-32C (Castagnoli) of `data`, unsigned 32-bit. */
export function crc32c(data: Uint8Array): number {
  return ~crc32cUpdateRange(0xffffffff, data, 0, data.byteLength) >>> 0;
}

/** CRC-32C of bytes already in wasm memory at [ptr, ptr+len) (for callers that laid them out). */
export function crc32cInWasm(ptr: number, len: number): number {
  return ~crc32cUpdate(0xffffffff, ptr, len) >>> 0;
}
