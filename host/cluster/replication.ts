// Data replication in a cluster (issue 11), Kafka's shape in three small parts over the broker's
// partitions and the metadata quorum. Leadership itself lives in the metadata image as records
// (host/broker/metadata/records.ts: partitionChange, brokerRegistration, brokerFence); the
// broker applies it to its partitions (becomeLeader / becomeFollower) and tells us.
//
//   registration  once its Kafka listener is bound, a node registers it (host, port) with an
//                 incarnation of its own (a new one per process start); a registration also
//                 unfences the node. A new incarnation is a new broker epoch (KIP-841/903): the
//                 node leaves every ISR it was in but never empties one (records.ts), and
//                 rejoins only by catching up with a fetch made after its leader saw it.
//   controller    on the metadata quorum's leader only: a broker not heard from (any raft frame:
//                 its heartbeat answers come every tick) for `sessionTimeoutMs` is fenced; every
//                 partition it led gets a new leader from the rest of the ISR (first in assignment
//                 order; never a replica outside the ISR: no unclean election), with the leader
//                 epoch bumped, and it leaves every ISR (unless it is the last member: then the
//                 partition waits leaderless for it). A fenced broker heard again is unfenced, and
//                 a leaderless partition whose ISR holds it elects it.
//                 At most once per `leaderRebalanceIntervalMs` it hands leaderships back to their
//                 preferred replicas where those are live and in the ISR (leader-rebalance.ts).
//   leader side   every partition this node leads shrinks its ISR by a follower that has not
//                 caught up for `replicaLagTimeMaxMs` and expands it by one that has reached the
//                 high watermark and this leader's epoch start (proposed as partitionChange, the
//                 leader epoch unchanged), counting only fetches made after this leader last saw
//                 that broker fenced or in an older incarnation.
//   follower side one fetcher per leader node this node follows partitions from
//                 (replica-fetcher.ts, Kafka's ReplicaFetcherThread): one connection and one
//                 multi-partition Fetch in flight, our node id as replica id, each partition from
//                 its log end after truncation by leader epoch (OffsetForLeaderEpoch, KIP-101/279;
//                 never to the high watermark); the leader serves what it has written before its
//                 own fsync returns (isolation `written`: the two fsyncs overlap), and each answer
//                 is appended as sent and fsynced (the topic's flush policy) before the next fetch
//                 tells the leader the new log end; the high watermark is the lowest of the
//                 leader's fsynced end and those reported ends (partition.ts). A
//                 partition whose leader or epoch changes leaves its fetcher and joins its new
//                 leader's once its last append there has finished.
//
// Every change is proposed with the partition epoch it was decided on (`basedOn`): a change that
// raced another fails on every node alike and is decided again on the next pass.
//
// Bounds: one fetcher, one connection and one fetch in flight per leader node followed (at most
// the other voters); an answer is at most replicaFetchResponseBytesMax (+ 1 MiB for a first
// batch larger than that, KIP-74), and node-wide the answers held or awaited stay within
// replicaFetchBytesTotalMax (fetch-budget.ts: each fetch reserves its largest answer first); one
// proposal per pass per part; the client's connection bounds (in flight, queued, response bytes)
// hold the rest.
import type { Logger } from '../logging.js';
import type { Broker } from '../broker/broker.js';
import type { Partition } from '../broker/partition.js';
import { NO_LEADER, partitionStateOf, type MetadataImage, type PartitionChangeRecord, type MetadataRecord } from '../broker/metadata/records.js';
import { isReplicatedTopic } from '../broker/topic-name.js';
import { randomUUID } from 'node:crypto';
import { KafkaClient } from '../kafka/client/client.js';
import type { ClusterView } from '../kafka/apis/types.js';
import type { QuorumMetadataStore } from './quorum-metadata-store.js';
import { AppendForwarding, type ForwardOptions } from './forward.js';
import { nodeIdentity } from '../security/node-identity.js';
import { verifyReplicas, type Repairs } from './replica-repair.js';
import { FetchBudget, replicaFetchAnswerBytesMax } from './fetch-budget.js';
import { LeaderFetcher } from './replica-fetcher.js';
import { preferredLeaderMoves, RebalanceSchedule } from './leader-rebalance.js';

