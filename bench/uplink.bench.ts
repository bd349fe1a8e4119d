// The uplink's drain rate after an outage: an edge process holding a backlog (records loaded with
// kcat while no uplink was configured) is restarted with the uplink on, and the time until the
// target (a second Tributary process, fsync before ack) holds every record gives records/s. In
// the same run, the naive tool a user would write — a kafkajs consumer on the edge topic feeding a
// kafkajs idempotent producer to the target (a consume-and-produce mirror) — drains the same
// backlog. CPU: the edge process's (uplink) vs this process's (kafkajs mirror), per record.
//
// A second table drains the same backlog, in the same run, into librdkafka's mock cluster (the only
// target here with transactions; in memory, so not comparable with the first table's fsyncing
// Tributary target) in read-back mode and in transactions mode with 1 and 5 batches per transaction
// (uplink.transactionBatchesMax): what the transactions cost against the idempotent pipeline.
//
// The ceiling, in the same run: the same records produced straight into a fresh Tributary target
// (fsync before ack) by kcat — librdkafka, idempotent, acks all, one process per partition at once,
// large batches — from the same per-partition files the backlog was loaded from. Issue 12's target:
// with no cap the uplink drains at ≥ 80% of that.
//
// Issue 12's targets: ≥ 3× the kafkajs mirror's records/s at ≤ ½ its CPU per record. Env:
// BENCH_UPLINK_RECORDS (default 300000), BENCH_UPLINK_VALUE_BYTES (default 100),
// BENCH_UPLINK_DRAIN_ONLY=1 (only the uplink drain and the ceiling: a short run for profiling),
// BENCH_UPLINK_PROFILE=DIR (a V8 CPU profile of each draining edge into DIR), BENCH_UPLINK_SETS
// (`key=value,...`: uplink settings for the first drain row, e.g. inFlightMax=15).
//
// Second table: alarm latency while a telemetry backlog drains at a 1 Mbit/s cap with priorities
// on, with and without the reserved lane (test/helpers/alarm-latency.ts; issue 12's target: alarms
// under 100 ms).
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import kafkajs from 'kafkajs';
import { haveCommand, startBroker, type BrokerProcess } from '../test/helpers/index.js';
import { startMockCluster } from '../test/helpers/uplink.js';
import { KafkaClient } from '../host/kafka/client/client.js';
import type { Table } from './table.js';
import { alarmLatency, laneArgs, storeBacklog } from '../test/helpers/alarm-latency.js';

export const subject = 'uplink';
export const order = 60;

const QUICK = process.env.TRIBUTARY_BENCH_QUICK === '1';
const RECORDS = Number(process.env.BENCH_UPLINK_RECORDS ?? (QUICK ? 30_000 : 300_000));
const VALUE_BYTES = Number(process.env.BENCH_UPLINK_VALUE_BYTES ?? 100);
const PARTITIONS = 3;
/** BENCH_UPLINK_DRAIN_ONLY=1: only the uplink's drain and the ceiling (for profiling the drain; skips the mirror, the re-encoded rows, the mock and the alarms). */
const DRAIN_ONLY = process.env.BENCH_UPLINK_DRAIN_ONLY === '1';
const { Kafka, logLevel } = kafkajs;
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const teardowns: Array<() => unknown> = [];
const t = { teardown: (fn: () => unknown) => teardowns.push(fn) };

async function cpuSeconds(pid: number): Promise<number> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(stat[11]) + Number(stat[12])) / 100;
}

/** kcat's producer settings for a bulk load: large batches (the backlog's stored batches are these). */
const KCAT_BULK = ['-X', 'linger.ms=20', '-X', 'batch.num.messages=10000'];
/** The ceiling row's: the same, idempotent with acks all (what the uplink's producer is). */
const KCAT_CEILING = [...KCAT_BULK, '-X', 'enable.idempotence=true', '-X', 'acks=all'];

