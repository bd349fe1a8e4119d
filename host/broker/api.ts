// The broker core's contract with every door (Kafka, MQTT, WebSocket/HTTP, later cluster and
// uplink). One write path (`append`, `produce`) and one read path (`read`, `waitForData`), which every
// door drives through one reader, PartitionCursor (host/broker/cursor.ts).
//
// Units: offsets, timestamps and producer ids are JS numbers (safe integers, asserted at the
// edges); they become int64 only on the wire. Timestamps are milliseconds since the epoch.
import type { RecordInput } from '../core/index.js';
import type { BrokerError } from '../errors/index.js';
import type { FlushPolicy, CleanupPolicy } from '../log/api.js';

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** Kafka's acks: 0 = fire and forget, 1 and -1 = answer once the flush policy is met. */
export type Acks = 0 | 1 | -1;

// Defined by the log (host/log owns what it stores and when it syncs); re-exported for the doors.
export type { FlushPolicy, CleanupPolicy } from '../log/api.js';
export type CompressionType = 'producer' | 'uncompressed' | 'gzip' | 'snappy' | 'lz4' | 'zstd';

/** Per-topic configuration, Kafka-named keys. */
export interface TopicConfig {
  'retention.ms': number; // -1 = forever
  'retention.bytes': number; // -1 = unbounded; per partition, as Kafka
  'segment.bytes': number;
  'segment.ms': number;
  'segment.index.bytes': number;
  'index.interval.bytes': number;
  'cleanup.policy': CleanupPolicy;
  'delete.retention.ms': number; // tombstone horizon for compaction
  'min.compaction.lag.ms': number;
  'max.message.bytes': number; // largest batch accepted, as Kafka
  'compression.type': CompressionType;
  'message.timestamp.type': 'CreateTime' | 'LogAppendTime';
  flush: FlushPolicy;
  'flush.interval.ms': number; // with flush=interval
  'schema.validation': 'off' | 'warn' | 'reject'; // ingest validation against the schema registry
  'schema.subject': string; // '' = TopicNameStrategy: `<topic>-value`
  'min.insync.replicas': number; // acks=all needs this many in-sync replicas (at most the replication factor)
}

export interface TopicInfo {
  name: string;
  partitions: number;
  config: TopicConfig;
  internal: boolean;
  /** Random UUID given at creation (Kafka's topic id, Metadata v10+); a re-created topic gets a new one. */
  topicId?: string;
  /** The keys set on this topic (the rest of `config` are broker defaults): DescribeConfigs' config source. */
  overrides?: Partial<TopicConfig>;
}

/** A topic to create, as every door describes it (host/broker/topic-admin.ts checks it). */
export interface TopicSpec {
  name: string;
  /** Partition count; undefined or -1 = the broker's defaultPartitions (KIP-464). */
  partitions?: number;
  /** Replicas per partition; undefined or -1 = the default (1). More than the live nodes: INVALID_REPLICATION_FACTOR. */
  replicationFactor?: number;
  /** Replica node ids per partition (a manual assignment); its length is the partition count. Empty = none. */
  assignment?: number[][];
  /** Config overrides, typed or as strings (Kafka clients send strings); a null value = the default. */
  config?: Record<string, unknown>;
}

/** Kafka's validate_only: make every check, change nothing. */
export interface AdminOptions {
  validateOnly?: boolean;
  /**
   * Set only by the broker's own components: they alone may create internal topics (`__*`,
   * `_schemas`). Every door leaves it unset, so a client's create, alter, grow or delete of an
   * internal topic is POLICY_VIOLATION (host/broker/topic-admin.ts).
   */
  internal?: boolean;
}

/** Config changes for alterTopicConfig: a value sets the key, null puts it back to the default. */
export type TopicConfigChanges = Partial<Record<keyof TopicConfig, string | number | null>>;

/** What createTopicFrom made (or, with validateOnly, would make; then without a topicId). */
export interface CreatedTopic extends TopicInfo {
  replicationFactor: number;
  /** assignment[p] = the node ids holding partition p. */
  assignment: number[][];
}

