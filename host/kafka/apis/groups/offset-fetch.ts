// OffsetFetch (key 9), versions 1–8; flexible from v6.
//   v1: group_id, topics[name, partition_indexes] → topics[name, partitions[index, committed_offset, metadata, error_code]]
//   v2: topics may be null (= every committed partition); + top-level error_code
//   v3: + throttle_time_ms   v4: same   v5: + committed_leader_epoch   v6: flexible
//   v7: + require_stable (no transactions here, so offsets are always stable)
//   v8: groups[group_id, topics] batch (KIP-709) → groups[group_id, topics[...], error_code]
// A partition without a committed offset answers offset -1, metadata "" and no error, as Kafka.
import { arr, f, type Schema } from '../../protocol/schema.js';
import type { FetchedOffset } from '../../../broker/groups/index.js';
import { kafkaCode, type ApiHandler, type RequestContext } from '../types.js';
import { byTopic, coordinatorOf } from './common.js';
import { ERRORS } from '../../../errors/index.js';
import { Operation, requireGroup, topicAllowed, topicDenied } from '../authz.js';

const topicsRequest = (v: string) => [f('name', 'string', v), arr('partitionIndexes', v, 'int32')];
const request: Schema = [
  f('groupId', 'string', '0-7'),
  arr('topics', '0-7', topicsRequest('0-7'), { nullable: '2-7' }),
  arr('groups', '8+', [f('groupId', 'string', '8+'), arr('topics', '8+', topicsRequest('8+'), { nullable: '8+' })]),
  f('requireStable', 'bool', '7+', { default: false }),
];

const partitionFields = (v: string, epoch: string) => [
  f('partitionIndex', 'int32', v),
  f('committedOffset', 'int64', v),
  f('committedLeaderEpoch', 'int32', epoch, { default: -1 }),
  f('metadata', 'string', v, { nullable: v }),
  f('errorCode', 'int16', v),
];
const response: Schema = [
  f('throttleTimeMs', 'int32', '3+'),
  arr('topics', '0-7', [f('name', 'string', '0-7'), arr('partitions', '0-7', partitionFields('0-7', '5-7'))]),
  f('errorCode', 'int16', '2-7', { default: 0 }),
  arr('groups', '8+', [
    f('groupId', 'string', '8+'),
    arr('topics', '8+', [f('name', 'string', '8+'), arr('partitions', '8+', partitionFields('8+', '8+'))]),
    f('errorCode', 'int16', '8+', { default: 0 }),
  ]),
];

type TopicsWire = Array<{ name: string; partitionIndexes: number[] }> | null;

interface OffsetFetchWire {
  groupId: string;
  topics: TopicsWire;
  groups: Array<{ groupId: string; topics: TopicsWire }>;
}

const partitionOut = (o: FetchedOffset) => ({
  partitionIndex: o.partition,
  committedOffset: o.offset,
  committedLeaderEpoch: o.leaderEpoch,
  metadata: o.metadata,
  errorCode: o.error ? kafkaCode(o.error) : ERRORS.NONE.kafka,
});

/** One group's answer: topics[] and a group-level error code. */
async function fetchOne(ctx: RequestContext, groupId: string, topics: TopicsWire) {
  const partitions = topics === null ? null : topics.flatMap((t) => t.partitionIndexes.map((partition) => ({ topic: t.name, partition })));
  try {
    requireGroup(ctx, Operation.DESCRIBE, groupId);
    const fetched = await coordinatorOf(ctx).fetchOffsets({ groupId, partitions });
    // Topics the principal may not describe: named ones answer TOPIC_AUTHORIZATION_FAILED, a fetch of all leaves them out (Kafka's rule).
    const shown = fetched.filter((o) => partitions !== null || topicAllowed(ctx, Operation.DESCRIBE, o.topic));
    return { topics: byTopic(shown, (o) => (topicAllowed(ctx, Operation.DESCRIBE, o.topic) ? partitionOut(o) : { ...partitionOut(o), committedOffset: -1, errorCode: topicDenied(ctx, Operation.DESCRIBE, o.topic).kafkaCode })), errorCode: ERRORS.NONE.kafka };
  } catch (err) {
    const code = kafkaCode(err);
    // v1 has no group-level code: the error goes on every requested partition.
    const perPartition = (partitions ?? []).map((p) => ({ topic: p.topic, partition: p.partition, offset: -1, leaderEpoch: -1, metadata: '', commitTimestampMs: -1, error: null }));
    return { topics: byTopic(perPartition, (o) => ({ ...partitionOut(o), errorCode: code })), errorCode: code };
  }
}

export const offsetFetch: ApiHandler = {
  apiKey: 9,
  name: 'OffsetFetch',
  minVersion: 1,
  maxVersion: 8,
  flexibleFrom: 6,
  request,
  response,
  async handle(req: OffsetFetchWire, ctx: RequestContext) {
    if (ctx.apiVersion >= 8) {
      const groups = await Promise.all((req.groups ?? []).map(async (g) => ({ groupId: g.groupId, ...(await fetchOne(ctx, g.groupId, g.topics)) })));
      return { throttleTimeMs: 0, groups };
    }
    const one = await fetchOne(ctx, req.groupId, ctx.apiVersion < 2 ? (req.topics ?? []) : req.topics);
    return { throttleTimeMs: 0, topics: ctx.apiVersion >= 2 && one.errorCode !== ERRORS.NONE.kafka ? [] : one.topics, errorCode: one.errorCode };
  },
};
