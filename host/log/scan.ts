// Walks the batches of a segment file from a position, reading it in large chunks (one read
// per chunk, not per header), optionally recomputing each batch's CRC. Used by recovery (CRC
// on), index rebuilds and producer-state replay (headers only), and verification of old
// segments on first read (CRC on).
import { preadFull } from './io.js';
import { probeBatch, viewOf, type BatchDefect, type BatchHeader } from './batch.js';

export interface ScanOptions {
  checkCrc: boolean;
  /** Largest batch considered sane; a longer length field is a defect. */
  maxBatchBytes: number;
  /** Bytes read per chunk. */
  chunkBytes?: number;
  /** Awaited after each chunk's batches were handed out (lets a caller write what it produced). */
  onChunkEnd?: () => Promise<void>;
}

export interface ScanResult {
  /** Position after the last valid batch (the readable / recoverable end). */
  validEnd: number;
  /** Set when the scan stopped before `end` on damaged bytes. */
  defect?: { kind: BatchDefect; position: number };
  batches: number;
}

const DEFAULT_CHUNK_BYTES = 4 << 20;

/**
 * Calls `onBatch(header, position)` for every valid batch in [start, end). Stops at the first
 * defect: a header cut short by `end`, an impossible length, a wrong magic or (with checkCrc)
 * a CRC mismatch.
 */
export async function scanBatches(
  fd: number,
  start: number,
  end: number,
  options: ScanOptions,
  onBatch: (h: BatchHeader, position: number, chunk: Uint8Array, offsetInChunk: number) => void,
): Promise<ScanResult> {
  const chunkBytes = Math.max(options.chunkBytes ?? DEFAULT_CHUNK_BYTES, 64);
  let chunk = Buffer.allocUnsafe(Math.min(chunkBytes, Math.max(end - start, 64)));
  let pos = start;
  let batches = 0;
  while (pos < end) {
    const want = Math.min(chunk.byteLength, end - pos);
    const got = await preadFull(fd, chunk, 0, want, pos);
    const buf = chunk.subarray(0, got);
    const view = viewOf(buf);
    let at = 0;
    for (;;) {
      const probe = probeBatch(view, buf, at, options.maxBatchBytes, options.checkCrc);
      if (probe.defect === undefined) {
        onBatch(probe.header!, pos + at, buf, at);
        batches++;
        at += probe.header!.totalBytes;
        continue;
      }
      const fileLeft = end - (pos + at);
      if (probe.defect === 'short-header' && fileLeft >= 61 && at > 0) break; // header straddles chunks
      if (probe.defect === 'short-batch' && probe.header!.totalBytes <= fileLeft) {
        if (at > 0) break; // read the next chunk from this batch
        // a single batch bigger than the chunk: grow the chunk to fit it
        chunk = Buffer.allocUnsafe(probe.header!.totalBytes);
        at = -1;
        break;
      }
      if (fileLeft === 0) {
        if (options.onChunkEnd) await options.onChunkEnd();
        return { validEnd: pos + at, batches };
      }
      if (options.onChunkEnd) await options.onChunkEnd();
      return { validEnd: pos + at, defect: { kind: probe.defect, position: pos + at }, batches };
    }
    if (at > 0) pos += at;
    if (options.onChunkEnd) await options.onChunkEnd();
    if (got < want) return { validEnd: pos, defect: { kind: 'short-header', position: pos }, batches };
  }
  return { validEnd: pos, batches };
}
