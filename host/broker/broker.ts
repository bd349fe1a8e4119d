// The broker core: topics and their configs, one PartitionLog per partition, the write path
// (append, produce), the read path (read, offsets, listOffset, waitForData), the limits, and
// the background retention/compaction scheduler. Every door (Kafka, MQTT, WebSocket/HTTP)
// calls this through BrokerApi; it knows nothing of wire formats.
//
// Data dir layout (Kafka style):
//   <dataDir>/topics.json            topics, partition counts, config overrides (topic-registry.ts),
//                                    written by the metadata file store (metadata/file-store.ts)
//   <dataDir>/producer-ids           producer-id reservation mark (metadata/producer-ids-file.ts)
//   <dataDir>/broker.lock            kernel lock (flock) held by the broker using the dir, its pid inside (lock.ts)
//   <dataDir>/<topic>-<partition>/   one partition log (host/log)
//
// Topic changes are decide → propose → apply: topic-admin.ts checks the request against the
// metadata image and turns it into records (or a BrokerError), the metadata store makes them
// durable and applies them to its image, and the broker then opens or closes partitions.
//
// Concurrency: topic changes (create, delete, grow, alter) run one at a time through
// `admin()`; appends and reads run freely and each holds its partition (`Partition.use`) so a
// deletion or shutdown waits for them before closing files. Where a check and the action it
// guards must not be split, the comment says "no await between".
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging.js';
import type { MetricsRegistry } from '../metrics/registry.js';
import { BrokerError, asBrokerError } from '../errors/index.js';
import type { LogOptions } from '../log/api.js';
import { PartitionLog } from '../log/partition-log.js';
import { encodeBatch, CODEC_NAMES } from '../core/index.js';
import {
  EARLIEST_TIMESTAMP,
  LATEST_TIMESTAMP,
  MAX_TIMESTAMP,
  type Acks,
  type AppendOptions,
  type AppendResult,
  type AdminOptions,
  type AppendValidator,
  type AppendForwarder,
  type AppendAdmission,
  type BrokerApi,
  type CreatedTopic,
  type TopicConfigChanges,
  type TopicSpec,
  type BrokerHealth,
  type OffsetLookup,
  type Isolation,
  type PartitionOffsets,
  type PartitionState,
  type ReadOptions,
  type ReadResult,
  type RecordInput,
  type TopicConfig,
  type TopicInfo,
  type TopicPartition,
} from './api.js';
import { defaultBrokerOptions, validateBrokerOptions, type BrokerOptions } from './limits.js';
import { assertTopicName, isInternalTopic, isReplicatedTopic } from './topic-name.js';
import { brokerBatchCompression, defaultTopicConfig, effectiveTopicConfig, logOptionsFor } from './topic-config.js';
import { FileMetadataStore } from './metadata/file-store.js';
import type { MetadataStore } from './metadata/store.js';
import { partitionStateOf, type TopicImage } from './metadata/records.js';
import { decideAlterConfig, decideCreatePartitions, decideCreateTopic, decideDeleteTopic, refuseInternal, type AdminContext } from './topic-admin.js';
import { StickyPartitioner, partitionForKeyBytes } from './partitioner.js';
import { Partition, partitionDirName } from './partition.js';
import { WaiterRegistry } from './waiters.js';
import { BrokerMetrics, countRecords } from './broker-metrics.js';
import { DiskGuard } from './disk.js';
import { lockDataDir, unlockDataDir } from './lock.js';
import { isNoSpace } from '../log/appender.js';

export { defaultBrokerOptions, validateBrokerOptions, type BrokerOptions };

/** Kafka's EARLIEST_LOCAL_TIMESTAMP (KIP-405): with no tiered storage, the log start. */
const EARLIEST_LOCAL_TIMESTAMP = -4;
/** Single node: every batch is stamped with leader epoch 0 (replication will raise it). */
const LEADER_EPOCH = 0;

/** What Broker.open needs besides its options. */
export interface BrokerOpenDeps {
  logger: Logger;
  metrics: MetricsRegistry;
  identity?: NodeIdentityOptions;
  /**
   * Opens another metadata store than the one-node file store (a cluster's, host/cluster/), under
   * the data dir lock; the broker then also applies changes it did not propose (reconcile).
   */
  openMetadata?: (dataDir: string) => Promise<MetadataStore>;
  /** A cluster: user topics' partitions are replicated (leaders, followers, HW from the ISR). */
  replicated?: boolean;
}

/** Who this node is (configuration); the metadata image carries it. */
export interface NodeIdentityOptions {
  nodeId: number;
  clusterId: string;
}

interface TopicState {
  /** The topic as the metadata image has it (replaced, never mutated, on each change). */
  record: TopicImage;
  config: TopicConfig;
  partitions: Partition[];
  sticky: StickyPartitioner;
  internal: boolean;
}

export class Broker implements BrokerApi {
  private readonly topics = new Map<string, TopicState>();
  private readonly waiters: WaiterRegistry;
  private readonly metrics: BrokerMetrics;
  private readonly log: Logger;
  private readonly topicDefaults: TopicConfig;
  private pendingAppendBytes = 0;
  private partitionCount = 0;
  private adminTail: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private maintenanceTimer: NodeJS.Timeout | undefined;
  private maintenanceRun: Promise<void> | undefined;
  /** The data dir's free-space floor (disk.ts). */
  private readonly disk: DiskGuard;
  /** Set once every partition at start is open: a partition opened after that is a new one. */
  private opened = false;
  /** The metadata store's image also moves by other nodes' proposals (a cluster): reconcile follows it. */
  private followsMetadata = false;
  /** Ingest validation (host/schemas installs it); consulted only for topics that ask for it. */
  private validator: AppendValidator | undefined;
  /** Appends to partitions another node leads go there (a cluster; host/cluster/forward.ts). */
  private forwarder: AppendForwarder | undefined;
  /** The uplink's budget (host/sync/budget.ts): consulted on every client append and by retention. */
  private admission: AppendAdmission | undefined;
  /** Told after leadership was applied to open partitions (host/cluster's replica manager). */
  private readonly leadershipListeners = new Set<(partitions: Partition[]) => void>();

  private constructor(
    readonly options: BrokerOptions,
    private readonly dataDir: string,
    /** Topics, configs and producer-id blocks as records applied to a store (host/broker/metadata/). */
    readonly metadata: MetadataStore,
    private readonly deps: { logger: Logger; metrics: MetricsRegistry; replicated?: boolean },
  ) {
    // The caller's logger as given (host/node.ts already tags it component=broker).
    this.log = deps.logger;
    this.metrics = new BrokerMetrics(deps.metrics);
    this.waiters = new WaiterRegistry(options.maxWaitingReaders);
    this.topicDefaults = effectiveTopicConfig(defaultTopicConfig, options.topicDefaults);
    this.disk = new DiskGuard(dataDir, options, deps.logger.child({ component: 'disk' }), deps.metrics);
  }