export interface PartitionOffsets {
  logStartOffset: number;
  highWatermark: number; // == logEndOffset on a single node
  logEndOffset: number;
}

/**
 * How far a reader may see (Kafka's FetchIsolation): `committed` = below the high watermark,
 * what every in-sync replica holds on disk (every client, every door); `logEnd` = below this
 * replica's log end (what it has acknowledged under its flush policy); `written` = below what
 * this replica has written to its files, fsynced or not (followers copying the leader, only:
 * each fsyncs what it fetched before its next fetch reports it, so the two fsyncs overlap, and
 * the high watermark stays within the leader's own fsynced end).
 */
export type Isolation = 'committed' | 'logEnd' | 'written';

/** A partition's replica state: role, leader epoch and its offsets (HW = LEO on one node). */
export interface PartitionState extends PartitionOffsets {
  role: 'leader' | 'follower';
  leaderEpoch: number;
  /** The leader's node id as this replica knows it (-1: none); on one node, this node. */
  leaderId: number;
  /** In-sync replicas (node ids) as the metadata names them; on one node, this node. */
  isr: readonly number[];
  /** Every replica (the assignment); on one node, this node. */
  replicas: readonly number[];
}

// Defined by the core (encodeBatch's input); re-exported for the doors.
export type { RecordInput } from '../core/index.js';

export interface AppendOptions {
  acks: Acks;
  /** Only the Kafka door sets this: the request's client id, for logs and metrics. */
  clientId?: string;
  /**
   * Set only by the broker's own components (group coordinator, MQTT persistence): internal
   * topics (`__*`) refuse every other writer with INVALID_TOPIC_EXCEPTION, as Kafka does, so a
   * client cannot forge committed offsets or sessions.
   */
  internal?: boolean;
  /** acks=-1: how long to wait for the in-sync replicas before REQUEST_TIMED_OUT (Produce's timeout_ms). */
  timeoutMs?: number;
  /**
   * Only the Kafka door sets this: append here or answer NOT_LEADER_OR_FOLLOWER, never forward.
   * A Kafka client re-routes by itself from Metadata, and a forwarded append arrives at the
   * leader as a Kafka Produce, so it can never travel a second time.
   */
  leaderOnly?: boolean;
}

/**
 * What a cluster installs (host/cluster/forward.ts) so that every door but Kafka may write on
 * any node: an append to a partition this node does not lead goes to the current leader,
 * below the one write path (Broker.append/produce call it in place of NOT_LEADER_OR_FOLLOWER).
 * `local` appends here after all (this node became the leader while the call waited).
 */
export interface AppendForwarder {
  forward(tp: TopicPartition, batches: Uint8Array, options: AppendOptions, local: () => Promise<AppendResult>): Promise<AppendResult>;
}

/**
 * The hook ingest validation installs (host/schemas): called once per client write, at the
 * broker's one write path, for topics whose `schema.validation` is not `off`. It throws
 * BrokerError INVALID_RECORD (with `recordErrors`) to refuse; it returns to accept.
 */
export interface AppendValidator {
  /** Client-encoded batches (the Kafka door). */
  checkBatches(tp: TopicPartition, batches: Uint8Array, config: TopicConfig): void | Promise<void>;
  /** Records the broker is about to encode (MQTT, WebSocket, HTTP through `produce`); indices are the call's. */
  checkRecords(topic: string, records: RecordInput[], config: TopicConfig): void | Promise<void>;
}

/**
 * The hook the uplink installs (host/sync/budget.ts): its byte budget per link, at the broker's
 * one write path, so every door (Kafka, MQTT, WebSocket/HTTP) meets it the same way.
 */
export interface AppendAdmission {
  /**
   * Called for every client append (never the broker's own internal writes, never a follower's
   * copy) before anything is written, with no await between it and the write: throws a
   * BrokerError (UPLINK_BACKLOG_FULL) to refuse; may note drops to make room; returns to admit.
   * An admitted append's bytes reach the log's sizes only once its write returns, and appends to
   * one partition may be in flight together: what `admit` returns (bytes it counts as landing)
   * is handed back to `landed` once the write returned or failed, so the admission counts every
   * admitted byte exactly once.
   */
  admit(tp: TopicPartition, bytes: number): number;
  /** The write of an append admitted with `landing` bytes returned (its bytes are in the log's sizes now) or failed. */
  landed(tp: TopicPartition, landing: number): void;
  /** The lowest offset retention must keep in the partition (records not yet forwarded under `block`), or undefined: no hold. */
  retentionHold(tp: TopicPartition): number | undefined;
}

