// Raw forwarding: a stored RecordBatch sent to the target as it is stored, its records never
// decoded or re-encoded. Two things change, both cheap:
//
//   the last record   gets the four origin headers appended (host/sync/origin.ts). Headers are a
//                     record's last field, so the record is rewritten as: its bytes up to the
//                     header count, the count + 4, its own headers, the origin headers, with a new
//                     length prefix. Every other record is copied byte for byte.
//   the batch header  batchLength grows by what the last record grew; producer id, epoch and base
//                     sequence are the uplink's producer's (set by the producer per attempt, which
//                     also recomputes the CRC: rawOutgoing in host/kafka/client/producer.ts).
//
// Why the origin goes on the last record only: a batch lands whole or not at all (Kafka's rule),
// so the last record's origin offset says that every record of the batch is in the target, and
// read-back (the highest origin offset in the target) works unchanged. A reader traces any other
// record of the batch by offset arithmetic: source offset = the last record's origin offset −
// (the last record's target offset − its own target offset), since a raw batch keeps offset
// deltas 0..n-1 (checked below).
//
// A stored batch is forwarded raw only when nothing in it needs a record-level decision
// (`rawForwardable`): uncompressed (the origin record cannot be rewritten inside a compressed
// section without recompressing it), CreateTime (a LogAppendTime batch's record timestamps are
// its maxTimestamp: decoded to make them explicit), not control or transactional, wholly at or after the
// position, offset deltas 0..n-1 (not compacted), at least rawBatchRecordsMin records (smaller
// ones — MQTT writes one record per batch — are merged by re-encoding: one produce per tiny
// batch would cost more than the re-encode), at most batchBytesMax bytes with the origin headers,
// and no record carries any origin header key (loop prevention and stacked origins are decided per
// record by the decoding path). Everything else takes the decoding path (uplink.ts).
import { BATCH_LENGTH, COMPRESSION_MASK, CONTROL_MASK, LOG_OVERHEAD, RECORDS, TIMESTAMP_TYPE_MASK, TRANSACTIONAL_MASK, type BatchHeader } from '../core/index.js';
import { ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_SITE, ORIGIN_TOPIC, type Origin } from './origin.js';

/** Bytes of the origin key prefix: its presence anywhere in a batch sends it down the decoding path. */
const ORIGIN_MARK = Buffer.from('tributary.origin.', 'utf8');

export interface RawLimits {
  /** Batches with fewer records are merged by re-encoding. */
  recordsMin: number;
  /** Largest forwarded batch (bytes, origin headers included). */
  bytesMax: number;
}

/** Upper bound of the bytes the origin headers add (four headers, their varints, the count and length growth). */
export function originOverheadBytes(origin: Origin): number {
  return 4 * 10 + 30 + ORIGIN_SITE.length + ORIGIN_TOPIC.length + ORIGIN_PARTITION.length + ORIGIN_OFFSET.length + Buffer.byteLength(origin.site) + Buffer.byteLength(origin.topic) + 10 + 20;
}

/** Whether the batch at `pos` (header `h`) can be forwarded raw from `position` (see the file header). */
export function rawForwardable(buf: Uint8Array, pos: number, h: BatchHeader, position: number, origin: Origin, limits: RawLimits): boolean {
  const attributes = h.attributes;
  if ((attributes & (COMPRESSION_MASK | TIMESTAMP_TYPE_MASK | CONTROL_MASK | TRANSACTIONAL_MASK)) !== 0) return false;
  if (h.baseOffset < position) return false;
  if (h.recordCount < limits.recordsMin || h.lastOffsetDelta !== h.recordCount - 1) return false;
  if (h.totalBytes + originOverheadBytes(origin) > limits.bytesMax) return false;
  return Buffer.from(buf.buffer, buf.byteOffset + pos + RECORDS, h.totalBytes - RECORDS).indexOf(ORIGIN_MARK) < 0;
}

// --- varints (Kafka's zigzag varints, records are at most a batch long so 32 bits suffice) ---

