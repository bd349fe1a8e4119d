// Replicated produce on loopback (issue 11): real `tributary start` processes, a librdkafka
// producer (confluent_kafka under /usr/bin/python3) sending 1 KiB records to one partition.
// Rows: one node (replication factor 1) with acks=1 and acks=all; three nodes (replication
// factor 3, min.insync.replicas 2, followers fsync before they acknowledge) with acks=1 and
// acks=all; then RF 1 and RF 3 at acks=all again with a 5 ms delay added to every fsync
// (`broker.injectedFlushDelayMs`, an SD card's fsync on a fast disk: issue 11's target is RF 3 at
// ≥ 50 % of RF 1 there). Latency is per record, from produce() to its delivery report (so it
// includes the producer's linger and batching). The last column is the 1-minute load average
// when the row ended. REPLICATION_BENCH_RUNS=n runs every row n times, interleaved, and reports
// the median (a shared machine's load moves by half between two runs). Failover times are
// bench/failover.bench.ts's. The producer is idempotent at acks=all (one batch in flight with
// Debian's librdkafka 2.0.2, so the ratio is one batch's round trip at RF 1 over one at RF 3);
// the clock starts once a warm-up record is delivered (producer id, metadata and leader
// connection in place: a start-up stall of librdkafka's is not replication's cost);
// REPLICATION_BENCH_IDEMPOTENCE=0 runs it with librdkafka's defaults instead, as `kcat -P -X
// acks=all` does (not idempotent, many batches in flight): the same settings for every row either way.
// Nodes run with npm start's node flags (REPLICATION_BENCH_NODE_ARGS names others, '' = none).
// All processes share the machine's cores with the producer: an upper bound on what a cluster of
// three machines would cost.
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { haveCommand, tempDir, eventually } from '../test/helpers/index.js';
import { startCluster, type Cluster } from '../test/helpers/cluster.js';
import type { Table } from './table.js';
import { startNodeFlags } from './start-flags.js';

export const subject = 'replication';
export const order = 91;

const PYTHON = '/usr/bin/python3';

const PRODUCER = `
import sys, time, json
from confluent_kafka import Producer
bootstrap, topic, count, acks, idempotence = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == '1'
sent_at, lat = {}, []
value = b'x' * 1024
def done(err, msg):
    if err is None:
        lat.append(time.time() - sent_at.pop(int(msg.key())))
p = Producer({'bootstrap.servers': bootstrap, 'acks': acks, 'linger.ms': 5, 'enable.idempotence': idempotence and acks == 'all',
              'retries': 1000000, 'retry.backoff.ms': 50, 'topic.metadata.refresh.interval.ms': 1000, 'message.timeout.ms': 30000})
# Warm-up, not measured: one record delivered first, so the producer id, the topic's metadata and
# the connection to the leader are in place. librdkafka 2.0.2 sometimes learns the partition's
# leader only at its 1 s topic scan (its first topic Metadata request does not go out), which
# added a fixed ~1 s to about one run in six: a 0.7 s run measured at 40 % of its speed.
p.produce(topic, key=b'warm-up', value=value)  # no delivery callback: not in the latencies
if p.flush(30) != 0:
    sys.exit('warm-up record not delivered within 30 s')
t0 = time.time(); i = 0
while i < count:
    try:
        sent_at[i] = time.time(); p.produce(topic, key=str(i).encode(), value=value, on_delivery=done); i += 1
    except BufferError:
        p.poll(0.005)
    p.poll(0)
p.flush(60)
dt = time.time() - t0
lat.sort()
q = lambda f: round(lat[min(len(lat) - 1, int(len(lat) * f))] * 1000, 2) if lat else -1
print(json.dumps({'acked': len(lat), 'seconds': dt, 'p50': q(0.5), 'p99': q(0.99)}))
`;

interface Run {
  acked: number;
  seconds: number;
  p50: number;
  p99: number;
}

