// FindCoordinator (key 10), versions 0–4; flexible from v3.
//   v0: key → error_code, node_id, host, port
//   v1: + key_type (0 = group, 1 = transaction), throttle_time_ms, error_message   v2: same
//   v3: flexible   v4: batched coordinator_keys → coordinators[key, node_id, host, port, error_code, error_message] (KIP-699)
// One node: this broker coordinates every group. A cluster: the leader of the group's
// `__consumer_offsets` partition (the topic is created by the first lookup, answered
// COORDINATOR_NOT_AVAILABLE until its leaders are known; a leader that is not a live broker
// right now is answered the same, so the client asks again). Transactions are not supported, so key type 1
// is refused with INVALID_REQUEST (a transactional producer fails fast instead of looping).
import { arr, f, type Schema } from '../../protocol/schema.js';
import { BrokerError, ERRORS } from '../../../errors/index.js';
import { kafkaCode, kafkaMessage, type ApiHandler, type RequestContext } from '../types.js';
import { coordinatorOf } from './common.js';
import { Operation, requireGroup } from '../authz.js';

const request: Schema = [f('key', 'string', '0-3'), f('keyType', 'int8', '1+', { default: 0 }), arr('coordinatorKeys', '4+', 'string')];

const response: Schema = [
  f('throttleTimeMs', 'int32', '1+'),
  f('errorCode', 'int16', '0-3'),
  f('errorMessage', 'string', '1-3', { nullable: '1-3', default: null }),
  f('nodeId', 'int32', '0-3'),
  f('host', 'string', '0-3'),
  f('port', 'int32', '0-3'),
  arr('coordinators', '4+', [
    f('key', 'string', '4+'),
    f('nodeId', 'int32', '4+'),
    f('host', 'string', '4+'),
    f('port', 'int32', '4+'),
    f('errorCode', 'int16', '4+'),
    f('errorMessage', 'string', '4+', { nullable: '4+', default: null }),
  ]),
];

const GROUP_KEY_TYPE = 0;

function lookup(key: string, keyType: number, ctx: RequestContext) {
  try {
    if (keyType !== GROUP_KEY_TYPE) {
      throw new BrokerError('INVALID_REQUEST', keyType === 1 ? 'transactions are not supported: no transaction coordinator' : `unknown coordinator key type ${keyType}`);
    }
    requireGroup(ctx, Operation.DESCRIBE, key);
    const nodeId = coordinatorOf(ctx).coordinatorFor(key, ctx.node.nodeId);
    if (!ctx.node.cluster || nodeId === ctx.node.nodeId) return { key, nodeId, host: ctx.node.host, port: ctx.node.port, errorCode: ERRORS.NONE.kafka, errorMessage: null };
    const b = ctx.node.cluster.brokers().find((x) => x.nodeId === nodeId);
    if (!b) throw new BrokerError('COORDINATOR_NOT_AVAILABLE', `group ${key}: its coordinator, node ${nodeId}, is not a live broker right now`);
    return { key, nodeId, host: b.host, port: b.port, errorCode: ERRORS.NONE.kafka, errorMessage: null };
  } catch (err) {
    return { key, nodeId: -1, host: '', port: -1, errorCode: kafkaCode(err), errorMessage: kafkaMessage(err) };
  }
}

export const findCoordinator: ApiHandler = {
  apiKey: 10,
  name: 'FindCoordinator',
  minVersion: 0,
  maxVersion: 4,
  flexibleFrom: 3,
  request,
  response,
  async handle(req: { key: string; keyType: number; coordinatorKeys: string[] }, ctx: RequestContext) {
    if (ctx.apiVersion >= 4) {
      return { throttleTimeMs: 0, coordinators: (req.coordinatorKeys ?? []).map((k) => lookup(k, req.keyType, ctx)) };
    }
    const r = lookup(req.key, req.keyType, ctx);
    return { throttleTimeMs: 0, errorCode: r.errorCode, errorMessage: r.errorMessage, nodeId: r.nodeId, host: r.host, port: r.port };
  },
};
