// Cluster metadata as records applied to an image (Kafka's KRaft model, in our own small set).
// A change to topics, configs, producer-id blocks or node identity is decided first (the
// broker's topic-admin.ts turns a request into records, or refuses it with a BrokerError),
// then proposed to a MetadataStore, which makes the records durable (one node: a file; a
// cluster: a Raft log) and applies them, in order, to the image every reader sees. Applying is
// a pure function of (image, record), so every store and every node computes the same image.
//
// Records of one proposal are applied all or none: `applyRecords` works on a copy and the
// store swaps the image in only once the batch is durable.
//
// Kinds (what each one changes in the image):
//   topic            a new topic: name, id, partition count, replication factor, assignment
//                    (replica node ids per partition), creation time; no config overrides yet
//   config           one topic config key set (value) or removed (value null = back to default)
//   removeTopic      the topic (name and id must match) is gone from the image
//   partitionCount   a topic's partition count changes; `assignment` lists the replicas of the
//                    partitions from the old count up to the new one (empty when shrinking,
//                    which only the broker's own rollback of a failed grow proposes)
//   producerIds      producer ids below `reservedUpTo` may have been handed out (a block reserved).
//                    Layout: {type, reservedUpTo, start?, nodeId?}. With `start` (a cluster's
//                    compare-and-set) the block is [start, reservedUpTo) for node `nodeId`: it
//                    applies only when `start` is the current mark, and the image remembers it as
//                    `producerIdsLastBlock` so the proposer can tell the block is its own; a block
//                    whose start is not the mark (another node took those ids first) is stale and
//                    changes nothing. Without `start` (records written before blocks were
//                    compare-and-set, and the file store's restore) it only moves the mark.
//   nodeIdentity     this node's id and its cluster's id
//   acl              one ACL binding added (host/security/acl.ts; adding one that exists is a no-op)
//   removeAcl        one ACL binding removed (every field must match; absent = a no-op)
//   scramCredential  a user's SCRAM credential for one mechanism set or replaced: salt,
//                    iterations, StoredKey, ServerKey as base64 (never a password)
//   removeScramCredential  a user's credential for one mechanism gone
//   partitionChange  a partition's leader, leader epoch and in-sync replicas (KRaft's
//                    PartitionChangeRecord): proposed by the controller (elections) and by a
//                    partition's leader (ISR shrink/expand); `basedOn` is the partition epoch the
//                    proposer saw, so of two racing changes the second fails instead of undoing
//                    the first. The partition epoch rises with every change; the leader epoch
//                    only with a new leader (KIP-101: what followers truncate by).
//   brokerRegistration  a node's Kafka listener (host, port) and that it is alive (unfenced);
//                    `incarnation` names the process that registered (a new one per start). A
//                    registration of a new incarnation is a new broker to the cluster (Kafka's
//                    broker epoch, KIP-841/903): the broker's epoch rises, and the node leaves every
//                    ISR it is in (its log may be behind what its old incarnation acknowledged:
//                    a power cut under flush=interval/never, a wiped or cut log) — except where
//                    it is the last member (Kafka's rule: no unclean election; then, if it leads,
//                    its leadership is a new one: leader epoch + 1). A partition it led with other
//                    members in sync is left leaderless (epoch + 1) for the controller to elect
//                    one of them. The leader adds it back once it has caught up (replication.ts).
//                    The same incarnation registering again (a retried proposal) changes nothing
//                    but the address; a registration without one (older entries) changes no ISR.
//                    `nodeKey`: the process's public key, which other nodes check its inter-node
//                    proofs against (host/security/node-identity.ts).
//   brokerFence      the controller stopped hearing from a node for the session timeout
//                    (fenced: true), or heard it again (false)
//
// A new topic's partitions start with the first replica of their assignment as leader, epoch 0,
// every replica in sync (KRaft's rule: a replica is in sync until it is seen to lag).
//
// A record that does not fit the image (a topic that exists twice, a config for a missing
// topic, a producer-id block that goes backwards) is a programmer error: applying it throws,
// and the proposal changes nothing.
import type { TopicConfig } from '../api.js';
import { isReplicatedTopic } from '../topic-name.js';
import { sameBinding, type AclBinding, type ScramCredential, type ScramMechanism } from '../../security/index.js';

export interface TopicRecord {
  type: 'topic';
  name: string;
  topicId: string;
  partitions: number;
  replicationFactor: number;
  /** assignment[p] = the node ids holding partition p, the preferred leader first. */
  assignment: number[][];
  createdMs: number;
}

