// The uplink: this site's topics forwarded to a central Kafka-protocol cluster, exactly once and
// in order per partition (docs/uplink.md).
//
// Per source partition one loop, in named steps:
//   target     the target topic (uplink.rename) exists with at least the source's partition
//              count, else it is created with that count (CreateTopics), else the partition is
//              `blocked` with the reason (too few partitions, creation refused) and re-checked
//              every topicScanIntervalMs
//   resume     read-back mode: the target partition's tail is read (host/sync/origin.ts) for the
//              last record this site forwarded from this source partition; the source resumes
//              right after it. A batch the previous run left in flight is settled by the same
//              answer. The mode is logged per target partition. When the scan finds nothing
//              (an empty or new target, or readBackRecordsMax reached) the local checkpoint decides.
//              Transactions mode (uplink.exactlyOnce=auto and the target advertises the
//              transaction APIs): the transactional producer is re-initialised first (a new epoch
//              fences what the previous one left open), and the checkpoint committed in the target
//              with its data (uplink.checkpointTopic) is read back too; the higher one wins. A
//              partition fenced by a newer producer is blocked and looked at again every
//              uplink.fencedRecheckMs (re-initialised when nobody else forwards it)
//   forward    the source is read through the broker's one partition cursor (isolation
//              committed: only what every replica holds) as stored batches. A batch that
//              qualifies goes out raw, its records untouched, the origin headers on its last
//              record only (host/sync/raw-batch.ts); the others are decoded, records carrying
//              this site's origin skipped (loop prevention), the rest stamped with origin headers
//              each and re-encoded. Up to inFlightBatchesMax batches in flight per partition
//              through the idempotent producer; the checkpoint (next source offset) moves after
//              each acknowledged batch. Transactions mode: one transaction per batch, holding the
//              batch and its checkpoint record, committed before the next
// Any failure sends the loop back to `target` after a backoff (the producer has already
// resolved any batch whose outcome was indefinite). Source records removed by retention before
// they were forwarded are a gap: logged with the offsets and counted, never silent. Records the
// byte budget's on-full policy gave up (host/sync/budget.ts: a drop floor per partition, kept in
// the link state) are skipped at `resume` or before the next read, logged with their offsets and
// counted as drops.
//
// The figures beyond records (lag in bytes and seconds, bytes given up, bandwidth in use) are kept
// by host/sync/observe.ts; the codec of re-encoded batches is uplink.compression
// (host/sync/wire-compression.ts).
// In a cluster (host/sync/cluster-gate.ts) a partition's loop runs only on the node that leads it,
// while that node holds its lease with the controller, and starts after a handover delay; on a
// node that does not lead it the partition is shown `led-elsewhere` and counts no lag or backlog.
// Around the loop, in their own modules: the cap and priorities (flow.ts), the reserved lane
// (lanes.ts), the byte and age budget (budget.ts), the liveness alarm (stall.ts), newest-first's
// split and per-range read-back (backfill.ts: `splitReadBack`, `maybeSplit`, `backfillStep` here;
// a split is looked at at every resume and before every read), the fenced partition's re-check
// (fence.ts: `recheckFence` here) and retention gaps counted once (noted-ranges.ts).
//
// Memory: each partition holds at most one read (uplink.readBytesMax, or its first batch when
// larger) and one outgoing batch (a raw copy, or the decoded records of that read re-encoded);
// in transactions mode up to uplink.transactionBatchesMax outgoing batches, within
// uplink.inFlightBytesMax over the link.
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import type { BrokerApi, TopicPartition } from '../broker/api.js';
import { decodeBatch, readBatchHeader, RECORDS, type DecodedRecord } from '../core/index.js';
import { writeFileAtomic } from '../log/io.js';
import { PartitionCursor } from '../broker/cursor.js';
import type { Logger } from '../logging.js';
import type { Counter, Gauge, MetricsRegistry } from '../metrics/registry.js';
import { ERRORS } from '../errors/index.js';
import { KafkaClient } from '../kafka/client/client.js';
import { KafkaClientError, KafkaResponseError } from '../kafka/client/errors.js';
import { IdempotentProducer, partitionKey, rawOutgoing, recordsOutgoing, sleep, type Answer, type OutgoingBatch } from '../kafka/client/producer.js';
import { rawForwardable, withBatchOrigin } from './raw-batch.js';
import { splitBatches } from './batches.js';
import { Downlink, type DownlinkPartitionStatus } from './downlink.js';
import { ByteBound, PriorityGate, TokenBucket } from './flow.js';
import { ReservedLane, ShareFloor } from './lanes.js';
import { StallWatch } from './stall.js';
import { drainOrderOf, scanBackSplit, type Backfill, type DrainOrder } from './backfill.js';
import { LinkBudget, type BudgetPartition } from './budget.js';
import { carriesOrigin, checkpointRecord, readBack, targetTail, withOrigin, type Origin, type ReadBackResult } from './origin.js';
import { ProducerFencedError, TransactionalProducer } from '../kafka/client/transactions.js';
import { ensureCheckpointTopic, initProducer } from './txn-link.js';
import { TxnBatch } from './txn-batch.js';
import { FenceRecheck } from './fence.js';
import { NotedRanges } from './noted-ranges.js';
import { policyOf, targetTopicOf, topicMatches, type OnFullPolicy, type ResolvedUplink } from './options.js';
import { LinkStateTable, type LinkStateStore } from './state-table.js';
import { rowsShown, UplinkObserver, type LinkFigures, type PartitionFigures } from './observe.js';
import { codecOf, reencodedOutgoing } from './wire-compression.js';
import { clientSasl } from './sasl.js';
import { LeadershipGate, type GatedLink, type UplinkClusterView } from './cluster-gate.js';

/** `led-elsewhere`, `no-lease` and `handover` occur in a cluster only (host/sync/cluster-gate.ts). */
export type PartitionLinkState = 'starting' | 'resolving' | 'forwarding' | 'idle' | 'blocked' | 'retrying' | 'stopped' | 'led-elsewhere' | 'no-lease' | 'handover';

export interface PartitionStatus extends PartitionFigures {
  source: TopicPartition;
  target: TopicPartition;
  state: PartitionLinkState;
  mode: 'read-back' | 'transactions';
  /** Next source offset to forward. */
  position: number;
  /** Records in the source not yet forwarded nor dropped (high watermark − the first unforwarded offset). */
  lagRecords: number;
  /** Bytes stored and not yet forwarded (nor dropped): what counts against uplink.backlogBytesMax. */
  backlogBytes: number;
  /** The topic's on-full policy, and the records it gave up since start. */
  onFull: OnFullPolicy;
  droppedRecords: number;
  recordsSent: number;
  /** Why the partition is blocked or retrying. */
  reason: string | null;
  /** Seconds forwarding has not moved while records wait (0: not stalled; uplink.stallAlarmSec). */
  stalledForSec: number;
}

export interface UplinkStatus extends LinkFigures {
  site: string;
  bootstrap: string[];
  /** `standby`: in a cluster, this node forwards none of the partitions now (their leaders do). */
  link: 'up' | 'down' | 'stopped' | 'standby';
  bytesSent: number;
  /** Bytes not yet forwarded over every partition, and the budget (0 = none). */
  backlogBytes: number;
  backlogBytesMax: number;
  /** At most uplink.statusPartitionsMax rows (blocked or retrying first, then the largest lag in bytes); the totals above cover all. */
  partitions: PartitionStatus[];
  partitionsTotal: number;
  /** One entry per central partition the downlink follows (empty without uplink.downlink). */
  downlink: DownlinkPartitionStatus[];
}

export interface UplinkDeps {
  broker: BrokerApi;
  logger: Logger;
  metrics: MetricsRegistry;
  dataDir: string;
  /** In a cluster: partition leadership and the controller's contact; links run only where the gate allows (host/sync/cluster-gate.ts). */
  cluster?: UplinkClusterView;
}

interface Metrics {
  lag: Gauge;
  link: Gauge;
  bytes: Gauge;
  records: Counter;
  batches: Counter;
  oldestAge: Gauge;
  gaps: Counter;
  backlog: Gauge;
  budget: Gauge;
  dropped: Counter;
  refused: Counter;
  stalled: Gauge;
  fence: Counter;
}

class BlockedError extends Error {}
/** Produce request bytes around one partition's batch (header, client id, topic name, fields): what the cap counts besides the batch. */
const PRODUCE_REQUEST_OVERHEAD_BYTES = 100;
/** A batch of the pipeline was refused or lost: its answer holds the cause. */
class PipelineError extends Error {}

export const STATUS_FORMAT = 'tributary-uplink-status/1';

