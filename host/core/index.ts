// The core's host API: CRC-32C, RecordBatch v2 layout, encode/decode/verify, compression.
// Everything here is synchronous and runs one wasm call per batch (never per record).
export { crc32c, crc32cRange, crc32cUpdateRange } from './crc32c.js';
export * from './batch-layout.js';
export {
  encodeBatch, decodeBatch, decodeBatches, verifyBatches, defaultVerifyOptions,
  type RecordInput, type EncodeOptions, type VerifyOptions, type DecodeOptions, type DecodedBatch, type DecodedRecord, type DecodedHeader,
} from './batch.js';
export { compress, decompress, codecSupport, codecReport, CODEC_NAMES, type CodecName, type CodecState } from './compression.js';
