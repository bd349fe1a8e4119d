// Replicated produce on loopback (issue 11): real `tributary start` processes, a librdkafka
// producer (confluent_kafka under /usr/bin/python3) sending 1 KiB records to one partition.
// Rows: one node (replication factor 1) with acks=1 and acks=all; three nodes (replication
// factor 3, min.insync.replicas 2, followers fsync before they acknowledge) with acks=1 and
// acks=all; then RF 1 and RF 3 at acks=all again with a 5 ms delay added to every fsync
// (`broker.injectedFlushDelayMs`, an SD card's fsync on a fast disk: issue 11's target is RF 3 at
// ≥ 50 % of RF 1 there). Latency is per record, from produce() to its delivery report (so it
// includes the producer's linger and batching). The last column is the 1-minute load average
// when the row ended. Failover times are bench/failover.bench.ts's.
// All processes share the machine's cores with the producer: an upper bound on what a cluster of
// three machines would cost.
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { haveCommand, tempDir, eventually } from '../test/helpers/index.js';
import { startCluster, type Cluster } from '../test/helpers/cluster.js';
import type { Table } from './table.js';

export const subject = 'replication';
export const order = 91;

const PYTHON = '/usr/bin/python3';

const PRODUCER = `
import sys, time, json
from confluent_kafka import Producer
bootstrap, topic, count, acks = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sent_at, lat = {}, []
value = b'x' * 1024
def done(err, msg):
    if err is None:
        lat.append(time.time() - sent_at.pop(int(msg.key())))
p = Producer({'bootstrap.servers': bootstrap, 'acks': acks, 'linger.ms': 5, 'enable.idempotence': acks == 'all',
              'retries': 1000000, 'retry.backoff.ms': 50, 'topic.metadata.refresh.interval.ms': 1000, 'message.timeout.ms': 30000})
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
  const child = spawn(PYTHON, [script, bootstrap, topic, String(count), acks], { stdio: ['ignore', 'pipe', 'ignore'] });
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

async function throughput(count: number): Promise<Table> {
  const rows: Array<Array<string | number>> = [];
  /** records/s of the RF 1 row with the same acks and fsync delay: the RF 3 row's share of it. */
  const rf1 = new Map<string, number>();
  for (const setup of SETUPS) {
    const cleanup: Teardowns = [];
    try {
      const dir = await tempDir(holder(cleanup), 'tributary-bench-repl-');
      const set = ['cluster.tickMs=50', `broker.injectedFlushDelayMs=${setup.flushDelayMs}`];
      const c = await startCluster(holder(cleanup), setup.nodes, { set });
      for (const acks of setup.acks) {
        const topic = `bench-${acks}`;
        await createTopic(c.httpUrl(1), topic, setup.nodes);
        await eventually(() => leaderOf(c, 1, topic) > 0, 20_000, 200);
        const r = await produce(dir, c.live().map((n) => n.proc!.listeners.kafka!).join(','), topic, count, acks);
        const perSecond = Math.round(r.acked / r.seconds);
        const shape = `acks=${acks}, fsync +${setup.flushDelayMs} ms`;
        if (setup.nodes === 1) rf1.set(shape, perSecond);
        const share = setup.nodes === 3 && rf1.has(shape) ? `${Math.round((perSecond / rf1.get(shape)!) * 100)} %` : '';
        const name = `${setup.nodes === 1 ? '1 node, RF 1' : '3 nodes, RF 3'}, acks=${acks}${setup.flushDelayMs > 0 ? `, fsync +${setup.flushDelayMs} ms` : ''}`;
        rows.push([name, r.acked, perSecond, Math.round(((r.acked * 1024) / r.seconds / 1024 / 1024) * 10) / 10, share, r.p50, r.p99, os.loadavg()[0]!.toFixed(1)]);
      }
    } finally {
      for (const fn of cleanup.reverse()) await fn();
    }
  }
  return {
    title: 'Replicated produce, 1 KiB records, librdkafka, one partition, loopback',
    columns: ['setup', 'records', 'records/s', 'MiB/s', 'of RF 1', 'p50 ms', 'p99 ms', 'load 1 min'],
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
  return [await throughput(quick ? 3000 : 30_000)];
}
