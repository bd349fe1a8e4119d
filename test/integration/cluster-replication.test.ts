// Purpose: data replication among real `tributary start` processes on loopback (issue 11). Three
// nodes, topics at replication factor 3; producers are librdkafka (confluent_kafka under
// /usr/bin/python3, acks=all) and metadata is read with kcat: clients nobody here wrote. Each
// test names what was acknowledged and proves it is there by reading every replica's partition
// files after a clean stop (offset by offset: present exactly once, at the offset acknowledged,
// and the replicas identical).
//   - kill -9 of a partition leader mid-stream: the client re-routes by itself, a new leader is
//     elected from the ISR, the killed node restarts, truncates what was never acknowledged
//     (leader epoch) and catches up; the failover time (kill → first acknowledged record of that
//     partition) is printed; the queue checker (test/helpers/queue-checker.ts) runs over every
//     value sent and each replica's files, and its verdict is printed.
//   - min.insync.replicas: with a replica down and the ISR below it, acks=all is refused with
//     NOT_ENOUGH_REPLICAS (acks=1 still answers); with two of three nodes down nothing is
//     acknowledged at all.
//   - a follower frozen with SIGSTOP leaves the ISR, writes go on acknowledged by the other two,
//     and after SIGCONT it catches up and rejoins the ISR.
// Trials: REPLICATION_KILL_TRIALS (default 1) repeats the kill -9 test.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { cliJs, eventually, sleep, tempDir } from '../helpers/index.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { bootstrap, check, createTopic, kafkaAddress, produce, readReplica, waitForIsr, type Acked, kafkaClientsPresent } from '../helpers/replicas.js';
import { checkQueue, describeVerdict, type QueueRead } from '../helpers/queue-checker.js';

const FAST = ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100'];
const KILL_TRIALS = Number(process.env.REPLICATION_KILL_TRIALS ?? 1);

t.test('replication: kill -9 of a leader under acks=all loses no acknowledged record', { timeout: 170_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  const dir = await tempDir(t, 'tributary-repl-');
  const c = await startCluster(t, 3, { set: FAST });
  const failoverMs: number[] = [];
  const allAcked: Acked[] = [];
  const sentByTrial: number[] = [];
  for (let trial = 1; trial <= KILL_TRIALS; trial++) {
    const topic = `orders-${trial}`;
    await createTopic(c, 1, topic, 2);
    const before = await waitForIsr(c, 1, topic, [1, 2, 3]);
    const victim = before[0]!.leader;
    const stream = produce(dir, bootstrap(c), topic, `t${trial}`, { seconds: 9 });
    await sleep(2500);
    await c.kill9(victim);
    // Taken once the process is gone: an answer it sent before dying cannot count as failover.
    const killedAtMs = Date.now();
    const run = await stream;
    t.ok(run.acked.length > 0, `trial ${trial}: ${run.acked.length} of ${run.sent} records acknowledged (errors: ${run.errors.join(', ') || 'none'})`);
    const after = run.acked.filter((a) => a.partition === 0 && a.atMs > killedAtMs);
    t.ok(after.length > 0, `trial ${trial}: the producer re-routed partition 0 to its new leader by itself (${after.length} acknowledged after the kill)`);
    if (after.length > 0) failoverMs.push(after[0]!.atMs - killedAtMs);
    const survivors = [1, 2, 3].filter((id) => id !== victim);
    const moved = await waitForIsr(c, survivors[0]!, topic, survivors);
    t.not(moved[0]!.leader, victim, `trial ${trial}: partition 0 has a new leader (${moved[0]!.leader}), not the killed node ${victim}`);
    await c.start(victim);
    await waitForIsr(c, survivors[0]!, topic, [1, 2, 3], 30_000);
    t.pass(`trial ${trial}: node ${victim} restarted, caught up and is back in the ISR`);
    const truncated = c.node(victim).proc!.logs.filter((l) => String(l.msg).includes('replica truncated'));
    t.comment(`trial ${trial}: the restarted node truncated ${truncated.length ? truncated.map((l) => `${l.tp} ${l.from}→${l.to}`).join(', ') : 'nothing (it had no unacknowledged suffix this time)'}`);
    allAcked.push(...run.acked.map((a) => ({ ...a, value: `${topic}/${a.value}` })));
    sentByTrial[trial] = run.sent;
    t.comment(`trial ${trial}: kill -9 of node ${victim} → first acknowledged record on partition 0 after ${failoverMs.at(-1)} ms`);
  }
  await c.stopAll();
  for (let trial = 1; trial <= KILL_TRIALS; trial++) {
    const topic = `orders-${trial}`;
    const acked = allAcked.filter((a) => a.value.startsWith(`${topic}/`)).map((a) => ({ ...a, value: a.value.slice(topic.length + 1) }));
    t.same(await check(c, topic, 2, acked), {}, `trial ${trial}: all ${acked.length} acknowledged records on all three replicas exactly once, at their offsets; replicas identical`);
    // The queue checker over the same history: every value sent, each replica's files as one read.
    const reads: QueueRead[] = [];
    for (const n of c.nodes) {
      const records = [];
      for (let p = 0; p < 2; p++) for (const [offset, value] of await readReplica(n.dataDir, topic, p)) records.push({ partition: p, offset, value });
      reads.push({ source: `replica files on node ${n.id}`, records });
    }
    const withOffsets = acked.map((a) => ({ value: a.value, partition: a.partition, offset: a.offset >= 0 ? a.offset : undefined }));
    const verdict = checkQueue({ sent: Array.from({ length: sentByTrial[trial]! }, (_, i) => `t${trial}-${i}`), acked: withOffsets, reads });
    t.comment(`trial ${trial}: ${describeVerdict(verdict)}`);
    t.ok(verdict.valid && verdict.counts.ok === acked.length, `trial ${trial}: queue checker valid (lost ${verdict.counts.lost}, duplicate ${verdict.counts.duplicate}, inconsistent ${verdict.counts.inconsistent}, non-monotonic ${verdict.counts.nonMonotonic}, unexpected ${verdict.counts.unexpected}; unseen ${verdict.counts.unseen})`);
  }
  const sorted = [...failoverMs].sort((a, b) => a - b);
  t.comment(`failover (kill -9 → first acknowledged produce), ${sorted.length} trial(s): median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms`);
});

