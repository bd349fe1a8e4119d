// Purpose: replica fetch answers are bounded node-wide and counted in the start-up memory budget
// (cluster.replicaFetchBytesTotalMax; host/cluster/fetch-budget.ts, host/config/budget.ts).
//   budget     on the real prepareNode path: a cluster node counts the key (a single node counts
//              0), a value past node.memoryBudgetBytes refuses the start naming it, and the key
//              must hold one answer (replicaFetchBytesMax + 1 MiB): equal passes, one byte less is
//              refused naming the key.
//   bounded    three real `tributary start` processes whose budget holds exactly one answer, so
//              each node fetches one partition at a time while following four: acks=all produces
//              over HTTP to six partitions are all acknowledged, every ISR is full again, the
//              start-up log line lists the item, and after a clean stop every node's copy of each
//              partition is identical (files read back).
import t from 'tap';
import { loadNodeConfig, prepareNode } from '../../host/node.js';
import { ConfigError } from '../../host/config/loader.js';
import { tempDir } from '../helpers/index.js';
import { freePort, startCluster } from '../helpers/cluster.js';
import { createTopic, metadata, readReplica } from '../helpers/replicas.js';
import { eventually, haveCommand } from '../helpers/index.js';

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

  const answer = 64 * 1024 + MiB; // replicaFetchBytesMax 64 KiB + 1 MiB headroom
  const fits = await prepareNode(loadNodeConfig([...base, '--data-dir', await tempDir(t), ...(await clusterArgs()), '--set', 'cluster.replicaFetchBytesMax=65536', '--set', `${ITEM}=${answer}`], {}));
  t.equal(fits.budget.items.find((i) => i.key === ITEM)?.bytes, answer, 'exactly one answer: accepted');
  const short = await prepareNode(loadNodeConfig([...base, '--data-dir', await tempDir(t), ...(await clusterArgs()), '--set', 'cluster.replicaFetchBytesMax=65536', '--set', `${ITEM}=${answer - 1}`], {})).catch((e: unknown) => e);
  t.match(String((short as Error)?.message), /cluster\.replicaFetchBytesTotalMax \(1114111\) must hold one replica fetch answer/, 'one byte less: refused, naming the key');
});

t.test('bounded: a budget of one answer per node still replicates six partitions under acks=all', { timeout: 120_000 }, async (t) => {
  if (!haveCommand('kcat')) {
    if (process.env.CI === 'true') t.fail('required in CI: kcat (Debian kcat)');
    else t.comment('kcat not installed: skipped');
    return;
  }
  const answer = 64 * 1024 + MiB;
  const c = await startCluster(t, 3, { set: ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicationCheckIntervalMs=100', 'cluster.replicaFetchBytesMax=65536', `${ITEM}=${answer}`] });
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
  t.ok(full, 'every ISR is full: each follower caught up, taking turns for the one answer it may hold');

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
