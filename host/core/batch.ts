// RecordBatch v2 encode / decode / verify over the wasm core. One wasm call per batch for the
// records (varints, lengths, bounds), one for the CRC; the header is plain DataView work.
//
// Scratch layout in wasm memory during one call (from heapBase, nothing survives the call):
//   encode: [descriptors i32 × (5 + 2·headers) per record][data: keys, values, header keys/values]
//           [output batch: 61-byte header + records]
//   decode: [records section][record table 32 B/record][header table 16 B/header]
// Decoded keys, values and header values are plain Uint8Array views into the caller's buffer
// (or into the decompressed records), not copies: don't mutate the input while you hold them.
import { BrokerError } from '../errors/index.js';
import {
  ATTRIBUTES, BASE_SEQUENCE, BASE_TIMESTAMP, BATCH_LENGTH, COMPRESSION_MASK, CONTROL_MASK, CRC,
  LAST_OFFSET_DELTA, LOG_OVERHEAD, MAGIC, MAGIC_V2, MAX_TIMESTAMP, MIN_BATCH_LENGTH,
  PARTITION_LEADER_EPOCH, PRODUCER_EPOCH, PRODUCER_ID, RECORDS, RECORDS_COUNT,
  TIMESTAMP_TYPE_MASK, TRANSACTIONAL_MASK, readHeaderFrom, writeInt64, type BatchHeader,
} from './batch-layout.js';
import { compress, decompress, decompressTransient } from './compression.js';
import { CRC_CHUNK_BYTES, crc32cInWasm, crc32cRange } from './crc32c.js';
import { core, heapBase, memU8, memView, scratchBytes } from './wasm.js';

/** A record as the doors hand it to the broker, and the broker to encodeBatch. */
export interface RecordInput {
  key: Uint8Array | null;
  value: Uint8Array | null;
  timestampMs?: number; // defaults to now
  headers?: Array<{ key: string; value: Uint8Array | null }>;
}

const walkRecords = core.walkRecords as (
  ptr: number, len: number, count: number, table: number, headerTable: number, headerCap: number, strict: number, lastOffsetDelta: number,
) => number;
const encodeRecords = core.encodeRecords as (desc: number, count: number, data: number, out: number, outCap: number) => number;
const sealBatch = core.sealBatch as (ptr: number, len: number) => number;
const lastErrorRecord = core.lastErrorRecord as () => number;
const memI32 = new Int32Array(core.memory.buffer);
const scratchEnd = heapBase + scratchBytes;

export interface EncodeOptions {
  baseOffset?: number; // default 0 (the broker assigns the real one)
  partitionLeaderEpoch?: number; // default -1
  compression?: 0 | 1 | 2 | 3 | 4; // default 0 (none)
  timestampType?: 0 | 1; // default 0 (CreateTime)
  producerId?: number; // default -1 (not idempotent)
  producerEpoch?: number; // default -1
  baseSequence?: number; // default -1
  isTransactional?: boolean;
  isControl?: boolean;
}

export interface VerifyOptions {
  /** Largest batch (batchLength + 12) accepted: MESSAGE_TOO_LARGE above it. */
  maxBatchBytes: number;
  /** Largest records section after decompression: a bigger one is refused as a bomb. */
  maxDecompressedBytes: number;
  /** Also decompress and walk every record's framing (append path); false = header + CRC only. */
  deep: boolean;
  /**
   * Offset deltas must be 0..count-1 and lastOffsetDelta == count-1, as every producer writes
   * (default true). false accepts compacted batches: increasing deltas with gaps.
   */
  strictOffsets?: boolean;
}

export const defaultVerifyOptions: VerifyOptions = {
  maxBatchBytes: 1048588, // Kafka's default message.max.bytes (1 MiB + 12)
  maxDecompressedBytes: 16 * 1024 * 1024, // 16 MiB: generous for 1 MiB of compressed sensor JSON, bounded for a Pi
  deep: true, // append path: never store a batch a consumer cannot parse
  strictOffsets: true, // producers always write deltas 0..n-1
};

export interface DecodeOptions {
  /** Bound on the decompressed records section (default defaultVerifyOptions.maxDecompressedBytes). */
  maxDecompressedBytes?: number;
  /** Check the CRC before decoding (default true). */
  verifyCrc?: boolean;
  /** Accept compacted batches (gaps in offset deltas); default true for decode. */
  strictOffsets?: boolean;
}

