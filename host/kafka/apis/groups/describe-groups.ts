// DescribeGroups (key 15), versions 0–5; flexible from v5.
//   v0: groups[] → groups[error_code, group_id, group_state, protocol_type, protocol_data,
//       members[member_id, client_id, client_host, member_metadata, member_assignment]]
//   v1: + throttle_time_ms   v2: same   v3: + include_authorized_operations → authorized_operations
//   v4: + members[].group_instance_id   v5: flexible
// As Kafka: metadata, assignment and protocol are filled only for a Stable group; an unknown
// group is described as Dead with no error. No ACLs here: authorized operations are "not asked".
import { arr, f, type Schema } from '../../protocol/schema.js';
import { kafkaCode, type ApiHandler, type RequestContext } from '../types.js';
import { coordinatorOf } from './common.js';
import { ERRORS } from '../../../errors/index.js';
import { groupAllowed, groupDenied, Operation } from '../authz.js';

const request: Schema = [arr('groups', '0+', 'string'), f('includeAuthorizedOperations', 'bool', '3+')];

const response: Schema = [
  f('throttleTimeMs', 'int32', '1+'),
  arr('groups', '0+', [
    f('errorCode', 'int16', '0+'),
    f('groupId', 'string', '0+'),
    f('groupState', 'string', '0+'),
    f('protocolType', 'string', '0+'),
    f('protocolData', 'string', '0+'),
    arr('members', '0+', [
      f('memberId', 'string', '0+'),
      f('groupInstanceId', 'string', '4+', { nullable: '4+', default: null }),
      f('clientId', 'string', '0+'),
      f('clientHost', 'string', '0+'),
      f('memberMetadata', 'bytes', '0+'),
      f('memberAssignment', 'bytes', '0+'),
    ]),
    f('authorizedOperations', 'int32', '3+', { default: -2147483648 }),
  ]),
];

export const describeGroups: ApiHandler = {
  apiKey: 15,
  name: 'DescribeGroups',
  minVersion: 0,
  maxVersion: 5,
  flexibleFrom: 5,
  request,
  response,
  async handle(req: { groups: string[] }, ctx: RequestContext) {
    const ids = req.groups ?? [];
    try {
      const described = coordinatorOf(ctx).describeGroups(ids).map((d) => (groupAllowed(ctx, Operation.DESCRIBE, d.groupId) ? d : { ...d, error: groupDenied(ctx, Operation.DESCRIBE, d.groupId), state: '', protocolType: '', protocolName: '', members: [] }));
      return {
        throttleTimeMs: 0,
        groups: described.map((d) => ({
          errorCode: d.error ? kafkaCode(d.error) : ERRORS.NONE.kafka,
          groupId: d.groupId,
          groupState: d.state,
          protocolType: d.protocolType,
          protocolData: d.protocolName,
          members: d.members.map((m) => ({
            memberId: m.memberId,
            groupInstanceId: m.groupInstanceId,
            clientId: m.clientId,
            clientHost: m.clientHost,
            memberMetadata: m.metadata,
            memberAssignment: m.assignment,
          })),
          authorizedOperations: -2147483648,
        })),
      };
    } catch (err) {
      const code = kafkaCode(err);
      return { throttleTimeMs: 0, groups: ids.map((groupId) => ({ errorCode: code, groupId, groupState: '', protocolType: '', protocolData: '', members: [] })) };
    }
  },
};
