// Produce (key 0), versions 3–9; v9+ flexible.
//   v3: transactional_id, acks, timeout_ms, topic_data[name, partition_data[index, records]]
//       response: responses[name, partition_responses[index, error_code, base_offset, log_append_time_ms]], throttle_time_ms
//   v4: same (KAFKA_STORAGE_ERROR may be returned)   v5: + log_start_offset
//   v6, v7: same (throttle semantics, ZStandard)     v8: + record_errors, error_message
//   v9: flexible
// Each partition's bytes go to broker.append untouched (it checks CRC and structure, enforces
// max.message.bytes, assigns offsets, checks idempotent sequences). acks=0 is answered with
// nothing at all (Kafka's rule); the appends still complete in order before the next response.
// In a cluster only the partition's leader appends (NOT_LEADER_OR_FOLLOWER elsewhere); acks=-1
// waits up to timeout_ms for the in-sync replicas (REQUEST_TIMED_OUT after it) and needs
// min.insync.replicas of them (NOT_ENOUGH_REPLICAS); acks=1 answers after the leader's append.
// An internal topic (`__*`, `_schemas`) is refused to every client with INVALID_TOPIC_EXCEPTION
// (Kafka's "cannot append to internal topic"); only another node of the cluster, authenticated
// as one (SASL TRIBUTARY-NODE, host/security/node-identity.ts), appends to one: a forwarded
// internal write (host/cluster/forward.ts).
import { arr, f, type Schema } from '../protocol/schema.js';
import { asBrokerError, BrokerError, ERRORS } from '../../errors/index.js';
import type { Acks } from '../../broker/api.js';
import { kafkaCode, kafkaMessage, NO_RESPONSE, NO_RESPONSE_CLOSE, type ApiHandler, type RequestContext } from './types.js';
import { mayCreateTopic, Operation, requireTopic, topicAllowed } from './authz.js';
import { isInternalTopic } from '../../broker/topic-name.js';

/**
 * The Kafka code for a failed partition append. A retriable refusal with no Kafka code of its own
 * (LIMIT_EXCEEDED: too many bytes waiting for their flush) is answered REQUEST_TIMED_OUT, which
 * Kafka clients retry too, so they back off and resend instead of failing the send.
 */
function produceErrorCode(err: unknown): number {
  const spec = asBrokerError(err).spec;
  return spec.retriable && spec.kafka === ERRORS.UNKNOWN_SERVER_ERROR.kafka ? ERRORS.REQUEST_TIMED_OUT.kafka : spec.kafka;
}

const request: Schema = [
  f('transactionalId', 'string', '3+', { nullable: '3+' }),
  f('acks', 'int16', '0+'),
  f('timeoutMs', 'int32', '0+'),
  arr('topicData', '0+', [f('name', 'string', '0+'), arr('partitionData', '0+', [f('index', 'int32', '0+'), f('records', 'records', '0+', { nullable: '0+' })])]),
];

const response: Schema = [
  arr('responses', '0+', [
    f('name', 'string', '0+'),
    arr('partitionResponses', '0+', [
      f('index', 'int32', '0+'),
      f('errorCode', 'int16', '0+'),
      f('baseOffset', 'int64', '0+'),
      f('logAppendTimeMs', 'int64', '2+', { default: -1 }),
      f('logStartOffset', 'int64', '5+', { default: -1 }),
      arr('recordErrors', '8+', [f('batchIndex', 'int32', '8+'), f('batchIndexErrorMessage', 'string', '8+', { nullable: '8+', default: null })]),
      f('errorMessage', 'string', '8+', { nullable: '8+', default: null }),
    ]),
  ]),
  f('throttleTimeMs', 'int32', '1+'),
];


interface ProduceRequest {
  transactionalId: string | null;
  acks: number;
  timeoutMs: number;
  topicData: Array<{ name: string; partitionData: Array<{ index: number; records: Buffer | null }> }>;
}

