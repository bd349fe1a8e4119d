// Splitting decoded records into produce-sized batches (the uplink's decoding path, the downlink's
// local appends): by record count and by an estimate of the encoded bytes from above.
import type { RecordInput } from '../core/index.js';

/** Per-record framing and header overhead assumed when sizing a batch (varints, lengths, attributes). */
const RECORD_OVERHEAD_BYTES = 40;

function recordBytes(r: RecordInput): number {
  let n = RECORD_OVERHEAD_BYTES + (r.key?.length ?? 0) + (r.value?.length ?? 0);
  for (const h of r.headers ?? []) n += h.key.length + (h.value?.length ?? 0) + 10;
  return n;
}

/** Consecutive slices of `records`, each at most `recordsMax` records and `bytesMax` estimated bytes (one record alone may pass it). */
export function splitBatches(records: RecordInput[], recordsMax: number, bytesMax: number): Array<{ from: number; records: RecordInput[] }> {
  const out: Array<{ from: number; records: RecordInput[] }> = [];
  let from = 0;
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    const b = recordBytes(records[i]);
    if (i > from && (i - from >= recordsMax || bytes + b > bytesMax)) {
      out.push({ from, records: records.slice(from, i) });
      from = i;
      bytes = 0;
    }
    bytes += b;
  }
  if (from < records.length) out.push({ from, records: records.slice(from) });
  return out;
}

