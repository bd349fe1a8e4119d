// Compression of the batches the uplink re-encodes (uplink.compression). A raw batch goes as
// stored — its bytes, and so its compression, untouched (host/sync/raw-batch.ts) — but a batch
// that takes the decoding path (too small to go raw, compressed at the source, carrying origin
// headers, or uplink.rawForwarding=false) is built anew, and this is the codec it is built with.
// The codecs are the core's (host/core/compression.ts): lz4 and snappy in the wasm core, gzip in
// node:zlib, zstd when zstd-napi loads. A codec this process cannot compress with stops the node
// at start naming the key, never at the first batch.
//
// The codec names and the start-up check live in options.ts: the config is resolved on every
// node, and this module's producer import would load the Kafka client on nodes without an uplink.
import { encodeBatch, type RecordInput } from '../core/index.js';
import { rawOutgoing, type OutgoingBatch } from '../kafka/client/producer.js';
import { WIRE_COMPRESSIONS, type WireCompression } from './options.js';

/** The codec number in a batch's attributes (Kafka's: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd). */
export function codecOf(name: WireCompression): 0 | 1 | 2 | 3 | 4 {
  return WIRE_COMPRESSIONS.indexOf(name) as 0 | 1 | 2 | 3 | 4;
}

/** Records encoded once into one batch compressed with `codec`; each attempt stamps its producer fields (outside the compressed section). */
export function reencodedOutgoing(records: RecordInput[], codec: 0 | 1 | 2 | 3 | 4): OutgoingBatch {
  return rawOutgoing(encodeBatch(records, { compression: codec }), records.length);
}
