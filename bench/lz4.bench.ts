// LZ4: the wasm core against lz4js (pure JS), lz4-wasm-nodejs and @platformatic/wasm-utils
// (Rust lz4_flex compiled to wasm) and lz4-napi (Rust lz4_flex, native). MB/s of input per
// second, median of interleaved repetitions; the copy into (and out of) wasm memory is
// included for every wasm codec because each one's API takes and returns JS arrays.
import { createRequire } from 'node:module';
import type { Table } from './table.js';
import { codecInputs, measureCodecs, resultRows, type CodecUnderTest } from './codec-inputs.js';
import { lz4FrameCompress, lz4FrameDecompress, lz4FrameDecompressView } from '../host/core/lz4.js';

export const subject = 'lz4';
export const order = 20;

const require = createRequire(import.meta.url);

interface Lz4Js {
  compress(src: Uint8Array): Uint8Array;
  decompress(src: Uint8Array, maxSize?: number): Uint8Array;
}
interface Lz4Napi {
  compressFrameSync(src: Buffer): Buffer;
  decompressFrameSync(src: Buffer): Buffer;
}
interface Lz4Wasm {
  compress(src: Uint8Array): Uint8Array;
  decompress(src: Uint8Array): Uint8Array;
}
interface WasmUtils {
  lz4Compress(src: Buffer): Buffer;
  lz4Decompress(src: Buffer): Buffer;
}

export async function lz4Codecs(): Promise<CodecUnderTest[]> {
  const lz4js = require('lz4js') as Lz4Js;
  const napi = require('lz4-napi') as Lz4Napi;
  const lw = require('lz4-wasm-nodejs') as Lz4Wasm;
  const pw = (await import('@platformatic/wasm-utils')) as unknown as WasmUtils;
  return [
    { name: 'tributary core (AS→wasm)', format: 'frame', compress: (s) => lz4FrameCompress(s), decompress: (p, n) => lz4FrameDecompress(p, n) },
    { name: 'tributary core, view out (AS→wasm)', format: 'frame', compress: (s) => lz4FrameCompress(s), decompress: (p, n) => lz4FrameDecompressView(p, n) },
    { name: 'lz4-wasm-nodejs (Rust→wasm)', format: 'block+size', rustWasm: true, compress: (s) => lw.compress(s), decompress: (p) => lw.decompress(p) },
    { name: '@platformatic/wasm-utils (Rust→wasm)', format: 'frame', rustWasm: true, compress: (s) => pw.lz4Compress(s), decompress: (p) => pw.lz4Decompress(p as Buffer) },
    { name: 'lz4js (JS)', format: 'frame', compress: (s) => lz4js.compress(s), decompress: (p, n) => lz4js.decompress(p, n) },
    { name: 'lz4-napi (native)', format: 'frame', compress: (s) => napi.compressFrameSync(s), decompress: (p) => napi.decompressFrameSync(p as Buffer) },
  ];
}

export async function run(): Promise<Table[]> {
  const reps = Number(process.env.BENCH_REPS ?? 15);
  const sliceMs = Number(process.env.BENCH_SLICE_MS ?? 20);
  const codecs = await lz4Codecs();
  for (const c of codecs) {
    // Outputs of compress must be Buffers for the peers that require them.
    const inner = c.compress;
    c.compress = (s) => {
      const out = inner(s);
      return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    };
  }
  const results = measureCodecs(codecs, codecInputs(), reps, sliceMs);
  return [
    {
      title: 'LZ4 compress / decompress (MB/s of uncompressed bytes)',
      columns: ['input', 'codec', 'format', 'compress MB/s', 'decompress MB/s', 'ratio', 'core vs best Rust→wasm (c / d)'],
      rows: resultRows(results, codecs[0].name),
      notes: [
        `Median of ${reps} interleaved repetitions of ~${sliceMs} ms per codec and direction; copies into and out of wasm memory included.`,
        'Target: core ≥ 1.0× the best Rust→wasm build on compress and decompress at the same or better ratio.',
        '"view out" decompresses into wasm memory and returns a view (valid until the next core call; what the broker uses to walk records in place) instead of copying into a new array.',
        'lz4-wasm-nodejs writes a raw LZ4 block with a 4-byte size prefix (not a frame), so its ratio has no frame or 64 KiB block boundaries.',
      ],
    },
  ];
}
