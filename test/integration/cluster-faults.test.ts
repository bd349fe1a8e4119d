// Purpose: the cluster faults a cabinet of gateways meets that kill -9 alone does not show (issue
// 11), over real `tributary start` processes on loopback, librdkafka (confluent_kafka) producing
// with acks=all and kcat reading metadata. Every test names what was acknowledged and proves it
// is there by reading each replica's partition files after a clean stop (helpers/replicas.ts's
// checker: lost, duplicate, wrong offset, divergent).
//   - fast restart: a follower power-cut and started again before its session ran out (never
//     fenced) leaves the ISR on registering (a new broker epoch) and is not elected while behind
//   - power cut with the ISR shrunk to one: the lone leader killed and its files cut to their
//     last-fsynced length (helpers/power-cut.ts); everything acknowledged is still there
//   - a partition leader frozen (SIGSTOP) past the session timeout steps down, acknowledges none
//     of the writes waiting for it, and on SIGCONT truncates to the new leader's log
//   - a follower behind the high watermark restarts and the leader fails over again before it
//     caught up (KIP-101/279): it truncates by leader epoch against the new leader
// Trials: CLUSTER_FAULT_TRIALS (default 1) repeats each test body.
import t from 'tap';
import { join } from 'node:path';
import { eventually, sleep, tempDir } from '../helpers/index.js';
import type { Cluster } from '../helpers/cluster.js';
import { startShimmedCluster } from '../helpers/shimmed-cluster.js';
import { bootstrap, check, createTopic, kafkaAddress, metadata, produce, waitForIsr, kafkaClientsPresent } from '../helpers/replicas.js';

const TRIALS = Number(process.env.CLUSTER_FAULT_TRIALS ?? 1);
const FAST = ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100'];

/** The node ids whose controller log says they were fenced (the controller runs on whichever node leads the quorum). */
function fencedNodes(c: Cluster): Set<number> {
  const out = new Set<number>();
  for (const n of c.nodes) {
    for (const l of n.proc?.logs ?? []) {
      if (l.msg !== 'controller: broker liveness and partition leadership changed') continue;
      for (const ch of (l.changes as string[]) ?? []) {
        const m = /^node (\d+) fenced$/.exec(ch);
        if (m) out.add(Number(m[1]));
      }
    }
  }
  return out;
}

/** Creates a topic at replication factor `rf` over HTTP (helpers/replicas.ts's createTopic is RF 3). */
async function createTopicRf(c: Cluster, via: number, name: string, rf: number, config: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${c.httpUrl(via)}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions: 1, replicationFactor: rf, config }) });
  if (res.status !== 200 && res.status !== 201) throw new Error(`create ${name}: ${res.status} ${await res.text()}`);
}

/** Partition `p`'s leader and ISR as `via` answers, once it has a leader satisfying `ok`. */
async function waitForMeta(c: Cluster, via: number, topic: string, ok: (m: { leader: number; isr: number[] }) => boolean, timeoutMs: number, p = 0) {
  return (await eventually(() => {
    const m = metadata(c, via, topic)[p];
    return m && m.leader > 0 && ok(m) ? m : null;
  }, timeoutMs, 100))!;
}

