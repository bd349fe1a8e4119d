// Metadata (key 3), versions 0–12; v9+ flexible.
//   v0: topics[name] (empty = all topics); brokers[node_id, host, port]; topics[error, name, partitions[error, index, leader, replicas, isr]]
//   v1: topics nullable (null = all, empty = none); + rack, controller_id, is_internal
//   v2: + cluster_id        v3: + throttle_time_ms          v4: + allow_auto_topic_creation
//   v5: + offline_replicas  v7: + leader_epoch              v8: + authorized operations
//   v9: flexible            v10: + topic_id (uuid)          v11: cluster authorized ops removed
//   v12: topic name nullable in responses (lookups by id)
// One node: this node is the only broker, the controller, and every partition's leader (epoch 0)
// with replicas = isr = [this node]. A cluster (issue 11): every live broker with its Kafka
// listener, the controller, and each partition's leader, leader epoch, replicas and ISR as this
// node has applied them (a partition with no leader answers LEADER_NOT_AVAILABLE, so clients
// ask again). Internal topics are each node's own: this node leads them. Unknown topics are auto-created when
// the request allows it (v4+ flag; always before v4, as Kafka) and the broker config does.
import { arr, f, type Schema } from '../protocol/schema.js';
import { ZERO_UUID } from '../protocol/codec.js';
import { BrokerError, ERRORS } from '../../errors/index.js';
import type { BrokerApi, TopicInfo } from '../../broker/api.js';
import { topicIdBytes } from './topic-configs.js';
import { kafkaCode, type ApiHandler, type RequestContext } from './types.js';
import { mayCreateTopic, Operation, requireTopic, topicAllowed } from './authz.js';

const request: Schema = [
  arr('topics', '0+', [f('topicId', 'uuid', '10+'), f('name', 'string', '0+', { nullable: '10+' })], { nullable: '1+' }),
  f('allowAutoTopicCreation', 'bool', '4+', { default: true }),
  f('includeClusterAuthorizedOperations', 'bool', '8-10'),
  f('includeTopicAuthorizedOperations', 'bool', '8+'),
];

const response: Schema = [
  f('throttleTimeMs', 'int32', '3+'),
  arr('brokers', '0+', [f('nodeId', 'int32', '0+'), f('host', 'string', '0+'), f('port', 'int32', '0+'), f('rack', 'string', '1+', { nullable: '1+', default: null })]),
  f('clusterId', 'string', '2+', { nullable: '2+', default: null }),
  f('controllerId', 'int32', '1+', { default: -1 }),
  arr('topics', '0+', [
    f('errorCode', 'int16', '0+'),
    f('name', 'string', '0+', { nullable: '12+' }),
    f('topicId', 'uuid', '10+'),
    f('isInternal', 'bool', '1+'),
    arr('partitions', '0+', [
      f('errorCode', 'int16', '0+'),
      f('partitionIndex', 'int32', '0+'),
      f('leaderId', 'int32', '0+'),
      f('leaderEpoch', 'int32', '7+', { default: -1 }),
      arr('replicaNodes', '0+', 'int32'),
      arr('isrNodes', '0+', 'int32'),
      arr('offlineReplicas', '5+', 'int32'),
    ]),
    f('topicAuthorizedOperations', 'int32', '8+', { default: -2147483648 }),
  ]),
  f('clusterAuthorizedOperations', 'int32', '8-10', { default: -2147483648 }),
];

interface MetadataRequest {
  topics: Array<{ name: string | null }> | null;
  allowAutoTopicCreation: boolean;
}

export function topicMetadata(info: TopicInfo, nodeId: number, broker?: BrokerApi) {
  const partitions = [];
  for (let p = 0; p < info.partitions; p++) {
    const s = broker?.partitionState({ topic: info.name, partition: p });
    if (!s) {
      partitions.push({ errorCode: ERRORS.NONE.kafka, partitionIndex: p, leaderId: nodeId, leaderEpoch: 0, replicaNodes: [nodeId], isrNodes: [nodeId], offlineReplicas: [] });
      continue;
    }
    const errorCode = s.leaderId < 0 ? ERRORS.LEADER_NOT_AVAILABLE.kafka : ERRORS.NONE.kafka;
    partitions.push({ errorCode, partitionIndex: p, leaderId: s.leaderId, leaderEpoch: s.leaderEpoch, replicaNodes: [...s.replicas], isrNodes: [...s.isr], offlineReplicas: [] });
  }
  return { errorCode: ERRORS.NONE.kafka, name: info.name, topicId: topicIdBytes(info), isInternal: info.internal, partitions };
}

export const metadata: ApiHandler = {
  apiKey: 3,
  name: 'Metadata',
  minVersion: 0,
  maxVersion: 12,
  flexibleFrom: 9,
  request,
  response,
  async handle(req: MetadataRequest, ctx: RequestContext) {
    const { node, broker } = ctx;
    const all = req.topics === null || (ctx.apiVersion === 0 && req.topics.length === 0);
    const autoCreate = node.autoCreateTopics && (ctx.apiVersion < 4 || req.allowAutoTopicCreation);
    const topics = [];
    if (all) {
      // Kafka's rule: a full listing shows only the topics the principal may describe.
      for (const info of broker.listTopics()) if (topicAllowed(ctx, Operation.DESCRIBE, info.name)) topics.push(topicMetadata(info, node.nodeId, node.cluster && broker));
    } else {
      for (const t of req.topics!) {
        if (t.name === null) {
          // Lookup by topic id (v10+): we do not assign topic ids yet.
          topics.push({ errorCode: ERRORS.UNKNOWN_TOPIC_ID.kafka, name: null, topicId: ZERO_UUID, isInternal: false, partitions: [] });
          continue;
        }
        try {
          requireTopic(ctx, Operation.DESCRIBE, t.name);
          let info = broker.describeTopic(t.name);
          if (!info) {
            // Auto-creation needs CREATE on the cluster or the topic; without it the topic stays unknown.
            if (!autoCreate || !mayCreateTopic(ctx, t.name)) throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `unknown topic ${t.name}`);
            info = await broker.ensureTopic(t.name);
          }
          topics.push(topicMetadata(info, node.nodeId, node.cluster && broker));
        } catch (err) {
          topics.push({ errorCode: kafkaCode(err), name: t.name, topicId: ZERO_UUID, isInternal: false, partitions: [] });
        }
      }
    }
    return {
      throttleTimeMs: 0,
      brokers: node.cluster ? node.cluster.brokers().map((b) => ({ ...b, rack: null })) : [{ nodeId: node.nodeId, host: node.host, port: node.port, rack: null }],
      clusterId: node.clusterId,
      controllerId: node.cluster ? node.cluster.controllerId() : node.nodeId,
      topics,
    };
  },
};