/** Where a link's status view is written (read by `tributary uplink status`). */
export function statusPath(dataDir: string, site: string): string {
  return join(dataDir, '__uplink', `${site}.status.json`);
}

export class Uplink {
  private readonly abort = new AbortController();
  private readonly links = new Map<string, PartitionLink>();
  private scanTimer: NodeJS.Timeout | null = null;
  readonly loops = new Set<Promise<void>>();
  /** In a cluster: which partitions this node forwards now (null on a single node: all of them). */
  private leadership: LeadershipGate | null = null;
  private linkUp = false;
  readonly metrics: Metrics;
  /** Central topics copied into local ones (null without uplink.downlink); its own client, so long polls never hold the producer's window. */
  private downlink: Downlink | null = null;
  /** Origin sites whose records are never sent up: this site's, and the downlink's. */
  readonly notForwarded: string[];
  /** The link's bandwidth cap (null: none) and its priority classes (host/sync/flow.ts). */
  readonly bucket: TokenBucket | null;
  readonly gate: PriorityGate;
  /** uplink.reservedTopics: first through the cap and the connection, others held to one batch in flight meanwhile (host/sync/lanes.ts). */
  readonly lane: ReservedLane;
  /** Bytes of batches built and unanswered across the link (uplink.inFlightBytesMax). */
  readonly inFlightBytes: ByteBound;
  /** The link's byte budget (installed at the broker's write path when uplink.backlogBytesMax > 0). */
  readonly budget: LinkBudget;
  /** Lag in bytes and seconds, bytes given up, bandwidth in use (host/sync/observe.ts). */
  readonly observer: UplinkObserver;

  private constructor(
    readonly deps: UplinkDeps,
    readonly options: ResolvedUplink,
    readonly client: KafkaClient,
    readonly stateFile: LinkStateStore,
    readonly producer: IdempotentProducer,
    readonly log: Logger,
  ) {
    const r = deps.metrics;
    this.metrics = {
      lag: r.gauge('tributary_uplink_lag_records', 'Records in a source partition not yet forwarded by the uplink'),
      link: r.gauge('tributary_uplink_link_up', '1 while the uplink reaches its target, else 0'),
      bytes: r.gauge('tributary_uplink_bytes_sent', 'Request bytes the uplink wrote to its target since start'),
      records: r.counter('tributary_uplink_records_sent_total', 'Records the uplink forwarded (acknowledged or found by read-back)'),
      oldestAge: r.gauge('tributary_uplink_oldest_unsent_age_seconds', 'Age (now − its timestamp) of the oldest source record the uplink read and the target has not acknowledged; 0 when caught up'),
      batches: r.counter('tributary_uplink_batches_sent_total', 'Batches the uplink produced, by path: raw (as stored, origin on the last record) or reencoded (decoded, origin on every record)'),
      gaps: r.counter('tributary_uplink_gap_records_total', 'Source records removed by retention before the uplink forwarded them'),
      backlog: r.gauge('tributary_uplink_backlog_bytes', 'Bytes stored at this site and not yet forwarded (nor dropped) by the uplink, over every partition of the link'),
      budget: r.gauge('tributary_uplink_backlog_budget_bytes', 'uplink.backlogBytesMax: the byte budget of the link (0 = none)'),
      dropped: r.counter('tributary_uplink_dropped_records_total', 'Source records the on-full policy gave up (not forwarded) because the link\'s byte budget was full'),
      refused: r.counter('tributary_uplink_refused_appends_total', 'Appends refused (UPLINK_BACKLOG_FULL) because the link\'s byte budget was full'),
      stalled: r.gauge('tributary_uplink_stalled', '1 while a source partition has records to send and its forwarding has not moved for uplink.stallAlarmSec, else 0'),
      fence: r.counter('tributary_uplink_fence_events_total', 'Transactions mode: a source partition fenced by a newer producer (event=fenced), looked at again and left blocked because the newer producer forwards (still-fenced), or re-initialised and resumed from the target (reinitialised)'),
    };
    this.metrics.stalled.collect(() => {
      for (const l of this.links.values()) this.metrics.stalled.set(l.stall.stalledSinceMs === null ? 0 : 1, { site: options.site, topic: l.source.topic, partition: String(l.source.partition) });
    });
    this.metrics.lag.collect(() => {
      for (const l of this.links.values()) this.metrics.lag.set(l.lag(), { site: options.site, topic: l.source.topic, partition: String(l.source.partition) });
    });
    this.metrics.oldestAge.collect(() => {
      const now = Date.now();
      for (const l of this.links.values()) this.metrics.oldestAge.set(l.oldestUnsentMs === null ? 0 : Math.max(0, (now - l.oldestUnsentMs) / 1000), { site: options.site, topic: l.source.topic, partition: String(l.source.partition) });
    });
    this.metrics.link.collect(() => this.metrics.link.set(this.linkUp ? 1 : 0, { site: options.site }));
    this.metrics.bytes.collect(() => this.metrics.bytes.set(this.client.bytesSent, { site: options.site }));
    this.notForwarded = options.downlink.length > 0 ? [options.site, options.downlinkOriginSite] : [options.site];
    // The others' floor (uplink.reservedShareMax): in bytes under a cap (credit: one burst), in produce requests without one (credit: one pipeline).
    this.lane = new ReservedLane(options.reservedTopics, new ShareFloor(options.reservedShareMax, options.inFlightBatchesMax));
    // With a floor the reserved partitions hold the others in the bucket while they have data (not at the priority gate).
    const laneHolds = this.lane.strict ? undefined : () => this.lane.active();
    this.bucket = options.bandwidthBytesPerSec > 0 ? new TokenBucket(options.bandwidthBytesPerSec, options.bandwidthBurstBytes, undefined, new ShareFloor(options.reservedShareMax, options.bandwidthBurstBytes), laneHolds) : null;
    this.gate = new PriorityGate(options.priorities);
    this.inFlightBytes = new ByteBound(options.inFlightBytesMax);
    // In a cluster only the partitions this node forwards count: the others' backlog is their leader's.
    this.budget = new LinkBudget(deps.broker, options.backlogBytesMax, () => this.forwardedLinks(), (tp) => {
      const l = this.links.get(partitionKey(tp.topic, tp.partition));
      return l && (this.leadership === null || l.running) ? l : undefined;
    }, {
      refused: (tp, backlogBytes, bytes, first, why) => {
        this.metrics.refused.inc({ site: options.site, topic: tp.topic });
        if (first) this.log.warn({ topic: tp.topic, partition: tp.partition, backlogBytes, bytes, backlogBytesMax: options.backlogBytesMax, backlogAgeMsMax: options.backlogAgeMsMax, why }, 'uplink byte budget full: refusing appends (UPLINK_BACKLOG_FULL) until the link drains');
      },
      drained: (backlogBytes) => this.log.info({ backlogBytes, backlogBytesMax: options.backlogBytesMax }, 'uplink byte budget: appends admitted again'),
    }, options.backlogAgeMsMax);
    this.metrics.backlog.collect(() => this.metrics.backlog.set(this.budget.backlogBytes(), { site: options.site }));
    this.metrics.budget.collect(() => this.metrics.budget.set(options.backlogBytesMax, { site: options.site }));
    this.observer = new UplinkObserver(deps.broker, options.site, options, () => this.client.bytesSent, deps.metrics);
  }

