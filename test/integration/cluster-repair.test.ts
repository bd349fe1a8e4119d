// Purpose: replicas that lost data come back whole from their peers (issue 11), over real
// `tributary start` processes on loopback, librdkafka (confluent_kafka) producing with acks=all.
//   - a follower behind its leader's log start: frozen (SIGSTOP) while the leader's retention
//     deleted segments past the follower's log end, it must reset (Kafka's
//     truncateFullyAndStartAt: its log restarts empty at the leader's log start), say so with both
//     offsets, count it, catch up and rejoin the ISR; its copy then equals the leader's over the
//     offsets both still hold, and every acknowledged record the leader still holds is on all three.
//   - a follower whose segment fails its CRC (one byte of a record value flipped while it was
//     stopped) reports it, leaves / stays out of the ISR, is cut at the bad batch and refetches;
//     then kill -9 of the leader elects a sound replica and loses no acknowledged record.
//   - the damaged replica is the leader, restarted before it was fenced (still leader and in the
//     ISR): its new broker epoch, registered before it opens its logs, gives the leadership up
//     (else its own damage report would), an in-sync replica is elected, it repairs.
// Each check reads the replicas' partition files after a clean stop.
import t from 'tap';
import { cliJs, eventually, tempDir } from '../helpers/index.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { bootstrap, check, createTopic, kafkaClientsPresent, metadata, produce, readReplica, waitForIsr, type Acked } from '../helpers/replicas.js';
import { verifyLog } from '../../host/log/verify.js';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const FAST = ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100'];

/** One partition's leader and ISR as a node's Metadata answers (kcat), or null while it has no leader. */
function metadataOf(c: Cluster, via: number, topic: string) {
  const p = metadata(c, via, topic)[0];
  return p && p.leader > 0 ? p : null;
}

/** Sum of a counter's samples on a node's /metrics whose labels include `labels`. */
async function metricSum(c: Cluster, id: number, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${c.httpUrl(id)}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.split(' ').pop());
  return sum;
}

/** The lowest offset a node's retention left, from its 'retention deleted segments' log lines (-1: none yet). */
function retainedFrom(c: Cluster, id: number, topic: string): number {
  const lines = c.node(id).proc!.logs.filter((l) => l.msg === 'retention deleted segments' && l.topic === topic);
  return lines.length ? Math.max(...lines.map((l) => Number(l.logStartOffset))) : -1;
}

/** The nodes' copies compared over the offsets all of them hold; each acknowledged record the leader holds is on every copy at its offset. */
async function compare(c: Cluster, topic: string, leader: number, acked: Acked[]) {
  const copies = new Map<number, Map<number, string>>();
  for (const n of c.nodes) copies.set(n.id, await readReplica(n.dataDir, topic, 0));
  const starts = [...copies.values()].map((m) => Math.min(...m.keys()));
  const common = Math.max(...starts);
  const lead = copies.get(leader)!;
  const leaderStart = Math.min(...lead.keys());
  const anomalies: Record<string, string[]> = { lost: [], divergent: [] };
  for (const [id, copy] of copies) {
    for (const a of acked) if (a.offset >= leaderStart && copy.get(a.offset) !== a.value && a.offset >= Math.min(...copy.keys())) anomalies.lost!.push(`node ${id}: ${a.value} acked at ${a.offset}, there: ${copy.get(a.offset)}`);
    const ours = [...copy].filter(([o]) => o >= common);
    const theirs = [...lead].filter(([o]) => o >= common);
    if (JSON.stringify(ours) !== JSON.stringify(theirs)) anomalies.divergent!.push(`node ${id} (${ours.length} records from ${common}) differs from leader ${leader} (${theirs.length})`);
  }
  for (const k of Object.keys(anomalies)) if (anomalies[k]!.length === 0) delete anomalies[k];
  return { anomalies, starts, common, leaderStart, below: acked.filter((a) => a.offset < leaderStart).length };
}

