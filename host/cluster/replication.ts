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
//   leader side   every partition this node leads shrinks its ISR by a follower that has not
//                 caught up for `replicaLagTimeMaxMs` and expands it by one that has reached the
//                 high watermark and this leader's epoch start (proposed as partitionChange, the
//                 leader epoch unchanged), counting only fetches made after this leader last saw
//                 that broker fenced or in an older incarnation.
//   follower side one fetch loop per followed partition (ReplicaFetcher): first truncation by
//                 leader epoch (OffsetForLeaderEpoch, KIP-101/279; never to the high watermark),
//                 then Fetch with our node id as replica id from the log end; each answer is
//                 appended as sent and fsynced (the topic's flush policy) before the next fetch
//                 tells the leader the new log end.
//
// Every change is proposed with the partition epoch it was decided on (`basedOn`): a change that
// raced another fails on every node alike and is decided again on the next pass.
//
// Bounds: one fetch in flight per followed partition (bytes per answer ≤ replicaFetchBytesMax),
// on a connection of its own (answers on one connection come in order: partitions sharing one
// would wait behind each other's long polls), and node-wide the answers held or awaited stay
// within replicaFetchBytesTotalMax (fetch-budget.ts: each fetch reserves its largest answer
// first); one proposal per pass per part; the client's connection bounds (in flight, queued,
// response bytes) hold the rest.
import type { Logger } from '../logging.js';
import type { Broker } from '../broker/broker.js';
import type { Partition } from '../broker/partition.js';
import { NO_LEADER, partitionStateOf, type MetadataImage, type PartitionChangeRecord, type MetadataRecord } from '../broker/metadata/records.js';
import { isReplicatedTopic } from '../broker/topic-name.js';
import { randomUUID } from 'node:crypto';
import { ERRORS, errorNameForKafkaCode } from '../errors/index.js';
import { KafkaClient } from '../kafka/client/client.js';
import { CLIENT_APIS } from '../kafka/client/apis.js';
import type { ClusterView } from '../kafka/apis/types.js';
import type { QuorumMetadataStore } from './quorum-metadata-store.js';
import { AppendForwarding, type ForwardOptions } from './forward.js';
import { nodeIdentity } from './node-identity.js';
import { verifyReplicas, type Repairs } from './replica-repair.js';
import { FetchBudget, replicaFetchAnswerBytesMax } from './fetch-budget.js';

