// A cluster of real `tributary start` processes on loopback for process-level fault tests: free
// ports for each node's inter-node listener (every other listener on port 0), one data dir per
// node, and the faults a cabinet sees — kill -9 (power cut of one node), SIGSTOP/SIGCONT (a node
// frozen past the election timeout, then back), restart on the same data dir. Status is read the
// way `tributary cluster status` reads it (a status handshake on the node's cluster listener).
import { createServer } from 'node:net';
import { join } from 'node:path';
import { readStatus } from '../../host/cluster/tcp-transport.js';
import type { QuorumStatus } from '../../host/cluster/quorum.js';
import { eventually, startBroker, tempDir, type BrokerProcess } from './index.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface ClusterOptions {
  /** Extra `--set` values for every node (e.g. 'cluster.tickMs=50'). */
  set?: string[];
  readyTimeoutMs?: number;
  /** tls.connect options for status reads when the nodes run `cluster.tls`. */
  statusTls?: import('node:tls').ConnectionOptions;
  /**
   * Start the nodes without the test runner's preload (coverage hooks; startBroker's
   * `withoutRunnerPreload`): a test that restarts nodes dozens of times pays the preload at every
   * start and adds no coverage the other cluster tests do not.
   */
  withoutRunnerPreload?: boolean;
  /** Node flags for every node (a bench runs them as `npm start` does). */
  nodeArgs?: string[];
}

export interface ClusterNode {
  id: number;
  dataDir: string;
  clusterPort: number;
  proc: BrokerProcess | null;
  stopped: boolean;
}

/** A free loopback port: bound on 0, read, released (the node binds it a moment later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export class Cluster {
  constructor(
    private readonly t: Teardown,
    readonly nodes: ClusterNode[],
    readonly voters: string,
    private readonly opts: ClusterOptions,
  ) {}

  node(id: number): ClusterNode {
    return this.nodes.find((n) => n.id === id)!;
  }

  /** Nodes whose process runs and is not stopped. */
  live(): ClusterNode[] {
    return this.nodes.filter((n) => n.proc && !n.stopped);
  }

  args(n: ClusterNode, extra: string[] = []): string[] {
    const sets = [`cluster.nodeId=${n.id}`, `cluster.listen=127.0.0.1:${n.clusterPort}`, `cluster.voters=${this.voters}`, ...(this.opts.set ?? []), ...extra];
    return sets.flatMap((s) => ['--set', s]);
  }

  async start(id: number): Promise<BrokerProcess> {
    const n = this.node(id);
    n.proc = await startBroker(this.t, { dataDir: n.dataDir, args: this.args(n), readyTimeoutMs: this.opts.readyTimeoutMs ?? 60_000, withoutRunnerPreload: this.opts.withoutRunnerPreload, nodeArgs: this.opts.nodeArgs });
    n.stopped = false;
    return n.proc;
  }

  async kill9(id: number): Promise<void> {
    const n = this.node(id);
    if (n.stopped) n.proc?.child.kill('SIGCONT');
    await n.proc?.kill();
    n.proc = null;
  }

  /** A clean stop (SIGTERM: flush, fsync, clean-shutdown markers); `start(id)` brings it back on the same data dir. */
  async stop(id: number): Promise<void> {
    const n = this.node(id);
    if (n.stopped) n.proc?.child.kill('SIGCONT');
    await n.proc?.stop();
    n.proc = null;
    n.stopped = false;
  }

  pause(id: number): void {
    const n = this.node(id);
    n.proc!.child.kill('SIGSTOP');
    n.stopped = true;
  }

  resume(id: number): void {
    const n = this.node(id);
    n.proc!.child.kill('SIGCONT');
    n.stopped = false;
  }

  async status(id: number, timeoutMs = 2000): Promise<QuorumStatus & { clusterId: string }> {
    return (await readStatus({ host: '127.0.0.1', port: this.node(id).clusterPort }, timeoutMs, undefined, this.opts.statusTls ?? null)) as QuorumStatus & { clusterId: string };
  }

  /** Waits until one of `among` (default: the live nodes) leads and every one of them names it; returns its id and term. */
  async waitForLeader(among: number[] = this.live().map((n) => n.id), timeoutMs = 15_000): Promise<{ leader: number; term: number }> {
    const found = await eventually(async () => {
      const all = await Promise.all(among.map((id) => this.status(id, 500)));
      const leaders = all.filter((s) => s.role === 'leader');
      if (leaders.length !== 1) return null;
      const l = leaders[0]!;
      return all.every((s) => s.leader === l.nodeId && s.term === l.term) ? { leader: l.nodeId, term: l.term } : null;
    }, timeoutMs, 25);
    return found!;
  }

  /**
   * Waits until every node in `ids` knows each of them as a registered, unfenced broker. A node is
   * ready once it has caught up with the quorum, which can be before a peer's registration is
   * applied: a topic created at replication factor 3 in that window is refused with
   * INVALID_REPLICATION_FACTOR (2 live nodes), as it should be.
   */
  async waitForBrokers(ids: number[], timeoutMs = 20_000): Promise<void> {
    const want = [...ids].sort((a, b) => a - b).join();
    let seen = '';
    try {
      await eventually(async () => {
        const all = await Promise.all(ids.map((id) => this.status(id, 1000)));
        const live = all.map((s) => ((s as { brokers?: Array<{ nodeId: number; fenced: boolean }> }).brokers ?? []).filter((b) => !b.fenced).map((b) => b.nodeId).sort((a, b) => a - b).join());
        seen = all.map((s, i) => `node ${s.nodeId}: [${live[i]}]`).join('; ');
        return live.every((l) => l === want) || null;
      }, timeoutMs, 50);
    } catch (err) {
      throw new Error(`brokers [${want}] not all registered within ${timeoutMs} ms (live as each node sees it: ${seen}): ${(err as Error).message}`);
    }
  }

  httpUrl(id: number): string {
    return `http://127.0.0.1:${this.node(id).proc!.port('http')}`;
  }

  async topics(id: number): Promise<Set<string>> {
    const res = await fetch(`${this.httpUrl(id)}/topics`);
    const body = (await res.json()) as { topics: Array<{ name: string }> };
    return new Set(body.topics.map((x) => x.name));
  }

  async stopAll(): Promise<void> {
    for (const n of this.nodes) {
      if (n.stopped) n.proc?.child.kill('SIGCONT');
    }
    await Promise.all(this.nodes.map((n) => n.proc?.stop()));
  }
}

/** Starts `n` voters (ids 1..n) at once (each waits for a quorum before it is ready). */
export async function startCluster(t: Teardown, n: number, opts: ClusterOptions = {}): Promise<Cluster> {
  const root = await tempDir(t, 'tributary-cluster-');
  const nodes: ClusterNode[] = [];
  for (let id = 1; id <= n; id++) nodes.push({ id, dataDir: join(root, `node${id}`), clusterPort: await freePort(), proc: null, stopped: false });
  const voters = nodes.map((x) => `${x.id}@127.0.0.1:${x.clusterPort}`).join(',');
  const cluster = new Cluster(t, nodes, voters, opts);
  t.teardown(() => cluster.stopAll());
  await Promise.all(nodes.map((x) => cluster.start(x.id)));
  await cluster.waitForBrokers(nodes.map((x) => x.id), opts.readyTimeoutMs);
  return cluster;
}
