// Batch compression codecs (the records section of a RecordBatch is compressed as a whole).
//
//   0 none · 1 gzip (node:zlib) · 2 snappy (wasm core, xerial framing on write; xerial or raw
//   on read) · 3 lz4 (wasm core, LZ4 frame as KIP-57) · 4 zstd (zstd-napi, else fzstd for
//   decode only) · 5-7 undefined.
//
// Every decompression is bounded by `maxOutBytes`: a batch that inflates past it is refused
// (a decompression bomb costs at most that much memory). lz4 and snappy are the wasm core's,
// loaded with it. zstd is loaded at its first use (a compress, a decompress or a codecSupport
// question), not at start: zstd-napi's native addon and libstdc++ cost ~1 MiB of RSS on every
// node, and most edge nodes never see a zstd batch (docs/performance.md#footprint). A codec
// that cannot load answers UNSUPPORTED_COMPRESSION_TYPE when used, and never stops the broker
// from starting. `codecReport()` says at start which codecs exist and which wait for first use.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { BrokerError } from '../errors/index.js';

export const CODEC_NAMES = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
export type CodecName = (typeof CODEC_NAMES)[number];

interface Lz4Module {
  lz4FrameCompress(src: Uint8Array): Uint8Array;
  lz4FrameDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array;
  lz4FrameDecompressView?(src: Uint8Array, maxOutBytes: number): Uint8Array;
}
interface SnappyModule {
  snappyCompress(src: Uint8Array): Uint8Array;
  snappyDecompress(src: Uint8Array, maxOutBytes: number): Uint8Array;
  snappyDecompressView?(src: Uint8Array, maxOutBytes: number): Uint8Array;
}
interface ZstdStreamResult {
  0: number;
  1: number;
  2: number;
}
interface ZstdBinding {
  DCtx: new () => { decompressStream(dst: Uint8Array, src: Uint8Array): ZstdStreamResult };
}
interface ZstdNapi {
  compress(data: Uint8Array, parameters?: { compressionLevel?: number }): Uint8Array;
}
interface Fzstd {
  Decompress: new (ondata: (chunk: Uint8Array, final?: boolean) => unknown) => { push(chunk: Uint8Array, final?: boolean): unknown };
}

/** Why an optional codec is missing (for logs and docs). */
export const codecLoadErrors: Partial<Record<CodecName, string>> = {};

async function optional<T>(name: CodecName, specifier: string, load: () => Promise<unknown>): Promise<T | null> {
  try {
    return (await load()) as T;
  } catch (err) {
    codecLoadErrors[name] = `${specifier}: ${(err as Error).message}`;
    return null;
  }
}

// Literal specifiers, so the bundler (scripts/bundle.mjs) sees and includes them: an import()
// of a variable would resolve against the bundle's directory at run time and miss.
const lz4 = await optional<Lz4Module>('lz4', './lz4.js', () => import('./lz4.js'));
const snappy = await optional<SnappyModule>('snappy', './snappy.js', () => import('./snappy.js'));

const require = createRequire(import.meta.url);

/** zstd once loaded: zstd-napi (compress and decompress), else fzstd (decompress only). */
interface Zstd {
  napi: ZstdNapi | null;
  binding: ZstdBinding | null;
  fzstd: Fzstd | null;
}
let zstdLoaded: Zstd | null = null;

/** Loads zstd at its first use (synchronously: the codec API is synchronous); once. */
function zstd(): Zstd {
  if (zstdLoaded) return zstdLoaded;
  const z: Zstd = { napi: null, binding: null, fzstd: null };
  try {
    z.napi = require('zstd-napi') as ZstdNapi;
    z.binding = require('zstd-napi/binding') as ZstdBinding;
  } catch (err) {
    z.napi = null;
    codecLoadErrors.zstd = `zstd-napi: ${(err as Error).message}`;
  }
  if (!z.binding) z.fzstd = loadFzstd();
  zstdLoaded = z;
  return z;
}

function loadFzstd(): Fzstd | null {
  try {
    return require('fzstd') as Fzstd;
  } catch (err) {
    codecLoadErrors.zstd = `${codecLoadErrors.zstd ?? ''}${codecLoadErrors.zstd ? '; ' : ''}fzstd: ${(err as Error).message}`;
    return null;
  }
}

/** Which codecs this process can compress / decompress (reading `zstd` loads zstd if it was not yet). */
export function codecSupport(): Record<CodecName, { compress: boolean; decompress: boolean }> {
  return {
    none: { compress: true, decompress: true },
    gzip: { compress: true, decompress: true },
    snappy: { compress: snappy !== null, decompress: snappy !== null },
    lz4: { compress: lz4 !== null, decompress: lz4 !== null },
    // A getter: a topic asking for gzip (host/broker/topic-admin.ts) does not load zstd.
    get zstd() {
      const z = zstd();
      return { compress: z.napi !== null, decompress: z.binding !== null || z.fzstd !== null };
    },
  };
}

