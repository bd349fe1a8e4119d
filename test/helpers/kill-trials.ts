// Repeated kill -9 failovers on one running cluster (issue 11: ≥ 50 kill trials per CI run, the
// failover time distribution in bench/). Shared by test/integration/cluster-kill-trials.test.ts
// and bench/failover.bench.ts.
//
// One librdkafka producer (confluent_kafka under /usr/bin/python3: idempotent, acks=all, retrying
// without limit) streams keyed records at a steady rate into a replication-factor-3 topic for the
// whole run and reports every delivery on its stdout as it happens. Each trial:
//   1. waits until every node agrees that every partition has its full ISR and is led by its
//      preferred replica (the controller's rebalancing hands leaderships back after a restart, so
//      each node leads its own partitions and a controller kill is also a leader kill), then
//      until the partitions of the node it will kill acknowledged a record produced after that;
//   2. kill -9 of a partition leader that is not the controller, or, every `controllerEvery`
//      trials, of the controller;
//   3. failover = the signal sent → the first acknowledgement of a record produced after it, on
//      each partition the killed node led (the slowest of them). Counting only records produced
//      after the signal means an answer the dying leader sent just before the kill can never
//      pass for a failover; it may add one produce round trip to the figure (an upper bound);
//   4. restarts the killed node on the same data dir (it truncates by leader epoch and catches
//      up) and goes back to 1, which waits for it to rejoin the ISR.
// Nothing here sleeps: every wait is on a delivery report or on a status answer (polled 25 ms
// apart over the node's cluster listener, the way `tributary cluster status` asks).
// Bounds: the acknowledgement list grows with the records sent (rate × run time: tens of
// thousands); each wait has a timeout that names what it waited for.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { eventually } from './index.js';
import type { Cluster } from './cluster.js';
import type { AckedRecord } from './queue-checker.js';

const PYTHON = '/usr/bin/python3';

/**
 * Cluster settings for the trials: Raft ticks of 50 ms, a dead broker fenced after 1 s, ISR and
 * rebalance checks every 100–200 ms, so one trial costs about a second of failover plus a restart.
 */
export const KILL_TRIALS_CLUSTER_SET = [
  'cluster.tickMs=50',
  'cluster.sessionTimeoutMs=1000',
  'cluster.replicaLagTimeMaxMs=2000',
  'cluster.replicationCheckIntervalMs=100',
  'cluster.leaderRebalanceIntervalMs=200',
];

// Produces "<tag>-<n>" with key "device-<n mod keys>" at `rate` records/s until its stdin closes,
// then flushes. Lines on stdout: "A value partition offset producedAt ackedAt" per delivery
// (offset -1: librdkafka inferred the delivery from a later acknowledgement of the same
// idempotent producer), "E value error" per failed delivery, "S {json}" at the end.
// One request in flight per connection: Debian's librdkafka 2.0.2 raises a fatal "rewound
// sequence number" error when, after the leader's connection dropped with several requests in
// flight (possibly persisted), the new leader rightly answers OUT_OF_ORDER_SEQUENCE_NUMBER for the
// second one (librdkafka #4438, fixed in 2.3.0); seen once in about 50 trials with 5 in flight.
const PRODUCER = `
import sys, time, json, threading
from confluent_kafka import Producer
bootstrap, topic, tag, rate, keys = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
stop = threading.Event()
def watch_stdin():
    sys.stdin.read()
    stop.set()
threading.Thread(target=watch_stdin, daemon=True).start()
out = sys.stdout
def done(err, msg, produced_at):
    if err is None:
        off = msg.offset()
        out.write('A %s %d %d %.3f %.3f\\n' % (msg.value().decode(), msg.partition(), -1 if off is None or off < 0 else off, produced_at, time.time()))
    else:
        out.write('E %s %s\\n' % (msg.value().decode(), err.name()))
p = Producer({'bootstrap.servers': bootstrap, 'enable.idempotence': True, 'acks': 'all', 'linger.ms': 5, 'max.in.flight.requests.per.connection': 1,
              'message.timeout.ms': 300000, 'retry.backoff.ms': 50, 'reconnect.backoff.ms': 50, 'reconnect.backoff.max.ms': 500,
              'topic.metadata.refresh.interval.ms': 1000, 'partitioner': 'murmur2_random'})
interval = 1.0 / rate
i = 0
due = time.time()
while not stop.is_set():
    now = time.time()
    if now >= due:
        try:
            p.produce(topic, key=('device-%d' % (i % keys)).encode(), value=('%s-%d' % (tag, i)).encode(),
                      on_delivery=lambda err, msg, t=now: done(err, msg, t))
            i += 1
            due += interval
        except BufferError:
            pass
    p.poll(max(0.0, min(due - time.time(), 0.05)))
    out.flush()
left = p.flush(60)
out.write('S %s\\n' % json.dumps({'sent': i, 'unflushed': left}))
out.flush()
`;

export interface Ack extends AckedRecord {
  producedAtMs: number;
  ackedAtMs: number;
}

