// Purpose: network partitions between real `tributary start` processes on loopback (issue 11),
// then heal, compare every replica byte for byte and run the queue checker
// (test/helpers/queue-checker.ts) over what the producers were told and what is there.
//
// How the nodes are cut apart. Nodes talk over two listeners: the Raft transport (each voter
// dials every other voter at its `cluster.voters` address; frames flow dialer → listener) and the
// Kafka listener (followers fetch from the leader, appends are forwarded, group requests proxied,
// all at the address a node registered: `kafka.advertisedHost` and its Kafka port). Each node here
// binds 127.0.0.1 and is known to the others — and to clients, through Metadata — at a gate on an
// address of its own (127.0.0.1x, same ports): one link gate per listener (fault-proxy.ts,
// `startLinkGate`) that attributes every connection to the process that opened it (/proc). A cut
// link A→B drops (blackhole) or holds (hold) what node A sends node B on both listeners and
// what B answers on those connections; clients and this test's status reads pass (the test reads
// status at each node's real cluster port). Isolating a node cuts its four links. Linux only.
//
// Scenario (librdkafka, acks=all, idempotent, retrying, both partitions, all three nodes):
//   round 1  the leader of partition 0 is isolated with blackhole (silent loss, nothing closed)
//            for ISOLATED_MS under load, and healed while the stream still runs. While it is
//            cut off, a second producer that reaches only it writes acks=all to partition 0:
//            the isolated leader cannot replicate, so it must acknowledge none of them. The
//            majority fences it and elects a new leader; the stream goes on there by itself.
//            Healed: the old leader truncates what it appended alone (leader epoch) and rejoins
//            the ISR.
//   round 2  the controller (the Raft leader) is isolated the same way with hold (everything it
//            and its peers sent each other arrives late, at once, at the heal), same checks.
//   then     every partition is read back with kcat through the cluster; the nodes stop cleanly
//            and each replica's batches (bytes from log start to log end, where log end equals
//            the high watermark at rest) are compared byte for byte, and read record by record
//            as three more reads for the checker: 0 lost, 0 duplicate, 0 inconsistent offsets.
//            The segment files themselves are compared too (they are equal at rest).
// Trials: PARTITION_TRIALS (default 1) repeats the whole run on a fresh cluster.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep, tempDir } from '../helpers/index.js';
import { Cluster, freePort, type ClusterNode } from '../helpers/cluster.js';
import { startLinkGate, type LinkGate, type LinkMode } from '../helpers/fault-proxy.js';
import { bootstrap, createTopic, kafkaAddress, kafkaClientsPresent, metadata, produce, readReplicaChunks, waitForIsr, type Acked } from '../helpers/replicas.js';
import { checkQueue, describeVerdict, kcatReadQueue, type QueueRead } from '../helpers/queue-checker.js';
import { decodeBatches } from '../../host/core/index.js';

const FAST = ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100'];
const PARTITIONS = 2;
/** How long each round's isolation lasts (the stream runs 2 s before it and goes on after the majority elects). */
const ISOLATED_MS = 7000;
/** Whole runs (a fresh cluster each): PARTITION_TRIALS, default 1 (about 60 s each). */
const TRIALS = Number(process.env.PARTITION_TRIALS ?? 1);
const gateHost = (id: number) => `127.0.0.${10 + id}`;

/** A node known to the others at its gates: they dial `gateHost(id)`; it binds 127.0.0.1. */
class GatedCluster extends Cluster {
  override args(n: ClusterNode, extra: string[] = []): string[] {
    return super.args(n, [`kafka.advertisedHost=${gateHost(n.id)}`, ...extra]);
  }
}

/** The cut links ("1→2": what node 1 sends node 2) and the mode they are cut with. */
class Links {
  private readonly cut = new Set<string>();
  mode: LinkMode = 'blackhole';
  readonly gates: LinkGate[] = [];
  async isolate(id: number, ids: number[], mode: LinkMode): Promise<void> {
    this.mode = mode;
    for (const other of ids.filter((x) => x !== id)) this.cut.add(`${id}→${other}`).add(`${other}→${id}`);
    await this.apply();
  }
  async heal(): Promise<void> {
    this.cut.clear();
    await this.apply();
  }
  modeFor(source: string, to: number): LinkMode {
    const from = /^node (\d+)$/.exec(source)?.[1];
    return from && this.cut.has(`${from}→${to}`) ? this.mode : 'pass';
  }
  private async apply(): Promise<void> {
    await Promise.all(this.gates.map((g) => g.apply()));
  }
}

