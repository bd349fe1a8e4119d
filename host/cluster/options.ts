// The `cluster` config section: who this node is among the metadata quorum's voters, where it
// listens for the other voters, and the quorum's timing and bounds. With `nodeId` null (or no
// voters) the node is today's single node, unchanged. The cluster id the handshake checks is
// `kafka.clusterId` (one name for one cluster). See docs/cluster.md.
import { anyOfText, boolean, integer, int32, list, orNull, section, string, type SectionSchema } from '../config/schema.js';
import { tlsSchema, type TlsOptions } from '../config/listener.js';
import type { HostPort } from './tcp-transport.js';

/** Headroom above replicaFetchBytesMax an answer may use: a first batch larger than the fetch's maxBytes comes whole (KIP-74). */
export const FETCH_ANSWER_HEADROOM_BYTES = 1024 * 1024;

/**
 * The largest replica fetch answer the fetch client accepts, and what one fetch reserves
 * (fetch-budget.ts): the answer's bound over all its partitions (replicaFetchResponseBytesMax)
 * plus room for a first batch larger than that.
 */
export function replicaFetchAnswerBytesMax(replicaFetchResponseBytesMax: number): number {
  return replicaFetchResponseBytesMax + FETCH_ANSWER_HEADROOM_BYTES;
}

export interface ClusterOptions {
  nodeId: number | null;
  listen: string | null;
  voters: string[] | string;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  proposalsPendingMax: number;
  proposalTimeoutMs: number;
  snapshotEntries: number;
  frameBytesMax: number;
  sendQueueMax: number;
  sendQueueBytesMax: number;
  reconnectBackoffMsMin: number;
  reconnectBackoffMsMax: number;
  connectionsMax: number;
  handshakeTimeoutMs: number;
  joinTimeoutMs: number;
  raftLogRewriteBytes: number;
  tls: TlsOptions | null;
  sessionTimeoutMs: number;
  replicaLagTimeMaxMs: number;
  replicaFetchWaitMs: number;
  replicaFetchBytesMax: number;
  replicaFetchResponseBytesMax: number;
  replicaFetchBytesTotalMax: number;
  replicationCheckIntervalMs: number;
  replicaVerifyOnStart: boolean;
  leaderRebalanceIntervalMs: number;
  forwardTimeoutMs: number;
  forwardRequestTimeoutMs: number;
  forwardRetriesMax: number;
  forwardRetryBackoffMs: number;
  forwardInFlightMax: number;
  forwardQueuedMax: number;
  groupProxyMembersMax: number;
}

const MiB = 1024 * 1024;

