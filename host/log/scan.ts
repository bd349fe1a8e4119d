// Walks the batches of a segment file from a position, reading it in large chunks (one read
// per chunk, not per header), optionally recomputing each batch's CRC. Used by recovery (CRC
// on), index rebuilds and producer-state replay (headers only), compaction, and timestamp
// lookups.
//
// Reads are double-buffered: the next chunk is already being read (libuv thread pool) while
// this one's batches are checked on the main thread, so a CRC-bound walk is not also
// read-latency-bound. A batch cut by a chunk boundary is carried to the front of the next
// chunk's buffer (each buffer keeps `carryBytes` of headroom for it); a batch larger than the
// headroom is read on its own.
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

/** Gets each valid batch: its header, its file position, and the buffer holding it (reused: copy what you keep). */
export type OnBatch = (h: BatchHeader, position: number, chunk: Uint8Array, offsetInChunk: number) => void | boolean;

const DEFAULT_CHUNK_BYTES = 4 << 20;
const CARRY_BYTES = 1 << 20;

/**
 * Calls `onBatch(header, position, buffer, offsetInBuffer)` for every valid batch in
 * [start, end) (the buffer is reused: copy what you keep); `onBatch` returning true stops the
 * walk after that batch. Stops at the first defect: a header
 * or batch cut short by `end`, an impossible length, a wrong magic or (with checkCrc) a CRC
 * mismatch.
 */
export async function scanBatches(fd: number, start: number, end: number, options: ScanOptions, onBatch: OnBatch): Promise<ScanResult> {
  const chunkBytes = Math.max(Math.min(options.chunkBytes ?? DEFAULT_CHUNK_BYTES, Math.max(end - start, 64)), 64);
  const carry = Math.min(CARRY_BYTES, chunkBytes);
  const bufs = [Buffer.allocUnsafe(carry + chunkBytes), Buffer.allocUnsafe(carry + chunkBytes)];
  let which = 0;
  let batches = 0;
  // Every exit: the read in flight settles, then the caller's chunk hook runs a last time.
  const finish = async (r: ScanResult): Promise<ScanResult> => {
    if (pending) await pending;
    if (options.onChunkEnd) await options.onChunkEnd();
    return r;
  };

  // `data` = buf[dataStart, dataEnd) holds file bytes from `pos`.
  let pos = start;
  let readAt = start;
  const readInto = (b: Buffer): Promise<number> => {
    const n = Math.min(chunkBytes, end - readAt);
    const p = n > 0 ? preadFull(fd, b, carry, n, readAt) : Promise.resolve(0);
    readAt += n;
    return p;
  };
  let pending: Promise<number> | null = readInto(bufs[which]);
  let dataStart = carry;
  let dataEnd = carry;
  for (;;) {
    const got = pending ? await pending : 0;
    pending = null;
    const buf = bufs[which];
    dataEnd = carry + got;
    const fileLeftAfter = end - readAt; // bytes not yet requested
    // Prefetch the next chunk into the other buffer while this one is walked.
    if (fileLeftAfter > 0) pending = readInto(bufs[1 - which]);
    const view = viewOf(buf);
    const data = buf.subarray(0, dataEnd);
    let at = dataStart;
    for (;;) {
      const probe = probeBatch(view, data, at, options.maxBatchBytes, options.checkCrc);
      if (probe.defect === undefined) {
        const stop = onBatch(probe.header!, pos + (at - dataStart), data, at);
        batches++;
        at += probe.header!.totalBytes;
        if (stop === true) return finish({ validEnd: pos + (at - dataStart), batches });
        continue;
      }
      const position = pos + (at - dataStart);
      const moreComing = pending !== null;
      if ((probe.defect === 'short-header' || probe.defect === 'short-batch') && moreComing) break;
      if (probe.defect === 'short-header' && position === end) return finish({ validEnd: position, batches });
      return finish({ validEnd: position, defect: { kind: probe.defect, position }, batches });
    }
    // Carry the unfinished batch to the front of the other buffer.
    const leftover = dataEnd - at;
    const position = pos + (at - dataStart);
    if (options.onChunkEnd) await options.onChunkEnd();
    if (leftover > carry) {
      // One batch larger than the carry room: read it whole, walk it, and restart after it.
      if (pending) await pending;
      pending = null;
      const len = viewOf(buf).getInt32(at + 8) + 12;
      const defect = await walkOneBatch(fd, position, len, options, onBatch);
      if (defect !== undefined) return finish({ validEnd: position, defect: { kind: defect, position }, batches });
      batches++;
      pos = position + len;
      readAt = pos;
      if (readAt >= end) return finish({ validEnd: pos, batches });
      pending = readInto(bufs[which]);
      dataStart = carry;
      continue;
    }
    const next = bufs[1 - which];
    buf.copy(next, carry - leftover, at, dataEnd);
    which = 1 - which;
    dataStart = carry - leftover;
    pos = position;
  }
}

/** Reads the `len`-byte batch at `position` on its own and hands it out; returns its defect, if any. */
async function walkOneBatch(fd: number, position: number, len: number, options: ScanOptions, onBatch: OnBatch): Promise<BatchDefect | undefined> {
  const big = Buffer.allocUnsafe(len);
  const n = await preadFull(fd, big, 0, len, position);
  const probe = probeBatch(viewOf(big), big.subarray(0, n), 0, options.maxBatchBytes, options.checkCrc);
  if (probe.defect !== undefined) return probe.defect;
  onBatch(probe.header!, position, big, 0);
  return undefined;
}