/** One codec's state for the start-up log: loaded, waiting for its first use, or missing and why. */
export type CodecState = 'loaded' | 'lazy' | 'unavailable';

/**
 * Which codecs this node has, without loading any: gzip (node:zlib), snappy and lz4 (the wasm
 * core) are loaded; zstd is `lazy` when zstd-napi's native build is installed (or fzstd, then
 * decompress only), `loaded` once used, and `unavailable` with the reason when neither is there.
 * What `host/node.ts` logs at start.
 */
export function codecReport(): Record<Exclude<CodecName, 'none'>, { state: CodecState; by: string; reason?: string }> {
  const wasm = (m: unknown, name: CodecName) => (m ? { state: 'loaded' as const, by: 'wasm core' } : { state: 'unavailable' as const, by: 'wasm core', reason: codecLoadErrors[name] ?? 'not built' });
  return { gzip: { state: 'loaded', by: 'node:zlib' }, snappy: wasm(snappy, 'snappy'), lz4: wasm(lz4, 'lz4'), zstd: zstdReport() };
}

function zstdReport(): { state: CodecState; by: string; reason?: string } {
  if (zstdLoaded) {
    if (zstdLoaded.napi) return { state: 'loaded', by: 'zstd-napi' };
    if (zstdLoaded.fzstd) return { state: 'loaded', by: 'fzstd (decompress only)', reason: codecLoadErrors.zstd };
    return { state: 'unavailable', by: 'zstd-napi', reason: codecLoadErrors.zstd };
  }
  // Installed = the package resolves and its native build is on disk (zstd-napi's binding.js
  // requires build/<Release|Debug>/binding.node); whether it loads is known at first use.
  const napiMissing = zstdNapiMissing();
  if (napiMissing === null) return { state: 'lazy', by: 'zstd-napi' };
  try {
    require.resolve('fzstd');
    return { state: 'lazy', by: 'fzstd (decompress only)', reason: napiMissing };
  } catch {
    return { state: 'unavailable', by: 'zstd-napi', reason: `${napiMissing}; fzstd not installed` };
  }
}

function zstdNapiMissing(): string | null {
  let binding: string;
  try {
    binding = require.resolve('zstd-napi/binding');
  } catch {
    return 'zstd-napi not installed';
  }
  const buildType = (process.config.target_defaults as { default_configuration?: string } | undefined)?.default_configuration ?? 'Release';
  const addon = join(dirname(binding), 'build', buildType, 'binding.node');
  return existsSync(addon) ? null : `zstd-napi has no native build (${addon} missing: installed without its build step)`;
}

function unsupported(codec: number, what: string): BrokerError {
  const name = CODEC_NAMES[codec] ?? `codec ${codec}`;
  const why = codec >= 0 && codec < CODEC_NAMES.length ? ` (${codecLoadErrors[CODEC_NAMES[codec]] ?? 'not available'})` : '';
  return new BrokerError('UNSUPPORTED_COMPRESSION_TYPE', `cannot ${what} ${name}${why}`);
}

function bomb(codec: number, maxOutBytes: number): BrokerError {
  return new BrokerError('CORRUPT_MESSAGE', `${CODEC_NAMES[codec]} records inflate past the decompressed size limit of ${maxOutBytes} bytes`);
}

function corrupt(codec: number, err: unknown): BrokerError {
  return new BrokerError('CORRUPT_MESSAGE', `${CODEC_NAMES[codec]} records do not decompress: ${(err as Error).message ?? String(err)}`, { cause: err });
}

/** Compresses a records section with `codec` (1..4). */
export function compress(codec: number, src: Uint8Array): Uint8Array {
  switch (codec) {
    case 0:
      return src;
    case 1:
      return gzipSync(src, { level: 6 });
    case 2:
      if (!snappy) throw unsupported(codec, 'compress');
      return snappy.snappyCompress(src);
    case 3:
      if (!lz4) throw unsupported(codec, 'compress');
      return lz4.lz4FrameCompress(src);
    case 4: {
      const napi = zstd().napi;
      if (!napi) throw unsupported(codec, 'compress');
      return napi.compress(src, { compressionLevel: 3 });
    }
    default:
      throw unsupported(codec, 'compress');
  }
}

/**
 * Decompresses a records section. Errors: UNSUPPORTED_COMPRESSION_TYPE (codec 5-7 or not
 * loaded), CORRUPT_MESSAGE (malformed input, or output past maxOutBytes).
 */
