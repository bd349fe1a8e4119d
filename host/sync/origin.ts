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
import type { DecodedRecord, RecordInput } from '../core/index.js';
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

/**
 * Scans the target partition backwards in growing windows (256, 512, ... records) until a
 * window holds a record of `origin`, the log start is reached, or `recordsMax` were scanned.
 */
export async function readBack(client: KafkaClient, topic: string, partition: number, origin: Origin, options: { maxBytes: number; recordsMax: number }): Promise<ReadBackResult> {
  const end = await client.listOffset(topic, partition, -1);
  const start = await client.listOffset(topic, partition, -2);
  let to = end;
  let window = INITIAL_WINDOW;
  let scanned = 0;
  while (to > start) {
    const from = Math.max(start, to - window, end - options.recordsMax);
    let found = -1;
    let at = from;
    while (at < to) {
      const before = at;
      const r = await client.fetchBatches(topic, partition, at, { maxBytes: options.maxBytes, maxWaitMs: 0 });
      if (r.batches.length === 0) break; // nothing more readable (the end moved back, or an empty read)
      for (const b of r.batches) {
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
    if (scanned >= options.recordsMax) return { lastOriginOffset: -1, scanned, complete: false, targetEndOffset: end };
    to = from;
    window *= 2;
  }
  return { lastOriginOffset: -1, scanned, complete: true, targetEndOffset: end };
}