  static async start(deps: UplinkDeps, options: ResolvedUplink): Promise<Uplink> {
    const log = deps.logger.child({ component: 'uplink', site: options.site });
    await mkdir(join(deps.dataDir, '__uplink'), { recursive: true }); // the status view's directory
    const stateFile = await LinkStateTable.open(deps.broker, deps.dataDir, options.site, { logger: log, metrics: deps.metrics }, (why) => log.warn({ why }, 'uplink state not trusted: starting without producer id or checkpoints; the read-back decides where each partition resumes'));
    const client = new KafkaClient({
      bootstrap: options.bootstrap,
      clientId: options.clientId,
      connectTimeoutMs: options.connectTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs,
      inFlightMax: options.inFlightMax,
      queuedMax: options.queuedMax,
      responseBytesMax: options.responseBytesMax,
      reconnectBackoffMs: options.reconnectBackoffMs,
      reconnectBackoffMaxMs: options.reconnectBackoffMaxMs,
      tls: options.tlsConnect,
      sasl: clientSasl(options),
    });
    const producer = new IdempotentProducer(client, stateFile.state.producer, { save: () => stateFile.save() }, { produceTimeoutMs: options.produceTimeoutMs });
    const uplink = new Uplink(deps, options, client, stateFile, producer, log);
    const sasl = client.options.sasl ?? null;
    log.info({ bootstrap: options.bootstrap, topics: options.topics, rename: options.rename, downlink: options.downlink, tls: options.tlsConnect !== null, sasl: sasl ? { mechanism: sasl.mechanism, user: sasl.user } : null }, 'uplink starting');
    if ((sasl?.mechanism === 'PLAIN' || sasl?.mechanism === 'OAUTHBEARER') && !options.tlsConnect) log.warn({ user: sasl.user, mechanism: sasl.mechanism }, `uplink.sasl ${sasl.mechanism} without uplink.tls: the ${sasl.mechanism === 'PLAIN' ? 'password' : 'bearer token'} crosses the link in clear text`);
    if (deps.cluster) {
      uplink.leadership = new LeadershipGate(deps.cluster, { leaseMs: options.clusterLeaseMs, handoverMs: options.clusterHandoverMs }, () => uplink.links.values(), log);
      log.info({ nodeId: deps.cluster.nodeId, clusterLeaseMs: options.clusterLeaseMs, clusterHandoverMs: options.clusterHandoverMs }, 'uplink in a cluster: forwarding only the partitions this node leads, while the controller hears it');
    }
    uplink.scan();
    uplink.leadership?.start();
    uplink.observer.start();
    // After the scan: every partition the link forwards now has its loop, so its appends are counted.
    if (options.backlogBytesMax > 0 || options.backlogAgeMsMax > 0) deps.broker.setAppendAdmission(uplink.budget);
    if (options.downlink.length > 0) {
      const downClient = new KafkaClient({ ...client.options, clientId: `${options.clientId}-downlink` });
      uplink.downlink = new Downlink({
        broker: deps.broker,
        logger: deps.logger.child({ component: 'downlink', site: options.site }),
        metrics: deps.metrics,
        client: downClient,
        options,
        checkpoints: stateFile.state.checkpoints,
        saveState: () => stateFile.save(),
        signal: uplink.signal,
      });
      void uplink.downlink.scan();
    }
    return uplink;
  }

  /** Starts a loop for every source partition that matches and has none yet; re-run every topicScanIntervalMs. */
  private scan(): void {
    if (this.abort.signal.aborted) return;
    for (const t of this.deps.broker.listTopics()) {
      if (t.internal || !topicMatches(this.options.topics, t.name)) continue;
      for (let p = 0; p < t.partitions; p++) {
        const key = partitionKey(t.name, p);
        if (this.links.has(key)) continue;
        const link = new PartitionLink(this, { topic: t.name, partition: p }, t.partitions);
        this.links.set(key, link);
        this.observer.add(link);
        // In a cluster the gate starts it once this node leads it and its handover has passed.
        if (this.leadership === null) link.start();
        else link.idleAs('handover', 'waiting for the cluster check');
      }
    }
    for (const l of this.links.values()) l.checkStall();
    void this.budget.refreshAge(Date.now()).catch((err) => this.log.warn({ err: (err as Error).message }, 'uplink age bound not checked this scan'));
    void this.writeStatus();
    this.scanTimer = setTimeout(() => this.scan(), this.options.topicScanIntervalMs);
  }

  /**
   * `<dataDir>/__uplink/<site>.status.json`: the status as JSON ({"format": "tributary-uplink-status/1",
   * "writtenAtMs", ...UplinkStatus}), rewritten atomically every topicScanIntervalMs and at stop, for
   * `tributary uplink status`. Crash policy: a view, not state — stale after a crash (writtenAtMs
   * says how old), never read back by the uplink.
   */
  private async writeStatus(): Promise<void> {
    try {
      await writeFileAtomic(statusPath(this.deps.dataDir, this.options.site), JSON.stringify({ format: STATUS_FORMAT, writtenAtMs: Date.now(), ...this.status() }, null, 1));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'uplink status file not written');
    }
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Whether this node may write `tp` now: always on a single node; in a cluster while it leads it and holds the lease. */
  mayForward(tp: TopicPartition): boolean {
    return this.leadership === null || this.leadership.allows(tp);
  }

  /** Why this node may not forward `tp` now (cluster only). */
  notForwardingWhy(tp: TopicPartition): { state: 'led-elsewhere' | 'no-lease'; reason: string } {
    return this.leadership!.whyNot(tp, Date.now());
  }

  /** In a cluster. */
  get clustered(): boolean {
    return this.leadership !== null;
  }

  /** The links this node forwards: all of them on a single node, the running ones in a cluster. */
  private *forwardedLinks(): Generator<PartitionLink> {
    for (const l of this.links.values()) if (this.leadership === null || l.running) yield l;
  }

  noteSuccess(): void {
    if (!this.linkUp) this.log.info('uplink: target reachable');
    this.linkUp = true;
  }

  noteFailure(err: Error): void {
    if (this.linkUp) this.log.warn({ err: err.message }, 'uplink: target unreachable or refusing');
    this.linkUp = false;
  }

  status(): UplinkStatus {
    const now = Date.now();
    const rows = [...this.links.values()].map((l) => l.status(now));
    return {
      ...this.observer.link(rows, now),
      site: this.options.site,
      bootstrap: this.options.bootstrap,
      link: this.abort.signal.aborted ? 'stopped' : this.leadership !== null && this.forwardedLinks().next().done ? 'standby' : this.linkUp ? 'up' : 'down',
      bytesSent: this.client.bytesSent,
      backlogBytes: this.budget.backlogBytes(),
      backlogBytesMax: this.options.backlogBytesMax,
      partitions: rowsShown(rows, this.options.statusPartitionsMax),
      partitionsTotal: rows.length,
      downlink: this.downlink?.status() ?? [],
    };
  }

  async stop(): Promise<void> {
    if (this.options.backlogBytesMax > 0 || this.options.backlogAgeMsMax > 0) this.deps.broker.setAppendAdmission(undefined);
    this.leadership?.close();
    this.abort.abort();
    this.observer.stop();
    if (this.scanTimer) clearTimeout(this.scanTimer);
    await this.client.close();
    if (this.downlink) {
      await this.downlink.deps.client.close();
      await this.downlink.stop();
    }
    await Promise.allSettled([...this.loops]);
    await this.stateFile.save();
    await this.writeStatus();
    this.log.info({ partitions: this.links.size }, 'uplink stopped');
  }
}

class PartitionLink implements BudgetPartition, GatedLink {
  readonly target: TopicPartition;
  readonly origin: Origin;
  state: PartitionLinkState = 'starting';
  reason: string | null = null;
  position = -1;
  recordsSent = 0;
  private savedPosition = -1;
  /** Timestamp of the oldest record read and not yet acknowledged by the target; null when caught up or not yet known. */
  oldestUnsentMs: number | null = null;
  private cursor: PartitionCursor | null = null;
  /** Priority class (0 = highest). */
  readonly priority: number;
  readonly policy: OnFullPolicy;
  /** In the reserved lane (uplink.reservedTopics). */
  readonly reserved: boolean;
  /** Records below it were given up by the on-full policy (persisted as the `drop:` checkpoint); the reason of the latest drop. */
  private dropFloor: number;
  private dropWhy = '';
  /** Retention gaps already counted (a resume after a retry meets the same gap again: counted once). */
  private readonly gapsNoted = new NotedRanges();
  /** Drops already counted up to here (a resume after a retry skips the same records again: counted once). */
  private dropNotedTo = -1;
  droppedRecords = 0;
  /** Decided per target partition at every (re)connect (uplink.exactlyOnce, the target's ApiVersions). */
  mode: 'read-back' | 'transactions' = 'read-back';
  /** Transactions mode's producer (its transactional id names this source partition). */
  private txn: TransactionalProducer | null = null;
  /** Transactions mode: fenced, and when to look again (uplink.fencedRecheckMs, host/sync/fence.ts). */
  private readonly fence: FenceRecheck;
  /** The liveness alarm (uplink.stallAlarmSec, host/sync/stall.ts), looked at every scan. */
  readonly stall: StallWatch;
  /** uplink.drainOrderTopics; newest-first: the backfill below the head while one is pending (host/sync/backfill.ts). */
  readonly drainOrder: DrainOrder;
  private backfill: Backfill | null = null;
  /** The producer id the last batch of this partition was started under (a lost-producer refusal gives it up once). */
  private usedProducerId = -1;
  /** The running loop (null: not started, or stopped by the cluster gate) and what stops it. */
  private loop: Promise<void> | null = null;
  private runAbort: AbortController | null = null;
  private stopping: Promise<void> | null = null;
  /** The loop's stop: the uplink's, or (in a cluster) this node no longer forwarding the partition. */
  signal: AbortSignal;