t.test("repair: a follower behind the leader's log start resets there, catches up and rejoins the ISR", { timeout: 150_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  const dir = await tempDir(t, 'tributary-repair-');
  const c = await startCluster(t, 3, { set: [...FAST, 'broker.retentionCheckIntervalMs=200'] });
  await c.waitForBrokers([1, 2, 3]);
  // 1 KiB segments, 3 KiB kept: the leader deletes segments after a few hundred small records.
  await createTopic(c, 1, 'trimmed', 1, { 'segment.bytes': 1024, 'retention.bytes': 3072 });
  const meta = await waitForIsr(c, 1, 'trimmed', [1, 2, 3]);
  const leader = meta[0]!.leader;
  const controller = (await c.waitForLeader()).leader;
  const follower = [1, 2, 3].find((id) => id !== leader && id !== controller) ?? [1, 2, 3].find((id) => id !== leader)!;
  const others = [1, 2, 3].filter((id) => id !== follower);
  const bootstrap = others.map((id) => c.node(id).proc!.listeners.kafka!).join(',');
  const before = await produce(dir, bootstrap, 'trimmed', 'before', { count: 50 });
  t.equal(before.acked.length, 50, 'all three in sync: 50 acknowledged');
  const followerEnd = Math.max(...before.acked.map((a) => a.offset)) + 1;

  c.pause(follower);
  await waitForIsr(c, leader, 'trimmed', others, 15_000);
  const during: Acked[] = [];
  for (let round = 0; round < 20 && retainedFrom(c, leader, 'trimmed') <= followerEnd; round++) {
    const run = await produce(dir, bootstrap, 'trimmed', `during${round}`, { count: 200 });
    during.push(...run.acked);
    await eventually(() => retainedFrom(c, leader, 'trimmed') > followerEnd || during.length < 200 * (round + 1) || null, 3000, 100).catch(() => undefined);
  }
  const leaderStart = retainedFrom(c, leader, 'trimmed');
  t.ok(leaderStart > followerEnd, `node ${follower} frozen at log end ${followerEnd}; the leader's retention moved its log start to ${leaderStart} (${during.length} records acknowledged by the other two)`);

  c.resume(follower);
  await waitForIsr(c, leader, 'trimmed', [1, 2, 3], 30_000);
  t.pass(`node ${follower} resumed, reset, caught up and rejoined the ISR`);
  // The node's log reaches us through a pipe: wait for the line rather than assume it is there.
  const reset = await eventually(() => c.node(follower).proc!.logs.find((l) => String(l.msg).includes("behind the leader's log start")), 10_000, 50).catch(() => undefined);
  t.ok(reset, 'the follower logged its reset');
  if (reset) {
    t.equal(reset.logEndOffset, followerEnd, `the reset names the follower's log end (${reset.logEndOffset})`);
    t.ok(Number(reset.leaderLogStartOffset) >= leaderStart, `and the leader's log start it restarted at (${reset.leaderLogStartOffset})`);
  }
  t.ok((await metricSum(c, follower, 'tributary_broker_replica_truncations_total', 'reason="log-start"')) >= 1, 'tributary_broker_replica_truncations_total{reason="log-start"} counted it');
  const after = await produce(dir, bootstrap, 'trimmed', 'after', { count: 20 });
  t.equal(after.acked.length, 20, 'writes after the rejoin acknowledged (20 of 20)');
  const status = spawnSync(process.execPath, [cliJs, 'cluster', 'status', '--node', `127.0.0.1:${c.node(leader).clusterPort}`], { encoding: 'utf8' }).stdout;
  const isr = new RegExp(`trimmed-0 +${leader} +\\d+ +[\\d,]+ +([\\d,]+)`).exec(status)?.[1]?.split(',').sort().join();
  t.equal(isr, '1,2,3', `cluster status lists all three in sync (${status.split('\n').find((l) => l.startsWith('trimmed-0'))})`);

  await c.stopAll();
  const r = await compare(c, 'trimmed', leader, [...before.acked, ...during, ...after.acked]);
  t.same(r.anomalies, {}, `replicas identical from offset ${r.common} (log starts ${r.starts.join(', ')}); every acknowledged record at or above the leader's log start ${r.leaderStart} is on all three at its offset`);
  t.comment(`${r.below} acknowledged records lie below the leader's log start: deleted by retention, as configured`);
});

