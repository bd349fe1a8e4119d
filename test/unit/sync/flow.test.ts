// Purpose: the uplink's flow control alone — the token bucket holds a stream of batches to its
// rate (within timer tolerance) with the burst let through at once and a batch larger than the
// burst sent whole, an abort releases a waiter; the priority gate holds a class while a higher one
// is busy, lets it go when that one is idle, and never holds the highest class.
import t from 'tap';
import { PriorityGate, TokenBucket } from '../../../host/sync/flow.js';

t.test('token bucket: 20 × 20 000 bytes at 100 000 B/s with a 20 000-byte burst take 3.8 s ± 15%', async (t) => {
  const bucket = new TokenBucket(100_000, 20_000);
  const signal = new AbortController().signal;
  const started = performance.now();
  for (let i = 0; i < 20; i++) await bucket.take(20_000, signal);
  const s = (performance.now() - started) / 1000;
  // The first batch is the burst; the other 19 × 20 000 bytes need 3.8 s of tokens.
  t.ok(s > 3.8 * 0.85 && s < 3.8 * 1.15, `took ${s.toFixed(2)} s`);
});

t.test('token bucket: a batch larger than the burst goes whole, its debt delays the next', async (t) => {
  const bucket = new TokenBucket(100_000, 10_000);
  const signal = new AbortController().signal;
  const started = performance.now();
  await bucket.take(50_000, signal);
  const first = performance.now() - started;
  await bucket.take(1_000, signal);
  const second = performance.now() - started;
  t.ok(first < 50, `the large batch went at once (${first.toFixed(0)} ms)`);
  // Balance after it: 10 000 − 50 000 = −40 000; 1 000 more needs 41 000 tokens = 410 ms.
  t.ok(second > 410 * 0.85 && second < 410 * 1.3, `the next waited out the debt (${second.toFixed(0)} ms)`);
});

t.test('token bucket: an abort releases a waiter', async (t) => {
  const bucket = new TokenBucket(1_000, 1_000);
  const ac = new AbortController();
  await bucket.take(1_000, ac.signal);
  const started = performance.now();
  setTimeout(() => ac.abort(), 50);
  await bucket.take(1_000, ac.signal); // would need 1 s
  t.ok(performance.now() - started < 500, 'released by the abort');
});

t.test('priority gate: classes by first matching pattern; a lower class waits for a busy higher one', async (t) => {
  const gate = new PriorityGate(['alarms', 'sensors.*']);
  t.same([gate.classOf('alarms'), gate.classOf('sensors.temp'), gate.classOf('logs')], [0, 1, 2]);
  const signal = new AbortController().signal;
  gate.setBusy('alarms/0', 0, true);
  gate.setBusy('sensors.temp/0', 1, true);
  await gate.turn(0, signal); // the highest class is never held
  t.ok(gate.held(1) && gate.held(2), 'classes 1 and 2 held while alarms is busy');
  let low = false;
  const waiting = gate.turn(2, signal).then(() => (low = true));
  let mid = false;
  const waitingMid = gate.turn(1, signal).then(() => (mid = true));
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(mid || low, 'both wait');
  gate.setBusy('alarms/0', 0, false);
  await waitingMid;
  t.ok(mid, 'class 1 goes once alarms is idle');
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(low, 'class 2 still waits: class 1 is busy');
  gate.setBusy('sensors.temp/0', 1, false);
  await waiting;
  t.ok(low, 'class 2 goes last');
});

t.test('byte bound: holders past the bound wait for a release; one item larger than the bound passes alone', async (t) => {
  const { ByteBound } = await import('../../../host/sync/flow.js');
  const bound = new ByteBound(1000);
  const signal = new AbortController().signal;
  await bound.acquire(600, signal);
  await bound.acquire(400, signal); // exactly the bound
  t.equal(bound.held, 1000);
  let third = false;
  const waiting = bound.acquire(1, signal).then(() => (third = true));
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(third, 'one byte over the bound waits');
  bound.release(600);
  await waiting;
  t.equal(bound.held, 401, 'goes once bytes were released');
  bound.release(401);
  await bound.acquire(5000, signal);
  t.equal(bound.held, 5000, 'an item larger than the bound passes when nothing is held');
});
