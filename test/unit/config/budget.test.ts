// Purpose: the start-up memory budget counts the uplink's and the cluster's buffers when they are
// configured (issue 14: "the sum of every configured buffer and cache"), counts nothing for them
// on a plain single node, and refuses a configuration whose counted sum passes
// node.memoryBudgetBytes, naming the item — on the real prepareNode path, before anything binds.
import t from 'tap';
import { loadNodeConfig, prepareNode } from '../../../host/node.js';
import { ConfigError } from '../../../host/config/loader.js';
import { tempDir } from '../../helpers/index.js';
import { freePort } from '../../helpers/cluster.js';
import { defaultClusterOptions, replicaFetchAnswerBytesMax } from '../../../host/cluster/options.js';

const MiB = 1024 * 1024;
const base = ['--kafka-port', '0', '--mqtt-port', '-1', '--mqtt-ws-port', '-1', '--http-port', '-1', '--set', 'schemas.port=-1'];
const QUORUM_ITEM = '(cluster.voters - 1) × cluster.sendQueueBytesMax';

async function clusterArgs(): Promise<string[]> {
  const port = await freePort();
  return ['--set', 'cluster.nodeId=1', '--set', `cluster.listen=127.0.0.1:${port}`, '--set', `cluster.voters=1@127.0.0.1:${port},2@127.0.0.1:9,3@127.0.0.1:10`];
}

t.test('memory budget: a single node without uplink counts nothing for the uplink or the cluster', async (t) => {
  const p = await prepareNode(loadNodeConfig([...base, '--data-dir', await tempDir(t)], {}));
  const items = Object.fromEntries(p.budget.items.map((i) => [i.key, i.bytes]));
  t.equal(items['uplink.inFlightBytesMax'], 0);
  t.equal(items[QUORUM_ITEM], 0);
  t.ok(p.budget.totalBytes <= 800 * MiB, `the defaults fit the default budget: ${p.budget.totalBytes} bytes`);
});

t.test('memory budget: a 3-voter cluster with an uplink counts both, and the defaults still fit', async (t) => {
  const uplink = ['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t'].flatMap((s) => ['--set', s]);
  const p = await prepareNode(loadNodeConfig([...base, '--data-dir', await tempDir(t), ...(await clusterArgs()), ...uplink], {}));
  const items = Object.fromEntries(p.budget.items.map((i) => [i.key, i.bytes]));
  t.equal(items['uplink.inFlightBytesMax'], 8 * MiB, 'the link\'s batches in flight');
  t.equal(items[QUORUM_ITEM], 2 * 8 * MiB, 'one send queue per other voter');
  t.equal(items['cluster.replicaFetchBytesTotalMax'], 8 * MiB, 'replica fetch answers, node-wide (the sum of the leader fetchers\' answer bounds)');
  t.ok(items['cluster.replicaFetchBytesTotalMax']! >= 4 * replicaFetchAnswerBytesMax(defaultClusterOptions.replicaFetchResponseBytesMax), 'it holds one answer per leader for up to 4 peers: none waits at the defaults');
  t.ok(p.budget.totalBytes <= 800 * MiB, `${(p.budget.totalBytes / MiB).toFixed(1)} MiB ≤ the default 800 MiB`);
});

t.test('memory budget: the quorum\'s send queues past the budget refuse the start, naming them', async (t) => {
  const args = [...base, '--data-dir', await tempDir(t), ...(await clusterArgs()), '--set', `cluster.sendQueueBytesMax=${64 * MiB}`];
  const err = await prepareNode(loadNodeConfig(args, {})).catch((e) => e);
  t.ok(err instanceof ConfigError, 'a ConfigError');
  t.match(String(err?.message), /node\.memoryBudgetBytes = 838860800 \(default\).*\(cluster\.voters - 1\) × cluster\.sendQueueBytesMax = 128\.0 MiB/);
  // the same cluster with queues the budget holds starts
  const ok = await prepareNode(loadNodeConfig([...base, '--data-dir', await tempDir(t), ...(await clusterArgs()), '--set', `cluster.sendQueueBytesMax=${12 * MiB}`], {}));
  t.ok(ok.budget.totalBytes <= 800 * MiB, 'two 12 MiB queues still fit (beside the 8 MiB of replica fetch answers)');
});