export const defaultClusterOptions: ClusterOptions = {
  nodeId: null, // null = no cluster: a single node exactly as before; set an integer ≥ 1, one per voter
  listen: null, // this node's inter-node listener, host:port (required with nodeId; it must match this node's entry in voters)
  voters: [], // every voter as id@host:port (this node included), a list or one comma-separated string; the same on every node
  tickMs: 100, // one Raft tick: heartbeats go every heartbeatTicks ticks, elections start after electionTicks..2·electionTicks ticks
  electionTicks: 10, // 1–2 s without a controller before a follower campaigns (at tickMs 100): well above a loopback or LAN round trip, below the failover target
  heartbeatTicks: 1, // a heartbeat every tick (100 ms): ten missed in a row before an election, so one lost packet costs nothing
  proposalsPendingMax: 256, // metadata proposals waiting per node: topic admin is rare; a flood is refused (LIMIT_EXCEEDED) instead of queued
  proposalTimeoutMs: 10_000, // a proposal not committed by then answers REQUEST_TIMED_OUT (it may still commit): several elections' worth
  snapshotEntries: 1000, // applied entries between snapshots of the metadata image: a restart replays at most this many; a snapshot is one image write
  frameBytesMax: 4 * MiB, // largest inter-node frame: a snapshot travels whole in one frame, ~10,000 topics' metadata
  sendQueueMax: 1024, // frames waiting per peer; past it the oldest is dropped (Raft resends): a dead peer costs bounded memory
  sendQueueBytesMax: 8 * MiB, // bytes waiting per peer, the same rule: two full-size snapshots
  reconnectBackoffMsMin: 50, // first redial after a lost connection: a restarted peer is back within one election timeout
  reconnectBackoffMsMax: 2000, // redials of a long-dead peer settle at one every 2 s
  connectionsMax: 32, // inbound connections held at once: one per peer (two while a peer reconnects) for up to 5 voters, plus status readers
  handshakeTimeoutMs: 5000, // an inbound connection must say who it is by then: a peer sends its hello at once, a stranger is not kept
  joinTimeoutMs: 60_000, // at start, how long to wait for a controller and to catch up before giving up (the other voters may start later)
  raftLogRewriteBytes: 16 * MiB, // the raft log file is rewritten (compacted on disk) after a snapshot once it is larger than this
  tls: null, // plain TCP between voters; with files, every voter serves and verifies certificates signed by caFile (requestCert: true = mutual)
  sessionTimeoutMs: 2000, // a broker the controller has not heard from for this long is fenced and loses its leaderships (Kafka's broker.session.timeout.ms is 9 s; edge failover targets < 3 s, and a live voter answers every tick)
  replicaLagTimeMaxMs: 10_000, // a follower not caught up for this long leaves the ISR (Kafka's replica.lag.time.max.ms is 30 s): acks=all stalls at most this long on a stuck follower
  replicaFetchWaitMs: 500, // a follower's fetch long-polls the leader this long (Kafka's replica.fetch.wait.max.ms): an idle partition costs two requests a second
  replicaFetchBytesMax: 1 * MiB, // bytes one follower fetch may return per partition (Kafka's replica.fetch.max.bytes): one max.message.bytes batch, one answer's memory
  replicaFetchResponseBytesMax: 1 * MiB, // bytes one follower fetch may return over all its partitions (Kafka's replica.fetch.response.max.bytes): one fetch per leader node carries every partition followed from it, so this is one leader's answer; 1 MiB keeps 4 leaders' answers (with their headroom) inside replicaFetchBytesTotalMax
  replicaFetchBytesTotalMax: 8 * MiB, // replica fetch answers held or awaited at once, node-wide: each leader's fetch reserves replicaFetchResponseBytesMax + 1 MiB (a larger first batch comes whole) before it is sent, so at the defaults the fetches to 4 leader nodes (a 5-voter cluster's peers) all run at once; past that they take turns (a fetch sent while others wait long-polls 50 ms at most). Counted in the memory budget: what is left of the default budget after a 3-voter quorum and an uplink
  replicationCheckIntervalMs: 250, // how often the controller looks for silent brokers and each leader for lagging or caught-up followers
  replicaVerifyOnStart: true, // at start, every replicated partition's segments are read with CRC checks before the node registers: a replica with a damaged batch leaves the ISR and refetches from it (a clean-shutdown open trusts its files, so bit rot would otherwise rejoin the ISR unseen); costs one sequential read of the replicated data per start
  leaderRebalanceIntervalMs: 30_000, // the controller hands each partition's leadership back to its preferred replica (the first of its assignment) when that one is live and in the ISR, at most this often; 0 = never. Without it every restart leaves its leaderships elsewhere and a rolling restart ends with one node leading everything (Kafka checks every 300 s; a cabinet's few nodes rebalance within 30 s of a node catching up)
  forwardTimeoutMs: 15_000, // an MQTT/HTTP/WebSocket append on a node that does not lead the partition waits this long for the leader's answer, retries included: spans a leader's fencing (sessionTimeoutMs) and election several times over
  forwardRequestTimeoutMs: 5000, // one forward attempt unanswered this long (an answer lost on a broken link) is given up and sent again; the resend is deduplicated by the leader (same producer id and sequence), and the leader's wait for its in-sync replicas is cut to half of this so its answer comes in time
  forwardRetriesMax: 30, // attempts after the first when the leader moved, is being elected or is unreachable: with the backoff doubling to 1 s, about the forward timeout
  forwardRetryBackoffMs: 50, // first wait before asking the (new) leader again; doubles per attempt up to 1 s
  forwardInFlightMax: 1, // forwards out at once per partition: 1 keeps one producer's appends in order even across retries (more pipelines, but a retry may then overtake)
  forwardQueuedMax: 1024, // forwards waiting their turn per partition; past it LIMIT_EXCEEDED (the bytes also count against broker.maxPendingAppendBytes)
  groupProxyMembersMax: 1000, // MQTT/WebSocket group members on this node whose coordinator is another node, one connection each; past it a join gets LIMIT_EXCEEDED (1,000 sockets stay well inside a Pi's file limit)
};

export const clusterSchema: SectionSchema = section({
  nodeId: orNull(integer(1, 2_147_483_647)),
  listen: orNull(string(1)),
  voters: anyOfText([list(string(1)), string()], 'a list of id@host:port, or one comma-separated string of them'),
  tickMs: integer(1, 60_000),
  electionTicks: integer(2, 10_000),
  heartbeatTicks: integer(1, 10_000),
  proposalsPendingMax: integer(1, 1_000_000),
  proposalTimeoutMs: int32(1),
  snapshotEntries: integer(1, 100_000_000),
  frameBytesMax: integer(1024, 1024 * MiB),
  sendQueueMax: integer(1, 1_000_000),
  sendQueueBytesMax: integer(1024),
  reconnectBackoffMsMin: int32(1),
  reconnectBackoffMsMax: int32(1),
  connectionsMax: integer(2, 10_000),
  handshakeTimeoutMs: int32(1),
  joinTimeoutMs: int32(1),
  raftLogRewriteBytes: integer(1024),
  tls: tlsSchema,
  sessionTimeoutMs: int32(1),
  replicaLagTimeMaxMs: int32(1),
  replicaFetchWaitMs: integer(0, 60_000),
  replicaFetchBytesMax: integer(1024, 1024 * MiB),
  replicaFetchResponseBytesMax: integer(1024, 1024 * MiB),
  replicaFetchBytesTotalMax: integer(1024, 64 * 1024 * MiB),
  replicationCheckIntervalMs: integer(10, 60_000),
  replicaVerifyOnStart: boolean(),
  leaderRebalanceIntervalMs: integer(0, 86_400_000),
  forwardTimeoutMs: integer(1, 600_000),
  forwardRequestTimeoutMs: integer(100, 600_000),
  forwardRetriesMax: integer(0, 10_000),
  forwardRetryBackoffMs: integer(1, 60_000),
  forwardInFlightMax: integer(1, 1024),
  forwardQueuedMax: integer(0, 1_000_000),
  groupProxyMembersMax: integer(0, 100_000),
});

