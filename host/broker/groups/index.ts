// Consumer groups: the coordinator (classic rebalance protocol, durable committed offsets in
// `__consumer_offsets`) and its JS API, shared by the Kafka door and the WebSocket gateway.
// See docs/groups.md.
export { GroupCoordinator, JoinGroupError, type GroupCoordinatorDeps } from './coordinator.js';
export { defaultGroupOptions, resolveGroupOptions, type GroupOptions } from './options.js';
export { systemClock, type Clock, type TimerHandle } from './clock.js';
export { OFFSETS_TOPIC } from './store.js';
export { partitionForGroup } from './records.js';
export * from './types.js';