export interface ConfigRecord {
  type: 'config';
  topic: string;
  key: keyof TopicConfig;
  /** The parsed value; null removes the override (the broker default applies again). */
  value: TopicConfig[keyof TopicConfig] | null;
}

export interface RemoveTopicRecord {
  type: 'removeTopic';
  name: string;
  topicId: string;
}

export interface PartitionCountChange {
  type: 'partitionCount';
  topic: string;
  partitions: number;
  /** Replicas of the partitions added (old count .. new count - 1). */
  assignment: number[][];
}

export interface ProducerIdsBlock {
  type: 'producerIds';
  /** Every producer id below this may have been handed out; allocation resumes here after a restart. */
  reservedUpTo: number;
  /** The mark the proposer read: the block is [start, reservedUpTo), applied only if the mark is still here. Absent in older records. */
  start?: number;
  /** The node (allocator) the block is for; with `start`. */
  nodeId?: number;
}

/** The last producer-id block applied by compare-and-set (a ProducerIdsBlock with `start`). */
export interface ProducerIdsBlockImage {
  readonly start: number;
  readonly upTo: number;
  readonly nodeId: number;
}

export interface NodeIdentity {
  type: 'nodeIdentity';
  nodeId: number;
  clusterId: string;
}

export interface AclRecord {
  type: 'acl';
  binding: AclBinding;
}

export interface RemoveAclRecord {
  type: 'removeAcl';
  binding: AclBinding;
}

export interface ScramCredentialRecord {
  type: 'scramCredential';
  user: string;
  mechanism: ScramMechanism;
  iterations: number;
  /** base64, like the three keys below: records stay plain JSON for every store. */
  salt: string;
  storedKey: string;
  serverKey: string;
}

export interface RemoveScramCredentialRecord {
  type: 'removeScramCredential';
  user: string;
  mechanism: ScramMechanism;
}

export interface PartitionChangeRecord {
  type: 'partitionChange';
  topic: string;
  partition: number;
  /** The partition epoch the proposer decided on; applying fails when the image moved since. */
  basedOn: number;
  leader: number;
  leaderEpoch: number;
  isr: number[];
}

export interface BrokerRegistrationRecord {
  type: 'brokerRegistration';
  nodeId: number;
  host: string;
  port: number;
  /** The registering process (unique per start); absent in entries written before broker epochs. */
  incarnation?: string;
  /** The process's public key (Ed25519, SPKI DER base64) it proves itself with on other nodes' listeners (host/security/node-identity.ts). */
  nodeKey?: string;
}

export interface BrokerFenceRecord {
  type: 'brokerFence';
  nodeId: number;
  fenced: boolean;
}

/** No leader (every in-sync replica fenced, no unclean election): Kafka's -1. */
export const NO_LEADER = -1;

export type SecurityRecord = AclRecord | RemoveAclRecord | ScramCredentialRecord | RemoveScramCredentialRecord;

export type MetadataRecord =
  | TopicRecord
  | ConfigRecord
  | RemoveTopicRecord
  | PartitionCountChange
  | ProducerIdsBlock
  | NodeIdentity
  | SecurityRecord
  | PartitionChangeRecord
  | BrokerRegistrationRecord
  | BrokerFenceRecord;

export function isSecurityRecord(r: MetadataRecord): r is SecurityRecord {
  return r.type === 'acl' || r.type === 'removeAcl' || r.type === 'scramCredential' || r.type === 'removeScramCredential';
}

/** One topic as the image holds it. */
export interface TopicImage {
  readonly name: string;
  readonly topicId: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly assignment: readonly (readonly number[])[];
  readonly createdMs: number;
  readonly overrides: Readonly<Partial<TopicConfig>>;
  /** Leader, epochs and ISR per partition (absent in images written before replication: see partitionStateOf). */
  readonly states?: readonly PartitionLeadership[];
}

/** One partition's leadership as the image holds it. */
export interface PartitionLeadership {
  readonly leader: number;
  readonly leaderEpoch: number;
  /** Rises with every change of leader or ISR (the `basedOn` a change must name). */
  readonly partitionEpoch: number;
  readonly isr: readonly number[];
}