export interface ReplicationOptions {
  nodeId: number;
  /** This node's Kafka listener as other nodes and clients reach it. */
  kafkaHost: string;
  kafkaPort: number;
  sessionTimeoutMs: number;
  replicaLagTimeMaxMs: number;
  replicaFetchWaitMs: number;
  replicaFetchBytesMax: number;
  /** Bytes one fetch answer may carry over all its partitions (Kafka's replica.fetch.response.max.bytes). */
  replicaFetchResponseBytesMax: number;
  /** Node-wide bound on replica fetch answers held or awaited (fetch-budget.ts). */
  replicaFetchBytesTotalMax: number;
  /** How often the controller and the ISR checks run. */
  checkIntervalMs: number;
  /** The controller hands leaderships back to preferred replicas at most this often; 0 = never (leader-rebalance.ts). */
  leaderRebalanceIntervalMs: number;
  /** This process's incarnation when node.ts registered it early (early-registration.ts); else a new one. */
  incarnation?: string;
  /** CRC-verify every replicated partition at start; a damaged replica leaves the ISR and refetches (replica-repair.ts). */
  verifyOnStart: boolean;
  /** Appends for partitions another node leads (MQTT, HTTP, WebSocket doors): forward.ts. */
  forward: Omit<ForwardOptions, 'nodeId'>;
}

/** The cluster's brokers and controller as Metadata and DescribeCluster list them. */
export function clusterView(store: QuorumMetadataStore): ClusterView {
  return {
    brokers: () => [...store.image().brokers.values()].filter((b) => !b.fenced).map((b) => ({ nodeId: b.nodeId, host: b.host, port: b.port })),
    controllerId: () => store.quorum.leader ?? -1,
  };
}

/** Partitions listed at most in a status answer (one inter-node frame carries it). */
const STATUS_PARTITIONS_MAX = 1000;

