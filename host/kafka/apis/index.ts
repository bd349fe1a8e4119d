// Every Kafka API this listener answers, by key. ApiVersions advertises exactly this table.
//
// The group APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
// OffsetFetch, ListGroups, DescribeGroups, DeleteGroups) live in ./groups/ (owned by the
// consumer-groups work) and are registered through `groupApis` below.
import type { ApiHandler } from './types.js';
import { apiVersions } from './api-versions.js';
import { produce } from './produce.js';
import { fetch } from './fetch.js';
import { listOffsets } from './list-offsets.js';
import { metadata } from './metadata.js';
import { createTopics } from './create-topics.js';
import { deleteTopics } from './delete-topics.js';
import { createPartitions } from './create-partitions.js';
import { describeConfigs } from './describe-configs.js';
import { incrementalAlterConfigs } from './incremental-alter-configs.js';
import { alterConfigs } from './alter-configs.js';
import { initProducerId } from './init-producer-id.js';
import { describeCluster } from './describe-cluster.js';
import { offsetForLeaderEpoch } from './offset-for-leader-epoch.js';
import { groupApis } from './groups/index.js';
import { saslHandshake } from './sasl-handshake.js';
import { saslAuthenticate } from './sasl-authenticate.js';
import { createAcls, deleteAcls, describeAcls } from './acls.js';
import { alterUserScramCredentials, describeUserScramCredentials } from './scram-credentials.js';

const ownApis: ApiHandler[] = [
  produce,
  fetch,
  listOffsets,
  metadata,
  apiVersions,
  createTopics,
  deleteTopics,
  initProducerId,
  describeConfigs,
  createPartitions,
  alterConfigs,
  incrementalAlterConfigs,
  describeCluster,
  offsetForLeaderEpoch,
  saslHandshake,
  saslAuthenticate,
  describeAcls,
  createAcls,
  deleteAcls,
  describeUserScramCredentials,
  alterUserScramCredentials,
];

function buildTable(list: ApiHandler[]): Map<number, ApiHandler> {
  const table = new Map<number, ApiHandler>();
  for (const h of list) {
    if (table.has(h.apiKey)) throw new Error(`two handlers for Kafka API key ${h.apiKey} (${table.get(h.apiKey)!.name}, ${h.name})`);
    if (h.minVersion > h.maxVersion) throw new Error(`${h.name}: minVersion > maxVersion`);
    table.set(h.apiKey, h);
  }
  return table;
}

/** The registered handlers, keyed by API key. */
export const handlers: ReadonlyMap<number, ApiHandler> = buildTable([...ownApis, ...groupApis]);
