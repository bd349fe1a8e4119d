// Purpose: replica fetch answers are bounded node-wide and counted in the start-up memory budget
// (cluster.replicaFetchBytesTotalMax, cluster.replicaFetchResponseBytesMax;
// host/cluster/fetch-budget.ts, host/cluster/replica-fetcher.ts, host/config/budget.ts), and the
// bound costs acks=all no latency at the defaults.
//   budget     on the real prepareNode path: a cluster node counts the key (a single node counts
//              0), a value past node.memoryBudgetBytes refuses the start naming it, and the key
//              must hold one answer (replicaFetchResponseBytesMax + 1 MiB): equal passes, one
//              byte less is refused naming the key.
//   bounded    three real `tributary start` processes whose budget holds exactly one answer, so
//              each node fetches from one leader at a time while following two: acks=all produces
//              over HTTP to six partitions are all acknowledged, every ISR is full again, the
//              start-up log line lists the item, and after a clean stop every node's copy of each
//              partition is identical (files read back).
//   latency    three real nodes at the default fetch settings, one busy and twelve idle partitions
//              at RF 3, kafkajs sending one 100-byte record at a time with acks=all: the p50 stays
//              far below the ~150 ms the per-partition fetch budget cost (4 fetches at once, the
//              busy partition queued behind idle long polls), because one fetch per leader node
//              carries every followed partition. The bound (p50 < 60 ms; ~6 ms on a quiet machine)
//              leaves room for a loaded 2-core CI machine.
import t from 'tap';
import { loadNodeConfig, prepareNode } from '../../host/node.js';
import { ConfigError } from '../../host/config/loader.js';
import { tempDir } from '../helpers/index.js';
import { freePort, startCluster } from '../helpers/cluster.js';
import { createTopic, metadata, readReplica } from '../helpers/replicas.js';
import { eventually, haveCommand } from '../helpers/index.js';
import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;

const MiB = 1024 * 1024;
const ITEM = 'cluster.replicaFetchBytesTotalMax';
const base = ['--kafka-port', '0', '--mqtt-port', '-1', '--mqtt-ws-port', '-1', '--http-port', '-1', '--set', 'schemas.port=-1'];

async function clusterArgs(): Promise<string[]> {
  const port = await freePort();
  return ['--set', 'cluster.nodeId=1', '--set', `cluster.listen=127.0.0.1:${port}`, '--set', `cluster.voters=1@127.0.0.1:${port},2@127.0.0.1:9,3@127.0.0.1:10`];
}

t.test('budget: replica fetch answers are counted, refused past the budget, and must hold one answer', { timeout: 30_000 }, async (t) => {
  const single = await prepareNode(loadNodeConfig([...base, '--data-dir', await tempDir(t)], {}));
  t.equal(single.budget.items.find((i) => i.key === ITEM)?.bytes, 0, 'a single node follows nothing: 0');
  const node = await prepareNode(loadNodeConfig([...base, '--data-dir', await tempDir(t), ...(await clusterArgs())], {}));
  t.equal(node.budget.items.find((i) => i.key === ITEM)?.bytes, 8 * MiB, 'a cluster node: the default 8 MiB, in the total');
  t.notOk(node.budget.perPartition.some((i) => i.key.includes('replicaFetch')), 'no longer an uncounted per-partition item');

  const big = await prepareNode(loadNodeConfig([...base, '--data-dir', await tempDir(t), ...(await clusterArgs()), '--set', `${ITEM}=${128 * MiB}`], {})).catch((e: unknown) => e);
  t.ok(big instanceof ConfigError, 'past node.memoryBudgetBytes: refused');
  t.match(String((big as Error).message), /node\.memoryBudgetBytes.*cluster\.replicaFetchBytesTotalMax = 128\.0 MiB/, 'the refusal names the item');

  const answer = 64 * 1024 + MiB; // replicaFetchResponseBytesMax 64 KiB + 1 MiB headroom
  const fits = await prepareNode(loadNodeConfig([...base, '--data-dir', await tempDir(t), ...(await clusterArgs()), '--set', 'cluster.replicaFetchResponseBytesMax=65536', '--set', `${ITEM}=${answer}`], {}));
  t.equal(fits.budget.items.find((i) => i.key === ITEM)?.bytes, answer, 'exactly one answer: accepted');
  const short = await prepareNode(loadNodeConfig([...base, '--data-dir', await tempDir(t), ...(await clusterArgs()), '--set', 'cluster.replicaFetchResponseBytesMax=65536', '--set', `${ITEM}=${answer - 1}`], {})).catch((e: unknown) => e);
  t.match(String((short as Error)?.message), /cluster\.replicaFetchBytesTotalMax \(1114111\) must hold one replica fetch answer: cluster\.replicaFetchResponseBytesMax/, 'one byte less: refused, naming the key');
});

