// Idle heap trim: one low-memory garbage collection when the node has gone quiet, so an idle broker
// gives back the memory its last burst of work left committed (issue 14's footprint,
// docs/performance.md#footprint).
//
// Why: V8 shrinks the young generation (two semi-spaces, 8 MiB committed with npm start's
// `--max-semi-space-size=4`) and releases old-space pages only inside a garbage collection that
// sees a low allocation rate, and its memory reducer, which would run one, is armed only by an
// earlier full collection. A node that goes quiet allocates almost nothing, so neither happens:
// measured on an idle default node, 8 MiB of young generation and ~4 MiB of free old-space pages
// stayed committed for minutes in some runs (and were returned after ~20 s in others). One
// collection after a quiet spell returns them (young generation 8 → 1 MiB; RSS −7 to −10 MiB).
//
// When: the check runs every `intervalMs`; an interval whose event-loop utilization stays under
// QUIET_UTILIZATION is quiet; after QUIET_INTERVALS quiet intervals in a row, one collection
// runs, and no other until the node has been busy again (utilization at or above the bound). So
// a busy node never pays for it, and a quiet one pays once (two compacting collections of
// ~10 ms each on an idle default node here, `--trace-gc`, with nothing waiting) per busy →
// quiet change, at most once per QUIET_INTERVALS × intervalMs.
//
// How: V8's low-memory collection, the one DevTools' "collect garbage" runs: requested through
// an in-process inspector session (`HeapProfiler.collectGarbage`; no port is opened, nothing is
// attached). Unlike a plain full collection it compacts the old generation and hands its emptied
// pages back: measured on an idle default node after its start-up garbage (ajv's validators,
// released by the config loader) was freed, V8's committed heap 17.5 → 13.5 MiB and RSS −4 MiB
// against `gc()`, whose collection left the freed objects' pages committed (heap used the same,
// 12.3 MiB). Where node has no inspector, V8's `gc`, exposed without a command-line flag
// (`--expose-gc` set at run time, the function taken from a fresh context), so the node trims
// however it was started (npm start, the bin, systemd, tests). Where both fail, the trim is off
// and says why once.
//
// Started with `--expose-gc` (npm start and the bin's shebang), the trim runs the plain `gc()`
// first and asks for the low-memory collection only when that left more than
// FRAGMENTED_BYTES_MAX committed and unused: node:inspector costs ~1.4 MiB of RSS once loaded
// (its module, bindings and code pages; docs/performance.md "Footprint"), more than a plain
// collection leaves on the heap of a node that has only started (committed − used 1.6–1.8 MiB
// after either collection, the young generation already back to 1 MiB after the quiet
// intervals), while a heap fragmented by a burst of work still gets the compaction. So an idle
// node that has never needed the inspector never loads it.
import { createRequire } from 'node:module';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Logger } from '../logging.js';
import type { MetricsRegistry } from './registry.js';

/** Event-loop utilization under which an interval counts as quiet (an idle node measures ~0.1 %). */
export const QUIET_UTILIZATION = 0.02;
/** Quiet intervals in a row before the trim: a pause between two bursts is not idleness. */
export const QUIET_INTERVALS = 2;

/** A collection; the trim's returns a promise of its end (tests wait for it, the trim does not). */
type Gc = () => unknown;

/**
 * Committed and unused V8 heap a plain `gc()` may leave before the trim asks for the low-memory
 * collection: above the ~1.8 MiB a compacted idle heap keeps anyway (the young generation's
 * 1 MiB, the tails of old-space pages) by more than node:inspector's own ~1.4 MiB of RSS.
 */
export const FRAGMENTED_BYTES_MAX = 4 * 1024 * 1024;

/** Committed minus used V8 heap, in bytes (process.memoryUsage: no module to load). */
const unusedHeapBytes = (): number => {
  const { heapTotal, heapUsed } = process.memoryUsage();
  return heapTotal - heapUsed;
};

/** V8's gc function, or the reason it is not available. */
export function exposeGc(): Gc | string {
  const own = (globalThis as { gc?: Gc }).gc;
  if (typeof own === 'function') return own;
  try {
    // Required here, not imported with the module: only a node without an inspector needs them
    // (node:v8 brings its heap-snapshot and promise-hook modules), and every node loads this file.
    const require = createRequire(import.meta.url);
    const { setFlagsFromString } = require('node:v8') as typeof import('node:v8');
    const { runInNewContext } = require('node:vm') as typeof import('node:vm');
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as Gc) : 'V8 did not expose gc';
  } catch (err) {
    return `V8 did not expose gc: ${(err as Error).message}`;
  }
}

