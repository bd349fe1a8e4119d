// DescribeCluster (key 60), versions 0–1; flexible from v0.
//   v0: include_cluster_authorized_operations; response throttle_time_ms, error_code, error_message,
//       cluster_id, controller_id, brokers[broker_id, host, port, rack], cluster_authorized_operations
//   v1: + endpoint_type (1 = brokers, 2 = controllers: refused, no separate controllers here)
import { arr, f, type Schema } from '../protocol/schema.js';
import type { ApiHandler, RequestContext } from './types.js';
import { ERRORS } from '../../errors/index.js';

const request: Schema = [f('includeClusterAuthorizedOperations', 'bool', '0+'), f('endpointType', 'int8', '1+', { default: 1 })];

const response: Schema = [
  f('throttleTimeMs', 'int32', '0+'),
  f('errorCode', 'int16', '0+'),
  f('errorMessage', 'string', '0+', { nullable: '0+', default: null }),
  f('endpointType', 'int8', '1+', { default: 1 }),
  f('clusterId', 'string', '0+'),
  f('controllerId', 'int32', '0+', { default: -1 }),
  arr('brokers', '0+', [f('brokerId', 'int32', '0+'), f('host', 'string', '0+'), f('port', 'int32', '0+'), f('rack', 'string', '0+', { nullable: '0+', default: null })]),
  f('clusterAuthorizedOperations', 'int32', '0+', { default: -2147483648 }),
];

export const describeCluster: ApiHandler = {
  apiKey: 60,
  name: 'DescribeCluster',
  minVersion: 0,
  maxVersion: 1,
  flexibleFrom: 0,
  request,
  response,
  async handle(req: { endpointType: number }, ctx: RequestContext) {
    const { node } = ctx;
    if (req.endpointType !== 1) {
      return { throttleTimeMs: 0, errorCode: ERRORS.INVALID_REQUEST.kafka, errorMessage: `endpoint type ${req.endpointType} is not supported (1 = brokers)`, endpointType: req.endpointType, clusterId: node.clusterId, controllerId: -1, brokers: [] };
    }
    return {
      throttleTimeMs: 0,
      errorCode: ERRORS.NONE.kafka,
      errorMessage: null,
      endpointType: 1,
      clusterId: node.clusterId,
      controllerId: node.cluster ? node.cluster.controllerId() : node.nodeId,
      brokers: node.cluster ? node.cluster.brokers().map((b) => ({ brokerId: b.nodeId, host: b.host, port: b.port, rack: null })) : [{ brokerId: node.nodeId, host: node.host, port: node.port, rack: null }],
    };
  },
};
