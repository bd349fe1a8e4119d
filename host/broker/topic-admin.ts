// Topic admin, the deciding half: a request (create, delete, grow, alter configs) checked
// against the metadata image and the broker's limits becomes metadata records, or a
// BrokerError naming the field at fault. Every door calls this through the broker (HTTP
// POST /topics, Kafka CreateTopics/DeleteTopics/CreatePartitions/(Incremental)AlterConfigs,
// the CLI), so the same bad input gets the same error everywhere, and Kafka's validate_only is
// the same check without the proposal. Nothing here writes or waits: persisting is the metadata
// store's (host/broker/metadata/), applying to partitions the broker's.
//
// Internal topics (`__*`, `_schemas`) belong to the broker (issue 13, findings 1 and 2): no
// client creates one, alters its configs, grows it or deletes it — whatever the door, whatever the
// principal. Only the broker's own components (the group coordinator, MQTT persistence, the
// schema registry, compacted tables) create them, through BrokerApi.createTopic with
// `internal: true` in the context. Refused with POLICY_VIOLATION naming the topic.
//
// Checks run in Kafka's order: name, shape of the request, partition count, replication factor
// and assignment against the live nodes, config keys and values, then what depends on the
// current state (exists, collides, topic and partition limits).
import { BrokerError } from '../errors/index.js';
import { codecSupport } from '../core/index.js';
import type { TopicConfig, TopicConfigChanges, TopicSpec } from './api.js';
import { assertTopicName, isInternalTopic, isReplicatedTopic } from './topic-name.js';
import { brokerBatchCompression, isTopicConfigKey, parseTopicConfigValue, topicConfigKeys, validateTopicConfig } from './topic-config.js';
import { liveNodes, type ConfigRecord, type MetadataImage, type MetadataRecord, type PartitionCountChange, type RemoveTopicRecord, type TopicImage } from './metadata/records.js';

export type { TopicSpec, TopicConfigChanges } from './api.js';

export interface AdminLimits {
  defaultPartitions: number;
  maxPartitionsPerTopic: number;
  maxPartitionsTotal: number;
  maxTopics: number;
  maxMessageBytesMax: number;
}

export interface AdminContext {
  image: MetadataImage;
  limits: AdminLimits;
  /** Counts a refusal by a configured limit (metrics); only when the change would really be made. */
  refused(limit: string): void;
  newTopicId(): string;
  nowMs(): number;
  /** The request comes from the broker's own components, which alone may create internal topics. */
  internal?: boolean;
}

/** What a create decided: the records to propose and the overrides they set. */
export interface CreateDecision {
  records: MetadataRecord[];
  partitions: number;
  replicationFactor: number;
  assignment: number[][];
  overrides: Partial<TopicConfig>;
}

/** Kafka's default.replication.factor is 1; a cluster of edge nodes wants 3 where it has them (issue 11). */
const DEFAULT_REPLICATION_FACTOR_MAX = 3;

export function decideCreateTopic(spec: TopicSpec, ctx: AdminContext): CreateDecision {
  if (typeof spec !== 'object' || spec === null) throw new BrokerError('INVALID_REQUEST', 'a topic to create needs at least a name');
  const name = spec.name;
  assertTopicName(name);
  refuseInternal(name, 'created', ctx);
  const manual = spec.assignment !== undefined && spec.assignment !== null && spec.assignment.length > 0;
  const asked = (v: number | undefined) => v !== undefined && v !== null && v !== -1;
  if (manual && (asked(spec.partitions) || asked(spec.replicationFactor))) {
    throw new BrokerError('INVALID_REQUEST', `topic ${name}: give either assignment or partitions/replicationFactor, not both`);
  }
  const partitions = manual ? spec.assignment!.length : asked(spec.partitions) ? spec.partitions! : ctx.limits.defaultPartitions;
  checkPartitionCount(name, partitions, ctx);
  let assignment: number[][];
  let replicationFactor: number;
  if (manual) {
    assignment = checkAssignment(name, spec.assignment!, 0, ctx.image);
    replicationFactor = assignment[0].length;
  } else {
    // Internal topics other than the replicated ones stay on the node that writes them (docs/cluster.md).
    const defaultFactor = isReplicatedTopic(name) ? Math.min(DEFAULT_REPLICATION_FACTOR_MAX, liveNodes(ctx.image).length) : 1;
    replicationFactor = asked(spec.replicationFactor) ? spec.replicationFactor! : defaultFactor;
    assignment = assignReplicas(name, partitions, replicationFactor, ctx.image);
  }
  const overrides = checkConfig(spec.config, ctx);
  checkRoomFor(name, partitions, ctx);
  const records: MetadataRecord[] = [{ type: 'topic', name, topicId: ctx.newTopicId(), partitions, replicationFactor, assignment, createdMs: ctx.nowMs() }];
  for (const [key, value] of Object.entries(overrides)) records.push({ type: 'config', topic: name, key: key as keyof TopicConfig, value: value as TopicConfig[keyof TopicConfig] });
  return { records, partitions, replicationFactor, assignment, overrides };
}

