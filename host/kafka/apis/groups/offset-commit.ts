// OffsetCommit (key 8), versions 2–8; flexible from v8.
//   v2: group_id, generation_id, member_id, retention_time_ms, topics[name, partitions[index,
//       committed_offset, committed_metadata]] → topics[name, partitions[index, error_code]]
//   v3: + throttle_time_ms   v4: same   v5: retention_time_ms removed (broker-side retention only)
//   v6: + committed_leader_epoch   v7: + group_instance_id   v8: flexible
// A request's retention_time_ms (v2–4) is ignored: retention is the coordinator's
// offsetsRetentionMs, as Kafka does since 2.1. The response is sent once the offsets are
// durable in __consumer_offsets (flush=always). Group-wide faults give every partition the code.
import { arr, f, type Schema } from '../../protocol/schema.js';
import { kafkaCode, type ApiHandler, type RequestContext } from '../types.js';
import { coordinatorOf } from './common.js';
import { ERRORS } from '../../../errors/index.js';
import { Operation, requireGroup, topicAllowed, topicDenied } from '../authz.js';

const request: Schema = [
  f('groupId', 'string', '0+'),
  f('generationIdOrMemberEpoch', 'int32', '1+', { default: -1 }),
  f('memberId', 'string', '1+'),
  f('groupInstanceId', 'string', '7+', { nullable: '7+', default: null }),
  f('retentionTimeMs', 'int64', '2-4', { default: -1 }),
  arr('topics', '0+', [
    f('name', 'string', '0+'),
    arr('partitions', '0+', [
      f('partitionIndex', 'int32', '0+'),
      f('committedOffset', 'int64', '0+'),
      f('committedLeaderEpoch', 'int32', '6+', { default: -1 }),
      f('commitTimestamp', 'int64', '1', { default: -1 }),
      f('committedMetadata', 'string', '0+', { nullable: '0+' }),
    ]),
  ]),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '3+'),
  arr('topics', '0+', [f('name', 'string', '0+'), arr('partitions', '0+', [f('partitionIndex', 'int32', '0+'), f('errorCode', 'int16', '0+')])]),
];

interface OffsetCommitWire {
  groupId: string;
  generationIdOrMemberEpoch: number;
  memberId: string;
  groupInstanceId: string | null;
  topics: Array<{ name: string; partitions: Array<{ partitionIndex: number; committedOffset: number; committedLeaderEpoch: number; committedMetadata: string | null }> }>;
}

export const offsetCommit: ApiHandler = {
  apiKey: 8,
  name: 'OffsetCommit',
  minVersion: 2,
  maxVersion: 8,
  flexibleFrom: 8,
  request,
  response,
  async handle(req: OffsetCommitWire, ctx: RequestContext) {
    const offsets = req.topics.flatMap((t) =>
      t.partitions.map((p) => ({ topic: t.name, partition: p.partitionIndex, offset: p.committedOffset, leaderEpoch: p.committedLeaderEpoch, metadata: p.committedMetadata })),
    );
    let codes: number[];
    try {
      // Kafka's order: READ on the group (all partitions refused), then READ on each topic.
      requireGroup(ctx, Operation.READ, req.groupId);
      const allowed = offsets.map((o) => topicAllowed(ctx, Operation.READ, o.topic));
      const results = await coordinatorOf(ctx).commitOffsets({
        groupId: req.groupId,
        generationId: req.generationIdOrMemberEpoch,
        memberId: req.memberId,
        groupInstanceId: req.groupInstanceId,
        offsets: offsets.filter((_, i) => allowed[i]),
      });
      let next = 0;
      codes = offsets.map((o, i) => {
        if (!allowed[i]) return topicDenied(ctx, Operation.READ, o.topic).kafkaCode;
        const r = results[next++]!;
        return r.error ? kafkaCode(r.error) : ERRORS.NONE.kafka;
      });
    } catch (err) {
      const code = kafkaCode(err);
      codes = offsets.map(() => code);
    }
    let i = 0;
    return {
      throttleTimeMs: 0,
      topics: req.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: codes[i++] })) })),
    };
  },
};