  /**
   * Validates the options, locks the data dir, reads topics.json, finishes any topic deletion
   * a crash interrupted, opens (and so recovers) every partition, and starts the retention
   * scheduler.
   */
  static async open(options: Partial<BrokerOptions>, deps: BrokerOpenDeps): Promise<Broker> {
    const valid = validateBrokerOptions(options);
    const dataDir = resolve(valid.dataDir);
    const fileStore = deps.openMetadata ? undefined : await FileMetadataStore.open(dataDir, { identity: deps.identity });
    await lockDataDir(dataDir, (msg) => deps.logger.warn(msg));
    let broker: Broker | undefined;
    try {
      // A replicated store opens under the lock: it writes files in the data dir at once.
      const metadata = fileStore ?? (await deps.openMetadata!(dataDir));
      broker = new Broker(valid, dataDir, metadata, deps);
      // Measured first: on a full disk the broker still starts (read-only) and says which path is full.
      await broker.disk.start();
      await broker.finishPendingDeletes();
      await broker.openAll();
      broker.opened = true;
      // A replicated store's image also moves by other nodes' proposals: follow it.
      if (deps.openMetadata) broker.followMetadata();
      broker.scheduleMaintenance();
      return broker;
    } catch (err) {
      broker?.disk.stop();
      if (broker) await broker.closeLogs().catch(() => undefined);
      await unlockDataDir(dataDir);
      throw err;
    }
  }

  // --- topics -------------------------------------------------------------------------------

  listTopics(): TopicInfo[] {
    return [...this.topics.values()].map((t) => this.info(t));
  }

  describeTopic(topic: string): TopicInfo | undefined {
    const t = this.topics.get(topic);
    return t ? this.info(t) : undefined;
  }

  /** Everything a create checks (name, shape, counts, replication, configs, limits), nothing created. */
  validateCreateTopic(topic: string, partitions: number, config?: Partial<TopicConfig>): void {
    this.assertOpen();
    decideCreateTopic({ name: topic, partitions, config }, this.adminContext(false));
  }

  async createTopic(topic: string, partitions: number, config?: Partial<TopicConfig>, options: { internal?: boolean } = {}): Promise<TopicInfo> {
    // TopicInfo only: replication and assignment are createTopicFrom's extra answer.
    const { replicationFactor: _factor, assignment: _assignment, ...info } = await this.createTopicFrom({ name: topic, partitions, config: config as Record<string, unknown> | undefined }, { internal: options.internal ?? true });
    return info;
  }

  async createTopicFrom(spec: TopicSpec, options: AdminOptions = {}): Promise<CreatedTopic> {
    this.assertOpen();
    return this.admin(async () => {
      try {
        return await this.createTopicNow(spec, options);
      } catch (err) {
        // In a cluster another node's create may be applied here but not opened yet: a caller
        // told "exists" may use the topic at once, so open it before answering.
        if (err instanceof BrokerError && err.code === 'TOPIC_ALREADY_EXISTS' && this.followsMetadata && !this.topics.has(spec.name)) await this.reconcile();
        throw err;
      }
    });
  }

  private async createTopicNow(spec: TopicSpec, options: AdminOptions): Promise<CreatedTopic> {
    const decision = decideCreateTopic(spec, { ...this.adminContext(!options.validateOnly), internal: options.internal === true });
    const created = (info: TopicInfo): CreatedTopic => ({ ...info, replicationFactor: decision.replicationFactor, assignment: decision.assignment });
    if (options.validateOnly) {
      const config = effectiveTopicConfig(this.topicDefaults, decision.overrides);
      return created({ name: spec.name, partitions: decision.partitions, config, internal: isInternalTopic(spec.name), overrides: { ...decision.overrides } });
    }
    const topic = spec.name;
    await this.removeLeftoverDirs(topic, 0, decision.partitions);
    // Recorded first: a crash from here on leaves a topic whose empty partitions open at start.
    const image = await this.metadata.propose(decision.records);
    const state = this.newTopicState(image.topics.get(topic)!);
    try {
      state.partitions = await this.openPartitions(topic, state.config, 0, decision.partitions);
    } catch (err) {
      await this.undoCreate(state.record).catch(() => undefined);
      throw storageError(`cannot create the partitions of ${topic}`, err);
    }
    this.topics.set(topic, state);
    this.partitionCount += decision.partitions;
    this.applyLeadership(state);
    this.updateTopicGauges();
    this.log.info({ topic, partitions: decision.partitions, overrides: decision.overrides }, 'topic created');
    return created(this.info(state));
  }

  async deleteTopic(topic: string, options: AdminOptions = {}): Promise<void> {
    this.assertOpen();
    await this.admin(async () => {
      const remove = decideDeleteTopic(topic, this.adminContext(!options.validateOnly));
      if (options.validateOnly) return;
      const state = this.topics.get(topic)!;
      // Recorded (and pending in this node's bookkeeping) first: a crash from here on finishes
      // the deletion at next start. On a disk too full for even that write, the files go first
      // and the record after (the deletion is how an operator frees space): a crash in between
      // brings the topic back empty, which is what the deletion asked for apart from the name.
      let recordedFirst = true;
      try {
        await this.metadata.propose([remove]);
      } catch (err) {
        if (!isNoSpace(err)) throw err;
        recordedFirst = false;
        this.log.warn({ topic, err: (err as Error).message }, "disk full: deleting the topic's files before recording the deletion");
      }
      // No await between the record taking effect above and this removal that matters: new
      // calls already see the topic as gone once the map entry goes.
      this.topics.delete(topic);
      this.partitionCount -= state.partitions.length;
      this.updateTopicGauges();
      await this.destroyPartitions(state.partitions);
      if (!recordedFirst) await this.metadata.propose([remove]);
      await this.metadata.deletionDone(topic, remove.topicId);
      if (!recordedFirst) void this.disk.check();
      this.log.info({ topic, partitions: state.partitions.length }, 'topic deleted');
    });
  }

  async createPartitions(topic: string, totalCount: number, options: AdminOptions & { assignment?: number[][] } = {}): Promise<void> {
    this.assertOpen();
    await this.admin(async () => {
      const change = decideCreatePartitions(topic, totalCount, options.assignment, this.adminContext(!options.validateOnly));
      if (options.validateOnly) return;
      const state = this.topics.get(topic)!;
      const current = state.partitions.length;
      await this.removeLeftoverDirs(topic, current, totalCount);
      state.record = (await this.metadata.propose([change])).topics.get(topic)!;
      let added: Partition[];
      try {
        added = await this.openPartitions(topic, state.config, current, totalCount);
      } catch (err) {
        // Back to the old count (the broker's own rollback; requests can only grow a topic).
        await this.metadata
          .propose([{ type: 'partitionCount', topic, partitions: current, assignment: [] }])
          .then((image) => void (state.record = image.topics.get(topic)!))
          .catch(() => undefined);
        throw storageError(`cannot add partitions to ${topic}`, err);
      }
      state.partitions.push(...added);
      this.partitionCount += added.length;
      this.applyLeadership(state);
      this.updateTopicGauges();
      this.log.info({ topic, from: current, to: totalCount }, 'partitions added');
    });
  }

  async alterTopicConfig(topic: string, changes: TopicConfigChanges, options: AdminOptions = {}): Promise<TopicInfo> {
    this.assertOpen();
    return this.admin(async () => {
      const records = decideAlterConfig(topic, changes, this.adminContext(!options.validateOnly));
      const state = this.topics.get(topic)!;
      if (options.validateOnly) return this.info(state);
      const image = await this.metadata.propose(records);
      state.record = image.topics.get(topic)!;
      state.config = effectiveTopicConfig(this.topicDefaults, state.record.overrides);
      const logOptions = this.logOptions(state.config);
      for (const p of state.partitions) p.log.updateOptions(logOptions);
      this.log.info({ topic, changes }, 'topic config altered');
      return this.info(state);
    });
  }

  async ensureTopic(topic: string): Promise<TopicInfo> {
    return this.ensure(topic, false);
  }