export function decideDeleteTopic(name: string, ctx: AdminContext): RemoveTopicRecord {
  const t = existing(name, ctx.image);
  // Never, not even by the broker's own components through this call.
  refuseInternal(name, 'deleted', { ...ctx, internal: false });
  return { type: 'removeTopic', name, topicId: t.topicId };
}

/** Grows a topic to `totalCount` partitions; `assignment` (optional) lists the new partitions' replicas. */
export function decideCreatePartitions(name: string, totalCount: number, assignment: number[][] | undefined, ctx: AdminContext): PartitionCountChange {
  const t = existing(name, ctx.image);
  refuseInternal(name, 'given more partitions', ctx);
  if (!Number.isSafeInteger(totalCount) || totalCount <= t.partitions) {
    throw new BrokerError('INVALID_PARTITIONS', `topic ${name} has ${t.partitions} partitions; the new count must be larger (got ${totalCount}): partitions can only be added`);
  }
  checkPartitionCount(name, totalCount, ctx);
  const adding = totalCount - t.partitions;
  let added: number[][];
  if (assignment !== undefined && assignment !== null && assignment.length > 0) {
    if (assignment.length !== adding) throw new BrokerError('INVALID_REQUEST', `topic ${name}: assignment lists ${assignment.length} partitions, ${adding} are being added`);
    added = checkAssignment(name, assignment, t.partitions, ctx.image);
    if (added[0].length !== t.replicationFactor) {
      throw new BrokerError('INVALID_REPLICATION_FACTOR', `topic ${name}: assignment gives ${added[0].length} replicas per partition, the topic has replication factor ${t.replicationFactor}`);
    }
  } else {
    added = assignReplicas(name, adding, t.replicationFactor, ctx.image);
  }
  checkTotalPartitions(name, adding, ctx);
  return { type: 'partitionCount', topic: name, partitions: totalCount, assignment: added };
}

/** Config changes (null = back to the default) as one ConfigRecord per key; every value parsed. */
export function decideAlterConfig(name: string, changes: TopicConfigChanges, ctx: AdminContext): ConfigRecord[] {
  if (typeof changes !== 'object' || changes === null) throw new BrokerError('INVALID_CONFIG', 'config changes must be an object of key → value');
  const t = existing(name, ctx.image);
  refuseInternal(name, 'reconfigured', ctx);
  const records: ConfigRecord[] = [];
  const after: Partial<Record<keyof TopicConfig, unknown>> = { ...t.overrides };
  for (const [key, value] of Object.entries(changes)) {
    if (!isTopicConfigKey(key)) throw new BrokerError('INVALID_CONFIG', `unknown config "${key}"; known keys: ${topicConfigKeys.join(', ')}`);
    if (value === undefined) continue;
    const parsed = value === null ? null : (parseTopicConfigValue(key, value, ctx.limits.maxMessageBytesMax) as TopicConfig[keyof TopicConfig]);
    if (parsed === null) delete after[key];
    else after[key] = parsed;
    records.push({ type: 'config', topic: name, key, value: parsed });
  }
  checkCompressionAvailable(after as Partial<TopicConfig>);
  return records;
}

/** Internal topics are the broker's: a client request to change one is a policy violation. */
export function refuseInternal(name: string, what: string, ctx: Pick<AdminContext, 'internal'>): void {
  if (isInternalTopic(name) && ctx.internal !== true) {
    throw new BrokerError('POLICY_VIOLATION', `topic ${name} is internal to the broker and cannot be ${what} by a client (names starting with "__" and _schemas are reserved)`);
  }
}

