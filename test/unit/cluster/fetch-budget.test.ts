// Purpose: the node-wide bound on replica fetch answers (host/cluster/fetch-budget.ts): room is
// never over-reserved, waiting fetches are served in arrival order (a large one is not starved
// by small ones behind it), a stopped fetcher's wait is withdrawn, and a fetch larger than the
// whole budget is refused at once (the options forbid that configuration). At the defaults the
// fetchers of 4 leader nodes (a 5-voter cluster's peers) all hold an answer at once; the answer
// bound's key (cluster.replicaFetchResponseBytesMax) is checked at its boundaries.
import t from 'tap';
import { FetchBudget, replicaFetchAnswerBytesMax } from '../../../host/cluster/fetch-budget.js';
import { defaultClusterOptions, resolveClusterOptions } from '../../../host/cluster/options.js';
import { loadNodeConfig } from '../../../host/node.js';
import { tempDir } from '../../helpers/index.js';

const MiB = 1024 * 1024;

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
  t.equal(replicaFetchAnswerBytesMax(1024 * 1024), 2 * 1024 * 1024, 'one answer: replicaFetchResponseBytesMax + 1 MiB of headroom');
});

t.test('fetch budget: at the defaults every peer of a 5-voter cluster fetches at once', { timeout: 5_000 }, async (t) => {
  const o = defaultClusterOptions;
  const b = new FetchBudget(o.replicaFetchBytesTotalMax);
  const answer = replicaFetchAnswerBytesMax(o.replicaFetchResponseBytesMax);
  const held = await Promise.all([1, 2, 3, 4].map(() => b.reserve(answer, never)));
  t.equal(b.reservedBytes, 4 * answer, `4 leaders' answers of ${answer} bytes are out at once`);
  t.notOk(b.contended, 'none waits: no fetch is cut to the short contended long poll');
  for (const r of held) r();
});

t.test('config: cluster.replicaFetchResponseBytesMax at its boundaries, and the total must hold one answer', { timeout: 10_000 }, async (t) => {
  const dataDir = await tempDir(t);
  const load = (...sets: string[]) => loadNodeConfig(['--data-dir', dataDir, ...sets.flatMap((s) => ['--set', s])], {});
  t.throws(() => load('cluster.replicaFetchResponseBytesMax=1023'), /cluster\.replicaFetchResponseBytesMax = "1023" \(flag\): must be an integer from 1024 to 1073741824/);
  t.throws(() => load(`cluster.replicaFetchResponseBytesMax=${1024 * MiB + 1}`), /cluster\.replicaFetchResponseBytesMax/);
  for (const v of [1024, 1024 * MiB]) {
    const c = load(`cluster.replicaFetchResponseBytesMax=${v}`).sections.cluster as Record<string, unknown>;
    t.equal(c.replicaFetchResponseBytesMax, v, `${v}: accepted`);
  }
  t.equal(defaultClusterOptions.replicaFetchResponseBytesMax, MiB, 'default 1 MiB');
  const cluster = { nodeId: 1, listen: '127.0.0.1:9500', voters: '1@127.0.0.1:9500,2@127.0.0.1:9501' };
  const fits = { ...defaultClusterOptions, ...cluster, replicaFetchResponseBytesMax: 64 * 1024, replicaFetchBytesTotalMax: 64 * 1024 + MiB };
  t.ok(resolveClusterOptions(fits), 'a total of exactly one answer (64 KiB + 1 MiB) is accepted');
  t.throws(
    () => resolveClusterOptions({ ...fits, replicaFetchBytesTotalMax: 64 * 1024 + MiB - 1 }),
    /cluster\.replicaFetchBytesTotalMax \(1114111\) must hold one replica fetch answer: cluster\.replicaFetchResponseBytesMax \+ 1 MiB = 1114112 bytes/,
    'one byte less is refused, naming both keys',
  );
  t.ok(resolveClusterOptions({ ...fits, replicaFetchBytesMax: 8 * MiB }), 'the per-partition bound may exceed the answer bound (the answer bound caps it)');
});
