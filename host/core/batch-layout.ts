// RecordBatch v2 header: field offsets, attribute bits, and plain-JS header access.
//
// Layout (Kafka DefaultRecordBatch, magic 2; big-endian):
//   offset size field
//        0    8 baseOffset             ┐ LOG_OVERHEAD (12): outside batchLength and the CRC
//        8    4 batchLength            ┘ (bytes after this field)
//       12    4 partitionLeaderEpoch     outside the CRC (the broker rewrites it)
//       16    1 magic (= 2)              outside the CRC
//       17    4 crc (CRC-32C of bytes 21..end, unsigned)
//       21    2 attributes               bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
//       23    4 lastOffsetDelta
//       27    8 baseTimestamp
//       35    8 maxTimestamp
//       43    8 producerId
//       51    2 producerEpoch
//       53    4 baseSequence
//       57    4 recordCount
//       61      records (compressed as a whole when codec != 0)
// The broker assigns offsets by rewriting baseOffset and sets partitionLeaderEpoch, both
// outside the CRC, so a produced batch is stored without re-encoding. maxTimestamp and
// attributes are inside the CRC: LogAppendTime restamping recomputes it.
import { BrokerError } from '../errors/index.js';
import { crc32cRange } from './crc32c.js';

export const BASE_OFFSET = 0;
export const BATCH_LENGTH = 8;
export const PARTITION_LEADER_EPOCH = 12;
export const MAGIC = 16;
export const CRC = 17;
export const ATTRIBUTES = 21;
export const LAST_OFFSET_DELTA = 23;
export const BASE_TIMESTAMP = 27;
export const MAX_TIMESTAMP = 35;
export const PRODUCER_ID = 43;
export const PRODUCER_EPOCH = 51;
export const BASE_SEQUENCE = 53;
export const RECORDS_COUNT = 57;
export const RECORDS = 61;
/** Bytes of a batch header (no records). */
export const BATCH_HEADER_BYTES = RECORDS;
/** baseOffset + batchLength: bytes of a batch not counted in batchLength. */
export const LOG_OVERHEAD = 12;
/** Smallest legal batchLength (a header with no records). */
export const MIN_BATCH_LENGTH = RECORDS - LOG_OVERHEAD;
/** The only batch format Tributary reads and writes. */
export const MAGIC_V2 = 2;

export const COMPRESSION_MASK = 0x07;
export const TIMESTAMP_TYPE_MASK = 0x08;
export const TRANSACTIONAL_MASK = 0x10;
export const CONTROL_MASK = 0x20;

export const NO_PRODUCER_ID = -1;
export const NO_PRODUCER_EPOCH = -1;
export const NO_SEQUENCE = -1;
export const NO_PARTITION_LEADER_EPOCH = -1;

export type CompressionCodec = 0 | 1 | 2 | 3 | 4;
export const COMPRESSION_NONE = 0;
export const COMPRESSION_GZIP = 1;
export const COMPRESSION_SNAPPY = 2;
export const COMPRESSION_LZ4 = 3;
export const COMPRESSION_ZSTD = 4;
export const TIMESTAMP_CREATE_TIME = 0;
export const TIMESTAMP_LOG_APPEND_TIME = 1;

export interface BatchHeader {
  baseOffset: number;
  batchLength: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number; // unsigned
  attributes: number;
  compression: number; // attributes & 7
  timestampType: number; // 0 CreateTime, 1 LogAppendTime
  isTransactional: boolean;
  isControl: boolean;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
  /** batchLength + LOG_OVERHEAD: bytes this batch takes in a log. */
  totalBytes: number;
  /** baseOffset + lastOffsetDelta. */
  lastOffset: number;
}

function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Reads a big-endian int64 as a JS number (exact for |v| < 2^53). */
export function readInt64(view: DataView, at: number): number {
  return view.getInt32(at) * 4294967296 + view.getUint32(at + 4);
}

/** Writes a JS integer (|v| < 2^53) as a big-endian int64. */
export function writeInt64(view: DataView, at: number, value: number): void {
  const hi = Math.floor(value / 4294967296);
  view.setInt32(at, hi);
  view.setUint32(at + 4, value - hi * 4294967296);
}

/**
 * Reads the 61-byte header of the batch at `pos`. Checks only that the header itself is
 * inside `buf` (CORRUPT_MESSAGE otherwise); the rest is verifyBatches' job.
 */