  /** ensureTopic; `internal`: the caller is the broker's own component (may auto-create an internal topic). */
  private async ensure(topic: string, internal: boolean): Promise<TopicInfo> {
    const existing = this.topics.get(topic);
    if (existing) return this.info(existing);
    this.assertOpen();
    if (!this.options.autoCreateTopics) {
      throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${topic} does not exist (auto-creation is off)`);
    }
    assertTopicName(topic);
    // Auto-creation is a client's doing (a produce, a Metadata request): never an internal topic.
    refuseInternal(topic, 'created', { internal });
    try {
      return await this.createTopic(topic, this.options.defaultPartitions, undefined, { internal });
    } catch (err) {
      // Another caller created it between our look and our create: theirs is ours.
      const now = this.topics.get(topic);
      if (err instanceof BrokerError && err.code === 'TOPIC_ALREADY_EXISTS' && now) return this.info(now);
      throw err;
    }
  }

  // --- the write path -----------------------------------------------------------------------

  /** Installs (or removes, undefined) the cluster's append forwarding to partition leaders (host/cluster/forward.ts). */
  setAppendForwarder(forwarder: AppendForwarder | undefined): void {
    this.forwarder = forwarder;
  }

  /** Installs the ingest validation hook (one per broker; the schema registry's). */
  setAppendValidator(validator: AppendValidator | undefined): void {
    this.validator = validator;
  }

  setAppendAdmission(admission: AppendAdmission | undefined): void {
    this.admission = admission;
  }

  /** The topic's config when a client write to it must be validated first, else undefined. */
  private validationConfig(topic: string, options: AppendOptions): TopicConfig | undefined {
    if (!this.validator || options?.internal === true) return undefined;
    const config = this.topics.get(topic)?.config;
    return config && config['schema.validation'] !== 'off' ? config : undefined;
  }

  async append(tp: TopicPartition, batches: Uint8Array, options: AppendOptions): Promise<AppendResult> {
    const config = this.validationConfig(tp.topic, options);
    if (config && batches instanceof Uint8Array) {
      try {
        // Awaited only when the validator needs to (a refusal being dead-lettered): an accepted
        // batch reaches the log in the same tick, so appends keep their call order.
        const pending = this.validator!.checkBatches(tp, batches, config);
        if (pending) await pending;
      } catch (err) {
        const e = asBrokerError(err);
        this.metrics.appendErrors.inc({ code: e.code });
        throw e;
      }
    }
    return this.appendValidated(tp, batches, options);
  }

  /** The write path after validation: `append` for clients' batches, `produce` for the broker's own encodes. */
  private async appendValidated(tp: TopicPartition, batches: Uint8Array, options: AppendOptions): Promise<AppendResult> {
    const started = performance.now();
    try {
      this.assertOpen();
      const acks = checkAcks(options?.acks);
      checkWritable(tp.topic, options);
      const partition = this.partition(tp);
      if (!(batches instanceof Uint8Array) || batches.byteLength === 0) {
        throw new BrokerError('CORRUPT_MESSAGE', `append to ${tp.topic}-${tp.partition}: no record batch bytes`);
      }
      // A cluster: another node leads this partition; every door but Kafka's goes there (forward.ts).
      if (partition.role !== 'leader' && this.forwarder && options?.leaderOnly !== true) return await this.forwardAppend(tp, batches, options);
      // The broker's own compacted topics keep working below the floor (disk.ts says why).
      if (options?.internal !== true) this.disk.assertWritable(`append to ${tp.topic}-${tp.partition}`);
      const waitForIsr = this.checkReplicas(tp, partition, acks);
      const bytes = batches.byteLength;
      // The uplink's budget: no await between its check and the append below reaching the log;
      // the bytes it counts as landing are handed back once the write returned or failed.
      const admission = options?.internal !== true ? this.admission : undefined;
      const landing = admission ? admission.admit(tp, bytes) : 0;
      // No await between this check and the increment: the limit holds under concurrency.
      if (this.pendingAppendBytes + bytes > this.options.maxPendingAppendBytes) {
        if (landing > 0) admission!.landed(tp, landing);
        this.refusedBy('maxPendingAppendBytes');
        throw new BrokerError(
          'LIMIT_EXCEEDED',
          `broker busy: ${this.pendingAppendBytes} bytes of appends are waiting for their flush and ${bytes} more would pass maxPendingAppendBytes=${this.options.maxPendingAppendBytes}; retry`,
        );
      }
      this.pendingAppendBytes += bytes;
      this.metrics.pendingAppendBytes.set(this.pendingAppendBytes);
      let info;
      const leaderEpoch = partition.leaderEpoch;
      try {
        try {
          info = await partition.use((log) => log.appendAsLeader(batches, { leaderEpoch, durable: acks !== 0 }));
        } finally {
          if (landing > 0) admission!.landed(tp, landing);
        }
        // acks=all: the bytes stay counted (maxPendingAppendBytes bounds the waiting batches too).
        if (waitForIsr) {
          // Leadership moved while the batch waited for the disk: the waiters were failed before
          // this one existed, and as a follower this log's HW would soon pass an offset the new
          // leader holds another record at (a false acknowledgement). No await between this check
          // and the waiter's registration: a later move fails it (Partition.becomeFollower).
          if (partition.role !== 'leader' || partition.leaderEpoch !== leaderEpoch) {
            throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `${tp.topic}-${tp.partition}: leadership moved (leader ${partition.leaderId}, epoch ${partition.leaderEpoch}) while the batch was written in epoch ${leaderEpoch}; the outcome of the write is unknown`);
          }
          await partition.awaitHighWatermark(info.lastOffset + 1, options.timeoutMs ?? this.options.ackTimeoutMs);
          this.checkInSyncAfterAppend(tp, partition);
        }
      } finally {
        this.pendingAppendBytes -= bytes;
        this.metrics.pendingAppendBytes.set(this.pendingAppendBytes);
      }
      const labels = { topic: tp.topic };
      if (!info.duplicate) {
        this.metrics.bytesIn.inc(labels, bytes);
        this.metrics.noteAppended(bytes);
        this.metrics.recordsIn.inc(labels, info.recordCount);
      }
      this.metrics.appends.inc(labels);
      this.metrics.appendLatencyMs.observe(performance.now() - started);
      return {
        baseOffset: info.baseOffset,
        lastOffset: info.lastOffset,
        logAppendTimeMs: info.logAppendTimeMs,
        logStartOffset: partition.log.logStartOffset,
      };
    } catch (err) {
      const e = asBrokerError(err);
      this.metrics.appendErrors.inc({ code: e.code });
      // A write that met ENOSPC while the floor had not yet been crossed (a floor refusal needs no new statfs).
      if (e.code === 'STORAGE_FULL' && !this.disk.current.belowFloor) this.disk.noteNoSpace();
      throw e;
    }
  }

  /**
   * An append this node cannot make (it does not lead the partition) handed to the forwarder.
   * Its bytes count against maxPendingAppendBytes while it travels (they are held here until
   * the leader answers), released before a local append should this node become the leader.
   */
  private async forwardAppend(tp: TopicPartition, batches: Uint8Array, options: AppendOptions): Promise<AppendResult> {
    const bytes = batches.byteLength;
    // No await between this check and the increment: the limit holds under concurrency.
    if (this.pendingAppendBytes + bytes > this.options.maxPendingAppendBytes) {
      this.refusedBy('maxPendingAppendBytes');
      throw new BrokerError('LIMIT_EXCEEDED', `broker busy: ${this.pendingAppendBytes} bytes of appends are pending and ${bytes} more would pass maxPendingAppendBytes=${this.options.maxPendingAppendBytes}; retry`);
    }
    this.pendingAppendBytes += bytes;
    this.metrics.pendingAppendBytes.set(this.pendingAppendBytes);
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.pendingAppendBytes -= bytes;
      this.metrics.pendingAppendBytes.set(this.pendingAppendBytes);
    };
    try {
      const local = () => (release(), this.appendValidated(tp, batches, { ...options, leaderOnly: true }));
      return await this.forwarder!.forward(tp, batches, options, local);
    } finally {
      release();
    }
  }

  /**
   * Only the leader appends (NOT_LEADER_OR_FOLLOWER elsewhere, so a client re-routes). acks=all
   * on a replicated partition needs min.insync.replicas in the ISR (capped by the replication
   * factor), else NOT_ENOUGH_REPLICAS before anything is written; returns whether the append
   * must then wait for the high watermark.
   */
  private checkReplicas(tp: TopicPartition, partition: Partition, acks: Acks): boolean {
    if (partition.role !== 'leader') {
      throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `this node is not the leader of ${tp.topic}-${tp.partition} (leader ${partition.leaderId}, epoch ${partition.leaderEpoch})`);
    }
    if (acks !== -1 || partition.hwFollowsLogEnd) return false;
    const config = this.topics.get(tp.topic)!.config;
    const needed = Math.min(config['min.insync.replicas'], Math.max(1, partition.replicas.length));
    if (partition.isr.length < needed) {
      throw new BrokerError('NOT_ENOUGH_REPLICAS', `${tp.topic}-${tp.partition} has ${partition.isr.length} in-sync replica(s) [${partition.isr.join(', ')}]; acks=all needs min.insync.replicas=${needed}`);
    }
    return true;
  }

  /**
   * The HW passing an acks=all batch is not enough when the ISR shrank below
   * min.insync.replicas while it waited (this leader learnt of the shrink after admitting the
   * batch): the batch is on too few disks, so it is not acknowledged (Kafka's
   * NOT_ENOUGH_REPLICAS_AFTER_APPEND; a retry is refused up front with NOT_ENOUGH_REPLICAS).
   */
  private checkInSyncAfterAppend(tp: TopicPartition, partition: Partition): void {
    const needed = Math.min(this.topics.get(tp.topic)?.config['min.insync.replicas'] ?? 1, Math.max(1, partition.replicas.length));
    if (partition.isr.length < needed) {
      throw new BrokerError('NOT_ENOUGH_REPLICAS_AFTER_APPEND', `${tp.topic}-${tp.partition}: the in-sync replicas fell to ${partition.isr.length} [${partition.isr.join(', ')}] while the batch waited; acks=all needs min.insync.replicas=${needed}`);
    }
  }

  async produce(topic: string, records: RecordInput[], options: AppendOptions & { partition?: number }): Promise<Array<TopicPartition & { offset: number }>> {
    this.assertOpen();
    checkAcks(options?.acks);
    if (!Array.isArray(records)) throw new BrokerError('INVALID_RECORD', 'records must be an array');
    if (records.length > this.options.maxRecordsPerProduce) {
      this.refusedBy('maxRecordsPerProduce');
      throw new BrokerError('RECORD_LIST_TOO_LARGE', `${records.length} records in one produce call; at most ${this.options.maxRecordsPerProduce} (maxRecordsPerProduce)`);
    }
    records.forEach(checkRecord);
    checkWritable(topic, options);
    // An existing topic costs no await: the appends below reach the log in this same tick.
    if (!this.topics.has(topic)) await this.ensure(topic, options?.internal === true);
    if (records.length === 0) return [];
    const validation = this.validationConfig(topic, options);
    if (validation) {
      const pending = this.validator!.checkRecords(topic, records, validation);
      if (pending) await pending;
    }
    const state = this.topics.get(topic);
    if (!state) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${topic} was deleted`);
    const count = state.partitions.length;
    const explicit = options.partition;
    if (explicit !== undefined && (!Number.isSafeInteger(explicit) || explicit < 0 || explicit >= count)) {
      throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${topic} has no partition ${explicit} (partitions 0..${count - 1})`);
    }

    // Pick each record's partition, then group: one batch per partition, input order kept.
    const chosen = new Array<number>(records.length);
    state.sticky.beginCall();
    const groups = new Map<number, number[]>();
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      const p = explicit ?? (r.key ? partitionForKeyBytes(r.key, count) : state.sticky.pick(count, approxRecordBytes(r)));
      chosen[i] = p;
      let g = groups.get(p);
      if (!g) groups.set(p, (g = []));
      g.push(i);
    }

    const codec = CODEC_NAMES.indexOf(brokerBatchCompression(state.config['compression.type'])) as 0 | 1 | 2 | 3 | 4;
    const baseOffsets = new Map<number, number>();
    const settled = await Promise.allSettled(
      [...groups].map(async ([p, indices]) => {
        const batch = encodeBatch(
          indices.map((i) => records[i]),
          { compression: codec },
        );
        const result = await this.appendValidated({ topic, partition: p }, batch, options);
        baseOffsets.set(p, result.baseOffset);
      }),
    );
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw asBrokerError(failed.reason);

    const positionInGroup = new Map<number, number>();
    return chosen.map((p) => {
      const k = positionInGroup.get(p) ?? 0;
      positionInGroup.set(p, k + 1);
      return { topic, partition: p, offset: baseOffsets.get(p)! + k };
    });
  }

  partitionForKey(topic: string, key: Uint8Array | null): number {
    const state = this.topics.get(topic);
    if (!state) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${topic} does not exist`);
    const count = state.partitions.length;
    if (key === null || key === undefined) return state.sticky.pick(count, 0);
    if (!(key instanceof Uint8Array)) throw new BrokerError('INVALID_RECORD', 'a record key must be bytes or null');
    return partitionForKeyBytes(key, count);
  }

