// DescribeAcls (key 29), CreateAcls (key 30), DeleteAcls (key 31): versions 1–3; v2+ flexible.
//   v0: no pattern type (literal only) — not offered: every client since Kafka 2.0 sends v1+
//   v1: + resource pattern type (literal 3 / prefixed 4; filters also any 1 / match 2)
//   v2: flexible   v3: same as v2 (user principals may be non-"User" types in Kafka; ours are User:)
// DescribeAcls needs DESCRIBE on the cluster, CreateAcls and DeleteAcls ALTER (Kafka's rule);
// refused: CLUSTER_AUTHORIZATION_FAILED. A binding that cannot be stored is INVALID_REQUEST
// naming the field. ACLs are metadata records (host/broker/metadata/records.ts): durable in the
// store before the answer, in effect for the next request on every connection.
import { arr, f, type Schema } from '../protocol/schema.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import { bindingProblem, filterMatches, filterProblem, type AclBinding, type AclFilter } from '../../security/index.js';
import { kafkaCode, kafkaMessage, type ApiHandler, type RequestContext } from './types.js';
import { Operation, requireCluster } from './authz.js';

const filterFields = (prefix: '' | 'Filter') => [
  f(`resourceType${prefix}`, 'int8', '0+'),
  f(`resourceName${prefix}`, 'string', '0+', { nullable: '0+' }),
  f(`patternType${prefix}`, 'int8', '1+', { default: 3 }),
  f(`principal${prefix}`, 'string', '0+', { nullable: '0+' }),
  f(`host${prefix}`, 'string', '0+', { nullable: '0+' }),
  f('operation', 'int8', '0+'),
  f('permissionType', 'int8', '0+'),
];

const aclDescription = [f('principal', 'string', '0+'), f('host', 'string', '0+'), f('operation', 'int8', '0+'), f('permissionType', 'int8', '0+')];

const describeResponse: Schema = [
  f('throttleTimeMs', 'int32', '0+'),
  f('errorCode', 'int16', '0+'),
  f('errorMessage', 'string', '0+', { nullable: '0+', default: null }),
  arr('resources', '0+', [f('resourceType', 'int8', '0+'), f('resourceName', 'string', '0+'), f('patternType', 'int8', '1+', { default: 3 }), arr('acls', '0+', aclDescription)]),
];

const createRequest: Schema = [
  arr('creations', '0+', [
    f('resourceType', 'int8', '0+'),
    f('resourceName', 'string', '0+'),
    f('resourcePatternType', 'int8', '1+', { default: 3 }),
    f('principal', 'string', '0+'),
    f('host', 'string', '0+'),
    f('operation', 'int8', '0+'),
    f('permissionType', 'int8', '0+'),
  ]),
];
const createResponse: Schema = [f('throttleTimeMs', 'int32', '0+'), arr('results', '0+', [f('errorCode', 'int16', '0+'), f('errorMessage', 'string', '0+', { nullable: '0+', default: null })])];

const deleteRequest: Schema = [arr('filters', '0+', filterFields('Filter'))];
const deleteResponse: Schema = [
  f('throttleTimeMs', 'int32', '0+'),
  arr('filterResults', '0+', [
    f('errorCode', 'int16', '0+'),
    f('errorMessage', 'string', '0+', { nullable: '0+', default: null }),
    arr('matchingAcls', '0+', [
      f('errorCode', 'int16', '0+'),
      f('errorMessage', 'string', '0+', { nullable: '0+', default: null }),
      f('resourceType', 'int8', '0+'),
      f('resourceName', 'string', '0+'),
      f('patternType', 'int8', '1+', { default: 3 }),
      ...aclDescription,
    ]),
  ]),
];

interface WireFilter {
  resourceTypeFilter: number;
  resourceNameFilter: string | null;
  patternTypeFilter: number;
  principalFilter: string | null;
  hostFilter: string | null;
  operation: number;
  permissionType: number;
}

const toFilter = (w: WireFilter): AclFilter => ({
  resourceType: w.resourceTypeFilter,
  resourceName: w.resourceNameFilter,
  patternType: w.patternTypeFilter,
  principal: w.principalFilter,
  host: w.hostFilter,
  operation: w.operation,
  permission: w.permissionType,
});

function storeOf(ctx: RequestContext) {
  const store = ctx.security.store;
  if (!store) throw new BrokerError('SECURITY_DISABLED', 'this listener has no metadata store for ACLs');
  return store;
}

