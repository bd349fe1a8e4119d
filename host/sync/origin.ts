// Origin headers and the read-back that makes the uplink exactly-once without trusting the
// target's producer-state memory.
//
// Every forwarded record carries four headers (UTF-8 text values), so any reader can trace it
// and the uplink can find, in the target itself, how far a source partition got:
//   tributary.origin.site        the site that forwarded it (uplink.site)
//   tributary.origin.topic       the source topic
//   tributary.origin.partition   the source partition (decimal)
//   tributary.origin.offset      the record's offset in the source partition (decimal)
// A record that already carries this site's origin is never forwarded again (a record that came
// back from the centre, e.g. through a mirror): that is the loop prevention.
//
// Read-back: the uplink forwards a source partition in offset order into one target partition,
// so the records of (site, topic, partition) appear in the target in increasing origin offset.
// The last one found, scanning from the target's end backwards, is therefore the highest origin
// offset the target holds, and the source resumes right after it.
import { decodeBatches, type DecodedBatch, type DecodedRecord, type RecordInput } from '../core/index.js';
import type { BrokerApi, TopicPartition } from '../broker/api.js';
import type { KafkaClient } from '../kafka/client/client.js';

export const ORIGIN_SITE = 'tributary.origin.site';
export const ORIGIN_TOPIC = 'tributary.origin.topic';
export const ORIGIN_PARTITION = 'tributary.origin.partition';
export const ORIGIN_OFFSET = 'tributary.origin.offset';

export interface Origin {
  site: string;
  topic: string;
  partition: number;
}

const utf8 = new TextDecoder();
const enc = (s: string) => Buffer.from(s, 'utf8');

function header(headers: ReadonlyArray<{ key: string; value: Uint8Array | null }>, key: string): string | null {
  for (let i = headers.length - 1; i >= 0; i--) {
    const h = headers[i];
    if (h.key === key) return h.value ? utf8.decode(h.value) : null;
  }
  return null;
}

/** True when the record was forwarded by `site` before (it must not go round again). */
export function carriesOrigin(record: DecodedRecord, site: string): boolean {
  return header(record.headers, ORIGIN_SITE) === site;
}

/** The record as forwarded: its key, value, timestamp and headers, plus the four origin headers. */
export function withOrigin(record: DecodedRecord, origin: Origin): RecordInput {
  return {
    key: record.key,
    value: record.value,
    timestampMs: record.timestampMs,
    headers: [
      ...record.headers,
      { key: ORIGIN_SITE, value: enc(origin.site) },
      { key: ORIGIN_TOPIC, value: enc(origin.topic) },
      { key: ORIGIN_PARTITION, value: enc(String(origin.partition)) },
      { key: ORIGIN_OFFSET, value: enc(String(record.offset)) },
    ],
  };
}

/**
 * Transactions mode's checkpoint record (written in the same transaction as the data it covers):
 * key `<site>/<topic>/<partition>`, value the next source offset (decimal), and the origin headers
 * with offset = next − 1, so the same backwards scan (`readBack`) finds the latest committed one.
 */
export function checkpointRecord(origin: Origin, nextOffset: number): RecordInput {
  return {
    key: enc(`${origin.site}/${origin.topic}/${origin.partition}`),
    value: enc(String(nextOffset)),
    headers: [
      { key: ORIGIN_SITE, value: enc(origin.site) },
      { key: ORIGIN_TOPIC, value: enc(origin.topic) },
      { key: ORIGIN_PARTITION, value: enc(String(origin.partition)) },
      { key: ORIGIN_OFFSET, value: enc(String(nextOffset - 1)) },
    ],
  };
}

/** The origin offset of a record forwarded from `origin`, or -1 for any other record. */
export function originOffset(record: DecodedRecord, origin: Origin): number {
  if (header(record.headers, ORIGIN_SITE) !== origin.site) return -1;
  if (header(record.headers, ORIGIN_TOPIC) !== origin.topic) return -1;
  if (header(record.headers, ORIGIN_PARTITION) !== String(origin.partition)) return -1;
  const offset = Number(header(record.headers, ORIGIN_OFFSET));
  return Number.isSafeInteger(offset) && offset >= 0 ? offset : -1;
}

