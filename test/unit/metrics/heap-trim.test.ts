// Purpose: the idle heap trim (host/metrics/heap-trim.ts) collects once after QUIET_INTERVALS
// quiet intervals, never while the event loop is busy, and again only after a busy spell; V8's
// real gc is reachable without a command-line flag and returns the young generation an idle
// process keeps committed; with gc exposed at start, the low-memory collection (and
// node:inspector) is asked for only when the plain collection left a fragmented heap.
import t from 'tap';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { escalatingCollector, exposeGc, FRAGMENTED_BYTES_MAX, startIdleHeapTrim, trimCollector, QUIET_INTERVALS } from '../../../host/metrics/heap-trim.js';
import { createLogger } from '../../../host/logging.js';
import { sleep } from '../../helpers/index.js';

const INTERVAL_MS = 100;
const logger = createLogger('silent');

/** Keeps the event loop busy (well above the quiet bound) for `ms`, in slices so timers still fire. */
async function busy(ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const slice = Date.now() + 20;
    while (Date.now() < slice);
    await new Promise((r) => setImmediate(r));
  }
}

t.test('heap trim: one collection after a quiet spell, none while busy, one more after busy → quiet', async (t) => {
  let calls = 0;
  const metrics = new MetricsRegistry();
  // Quiet below 50 %: busy() keeps the loop ~100 % busy, sleep() near 0 %, whatever tap does meanwhile.
  const trim = startIdleHeapTrim(INTERVAL_MS, { logger, metrics, gc: () => calls++, quietUtilization: 0.5 });
  t.teardown(() => trim.stop());
  await busy(INTERVAL_MS * (QUIET_INTERVALS + 3));
  t.equal(calls, 0, 'no collection while the event loop is busy');
  await sleep(INTERVAL_MS * (QUIET_INTERVALS + 2.5));
  t.equal(calls, 1, `one collection after ${QUIET_INTERVALS} quiet intervals`);
  await sleep(INTERVAL_MS * 5);
  t.equal(calls, 1, 'and no other while it stays quiet');
  await busy(INTERVAL_MS * 2.5);
  await sleep(INTERVAL_MS * (QUIET_INTERVALS + 2.5));
  t.equal(calls, 2, 'busy, then quiet again: one more');
  t.equal(trim.trims, 2);
  t.match(metrics.render(), /^tributary_heap_trims_total 2$/m, 'counted in /metrics');
});

t.test('heap trim: 0 turns it off; an unavailable gc is logged once and the trim stays off', async (t) => {
  let calls = 0;
  const off = startIdleHeapTrim(0, { logger, gc: () => calls++ });
  const warnings: unknown[][] = [];
  const recording = { warn: (...args: unknown[]) => warnings.push(args) } as unknown as typeof logger;
  const missing = startIdleHeapTrim(INTERVAL_MS, { logger: recording, gc: 'V8 did not expose gc' });
  await sleep(INTERVAL_MS * (QUIET_INTERVALS + 3));
  t.equal(calls, 0, 'interval 0: never');
  t.equal(off.trims + missing.trims, 0);
  t.match(warnings, [[{ setting: 'node.idleHeapTrimIntervalMs' }, /idle heap trim off: V8 did not expose gc/]]);
});

const youngGenerationBytes = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;

/** Grows the young generation: objects that survive scavenges make V8 enlarge it. */
function growYoungGeneration(): void {
  const keep: unknown[] = [];
  for (let i = 0; i < 400_000; i++) {
    keep.push({ i, s: `x${i}` });
    if (keep.length > 100_000) keep.splice(0, 50_000);
  }
  keep.length = 0;
}

t.test("heap trim: V8's gc is reachable without --expose-gc and shrinks a grown young generation", async (t) => {
  const gc = exposeGc();
  if (typeof gc === 'string') return t.fail(gc);
  growYoungGeneration();
  const grown = youngGenerationBytes();
  // V8 shrinks it in a collection that sees a low allocation rate over its 5 s window, measured
  // between collections: one now closes the burst's sample, the one after the quiet sleep sees
  // only the quiet (as the trim does after its quiet intervals).
  gc();
  await sleep(6_000);
  gc();
  const after = youngGenerationBytes();
  t.comment(`young generation ${grown / 1048576} MiB → ${after / 1048576} MiB`);
  t.ok(after < grown || grown <= 1048576, `the collection returned young-generation memory (${grown} → ${after} bytes)`);
});

t.test("heap trim: the trim's collection (V8's low-memory collection) returns a grown young generation at once", { timeout: 60_000 }, async (t) => {
  const collect = await trimCollector();
  if (typeof collect === 'string') return t.fail(collect);
  growYoungGeneration();
  const grown = youngGenerationBytes();
  // No quiet window first (V8's gc needs one, above): a low-memory collection shrinks regardless.
  await collect();
  const after = youngGenerationBytes();
  t.comment(`young generation ${grown / 1048576} MiB → ${after / 1048576} MiB, heap total ${(getHeapStatistics().total_heap_size / 1048576).toFixed(1)} MiB`);
  t.ok(grown > 1048576, 'the burst grew the young generation');
  t.ok(after <= 1048576, `the collection returned it at once (${grown} → ${after} bytes)`);
  // The session is gone: a second collection connects its own.
  await collect();
  t.pass('a second collection runs');
});

t.test('heap trim: with gc exposed, the low-memory collection is loaded and run only when gc() left more than the bound unused', async (t) => {
  const calls: string[] = [];
  let unused = 0;
  let loads = 0;
  const lowMemory = async () => {
    loads++;
    return () => {
      calls.push('low-memory');
    };
  };
  const collect = escalatingCollector(() => calls.push('gc'), 4096, () => unused, lowMemory);
  unused = 4096;
  await collect();
  t.same(calls, ['gc'], 'at the bound: the plain collection only');
  t.equal(loads, 0, 'and the inspector is not loaded');
  unused = 4097;
  await collect();
  t.same(calls, ['gc', 'gc', 'low-memory'], 'over the bound: the low-memory collection after it');
  await collect();
  t.same(calls, ['gc', 'gc', 'low-memory', 'gc', 'low-memory'], 'again');
  t.equal(loads, 1, 'loaded once');
  const none = escalatingCollector(() => calls.push('gc'), 0, () => 1, async () => undefined);
  await none();
  t.equal(calls.at(-1), 'gc', 'no inspector: the plain collection is the trim');
  t.ok(FRAGMENTED_BYTES_MAX > 1.8 * 1048576 + 1.4 * 1048576, 'the default bound is above an idle heap\'s floor plus the inspector\'s own cost');
});

t.test('heap trim: with gc exposed, a fragmented heap is escalated for real (the low-memory collection returns a grown young generation)', { timeout: 60_000 }, async (t) => {
  const gc = exposeGc();
  if (typeof gc === 'string') return t.fail(gc);
  // No quiet window: the plain collection keeps the grown young generation committed, so what it
  // leaves unused is over a 1-byte bound and the low-memory collection runs.
  growYoungGeneration();
  const grown = youngGenerationBytes();
  await escalatingCollector(gc, Number.MAX_SAFE_INTEGER)();
  const plain = youngGenerationBytes();
  await escalatingCollector(gc, 1)();
  const after = youngGenerationBytes();
  t.comment(`young generation ${grown / 1048576} MiB, after gc() ${plain / 1048576} MiB, after the escalation ${after / 1048576} MiB`);
  t.ok(plain > 1048576, 'gc() alone (bound not reached) kept the grown young generation');
  t.ok(after <= 1048576, `the escalation returned it at once (${plain} → ${after} bytes)`);
});
