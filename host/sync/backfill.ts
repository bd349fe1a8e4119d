// Newest-first drain (uplink.drainOrderTopics `pattern=newest-first`; docs/uplink.md, "Newest-first
// drain"): "skip ahead, then backfill", with the resume kept exact.
//
// A backlog exists when more than uplink.newestFirstRecords records wait at the head (log end −
// the next offset to send). It is looked at when the partition resumes and, while the link stays
// up, before every read (a backlog built under a bandwidth cap; the pipeline is settled first).
// With a backlog and no backfill pending the partition splits: S = log end − newestFirstRecords.
// The split and the backfill's start P (the next offset to send then) are written to the link state (`split:` and `backfill:` beside the
// checkpoints) and saved before any batch at or above S is sent. The head [S, …) is forwarded
// first and keeps following new appends; the backfill [P, S) goes when the head is caught up, one
// read at a time, the pipeline settled before and after each, so the batches in flight always
// belong to one range.
//
// Why the resume stays exact: within each range records are sent in order through one pipeline,
// and the target takes a prefix of what was sent, so in the target the records of each range
// appear in increasing origin offset. Records below P were all written before the split was saved
// (before any head or backfill batch), so scanning the target backwards (`scanBackSplit`), the
// first record ≥ S is the head's highest, the first in [P, S) the backfill's highest, and meeting
// a record below P proves that a range not yet found has nothing in the target. Batches in flight
// are settled against their own range's answer. The split is kept after the backfill ends until a
// head batch has been acknowledged after it: from then on the target's last record of the
// partition is again its highest, and the plain read-back is exact; dropping the split earlier
// would let a backfill record at the tail send the head again.
import { originOffset, type Origin, type TailReader } from './origin.js';

export type DrainOrder = 'oldest-first' | 'newest-first';

/** A pending (or finished but not yet retired) backfill: [from, split) below the head. */
export interface Backfill {
  /** Next backfill offset to send (starts at P). */
  next: number;
  /** S: the head starts here; the backfill ends here. */
  split: number;
  /** Backfill done and a head batch acknowledged after it: the split may be retired. */
  done: boolean;
}

export interface SplitScan {
  /** Highest origin offset ≥ split in the target (-1: none found). */
  lastHead: number;
  /** Highest origin offset in [from, split) in the target (-1: none found). */
  lastBackfill: number;
  scanned: number;
  /** True when the scan proved what it did not find is absent (a record below `from`, or the log start); false when recordsMax stopped it. */
  complete: boolean;
}

const INITIAL_WINDOW = 256;

/** Scans the target backwards in growing windows until both ranges' highest are found, a record below `from` is met, the log start is reached, or `recordsMax` were scanned. */
export async function scanBackSplit(reader: TailReader, origin: Origin, range: { from: number; split: number }, recordsMax: number): Promise<SplitScan> {
  const { start, end } = await reader.bounds();
  const found = { lastHead: -1, lastBackfill: -1, below: false };
  let to = end;
  let window = INITIAL_WINDOW;
  let scanned = 0;
  while (to > start) {
    const from = Math.max(start, to - window, end - recordsMax);
    await scanWindow(reader, origin, range, from, to, found);
    scanned += to - from;
    if ((found.lastHead >= 0 && found.lastBackfill >= 0) || found.below || from <= start) return { lastHead: found.lastHead, lastBackfill: found.lastBackfill, scanned, complete: true };
    if (scanned >= recordsMax) return { lastHead: found.lastHead, lastBackfill: found.lastBackfill, scanned, complete: false };
    to = from;
    window *= 2;
  }
  return { lastHead: found.lastHead, lastBackfill: found.lastBackfill, scanned, complete: true };
}

/** Reads [from, to) forward, noting per range the highest origin offset (the first windows found win: later windows are older). */
async function scanWindow(reader: TailReader, origin: Origin, range: { from: number; split: number }, from: number, to: number, found: { lastHead: number; lastBackfill: number; below: boolean }): Promise<void> {
  const seen = { head: -1, backfill: -1 };
  let at = from;
  while (at < to) {
    const before = at;
    const batches = await reader.batches(at);
    if (batches.length === 0) break;
    for (const b of batches) {
      for (const rec of b.records) {
        if (rec.offset < at || rec.offset >= to) continue;
        const o = originOffset(rec, origin);
        if (o < 0) continue;
        if (o >= range.split) seen.head = Math.max(seen.head, o);
        else if (o >= range.from) seen.backfill = Math.max(seen.backfill, o);
        else found.below = true;
      }
      at = Math.max(at, b.header.baseOffset + b.header.lastOffsetDelta + 1);
    }
    if (at === before) break;
  }
  if (found.lastHead < 0) found.lastHead = seen.head;
  if (found.lastBackfill < 0) found.lastBackfill = seen.backfill;
}

/** The drain order of a topic: the first uplink.drainOrderTopics entry whose pattern matches, else oldest-first. */
export function drainOrderOf(topic: string, rules: ReadonlyArray<{ pattern: string; order: DrainOrder }>, matches: (pattern: string, topic: string) => boolean): DrainOrder {
  return rules.find((r) => matches(r.pattern, topic))?.order ?? 'oldest-first';
}
