// CreateTopics (key 19), versions 2–7; v5+ flexible.
//   v2: topics[name, num_partitions, replication_factor, assignments[partition_index, broker_ids], configs[name, value]], timeout_ms, validate_only
//       response: throttle_time_ms, topics[name, error_code, error_message]
//   v3, v4: same   v5: flexible; response + num_partitions, replication_factor, configs (and a tagged config error code)
//   v6: same       v7: response + topic_id
// Every check is the broker's one creation call (BrokerApi.createTopicFrom, shared with HTTP
// POST /topics): replication factor at most the live nodes (1 on one node) or -1 (default);
// num_partitions -1 = the default (KIP-464); a manual assignment names live nodes only and its
// length is the partition count. validate_only runs the same checks and creates nothing.
import { arr, f, type Schema } from '../protocol/schema.js';
import { ZERO_UUID } from '../protocol/codec.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import type { TopicSpec } from '../../broker/api.js';
import { kafkaCode, kafkaMessage, type ApiHandler, type RequestContext } from './types.js';
import { topicConfigEntries, topicIdBytes } from './topic-configs.js';
import { mayCreateTopic, Operation, topicDenied } from './authz.js';

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

/**
 * The wire request as the broker's one creation call takes it: every check (name, counts,
 * replication factor and assignment against the live nodes, configs, limits) and validate_only
 * are the broker's (host/broker/topic-admin.ts), so HTTP POST /topics refuses alike.
 */
function specOf(t: CreateTopicsRequest['topics'][number]): TopicSpec {
  // Assignments arrive with their partition index; a gap or a repeat leaves a hole the broker names.
  const assignment: number[][] = new Array(t.assignments.length);
  for (const a of t.assignments) if (Number.isInteger(a.partitionIndex) && a.partitionIndex >= 0 && a.partitionIndex < assignment.length && !assignment[a.partitionIndex]) assignment[a.partitionIndex] = a.brokerIds;
  const config: Record<string, string | null> = {};
  for (const c of t.configs) config[c.name] = c.value; // null = the default
  return { name: t.name, partitions: t.numPartitions, replicationFactor: t.replicationFactor, assignment: Array.from(assignment), config };
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
        if (!mayCreateTopic(ctx, t.name)) throw topicDenied(ctx, Operation.CREATE, t.name);
        const spec = specOf(t);
        // -1 partitions: the listener's default when it has one, else the broker's.
        if (spec.partitions === -1 && ctx.options.defaultPartitions !== null && ctx.options.defaultPartitions !== undefined && t.assignments.length === 0) spec.partitions = ctx.options.defaultPartitions;
        const created = await ctx.broker.createTopicFrom(spec, { validateOnly: req.validateOnly });
        topics.push({
          name: t.name,
          topicId: topicIdBytes(req.validateOnly ? undefined : created),
          errorCode: ERRORS.NONE.kafka,
          errorMessage: null,
          numPartitions: created.partitions,
          replicationFactor: created.replicationFactor,
          configs: req.validateOnly ? null : topicConfigEntries(created, null, false),
        });
      } catch (err) {
        topics.push({ name: t.name, topicId: ZERO_UUID, errorCode: kafkaCode(err), errorMessage: kafkaMessage(err), numPartitions: -1, replicationFactor: -1, configs: null });
      }
    }
    return { throttleTimeMs: 0, topics };
  },
};
