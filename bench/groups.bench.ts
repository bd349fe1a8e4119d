// Consumer groups: what a committed offset costs (each is an fsynced append to
// __consumer_offsets) through the JS API and through the Kafka door with kafkajs, next to the
// peer that bounds it — a bare acks=-1 produce of one record to a flush=always topic, measured
// in the same run; how long a rebalance of N members takes to reach Stable; and how long a
// restart takes to replay the offsets of many groups.
//
// Env: BENCH_GROUPS_CELL_MS (default 1000) per cell, BENCH_GROUPS_REPS (3, interleaved).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { Broker } from '../host/broker/broker.js';
import { GroupCoordinator } from '../host/broker/groups/index.js';
import { startKafkaServer } from '../host/kafka/server.js';
import { silentLogger } from '../host/logging.js';
import { MetricsRegistry } from '../host/metrics/registry.js';
import { median, quantile, rssMiB, type Table } from './table.js';

export const subject = 'groups';
export const order = 60;

const CELL_MS = Number(process.env.BENCH_GROUPS_CELL_MS ?? 1000);
const REPS = Number(process.env.BENCH_GROUPS_REPS ?? 3);
/** Members joining an empty group together are gathered by the initial delay (with 0, the first
 * join would complete alone and every later one would start another rebalance). */
const INITIAL_DELAY_MS = 50;

interface Env {
  dir: string;
  broker: Broker;
  groups: GroupCoordinator;
  close(): Promise<void>;
}

async function openEnv(dir: string): Promise<Env> {
  const deps = { logger: silentLogger, metrics: new MetricsRegistry() };
  const broker = await Broker.open({ dataDir: dir }, deps);
  const groups = await GroupCoordinator.open(broker, { initialRebalanceDelayMs: INITIAL_DELAY_MS, minSessionTimeoutMs: 1000 }, deps);
  return {
    dir,
    broker,
    groups,
    async close() {
      await groups.close();
      await broker.close();
    },
  };
}

interface Cell {
  perS: number;
  p50Ms: number;
  p99Ms: number;
}

/** Runs `workers` loops of `op` for CELL_MS; ops/s and latency quantiles. */
async function cell(workers: number, op: (worker: number, i: number) => Promise<unknown>): Promise<Cell> {
  const lat: number[] = [];
  const t0 = performance.now();
  const deadline = t0 + CELL_MS;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const s = performance.now();
        await op(w, i);
        lat.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  return { perS: lat.length / secs, p50Ms: quantile(lat, 0.5), p99Ms: quantile(lat, 0.99) };
}

