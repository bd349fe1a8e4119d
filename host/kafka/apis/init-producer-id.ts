// InitProducerId (key 22), versions 0–4; v2+ flexible.
//   v0: transactional_id (nullable), transaction_timeout_ms; response throttle_time_ms, error_code, producer_id, producer_epoch
//   v1: same   v2: flexible   v3: + producer_id, producer_epoch (KIP-360 epoch bump)   v4: same
// Idempotent producers (no transactional id) get a producer id never handed out before by this
// data dir (host/broker/producer-ids.ts) and epoch 0. A re-initialisation (v3+ with a known id)
// also gets a fresh id at epoch 0: its sequences start over cleanly, which is what an epoch
// bump achieves. A transactional id is refused with INVALID_REQUEST (42): transactions are not
// implemented, and a non-retriable code makes the client fail fast instead of retrying forever.
import { f, type Schema } from '../protocol/schema.js';
import { kafkaCode, type ApiHandler, type RequestContext } from './types.js';
import { ERRORS } from '../../errors/index.js';
import { clusterAllowed, clusterDenied, Operation, ResourceType } from './authz.js';

const request: Schema = [
  f('transactionalId', 'string', '0+', { nullable: '0+' }),
  f('transactionTimeoutMs', 'int32', '0+'),
  f('producerId', 'int64', '3+', { default: -1 }),
  f('producerEpoch', 'int16', '3+', { default: -1 }),
];

const response: Schema = [f('throttleTimeMs', 'int32', '0+'), f('errorCode', 'int16', '0+'), f('producerId', 'int64', '0+', { default: -1 }), f('producerEpoch', 'int16', '0+')];

/** A failed allocation with no code of its own is a storage fault (the id block's durable write). */
function storageFaultCode(err: unknown): number {
  const code = kafkaCode(err);
  return code === ERRORS.UNKNOWN_SERVER_ERROR.kafka ? ERRORS.KAFKA_STORAGE_ERROR.kafka : code;
}

export const initProducerId: ApiHandler = {
  apiKey: 22,
  name: 'InitProducerId',
  minVersion: 0,
  maxVersion: 4,
  flexibleFrom: 2,
  request,
  response,
  async handle(req: { transactionalId: string | null }, ctx: RequestContext) {
    if (req.transactionalId !== null) {
      ctx.logger.info({ transactionalId: req.transactionalId }, 'refusing transactional producer: transactions are not supported');
      return { throttleTimeMs: 0, errorCode: ERRORS.INVALID_REQUEST.kafka, producerId: -1, producerEpoch: -1 };
    }
    // Kafka's rule: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
    if (!clusterAllowed(ctx, Operation.IDEMPOTENT_WRITE) && !ctx.security.authorizer.authorizeAny(ctx.principal, Operation.WRITE, ResourceType.TOPIC)) {
      return { throttleTimeMs: 0, errorCode: clusterDenied(ctx, Operation.IDEMPOTENT_WRITE).kafkaCode, producerId: -1, producerEpoch: -1 };
    }
    try {
      const producerId = await ctx.producerIds.allocate();
      return { throttleTimeMs: 0, errorCode: ERRORS.NONE.kafka, producerId, producerEpoch: 0 };
    } catch (err) {
      ctx.logger.error({ err }, 'producer id allocation failed');
      return { throttleTimeMs: 0, errorCode: storageFaultCode(err), producerId: -1, producerEpoch: -1 };
    }
  },
};
