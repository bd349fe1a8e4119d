// LZ4 frame format (as Kafka writes and reads it) over the wasm core. Placeholder until the
// AssemblyScript codec lands; signatures are the contract compression.ts imports.
import { BrokerError } from '../errors/index.js';

/** Compresses `src` into one LZ4 frame (version 01, independent blocks, KIP-57 header checksum). */
export function lz4FrameCompress(src: Uint8Array): Uint8Array {
  void src;
  throw new Error('not implemented yet');
}

/** Decodes one LZ4 frame; throws BrokerError('CORRUPT_MESSAGE') on malformed input or output over maxOutBytes. */
export function lz4FrameDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array {
  void src;
  void maxOutBytes;
  void BrokerError;
  throw new Error('not implemented yet');
}
