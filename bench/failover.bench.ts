// Failover time distribution (issue 11: p99 < 5 s): one cluster of three real `tributary start`
// processes on loopback, one topic at replication factor 3 with three partitions, and one
// idempotent acks=all librdkafka producer (confluent_kafka under /usr/bin/python3) streaming
// keyed records at 150/s for the whole run. Each trial kills a partition leader with kill -9
// (every fourth the controller, which leads a partition too), measures the signal sent → the
// first acknowledgement of a record produced after it on every partition the node led, restarts
// the node on its data dir and waits until it is back in every ISR with leaderships rebalanced
// (test/helpers/kill-trials.ts, the same trials as test/integration/cluster-kill-trials.test.ts).
// Cluster settings: cluster.tickMs 50, sessionTimeoutMs 1000 (KILL_TRIALS_CLUSTER_SET).
// The three nodes and the producer share the machine's cores: an upper bound on three machines.
// Trials: TRIBUTARY_BENCH_FAILOVER_TRIALS (default 20; --quick: 3).
import { spawnSync } from 'node:child_process';
import { haveCommand, tempDir } from '../test/helpers/index.js';
import { startCluster } from '../test/helpers/cluster.js';
import { bootstrap, createTopic } from '../test/helpers/replicas.js';
import { checkQueue, kcatReadQueue } from '../test/helpers/queue-checker.js';
import { AckStream, distribution, KILL_TRIALS_CLUSTER_SET, orderViolations, runKillTrials, type TrialResult } from '../test/helpers/kill-trials.js';
import type { Table } from './table.js';

export const subject = 'failover';
export const order = 92;

const PYTHON = '/usr/bin/python3';
const TOPIC = 'readings';
const PARTITIONS = 3;

type Teardowns = Array<() => unknown>;
const holder = (list: Teardowns) => ({ teardown: (fn: () => unknown) => void list.push(fn) });

function row(label: string, trials: TrialResult[]): Array<string | number> {
  const d = distribution(trials.map((r) => r.failoverMs));
  return d.n === 0 ? [label, 0, '-', '-', '-', '-', '-'] : [label, d.n, d.min, d.median, d.p90, d.p99, d.max];
}

async function failover(trialCount: number): Promise<Table> {
  const cleanup: Teardowns = [];
  try {
    const dir = await tempDir(holder(cleanup), 'tributary-bench-failover-');
    const c = await startCluster(holder(cleanup), 3, { set: KILL_TRIALS_CLUSTER_SET });
    await createTopic(c, 1, TOPIC, PARTITIONS);
    const stream = await AckStream.start(dir, bootstrap(c), TOPIC, { tag: 'r', ratePerSec: 150, keys: 24 });
    cleanup.push(() => stream.kill());
    const trials = await runKillTrials(c, { trials: trialCount, controllerEvery: 4, topic: TOPIC, stream });
    const { sent } = await stream.finish();
    // The figures count only if nothing acknowledged went missing on the way.
    const read = await kcatReadQueue(bootstrap(c), TOPIC);
    const v = checkQueue({ sent: Array.from({ length: sent }, (_, i) => `r-${i}`), acked: stream.acked, reads: [read] });
    const misordered = orderViolations(read.records).length;
    const restart = distribution(trials.map((r) => r.restartMs));
    const rejoin = distribution(trials.map((r) => r.rejoinMs));
    return {
      title: 'Failover: kill -9 of a leader under an idempotent acks=all stream → first acknowledgement of a record produced after it (3 nodes, RF 3, tickMs 50, sessionTimeoutMs 1000)',
      columns: ['killed node', 'trials', 'min ms', 'median ms', 'p90 ms', 'p99 ms', 'max ms'],
      rows: [row('a leader, not the controller', trials.filter((r) => !r.controller)), row('the controller (and a leader)', trials.filter((r) => r.controller)), row('all', trials)],
      notes: [
        `Queue checker over kcat's read: ${v.valid && misordered === 0 ? 'valid' : 'INVALID'} — ${v.counts.acked} acknowledged of ${v.counts.sent} sent; lost ${v.counts.lost}, duplicate ${v.counts.duplicate}, inconsistent ${v.counts.inconsistent}, out of producer order ${misordered}; delivery errors ${stream.errors.length}.`,
        `Restart of the killed node to ready: median ${restart.median} ms, max ${restart.max} ms; ready to back in every ISR with leaderships rebalanced: median ${rejoin.median} ms, max ${rejoin.max} ms.`,
      ],
    };
  } finally {
    for (const fn of cleanup.reverse()) await fn();
  }
}

export async function run(): Promise<Table[]> {
  const quick = process.env.TRIBUTARY_BENCH_QUICK === '1';
  const raw = process.env.TRIBUTARY_BENCH_FAILOVER_TRIALS;
  const trials = quick ? 3 : raw ? Number(raw) : 20;
  if (!Number.isInteger(trials) || trials < 1) throw new Error(`TRIBUTARY_BENCH_FAILOVER_TRIALS must be an integer ≥ 1, got ${JSON.stringify(raw)}`);
  if (!haveCommand('kcat') || spawnSync(PYTHON, ['-c', 'import confluent_kafka']).status !== 0) {
    return [{ title: 'Failover', columns: ['skipped'], rows: [['needs kcat and /usr/bin/python3 with confluent_kafka']] }];
  }
  return [await failover(trials)];
}