async function kcatLoad(bootstrap: string, topic: string, partition: number, file: string, settings = KCAT_BULK): Promise<{ cpuS: number }> {
  const fh = await open(file, 'r');
  try {
    return await new Promise<{ cpuS: number }>((resolve, reject) => {
      const child = spawn('kcat', ['-P', '-b', bootstrap, '-t', topic, '-p', String(partition), ...settings], { stdio: [fh.fd, 'ignore', 'pipe'] });
      let cpuS = 0;
      // Sampled until it exits (a child's /proc entry goes with it).
      const sampler = setInterval(() => void cpuSeconds(child.pid!).then((s) => (cpuS = s), () => undefined), 50);
      let err = '';
      child.stderr!.on('data', (d) => (err += d));
      child.on('close', (code) => {
        clearInterval(sampler);
        if (code === 0) resolve({ cpuS });
        else reject(new Error(`kcat load failed: ${err}`));
      });
    });
  } finally {
    await fh.close();
  }
}

/** A process's peak resident set (VmHWM), MiB. */
async function peakRssMiB(pid: number): Promise<number> {
  const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : -1;
}

/** Sum of the end offsets of a target topic's partitions (0 while it does not exist). */
async function targetTotal(client: KafkaClient, topic: string): Promise<number> {
  let total = 0;
  for (let p = 0; p < PARTITIONS; p++) total += await client.listOffset(topic, p, -1).catch(() => 0);
  return total;
}

