// Purpose: the liveness alarm's rule alone, on a fake clock: stalled exactly at the threshold
// (not one millisecond before), reported once per episode, cleared by progress or by the lag
// reaching 0, and never with the alarm off (0).
import t from 'tap';
import { StallWatch } from '../../../host/sync/stall.js';

function watch(thresholdMs: number) {
  let now = 1_000;
  const events: string[] = [];
  const w = new StallWatch(thresholdMs, { stalled: (ms, lag) => events.push(`stalled ${ms} ${lag}`), cleared: (ms) => events.push(`cleared ${ms}`) }, () => now);
  return { w, events, at: (ms: number) => (now = ms) };
}

t.test('stall watch: the boundary, once per episode, cleared by progress', async (t) => {
  const { w, events, at } = watch(60_000);
  t.equal(w.check('5/0', 10), false, 'first look: progress noted');
  at(1_000 + 59_999);
  t.equal(w.check('5/0', 10), false, '1 ms before the threshold: not stalled');
  at(1_000 + 60_000);
  t.equal(w.check('5/0', 10), true, 'at the threshold: stalled');
  at(1_000 + 90_000);
  t.equal(w.check('5/0', 12), true, 'still stalled');
  t.same(events, ['stalled 60000 10'], 'reported once');
  t.equal(w.stalledForSec(), 90, 'the episode counts from when forwarding stopped');
  at(1_000 + 95_000);
  t.equal(w.check('7/2', 3), false, 'progress clears it');
  t.same(events, ['stalled 60000 10', 'cleared 95000'], 'one cleared event');
  t.equal(w.stalledForSec(), 0);
  at(1_000 + 95_000 + 60_000);
  t.equal(w.check('7/2', 3), true, 'a second episode');
  t.equal(events.length, 3, 'reported again');
});

t.test('stall watch: no lag is never a stall; 0 = off', async (t) => {
  const idle = watch(1_000);
  idle.w.check('5/0', 0);
  idle.at(100_000);
  t.equal(idle.w.check('5/0', 0), false, 'caught up for 100 s: not stalled');
  const off = watch(0);
  off.w.check('5/0', 10);
  off.at(10_000_000);
  t.equal(off.w.check('5/0', 10), false, 'stallAlarmSec 0: never');
  t.same(off.events, []);
});
