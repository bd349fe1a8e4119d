// Purpose: newest-first's per-range read-back alone (host/sync/backfill.ts) over a target held in
// memory: each range's highest origin offset is found wherever the ranges interleave; a record
// below the backfill's start proves a range not yet found is absent (complete), while the
// readBackRecordsMax bound stops the scan incomplete; other sites' records are ignored.
import t from 'tap';
import { drainOrderOf, scanBackSplit } from '../../../host/sync/backfill.js';
import type { TailReader } from '../../../host/sync/origin.js';
import { topicMatches } from '../../../host/sync/options.js';

const origin = { site: 'edge1', topic: 'telemetry', partition: 0 };
const enc = (s: string) => Buffer.from(s);

/** A target partition whose record i carries origin offset `origins[i]` (null: another writer's record), one record per batch. */
function target(origins: Array<number | null>): TailReader {
  const records = origins.map((o, offset) => ({
    offset,
    timestampMs: 0,
    key: null,
    value: null,
    headers:
      o === null
        ? [{ key: 'tributary.origin.site', value: enc('other') }]
        : [
            { key: 'tributary.origin.site', value: enc('edge1') },
            { key: 'tributary.origin.topic', value: enc('telemetry') },
            { key: 'tributary.origin.partition', value: enc('0') },
            { key: 'tributary.origin.offset', value: enc(String(o)) },
          ],
  }));
  return {
    bounds: async () => ({ start: 0, end: records.length }),
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    batches: async (offset) => records.slice(offset, offset + 50).map((r) => ({ header: { baseOffset: r.offset, lastOffsetDelta: 0 }, records: [r] }) as any),
  };
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

t.test('split read-back: the highest of each range, wherever they interleave', async (t) => {
  // Before the split 0..99 (in order); split S = 1000, P = 100; head 1000..1399, backfill 100..299, head 1400..1449.
  const r = await scanBackSplit(target([...range(0, 100), ...range(1000, 1400), ...range(100, 300), ...range(1400, 1450)]), origin, { from: 100, split: 1000 }, 1_000_000);
  t.same([r.lastHead, r.lastBackfill, r.complete], [1449, 299, true]);
  const bfLast = await scanBackSplit(target([...range(0, 100), ...range(1000, 1400), ...range(100, 300)]), origin, { from: 100, split: 1000 }, 1_000_000);
  t.same([bfLast.lastHead, bfLast.lastBackfill], [1399, 299], 'the backfill at the tail: the head found behind it');
});

t.test('split read-back: a record below the backfill start proves the rest absent', async (t) => {
  const none = await scanBackSplit(target([...range(0, 100), null, null]), origin, { from: 100, split: 1000 }, 1_000_000);
  t.same([none.lastHead, none.lastBackfill, none.complete], [-1, -1, true], 'killed right after the split was saved: neither range sent anything');
  const headOnly = await scanBackSplit(target([...range(0, 100), ...range(1000, 1010)]), origin, { from: 100, split: 1000 }, 1_000_000);
  t.same([headOnly.lastHead, headOnly.lastBackfill, headOnly.complete], [1009, -1, true], 'mid-head: no backfill yet, proven');
  const empty = await scanBackSplit(target([]), origin, { from: 0, split: 10 }, 1_000_000);
  t.same([empty.lastHead, empty.lastBackfill, empty.complete], [-1, -1, true], 'an empty target');
});

t.test('split read-back: readBackRecordsMax stops it incomplete (the local checkpoints decide)', async (t) => {
  // 2000 records of other writers after the head: the backfill's last is out of reach.
  const r = await scanBackSplit(target([...range(0, 100), ...range(100, 150), ...range(1000, 1005), ...Array.from({ length: 2000 }, () => null)]), origin, { from: 100, split: 1000 }, 1000);
  t.same([r.lastHead, r.lastBackfill, r.complete], [-1, -1, false]);
  t.ok(r.scanned >= 1000, `scanned ${r.scanned}`);
});

t.test('drain order: first matching pattern, default oldest-first', async (t) => {
  const rules = [{ pattern: 'telemetry.*', order: 'newest-first' as const }, { pattern: 'telemetry.raw', order: 'oldest-first' as const }];
  const m = (p: string, topic: string) => topicMatches([p], topic);
  t.same([drainOrderOf('telemetry.raw', rules, m), drainOrderOf('alarms', rules, m)], ['newest-first', 'oldest-first']);
});