/** A registered broker: where its Kafka listener is, and whether the controller fenced it. */
export interface BrokerImage {
  readonly nodeId: number;
  readonly host: string;
  readonly port: number;
  readonly fenced: boolean;
  /** The process that registered last (absent: registered before broker epochs). */
  readonly incarnation?: string;
  /** Rises with every registration of a new incarnation (Kafka's broker epoch); 0 before the first. */
  readonly epoch?: number;
  /** The registered process's public key (inter-node authentication); absent before it existed. */
  readonly nodeKey?: string;
}

/** Partition p's leadership; an image without states (one node, older data) has the first replica lead at epoch 0. */
export function partitionStateOf(t: TopicImage, p: number): PartitionLeadership {
  const s = t.states?.[p];
  if (s) return s;
  const replicas = t.assignment[p] ?? [];
  return { leader: replicas[0] ?? NO_LEADER, leaderEpoch: 0, partitionEpoch: 0, isr: [...replicas] };
}

function initialStates(assignment: readonly (readonly number[])[]): PartitionLeadership[] {
  return assignment.map((replicas) => ({ leader: replicas[0] ?? NO_LEADER, leaderEpoch: 0, partitionEpoch: 0, isr: [...replicas] }));
}

/** The whole metadata, read-only: what every record applied so far adds up to. */
export interface MetadataImage {
  readonly node: { readonly nodeId: number; readonly clusterId: string };
  readonly topics: ReadonlyMap<string, TopicImage>;
  readonly producerIdsReservedUpTo: number;
  /** The last block taken by compare-and-set (absent: none yet, older data, or restored from a snapshot). */
  readonly producerIdsLastBlock?: ProducerIdsBlockImage;
  /** ACL bindings, in the order they were added. */
  readonly acls: readonly AclBinding[];
  /** SCRAM credentials by user, then mechanism. */
  readonly scram: ReadonlyMap<string, ReadonlyMap<ScramMechanism, ScramCredential>>;
  /** Registered brokers by node id (a cluster; empty on one node). */
  readonly brokers: ReadonlyMap<number, BrokerImage>;
}

export const EMPTY_IMAGE: MetadataImage = { node: { nodeId: 0, clusterId: 'tributary' }, topics: new Map(), producerIdsReservedUpTo: 0, acls: [], scram: new Map(), brokers: new Map() };

/** The nodes that can hold replicas now: one node, this one; a cluster, its registered unfenced brokers. */
export function liveNodes(image: MetadataImage): number[] {
  const live = [...(image.brokers ?? new Map<number, BrokerImage>()).values()].filter((b) => !b.fenced).map((b) => b.nodeId);
  return live.length > 0 ? live.sort((a, b) => a - b) : [image.node.nodeId];
}