// A follower stopped cleanly, one byte of a record value in the middle of its segment flipped
// (its batch then fails the CRC; a clean-shutdown open trusts the file, so only the start-up
// verification sees it), restarted: it must report the damage, be cut at the bad batch, stay out
// of the ISR until it has refetched from the leader, then hold exactly the leader's copy. Then the
// leader is killed with kill -9: the new leader must be a sound replica and every acknowledged
// record must be read back from it (kcat) and be on every replica (files after a clean stop).
t.test('repair: a replica whose segment fails its CRC leaves the ISR, refetches, and no acknowledged record is lost on failover', { timeout: 150_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  const dir = await tempDir(t, 'tributary-repair-');
  const c = await startCluster(t, 3, { set: FAST });
  await c.waitForBrokers([1, 2, 3]);
  await createTopic(c, 1, 'rot', 1);
  const meta = await waitForIsr(c, 1, 'rot', [1, 2, 3]);
  const leader = meta[0]!.leader;
  const controller = (await c.waitForLeader()).leader;
  const follower = [1, 2, 3].find((id) => id !== leader && id !== controller) ?? [1, 2, 3].find((id) => id !== leader)!;
  // Six producer runs of 50: at least six batches, so the damaged one sits between sound ones.
  const acked: Acked[] = [];
  for (let run = 0; run < 6; run++) acked.push(...(await produce(dir, bootstrap(c), 'rot', `v${run}`, { count: 50 })).acked);
  t.equal(acked.length, 300, 'all three in sync: 300 acknowledged with acks=all');

  await c.stop(follower);
  const segment = join(c.node(follower).dataDir, 'rot-0', '00000000000000000000.log');
  const bytes = await readFile(segment);
  const at = bytes.indexOf(Buffer.from('v3-10'));
  t.ok(at > 0 && at < bytes.length - 1000, `record v3-10 found in the middle of node ${follower}'s segment (byte ${at} of ${bytes.length})`);
  bytes[at + 4] ^= 0x01; // 'v3-10' → 'v3-11': a plausible value, only the CRC can tell
  await writeFile(segment, bytes);
  t.ok((await verifyLog(join(c.node(follower).dataDir, 'rot-0'))).damage, 'the flipped byte fails the batch CRC');

  const restartedAtMs = Date.now();
  await c.start(follower);
  const logs = () => c.node(follower).proc!.logs;
  const damaged = await eventually(() => logs().find((l) => String(l.msg).startsWith('replica damaged')), 10_000, 50);
  const cut = await eventually(() => logs().find((l) => String(l.msg).startsWith('damaged replica cut')), 10_000, 50);
  const damagedAt = acked.find((a) => a.value === 'v3-10')!.offset;
  const runStart = acked.find((a) => a.value === 'v3-0')!.offset;
  t.ok(Number(damaged!.offset) <= damagedAt && Number(damaged!.offset) >= runStart, `node ${follower} reported the damaged batch (offset ${damaged!.offset}, ${damaged!.defect}; the flipped record is at ${damagedAt}, its producer run began at ${runStart}): the sound batches before it are kept`);
  t.equal(cut!.to, damaged!.offset, `and cut its log there (${cut!.from} → ${cut!.to})`);
  await waitForIsr(c, leader, 'rot', [1, 2, 3], 30_000);
  // The leader's ISR expansion naming the follower comes after the follower's cut: it was out of the ISR until it had refetched.
  const timeOf = (l: Record<string, unknown>) => Date.parse(String(l.time));
  const expansions = () => c.node(leader).proc!.logs.filter((l) => l.msg === 'ISR changed by lag' && timeOf(l) >= restartedAtMs && new RegExp(`rot-0: leader ${leader} epoch \\d+ isr \\[[\\d,]*${follower}`).test(JSON.stringify(l.changes)));
  // Log lines come through a pipe and may trail the metadata kcat read: wait for the expansion's.
  const expanded = (await eventually(() => (expansions().length > 0 ? expansions() : null), 10_000, 50).catch(() => null)) ?? [];
  const left = logs().find((l) => String(l.msg).includes('left the ISR') || String(l.msg).includes('could not leave the ISR'));
  t.comment(`node ${follower} was out of the ISR by ${left ? `its own report (${left.msg})` : 'the controller, which fenced it while it was down'}`);
  t.ok(expanded.length > 0 && timeOf(expanded[0]!) >= timeOf(cut!), `node ${follower} rejoined the ISR only after its cut and refetch (first expansion ${expanded.length ? timeOf(expanded[0]!) - timeOf(cut!) : '?'} ms after the cut)`);
  t.ok((await metricSum(c, follower, 'tributary_broker_replica_truncations_total', 'reason="damaged"')) >= 1, 'tributary_broker_replica_truncations_total{reason="damaged"} counted it');

  await c.kill9(leader);
  const survivors = [1, 2, 3].filter((id) => id !== leader);
  const moved = await waitForIsr(c, survivors[0]!, 'rot', survivors, 20_000);
  const elected = moved[0]!.leader;
  t.ok(survivors.includes(elected), `node ${elected} elected after the kill -9 of leader ${leader}`);
  const read = spawnSync('kcat', ['-C', '-b', c.node(elected).proc!.listeners.kafka!, '-t', 'rot', '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%o %s\\n'], { encoding: 'utf8', timeout: 20_000 });
  const got = new Map(read.stdout.split('\n').filter(Boolean).map((line) => line.split(' ') as [string, string]).map(([o, v]) => [Number(o), v]));
  const missing = acked.filter((a) => got.get(a.offset) !== a.value);
  t.same(missing.map((a) => a.value), [], `kcat reads all ${acked.length} acknowledged records from the new leader at their offsets (${got.size} read)`);

  await c.stopAll();
  for (const n of c.nodes) t.equal((await verifyLog(join(n.dataDir, 'rot-0'))).damage, null, `node ${n.id}'s copy passes every CRC`);
  t.same(await check(c, 'rot', 1, acked), {}, 'every acknowledged record on all three replicas exactly once at its offset; replicas identical');
});