export interface DecodedHeader {
  key: string;
  value: Uint8Array | null;
}

export interface DecodedRecord {
  offset: number;
  timestampMs: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: DecodedHeader[];
}

export interface DecodedBatch {
  header: BatchHeader;
  records: DecodedRecord[];
}

// --- encode -----------------------------------------------------------------------------------

const DESC_RECORD_BYTES = 20;
const DESC_HEADER_BYTES = 8;
const RECORD_OVERHEAD_MAX = 36; // length 5 + attributes 1 + tsDelta 10 + offsetDelta 5 + key/value lengths 10 + header count 5
const HEADER_OVERHEAD_MAX = 10;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** Writes a string as UTF-8 at `at` in wasm memory (ASCII fast path); returns bytes written. */
function writeUtf8(s: string, at: number): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return i + textEncoder.encodeInto(s.substring(i), memU8.subarray(at + i, at + i + 3 * (n - i))).written;
    memU8[at + i] = c;
  }
  return n;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** What pass 1 learns about a record list: the bounds pass 2 packs into and the header's timestamps. */
interface BatchMeasure {
  nowMs: number;
  headerCount: number;
  dataMax: number;
  baseTimestamp: number;
  maxTimestamp: number;
}

/** Encodes records into one RecordBatch v2 (offset deltas 0..n-1, base offset from options). */
export function encodeBatch(records: RecordInput[], options: EncodeOptions = {}): Uint8Array {
  const count = records.length;
  if (count === 0) throw new BrokerError('INVALID_RECORD', 'a batch needs at least one record');
  const codec = options.compression ?? 0;
  if (codec < 0 || codec > 4) throw new BrokerError('UNSUPPORTED_COMPRESSION_TYPE', `compression codec ${codec} does not exist`);
  const measure = measureRecords(records);
  const descBytes = count * DESC_RECORD_BYTES + measure.headerCount * DESC_HEADER_BYTES;
  const outCapMax = measure.dataMax + count * RECORD_OVERHEAD_MAX + measure.headerCount * HEADER_OVERHEAD_MAX;
  const need = align8(descBytes) + align8(measure.dataMax) + RECORDS + outCapMax + 8;
  if (need > scratchBytes) {
    throw new BrokerError('RECORD_LIST_TOO_LARGE', `${count} records need up to ${need} bytes to encode; the core has ${scratchBytes}`);
  }
  const desc = heapBase;
  const data = desc + align8(descBytes);
  const dataEnd = packRecords(records, measure, desc, data);
  return sealRecords(desc, count, data, align8(dataEnd), codec, measure, options);
}

/** Pass 1: sizes and timestamps (every timestamp checked before anything is written). */
function measureRecords(records: RecordInput[]): BatchMeasure {
  const count = records.length;
  const nowMs = Date.now();
  let headerCount = 0;
  let dataMax = 0;
  let baseTimestamp = 0;
  let maxTimestamp = -Infinity;
  for (let i = 0; i < count; i++) {
    const r = records[i];
    const ts = r.timestampMs ?? nowMs;
    if (!Number.isSafeInteger(ts)) throw new BrokerError('INVALID_TIMESTAMP', `record ${i}: timestamp ${ts} is not an integer number of milliseconds`);
    if (i === 0) baseTimestamp = ts;
    if (ts > maxTimestamp) maxTimestamp = ts;
    if (r.key) dataMax += r.key.byteLength;
    if (r.value) dataMax += r.value.byteLength;
    const hs = r.headers;
    if (hs) {
      headerCount += hs.length;
      for (let h = 0; h < hs.length; h++) {
        dataMax += 3 * hs[h].key.length;
        const v = hs[h].value;
        if (v) dataMax += v.byteLength;
      }
    }
  }
  return { nowMs, headerCount, dataMax, baseTimestamp, maxTimestamp };
}

/**
 * Pass 2: descriptors at `desc` and key/value/header bytes from `data` in wasm memory; returns
 * the end of the data written.
 */