async function appendOne(ctx: RequestContext, topic: string, index: number, records: Buffer | null, acks: Acks, timeoutMs: number) {
  try {
    if (records === null || records.length === 0) throw new BrokerError('CORRUPT_MESSAGE', 'produce request without records');
    // Another node of the cluster (TRIBUTARY-NODE) forwards what its doors already authorized,
    // and is the only sender whose internal appends are taken (the cluster's CLUSTER_ACTION).
    const interNode = ctx.session.interNodeId !== null;
    // Authorized before anything else: a refused write never auto-creates its topic.
    if (!interNode) requireTopic(ctx, Operation.WRITE, topic);
    // Known topic: append is called synchronously here (no await before it), so appends are
    // issued in request order. Unknown topic: auto-create first (the caller then holds the
    // connection's order until done).
    const info = ctx.broker.describeTopic(topic) ?? (await ctx.broker.ensureTopic(topic));
    if (index < 0 || index >= info.partitions) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${topic} has no partition ${index}`);
    const r = await ctx.broker.append({ topic, partition: index }, records, { acks, clientId: ctx.clientId ?? undefined, timeoutMs, leaderOnly: true, internal: interNode && isInternalTopic(topic) });
    return { index, errorCode: ERRORS.NONE.kafka, baseOffset: r.baseOffset, logAppendTimeMs: r.logAppendTimeMs, logStartOffset: r.logStartOffset, recordErrors: [], errorMessage: null };
  } catch (err) {
    const code = produceErrorCode(err);
    if (code === ERRORS.UNKNOWN_SERVER_ERROR.kafka) ctx.logger.error({ err, topic, partition: index }, 'produce failed');
    else ctx.logger.debug({ topic, partition: index, code, msg: kafkaMessage(err) }, 'produce refused');
    // Ingest validation names the refused records (Produce v8+ record_errors, KIP-467).
    const recordErrors = err instanceof BrokerError && err.recordErrors ? err.recordErrors.map((e) => ({ batchIndex: e.batchIndex, batchIndexErrorMessage: e.message })) : [];
    return { index, errorCode: code, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1, recordErrors, errorMessage: kafkaMessage(err) };
  }
}

export const produce: ApiHandler = {
  apiKey: 0,
  name: 'Produce',
  minVersion: 3,
  maxVersion: 9,
  flexibleFrom: 9,
  request,
  response,
  async handle(req: ProduceRequest, ctx: RequestContext) {
    let refusal: BrokerError | null = null;
    if (req.acks !== 0 && req.acks !== 1 && req.acks !== -1) refusal = new BrokerError('INVALID_REQUIRED_ACKS', `acks must be 0, 1 or -1, got ${req.acks}`);
    else if (req.transactionalId !== null) refusal = new BrokerError('INVALID_REQUEST', 'transactional produce is not supported (no transactions yet)');
    const acks = req.acks as Acks;
    const unknownNoCreate = new Set<string>();
    const allKnown = req.topicData.every((t) => ctx.broker.describeTopic(t.name) !== undefined);
    // Auto-creation needs CREATE too (Kafka's rule): without it, an unknown topic stays unknown.
    for (const t of req.topicData) {
      if (!refusal && !allKnown && !ctx.broker.describeTopic(t.name) && topicAllowed(ctx, Operation.WRITE, t.name) && !mayCreateTopic(ctx, t.name)) unknownNoCreate.add(t.name);
    }
    const pending = Promise.all(
      req.topicData.map(async (t) => ({
        name: t.name,
        partitionResponses: await Promise.all(
          t.partitionData.map((p) =>
            unknownNoCreate.has(t.name)
              ? { index: p.index, errorCode: ERRORS.UNKNOWN_TOPIC_OR_PARTITION.kafka, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1, recordErrors: [], errorMessage: `topic ${t.name} does not exist and ${ctx.principalText} may not create it` }
              : refusal
              ? { index: p.index, errorCode: refusal.kafkaCode, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1, recordErrors: [], errorMessage: refusal.message }
              : appendOne(ctx, t.name, p.index, p.records, acks, req.timeoutMs),
          ),
        ),
      })),
    );
    if (allKnown) ctx.release(); // every append above was issued synchronously, in order
    const responses = await pending;
    if (req.acks === 0) {
      // Kafka's rule: an acks=0 producer hears nothing, so a failure closes the connection.
      const failed = responses.some((t) => t.partitionResponses.some((p) => p.errorCode !== ERRORS.NONE.kafka));
      return failed ? NO_RESPONSE_CLOSE : NO_RESPONSE;
    }
    return { responses, throttleTimeMs: 0 };
  },
};
