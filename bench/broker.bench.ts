// The broker core over the partition log: what the broker layer costs on the write path, side
// by side in one run — the log's own append of a pre-encoded batch, Broker.append of the same
// batch (limits, metrics, partition lookup), and Broker.produce of the same records (the
// partitioner plus the core's encode per call), with 1 and 64 concurrent callers; then how
// fast an append wakes a long-poll reader (waitForData), and the partitioner itself against
// kafkajs's murmur2 (the test oracle, here a peer).
//
// flush=never isolates CPU cost (the disk is not the bottleneck); the flush=always row shows
// the same path with group commit. Env: BENCH_BROKER_CELL_MS (default 400), BENCH_BROKER_REPS (3).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { Broker } from '../host/broker/broker.js';
import { murmur2 } from '../host/broker/partitioner.js';
import { PartitionLog } from '../host/log/partition-log.js';
import { logOptionsFor, defaultTopicConfig } from '../host/broker/topic-config.js';
import type { RecordInput, FlushPolicy } from '../host/broker/api.js';
import { encodeBatch } from '../host/core/index.js';
import { silentLogger } from '../host/logging.js';
import { MetricsRegistry } from '../host/metrics/registry.js';
import { median, quantile, rssMiB, type Table } from './table.js';

export const subject = 'broker';
export const order = 35;

const CELL_MS = Number(process.env.BENCH_BROKER_CELL_MS ?? 400);
const REPS = Number(process.env.BENCH_BROKER_REPS ?? 3);
const RECORDS_PER_CALL = 100;
const VALUE_BYTES = 100;

function records(seed: number): RecordInput[] {
  return Array.from({ length: RECORDS_PER_CALL }, (_, i) => ({
    key: new TextEncoder().encode(`sensor-${(seed * 31 + i) % 50}`),
    value: new Uint8Array(VALUE_BYTES).fill(0x30 + (i % 10)),
  }));
}

type Path = 'log.append' | 'broker.append' | 'broker.produce';

interface Cell {
  recordsPerS: number;
  mbPerS: number;
  rssMiB: number;
}

async function runCell(root: string, path: Path, flush: FlushPolicy, callers: number): Promise<Cell> {
  const dir = mkdtempSync(join(root, 'cell-'));
  const metrics = new MetricsRegistry();
  const topicDefaults = { flush };
  let log: PartitionLog | undefined;
  let broker: Broker | undefined;
  if (path === 'log.append') {
    log = await PartitionLog.open(join(dir, 'bench-0'), logOptionsFor({ ...defaultTopicConfig, flush }), { logger: silentLogger, metrics, topicPartition: 'bench-0' });
  } else {
    broker = await Broker.open({ dataDir: dir, topicDefaults, retentionCheckIntervalMs: 3_600_000 }, { logger: silentLogger, metrics });
    await broker.createTopic('bench', 1);
  }
  const master = encodeBatch(records(0));
  const input = records(1);
  let count = 0;
  let bytes = 0;
  const deadline = performance.now() + CELL_MS;
  const started = performance.now();
  const caller = async () => {
    while (performance.now() < deadline) {
      if (path === 'log.append') await log!.appendAsLeader(master.slice(), { leaderEpoch: 0, durable: true });
      else if (path === 'broker.append') await broker!.append({ topic: 'bench', partition: 0 }, master.slice(), { acks: 1 });
      else await broker!.produce('bench', input, { acks: 1, partition: 0 });
      count += RECORDS_PER_CALL;
      bytes += master.byteLength;
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  const seconds = (performance.now() - started) / 1000;
  const rss = rssMiB();
  if (log) await log.close();
  if (broker) await broker.close();
  rmSync(dir, { recursive: true, force: true });
  return { recordsPerS: count / seconds, mbPerS: bytes / seconds / 1048576, rssMiB: rss };
}

async function wakeLatency(root: string, flush: FlushPolicy, samples: number): Promise<number[]> {
  const dir = mkdtempSync(join(root, 'wake-'));
  const broker = await Broker.open({ dataDir: dir, topicDefaults: { flush }, retentionCheckIntervalMs: 3_600_000 }, { logger: silentLogger, metrics: new MetricsRegistry() });
  await broker.createTopic('wake', 1);
  const tp = { topic: 'wake', partition: 0 };
  const one = [{ key: null, value: new Uint8Array(VALUE_BYTES) }];
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const end = broker.offsets(tp).logEndOffset;
    let woken = 0;
    const parked = broker.waitForData([{ ...tp, afterOffset: end }], 10_000).then(() => (woken = performance.now()));
    const t0 = performance.now();
    await broker.produce('wake', one, { acks: 1 });
    await parked;
    latencies.push(woken - t0);
  }
  await broker.close();
  rmSync(dir, { recursive: true, force: true });
  return latencies;
}

function partitionerRate(hash: (key: Buffer) => number, keys: Buffer[]): number {
  const rounds = 20;
  let sink = 0;
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) for (const k of keys) sink ^= hash(k);
  const seconds = (performance.now() - t0) / 1000;
  if (sink === 0.5) console.log(sink); // keep the loop observable
  return (rounds * keys.length) / seconds;
}

