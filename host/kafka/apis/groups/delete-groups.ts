// DeleteGroups (key 42), versions 0–2; flexible from v2.
//   v0: groups_names[] → throttle_time_ms, results[group_id, error_code]   v1: same   v2: flexible
// Only an Empty group can go (NON_EMPTY_GROUP otherwise); its offsets and metadata get
// tombstones in __consumer_offsets before the answer.
import { arr, f, type Schema } from '../../protocol/schema.js';
import { kafkaCode, type ApiHandler, type RequestContext } from '../types.js';
import { coordinatorOf } from './common.js';
import { ERRORS } from '../../../errors/index.js';
import { groupAllowed, groupDenied, Operation } from '../authz.js';

const request: Schema = [arr('groupsNames', '0+', 'string')];

const response: Schema = [f('throttleTimeMs', 'int32', '0+'), arr('results', '0+', [f('groupId', 'string', '0+'), f('errorCode', 'int16', '0+')])];

export const deleteGroups: ApiHandler = {
  apiKey: 42,
  name: 'DeleteGroups',
  minVersion: 0,
  maxVersion: 2,
  flexibleFrom: 2,
  request,
  response,
  async handle(req: { groupsNames: string[] }, ctx: RequestContext) {
    const names = req.groupsNames ?? [];
    try {
      const allowed = names.filter((n) => groupAllowed(ctx, Operation.DELETE, n));
      const results = await coordinatorOf(ctx).deleteGroups(allowed);
      const byGroup = new Map(results.map((r) => [r.groupId, r.error ? kafkaCode(r.error) : ERRORS.NONE.kafka]));
      return { throttleTimeMs: 0, results: names.map((groupId) => ({ groupId, errorCode: byGroup.get(groupId) ?? groupDenied(ctx, Operation.DELETE, groupId).kafkaCode })) };
    } catch (err) {
      const code = kafkaCode(err);
      return { throttleTimeMs: 0, results: names.map((groupId) => ({ groupId, errorCode: code })) };
    }
  },
};
