// CreateTopics (key 19), versions 2–7; v5+ flexible.
//   v2: topics[name, num_partitions, replication_factor, assignments[partition_index, broker_ids], configs[name, value]], timeout_ms, validate_only
//       response: throttle_time_ms, topics[name, error_code, error_message]
//   v3, v4: same   v5: flexible; response + num_partitions, replication_factor, configs (and a tagged config error code)
//   v6: same       v7: response + topic_id
// Replication factor must be 1 or -1 (broker default) until the cluster issue; num_partitions
// -1 means the broker default (as KIP-464). A manual assignment must name only this node; its
// length is the partition count. validate_only checks the request (name free, factor, counts,
// config keys) and creates nothing.
import { arr, f, type Schema } from '../protocol/schema.js';
import { ZERO_UUID } from '../protocol/codec.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import type { TopicConfig } from '../../broker/api.js';
import { kafkaCode, kafkaMessage, type ApiHandler, type RequestContext } from './types.js';
import { isTopicConfigKey, topicConfigEntries, topicIdBytes } from './topic-configs.js';

const request: Schema = [
  arr('topics', '0+', [
    f('name', 'string', '0+'),
    f('numPartitions', 'int32', '0+'),
    f('replicationFactor', 'int16', '0+'),
    arr('assignments', '0+', [f('partitionIndex', 'int32', '0+'), arr('brokerIds', '0+', 'int32')]),
    arr('configs', '0+', [f('name', 'string', '0+'), f('value', 'string', '0+', { nullable: '0+' })]),
  ]),
  f('timeoutMs', 'int32', '0+', { default: 60000 }),
  f('validateOnly', 'bool', '1+'),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '2+'),
  arr('topics', '0+', [
    f('name', 'string', '0+'),
    f('topicId', 'uuid', '7+'),
    f('errorCode', 'int16', '0+'),
    f('errorMessage', 'string', '1+', { nullable: '0+', default: null }),
    f('topicConfigErrorCode', 'int16', '5+', { tagged: '5+', tag: 0 }),
    f('numPartitions', 'int32', '5+', { default: -1 }),
    f('replicationFactor', 'int16', '5+', { default: -1 }),
    arr(
      'configs',
      '5+',
      [f('name', 'string', '5+'), f('value', 'string', '5+', { nullable: '5+' }), f('readOnly', 'bool', '5+'), f('configSource', 'int8', '5+', { default: -1 }), f('isSensitive', 'bool', '5+')],
      { nullable: '5+' },
    ),
  ]),
];

interface CreateTopicsRequest {
  topics: Array<{
    name: string;
    numPartitions: number;
    replicationFactor: number;
    assignments: Array<{ partitionIndex: number; brokerIds: number[] }>;
    configs: Array<{ name: string; value: string | null }>;
  }>;
  validateOnly: boolean;
}

async function createOne(t: CreateTopicsRequest['topics'][number], validateOnly: boolean, ctx: RequestContext) {
  const nodeId = ctx.node.nodeId;
  if (t.replicationFactor !== 1 && t.replicationFactor !== -1) {
    throw new BrokerError('INVALID_REPLICATION_FACTOR', `replication factor ${t.replicationFactor} is not possible: this is a single node (use 1 or -1)`);
  }
  let partitions = t.numPartitions === -1 ? (ctx.options.defaultPartitions ?? 1) : t.numPartitions;
  if (t.assignments.length > 0) {
    if (t.numPartitions !== -1 || t.replicationFactor !== -1) throw new BrokerError('INVALID_REQUEST', 'give either assignments or num_partitions/replication_factor, not both');
    for (const a of t.assignments) {
      if (a.brokerIds.length !== 1 || a.brokerIds[0] !== nodeId) throw new BrokerError('INVALID_REPLICATION_FACTOR', `assignment for partition ${a.partitionIndex} must be [${nodeId}] (single node)`);
    }
    partitions = t.assignments.length;
  }
  if (partitions <= 0) throw new BrokerError('INVALID_PARTITIONS', `num_partitions must be positive or -1, got ${t.numPartitions}`);
  const config: Record<string, string> = {};
  for (const c of t.configs) {
    if (!isTopicConfigKey(c.name)) throw new BrokerError('INVALID_CONFIG', `unknown topic config "${c.name}"`);
    if (c.value === null) continue; // null = the default
    config[c.name] = c.value;
  }
  if (validateOnly) {
    // Every check createTopic would make (name, partitions, config values, limits), nothing created.
    if (ctx.broker.validateCreateTopic) ctx.broker.validateCreateTopic(t.name, partitions, config as unknown as Partial<TopicConfig>);
    else if (ctx.broker.describeTopic(t.name)) throw new BrokerError('TOPIC_ALREADY_EXISTS', `topic ${t.name} already exists`);
    return { name: t.name, numPartitions: partitions, config: null };
  }
  // The broker parses string values (Kafka clients send every value as a string).
  const info = await ctx.broker.createTopic(t.name, partitions, config as unknown as Partial<TopicConfig>);
  return { name: t.name, numPartitions: info.partitions, config: info };
}

export const createTopics: ApiHandler = {
  apiKey: 19,
  name: 'CreateTopics',
  minVersion: 2,
  maxVersion: 7,
  flexibleFrom: 5,
  request,
  response,
  async handle(req: CreateTopicsRequest, ctx: RequestContext) {
    const topics = [];
    const seen = new Set<string>();
    for (const t of req.topics) {
      try {
        if (seen.has(t.name)) throw new BrokerError('INVALID_REQUEST', `topic ${t.name} appears twice in the request`);
        seen.add(t.name);
        const r = await createOne(t, req.validateOnly, ctx);
        topics.push({
          name: t.name,
          topicId: topicIdBytes(r.config ?? undefined),
          errorCode: ERRORS.NONE.kafka,
          errorMessage: null,
          numPartitions: r.numPartitions,
          replicationFactor: 1,
          configs: r.config ? topicConfigEntries(r.config, null, false) : null,
        });
      } catch (err) {
        topics.push({ name: t.name, topicId: ZERO_UUID, errorCode: kafkaCode(err), errorMessage: kafkaMessage(err), numPartitions: -1, replicationFactor: -1, configs: null });
      }
    }
    return { throttleTimeMs: 0, topics };
  },
};
