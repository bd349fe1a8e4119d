// Starting a node's part of the metadata quorum: the TCP transport among the voters, the
// Raft-backed metadata store on it, and the wait until a controller is elected and this node has
// applied everything committed before it started (so the broker opens the partitions the cluster
// has, and its own internal-topic creations find the others' first).
import type { Logger } from '../logging.js';
import type { ResolvedCluster } from './options.js';
import { QuorumMetadataStore } from './quorum-metadata-store.js';
import { TcpTransport } from './tcp-transport.js';
import { replicationStatus } from './replication.js';

export interface ClusterStatus {
  clusterId: string;
  nodes: Array<{ id: number; address: string; connected: boolean | null }>;
  [key: string]: unknown;
}

export async function openClusterMetadata(
  cluster: ResolvedCluster,
  deps: { dataDir: string; clusterId: string; logger: Logger; onTransport?: (t: TcpTransport) => void },
): Promise<QuorumMetadataStore> {
  const o = cluster.options;
  const logger = deps.logger.child({ component: 'cluster' });
  let store: QuorumMetadataStore | undefined;
  const transport = await TcpTransport.start({
    clusterId: deps.clusterId,
    nodeId: cluster.nodeId,
    listen: cluster.listen,
    peers: new Map(cluster.voters.filter((v) => v.id !== cluster.nodeId).map((v) => [v.id, v.address])),
    frameBytesMax: o.frameBytesMax,
    sendQueueMax: o.sendQueueMax,
    sendQueueBytesMax: o.sendQueueBytesMax,
    reconnectBackoffMsMin: o.reconnectBackoffMsMin,
    reconnectBackoffMsMax: o.reconnectBackoffMsMax,
    connectionsMax: o.connectionsMax,
    handshakeTimeoutMs: o.handshakeTimeoutMs,
    tls: o.tls,
    logger,
    status: (): ClusterStatus => ({
      clusterId: deps.clusterId,
      nodes: cluster.voters.map((v) => ({ id: v.id, address: `${v.address.host.includes(':') ? `[${v.address.host}]` : v.address.host}:${v.address.port}`, connected: v.id === cluster.nodeId ? null : transport.connected(v.id) })),
      ...(store ? store.quorum.status() : { starting: true }),
      ...(store ? replicationStatus(store.image()) : {}),
      ...(store?.replicaStatus?.() ?? {}),
      transport: transport.stats,
    }),
  });
  deps.onTransport?.(transport); // the node reloads the listener's TLS files on SIGHUP
  try {
    store = await QuorumMetadataStore.open({
      dataDir: deps.dataDir,
      identity: { nodeId: cluster.nodeId, clusterId: deps.clusterId },
      transport,
      logger,
      quorum: {
        voters: cluster.voters.map((v) => v.id),
        electionTicks: o.electionTicks,
        heartbeatTicks: o.heartbeatTicks,
        tickMs: o.tickMs,
        proposalsPendingMax: o.proposalsPendingMax,
        proposalTimeoutMs: o.proposalTimeoutMs,
        snapshotEntries: o.snapshotEntries,
        frameBytesMax: o.frameBytesMax,
        recordBytesMax: o.frameBytesMax,
        storageRewriteBytes: o.raftLogRewriteBytes,
        logger,
        // The raft log cannot be written: voting or leading on would break Raft's promises.
        onFatal: () => process.exit(1),
      },
    });
    logger.info({ nodeId: cluster.nodeId, listen: transport.address }, 'waiting for a controller and catching up on cluster metadata');
    await store.catchUp(o.joinTimeoutMs);
    logger.info({ controller: store.quorum.leader, term: store.quorum.status().term, topics: store.image().topics.size }, 'cluster metadata caught up');
    return store;
  } catch (err) {
    if (store) await store.close();
    else transport.close();
    throw err;
  }
}