export function decompress(codec: number, src: Uint8Array, maxOutBytes: number): Uint8Array {
  switch (codec) {
    case 0:
      if (src.byteLength > maxOutBytes) throw bomb(codec, maxOutBytes);
      return src;
    case 1:
      try {
        return gunzipSync(src, { maxOutputLength: Math.max(1, maxOutBytes) });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw bomb(codec, maxOutBytes);
        throw corrupt(codec, err);
      }
    case 2:
      if (!snappy) throw unsupported(codec, 'decompress');
      return guarded(codec, maxOutBytes, () => snappy.snappyDecompress(src, maxOutBytes));
    case 3:
      if (!lz4) throw unsupported(codec, 'decompress');
      return guarded(codec, maxOutBytes, () => lz4.lz4FrameDecompress(src, maxOutBytes));
    case 4: {
      const z = zstd();
      if (z.binding) return guarded(codec, maxOutBytes, () => zstdNapiDecompress(z.binding!, src, maxOutBytes));
      if (z.fzstd) return guarded(codec, maxOutBytes, () => fzstdDecompress(z.fzstd!, src, maxOutBytes));
      throw unsupported(codec, 'decompress');
    }
    default:
      throw unsupported(codec, 'decompress');
  }
}

/**
 * zstd through a named decoder, for tests of the fallback path: `decompress(4, ...)` picks
 * zstd-napi when it loaded, else fzstd. Same bounds and errors as decompress.
 */
export function decompressZstdWith(decoder: 'zstd-napi' | 'fzstd', src: Uint8Array, maxOutBytes: number): Uint8Array {
  const z = zstd();
  if (decoder === 'zstd-napi') {
    if (!z.binding) throw unsupported(4, 'decompress');
    return guarded(4, maxOutBytes, () => zstdNapiDecompress(z.binding!, src, maxOutBytes));
  }
  const mod = z.fzstd ?? loadFzstd();
  if (!mod) throw unsupported(4, 'decompress');
  return guarded(4, maxOutBytes, () => fzstdDecompress(mod, src, maxOutBytes));
}

/**
 * As decompress, but the result may be a view of wasm memory (lz4 and snappy decode in the
 * core): valid only until the next call into the core. For callers that use the bytes at once
 * (verifying records in place) and must not pay for a copy.
 */
export function decompressTransient(codec: number, src: Uint8Array, maxOutBytes: number): Uint8Array {
  if (codec === 2 && snappy?.snappyDecompressView) return guarded(codec, maxOutBytes, () => snappy.snappyDecompressView!(src, maxOutBytes));
  if (codec === 3 && lz4?.lz4FrameDecompressView) return guarded(codec, maxOutBytes, () => lz4.lz4FrameDecompressView!(src, maxOutBytes));
  return decompress(codec, src, maxOutBytes);
}

function guarded(codec: number, maxOutBytes: number, fn: () => Uint8Array): Uint8Array {
  let out: Uint8Array;
  try {
    out = fn();
  } catch (err) {
    if (err instanceof BrokerError) throw err;
    if (err instanceof OutputLimit) throw bomb(codec, maxOutBytes);
    throw corrupt(codec, err);
  }
  if (out.byteLength > maxOutBytes) throw bomb(codec, maxOutBytes);
  return out;
}

class OutputLimit extends Error {}

const ZSTD_CHUNK_BYTES = 128 * 1024;

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function zstdNapiDecompress(binding: ZstdBinding, src: Uint8Array, maxOutBytes: number): Uint8Array {
  const dctx = new binding.DCtx();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let input = src;
  let lastRet = 1;
  for (;;) {
    const room = Math.min(ZSTD_CHUNK_BYTES, maxOutBytes - total + 1);
    const dst = new Uint8Array(Math.max(1, room));
    const r = dctx.decompressStream(dst, input);
    const [ret, produced, consumed] = [r[0], r[1], r[2]];
    lastRet = ret;
    if (produced > 0) {
      total += produced;
      if (total > maxOutBytes) throw new OutputLimit();
      chunks.push(dst.subarray(0, produced));
    }
    input = input.subarray(consumed);
    if (input.byteLength === 0 && produced < dst.byteLength) break;
    if (produced === 0 && consumed === 0) throw new Error('zstd stream made no progress');
  }
  if (lastRet !== 0) throw new Error('zstd frame is truncated');
  return concat(chunks, total);
}

function fzstdDecompress(mod: Fzstd, src: Uint8Array, maxOutBytes: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let done = false;
  const d = new mod.Decompress((chunk, final) => {
    total += chunk.byteLength;
    if (total > maxOutBytes) throw new OutputLimit();
    chunks.push(chunk);
    if (final) done = true;
  });
  d.push(src, true);
  if (!done && src.byteLength > 0) throw new Error('zstd frame is truncated');
  return concat(chunks, total);
}
