// RecordBatch v2 records: encode from a packed host layout, walk (verify and/or index) for decode.
//
// Batch layout (Kafka DefaultRecordBatch, magic 2; all header integers big-endian):
//   0 baseOffset int64 | 8 batchLength int32 | 12 partitionLeaderEpoch int32 | 16 magic int8
//   17 crc uint32 (CRC-32C of bytes 21..end) | 21 attributes int16 | 23 lastOffsetDelta int32
//   27 baseTimestamp int64 | 35 maxTimestamp int64 | 43 producerId int64 | 51 producerEpoch int16
//   53 baseSequence int32 | 57 recordCount int32 | 61 records (possibly compressed)
// Record (varint = zigzag varint, varlong = zigzag varlong):
//   length varint (bytes after this field) | attributes int8 | timestampDelta varlong
//   offsetDelta varint | keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//   headerCount varint | headers: keyLength varint (>= 0) | key | valueLength varint (-1 = null) | value
//
// The batch header is written and read by the host (plain DataView work); the core does the
// per-record work and the CRC, one call per batch.
import {
  cursor, limit, readFailed, readVaru32, readVarlong, readVarint, storeBE32,
  varuSize32, varuSize64, writeVaru32, writeVaru64, zigzag32, zigzag64,
} from './bytes';
import { crc32cUpdate } from './crc32c';

const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;

// Status codes (negative); the host maps them to BrokerErrors. Keep in sync with host/core/batch.ts.
const E_TRUNCATED: i32 = -1; // a field runs past the end of the records
const E_RECORD_LENGTH: i32 = -2; // record length negative, past the end, or disagrees with its fields
const E_KEY_LENGTH: i32 = -3;
const E_VALUE_LENGTH: i32 = -4;
const E_HEADER_COUNT: i32 = -5;
const E_HEADER_KEY: i32 = -6;
const E_HEADER_VALUE: i32 = -7;
const E_TRAILING_BYTES: i32 = -8; // bytes left after `count` records
const E_TABLE_FULL: i32 = -9; // host-supplied table too small (host sizing error)
const E_OFFSET_DELTA: i32 = -10;
const E_COUNT: i32 = -11; // count negative or impossible for the byte length
const E_OUT_OF_SPACE: i32 = -12; // encode: output capacity too small

let errorRecord: i32 = -1;

/** Index of the record that failed the last walk (-1 when the failure is not tied to one). */
export function lastErrorRecord(): i32 {
  return errorRecord;
}

// Smallest possible record: length, attributes, timestampDelta, offsetDelta, keyLength,
// valueLength, headerCount — one byte each.
const MIN_RECORD_BYTES: usize = 7;

/**
 * Walks `count` records in [ptr, ptr+len): every varint bounded, every length inside its
 * record, every record inside the region, no trailing bytes. When `table` is non-zero writes
 * one 32-byte entry per record (i32 × 8: timestampDelta lo, hi, offsetDelta, keyOffset,
 * keyLength, valueOffset, valueLength, headerCount; offsets relative to ptr, -1 length = null)
 * and one 16-byte entry per header at `headerTable` (keyOffset, keyLength, valueOffset,
 * valueLength), at most headerCap entries.
 * Offset deltas: strict != 0 requires offsetDelta == index; otherwise strictly increasing and
 * <= lastOffsetDelta (compacted batches keep gaps).
 * Returns the number of headers, or a negative status (lastErrorRecord() names the record).
 */
export function walkRecords(
  ptr: usize, len: usize, count: i32, table: usize, headerTable: usize, headerCap: i32,
  strict: i32, lastOffsetDelta: i32,
): i32 {
  errorRecord = -1;
  if (count < 0 || <usize>count > len / MIN_RECORD_BYTES) return E_COUNT;
  const end = ptr + len;
  cursor = ptr;
  limit = end;
  readFailed = false;
  let headers: i32 = 0;
  let prevDelta: i32 = -1;
  for (let i: i32 = 0; i < count; i++) {
    errorRecord = i;
    // record length
    limit = end;
    const bodyLen = readVarint();
    if (readFailed) return E_TRUNCATED;
    if (bodyLen < <i32>(MIN_RECORD_BYTES - 1) || <usize>bodyLen > end - cursor) return E_RECORD_LENGTH;
    const recEnd = cursor + <usize>bodyLen;
    limit = recEnd;
    cursor++; // attributes (unused in v2)
    const tsDelta = readVarlong();
    const offDelta = readVarint();
    if (readFailed) return E_RECORD_LENGTH;
    if (strict) {
      if (offDelta != i) return E_OFFSET_DELTA;
    } else if (offDelta <= prevDelta || offDelta > lastOffsetDelta) return E_OFFSET_DELTA;
    prevDelta = offDelta;
    const keyLen = readVarint();
    if (readFailed) return E_RECORD_LENGTH;
    if (keyLen < -1 || (keyLen > 0 && <usize>keyLen > recEnd - cursor)) return E_KEY_LENGTH;
    const keyOff = cursor - ptr;
    if (keyLen > 0) cursor += <usize>keyLen;
    const valLen = readVarint();
    if (readFailed) return E_RECORD_LENGTH;
    if (valLen < -1 || (valLen > 0 && <usize>valLen > recEnd - cursor)) return E_VALUE_LENGTH;
    const valOff = cursor - ptr;
    if (valLen > 0) cursor += <usize>valLen;
    const hc = readVarint();
    if (readFailed) return E_RECORD_LENGTH;
    if (hc < 0 || <usize>hc > (recEnd - cursor) / 2) return E_HEADER_COUNT;
    if (table) {
      const e = table + (<usize>i << 5);
      store<i64>(e, tsDelta);
      store<i32>(e, offDelta, 8);
      store<i32>(e, <i32>keyOff, 12);
      store<i32>(e, keyLen, 16);
      store<i32>(e, <i32>valOff, 20);
      store<i32>(e, valLen, 24);
      store<i32>(e, hc, 28);
    }
    for (let h: i32 = 0; h < hc; h++) {
      const hkLen = readVarint();
      if (readFailed) return E_RECORD_LENGTH;
      if (hkLen < 0 || <usize>hkLen > recEnd - cursor) return E_HEADER_KEY;
      const hkOff = cursor - ptr;
      cursor += <usize>hkLen;
      const hvLen = readVarint();
      if (readFailed) return E_RECORD_LENGTH;
      if (hvLen < -1 || (hvLen > 0 && <usize>hvLen > recEnd - cursor)) return E_HEADER_VALUE;
      const hvOff = cursor - ptr;
      if (hvLen > 0) cursor += <usize>hvLen;
      if (table) {
        if (headers >= headerCap) return E_TABLE_FULL;
        const e = headerTable + (<usize>headers << 4);
        store<i32>(e, <i32>hkOff);
        store<i32>(e, hkLen, 4);
        store<i32>(e, <i32>hvOff, 8);
        store<i32>(e, hvLen, 12);
      }
      headers++;
    }
    if (cursor != recEnd) return E_RECORD_LENGTH;
  }
  errorRecord = -1;
  if (cursor != end) return E_TRAILING_BYTES;
  return headers;
}