function packRecords(records: RecordInput[], measure: BatchMeasure, desc: number, data: number): number {
  const count = records.length;
  let d = desc >> 2;
  let p = data;
  for (let i = 0; i < count; i++) {
    const r = records[i];
    const delta = (r.timestampMs ?? measure.nowMs) - measure.baseTimestamp;
    const hi = Math.floor(delta / 4294967296);
    memI32[d] = delta - hi * 4294967296; // low word (ToInt32 wraps it)
    memI32[d + 1] = hi;
    const key = r.key;
    if (key) {
      memI32[d + 2] = key.byteLength;
      memU8.set(key, p);
      p += key.byteLength;
    } else memI32[d + 2] = -1;
    const value = r.value;
    if (value) {
      memI32[d + 3] = value.byteLength;
      memU8.set(value, p);
      p += value.byteLength;
    } else memI32[d + 3] = -1;
    const hs = r.headers;
    const hc = hs ? hs.length : 0;
    memI32[d + 4] = hc;
    d += 5;
    for (let h = 0; h < hc; h++) {
      const hk = writeUtf8(hs![h].key, p);
      p += hk;
      memI32[d] = hk;
      const hv = hs![h].value;
      if (hv) {
        memI32[d + 1] = hv.byteLength;
        memU8.set(hv, p);
        p += hv.byteLength;
      } else memI32[d + 1] = -1;
      d += 2;
    }
  }
  return p;
}

/**
 * Encodes the packed records after the header space at `out`, compresses them when a codec is
 * asked, writes the header and the CRC; returns the batch as a copy out of wasm memory.
 */
function sealRecords(desc: number, count: number, data: number, out: number, codec: number, measure: BatchMeasure, options: EncodeOptions): Uint8Array {
  const outCap = scratchEnd - out - RECORDS;
  const recordsBytes = encodeRecords(desc, count, data, out + RECORDS, outCap);
  if (recordsBytes < 0) throw new Error(`wasm encodeRecords failed with status ${recordsBytes}`);
  const attributes =
    codec |
    (options.timestampType === 1 ? TIMESTAMP_TYPE_MASK : 0) |
    (options.isTransactional ? TRANSACTIONAL_MASK : 0) |
    (options.isControl ? CONTROL_MASK : 0);
  const { baseTimestamp, maxTimestamp } = measure;
  if (codec === 0) {
    const total = RECORDS + recordsBytes;
    writeHeader(memView, out, total, attributes, count, baseTimestamp, maxTimestamp, options);
    sealBatch(out, total);
    return memU8.slice(out, out + total);
  }
  const compressed = compress(codec, memU8.slice(out + RECORDS, out + RECORDS + recordsBytes));
  const total = RECORDS + compressed.byteLength;
  const batch = new Uint8Array(total);
  batch.set(compressed, RECORDS);
  const view = new DataView(batch.buffer);
  writeHeader(view, 0, total, attributes, count, baseTimestamp, maxTimestamp, options);
  view.setUint32(CRC, crc32cRange(batch, ATTRIBUTES, total));
  return batch;
}

function writeHeader(
  view: DataView, at: number, total: number, attributes: number, count: number,
  baseTimestamp: number, maxTimestamp: number, o: EncodeOptions,
): void {
  writeInt64(view, at, o.baseOffset ?? 0);
  view.setInt32(at + BATCH_LENGTH, total - LOG_OVERHEAD);
  view.setInt32(at + PARTITION_LEADER_EPOCH, o.partitionLeaderEpoch ?? -1);
  view.setInt8(at + MAGIC, MAGIC_V2);
  view.setInt16(at + ATTRIBUTES, attributes);
  view.setInt32(at + LAST_OFFSET_DELTA, count - 1);
  writeInt64(view, at + BASE_TIMESTAMP, baseTimestamp);
  writeInt64(view, at + MAX_TIMESTAMP, maxTimestamp);
  writeInt64(view, at + PRODUCER_ID, o.producerId ?? -1);
  view.setInt16(at + PRODUCER_EPOCH, o.producerEpoch ?? -1);
  view.setInt32(at + BASE_SEQUENCE, o.baseSequence ?? -1);
  view.setInt32(at + RECORDS_COUNT, count);
}

// --- verify -----------------------------------------------------------------------------------

function where(index: number, pos: number): string {
  return `batch ${index} at byte ${pos}`;
}

/**
 * Checks the frame of the batch at pos (header inside buf, batchLength sane and inside buf,
 * size limit, magic) and returns its header. Throws BrokerError.
 */
