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
import { layoutRegions, checkMaxOut, copyOut, viewOut, tooLarge, outputTooLarge } from './codec-regions.js';

const CODEC = 'snappy';

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
  const at = core.snappyErrorOffset() as number;
  if (status === ERR_OUTPUT_LIMIT) {
    if (room < maxOutBytes) return outputTooLarge(CODEC, room);
    return new BrokerError('CORRUPT_MESSAGE', `snappy: declared uncompressed length exceeds maxOutBytes (${maxOutBytes}) (at input byte ${at})`);
  }
  return new BrokerError('CORRUPT_MESSAGE', `snappy: ${SNAPPY_FAULTS[status] ?? `status ${status}`} (at input byte ${at})`);
}

/** Compresses `src` in xerial framing (snappy-java SnappyOutputStream), 32 KiB chunks. */
export function snappyCompress(src: Uint8Array): Uint8Array {
  const { srcPtr, dstPtr, dstRoom } = layoutRegions(src, CODEC);
  const bound = core.snappyXerialCompressBound(src.byteLength) as number;
  if (bound > dstRoom) throw tooLarge(CODEC, src.byteLength + bound);
  const written = core.snappyXerialCompress(srcPtr, src.byteLength, dstPtr) as number;
  return copyOut(dstPtr, written);
}

function decompressAny(src: Uint8Array, maxOutBytes: number): { ptr: number; length: number } {
  checkMaxOut(maxOutBytes);
  const { srcPtr, dstPtr, dstRoom } = layoutRegions(src, CODEC);
  const cap = Math.min(maxOutBytes, dstRoom);
  const n = core.snappyDecompress(srcPtr, src.byteLength, dstPtr, cap) as number;
  if (n < 0) throw fault(n, maxOutBytes, dstRoom);
  return { ptr: dstPtr, length: n };
}

/** Decodes xerial-framed or raw snappy (auto-detected by the xerial magic). */
export function snappyDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array {
  const out = decompressAny(src, maxOutBytes);
  return copyOut(out.ptr, out.length);
}

/**
 * As snappyDecompress, but returns a view of wasm memory instead of a copy: valid only until
 * the next call into the core (use it at once, e.g. to walk the records in place).
 */
export function snappyDecompressView(src: Uint8Array, maxOutBytes: number): Uint8Array {
  const out = decompressAny(src, maxOutBytes);
  return viewOut(out.ptr, out.length);
}

/** Compresses `src` as one raw snappy block. */
export function snappyRawCompress(src: Uint8Array): Uint8Array {
  const { srcPtr, dstPtr, dstRoom } = layoutRegions(src, CODEC);
  const bound = core.snappyRawCompressBound(src.byteLength) as number;
  if (bound > dstRoom) throw tooLarge(CODEC, src.byteLength + bound);
  const written = core.snappyRawCompress(srcPtr, src.byteLength, dstPtr) as number;
  return copyOut(dstPtr, written);
}

/** Decodes one raw snappy block (no xerial detection). */
export function snappyRawDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array {
  checkMaxOut(maxOutBytes);
  const { srcPtr, dstPtr, dstRoom } = layoutRegions(src, CODEC);
  const cap = Math.min(maxOutBytes, dstRoom);
  const n = core.snappyRawDecompress(srcPtr, src.byteLength, dstPtr, cap) as number;
  if (n < 0) throw fault(n, maxOutBytes, dstRoom);
  return copyOut(dstPtr, n);
}
