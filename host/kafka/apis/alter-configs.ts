// AlterConfigs (key 33), versions 0–2; v2 flexible. The legacy, non-incremental form (kafkajs's
// admin.alterConfigs uses it): the resource's dynamic configs become exactly the given set, so
// a key the topic overrides today and the request leaves out goes back to its default.
//   v0: resources[resource_type, resource_name, configs[name, value]], validate_only
//       response: throttle_time_ms, responses[error_code, error_message, resource_type, resource_name]
//   v1: same   v2: flexible
import { arr, f, type Schema } from '../protocol/schema.js';
import { BrokerError } from '../../errors/index.js';
import type { TopicConfig } from '../../broker/api.js';
import { kafkaCode, kafkaMessage, type ApiHandler, type RequestContext } from './types.js';
import { isTopicConfigKey } from './topic-configs.js';
import { RESOURCE_BROKER, RESOURCE_TOPIC } from './describe-configs.js';

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
    const responses = [];
    for (const r of req.resources) {
      try {
        if (r.resourceType === RESOURCE_BROKER) throw new BrokerError('INVALID_REQUEST', 'broker settings are read-only over Kafka; change them in the config file');
        if (r.resourceType !== RESOURCE_TOPIC) throw new BrokerError('INVALID_REQUEST', `resource type ${r.resourceType} is not supported (2 = topic)`);
        const info = ctx.broker.describeTopic(r.resourceName);
        if (!info) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic ${r.resourceName}`);
        const changes: Partial<Record<keyof TopicConfig, string | number | null>> = {};
        for (const key of Object.keys(info.overrides ?? {})) if (isTopicConfigKey(key)) changes[key] = null;
        for (const c of r.configs) {
          if (!isTopicConfigKey(c.name)) throw new BrokerError('INVALID_CONFIG', `unknown topic config "${c.name}"`);
          changes[c.name] = c.value;
        }
        if (!req.validateOnly) await ctx.broker.alterTopicConfig(r.resourceName, changes);
        responses.push({ errorCode: 0, errorMessage: null, resourceType: r.resourceType, resourceName: r.resourceName });
      } catch (err) {
        responses.push({ errorCode: kafkaCode(err), errorMessage: kafkaMessage(err), resourceType: r.resourceType, resourceName: r.resourceName });
      }
    }
    return { throttleTimeMs: 0, responses };
  },
};
