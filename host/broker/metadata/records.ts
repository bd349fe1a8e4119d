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
//   producerIds      producer ids below `reservedUpTo` may have been handed out (a block reserved)
//   nodeIdentity     this node's id and its cluster's id
//   acl              one ACL binding added (host/security/acl.ts; adding one that exists is a no-op)
//   removeAcl        one ACL binding removed (every field must match; absent = a no-op)
//   scramCredential  a user's SCRAM credential for one mechanism set or replaced: salt,
//                    iterations, StoredKey, ServerKey as base64 (never a password)
//   removeScramCredential  a user's credential for one mechanism gone
//
// A record that does not fit the image (a topic that exists twice, a config for a missing
// topic, a producer-id block that goes backwards) is a programmer error: applying it throws,
// and the proposal changes nothing.
import type { TopicConfig } from '../api.js';
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

export type SecurityRecord = AclRecord | RemoveAclRecord | ScramCredentialRecord | RemoveScramCredentialRecord;

export type MetadataRecord = TopicRecord | ConfigRecord | RemoveTopicRecord | PartitionCountChange | ProducerIdsBlock | NodeIdentity | SecurityRecord;

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
}

/** The whole metadata, read-only: what every record applied so far adds up to. */
export interface MetadataImage {
  readonly node: { readonly nodeId: number; readonly clusterId: string };
  readonly topics: ReadonlyMap<string, TopicImage>;
  readonly producerIdsReservedUpTo: number;
  /** ACL bindings, in the order they were added. */
  readonly acls: readonly AclBinding[];
  /** SCRAM credentials by user, then mechanism. */
  readonly scram: ReadonlyMap<string, ReadonlyMap<ScramMechanism, ScramCredential>>;
}

export const EMPTY_IMAGE: MetadataImage = { node: { nodeId: 0, clusterId: 'tributary' }, topics: new Map(), producerIdsReservedUpTo: 0, acls: [], scram: new Map() };

/** The nodes that can hold replicas now. One node: this one. (The cluster adds its live brokers.) */
export function liveNodes(image: MetadataImage): number[] {
  return [image.node.nodeId];
}

/** Applies records in order to a copy of `image`; throws (changing nothing) on a record that does not fit. */
export function applyRecords(image: MetadataImage, records: readonly MetadataRecord[]): MetadataImage {
  const topics = new Map(image.topics);
  let node = image.node;
  let reservedUpTo = image.producerIdsReservedUpTo;
  let acls = image.acls;
  let scram = image.scram;
  for (const r of records) {
    switch (r.type) {
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
        topics.set(r.topic, { ...t, partitions: r.partitions, assignment });
        break;
      }
      case 'producerIds':
        // Never backwards: an id handed out below the old mark must stay reserved.
        if (!Number.isSafeInteger(r.reservedUpTo) || r.reservedUpTo < reservedUpTo) throw new Error(`metadata: producer ids reserved up to ${reservedUpTo}, a block cannot end at ${r.reservedUpTo}`);
        reservedUpTo = r.reservedUpTo;
        break;
      case 'nodeIdentity':
        node = { nodeId: r.nodeId, clusterId: r.clusterId };
        break;
      default:
        throw new Error(`metadata: unknown record ${JSON.stringify(r)}`);
    }
  }
  return { node, topics, producerIdsReservedUpTo: reservedUpTo, acls, scram };
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
