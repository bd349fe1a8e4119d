// The raw disk, measured by the bench itself: sequential writes of the same block sizes the log
// bench appends (one RecordBatch each), without fsync, with an fdatasync after every block, and
// with one fdatasync per 64 blocks. This is the ceiling the log is compared against (log.bench
// runs right after, order 31). MB/s, median of interleaved repetitions.
import fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeBatch } from '../host/core/index.js';
import { median, rssMiB, type Table } from './table.js';

export const subject = 'disk';
export const order = 30;

const CELL_MS = Number(process.env.BENCH_DISK_CELL_MS ?? 400);
const REPS = Number(process.env.BENCH_DISK_REPS ?? 3);
/** Cap on bytes written by one no-sync cell (page cache, not the card, is what it measures past this). */
const NOSYNC_BYTES_MAX = 512 * 1024 * 1024;

export interface Workload {
  recordBytes: number;
  batchRecords: number;
}

export const WORKLOADS: Workload[] = [
  { recordBytes: 100, batchRecords: 1 },
  { recordBytes: 100, batchRecords: 16 },
  { recordBytes: 100, batchRecords: 256 },
  { recordBytes: 1024, batchRecords: 1 },
  { recordBytes: 1024, batchRecords: 16 },
  { recordBytes: 1024, batchRecords: 256 },
];

/** One encoded batch for a workload (encoded once, reused). Keys are 8 bytes, values recordBytes. */
export function workloadBatch(w: Workload): Uint8Array {
  const now = Date.now();
  const records = Array.from({ length: w.batchRecords }, (_, i) => ({
    key: Buffer.from(`sensor${String(i % 100).padStart(2, '0')}`),
    value: Buffer.alloc(w.recordBytes, i & 0xff),
    timestampMs: now + i,
  }));
  return encodeBatch(records);
}

export type SyncMode = 'none' | 'every' | 'per64';

/** Writes `block` sequentially for about `ms` (or NOSYNC_BYTES_MAX); returns MB/s and blocks/s. */
export function rawWrite(dir: string, block: Uint8Array, sync: SyncMode, ms = CELL_MS): { mbPerS: number; blocksPerS: number } {
  const path = join(dir, 'raw.bin');
  const fd = fs.openSync(path, 'w');
  let bytes = 0;
  let blocks = 0;
  const t0 = performance.now();
  try {
    for (;;) {
      fs.writeSync(fd, block, 0, block.byteLength, bytes);
      bytes += block.byteLength;
      blocks++;
      if (sync === 'every' || (sync === 'per64' && blocks % 64 === 0)) fs.fdatasyncSync(fd);
      if ((blocks & 15) === 0 && (performance.now() - t0 > ms || bytes > NOSYNC_BYTES_MAX)) break;
    }
    if (sync !== 'none') fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const s = (performance.now() - t0) / 1000;
  fs.rmSync(path);
  return { mbPerS: bytes / 1e6 / s, blocksPerS: blocks / s };
}

export async function run(): Promise<Table[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-disk-'));
  try {
    const modes: SyncMode[] = ['none', 'per64', 'every'];
    const results = new Map<string, number[]>();
    const ops = new Map<string, number[]>();
    let rssMax = 0;
    for (let rep = 0; rep < REPS; rep++) {
      for (const w of WORKLOADS) {
        const block = workloadBatch(w);
        for (const m of modes) {
          const r = rawWrite(dir, block, m);
          const k = `${w.recordBytes}/${w.batchRecords}/${m}`;
          (results.get(k) ?? results.set(k, []).get(k)!).push(r.mbPerS);
          (ops.get(k) ?? ops.set(k, []).get(k)!).push(r.blocksPerS);
          rssMax = Math.max(rssMax, rssMiB());
        }
      }
    }
    const rows = WORKLOADS.map((w) => {
      const block = workloadBatch(w);
      const k = (m: SyncMode) => `${w.recordBytes}/${w.batchRecords}/${m}`;
      return [
        `${w.recordBytes} B × ${w.batchRecords}`,
        block.byteLength,
        median(results.get(k('none'))!),
        median(results.get(k('per64'))!),
        median(results.get(k('every'))!),
        median(ops.get(k('every'))!),
      ];
    });
    return [
      {
        title: 'Raw disk: sequential write of one RecordBatch-sized block at a time (bench-measured ceiling)',
        columns: ['records × batch', 'block bytes', 'no sync MB/s', 'fdatasync / 64 blocks MB/s', 'fdatasync / block MB/s', 'fdatasync / block: syncs/s'],
        rows,
        notes: [
          `fs.writeSync at increasing positions into one file in ${tmpdir()}; ~${CELL_MS} ms per cell, median of ${REPS} interleaved repetitions; RSS max ${rssMax.toFixed(0)} MiB.`,
          'No-sync writes land in the page cache (this is the bandwidth the log\'s flush=never is held to); the fdatasync columns are what the device acknowledges.',
        ],
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