  constructor(
    private readonly up: Uplink,
    readonly source: TopicPartition,
    private readonly sourcePartitions: number,
  ) {
    const perPartition = up.options.rename.includes('{partition}');
    this.target = { topic: targetTopicOf(up.options.rename, up.options.site, source.topic, source.partition), partition: perPartition ? 0 : source.partition };
    this.origin = { site: up.options.site, topic: source.topic, partition: source.partition };
    this.priority = up.gate.classOf(source.topic);
    this.reserved = up.lane.has(source.topic);
    this.drainOrder = drainOrderOf(source.topic, up.options.drainOrderTopics, (pattern, topic) => topicMatches([pattern], topic));
    this.policy = policyOf(source.topic, up.options.onFullTopics, up.options.onFull);
    this.dropFloor = up.stateFile.state.checkpoints[this.dropKey] ?? -1;
    this.fence = new FenceRecheck(up.options.fencedRecheckMs);
    const where = { source: `${source.topic}-${source.partition}`, target: `${this.target.topic}-${this.target.partition}` };
    this.stall = new StallWatch(up.options.stallAlarmSec * 1000, {
      stalled: (forMs, lagRecords) => up.log.warn({ ...where, stalledForSec: Math.round(forMs / 1000), lagRecords, position: this.position, state: this.state, reason: this.reason }, `uplink stalled: ${where.source} has ${lagRecords} records to send and has forwarded nothing for ${Math.round(forMs / 1000)} s (uplink.stallAlarmSec=${up.options.stallAlarmSec})`),
      cleared: (forMs) => up.log.info({ ...where, stalledForSec: Math.round(forMs / 1000), position: this.position }, `uplink stall cleared: ${where.source} forwards again after ${Math.round(forMs / 1000)} s`),
    });
    this.signal = up.signal;
    // Busy until it finds out it has nothing to send: a lower class waits for it meanwhile.
    this.setBusy(!up.clustered);
  }

  get running(): boolean {
    return this.loop !== null;
  }

  /** Starts the loop (at once on a single node; in a cluster when the gate allows). */
  start(): void {
    if (this.loop || this.up.signal.aborted) return;
    // Its own stop, which the uplink's stop also triggers (one listener, not a composed signal: the
    // loop hangs and removes many listeners on its signal as it waits).
    const stop = new AbortController();
    const stopWithUplink = () => stop.abort();
    this.up.signal.addEventListener('abort', stopWithUplink, { once: true });
    this.runAbort = stop;
    this.signal = stop.signal;
    this.state = 'starting';
    this.reason = null;
    this.position = -1;
    this.setBusy(true);
    const loop = this.run().finally(() => {
      this.up.loops.delete(loop);
      this.up.signal.removeEventListener('abort', stopWithUplink);
    });
    this.loop = loop;
    this.up.loops.add(loop);
  }

  /**
   * Cluster only: this node may no longer forward the partition. The connection to the target is
   * dropped before the loop is awaited (a request not yet written never is; written ones fail as
   * indefinite), and the batches left in flight are marked unresolved: whichever node forwards
   * next settles them by reading the target back.
   */
  stop(state: 'led-elsewhere' | 'no-lease', reason: string): Promise<void> {
    if (!this.loop) {
      this.idleAs(state, reason);
      return Promise.resolve();
    }
    // One stop at a time: the gate's and the write-time check's may meet.
    return (this.stopping ??= this.stopRun(this.loop, state, reason).finally(() => (this.stopping = null)));
  }

  private async stopRun(loop: Promise<void>, state: 'led-elsewhere' | 'no-lease', reason: string): Promise<void> {
    this.runAbort!.abort();
    await this.up.client.reset({ abort: true });
    await loop;
    // Once more: a produce the loop began before it saw the abort may have opened a new connection.
    await this.up.client.reset({ abort: true });
    this.loop = null;
    this.runAbort = null;
    if (this.up.producer.inFlight(this.target.topic, this.target.partition).length > 0) {
      await this.up.producer.fail(this.target.topic, this.target.partition, new KafkaClientError('closed', `${reason}: stopped with batches in flight`, true), this.usedProducerId);
    }
    await this.up.stateFile.save().catch((err) => this.up.log.warn({ err: (err as Error).message }, 'uplink state not saved at a leadership stop (the next save carries it)'));
    this.cursor = null;
    this.backfill = null;
    this.oldestUnsentMs = null;
    this.idleAs(state, reason);
  }

  /** Not running (cluster only): the status says why; no stall alarm, no lag counted here. */
  idleAs(state: 'led-elsewhere' | 'no-lease' | 'handover', reason: string): void {
    if (this.loop) return;
    this.state = state;
    this.reason = reason;
    this.setBusy(false);
  }

  private setBusy(busy: boolean): void {
    // With a floor (uplink.reservedShareMax < 1) the share decides between the lane and the
    // others: a reserved partition holds no lower class at the priority gate, or a flood would
    // starve them there whatever the floor says (it holds them in the token bucket instead, up to
    // the floor: TokenBucket's laneBusy).
    this.up.gate.setBusy(this.checkpointKey, this.priority, busy && !(this.reserved && !this.up.lane.strict));
    if (this.reserved) {
      this.up.lane.setBusy(this.checkpointKey, busy);
      if (!this.up.lane.active()) this.up.bucket?.laneIdle();
    }
  }

  private get checkpointKey(): string {
    return partitionKey(this.source.topic, this.source.partition);
  }

  private get dropKey(): string {
    return `drop:${this.checkpointKey}`;
  }

  /** The first source offset not yet forwarded nor dropped (before the first read-back: the checkpoint, else the log start). */
  unforwardedFrom(): number {
    // In a cluster a partition this node does not forward has no backlog here: it is its leader's.
    if (this.up.clustered && !this.running) return this.up.deps.broker.offsets(this.source).highWatermark;
    const checkpoints = this.up.stateFile.state.checkpoints;
    let base = this.position >= 0 ? this.position : (checkpoints[this.checkpointKey] ?? this.up.deps.broker.offsets(this.source).logStartOffset);
    // A pending backfill lies below the head (newest-first): it is unforwarded too.
    const bf = this.backfill ? this.backfill.next : checkpoints[`backfill:${this.checkpointKey}`];
    if (bf !== undefined && bf < (this.backfill?.split ?? checkpoints[`split:${this.checkpointKey}`] ?? -1)) base = Math.min(base, bf);
    return Math.max(base, this.dropFloor);
  }

  /** The on-full policy gives up the records below `offset`: skipped (and counted) before the next read. */
  dropBelow(offset: number, why: string): void {
    if (offset <= this.dropFloor) return;
    this.dropFloor = offset;
    this.dropWhy = why;
    this.up.stateFile.state.checkpoints[this.dropKey] = offset;
    void this.up.stateFile.save().catch((err) => this.up.log.warn({ err: (err as Error).message }, 'uplink state not saved after a drop (the next save carries it)'));
  }

  /** Skips [from, to): counted and logged with the offsets, never silent. */
  private noteDrop(skipFrom: number, to: number): void {
    const from = Math.max(skipFrom, this.dropNotedTo);
    if (to <= from) return;
    this.dropNotedTo = to;
    const up = this.up;
    this.droppedRecords += to - from;
    const bytes = up.observer.dropped(this, from, to, this.policy);
    up.metrics.dropped.inc({ site: up.options.site, topic: this.source.topic, partition: String(this.source.partition), policy: this.policy }, to - from);
    up.log.warn({ source: `${this.source.topic}-${this.source.partition}`, fromOffset: from, toOffset: to, records: to - from, bytes, policy: this.policy, why: this.dropWhy }, 'uplink drop: source records given up by the on-full policy (not forwarded)');
  }

  /** The liveness alarm's look: progress is (position, records sent); the records to send count from the first unforwarded offset (known before the first read-back too). */
  checkStall(): void {
    let pending = 0;
    if (this.up.clustered && !this.running) {
      this.stall.check(this.state, 0); // led elsewhere (or waiting): not a stall here
      return;
    }
    try {
      pending = Math.max(0, this.up.deps.broker.offsets(this.source).highWatermark - this.unforwardedFrom());
    } catch {
      // the partition went away: nothing to send
    }
    this.stall.check(`${this.position}/${this.recordsSent}`, pending);
  }