/** V8's low-memory collection through an in-process inspector session, or undefined without an inspector. */
async function lowMemoryCollector(): Promise<Gc | undefined> {
  let Session: typeof import('node:inspector').Session;
  try {
    ({ Session } = await import('node:inspector')); // ERR_INSPECTOR_NOT_AVAILABLE on a node built without it
  } catch {
    return undefined;
  }
  return () =>
    new Promise<void>((resolve) => {
      const session = new Session();
      session.connect();
      // Answered once the collection is done (the request is dispatched asynchronously).
      session.post('HeapProfiler.collectGarbage', () =>
        setImmediate(() => {
          session.disconnect();
          resolve();
        }),
      );
    });
}

/**
 * `gc()` first, then — loading node:inspector at the first need — the low-memory collection if
 * the plain one left more than `fragmentedBytesMax` committed and unused. Falls back to `gc()`
 * alone where node has no inspector. `unusedBytes` is injectable for tests.
 */
export function escalatingCollector(gc: Gc, fragmentedBytesMax = FRAGMENTED_BYTES_MAX, unusedBytes: () => number = unusedHeapBytes, lowMemory: () => Promise<Gc | undefined> = lowMemoryCollector): Gc {
  let loaded: Promise<Gc | undefined> | undefined;
  return async () => {
    gc();
    if (unusedBytes() <= fragmentedBytesMax) return;
    const collect = await (loaded ??= lowMemory());
    await collect?.();
  };
}

/**
 * The trim's collection. With `gc` exposed at start (`--expose-gc`, npm start and the bin), the
 * escalating one above. Otherwise V8's low-memory collection through an in-process inspector
 * session, else V8's gc set up at run time, else why neither is there. The session is connected
 * for the one request and disconnected after its answer, on the next turn (disconnecting inside
 * the answer's callback deadlocks the in-process session).
 */
export async function trimCollector(): Promise<Gc | string> {
  const own = (globalThis as { gc?: Gc }).gc;
  if (typeof own === 'function') return escalatingCollector(own);
  return (await lowMemoryCollector()) ?? exposeGc();
}

export interface HeapTrim {
  /** Trims run so far. */
  readonly trims: number;
  stop(): void;
}

/**
 * Starts the idle trim (`node.idleHeapTrimIntervalMs`; 0 = off). The timer is unref'd: it never
 * keeps the process alive. `gc` and the quiet bound are injectable for tests (a test runner's own
 * work can pass 2 % of a 100 ms interval).
 */
export function startIdleHeapTrim(intervalMs: number, deps: { logger: Logger; metrics?: MetricsRegistry; gc?: Gc | string; quietUtilization?: number }): HeapTrim {
  const quietBound = deps.quietUtilization ?? QUIET_UTILIZATION;
  const state = { trims: 0, stop: () => undefined as void };
  if (intervalMs <= 0) return state;
  // Found before the first trim can run (QUIET_INTERVALS intervals away).
  let gc: Gc | undefined;
  let stopped = false;
  const settle = (found: Gc | string): void => {
    if (typeof found === 'function') gc = found;
    else {
      clearInterval(timer);
      deps.logger.warn({ setting: 'node.idleHeapTrimIntervalMs' }, `idle heap trim off: ${found}`);
    }
  };
  const counter = deps.metrics?.counter('tributary_heap_trims_total', 'Low-memory garbage collections run by the idle heap trim (node.idleHeapTrimIntervalMs)');
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let quiet = 0;
  let trimmed = false;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    if (utilization >= quietBound) {
      quiet = 0;
      trimmed = false; // busy again: the next quiet spell may trim
      return;
    }
    if (trimmed || ++quiet < QUIET_INTERVALS || !gc) return;
    trimmed = true;
    void gc();
    state.trims++;
    counter?.inc();
  }, intervalMs);
  timer.unref();
  state.stop = () => {
    stopped = true;
    clearInterval(timer);
  };
  if (deps.gc !== undefined) settle(deps.gc);
  else void trimCollector().then((found) => stopped || settle(found));
  return state;
}
