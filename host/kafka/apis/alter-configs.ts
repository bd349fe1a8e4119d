// AlterConfigs (key 33), versions 0–2; v2 flexible. The legacy, non-incremental form (kafkajs's
// admin.alterConfigs uses it): the resource's dynamic configs become exactly the given set, so
// a key the topic overrides today and the request leaves out goes back to its default.
//   v0: resources[resource_type, resource_name, configs[name, value]], validate_only
//       response: throttle_time_ms, responses[error_code, error_message, resource_type, resource_name]
//   v1: same   v2: flexible
import { arr, f, type Schema } from '../protocol/schema.js';
import { BrokerError } from '../../errors/index.js';
import type { ApiHandler, RequestContext } from './types.js';
import { isTopicConfigKey } from './topic-configs.js';
import { alterTopicResources, type TopicConfigChanges } from './alter-topic-resources.js';

const request: Schema = [
  arr('resources', '0+', [f('resourceType', 'int8', '0+'), f('resourceName', 'string', '0+'), arr('configs', '0+', [f('name', 'string', '0+'), f('value', 'string', '0+', { nullable: '0+' })])]),
  f('validateOnly', 'bool', '0+'),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '0+'),
  arr('responses', '0+', [f('errorCode', 'int16', '0+'), f('errorMessage', 'string', '0+', { nullable: '0+' }), f('resourceType', 'int8', '0+'), f('resourceName', 'string', '0+')]),
];

interface AlterRequest {
  resources: Array<{ resourceType: number; resourceName: string; configs: Array<{ name: string; value: string | null }> }>;
  validateOnly: boolean;
}

export const alterConfigs: ApiHandler = {
  apiKey: 33,
  name: 'AlterConfigs',
  minVersion: 0,
  maxVersion: 2,
  flexibleFrom: 2,
  request,
  response,
  async handle(req: AlterRequest, ctx: RequestContext) {
    return alterTopicResources(req.resources, req.validateOnly, ctx, (r, info) => {
      // Legacy semantics: every current override not in the request goes back to its default.
      const changes: TopicConfigChanges = {};
      for (const key of Object.keys(info.overrides ?? {})) if (isTopicConfigKey(key)) changes[key] = null;
      for (const c of r.configs) {
        if (!isTopicConfigKey(c.name)) throw new BrokerError('INVALID_CONFIG', `unknown topic config "${c.name}"`);
        changes[c.name] = c.value;
      }
      return changes;
    });
  },
};