async function waitFor(client: KafkaClient, topic: string, n: number, timeoutMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    if ((await targetTotal(client, topic)) >= n) return performance.now();
    if (performance.now() - started > timeoutMs) throw new Error(`${topic}: ${await targetTotal(client, topic)} of ${n} records after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function edgeBase(): string[] {
  return ['--set', `broker.defaultPartitions=${PARTITIONS}`];
}

async function loadBacklog(dir: string): Promise<{ edgeDir: string; bytes: number; files: string[] }> {
  const edgeDir = join(dir, 'edge');
  const edge = await startBroker(t, { dataDir: edgeDir, args: edgeBase() });
  const per = Math.ceil(RECORDS / PARTITIONS);
  let bytes = 0;
  const files: string[] = [];
  for (let p = 0; p < PARTITIONS; p++) {
    const lines: string[] = [];
    for (let i = 0; i < per; i++) lines.push(`${p}-${i}-`.padEnd(VALUE_BYTES, 'x'));
    const file = join(dir, `load-${p}.txt`);
    await writeFile(file, lines.join('\n') + '\n');
    files.push(file);
    bytes += per * VALUE_BYTES;
    await kcatLoad(edge.listeners.kafka!, 'telemetry', p, file);
  }
  await edge.stop();
  return { edgeDir, bytes, files };
}

/**
 * The ceiling: the same records produced straight into a fresh target (its own data dir, fsync
 * before ack) by kcat, one process per partition at once, from the files the backlog was loaded
 * from — twice: into the cold target's first topic, then into a second topic of the same target
 * (warmed: its first run pays the process's warm-up and first files, as the uplink's target does).
 * Timed from the kcats' start to the target holding every record (as the uplink's drain is timed to
 * the target holding every record); CPU is kcat's (sampled), the target's not counted.
 */
async function kcatCeiling(dir: string): Promise<{ cold: { ms: number; cpuS: number }; warm: { ms: number; cpuS: number } }> {
  const target = await startBroker(t, { dataDir: join(dir, 'ceiling-target') });
  const client = new KafkaClient({ bootstrap: [target.listeners.kafka!], clientId: 'bench', connectTimeoutMs: 5000, requestTimeoutMs: 10_000, inFlightMax: 5, queuedMax: 100, responseBytesMax: 1 << 20, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 500 });
  const files = Array.from({ length: PARTITIONS }, (_, p) => join(dir, `load-${p}.txt`));
  const once = async (topic: string) => {
    await client.createTopic(topic, PARTITIONS);
    const started = performance.now();
    const loads = await Promise.all(files.map((file, p) => kcatLoad(target.listeners.kafka!, topic, p, file, KCAT_CEILING)));
    const done = await waitFor(client, topic, RECORDS, 600_000);
    return { ms: done - started, cpuS: loads.reduce((s, l) => s + l.cpuS, 0) };
  };
  const cold = await once('ceiling.telemetry');
  const warm = await once('ceiling2.telemetry');
  await client.close();
  await target.stop();
  return { cold, warm };
}

async function uplinkDrain(edgeDir: string, target: BrokerProcess, client: KafkaClient, site = 'bench', extra: string[] = []): Promise<{ ms: number; startupMs: number; fromUplinkMs: number; cpuS: number; wireBytes: number; rssPeakMiB: number; raw: number; reencoded: number }> {
  const started = performance.now();
  const startedWall = Date.now();
  const edge = await startBroker(t, {
    dataDir: edgeDir,
    // BENCH_UPLINK_PROFILE=DIR: a V8 CPU profile of the draining edge (bench/cpuprofile-top.ts reads it).
    nodeArgs: process.env.BENCH_UPLINK_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_UPLINK_PROFILE] : [],
    args: [...edgeBase(), '--set', `uplink.site=${site}`, '--set', `uplink.bootstrap=${target.listeners.kafka}`, '--set', 'uplink.topics=telemetry', '--set', 'uplink.topicScanIntervalMs=50', ...extra],
  });
  const cpu0 = await cpuSeconds(edge.child.pid!);
  const done = await waitFor(client, `${site}.telemetry`, RECORDS, 600_000);
  const cpuS = (await cpuSeconds(edge.child.pid!)) - cpu0;
  // Start-up: the process, recovery, the topic scan, the target check and the read-back, until the
  // last partition's resume line (each partition forwards from its own).
  const resumes = edge.logs.filter((l) => typeof l.msg === 'string' && /exactly-once by/.test(l.msg)).map((l) => Date.parse(String(l.time)));
  const startupMs = resumes.length >= PARTITIONS ? Math.max(...resumes) - startedWall : NaN;
  // The drain from the uplink's own start (the node process and broker start-up before it are not
  // the link's: an edge whose link comes back is already running): its time to the last record.
  const uplinkStart = edge.logs.find((l) => l.msg === 'uplink starting');
  const fromUplinkMs = uplinkStart ? Date.now() - (performance.now() - done) - Date.parse(String(uplinkStart.time)) : NaN;
  if (DRAIN_ONLY) {
    // Where the start-up goes: each log line's ms after the edge was spawned.
    for (const l of edge.logs) if (typeof l.time === 'string') console.error(`  +${Date.parse(l.time) - startedWall} ms ${String(l.msg).slice(0, 110)}`);
  }
  const metrics = await (await fetch(`http://${edge.listeners.http}/metrics`)).text();
  const wireBytes = Number(new RegExp(`tributary_uplink_bytes_sent\\{site="${site}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
  const rssPeakMiB = await peakRssMiB(edge.child.pid!);
  const batches = (path: string) => Number(new RegExp(`tributary_uplink_batches_sent_total\\{path="${path}",site="${site}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
  await edge.stop();
  return { ms: done - started, startupMs, fromUplinkMs, cpuS, wireBytes, rssPeakMiB, raw: batches('raw'), reencoded: batches('reencoded') };
}

/** Modes drained into the mock, each with its own site (so its own link state and target topic). */
const MOCK_MODES = [
  // The mock checks no sequences for idempotent producers: one batch in flight (docs/uplink.md).
  { name: 'read-back mode (idempotent, 1 batch in flight)', site: 'rb', args: ['--set', 'uplink.exactlyOnce=read-back', '--set', 'uplink.inFlightBatchesMax=1'] },
  { name: 'read-back mode (idempotent, 5 batches in flight)', site: 'rb5', args: ['--set', 'uplink.exactlyOnce=read-back', '--set', 'uplink.inFlightBatchesMax=5'] },
  { name: 'transactions mode, 1 batch per transaction', site: 'tx1', args: ['--set', 'uplink.transactionBatchesMax=1'] },
  { name: 'transactions mode, 5 batches per transaction', site: 'tx5', args: ['--set', 'uplink.transactionBatchesMax=5'] },
];

async function mockDrain(edgeDir: string, bootstrap: string, client: KafkaClient, mode: (typeof MOCK_MODES)[number]): Promise<{ ms: number; cpuS: number; wireBytes: number }> {
  const started = performance.now();
  const edge = await startBroker(t, { dataDir: edgeDir, args: [...edgeBase(), '--set', `uplink.site=${mode.site}`, '--set', `uplink.bootstrap=${bootstrap}`, '--set', 'uplink.topics=telemetry', '--set', 'uplink.topicScanIntervalMs=50', ...mode.args] });
  const cpu0 = await cpuSeconds(edge.child.pid!);
  const done = await waitFor(client, `${mode.site}.telemetry`, RECORDS, 600_000);
  const cpuS = (await cpuSeconds(edge.child.pid!)) - cpu0;
  const metrics = await (await fetch(`http://${edge.listeners.http}/metrics`)).text();
  const wireBytes = Number(new RegExp(`tributary_uplink_bytes_sent\\{site="${mode.site}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
  await edge.stop();
  return { ms: done - started, cpuS, wireBytes };
}

/** The mirror is measured over at most this long (it may be far slower than the uplink): its rate is what it moved in that time. */
const MIRROR_WINDOW_MS = QUICK ? 20_000 : 120_000;
/** Records per kafkajs send: well under 1 MiB with headers. */
const MIRROR_SLICE = 2000;

async function kafkajsMirror(edgeDir: string, target: BrokerProcess, client: KafkaClient): Promise<{ ms: number; cpuS: number; records: number }> {
  const edge = await startBroker(t, { dataDir: edgeDir, args: edgeBase() });
  const source = new Kafka({ clientId: 'mirror-src', brokers: [edge.listeners.kafka!], logLevel: logLevel.NOTHING });
  const sink = new Kafka({ clientId: 'mirror-dst', brokers: [target.listeners.kafka!], logLevel: logLevel.NOTHING });
  const producer = sink.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer = source.consumer({ groupId: `mirror-${Date.now()}`, maxBytesPerPartition: 1 << 20, maxWaitTimeInMs: 100 });
  const admin = sink.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'mirror.telemetry', numPartitions: PARTITIONS }] });
  await admin.disconnect();
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: 'telemetry', fromBeginning: true });
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  await consumer.run({
    partitionsConsumedConcurrently: PARTITIONS,
    eachBatch: async ({ batch }) => {
      // In slices: one fetch (1 MiB per partition) re-sent whole with headers would pass the target's max.message.bytes.
      const messages = batch.messages.map((m) => ({ key: m.key, value: m.value, partition: batch.partition, timestamp: m.timestamp, headers: { ...m.headers, 'origin.offset': m.offset } }));
      for (let i = 0; i < messages.length; i += MIRROR_SLICE) await producer.send({ topic: 'mirror.telemetry', acks: -1, messages: messages.slice(i, i + MIRROR_SLICE) });
    },
  });
  const done = await waitFor(client, 'mirror.telemetry', RECORDS, MIRROR_WINDOW_MS).catch(() => performance.now());
  const c = process.cpuUsage(cpu0);
  const records = await targetTotal(client, 'mirror.telemetry');
  await consumer.disconnect();
  await producer.disconnect();
  await edge.stop();
  return { ms: done - started, cpuS: (c.user + c.system) / 1e6, records };
}

const ALARM_PARTITIONS = 3;
const ALARM_BACKLOG = QUICK ? 2000 : 4000;
const ALARMS = QUICK ? 60 : 200;

/** Alarm latency at a 1 Mbit/s cap while telemetry drains, without and with the reserved lane (each on a fresh copy of the backlog). */
async function alarmTable(dir: string): Promise<Table> {
  const rows: Array<Array<string | number>> = [];
  for (const [name, extra] of [['priorities only (uplink.priorities=alarms)', []], ['priorities + reserved lane (uplink.reservedTopics=alarms)', ['--set', 'uplink.reservedTopics=alarms']]] as const) {
    const edgeDir = join(dir, `alarms-edge-${rows.length}`);
    await storeBacklog(t, edgeDir, { partitions: ALARM_PARTITIONS, records: ALARM_BACKLOG, valueBytes: 300 });
    const target = await startBroker(t, { dataDir: join(dir, `alarms-target-${rows.length}`) });
    const args = laneArgs('bench', target.listeners.kafka!, ['--set', 'uplink.bandwidthBytesPerSec=125000', '--set', 'uplink.bandwidthBurstBytes=16384', '--set', 'uplink.priorities=alarms', ...extra]);
    const r = await alarmLatency(t, edgeDir, target, 'bench', args, { alarms: ALARMS, intervalMs: 50, telemetryRecords: ALARM_PARTITIONS * ALARM_BACKLOG });
    await target.stop();
    rows.push([name, ALARMS, r.p50, r.p99, r.max, `${r.telemetryAtFirst}–${r.telemetryAtLast} of ${r.telemetryRecords}`]);
  }
  return {
    title: `uplink alarm latency at a 1 Mbit/s cap (125 000 B/s) while ${ALARM_PARTITIONS} × ${ALARM_BACKLOG} telemetry records of 300 B drain, edge → Tributary target (loopback)`,
    columns: ['configuration', 'alarms', 'p50 ms', 'p99 ms', 'max ms', 'telemetry acknowledged meanwhile'],
    rows,
    notes: [`Latency: from just before kafkajs asks the edge to store the alarm (acks all) to a kafkajs consumer on the target receiving it (maxWaitTimeInMs 50): edge and target fsyncs and the consumer fetch included. One alarm every 50 ms. Issue 12 target: under 100 ms. A row whose telemetry column reaches the total drained before the last alarm (backlog too small for the run). Machine load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')} (shared machine: latencies are noisy).`],
  };
}

export async function run(): Promise<Table[]> {
  if (!haveCommand('kcat')) return [{ title: 'uplink drain (skipped: kcat not installed)', columns: ['-'], rows: [] }];
  // The broker refuses unknown TRIBUTARY_* variables; QUICK was read at load.
  delete process.env.TRIBUTARY_BENCH_QUICK;
  const dir = await mkdtemp(join(tmpdir(), 'tributary-bench-uplink-'));
  try {
    const { edgeDir, bytes } = await loadBacklog(dir);
    // First, on the quietest machine state this run has: the target's produce throughput.
    const ceiling = await kcatCeiling(dir);
    const best = ceiling.warm.ms < ceiling.cold.ms ? ceiling.warm : ceiling.cold;
    const target = await startBroker(t, { dataDir: join(dir, 'target') });
    const client = new KafkaClient({ bootstrap: [target.listeners.kafka!], clientId: 'bench', connectTimeoutMs: 5000, requestTimeoutMs: 10_000, inFlightMax: 5, queuedMax: 100, responseBytesMax: 1 << 20, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 500 });
    // BENCH_UPLINK_SETS: extra `--set key=value` for the uplink drain (comma-separated key=value pairs), for trying settings.
    const trySets = (process.env.BENCH_UPLINK_SETS ?? '').split(',').filter((kv) => kv.includes('=')).flatMap((kv) => ['--set', `uplink.${kv.trim()}`]);
    const up = await uplinkDrain(edgeDir, target, client, 'bench', trySets);
    if (DRAIN_ONLY) {
      await client.close();
      await target.stop();
      return [{
        title: `uplink drain vs the target's produce throughput: ${RECORDS.toLocaleString('en-US')} records of ${VALUE_BYTES} B in ${PARTITIONS} partitions (loopback, fsync before ack; BENCH_UPLINK_DRAIN_ONLY)`,
        columns: ['run', 'records', 'records/s', 'ms', 'ms from the uplink\'s start', 'records/s from the uplink\'s start', 'CPU µs/record'],
        rows: [
          ['tributary uplink (read-back mode), from the edge process\'s spawn', RECORDS, Math.round(RECORDS / (up.ms / 1000)), Math.round(up.ms), Math.round(up.fromUplinkMs), Math.round(RECORDS / (up.fromUplinkMs / 1000)), (up.cpuS / RECORDS) * 1e6],
          ['ceiling: kcat produce into a fresh target (cold)', RECORDS, Math.round(RECORDS / (ceiling.cold.ms / 1000)), Math.round(ceiling.cold.ms), '-', '-', (ceiling.cold.cpuS / RECORDS) * 1e6],
          ['ceiling: kcat produce into the same target again (warm)', RECORDS, Math.round(RECORDS / (ceiling.warm.ms / 1000)), Math.round(ceiling.warm.ms), '-', '-', (ceiling.warm.cpuS / RECORDS) * 1e6],
        ],
        notes: [`Uplink / the faster ceiling: ${((100 * best.ms) / up.ms).toFixed(0)}% from the edge process's spawn, ${((100 * best.ms) / up.fromUplinkMs).toFixed(0)}% from the uplink's start ('uplink starting', after the node's start-up), ${((100 * best.ms) / (up.ms - up.startupMs)).toFixed(0)}% after every partition resumed (${Math.round(up.startupMs)} ms after the spawn). Uplink batches: ${up.raw} raw, ${up.reencoded} re-encoded. Load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')}.`],
      }];
    }
    // The decoding path (uplink.rawForwarding=false: every batch decoded, origin headers on every
    // record, re-encoded) without and with uplink.compression, each to its own target topic.
    const reNone = await uplinkDrain(edgeDir, target, client, 'bench-none', ['--set', 'uplink.rawForwarding=false', '--set', 'uplink.compression=none']);
    const reLz4 = await uplinkDrain(edgeDir, target, client, 'bench-lz4', ['--set', 'uplink.rawForwarding=false', '--set', 'uplink.compression=lz4']);
    const mirror = await kafkajsMirror(edgeDir, target, client);
    await client.close();
    await target.stop();
    const alarms = await alarmTable(dir);
    const row = (name: string, records: number, ms: number, cpuS: number, wire: string, wireTotal: string) => [name, records, Math.round(records / (ms / 1000)), ((records * VALUE_BYTES) / (ms / 1000)) / 2 ** 20, wire, wireTotal, (cpuS / records) * 1e6];
    const upRow = (name: string, d: typeof up) => row(name, RECORDS, d.ms, d.cpuS, ((d.wireBytes / (d.ms / 1000)) / 2 ** 20).toFixed(1), (d.wireBytes / 2 ** 20).toFixed(1));
    void bytes;
    const mockTables: Table[] = [];
    if (haveCommand('/usr/bin/python3')) {
      const mock = await startMockCluster(t, dir);
      const mockClient = new KafkaClient({ bootstrap: mock.bootstrap.split(','), clientId: 'bench', connectTimeoutMs: 5000, requestTimeoutMs: 10_000, inFlightMax: 5, queuedMax: 100, responseBytesMax: 1 << 20, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 500 });
      const rows = [];
      for (const mode of MOCK_MODES) {
        const m = await mockDrain(edgeDir, mock.bootstrap, mockClient, mode);
        rows.push(row(mode.name, RECORDS, m.ms, m.cpuS, ((m.wireBytes / (m.ms / 1000)) / 2 ** 20).toFixed(1), (m.wireBytes / 2 ** 20).toFixed(1)));
      }
      await mockClient.close();
      mockTables.push({
        title: `uplink drain by exactly-once mode: the same ${RECORDS.toLocaleString('en-US')} records into librdkafka 2.0.2's mock cluster (3 brokers, in memory, loopback)`,
        columns: ['mode', 'records moved', 'records/s', 'payload MB/s', 'wire MB/s', 'wire MiB total', 'CPU µs/record'],
        rows,
        notes: ['Same backlog, same run, one after the other; each mode drains into its own target topic ({site}.telemetry) from the edge\'s start. A transaction adds AddPartitionsToTxn, the checkpoint produce and EndTxn round trips to its data produces. The mock keeps everything in memory (no fsync), so these rates are not comparable with the Tributary target above.'],
      });
    }
    return [
      {
        title: `uplink drain: ${RECORDS.toLocaleString('en-US')} records of ${VALUE_BYTES} B in ${PARTITIONS} partitions, edge → Tributary target (loopback, fsync before ack)`,
        columns: ['mirror', 'records moved', 'records/s', 'payload MB/s', 'wire MB/s', 'wire MiB total', 'CPU µs/record'],
        rows: [
          upRow('tributary uplink (read-back mode)', up),
          upRow('tributary uplink, every batch re-encoded, compression none', reNone),
          upRow('tributary uplink, every batch re-encoded, compression lz4', reLz4),
          row('kafkajs consume → idempotent produce', mirror.records, mirror.ms, mirror.cpuS, '-', '-'),
          row(`ceiling: kcat produce straight into a fresh target (idempotent, acks all, ${PARTITIONS} at once), cold`, RECORDS, ceiling.cold.ms, ceiling.cold.cpuS, '-', '-'),
          row('ceiling: the same into a second topic of that target, warm', RECORDS, ceiling.warm.ms, ceiling.warm.cpuS, '-', '-'),
        ],
        notes: [
          `Uplink time runs from the edge's start (recovery, topic scan, read-back included) to the target holding every record; CPU is the edge process's (broker + uplink). The kafkajs mirror's CPU is its own process only (the edge broker serving it is not counted), which favours the mirror. The mirror is measured for at most ${MIRROR_WINDOW_MS / 1000} s (its rate is what it moved in that time). Edge peak RSS (VmHWM, broker + uplink) during the drain: ${up.rssPeakMiB} MiB. Uplink batches: ${up.raw} forwarded raw, ${up.reencoded} re-encoded (re-encoded rows: ${reNone.reencoded} and ${reLz4.reencoded} batches, each record with its own origin headers; the values are padded with 'x', so lz4's ratio here is an upper bound for real telemetry). Ratio: ${(RECORDS / up.ms / (mirror.records / mirror.ms)).toFixed(2)}× the mirror's records/s. Uplink drain / the target's produce throughput (the faster ceiling row; its CPU column is kcat's alone): ${((100 * best.ms) / up.ms).toFixed(0)}% from the edge's start (issue 12 target: ≥ 80%); the uplink's start-up (process, recovery, topic scan, target check, read-back, to the last partition's resume line) took ${Math.round(up.startupMs)} ms of its ${Math.round(up.ms)} ms, most of it the node process's own start before the uplink starts; from the uplink's start ('uplink starting') to the last record ${Math.round(up.fromUplinkMs)} ms, ${Math.round(RECORDS / (up.fromUplinkMs / 1000)).toLocaleString('en-US')} records/s, ${((100 * best.ms) / up.fromUplinkMs).toFixed(0)}% of the ceiling; after every partition resumed, ${((100 * best.ms) / (up.ms - up.startupMs)).toFixed(0)}%. Machine load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')} (shared machine: figures are noisy).`,
        ],
      },
      ...mockTables,
      alarms,
    ];
  } finally {
    for (const fn of teardowns.reverse()) await fn();
    await rm(dir, { recursive: true, force: true });
  }
}