export function readBatchHeader(buf: Uint8Array, pos = 0): BatchHeader {
  if (pos < 0 || pos + RECORDS > buf.byteLength) {
    throw new BrokerError('CORRUPT_MESSAGE', `batch header at byte ${pos}: needs ${RECORDS} bytes, ${Math.max(0, buf.byteLength - pos)} left`);
  }
  return readHeaderFrom(viewOf(buf), pos);
}

/** readBatchHeader over an existing DataView (no bounds message; caller checked). */
export function readHeaderFrom(view: DataView, pos: number): BatchHeader {
  const attributes = view.getInt16(pos + ATTRIBUTES);
  const baseOffset = readInt64(view, pos + BASE_OFFSET);
  const batchLength = view.getInt32(pos + BATCH_LENGTH);
  const lastOffsetDelta = view.getInt32(pos + LAST_OFFSET_DELTA);
  return {
    baseOffset,
    batchLength,
    partitionLeaderEpoch: view.getInt32(pos + PARTITION_LEADER_EPOCH),
    magic: view.getInt8(pos + MAGIC),
    crc: view.getUint32(pos + CRC),
    attributes,
    compression: attributes & COMPRESSION_MASK,
    timestampType: (attributes & TIMESTAMP_TYPE_MASK) >> 3,
    isTransactional: (attributes & TRANSACTIONAL_MASK) !== 0,
    isControl: (attributes & CONTROL_MASK) !== 0,
    lastOffsetDelta,
    baseTimestamp: readInt64(view, pos + BASE_TIMESTAMP),
    maxTimestamp: readInt64(view, pos + MAX_TIMESTAMP),
    producerId: readInt64(view, pos + PRODUCER_ID),
    producerEpoch: view.getInt16(pos + PRODUCER_EPOCH),
    baseSequence: view.getInt32(pos + BASE_SEQUENCE),
    recordCount: view.getInt32(pos + RECORDS_COUNT),
    totalBytes: batchLength + LOG_OVERHEAD,
    lastOffset: baseOffset + lastOffsetDelta,
  };
}

/** Rewrites baseOffset in place (outside the CRC: no re-encode, no new CRC). */
export function setBaseOffset(buf: Uint8Array, pos: number, offset: number): void {
  writeInt64(viewOf(buf), pos + BASE_OFFSET, offset);
}

/** Rewrites partitionLeaderEpoch in place (outside the CRC). */
export function setPartitionLeaderEpoch(buf: Uint8Array, pos: number, epoch: number): void {
  viewOf(buf).setInt32(pos + PARTITION_LEADER_EPOCH, epoch);
}

/** Recomputes and stores the CRC of the batch at pos (after changing a field inside it). */
export function resealBatch(buf: Uint8Array, pos = 0): number {
  const view = viewOf(buf);
  const total = view.getInt32(pos + BATCH_LENGTH) + LOG_OVERHEAD;
  if (total < RECORDS || pos + total > buf.byteLength) {
    throw new BrokerError('CORRUPT_MESSAGE', `batch at byte ${pos}: batchLength ${total - LOG_OVERHEAD} does not fit the buffer`);
  }
  const crc = crc32cRange(buf, pos + ATTRIBUTES, pos + total);
  view.setUint32(pos + CRC, crc);
  return crc;
}

/**
 * LogAppendTime: sets the timestamp-type bit and maxTimestamp to `timestampMs` and recomputes
 * the CRC (both fields are inside it). Readers then take every record's timestamp as
 * maxTimestamp (Kafka's rule for LogAppendTime batches).
 */
export function restampLogAppendTime(buf: Uint8Array, pos: number, timestampMs: number): void {
  const view = viewOf(buf);
  view.setInt16(pos + ATTRIBUTES, view.getInt16(pos + ATTRIBUTES) | TIMESTAMP_TYPE_MASK);
  writeInt64(view, pos + MAX_TIMESTAMP, timestampMs);
  resealBatch(buf, pos);
}

/** Sets maxTimestamp (inside the CRC) and recomputes the CRC. */
export function setMaxTimestamp(buf: Uint8Array, pos: number, timestampMs: number): void {
  writeInt64(viewOf(buf), pos + MAX_TIMESTAMP, timestampMs);
  resealBatch(buf, pos);
}
