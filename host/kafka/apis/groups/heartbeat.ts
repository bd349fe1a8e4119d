// Heartbeat (key 12), versions 0–4; flexible from v4.
//   v0: group_id, generation_id, member_id → error_code   v1: + throttle_time_ms   v2: same
//   v3: + group_instance_id   v4: flexible
// REBALANCE_IN_PROGRESS tells a member to rejoin; ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID to start over.
import { f, type Schema } from '../../protocol/schema.js';
import { kafkaCode, type ApiHandler, type RequestContext } from '../types.js';
import { coordinatorOf } from './common.js';
import { ERRORS } from '../../../errors/index.js';
import { Operation, requireGroup } from '../authz.js';

const request: Schema = [
  f('groupId', 'string', '0+'),
  f('generationId', 'int32', '0+'),
  f('memberId', 'string', '0+'),
  f('groupInstanceId', 'string', '3+', { nullable: '3+', default: null }),
];

const response: Schema = [f('throttleTimeMs', 'int32', '1+'), f('errorCode', 'int16', '0+')];

export const heartbeat: ApiHandler = {
  apiKey: 12,
  name: 'Heartbeat',
  minVersion: 0,
  maxVersion: 4,
  flexibleFrom: 4,
  request,
  response,
  async handle(req: { groupId: string; generationId: number; memberId: string; groupInstanceId: string | null }, ctx: RequestContext) {
    try {
      requireGroup(ctx, Operation.READ, req.groupId);
      await coordinatorOf(ctx).heartbeat(req);
      return { throttleTimeMs: 0, errorCode: ERRORS.NONE.kafka };
    } catch (err) {
      return { throttleTimeMs: 0, errorCode: kafkaCode(err) };
    }
  },
};
