// Purpose: a retention gap met again (the same resume point read back after each retry) is counted
// once (host/sync/noted-ranges.ts): only the parts of a range not noted before come back.
import t from 'tap';
import { NotedRanges } from '../../../host/sync/noted-ranges.js';

t.test('ranges noted once: repeats, overlaps, holes between, adjacency', { timeout: 5000 }, async (t) => {
  const n = new NotedRanges();
  t.same(n.add(40, 100), [[40, 100]], 'first time: all of it');
  t.same(n.add(40, 100), [], 'the same gap met again at the next resume: nothing new');
  t.same(n.add(40, 120), [[100, 120]], 'grown past its end: the new part only');
  t.same(n.add(10, 20), [[10, 20]], 'a range below (a newest-first backfill): counted');
  t.same(n.add(0, 130), [[0, 10], [20, 40], [120, 130]], 'spanning everything: only the holes');
  t.same(n.add(0, 130), [], 'all noted now');
  t.same(n.add(130, 131), [[130, 131]], 'adjacent: one record');
  t.same(n.add(5, 5), [], 'empty range');
});