async function produce(dir: string, bootstrap: string, topic: string, count: number, acks: string): Promise<Run> {
  const script = join(dir, 'bench-producer.py');
  await writeFile(script, PRODUCER);
  const child = spawn(PYTHON, [script, bootstrap, topic, String(count), acks, process.env.REPLICATION_BENCH_IDEMPOTENCE === '0' ? '0' : '1'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((r) => child.on('exit', r));
  return JSON.parse(out.trim().split('\n').pop()!) as Run;
}

function leaderOf(c: Cluster, via: number, topic: string): number {
  const r = spawnSync('kcat', ['-L', '-J', '-m', '3', '-b', c.node(via).proc!.listeners.kafka!, '-t', topic], { encoding: 'utf8' });
  const doc = JSON.parse(r.stdout || '{}') as { topics?: Array<{ partitions?: Array<{ leader: number; isrs: unknown[] }> }> };
  const p = doc.topics?.[0]?.partitions?.[0];
  return p && p.isrs.length === c.live().length ? p.leader : -1;
}

async function createTopic(httpUrl: string, name: string, rf: number): Promise<void> {
  const res = await fetch(`${httpUrl}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions: 1, replicationFactor: rf }) });
  await res.text();
}

type Teardowns = Array<() => unknown>;
const holder = (list: Teardowns) => ({ teardown: (fn: () => unknown) => void list.push(fn) });

/** One cluster shape: nodes (= replication factor), the injected fsync delay, the acks levels run on it. */
interface Setup {
  nodes: 1 | 3;
  flushDelayMs: number;
  acks: Array<'1' | 'all'>;
}

/** Without and then with an SD card's fsync (5 ms, `broker.injectedFlushDelayMs`): RF 1 next to RF 3 in each. */
const SETUPS: Setup[] = [
  { nodes: 1, flushDelayMs: 0, acks: ['1', 'all'] },
  { nodes: 3, flushDelayMs: 0, acks: ['1', 'all'] },
  { nodes: 1, flushDelayMs: 5, acks: ['all'] },
  { nodes: 3, flushDelayMs: 5, acks: ['all'] },
];

/** One row's measurement in one round. */
interface Sample {
  records: number;
  perSecond: number;
  p50: number;
  p99: number;
  load: number;
}

/** One round: every setup once, each on a fresh cluster; samples by row name. */
async function round(count: number, into: Map<string, Sample[]>): Promise<void> {
  for (const setup of SETUPS) {
    const cleanup: Teardowns = [];
    try {
      const dir = await tempDir(holder(cleanup), 'tributary-bench-repl-');
      const set = ['cluster.tickMs=50', `broker.injectedFlushDelayMs=${setup.flushDelayMs}`];
      const c = await startCluster(holder(cleanup), setup.nodes, { set, nodeArgs: startNodeFlags(process.env.REPLICATION_BENCH_NODE_ARGS) });
      for (const acks of setup.acks) {
        const topic = `bench-${acks}`;
        await createTopic(c.httpUrl(1), topic, setup.nodes);
        await eventually(() => leaderOf(c, 1, topic) > 0, 20_000, 200);
        const r = await produce(dir, c.live().map((n) => n.proc!.listeners.kafka!).join(','), topic, count, acks);
        const name = `${setup.nodes === 1 ? '1 node, RF 1' : '3 nodes, RF 3'}, acks=${acks}${setup.flushDelayMs > 0 ? `, fsync +${setup.flushDelayMs} ms` : ''}`;
        const samples = into.get(name) ?? [];
        samples.push({ records: r.acked, perSecond: r.acked / r.seconds, p50: r.p50, p99: r.p99, load: os.loadavg()[0]! });
        into.set(name, samples);
      }
    } finally {
      for (const fn of cleanup.reverse()) await fn();
    }
  }
}

const middle = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * `runs` rounds (REPLICATION_BENCH_RUNS, default 1), interleaved so load drift on a shared
 * machine hits every row alike; each row shows its median round (records/s, p50, p99) and, with
 * more than one round, the range. "of RF 1": the RF 3 row's median over the RF 1 row's with the
 * same acks and fsync delay.
 */
async function throughput(count: number, runs: number): Promise<Table> {
  const samples = new Map<string, Sample[]>();
  for (let r = 0; r < runs; r++) await round(count, samples);
  const perSecond = (name: string) => middle(samples.get(name)!.map((s) => s.perSecond));
  const rows = [...samples].map(([name, s]) => {
    const rf1 = name.replace('3 nodes, RF 3', '1 node, RF 1');
    const share = name !== rf1 && samples.has(rf1) ? `${Math.round((perSecond(name) / perSecond(rf1)) * 100)} %` : '';
    const rate = Math.round(perSecond(name));
    const range = runs > 1 ? `${Math.round(Math.min(...s.map((x) => x.perSecond))).toLocaleString('en-US')}–${Math.round(Math.max(...s.map((x) => x.perSecond))).toLocaleString('en-US')}` : '';
    const load = (s.reduce((a, x) => a + x.load, 0) / s.length).toFixed(1);
    return [name, s[0]!.records, rate, Math.round((rate / 1024) * 10) / 10, ...(runs > 1 ? [range] : []), share, middle(s.map((x) => x.p50)), middle(s.map((x) => x.p99)), load];
  });
  return {
    title: `Replicated produce, 1 KiB records, librdkafka ${process.env.REPLICATION_BENCH_IDEMPOTENCE === '0' ? '(not idempotent: kcat\'s defaults)' : '(idempotent at acks=all)'}, one partition, loopback${runs > 1 ? ` (median of ${runs} interleaved rounds)` : ''}`,
    columns: ['setup', 'records', 'records/s', 'MiB/s', ...(runs > 1 ? ['records/s range'] : []), 'of RF 1', 'p50 ms', 'p99 ms', 'load 1 min'],
    rows,
  };
}

export async function run(): Promise<Table[]> {
  const quick = process.env.TRIBUTARY_BENCH_QUICK === '1';
  // The broker refuses unknown TRIBUTARY_* variables: its children must not inherit this one.
  delete process.env.TRIBUTARY_BENCH_QUICK;
  if (!haveCommand('kcat') || spawnSync(PYTHON, ['-c', 'import confluent_kafka']).status !== 0) {
    return [{ title: 'Replicated produce', columns: ['skipped'], rows: [['needs kcat and /usr/bin/python3 with confluent_kafka']] }];
  }
  const runs = Number(process.env.REPLICATION_BENCH_RUNS ?? 1);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`REPLICATION_BENCH_RUNS=${process.env.REPLICATION_BENCH_RUNS}: a whole number of rounds, at least 1`);
  return [await throughput(quick ? 3000 : 100_000, quick ? 1 : runs)];
}
