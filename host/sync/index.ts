// The sync layer's entry for the node: the uplink (host/sync/uplink.ts, which also runs the
// downlink, host/sync/downlink.ts, and installs its byte budget at the broker's write path,
// host/sync/budget.ts) from its config section. Read-back and transactions modes: docs/uplink.md.
export { Uplink, type UplinkStatus, type PartitionStatus, type UplinkDeps } from './uplink.js';
export { defaultUplinkOptions, uplinkSchema, resolveUplinkOptions, type UplinkOptions, type ResolvedUplink } from './options.js';
import { Uplink, type UplinkDeps } from './uplink.js';
import type { ResolvedUplink } from './options.js';

/** Starts the uplink when one is configured (null = none: the node is unchanged). */
export async function startUplink(deps: UplinkDeps, options: ResolvedUplink | null): Promise<Uplink | null> {
  return options ? Uplink.start(deps, options) : null;
}
