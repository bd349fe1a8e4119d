// The APIs the client speaks, and at which versions. The request and response schemas are the
// server's own tables (host/kafka/apis/*.ts, written from Kafka's JSON message definitions): one
// schema per API serves both sides, so a field added for the server is spoken by the client too
// and the round-trip tests (test/unit/kafka/client-codec.test.ts) check one against the other.
//
// The version used on a connection is the highest both sides support: ours (the range below,
// at most the server table's) ∩ the peer's (its ApiVersions answer). Why these floors:
//   Produce ≥ 3         RecordBatch v2 (magic 2) is the only batch format we write
//   Fetch ≥ 4           RecordBatch v2 and last_stable_offset
//   ListOffsets ≥ 1     one offset per partition (v0's offset arrays are not spoken)
//   Metadata ≥ 1        null topics = all; v4+ lets us say "do not auto-create"
//   CreateTopics ≥ 2    the server table's floor
//   InitProducerId ≥ 0  idempotence without transactions
//   OffsetForLeaderEpoch ≥ 3  replica_id (a follower names itself; host/cluster's fetcher)
//   SaslHandshake = 1   v0 sends the tokens as raw frames outside Kafka's framing (pre-KIP-152)
//   SaslAuthenticate ≥ 0  the tokens in Kafka requests (after SaslHandshake v1)
//   DescribeConfigs ≥ 1, IncrementalAlterConfigs ≥ 0  the server tables' floors
import { produce } from '../apis/produce.js';
import { fetch } from '../apis/fetch.js';
import { listOffsets } from '../apis/list-offsets.js';
import { metadata } from '../apis/metadata.js';
import { apiVersions } from '../apis/api-versions.js';
import { createTopics } from '../apis/create-topics.js';
import { initProducerId } from '../apis/init-producer-id.js';
import { offsetForLeaderEpoch } from '../apis/offset-for-leader-epoch.js';
import { saslHandshake } from '../apis/sasl-handshake.js';
import { saslAuthenticate } from '../apis/sasl-authenticate.js';
import { findCoordinator } from '../apis/groups/find-coordinator.js';
import { describeConfigs } from '../apis/describe-configs.js';
import { incrementalAlterConfigs } from '../apis/incremental-alter-configs.js';
import { addPartitionsToTxn, endTxn } from './txn-apis.js';
import type { ApiHandler } from '../apis/types.js';
import type { Schema } from '../protocol/schema.js';

export interface ClientApi {
  readonly key: number;
  readonly name: string;
  readonly minVersion: number;
  readonly maxVersion: number;
  readonly flexibleFrom: number;
  readonly request: Schema;
  readonly response: Schema;
}

function fromTable(h: ApiHandler, minVersion = h.minVersion, maxVersion = h.maxVersion): ClientApi {
  if (minVersion < h.minVersion || maxVersion > h.maxVersion) throw new Error(`${h.name}: client range ${minVersion}-${maxVersion} is outside the schema's ${h.minVersion}-${h.maxVersion}`);
  return { key: h.apiKey, name: h.name, minVersion, maxVersion, flexibleFrom: h.flexibleFrom, request: h.request, response: h.response };
}

export const CLIENT_APIS = {
  produce: fromTable(produce, 3),
  fetch: fromTable(fetch, 4),
  listOffsets: fromTable(listOffsets, 1),
  metadata: fromTable(metadata, 1),
  apiVersions: fromTable(apiVersions, 0),
  createTopics: fromTable(createTopics, 2),
  initProducerId: fromTable(initProducerId, 0),
  offsetForLeaderEpoch: fromTable(offsetForLeaderEpoch, 3),
  saslHandshake: fromTable(saslHandshake, 1, 1),
  saslAuthenticate: fromTable(saslAuthenticate, 0),
  // v1–3: one key per request with key_type (1 = transaction); v4 batches keys (KIP-699), not needed for one transactional id.
  findCoordinator: fromTable(findCoordinator, 1, 3),
  addPartitionsToTxn,
  endTxn,
  // Topic configs of the uplink's checkpoint topic (host/kafka/client/topic-config.ts).
  describeConfigs: fromTable(describeConfigs),
  incrementalAlterConfigs: fromTable(incrementalAlterConfigs),
} as const;

export type ClientApiName = keyof typeof CLIENT_APIS;

/** Peer's ApiVersions answer: API key → its version range. */
export type PeerVersions = ReadonlyMap<number, { minVersion: number; maxVersion: number }>;

/** The highest version both sides speak, or -1 when the ranges do not meet (or the peer lacks the API). */
export function negotiate(api: ClientApi, peer: PeerVersions): number {
  const theirs = peer.get(api.key);
  if (!theirs) return -1;
  const v = Math.min(api.maxVersion, theirs.maxVersion);
  return v >= Math.max(api.minVersion, theirs.minVersion) ? v : -1;
}
