// Child process of codec-memory.bench: runs one codec's compress + decompress loop on 1 MiB
// of sensor JSON for a fixed time and prints one JSON line with its RSS samples. One codec
// per process, so native allocators and wasm memories of different codecs never share a heap.
import { lz4Codecs } from './lz4.bench.js';
import { snappyCodecs } from './snappy.bench.js';
import { sensorJson } from './codec-inputs.js';

const [name, durationArg] = process.argv.slice(2);
const durationMs = Number(durationArg ?? 3000);
const codecs = [...(await lz4Codecs()).map((c) => ({ ...c, name: `lz4 · ${c.name}` })), ...(await snappyCodecs()).map((c) => ({ ...c, name: `snappy · ${c.name}` }))];
const codec = codecs.find((c) => c.name === name);
if (!codec) {
  console.error(`unknown codec ${name}; have: ${codecs.map((c) => c.name).join(', ')}`);
  process.exit(2);
}
const input = sensorJson(1 << 20);
const mib = (n: number) => n / 1048576;
const rssStart = mib(process.memoryUsage.rss());
let rssPeak = rssStart;
let iterations = 0;
let rssWarm = 0;
const started = Date.now();
while (Date.now() - started < durationMs) {
  for (let i = 0; i < 8; i++) {
    const packed = codec.compress(input);
    codec.decompress(packed, input.length);
  }
  iterations += 8;
  rssPeak = Math.max(rssPeak, mib(process.memoryUsage.rss()));
  if (rssWarm === 0 && Date.now() - started >= durationMs / 3) rssWarm = mib(process.memoryUsage.rss());
}
const mem = process.memoryUsage();
console.log(JSON.stringify({ name, iterations, rssStart, rssWarm, rssPeak, rssEnd: mib(mem.rss), heapUsed: mib(mem.heapUsed), external: mib(mem.external), arrayBuffers: mib(mem.arrayBuffers) }));
