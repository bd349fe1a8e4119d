// SyncGroup (key 14), versions 0–5; flexible from v4.
//   v0: group_id, generation_id, member_id, assignments[member_id, assignment] → error_code, assignment
//   v1: + throttle_time_ms   v2: same   v3: + group_instance_id   v4: flexible
//   v5: + protocol_type, protocol_name in request (checked) and response (KIP-559)
// Followers' responses wait for the leader's assignment (parked promise, not a blocked socket).
import { arr, f, type Schema } from '../../protocol/schema.js';
import { kafkaCode, type ApiHandler, type RequestContext } from '../types.js';
import { coordinatorOf } from './common.js';
import { ERRORS } from '../../../errors/index.js';
import { Operation, requireGroup } from '../authz.js';

const request: Schema = [
  f('groupId', 'string', '0+'),
  f('generationId', 'int32', '0+'),
  f('memberId', 'string', '0+'),
  f('groupInstanceId', 'string', '3+', { nullable: '3+', default: null }),
  f('protocolType', 'string', '5+', { nullable: '5+', default: null }),
  f('protocolName', 'string', '5+', { nullable: '5+', default: null }),
  arr('assignments', '0+', [f('memberId', 'string', '0+'), f('assignment', 'bytes', '0+')]),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '1+'),
  f('errorCode', 'int16', '0+'),
  f('protocolType', 'string', '5+', { nullable: '5+', default: null }),
  f('protocolName', 'string', '5+', { nullable: '5+', default: null }),
  f('assignment', 'bytes', '0+'),
];

interface SyncGroupWire {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string | null;
  protocolName: string | null;
  assignments: Array<{ memberId: string; assignment: Uint8Array }>;
}

export const syncGroup: ApiHandler = {
  apiKey: 14,
  name: 'SyncGroup',
  minVersion: 0,
  maxVersion: 5,
  flexibleFrom: 4,
  request,
  response,
  async handle(req: SyncGroupWire, ctx: RequestContext) {
    try {
      requireGroup(ctx, Operation.READ, req.groupId);
      const r = await coordinatorOf(ctx).syncGroup(req);
      return { throttleTimeMs: 0, errorCode: ERRORS.NONE.kafka, protocolType: r.protocolType, protocolName: r.protocolName, assignment: r.assignment };
    } catch (err) {
      return { throttleTimeMs: 0, errorCode: kafkaCode(err), protocolType: null, protocolName: null, assignment: new Uint8Array(0) };
    }
  },
};
