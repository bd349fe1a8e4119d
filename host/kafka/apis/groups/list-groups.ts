// ListGroups (key 16), versions 0–4; flexible from v3.
//   v0: (empty) → error_code, groups[group_id, protocol_type]   v1: + throttle_time_ms   v2: same
//   v3: flexible   v4: + states_filter → groups[].group_state (KIP-518)
import { arr, f, type Schema } from '../../protocol/schema.js';
import { kafkaCode, type ApiHandler, type RequestContext } from '../types.js';
import { coordinatorOf } from './common.js';
import { ERRORS } from '../../../errors/index.js';
import { clusterAllowed, groupAllowed, Operation } from '../authz.js';

const request: Schema = [arr('statesFilter', '4+', 'string')];

const response: Schema = [
  f('throttleTimeMs', 'int32', '1+'),
  f('errorCode', 'int16', '0+'),
  arr('groups', '0+', [f('groupId', 'string', '0+'), f('protocolType', 'string', '0+'), f('groupState', 'string', '4+')]),
];

export const listGroups: ApiHandler = {
  apiKey: 16,
  name: 'ListGroups',
  minVersion: 0,
  maxVersion: 4,
  flexibleFrom: 3,
  request,
  response,
  async handle(req: { statesFilter: string[] }, ctx: RequestContext) {
    try {
      // DESCRIBE on the cluster lists every group; without it, the groups the principal may describe.
      const all = clusterAllowed(ctx, Operation.DESCRIBE);
      const groups = coordinatorOf(ctx).listGroups({ states: req.statesFilter ?? [] }).filter((g) => all || groupAllowed(ctx, Operation.DESCRIBE, g.groupId));
      return { throttleTimeMs: 0, errorCode: ERRORS.NONE.kafka, groups: groups.map((g) => ({ groupId: g.groupId, protocolType: g.protocolType, groupState: g.state })) };
    } catch (err) {
      return { throttleTimeMs: 0, errorCode: kafkaCode(err), groups: [] };
    }
  },
};
