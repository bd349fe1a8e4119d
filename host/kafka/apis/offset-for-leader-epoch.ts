// OffsetForLeaderEpoch (key 23), versions 2–4; v4 flexible (KIP-101, KIP-279, KIP-320).
//   v2: topics[topic, partitions[partition, current_leader_epoch, leader_epoch]]
//       response: throttle_time_ms, topics[topic, partitions[error_code, partition, leader_epoch, end_offset]]
//   v3: + replica_id (a follower's node id; -1 a consumer, -2 unset)
//   v4: flexible
// (v0–v1 lack current_leader_epoch and are deprecated: not spoken.)
//
// For each partition: the largest leader epoch ≤ the asked one that this leader's log has, and
// the offset where it ended (the start of the next epoch, or the log end for the current one).
// A follower that rejoins truncates to that offset (never to the high watermark: KIP-101); a
// consumer after a leader change checks its position the same way (KIP-320). Only the leader
// answers (NOT_LEADER_OR_FOLLOWER), in the asker's epoch (FENCED_LEADER_EPOCH when the asker's
// is older, UNKNOWN_LEADER_EPOCH when newer).
import { arr, f, type Schema } from '../protocol/schema.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import { kafkaCode, type ApiHandler, type RequestContext } from './types.js';
import { Operation, requireTopic } from './authz.js';

const request: Schema = [
  f('replicaId', 'int32', '3+', { default: -2 }),
  arr('topics', '0+', [
    f('topic', 'string', '0+'),
    arr('partitions', '0+', [f('partition', 'int32', '0+'), f('currentLeaderEpoch', 'int32', '2+', { default: -1 }), f('leaderEpoch', 'int32', '0+')]),
  ]),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '2+'),
  arr('topics', '0+', [
    f('topic', 'string', '0+'),
    arr('partitions', '0+', [f('errorCode', 'int16', '0+'), f('partition', 'int32', '0+'), f('leaderEpoch', 'int32', '1+', { default: -1 }), f('endOffset', 'int64', '0+', { default: -1 })]),
  ]),
];

interface OffsetForLeaderEpochRequest {
  replicaId: number;
  topics: Array<{ topic: string; partitions: Array<{ partition: number; currentLeaderEpoch: number; leaderEpoch: number }> }>;
}

function answerOne(ctx: RequestContext, topic: string, p: { partition: number; currentLeaderEpoch: number; leaderEpoch: number }) {
  try {
    requireTopic(ctx, Operation.DESCRIBE, topic);
    const info = ctx.broker.describeTopic(topic);
    if (!info || p.partition < 0 || p.partition >= info.partitions) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic-partition ${topic}-${p.partition}`);
    const tp = { topic, partition: p.partition };
    if (ctx.broker.partitionState(tp).role !== 'leader') throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `this node does not lead ${topic}-${p.partition}`);
    ctx.broker.checkLeaderEpoch(tp, p.currentLeaderEpoch);
    const r = ctx.broker.endOffsetForEpoch(tp, p.leaderEpoch);
    return { errorCode: ERRORS.NONE.kafka, partition: p.partition, leaderEpoch: r.epoch, endOffset: r.endOffset };
  } catch (err) {
    return { errorCode: kafkaCode(err), partition: p.partition, leaderEpoch: -1, endOffset: -1 };
  }
}

export const offsetForLeaderEpoch: ApiHandler = {
  apiKey: 23,
  name: 'OffsetForLeaderEpoch',
  minVersion: 2,
  maxVersion: 4,
  flexibleFrom: 4,
  request,
  response,
  async handle(req: OffsetForLeaderEpochRequest, ctx: RequestContext) {
    return { throttleTimeMs: 0, topics: req.topics.map((t) => ({ topic: t.topic, partitions: t.partitions.map((p) => answerOne(ctx, t.topic, p)) })) };
  },
};