t.test('replication: min.insync.replicas refuses acks=all rather than keep a record on too few disks', { timeout: 120_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  const dir = await tempDir(t, 'tributary-repl-');
  const c = await startCluster(t, 3, { set: FAST });
  await createTopic(c, 1, 'strict', 1, { 'min.insync.replicas': 3 });
  await createTopic(c, 1, 'normal', 1);
  const meta = await waitForIsr(c, 1, 'strict', [1, 2, 3]);
  await waitForIsr(c, 1, 'normal', [1, 2, 3]);
  const leader = meta[0]!.leader;
  const ok = await produce(dir, bootstrap(c), 'strict', 'before', { count: 20 });
  t.equal(ok.acked.length, 20, 'all three in sync: acks=all acknowledged 20 of 20');

  const down = [1, 2, 3].find((id) => id !== leader)!;
  await c.kill9(down);
  const rest = [1, 2, 3].filter((id) => id !== down);
  await waitForIsr(c, leader, 'strict', rest);
  const refused = await produce(dir, bootstrap(c), 'strict', 'refused', { count: 5 });
  t.equal(refused.acked.length, 0, 'ISR of 2 under min.insync.replicas=3: nothing acknowledged with acks=all');
  // NOT_ENOUGH_REPLICAS up front, or, when the leader learnt of the shrink only while the batch
  // waited for the high watermark, NOT_ENOUGH_REPLICAS_AFTER_APPEND (Kafka's answers to both cases)
  t.ok(refused.errors.length > 0 && refused.errors.every((e) => e === 'NOT_ENOUGH_REPLICAS' || e === 'NOT_ENOUGH_REPLICAS_AFTER_APPEND'), `each refused with NOT_ENOUGH_REPLICAS(_AFTER_APPEND): ${refused.errors.join(', ')}`);
  const one = await produce(dir, bootstrap(c), 'strict', 'acks1', { count: 5, acks: '1' });
  t.equal(one.acked.length, 5, 'acks=1 still answers after the leader append');
  const normal = await produce(dir, bootstrap(c), 'normal', 'two', { count: 20 });
  t.equal(normal.acked.length, 20, 'a topic at the default min.insync.replicas=2 takes acks=all with two of three');

  const second = rest.find((id) => id !== c.nodes.find((n) => n.id === leader)?.id) ?? rest[0]!;
  await c.kill9(second);
  const lone = rest.find((id) => id !== second)!;
  const none = await produce(dir, kafkaAddress(c, lone), 'normal', 'alone', { count: 5 });
  t.equal(none.acked.length, 0, `two of three nodes down (no metadata quorum either): nothing acknowledged with acks=all (errors: ${none.errors.join(', ')})`);

  await c.start(down);
  await c.start(second);
  await waitForIsr(c, lone, 'normal', [1, 2, 3], 30_000);
  await c.stopAll();
  t.same(await check(c, 'strict', 1, [...ok.acked, ...one.acked]), {}, 'every acknowledged record of `strict` is on all three replicas');
  t.same(await check(c, 'normal', 1, normal.acked), {}, 'every acknowledged record of `normal` is on all three replicas (the node that was down caught up)');
});