const ACL_VERSIONS = { minVersion: 1, maxVersion: 3, flexibleFrom: 2 };

export const describeAcls: ApiHandler = {
  apiKey: 29,
  name: 'DescribeAcls',
  ...ACL_VERSIONS,
  request: filterFields('Filter'),
  response: describeResponse,
  async handle(req: WireFilter, ctx: RequestContext) {
    try {
      requireCluster(ctx, Operation.DESCRIBE);
      const filter = toFilter(req);
      const problem = filterProblem(filter);
      if (problem) throw new BrokerError('INVALID_REQUEST', problem);
      const groups = new Map<string, { resourceType: number; resourceName: string; patternType: number; acls: object[] }>();
      for (const b of storeOf(ctx).image().acls.filter((b) => filterMatches(filter, b))) {
        const key = `${b.resourceType}\u0000${b.patternType}\u0000${b.resourceName}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { resourceType: b.resourceType, resourceName: b.resourceName, patternType: b.patternType, acls: [] }));
        g.acls.push({ principal: b.principal, host: b.host, operation: b.operation, permissionType: b.permission });
      }
      return { throttleTimeMs: 0, errorCode: ERRORS.NONE.kafka, errorMessage: null, resources: [...groups.values()] };
    } catch (err) {
      return { throttleTimeMs: 0, errorCode: kafkaCode(err), errorMessage: kafkaMessage(err), resources: [] };
    }
  },
};

interface WireCreation {
  resourceType: number;
  resourceName: string;
  resourcePatternType: number;
  principal: string;
  host: string;
  operation: number;
  permissionType: number;
}

export const createAcls: ApiHandler = {
  apiKey: 30,
  name: 'CreateAcls',
  ...ACL_VERSIONS,
  request: createRequest,
  response: createResponse,
  async handle(req: { creations: WireCreation[] }, ctx: RequestContext) {
    const results = [];
    for (const c of req.creations) {
      try {
        requireCluster(ctx, Operation.ALTER);
        const binding: AclBinding = { resourceType: c.resourceType, resourceName: c.resourceName, patternType: c.resourcePatternType, principal: c.principal, host: c.host, operation: c.operation, permission: c.permissionType };
        const problem = bindingProblem(binding);
        if (problem) throw new BrokerError('INVALID_REQUEST', problem);
        await storeOf(ctx).propose([{ type: 'acl', binding }]);
        ctx.logger.info({ by: ctx.principalText, acl: binding }, 'ACL created');
        results.push({ errorCode: ERRORS.NONE.kafka, errorMessage: null });
      } catch (err) {
        results.push({ errorCode: kafkaCode(err), errorMessage: kafkaMessage(err) });
      }
    }
    return { throttleTimeMs: 0, results };
  },
};

export const deleteAcls: ApiHandler = {
  apiKey: 31,
  name: 'DeleteAcls',
  ...ACL_VERSIONS,
  request: deleteRequest,
  response: deleteResponse,
  async handle(req: { filters: WireFilter[] }, ctx: RequestContext) {
    const filterResults = [];
    for (const w of req.filters) {
      try {
        requireCluster(ctx, Operation.ALTER);
        const filter = toFilter(w);
        const problem = filterProblem(filter);
        if (problem) throw new BrokerError('INVALID_REQUEST', problem);
        const store = storeOf(ctx);
        const matching = store.image().acls.filter((b) => filterMatches(filter, b));
        if (matching.length > 0) await store.propose(matching.map((binding) => ({ type: 'removeAcl', binding })));
        if (matching.length > 0) ctx.logger.info({ by: ctx.principalText, removed: matching.length }, 'ACLs deleted');
        filterResults.push({
          errorCode: ERRORS.NONE.kafka,
          errorMessage: null,
          matchingAcls: matching.map((b) => ({ errorCode: ERRORS.NONE.kafka, errorMessage: null, resourceType: b.resourceType, resourceName: b.resourceName, patternType: b.patternType, principal: b.principal, host: b.host, operation: b.operation, permissionType: b.permission })),
        });
      } catch (err) {
        filterResults.push({ errorCode: kafkaCode(err), errorMessage: kafkaMessage(err), matchingAcls: [] });
      }
    }
    return { throttleTimeMs: 0, filterResults };
  },
};
