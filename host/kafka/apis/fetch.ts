// Fetch (key 1), versions 4–12; v12 flexible.
//   v4: replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level, topics[topic, partitions[partition, fetch_offset, partition_max_bytes]]
//       response: throttle_time_ms, responses[topic, partitions[index, error, high_watermark, last_stable_offset, aborted_transactions, records]]
//   v5: + log_start_offset (request and response)     v6: same
//   v7: fetch sessions (KIP-227): session_id, session_epoch, forgotten_topics_data; response error_code, session_id
//   v8: same   v9: + current_leader_epoch   v10: same   v11: + rack_id, preferred_read_replica
//   v12: flexible; + last_fetched_epoch; tagged diverging_epoch, current_leader, snapshot_id
//
// Sessions: every fetch is answered as a full fetch with session_id 0, which tells the client
// "no session" (KIP-227); kafkajs and librdkafka fetch sessionless, the Java client falls back
// to full fetches. Isolation: read_committed reads the same as read_uncommitted (no
// transactions exist, so every record is committed and last_stable_offset = high watermark).
//
// Long poll: read every partition; if fewer than min_bytes came back, wait on
// broker.waitForData (woken by appends, no polling) until data arrives or max_wait_ms passes,
// then read again. Records are returned as the stored bytes and written as their own chunks.
import { arr, f, struct, type Schema } from '../protocol/schema.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import { kafkaCode, type ApiHandler, type RequestContext } from './types.js';

const request: Schema = [
  f('clusterId', 'string', '12+', { nullable: '12+', default: null, tagged: '12+', tag: 0 }),
  f('replicaId', 'int32', '0-14', { default: -1 }),
  f('maxWaitMs', 'int32', '0+'),
  f('minBytes', 'int32', '0+'),
  f('maxBytes', 'int32', '3+', { default: 0x7fffffff }),
  f('isolationLevel', 'int8', '4+'),
  f('sessionId', 'int32', '7+'),
  f('sessionEpoch', 'int32', '7+', { default: -1 }),
  arr('topics', '0+', [
    f('topic', 'string', '0-12'),
    arr('partitions', '0+', [
      f('partition', 'int32', '0+'),
      f('currentLeaderEpoch', 'int32', '9+', { default: -1 }),
      f('fetchOffset', 'int64', '0+'),
      f('lastFetchedEpoch', 'int32', '12+', { default: -1 }),
      f('logStartOffset', 'int64', '5+', { default: -1 }),
      f('partitionMaxBytes', 'int32', '0+'),
    ]),
  ]),
  arr('forgottenTopicsData', '7+', [f('topic', 'string', '7-12'), arr('partitions', '7+', 'int32')]),
  f('rackId', 'string', '11+'),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '1+'),
  f('errorCode', 'int16', '7+'),
  f('sessionId', 'int32', '7+'),
  arr('responses', '0+', [
    f('topic', 'string', '0-12'),
    arr('partitions', '0+', [
      f('partitionIndex', 'int32', '0+'),
      f('errorCode', 'int16', '0+'),
      f('highWatermark', 'int64', '0+'),
      f('lastStableOffset', 'int64', '4+', { default: -1 }),
      f('logStartOffset', 'int64', '5+', { default: -1 }),
      struct('divergingEpoch', '12+', [f('epoch', 'int32', '12+', { default: -1 }), f('endOffset', 'int64', '12+', { default: -1 })], { tagged: '12+', tag: 0 }),
      struct('currentLeader', '12+', [f('leaderId', 'int32', '12+', { default: -1 }), f('leaderEpoch', 'int32', '12+', { default: -1 })], { tagged: '12+', tag: 1 }),
      struct('snapshotId', '12+', [f('endOffset', 'int64', '0+', { default: -1 }), f('epoch', 'int32', '0+', { default: -1 })], { tagged: '12+', tag: 2 }),
      arr('abortedTransactions', '4+', [f('producerId', 'int64', '4+'), f('firstOffset', 'int64', '4+')], { nullable: '4+' }),
      f('preferredReadReplica', 'int32', '11+', { default: -1 }),
      f('records', 'records', '0+', { nullable: '0+' }),
    ]),
  ]),
];

interface FetchPartitionRequest {
  partition: number;
  fetchOffset: number;
  partitionMaxBytes: number;
}
interface FetchRequest {
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
  isolationLevel: number;
  sessionId: number;
  sessionEpoch: number;
  topics: Array<{ topic: string; partitions: FetchPartitionRequest[] }>;
}

interface PartitionResult {
  partitionIndex: number;
  errorCode: number;
  highWatermark: number;
  lastStableOffset: number;
  logStartOffset: number;
  abortedTransactions: null;
  preferredReadReplica: number;
  records: Uint8Array | null;
}

