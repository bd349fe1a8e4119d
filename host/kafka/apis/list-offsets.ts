// ListOffsets (key 2), versions 1–7; v6+ flexible.
//   v1: replica_id, topics[name, partitions[partition_index, timestamp]]; response partitions[index, error, timestamp, offset]
//   v2: + isolation_level, throttle_time_ms   v3: same   v4: + current_leader_epoch / leader_epoch
//   v5: same   v6: flexible   v7: timestamp -3 (max timestamp, KIP-734)
// Timestamps: -1 latest (log end), -2 earliest (log start), -3 the record with the largest
// timestamp, otherwise the first offset whose timestamp is ≥ the given one (-1/-1 if none).
// In a cluster only the leader answers (NOT_LEADER_OR_FOLLOWER), current_leader_epoch is
// checked (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH), "latest" is the high watermark for a
// consumer (what it may read), and the answer carries the partition's leader epoch.
import { arr, f, type Schema } from '../protocol/schema.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import { LATEST_TIMESTAMP, MAX_TIMESTAMP } from '../../broker/api.js';
import { kafkaCode, type ApiHandler, type RequestContext } from './types.js';
import { Operation, requireTopic } from './authz.js';

const request: Schema = [
  f('replicaId', 'int32', '0+'),
  f('isolationLevel', 'int8', '2+'),
  arr('topics', '0+', [
    f('name', 'string', '0+'),
    arr('partitions', '0+', [f('partitionIndex', 'int32', '0+'), f('currentLeaderEpoch', 'int32', '4+', { default: -1 }), f('timestamp', 'int64', '0+'), f('maxNumOffsets', 'int32', '0', { default: 1 })]),
  ]),
  f('timeoutMs', 'int32', '10+'),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '2+'),
  arr('topics', '0+', [
    f('name', 'string', '0+'),
    arr('partitions', '0+', [
      f('partitionIndex', 'int32', '0+'),
      f('errorCode', 'int16', '0+'),
      arr('oldStyleOffsets', '0', 'int64'),
      f('timestamp', 'int64', '1+', { default: -1 }),
      f('offset', 'int64', '1+', { default: -1 }),
      f('leaderEpoch', 'int32', '4+', { default: -1 }),
    ]),
  ]),
];

interface ListOffsetsRequest {
  replicaId: number;
  topics: Array<{ name: string; partitions: Array<{ partitionIndex: number; currentLeaderEpoch: number; timestamp: number }> }>;
}

export const listOffsets: ApiHandler = {
  apiKey: 2,
  name: 'ListOffsets',
  minVersion: 1,
  maxVersion: 7,
  flexibleFrom: 6,
  request,
  response,
  async handle(req: ListOffsetsRequest, ctx: RequestContext) {
    const topics = [];
    for (const t of req.topics) {
      const partitions = [];
      for (const p of t.partitions) {
        try {
          requireTopic(ctx, Operation.DESCRIBE, t.name);
          const info = ctx.broker.describeTopic(t.name);
          if (!info || p.partitionIndex < 0 || p.partitionIndex >= info.partitions) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic-partition ${t.name}-${p.partitionIndex}`);
          if (p.timestamp === MAX_TIMESTAMP && ctx.apiVersion < 7) throw new BrokerError('UNSUPPORTED_VERSION', 'max timestamp lookup needs ListOffsets v7');
          const tp = { topic: t.name, partition: p.partitionIndex };
          let epoch = 0;
          let offset: number | undefined;
          if (ctx.node.cluster) {
            const s = ctx.broker.partitionState(tp);
            if (s.role !== 'leader') throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `this node does not lead ${t.name}-${p.partitionIndex}`);
            ctx.broker.checkLeaderEpoch(tp, p.currentLeaderEpoch ?? -1);
            epoch = s.leaderEpoch;
            // A consumer's "latest" is the end of what it may read (Kafka: the HW under read_uncommitted too).
            if (p.timestamp === LATEST_TIMESTAMP && req.replicaId < 0) offset = s.highWatermark;
          }
          const r = offset !== undefined ? { offset, timestampMs: -1 } : await ctx.broker.listOffset(tp, p.timestamp);
          partitions.push({ partitionIndex: p.partitionIndex, errorCode: ERRORS.NONE.kafka, timestamp: r.timestampMs, offset: r.offset, leaderEpoch: r.offset >= 0 ? epoch : -1 });
        } catch (err) {
          partitions.push({ partitionIndex: p.partitionIndex, errorCode: kafkaCode(err), timestamp: -1, offset: -1, leaderEpoch: -1 });
        }
      }
      topics.push({ name: t.name, partitions });
    }
    return { throttleTimeMs: 0, topics };
  },
};
