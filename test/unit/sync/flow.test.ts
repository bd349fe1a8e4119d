// Purpose: the uplink's flow control alone — the token bucket holds a stream of batches to its
// rate (within timer tolerance) with the burst let through at once and a batch larger than the
// burst sent whole, an abort releases a waiter; the priority gate holds a class while a higher one
// is busy, lets it go when that one is idle, and never holds the highest class.
import t from 'tap';
import { ByteBound, PriorityGate, TokenBucket } from '../../../host/sync/flow.js';
import { ReservedLane } from '../../../host/sync/lanes.js';

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

t.test('token bucket, reserved lane: a reserved take is served before the queue of the others', async (t) => {
  // 10 000 B/s, burst 10 000: five 10 000-byte batches of the others queue up (1 s of tokens each).
  const bucket = new TokenBucket(10_000, 10_000);
  const signal = new AbortController().signal;
  await bucket.take(10_000, signal); // the burst is spent
  const started = performance.now();
  const others: number[] = [];
  const queued = Array.from({ length: 5 }, () => bucket.take(10_000, signal).then(() => others.push(performance.now() - started)));
  await new Promise((r) => setTimeout(r, 50));
  await bucket.take(500, signal, true);
  const reservedMs = performance.now() - started;
  // Bound: the bucket holds 500 bytes 50 ms after the burst was spent — the reserved take waits
  // for its own bytes (≤ 500/10 000 s = 50 ms after the burst), not for the 5 s queue ahead.
  t.ok(reservedMs < 200, `the reserved take went after ${reservedMs.toFixed(0)} ms (the others' queue holds 5 s)`);
  t.equal(others.length, 0, 'none of the others went before it');
  await Promise.race([Promise.all(queued), new Promise((r) => setTimeout(r, 1200))]);
  t.ok(others.length >= 1, `the others go on after it (${others.length} within 1.2 s)`);
});

t.test('token bucket, reserved lane: a reserved take waits for the reserved ones ahead, and for the bucket', async (t) => {
  const bucket = new TokenBucket(10_000, 1_000);
  const signal = new AbortController().signal;
  await bucket.take(1_000, signal, true);
  const started = performance.now();
  await Promise.all([bucket.take(1_000, signal, true), bucket.take(1_000, signal, true)]);
  const ms = performance.now() - started;
  // 2 × 1 000 bytes at 10 000 B/s = 200 ms: the reserved lane is capped like everything else.
  t.ok(ms > 200 * 0.85 && ms < 200 * 1.5, `two reserved batches after the burst took ${ms.toFixed(0)} ms (200 ms of tokens)`);
});

t.test('reserved lane: others keep one batch in flight while a reserved partition is busy', async (t) => {
  const lane = new ReservedLane(['alarms', 'cmd.*']);
  t.same([lane.has('alarms'), lane.has('cmd.boiler'), lane.has('telemetry')], [true, true, false]);
  t.equal(new ReservedLane([]).has('alarms'), false, 'no patterns: no lane');
  t.same([lane.pipelineMax(false, 5), lane.pipelineMax(true, 5)], [5, 5], 'idle lane: everyone keeps the configured pipeline');
  lane.setBusy('alarms/0', true);
  t.same([lane.pipelineMax(false, 5), lane.pipelineMax(true, 5), lane.active()], [1, 5, true], 'busy lane: the others are held to one batch in flight');
  lane.setBusy('alarms/0', false);
  t.same([lane.pipelineMax(false, 5), lane.active()], [5, false], 'idle again: back to five');
});

t.test('byte bound: an urgent acquire is counted but never waits', async (t) => {
  const bound = new ByteBound(1_000);
  const signal = new AbortController().signal;
  await bound.acquire(900, signal);
  await bound.acquire(900, signal, true);
  t.equal(bound.held, 1_800, 'counted past the bound (the reserved lane\'s overshoot)');
  let waited = true;
  const p = bound.acquire(100, signal).then(() => (waited = false));
  await new Promise((r) => setTimeout(r, 20));
  t.ok(waited, 'the others still wait');
  bound.release(1_800);
  await p;
  t.equal(bound.held, 100);
});
