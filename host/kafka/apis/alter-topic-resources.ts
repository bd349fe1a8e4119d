// The loop AlterConfigs and IncrementalAlterConfigs share: each resource is checked (topics
// only; broker settings are read-only over Kafka), its changes built by the API's own rule,
// applied unless validate_only, and answered with its own error code — one bad resource never
// fails the others.
import { BrokerError, ERRORS } from '../../errors/index.js';
import type { TopicConfigChanges, TopicInfo } from '../../broker/api.js';
import { kafkaCode, kafkaMessage, type RequestContext } from './types.js';
import { RESOURCE_BROKER, RESOURCE_TOPIC } from './describe-configs.js';
import { Operation, requireCluster, requireTopic } from './authz.js';

export type { TopicConfigChanges };

export async function alterTopicResources<R extends { resourceType: number; resourceName: string }>(
  resources: R[],
  validateOnly: boolean,
  ctx: RequestContext,
  changesFor: (resource: R, topic: TopicInfo) => TopicConfigChanges,
) {
  const responses = [];
  for (const r of resources) {
    try {
      if (r.resourceType === RESOURCE_BROKER) requireCluster(ctx, Operation.ALTER_CONFIGS);
      if (r.resourceType === RESOURCE_TOPIC) requireTopic(ctx, Operation.ALTER_CONFIGS, r.resourceName);
      if (r.resourceType === RESOURCE_BROKER) throw new BrokerError('INVALID_REQUEST', 'broker settings are read-only over Kafka; change them in the config file');
      if (r.resourceType !== RESOURCE_TOPIC) throw new BrokerError('INVALID_REQUEST', `resource type ${r.resourceType} is not supported (2 = topic)`);
      const info = ctx.broker.describeTopic(r.resourceName);
      if (!info) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic ${r.resourceName}`);
      const changes = changesFor(r, info);
      // Key and value checks (and validate_only) are the broker's, shared with every other door.
      await ctx.broker.alterTopicConfig(r.resourceName, changes, { validateOnly });
      responses.push({ errorCode: ERRORS.NONE.kafka, errorMessage: null, resourceType: r.resourceType, resourceName: r.resourceName });
    } catch (err) {
      responses.push({ errorCode: kafkaCode(err), errorMessage: kafkaMessage(err), resourceType: r.resourceType, resourceName: r.resourceName });
    }
  }
  return { throttleTimeMs: 0, responses };
}
