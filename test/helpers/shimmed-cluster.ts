// A three-node cluster whose every node runs under the power-cut shim (helpers/power-cut.ts):
// each process's writes and fsyncs are recorded, so a node — or the whole cabinet — can lose
// power: killed with kill -9, then each file it wrote cut to its last-synced length.
import { join } from 'node:path';
import { startBroker, tempDir } from './index.js';
import { Cluster, freePort, type ClusterNode } from './cluster.js';
import { cutToSynced, powerCutShim, type CutReport } from './power-cut.js';

type Teardown = Parameters<typeof tempDir>[0];

export class ShimmedCluster extends Cluster {
  private readonly ledgers = new Map<number, string>();
  constructor(
    private readonly tt: Teardown,
    nodes: ClusterNode[],
    voters: string,
    sets: string[],
    private readonly ledgerDir: string,
    /** `--set` values for one node only (e.g. a slow fsync on one of them). */
    private readonly nodeSets: (id: number) => string[] = () => [],
  ) {
    super(tt, nodes, voters, { set: sets });
  }

  override async start(id: number) {
    const n = this.node(id);
    const shim = powerCutShim(n.dataDir, this.ledgerDir, `node${id}`);
    n.proc = await startBroker(this.tt, { dataDir: n.dataDir, args: this.args(n, this.nodeSets(id)), nodeArgs: shim.nodeArgs, env: shim.env, readyTimeoutMs: 60_000 });
    n.stopped = false;
    this.ledgers.set(id, shim.ledger);
    return n.proc;
  }

  /** kill -9, then every file the process wrote cut to its last-synced length: a power cut of that node. */
  async powerCut(id: number): Promise<CutReport> {
    await this.kill9(id);
    return cutToSynced(this.ledgers.get(id)!);
  }

  /** The whole cabinet loses power: every node killed at once, then each one's files cut to their last-synced length. */
  async powerCutAll(): Promise<Map<number, CutReport>> {
    await Promise.all(this.nodes.map((n) => this.kill9(n.id)));
    const reports = new Map<number, CutReport>();
    for (const n of this.nodes) reports.set(n.id, await cutToSynced(this.ledgers.get(n.id)!));
    return reports;
  }
}

/** Starts three shimmed voters (ids 1..3) and waits until each knows every broker. */
export async function startShimmedCluster(t: Teardown, sets: string[], nodeSets?: (id: number) => string[]): Promise<ShimmedCluster> {
  const root = await tempDir(t, 'tributary-shimmed-');
  const nodes: ClusterNode[] = [];
  for (let id = 1; id <= 3; id++) nodes.push({ id, dataDir: join(root, `node${id}`), clusterPort: await freePort(), proc: null, stopped: false });
  const voters = nodes.map((x) => `${x.id}@127.0.0.1:${x.clusterPort}`).join(',');
  const c = new ShimmedCluster(t, nodes, voters, sets, root, nodeSets);
  t.teardown(() => c.stopAll());
  await Promise.all(nodes.map((x) => c.start(x.id)));
  await c.waitForBrokers([1, 2, 3]);
  return c;
}
