// Stored batches → records for the gateway, decoded once with the core (one wasm call per
// batch). Control batches (transaction markers) carry no user records but still move the
// cursor past their offsets.
import { decodeBatches } from '../../host/core/index.js';
import type { OutRecord } from './protocol.js';

export interface DecodedRange {
  /** Records with offset >= fromOffset, in offset order. */
  records: OutRecord[];
  /** The offset after the last batch read (a compacted batch's gaps included). */
  nextOffset: number;
}

/** Decodes whole stored batches; records below `fromOffset` (the first batch may start earlier) are dropped. */
export function decodeStored(bytes: Uint8Array, fromOffset: number): DecodedRange {
  const batches = decodeBatches(bytes, { partialTail: 'ignore' });
  const records: OutRecord[] = [];
  let nextOffset = fromOffset;
  for (const b of batches) {
    nextOffset = Math.max(nextOffset, b.header.baseOffset + b.header.lastOffsetDelta + 1);
    if (b.header.isControl) continue;
    for (const r of b.records) if (r.offset >= fromOffset) records.push(r);
  }
  return { records, nextOffset };
}
