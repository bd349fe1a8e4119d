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
// Long poll: read every partition, each through its PartitionCursor (host/broker/cursor.ts,
// isolation committed: below the high watermark); if fewer than min_bytes came back, wait on
// the broker's waiters (woken by appends, no polling) until data arrives or max_wait_ms
// passes, then read again. Records are returned as the stored bytes and written as their own chunks.
//
// Replication (issue 11): a request with replica_id ≥ 0 is a follower's. It must reach the
// partition's leader (NOT_LEADER_OR_FOLLOWER) in the follower's epoch (FENCED_LEADER_EPOCH /
// UNKNOWN_LEADER_EPOCH, KIP-320); its fetch offset is its log end, which the leader records once
// per request (the high watermark may move), and it reads through the same cursor with `written`
// isolation: what the leader has written, before its own fsync returns (the follower fsyncs it
// before its next fetch reports it; the high watermark stays within the leader's fsynced end). A consumer (replica_id -1) must reach the leader too, and reads below the HW.
//
// Tributary's own tagged fields (between our nodes; Kafka's tags are small numbers counted from 0,
// so ours start at 10000 and can never meet one of theirs; other clients skip them, KIP-482):
//   request partition, tag 10000, replica_durable_end_offset int64 (default -1: absent): a
//     pipelining follower (host/cluster/replica-fetcher.ts) fetches from the end it has written
//     and reports here the end its fsync covers; the leader counts only that end for the high
//     watermark and the ISR (never more than the fetch offset). Absent: the fetch offset is the
//     follower's log end, as before.
//   response, tag 10000, replica_durable_end_supported bool: this leader reads the field above.
//     A follower pipelines only after a leader has said so, so a leader that ignores the field
//     (an older version during a rolling upgrade) never counts unfsynced data.
import { arr, f, struct, type Schema } from '../protocol/schema.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import type { PartitionOffsets } from '../../broker/api.js';
import { NO_RETRY, PartitionCursor } from '../../broker/cursor.js';
import { kafkaCode, type ApiHandler, type RequestContext } from './types.js';
import { Operation, requireCluster, requireTopic } from './authz.js';
import { isInternalTopic } from '../../broker/topic-name.js';

/** Tributary's tag for replica_durable_end_offset (request partitions) and replica_durable_end_supported (response): see the header. */
export const REPLICA_DURABLE_END_TAG = 10_000;

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
      f('replicaDurableEndOffset', 'int64', '12+', { default: -1, tagged: '12+', tag: REPLICA_DURABLE_END_TAG }),
    ]),
  ]),
  arr('forgottenTopicsData', '7+', [f('topic', 'string', '7-12'), arr('partitions', '7+', 'int32')]),
  f('rackId', 'string', '11+'),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '1+'),
  f('replicaDurableEndSupported', 'bool', '12+', { default: false, tagged: '12+', tag: REPLICA_DURABLE_END_TAG }),
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
  currentLeaderEpoch: number;
  fetchOffset: number;
  partitionMaxBytes: number;
  /** A pipelining follower's fsynced end (-1: absent). */
  replicaDurableEndOffset?: number;
}
interface FetchRequest {
  replicaId: number;
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

/** One cursor per requested partition, at its fetch offset; the client resets on its own (onOutOfRange 'fail'). */
function openCursors(req: FetchRequest, ctx: RequestContext): PartitionCursor[][] {
  const isolation = req.replicaId >= 0 ? 'written' : 'committed';
  return req.topics.map((t) =>
    t.partitions.map((p) => new PartitionCursor(ctx.broker, { topic: t.topic, partition: p.partition }, p.fetchOffset, { maxBytes: 0, onOutOfRange: 'fail', retry: NO_RETRY, isolation })),
  );
}

/**
 * Once per request, before any read: the leader and epoch checks, and a follower's fetch
 * position recorded. A partition that fails here answers its error in every pass.
 */
function checkReplicas(req: FetchRequest, ctx: RequestContext): Map<string, unknown> {
  const refused = new Map<string, unknown>();
  if (!ctx.node.cluster) return refused;
  for (const t of req.topics) {
    for (const p of t.partitions) {
      const tp = { topic: t.topic, partition: p.partition };
      try {
        if (!ctx.broker.describeTopic(t.topic)) continue; // answered UNKNOWN_TOPIC_OR_PARTITION by the read
        if (req.replicaId >= 0) ctx.broker.replicaFetched(tp, req.replicaId, p.fetchOffset, p.currentLeaderEpoch ?? -1, (p.replicaDurableEndOffset ?? -1) >= 0 ? p.replicaDurableEndOffset : undefined);
        else {
          if (ctx.broker.partitionState(tp).role !== 'leader') throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `this node does not lead ${t.topic}-${p.partition}`);
          ctx.broker.checkLeaderEpoch(tp, p.currentLeaderEpoch ?? -1);
        }
      } catch (err) {
        refused.set(`${t.topic}\0${p.partition}`, err);
      }
    }
  }
  return refused;
}