  // --- the read path ------------------------------------------------------------------------

  async read(tp: TopicPartition, offset: number, options: ReadOptions): Promise<ReadResult> {
    this.assertOpen();
    const partition = this.partition(tp);
    const maxBytesAsked = options?.maxBytes;
    if (!Number.isSafeInteger(maxBytesAsked) || maxBytesAsked < 0) {
      throw new BrokerError('INVALID_FETCH_SIZE', `maxBytes must be a non-negative integer, got ${maxBytesAsked}`);
    }
    const maxBytes = Math.min(maxBytesAsked, this.options.maxReadBytes);
    const log = partition.log;
    const isolation = options.isolation ?? 'committed';
    // A follower may ask from anywhere up to the written end (its own log may be ahead of the leader's fsync).
    const end = isolation === 'written' ? log.writtenEndOffset : log.logEndOffset;
    if (!Number.isSafeInteger(offset) || offset < log.logStartOffset || offset > end) {
      throw new BrokerError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside ${tp.topic}-${tp.partition}'s log [${log.logStartOffset}, ${end}]`);
    }
    // Visibility in one place (visibleEndOf): taken before the read, so a caller waiting past it misses nothing that came during the read.
    const upTo = visibleEndOf(partition, isolation);
    // A damaged batch of an internal topic is skipped, never a reason to stay down (issue 14);
    // a follower's read fails there instead, so its copy never gets a gap and never catches up.
    const replica = isolation !== 'committed';
    const damage = { skipDamaged: isInternalTopic(tp.topic) && !replica, failOnDamage: replica, throughWritten: isolation === 'written' };
    const result = await partition.use((l) => l.read(offset, maxBytes, upTo, damage));
    const labels = { topic: tp.topic };
    this.metrics.reads.inc(labels);
    if (result.records.byteLength > 0) {
      this.metrics.bytesOut.inc(labels, result.records.byteLength);
      this.metrics.recordsOut.inc(labels, countRecords(result.records));
    }
    return { records: result.records, nextOffset: result.nextOffset, visibleEnd: upTo, ...offsetsOf(partition) };
  }

