// The log's view of stored RecordBatch v2 bytes: walking batch headers in a buffer read from
// a segment, and the shallow validity test recovery and reads apply (length, magic, CRC).
// Field offsets and header decoding come from the core (host/core/batch-layout.ts); the CRC
// is the core's CRC-32C. Deep checks of record contents happen once, on append (core
// verifyBatches); bytes on disk are only re-checked for the damage a crash or a bad disk
// can do: a short tail, a garbage length, a flipped bit.
import {
  ATTRIBUTES,
  BATCH_LENGTH,
  CRC,
  LOG_OVERHEAD,
  MAGIC,
  MAGIC_V2,
  MIN_BATCH_LENGTH,
  RECORDS,
  readHeaderFrom,
  type BatchHeader,
} from '../core/batch-layout.js';
import { crc32cRange } from '../core/crc32c.js';

export type { BatchHeader };

/** Why the bytes at a position are not a valid batch. */
export type BatchDefect = 'short-header' | 'bad-length' | 'bad-magic' | 'short-batch' | 'crc-mismatch';

export interface BatchProbe {
  header?: BatchHeader;
  defect?: BatchDefect;
}

export function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Looks at the batch starting at `pos` of `buf`. `maxBatchBytes` bounds the length field so a
 * garbage length is caught as `bad-length` instead of sending the scan on a 2 GiB read.
 * With `checkCrc`, the batch's CRC-32C is recomputed when the whole batch is in `buf`.
 * A batch whose tail lies beyond `buf` is returned with its header (the caller decides whether
 * to read further or call it short).
 */
export function probeBatch(view: DataView, buf: Uint8Array, pos: number, maxBatchBytes: number, checkCrc: boolean): BatchProbe {
  const left = buf.byteLength - pos;
  if (left < RECORDS) return { defect: 'short-header' };
  const batchLength = view.getInt32(pos + BATCH_LENGTH);
  if (batchLength < MIN_BATCH_LENGTH || batchLength + LOG_OVERHEAD > maxBatchBytes) return { defect: 'bad-length' };
  if (view.getInt8(pos + MAGIC) !== MAGIC_V2) return { defect: 'bad-magic' };
  const header = readHeaderFrom(view, pos);
  if (header.lastOffsetDelta < 0 || header.recordCount < 0) return { defect: 'bad-length' };
  if (header.totalBytes > left) return { header, defect: 'short-batch' };
  if (checkCrc && crc32cRange(buf, pos + ATTRIBUTES, pos + header.totalBytes) !== view.getUint32(pos + CRC)) {
    return { header, defect: 'crc-mismatch' };
  }
  return { header };
}

/** Offset of the last record of a batch header. */
export const lastOffsetOf = (h: BatchHeader): number => h.baseOffset + h.lastOffsetDelta;