/** One pass over every requested partition, within the response's byte budget. */
async function readAll(req: FetchRequest, ctx: RequestContext, cursors: PartitionCursor[][], maxBytes: number, refused: Map<string, unknown>) {
  const pass = { budget: maxBytes, total: 0, errors: 0, refused, replica: req.replicaId >= 0 };
  const responses = [];
  for (const [i, t] of req.topics.entries()) {
    const partitions: PartitionResult[] = [];
    for (const [j, p] of t.partitions.entries()) partitions.push(await readPartition(t.topic, p, cursors[i]![j]!, ctx, pass));
    responses.push({ topic: t.topic, partitions });
  }
  return { responses, total: pass.total, errors: pass.errors };
}

async function readPartition(topic: string, p: FetchPartitionRequest, cursor: PartitionCursor, ctx: RequestContext, pass: { budget: number; total: number; errors: number; refused: Map<string, unknown>; replica: boolean }): Promise<PartitionResult> {
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
  const setOffsets = (o: PartitionOffsets) => {
    out.highWatermark = o.highWatermark;
    out.lastStableOffset = o.highWatermark;
    out.logStartOffset = o.logStartOffset;
  };
  try {
    // A follower's fetch of a replicated internal topic (`__consumer_offsets`) is inter-node
    // work: Kafka's CLUSTER_ACTION on the cluster, not READ on a topic no client may read
    // without an ACL naming it.
    if (pass.replica && isInternalTopic(topic)) requireCluster(ctx, Operation.CLUSTER_ACTION);
    else requireTopic(ctx, Operation.READ, topic);
    const refusal = pass.refused.get(`${topic}\0${p.partition}`);
    if (refusal) throw refusal;
    const info = ctx.broker.describeTopic(topic);
    if (!info || p.partition < 0 || p.partition >= info.partitions) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic-partition ${topic}-${p.partition}`);
    if (p.partitionMaxBytes < 0) throw new BrokerError('INVALID_REQUEST', `partition_max_bytes ${p.partitionMaxBytes} is negative`);
    if (pass.budget > 0 && p.partitionMaxBytes > 0) {
      // Every pass reads from the fetch offset: a response carries everything from it.
      cursor.seek(p.fetchOffset);
      const r = await cursor.readRaw(Math.min(p.partitionMaxBytes, pass.budget));
      setOffsets(r.offsets);
      // KIP-74: the first batch of the response is whole even past the budget; later
      // partitions whose first batch does not fit get nothing this time.
      if (r.records.length > pass.budget && pass.total > 0) out.records = EMPTY;
      else {
        out.records = r.records;
        pass.total += r.records.length;
        pass.budget -= r.records.length;
      }
    } else setOffsets(cursor.offsets());
  } catch (err) {
    pass.errors++;
    out.errorCode = kafkaCode(err);
    out.records = EMPTY;
    if (out.errorCode === ERRORS.OFFSET_OUT_OF_RANGE.kafka) {
      try {
        setOffsets(cursor.offsets());
      } catch {
        /* the topic went away between the read and here: the error code says enough */
      }
    } else if (out.errorCode === ERRORS.UNKNOWN_SERVER_ERROR.kafka) ctx.logger.error({ err, topic, partition: p.partition }, 'fetch read failed');
  }
  return out;
}

/** Each cursor's partition HW now (-1 where it cannot be read: it then never counts as moved). */
function highWatermarks(cursors: PartitionCursor[][]): number[][] {
  return cursors.map((row) =>
    row.map((c) => {
      try {
        return c.offsets().highWatermark;
      } catch {
        return -1;
      }
    }),
  );
}

function hwMoved(responses: Array<{ partitions: PartitionResult[] }>, before: number[][] | null): boolean {
  if (!before) return false;
  return responses.some((t, i) => t.partitions.some((p, j) => before[i]![j]! >= 0 && p.highWatermark > before[i]![j]!));
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
    const cursors = openCursors(req, ctx);
    // A follower's fetch is answered as soon as the HW moved (its own position may have moved
    // it, or another follower's while this one waits): the follower's readers see up to the HW
    // it learns from these answers only.
    const hwBefore = req.replicaId >= 0 ? highWatermarks(cursors) : null;
    const refused = checkReplicas(req, ctx);
    let result = await readAll(req, ctx, cursors, maxBytes, refused);
    while (req.minBytes > 0 && result.total < req.minBytes && result.errors === 0 && !ctx.signal.aborted && !hwMoved(result.responses, hwBefore)) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      // Wake on the next append past what this pass saw (each cursor's high watermark seen),
      // not past the fetch offset: with data present but below min_bytes, the latter would
      // wake at once, forever.
      try {
        await PartitionCursor.waitAny(cursors.flat(), left, ctx.signal);
      } catch (err) {
        // Too many parked readers (LIMIT_EXCEEDED) or a partition gone: answer with what we have.
        ctx.logger.debug({ err: (err as Error).message }, 'fetch long poll cut short');
        break;
      }
      result = await readAll(req, ctx, cursors, maxBytes, refused);
    }
    return { throttleTimeMs: 0, replicaDurableEndSupported: req.replicaId >= 0, errorCode: ERRORS.NONE.kafka, sessionId: 0, responses: result.responses };
  },
};