export async function run(): Promise<Table[]> {
  const root = mkdtempSync(join(tmpdir(), 'tributary-bench-broker-'));
  try {
    const cells: Array<{ path: Path; flush: FlushPolicy; callers: number }> = [];
    for (const flush of ['never', 'always'] as FlushPolicy[]) {
      for (const callers of [1, 64]) for (const path of ['log.append', 'broker.append', 'broker.produce'] as Path[]) cells.push({ path, flush, callers });
    }
    const results = new Map<string, Cell[]>();
    // Interleaved repetitions: every cell once per round, so drift hits all cells alike.
    for (let rep = 0; rep < REPS; rep++) {
      for (const c of cells) {
        const key = `${c.path}|${c.flush}|${c.callers}`;
        const r = await runCell(root, c.path, c.flush, c.callers);
        results.set(key, [...(results.get(key) ?? []), r]);
      }
    }
    const rows = cells.map((c) => {
      const rs = results.get(`${c.path}|${c.flush}|${c.callers}`)!;
      const base = results.get(`log.append|${c.flush}|${c.callers}`)!;
      const recs = median(rs.map((r) => r.recordsPerS));
      return [c.path, c.flush, c.callers, Math.round(recs), median(rs.map((r) => r.mbPerS)), `${Math.round((100 * recs) / median(base.map((r) => r.recordsPerS)))}%`, Math.round(Math.max(...rs.map((r) => r.rssMiB)))];
    });

    const wakeRows = [];
    for (const flush of ['never', 'always'] as FlushPolicy[]) {
      const l = await wakeLatency(root, flush, 200);
      wakeRows.push([flush, l.length, quantile(l, 0.5), quantile(l, 0.99), Math.max(...l)]);
    }

    const require = createRequire(import.meta.url);
    const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number;
    const keys = Array.from({ length: 10_000 }, (_, i) => Buffer.from(`sensors/site-${i % 97}/device-${i}/temperature`));
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      ours.push(partitionerRate(murmur2, keys));
      theirs.push(partitionerRate(kafkajsMurmur2, keys));
    }

    return [
      {
        title: `Broker write path: log vs broker.append vs broker.produce (${RECORDS_PER_CALL} records × ${VALUE_BYTES} B per call, 1 partition)`,
        columns: ['path', 'flush', 'callers', 'records/s', 'MB/s', 'vs log.append', 'RSS MiB'],
        rows,
        notes: [
          `Median of ${REPS} interleaved ${CELL_MS} ms cells. broker.produce encodes the batch (wasm core) on every call; the append rows reuse one encoded batch (copied per call).`,
        ],
      },
      {
        title: 'Long-poll wake: produce() call to waitForData() resolving (1 record, acks=1)',
        columns: ['flush', 'samples', 'p50 ms', 'p99 ms', 'max ms'],
        rows: wakeRows,
        notes: ['With flush=always the reader is woken once the fsync covering the record returns (readers never see unflushed data).'],
      },
      {
        title: 'Partitioner: murmur2 of 40-byte keys (ours vs kafkajs, the oracle)',
        columns: ['implementation', 'keys/s'],
        rows: [
          ['tributary murmur2 (Math.imul)', Math.round(median(ours))],
          ['kafkajs murmur2 (Long)', Math.round(median(theirs))],
        ],
      },
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