function existing(name: string, image: MetadataImage): TopicImage {
  const t = image.topics.get(name);
  if (!t) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${name} does not exist`);
  return t;
}

function checkPartitionCount(topic: string, partitions: number, ctx: AdminContext): void {
  if (!Number.isSafeInteger(partitions) || partitions < 1) {
    throw new BrokerError('INVALID_PARTITIONS', `topic ${topic}: partitions must be a positive integer (or -1 for the default), got ${partitions}`);
  }
  if (partitions > ctx.limits.maxPartitionsPerTopic) {
    ctx.refused('maxPartitionsPerTopic');
    throw new BrokerError('INVALID_PARTITIONS', `topic ${topic}: ${partitions} partitions is more than maxPartitionsPerTopic=${ctx.limits.maxPartitionsPerTopic}`);
  }
}

/** Replicas for `count` partitions, spread over the live nodes (one node: every replica is this one). */
function assignReplicas(topic: string, count: number, replicationFactor: number, image: MetadataImage): number[][] {
  const nodes = liveNodes(image);
  if (!Number.isSafeInteger(replicationFactor) || replicationFactor < 1 || replicationFactor > nodes.length) {
    throw new BrokerError(
      'INVALID_REPLICATION_FACTOR',
      `topic ${topic}: replicationFactor: replication factor ${replicationFactor} is not possible with ${nodes.length} live node${nodes.length === 1 ? '' : 's'} [${nodes.join(', ')}] (use 1..${nodes.length}, or -1 for the default)`,
    );
  }
  return Array.from({ length: count }, (_, p) => Array.from({ length: replicationFactor }, (_, r) => nodes[(p + r) % nodes.length]));
}

/** A manual assignment: every partition on the same number of distinct, live nodes. */
function checkAssignment(topic: string, assignment: number[][], firstPartition: number, image: MetadataImage): number[][] {
  const live = new Set(liveNodes(image));
  const width = Array.isArray(assignment[0]) ? assignment[0].length : 0;
  return assignment.map((replicas, i) => {
    const p = firstPartition + i;
    if (!Array.isArray(replicas) || replicas.length === 0) throw new BrokerError('INVALID_REQUEST', `topic ${topic}: assignment: partition ${p} has no replicas`);
    if (replicas.length !== width) throw new BrokerError('INVALID_REPLICATION_FACTOR', `topic ${topic}: assignment: partition ${p} has ${replicas.length} replicas, partition ${firstPartition} has ${width}`);
    if (new Set(replicas).size !== replicas.length) throw new BrokerError('INVALID_REQUEST', `topic ${topic}: assignment: partition ${p} names a node twice: [${replicas.join(', ')}]`);
    for (const node of replicas) {
      if (!live.has(node)) {
        throw new BrokerError('INVALID_REPLICATION_FACTOR', `topic ${topic}: assignment: partition ${p} must be on live nodes [${[...live].join(', ')}], got [${replicas.join(', ')}]`);
      }
    }
    return [...replicas];
  });
}

function checkConfig(config: Record<string, unknown> | undefined, ctx: AdminContext): Partial<TopicConfig> {
  let entries = config;
  if (entries !== undefined && entries !== null && typeof entries === 'object' && !Array.isArray(entries)) {
    // A null value means "the default" (Kafka's CreateTopics), the same as leaving the key out.
    entries = Object.fromEntries(Object.entries(entries).filter(([key, value]) => value !== null || !isTopicConfigKey(key)));
  }
  const overrides = validateTopicConfig(entries ?? undefined, ctx.limits.maxMessageBytesMax);
  checkCompressionAvailable(overrides);
  return overrides;
}

/** What depends on the current topics: the name is free, does not collide, and the limits have room. */
function checkRoomFor(topic: string, partitions: number, ctx: AdminContext): void {
  const topics = ctx.image.topics;
  if (topics.has(topic)) throw new BrokerError('TOPIC_ALREADY_EXISTS', `topic ${topic} already exists`);
  // Kafka refuses names that differ only by '.' vs '_' (they collide in metric names).
  const folded = topic.replace(/\./g, '_');
  for (const name of topics.keys()) {
    if (name.replace(/\./g, '_') === folded) throw new BrokerError('INVALID_TOPIC_EXCEPTION', `topic ${topic} collides with existing topic ${name} ('.' and '_' are treated alike)`);
  }
  if (topics.size >= ctx.limits.maxTopics) {
    ctx.refused('maxTopics');
    throw new BrokerError('POLICY_VIOLATION', `cannot create topic ${topic}: the broker already has ${topics.size} topics (maxTopics=${ctx.limits.maxTopics})`);
  }
  checkTotalPartitions(topic, partitions, ctx);
}

function checkTotalPartitions(topic: string, adding: number, ctx: AdminContext): void {
  let total = 0;
  for (const t of ctx.image.topics.values()) total += t.partitions;
  if (total + adding > ctx.limits.maxPartitionsTotal) {
    ctx.refused('maxPartitionsTotal');
    throw new BrokerError('POLICY_VIOLATION', `topic ${topic}: ${adding} more partitions would make ${total + adding}, more than maxPartitionsTotal=${ctx.limits.maxPartitionsTotal}`);
  }
}

/** A topic may only ask the broker to build batches with a codec this process can compress. */
export function checkCompressionAvailable(config: Partial<TopicConfig>): void {
  const type = config['compression.type'];
  if (type === undefined) return;
  const codec = brokerBatchCompression(type);
  if (!codecSupport()[codec].compress) {
    throw new BrokerError('INVALID_CONFIG', `invalid value "${type}" for config "compression.type": this broker cannot compress ${codec} (its codec did not load)`);
  }
}
