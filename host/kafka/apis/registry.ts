// The Kafka listener's API table, with each handler's module imported at the first request of
// its key (issue 14's footprint: the ~30 handler modules, their schemas and what they import are
// ~0.5 MiB of heap that a gateway nobody speaks Kafka to never needs). ApiVersions is the one
// handler loaded with the listener: every client asks it first, and the listener answers an
// unsupported version of it with its schema.
//
// Each entry declares the range ApiVersions advertises and the listener checks before loading
// (an unsupported version is refused without loading anything); a unit test checks every
// declaration against its handler (test/unit/kafka/api-registry.test.ts), so the two cannot drift.
// The full eager table (tests, tools) stays in ./index.ts.
//
// A module that fails to load is the listener's to report (host/kafka/server.ts): logged with the
// module and the cause, and the request answered with an error; the node keeps running.
import type { ApiEntry, ApiHandler, LazyApi } from './types.js';
import { apiVersions } from './api-versions.js';

function lazy(apiKey: number, name: string, minVersion: number, maxVersion: number, module: string, load: () => Promise<ApiHandler>): LazyApi {
  return { apiKey, name, minVersion, maxVersion, module, load };
}

const entries: ApiEntry[] = [
  apiVersions,
  lazy(0, 'Produce', 3, 9, 'produce.js', async () => (await import('./produce.js')).produce),
  lazy(1, 'Fetch', 4, 12, 'fetch.js', async () => (await import('./fetch.js')).fetch),
  lazy(2, 'ListOffsets', 1, 7, 'list-offsets.js', async () => (await import('./list-offsets.js')).listOffsets),
  lazy(3, 'Metadata', 0, 12, 'metadata.js', async () => (await import('./metadata.js')).metadata),
  lazy(19, 'CreateTopics', 2, 7, 'create-topics.js', async () => (await import('./create-topics.js')).createTopics),
  lazy(20, 'DeleteTopics', 1, 6, 'delete-topics.js', async () => (await import('./delete-topics.js')).deleteTopics),
  lazy(22, 'InitProducerId', 0, 4, 'init-producer-id.js', async () => (await import('./init-producer-id.js')).initProducerId),
  lazy(32, 'DescribeConfigs', 1, 4, 'describe-configs.js', async () => (await import('./describe-configs.js')).describeConfigs),
  lazy(37, 'CreatePartitions', 0, 3, 'create-partitions.js', async () => (await import('./create-partitions.js')).createPartitions),
  lazy(33, 'AlterConfigs', 0, 2, 'alter-configs.js', async () => (await import('./alter-configs.js')).alterConfigs),
  lazy(44, 'IncrementalAlterConfigs', 0, 1, 'incremental-alter-configs.js', async () => (await import('./incremental-alter-configs.js')).incrementalAlterConfigs),
  lazy(60, 'DescribeCluster', 0, 1, 'describe-cluster.js', async () => (await import('./describe-cluster.js')).describeCluster),
  lazy(23, 'OffsetForLeaderEpoch', 2, 4, 'offset-for-leader-epoch.js', async () => (await import('./offset-for-leader-epoch.js')).offsetForLeaderEpoch),
  lazy(17, 'SaslHandshake', 0, 1, 'sasl-handshake.js', async () => (await import('./sasl-handshake.js')).saslHandshake),
  lazy(36, 'SaslAuthenticate', 0, 2, 'sasl-authenticate.js', async () => (await import('./sasl-authenticate.js')).saslAuthenticate),
  lazy(29, 'DescribeAcls', 1, 3, 'acls.js', async () => (await import('./acls.js')).describeAcls),
  lazy(30, 'CreateAcls', 1, 3, 'acls.js', async () => (await import('./acls.js')).createAcls),
  lazy(31, 'DeleteAcls', 1, 3, 'acls.js', async () => (await import('./acls.js')).deleteAcls),
  lazy(50, 'DescribeUserScramCredentials', 0, 0, 'scram-credentials.js', async () => (await import('./scram-credentials.js')).describeUserScramCredentials),
  lazy(51, 'AlterUserScramCredentials', 0, 0, 'scram-credentials.js', async () => (await import('./scram-credentials.js')).alterUserScramCredentials),
  lazy(10, 'FindCoordinator', 0, 4, 'groups/find-coordinator.js', async () => (await import('./groups/find-coordinator.js')).findCoordinator),
  lazy(11, 'JoinGroup', 0, 9, 'groups/join-group.js', async () => (await import('./groups/join-group.js')).joinGroup),
  lazy(14, 'SyncGroup', 0, 5, 'groups/sync-group.js', async () => (await import('./groups/sync-group.js')).syncGroup),
  lazy(12, 'Heartbeat', 0, 4, 'groups/heartbeat.js', async () => (await import('./groups/heartbeat.js')).heartbeat),
  lazy(13, 'LeaveGroup', 0, 5, 'groups/leave-group.js', async () => (await import('./groups/leave-group.js')).leaveGroup),
  lazy(8, 'OffsetCommit', 2, 8, 'groups/offset-commit.js', async () => (await import('./groups/offset-commit.js')).offsetCommit),
  lazy(9, 'OffsetFetch', 1, 8, 'groups/offset-fetch.js', async () => (await import('./groups/offset-fetch.js')).offsetFetch),
  lazy(16, 'ListGroups', 0, 4, 'groups/list-groups.js', async () => (await import('./groups/list-groups.js')).listGroups),
  lazy(15, 'DescribeGroups', 0, 5, 'groups/describe-groups.js', async () => (await import('./groups/describe-groups.js')).describeGroups),
  lazy(42, 'DeleteGroups', 0, 2, 'groups/delete-groups.js', async () => (await import('./groups/delete-groups.js')).deleteGroups),
];

/** Every API the listener answers, by key: ApiVersions loaded, the rest at first use. */
export const apiRegistry: ReadonlyMap<number, ApiEntry> = new Map(entries.map((e) => [e.apiKey, e]));