  offsets(tp: TopicPartition): PartitionOffsets {
    return offsetsOf(this.partition(tp));
  }

  visibleEnd(tp: TopicPartition, isolation: Isolation): number {
    return visibleEndOf(this.partition(tp), isolation);
  }

  bytesBetween(tp: TopicPartition, fromOffset: number, toOffset?: number): number {
    const log = this.partition(tp).log;
    return log.bytesBetween(fromOffset, toOffset ?? log.logEndOffset);
  }

  partitionState(tp: TopicPartition): PartitionState {
    return this.partition(tp).state();
  }

  replicaFetched(tp: TopicPartition, replicaId: number, fetchOffset: number, currentLeaderEpoch: number, durableEndOffset?: number): void {
    const partition = this.partition(tp);
    if (partition.role !== 'leader') throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `this node is not the leader of ${tp.topic}-${tp.partition} (leader ${partition.leaderId})`);
    this.checkLeaderEpoch(tp, currentLeaderEpoch);
    partition.followerFetched(replicaId, fetchOffset, Date.now(), durableEndOffset);
  }

  checkLeaderEpoch(tp: TopicPartition, currentLeaderEpoch: number): void {
    const partition = this.partition(tp);
    if (currentLeaderEpoch < 0) return;
    if (currentLeaderEpoch < partition.leaderEpoch) throw new BrokerError('FENCED_LEADER_EPOCH', `${tp.topic}-${tp.partition}: leader epoch ${currentLeaderEpoch} is older than ${partition.leaderEpoch}; refresh metadata`);
    if (currentLeaderEpoch > partition.leaderEpoch) throw new BrokerError('UNKNOWN_LEADER_EPOCH', `${tp.topic}-${tp.partition}: leader epoch ${currentLeaderEpoch} is newer than this replica knows (${partition.leaderEpoch}); retry`);
  }

  endOffsetForEpoch(tp: TopicPartition, epoch: number): { epoch: number; endOffset: number } {
    const partition = this.partition(tp);
    const log = partition.log;
    const found = log.endOffsetForEpoch(epoch);
    if (found.epoch >= 0 || partition.role !== 'leader' || epoch < 0) return found;
    // A leader that has not appended in its own epoch yet: its log's epochs end at the log end
    // (Kafka writes the new epoch into its cache on becoming leader; ours does on the first append).
    const entries = log.leaderEpochEntries();
    if (epoch <= partition.leaderEpoch) return { epoch: epoch === partition.leaderEpoch ? epoch : (entries.at(-1)?.epoch ?? -1), endOffset: log.logEndOffset };
    return found;
  }

  /** The partition object itself (replica state and HW control), for the broker's own parts and tests. */
  partitionObject(tp: TopicPartition): Partition {
    return this.partition(tp);
  }

  async listOffset(tp: TopicPartition, timestampMs: number): Promise<OffsetLookup> {
    this.assertOpen();
    const partition = this.partition(tp);
    const log = partition.log;
    if (timestampMs === LATEST_TIMESTAMP) return { offset: log.logEndOffset, timestampMs: -1 };
    if (timestampMs === EARLIEST_TIMESTAMP || timestampMs === EARLIEST_LOCAL_TIMESTAMP) return { offset: log.logStartOffset, timestampMs: -1 };
    if (timestampMs === MAX_TIMESTAMP) return log.maxTimestamp() ?? { offset: -1, timestampMs: -1 };
    if (!Number.isSafeInteger(timestampMs) || timestampMs < 0) {
      throw new BrokerError('INVALID_REQUEST', `timestamp ${timestampMs}: expected ms since the epoch, or -1 (latest), -2 (earliest), -3 (max timestamp)`);
    }
    const found = await partition.use((l) => l.offsetForTimestamp(timestampMs));
    return found ?? { offset: -1, timestampMs: -1 };
  }

  /**
   * Resolves once some position's partition has a record at `afterOffset` or later (its log
   * end offset > afterOffset), or after maxWaitMs (clamped to maxWaitMsMax), or on abort.
   */
  async waitForData(positions: Array<TopicPartition & { afterOffset: number }>, maxWaitMs: number, signal?: AbortSignal, isolation: Isolation = 'committed'): Promise<void> {
    if (this.closing) return;
    const lists = positions.map((pos) => {
      const partition = this.partition(pos);
      const list = isolation === 'committed' ? partition.waiters : isolation === 'written' ? partition.writtenWaiters : partition.logEndWaiters;
      return { partition, list, afterOffset: pos.afterOffset };
    });
    // No await between this check and parking: an append cannot slip in between.
    if (lists.some((l) => visibleEndOf(l.partition, isolation) > l.afterOffset)) return;
    const waitMs = Number.isFinite(maxWaitMs) ? Math.min(Math.max(0, Math.floor(maxWaitMs)), this.options.maxWaitMsMax) : 0;
    let parked;
    try {
      parked = this.waiters.wait(lists, waitMs, signal);
    } finally {
      this.metrics.waitingReaders.set(this.waiters.size);
    }
    try {
      await parked;
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'LIMIT_EXCEEDED') this.refusedBy('maxWaitingReaders');
      throw err;
    } finally {
      this.metrics.waitingReaders.set(this.waiters.size);
    }
  }

  // --- life ---------------------------------------------------------------------------------

  /** Stops the scheduler, wakes every waiting reader, lets in-flight calls finish, closes every log. */
  health(): BrokerHealth {
    const failedPartitions: string[] = [];
    for (const t of this.topics.values()) {
      for (const p of t.partitions) if (p.log.failed) failedPartitions.push(`${p.tp.topic}-${p.tp.partition}: ${p.log.failed.message}`);
    }
    return { failedPartitions, disk: { ...this.disk.current } };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.disk.stop();
      if (this.maintenanceTimer) clearTimeout(this.maintenanceTimer);
      await this.maintenanceRun;
      await this.adminTail.catch(() => undefined);
      for (const t of this.topics.values()) for (const p of t.partitions) p.wakeAll('shutdown');
      try {
        await this.closeLogs();
      } finally {
        await unlockDataDir(this.dataDir);
        this.log.info({ dataDir: this.dataDir }, 'broker closed');
      }
    })();
    return this.closing;
  }

  /** Bytes of appends waiting for their flush right now (tests, metrics). */
  get pendingBytes(): number {
    return this.pendingAppendBytes;
  }

  /** Readers parked in waitForData right now. */
  get waitingReaders(): number {
    return this.waiters.size;
  }

  /**
   * One retention/compaction pass over every partition (what the scheduler runs every
   * retentionCheckIntervalMs). If a pass is already running, waits for it instead of overlapping.
   */
  async runMaintenance(nowMs = Date.now()): Promise<void> {
    if (this.maintenanceRun) return this.maintenanceRun;
    this.maintenanceRun = this.maintain(nowMs).finally(() => {
      this.maintenanceRun = undefined;
    });
    return this.maintenanceRun;
  }

  // --- internals ----------------------------------------------------------------------------

  private info(t: TopicState): TopicInfo {
    return {
      name: t.record.name,
      partitions: t.partitions.length,
      config: { ...t.config },
      internal: t.internal,
      topicId: t.record.topicId,
      overrides: { ...t.record.overrides },
    };
  }

  private assertOpen(): void {
    if (this.closing) throw new BrokerError('LEADER_NOT_AVAILABLE', 'the broker is shutting down');
  }

  private partition(tp: TopicPartition): Partition {
    const p = this.topics.get(tp?.topic)?.partitions[tp.partition];
    if (!p || !Number.isInteger(tp.partition)) {
      const t = this.topics.get(tp?.topic);
      throw new BrokerError(
        'UNKNOWN_TOPIC_OR_PARTITION',
        t ? `topic ${tp.topic} has no partition ${tp.partition} (partitions 0..${t.partitions.length - 1})` : `topic ${tp?.topic} does not exist`,
      );
    }
    return p;
  }

  /** Runs topic changes one at a time, in call order. */
  private admin<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.adminTail.then(() => {
      this.assertOpen();
      return fn();
    }).catch((err: unknown) => {
      // A metadata write (topics.json, a new partition's files) that met a full disk.
      if (isNoSpace(err) && !(err instanceof BrokerError)) {
        this.disk.noteNoSpace();
        throw new BrokerError('STORAGE_FULL', `the data dir ${this.dataDir} is full (${(err as NodeJS.ErrnoException).code}): ${(err as Error).message}`, { cause: err });
      }
      throw err;
    });
    this.adminTail = run.catch(() => undefined);
    return run;
  }

  private refusedBy(limit: string): void {
    this.metrics.limitRefusals.inc({ limit });
  }

  /** What the deciding half (topic-admin.ts) checks against: the image now and the limits. */
  private adminContext(counting: boolean): AdminContext {
    const o = this.options;
    return {
      image: this.metadata.image(),
      limits: { defaultPartitions: o.defaultPartitions, maxPartitionsPerTopic: o.maxPartitionsPerTopic, maxPartitionsTotal: o.maxPartitionsTotal, maxTopics: o.maxTopics, maxMessageBytesMax: o.maxMessageBytesMax },
      refused: (limit) => (counting ? this.refusedBy(limit) : undefined),
      newTopicId: () => randomUUID(),
      nowMs: () => Date.now(),
    };
  }

  /** Applies, after the admin work queued before it, every metadata change another node made. */
  private followMetadata(): void {
    this.followsMetadata = true;
    this.metadata.onChange(() => {
      if (this.closing) return;
      this.admin(() => this.reconcile()).catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'could not apply a metadata change from the cluster'));
    });
  }

  /**
   * Makes the open partitions match the metadata image: topics created, grown, reconfigured or
   * removed by any node. Idempotent (a change this node made itself is already done); runs
   * inside admin(), so it never interleaves with a local topic change.
   */
  private async reconcile(): Promise<void> {
    const image = this.metadata.image();
    for (const [name, state] of [...this.topics]) {
      if (image.topics.get(name)?.topicId === state.record.topicId) continue;
      this.topics.delete(name);
      this.partitionCount -= state.partitions.length;
      await this.destroyPartitions(state.partitions);
      await this.metadata.deletionDone(name, state.record.topicId);
      this.log.info({ topic: name }, 'topic deleted (cluster metadata)');
    }
    for (const record of image.topics.values()) {
      const state = this.topics.get(record.name);
      if (!state) {
        await this.removeLeftoverDirs(record.name, 0, record.partitions);
        const created = this.newTopicState(record);
        created.partitions = await this.openPartitions(record.name, created.config, 0, record.partitions);
        this.topics.set(record.name, created);
        this.partitionCount += record.partitions;
        this.log.info({ topic: record.name, partitions: record.partitions }, 'topic created (cluster metadata)');
        continue;
      }
      if (record.partitions > state.partitions.length) {
        const from = state.partitions.length;
        await this.removeLeftoverDirs(record.name, from, record.partitions);
        state.partitions.push(...(await this.openPartitions(record.name, state.config, from, record.partitions)));
        this.partitionCount += record.partitions - from;
      }
      if (record !== state.record) {
        state.record = record;
        state.config = effectiveTopicConfig(this.topicDefaults, record.overrides);
        const logOptions = this.logOptions(state.config);
        for (const p of state.partitions) p.log.updateOptions(logOptions);
      }
    }
    for (const state of this.topics.values()) this.applyLeadership(state);
    this.updateTopicGauges();
  }

  /** A create whose partitions could not be opened: the topic goes again, with its directories. */
  private async undoCreate(record: TopicImage): Promise<void> {
    await this.metadata.propose([{ type: 'removeTopic', name: record.name, topicId: record.topicId }]);
    for (let i = 0; i < record.partitions; i++) await rm(join(this.dataDir, partitionDirName(record.name, i)), { recursive: true, force: true });
    await this.metadata.deletionDone(record.name, record.topicId);
  }

  private newTopicState(record: TopicImage): TopicState {
    return {
      record,
      config: effectiveTopicConfig(this.topicDefaults, record.overrides),
      partitions: [],
      sticky: new StickyPartitioner(this.options.stickyBatchBytes),
      internal: isInternalTopic(record.name),
    };
  }

  private logOptions(config: TopicConfig): LogOptions {
    const options: LogOptions = { ...this.options.log, ...logOptionsFor(config) };
    if (this.options.injectedFlushDelayMs !== undefined) options.injectedFlushDelayMs = this.options.injectedFlushDelayMs;
    return options;
  }

  private async openPartition(topic: string, config: TopicConfig, index: number): Promise<Partition> {
    const tp = { topic, partition: index };
    // After start every open creates a partition (a new topic or added partitions): not below
    // the floor. At start, existing partitions open whatever the free space (read-only start).
    // The broker's own internal topics are created below the floor too (the floor is their room).
    if (this.opened && !isInternalTopic(topic)) this.disk.assertWritable(`cannot create partition ${topic}-${index}`);
    const dir = join(this.dataDir, partitionDirName(topic, index));
    const log = await PartitionLog.open(dir, this.logOptions(config), {
      logger: this.deps.logger,
      metrics: this.deps.metrics,
      topicPartition: partitionDirName(topic, index),
    });
    const partition = new Partition(tp, dir, log, this.waiters.newPartitionList(), this.waiters.newPartitionList(), this.waiters.newPartitionList(), LEADER_EPOCH);
    // Readers wake when the readable end moves (after the fsync under flush=always, so a
    // reader never sees what a power cut could take back), whichever append moved it; on one
    // node the broker is the only replica, so the same event advances the high watermark.
    const unsubscribeEnd = log.onEndOffsetAdvance((end) => partition.logEndAdvanced(end));
    // A leader's followers copy what it has written before its fsync returns (isolation `written`).
    const unsubscribeWritten = log.onWrittenEndAdvance((end) => partition.writtenEndAdvanced(end));
    partition.unsubscribe = () => (unsubscribeEnd(), unsubscribeWritten());
    const self = this.metadata.image().node.nodeId;
    partition.leaderId = self;
    partition.isr = [self];
    partition.replicas = [self];
    // In a cluster a user topic's partition is replicated: HW follows the in-sync replicas.
    // Internal topics other than `__consumer_offsets` stay this node's own (docs/cluster.md).
    if (this.deps.replicated && isReplicatedTopic(topic)) partition.replicated(self);
    return partition;
  }

  /**
   * Applies the image's leader, leader epoch and ISR to a topic's open partitions (a cluster's
   * replicated topics only: user topics and `__consumer_offsets`): becomeLeader / becomeFollower, then tells the replica manager.
   */
  private applyLeadership(state: TopicState): void {
    if (!this.deps.replicated || !isReplicatedTopic(state.record.name)) return;
    const self = this.metadata.image().node.nodeId;
    const now = Date.now();
    const changed: Partition[] = [];
    state.partitions.forEach((p, i) => {
      const s = partitionStateOf(state.record, i);
      const replicas = state.record.assignment[i] ?? [];
      const same = p.leaderId === s.leader && p.leaderEpoch === s.leaderEpoch && p.isr.join() === s.isr.join() && p.replicas.join() === replicas.join();
      if (same) return;
      if (s.leader === self) p.becomeLeader(s.leaderEpoch, s.isr, replicas, now);
      else p.becomeFollower(s.leader, s.leaderEpoch, s.isr, replicas);
      changed.push(p);
    });
    if (changed.length === 0) return;
    for (const l of this.leadershipListeners) {
      try {
        l(changed);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'a leadership listener failed');
      }
    }
  }

  /** Calls `listener` with the partitions whose leader, epoch or ISR just changed; returns the unsubscribe. */
  onLeadershipChange(listener: (partitions: Partition[]) => void): () => void {
    this.leadershipListeners.add(listener);
    return () => void this.leadershipListeners.delete(listener);
  }

  /** Every open partition of the cluster's replicated topics (user topics and `__consumer_offsets`), with its topic config. */
  replicatedPartitions(): Array<{ partition: Partition; config: TopicConfig; replicationFactor: number }> {
    if (!this.deps.replicated) return [];
    const out = [];
    for (const t of this.topics.values()) if (isReplicatedTopic(t.record.name)) for (const p of t.partitions) out.push({ partition: p, config: t.config, replicationFactor: t.record.replicationFactor });
    return out;
  }

  // --- the follower's write path (host/cluster's replica fetcher) ----------------------------

  /**
   * Stores the leader's batches as sent (offsets, epochs kept), fsynced under the topic's flush
   * policy before it resolves (so the next fetch, which tells the leader this log end, only
   * acknowledges what is on disk); then takes the leader's HW, capped at this log end.
   */
  async appendAsFollower(tp: TopicPartition, batches: Uint8Array, leaderHighWatermark: number, leaderEpoch: number, options: { waitForFlush: boolean } = { waitForFlush: true }): Promise<void> {
    this.assertOpen();
    const partition = this.partition(tp);
    if (partition.role !== 'follower' || partition.leaderEpoch !== leaderEpoch) {
      throw new BrokerError('FENCED_LEADER_EPOCH', `${tp.topic}-${tp.partition}: fetched in epoch ${leaderEpoch}, this replica is now ${partition.role} in epoch ${partition.leaderEpoch}`);
    }
    if (batches.byteLength > 0) {
      // waitForFlush false (a pipelining fetcher): resolves once written; the flush policy's fsync
      // still runs, and the log end (what the fetcher reports as durable) moves when it returns.
      const info = await partition.use((log) => log.appendAsFollower(batches, { durable: options.waitForFlush }));
      this.metrics.recordsIn.inc({ topic: tp.topic }, info.recordCount);
    }
    partition.followerHighWatermark(leaderHighWatermark);
  }

  /**
   * A follower's log cut back: to where it agrees with the leader (`leader-epoch`, KIP-101/279,
   * never to the HW), at a batch failing its CRC (`damaged`: refetched from the leader), or wholly
   * reset to start at the leader's log start (`log-start`: Kafka's truncateFullyAndStartAt).
   */
  async truncateReplica(tp: TopicPartition, offset: number, reason: 'leader-epoch' | 'damaged' | 'log-start' = 'leader-epoch'): Promise<number> {
    this.assertOpen();
    const partition = this.partition(tp);
    if (partition.role !== 'follower') throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `${tp.topic}-${tp.partition}: only a follower truncates`);
    const end = await partition.use((log) => log.truncateTo(offset, { full: reason === 'log-start' }));
    partition.logTruncated();
    this.metrics.replicaTruncations.inc({ topic: tp.topic, reason });
    return end;
  }

  /** Opens partitions [from, to) of a topic, at most openConcurrency at a time; all or none. */
  private async openPartitions(topic: string, config: TopicConfig, from: number, to: number): Promise<Partition[]> {
    const opened: Partition[] = new Array(to - from);
    let next = from;
    let failure: unknown;
    const worker = async () => {
      while (next < to && failure === undefined) {
        const index = next++;
        try {
          opened[index - from] = await this.openPartition(topic, config, index);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.openConcurrency, to - from) }, worker));
    if (failure !== undefined) {
      await Promise.all(opened.filter(Boolean).map((p) => p.log.close().catch(() => undefined)));
      throw failure;
    }
    return opened;
  }

  private async openAll(): Promise<void> {
    const started = performance.now();
    for (const record of this.metadata.image().topics.values()) {
      const state = this.newTopicState(record);
      state.partitions = await this.openPartitions(record.name, state.config, 0, record.partitions);
      this.topics.set(record.name, state);
      this.partitionCount += record.partitions;
      this.applyLeadership(state);
    }
    const openMs = Math.round(performance.now() - started);
    this.metrics.openMs.set(openMs);
    this.updateTopicGauges();
    this.log.info({ dataDir: this.dataDir, topics: this.topics.size, partitions: this.partitionCount, openMs }, 'partitions opened');
  }

  private async closeLogs(): Promise<void> {
    const all = [...this.topics.values()].flatMap((t) => t.partitions);
    const results = await Promise.allSettled(
      all.map(async (p) => {
        await p.drain();
        await p.log.close();
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      this.log.error({ err: failed.reason }, 'a partition log failed to close cleanly');
      throw failed.reason;
    }
  }

  private async destroyPartitions(partitions: Partition[]): Promise<void> {
    for (const p of partitions) p.wakeAll('shutdown');
    await Promise.all(
      partitions.map(async (p) => {
        await p.drain();
        await p.log.destroy();
        await rm(p.dir, { recursive: true, force: true });
      }),
    );
  }

  /** A topic deletion a crash interrupted: its directories go now. */
  private async finishPendingDeletes(): Promise<void> {
    const pending = this.metadata.pendingDeletions();
    if (pending.length === 0) return;
    for (const p of pending) {
      // A topic re-created under the same name owns its directories now.
      if (!this.metadata.image().topics.has(p.name)) {
        for (let i = 0; i < p.partitions; i++) await rm(join(this.dataDir, partitionDirName(p.name, i)), { recursive: true, force: true });
        this.log.warn({ topic: p.name, partitions: p.partitions }, 'finished a topic deletion interrupted by a crash');
      }
      await this.metadata.deletionDone(p.name, p.topicId);
    }
  }

  /**
   * A new topic (or new partitions) starts empty: directories left under its names by an
   * unfinished deletion are removed, never adopted.
   */
  private async removeLeftoverDirs(topic: string, from: number, to: number): Promise<void> {
    await this.metadata.deletionDone(topic);
    for (let i = from; i < to; i++) {
      const dir = join(this.dataDir, partitionDirName(topic, i));
      try {
        await rm(dir, { recursive: true });
        this.log.warn({ topic, partition: i, dir }, 'removed a leftover partition directory before creating the partition');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  private updateTopicGauges(): void {
    this.metrics.topics.set(this.topics.size);
    this.metrics.partitions.set(this.partitionCount);
  }

  private scheduleMaintenance(): void {
    if (this.closing) return;
    this.maintenanceTimer = setTimeout(() => {
      void this.runMaintenance().finally(() => this.scheduleMaintenance());
    }, this.options.retentionCheckIntervalMs);
    this.maintenanceTimer.unref();
  }

  /**
   * The retention budget in force (docs/broker.md, "Disk contract"): retentionBudgetBytes, or,
   * with -1, retentionBudgetPercent of what the logs may use before the free-space floor
   * (bytes they hold + bytes free − the floor), never below 0. -1: not known yet (no statfs).
   */
  retentionBudget(): number {
    if (this.options.retentionBudgetBytes >= 0) return this.options.retentionBudgetBytes;
    const d = this.disk.current;
    if (d.freeBytes < 0) return -1;
    const held = [...this.topics.values()].reduce((n, t) => n + t.partitions.reduce((m, p) => m + p.log.sizeBytes, 0), 0);
    return Math.max(0, Math.floor(((held + d.freeBytes - d.floorBytes) * this.options.retentionBudgetPercent) / 100));
  }

  /**
   * Deletes oldest segments until every topic is within its share and all topics together
   * within the budget: the topic furthest over its share gives up its oldest closed segment
   * first (the partition whose oldest segment is oldest), so one chatty topic cannot push out
   * every other topic's history. Only delete-policy, non-internal topics give up segments;
   * every topic's bytes count. Every deletion is counted (topic, reason).
   */
  private async enforceBudget(): Promise<void> {
    await this.disk.check();
    const budget = this.retentionBudget();
    this.metrics.budgetBytes.set(budget);
    if (budget < 0) return;
    const sizeOf = (t: TopicState) => t.partitions.reduce((n, p) => n + p.log.sizeBytes, 0);
    let candidates = [...this.topics.values()].filter((t) => !t.internal && t.config['cleanup.policy'].includes('delete'));
    const sharePct = this.options.retentionTopicSharePercent;
    // Bounded: each round deletes a segment or drops a candidate.
    for (let round = 0; round < 100_000 && candidates.length > 0 && !this.closing; round++) {
      const total = [...this.topics.values()].reduce((n, t) => n + sizeOf(t), 0);
      const share = sharePct > 0 ? (budget * sharePct) / 100 : budget / candidates.length;
      const ranked = candidates.map((t) => ({ t, over: sizeOf(t) - share })).sort((a, b) => b.over - a.over);
      let victim: TopicState;
      let reason: 'share' | 'budget';
      if (sharePct > 0 && ranked[0].over > 0) [victim, reason] = [ranked[0].t, 'share'];
      else if (total > budget) [victim, reason] = [ranked[0].t, 'budget'];
      else return;
      const oldest = victim.partitions
        .filter((p) => !p.retired && p.log.oldestClosedSegment() && p.log.oldestClosedSegment()!.nextOffset <= (this.admission?.retentionHold(p.tp) ?? Infinity))
        .sort((a, b) => a.log.oldestClosedSegment()!.maxTimestampMs - b.log.oldestClosedSegment()!.maxTimestampMs)[0];
      const freed = oldest ? await oldest.use((log) => log.deleteOldestSegment()).catch(() => 0) : 0;
      if (freed <= 0) {
        candidates = candidates.filter((t) => t !== victim);
        continue;
      }
      const topic = victim.record.name;
      this.metrics.budgetDeletions.inc({ topic, reason });
      this.metrics.retentionBytesFreed.inc({ topic }, freed);
      this.log.info({ topic, partition: oldest!.tp.partition, freedBytes: freed, reason, budgetBytes: budget, totalBytes: total - freed }, 'retention budget deleted the oldest segment');
    }
  }

  /** One pass: retention for delete-policy topics, compaction for compact ones, one log at a time. */
  private async maintain(nowMs: number): Promise<void> {
    await this.maintainEach(nowMs);
    if (!this.closing) {
      try {
        await this.enforceBudget();
      } catch (err) {
        this.log.warn({ err }, 'retention budget pass failed; will retry next pass');
      }
    }
  }

  private async maintainEach(nowMs: number): Promise<void> {
    this.metrics.retentionRuns.inc();
    for (const state of [...this.topics.values()]) {
      const policy = state.config['cleanup.policy'];
      for (const p of state.partitions) {
        if (this.closing) return;
        if (p.retired) continue;
        const labels = { topic: state.record.name };
        try {
          if (policy.includes('delete')) {
            const freed = await p.use((log) => log.applyRetention(nowMs, this.admission?.retentionHold(p.tp)));
            if (freed > 0) {
              this.metrics.retentionBytesFreed.inc(labels, freed);
              this.log.info({ topic: p.tp.topic, partition: p.tp.partition, freedBytes: freed, logStartOffset: p.log.logStartOffset }, 'retention deleted segments');
            }
          }
          if (policy.includes('compact')) await p.use((log) => log.compact(nowMs));
        } catch (err) {
          if (p.retired) continue;
          this.metrics.maintenanceErrors.inc(labels);
          this.log.warn({ err, topic: p.tp.topic, partition: p.tp.partition }, 'retention/compaction failed; will retry next pass');
        }
      }
    }
  }
}

/** Internal topics take writes only from the broker's own components (AppendOptions.internal). */
function checkWritable(topic: string, options: AppendOptions): void {
  if (isInternalTopic(topic) && options?.internal !== true) {
    throw new BrokerError('INVALID_TOPIC_EXCEPTION', `topic ${topic} is internal to the broker: clients cannot write to it`);
  }
}

function checkAcks(acks: unknown): Acks {
  if (acks !== 0 && acks !== 1 && acks !== -1) {
    throw new BrokerError('INVALID_REQUIRED_ACKS', `acks must be 0, 1 or -1, got ${JSON.stringify(acks)}`);
  }
  return acks;
}

function checkRecord(r: RecordInput, i: number): void {
  if (typeof r !== 'object' || r === null) throw new BrokerError('INVALID_RECORD', `record ${i} is not an object`);
  if (r.key !== null && r.key !== undefined && !(r.key instanceof Uint8Array)) throw new BrokerError('INVALID_RECORD', `record ${i}: key must be bytes or null`);
  if (r.value !== null && r.value !== undefined && !(r.value instanceof Uint8Array)) throw new BrokerError('INVALID_RECORD', `record ${i}: value must be bytes or null`);
  if (r.timestampMs !== undefined && (!Number.isSafeInteger(r.timestampMs) || r.timestampMs < 0)) {
    throw new BrokerError('INVALID_TIMESTAMP', `record ${i}: timestampMs must be a non-negative integer (ms since the epoch), got ${r.timestampMs}`);
  }
  if (r.headers !== undefined) {
    if (!Array.isArray(r.headers)) throw new BrokerError('INVALID_RECORD', `record ${i}: headers must be an array`);
    for (const h of r.headers) {
      if (typeof h?.key !== 'string' || (h.value !== null && !(h.value instanceof Uint8Array))) {
        throw new BrokerError('INVALID_RECORD', `record ${i}: each header needs a string key and a bytes-or-null value`);
      }
    }
  }
}

/** About what a record adds to a batch: enough for the sticky partitioner's "batch is full". */
function approxRecordBytes(r: RecordInput): number {
  let n = 16 + (r.key?.byteLength ?? 0) + (r.value?.byteLength ?? 0);
  for (const h of r.headers ?? []) n += 4 + h.key.length + (h.value?.byteLength ?? 0);
  return n;
}

/**
 * Visibility in one place (Kafka's FetchIsolation, api.ts): clients read below the high
 * watermark; a follower copies what its leader has written, fsynced or not (`written`).
 */
function visibleEndOf(partition: Partition, isolation: Isolation): number {
  if (isolation === 'committed') return partition.highWatermark;
  return isolation === 'written' ? partition.log.writtenEndOffset : partition.log.logEndOffset;
}

function offsetsOf(partition: Partition): PartitionOffsets {
  const log = partition.log;
  return { logStartOffset: log.logStartOffset, highWatermark: partition.highWatermark, logEndOffset: log.logEndOffset };
}

function storageError(what: string, err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  if (isNoSpace(err)) return new BrokerError('STORAGE_FULL', `${what}: the disk is full (${(err as NodeJS.ErrnoException).code})`, { cause: err });
  return new BrokerError('KAFKA_STORAGE_ERROR', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