function readVarint(buf: Uint8Array, at: number): { value: number; bytes: number } {
  let raw = 0;
  let shift = 0;
  for (let i = 0; i < 5; i++) {
    const b = buf[at + i];
    if (b === undefined) throw new Error(`varint runs past the batch at byte ${at}`);
    raw |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) return { value: (raw >>> 1) ^ -(raw & 1), bytes: i + 1 };
    shift += 7;
  }
  throw new Error(`varint longer than 5 bytes at byte ${at}`);
}

/** Skips a varlong (timestamp delta): its length only. */
function varlongBytes(buf: Uint8Array, at: number): number {
  for (let i = 0; i < 10; i++) if ((buf[at + i] & 0x80) === 0) return i + 1;
  throw new Error(`varlong longer than 10 bytes at byte ${at}`);
}

function writeVarint(value: number, out: number[]): void {
  let v = ((value << 1) ^ (value >> 31)) >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
}

function pushBytes(bytes: Uint8Array, out: number[]): void {
  for (let i = 0; i < bytes.length; i++) out.push(bytes[i]);
}

function encodeHeader(key: string, value: string, out: number[]): void {
  const k = Buffer.from(key, 'utf8');
  const v = Buffer.from(value, 'utf8');
  writeVarint(k.length, out);
  pushBytes(k, out);
  writeVarint(v.length, out);
  pushBytes(v, out);
}

/**
 * A copy of the batch at `pos` with the origin headers appended to its last record (the last
 * record's source offset = baseOffset + lastOffsetDelta) and batchLength updated. Producer fields
 * and CRC are left for the producer to set. Throws when the records' framing is not what the
 * header says (the stored batch passed deep verification on append, so that is a bug or bit rot).
 */
export function withBatchOrigin(buf: Uint8Array, pos: number, h: BatchHeader, origin: Origin): Uint8Array {
  const end = pos + h.totalBytes;
  // Walk the length prefixes to the last record (no record is decoded).
  let at = pos + RECORDS;
  for (let i = 0; i < h.recordCount - 1; i++) {
    const len = readVarint(buf, at);
    at += len.bytes + len.value;
  }
  const lastStart = at;
  const len = readVarint(buf, lastStart);
  const bodyStart = lastStart + len.bytes;
  const bodyEnd = bodyStart + len.value;
  if (bodyEnd !== end) throw new Error(`batch at offset ${h.baseOffset}: records end at byte ${bodyEnd - pos}, batch at ${h.totalBytes}`);
  // Inside the last record: attributes, timestamp delta, offset delta, key, value, then the header count.
  let p = bodyStart + 1;
  p += varlongBytes(buf, p);
  p += readVarint(buf, p).bytes;
  const keyLen = readVarint(buf, p);
  p += keyLen.bytes + Math.max(0, keyLen.value);
  const valueLen = readVarint(buf, p);
  p += valueLen.bytes + Math.max(0, valueLen.value);
  const count = readVarint(buf, p);
  const headersStart = p + count.bytes;
  const added: number[] = [];
  encodeHeader(ORIGIN_SITE, origin.site, added);
  encodeHeader(ORIGIN_TOPIC, origin.topic, added);
  encodeHeader(ORIGIN_PARTITION, String(origin.partition), added);
  encodeHeader(ORIGIN_OFFSET, String(h.baseOffset + h.lastOffsetDelta), added);
  const newCount: number[] = [];
  writeVarint(count.value + 4, newCount);
  const newBodyBytes = (p - bodyStart) + newCount.length + (bodyEnd - headersStart) + added.length;
  const newLen: number[] = [];
  writeVarint(newBodyBytes, newLen);
  const out = new Uint8Array((lastStart - pos) + newLen.length + newBodyBytes);
  out.set(buf.subarray(pos, lastStart), 0);
  let o = lastStart - pos;
  out.set(newLen, o);
  o += newLen.length;
  out.set(buf.subarray(bodyStart, p), o);
  o += p - bodyStart;
  out.set(newCount, o);
  o += newCount.length;
  out.set(buf.subarray(headersStart, bodyEnd), o);
  o += bodyEnd - headersStart;
  out.set(added, o);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setInt32(BATCH_LENGTH, out.byteLength - LOG_OVERHEAD);
  return out;
}
