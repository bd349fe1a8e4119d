// Snappy compression for Kafka batches (compression.type=snappy), over the wasm core
// (assembly/snappy.ts documents the raw block format and the xerial framing).
//
// Written: xerial framing as snappy-java's SnappyOutputStream (Kafka's Java producer) writes
// it — magic 0x82 'SNAPPY' 0x00, version 1, compatible version 1, then [i32 BE length][raw
// snappy block] chunks of at most 32 KiB uncompressed. Read: xerial framing or one raw block,
// told apart by the magic, as snappy-java and kafkajs consumers do.
// Errors: BrokerError('CORRUPT_MESSAGE') for malformed input and for output that would pass
// maxOutBytes (refused from the declared lengths before anything is written);
// BrokerError('MESSAGE_TOO_LARGE') when input plus output cannot fit the core's scratch memory.
import { BrokerError } from '../errors/index.js';
import { core } from './wasm.js';
import { layoutRegions, regions, checkMaxOut, copyOut, viewOut, tooLarge, outputTooLarge } from './codec-regions.js';

const CODEC = 'snappy';

// The core's entry points, looked up once (this is the per-batch hot path).
type Fn3 = (a: number, b: number, c: number) => number;
type Fn4 = (a: number, b: number, c: number, d: number) => number;
const xerialCompress = core.snappyXerialCompress as Fn3;
const rawCompress = core.snappyRawCompress as Fn3;
const anyDecompress = core.snappyDecompress as Fn4;
const rawDecompress = core.snappyRawDecompress as Fn4;
const errorOffset = core.snappyErrorOffset as () => number;

const XERIAL_CHUNK_BYTES = 32768;

/** Largest raw block snappyRawCompress writes for `len` bytes (the core's snappyRawCompressBound). */
export function snappyRawCompressBound(len: number): number {
  return 32 + len + Math.floor(len / 6);
}

/** Largest xerial stream snappyCompress writes for `len` bytes (the core's snappyXerialCompressBound). */
export function snappyXerialCompressBound(len: number): number {
  return 16 + Math.ceil(len / XERIAL_CHUNK_BYTES) * (4 + snappyRawCompressBound(XERIAL_CHUNK_BYTES));
}

const SNAPPY_FAULTS: Record<number, string> = {
  [-1]: 'input ends inside an element, a chunk or the length preamble',
  [-2]: 'malformed uncompressed-length preamble (varint longer than 5 bytes or over 2^32-1)',
  [-4]: 'copy offset is zero or reaches before the start of the output',
  [-5]: 'elements do not produce exactly the declared uncompressed length',
  [-6]: 'xerial chunk length is zero or negative',
  [-7]: 'empty input (no snappy data)',
};
const ERR_OUTPUT_LIMIT = -3;

function fault(status: number, maxOutBytes: number, room: number): BrokerError {
  const at = errorOffset();
  if (status === ERR_OUTPUT_LIMIT) {
    if (room < maxOutBytes) return outputTooLarge(CODEC, room);
    return new BrokerError('CORRUPT_MESSAGE', `snappy: declared uncompressed length exceeds maxOutBytes (${maxOutBytes}) (at input byte ${at})`);
  }
  return new BrokerError('CORRUPT_MESSAGE', `snappy: ${SNAPPY_FAULTS[status] ?? `status ${status}`} (at input byte ${at})`);
}

// Each entry point calls its core function directly (one call site per core function keeps the
// JS-to-wasm call monomorphic, which V8 makes markedly cheaper than a call through a variable).

/** Compresses `src` in xerial framing (snappy-java SnappyOutputStream), 32 KiB chunks. */
export function snappyCompress(src: Uint8Array): Uint8Array {
  layoutRegions(src, CODEC);
  const bound = snappyXerialCompressBound(src.byteLength);
  if (bound > regions.dstRoom) throw tooLarge(CODEC, src.byteLength + bound);
  const written = xerialCompress(regions.srcPtr, src.byteLength, regions.dstPtr);
  return copyOut(regions.dstPtr, written);
}

/** Decodes into the output region; returns the decoded length (the bytes start at regions.dstPtr). */
function decompressAny(src: Uint8Array, maxOutBytes: number): number {
  checkMaxOut(maxOutBytes);
  layoutRegions(src, CODEC);
  const room = regions.dstRoom;
  const n = anyDecompress(regions.srcPtr, src.byteLength, regions.dstPtr, maxOutBytes < room ? maxOutBytes : room);
  if (n < 0) throw fault(n, maxOutBytes, room);
  return n;
}

/** Decodes xerial-framed or raw snappy (auto-detected by the xerial magic). */
export function snappyDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array {
  // Decode first: decompressAny lays out this call's regions.
  const n = decompressAny(src, maxOutBytes);
  return copyOut(regions.dstPtr, n);
}

/**
 * As snappyDecompress, but returns a view of wasm memory instead of a copy: valid only until
 * the next call into the core (use it at once, e.g. to walk the records in place).
 */
export function snappyDecompressView(src: Uint8Array, maxOutBytes: number): Uint8Array {
  const n = decompressAny(src, maxOutBytes);
  return viewOut(regions.dstPtr, n);
}

/** Compresses `src` as one raw snappy block. */
export function snappyRawCompress(src: Uint8Array): Uint8Array {
  layoutRegions(src, CODEC);
  const bound = snappyRawCompressBound(src.byteLength);
  if (bound > regions.dstRoom) throw tooLarge(CODEC, src.byteLength + bound);
  const written = rawCompress(regions.srcPtr, src.byteLength, regions.dstPtr);
  return copyOut(regions.dstPtr, written);
}

/** Decodes one raw snappy block (no xerial detection). */
export function snappyRawDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array {
  checkMaxOut(maxOutBytes);
  layoutRegions(src, CODEC);
  const room = regions.dstRoom;
  const n = rawDecompress(regions.srcPtr, src.byteLength, regions.dstPtr, maxOutBytes < room ? maxOutBytes : room);
  if (n < 0) throw fault(n, maxOutBytes, room);
  return copyOut(regions.dstPtr, n);
}
