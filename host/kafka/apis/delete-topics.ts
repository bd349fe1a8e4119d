// DeleteTopics (key 20), versions 1–6; v4+ flexible.
//   v1: topic_names[], timeout_ms; response throttle_time_ms, responses[name, error_code]
//   v2, v3: same   v4: flexible   v5: response + error_message
//   v6: topics[name (nullable), topic_id] replaces topic_names; response + topic_id
// Deleting by topic id (v6 with a null name) is refused: topic ids are not assigned yet.
import { arr, f, type Schema } from '../protocol/schema.js';
import { ZERO_UUID } from '../protocol/codec.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import { kafkaCode, kafkaMessage, type ApiHandler, type RequestContext } from './types.js';
import { Operation, requireTopic } from './authz.js';

const request: Schema = [
  arr('topics', '6+', [f('name', 'string', '6+', { nullable: '6+', default: null }), f('topicId', 'uuid', '6+')]),
  arr('topicNames', '0-5', 'string'),
  f('timeoutMs', 'int32', '0+'),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '1+'),
  arr('responses', '0+', [
    f('name', 'string', '0+', { nullable: '6+' }),
    f('topicId', 'uuid', '6+'),
    f('errorCode', 'int16', '0+'),
    f('errorMessage', 'string', '5+', { nullable: '5+', default: null }),
  ]),
];

interface DeleteTopicsRequest {
  topics: Array<{ name: string | null; topicId: Uint8Array }>;
  topicNames: string[];
}

export const deleteTopics: ApiHandler = {
  apiKey: 20,
  name: 'DeleteTopics',
  minVersion: 1,
  maxVersion: 6,
  flexibleFrom: 4,
  request,
  response,
  async handle(req: DeleteTopicsRequest, ctx: RequestContext) {
    const names: Array<string | null> = ctx.apiVersion >= 6 ? req.topics.map((t) => t.name) : req.topicNames;
    const responses = [];
    for (const name of names) {
      try {
        if (name === null) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', 'deleting by topic id is not supported (topic ids are not assigned yet)');
        requireTopic(ctx, Operation.DELETE, name);
        // Existence and the internal-topic rule are the broker's (host/broker/topic-admin.ts).
        await ctx.broker.deleteTopic(name);
        responses.push({ name, topicId: ZERO_UUID, errorCode: ERRORS.NONE.kafka, errorMessage: null });
      } catch (err) {
        responses.push({ name, topicId: ZERO_UUID, errorCode: kafkaCode(err), errorMessage: kafkaMessage(err) });
      }
    }
    return { throttleTimeMs: 0, responses };
  },
};
