// IncrementalAlterConfigs (key 44), versions 0–1; v1 flexible.
//   v0: resources[resource_type, resource_name, configs[name, config_operation, value]], validate_only
//       response: throttle_time_ms, responses[error_code, error_message, resource_type, resource_name]
//   v1: flexible
// Operations: 0 SET, 1 DELETE (back to the default), 2 APPEND and 3 SUBTRACT (list configs:
// only cleanup.policy is a list here). Topic resources only; broker settings are read-only here
// (set them in the config file). Errors name the key; validate_only checks keys and operations.
import { arr, f, type Schema } from '../protocol/schema.js';
import { BrokerError } from '../../errors/index.js';
import type { ApiHandler, RequestContext } from './types.js';
import { isTopicConfigKey } from './topic-configs.js';
import { alterTopicResources, type TopicConfigChanges } from './alter-topic-resources.js';

const request: Schema = [
  arr('resources', '0+', [
    f('resourceType', 'int8', '0+'),
    f('resourceName', 'string', '0+'),
    arr('configs', '0+', [f('name', 'string', '0+'), f('configOperation', 'int8', '0+'), f('value', 'string', '0+', { nullable: '0+' })]),
  ]),
  f('validateOnly', 'bool', '0+'),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '0+'),
  arr('responses', '0+', [f('errorCode', 'int16', '0+'), f('errorMessage', 'string', '0+', { nullable: '0+' }), f('resourceType', 'int8', '0+'), f('resourceName', 'string', '0+')]),
];

interface AlterRequest {
  resources: Array<{ resourceType: number; resourceName: string; configs: Array<{ name: string; configOperation: number; value: string | null }> }>;
  validateOnly: boolean;
}

function listOp(current: string, value: string, op: number): string {
  const items = new Set(current.split(',').map((s) => s.trim()).filter(Boolean));
  for (const v of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (op === 2) items.add(v);
    else items.delete(v);
  }
  return [...items].join(',');
}

export const incrementalAlterConfigs: ApiHandler = {
  apiKey: 44,
  name: 'IncrementalAlterConfigs',
  minVersion: 0,
  maxVersion: 1,
  flexibleFrom: 1,
  request,
  response,
  async handle(req: AlterRequest, ctx: RequestContext) {
    return alterTopicResources(req.resources, req.validateOnly, ctx, (r, info) => {
      const changes: TopicConfigChanges = {};
      for (const c of r.configs) {
        if (!isTopicConfigKey(c.name)) throw new BrokerError('INVALID_CONFIG', `unknown topic config "${c.name}"`);
        switch (c.configOperation) {
          case 0:
            if (c.value === null) throw new BrokerError('INVALID_CONFIG', `SET of "${c.name}" needs a value`);
            changes[c.name] = c.value;
            break;
          case 1:
            changes[c.name] = null;
            break;
          case 2:
          case 3:
            if (c.name !== 'cleanup.policy') throw new BrokerError('INVALID_CONFIG', `"${c.name}" is not a list: APPEND/SUBTRACT apply to cleanup.policy only`);
            changes[c.name] = listOp(String(info.config['cleanup.policy']), c.value ?? '', c.configOperation);
            break;
          default:
            throw new BrokerError('INVALID_REQUEST', `config operation ${c.configOperation} for "${c.name}" is unknown (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)`);
        }
      }
      return changes;
    });
  },
};
