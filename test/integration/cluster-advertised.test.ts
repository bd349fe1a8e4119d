// Purpose: a cluster node registers the Kafka address clients and peers can reach —
// `kafka.advertisedPort` as well as `kafka.advertisedHost` (host/node.ts startReplication) —
// so a node behind a port mapping (here: a TCP proxy on another port in front of each node's
// Kafka listener) is listed there in Metadata and replicas fetch through it. Before the fix the
// registered port was the listener's own, and every node's Metadata named ports nobody mapped.
import t from 'tap';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { haveCommand, tempDir } from '../helpers/index.js';
import { Cluster, freePort, type ClusterNode } from '../helpers/cluster.js';
import { createTopic, waitForIsr } from '../helpers/replicas.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';

/** kcat, without blocking this process: the proxies that carry its connections run here. */
async function kcat(args: string[], input = ''): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn('kcat', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  return { status, stdout, stderr };
}

/** Each node's Kafka listener on its own port, advertised at its proxy's port. */
class MappedCluster extends Cluster {
  readonly kafkaPorts = new Map<number, number>();
  readonly mappedPorts = new Map<number, number>();
  override args(n: ClusterNode, extra: string[] = []): string[] {
    return super.args(n, [`kafka.port=${this.kafkaPorts.get(n.id)}`, `kafka.advertisedPort=${this.mappedPorts.get(n.id)}`, ...extra]);
  }
}

t.test('cluster: a node registers kafka.advertisedPort; Metadata lists it and replicas fetch through it', { timeout: 90_000 }, async (t) => {
  if (!haveCommand('kcat')) {
    if (process.env.CI === 'true') t.fail('required in CI: kcat (Debian kcat)');
    else (t as unknown as { skip(m: string): void }).skip('kcat not installed');
    return;
  }
  const root = await tempDir(t, 'tributary-cluster-mapped-');
  const nodes: ClusterNode[] = [];
  for (let id = 1; id <= 3; id++) nodes.push({ id, dataDir: join(root, `node${id}`), clusterPort: await freePort(), proc: null, stopped: false });
  const c = new MappedCluster(t, nodes, nodes.map((x) => `${x.id}@127.0.0.1:${x.clusterPort}`).join(','), { set: ['cluster.tickMs=50', 'cluster.replicationCheckIntervalMs=100'] });
  // The client id of every connection each proxy carried (Kafka request header v1+: size i32,
  // apiKey i16, apiVersion i16, correlationId i32, clientId i16 length + bytes).
  const clientIds = new Map<number, Set<string>>();
  for (const n of nodes) {
    const kafkaPort = await freePort();
    const seen = new Set<string>();
    clientIds.set(n.id, seen);
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: kafkaPort }, {
      affects: (first) => {
        const len = first.length >= 14 ? first.readInt16BE(12) : -1;
        if (len > 0) seen.add(first.subarray(14, 14 + len).toString('utf8'));
        return false; // records only: every connection passes
      },
    });
    t.teardown(() => proxy.close());
    c.kafkaPorts.set(n.id, kafkaPort);
    c.mappedPorts.set(n.id, proxy.port);
  }
  t.teardown(() => c.stopAll());
  await Promise.all(nodes.map((x) => c.start(x.id)));
  await c.waitForBrokers([1, 2, 3]);

  const listed = JSON.parse((await kcat(['-L', '-J', '-m', '5', '-b', `127.0.0.1:${c.mappedPorts.get(1)}`])).stdout || '{}') as { brokers?: Array<{ id: number; name: string }> };
  const brokers = Object.fromEntries((listed.brokers ?? []).map((b) => [b.id, b.name]));
  t.same(brokers, Object.fromEntries(nodes.map((n) => [n.id, `127.0.0.1:${c.mappedPorts.get(n.id)}`])), `Metadata lists each node at its advertised port: ${JSON.stringify(brokers)}`);

  // Replication goes through the registered addresses: with the advertised ports unregistered the
  // followers would still fetch from the listeners' own ports, so the proxies carry it only now.
  await createTopic(c, 1, 'mapped', 1);
  await waitForIsr(c, 1, 'mapped', [1, 2, 3], 30_000);
  const produced = await kcat(['-P', '-b', `127.0.0.1:${c.mappedPorts.get(1)}`, '-t', 'mapped', '-p', '0', '-X', 'acks=all'], 'one\ntwo\nthree\n');
  t.equal(produced.status, 0, `kcat produced with acks=all through the advertised ports ${produced.stderr.trim()}`);
  const read = await kcat(['-C', '-b', `127.0.0.1:${c.mappedPorts.get(2)}`, '-t', 'mapped', '-p', '0', '-o', 'beginning', '-e', '-q']);
  t.same(read.stdout.trim().split('\n'), ['one', 'two', 'three'], 'the three acknowledged records read back');
  const [meta] = await waitForIsr(c, 1, 'mapped', [1, 2, 3], 30_000);
  const followers = meta!.replicas.filter((id) => id !== meta!.leader);
  const atLeader = clientIds.get(meta!.leader)!;
  t.ok(followers.every((id) => atLeader.has(`tributary-replica-${id}`)), `both followers (${followers.join(', ')}) fetched from leader ${meta!.leader} through its advertised port (client ids seen there: ${[...atLeader].sort().join(', ')})`);
});
