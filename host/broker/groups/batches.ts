// Walks the records of stored RecordBatch v2 bytes (as `BrokerApi.read` returns them) with the
// wasm core: CRC checked, compacted batches (gaps in offsets) accepted, control batches skipped.
import { decodeBatches } from '../../core/index.js';

export function forEachRecord(
  bytes: Uint8Array,
  onRecord: (offset: number, key: Uint8Array | null, value: Uint8Array | null) => void,
  onBatch: (lastOffset: number) => void,
): void {
  for (const batch of decodeBatches(bytes, { partialTail: 'ignore', strictOffsets: false })) {
    onBatch(batch.header.lastOffset);
    if (batch.header.isControl) continue;
    for (const r of batch.records) onRecord(r.offset, r.key, r.value);
  }
}
