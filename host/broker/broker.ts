// The broker core: topics and their configs, one PartitionLog per partition, the write path
// (append, produce), the read path (read, offsets, listOffset, waitForData), the limits, and
// the background retention/compaction scheduler. Every door (Kafka, MQTT, WebSocket/HTTP)
// calls this through BrokerApi; it knows nothing of wire formats.
//
// Data dir layout (Kafka style):
//   <dataDir>/topics.json            topics, partition counts, config overrides (topic-registry.ts)
//   <dataDir>/broker.lock            pid of the process using the dir (refuses a second broker)
//   <dataDir>/<topic>-<partition>/   one partition log (host/log)
//
// Concurrency: topic changes (create, delete, grow, alter) run one at a time through
// `admin()`; appends and reads run freely and each holds its partition (`Partition.use`) so a
// deletion or shutdown waits for them before closing files. Where a check and the action it
// guards must not be split, the comment says "no await between".
import { rm, readFile, writeFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging.js';
import type { MetricsRegistry } from '../metrics/registry.js';
import { BrokerError, asBrokerError } from '../errors/index.js';
import type { LogOptions } from '../log/api.js';
import { PartitionLog } from '../log/partition-log.js';
import { encodeBatch, codecSupport, CODEC_NAMES } from '../core/index.js';
import {
  EARLIEST_TIMESTAMP,
  LATEST_TIMESTAMP,
  MAX_TIMESTAMP,
  type Acks,
  type AppendOptions,
  type AppendResult,
  type AppendValidator,
  type BrokerApi,
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
import { TopicRegistry, type TopicRecord } from './topic-registry.js';
import { assertTopicName, isInternalTopic } from './topic-name.js';
import {
  brokerBatchCompression,
  defaultTopicConfig,
  effectiveTopicConfig,
  isTopicConfigKey,
  logOptionsFor,
  parseTopicConfigValue,
  topicConfigKeys,
  validateTopicConfig,
} from './topic-config.js';
import { StickyPartitioner, partitionForKeyBytes } from './partitioner.js';
import { Partition, partitionDirName } from './partition.js';
import { WaiterRegistry } from './waiters.js';
import { BrokerMetrics, countRecords } from './broker-metrics.js';

export { defaultBrokerOptions, validateBrokerOptions, type BrokerOptions };

/** Kafka's EARLIEST_LOCAL_TIMESTAMP (KIP-405): with no tiered storage, the log start. */
const EARLIEST_LOCAL_TIMESTAMP = -4;
/** Single node: every batch is stamped with leader epoch 0 (replication will raise it). */
const LEADER_EPOCH = 0;
const LOCK_FILE = 'broker.lock';

interface TopicState {
  record: TopicRecord;
  config: TopicConfig;
  partitions: Partition[];
  sticky: StickyPartitioner;
  internal: boolean;
}

/** Data dirs opened by a Broker in this process (the lock file guards other processes). */
const openDataDirs = new Set<string>();

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
  /** Ingest validation (host/schemas installs it); consulted only for topics that ask for it. */
  private validator: AppendValidator | undefined;

  private constructor(
    readonly options: BrokerOptions,
    private readonly dataDir: string,
    private readonly registry: TopicRegistry,
    private readonly deps: { logger: Logger; metrics: MetricsRegistry },
  ) {
    // The caller's logger as given (host/node.ts already tags it component=broker).
    this.log = deps.logger;
    this.metrics = new BrokerMetrics(deps.metrics);
    this.waiters = new WaiterRegistry(options.maxWaitingReaders);
    this.topicDefaults = effectiveTopicConfig(defaultTopicConfig, options.topicDefaults);
  }

  /**
   * Validates the options, locks the data dir, reads topics.json, finishes any topic deletion
   * a crash interrupted, opens (and so recovers) every partition, and starts the retention
   * scheduler.
   */
  static async open(options: Partial<BrokerOptions>, deps: { logger: Logger; metrics: MetricsRegistry }): Promise<Broker> {
    const valid = validateBrokerOptions(options);
    const dataDir = resolve(valid.dataDir);
    const registry = await TopicRegistry.load(dataDir);
    await lockDataDir(dataDir);
    let broker: Broker | undefined;
    try {
      broker = new Broker(valid, dataDir, registry, deps);
      await broker.finishPendingDeletes();
      await broker.openAll();
      broker.scheduleMaintenance();
      return broker;
    } catch (err) {
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

  validateCreateTopic(topic: string, partitions: number, config?: Partial<TopicConfig>): void {
    this.assertOpen();
    this.checkCreate(topic, partitions, config, false);
  }

  async createTopic(topic: string, partitions: number, config?: Partial<TopicConfig>): Promise<TopicInfo> {
    this.assertOpen();
    assertTopicName(topic);
    this.checkPartitionCount(topic, partitions);
    const overrides = validateTopicConfig(config as Record<string, unknown> | undefined, this.options.maxMessageBytesMax);
    checkCompressionAvailable(overrides);
    return this.admin(async () => {
      // Checked again inside the admin queue: an earlier create may have taken the name or the room.
      this.checkCreate(topic, partitions, overrides, true);
      await this.removeLeftoverDirs(topic, 0, partitions);
      const record: TopicRecord = { name: topic, topicId: TopicRegistry.newTopicId(), partitions, createdMs: Date.now(), overrides };
      // Recorded first: a crash from here on leaves a topic whose empty partitions open at start.
      await this.registry.update((d) => {
        d.topics.set(topic, record);
      });
      const state = this.newTopicState(record);
      try {
        state.partitions = await this.openPartitions(topic, state.config, 0, partitions);
      } catch (err) {
        await this.registry.update((d) => void d.topics.delete(topic)).catch(() => undefined);
        throw storageError(`cannot create the partitions of ${topic}`, err);
      }
      this.topics.set(topic, state);
      this.partitionCount += partitions;
      this.updateTopicGauges();
      this.log.info({ topic, partitions, overrides }, 'topic created');
      return this.info(state);
    });
  }

  async deleteTopic(topic: string): Promise<void> {
    this.assertOpen();
    await this.admin(async () => {
      const state = this.topics.get(topic);
      if (!state) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${topic} does not exist`);
      if (state.internal) throw new BrokerError('POLICY_VIOLATION', `topic ${topic} is internal to the broker and cannot be deleted`);
      const { topicId, partitions } = state.record;
      // Recorded as pending first: a crash from here on finishes the deletion at next start.
      await this.registry.update((d) => {
        d.topics.delete(topic);
        d.pendingDeletes.push({ name: topic, topicId, partitions });
      });
      // No await between the registry change above taking effect and this removal that
      // matters: new calls already see the topic as gone once the map entry goes.
      this.topics.delete(topic);
      this.partitionCount -= state.partitions.length;
      this.updateTopicGauges();
      await this.destroyPartitions(state.partitions);
      await this.registry.update((d) => {
        d.pendingDeletes = d.pendingDeletes.filter((p) => !(p.name === topic && p.topicId === topicId));
      });
      this.log.info({ topic, partitions }, 'topic deleted');
    });
  }

  async createPartitions(topic: string, totalCount: number): Promise<void> {
    this.assertOpen();
    await this.admin(async () => {
      const state = this.topics.get(topic);
      if (!state) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${topic} does not exist`);
      const current = state.partitions.length;
      if (!Number.isSafeInteger(totalCount) || totalCount <= current) {
        throw new BrokerError('INVALID_PARTITIONS', `topic ${topic} has ${current} partitions; the new count must be larger (got ${totalCount}): partitions can only be added`);
      }
      this.checkPartitionCount(topic, totalCount);
      this.checkTotalPartitions(topic, totalCount - current);
      await this.removeLeftoverDirs(topic, current, totalCount);
      await this.registry.update((d) => {
        d.topics.get(topic)!.partitions = totalCount;
      });
      state.record = this.registry.get(topic)!;
      let added: Partition[];
      try {
        added = await this.openPartitions(topic, state.config, current, totalCount);
      } catch (err) {
        await this.registry.update((d) => void (d.topics.get(topic)!.partitions = current)).catch(() => undefined);
        state.record = this.registry.get(topic)!;
        throw storageError(`cannot add partitions to ${topic}`, err);
      }
      state.partitions.push(...added);
      this.partitionCount += added.length;
      this.updateTopicGauges();
      this.log.info({ topic, from: current, to: totalCount }, 'partitions added');
    });
  }

  async alterTopicConfig(topic: string, changes: Partial<Record<keyof TopicConfig, string | number | null>>): Promise<TopicInfo> {
    this.assertOpen();
    if (typeof changes !== 'object' || changes === null) throw new BrokerError('INVALID_CONFIG', 'config changes must be an object of key → value');
    return this.admin(async () => {
      const state = this.topics.get(topic);
      if (!state) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${topic} does not exist`);
      const overrides: Partial<Record<keyof TopicConfig, unknown>> = { ...state.record.overrides };
      for (const [key, value] of Object.entries(changes)) {
        if (!isTopicConfigKey(key)) throw new BrokerError('INVALID_CONFIG', `unknown config "${key}"; known keys: ${topicConfigKeys.join(', ')}`);
        if (value === null) delete overrides[key];
        else if (value !== undefined) overrides[key] = parseTopicConfigValue(key, value, this.options.maxMessageBytesMax);
      }
      const typed = overrides as Partial<TopicConfig>;
      checkCompressionAvailable(typed);
      await this.registry.update((d) => {
        d.topics.get(topic)!.overrides = typed;
      });
      state.record = this.registry.get(topic)!;
      state.config = effectiveTopicConfig(this.topicDefaults, typed);
      const logOptions = this.logOptions(state.config);
      for (const p of state.partitions) p.log.updateOptions(logOptions);
      this.log.info({ topic, changes }, 'topic config altered');
      return this.info(state);
    });
  }

  async ensureTopic(topic: string): Promise<TopicInfo> {
    const existing = this.topics.get(topic);
    if (existing) return this.info(existing);
    this.assertOpen();
    if (!this.options.autoCreateTopics) {
      throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${topic} does not exist (auto-creation is off)`);
    }
    assertTopicName(topic);
    try {
      return await this.createTopic(topic, this.options.defaultPartitions);
    } catch (err) {
      // Another caller created it between our look and our create: theirs is ours.
      const now = this.topics.get(topic);
      if (err instanceof BrokerError && err.code === 'TOPIC_ALREADY_EXISTS' && now) return this.info(now);
      throw err;
    }
  }

  // --- the write path -----------------------------------------------------------------------

  /** Installs the ingest validation hook (one per broker; the schema registry's). */
  setAppendValidator(validator: AppendValidator | undefined): void {
    this.validator = validator;
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
      const bytes = batches.byteLength;
      // No await between this check and the increment: the limit holds under concurrency.
      if (this.pendingAppendBytes + bytes > this.options.maxPendingAppendBytes) {
        this.refusedBy('maxPendingAppendBytes');
        throw new BrokerError(
          'LIMIT_EXCEEDED',
          `broker busy: ${this.pendingAppendBytes} bytes of appends are waiting for their flush and ${bytes} more would pass maxPendingAppendBytes=${this.options.maxPendingAppendBytes}; retry`,
        );
      }
      this.pendingAppendBytes += bytes;
      this.metrics.pendingAppendBytes.set(this.pendingAppendBytes);
      let info;
      try {
        info = await partition.use((log) => log.appendAsLeader(batches, { leaderEpoch: partition.leaderEpoch, durable: acks !== 0 }));
      } finally {
        this.pendingAppendBytes -= bytes;
        this.metrics.pendingAppendBytes.set(this.pendingAppendBytes);
      }
      const labels = { topic: tp.topic };
      if (!info.duplicate) {
        this.metrics.bytesIn.inc(labels, bytes);
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
      throw e;
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
    if (!this.topics.has(topic)) await this.ensureTopic(topic);
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
    if (!Number.isSafeInteger(offset) || offset < log.logStartOffset || offset > log.logEndOffset) {
      throw new BrokerError(
        'OFFSET_OUT_OF_RANGE',
        `offset ${offset} is outside ${tp.topic}-${tp.partition}'s log [${log.logStartOffset}, ${log.logEndOffset}]`,
      );
    }
    // Visibility in one place: clients read below the high watermark, followers to the log end.
    const upTo = () => (options.isolation === 'logEnd' ? log.logEndOffset : partition.highWatermark);
    const result = await partition.use((l) => l.read(offset, maxBytes, upTo()));
    const labels = { topic: tp.topic };
    this.metrics.reads.inc(labels);
    if (result.records.byteLength > 0) {
      this.metrics.bytesOut.inc(labels, result.records.byteLength);
      this.metrics.recordsOut.inc(labels, countRecords(result.records));
    }
    return { records: result.records, nextOffset: result.nextOffset, ...offsetsOf(partition) };
  }

  offsets(tp: TopicPartition): PartitionOffsets {
    return offsetsOf(this.partition(tp));
  }

  partitionState(tp: TopicPartition): PartitionState {
    return this.partition(tp).state();
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
    const logEnd = isolation === 'logEnd';
    const lists = positions.map((pos) => {
      const partition = this.partition(pos);
      return { partition, list: logEnd ? partition.logEndWaiters : partition.waiters, afterOffset: pos.afterOffset };
    });
    const visibleEnd = (p: Partition) => (logEnd ? p.log.logEndOffset : p.highWatermark);
    // No await between this check and parking: an append cannot slip in between.
    if (lists.some((l) => visibleEnd(l.partition) > l.afterOffset)) return;
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
  close(): Promise<void> {
    this.closing ??= (async () => {
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
    });
    this.adminTail = run.catch(() => undefined);
    return run;
  }

  /** Everything a create checks, in Kafka's order; returns the validated overrides. */
  private checkCreate(topic: string, partitions: number, config: Partial<TopicConfig> | undefined, count: boolean): Partial<TopicConfig> {
    assertTopicName(topic);
    this.checkPartitionCount(topic, partitions);
    const overrides = validateTopicConfig(config as Record<string, unknown> | undefined, this.options.maxMessageBytesMax);
    checkCompressionAvailable(overrides);
    if (this.topics.has(topic)) throw new BrokerError('TOPIC_ALREADY_EXISTS', `topic ${topic} already exists`);
    this.checkCollision(topic);
    if (this.topics.size >= this.options.maxTopics) {
      if (count) this.refusedBy('maxTopics');
      throw new BrokerError('POLICY_VIOLATION', `cannot create topic ${topic}: the broker already has ${this.topics.size} topics (maxTopics=${this.options.maxTopics})`);
    }
    this.checkTotalPartitions(topic, partitions);
    return overrides;
  }

  private refusedBy(limit: string): void {
    this.metrics.limitRefusals.inc({ limit });
  }

  private checkPartitionCount(topic: string, partitions: number): void {
    if (!Number.isSafeInteger(partitions) || partitions < 1) {
      throw new BrokerError('INVALID_PARTITIONS', `topic ${topic}: partition count must be a positive integer, got ${partitions}`);
    }
    if (partitions > this.options.maxPartitionsPerTopic) {
      this.refusedBy('maxPartitionsPerTopic');
      throw new BrokerError('INVALID_PARTITIONS', `topic ${topic}: ${partitions} partitions is more than maxPartitionsPerTopic=${this.options.maxPartitionsPerTopic}`);
    }
  }

  private checkTotalPartitions(topic: string, adding: number): void {
    if (this.partitionCount + adding > this.options.maxPartitionsTotal) {
      this.refusedBy('maxPartitionsTotal');
      throw new BrokerError(
        'POLICY_VIOLATION',
        `topic ${topic}: ${adding} more partitions would make ${this.partitionCount + adding}, more than maxPartitionsTotal=${this.options.maxPartitionsTotal}`,
      );
    }
  }

  /** Kafka refuses names that differ only by '.' vs '_' (they collide in metric names). */
  private checkCollision(topic: string): void {
    const folded = topic.replace(/\./g, '_');
    for (const name of this.topics.keys()) {
      if (name !== topic && name.replace(/\./g, '_') === folded) {
        throw new BrokerError('INVALID_TOPIC_EXCEPTION', `topic ${topic} collides with existing topic ${name} ('.' and '_' are treated alike)`);
      }
    }
  }

  private newTopicState(record: TopicRecord): TopicState {
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
    const dir = join(this.dataDir, partitionDirName(topic, index));
    const log = await PartitionLog.open(dir, this.logOptions(config), {
      logger: this.deps.logger,
      metrics: this.deps.metrics,
      topicPartition: partitionDirName(topic, index),
    });
    const partition = new Partition(tp, dir, log, this.waiters.newPartitionList(), this.waiters.newPartitionList(), LEADER_EPOCH);
    // Readers wake when the readable end moves (after the fsync under flush=always, so a
    // reader never sees what a power cut could take back), whichever append moved it; on one
    // node the broker is the only replica, so the same event advances the high watermark.
    partition.unsubscribe = log.onEndOffsetAdvance((end) => partition.logEndAdvanced(end));
    return partition;
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
    for (const record of this.registry.topics()) {
      const state = this.newTopicState(record);
      state.partitions = await this.openPartitions(record.name, state.config, 0, record.partitions);
      this.topics.set(record.name, state);
      this.partitionCount += record.partitions;
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
    const pending = this.registry.pendingDeletes();
    if (pending.length === 0) return;
    for (const p of pending) {
      // A topic re-created under the same name owns its directories now.
      if (this.registry.get(p.name)) continue;
      for (let i = 0; i < p.partitions; i++) await rm(join(this.dataDir, partitionDirName(p.name, i)), { recursive: true, force: true });
      this.log.warn({ topic: p.name, partitions: p.partitions }, 'finished a topic deletion interrupted by a crash');
    }
    await this.registry.update((d) => {
      d.pendingDeletes = [];
    });
  }

  /**
   * A new topic (or new partitions) starts empty: directories left under its names by an
   * unfinished deletion are removed, never adopted.
   */
  private async removeLeftoverDirs(topic: string, from: number, to: number): Promise<void> {
    if (this.registry.pendingDeletes().some((p) => p.name === topic)) {
      await this.registry.update((d) => {
        d.pendingDeletes = d.pendingDeletes.filter((p) => p.name !== topic);
      });
    }
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

  /** One pass: retention for delete-policy topics, compaction for compact ones, one log at a time. */
  private async maintain(nowMs: number): Promise<void> {
    this.metrics.retentionRuns.inc();
    for (const state of [...this.topics.values()]) {
      const policy = state.config['cleanup.policy'];
      for (const p of state.partitions) {
        if (this.closing) return;
        if (p.retired) continue;
        const labels = { topic: state.record.name };
        try {
          if (policy.includes('delete')) {
            const freed = await p.use((log) => log.applyRetention(nowMs));
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

/** A topic may only ask the broker to build batches with a codec this process can compress. */
function checkCompressionAvailable(config: Partial<TopicConfig>): void {
  const type = config['compression.type'];
  if (type === undefined) return;
  const codec = brokerBatchCompression(type);
  if (!codecSupport()[codec].compress) {
    throw new BrokerError('INVALID_CONFIG', `invalid value "${type}" for config "compression.type": this broker cannot compress ${codec} (its codec did not load)`);
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

function offsetsOf(partition: Partition): PartitionOffsets {
  const log = partition.log;
  return { logStartOffset: log.logStartOffset, highWatermark: partition.highWatermark, logEndOffset: log.logEndOffset };
}

function storageError(what: string, err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  return new BrokerError('KAFKA_STORAGE_ERROR', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/**
 * One broker per data dir: `broker.lock` holds the owner's pid. A lock whose pid is not
 * running (a crash, a kill -9) is taken over; a live one stops this broker with its pid.
 */
async function lockDataDir(dataDir: string): Promise<void> {
  if (openDataDirs.has(dataDir)) throw new Error(`data dir ${dataDir} is already open in this process`);
  const path = join(dataDir, LOCK_FILE);
  try {
    // Exclusive create: of two brokers starting together, exactly one gets the lock.
    await writeFile(path, `${process.pid}\n`, { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
      throw new Error(`data dir ${dataDir} is in use by process ${pid} (${path}); stop it first`);
    }
    // A stale lock (its process is gone): take it over.
    await writeFile(path, `${process.pid}\n`);
  }
  openDataDirs.add(dataDir);
}

async function unlockDataDir(dataDir: string): Promise<void> {
  if (!openDataDirs.delete(dataDir)) return;
  await unlink(join(dataDir, LOCK_FILE)).catch(() => undefined);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
