// Purpose: the offset ladder the composer asserts (next ≥ written ≥ durable, written ≥ visible,
// durable ≥ visible unless made visible on write under flush=interval/never): it holds through
// appends under every policy and a policy switch, and a rung moved out of order throws.
import t from 'tap';
import { durable, makeBatch, openLog } from './fixture.js';

interface Ladder {
  nextOffset: number;
  writtenOffset: number;
  durableOffset: number;
  visibleOffset: number;
  wrote(seg: unknown, position: number, offset: number): void;
  synced(seg: unknown, position: number, offset: number): void;
  active: unknown;
}
const ladderOf = (log: unknown) => log as Ladder;

t.test('offset ladder: flush=always keeps durable ≥ visible; the rungs meet when idle', async (t) => {
  const { log } = await openLog(t, { flush: 'always' });
  await Promise.all(Array.from({ length: 20 }, () => log.appendAsLeader(makeBatch(2), durable)));
  const l = ladderOf(log);
  t.same([l.nextOffset, l.writtenOffset, l.durableOffset, l.visibleOffset], [40, 40, 40, 40]);
});

t.test('offset ladder: flush=never makes writes visible before they are durable, then a switch to always is legal', async (t) => {
  const { log } = await openLog(t, { flush: 'never' });
  for (let i = 0; i < 5; i++) await log.appendAsLeader(makeBatch(1), durable);
  const l = ladderOf(log);
  t.equal(l.visibleOffset, 5);
  t.ok(l.durableOffset < l.visibleOffset, `durable ${l.durableOffset} < visible ${l.visibleOffset} (never fsyncs before roll/close)`);
  log.updateOptions({ flush: 'always' });
  await log.appendAsLeader(makeBatch(1), durable);
  t.same([l.writtenOffset, l.durableOffset, l.visibleOffset], [6, 6, 6], 'the next fsync catches durable up');
});

t.test('offset ladder: a rung moved out of order is a programmer error and throws', async (t) => {
  const { log } = await openLog(t);
  await log.appendAsLeader(makeBatch(3), durable);
  const l = ladderOf(log);
  t.throws(() => l.wrote(l.active, 0, 10), /offset ladder broken: next 3, written 10/, 'written past next');
  const { log: other } = await openLog(t);
  await other.appendAsLeader(makeBatch(3), durable);
  const o = ladderOf(other);
  t.throws(() => o.synced(o.active, 0, 7), /offset ladder broken/, 'durable past written');
});
