// Shared by the group API handlers: the coordinator from the request context, and the Kafka
// error code of whatever a coordinator call threw.
import { BrokerError } from '../../../errors/index.js';
import type { GroupCoordinator } from '../../../broker/groups/index.js';
import type { RequestContext } from '../types.js';

/** The coordinator, or a COORDINATOR_NOT_AVAILABLE error when the server runs without one. */
export function coordinatorOf(ctx: RequestContext): GroupCoordinator {
  const groups = ctx.groups as GroupCoordinator | undefined;
  if (!groups) throw new BrokerError('COORDINATOR_NOT_AVAILABLE', 'this listener has no group coordinator');
  return groups;
}

/** Kafka's member "client host": the peer address with a leading slash, as the JVM prints it. */
export function clientHostOf(ctx: RequestContext): string {
  return `/${ctx.remoteAddress}`;
}

/** Groups `{topic, partition, ...}` results into Kafka's topics[] → partitions[] shape, keeping order. */
export function byTopic<T extends { topic: string }, P>(items: T[], map: (item: T) => P): Array<{ name: string; partitions: P[] }> {
  const out = new Map<string, P[]>();
  for (const item of items) {
    let list = out.get(item.topic);
    if (!list) out.set(item.topic, (list = []));
    list.push(map(item));
  }
  return [...out].map(([name, partitions]) => ({ name, partitions }));
}