/** Applies records in order to a copy of `image`; throws (changing nothing) on a record that does not fit. */
export function applyRecords(image: MetadataImage, records: readonly MetadataRecord[]): MetadataImage {
  const topics = new Map(image.topics);
  let node = image.node;
  let reservedUpTo = image.producerIdsReservedUpTo;
  let lastBlock = image.producerIdsLastBlock;
  let acls = image.acls;
  let scram = image.scram;
  let brokers = image.brokers ?? new Map<number, BrokerImage>();
  for (const r of records) {
    switch (r.type) {
      case 'partitionChange':
        topics.set(r.topic, applyPartitionChange(topicOf(topics, r.topic), r));
        break;
      case 'brokerRegistration':
        if (isRestart(brokers, r)) for (const [name, t] of topics) if (isReplicatedTopic(name)) topics.set(name, withoutRestartedBroker(t, r.nodeId));
        brokers = applyBroker(brokers, r);
        break;
      case 'brokerFence':
        brokers = applyBroker(brokers, r);
        break;
      case 'acl':
        if (!acls.some((b) => sameBinding(b, r.binding))) acls = [...acls, { ...r.binding }];
        break;
      case 'removeAcl':
        acls = acls.filter((b) => !sameBinding(b, r.binding));
        break;
      case 'scramCredential':
      case 'removeScramCredential':
        scram = applyScram(scram, r);
        break;
      case 'topic':
        if (topics.has(r.name)) throw new Error(`metadata: topic ${r.name} exists already`);
        if (r.assignment.length !== r.partitions) throw new Error(`metadata: topic ${r.name} has ${r.partitions} partitions but ${r.assignment.length} assignments`);
        topics.set(r.name, {
          name: r.name,
          topicId: r.topicId,
          partitions: r.partitions,
          replicationFactor: r.replicationFactor,
          assignment: r.assignment.map((a) => [...a]),
          createdMs: r.createdMs,
          overrides: {},
          states: initialStates(r.assignment),
        });
        break;
      case 'config': {
        const t = topicOf(topics, r.topic);
        const overrides: Partial<Record<keyof TopicConfig, unknown>> = { ...t.overrides };
        if (r.value === null) delete overrides[r.key];
        else overrides[r.key] = r.value;
        topics.set(r.topic, { ...t, overrides: overrides as Partial<TopicConfig> });
        break;
      }
      case 'removeTopic': {
        const t = topicOf(topics, r.name);
        if (t.topicId !== r.topicId) throw new Error(`metadata: topic ${r.name} has id ${t.topicId}, not ${r.topicId}`);
        topics.delete(r.name);
        break;
      }
      case 'partitionCount': {
        const t = topicOf(topics, r.topic);
        if (!Number.isSafeInteger(r.partitions) || r.partitions < 1) throw new Error(`metadata: topic ${r.topic} cannot have ${r.partitions} partitions`);
        const grow = Math.max(0, r.partitions - t.partitions);
        if (r.assignment.length !== grow) throw new Error(`metadata: ${grow} partitions added to ${r.topic} but ${r.assignment.length} assignments`);
        const assignment = [...t.assignment.slice(0, r.partitions), ...r.assignment.map((a) => [...a])];
        const kept = Array.from({ length: Math.min(t.partitions, r.partitions) }, (_, p) => partitionStateOf(t, p));
        topics.set(r.topic, { ...t, partitions: r.partitions, assignment, states: [...kept, ...initialStates(r.assignment)] });
        break;
      }
      case 'producerIds':
        ({ reservedUpTo, lastBlock } = applyProducerIds(reservedUpTo, lastBlock, r));
        break;
      case 'nodeIdentity':
        node = { nodeId: r.nodeId, clusterId: r.clusterId };
        break;
      default:
        throw new Error(`metadata: unknown record ${JSON.stringify(r)}`);
    }
  }
  return { node, topics, producerIdsReservedUpTo: reservedUpTo, ...(lastBlock ? { producerIdsLastBlock: lastBlock } : {}), acls, scram, brokers };
}

function applyProducerIds(mark: number, last: ProducerIdsBlockImage | undefined, r: ProducerIdsBlock): { reservedUpTo: number; lastBlock: ProducerIdsBlockImage | undefined } {
  if (r.start === undefined) {
    // Never backwards: an id handed out below the old mark must stay reserved.
    if (!Number.isSafeInteger(r.reservedUpTo) || r.reservedUpTo < mark) throw new Error(`metadata: producer ids reserved up to ${mark}, a block cannot end at ${r.reservedUpTo}`);
    return { reservedUpTo: r.reservedUpTo, lastBlock: last };
  }
  if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.reservedUpTo) || r.reservedUpTo <= r.start || !Number.isSafeInteger(r.nodeId)) {
    throw new Error(`metadata: producer-id block [${r.start}, ${r.reservedUpTo}) of node ${r.nodeId} is malformed`);
  }
  // Compare-and-set: two nodes that read the same mark propose the same start; only the first
  // applied takes the block, the other is stale and changes nothing (its proposer sees the last
  // block is not its own and tries again from the new mark).
  if (r.start !== mark) return { reservedUpTo: mark, lastBlock: last };
  return { reservedUpTo: r.reservedUpTo, lastBlock: { start: r.start, upTo: r.reservedUpTo, nodeId: r.nodeId as number } };
}

/** Thrown when a partition change was decided on an image that has moved since (see `basedOn`). */
export const STALE_PARTITION_CHANGE = 'stale partition change';

function applyPartitionChange(t: TopicImage, r: PartitionChangeRecord): TopicImage {
  if (!Number.isInteger(r.partition) || r.partition < 0 || r.partition >= t.partitions) throw new Error(`metadata: no topic ${r.topic} partition ${r.partition}`);
  const now = partitionStateOf(t, r.partition);
  if (r.basedOn !== now.partitionEpoch) throw new Error(`metadata: ${STALE_PARTITION_CHANGE} of ${r.topic}-${r.partition}: decided at partition epoch ${r.basedOn}, it is ${now.partitionEpoch}`);
  // Leader epochs never go back (KIP-101): a follower truncates by them.
  if (r.leaderEpoch < now.leaderEpoch) throw new Error(`metadata: ${r.topic}-${r.partition} leader epoch ${now.leaderEpoch} cannot go back to ${r.leaderEpoch}`);
  if (r.leader !== NO_LEADER && !r.isr.includes(r.leader)) throw new Error(`metadata: ${r.topic}-${r.partition} leader ${r.leader} is not in its ISR [${r.isr.join(', ')}]`);
  const states = Array.from({ length: t.partitions }, (_, p) => partitionStateOf(t, p));
  states[r.partition] = { leader: r.leader, leaderEpoch: r.leaderEpoch, partitionEpoch: now.partitionEpoch + 1, isr: [...r.isr] };
  return { ...t, states };
}