// The damaged replica is the partition's leader and comes back before anyone fenced it (long
// session and lag timeouts: it is still leader and in the ISR when it restarts). Its new broker
// epoch (or its own verification) must take it out: it gives the leadership up (leader none, epoch + 1), the
// controller elects an in-sync replica, and it repairs as a follower of that one.
t.test('repair: a damaged leader restarted before it was fenced gives its leadership up and repairs from the new leader', { timeout: 150_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  const dir = await tempDir(t, 'tributary-repair-');
  const c = await startCluster(t, 3, { set: ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=30000', 'cluster.replicaLagTimeMaxMs=60000', 'cluster.replicationCheckIntervalMs=100'] });
  await c.waitForBrokers([1, 2, 3]);
  await createTopic(c, 1, 'rotlead', 1);
  const leader = (await waitForIsr(c, 1, 'rotlead', [1, 2, 3]))[0]!.leader;
  const acked: Acked[] = [];
  for (let run = 0; run < 6; run++) acked.push(...(await produce(dir, bootstrap(c), 'rotlead', `v${run}`, { count: 50 })).acked);
  t.equal(acked.length, 300, 'all three in sync: 300 acknowledged with acks=all');

  await c.stop(leader);
  const segment = join(c.node(leader).dataDir, 'rotlead-0', '00000000000000000000.log');
  const bytes = await readFile(segment);
  bytes[bytes.indexOf(Buffer.from('v4-20')) + 4] ^= 0x01;
  await writeFile(segment, bytes);
  await c.start(leader);
  const logs = () => c.node(leader).proc!.logs;
  // Its new broker epoch, registered before it opens its logs (early-registration.ts), already
  // takes it out of the ISR and gives the leadership up; were that registration to fail, its
  // damage report does.
  const left = await eventually(() => logs().find((l) => String(l.msg).startsWith('new broker epoch registered before opening partitions') || (String(l.msg) === 'damaged replica left the ISR' && l.gaveUpLeadership === true)), 15_000, 50).catch(() => undefined);
  t.ok(left, `node ${leader} left the ISR and gave its leadership up before verifying its log: ${String(left?.msg ?? 'no such log line')}`);
  const others = [1, 2, 3].filter((id) => id !== leader);
  const during = await eventually(() => {
    const m = metadataOf(c, others[0]!, 'rotlead');
    return m && m.leader !== leader ? m : null;
  }, 10_000, 100).catch(() => null);
  t.ok(during && during.leader !== leader && others.includes(during.leader), `an in-sync replica leads now (node ${during?.leader}, ISR ${during?.isr})`);
  const cut = await eventually(() => logs().find((l) => String(l.msg).startsWith('damaged replica cut')), 15_000, 50).catch(() => undefined);
  t.ok(cut, `node ${leader} cut its log at the damaged batch (${cut?.from} → ${cut?.to}) and refetched`);
  await waitForIsr(c, others[0]!, 'rotlead', [1, 2, 3], 30_000);
  t.pass(`node ${leader} rejoined the ISR as a follower`);
  await c.stopAll();
  for (const n of c.nodes) t.equal((await verifyLog(join(n.dataDir, 'rotlead-0'))).damage, null, `node ${n.id}'s copy passes every CRC`);
  t.same(await check(c, 'rotlead', 1, acked), {}, 'every acknowledged record on all three replicas exactly once at its offset; replicas identical');
});
