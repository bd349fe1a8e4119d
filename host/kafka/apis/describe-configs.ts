// DescribeConfigs (key 32), versions 1–4; v4+ flexible.
//   v1: resources[resource_type, resource_name, configuration_keys (nullable = all)], include_synonyms
//       response: throttle_time_ms, results[error_code, error_message, resource_type, resource_name,
//                 configs[name, value, read_only, config_source, is_sensitive, synonyms[name, value, source]]]
//   v2: same   v3: + include_documentation; response + config_type, documentation   v4: flexible
// Resource types: 2 = topic (every topic config, with DEFAULT_CONFIG or DYNAMIC_TOPIC_CONFIG as
// source), 4 = broker (this listener's real settings, read-only: change them in the config file).
import { arr, f, type Schema } from '../protocol/schema.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import { kafkaCode, kafkaMessage, type ApiHandler, type RequestContext } from './types.js';
import { CONFIG_SOURCE, CONFIG_TYPE, topicConfigEntries, type ConfigEntry } from './topic-configs.js';
import { Operation, requireCluster, requireTopic } from './authz.js';

export const RESOURCE_TOPIC = 2;
export const RESOURCE_BROKER = 4;

const request: Schema = [
  arr('resources', '0+', [f('resourceType', 'int8', '0+'), f('resourceName', 'string', '0+'), arr('configurationKeys', '0+', 'string', { nullable: '0+' })]),
  f('includeSynonyms', 'bool', '1+'),
  f('includeDocumentation', 'bool', '3+'),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '0+'),
  arr('results', '0+', [
    f('errorCode', 'int16', '0+'),
    f('errorMessage', 'string', '0+', { nullable: '0+' }),
    f('resourceType', 'int8', '0+'),
    f('resourceName', 'string', '0+'),
    arr('configs', '0+', [
      f('name', 'string', '0+'),
      f('value', 'string', '0+', { nullable: '0+' }),
      f('readOnly', 'bool', '0+'),
      f('isDefault', 'bool', '0'),
      f('configSource', 'int8', '1+', { default: -1 }),
      f('isSensitive', 'bool', '0+'),
      arr('synonyms', '1+', [f('name', 'string', '1+'), f('value', 'string', '1+', { nullable: '0+' }), f('source', 'int8', '1+')]),
      f('configType', 'int8', '3+'),
      f('documentation', 'string', '3+', { nullable: '0+' }),
    ]),
  ]),
];

interface DescribeConfigsRequest {
  resources: Array<{ resourceType: number; resourceName: string; configurationKeys: string[] | null }>;
  includeDocumentation: boolean;
}

function brokerEntries(ctx: RequestContext, keys: string[] | null, withDocs: boolean): ConfigEntry[] {
  const o = ctx.options;
  const settings: Array<[string, string, number, string]> = [
    ['broker.id', String(o.nodeId), CONFIG_TYPE.INT, 'this node id (kafka nodeId option)'],
    ['socket.request.max.bytes', String(o.maxRequestBytes), CONFIG_TYPE.INT, 'largest request accepted (maxRequestBytes)'],
    ['max.connections', String(o.connectionsMax), CONFIG_TYPE.INT, 'connections accepted at once (connectionsMax)'],
    ['connections.max.idle.ms', String(o.idleTimeoutMs), CONFIG_TYPE.LONG, 'idle connections are closed after this (idleTimeoutMs)'],
    ['fetch.max.bytes', String(o.maxFetchResponseBytes), CONFIG_TYPE.INT, 'cap on one fetch response (maxFetchResponseBytes)'],
    ['auto.create.topics.enable', String(o.autoCreateTopicsOnMetadata), CONFIG_TYPE.BOOLEAN, 'Metadata may auto-create topics (autoCreateTopicsOnMetadata)'],
    ['advertised.listeners', o.advertisedHost ? `PLAINTEXT://${o.advertisedHost}:${o.advertisedPort ?? o.port}` : '', CONFIG_TYPE.LIST, 'address given to clients (advertisedHost/advertisedPort)'],
  ];
  return settings
    .filter(([name]) => !keys || keys.includes(name))
    .map(([name, value, configType, doc]) => ({
      name,
      value,
      readOnly: true,
      isDefault: false,
      configSource: CONFIG_SOURCE.STATIC_BROKER_CONFIG,
      isSensitive: false,
      synonyms: [],
      configType,
      documentation: withDocs ? doc : null,
    }));
}

export const describeConfigs: ApiHandler = {
  apiKey: 32,
  name: 'DescribeConfigs',
  minVersion: 1,
  maxVersion: 4,
  flexibleFrom: 4,
  request,
  response,
  async handle(req: DescribeConfigsRequest, ctx: RequestContext) {
    const results = [];
    for (const r of req.resources) {
      try {
        let configs: ConfigEntry[];
        if (r.resourceType === RESOURCE_TOPIC) {
          requireTopic(ctx, Operation.DESCRIBE_CONFIGS, r.resourceName);
          const info = ctx.broker.describeTopic(r.resourceName);
          if (!info) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic ${r.resourceName}`);
          configs = topicConfigEntries(info, r.configurationKeys, req.includeDocumentation);
        } else if (r.resourceType === RESOURCE_BROKER) {
          requireCluster(ctx, Operation.DESCRIBE_CONFIGS);
          if (r.resourceName !== '' && r.resourceName !== String(ctx.node.nodeId)) throw new BrokerError('INVALID_REQUEST', `unknown broker ${r.resourceName} (this node is ${ctx.node.nodeId})`);
          configs = brokerEntries(ctx, r.configurationKeys, req.includeDocumentation);
        } else throw new BrokerError('INVALID_REQUEST', `resource type ${r.resourceType} is not supported (2 = topic, 4 = broker)`);
        results.push({ errorCode: ERRORS.NONE.kafka, errorMessage: null, resourceType: r.resourceType, resourceName: r.resourceName, configs });
      } catch (err) {
        results.push({ errorCode: kafkaCode(err), errorMessage: kafkaMessage(err), resourceType: r.resourceType, resourceName: r.resourceName, configs: [] });
      }
    }
    return { throttleTimeMs: 0, results };
  },
};
