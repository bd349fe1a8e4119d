// Kafka's legal topic names (Topic.validate in Kafka's clients): ASCII letters, digits, '.',
// '_' and '-', at most 249 characters, and neither "." nor "..". The same rule keeps a name
// safe as a directory name: `<dataDir>/<topic>-<partition>/` can never escape the data dir.
import { BrokerError } from '../errors/index.js';

/** Kafka's limit: 255 (a file name) minus room for "-<partition>" and suffixes. */
export const TOPIC_NAME_LENGTH_MAX = 249;

const LEGAL = /^[a-zA-Z0-9._-]+$/;

/** The schema registry's store: Confluent's name (one underscore), the broker's like the `__` topics. */
const SCHEMAS_TOPIC = '_schemas';

/** Topics whose names start with "__" belong to the broker (consumer offsets, transactions), and `_schemas` (the registry). */
export function isInternalTopic(name: string): boolean {
  return name.startsWith('__') || name === SCHEMAS_TOPIC;
}

/**
 * Internal topics a cluster replicates like user topics: the group coordinator's, so a group's
 * coordinator fails over with its partition's leader, and the MQTT retained messages and session
 * table, which every node's gateway writes (forwarded to the leader as an authenticated internal
 * append, host/security/node-identity.ts) and follows (docs/cluster.md). The others (MQTT offline
 * queues, `_schemas`, uplink state) stay each node's own.
 */
const REPLICATED_INTERNAL_TOPICS: ReadonlySet<string> = new Set(['__consumer_offsets', '__mqtt_retained', '__mqtt_sessions']);

/** True for a topic a cluster replicates: every user topic and the replicated internal ones. */
export function isReplicatedTopic(name: string): boolean {
  return !isInternalTopic(name) || REPLICATED_INTERNAL_TOPICS.has(name);
}

/** Why `name` is not a legal topic name, or undefined when it is. */
export function topicNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return `topic name must be a string, got ${typeof name}`;
  if (name.length === 0) return 'topic name is empty';
  if (name === '.' || name === '..') return `topic name cannot be "${name}"`;
  if (name.length > TOPIC_NAME_LENGTH_MAX) {
    return `topic name is ${name.length} characters, more than the ${TOPIC_NAME_LENGTH_MAX} allowed`;
  }
  if (!LEGAL.test(name)) {
    const bad = [...name].find((c) => !/[a-zA-Z0-9._-]/.test(c))!;
    return `topic name "${printable(name)}" contains ${JSON.stringify(bad)}; allowed are ASCII letters, digits, '.', '_' and '-'`;
  }
  return undefined;
}

/** Throws INVALID_TOPIC_EXCEPTION naming the problem. */
export function assertTopicName(name: unknown): asserts name is string {
  const problem = topicNameProblem(name);
  if (problem) throw new BrokerError('INVALID_TOPIC_EXCEPTION', problem);
}

function printable(name: string): string {
  const short = name.length > 60 ? `${name.slice(0, 60)}…` : name;
  return short.replace(/[^\x20-\x7e]/g, '?');
}