export interface ReplicationOptions {
  nodeId: number;
  /** This node's Kafka listener as other nodes and clients reach it. */
  kafkaHost: string;
  kafkaPort: number;
  sessionTimeoutMs: number;
  replicaLagTimeMaxMs: number;
  replicaFetchWaitMs: number;
  replicaFetchBytesMax: number;
  /** Node-wide bound on replica fetch answers held or awaited (fetch-budget.ts). */
  replicaFetchBytesTotalMax: number;
  /** How often the controller and the ISR checks run. */
  checkIntervalMs: number;
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

/** A fetch's long poll while other fetches wait for the fetch budget (fetch-budget.ts). */
const CONTENDED_FETCH_WAIT_MS = 50;

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
  private readonly fetchers = new Map<Partition, ReplicaFetcher>();
  /** Damaged replicas found at start: each fetcher cuts its log there before its first fetch. */
  private repairs: Repairs = new Map();
  /**
   * Each fetcher has a client (one connection to its leader) of its own: a broker answers a
   * connection's requests in order, so two partitions' long-polling fetches on one connection
   * would hold each other's answers back by up to replicaFetchWaitMs (acks=all waiting on it).
   * Bound: one connection per followed partition (fetch sessions, KIP-227, are not done).
   */
  private readonly fetchClientOptions: ConstructorParameters<typeof KafkaClient>[0];
  private readonly forwardClient: KafkaClient;
  private readonly fetchBudget: FetchBudget;
  private readonly forwarding: AppendForwarding;
  private timer: NodeJS.Timeout | undefined;
  private controllerSinceMs = 0;
  /**
   * When this node last saw each broker fenced or in a new incarnation (one entry per registered
   * broker): a follower's fetch state from before then (it stopped, restarted, may have lost or
   * cut data) never brings it back into an ISR; only a fetch made after that does.
   */
  private readonly fetchesCountFromMs = new Map<number, number>();
  /** The broker epoch this node last saw for each broker (a change: a new incarnation registered). */
  private readonly brokerEpochSeen = new Map<number, number>();
  /** This process's incarnation: its registration tells the controller it is a new broker epoch. */
  private readonly incarnation = randomUUID();
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
      responseBytesMax: replicaFetchAnswerBytesMax(o.replicaFetchBytesMax),
      reconnectBackoffMs: 50,
      reconnectBackoffMaxMs: 1000,
    };
    this.fetchBudget = new FetchBudget(o.replicaFetchBytesTotalMax);
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
    await this.forwardClient.close();
    await Promise.allSettled(stopped);
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
      const running = this.fetchers.get(p);
      const wanted = p.role === 'follower' && p.leaderId !== NO_LEADER && p.leaderId !== this.o.nodeId && p.replicas.includes(this.o.nodeId) && !p.retired;
      if (running && wanted && running.leaderId === p.leaderId && running.epoch === p.leaderEpoch) continue;
      const previous = running?.stop() ?? Promise.resolve();
      if (running) this.fetchers.delete(p);
      if (!wanted) continue;
      const fetcher = new ReplicaFetcher(this.broker, this.store, new KafkaClient(this.fetchClientOptions), p, this.o, this.log, this.repairs, this.fetchBudget);
      this.fetchers.set(p, fetcher);
      // The old fetcher's append finishes before the new one truncates.
      fetcher.start(previous);
    }
  }

  // --- periodic checks: controller and leader side ------------------------------------------

  private async check(): Promise<void> {
    if (this.checking || this.closed) return;
    this.checking = true;
    try {
      for (const [p, f] of this.fetchers) if (p.retired) (void f.stop(), this.fetchers.delete(p));
      for (const p of this.repairs.keys()) if (p.retired) this.repairs.delete(p);
      if (this.store.quorum.isLeader) await this.control();
      else this.controllerSinceMs = 0;
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
    if (records.length === 0) return;
    this.log.info({ changes: records.map(describeRecord) }, 'controller: broker liveness and partition leadership changed');
    await this.store.propose(records);
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

/**
 * One followed partition: truncate by leader epoch, then fetch from the log end until stopped
 * (a new leader or epoch starts a new fetcher). Errors back off and retry; a fenced or unknown
 * epoch waits for this node's metadata to catch up (which replaces the fetcher).
 */
class ReplicaFetcher {
  readonly leaderId: number;
  readonly epoch: number;
  private readonly abort = new AbortController();
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly broker: Broker,
    private readonly store: QuorumMetadataStore,
    private readonly client: KafkaClient,
    private readonly p: Partition,
    private readonly o: ReplicationOptions,
    private readonly log: Logger,
    private readonly repairs: Repairs,
    private readonly budget: FetchBudget,
  ) {
    this.leaderId = p.leaderId;
    this.epoch = p.leaderEpoch;
  }

  start(after: Promise<void>): void {
    this.running = after.then(() => this.run()).catch((err: unknown) => this.log.warn({ err: (err as Error).message, tp: this.name }, 'replica fetcher stopped'));
  }

  /** Stops the loop; closing its own client ends a fetch parked at the leader at once. */
  stop(): Promise<void> {
    this.abort.abort();
    const running = this.running;
    return this.client.close().then(() => running);
  }

  private get name(): string {
    return `${this.p.tp.topic}-${this.p.tp.partition}`;
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted || this.p.retired || this.p.leaderEpoch !== this.epoch || this.p.role !== 'follower';
  }

  private async run(): Promise<void> {
    let truncated = false;
    let failures = 0;
    while (!this.stopped) {
      try {
        if (!truncated) truncated = await this.truncate();
        else if (!(await this.fetchOnce())) truncated = false;
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 50 === 0) this.log.warn({ err: (err as Error).message, tp: this.name, leader: this.leaderId }, 'replica fetch failed; retrying');
        await sleep(Math.min(1000, 50 * failures), this.abort.signal);
      }
    }
  }

  private async leaderConnection() {
    const b = this.store.image().brokers.get(this.leaderId);
    if (!b) throw new Error(`leader ${this.leaderId} is not registered yet`);
    return this.client.connection(`${b.host}:${b.port}`);
  }

  /** A replica found damaged at start (replica-repair.ts): cut at its first bad batch, once, before fetching the rest. */
  private async cutDamage(): Promise<void> {
    const at = this.repairs.get(this.p);
    if (at === undefined) return;
    const before = this.p.log.logEndOffset;
    if (at < before) await this.broker.truncateReplica(this.p.tp, at, 'damaged');
    this.repairs.delete(this.p);
    this.log.warn({ tp: this.name, from: before, to: this.p.log.logEndOffset, leader: this.leaderId, epoch: this.epoch }, 'damaged replica cut at its first bad batch; refetching the rest from the leader');
  }

  /** KIP-101/279: ask the leader where our latest epoch ends; cut our log there. True once done. */
  private async truncate(): Promise<boolean> {
    const log = this.p.log;
    await this.cutDamage();
    const latest = log.leaderEpochEntries().at(-1)?.epoch ?? -1;
    if (latest < 0) return true; // an empty log has nothing to disagree about
    const conn = await this.leaderConnection();
    const res = await conn.request(CLIENT_APIS.offsetForLeaderEpoch, {
      replicaId: this.o.nodeId,
      topics: [{ topic: this.p.tp.topic, partitions: [{ partition: this.p.tp.partition, currentLeaderEpoch: this.epoch, leaderEpoch: latest }] }],
    });
    const r = res.topics?.[0]?.partitions?.[0] as { errorCode: number; leaderEpoch: number; endOffset: number } | undefined;
    if (!r) throw new Error('OffsetForLeaderEpoch answer names no partition');
    if (r.errorCode !== ERRORS.NONE.kafka) throw new Error(`OffsetForLeaderEpoch: ${errorNameForKafkaCode(r.errorCode)}`);
    // The leader knows no epoch ≤ ours: nothing of ours was ever in its log from then on.
    let target = r.leaderEpoch < 0 ? log.logStartOffset : r.endOffset;
    // KIP-279: the leader's last epoch ≤ ours is older than ours: end where we ended that epoch too.
    if (r.leaderEpoch >= 0 && r.leaderEpoch < latest) target = Math.min(target, log.endOffsetForEpoch(r.leaderEpoch).endOffset);
    if (target < log.logEndOffset) {
      const before = log.logEndOffset;
      await this.broker.truncateReplica(this.p.tp, target);
      this.log.warn({ tp: this.name, from: before, to: target, leader: this.leaderId, epoch: this.epoch }, 'replica truncated to where it agrees with the leader (leader epoch)');
    }
    return true;
  }

  /**
   * Our log ends below the leader's log start: retention deleted on the leader what we never
   * fetched. Kafka's truncateFullyAndStartAt: everything we hold goes (it is all below the
   * leader's log start, so no one reads it from us any more) and the log restarts empty at the
   * leader's log start; the next fetch asks from there and we rejoin the ISR once caught up.
   */
  private async resetToLeaderStart(logEndOffset: number, leaderLogStartOffset: number): Promise<void> {
    if (this.stopped) return;
    const ours = this.p.log.logStartOffset;
    await this.broker.truncateReplica(this.p.tp, leaderLogStartOffset, 'log-start');
    this.log.warn(
      { tp: this.name, logStartOffset: ours, logEndOffset, leaderLogStartOffset, leader: this.leaderId, epoch: this.epoch },
      "replica behind the leader's log start: its log was reset to start at the leader's log start",
    );
  }

  /** One fetch and its append. False when the log must be truncated again (our end is past the leader's). */
  private async fetchOnce(): Promise<boolean> {
    // The answer's room is reserved before the fetch goes out and kept until it is appended.
    const release = await this.budget.reserve(replicaFetchAnswerBytesMax(this.o.replicaFetchBytesMax), this.abort.signal);
    try {
      return await this.fetchReserved();
    } finally {
      release();
    }
  }

  private async fetchReserved(): Promise<boolean> {
    const conn = await this.leaderConnection();
    const fetchOffset = this.p.log.logEndOffset;
    const res = await conn.request(CLIENT_APIS.fetch, {
      replicaId: this.o.nodeId,
      // Others wait for the budget: park briefly, so an idle partition does not hold their room.
      maxWaitMs: this.budget.contended ? Math.min(this.o.replicaFetchWaitMs, CONTENDED_FETCH_WAIT_MS) : this.o.replicaFetchWaitMs,
      minBytes: 1,
      maxBytes: this.o.replicaFetchBytesMax,
      isolationLevel: 0,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [{ topic: this.p.tp.topic, partitions: [{ partition: this.p.tp.partition, currentLeaderEpoch: this.epoch, fetchOffset, lastFetchedEpoch: -1, logStartOffset: -1, partitionMaxBytes: this.o.replicaFetchBytesMax }] }],
      forgottenTopicsData: [],
      rackId: '',
    });
    const r = res.responses?.[0]?.partitions?.[0] as { errorCode: number; highWatermark: number; logStartOffset: number; records: Uint8Array | null } | undefined;
    if (!r) throw new Error('Fetch answer names no partition');
    if (r.errorCode === ERRORS.OFFSET_OUT_OF_RANGE.kafka) {
      if (fetchOffset < r.logStartOffset) await this.resetToLeaderStart(fetchOffset, r.logStartOffset);
      return fetchOffset < r.logStartOffset;
    }
    if (r.errorCode !== ERRORS.NONE.kafka) throw new Error(`Fetch: ${errorNameForKafkaCode(r.errorCode)}`);
    if (this.stopped) return true;
    await this.broker.appendAsFollower(this.p.tp, r.records ?? new Uint8Array(0), r.highWatermark, this.epoch);
    return true;
  }
}
