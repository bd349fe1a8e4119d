// The start-up memory budget: the most memory the node's bounded queues, buffers and caches may
// hold at once, item by item, from the configured limits. Logged in one line at start; above
// `node.memoryBudgetBytes` the node refuses to start and names the biggest items, so a config
// that could exhaust a 1 GB Pi is caught on the bench, not in the cabinet.
//
// Items are node-wide bounds (a total cap, or a per-thing bound times the cap on the number of
// things). Bounds that hold per connection or per partition without a node-wide total are listed
// apart (`perConnection`, `perPartition`) with their worst case, and not added: their products
// (e.g. 1,024 Kafka connections × 8 MiB in flight) describe no reachable state on one Pi, and a
// node-wide cap for each is a follow-up of the doors.
//
// The uplink and the cluster count only when configured (their keys are 0 otherwise): the
// uplink's batches in flight across the link, the metadata quorum's send queue toward each
// other voter, and the replica fetch answers held or awaited at once (one fetcher per leader node
// followed, each fetch reserving its largest answer, cluster.replicaFetchResponseBytesMax + 1 MiB,
// from cluster.replicaFetchBytesTotalMax before it is sent: host/cluster/fetch-budget.ts).
import { ConfigError } from './loader.js';

export interface BudgetItem {
  /** The key (or `a × b` keys) the bytes come from. */
  key: string;
  bytes: number;
}

export interface BudgetTerm {
  /** Keys multiplied together (a single key for a total); a number stands for a fixed per-item size. */
  of: ReadonlyArray<string | number>;
  /** Per connection / per partition: listed, not added to the total. */
  apart?: 'perConnection' | 'perPartition';
}

/** Bytes a committed offset costs in memory (groups/options.ts: "~200 bytes"). */
const COMMITTED_OFFSET_BYTES = 200;
/** Bytes one parsed schema (compiled ajv validator or avsc type) may cost: ~15 KiB measured for 10 fields, doubled. */
const PARSED_SCHEMA_BYTES = 32 * 1024;

export const BUDGET_TERMS: readonly BudgetTerm[] = [
  { of: ['broker.maxPendingAppendBytes'] },
  { of: ['broker.log.compactionMapBytes'] },
  { of: ['groups.maxCommittedOffsets', COMMITTED_OFFSET_BYTES] },
  { of: ['mqtt.pendingBytesTotalMax'] },
  { of: ['mqtt.deliveriesQueuedMax', 'mqtt.packetBytesMax'] },
  { of: ['mqtt.tailTopicsMax', 'mqtt.tailReadBytesMax'] },
  { of: ['mqtt.sharedMembersMax', 'mqtt.sharedReadBytesMax'] },
  { of: ['http.maxConcurrentCatchUps', 'http.readBytesMax'] },
  { of: ['http.connectionsMax', '(http.sendBufferPauseBytes + http.frameBytesMax)'] },
  { of: ['schemas.requestsInFlightMax', 'schemas.requestBytesMax'] },
  { of: ['schemas.parsedSchemasCachedMax', PARSED_SCHEMA_BYTES] },
  { of: ['kafka.connectionsMax', 'kafka.maxInFlightBytesPerConnection'], apart: 'perConnection' },
  { of: ['mqtt.connectionsMax', 'mqtt.outgoingBytesMax'], apart: 'perConnection' },
  // Batches built and unanswered across the whole link (0 without an uplink).
  { of: ['uplink.inFlightBytesMax'] },
  // Raft frames waiting toward each other voter (0 on a single node).
  { of: ['(cluster.voters - 1)', 'cluster.sendQueueBytesMax'] },
  // Replica fetch answers, node-wide (0 on a single node): the sum over leader fetchers' answer bounds.
  { of: ['cluster.replicaFetchBytesTotalMax'] },
  { of: ['broker.maxPartitionsTotal', 'broker.log.indexCacheBytes'], apart: 'perPartition' },
  // The uplink's read and the batch it is building, and the downlink's fetch, per partition forwarded.
  { of: ['broker.maxPartitionsTotal', '(uplink.readBytesMax + uplink.batchBytesMax + uplink.downlinkFetchBytes)'], apart: 'perPartition' },
  // One inbound frame being read per inter-node connection (0 on a single node).
  { of: ['cluster.connectionsMax', 'cluster.frameBytesMax'], apart: 'perConnection' },
];

export interface Budget {
  totalBytes: number;
  items: BudgetItem[];
  perConnection: BudgetItem[];
  perPartition: BudgetItem[];
}

/** Evaluates the terms over the configured values (every key a term names must be in `values`). */
export function memoryBudget(values: Readonly<Record<string, number>>, terms: readonly BudgetTerm[] = BUDGET_TERMS): Budget {
  const out: Budget = { totalBytes: 0, items: [], perConnection: [], perPartition: [] };
  for (const term of terms) {
    let bytes = 1;
    for (const f of term.of) {
      const v = typeof f === 'number' ? f : values[f];
      if (v === undefined) throw new Error(`memory budget: no value for ${f}`); // a programming error: the node supplies every key
      bytes *= v;
    }
    const item = { key: term.of.join(' × '), bytes };
    if (term.apart) out[term.apart].push(item);
    else {
      out.items.push(item);
      out.totalBytes += bytes;
    }
  }
  out.items.sort((a, b) => b.bytes - a.bytes);
  return out;
}

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** Refuses a budget over the limit, naming the biggest items. */
export function checkBudget(budget: Budget, limitBytes: number, source: string): void {
  if (budget.totalBytes <= limitBytes) return;
  const biggest = budget.items
    .slice(0, 4)
    .map((i) => `${i.key} = ${mib(i.bytes)}`)
    .join(', ');
  throw new ConfigError(
    'node.memoryBudgetBytes',
    limitBytes,
    source,
    `the configured limits may hold ${mib(budget.totalBytes)} (${budget.totalBytes} bytes), more than this budget (${mib(limitBytes)}); biggest: ${biggest}. Lower those limits or raise node.memoryBudgetBytes on a device with more memory`,
  );
}
