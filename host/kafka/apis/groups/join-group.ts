// JoinGroup (key 11), versions 0–9; flexible from v6.
//   v0: group_id, session_timeout_ms, member_id, protocol_type, protocols[name, metadata]
//       → error_code, generation_id, protocol_name, leader, member_id, members[member_id, metadata]
//   v1: + rebalance_timeout_ms (absent: the session timeout)   v2: + throttle_time_ms   v3: same
//   v4: a new member first gets MEMBER_ID_REQUIRED with its member_id and joins again (KIP-394)
//   v5: + group_instance_id (static membership, KIP-345), members[].group_instance_id
//   v6: flexible   v7: response protocol_type, protocol_name nullable (KIP-559)
//   v8: + reason (KIP-800)   v9: response skip_assignment (KIP-814)
// The response is held until the rebalance completes; the coordinator parks the promise, so
// the listener keeps computing other requests meanwhile.
import { arr, f, type Schema } from '../../protocol/schema.js';
import { JoinGroupError } from '../../../broker/groups/index.js';
import { kafkaCode, type ApiHandler, type RequestContext } from '../types.js';
import { clientHostOf, coordinatorOf } from './common.js';
import { ERRORS } from '../../../errors/index.js';
import { Operation, requireGroup } from '../authz.js';

const request: Schema = [
  f('groupId', 'string', '0+'),
  f('sessionTimeoutMs', 'int32', '0+'),
  f('rebalanceTimeoutMs', 'int32', '1+', { default: -1 }),
  f('memberId', 'string', '0+'),
  f('groupInstanceId', 'string', '5+', { nullable: '5+', default: null }),
  f('protocolType', 'string', '0+'),
  arr('protocols', '0+', [f('name', 'string', '0+'), f('metadata', 'bytes', '0+')]),
  f('reason', 'string', '8+', { nullable: '8+', default: null }),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '2+'),
  f('errorCode', 'int16', '0+'),
  f('generationId', 'int32', '0+', { default: -1 }),
  f('protocolType', 'string', '7+', { nullable: '7+', default: null }),
  f('protocolName', 'string', '0+', { nullable: '7+' }),
  f('leader', 'string', '0+'),
  f('skipAssignment', 'bool', '9+', { default: false }),
  f('memberId', 'string', '0+'),
  arr('members', '0+', [f('memberId', 'string', '0+'), f('groupInstanceId', 'string', '5+', { nullable: '5+', default: null }), f('metadata', 'bytes', '0+')]),
];

interface JoinGroupWire {
  groupId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string;
  protocols: Array<{ name: string; metadata: Uint8Array }>;
  reason: string | null;
}

export const joinGroup: ApiHandler = {
  apiKey: 11,
  name: 'JoinGroup',
  minVersion: 0,
  maxVersion: 9,
  flexibleFrom: 6,
  request,
  response,
  async handle(req: JoinGroupWire, ctx: RequestContext) {
    try {
      requireGroup(ctx, Operation.READ, req.groupId);
      const r = await coordinatorOf(ctx).joinGroup({
        groupId: req.groupId,
        memberId: req.memberId,
        groupInstanceId: req.groupInstanceId,
        sessionTimeoutMs: req.sessionTimeoutMs,
        rebalanceTimeoutMs: ctx.apiVersion >= 1 ? req.rebalanceTimeoutMs : undefined,
        protocolType: req.protocolType,
        protocols: req.protocols,
        clientId: ctx.clientId ?? '',
        clientHost: clientHostOf(ctx),
        requireKnownMemberId: ctx.apiVersion >= 4,
        reason: req.reason,
      });
      return { throttleTimeMs: 0, errorCode: ERRORS.NONE.kafka, ...r };
    } catch (err) {
      return {
        throttleTimeMs: 0,
        errorCode: kafkaCode(err),
        generationId: -1,
        protocolType: null,
        protocolName: null,
        leader: '',
        skipAssignment: false,
        memberId: err instanceof JoinGroupError ? err.memberId : req.memberId,
        members: [],
      };
    }
  },
};
