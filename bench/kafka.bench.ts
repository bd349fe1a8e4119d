// The Kafka door end to end: a real broker process (dist/host/main.js, fsync before ack by
// default), driven by kcat (librdkafka) and kafkajs over loopback. Produce throughput at 100 B
// and 1 KiB records with acks=1 and acks=-1, consume throughput, produce latency at a fixed
// moderate rate, and the broker's RSS and CPU from /proc. Peers measured in the same run: the
// disk's raw sequential write speed (fsynced, in the broker's temp dir) and loopback TCP
// throughput, which bound what any broker could do here.
//
// Target (issue 4): kcat, acks=1, 1 KiB records ≥ 100 MB/s; broker RSS < 150 MB.
// Env: BENCH_KAFKA_REPS (default 3), BENCH_KAFKA_MB (MiB produced per kcat cell, default 64),
// BENCH_KAFKA_NODE_ARGS (node flags for the broker, space-separated; default npm start's, '' = none).
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import kafkajs from 'kafkajs';
import { haveCommand, startBroker, type BrokerProcess } from '../test/helpers/index.js';
import { median, quantile, type Table } from './table.js';
import { startNodeFlags } from './start-flags.js';

export const subject = 'kafka';
export const order = 40;

const REPS = Number(process.env.BENCH_KAFKA_REPS ?? 3);
const KCAT_MB = Number(process.env.BENCH_KAFKA_MB ?? 64);
const MiB = 1024 * 1024;
const { Kafka, logLevel } = kafkajs;
/** The broker's node flags: npm start's (package.json), unless BENCH_KAFKA_NODE_ARGS names others, to weigh a flag. */
const NODE_ARGS: string[] = startNodeFlags(process.env.BENCH_KAFKA_NODE_ARGS);
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

interface ProcUsage {
  cpuS: number;
  rssMiB: number;
  hwmMiB: number;
}

