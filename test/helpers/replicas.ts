// Reading and checking the replicas of a cluster of real broker processes (test/helpers/cluster.ts):
// a topic created at replication factor 3 over HTTP, each partition's leader and ISR as kcat reads
// Metadata, every node's copy of a partition read from its files after a clean stop, and the
// checker over them (each acknowledged record present once at its offset on every replica;
// replicas identical), with anomalies by kind (lost, duplicate, wrongOffset, divergent), and
// `produce`: a librdkafka producer (confluent_kafka) whose acknowledgements are the checker's input.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually, haveCommand } from './index.js';
import type { Cluster } from './cluster.js';
import { PartitionLog } from '../../host/log/partition-log.js';
import { decodeBatches } from '../../host/core/index.js';
import { silentLogger } from '../../host/logging.js';

const PYTHON = '/usr/bin/python3';

/** kcat and Debian's confluent_kafka (librdkafka) are present: else skip, or fail in CI. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function kafkaClientsPresent(t: any): boolean {
  const missing = [PYTHON, 'kcat'].filter((c) => !haveCommand(c));
  if (missing.length === 0 && spawnSync(PYTHON, ['-c', 'import confluent_kafka']).status === 0) return true;
  if (process.env.CI === 'true') t.fail(`required in CI: kcat and ${PYTHON} with confluent_kafka (Debian kcat, python3-confluent-kafka)`);
  else t.skip('kcat or /usr/bin/python3 with confluent_kafka not installed');
  return false;
}

export interface Acked {
  value: string;
  partition: number;
  /** -1: delivered, offset not reported (librdkafka inferred it from a later acknowledgement). */
  offset: number;
  atMs: number;
}

export interface PartitionMeta {
  partition: number;
  leader: number;
  isr: number[];
  /** The replicas in assignment order (the controller elects the first live one of the ISR). */
  replicas: number[];
}

/** kcat's view of a topic's partitions through `via` (leader and ISR as that node's Metadata answers). */
export function metadata(c: Cluster, via: number, topic: string): PartitionMeta[] {
  const r = spawnSync('kcat', ['-L', '-J', '-m', '3', '-b', kafkaAddress(c, via), '-t', topic], { encoding: 'utf8', timeout: 8000 });
  const doc = JSON.parse(r.stdout || '{}') as { topics?: Array<{ partitions?: Array<{ partition: number; leader: number; isrs: Array<{ id: number }>; replicas: Array<{ id: number }> }> }> };
  return (doc.topics?.[0]?.partitions ?? []).map((p) => ({ partition: p.partition, leader: p.leader, isr: p.isrs.map((x) => x.id).sort(), replicas: p.replicas.map((x) => x.id) }));
}

export function kafkaAddress(c: Cluster, id: number): string {
  return c.node(id).proc!.listeners.kafka!;
}

export function bootstrap(c: Cluster): string {
  return c.live().map((n) => kafkaAddress(c, n.id)).join(',');
}

