// Purpose: the node-wide bound on replica fetch answers (host/cluster/fetch-budget.ts): room is
// never over-reserved, waiting fetches are served in arrival order (a large one is not starved
// by small ones behind it), a stopped fetcher's wait is withdrawn, and a fetch larger than the
// whole budget is refused at once (the options forbid that configuration).
import t from 'tap';
import { FetchBudget, replicaFetchAnswerBytesMax } from '../../../host/cluster/fetch-budget.js';

const never = new AbortController().signal;

t.test('fetch budget: bounded, first come first served, contended while anyone waits', { timeout: 5_000 }, async (t) => {
  const b = new FetchBudget(10);
  const r1 = await b.reserve(6, never);
  const order: string[] = [];
  const big = b.reserve(6, never).then((r) => (order.push('big'), r));
  const small = b.reserve(1, never).then((r) => (order.push('small'), r));
  await new Promise((r) => setImmediate(r));
  t.equal(b.reservedBytes, 6, 'the second 6 does not fit beside the first: it waits');
  t.same(order, [], 'and the small one behind it waits too (no overtaking)');
  t.ok(b.contended, 'contended while fetches wait');
  r1();
  r1(); // a second release is a no-op
  const [rBig, rSmall] = await Promise.all([big, small]);
  t.same(order, ['big', 'small'], 'served in arrival order');
  t.equal(b.reservedBytes, 7, 'never above the total of 10');
  t.notOk(b.contended);
  rBig();
  rSmall();
  t.equal(b.reservedBytes, 0);
});

t.test('fetch budget: a stopped fetcher leaves the queue; an answer larger than the budget is refused', { timeout: 5_000 }, async (t) => {
  const b = new FetchBudget(4);
  const held = await b.reserve(4, never);
  const stop = new AbortController();
  const waiting = b.reserve(2, stop.signal);
  const after = b.reserve(2, never);
  stop.abort(new Error('fetcher stopped'));
  await t.rejects(waiting, /fetcher stopped/);
  held();
  const r = await after;
  t.equal(b.reservedBytes, 2, 'the next in line got the room');
  r();
  await t.rejects(b.reserve(5, never), /cluster\.replicaFetchBytesTotalMax=4/);
  t.equal(replicaFetchAnswerBytesMax(1024 * 1024), 2 * 1024 * 1024, 'one answer: replicaFetchBytesMax + 1 MiB of headroom');
});