t.test('bounded: a budget of one answer per node (leaders take turns) still replicates six partitions under acks=all', { timeout: 120_000 }, async (t) => {
  if (!haveCommand('kcat')) {
    if (process.env.CI === 'true') t.fail('required in CI: kcat (Debian kcat)');
    else t.comment('kcat not installed: skipped');
    return;
  }
  const answer = 64 * 1024 + MiB;
  const c = await startCluster(t, 3, { set: ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicationCheckIntervalMs=100', 'cluster.replicaFetchBytesMax=65536', 'cluster.replicaFetchResponseBytesMax=65536', `${ITEM}=${answer}`] });
  await createTopic(c, 1, 'turns', 6);
  await eventually(() => {
    const m = metadata(c, 1, 'turns');
    return m.length === 6 && m.every((p) => p.leader > 0 && p.isr.length === 3) ? m : null;
  }, 30_000, 200);
  const line = c.node(1).proc!.logs.find((l) => String(l.msg).startsWith('memory budget:'));
  t.match(String(line?.msg), /cluster\.replicaFetchBytesTotalMax 1\.1 MiB/, `the start-up line lists the item: ${String(line?.msg).slice(0, 80)}...`);

  const acked: string[] = [];
  const startedAt = Date.now();
  for (let round = 0; round < 4; round++) {
    for (const via of [1, 2, 3]) {
      const records = Array.from({ length: 15 }, (_, i) => ({ key: `k${i}`, value: `r${round}-n${via}-${i}` }));
      const res = await fetch(`${c.httpUrl(via)}/topics/turns/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records) });
      if (res.status === 200) acked.push(...records.map((r) => r.value));
      else t.fail(`produce through node ${via}: ${res.status} ${await res.text()}`);
    }
  }
  t.equal(acked.length, 180, `every acks=all produce answered 200 (forwarded to each partition's leader): 12 produces of 15 records in ${Date.now() - startedAt} ms`);
  const full = await eventually(() => {
    const m = metadata(c, 1, 'turns');
    return m.every((p) => p.isr.length === 3) ? m : null;
  }, 30_000, 200);
  t.ok(full, 'every ISR is full: each follower caught up from both leaders, taking turns for the one answer it may hold');

  await c.stopAll();
  let stored = 0;
  for (let p = 0; p < 6; p++) {
    const copies = await Promise.all([1, 2, 3].map((id) => readReplica(c.node(id).dataDir, 'turns', p)));
    t.same([...copies[1]!.entries()], [...copies[0]!.entries()], `turns-${p}: node 2's copy is node 1's`);
    t.same([...copies[2]!.entries()], [...copies[0]!.entries()], `turns-${p}: node 3's copy is node 1's`);
    stored += copies[0]!.size;
  }
  t.equal(stored, 180, 'all 180 acknowledged records stored, once');
});

t.test('latency: acks=all with one busy and twelve idle RF 3 partitions at the default fetch settings', { timeout: 90_000 }, async (t) => {
  const c = await startCluster(t, 3, { set: ['cluster.tickMs=50'] });
  await createTopic(c, 1, 'busy', 1);
  await createTopic(c, 1, 'idle', 12);
  const kafka = new Kafka({ clientId: 'fetch-latency', brokers: [c.node(1).proc!.listeners.kafka!], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  await eventually(async () => {
    const m = await admin.fetchTopicMetadata({ topics: ['busy', 'idle'] }).catch(() => null);
    return m && m.topics.every((tp) => tp.partitions.length > 0 && tp.partitions.every((p) => p.leader > 0 && p.isr.length === 3)) ? m : null;
  }, 30_000, 200);
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  t.teardown(() => producer.disconnect());
  const value = 'x'.repeat(100);
  for (let i = 0; i < 20; i++) await producer.send({ topic: 'busy', acks: -1, messages: [{ value }] }); // warm-up: connections, metadata
  const sends = 200;
  const latencyMs: number[] = [];
  for (let i = 0; i < sends; i++) {
    const startedAt = performance.now();
    await producer.send({ topic: 'busy', acks: -1, messages: [{ value }] });
    latencyMs.push(performance.now() - startedAt);
  }
  latencyMs.sort((a, b) => a - b);
  const at = (q: number) => latencyMs[Math.min(sends - 1, Math.floor(q * sends))]!;
  const summary = `p50 ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms, max ${at(1).toFixed(1)} ms over ${sends} sends`;
  t.ok(at(0.5) < 60, `acks=all ${summary} (the per-partition budget measured p50 146–152 ms here)`);
  const m = await admin.fetchTopicMetadata({ topics: ['busy'] });
  t.equal(m.topics[0]!.partitions[0]!.isr.length, 3, 'the busy partition\'s ISR stayed full: every acknowledgement waited for both followers');
});
