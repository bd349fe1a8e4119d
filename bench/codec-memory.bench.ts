// Memory of each LZ4 / Snappy codec under a sustained compress + decompress loop (1 MiB of
// sensor JSON per call). Each codec runs alone in a child process: RSS at start, peak and end.
// Native codecs allocate outside the V8 heap (memory the GC does not see, so it does not hurry
// to free it); the wasm core works inside its fixed linear memory and returns one JS array
// per call, so its RSS should stay flat.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Table } from './table.js';
import { lz4Codecs } from './lz4.bench.js';
import { snappyCodecs } from './snappy.bench.js';

export const subject = 'codec-memory';
export const order = 22;

const child = fileURLToPath(new URL('./codec-memory-child.js', import.meta.url));

interface ChildReport {
  name: string;
  iterations: number;
  rssStart: number;
  rssWarm: number;
  rssPeak: number;
  rssEnd: number;
  heapUsed: number;
  external: number;
}

export async function run(): Promise<Table[]> {
  const durationMs = Number(process.env.BENCH_MEMORY_MS ?? 3000);
  const names = [...(await lz4Codecs()).map((c) => `lz4 · ${c.name}`), ...(await snappyCodecs()).map((c) => `snappy · ${c.name}`)];
  const rows: (string | number)[][] = [];
  for (const name of names) {
    const r = spawnSync(process.execPath, [child, name, String(durationMs)], { encoding: 'utf8', timeout: durationMs + 60_000 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !line.startsWith('{')) {
      rows.push([name, 'failed', '', '', '', '', '', (r.stderr || String(r.error ?? r.signal)).split('\n')[0].slice(0, 80)]);
      continue;
    }
    const rep = JSON.parse(line) as ChildReport;
    rows.push([name, rep.iterations, Math.round(rep.rssStart), Math.round(rep.rssWarm), Math.round(rep.rssPeak), Math.round(rep.rssEnd), Math.round(rep.rssEnd - rep.rssWarm)]);
  }
  return [
    {
      title: 'LZ4 / Snappy memory under a sustained loop (RSS MiB, one child process per codec)',
      columns: ['codec', 'iterations', 'RSS start', 'RSS after 1/3', 'RSS peak', 'RSS end', 'growth after 1/3'],
      rows,
      notes: [
        `Each child compresses and decompresses 1 MiB of sensor JSON for ${durationMs} ms (8 round-trips between RSS samples).`,
        'Every child loads all codec modules (same baseline); "growth after 1/3" is RSS at the end minus RSS a third of the way in — flat means bounded.',
        'The core\'s wasm memory (fixed size, never grows) is reserved at start; pages it never touches cost no RSS.',
      ],
    },
  ];
}