function checkFrame(buf: Uint8Array, view: DataView, pos: number, index: number, maxBatchBytes: number): BatchHeader {
  const left = buf.byteLength - pos;
  if (left < RECORDS) {
    throw new BrokerError('CORRUPT_MESSAGE', `${where(index, pos)}: truncated header (${left} of ${RECORDS} bytes)`);
  }
  const batchLength = view.getInt32(pos + BATCH_LENGTH);
  if (batchLength < MIN_BATCH_LENGTH) {
    throw new BrokerError('CORRUPT_MESSAGE', `${where(index, pos)}: batchLength ${batchLength} is below the header size ${MIN_BATCH_LENGTH}`);
  }
  const total = batchLength + LOG_OVERHEAD;
  if (total > maxBatchBytes) {
    throw new BrokerError('MESSAGE_TOO_LARGE', `${where(index, pos)}: ${total} bytes exceeds the batch size limit of ${maxBatchBytes}`);
  }
  if (total > left) {
    throw new BrokerError('CORRUPT_MESSAGE', `${where(index, pos)}: batchLength ${batchLength} runs past the end of the data (${left} bytes left)`);
  }
  const magic = view.getInt8(pos + MAGIC);
  if (magic !== MAGIC_V2) {
    throw new BrokerError('CORRUPT_MESSAGE', `${where(index, pos)}: magic ${magic}, only RecordBatch v2 (magic 2) is supported`);
  }
  return readHeaderFrom(view, pos);
}

function checkCounts(h: BatchHeader, pos: number, index: number, strict: boolean): void {
  if (h.recordCount < 0) {
    throw new BrokerError('CORRUPT_MESSAGE', `${where(index, pos)}: recordCount ${h.recordCount} is negative`);
  }
  if (h.recordCount > 0) {
    if (strict ? h.lastOffsetDelta !== h.recordCount - 1 : h.lastOffsetDelta < h.recordCount - 1) {
      throw new BrokerError('INVALID_RECORD', `${where(index, pos)}: lastOffsetDelta ${h.lastOffsetDelta} does not match recordCount ${h.recordCount}`);
    }
  } else if (h.lastOffsetDelta < -1) {
    throw new BrokerError('INVALID_RECORD', `${where(index, pos)}: lastOffsetDelta ${h.lastOffsetDelta} is negative`);
  }
  if ((h.attributes & COMPRESSION_MASK) > 4) {
    throw new BrokerError('UNSUPPORTED_COMPRESSION_TYPE', `${where(index, pos)}: compression codec ${h.attributes & COMPRESSION_MASK} in attributes does not exist`);
  }
}

const STATUS_TEXT: Record<number, string> = {
  [-1]: 'a field runs past the end of the records',
  [-2]: 'record length is negative, past the end, or disagrees with the record fields',
  [-3]: 'key length is invalid or past the end of the record',
  [-4]: 'value length is invalid or past the end of the record',
  [-5]: 'header count is negative or larger than the record',
  [-6]: 'header key length is null, negative, or past the end of the record',
  [-7]: 'header value length is invalid or past the end of the record',
  [-8]: 'bytes remain after the last record (recordCount too small)',
  [-9]: 'too many headers for the decode table',
  [-10]: 'offset delta out of order',
  [-11]: 'recordCount is negative or larger than the records bytes allow',
};

function statusError(status: number, h: BatchHeader, pos: number, index: number, rec = lastErrorRecord()): BrokerError {
  const what = STATUS_TEXT[status] ?? `status ${status}`;
  const recText = rec >= 0 ? `record ${rec}: ` : '';
  const code = status === -9 ? 'RECORD_LIST_TOO_LARGE' : 'INVALID_RECORD';
  return new BrokerError(code, `${where(index, pos)}: ${recText}${what} (recordCount ${h.recordCount})`);
}

/**
 * Decompresses (bounded) the records section of a verified batch. `transient`: the result may
 * be a view of wasm memory, valid until the next core call (verify walks it in place).
 */
