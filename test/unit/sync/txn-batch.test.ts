// Purpose: transactions mode's gathering of batches (host/sync/txn-batch.ts): at most batchesMax,
// their bytes held in the link's in-flight bound until released, and `fits` refusing to let a
// transaction that holds bytes wait on the bound (the caller commits first), so two partitions
// gathering at once cannot wait on each other.
import t from 'tap';
import { ByteBound } from '../../../host/sync/flow.js';
import { TxnBatch } from '../../../host/sync/txn-batch.js';

t.test('TxnBatch: full at batchesMax, bytes held until release, fits only without waiting while holding', async (t) => {
  const bound = new ByteBound(1000);
  const signal = new AbortController().signal;
  const a = new TxnBatch<string>(3, bound);
  t.ok(a.empty() && a.fits(5000), 'empty: anything fits (the bound lets one acquire past it when nothing is held)');
  await a.add('x', 400, signal);
  await a.add('y', 400, signal);
  t.equal(bound.held, 800, 'bytes held in the link bound');
  t.notOk(a.full(), 'two of three');
  t.notOk(a.fits(300), 'holding bytes, 300 more would wait on the bound: commit first');
  t.ok(a.fits(200), '200 more fit without waiting');
  await a.add('z', 200, signal);
  t.ok(a.full(), 'three of three: full at the bound');
  t.same(a.take(), ['x', 'y', 'z'], 'taken in order');
  t.ok(a.empty(), 'empty after take');
  t.equal(bound.held, 1000, 'still held until the transaction ends');
  const b = new TxnBatch<string>(3, bound);
  let bAdded = false;
  const pending = b.add('w', 100, signal).then(() => (bAdded = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(bAdded, 'another partition holding nothing waits for bytes');
  a.release();
  await pending;
  t.ok(bAdded, 'released: the other proceeds');
  t.equal(bound.held, 100);
  b.release();
  b.release();
  t.equal(bound.held, 0, 'release is idempotent');
});
