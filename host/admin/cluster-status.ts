// `tributary cluster status [--node HOST:PORT] [--json]`: the metadata quorum as one node sees
// it, read over that node's inter-node listener (a status handshake, host/cluster/tcp-transport.ts):
// the voters and whether this node is connected to each, the controller, the term, the commit
// and applied indexes, and — asked of the controller — each voter's match index and lag; then
// the registered brokers (live or fenced) and each replicated partition's leader, leader epoch,
// replicas and in-sync replicas (under-replicated ones marked), and each follower's lag: only a
// partition's leader knows it (host/cluster/replica-lag.ts), so the command also asks every other
// node for the partitions it leads; a node it cannot reach shows `?` for its partitions.
// Exit codes: 0 ok, 2 bad usage, 3 the node could not be reached.
import { readStatus } from '../cluster/tcp-transport.js';
import { parseHostPort } from '../cluster/options.js';
import type { QuorumStatus } from '../cluster/quorum.js';
import type { ClusterStatus } from '../cluster/start.js';
import type { replicationStatus } from '../cluster/replication.js';
import { describeFollowerLag, type LedPartitionLag } from '../cluster/replica-lag.js';

const USAGE = 'usage: tributary cluster status [--node HOST:PORT] [--json] [--timeout-ms N]\n  --node  a node\'s cluster.listen address (default 127.0.0.1:9093, or TRIBUTARY_CLUSTER_NODE)';
const STATUS_TIMEOUT_MS = 5000;

/** What a node answered about the partitions it leads (`error`: it could not be asked). */
interface NodeLag {
  nodeId: number;
  led?: LedPartitionLag[];
  ledTotal?: number;
  error?: string;
}

type FullStatus = ClusterStatus & Partial<QuorumStatus> & Partial<ReplicationStatus> & { replicaLag?: { led: LedPartitionLag[]; ledTotal: number }; replicaLagOfNodes?: NodeLag[] };

function render(s: FullStatus): string {
  const lines = [
    `cluster ${s.clusterId}: asked node ${s.nodeId} (${s.role ?? 'starting'}), controller ${s.leader ?? 'none'}, term ${s.term ?? '-'}`,
    `commit index ${s.commitIndex ?? '-'}, applied ${s.appliedIndex ?? '-'}, last ${s.lastIndex ?? '-'}, snapshot ${s.snapshotIndex ?? '-'}`,
    'node  address                 connected  match    lag',
  ];
  const progress = new Map((s.voters ?? []).map((v) => [v.id, v]));
  for (const n of s.nodes) {
    const p = progress.get(n.id);
    const connected = n.connected === null ? 'self' : n.connected ? 'yes' : 'no';
    lines.push(`${String(n.id).padEnd(6)}${n.address.padEnd(24)}${connected.padEnd(11)}${String(p?.matchIndex ?? '-').padEnd(9)}${p?.lag ?? '-'}${n.id === s.leader ? '  (controller)' : ''}`);
  }
  if (s.role !== 'leader') lines.push('(match and lag are known to the controller: ask it for them)');
  return [...lines, ...renderReplication(s)].join('\n');
}

type ReplicationStatus = ReturnType<typeof replicationStatus>;

/** Brokers (fenced or not) and each replicated partition's leader, epoch, replicas and ISR. */
function renderReplication(s: FullStatus): string[] {
  if (!s.brokers) return [];
  const reporters = new Map((s.replicaLagOfNodes ?? []).map((n) => [n.nodeId, n]));
  const lagOf = (topic: string, partition: number, leader: number): string => {
    const r = reporters.get(leader);
    if (!r) return '-';
    if (r.error) return '? (leader not reached)';
    const led = r.led?.find((l) => l.topic === topic && l.partition === partition);
    return led ? led.followers.map(describeFollowerLag).join(', ') || '-' : '?';
  };
  const lines = ['', 'broker  kafka listener          state'];
  for (const b of s.brokers) lines.push(`${String(b.nodeId).padEnd(8)}${`${b.host}:${b.port}`.padEnd(24)}${b.fenced ? 'fenced' : 'live'}`);
  lines.push('', 'partition                       leader  epoch  replicas  isr       follower lag (offsets behind, since caught up)');
  for (const p of s.partitions ?? []) {
    const underReplicated = p.isr.length < p.replicas.length ? '  (under-replicated)' : '';
    lines.push(`${`${p.topic}-${p.partition}`.padEnd(32)}${String(p.leader).padEnd(8)}${String(p.leaderEpoch).padEnd(7)}${p.replicas.join(',').padEnd(10)}${p.isr.join(',').padEnd(10)}${lagOf(p.topic, p.partition, p.leader)}${underReplicated}`);
  }
  if ((s.partitionsTotal ?? 0) > (s.partitions?.length ?? 0)) lines.push(`(${s.partitionsTotal! - s.partitions!.length} more partitions not listed)`);
  return lines;
}

export async function runClusterCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'status') {
    process.stderr.write(`tributary cluster: unknown subcommand "${sub ?? ''}"\n${USAGE}\n`);
    return 2;
  }
  let node = env.TRIBUTARY_CLUSTER_NODE ?? '127.0.0.1:9093';
  let json = false;
  let timeoutMs = STATUS_TIMEOUT_MS;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--json') json = true;
    else if (a === '--node' && i + 1 < rest.length) node = rest[++i]!;
    else if (a === '--timeout-ms' && /^\d+$/.test(rest[i + 1] ?? '')) timeoutMs = Number(rest[++i]);
    else {
      process.stderr.write(`tributary cluster status: unknown or incomplete option ${a}\n${USAGE}\n`);
      return 2;
    }
  }
  let address;
  try {
    address = parseHostPort('listen', node);
  } catch (err) {
    process.stderr.write(`tributary cluster status: --node ${(err as Error).message.replace(/^cluster\.listen /, '')}\n`);
    return 2;
  }
  let status: FullStatus;
  try {
    status = (await readStatus(address, timeoutMs)) as FullStatus;
  } catch (err) {
    process.stderr.write(`tributary cluster status: ${(err as Error).message}\n`);
    return 3;
  }
  if (status.brokers) status.replicaLagOfNodes = await lagOfEveryNode(status, timeoutMs);
  process.stdout.write((json ? JSON.stringify(status, null, 2) : render(status)) + '\n');
  return 0;
}

/** The follower lag every node reports for the partitions it leads: the asked node's own, the others' asked in parallel. */
async function lagOfEveryNode(s: FullStatus, timeoutMs: number): Promise<NodeLag[]> {
  const asked = s.nodeId as number;
  return Promise.all(
    s.nodes.map(async (n): Promise<NodeLag> => {
      if (n.id === asked) return s.replicaLag ? { nodeId: n.id, ...s.replicaLag } : { nodeId: n.id, error: 'replication not running yet' };
      try {
        const other = (await readStatus(parseHostPort('listen', n.address), timeoutMs)) as FullStatus;
        return other.replicaLag ? { nodeId: n.id, ...other.replicaLag } : { nodeId: n.id, error: 'replication not running yet' };
      } catch (err) {
        return { nodeId: n.id, error: (err as Error).message };
      }
    }),
  );
}
