// Snappy (raw block format and the xerial framing Java clients write) over the wasm core.
// Placeholder until the AssemblyScript codec lands; signatures are the contract compression.ts imports.
import { BrokerError } from '../errors/index.js';

/** Compresses `src` in xerial framing (Java snappy-java SnappyOutputStream), 32 KiB chunks. */
export function snappyCompress(src: Uint8Array): Uint8Array {
  void src;
  throw new Error('not implemented yet');
}

/** Decodes xerial-framed or raw snappy (auto-detected by the xerial magic). */
export function snappyDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array {
  void src;
  void maxOutBytes;
  void BrokerError;
  throw new Error('not implemented yet');
}

/** Compresses `src` as one raw snappy block. */
export function snappyRawCompress(src: Uint8Array): Uint8Array {
  void src;
  throw new Error('not implemented yet');
}

/** Decodes one raw snappy block. */
export function snappyRawDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array {
  void src;
  void maxOutBytes;
  throw new Error('not implemented yet');
}
