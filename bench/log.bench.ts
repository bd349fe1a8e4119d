// The partition log: append throughput under each flush policy (1, 8, 64 concurrent appenders
// with flush=always; interval; never), with and without an injected 5 ms per fsync (what an SD
// card or eMMC acknowledges in), compared with the raw disk measured in the same run; read
// throughput; recovery time of a large log; RSS during each. Batches come from the core's
// encodeBatch, encoded once; each appender appends its own copy (the log rewrites baseOffset in
// place, so two in-flight appends must not share one buffer).
//
// Env: BENCH_LOG_CELL_MS (default 500) per cell, BENCH_LOG_REPS (3), BENCH_READ_MB (256),
// BENCH_RECOVERY_MB (1024; keep it small while developing).
import { mkdtempSync, rmSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PartitionLog } from '../host/log/partition-log.js';
import type { LogOptions } from '../host/log/api.js';
import { silentLogger } from '../host/logging.js';
import { MetricsRegistry } from '../host/metrics/registry.js';
import { WORKLOADS, rawWrite, workloadBatch, type Workload } from './disk.bench.js';
import { median, rssMiB, type Table } from './table.js';

export const subject = 'log';
export const order = 31;

const CELL_MS = Number(process.env.BENCH_LOG_CELL_MS ?? 500);
const REPS = Number(process.env.BENCH_LOG_REPS ?? 3);
const READ_MB = Number(process.env.BENCH_READ_MB ?? 256);
const RECOVERY_MB = Number(process.env.BENCH_RECOVERY_MB ?? 1024);

interface Policy {
  name: string;
  flush: 'always' | 'interval' | 'never';
  appenders: number;
}

const POLICIES: Policy[] = [
  { name: 'always', flush: 'always', appenders: 1 },
  { name: 'always', flush: 'always', appenders: 8 },
  { name: 'always', flush: 'always', appenders: 64 },
  { name: 'interval 1 s', flush: 'interval', appenders: 8 },
  { name: 'never', flush: 'never', appenders: 8 },
];

interface CellResult {
  mbPerS: number;
  recordsPerS: number;
  fsyncsPerS: number;
  rssMiB: number;
}

function fsyncs(metrics: MetricsRegistry): number {
  return metrics.counter('tributary_log_fsyncs_total', '').value({ partition: 'bench-0' });
}