function recordsOf(buf: Uint8Array, h: BatchHeader, pos: number, index: number, maxDecompressedBytes: number, transient = false): Uint8Array {
  const section = buf.subarray(pos + RECORDS, pos + h.totalBytes);
  if (h.compression === 0) return section;
  try {
    return transient ? decompressTransient(h.compression, section, maxDecompressedBytes) : decompress(h.compression, section, maxDecompressedBytes);
  } catch (err) {
    if (err instanceof BrokerError) throw new BrokerError(err.code, `${where(index, pos)}: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * Walks a records section in wasm memory; table 0 = verify only. `at` >= 0 means the section
 * is already in wasm memory at that address (the batch was copied in for its CRC); otherwise
 * it is copied to heapBase first.
 */
function walkInWasm(
  records: Uint8Array, h: BatchHeader, pos: number, index: number, strict: boolean, withTable: boolean, at = -1,
): { table: number; headerTable: number } {
  const n = records.byteLength;
  const count = h.recordCount;
  if (count > n / 7) throw statusError(-11, h, pos, index, -1);
  const ptr = at >= 0 ? at : heapBase;
  const table = withTable ? align8(ptr + n) : 0;
  const headerTable = withTable ? table + count * 32 : 0;
  const room = withTable ? scratchEnd - headerTable : scratchEnd - ptr - n;
  if (room < 0) {
    throw new BrokerError('RECORD_LIST_TOO_LARGE', `${where(index, pos)}: ${n} bytes of records with ${count} records exceed the core's ${scratchBytes} bytes of scratch`);
  }
  if (at < 0) memU8.set(records, ptr);
  const status = walkRecords(ptr, n, count, table, headerTable, withTable ? Math.floor(room / 16) : 0, strict ? 1 : 0, h.lastOffsetDelta);
  if (status < 0) throw statusError(status, h, pos, index);
  return { table, headerTable };
}

/**
 * Copies the batch at pos into wasm memory (heapBase) when it fits, and returns its CRC-32C
 * over attributes..end; `copied` says whether the bytes are now in wasm (at heapBase).
 */
function crcOfBatch(buf: Uint8Array, pos: number, total: number): { crc: number; copied: boolean } {
  if (total <= CRC_CHUNK_BYTES) {
    memU8.set(buf.subarray(pos, pos + total), heapBase);
    return { crc: crc32cInWasm(heapBase + ATTRIBUTES, total - ATTRIBUTES), copied: true };
  }
  return { crc: crc32cRange(buf, pos + ATTRIBUTES, pos + total), copied: false };
}

/**
 * Walks every batch in `buf` and checks it; returns their headers. Errors (BrokerError):
 * CORRUPT_MESSAGE (truncation, bad length, magic, CRC, decompression failure or bomb),
 * INVALID_RECORD (record framing or counts wrong inside a CRC-valid batch), MESSAGE_TOO_LARGE,
 * UNSUPPORTED_COMPRESSION_TYPE. Messages name the batch index, its byte position and the field.
 */
export function verifyBatches(buf: Uint8Array, options: VerifyOptions = defaultVerifyOptions): BatchHeader[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const strict = options.strictOffsets ?? true;
  const headers: BatchHeader[] = [];
  if (buf.byteLength === 0) throw new BrokerError('CORRUPT_MESSAGE', 'no batches: the record set is empty');
  // Shallow verify of a buffer that fits: one copy into wasm, then the CRC of each batch in place.
  const oneCopy = !options.deep && buf.byteLength <= CRC_CHUNK_BYTES;
  if (oneCopy) memU8.set(buf, heapBase);
  let pos = 0;
  let index = 0;
  while (pos < buf.byteLength) {
    const h = checkFrame(buf, view, pos, index, options.maxBatchBytes);
    let copied = false;
    let crc: number;
    if (oneCopy) crc = crc32cInWasm(heapBase + pos + ATTRIBUTES, h.totalBytes - ATTRIBUTES);
    else ({ crc, copied } = crcOfBatch(buf, pos, h.totalBytes));
    if (crc !== h.crc) {
      throw new BrokerError('CORRUPT_MESSAGE', `${where(index, pos)}: CRC-32C mismatch (stored ${hex(h.crc)}, computed ${hex(crc)})`);
    }
    checkCounts(h, pos, index, strict);
    if (options.deep) {
      const records = recordsOf(buf, h, pos, index, options.maxDecompressedBytes, true);
      let at = -1;
      if (h.compression === 0) at = copied ? heapBase + RECORDS : -1;
      else if (records.buffer === memU8.buffer) at = records.byteOffset; // decompressed in the core: walk in place
      walkInWasm(records, h, pos, index, strict, false, at);
    }
    headers.push(h);
    pos += h.totalBytes;
    index++;
  }
  return headers;
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

// --- decode -----------------------------------------------------------------------------------

function decodeUtf8(src: Uint8Array, start: number, len: number): string {
  if (len <= 32) {
    let s = '';
    for (let i = 0; i < len; i++) {
      const c = src[start + i];
      if (c >= 0x80) return textDecoder.decode(src.subarray(start, start + len));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return textDecoder.decode(src.subarray(start, start + len));
}

/** Decodes the batch at `pos` (checks frame and CRC, then every record). */
export function decodeBatch(buf: Uint8Array, pos = 0, options: DecodeOptions = {}): DecodedBatch {
  return decodeAt(buf, new DataView(buf.buffer, buf.byteOffset, buf.byteLength), pos, 0, options);
}

function decodeAt(buf: Uint8Array, view: DataView, pos: number, index: number, options: DecodeOptions): DecodedBatch {
  const h = checkFrame(buf, view, pos, index, Infinity);
  let copied = false;
  if (options.verifyCrc !== false) {
    let crc: number;
    ({ crc, copied } = crcOfBatch(buf, pos, h.totalBytes));
    if (crc !== h.crc) throw new BrokerError('CORRUPT_MESSAGE', `${where(index, pos)}: CRC-32C mismatch (stored ${hex(h.crc)}, computed ${hex(crc)})`);
  }
  const strict = options.strictOffsets ?? false;
  checkCounts(h, pos, index, strict);
  const src = recordsOf(buf, h, pos, index, options.maxDecompressedBytes ?? defaultVerifyOptions.maxDecompressedBytes);
  const { table, headerTable } = walkInWasm(src, h, pos, index, strict, true, copied && h.compression === 0 ? heapBase + RECORDS : -1);
  const count = h.recordCount;
  const records: DecodedRecord[] = new Array(count);
  const logAppend = h.timestampType === 1;
  // Views are made with the Uint8Array constructor: measured 2-3× cheaper than subarray().
  const ab = src.buffer;
  const base = src.byteOffset;
  let t = table >> 2;
  let ht = headerTable >> 2;
  for (let i = 0; i < count; i++) {
    const keyLen = memI32[t + 4];
    const valLen = memI32[t + 6];
    const hc = memI32[t + 7];
    let headers: DecodedHeader[];
    if (hc === 0) headers = [];
    else {
      headers = new Array(hc);
      for (let k = 0; k < hc; k++) {
        const hvOff = memI32[ht + 2];
        const hvLen = memI32[ht + 3];
        headers[k] = {
          key: decodeUtf8(src, memI32[ht], memI32[ht + 1]),
          value: hvLen < 0 ? null : new Uint8Array(ab, base + hvOff, hvLen),
        };
        ht += 4;
      }
    }
    const keyOff = memI32[t + 3];
    const valOff = memI32[t + 5];
    records[i] = {
      offset: h.baseOffset + memI32[t + 2],
      timestampMs: logAppend ? h.maxTimestamp : h.baseTimestamp + memI32[t + 1] * 4294967296 + (memI32[t] >>> 0),
      key: keyLen < 0 ? null : new Uint8Array(ab, base + keyOff, keyLen),
      value: valLen < 0 ? null : new Uint8Array(ab, base + valOff, valLen),
      headers,
    };
    t += 8;
  }
  return { header: h, records };
}

/**
 * Decodes every batch in `buf`. A truncated last batch (as a fetch response may end with) is
 * an error unless `partialTail: 'ignore'`.
 */
export function decodeBatches(buf: Uint8Array, options: DecodeOptions & { partialTail?: 'error' | 'ignore' } = {}): DecodedBatch[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: DecodedBatch[] = [];
  let pos = 0;
  let index = 0;
  while (pos < buf.byteLength) {
    if (options.partialTail === 'ignore') {
      const left = buf.byteLength - pos;
      if (left < RECORDS || view.getInt32(pos + BATCH_LENGTH) + LOG_OVERHEAD > left) break;
    }
    const b = decodeAt(buf, view, pos, index, options);
    out.push(b);
    pos += b.header.totalBytes;
    index++;
  }
  return out;
}