  /** Records not yet forwarded nor dropped: high watermark − the first unforwarded offset (before the first read-back: from the checkpoint, else the log start). */
  lag(): number {
    if (this.up.clustered && !this.running) return 0;
    try {
      const hw = this.up.deps.broker.offsets(this.source).highWatermark;
      // Before the first read-back the position is not known yet: from the checkpoint, else the log start.
      if (this.position < 0) return Math.max(0, hw - this.unforwardedFrom());
      // Newest-first: the head from its position, plus what the backfill below the split has left.
      const backfill = this.backfill ? Math.max(0, this.backfill.split - this.backfill.next) : 0;
      return Math.max(0, hw - Math.max(this.position, this.dropFloor)) + backfill;
    } catch {
      return 0;
    }
  }

  status(nowMs = Date.now()): PartitionStatus {
    return { ...this.up.observer.partition(this, nowMs), source: this.source, target: this.target, state: this.state, mode: this.mode, position: this.position, lagRecords: this.lag(), backlogBytes: this.up.budget.backlogOf(this), onFull: this.policy, droppedRecords: this.droppedRecords, recordsSent: this.recordsSent, reason: this.reason, stalledForSec: this.stall.stalledForSec() };
  }

  async run(): Promise<void> {
    const signal = this.signal;
    for (let failures = 0; !signal.aborted; ) {
      try {
        await this.ensureTarget();
        await this.resume();
        failures = 0;
        await this.forward();
      } catch (err) {
        if (signal.aborted) break;
        failures++;
        const blocked = err instanceof BlockedError;
        this.state = blocked ? 'blocked' : 'retrying';
        this.setBusy(!blocked); // a blocked partition never holds the lower classes back
        this.reason = (err as Error).message;
        if (!blocked) this.up.noteFailure(err as Error);
        this.up.log.warn({ source: `${this.source.topic}-${this.source.partition}`, target: `${this.target.topic}-${this.target.partition}`, err: this.reason, state: this.state }, blocked ? 'uplink partition blocked' : 'uplink partition retrying');
        const o = this.up.options;
        await sleep(blocked ? o.topicScanIntervalMs : Math.min(o.reconnectBackoffMaxMs, o.reconnectBackoffMs * 2 ** Math.min(failures, 20)), signal);
      }
    }
    if (this.up.signal.aborted) this.state = 'stopped';
  }

  /** The target topic exists with enough partitions (created with the source's count when missing). */
  private async ensureTarget(): Promise<void> {
    const client = this.up.client;
    const wanted = this.up.options.rename.includes('{partition}') ? 1 : this.sourcePartitions;
    let md = (await client.metadata([this.target.topic])).get(this.target.topic);
    if (md && md.errorCode === ERRORS.UNKNOWN_TOPIC_OR_PARTITION.kafka) {
      const created = await client.createTopic(this.target.topic, wanted).catch((err) => {
        if (err instanceof KafkaClientError && err.fault === 'unsupported') throw new BlockedError(`target topic ${this.target.topic} is missing and the target cannot create topics (${err.message}): create it there with ${wanted} partitions`);
        throw err;
      });
      const code = created.errorCode === ERRORS.NONE.kafka ? 'NONE' : new KafkaResponseError(created.errorCode, '').code;
      if (code !== 'NONE' && code !== 'TOPIC_ALREADY_EXISTS') {
        throw new BlockedError(`target topic ${this.target.topic} is missing and creating it with ${wanted} partitions was refused: ${code}${created.errorMessage ? ` (${created.errorMessage})` : ''}`);
      }
      if (code === 'NONE') this.up.log.info({ target: this.target.topic, partitions: wanted }, 'uplink created the target topic');
      md = (await client.metadata([this.target.topic])).get(this.target.topic);
    }
    if (!md || md.errorCode !== ERRORS.NONE.kafka) throw new KafkaResponseError(md?.errorCode ?? ERRORS.UNKNOWN_TOPIC_OR_PARTITION.kafka, `metadata for target topic ${this.target.topic}`);
    if (md.partitions.length <= this.target.partition) {
      throw new BlockedError(`target topic ${this.target.topic} has ${md.partitions.length} partitions but source partition ${this.source.partition} maps to partition ${this.target.partition} (kept 1:1): add partitions on the target`);
    }
  }

  /** Read-back: where the source resumes, and the previous run's batch in flight settled. */
  private async resume(): Promise<void> {
    this.state = 'resolving';
    const up = this.up;
    const txnAdvertised = await up.client.advertisesTransactions(this.target.topic, this.target.partition).catch(() => false);
    // A newest-first split still in the link state is settled by read-back (its two ranges), whatever the target advertises now.
    const splitPending = up.stateFile.state.checkpoints[`split:${this.checkpointKey}`] !== undefined;
    this.mode = up.options.exactlyOnce === 'auto' && txnAdvertised && !splitPending ? 'transactions' : 'read-back';
    // Before the read-back: a new epoch fences the previous one, so a transaction it left open is
    // aborted (on a target that writes markers) and read_committed reads see past it.
    const committedCheckpoint = this.mode === 'transactions' ? await this.initTransactions() : -1;
    const plain = await readBack(up.client, this.target.topic, this.target.partition, this.origin, { maxBytes: up.options.readBackBytes, recordsMax: up.options.readBackRecordsMax });
    const { r, settleAt } = await this.splitReadBack(plain);
    up.noteSuccess();
    if (up.producer.needsRecovery(this.target.topic, this.target.partition)) {
      const { landed, absent } = await up.producer.recover(this.target.topic, this.target.partition, settleAt);
      for (const [batch, outcome] of [...landed.map((b) => [b, 'landed'] as const), ...absent.map((b) => [b, 'absent'] as const)]) {
        up.log.info({ target: `${this.target.topic}-${this.target.partition}`, batch, lastOriginOffset: r.lastOriginOffset, scanned: r.scanned, outcome }, 'uplink: outcome of a batch in flight resolved by read-back');
      }
      const n = landed.reduce((sum, b) => sum + b.recordCount, 0);
      this.recordsSent += n;
      up.metrics.records.inc({ site: up.options.site, topic: this.source.topic, partition: String(this.source.partition) }, n);
    }
    const checkpoint = up.stateFile.state.checkpoints[this.checkpointKey];
    if (up.clustered && r.lastOriginOffset < 0 && !r.complete) {
      // This node's checkpoint only says where this node got to: another node may have forwarded
      // past it since. Without the target's answer there is no safe resume point here.
      throw new BlockedError(`no origin of ${this.source.topic}-${this.source.partition} within ${r.scanned} target records (uplink.readBackRecordsMax=${up.options.readBackRecordsMax}); in a cluster this node's checkpoint may be behind what another node forwarded: raise uplink.readBackRecordsMax`);
    }
    let from: number;
    let why: string;
    if (r.lastOriginOffset >= 0) {
      from = r.lastOriginOffset + 1;
      why = 'after the last origin offset found in the target';
    } else if (checkpoint !== undefined) {
      from = checkpoint;
      why = r.complete ? 'no origin of this partition in the target: the local checkpoint' : `no origin within ${r.scanned} target records (readBackRecordsMax): the local checkpoint`;
    } else {
      from = 0;
      why = 'nothing forwarded before: from the start of the source';
    }
    if (committedCheckpoint > from) {
      from = committedCheckpoint;
      why = 'the checkpoint committed in the target with its data (transactions mode)';
    }
    if (this.dropFloor > from) {
      this.noteDrop(from, this.dropFloor);
      from = this.dropFloor;
      why += `, then past the records the on-full policy dropped`;
    }
    const signal = this.signal;
    this.cursor = await PartitionCursor.open(up.deps.broker, this.source, { kind: 'offset', offset: from }, {
      isolation: 'committed',
      maxBytes: up.options.readBytesMax,
      onOutOfRange: 'earliest',
      retry: { attemptsMax: 5, backoffMs: 100, backoffMaxMs: 1000 },
      signal,
      onReset: (gapFrom, to) => this.noteGap(gapFrom, to),
    });
    if (this.cursor.position > from) this.noteGap(from, this.cursor.position);
    this.position = this.cursor.position;
    await this.maybeSplit();
    const how = this.mode === 'transactions' ? `by transactions (data and checkpoint in one transaction; transactional id ${this.txn!.options.transactionalId}, epoch ${this.txn!.producerEpoch})` : `by read-back (origin headers; ${txnAdvertised ? 'the target advertises transactions, uplink.exactlyOnce=read-back' : 'the target does not advertise transactions'})`;
    up.log.info(
      { source: `${this.source.topic}-${this.source.partition}`, target: `${this.target.topic}-${this.target.partition}`, mode: this.mode, targetAdvertisesTransactions: txnAdvertised, resumeAt: this.position, why, lastOriginOffset: r.lastOriginOffset, committedCheckpoint, targetEndOffset: r.targetEndOffset, scanned: r.scanned },
      `uplink ${this.source.topic}-${this.source.partition} → ${this.target.topic}-${this.target.partition}: exactly-once ${how}, resuming at ${this.position}`,
    );
  }