export async function run(): Promise<Table[]> {
  const root = mkdtempSync(join(tmpdir(), 'tributary-bench-groups-'));
  try {
    const env = await openEnv(join(root, 'data'));
    await env.broker.createTopic('events', 8);
    await env.broker.createTopic('peer', 1, { flush: 'always' });
    const listener = await startKafkaServer({ broker: env.broker, groups: env.groups, logger: silentLogger, metrics: new MetricsRegistry() }, { host: '127.0.0.1', port: 0, dataDir: env.dir });
    const kafka = new Kafka({ clientId: 'bench', brokers: [listener.address], logLevel: logLevel.NOTHING });
    // A group member on the wire, joined once; its commits are then timed.
    const consumer = kafka.consumer({ groupId: 'kjs-bench', sessionTimeout: 10_000, heartbeatInterval: 1000, maxWaitTimeInMs: 100 });
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await consumer.connect();
    await consumer.subscribe({ topic: 'events', fromBeginning: false });
    await consumer.run({ autoCommit: false, eachMessage: async () => undefined });
    await joined;

    const value = new TextEncoder().encode('x'.repeat(40)); // about a commit record's size
    const kinds: Array<{ name: string; workers: number; op: (w: number, i: number) => Promise<unknown> }> = [
      { name: 'peer: produce 1 record, acks=-1, flush=always', workers: 1, op: () => env.broker.produce('peer', [{ key: null, value }], { acks: -1 }) },
      { name: 'peer: same, 8 producers', workers: 8, op: () => env.broker.produce('peer', [{ key: null, value }], { acks: -1 }) },
      { name: 'JS API commitOffsets, 1 partition', workers: 1, op: (w, i) => env.groups.commitOffsets({ groupId: `js-${w}`, offsets: [{ topic: 'events', partition: 0, offset: i }] }) },
      { name: 'JS API commitOffsets, 1 partition, 8 groups', workers: 8, op: (w, i) => env.groups.commitOffsets({ groupId: `js-${w}`, offsets: [{ topic: 'events', partition: 0, offset: i }] }) },
      {
        name: 'JS API commitOffsets, 8 partitions',
        workers: 1,
        op: (w, i) => env.groups.commitOffsets({ groupId: `js8-${w}`, offsets: Array.from({ length: 8 }, (_, p) => ({ topic: 'events', partition: p, offset: i })) }),
      },
      {
        name: 'kafkajs consumer.commitOffsets (OffsetCommit v5), 8 partitions',
        workers: 1,
        op: (_w, i) => consumer.commitOffsets(Array.from({ length: 8 }, (_, p) => ({ topic: 'events', partition: p, offset: String(i) }))),
      },
    ];
    for (const k of kinds) await k.op(0, 0); // warm-up: topic creation, first segment, JIT
    const samples = kinds.map(() => [] as Cell[]);
    for (let r = 0; r < REPS; r++) for (let k = 0; k < kinds.length; k++) samples[k].push(await cell(kinds[k].workers, kinds[k].op));
    const commitTable: Table = {
      title: 'Consumer groups: committed offsets (each commit = one fsynced append to __consumer_offsets)',
      columns: ['operation', 'concurrency', 'calls/s', 'p50 ms', 'p99 ms'],
      rows: kinds.map((k, i) => [k.name, k.workers, median(samples[i].map((c) => c.perS)), median(samples[i].map((c) => c.p50Ms)), median(samples[i].map((c) => c.p99Ms))]),
      notes: [`Median of ${REPS} interleaved repetitions of ${CELL_MS} ms. The peer rows are the floor: a commit is one such append plus encoding. RSS after: ${rssMiB().toFixed(0)} MiB.`],
    };
    await consumer.disconnect();

    // Rebalance: N members join an empty group at once until all have synced.
    const sizes = [1, 8, 32];
    const rebalanceMs = sizes.map(() => [] as number[]);
    for (let r = 0; r < REPS; r++) {
      for (let s = 0; s < sizes.length; s++) {
        const n = sizes[s];
        const groupId = `rb-${n}-${r}`;
        const t0 = performance.now();
        const joined = await Promise.all(
          Array.from({ length: n }, () =>
            env.groups.joinGroup({ groupId, memberId: '', sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, protocolType: 'consumer', protocols: [{ name: 'range', metadata: value }] }),
          ),
        );
        const leader = joined.find((j) => j.leader === j.memberId)!;
        await Promise.all(
          joined.map((j) =>
            env.groups.syncGroup({ groupId, generationId: j.generationId, memberId: j.memberId, assignments: j === leader ? joined.map((m) => ({ memberId: m.memberId, assignment: value })) : [] }),
          ),
        );
        rebalanceMs[s].push(performance.now() - t0);
        await env.groups.leaveGroup({ groupId, members: joined.map((j) => ({ memberId: j.memberId })) });
      }
    }
    await listener.close();
    await env.close();

    // Replay: G groups × 8 committed partitions, then reopen.
    const loadRows: Array<[string, number, number, number]> = [];
    for (const groupsCount of [100, 1000]) {
      const dir = join(root, `load-${groupsCount}`);
      const e = await openEnv(dir);
      await e.broker.createTopic('events', 8);
      for (let g = 0; g < groupsCount; g += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, groupsCount - g) }, (_, k) =>
            e.groups.commitOffsets({ groupId: `load-${g + k}`, offsets: Array.from({ length: 8 }, (_, p) => ({ topic: 'events', partition: p, offset: 100 + p })) }),
          ),
        );
      }
      await e.close();
      const times: number[] = [];
      for (let r = 0; r < REPS; r++) {
        const deps = { logger: silentLogger, metrics: new MetricsRegistry() };
        const broker = await Broker.open({ dataDir: dir }, deps);
        const t0 = performance.now();
        const c = await GroupCoordinator.open(broker, {}, deps);
        times.push(performance.now() - t0);
        if (c.listGroups().length !== groupsCount) throw new Error(`replay restored ${c.listGroups().length} of ${groupsCount} groups`);
        await c.close();
        await broker.close();
      }
      loadRows.push([`${groupsCount} groups × 8 offsets`, groupsCount * 8, median(times), rssMiB()]);
    }
    return [
      commitTable,
      {
        title: `Consumer groups: rebalance of N members to Stable (JS API, initial delay ${INITIAL_DELAY_MS} ms)`,
        columns: ['members', 'ms (median)'],
        rows: sizes.map((n, s) => [n, median(rebalanceMs[s])]),
        notes: [`Every member joins at once; the time includes the ${INITIAL_DELAY_MS} ms initial delay, then the leader's assignment made durable and delivered to all.`],
      },
      {
        title: 'Consumer groups: replay of __consumer_offsets at open',
        columns: ['state on disk', 'offset records', 'open ms (median)', 'RSS MiB'],
        rows: loadRows,
      },
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