// A follower power-cut under flush=never (it acknowledges fetched data once written, before an
// fsync: Kafka's default world) comes back with a shorter log than it had acknowledged, and the
// leader is killed right after. Before broker epochs the follower came back in the ISR (never
// fenced: it restarted within the session) and was elected (first in assignment order) with its
// cut log: every acknowledged record past it was lost (the other follower truncated to it). Now
// its registration takes it out of the ISR, the other in-sync replica is elected, and it catches
// up from that one.
t.test('faults: a follower restarted within its session leaves the ISR and is not elected while behind', { timeout: 240_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  for (let trial = 1; trial <= TRIALS; trial++) {
    const dir = await tempDir(t, 'tributary-faults-');
    // Session and lag windows long enough that the restart falls inside both (a node starts in 1–3 s here).
    const c = await startShimmedCluster(t, ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=8000', 'cluster.replicaLagTimeMaxMs=8000', 'cluster.replicationCheckIntervalMs=100']);
    const topic = `fast-${trial}`;
    await createTopic(c, 1, topic, 3, { flush: 'never' });
    const metas = await waitForIsr(c, 1, topic, [1, 2, 3]);
    // The partition whose leader and first follower are not the controller (assignment order puts
    // the controller last in exactly one): the kills then cost no controller election.
    const controller = (await c.waitForLeader()).leader;
    const meta = metas.find((m) => m.replicas[2] === controller)!;
    const p = meta.partition;
    const leader = meta.leader;
    // The follower the controller would elect first (assignment order): the one whose election loses data.
    const follower = meta.replicas.find((id) => id !== leader)!;
    const other = meta.replicas.find((id) => id !== leader && id !== follower)!;
    const before = await produce(dir, bootstrap(c), topic, 'before', { count: 1500 });
    t.equal(before.acked.length, 1500, `trial ${trial}: 1500 acknowledged (acks=all) by all three`);
    // Writing when the power goes. Without retries (count mode: each record acknowledged or
    // failed once): an idempotent stream whose requests outlive message.timeout.ms while the
    // failover waits for the quorum (two of three nodes down) is resent by librdkafka under a
    // new producer epoch, which no broker can deduplicate (seen at load 17: duplicates).
    const racing = produce(dir, bootstrap(c), topic, 'racing', { count: 3000 });
    await sleep(1500); // the producer (a Python process) is connected and writing
    const cutAtMs = Date.now();
    const cut = await c.powerCut(follower);
    const segmentCut = cut.cut.filter((x) => x.path.includes(`${topic}-${p}/`) && x.path.endsWith('.log'));
    // The leader dies right after, before the follower is back: the follower, restarting, cannot
    // copy back what it lost from it, so it stays behind until the other replica leads.
    await c.kill9(leader);
    const killedAtMs = Date.now();
    await c.start(follower);
    const downMs = Date.now() - cutAtMs;
    t.ok(segmentCut.length > 0, `trial ${trial}: node ${follower} power-cut: its segment lost the unsynced ${segmentCut.map((x) => `${x.from} → ${x.to} bytes`).join(', ') || 'nothing'} (${cut.cut.length} files cut)`);
    t.notOk(fencedNodes(c).has(follower), `trial ${trial}: node ${follower} restarted within its session (never fenced; ready ${downMs} ms after the cut)`);
    const out = await waitForMeta(c, other, topic, (m) => !m.isr.includes(follower), 3000, p).catch(() => null);
    t.ok(out, `trial ${trial}: its registration (a new broker epoch) took it out of the ISR (${out ? `[${out.isr}]` : 'still in it'}, as node ${other} sees it)`);
    const moved = await waitForMeta(c, other, topic, (m) => m.leader !== leader, 30_000, p);
    t.equal(moved.leader, other, `trial ${trial}: partition ${p}: kill -9 of leader ${leader} right after: node ${other}, the in-sync replica, is elected, not node ${follower} (elected after ${Date.now() - killedAtMs} ms)`);
    const run = await racing;
    t.comment(`trial ${trial}: the producer writing during the cut: ${run.acked.length} of ${run.sent} acknowledged (errors: ${run.errors.join(', ') || 'none'})`);
    await c.start(leader);
    await waitForIsr(c, other, topic, [1, 2, 3], 40_000);
    await c.stopAll();
    const acked = [...before.acked, ...run.acked];
    t.same(await check(c, topic, 3, acked), {}, `trial ${trial}: all ${acked.length} acknowledged records on all three replicas at their offsets; replicas identical`);
  }
});

// The ISR shrunk to the leader alone (replication factor 2 on a 3-node cluster: the third node
// keeps the metadata quorum alive, which an ISR change needs; min.insync.replicas=1), acks=all
// writes, then a power cut of that leader: kill -9 and its files cut to their last-fsynced
// length while a producer still writes. Everything acknowledged was fsynced before its
// acknowledgement (flush=always), so after the restart it must all be there, and the follower,
// back, truncates what the lone leader never acknowledged (leader epoch) and copies the rest.
t.test('faults: a power cut of the last in-sync replica loses no acknowledged record', { timeout: 180_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  for (let trial = 1; trial <= TRIALS; trial++) {
    const dir = await tempDir(t, 'tributary-faults-');
    const c = await startShimmedCluster(t, FAST);
    const topic = `lone-${trial}`;
    await createTopicRf(c, 1, topic, 2, { 'min.insync.replicas': 1 });
    const meta = await waitForMeta(c, 1, topic, (m) => m.isr.length === 2, 20_000);
    const leader = meta.leader;
    const follower = meta.isr.find((id) => id !== leader)!;
    const both = await produce(dir, bootstrap(c), topic, 'both', { count: 200 });
    t.equal(both.acked.length, 200, `trial ${trial}: ISR [${meta.isr}]: 200 acknowledged`);
    await c.kill9(follower);
    await waitForMeta(c, leader, topic, (m) => m.isr.join() === String(leader), 15_000);
    t.pass(`trial ${trial}: node ${follower} killed: the ISR is [${leader}] alone`);
    const alone = (await produce(dir, kafkaAddress(c, leader), topic, 'alone', { count: 600 })).acked;
    t.equal(alone.length, 600, `trial ${trial}: 600 acknowledged by the lone leader (acks=all, min.insync.replicas=1)`);
    // A producer still writing when the power goes (idempotent, retrying until the node is back):
    // what it had acknowledged before the cut and what it gets acknowledged after count too.
    const racing = produce(dir, bootstrap(c), topic, 'racing', { seconds: 4 });
    await sleep(2000); // the producer (a Python process) is connected and writing
    const cut = await c.powerCut(leader);
    t.comment(`trial ${trial}: power cut of node ${leader}: ${cut.cut.length} of ${cut.files} files cut (${cut.bytesCut} unsynced bytes gone: ${cut.cut.map((x) => `${x.path.split('/').slice(-2).join('/')} ${x.from}→${x.to}`).join(', ')})`);
    await c.start(leader);
    await c.start(follower);
    await waitForMeta(c, leader, topic, (m) => m.leader === leader && m.isr.length === 2, 40_000);
    const lastRun = await racing;
    const acked = [...both.acked, ...alone, ...lastRun.acked];
    t.comment(`trial ${trial}: the racing producer: ${lastRun.acked.length} of ${lastRun.sent} acknowledged (errors: ${lastRun.errors.join(', ') || 'none'})`);
    t.pass(`trial ${trial}: node ${leader} leads again and node ${follower} caught up and rejoined`);
    const after = await produce(dir, bootstrap(c), topic, 'after', { count: 100 });
    t.equal(after.acked.length, 100, `trial ${trial}: writes after the restart acknowledged`);
    await c.stopAll();
    const replicas = { nodes: [c.node(leader), c.node(follower)] } as Cluster;
    t.same(await check(replicas, topic, 1, [...acked, ...after.acked]), {}, `trial ${trial}: all ${acked.length + after.acked.length} acknowledged records on both replicas at their offsets after the power cut; replicas identical`);
  }
});

// A partition leader on a node that is not the controller, frozen past the session timeout under
// an idempotent acks=all stream: the controller fences it and elects an in-sync replica. The
// stream's requests in flight to the frozen node wait in its socket; after SIGCONT that node
// either refuses them (it has applied its replacement) or appends them in its old epoch and
// cannot commit them (no follower fetches from it; its waiters fail once it follows), so none is
// acknowledged by it: the producer retries them on the new leader. It then truncates by leader
// epoch and catches up; every acknowledged record is on all three, at its offset.
t.test('faults: a partition leader frozen past its session steps down, acknowledges no stale write and truncates on resume', { timeout: 180_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  for (let trial = 1; trial <= TRIALS; trial++) {
    const dir = await tempDir(t, 'tributary-faults-');
    const c = await startShimmedCluster(t, FAST);
    const topic = `stale-${trial}`;
    await createTopic(c, 1, topic, 3);
    const metas = await waitForIsr(c, 1, topic, [1, 2, 3]);
    const controller = (await c.waitForLeader()).leader;
    const pick = metas.find((m) => m.leader !== controller)!;
    const p = pick.partition;
    const frozen = pick.leader;
    const others = [1, 2, 3].filter((id) => id !== frozen);
    const before = await produce(dir, bootstrap(c), topic, 'before', { count: 300 });
    t.equal(before.acked.length, 300, `trial ${trial}: 300 acknowledged before the freeze`);
    // Running across the freeze: its requests in flight to the frozen leader wait in that node's
    // socket and are answered after SIGCONT by a node that may not know yet it was replaced.
    const stream = produce(dir, bootstrap(c), topic, 'stream', { seconds: 7 });
    await sleep(1500);
    c.pause(frozen);
    const moved = await waitForMeta(c, others[0]!, topic, (m) => m.leader !== frozen && !m.isr.includes(frozen), 20_000, p);
    t.ok(others.includes(moved.leader), `trial ${trial}: node ${frozen} (leader of partition ${p}, not the controller ${controller}) frozen: node ${moved.leader} leads, ISR [${moved.isr}]`);
    await sleep(2000); // writes go on to the new leader
    c.resume(frozen);
    const run = await stream;
    const onP = run.acked.filter((a) => a.partition === p);
    t.ok(onP.length > 0, `trial ${trial}: ${run.acked.length} of ${run.sent} acknowledged across the freeze, ${onP.length} on partition ${p} (errors: ${run.errors.join(', ') || 'none'})`);
    const back = await waitForMeta(c, frozen, topic, (m) => m.leader !== frozen, 10_000, p);
    t.not(back.leader, frozen, `trial ${trial}: node ${frozen} itself names node ${back.leader} leader of partition ${p} after SIGCONT`);
    await waitForIsr(c, others[0]!, topic, [1, 2, 3], 30_000);
    const truncated = c.node(frozen).proc!.logs.filter((l) => String(l.msg).includes('replica truncated') && l.tp === `${topic}-${p}`);
    t.comment(`trial ${trial}: node ${frozen} truncated ${truncated.length ? truncated.map((l) => `${l.from}→${l.to}`).join(', ') : 'nothing (it appended nothing in its old epoch this time)'}`);
    await c.stopAll();
    const acked = [...before.acked, ...run.acked];
    t.same(await check(c, topic, 3, acked), {}, `trial ${trial}: all ${acked.length} acknowledged records on all three replicas at their offsets (none acknowledged by the stale leader and then truncated); replicas identical`);
  }
});

// KIP-101/279: a leader holding a suffix nobody else has (both followers frozen with SIGSTOP
// while an acks=all stream goes on: it appends, nothing commits) is killed; an in-sync replica is
// elected once the followers resume and writes go on, so the old leader is behind the high
// watermark *and* divergent. It restarts as a follower and, before it has caught up, the leader
// fails over again: it must truncate by leader epoch (KIP-279's rule when its latest epoch is
// newer than the leader's last common one; never to its own high watermark) and copy the rest.
t.test('faults: a follower behind the high watermark restarts and the leader fails over again', { timeout: 180_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  for (let trial = 1; trial <= TRIALS; trial++) {
    const dir = await tempDir(t, 'tributary-faults-');
    const c = await startShimmedCluster(t, FAST);
    const topic = `behind-${trial}`;
    await createTopic(c, 1, topic, 1);
    const meta = (await waitForIsr(c, 1, topic, [1, 2, 3]))[0]!;
    const first = meta.leader;
    const others = meta.replicas.filter((id) => id !== first) as [number, number];
    const stream = produce(dir, bootstrap(c), topic, `b${trial}`, { seconds: 10 });
    await sleep(1500);
    // Both followers frozen (the metadata quorum too, so the ISR cannot shrink): the leader
    // appends the stream's batches in its epoch and none commits.
    c.pause(others[0]);
    c.pause(others[1]);
    await sleep(1500);
    await c.kill9(first);
    c.resume(others[0]);
    c.resume(others[1]);
    // Either may win (the election follows the ISR's order as the new controller sees it); on a
    // loaded machine the quorum's election and the fence take a while after the resume.
    const after = await waitForMeta(c, others[0], topic, (m) => others.includes(m.leader) && !m.isr.includes(first), 45_000);
    const second = after.leader;
    const third = others.find((id) => id !== second)!;
    await sleep(1500); // writes go on, acknowledged by the other two: the old leader falls behind the high watermark
    await c.start(first);
    await c.kill9(second); // before the restarted node has caught up
    const moved = await waitForMeta(c, third, topic, (m) => m.leader !== second, 45_000);
    t.equal(moved.leader, third, `trial ${trial}: node ${first} (the first leader) restarted behind the high watermark; kill -9 of the second leader ${second} elected node ${third}, the in-sync one`);
    const run = await stream;
    t.ok(run.acked.length > 0, `trial ${trial}: ${run.acked.length} of ${run.sent} acknowledged (errors: ${run.errors.join(', ') || 'none'})`);
    await c.start(second);
    await waitForIsr(c, third, topic, [1, 2, 3], 40_000);
    const cutsOf = (id: number) => c.node(id).proc!.logs.filter((l) => String(l.msg).includes('replica truncated'));
    const firstCuts = cutsOf(first);
    // Whether it held a suffix depends on what the producer had in flight at the freeze (seen: 4
    // records cut in one run, none in another), so it is reported; the checker is the assertion.
    t.comment(`trial ${trial}: node ${first} cut ${firstCuts.map((l) => `${l.from}→${l.to} (leader ${l.leader}, epoch ${l.epoch})`).join(', ') || 'nothing (no divergent suffix this time)'}`);
    t.comment(`trial ${trial}: node ${second} truncated ${cutsOf(second).map((l) => `${l.from}→${l.to} (leader ${l.leader}, epoch ${l.epoch})`).join(', ') || 'nothing'}`);
    await c.stopAll();
    t.same(await check(c, topic, 1, run.acked), {}, `trial ${trial}: all ${run.acked.length} acknowledged records on all three replicas at their offsets; replicas identical`);
  }
});
