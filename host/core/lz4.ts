// LZ4 frame compression for Kafka batches (compression.type=lz4), over the wasm core
// (assembly/lz4.ts, which documents the byte layout and what is written and accepted).
//
// Written: exactly what Kafka's Java producer writes — LZ4 frame version 01, independent
// 64 KiB blocks, header checksum per KIP-57, no block/content checksums, no content size.
// Read: any valid LZ4 frame (dependent or independent blocks, any block size, checksums
// verified when present, content size checked, skippable and concatenated frames).
// Errors: BrokerError('CORRUPT_MESSAGE') for malformed input and for output that would pass
// maxOutBytes (refused before a byte past the bound is written); BrokerError('MESSAGE_TOO_LARGE')
// when input plus output cannot fit the core's scratch memory.
import { BrokerError } from '../errors/index.js';
import { core } from './wasm.js';
import { layoutRegions, regions, checkMaxOut, copyOut, viewOut, tooLarge, outputTooLarge } from './codec-regions.js';

const CODEC = 'lz4';

// The core's entry points, looked up once (this is the per-batch hot path).
type Fn3 = (a: number, b: number, c: number) => number;
type Fn4 = (a: number, b: number, c: number, d: number) => number;
const frameCompress = core.lz4FrameCompress as Fn3;
const frameDecompress = core.lz4FrameDecompress as Fn4;
const blockCompress = core.lz4BlockCompress as Fn3;
const blockDecompress = core.lz4BlockDecompress as Fn4;
const errorOffset = core.lz4ErrorOffset as () => number;
const xxh32 = core.xxhash32 as Fn3;

const BLOCK_BYTES = 65536;

/** Largest frame lz4FrameCompress writes for `len` bytes (same formula as the core's lz4FrameCompressBound). */
export function lz4FrameCompressBound(len: number): number {
  return 11 + Math.ceil(len / BLOCK_BYTES) * (4 + BLOCK_BYTES + Math.floor(BLOCK_BYTES / 255) + 16);
}

// Status codes of assembly/lz4.ts → what is wrong.
const LZ4_FAULTS: Record<number, string> = {
  [-1]: 'input ends inside the frame (truncated header, block, literal run or match)',
  [-2]: 'bad magic number (expected 0x184D2204 or a skippable frame)',
  [-3]: 'unsupported frame version (FLG bits 7-6 must be 01)',
  [-4]: 'reserved bits set in the frame descriptor',
  [-5]: 'invalid block maximum size id (BD bits 6-4 must be 4..7)',
  [-6]: 'frame header checksum mismatch (xxh32 of the descriptor, KIP-57)',
  [-7]: 'preset dictionaries are not supported',
  [-8]: 'block size larger than the frame\'s block maximum size',
  [-9]: 'block checksum mismatch',
  [-10]: 'content checksum mismatch',
  [-11]: 'decoded length differs from the frame\'s declared content size',
  [-12]: 'match offset is zero or reaches before the start of the output',
  [-14]: 'block decodes to more than the frame\'s block maximum size',
  [-15]: 'empty input (no frame)',
};
const ERR_OUTPUT_LIMIT = -13;

function fault(status: number, maxOutBytes: number, room: number): BrokerError {
  const at = errorOffset();
  if (status === ERR_OUTPUT_LIMIT) {
    if (room < maxOutBytes) return outputTooLarge(CODEC, room);
    return new BrokerError('CORRUPT_MESSAGE', `lz4: frame decompresses to more than maxOutBytes (${maxOutBytes}) (refused at input byte ${at})`);
  }
  return new BrokerError('CORRUPT_MESSAGE', `lz4: ${LZ4_FAULTS[status] ?? `status ${status}`} (at input byte ${at})`);
}

/** Compresses `src` into one LZ4 frame (version 01, independent 64 KiB blocks, KIP-57 header checksum). */
export function lz4FrameCompress(src: Uint8Array): Uint8Array {
  layoutRegions(src, CODEC);
  const bound = lz4FrameCompressBound(src.byteLength);
  if (bound > regions.dstRoom) throw tooLarge(CODEC, src.byteLength + bound);
  const written = frameCompress(regions.srcPtr, src.byteLength, regions.dstPtr);
  return copyOut(regions.dstPtr, written);
}

/** Decodes into the output region; returns the decoded length (the bytes start at regions.dstPtr). */
function decompressToRegion(src: Uint8Array, maxOutBytes: number): number {
  checkMaxOut(maxOutBytes);
  layoutRegions(src, CODEC);
  const room = regions.dstRoom;
  const n = frameDecompress(regions.srcPtr, src.byteLength, regions.dstPtr, maxOutBytes < room ? maxOutBytes : room);
  if (n < 0) throw fault(n, maxOutBytes, room);
  return n;
}

/** Decodes LZ4 frame(s); throws BrokerError('CORRUPT_MESSAGE') on malformed input or output over maxOutBytes. */
export function lz4FrameDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array {
  const n = decompressToRegion(src, maxOutBytes);
  return copyOut(regions.dstPtr, n);
}

/**
 * As lz4FrameDecompress, but returns a view of wasm memory instead of a copy: valid only until
 * the next call into the core (use it at once, e.g. to walk the records in place).
 */
export function lz4FrameDecompressView(src: Uint8Array, maxOutBytes: number): Uint8Array {
  const n = decompressToRegion(src, maxOutBytes);
  return viewOut(regions.dstPtr, n);
}

/** One raw LZ4 block (no frame) of at most 64 KiB input: for cross-checks with block-format peers. */
export function lz4BlockCompress(src: Uint8Array): Uint8Array {
  if (src.byteLength > BLOCK_BYTES) throw new RangeError('lz4BlockCompress takes at most 64 KiB');
  layoutRegions(src, CODEC);
  if (src.byteLength + (src.byteLength >> 8) + 32 > regions.dstRoom) throw tooLarge(CODEC, src.byteLength);
  const written = blockCompress(regions.srcPtr, src.byteLength, regions.dstPtr);
  return copyOut(regions.dstPtr, written);
}

/** Decodes one raw LZ4 block (no frame) into at most maxOutBytes. */
export function lz4BlockDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array {
  checkMaxOut(maxOutBytes);
  layoutRegions(src, CODEC);
  const room = regions.dstRoom;
  const n = blockDecompress(regions.srcPtr, src.byteLength, regions.dstPtr, maxOutBytes < room ? maxOutBytes : room);
  if (n < 0) throw fault(n, maxOutBytes, room);
  return copyOut(regions.dstPtr, n);
}

/** xxHash32 of `src` with `seed` (the LZ4 frame checksum), computed in the core. */
export function xxhash32(src: Uint8Array, seed = 0): number {
  layoutRegions(src, 'xxhash32');
  return xxh32(regions.srcPtr, src.byteLength, seed) >>> 0;
}