// A producer that reaches one node only (bootstrap = that node, which names itself the leader of
// the partition): acks=all to one partition, no retries, waiting up to `timeoutMs` per record.
// Prints {sent, acked: [[value, offset]], errors}.
const PROBE = `
import sys, json
from confluent_kafka import Producer
bootstrap, topic, partition, tag, count, timeout_ms = sys.argv[1:7]
acked, errors = [], []
def done(err, msg):
    if err is None: acked.append((msg.value().decode(), msg.offset()))
    else: errors.append(err.name())
p = Producer({'bootstrap.servers': bootstrap, 'acks': 'all', 'retries': 0, 'enable.idempotence': False, 'linger.ms': 0,
              'message.timeout.ms': int(timeout_ms), 'request.timeout.ms': int(timeout_ms), 'max.in.flight.requests.per.connection': 1})
for i in range(int(count)):
    p.produce(topic, value=('%s-%d' % (tag, i)).encode(), partition=int(partition), on_delivery=done)
p.flush(int(timeout_ms) / 1000 + 10)
print(json.dumps({'sent': int(count), 'acked': acked, 'errors': sorted(set(errors))}))
`;

async function probe(dir: string, address: string, topic: string, partition: number, tag: string, count: number, timeoutMs: number) {
  const script = join(dir, 'probe.py');
  await writeFile(script, PROBE);
  const child = spawn('/usr/bin/python3', [script, address, topic, String(partition), tag, String(count), String(timeoutMs)], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((resolve) => child.on('exit', resolve));
  return JSON.parse(out.trim().split('\n').pop() || '{}') as { sent: number; acked: Array<[string, number]>; errors: string[] };
}

/** One node's copy of a partition after a clean stop: its batches' bytes, log start and end, and its records. */
async function replicaOf(dataDir: string, topic: string, partition: number) {
  const where = join(dataDir, `${topic}-${partition}`);
  // The segment files as they lie on disk, read before the log is opened.
  const segments = (await readdir(where)).filter((f) => f.endsWith('.log')).sort();
  const files = Buffer.concat(await Promise.all(segments.map((f) => readFile(join(where, f)))));
  const chunks: Buffer[] = [];
  const records: Array<{ partition: number; offset: number; value: string }> = [];
  /** Each record's batch (producer id, epoch, base sequence, leader epoch): a duplicate's two copies tell whether the client re-sent under a new epoch or the broker failed to see a retry. */
  const batchOf = new Map<number, string>();
  const { start, end } = await readReplicaChunks(dataDir, topic, partition, (stored) => {
    chunks.push(Buffer.from(stored));
    for (const b of decodeBatches(stored)) {
      const h = b.header;
      const batch = `batch ${h.baseOffset}–${h.baseOffset + h.lastOffsetDelta} producer ${h.producerId} epoch ${h.producerEpoch} sequence ${h.baseSequence} leader epoch ${h.partitionLeaderEpoch}`;
      for (const rec of b.records) {
        records.push({ partition, offset: rec.offset, value: Buffer.from(rec.value!).toString() });
        batchOf.set(rec.offset, batch);
      }
    }
  });
  return { start, end, bytes: Buffer.concat(chunks), records, segments, files, batchOf };
}

for (let trial = 1; trial <= TRIALS; trial++) {
  t.test(`partitions (trial ${trial} of ${TRIALS}): an isolated leader or controller acknowledges nothing it cannot replicate; after the heal the replicas are identical and nothing acknowledged is lost`, { timeout: 180_000 }, async (t) => {
    if (!kafkaClientsPresent(t)) return;
    if (process.platform !== 'linux') return t.plan(0, 'link gates attribute connections through /proc (Linux only)');
    const dir = await tempDir(t, 'tributary-partition-');
    const ids = [1, 2, 3];
    const nodes: ClusterNode[] = [];
    for (const id of ids) nodes.push({ id, dataDir: join(dir, `node${id}`), clusterPort: await freePort(), proc: null, stopped: false });
    const c = new GatedCluster(t, nodes, nodes.map((n) => `${n.id}@${gateHost(n.id)}:${n.clusterPort}`).join(','), { set: FAST });
    const links = new Links();
    t.teardown(async () => {
      await c.stopAll();
      await Promise.all(links.gates.map((g) => g.close()));
    });
    const processes = () => c.nodes.map((n) => ({ name: `node ${n.id}`, pid: n.proc?.child.pid }));
    const gate = async (id: number, port: number) => {
      links.gates.push(await startLinkGate({ host: gateHost(id), port, upstream: { host: '127.0.0.1', port }, processes, modeFor: (source) => links.modeFor(source, id) }));
    };
    for (const n of nodes) await gate(n.id, n.clusterPort);
    await Promise.all(ids.map((id) => c.start(id)));
    for (const n of nodes) await gate(n.id, n.proc!.port('kafka'));
    await c.waitForBrokers(ids);

    /** What each node believes and what the gates saw, for a failure's message. */
    const diagnose = async () => {
      const lines = [];
      for (const id of ids) {
        const s = await c.status(id, 1000).catch((e: Error) => ({ error: e.message }) as never);
        lines.push(`node ${id}: role ${(s as { role?: string }).role} term ${(s as { term?: number }).term} leader ${(s as { leader?: number }).leader}; Metadata: ${JSON.stringify(metadata(c, id, topic))}`);
      }
      links.gates.forEach((g) => lines.push(`gate ${g.address}: accepted ${JSON.stringify([...g.accepted])}, dropped ${JSON.stringify([...g.dropped])}`));
      return lines.join('\n');
    };
    const topic = 'parted';
    await createTopic(c, 1, topic, PARTITIONS);
    await waitForIsr(c, 1, topic, ids);
    const sent: string[] = [];
    const acked: Acked[] = [];

    const round = async (n: number, victim: number, mode: LinkMode, what: string) => {
      const majority = ids.filter((id) => id !== victim);
      const termBefore = (await c.status(majority[0]!)).term;
      const led = metadata(c, victim, topic).find((p) => p.leader === victim)?.partition;
      // The stream runs on past the heal: a batch waiting on the isolated leader is answered at
      // the heal (NOT_LEADER_OR_FOLLOWER) and retried with its sequence to the new leader, which
      // recognises it. Healing only after the producer's flush would keep such a batch waiting
      // for its whole message.timeout.ms; librdkafka then gives up on it, bumps the producer epoch
      // and sends the rest of it again from sequence 0, which no broker can tell from new data
      // (seen here: a batch at epoch 0 written again at epoch 2).
      const stream = produce(dir, bootstrap(c), topic, `r${n}`, { seconds: 2 + ISOLATED_MS / 1000 + 3 });
      await sleep(2000);
      await links.isolate(victim, ids, mode);
      const isolatedAtMs = Date.now();
      t.comment(`round ${n}: node ${victim} (${what}) isolated from nodes ${majority.join(' and ')} (${mode})`);
      // Reaches the isolated node only, for a partition it believes it leads (round 1: partition
      // 0; round 2: any, if the controller leads one): it may append there, but must not
      // acknowledge with acks=all, as no other replica can fetch.
      const minority = led === undefined ? null : probe(dir, kafkaAddress(c, victim), topic, led, `minority${n}`, 20, ISOLATED_MS - 2000);
      const moved = await waitForIsr(c, majority[0]!, topic, majority, ISOLATED_MS).catch(async (err) => {
        t.comment(await diagnose());
        throw err;
      });
      t.ok(moved.every((p) => p.leader !== victim), `round ${n}: the majority fenced node ${victim} and leads every partition itself (leaders ${moved.map((p) => p.leader).join(', ')}, ISR [${majority.join(', ')}])`);
      const controller = await c.waitForLeader(majority, ISOLATED_MS);
      t.not(controller.leader, victim, `round ${n}: the majority's controller is node ${controller.leader} (term ${controller.term}, was ${termBefore})`);
      if (minority) {
        const lone = await minority;
        sent.push(...Array.from({ length: lone.sent }, (_, i) => `minority${n}-${i}`));
        t.equal(lone.acked.length, 0, `round ${n}: the isolated node acknowledged none of the ${lone.sent} acks=all writes to partition ${led} sent only to it (client errors: ${lone.errors.join(', ') || 'none'})`);
        acked.push(...lone.acked.map(([value, offset]) => ({ value, partition: led!, offset, atMs: 0 })));
      } else t.comment(`round ${n}: node ${victim} led no partition of ${topic} when cut off: no minority producer this round`);
      await sleep(Math.max(0, isolatedAtMs + ISOLATED_MS - Date.now()));
      const dropped = links.gates.flatMap((g) => [...g.dropped.values()]).reduce((s, d) => s + d.up + d.down, 0);
      await links.heal();
      const run = await stream;
      sent.push(...Array.from({ length: run.sent }, (_, i) => `r${n}-${i}`));
      acked.push(...run.acked);
      const noOffset = run.acked.filter((a) => a.offset < 0).length;
      t.ok(run.acked.length > 0, `round ${n}: the stream: ${run.acked.length} of ${run.sent} acknowledged across the partition and the heal (${noOffset} of them without an offset; errors: ${run.errors.join(', ') || 'none'}); bytes dropped by the gates so far: ${dropped}`);
      await waitForIsr(c, majority[0]!, topic, ids, 30_000);
      const truncated = c.node(victim).proc!.logs.filter((l) => String(l.msg).includes('replica truncated') && String(l.tp).startsWith(`${topic}-`));
      t.comment(`round ${n}: healed; node ${victim} back in every ISR; it truncated ${truncated.map((l) => `${l.tp} ${l.from}→${l.to}`).join(', ') || 'nothing'}`);
      return truncated;
    };

    const first = await waitForIsr(c, 1, topic, ids);
    const leader0 = first[0]!.leader;
    const cut1 = await round(1, leader0, 'blackhole', 'leader of partition 0');
    t.ok(cut1.some((l) => Number(l.from) > Number(l.to)), `round 1: the old leader cut the suffix it had appended alone (${cut1.map((l) => `${l.from}→${l.to}`).join(', ')})`);
    const controller = (await c.waitForLeader(ids)).leader;
    await round(2, controller, 'hold', 'controller');

    const reads: QueueRead[] = [await kcatReadQueue(bootstrap(c), topic)];
    await c.stopAll();
    const batches: Array<Map<number, string>> = [];
    for (let p = 0; p < PARTITIONS; p++) {
      const copies = await Promise.all(nodes.map((n) => replicaOf(n.dataDir, topic, p)));
      batches[p] = copies[0]!.batchOf;
      const [one, ...others] = copies;
      others.forEach((copy, i) => {
        t.ok(copy.files.equals(one!.files) && copy.segments.join() === one!.segments.join(), `partition ${p}: node ${i + 2}'s segment files (${copy.segments.join(', ')}: ${copy.files.length} bytes) equal node 1's byte for byte`);
        t.ok(copy.start === one!.start && copy.end === one!.end && copy.bytes.equals(one!.bytes), `partition ${p}: node ${i + 2}'s batches are node 1's byte for byte (offsets ${copy.start}–${copy.end}, ${copy.bytes.length} bytes; node 1: ${one!.start}–${one!.end}, ${one!.bytes.length} bytes)`);
      });
      copies.forEach((copy, i) => {
        const read = reads[i + 1] ?? (reads[i + 1] = { source: `replica files on node ${i + 1}`, records: [] });
        read.records.push(...copy.records);
      });
    }
    // An acknowledgement without an offset (-1) is checked for presence only.
    const verdict = checkQueue({ sent, acked: acked.map((a) => ({ value: a.value, partition: a.partition, offset: a.offset >= 0 ? a.offset : undefined })), reads });
    t.comment(describeVerdict(verdict));
    if (!verdict.valid) {
      // For the report: the batches holding the first duplicates (node 1's copy) and what the nodes logged about leadership.
      for (const e of verdict.examples.duplicate.slice(0, 3)) {
        for (const [, p, o] of e.matchAll(/(\d+)\/(\d+)/g)) t.comment(`  ${p}/${o}: ${batches[Number(p)]?.get(Number(o))}`);
      }
      for (const n of nodes) {
        const lines = (n.proc?.logs ?? []).filter((l) => /leader|ISR|truncat|fenced|producer|sequence/i.test(String(l.msg)) && String(l.tp ?? l.topic ?? topic).startsWith(topic));
        t.comment(`node ${n.id} log (${lines.length} lines on leadership, ISR, truncation, producers):\n${lines.slice(-40).map((l) => JSON.stringify(l)).join('\n')}`);
      }
    }
    t.ok(verdict.counts.acked > 0, `${verdict.counts.acked} records acknowledged in all`);
    t.match(verdict.counts, { lost: 0, duplicate: 0, inconsistent: 0, nonMonotonic: 0, unexpected: 0 }, 'queue checker: every acknowledged record is in the kcat read and on all three replicas, once, at its acknowledged offset');
    t.ok(verdict.valid, 'queue checker: valid');
  });
}