export interface Voter {
  id: number;
  address: HostPort;
}

/** What a configured cluster resolves to; null = no cluster. */
export interface ResolvedCluster {
  nodeId: number;
  listen: HostPort;
  voters: Voter[];
  options: ClusterOptions;
}

/** `host:port` (IPv6 in brackets) → HostPort, or throws naming `key`. */
export function parseHostPort(key: string, text: string): HostPort {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`cluster.${key} "${text}" must be host:port with a port from 1 to 65535`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Parses `cluster.voters`; every error names the key and the entry at fault. */
export function parseVoters(value: string[] | string): Voter[] {
  const items = (Array.isArray(value) ? value : value.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  const voters: Voter[] = [];
  for (const item of items) {
    const at = item.indexOf('@');
    const idText = at > 0 ? item.slice(0, at) : '';
    if (!/^\d+$/.test(idText) || Number(idText) < 1) throw new Error(`cluster.voters entry "${item}" must be id@host:port with an integer id ≥ 1`);
    const id = Number(idText);
    if (voters.some((v) => v.id === id)) throw new Error(`cluster.voters names node ${id} twice`);
    voters.push({ id, address: parseHostPort('voters', item.slice(at + 1)) });
  }
  return voters;
}

/** Checks the section as a whole; null when no cluster is configured. */
export function resolveClusterOptions(o: ClusterOptions): ResolvedCluster | null {
  const voters = parseVoters(o.voters);
  if (o.nodeId === null && voters.length === 0) return null;
  if (o.nodeId === null) throw new Error('cluster.nodeId must be set when cluster.voters is (an integer ≥ 1, this node\'s id among the voters)');
  if (voters.length === 0) throw new Error(`cluster.voters must list every voter (id@host:port) when cluster.nodeId is set`);
  const self = voters.find((v) => v.id === o.nodeId);
  if (!self) throw new Error(`cluster.nodeId ${o.nodeId} is not among cluster.voters (${voters.map((v) => v.id).join(', ')})`);
  if (o.listen === null) throw new Error('cluster.listen must be set when cluster.nodeId is (host:port of this node\'s inter-node listener)');
  const listen = parseHostPort('listen', o.listen);
  if (listen.port !== self.address.port) throw new Error(`cluster.listen port ${listen.port} differs from this node's entry in cluster.voters (${o.nodeId}@${self.address.host}:${self.address.port})`);
  if (o.heartbeatTicks >= o.electionTicks) throw new Error(`cluster.heartbeatTicks (${o.heartbeatTicks}) must be below cluster.electionTicks (${o.electionTicks})`);
  if (o.reconnectBackoffMsMin > o.reconnectBackoffMsMax) throw new Error(`cluster.reconnectBackoffMsMin (${o.reconnectBackoffMsMin}) must not exceed cluster.reconnectBackoffMsMax (${o.reconnectBackoffMsMax})`);
  if (o.sendQueueBytesMax < o.frameBytesMax) throw new Error(`cluster.sendQueueBytesMax (${o.sendQueueBytesMax}) must hold at least one frame of cluster.frameBytesMax (${o.frameBytesMax})`);
  if (o.replicaFetchBytesTotalMax < replicaFetchAnswerBytesMax(o.replicaFetchResponseBytesMax)) {
    throw new Error(`cluster.replicaFetchBytesTotalMax (${o.replicaFetchBytesTotalMax}) must hold one replica fetch answer: cluster.replicaFetchResponseBytesMax + 1 MiB = ${replicaFetchAnswerBytesMax(o.replicaFetchResponseBytesMax)} bytes`);
  }
  if (o.forwardRequestTimeoutMs > o.forwardTimeoutMs) throw new Error(`cluster.forwardRequestTimeoutMs (${o.forwardRequestTimeoutMs}) must not exceed cluster.forwardTimeoutMs (${o.forwardTimeoutMs}): one attempt lives inside the whole forward`);
  // Each voter dials the others and must verify what answers: a CA to verify against is required.
  if (o.tls && !o.tls.caFile) throw new Error('cluster.tls.caFile must be set: every voter verifies the others\' certificates against it');
  return { nodeId: o.nodeId, listen, voters, options: o };
}
