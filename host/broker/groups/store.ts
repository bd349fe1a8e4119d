// The coordinator's durable side: the compacted internal topic `__consumer_offsets` as a
// CompactedTable (host/broker/compacted-table.ts) keyed by offset-commit and group-metadata
// keys (record layout: records.ts). The table replays the topic on open through the one
// cursor, writes with acks=all through the broker's one append path, skips and counts records
// that do not decode, and holds at most maxCommittedOffsets + maxGroups keys (one per committed
// partition, one per group).
//
// Ordering: each group's writes go through one promise chain in the coordinator, so they reach
// the log in the order the coordinator issued them and replay (last value per key wins)
// rebuilds the state the clients were told about. Different groups write concurrently (the
// broker's group commit shares their fsyncs).
import type { BrokerApi } from '../api.js';
import type { Logger } from '../../logging.js';
import type { MetricsRegistry } from '../../metrics/registry.js';
import { CompactedTable, type TableCodec } from '../compacted-table.js';
import {
  decodeGroupValue,
  decodeKey,
  decodeOffsetValue,
  encodeGroupKey,
  encodeGroupValue,
  encodeOffsetKey,
  encodeOffsetValue,
  type GroupValue,
  type OffsetValue,
  type RecordKey,
} from './records.js';

export const OFFSETS_TOPIC = '__consumer_offsets';

export type OffsetsTableValue = OffsetValue | GroupValue;
export type OffsetsTable = CompactedTable<RecordKey, OffsetsTableValue>;
/** One change to the table: a value, or null for a tombstone. */
export type OffsetsChange = { key: RecordKey; value: OffsetsTableValue | null };

/** Keys and values of `__consumer_offsets`, by the key's kind (Kafka's own layout, records.ts). */
export const offsetsCodec: TableCodec<RecordKey, OffsetsTableValue> = {
  encodeKey: (k) => (k.kind === 'offset' ? encodeOffsetKey(k.group, k.topic, k.partition) : encodeGroupKey(k.group)),
  decodeKey,
  encodeValue: (v, k) => (k.kind === 'offset' ? encodeOffsetValue(v as OffsetValue) : encodeGroupValue(v as GroupValue)),
  decodeValue: (b, k) => (k.kind === 'offset' ? decodeOffsetValue(b) : decodeGroupValue(b)),
};

export interface OffsetsTableOptions {
  partitions: number;
  segmentBytes: number;
  maxMessageBytes: number;
  readBytes: number;
  maxEntries: number;
}

export function offsetsTable(broker: BrokerApi, options: OffsetsTableOptions, deps: { logger: Logger; metrics?: MetricsRegistry }): OffsetsTable {
  return new CompactedTable(
    broker,
    offsetsCodec,
    {
      topic: OFFSETS_TOPIC,
      partitions: options.partitions,
      topicConfig: { 'segment.bytes': options.segmentBytes, 'max.message.bytes': options.maxMessageBytes, 'retention.ms': -1 },
      maxEntries: options.maxEntries,
      maxEntriesSetting: 'groups.maxCommittedOffsets + groups.maxGroups',
      readBytes: options.readBytes,
      clientId: 'group-coordinator',
    },
    deps,
  );
}