  /**
   * Newest-first with a split in the link state (host/sync/backfill.ts): the head's highest and
   * the backfill's highest are read back per range; the plain answer stands in for the head's, and
   * batches in flight are settled against their own range. Without a split: the plain answer.
   */
  private async splitReadBack(plain: ReadBackResult): Promise<{ r: ReadBackResult; settleAt: number }> {
    const up = this.up;
    const cp = up.stateFile.state.checkpoints;
    const split = cp[`split:${this.checkpointKey}`];
    const from = cp[`backfillFrom:${this.checkpointKey}`];
    if (split === undefined || from === undefined || this.mode !== 'read-back') return { r: plain, settleAt: plain.lastOriginOffset };
    const sr = await scanBackSplit(targetTail(up.client, this.target.topic, this.target.partition, up.options.readBackBytes), this.origin, { from, split }, up.options.readBackRecordsMax);
    const headLast = sr.lastHead >= 0 ? sr.lastHead : sr.complete ? split - 1 : -1;
    const next = sr.lastBackfill >= 0 ? sr.lastBackfill + 1 : sr.complete ? from : (cp[`backfill:${this.checkpointKey}`] ?? from);
    this.backfill = { next, split, done: false };
    cp[`backfill:${this.checkpointKey}`] = next;
    const inFlight = up.producer.inFlight(this.target.topic, this.target.partition);
    const settleAt = inFlight.length > 0 && inFlight[0].firstSourceOffset < split ? next - 1 : headLast;
    up.log.info({ source: `${this.source.topic}-${this.source.partition}`, split, backfillFrom: from, headLast: sr.lastHead, backfillNext: next, scanned: sr.scanned, complete: sr.complete }, 'uplink newest-first: head and backfill read back per range');
    return { r: { ...plain, lastOriginOffset: headLast, scanned: sr.scanned, complete: sr.complete }, settleAt };
  }

  /**
   * Newest-first: a backlog exists — more than newestFirstRecords records between `from` (the next
   * offset to send) and the log end — and no backfill is pending. Looked at when the partition
   * resumes and before every read while the link stays up (a backlog built under a bandwidth cap).
   */
  private backlogToSplit(from: number): boolean {
    if (this.drainOrder !== 'newest-first' || this.mode !== 'read-back' || this.backfill) return false;
    return this.up.deps.broker.offsets(this.source).highWatermark - from > this.up.options.newestFirstRecords;
  }

  /**
   * Newest-first with a backlog (backlogToSplit): split at S = log end − newestFirstRecords, the
   * backfill [from, S) after the head. `from` has nothing of this partition in flight below or at
   * it unacknowledged (at a resume: the read-back's answer; while running: the pipeline settled),
   * so every record below it in the target was written before the split, saved here before
   * anything at or above S is sent (host/sync/backfill.ts).
   */
  private async maybeSplit(from = this.position): Promise<void> {
    const up = this.up;
    if (!this.backlogToSplit(from)) return;
    const hw = up.deps.broker.offsets(this.source).highWatermark;
    const split = hw - up.options.newestFirstRecords;
    const cp = up.stateFile.state.checkpoints;
    cp[`split:${this.checkpointKey}`] = split;
    cp[`backfillFrom:${this.checkpointKey}`] = from;
    cp[`backfill:${this.checkpointKey}`] = from;
    cp[this.checkpointKey] = split;
    await up.stateFile.save();
    this.backfill = { next: from, split, done: false };
    up.log.info({ source: `${this.source.topic}-${this.source.partition}`, split, backfillFrom: from, head: hw - split, linkUp: this.state !== 'resolving' }, `uplink newest-first: the newest ${hw - split} records (from ${split}) go first, then the backlog [${from}, ${split})`);
    this.cursor!.seek(split);
    this.position = split;
  }

  /** One read of the backfill (the head is caught up): sent and settled, then the cursor goes back to the head. */
  private async backfillStep(cursor: PartitionCursor, pipeline: Array<{ unit: SendUnit; answer: Promise<Answer> }>): Promise<void> {
    const bf = this.backfill!;
    const cp = this.up.stateFile.state.checkpoints;
    if (this.dropFloor > bf.next) {
      const to = Math.min(this.dropFloor, bf.split);
      this.noteRangeDrop(bf.next, to);
      bf.next = to;
      cp[`backfill:${this.checkpointKey}`] = to;
    }
    if (bf.next >= bf.split) return;
    this.state = 'forwarding';
    this.setBusy(true);
    const head = cursor.position;
    cursor.seek(bf.next);
    try {
      const read = await cursor.readRaw();
      let sent = false;
      for (const unit of this.plan(read.records, read.from, bf.split)) {
        if (!(await this.startUnit(unit, pipeline))) return;
        sent = true;
      }
      while (pipeline.length > 0) await this.settleHead(pipeline);
      if (!sent) bf.next = Math.max(bf.next, Math.min(read.nextOffset, bf.split));
      cp[`backfill:${this.checkpointKey}`] = bf.next;
    } finally {
      cursor.seek(head);
    }
  }

  /** A backfill range given up by the on-full policy: counted and logged (the head's drops are noted by noteDrop). */
  private noteRangeDrop(from: number, to: number): void {
    const up = this.up;
    this.droppedRecords += to - from;
    up.metrics.dropped.inc({ site: up.options.site, topic: this.source.topic, partition: String(this.source.partition), policy: this.policy }, to - from);
    up.log.warn({ source: `${this.source.topic}-${this.source.partition}`, fromOffset: from, toOffset: to, records: to - from, policy: this.policy, why: this.dropWhy }, 'uplink drop: source records given up by the on-full policy (not forwarded)');
  }

  /**
   * Transactions mode at (re)connect: the checkpoint topic exists, the transactional producer is
   * (re)initialised — a new epoch, fencing whatever the previous one left open instead of guessing
   * — and the latest committed checkpoint of this source partition is read back (-1: none).
   */
  private async initTransactions(): Promise<number> {
    const up = this.up;
    const o = up.options;
    await ensureCheckpointTopic(up.client, o.checkpointTopic, up.log);
    const transactionalId = `tributary-uplink/${o.site}/${this.source.topic}/${this.source.partition}`;
    if (this.fence.fenced) await this.recheckFence();
    // As at start: the link state's id and epoch (KIP-360 bump, else a fresh id).
    this.txn ??= new TransactionalProducer(up.client, { transactionalId, transactionTimeoutMs: o.transactionTimeoutMs, produceTimeoutMs: o.produceTimeoutMs, resume: up.stateFile.state.transactional?.[transactionalId] });
    try {
      await initProducer(this.txn, up.stateFile, up.log);
    } catch (err) {
      if (!(err instanceof ProducerFencedError)) throw err;
      // Fenced (a newer producer took this transactional id): blocked, never writing under this
      // epoch again; looked at again every fencedRecheckMs (host/sync/fence.ts).
      const checkpoint = await this.committedCheckpoint().catch(() => -1);
      this.fence.fencedAt(Date.now(), checkpoint, err.message);
      up.metrics.fence.inc({ site: o.site, topic: this.source.topic, partition: String(this.source.partition), event: 'fenced' });
      up.log.error({ source: `${this.source.topic}-${this.source.partition}`, transactionalId, committedCheckpoint: checkpoint, fencedRecheckMs: o.fencedRecheckMs }, `uplink ${this.source.topic}-${this.source.partition} fenced: ${err.message}; ${o.fencedRecheckMs > 0 ? `looked at again in ${o.fencedRecheckMs} ms (uplink.fencedRecheckMs)` : 'blocked until the node restarts (uplink.fencedRecheckMs=0)'}`);
      throw new BlockedError(this.fencedReason());
    }
    return this.committedCheckpoint();
  }

  /** The latest checkpoint committed in the target for this source partition: the next source offset (-1: none). */
  private async committedCheckpoint(): Promise<number> {
    const o = this.up.options;
    const c = await readBack(this.up.client, o.checkpointTopic, 0, this.origin, { maxBytes: o.readBackBytes, recordsMax: o.readBackRecordsMax });
    return c.lastOriginOffset >= 0 ? c.lastOriginOffset + 1 : -1;
  }

  private fencedReason(): string {
    const due = this.fence.due(Date.now());
    const when = due.kind === 'never' ? 'blocked until the node restarts (uplink.fencedRecheckMs=0)' : due.kind === 'wait' ? `looked at again in ${Math.ceil(due.leftMs / 1000)} s (uplink.fencedRecheckMs)` : 'looked at again now';
    return `${this.fence.reason}; ${when}`;
  }