/** The producer process and its delivery reports as they arrive. */
export class AckStream {
  readonly acked: Ack[] = [];
  readonly errors: string[] = [];
  private readonly byPartition = new Map<number, Ack[]>();
  private waiters: Array<() => void> = [];
  private summary: { sent: number; unflushed: number } | null = null;
  private stderr = '';
  private readonly exited: Promise<number | null>;

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
    child.stderr!.on('data', (d) => (this.stderr = (this.stderr + d).slice(-4000)));
    this.exited = new Promise((resolve) => child.once('exit', resolve));
  }

  static async start(dir: string, bootstrap: string, topic: string, o: { tag: string; ratePerSec: number; keys: number }): Promise<AckStream> {
    const script = join(dir, 'kill-trials-producer.py');
    await writeFile(script, PRODUCER);
    const child = spawn(PYTHON, [script, bootstrap, topic, o.tag, String(o.ratePerSec), String(o.keys)], { stdio: ['pipe', 'pipe', 'pipe'] });
    return new AckStream(child);
  }

  private onLine(line: string): void {
    const [kind, ...f] = line.split(' ');
    if (kind === 'A') {
      const a: Ack = { value: f[0]!, partition: Number(f[1]), producedAtMs: Math.round(Number(f[3]) * 1000), ackedAtMs: Math.round(Number(f[4]) * 1000) };
      if (Number(f[2]) >= 0) a.offset = Number(f[2]);
      this.acked.push(a);
      const list = this.byPartition.get(a.partition) ?? [];
      list.push(a);
      this.byPartition.set(a.partition, list);
    } else if (kind === 'E') this.errors.push(`${f[0]}: ${f[1]}`);
    else if (kind === 'S') this.summary = JSON.parse(f.join(' ')) as { sent: number; unflushed: number };
    const waiting = this.waiters;
    this.waiters = [];
    for (const wake of waiting) wake();
  }

  /** The first acknowledgement on `partition` of a record produced at or after `sinceMs`, if any yet. */
  firstAckProducedSince(partition: number, sinceMs: number): Ack | undefined {
    const list = this.byPartition.get(partition) ?? [];
    // Acknowledgements of one partition arrive in production order (idempotent, in-order
    // delivery): scan back to the first one produced before `sinceMs`.
    let found: Ack | undefined;
    for (let i = list.length - 1; i >= 0 && list[i]!.producedAtMs >= sinceMs; i--) found = list[i];
    return found;
  }

  /** Waits (on delivery reports, not a clock) for `firstAckProducedSince` on each of `partitions`. */
  async waitForAcks(partitions: number[], sinceMs: number, timeoutMs: number, what: string): Promise<Ack[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = partitions.map((p) => this.firstAckProducedSince(p, sinceMs));
      if (found.every((a) => a)) return found as Ack[];
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null) {
        const missing = partitions.filter((_, i) => !found[i]);
        throw new Error(`${what}: no acknowledgement on partition(s) ${missing.join(', ')} of a record produced since ${new Date(sinceMs).toISOString()} within ${timeoutMs} ms (producer ${this.child.exitCode === null ? 'running' : `exited ${this.child.exitCode}`}; errors: ${this.errors.slice(0, 5).join(', ') || 'none'}; stderr: ${this.stderr})`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Closes the producer's stdin: it stops producing, flushes, and reports how many it sent. */
  async finish(): Promise<{ sent: number; unflushed: number }> {
    this.child.stdin!.end();
    const code = await this.exited;
    if (code !== 0 || !this.summary) throw new Error(`producer exited ${code} without its summary: ${this.stderr}`);
    return this.summary;
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

export interface PartitionStatus {
  topic: string;
  partition: number;
  leader: number;
  leaderEpoch: number;
  replicas: number[];
  isr: number[];
}

interface NodeView {
  leader: number | null;
  partitions?: PartitionStatus[];
}

/**
 * Waits until every live node sees every partition of `topic` with all `nodeIds` in its ISR and
 * led by its preferred replica (the first of its assignment), all nodes agreeing on leader and
 * epoch, and one controller. Returns the partitions and the controller.
 */
export async function waitForBalanced(c: Cluster, topic: string, nodeIds: number[], timeoutMs: number): Promise<{ partitions: PartitionStatus[]; controller: number }> {
  let seen = 'no answer yet';
  try {
    return (await eventually(async () => {
      const views = (await Promise.all(nodeIds.map((id) => c.status(id, 500)))) as unknown as NodeView[];
      const lists = views.map((v) => (v.partitions ?? []).filter((p) => p.topic === topic).sort((a, b) => a.partition - b.partition));
      const first = lists[0]!;
      seen = first.map((p) => `${p.partition}: leader ${p.leader} epoch ${p.leaderEpoch} isr [${p.isr.join(',')}]`).join('; ') + `; controller as each node sees it: ${views.map((v) => v.leader).join(', ')}`;
      const controller = views[0]!.leader;
      if (controller === null || controller < 1 || views.some((v) => v.leader !== controller)) return null;
      const want = [...nodeIds].sort((a, b) => a - b).join();
      const balanced = first.length > 0 && first.every((p) => p.leader === p.replicas[0] && [...p.isr].sort((a, b) => a - b).join() === want);
      const agreed = lists.every((l) => l.length === first.length && l.every((p, i) => p.leader === first[i]!.leader && p.leaderEpoch === first[i]!.leaderEpoch));
      return balanced && agreed ? { partitions: first, controller } : null;
    }, timeoutMs, 25))!;
  } catch (err) {
    throw new Error(`partitions of ${topic} not all in sync on [${nodeIds.join(',')}] and led by their preferred replicas within ${timeoutMs} ms (${seen}): ${(err as Error).message}`);
  }
}

export interface TrialResult {
  trial: number;
  victim: number;
  /** The killed node was the controller (it led partitions too). */
  controller: boolean;
  /** Partitions the killed node led. */
  partitions: number[];
  /** kill -9 sent → first acknowledgement of a record produced after it, slowest of `partitions`. */
  failoverMs: number;
  /** The restarted process ready (listeners bound, caught up with the metadata). */
  restartMs: number;
  /** From the restart's ready line until it was back in every ISR with leaderships rebalanced. */
  rejoinMs: number;
  /** Before the kill: until the victim's partitions acknowledged a record produced once the cluster was balanced. */
  streamMs: number;
}

export interface KillTrialsOptions {
  trials: number;
  /** Every this many trials the controller is killed (trial numbers divisible by it). */
  controllerEvery: number;
  topic: string;
  stream: AckStream;
  /** Bounds on each wait (failover, rejoin). */
  stepTimeoutMs?: number;
  onTrial?: (r: TrialResult) => void;
}

/** Runs the trials on a started cluster whose topic exists; the stream keeps running after. */
export async function runKillTrials(c: Cluster, o: KillTrialsOptions): Promise<TrialResult[]> {
  const stepTimeoutMs = o.stepTimeoutMs ?? 30_000;
  const all = c.nodes.map((n) => n.id);
  const results: TrialResult[] = [];
  let state = await waitForBalanced(c, o.topic, all, stepTimeoutMs);
  for (let trial = 1; trial <= o.trials; trial++) {
    const ledBy = (id: number) => state.partitions.filter((p) => p.leader === id).map((p) => p.partition);
    const killController = trial % o.controllerEvery === 0 && ledBy(state.controller).length > 0;
    // Leader trials cycle through the partitions whose leader is not the controller.
    const candidates = state.partitions.filter((p) => p.leader !== state.controller);
    const victim = killController || candidates.length === 0 ? state.controller : candidates[trial % candidates.length]!.leader;
    const partitions = ledBy(victim);
    // The producer has found the victim's partitions where the rebalance put them: a failover
    // figure must not include the client's re-routing after the rebalance.
    const balancedAt = Date.now();
    await o.stream.waitForAcks(partitions, balancedAt, stepTimeoutMs, `trial ${trial}: the stream on node ${victim}'s partitions before the kill`);
    const streamMs = Date.now() - balancedAt;
    const wasController = victim === state.controller;
    const killedAt = Date.now();
    await c.kill9(victim);
    const acks = await o.stream.waitForAcks(partitions, killedAt, stepTimeoutMs, `trial ${trial}: failover after kill -9 of node ${victim}`);
    const failoverMs = Math.max(...acks.map((a) => a.ackedAtMs - killedAt));
    const restartAt = Date.now();
    await c.start(victim);
    const readyLineAt = Date.now();
    state = await waitForBalanced(c, o.topic, all, stepTimeoutMs);
    const r: TrialResult = { trial, victim, controller: wasController, partitions, failoverMs, restartMs: readyLineAt - restartAt, rejoinMs: Date.now() - readyLineAt, streamMs };
    results.push(r);
    o.onTrial?.(r);
  }
  return results;
}

/** Sorted sample → min, median, p90, p99, max (nearest rank), in ms. */
export function distribution(valuesMs: number[]): { n: number; min: number; median: number; p90: number; p99: number; max: number } {
  const s = [...valuesMs].sort((a, b) => a - b);
  const rank = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
  const mid = s.length >> 1;
  const median = s.length === 0 ? NaN : s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { n: s.length, min: s[0] ?? NaN, median, p90: rank(0.9), p99: rank(0.99), max: s.at(-1) ?? NaN };
}

/**
 * Producer order: within each partition, in offset order, the counters of one producer's values
 * ("<tag>-<n>") strictly increase (an idempotent producer keeps per-partition order across
 * retries and leader changes). Returns the violations found (at most 10).
 */
export function orderViolations(records: Array<{ partition: number; offset: number; value: string }>): string[] {
  const out: string[] = [];
  const last = new Map<number, { offset: number; n: number; value: string }>();
  const sorted = [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  for (const r of sorted) {
    const n = Number(r.value.slice(r.value.lastIndexOf('-') + 1));
    const prev = last.get(r.partition);
    if (prev && n <= prev.n && out.length < 10) out.push(`partition ${r.partition}: ${r.value} at offset ${r.offset} after ${prev.value} at ${prev.offset}`);
    last.set(r.partition, { offset: r.offset, n, value: r.value });
  }
  return out;
}