/** A registration by a new process of a node registered before (a registration without an incarnation never is). */
function isRestart(brokers: ReadonlyMap<number, BrokerImage>, r: BrokerRegistrationRecord): boolean {
  const before = brokers.get(r.nodeId);
  return r.incarnation !== undefined && before !== undefined && before.incarnation !== r.incarnation;
}

/**
 * A broker registered with a new incarnation leaves every ISR of `t` it is in, but never empties
 * one (see brokerRegistration in the header). Partition epochs rise with each change, so a change
 * decided on the image before the registration fails (`basedOn`) and is decided again.
 */
function withoutRestartedBroker(t: TopicImage, nodeId: number): TopicImage {
  let states: PartitionLeadership[] | undefined;
  for (let p = 0; p < t.partitions; p++) {
    const s = partitionStateOf(t, p);
    if (!s.isr.includes(nodeId)) continue;
    const isr = s.isr.filter((id) => id !== nodeId);
    const led = s.leader === nodeId;
    let next: PartitionLeadership;
    if (isr.length > 0) next = { leader: led ? NO_LEADER : s.leader, leaderEpoch: led ? s.leaderEpoch + 1 : s.leaderEpoch, partitionEpoch: s.partitionEpoch + 1, isr };
    else if (led) next = { ...s, leaderEpoch: s.leaderEpoch + 1, partitionEpoch: s.partitionEpoch + 1 };
    else continue; // the last member, leaderless: it stays named, only it may lead again
    states ??= Array.from({ length: t.partitions }, (_, i) => partitionStateOf(t, i));
    states[p] = next;
  }
  return states ? { ...t, states } : t;
}

function applyBroker(brokers: ReadonlyMap<number, BrokerImage>, r: BrokerRegistrationRecord | BrokerFenceRecord): ReadonlyMap<number, BrokerImage> {
  const next = new Map(brokers);
  if (r.type === 'brokerRegistration') {
    const before = brokers.get(r.nodeId);
    const newIncarnation = r.incarnation === undefined || before?.incarnation !== r.incarnation;
    const epoch = (before?.epoch ?? 0) + (newIncarnation ? 1 : 0);
    next.set(r.nodeId, { nodeId: r.nodeId, host: r.host, port: r.port, fenced: false, ...(r.incarnation !== undefined ? { incarnation: r.incarnation } : {}), epoch, ...(r.nodeKey !== undefined ? { nodeKey: r.nodeKey } : {}) });
  } else {
    const b = brokers.get(r.nodeId);
    if (!b) throw new Error(`metadata: broker ${r.nodeId} is not registered`);
    next.set(r.nodeId, { ...b, fenced: r.fenced });
  }
  return next;
}

function applyScram(
  scram: ReadonlyMap<string, ReadonlyMap<ScramMechanism, ScramCredential>>,
  r: ScramCredentialRecord | RemoveScramCredentialRecord,
): ReadonlyMap<string, ReadonlyMap<ScramMechanism, ScramCredential>> {
  const next = new Map(scram);
  const mine = new Map(scram.get(r.user) ?? []);
  if (r.type === 'removeScramCredential') mine.delete(r.mechanism);
  else {
    if (!Number.isSafeInteger(r.iterations) || r.iterations < 1) throw new Error(`metadata: SCRAM iterations must be positive, got ${r.iterations}`);
    const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));
    mine.set(r.mechanism, { mechanism: r.mechanism, iterations: r.iterations, salt: bytes(r.salt), storedKey: bytes(r.storedKey), serverKey: bytes(r.serverKey) });
  }
  if (mine.size === 0) next.delete(r.user);
  else next.set(r.user, mine);
  return next;
}

function topicOf(topics: Map<string, TopicImage>, name: string): TopicImage {
  const t = topics.get(name);
  if (!t) throw new Error(`metadata: no topic ${name}`);
  return t;
}
