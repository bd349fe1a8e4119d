// CreatePartitions (key 37), versions 0–3; v2+ flexible.
//   v0: topics[name, count, assignments[broker_ids] (nullable)], timeout_ms, validate_only
//       response: throttle_time_ms, results[name, error_code, error_message]
//   v1: same   v2: flexible   v3: same
// `count` is the new total; it must exceed the current count (INVALID_PARTITIONS otherwise).
// The checks are the broker's (BrokerApi.createPartitions, host/broker/topic-admin.ts).
import { arr, f, type Schema } from '../protocol/schema.js';
import { ERRORS } from '../../errors/index.js';
import { kafkaCode, kafkaMessage, type ApiHandler, type RequestContext } from './types.js';
import { Operation, requireTopic } from './authz.js';

const request: Schema = [
  arr('topics', '0+', [f('name', 'string', '0+'), f('count', 'int32', '0+'), arr('assignments', '0+', [arr('brokerIds', '0+', 'int32')], { nullable: '0+' })]),
  f('timeoutMs', 'int32', '0+'),
  f('validateOnly', 'bool', '0+'),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '0+'),
  arr('results', '0+', [f('name', 'string', '0+'), f('errorCode', 'int16', '0+'), f('errorMessage', 'string', '0+', { nullable: '0+', default: null })]),
];

interface CreatePartitionsRequest {
  topics: Array<{ name: string; count: number; assignments: Array<{ brokerIds: number[] }> | null }>;
  validateOnly: boolean;
}

export const createPartitions: ApiHandler = {
  apiKey: 37,
  name: 'CreatePartitions',
  minVersion: 0,
  maxVersion: 3,
  flexibleFrom: 2,
  request,
  response,
  async handle(req: CreatePartitionsRequest, ctx: RequestContext) {
    const results = [];
    for (const t of req.topics) {
      try {
        requireTopic(ctx, Operation.ALTER, t.name);
        // Every check (exists, grows, limits, assignment on live nodes) and validate_only are the broker's.
        await ctx.broker.createPartitions(t.name, t.count, { validateOnly: req.validateOnly, assignment: t.assignments?.map((a) => a.brokerIds) });
        results.push({ name: t.name, errorCode: ERRORS.NONE.kafka, errorMessage: null });
      } catch (err) {
        results.push({ name: t.name, errorCode: kafkaCode(err), errorMessage: kafkaMessage(err) });
      }
    }
    return { throttleTimeMs: 0, results };
  },
};
