// Replicated produce on loopback (issue 11): real `tributary start` processes, a librdkafka
// producer (confluent_kafka under /usr/bin/python3) sending 1 KiB records to one partition.
// Rows: one node (replication factor 1) with acks=1 and acks=all; three nodes (replication
// factor 3, min.insync.replicas 2, followers fsync before they acknowledge) with acks=1 and
// acks=all. Latency is per record, from produce() to its delivery report (so it includes the
// producer's linger and batching). A second table: failover time, kill -9 of the partition's
// leader under an acks=all stream → the first record acknowledged after it (the client
// re-routing by itself), with cluster.tickMs=50 and cluster.sessionTimeoutMs=1000.
// All processes share the machine's cores with the producer: an upper bound on what a cluster of
// three machines would cost.
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { haveCommand, tempDir, eventually, sleep } from '../test/helpers/index.js';
import { startCluster, type Cluster } from '../test/helpers/cluster.js';
import { median, type Table } from './table.js';

export const subject = 'replication';
export const order = 91;

const PYTHON = '/usr/bin/python3';

const PRODUCER = `
import sys, time, json
from confluent_kafka import Producer
bootstrap, topic, count, acks, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
sent_at, lat, acked = {}, [], []
value = b'x' * 1024
def done(err, msg):
    if err is None:
        now = time.time(); k = int(msg.key()); lat.append(now - sent_at.pop(k)); acked.append((msg.partition(), now))
p = Producer({'bootstrap.servers': bootstrap, 'acks': acks, 'linger.ms': 5, 'enable.idempotence': acks == 'all',
              'retries': 1000000, 'retry.backoff.ms': 50, 'topic.metadata.refresh.interval.ms': 1000, 'message.timeout.ms': 30000})
t0 = time.time(); i = 0
while (count > 0 and i < count) or (count == 0 and time.time() - t0 < seconds):
    try:
        sent_at[i] = time.time(); p.produce(topic, key=str(i).encode(), value=value, on_delivery=done); i += 1
    except BufferError:
        p.poll(0.005)
    p.poll(0)
p.flush(60)
dt = time.time() - t0
lat.sort()
q = lambda f: round(lat[min(len(lat) - 1, int(len(lat) * f))] * 1000, 2) if lat else -1
print(json.dumps({'acked': len(lat), 'seconds': dt, 'p50': q(0.5), 'p99': q(0.99), 'ackTimes': [a[1] for a in acked if a[0] == 0]}))
`;

interface Run {
  acked: number;
  seconds: number;
  p50: number;
  p99: number;
  ackTimes: number[];
}

async function produce(dir: string, bootstrap: string, topic: string, count: number, acks: string, seconds = 0): Promise<Run> {
  const script = join(dir, 'bench-producer.py');
  await writeFile(script, PRODUCER);
  const child = spawn(PYTHON, [script, bootstrap, topic, String(count), acks, String(seconds)], { stdio: ['ignore', 'pipe', 'ignore'] });
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

async function throughput(count: number): Promise<Table> {
  const rows: Array<Array<string | number>> = [];
  for (const nodes of [1, 3]) {
    const cleanup: Teardowns = [];
    try {
      const dir = await tempDir(holder(cleanup), 'tributary-bench-repl-');
      const c = await startCluster(holder(cleanup), nodes, { set: ['cluster.tickMs=50'] });
      for (const acks of ['1', 'all']) {
        const topic = `bench-${acks}`;
        await createTopic(c.httpUrl(1), topic, nodes);
        await eventually(() => leaderOf(c, 1, topic) > 0, 20_000, 200);
        const r = await produce(dir, c.live().map((n) => n.proc!.listeners.kafka!).join(','), topic, count, acks);
        rows.push([`${nodes === 1 ? '1 node, RF 1' : '3 nodes, RF 3'}, acks=${acks}`, r.acked, Math.round(r.acked / r.seconds), Math.round((r.acked * 1024) / r.seconds / 1024 / 1024 * 10) / 10, r.p50, r.p99]);
      }
    } finally {
      for (const fn of cleanup.reverse()) await fn();
    }
  }
  return { title: 'Replicated produce, 1 KiB records, librdkafka, one partition, loopback', columns: ['setup', 'records', 'records/s', 'MiB/s', 'p50 ms', 'p99 ms'], rows };
}

async function failover(trials: number): Promise<Table> {
  const cleanup: Teardowns = [];
  const times: number[] = [];
  try {
    const dir = await tempDir(holder(cleanup), 'tributary-bench-fail-');
    const c = await startCluster(holder(cleanup), 3, { set: ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000'] });
    for (let trial = 0; trial < trials; trial++) {
      const topic = `fail-${trial}`;
      const via = c.live()[0]!.id;
      await createTopic(c.httpUrl(via), topic, 3);
      const leader = (await eventually(() => leaderOf(c, via, topic) > 0 && leaderOf(c, via, topic), 20_000, 200)) as number;
      const stream = produce(dir, c.live().map((n) => n.proc!.listeners.kafka!).join(','), topic, 0, 'all', 7);
      await sleep(2000);
      await c.kill9(leader);
      const killedAt = Date.now() / 1000; // once it is gone: its last answers do not count
      const r = await stream;
      const first = r.ackTimes.find((at) => at > killedAt);
      if (first !== undefined) times.push(Math.round((first - killedAt) * 1000));
      await c.start(leader);
      await eventually(() => leaderOf(c, via, topic) > 0, 180_000, 500);
    }
  } finally {
    for (const fn of cleanup.reverse()) await fn();
  }
  const s = [...times].sort((a, b) => a - b);
  return {
    title: 'Failover: kill -9 of the leader → first acks=all record acknowledged (tickMs 50, sessionTimeoutMs 1000)',
    columns: ['trials', 'median ms', 'min ms', 'max ms'],
    rows: [[s.length, median(s), s[0] ?? -1, s.at(-1) ?? -1]],
  };
}

export async function run(): Promise<Table[]> {
  const quick = process.env.TRIBUTARY_BENCH_QUICK === '1';
  // The broker refuses unknown TRIBUTARY_* variables: its children must not inherit this one.
  delete process.env.TRIBUTARY_BENCH_QUICK;
  if (!haveCommand('kcat') || spawnSync(PYTHON, ['-c', 'import confluent_kafka']).status !== 0) {
    return [{ title: 'Replicated produce', columns: ['skipped'], rows: [['needs kcat and /usr/bin/python3 with confluent_kafka']] }];
  }
  return [await throughput(quick ? 3000 : 30_000), await failover(quick ? 1 : Number(process.env.FAILOVER_TRIALS ?? 5))];
}