export async function createTopic(c: Cluster, via: number, name: string, partitions: number, config: Record<string, unknown> = {}): Promise<void> {
  const res = await fetch(`${c.httpUrl(via)}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions, replicationFactor: 3, config }) });
  const body = await res.text();
  if (res.status !== 200 && res.status !== 201) throw new Error(`create ${name}: ${res.status} ${body}`);
}

/** Waits until every partition of `topic` has a leader and exactly `isr` in sync, as `via` answers. */
export async function waitForIsr(c: Cluster, via: number, topic: string, isr: number[], timeoutMs = 20_000): Promise<PartitionMeta[]> {
  const found = await eventually(() => {
    const m = metadata(c, via, topic);
    return m.length > 0 && m.every((p) => p.leader > 0 && p.isr.join() === [...isr].sort().join()) ? m : null;
  }, timeoutMs, 200);
  return found!;
}

/**
 * One node's copy of a partition, read in order from its log start to its log end (after a clean
 * stop): `visit` sees each read's stored batches as they lie in the log. Returns the log's bounds.
 */
export async function readReplicaChunks(dataDir: string, topic: string, partition: number, visit: (stored: Uint8Array) => void): Promise<{ start: number; end: number }> {
  const log = await PartitionLog.open(join(dataDir, `${topic}-${partition}`), { flush: 'always' } as never, { logger: silentLogger });
  try {
    let offset = log.logStartOffset;
    while (offset < log.logEndOffset) {
      const r = await log.read(offset, 1 << 20, log.logEndOffset);
      if (r.records.byteLength === 0) break;
      visit(r.records);
      offset = r.nextOffset;
    }
    return { start: log.logStartOffset, end: log.logEndOffset };
  } finally {
    await log.close();
  }
}

/** Every record in one node's copy of a partition, by offset (read from its files after a clean stop). */
export async function readReplica(dataDir: string, topic: string, partition: number): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  await readReplicaChunks(dataDir, topic, partition, (stored) => {
    for (const b of decodeBatches(stored)) for (const rec of b.records) out.set(rec.offset, Buffer.from(rec.value!).toString());
  });
  return out;
}

/**
 * The checker: each acknowledged record is on every replica exactly once, at the offset it was
 * acknowledged with; the replicas hold the same records at the same offsets. Returns the
 * anomalies by kind (empty = none).
 */
export async function check(c: Cluster, topic: string, partitions: number, acked: Acked[]): Promise<Record<string, string[]>> {
  const anomalies: Record<string, string[]> = { lost: [], duplicate: [], wrongOffset: [], divergent: [] };
  for (let p = 0; p < partitions; p++) {
    const copies = await Promise.all(c.nodes.map((n) => readReplica(n.dataDir, topic, p)));
    copies.forEach((copy, i) => {
      const count = new Map<string, number>();
      for (const v of copy.values()) count.set(v, (count.get(v) ?? 0) + 1);
      for (const a of acked.filter((x) => x.partition === p)) {
        const n = count.get(a.value) ?? 0;
        if (n === 0) anomalies.lost!.push(`node ${i + 1}: ${a.value}`);
        if (n > 1) anomalies.duplicate!.push(`node ${i + 1}: ${a.value} ×${n}`);
        if (n >= 1 && a.offset >= 0 && copy.get(a.offset) !== a.value) anomalies.wrongOffset!.push(`node ${i + 1}: ${a.value} acked at ${p}/${a.offset}, there: ${copy.get(a.offset)}`);
      }
    });
    const [first, ...rest] = copies;
    rest.forEach((copy, i) => {
      if (JSON.stringify([...copy]) !== JSON.stringify([...first!])) anomalies.divergent!.push(`partition ${p}: node ${i + 2} (${copy.size} records) differs from node 1 (${first!.size})`);
    });
  }
  for (const k of Object.keys(anomalies)) if (anomalies[k]!.length === 0) delete anomalies[k];
  return anomalies;
}

// Produces "<tag>-0", "<tag>-1", ... for `seconds` (idempotent, retrying: the failover stream) or
// `count` records (no retries: each refusal is seen), acks as given; writes each
// acknowledged value with partition, offset and the time of its acknowledgement; prints a JSON summary.
// A fatal client error stops the stream (what was acknowledged until then is still written and
// checked) and is named in the summary: see producerRun for the one that is tolerated.
const PRODUCER = `
import sys, time, json
from confluent_kafka import Producer, KafkaException
bootstrap, topic, tag, seconds, count, acks, out = sys.argv[1:8]
seconds, count = float(seconds), int(count)
acked, errors = [], []
fatal = None
def done(err, msg):
    global fatal
    # offset None: librdkafka reports a message delivered without its offset when it infers
    # persistence (a later sequence of the same idempotent producer was acknowledged): -1 here
    if err is None: acked.append((msg.value().decode(), msg.partition(), -1 if msg.offset() is None else msg.offset(), time.time()))
    else:
        errors.append(err.name())
        if err.fatal() and fatal is None: fatal = err.str()
p = Producer({'bootstrap.servers': bootstrap, 'acks': acks, 'linger.ms': 2, 'message.timeout.ms': 15000 if count == 0 else 4000,
              'retries': 1000000 if count == 0 else 0, 'retry.backoff.ms': 50, 'topic.metadata.refresh.interval.ms': 1000,
              'enable.idempotence': count == 0, 'max.in.flight.requests.per.connection': 5 if count == 0 else 1})
t0 = time.time(); i = 0
while fatal is None and ((count == 0 and time.time() - t0 < seconds) or (count > 0 and i < count)):
    try:
        p.produce(topic, value=('%s-%d' % (tag, i)).encode(), on_delivery=done); i += 1
    except BufferError:
        pass
    except KafkaException as e:
        if not e.args[0].fatal(): raise
        fatal = e.args[0].str()
    p.poll(0.002 if count == 0 else 0)
try:
    p.flush(30)
except KafkaException as e:
    # the same fatal error may surface here, while the last batches are being flushed
    if not e.args[0].fatal(): raise
    if fatal is None: fatal = e.args[0].str()
with open(out, 'w') as f:
    for v, part, off, ts in acked: f.write('%s %d %d %.3f\\n' % (v, part, off, ts))
print(json.dumps({'sent': i, 'acked': len(acked), 'errors': sorted(set(errors)), 'fatal': fatal}))
`;


export interface ProduceRun {
  sent: number;
  acked: Acked[];
  errors: string[];
}

export async function produce(dir: string, bootstrap: string, topic: string, tag: string, o: { seconds?: number; count?: number; acks?: string }): Promise<ProduceRun> {
  const script = join(dir, 'producer.py');
  await writeFile(script, PRODUCER);
  const out = join(dir, `${tag}.acked`);
  const child = spawn(PYTHON, [script, bootstrap, topic, tag, String(o.seconds ?? 0), String(o.count ?? 0), o.acks ?? 'all', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  return producerRun(child, out);
}

/**
 * Waits for a producer script (ours, printing one JSON summary line and writing one
 * `value partition offset unixSeconds` line per acknowledgement to `out`) and reads its run;
 * throws when it failed, or when its count of acknowledgements disagrees with the file.
 */
export async function producerRun(child: ChildProcess, out: string): Promise<ProduceRun> {
  let stdout = '';
  child.stdout!.on('data', (d) => (stdout += d));
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`producer exited ${code}: ${stdout}${stderr}`);
  const summary = JSON.parse(stdout.trim().split('\n').pop()!) as { sent: number; acked: number; errors: string[]; fatal?: string | null };
  if (summary.fatal) {
    // Debian's librdkafka 2.0.2 (librdkafka #4438, fixed in 2.3.0), about once in 50 leader kills
    // with 5 requests in flight: after the old leader's connection dropped, the new leader rightly
    // answers OUT_OF_ORDER_SEQUENCE_NUMBER to a request behind a retried one, and the client
    // takes its own rewound sequence for fatal. The stream stops there; what it had acknowledged
    // is checked like any other run. Any other fatal error fails the test.
    if (!/sequence/i.test(summary.fatal)) throw new Error(`producer stopped on a fatal error: ${summary.fatal}`);
    summary.errors.push(`stopped early by librdkafka #4438 (client bug, fixed in 2.3.0): ${summary.fatal}`);
  }
  const acked = (await readFile(out, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [value, partition, offset, at] = line.split(' ');
      return { value: value!, partition: Number(partition), offset: Number(offset), atMs: Math.round(Number(at) * 1000) };
    });
  if (acked.length !== summary.acked) throw new Error(`producer wrote ${acked.length} acknowledgements, said ${summary.acked}`);
  return { sent: summary.sent, acked, errors: summary.errors };
}