async function usage(pid: number): Promise<ProcUsage> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  // Fields after "pid (comm) ": state is [0], utime [11], stime [12] (clock ticks, 100/s).
  const cpuS = (Number(stat[11]) + Number(stat[12])) / 100;
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { cpuS, rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

async function sh(cmd: string, args: string[], stdinFile?: string): Promise<{ code: number | null; stderr: string; ms: number }> {
  // The record file is the child's stdin directly (no copy through this process).
  const fh = stdinFile ? await open(stdinFile, 'r') : undefined;
  try {
    return await new Promise((resolve) => {
      const started = performance.now();
      const child = spawn(cmd, args, { stdio: [fh ? fh.fd : 'ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
      child.on('close', (code) => resolve({ code, stderr, ms: performance.now() - started }));
    });
  } finally {
    await fh?.close();
  }
}

/** A file of `count` newline-terminated records of `size` bytes each (the newline is the delimiter). */
async function recordFile(dir: string, size: number, count: number): Promise<string> {
  const path = join(dir, `records-${size}-${count}.txt`);
  const line = Buffer.alloc(size, 0x61);
  for (let i = 0; i < size; i++) line[i] = 0x61 + (i % 26);
  line[size - 1] = 0x0a;
  const out = createWriteStream(path);
  const chunk = Buffer.concat(Array.from({ length: 256 }, () => line));
  for (let i = 0; i < count; i += 256) {
    const n = Math.min(256, count - i);
    if (!out.write(n === 256 ? chunk : chunk.subarray(0, n * size))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(r));
  return path;
}

async function diskWriteMBps(dir: string): Promise<number> {
  const fh = await open(join(dir, 'disk-peer.bin'), 'w');
  const chunk = Buffer.alloc(MiB, 0x5a);
  const total = 64;
  const started = performance.now();
  for (let i = 0; i < total; i++) await fh.write(chunk);
  await fh.datasync();
  const ms = performance.now() - started;
  await fh.close();
  await rm(join(dir, 'disk-peer.bin'), { force: true });
  return total / (ms / 1000);
}

async function loopbackMBps(): Promise<number> {
  const server = net.createServer((s) => s.on('data', () => {}));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const total = 512;
  const chunk = Buffer.alloc(64 * 1024, 1);
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const s = net.connect(port, '127.0.0.1', async () => {
      for (let i = 0; i < total * 16; i++) if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
      s.end(resolve);
    });
  });
  const ms = performance.now() - started;
  server.close();
  return total / (ms / 1000);
}

interface Row {
  client: string;
  sizeB: number;
  acks: string;
  records: number;
  recPerS: number[];
  mbPerS: number[];
  cpuPct: number[];
  /** MiB moved per second of broker CPU: the broker's efficiency, independent of machine load. */
  mibPerCpuS: number[];
  /** The broker's peak RSS (VmHWM) after this row's runs: shows which phase raised it. */
  hwmMiB: number;
}

export async function run(): Promise<Table[]> {
  const teardowns: Array<() => unknown> = [];
  const t = { teardown: (fn: () => unknown) => teardowns.push(fn) };
  const root = await mkdtemp(join(tmpdir(), 'tributary-kafka-bench-'));
  const notes: string[] = [];
  try {
    const proc: BrokerProcess = await startBroker(t, { dataDir: join(root, 'data'), readyTimeoutMs: 60_000, nodeArgs: NODE_ARGS, withoutRunnerPreload: true });
    const pid = proc.child.pid!;
    const bootstrap = `127.0.0.1:${proc.port('kafka')}`;
    const hasKcat = haveCommand('kcat');
    if (!hasKcat) notes.push('kcat is not installed: the kcat rows are missing.');
    notes.push(`Broker node flags: ${NODE_ARGS.join(' ') || 'none'}.`);

    const produceRows = new Map<string, Row>();
    const consumeRows = new Map<string, Row>();
    const row = (m: Map<string, Row>, client: string, sizeB: number, acks: string, records: number) => {
      const k = `${client}|${sizeB}|${acks}`;
      if (!m.has(k)) m.set(k, { client, sizeB, acks, records, recPerS: [], mbPerS: [], cpuPct: [], mibPerCpuS: [], hwmMiB: 0 });
      return m.get(k)!;
    };
    const measure = async (r: Row, fn: () => Promise<number>) => {
      const before = await usage(pid);
      const ms = await fn();
      const after = await usage(pid);
      r.recPerS.push(r.records / (ms / 1000));
      r.mbPerS.push((r.records * r.sizeB) / MiB / (ms / 1000));
      r.cpuPct.push(((after.cpuS - before.cpuS) / (ms / 1000)) * 100);
      r.hwmMiB = Math.max(r.hwmMiB, after.hwmMiB);
      r.mibPerCpuS.push((r.records * r.sizeB) / MiB / Math.max(0.01, after.cpuS - before.cpuS));
    };

    const sizes = [100, 1024];
    const files = new Map<number, { path: string; count: number }>();
    for (const size of sizes) {
      const count = Math.floor(((size === 100 ? KCAT_MB / 4 : KCAT_MB) * MiB) / size);
      files.set(size, { path: await recordFile(root, size, count), count });
    }

    const kafka = new Kafka({ brokers: [bootstrap], clientId: 'bench', logLevel: logLevel.NOTHING });
    let topicSeq = 0;
    const consumeTopics: Array<{ topic: string; size: number; count: number }> = [];

    for (let rep = 0; rep < REPS; rep++) {
      // kcat -P from a file (librdkafka batches, 5 ms linger by default).
      if (hasKcat) {
        for (const size of sizes) {
          for (const acks of ['1', '-1']) {
            const { path, count } = files.get(size)!;
            const topic = `kcat-${size}-${acks}-${topicSeq++}`;
            const r = row(produceRows, 'kcat -P', size, acks, count);
            await measure(r, async () => {
              const res = await sh('kcat', ['-b', bootstrap, '-P', '-t', topic, '-X', `acks=${acks}`, '-X', 'queue.buffering.max.kbytes=65536', '-X', 'batch.size=1000000'], path);
              if (res.code !== 0) throw new Error(`kcat produce failed: ${res.stderr}`);
              return res.ms;
            });
            if (rep === 0 && acks === '1') consumeTopics.push({ topic, size, count });
          }
        }
      }
      // kafkajs: sequential sends of 1000-record batches (its usual shape).
      for (const size of sizes) {
        for (const acks of [1, -1]) {
          const count = size === 100 ? 50_000 : 20_000;
          const topic = `kjs-${size}-${acks}-${topicSeq++}`;
          const producer = kafka.producer();
          await producer.connect();
          const value = Buffer.alloc(size, 0x62);
          const batch = Array.from({ length: 1000 }, () => ({ value }));
          await producer.send({ topic, acks, messages: [{ value }] }); // creates the topic
          const r = row(produceRows, 'kafkajs', size, String(acks), count);
          await measure(r, async () => {
            const started = performance.now();
            for (let i = 0; i < count; i += 1000) await producer.send({ topic, acks, messages: batch });
            return performance.now() - started;
          });
          await producer.disconnect();
          if (rep === 0 && acks === 1) consumeTopics.push({ topic: `${topic}`, size, count: count + 1 });
        }
      }
    }

    // Consume: kcat -C to the end, and a kafkajs consumer group from the beginning.
    for (let rep = 0; rep < REPS; rep++) {
      for (const { topic, size, count } of consumeTopics) {
        if (hasKcat) {
          const r = row(consumeRows, 'kcat -C', size, '', count);
          await measure(r, async () => {
            const res = await sh('kcat', ['-b', bootstrap, '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%o\\n']);
            if (res.code !== 0) throw new Error(`kcat consume failed: ${res.stderr}`);
            return res.ms;
          });
        }
        if (rep > 0) continue; // kafkajs consumer groups are slow to start; once is enough
        const r = row(consumeRows, 'kafkajs', size, '', count);
        await measure(r, async () => {
          const consumer = kafka.consumer({ groupId: `bench-${topic}-${rep}`, maxBytes: 16 * MiB, maxWaitTimeInMs: 100 });
          await consumer.connect();
          await consumer.subscribe({ topics: [topic], fromBeginning: true });
          let seen = 0;
          let started = 0;
          const done = new Promise<void>((resolve) => {
            void consumer.run({
              eachBatch: async ({ batch }) => {
                if (started === 0) started = performance.now();
                seen += batch.messages.length;
                if (seen >= count) resolve();
              },
            });
          });
          await done;
          const ms = performance.now() - started;
          await consumer.disconnect();
          return ms;
        });
      }
    }

    // Latency: single-record sends at a fixed rate (not awaited one by one: a real paced load).
    const latencyRows: Array<Array<string | number>> = [];
    for (const acks of [1, -1]) {
      const producer = kafka.producer();
      await producer.connect();
      const topic = `latency-${acks}`;
      await producer.send({ topic, acks, messages: [{ value: 'warm' }] });
      const ratePerS = 200;
      const total = 600;
      const latencies: number[] = [];
      const pending: Promise<void>[] = [];
      const start = performance.now();
      for (let i = 0; i < total; i++) {
        const due = start + (i * 1000) / ratePerS;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const sent = performance.now();
        pending.push(producer.send({ topic, acks, messages: [{ key: `k${i % 10}`, value: Buffer.alloc(256, 0x63) }] }).then(() => void latencies.push(performance.now() - sent)));
      }
      await Promise.all(pending);
      await producer.disconnect();
      latencyRows.push(['kafkajs', acks, ratePerS, 256, quantile(latencies, 0.5), quantile(latencies, 0.99), Math.max(...latencies)]);
    }

    const final = await usage(pid);
    const disk = [];
    const loop = [];
    for (let i = 0; i < REPS; i++) {
      disk.push(await diskWriteMBps(root));
      loop.push(await loopbackMBps());
    }

    const fmt = (rows: Map<string, Row>, withAcks: boolean) =>
      [...rows.values()].map((r) => [r.client, r.sizeB, ...(withAcks ? [r.acks] : []), r.records, median(r.recPerS), median(r.mbPerS), median(r.cpuPct), median(r.mibPerCpuS), r.hwmMiB]);
    const kcat1k = produceRows.get('kcat -P|1024|1');
    notes.push(
      `Broker process: RSS now ${final.rssMiB.toFixed(0)} MiB, peak (VmHWM) ${final.hwmMiB.toFixed(0)} MiB = ${((final.hwmMiB * MiB) / 1e6).toFixed(0)} MB (target < 150 MB); CPU % is broker CPU time / wall time (200% = both cores).`,
      `Target kcat acks=1 1 KiB ≥ 100 MB/s: measured ${kcat1k ? `${median(kcat1k.mbPerS).toFixed(1)} MiB/s = ${((median(kcat1k.mbPerS) * MiB) / 1e6).toFixed(1)} MB/s` : 'n/a'}. Median of ${REPS} interleaved repetitions; the machine is shared, so compare rows of one run.`,
      `Load: 1-minute load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores during this run. When the machine is shared, wall-clock MiB/s mostly measures CPU starvation; "MiB per broker CPU-s" (bytes moved per second of broker CPU) is the broker's own cost and does not depend on load.`,
      'Durability: the default topic flush policy is fsync before acknowledging (group commit), for acks=1 and acks=-1 alike.',
    );
    return [
      {
        title: 'Kafka produce throughput (real broker process, loopback)',
        columns: ['client', 'record B', 'acks', 'records', 'records/s', 'MiB/s', 'broker CPU %', 'MiB per broker CPU-s', 'broker peak RSS MiB'],
        rows: fmt(produceRows, true),
        notes,
      },
      {
        title: 'Kafka consume throughput (from the beginning)',
        columns: ['client', 'record B', 'records', 'records/s', 'MiB/s', 'broker CPU %', 'MiB per broker CPU-s', 'broker peak RSS MiB'],
        rows: fmt(consumeRows, false),
      },
      {
        title: 'Kafka produce latency at a fixed rate',
        columns: ['client', 'acks', 'records/s', 'record B', 'p50 ms', 'p99 ms', 'max ms'],
        rows: latencyRows,
      },
      {
        title: 'Peers: what this machine allows',
        columns: ['peer', 'MiB/s'],
        rows: [
          ['disk sequential write, 64 MiB + fdatasync', median(disk)],
          ['loopback TCP, one connection', median(loop)],
        ],
      },
    ];
  } finally {
    for (const fn of teardowns.reverse()) await fn();
    await rm(root, { recursive: true, force: true });
  }
}