export interface AppendResult {
  baseOffset: number;
  lastOffset: number;
  logAppendTimeMs: number; // -1 unless the topic uses LogAppendTime
  logStartOffset: number;
}

export interface ReadOptions {
  /** Upper bound on bytes returned; the first batch is returned whole even if larger (KIP-74). */
  maxBytes: number;
  /** Default `committed` (every client). `written` is for followers only. */
  isolation?: Isolation;
}

export interface ReadResult extends PartitionOffsets {
  /** The end this read was bounded by: its isolation's visible end as the read began. */
  visibleEnd: number;
  /** Whole stored batches, bytes exactly as on disk (may be empty). */
  records: Uint8Array;
  /** First offset after the returned batches (the next position to read; = the offset asked when empty). */
  nextOffset: number;
}

export interface OffsetLookup {
  offset: number; // -1 when nothing matches
  timestampMs: number; // -1 when not applicable
}

/** Special timestamps for `listOffset`, as Kafka's ListOffsets. */
export const LATEST_TIMESTAMP = -1;
export const EARLIEST_TIMESTAMP = -2;
export const MAX_TIMESTAMP = -3;

export interface BrokerApi {
  // --- topics -----------------------------------------------------------------------------
  listTopics(): TopicInfo[];
  describeTopic(topic: string): TopicInfo | undefined;
  /**
   * The broker's own components' shorthand for createTopicFrom({ name, partitions, config }), with
   * `internal: true` (internal topics allowed) unless told otherwise. Doors use createTopicFrom.
   */
  createTopic(topic: string, partitions: number, config?: Partial<TopicConfig>, options?: { internal?: boolean }): Promise<TopicInfo>;
  /**
   * The one topic-creation call of every door (HTTP POST /topics, Kafka CreateTopics, the
   * CLI): checks name, partition count, replication factor and assignment against the live
   * nodes, config keys and values and the limits (host/broker/topic-admin.ts), then records the
   * topic in the metadata store and opens its partitions. With `validateOnly` (Kafka's
   * validate_only) it makes every check and creates nothing. BrokerErrors:
   * INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_CONFIG,
   * INVALID_REQUEST, TOPIC_ALREADY_EXISTS, POLICY_VIOLATION (limits).
   */
  createTopicFrom(spec: TopicSpec, options?: AdminOptions): Promise<CreatedTopic>;
  /** Deletes a topic; UNKNOWN_TOPIC_OR_PARTITION, POLICY_VIOLATION for an internal topic. */
  deleteTopic(topic: string, options?: AdminOptions): Promise<void>;
  /** Grows a topic to `totalCount` partitions (`assignment`: the new partitions' replicas, optional). */
  createPartitions(topic: string, totalCount: number, options?: AdminOptions & { assignment?: number[][] }): Promise<void>;
  /** Sets (value) or removes (null) config overrides, all or none; INVALID_CONFIG names the key. */
  alterTopicConfig(topic: string, changes: TopicConfigChanges, options?: AdminOptions): Promise<TopicInfo>;
  /** The topic if it exists, else auto-creates it when allowed, else UNKNOWN_TOPIC_OR_PARTITION. */
  ensureTopic(topic: string): Promise<TopicInfo>;