async function appendCell(root: string, w: Workload, p: Policy, injectedFlushDelayMs: number): Promise<CellResult> {
  const dir = mkdtempSync(join(root, 'cell-'));
  const metrics = new MetricsRegistry();
  const options: Partial<LogOptions> = { flush: p.flush, flushIntervalMs: 1000, injectedFlushDelayMs };
  const log = await PartitionLog.open(dir, options as LogOptions, { logger: silentLogger, metrics, topicPartition: 'bench-0' });
  const master = workloadBatch(w);
  let bytes = 0;
  let records = 0;
  let rss = 0;
  const t0 = performance.now();
  const deadline = t0 + CELL_MS;
  await Promise.all(
    Array.from({ length: p.appenders }, async () => {
      const mine = new Uint8Array(master); // own copy, reused after each ack
      while (performance.now() < deadline) {
        const info = await log.appendAsLeader(mine, { leaderEpoch: 0, durable: true });
        bytes += mine.byteLength;
        records += info.recordCount;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  rss = rssMiB();
  const f = fsyncs(metrics);
  await log.destroy();
  return { mbPerS: bytes / 1e6 / s, recordsPerS: records / s, fsyncsPerS: f / s, rssMiB: rss };
}

function key(w: Workload, p: Policy, delay: number): string {
  return `${w.recordBytes}/${w.batchRecords}/${p.flush}/${p.appenders}/${delay}`;
}

async function appendTables(root: string): Promise<Table[]> {
  const results = new Map<string, CellResult[]>();
  const raw = new Map<string, number[]>();
  const slowWorkloads = [WORKLOADS[0], WORKLOADS[4]]; // 100 B × 1 and 1 KiB × 16 for the injected-delay rows
  for (let rep = 0; rep < REPS; rep++) {
    for (const w of WORKLOADS) {
      const rk = `${w.recordBytes}/${w.batchRecords}`;
      (raw.get(rk) ?? raw.set(rk, []).get(rk)!).push(rawWrite(root, workloadBatch(w), 'none', Math.min(CELL_MS, 300)).mbPerS);
      for (const p of POLICIES) {
        const k = key(w, p, 0);
        (results.get(k) ?? results.set(k, []).get(k)!).push(await appendCell(root, w, p, 0));
      }
    }
    for (const w of slowWorkloads) {
      for (const p of POLICIES) {
        const k = key(w, p, 5);
        (results.get(k) ?? results.set(k, []).get(k)!).push(await appendCell(root, w, p, 5));
      }
    }
  }
  const med = (k: string) => {
    const rs = results.get(k)!;
    return {
      mbPerS: median(rs.map((r) => r.mbPerS)),
      recordsPerS: median(rs.map((r) => r.recordsPerS)),
      fsyncsPerS: median(rs.map((r) => r.fsyncsPerS)),
      rssMiB: Math.max(...rs.map((r) => r.rssMiB)),
    };
  };
  const rows = [];
  for (const w of WORKLOADS) {
    const rawMb = median(raw.get(`${w.recordBytes}/${w.batchRecords}`)!);
    for (const p of POLICIES) {
      const m = med(key(w, p, 0));
      rows.push([`${w.recordBytes} B × ${w.batchRecords}`, p.name, p.appenders, m.mbPerS, Math.round(m.recordsPerS), Math.round(m.fsyncsPerS), `${Math.round((100 * m.mbPerS) / rawMb)}%`, Math.round(m.rssMiB)]);
    }
  }
  const slowRows = [];
  for (const w of slowWorkloads) {
    const one = med(key(w, POLICIES[0], 5)).recordsPerS;
    for (const p of POLICIES) {
      const m = med(key(w, p, 5));
      slowRows.push([`${w.recordBytes} B × ${w.batchRecords}`, p.name, p.appenders, m.mbPerS, Math.round(m.recordsPerS), Math.round(m.fsyncsPerS), `${(m.recordsPerS / one).toFixed(1)}×`, Math.round(m.rssMiB)]);
    }
  }
  const neverBig = med(key(WORKLOADS[5], POLICIES[4], 0)).mbPerS;
  const rawBig = median(raw.get(`${WORKLOADS[5].recordBytes}/${WORKLOADS[5].batchRecords}`)!);
  const g64 = med(key(WORKLOADS[0], POLICIES[2], 5)).recordsPerS / med(key(WORKLOADS[0], POLICIES[0], 5)).recordsPerS;
  return [
    {
      title: 'Log append throughput by flush policy (this machine: virtual disk, fdatasync ≈ 0.1 ms)',
      columns: ['records × batch', 'flush', 'appenders', 'MB/s', 'records/s', 'fsyncs/s', 'vs raw no-sync write', 'RSS MiB'],
      rows,
      notes: [
        `~${CELL_MS} ms per cell, median of ${REPS} interleaved repetitions; every append acknowledged under its policy (durable: true). "vs raw" = the log's MB/s over a raw sequential write of the same block size measured in the same repetition (no fsync).`,
        `Target: never ≥ 80% of raw at 1 KiB × 256: ${Math.round((100 * neverBig) / rawBig)}% (${neverBig.toFixed(0)} of ${rawBig.toFixed(0)} MB/s).`,
      ],
    },
    {
      title: 'Log append with an injected 5 ms per fsync (an SD card / eMMC): group commit',
      columns: ['records × batch', 'flush', 'appenders', 'MB/s', 'records/s', 'fsyncs/s', 'records/s vs 1 appender', 'RSS MiB'],
      rows: slowRows,
      notes: [`Target: always with 64 appenders ≥ 20× the records/s of 1 appender (100 B × 1): ${g64.toFixed(1)}×.`],
    },
  ];
}

async function buildLog(dir: string, mb: number, options: Partial<LogOptions> = {}): Promise<{ log: PartitionLog; bytes: number }> {
  const log = await PartitionLog.open(dir, { flush: 'never', ...options } as LogOptions, { logger: silentLogger });
  const master = workloadBatch(WORKLOADS[4]); // 1 KiB × 16
  const target = mb * 1024 * 1024;
  let bytes = 0;
  const appenders = 8;
  await Promise.all(
    Array.from({ length: appenders }, async () => {
      const mine = new Uint8Array(master);
      while (bytes < target) {
        bytes += mine.byteLength;
        await log.appendAsLeader(mine, { leaderEpoch: 0, durable: false });
      }
    }),
  );
  return { log, bytes: log.sizeBytes };
}

async function readTable(root: string): Promise<Table> {
  const dir = mkdtempSync(join(root, 'read-'));
  const built = await buildLog(dir, READ_MB, { segmentBytes: 64 * 1024 * 1024 });
  await built.log.close();
  const rows = [];
  for (const [label, verify] of [
    ['old segments, CRC checked on read (default)', true],
    ['old segments, CRC check off', false],
  ] as const) {
    const samples: number[] = [];
    let rss = 0;
    for (let rep = 0; rep < REPS; rep++) {
      const log = await PartitionLog.open(dir, { verifyOldSegmentReads: verify } as LogOptions, { logger: silentLogger });
      const t0 = performance.now();
      let offset = log.logStartOffset;
      let bytes = 0;
      while (offset < log.logEndOffset) {
        const r = await log.read(offset, 1024 * 1024);
        bytes += r.records.byteLength;
        offset = r.nextOffset;
      }
      samples.push(bytes / 1e6 / ((performance.now() - t0) / 1000));
      rss = Math.max(rss, rssMiB());
      await log.close();
    }
    rows.push([label, READ_MB, median(samples), Math.round(rss)]);
  }
  rmSync(dir, { recursive: true, force: true });
  return {
    title: 'Log read throughput (sequential, maxBytes 1 MiB per read)',
    columns: ['what', 'log MiB', 'MB/s', 'RSS MiB'],
    rows,
    notes: ['Files were just written, so reads come from the page cache: this is the log\'s own cost (index lookup, header walk, one pread per answer, CRC).'],
  };
}

async function recoveryTable(root: string): Promise<Table> {
  const dir = mkdtempSync(join(root, 'recovery-'));
  const built = await buildLog(dir, RECOVERY_MB);
  const bytes = built.log.sizeBytes;
  await built.log.abandon(); // a crash: no clean-shutdown marker, no final snapshot
  const rows = [];
  // 1. Unclean open as it normally happens: only the segment holding the recovery point is walked.
  let t0 = performance.now();
  let log = await PartitionLog.open(dir, {} as LogOptions, { logger: silentLogger });
  let ms = performance.now() - t0;
  rows.push(['unclean, from the recovery point (active segment)', (log.recovery.scannedBytes / 1048576).toFixed(0), ms, log.recovery.scannedBytes / 1e6 / (ms / 1000), Math.round(rssMiB())]);
  await log.close();
  // 2. Clean open.
  t0 = performance.now();
  log = await PartitionLog.open(dir, {} as LogOptions, { logger: silentLogger });
  ms = performance.now() - t0;
  rows.push(['clean shutdown marker', (log.recovery.scannedBytes / 1048576).toFixed(0), ms, '—', Math.round(rssMiB())]);
  await log.abandon();
  // 3. Unclean with no recovery point: every byte of the log walked with CRC checks.
  await unlink(join(dir, 'recovery-point'));
  t0 = performance.now();
  log = await PartitionLog.open(dir, {} as LogOptions, { logger: silentLogger });
  ms = performance.now() - t0;
  const full = log.recovery.scannedBytes / 1e6 / (ms / 1000);
  rows.push(['unclean, whole log (no recovery point)', (log.recovery.scannedBytes / 1048576).toFixed(0), ms, full, Math.round(rssMiB())]);
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    title: `Log recovery time (${(bytes / 1048576).toFixed(0)} MiB log of 1 KiB × 16 batches, 128 MiB segments)`,
    columns: ['open', 'MiB walked', 'ms', 'MB/s', 'RSS MiB'],
    rows,
    notes: [
      `Target: recovery ≥ 300 MB/s: whole-log walk ${full.toFixed(0)} MB/s. The log was just written, so the walk reads the page cache; on a card the read bandwidth of the card bounds it.`,
    ],
  };
}

export async function run(): Promise<Table[]> {
  const root = mkdtempSync(join(tmpdir(), 'tributary-bench-log-'));
  try {
    const tables = await appendTables(root);
    tables.push(await readTable(root));
    tables.push(await recoveryTable(root));
    return tables;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