  /**
   * Fenced earlier: blocked until fencedRecheckMs has passed; then, if the committed checkpoint
   * moved meanwhile (the newer producer forwards), blocked again; else the producer is dropped so
   * the caller re-initialises as at start and reads the target back (host/sync/fence.ts).
   */
  private async recheckFence(): Promise<void> {
    const up = this.up;
    const labels = { site: up.options.site, topic: this.source.topic, partition: String(this.source.partition) };
    if (this.fence.due(Date.now()).kind !== 'check') throw new BlockedError(this.fencedReason());
    const was = this.fence.checkpointSeen;
    const now = await this.committedCheckpoint();
    const decision = this.fence.decide(now, Date.now());
    const where = { source: `${this.source.topic}-${this.source.partition}`, committedCheckpointBefore: was, committedCheckpoint: now };
    if (decision === 'newer-producer-forwarding') {
      up.metrics.fence.inc({ ...labels, event: 'still-fenced' });
      up.log.warn(where, `uplink ${where.source} still fenced: the newer producer forwards (committed checkpoint ${was} → ${now}); looked at again in ${up.options.fencedRecheckMs} ms`);
      throw new BlockedError(this.fencedReason());
    }
    up.metrics.fence.inc({ ...labels, event: 'reinitialised' });
    up.log.warn(where, `uplink ${where.source} was fenced; the committed checkpoint has not moved for ${up.options.fencedRecheckMs} ms (nobody forwards it): re-initialising as at start and resuming from the target`);
    this.txn = null;
  }

  /** Records retention removed before they were forwarded: counted and logged once each, however often a resume meets them (host/sync/noted-ranges.ts). */
  private noteGap(gapFrom: number, gapTo: number): void {
    for (const [from, to] of this.gapsNoted.add(gapFrom, gapTo)) {
      this.up.metrics.gaps.inc({ site: this.up.options.site, topic: this.source.topic, partition: String(this.source.partition) }, to - from);
      const bytes = this.up.observer.gap(this, from, to);
      this.up.log.warn({ source: `${this.source.topic}-${this.source.partition}`, fromOffset: from, toOffset: to, records: to - from, bytes: bytes.bytes, bytesMeasured: bytes.how }, 'uplink gap: source records removed by retention before they were forwarded');
    }
  }

  /**
   * Reads, plans (raw or re-encoded) and starts batches, up to inFlightBatchesMax unanswered;
   * the position and checkpoint follow the answers, in order. Until stopped or a failure: then
   * every answer still due is awaited, the producer is told (`fail`), and the error goes to `run`,
   * whose next `resume` reads the target back and settles what was in flight.
   */
  private async forward(): Promise<void> {
    if (this.mode === 'transactions') return this.forwardTransactions();
    const up = this.up;
    const cursor = this.cursor!;
    const signal = this.signal;
    const pipeline: Array<{ unit: SendUnit; answer: Promise<Answer> }> = [];
    this.usedProducerId = up.producer.state.producerId;
    try {
      while (!signal.aborted) {
        if (this.dropFloor > cursor.position) {
          this.noteDrop(cursor.position, this.dropFloor);
          cursor.seek(this.dropFloor);
        }
        if (this.backlogToSplit(cursor.position)) {
          // A backlog built while the link stayed up (newest-first): the pipeline settled first, so
          // everything below the cursor is acknowledged (or filtered) before the split is saved.
          while (pipeline.length > 0) await this.settleHead(pipeline);
          if (signal.aborted) break;
          await this.maybeSplit(cursor.position);
        }
        if (cursor.caughtUp()) {
          while (pipeline.length > 0) await this.settleHead(pipeline);
          if (signal.aborted) break;
          if (this.backfill && this.backfill.next < this.backfill.split) {
            await this.backfillStep(cursor, pipeline);
            continue;
          }
          // Everything read was sent and acknowledged, or filtered: the position is the cursor's.
          await this.idle(cursor);
          continue;
        }
        this.state = 'forwarding';
        this.setBusy(true);
        const read = await cursor.readRaw();
        for (const unit of this.plan(read.records, read.from)) {
          if (signal.aborted || !(await this.startUnit(unit, pipeline))) break;
        }
        if (pipeline.length === 0) {
          // Nothing in flight and nothing sent from this read (all filtered): the position moves past it.
          this.position = read.nextOffset;
          up.stateFile.state.checkpoints[this.checkpointKey] = this.position;
        }
      }
    } catch (err) {
      // Every answer still due is awaited before anything is decided (nothing of ours may be
      // pending while the read-back looks), then the producer marks the partition unresolved.
      const answers = await Promise.all(pipeline.map((p) => p.answer));
      // The acknowledged prefix counts as sent now (the read-back will not report it again).
      for (let i = 0; i < answers.length && answers[i].ok; i++) await this.settleHead(pipeline);
      const first = answers.find((a) => !a.ok);
      const cause = err instanceof PipelineError ? (first && !first.ok ? first.error : err) : (err as Error);
      if (signal.aborted) return;
      const refusedAt = answers.findIndex((a) => !a.ok && a.error instanceof KafkaResponseError);
      if (refusedAt >= 0 && answers.slice(refusedAt + 1).some((a) => a.ok)) {
        // Only a target that does not check sequences takes a batch after refusing its
        // predecessor; the read-back then cannot see the hole. Said loudly, with the offsets.
        const hole = answers[refusedAt].batch;
        up.log.error({ target: `${this.target.topic}-${this.target.partition}`, fromOffset: hole.firstSourceOffset, toOffset: hole.lastSourceOffset + 1 }, 'uplink: the target took a batch after refusing the one before it (it does not check producer sequences): these source offsets may be missing there; set uplink.inFlightBatchesMax=1 for this target');
      }
      const action = await up.producer.fail(this.target.topic, this.target.partition, cause, this.usedProducerId);
      up.log.warn({ target: `${this.target.topic}-${this.target.partition}`, err: cause.message, inFlight: pipeline.length, action }, 'uplink produce failed');
      if (action === 'fatal') throw new BlockedError(`the target refused a batch: ${cause.message}`);
      throw cause;
    }
  }

  /**
   * Starts one planned batch through the pipeline: a slot (inFlightBatchesMax, one while the
   * reserved lane is busy for the others), the priority gate, the cap, the in-flight bytes, then
   * the produce. False when stopped before it was started.
   */
  private async startUnit(unit: SendUnit, pipeline: Array<{ unit: SendUnit; answer: Promise<Answer> }>): Promise<boolean> {
    const up = this.up;
    const signal = this.signal;
    while (pipeline.length >= up.lane.pipelineMax(this.reserved, up.options.inFlightBatchesMax)) await this.settleHead(pipeline);
    if (pipeline.length === 0) this.oldestUnsentMs = unit.firstTimestampMs;
    if (!this.reserved) await up.gate.turn(this.priority, signal);
    if (up.bucket) await up.bucket.take(unit.batch.sizeBytes + PRODUCE_REQUEST_OVERHEAD_BYTES, signal, this.reserved);
    if (signal.aborted) return false;
    // No cap: the others' floor counted in produce requests (host/sync/lanes.ts); an other's batch
    // is counted until answered or given up.
    const counted = !up.bucket && !up.lane.strict && up.lane.patterns.length > 0;
    if (counted) await up.lane.turn(this.reserved, signal);
    const uncount = () => {
      if (counted && !this.reserved) up.lane.answered();
    };
    const size = unit.batch.sizeBytes;
    await up.inFlightBytes.acquire(size, signal, this.reserved);
    if (signal.aborted || !up.mayForward(this.source)) {
      // In a cluster the lease and leadership are looked at again right before the write, not
      // only at the gate's last check: a process paused meanwhile (a long GC, SIGSTOP) must not
      // write on resuming. The gate then stops the link (and drops the connection).
      if (!signal.aborted) {
        const why = up.notForwardingWhy(this.source);
        const name = `${this.source.topic}-${this.source.partition}`;
        // logged as the gate logs its own stops: a restart after the handover is then explained
        up.log.info({ source: name, before: 'write' }, `uplink ${name}: stopping (${why.reason})`);
        void this.stop(why.state, why.reason);
      }
      up.inFlightBytes.release(size);
      uncount();
      return false;
    }
    let answer: Promise<Answer>;
    try {
      this.usedProducerId = up.producer.state.producerId;
      answer = (await up.producer.start(this.target.topic, this.target.partition, unit.batch, { firstSourceOffset: unit.first, lastSourceOffset: unit.last }, this.reserved)).answer;
    } catch (err) {
      up.inFlightBytes.release(size);
      uncount();
      throw err;
    }
    void answer.then(() => up.inFlightBytes.release(size)).finally(uncount);
    pipeline.push({ unit, answer });
    return true;
  }