  // --- the write path ---------------------------------------------------------------------
  /**
   * Appends one or more client-encoded RecordBatch v2 batches to a partition. The broker
   * verifies structure and CRC (core), enforces `max.message.bytes`, checks idempotent
   * producer sequences, assigns offsets by rewriting baseOffset, and resolves when the
   * topic's flush policy is met (acks 1/-1) or once written (acks 0).
   */
  append(tp: TopicPartition, batches: Uint8Array, options: AppendOptions): Promise<AppendResult>;
  /**
   * Encodes records with the core and appends them. Picks the partition with Kafka's default
   * partitioner (murmur2 of the key) when `partition` is undefined; unkeyed records go to a
   * sticky partition. Records for one call land in one batch per partition.
   */
  produce(topic: string, records: RecordInput[], options: AppendOptions & { partition?: number }): Promise<Array<TopicPartition & { offset: number }>>;
  /** Kafka's default partitioner for a key (murmur2, positive, modulo partitions). */
  partitionForKey(topic: string, key: Uint8Array | null): number;
  /** Installs (or with undefined removes) the admission hook of the write path; one per broker (the uplink's budget). */
  setAppendAdmission(admission: AppendAdmission | undefined): void;

  // --- the read path ----------------------------------------------------------------------
  read(tp: TopicPartition, offset: number, options: ReadOptions): Promise<ReadResult>;
  offsets(tp: TopicPartition): PartitionOffsets;
  /** The end a reader at `isolation` may read below now (the one place visibility is decided). */
  visibleEnd(tp: TopicPartition, isolation: Isolation): number;
  /**
   * Bytes stored in a partition from the batch holding `fromOffset` to the one holding `toOffset`
   * (exclusive; the log end when omitted), from segment sizes and the sparse offset index — no
   * file is read, so it is cheap per append. An estimate from above by less than
   * index.interval.bytes plus one batch. UNKNOWN_TOPIC_OR_PARTITION when absent.
   */
  bytesBetween(tp: TopicPartition, fromOffset: number, toOffset?: number): number;
  /** Role, leader epoch and offsets of one partition. UNKNOWN_TOPIC_OR_PARTITION when absent. */
  partitionState(tp: TopicPartition): PartitionState;
  /**
   * A follower (`replicaId`, a node id) fetched from `fetchOffset` with `currentLeaderEpoch`
   * (-1: unchecked): this leader records its log end (HW may move): `durableEndOffset` when the
   * follower reports one (a pipelining fetcher: the end its fsync covers), else the fetch offset.
   * NOT_LEADER_OR_FOLLOWER off the leader; FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for an older
   * / newer epoch (KIP-320).
   */
  replicaFetched(tp: TopicPartition, replicaId: number, fetchOffset: number, currentLeaderEpoch: number, durableEndOffset?: number): void;
  /** Checks a client's `currentLeaderEpoch` (-1: unchecked) against this replica's, as replicaFetched does. */
  checkLeaderEpoch(tp: TopicPartition, currentLeaderEpoch: number): void;
  /** OffsetForLeaderEpoch (KIP-101/279): the largest epoch ≤ `epoch` this log has and the offset it ended at. */
  endOffsetForEpoch(tp: TopicPartition, epoch: number): { epoch: number; endOffset: number };
  /** By timestamp (first offset with timestamp >= ts) or LATEST/EARLIEST/MAX_TIMESTAMP. */
  listOffset(tp: TopicPartition, timestampMs: number): Promise<OffsetLookup>;
  /**
   * Resolves when any of the partitions gets an append past `afterOffset`, or after
   * `maxWaitMs`, or when `signal` aborts. No polling: appends wake waiters.
   * Precisely: resolves once some partition's visible end (the high watermark under
   * `committed`, the default; the log end under `logEnd`) > afterOffset, so pass the next
   * offset the reader wants (its fetch position). Unknown partition → UNKNOWN_TOPIC_OR_PARTITION;
   * too many parked readers → LIMIT_EXCEEDED (retriable).
   */
  waitForData(positions: Array<TopicPartition & { afterOffset: number }>, maxWaitMs: number, signal?: AbortSignal, isolation?: Isolation): Promise<void>;

  // --- life -------------------------------------------------------------------------------
  /** What a health check reports: partitions whose log failed, and the data dir's free space. */
  health(): BrokerHealth;
  close(): Promise<void>;
}

export interface BrokerHealth {
  /** `<topic>-<partition>: <error>` for each partition whose log stopped taking appends for good. */
  failedPartitions: string[];
  disk: { path: string; freeBytes: number; totalBytes: number; floorBytes: number; belowFloor: boolean };
}

export type { BrokerError };
