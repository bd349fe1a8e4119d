// The transaction APIs the client speaks toward a transaction coordinator (the server side is not
// built: Tributary refuses transactional ids), written from Kafka's JSON message definitions.
//
// AddPartitionsToTxn (key 24), client versions 0–3; flexible from v3.
//   v0: transactional_id, producer_id int64, producer_epoch int16, topics[name, partitions[int32]]
//       → throttle_time_ms, results[name, results[partition_index int32, error_code int16]]
//   v1: same (the coordinator may answer CONCURRENT_TRANSACTIONS while the last commit completes)
//   v2: same   v3: flexible
//   v4: batched per transaction (Transactions V2 / KIP-890's broker side): not spoken
// EndTxn (key 26), client versions 0–3; flexible from v3.
//   v0: transactional_id, producer_id int64, producer_epoch int16, committed bool
//       → throttle_time_ms, error_code
//   v1, v2: same   v3: flexible
//   v5 (KIP-890, Transactions V2): an epoch bump per commit: not spoken
import { arr, f, type Schema } from '../protocol/schema.js';

const addPartitionsRequest: Schema = [
  f('transactionalId', 'string', '0+'),
  f('producerId', 'int64', '0+'),
  f('producerEpoch', 'int16', '0+'),
  arr('topics', '0+', [f('name', 'string', '0+'), arr('partitions', '0+', 'int32')]),
];
const addPartitionsResponse: Schema = [
  f('throttleTimeMs', 'int32', '0+'),
  arr('results', '0+', [f('name', 'string', '0+'), arr('results', '0+', [f('partitionIndex', 'int32', '0+'), f('errorCode', 'int16', '0+')])]),
];

const endTxnRequest: Schema = [f('transactionalId', 'string', '0+'), f('producerId', 'int64', '0+'), f('producerEpoch', 'int16', '0+'), f('committed', 'bool', '0+')];
const endTxnResponse: Schema = [f('throttleTimeMs', 'int32', '0+'), f('errorCode', 'int16', '0+')];

// Shaped as apis.ts's ClientApi (structurally: apis.ts imports this file, not the other way round).
export const addPartitionsToTxn = { key: 24, name: 'AddPartitionsToTxn', minVersion: 0, maxVersion: 3, flexibleFrom: 3, request: addPartitionsRequest, response: addPartitionsResponse };
export const endTxn = { key: 26, name: 'EndTxn', minVersion: 0, maxVersion: 3, flexibleFrom: 3, request: endTxnRequest, response: endTxnResponse };