export interface ReadBackResult {
  /** Highest origin offset of `origin` in the target partition; -1 when none was found. */
  lastOriginOffset: number;
  /** Target records scanned. */
  scanned: number;
  /** True when the scan reached the target's log start; false when readBackRecordsMax stopped it first. */
  complete: boolean;
  /** The target partition's end offset when the scan started. */
  targetEndOffset: number;
}

const INITIAL_WINDOW = 256;

/** What a backwards scan needs of a partition: its bounds and whole decoded batches from an offset. */
export interface TailReader {
  /** Log start and end (the next offset) of the partition. */
  bounds(): Promise<{ start: number; end: number }>;
  /** Whole batches from `offset` on (the first may start below it), at most one bounded read. */
  batches(offset: number): Promise<DecodedBatch[]>;
}

/** The target partition, over the Kafka client (ListOffsets, Fetch). */
export function targetTail(client: KafkaClient, topic: string, partition: number, maxBytes: number): TailReader {
  return {
    bounds: async () => ({ end: await client.listOffset(topic, partition, -1), start: await client.listOffset(topic, partition, -2) }),
    batches: async (offset) => (await client.fetchBatches(topic, partition, offset, { maxBytes, maxWaitMs: 0 })).batches,
  };
}

/** A local partition, over the broker's one read path (committed isolation). */
export function localTail(broker: BrokerApi, tp: TopicPartition, maxBytes: number): TailReader {
  return {
    bounds: async () => {
      const o = broker.offsets(tp);
      return { start: o.logStartOffset, end: o.highWatermark };
    },
    batches: async (offset) => {
      const r = await broker.read(tp, offset, { maxBytes, isolation: 'committed' });
      return r.records.byteLength > 0 ? decodeBatches(r.records, { partialTail: 'ignore' }).filter((b) => !b.header.isControl) : [];
    },
  };
}

/**
 * Scans the target partition backwards in growing windows (256, 512, ... records) until a
 * window holds a record of `origin`, the log start is reached, or `recordsMax` were scanned.
 */
export async function readBack(client: KafkaClient, topic: string, partition: number, origin: Origin, options: { maxBytes: number; recordsMax: number }): Promise<ReadBackResult> {
  return scanBack(targetTail(client, topic, partition, options.maxBytes), origin, options.recordsMax);
}

/** The same scan over any partition (the downlink reads its local partitions back with it). */
export async function scanBack(reader: TailReader, origin: Origin, recordsMax: number): Promise<ReadBackResult> {
  const { start, end } = await reader.bounds();
  let to = end;
  let window = INITIAL_WINDOW;
  let scanned = 0;
  while (to > start) {
    const from = Math.max(start, to - window, end - recordsMax);
    let found = -1;
    let at = from;
    while (at < to) {
      const before = at;
      const batches = await reader.batches(at);
      if (batches.length === 0) break; // nothing more readable (the end moved back, or an empty read)
      for (const b of batches) {
        for (const rec of b.records) {
          if (rec.offset < at || rec.offset >= to) continue;
          const o = originOffset(rec, origin);
          if (o > found) found = o;
        }
        at = Math.max(at, b.header.baseOffset + b.header.lastOffsetDelta + 1);
      }
      if (at === before) break; // no progress: every batch ended below the position (never loop on it)
    }
    scanned += to - from;
    if (found >= 0) return { lastOriginOffset: found, scanned, complete: true, targetEndOffset: end };
    if (from <= start) break;
    if (scanned >= recordsMax) return { lastOriginOffset: -1, scanned, complete: false, targetEndOffset: end };
    to = from;
    window *= 2;
  }
  return { lastOriginOffset: -1, scanned, complete: true, targetEndOffset: end };
}