const EMPTY = new Uint8Array(0);

/** One pass over every requested partition, within the response's byte budget. */
async function readAll(req: FetchRequest, ctx: RequestContext, maxBytes: number) {
  let budget = maxBytes;
  let total = 0;
  let errors = 0;
  const responses = [];
  for (const t of req.topics) {
    const partitions: PartitionResult[] = [];
    for (const p of t.partitions) {
      const tp = { topic: t.topic, partition: p.partition };
      const out: PartitionResult = {
        partitionIndex: p.partition,
        errorCode: ERRORS.NONE.kafka,
        highWatermark: -1,
        lastStableOffset: -1,
        logStartOffset: -1,
        abortedTransactions: null,
        preferredReadReplica: -1,
        records: EMPTY,
      };
      try {
        const info = ctx.broker.describeTopic(t.topic);
        if (!info || p.partition < 0 || p.partition >= info.partitions) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic-partition ${t.topic}-${p.partition}`);
        if (p.partitionMaxBytes < 0) throw new BrokerError('INVALID_REQUEST', `partition_max_bytes ${p.partitionMaxBytes} is negative`);
        if (budget > 0 && p.partitionMaxBytes > 0) {
          const r = await ctx.broker.read(tp, p.fetchOffset, { maxBytes: Math.min(p.partitionMaxBytes, budget) });
          out.highWatermark = r.highWatermark;
          out.lastStableOffset = r.highWatermark;
          out.logStartOffset = r.logStartOffset;
          // KIP-74: the first batch of the response is whole even past the budget; later
          // partitions whose first batch does not fit get nothing this time.
          if (r.records.length > budget && total > 0) out.records = EMPTY;
          else {
            out.records = r.records;
            total += r.records.length;
            budget -= r.records.length;
          }
        } else {
          const o = ctx.broker.offsets(tp);
          out.highWatermark = o.highWatermark;
          out.lastStableOffset = o.highWatermark;
          out.logStartOffset = o.logStartOffset;
        }
      } catch (err) {
        errors++;
        out.errorCode = kafkaCode(err);
        out.records = EMPTY;
        if (out.errorCode === ERRORS.OFFSET_OUT_OF_RANGE.kafka) {
          try {
            const o = ctx.broker.offsets(tp);
            out.highWatermark = o.highWatermark;
            out.lastStableOffset = o.highWatermark;
            out.logStartOffset = o.logStartOffset;
          } catch {
            /* the topic went away between the read and here: the error code says enough */
          }
        } else if (out.errorCode === ERRORS.UNKNOWN_SERVER_ERROR.kafka) ctx.logger.error({ err, topic: t.topic, partition: p.partition }, 'fetch read failed');
      }
      partitions.push(out);
    }
    responses.push({ topic: t.topic, partitions });
  }
  return { responses, total, errors };
}

export const fetch: ApiHandler = {
  apiKey: 1,
  name: 'Fetch',
  minVersion: 4,
  maxVersion: 12,
  flexibleFrom: 12,
  request,
  response,
  async handle(req: FetchRequest, ctx: RequestContext) {
    // Reads change nothing a later request on this connection could observe: let it start.
    ctx.release();
    const limits = ctx.options;
    const maxBytes = Math.max(0, Math.min(req.maxBytes, limits.maxFetchResponseBytes));
    const maxWaitMs = Math.max(0, Math.min(req.maxWaitMs, limits.maxFetchWaitMs));
    const deadline = Date.now() + maxWaitMs;
    let result = await readAll(req, ctx, maxBytes);
    while (req.minBytes > 0 && result.total < req.minBytes && result.errors === 0 && !ctx.signal.aborted) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      // Wake on the next append past what this pass saw (the log end), not past the fetch
      // offset: with data present but below min_bytes, the latter would wake at once, forever.
      const positions: Array<{ topic: string; partition: number; afterOffset: number }> = [];
      let i = 0;
      for (const t of req.topics) {
        const seen = result.responses[i++]!.partitions;
        t.partitions.forEach((p, j) => positions.push({ topic: t.topic, partition: p.partition, afterOffset: Math.max(p.fetchOffset, seen[j]!.highWatermark) }));
      }
      try {
        await ctx.broker.waitForData(positions, left, ctx.signal);
      } catch (err) {
        // Too many parked readers (LIMIT_EXCEEDED) or a partition gone: answer with what we have.
        ctx.logger.debug({ err: (err as Error).message }, 'fetch long poll cut short');
        break;
      }
      result = await readAll(req, ctx, maxBytes);
    }
    return { throttleTimeMs: 0, errorCode: ERRORS.NONE.kafka, sessionId: 0, responses: result.responses };
  },
};