/**
 * Encodes `count` records described by the host into [out, out+outCap).
 * Descriptor stream at `desc` (i32 each), per record: timestampDelta lo, hi, keyLength,
 * valueLength, headerCount, then per header: keyLength, valueLength (-1 = null for key/value
 * and header values). The bytes of key, value, then each header's key and value follow one
 * another in the data stream at `data`. Offset deltas are the record indexes.
 * Returns bytes written, or E_OUT_OF_SPACE.
 */
export function encodeRecords(desc: usize, count: i32, data: usize, out: usize, outCap: usize): i32 {
  let d = desc;
  let src = data;
  let o = out;
  const outEnd = out + outCap;
  for (let i: i32 = 0; i < count; i++) {
    const tsDelta = load<i64>(d);
    const keyLen = load<i32>(d, 8);
    const valLen = load<i32>(d, 12);
    const hc = load<i32>(d, 16);
    const tsZ = zigzag64(tsDelta);
    const keyZ = zigzag32(keyLen);
    const valZ = zigzag32(valLen);
    const hcZ = zigzag32(hc);
    const offZ = zigzag32(i);
    let body: usize = 1 + varuSize64(tsZ) + varuSize32(offZ) + varuSize32(keyZ) + varuSize32(valZ) + varuSize32(hcZ);
    if (keyLen > 0) body += <usize>keyLen;
    if (valLen > 0) body += <usize>valLen;
    let hd = d + 20;
    for (let h: i32 = 0; h < hc; h++) {
      const hk = load<i32>(hd);
      const hv = load<i32>(hd, 4);
      body += varuSize32(zigzag32(hk)) + varuSize32(zigzag32(hv)) + <usize>hk;
      if (hv > 0) body += <usize>hv;
      hd += 8;
    }
    const bodyZ = zigzag32(<i32>body);
    if (<usize>(outEnd - o) < body + varuSize32(bodyZ)) return E_OUT_OF_SPACE;
    o = writeVaru32(o, bodyZ);
    store<u8>(o++, 0);
    o = writeVaru64(o, tsZ);
    o = writeVaru32(o, offZ);
    o = writeVaru32(o, keyZ);
    if (keyLen > 0) {
      memory.copy(o, src, <usize>keyLen);
      o += <usize>keyLen;
      src += <usize>keyLen;
    }
    o = writeVaru32(o, valZ);
    if (valLen > 0) {
      memory.copy(o, src, <usize>valLen);
      o += <usize>valLen;
      src += <usize>valLen;
    }
    o = writeVaru32(o, hcZ);
    hd = d + 20;
    for (let h: i32 = 0; h < hc; h++) {
      const hk = load<i32>(hd);
      const hv = load<i32>(hd, 4);
      o = writeVaru32(o, zigzag32(hk));
      memory.copy(o, src, <usize>hk);
      o += <usize>hk;
      src += <usize>hk;
      o = writeVaru32(o, zigzag32(hv));
      if (hv > 0) {
        memory.copy(o, src, <usize>hv);
        o += <usize>hv;
        src += <usize>hv;
      }
      hd += 8;
    }
    d = hd;
  }
  return <i32>(o - out);
}

/** Computes the CRC-32C of bytes 21..len of the batch at ptr and stores it (big-endian) at 17. */
export function sealBatch(ptr: usize, len: usize): u32 {
  const crc = ~crc32cUpdate(0xffffffff, ptr + ATTRIBUTES_OFFSET, len - ATTRIBUTES_OFFSET);
  storeBE32(ptr + CRC_OFFSET, crc);
  return crc;
}
