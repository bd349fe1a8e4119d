// Snappy: the wasm core against snappyjs (pure JS), @platformatic/wasm-utils (Rust snap crate
// compiled to wasm) and snappy (Rust snap crate, native napi). MB/s of input per second,
// median of interleaved repetitions; copies into and out of wasm memory included.
//
// Every peer writes one raw snappy block, so the core is measured twice: in xerial framing
// (what Kafka's Java producer writes and what the broker writes) and as one raw block (the
// like-for-like comparison with the peers).
import { createRequire } from 'node:module';
import type { Table } from './table.js';
import { codecInputs, measureCodecs, resultRows, type CodecUnderTest } from './codec-inputs.js';
import { snappyCompress, snappyDecompress, snappyDecompressView, snappyRawCompress, snappyRawDecompress } from '../host/core/snappy.js';

export const subject = 'snappy';
export const order = 21;

const require = createRequire(import.meta.url);

interface SnappyJs {
  compress(src: Uint8Array): Uint8Array;
  uncompress(src: Uint8Array, maxLength?: number): Uint8Array;
}
interface SnappyNapi {
  compressSync(src: Uint8Array): Buffer;
  uncompressSync(src: Uint8Array, options?: { asBuffer?: boolean }): Buffer | string;
}
interface WasmUtils {
  snappyCompress(src: Buffer): Buffer;
  snappyDecompress(src: Buffer): Buffer;
}

export async function snappyCodecs(): Promise<CodecUnderTest[]> {
  const sjs = require('snappyjs') as SnappyJs;
  const napi = require('snappy') as SnappyNapi;
  const pw = (await import('@platformatic/wasm-utils')) as unknown as WasmUtils;
  return [
    { name: 'tributary core raw (AS→wasm)', format: 'raw', compress: (s) => snappyRawCompress(s), decompress: (p, n) => snappyRawDecompress(p, n) },
    { name: 'tributary core xerial (AS→wasm)', format: 'xerial', compress: (s) => snappyCompress(s), decompress: (p, n) => snappyDecompress(p, n) },
    { name: 'tributary core xerial, view out (AS→wasm)', format: 'xerial', compress: (s) => snappyCompress(s), decompress: (p, n) => snappyDecompressView(p, n) },
    { name: '@platformatic/wasm-utils (Rust→wasm)', format: 'raw', rustWasm: true, compress: (s) => pw.snappyCompress(s), decompress: (p) => pw.snappyDecompress(p as Buffer) },
    { name: 'snappyjs (JS)', format: 'raw', compress: (s) => sjs.compress(s), decompress: (p, n) => sjs.uncompress(p, n) },
    { name: 'snappy (native)', format: 'raw', compress: (s) => napi.compressSync(s), decompress: (p) => napi.uncompressSync(p, { asBuffer: true }) as Buffer },
  ];
}

export async function run(): Promise<Table[]> {
  const reps = Number(process.env.BENCH_REPS ?? 15);
  const sliceMs = Number(process.env.BENCH_SLICE_MS ?? 20);
  const codecs = await snappyCodecs();
  for (const c of codecs) {
    const inner = c.compress;
    c.compress = (s) => {
      const out = inner(s);
      return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    };
  }
  const results = measureCodecs(codecs, codecInputs(), reps, sliceMs);
  const rows = resultRows(results, codecs[0].name);
  // The core vs snappyjs (target ≥ 3×), per input.
  const notes: string[] = [];
  for (const input of [...new Set(results.map((r) => r.input))]) {
    const core = results.find((r) => r.input === input && r.codec === codecs[0].name)!;
    const js = results.find((r) => r.input === input && r.codec.startsWith('snappyjs'))!;
    notes.push(`${input}: core raw vs snappyjs ${(core.compressMBs / js.compressMBs).toFixed(2)}× compress, ${(core.decompressMBs / js.decompressMBs).toFixed(2)}× decompress.`);
  }
  return [
    {
      title: 'Snappy compress / decompress (MB/s of uncompressed bytes)',
      columns: ['input', 'codec', 'format', 'compress MB/s', 'decompress MB/s', 'ratio', 'core vs best Rust→wasm (c / d)'],
      rows,
      notes: [
        `Median of ${reps} interleaved repetitions of ~${sliceMs} ms per codec and direction; copies into and out of wasm memory included.`,
        'Targets: core ≥ 1.0× Rust→wasm and ≥ 3× snappyjs on compress and decompress.',
        '"view out" decompresses into wasm memory and returns a view (valid until the next core call) instead of copying into a new array.',
        ...notes,
      ],
    },
  ];
}
