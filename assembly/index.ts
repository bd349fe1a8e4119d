// Exports of the wasm core: every function takes (ptr, len) regions of linear memory and
// returns a length or a status, never a managed object. One line per module.
export { heapBase } from './arena';
export { crc32c, crc32cUpdate } from './crc32c';
export { varintWrite, varlongWrite, varintRead, varlongRead, varintReadLength } from './bytes';
export { walkRecords, encodeRecords, sealBatch, lastErrorRecord } from './record-batch';
export { lz4FrameCompress, lz4FrameCompressBound, lz4FrameDecompress, lz4BlockCompress, lz4BlockDecompress, lz4ErrorOffset, xxhash32 } from './lz4';
export { snappyRawCompress, snappyRawCompressBound, snappyRawDecompress, snappyXerialCompress, snappyXerialCompressBound, snappyDecompress, snappyIsXerial, snappyErrorOffset } from './snappy';