t.test('replication: a frozen follower leaves the ISR and rejoins after SIGCONT', { timeout: 120_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  const dir = await tempDir(t, 'tributary-repl-');
  const c = await startCluster(t, 3, { set: FAST });
  await createTopic(c, 1, 'frozen', 1);
  const meta = await waitForIsr(c, 1, 'frozen', [1, 2, 3]);
  const leader = meta[0]!.leader;
  const controller = (await c.waitForLeader()).leader;
  const follower = [1, 2, 3].find((id) => id !== leader && id !== controller) ?? [1, 2, 3].find((id) => id !== leader)!;
  c.pause(follower);
  const others = [1, 2, 3].filter((id) => id !== follower);
  await waitForIsr(c, leader, 'frozen', others, 15_000);
  t.pass(`node ${follower} frozen: the ISR shrank to [${others.join(', ')}]`);
  // The frozen node never answers the status handshake: the command gives up on it after --timeout-ms.
  const clusterStatus = () => spawnSync(process.execPath, [cliJs, 'cluster', 'status', '--node', `127.0.0.1:${c.node(leader).clusterPort}`, '--timeout-ms', '1500'], { encoding: 'utf8' }).stdout;
  const status = await eventually(() => {
    const out = clusterStatus();
    return new RegExp(`\\n${follower} +\\S+ +fenced`).test(out) ? out : null;
  }, 15_000, 200);
  t.match(status!, new RegExp(`frozen-0 +${leader} +\\d+ +[\\d,]+ +${others.join(',')} +\\S.*  \\(under-replicated\\)`), 'cluster status shows the frozen broker fenced and the partition under-replicated with its ISR');
  const during = await produce(dir, others.map((id) => kafkaAddress(c, id)).join(','), 'frozen', 'during', { count: 200 });
  t.equal(during.acked.length, 200, 'writes go on, acknowledged by the two in sync');
  // Follower lag, as only the leader knows it: the frozen one at least the 200 records behind, the other caught up.
  const inSync = others.find((id) => id !== leader)!;
  let last = '';
  const lagged = await eventually(() => {
    const out = clusterStatus();
    const line = (last = out.split('\n').find((l) => l.startsWith('frozen-0 ')) ?? out);
    // frozen right after the topic was created, it may never have fetched: `(no fetch yet)`
    const m = new RegExp(`\\b${follower}: ([\\d,]+) \\((\\d+\\.\\d s|no fetch yet)\\)`).exec(line);
    return m && new RegExp(`\\b${inSync}: 0\\b`).test(line) && Number(m[1]!.replace(/,/g, '')) >= 200 ? line : null;
  }, 10_000, 300).catch(() => t.fail(`last status: ${last}`));
  t.ok(lagged, `cluster status shows node ${follower} 200+ offsets behind with the time since it was caught up, node ${inSync} at 0: ${lagged}`);
  c.resume(follower);
  await waitForIsr(c, leader, 'frozen', [1, 2, 3], 20_000);
  t.pass(`node ${follower} resumed, caught up and rejoined the ISR`);
  const caughtUp = await eventually(() => {
    const line = clusterStatus().split('\n').find((l) => l.startsWith('frozen-0 ')) ?? '';
    return new RegExp(`\\b${follower}: 0\\b`).test(line) && new RegExp(`\\b${inSync}: 0\\b`).test(line) ? line : null;
  }, 10_000, 300);
  t.ok(caughtUp, `after it resumed both followers are 0 behind: ${caughtUp}`);
  await c.stopAll();
  t.same(await check(c, 'frozen', 1, during.acked), {}, 'the 200 records acknowledged while it was frozen are on all three replicas');
});
