// Purpose: zstd loads at its first use, not at start (issue 14's footprint: zstd-napi's native
// addon costs ~1 MiB on every node), and codecReport — what the ready line prints — says which
// codecs are loaded, which wait for first use and which are missing. This file imports the codec
// module fresh (tap runs each file in its own process), so "not loaded yet" is real.
import t from 'tap';
import { createRequire } from 'node:module';
import { codecReport, codecSupport, compress, decompress } from '../../../host/core/compression.js';

const require = createRequire(import.meta.url);
const zstdNapiLoaded = () => Object.keys(require.cache).some((p) => /node_modules\/zstd-napi\//.test(p));

t.test('codec report: gzip, snappy and lz4 are loaded at start; zstd waits for its first use', async (t) => {
  const before = codecReport();
  t.same(before.gzip, { state: 'loaded', by: 'node:zlib' });
  t.same(before.snappy, { state: 'loaded', by: 'wasm core' });
  t.same(before.lz4, { state: 'loaded', by: 'wasm core' });
  t.notOk(zstdNapiLoaded(), 'zstd-napi is not in the module cache before a zstd batch');
  t.equal(codecSupport().gzip.compress && codecSupport().lz4.compress, true, 'asking about gzip and lz4 (a topic with compression.type=gzip does)');
  t.notOk(zstdNapiLoaded(), 'does not load zstd either');
  if (before.zstd.state === 'unavailable') {
    t.match(before.zstd.reason, /zstd-napi/, `zstd unavailable, with the reason: ${before.zstd.reason}`);
    t.throws(() => decompress(4, new Uint8Array([0x28, 0xb5, 0x2f, 0xfd]), 1024), { code: 'UNSUPPORTED_COMPRESSION_TYPE' });
    return;
  }
  t.equal(before.zstd.state, 'lazy', `zstd: ${before.zstd.by}, loaded at first use`);
  const text = new TextEncoder().encode('a record section, '.repeat(100));
  if (before.zstd.by === 'zstd-napi') {
    const packed = compress(4, text);
    t.ok(packed.byteLength < text.byteLength, 'the first zstd compress works (and loads zstd-napi)');
    t.same(decompress(4, packed, text.byteLength), text, 'round trip');
    t.ok(zstdNapiLoaded(), 'zstd-napi is loaded now');
    t.same(codecReport().zstd, { state: 'loaded', by: 'zstd-napi' }, 'the report says loaded');
  } else {
    t.throws(() => compress(4, text), { code: 'UNSUPPORTED_COMPRESSION_TYPE' }, 'fzstd decompresses only');
    t.equal(codecReport().zstd.state, 'loaded');
  }
});