  /**
   * Transactions mode: up to uplink.transactionBatchesMax planned batches of one read are one
   * transaction, sent pipelined, with the checkpoint record that covers the last of them
   * (uplink.checkpointTopic), committed before the next starts. Any failure goes to
   * `run`, whose next `resume` re-initialises the producer (fencing the old epoch) and reads the
   * committed state back.
   */
  private async forwardTransactions(): Promise<void> {
    const up = this.up;
    const cursor = this.cursor!;
    const signal = this.signal;
    while (!signal.aborted) {
      if (this.dropFloor > cursor.position) {
        this.noteDrop(cursor.position, this.dropFloor);
        cursor.seek(this.dropFloor);
      }
      if (cursor.caughtUp()) {
        await this.idle(cursor);
        continue;
      }
      this.state = 'forwarding';
      this.setBusy(true);
      const read = await cursor.readRaw();
      // Up to transactionBatchesMax batches of the read per transaction (txn-batch.ts).
      const txn = new TxnBatch<SendUnit>(Math.min(up.options.transactionBatchesMax, up.options.inFlightMax + up.options.queuedMax), up.inFlightBytes);
      let sent = false;
      try {
        for (const unit of this.plan(read.records, read.from)) {
          if (signal.aborted) return;
          if (!txn.fits(unit.batch.sizeBytes)) sent = (await this.commitTxn(txn)) || sent;
          // A transaction takes its priority turn once, at its first batch: waiting for the gate while
          // holding in-flight bytes could wait on a higher class that waits for those bytes.
          if (txn.empty()) {
            this.oldestUnsentMs = unit.firstTimestampMs;
            if (!this.reserved) await up.gate.turn(this.priority, signal);
          }
          if (up.bucket) await up.bucket.take(unit.batch.sizeBytes + PRODUCE_REQUEST_OVERHEAD_BYTES, signal, this.reserved);
          if (signal.aborted) return;
          await txn.add(unit, unit.batch.sizeBytes, signal);
          if (txn.full()) sent = (await this.commitTxn(txn)) || sent;
        }
        sent = (await this.commitTxn(txn)) || sent;
      } finally {
        txn.release(); // stopped mid-gathering: the bytes go back to the bound
      }
      if (!sent) this.position = read.nextOffset;
      up.stateFile.state.checkpoints[this.checkpointKey] = this.position;
    }
  }

  /** Commits the batches held in `txn` with the checkpoint after the last one, in one transaction; false when it held none. */
  private async commitTxn(txn: TxnBatch<SendUnit>): Promise<boolean> {
    const units = txn.take();
    if (units.length === 0) return false;
    const up = this.up;
    try {
      await this.txn!.commit(
        units.map((unit) => ({ topic: this.target.topic, partition: this.target.partition, batch: unit.batch })),
        [{ topic: up.options.checkpointTopic, partition: 0, batch: recordsOutgoing([checkpointRecord(this.origin, units[units.length - 1].last + 1)]) }],
      );
    } finally {
      txn.release();
    }
    for (const unit of units) this.acknowledged(unit);
    return true;
  }

  /** Caught up: the position is the cursor's, saved when it moved; waits for new records. */
  private async idle(cursor: PartitionCursor): Promise<void> {
    const up = this.up;
    this.position = cursor.position;
    up.stateFile.state.checkpoints[this.checkpointKey] = this.position;
    this.state = 'idle';
    this.oldestUnsentMs = null;
    this.setBusy(false);
    if (this.position !== this.savedPosition) {
      this.savedPosition = this.position;
      await up.stateFile.save();
    }
    await cursor.wait(up.options.pollWaitMs);
  }

  /** A batch the target acknowledged (or committed): counters, position and checkpoint move. */
  private acknowledged(unit: SendUnit): void {
    const up = this.up;
    up.noteSuccess();
    const n = unit.batch.recordCount;
    this.recordsSent += n;
    up.observer.sent(this, unit.batch.sizeBytes);
    up.metrics.records.inc({ site: up.options.site, topic: this.source.topic, partition: String(this.source.partition) }, n);
    up.metrics.batches.inc({ site: up.options.site, path: unit.raw ? 'raw' : 'reencoded' });
    const cp = up.stateFile.state.checkpoints;
    const bf = this.backfill;
    if (bf && unit.last < bf.split) {
      // A backfill batch (newest-first): its own checkpoint moves, not the head's position.
      bf.next = unit.last + 1;
      cp[`backfill:${this.checkpointKey}`] = bf.next;
      return;
    }
    this.position = unit.last + 1;
    cp[this.checkpointKey] = this.position;
    if (bf && bf.next >= bf.split) {
      // A head batch acknowledged after the backfill ended: the target's last record of the
      // partition is its highest again, so the plain read-back is exact and the split retires.
      for (const k of ['split', 'backfillFrom', 'backfill']) delete cp[`${k}:${this.checkpointKey}`];
      this.backfill = null;
      up.log.info({ source: `${this.source.topic}-${this.source.partition}`, split: bf.split }, 'uplink newest-first: backfill complete');
    }
  }

  /** Waits for the oldest batch's answer: acknowledged → position, checkpoint and counters move; else a PipelineError. */
  private async settleHead(pipeline: Array<{ unit: SendUnit; answer: Promise<Answer> }>): Promise<void> {
    const a = await pipeline[0].answer;
    if (!a.ok) throw new PipelineError(a.error.message);
    const { unit } = pipeline.shift()!;
    // The next unacknowledged batch is now the oldest; with none, the one just sent stands in
    // (an overestimate for a moment) until the next read or the catch-up says otherwise.
    if (pipeline.length > 0) this.oldestUnsentMs = pipeline[0].unit.firstTimestampMs;
    this.acknowledged(unit);
  }

  /**
   * The produces one read becomes, in source order: each stored batch that qualifies
   * (host/sync/raw-batch.ts) goes raw with the origin on its last record; runs of the others are
   * decoded, filtered (records below the position, control batches, records carrying this site's
   * origin) and re-encoded with per-record origin headers, split by batchRecordsMax/batchBytesMax.
   * A generator: at most one raw copy exists at a time.
   */
  private *plan(buf: Uint8Array, from: number, upTo = Number.MAX_SAFE_INTEGER): Generator<SendUnit> {
    const o = this.up.options;
    const limits = { recordsMin: o.rawBatchRecordsMin, bytesMax: o.batchBytesMax };
    const codec = codecOf(o.compression);
    let pending: DecodedRecord[] = [];
    const flush = function* (origin: Origin): Generator<SendUnit> {
      const stamped = pending.map((rec) => withOrigin(rec, origin));
      for (const part of splitBatches(stamped, o.batchRecordsMax, o.batchBytesMax)) {
        yield { raw: false, firstTimestampMs: pending[part.from].timestampMs, batch: reencodedOutgoing(part.records, codec), first: pending[part.from].offset, last: pending[part.from + part.records.length - 1].offset };
      }
      pending = [];
    };
    for (let pos = 0; pos + RECORDS <= buf.byteLength; ) {
      const h = readBatchHeader(buf, pos);
      if (pos + h.totalBytes > buf.byteLength) break; // a partial batch at the end is not ours to send
      if (h.baseOffset >= upTo) break; // past the range (a backfill ends at its split)
      if (h.lastOffset >= from) {
        if (o.rawForwarding && h.lastOffset < upTo && rawForwardable(buf, pos, h, from, this.origin, limits)) {
          if (pending.length > 0) yield* flush(this.origin);
          yield { raw: true, firstTimestampMs: h.baseTimestamp, batch: rawOutgoing(withBatchOrigin(buf, pos, h, this.origin), h.recordCount), first: h.baseOffset, last: h.lastOffset };
        } else if (!h.isControl) {
          for (const rec of decodeBatch(buf, pos).records) if (rec.offset >= from && rec.offset < upTo && !this.up.notForwarded.some((site) => carriesOrigin(rec, site))) pending.push(rec);
        }
      }
      pos += h.totalBytes;
    }
    if (pending.length > 0) yield* flush(this.origin);
  }
}

interface SendUnit {
  /** Forwarded as stored (true) or decoded and re-encoded. */
  raw: boolean;
  /** Timestamp of its first record (CreateTime): what the age of the oldest unsent record is measured from. */
  firstTimestampMs: number;
  batch: OutgoingBatch;
  /** First and last source offsets the produce covers. */
  first: number;
  last: number;
}

export { splitBatches } from './batches.js';
