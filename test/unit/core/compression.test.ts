// Batch compression dispatch: each codec round trips, cross-checks with libraries nobody here
// wrote (node:zlib, fzstd, snappyjs, lz4-napi), bounds on output, and unknown codecs refused.
import t from 'tap';
import { createRequire } from 'node:module';
import { gunzipSync, gzipSync } from 'node:zlib';
import { BrokerError } from '../../../host/errors/index.js';
import { codecSupport, compress, decompress, decompressZstdWith } from '../../../host/core/compression.js';

const require = createRequire(import.meta.url);
const support = codecSupport();

function sensorJson(n: number): Uint8Array {
  const parts: string[] = [];
  let i = 0;
  let len = 0;
  while (len < n) {
    const s = `{"site":"plant-${i % 7}","sensor":"temp-${i % 113}","ts":${1_700_000_000_000 + i * 250},"value":${(20 + Math.sin(i) * 5).toFixed(3)},"unit":"C"}\n`;
    parts.push(s);
    len += s.length;
    i++;
  }
  return new TextEncoder().encode(parts.join('')).subarray(0, n);
}

const data = sensorJson(200_000);

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

t.test('compression: none passes bytes through', async (t) => {
  t.equal(compress(0, data), data);
  t.equal(decompress(0, data, data.byteLength), data);
});

t.test('compression: gzip round trips and interoperates with node:zlib', async (t) => {
  const z = compress(1, data);
  t.ok(z.byteLength < data.byteLength / 3, `ratio ${(data.byteLength / z.byteLength).toFixed(1)}`);
  t.same(Buffer.from(gunzipSync(z)), Buffer.from(data), 'zlib reads ours');
  t.same(Buffer.from(decompress(1, gzipSync(data), data.byteLength)), Buffer.from(data), 'we read zlib');
  const err = caught(() => decompress(1, z, data.byteLength - 1));
  t.ok(err instanceof BrokerError && err.code === 'CORRUPT_MESSAGE' && /limit of/.test(err.message), 'one byte under the size is refused');
  const bad = caught(() => decompress(1, new Uint8Array([1, 2, 3, 4]), 100));
  t.ok(bad instanceof BrokerError && bad.code === 'CORRUPT_MESSAGE', 'garbage is corrupt');
});

t.test('compression: zstd round trips; fzstd (independent) reads what we write', { skip: support.zstd.compress ? false : 'zstd-napi not available' }, async (t) => {
  const z = compress(4, data);
  t.ok(z.byteLength < data.byteLength / 3);
  t.same(Buffer.from(decompress(4, z, data.byteLength)), Buffer.from(data));
  const fzstd = require('fzstd') as { decompress(d: Uint8Array): Uint8Array };
  t.same(Buffer.from(fzstd.decompress(z)), Buffer.from(data), 'fzstd agrees');
  const err = caught(() => decompress(4, z, data.byteLength - 1));
  t.ok(err instanceof BrokerError && err.code === 'CORRUPT_MESSAGE', 'bounded');
  const trunc = caught(() => decompress(4, z.subarray(0, z.byteLength - 5), data.byteLength));
  t.ok(trunc instanceof BrokerError && trunc.code === 'CORRUPT_MESSAGE', `truncated frame: ${String(trunc)}`);
});

t.test('compression: the fzstd fallback decoder reads zstd-napi frames with the same bounds', { skip: support.zstd.compress ? false : 'zstd-napi not available' }, async (t) => {
  const z = compress(4, data);
  t.same(Buffer.from(decompressZstdWith('fzstd', z, data.byteLength)), Buffer.from(data));
  const over = caught(() => decompressZstdWith('fzstd', z, data.byteLength - 1));
  t.ok(over instanceof BrokerError && over.code === 'CORRUPT_MESSAGE' && /limit of/.test(over.message), `bounded: ${String(over)}`);
  for (const cut of [20, z.byteLength >> 1, z.byteLength - 3]) {
    const bad = caught(() => decompressZstdWith('fzstd', z.subarray(0, cut), data.byteLength));
    t.ok(bad instanceof BrokerError && bad.code === 'CORRUPT_MESSAGE', `truncated at ${cut}: ${String(bad)}`);
    const bad2 = caught(() => decompressZstdWith('zstd-napi', z.subarray(0, cut), data.byteLength));
    t.ok(bad2 instanceof BrokerError && bad2.code === 'CORRUPT_MESSAGE', `zstd-napi truncated at ${cut}: ${String(bad2)}`);
  }
  const bomb = compress(4, new Uint8Array(32 << 20));
  const refused = caught(() => decompressZstdWith('fzstd', bomb, 1 << 20));
  t.ok(refused instanceof BrokerError && refused.code === 'CORRUPT_MESSAGE', 'a 32 MiB bomb stops at 1 MiB');
});

t.test('compression: snappy (xerial) round trips and reads snappyjs raw blocks', { skip: support.snappy.compress ? false : 'snappy module not available' }, async (t) => {
  const z = compress(2, data);
  t.same(Buffer.from(decompress(2, z, data.byteLength)), Buffer.from(data));
  const snappyjs = require('snappyjs') as { compress(d: Uint8Array): Uint8Array };
  t.same(Buffer.from(decompress(2, snappyjs.compress(data), data.byteLength)), Buffer.from(data), 'raw snappy from snappyjs');
  const err = caught(() => decompress(2, z, data.byteLength - 1));
  t.ok(err instanceof BrokerError && err.code === 'CORRUPT_MESSAGE', 'bounded');
});

t.test('compression: lz4 frames round trip and lz4-napi reads them', { skip: support.lz4.compress ? false : 'lz4 module not available' }, async (t) => {
  const z = compress(3, data);
  t.same(Buffer.from(decompress(3, z, data.byteLength)), Buffer.from(data));
  const lz4napi = require('lz4-napi') as { decompressFrameSync(d: Uint8Array): Buffer; compressFrameSync(d: Uint8Array): Buffer };
  t.same(Buffer.from(lz4napi.decompressFrameSync(Buffer.from(z))), Buffer.from(data), 'lz4-napi reads our frame');
  t.same(Buffer.from(decompress(3, lz4napi.compressFrameSync(Buffer.from(data)), data.byteLength)), Buffer.from(data), 'we read lz4-napi frames');
  const err = caught(() => decompress(3, z, data.byteLength - 1));
  t.ok(err instanceof BrokerError && err.code === 'CORRUPT_MESSAGE', 'bounded');
});

t.test('compression: undefined codecs are UNSUPPORTED_COMPRESSION_TYPE', async (t) => {
  for (const codec of [5, 6, 7, -1]) {
    for (const fn of [() => compress(codec, data), () => decompress(codec, data, 1000)]) {
      const err = caught(fn);
      t.ok(err instanceof BrokerError && err.code === 'UNSUPPORTED_COMPRESSION_TYPE', `codec ${codec}`);
    }
  }
});

t.test('compression: support report lists every codec', async (t) => {
  t.same(Object.keys(support).sort(), ['gzip', 'lz4', 'none', 'snappy', 'zstd']);
  t.ok(support.gzip.compress && support.gzip.decompress);
});
