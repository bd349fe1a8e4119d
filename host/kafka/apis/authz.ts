// Authorization in the Kafka handlers: each asks the one seam (ctx.authorize → host/security's
// Authorizer) before acting, with Kafka's operation per API (docs/security.md lists them), and
// answers a refusal with the resource's own error: TOPIC_/GROUP_/CLUSTER_AUTHORIZATION_FAILED.
import { BrokerError } from '../../errors/index.js';
import { CLUSTER_NAME, Operation, ResourceType } from '../../security/index.js';
import type { RequestContext } from './types.js';

export { Operation, ResourceType } from '../../security/index.js';

export function topicAllowed(ctx: RequestContext, operation: number, topic: string): boolean {
  return ctx.authorize(operation, ResourceType.TOPIC, topic);
}

export function groupAllowed(ctx: RequestContext, operation: number, group: string): boolean {
  return ctx.authorize(operation, ResourceType.GROUP, group);
}

export function clusterAllowed(ctx: RequestContext, operation: number): boolean {
  return ctx.authorize(operation, ResourceType.CLUSTER, CLUSTER_NAME);
}

const opName = (op: number) => Object.entries(Operation).find(([, v]) => v === op)?.[0] ?? String(op);

export function topicDenied(ctx: RequestContext, operation: number, topic: string): BrokerError {
  return new BrokerError('TOPIC_AUTHORIZATION_FAILED', `${ctx.principalText} may not ${opName(operation)} topic ${topic}`);
}

export function groupDenied(ctx: RequestContext, operation: number, group: string): BrokerError {
  return new BrokerError('GROUP_AUTHORIZATION_FAILED', `${ctx.principalText} may not ${opName(operation)} group ${group}`);
}

export function clusterDenied(ctx: RequestContext, operation: number): BrokerError {
  return new BrokerError('CLUSTER_AUTHORIZATION_FAILED', `${ctx.principalText} may not ${opName(operation)} the cluster`);
}

/** Throws TOPIC_AUTHORIZATION_FAILED unless allowed (inside a per-topic try). */
export function requireTopic(ctx: RequestContext, operation: number, topic: string): void {
  if (!topicAllowed(ctx, operation, topic)) throw topicDenied(ctx, operation, topic);
}

export function requireGroup(ctx: RequestContext, operation: number, group: string): void {
  if (!groupAllowed(ctx, operation, group)) throw groupDenied(ctx, operation, group);
}

export function requireCluster(ctx: RequestContext, operation: number): void {
  if (!clusterAllowed(ctx, operation)) throw clusterDenied(ctx, operation);
}

/** CreateTopics and auto-creation: CREATE on the cluster or on the topic (Kafka's rule). */
export function mayCreateTopic(ctx: RequestContext, topic: string): boolean {
  return clusterAllowed(ctx, Operation.CREATE) || topicAllowed(ctx, Operation.CREATE, topic);
}
