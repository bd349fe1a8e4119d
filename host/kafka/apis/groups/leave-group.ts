// LeaveGroup (key 13), versions 0–5; flexible from v4.
//   v0: group_id, member_id → error_code   v1: + throttle_time_ms   v2: same
//   v3: members[member_id, group_instance_id] batch (KIP-345) → members[member_id, group_instance_id, error_code]
//   v4: flexible   v5: + members[].reason (KIP-800)
// v0–2 carry one member and its error at the top level; v3+ report per member, the top-level
// code only for group-wide faults (coordinator loading or unavailable).
import { arr, f, type Schema } from '../../protocol/schema.js';
import { kafkaCode, type ApiHandler, type RequestContext } from '../types.js';
import { coordinatorOf } from './common.js';
import { ERRORS } from '../../../errors/index.js';
import { Operation, requireGroup } from '../authz.js';

const request: Schema = [
  f('groupId', 'string', '0+'),
  f('memberId', 'string', '0-2'),
  arr('members', '3+', [
    f('memberId', 'string', '3+'),
    f('groupInstanceId', 'string', '3+', { nullable: '3+', default: null }),
    f('reason', 'string', '5+', { nullable: '5+', default: null }),
  ]),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '1+'),
  f('errorCode', 'int16', '0+'),
  arr('members', '3+', [f('memberId', 'string', '3+'), f('groupInstanceId', 'string', '3+', { nullable: '3+', default: null }), f('errorCode', 'int16', '3+')]),
];

interface LeaveGroupWire {
  groupId: string;
  memberId: string;
  members: Array<{ memberId: string; groupInstanceId: string | null; reason: string | null }>;
}

export const leaveGroup: ApiHandler = {
  apiKey: 13,
  name: 'LeaveGroup',
  minVersion: 0,
  maxVersion: 5,
  flexibleFrom: 4,
  request,
  response,
  async handle(req: LeaveGroupWire, ctx: RequestContext) {
    const legacy = ctx.apiVersion < 3;
    const members = legacy ? [{ memberId: req.memberId, groupInstanceId: null, reason: null }] : req.members;
    try {
      requireGroup(ctx, Operation.READ, req.groupId);
      const results = await coordinatorOf(ctx).leaveGroup({ groupId: req.groupId, members });
      const out = results.map((r) => ({ memberId: r.memberId, groupInstanceId: r.groupInstanceId, errorCode: r.error ? kafkaCode(r.error) : ERRORS.NONE.kafka }));
      return { throttleTimeMs: 0, errorCode: legacy ? out[0].errorCode : ERRORS.NONE.kafka, members: out };
    } catch (err) {
      return { throttleTimeMs: 0, errorCode: kafkaCode(err), members: [] };
    }
  },
};