/** Brokers and each replicated partition's leader, epoch and ISR, for `tributary cluster status`. */
export function replicationStatus(image: MetadataImage) {
  const partitions = [];
  let total = 0;
  for (const t of image.topics.values()) {
    if (!isReplicatedTopic(t.name)) continue;
    for (let p = 0; p < t.partitions; p++, total++) {
      if (partitions.length >= STATUS_PARTITIONS_MAX) continue;
      const s = partitionStateOf(t, p);
      partitions.push({ topic: t.name, partition: p, leader: s.leader, leaderEpoch: s.leaderEpoch, replicas: [...(t.assignment[p] ?? [])], isr: [...s.isr] });
    }
  }
  return { brokers: [...image.brokers.values()], partitions, partitionsTotal: total };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

export class Replication {
  /** One fetcher per leader node followed (replica-fetcher.ts). */
  private readonly fetchers = new Map<number, LeaderFetcher>();
  /** Which fetcher holds each followed partition. */
  private readonly followedBy = new Map<Partition, LeaderFetcher>();
  /** Fetchers stopping (their last partition left): close() waits for them. */
  private readonly stopping = new Set<Promise<void>>();
  /** Damaged replicas found at start: each fetcher cuts its log there before its first fetch. */
  private repairs: Repairs = new Map();
  /**
   * Each leader's fetcher has a client (one connection to that leader) of its own: a broker
   * answers a connection's requests in order, and the fetcher has one request out at a time.
   */
  private readonly fetchClientOptions: ConstructorParameters<typeof KafkaClient>[0];
  private readonly forwardClient: KafkaClient;
  private readonly fetchBudget: FetchBudget;
  private readonly forwarding: AppendForwarding;
  private timer: NodeJS.Timeout | undefined;
  private controllerSinceMs = 0;
  private readonly rebalance: RebalanceSchedule;
  /**
   * When this node last saw each broker fenced or in a new incarnation (one entry per registered
   * broker): a follower's fetch state from before then (it stopped, restarted, may have lost or
   * cut data) never brings it back into an ISR; only a fetch made after that does.
   */
  private readonly fetchesCountFromMs = new Map<number, number>();
  /** The broker epoch this node last saw for each broker (a change: a new incarnation registered). */
  private readonly brokerEpochSeen = new Map<number, number>();
  /** This process's incarnation: its registration tells the controller it is a new broker epoch (early-registration.ts may have registered it already). */
  private readonly incarnation: string;
  private checking = false;
  private closed = false;
  private unsubscribe: () => void = () => undefined;

  constructor(
    private readonly broker: Broker,
    private readonly store: QuorumMetadataStore,
    private readonly o: ReplicationOptions,
    private readonly log: Logger,
  ) {
    const self = `${o.kafkaHost}:${o.kafkaPort}`;
    this.fetchClientOptions = {
      bootstrap: [self],
      clientId: `tributary-replica-${o.nodeId}`,
      connectTimeoutMs: 3000,
      // A fetch long-polls up to replicaFetchWaitMs: the answer is late only past that.
      requestTimeoutMs: o.replicaFetchWaitMs + 10_000,
      inFlightMax: 64,
      queuedMax: 1024,
      responseBytesMax: replicaFetchAnswerBytesMax(o.replicaFetchResponseBytesMax),
      reconnectBackoffMs: 50,
      reconnectBackoffMaxMs: 1000,
    };
    this.fetchBudget = new FetchBudget(o.replicaFetchBytesTotalMax);
    this.rebalance = new RebalanceSchedule(o.leaderRebalanceIntervalMs);
    this.incarnation = o.incarnation ?? randomUUID();
    const forward = { ...o.forward, nodeId: o.nodeId };
    this.forwardClient = AppendForwarding.client(forward, self, (address) => [...store.image().brokers.values()].find((b) => `${b.host}:${b.port}` === address)?.nodeId);
    this.forwarding = new AppendForwarding(broker, store, this.forwardClient, forward, log.child({ component: 'forward' }));
  }

  /** Registers this broker, follows leadership changes and starts the periodic checks. */
  async start(): Promise<void> {
    // Before any fetcher runs and before registering: a damaged replica leaves the ISR first.
    if (this.o.verifyOnStart) this.repairs = await verifyReplicas(this.broker, this.store, this.o.nodeId, this.log);
    this.unsubscribe = this.broker.onLeadershipChange((changed) => this.leadershipChanged(changed));
    this.leadershipChanged(this.broker.replicatedPartitions().map((x) => x.partition));
    await this.register();
    // Registered: this node's doors may now take writes for partitions others lead.
    this.broker.setAppendForwarder(this.forwarding);
    this.timer = setInterval(() => void this.check(), this.o.checkIntervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.broker.setAppendForwarder(undefined);
    this.forwarding.close();
    this.unsubscribe();
    if (this.timer) clearInterval(this.timer);
    // Each fetcher closes its own client as it stops: a fetch waiting on a dead leader ends with
    // its connection instead of after the request timeout.
    const stopped = [...this.fetchers.values()].map((f) => f.stop());
    this.fetchers.clear();
    this.followedBy.clear();
    await this.forwardClient.close();
    await Promise.allSettled([...stopped, ...this.stopping]);
  }

  /** The registration record, retried while no controller is elected (bounded by the join timeout's caller). */
  private async register(): Promise<void> {
    const record: MetadataRecord = { type: 'brokerRegistration', nodeId: this.o.nodeId, host: this.o.kafkaHost, port: this.o.kafkaPort, incarnation: this.incarnation, nodeKey: nodeIdentity().publicKey };
    for (let attempt = 0; ; attempt++) {
      try {
        await this.store.propose([record]);
        this.log.info({ host: this.o.kafkaHost, port: this.o.kafkaPort, incarnation: this.incarnation, brokerEpoch: this.store.image().brokers.get(this.o.nodeId)?.epoch }, 'broker registered with the controller');
        return;
      } catch (err) {
        if (this.closed || attempt >= 100) throw err;
        await sleep(100);
      }
    }
  }

  // --- follower side ----------------------------------------------------------------------

  private leadershipChanged(changed: Partition[]): void {
    if (this.closed) return;
    for (const p of changed) {
      const holder = this.followedBy.get(p);
      const wanted = p.role === 'follower' && p.leaderId !== NO_LEADER && p.leaderId !== this.o.nodeId && p.replicas.includes(this.o.nodeId) && !p.retired;
      if (holder && wanted && holder.leaderId === p.leaderId && holder.epochOf(p) === p.leaderEpoch) continue;
      // A new leader or epoch replaces the partition's state; its last append finishes first.
      const previous = holder?.remove(p) ?? Promise.resolve();
      this.followedBy.delete(p);
      if (!wanted) continue;
      const fetcher = this.fetcherFor(p.leaderId);
      fetcher.add(p, previous);
      this.followedBy.set(p, fetcher);
    }
    this.stopIdleFetchers();
  }

  private fetcherFor(leaderId: number): LeaderFetcher {
    let fetcher = this.fetchers.get(leaderId);
    if (!fetcher) {
      const context = { broker: this.broker, store: this.store, repairs: this.repairs, budget: this.fetchBudget, log: this.log, options: this.o };
      fetcher = new LeaderFetcher(leaderId, new KafkaClient(this.fetchClientOptions), context);
      this.fetchers.set(leaderId, fetcher);
      fetcher.start();
    }
    return fetcher;
  }

  /** A fetcher left with no partition stops (its connection closes); a later partition of that leader starts a new one. */
  private stopIdleFetchers(): void {
    for (const [leaderId, fetcher] of this.fetchers) {
      if (fetcher.size > 0) continue;
      this.fetchers.delete(leaderId);
      const stopped = fetcher.stop().finally(() => this.stopping.delete(stopped));
      this.stopping.add(stopped);
    }
  }

  /** Retired partitions (topic deleted) leave their fetchers. */
  private dropRetiredPartitions(): void {
    for (const [p, fetcher] of this.followedBy) if (p.retired) (void fetcher.remove(p), this.followedBy.delete(p));
    this.stopIdleFetchers();
  }

  // --- periodic checks: controller and leader side ------------------------------------------

  private async check(): Promise<void> {
    if (this.checking || this.closed) return;
    this.checking = true;
    try {
      this.dropRetiredPartitions();
      for (const p of this.repairs.keys()) if (p.retired) this.repairs.delete(p);
      if (this.store.quorum.isLeader) await this.control();
      else (this.controllerSinceMs = 0, this.rebalance.reset());
      await this.checkIsr();
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'replication check failed; next pass retries');
    } finally {
      this.checking = false;
    }
  }

  /** The controller's pass: fence the silent, unfence the heard, elect leaders from the ISR. */
  private async control(): Promise<void> {
    const now = Date.now();
    // A new controller gives every broker a full session before fencing it.
    if (this.controllerSinceMs === 0) this.controllerSinceMs = now;
    const image = this.store.image();
    const records: MetadataRecord[] = [];
    const fenced = new Set<number>();
    for (const b of image.brokers.values()) {
      const heard = b.nodeId === this.o.nodeId ? now : Math.max(this.store.quorum.lastHeardMs(b.nodeId), this.controllerSinceMs);
      const silent = now - heard > this.o.sessionTimeoutMs;
      if (silent && !b.fenced) records.push({ type: 'brokerFence', nodeId: b.nodeId, fenced: true });
      if (!silent && b.fenced) records.push({ type: 'brokerFence', nodeId: b.nodeId, fenced: false });
      if (silent) fenced.add(b.nodeId);
    }
    records.push(...elections(image, fenced));
    if (records.length === 0) return this.rebalanceLeaders(now, image);
    this.log.info({ changes: records.map(describeRecord) }, 'controller: broker liveness and partition leadership changed');
    await this.store.propose(records);
  }

  /**
   * Leaderships back to preferred replicas (leader-rebalance.ts), on a pass where liveness and
   * elections changed nothing: a pass that fences or elects decides on an image about to move.
   * Alive here is heard by this controller within the session, without a new controller's grace.
   */
  private async rebalanceLeaders(now: number, image: MetadataImage): Promise<void> {
    if (!this.rebalance.due(now, this.controllerSinceMs)) return;
    const alive = (id: number) => id === this.o.nodeId || now - this.store.quorum.lastHeardMs(id) <= this.o.sessionTimeoutMs;
    const moves = preferredLeaderMoves(image, alive);
    if (moves.length > 0) {
      this.log.info({ changes: moves.map(describeRecord) }, 'controller: leaderships handed back to their preferred replicas');
      await this.store.propose(moves);
    }
    this.rebalance.done(now);
  }

  /** Leader side: ISR shrink by lag time, expand by catching up; one proposal per pass. */
  private async checkIsr(): Promise<void> {
    const now = Date.now();
    const image = this.store.image();
    for (const b of image.brokers.values()) {
      const epoch = b.epoch ?? 0;
      // Fenced, or registered again by a new process: what it fetched before is not its log now.
      if (b.fenced || this.brokerEpochSeen.get(b.nodeId) !== epoch) this.fetchesCountFromMs.set(b.nodeId, now);
      this.brokerEpochSeen.set(b.nodeId, epoch);
    }
    const records: PartitionChangeRecord[] = [];
    for (const { partition: p } of this.broker.replicatedPartitions()) {
      if (p.role !== 'leader' || p.retired) continue;
      const t = image.topics.get(p.tp.topic);
      if (!t) continue;
      const s = partitionStateOf(t, p.tp.partition);
      if (s.leader !== this.o.nodeId || s.leaderEpoch !== p.leaderEpoch) continue;
      const isr = nextIsr(p, s.isr, this.o, now, (id, fetchMs) => image.brokers.get(id)?.fenced === false && fetchMs > (this.fetchesCountFromMs.get(id) ?? 0));
      if (isr) records.push({ type: 'partitionChange', topic: p.tp.topic, partition: p.tp.partition, basedOn: s.partitionEpoch, leader: this.o.nodeId, leaderEpoch: s.leaderEpoch, isr });
    }
    if (records.length === 0) return;
    this.log.info({ changes: records.map(describeRecord) }, 'ISR changed by lag');
    await this.store.propose(records);
  }
}

/**
 * The ISR a leader wants now, or null when it stays. Only an `eligible` follower joins: an
 * unfenced broker whose fetch came after it was last seen fenced or in an older incarnation
 * (KIP-841, KIP-903). A stopped
 * follower's last fetch may be recent and at the HW: counting it would undo the controller's
 * removal at every pass, and, once the node restarts, re-admit it on what it held before (a
 * replica that has since cut damaged batches) before it has fetched anything.
 */
export function nextIsr(p: Partition, isr: readonly number[], o: ReplicationOptions, now: number, eligible: (id: number, fetchMs: number) => boolean): number[] | null {
  const lagging = isr.filter((id) => id !== o.nodeId && now - (p.followers.get(id)?.caughtUpMs ?? 0) > o.replicaLagTimeMaxMs);
  const joining = p.replicas.filter((id) => {
    if (isr.includes(id)) return false;
    const f = p.followers.get(id);
    return f !== undefined && eligible(id, f.fetchMs) && f.logEndOffset >= p.highWatermark && f.logEndOffset >= p.epochStartOffset && now - f.fetchMs <= o.replicaLagTimeMaxMs;
  });
  if (lagging.length === 0 && joining.length === 0) return null;
  return [...isr.filter((id) => !lagging.includes(id)), ...joining];
}

/** Partition changes the controller decides: leaders from the ISR for fenced or absent leaders; fenced brokers out of ISRs. */
export function elections(image: MetadataImage, fenced: ReadonlySet<number>): PartitionChangeRecord[] {
  const out: PartitionChangeRecord[] = [];
  for (const t of image.topics.values()) {
    if (!isReplicatedTopic(t.name)) continue;
    for (let p = 0; p < t.partitions; p++) {
      const s = partitionStateOf(t, p);
      const kept = s.isr.filter((id) => !fenced.has(id));
      // The last in-sync replica stays named even when fenced: only it may lead again (no unclean election).
      const isr = kept.length > 0 ? kept : [...s.isr];
      const leaderOk = s.leader !== NO_LEADER && !fenced.has(s.leader);
      let leader = s.leader;
      if (!leaderOk) leader = (t.assignment[p] ?? []).find((id) => kept.includes(id)) ?? NO_LEADER;
      if (leader === s.leader && isr.join() === s.isr.join()) continue;
      const leaderEpoch = leader !== s.leader ? s.leaderEpoch + 1 : s.leaderEpoch;
      out.push({ type: 'partitionChange', topic: t.name, partition: p, basedOn: s.partitionEpoch, leader, leaderEpoch, isr });
    }
  }
  return out;
}

function describeRecord(r: MetadataRecord): string {
  if (r.type === 'partitionChange') return `${r.topic}-${r.partition}: leader ${r.leader} epoch ${r.leaderEpoch} isr [${r.isr.join(',')}]`;
  if (r.type === 'brokerFence') return `node ${r.nodeId} ${r.fenced ? 'fenced' : 'unfenced'}`;
  return r.type;
}
