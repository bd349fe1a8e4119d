// Purpose: data replication among real `tributary start` processes on loopback (issue 11). Three
// nodes, topics at replication factor 3; producers are librdkafka (confluent_kafka under
// /usr/bin/python3, acks=all) and metadata is read with kcat: clients nobody here wrote. Each
// test names what was acknowledged and proves it is there by reading every replica's partition
// files after a clean stop (offset by offset: present exactly once, at the offset acknowledged,
// and the replicas identical).
//   - kill -9 of a partition leader mid-stream: the client re-routes by itself, a new leader is
//     elected from the ISR, the killed node restarts, truncates what was never acknowledged
//     (leader epoch) and catches up; the failover time (kill → first acknowledged record of that
//     partition) is printed.
//   - min.insync.replicas: with a replica down and the ISR below it, acks=all is refused with
//     NOT_ENOUGH_REPLICAS (acks=1 still answers); with two of three nodes down nothing is
//     acknowledged at all.
//   - a follower frozen with SIGSTOP leaves the ISR, writes go on acknowledged by the other two,
//     and after SIGCONT it catches up and rejoins the ISR.
// Trials: REPLICATION_KILL_TRIALS (default 1) repeats the kill -9 test.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliJs, eventually, sleep, tempDir } from '../helpers/index.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { bootstrap, check, createTopic, kafkaAddress, waitForIsr, type Acked, kafkaClientsPresent } from '../helpers/replicas.js';

const FAST = ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100'];
const KILL_TRIALS = Number(process.env.REPLICATION_KILL_TRIALS ?? 1);
const PYTHON = '/usr/bin/python3';

// Produces "<tag>-0", "<tag>-1", ... for `seconds` (idempotent, retrying: the failover stream) or
// `count` records (no retries: each refusal is seen), acks as given; writes each
// acknowledged value with partition, offset and the time of its acknowledgement; prints a JSON summary.
const PRODUCER = `
import sys, time, json
from confluent_kafka import Producer
bootstrap, topic, tag, seconds, count, acks, out = sys.argv[1:8]
seconds, count = float(seconds), int(count)
acked, errors = [], []
def done(err, msg):
    if err is None: acked.append((msg.value().decode(), msg.partition(), msg.offset(), time.time()))
    else: errors.append(err.name())
p = Producer({'bootstrap.servers': bootstrap, 'acks': acks, 'linger.ms': 2, 'message.timeout.ms': 15000 if count == 0 else 4000,
              'retries': 1000000 if count == 0 else 0, 'retry.backoff.ms': 50, 'topic.metadata.refresh.interval.ms': 1000,
              'enable.idempotence': count == 0, 'max.in.flight.requests.per.connection': 5 if count == 0 else 1})
t0 = time.time(); i = 0
while (count == 0 and time.time() - t0 < seconds) or (count > 0 and i < count):
    try:
        p.produce(topic, value=('%s-%d' % (tag, i)).encode(), on_delivery=done); i += 1
    except BufferError:
        pass
    p.poll(0.002 if count == 0 else 0)
p.flush(30)
with open(out, 'w') as f:
    for v, part, off, ts in acked: f.write('%s %d %d %.3f\\n' % (v, part, off, ts))
print(json.dumps({'sent': i, 'acked': len(acked), 'errors': sorted(set(errors))}))
`;


interface ProduceRun {
  sent: number;
  acked: Acked[];
  errors: string[];
}

async function produce(dir: string, bootstrap: string, topic: string, tag: string, o: { seconds?: number; count?: number; acks?: string }): Promise<ProduceRun> {
  const script = join(dir, 'producer.py');
  await writeFile(script, PRODUCER);
  const out = join(dir, `${tag}.acked`);
  const child = spawn(PYTHON, [script, bootstrap, topic, tag, String(o.seconds ?? 0), String(o.count ?? 0), o.acks ?? 'all', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.resume();
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`producer exited ${code}: ${stdout}`);
  const summary = JSON.parse(stdout.trim().split('\n').pop()!) as { sent: number; acked: number; errors: string[] };
  const { readFile } = await import('node:fs/promises');
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

t.test('replication: kill -9 of a leader under acks=all loses no acknowledged record', { timeout: 170_000 }, async (t) => {
  if (!kafkaClientsPresent(t)) return;
  const dir = await tempDir(t, 'tributary-repl-');
  const c = await startCluster(t, 3, { set: FAST });
  const failoverMs: number[] = [];
  const allAcked: Acked[] = [];
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
    t.comment(`trial ${trial}: kill -9 of node ${victim} → first acknowledged record on partition 0 after ${failoverMs.at(-1)} ms`);
  }
  await c.stopAll();
  for (let trial = 1; trial <= KILL_TRIALS; trial++) {
    const topic = `orders-${trial}`;
    const acked = allAcked.filter((a) => a.value.startsWith(`${topic}/`)).map((a) => ({ ...a, value: a.value.slice(topic.length + 1) }));
    t.same(await check(c, topic, 2, acked), {}, `trial ${trial}: all ${acked.length} acknowledged records on all three replicas exactly once, at their offsets; replicas identical`);
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
  const status = await eventually(() => {
    const out = spawnSync(process.execPath, [cliJs, 'cluster', 'status', '--node', `127.0.0.1:${c.node(leader).clusterPort}`], { encoding: 'utf8' }).stdout;
    return new RegExp(`\\n${follower} +\\S+ +fenced`).test(out) ? out : null;
  }, 10_000, 200);
  t.match(status!, new RegExp(`frozen-0 +${leader} +\\d+ +[\\d,]+ +${others.join(',')}  \\(under-replicated\\)`), 'cluster status shows the frozen broker fenced and the partition under-replicated with its ISR');
  const during = await produce(dir, others.map((id) => kafkaAddress(c, id)).join(','), 'frozen', 'during', { count: 200 });
  t.equal(during.acked.length, 200, 'writes go on, acknowledged by the two in sync');
  c.resume(follower);
  await waitForIsr(c, leader, 'frozen', [1, 2, 3], 20_000);
  t.pass(`node ${follower} resumed, caught up and rejoined the ISR`);
  await c.stopAll();
  t.same(await check(c, 'frozen', 1, during.acked), {}, 'the 200 records acknowledged while it was frozen are on all three replicas');
});
