// Purpose: parked readers are woken by the append that passes their offset, time out, abort,
// leave no trace in any partition list afterwards, and are bounded by maxWaiting.
import t from 'tap';
import { getEventListeners } from 'node:events';
import { WaiterRegistry } from '../../../host/broker/waiters.js';
import { BrokerError } from '../../../host/errors/index.js';

t.test('waiters: a wake past the offset resolves "data"; a wake not past it does not', async (t) => {
  const reg = new WaiterRegistry(10);
  const list = reg.newPartitionList();
  const parked = reg.wait([{ list, afterOffset: 5 }], 60_000);
  t.equal(reg.size, 1);
  list.wake(5); // log end 5: offset 5 not there yet
  t.equal(reg.size, 1, 'still parked');
  list.wake(6);
  t.equal(await parked, 'data');
  t.equal(reg.size, 0);
  t.equal(list.size, 0);
});

t.test('waiters: a reader on several partitions is woken by any, and leaves every list', async (t) => {
  const reg = new WaiterRegistry(10);
  const a = reg.newPartitionList();
  const b = reg.newPartitionList();
  const c = reg.newPartitionList();
  const parked = reg.wait(
    [
      { list: a, afterOffset: 0 },
      { list: b, afterOffset: 10 },
      { list: c, afterOffset: 3 },
    ],
    60_000,
  );
  t.equal(a.size + b.size + c.size, 3);
  b.wake(11);
  t.equal(await parked, 'data');
  t.equal(a.size + b.size + c.size, 0, 'gone from every list');
});

t.test('waiters: times out, and the timeout leaves nothing behind', async (t) => {
  const reg = new WaiterRegistry(10);
  const list = reg.newPartitionList();
  const started = Date.now();
  t.equal(await reg.wait([{ list, afterOffset: 0 }], 30), 'timeout');
  t.ok(Date.now() - started >= 25, 'waited about maxWaitMs');
  t.equal(reg.size, 0);
  t.equal(list.size, 0);
  t.equal(await reg.wait([{ list, afterOffset: 0 }], 0), 'timeout', 'zero wait returns at once');
  const emptyStarted = Date.now();
  t.equal(await reg.wait([], 30), 'timeout', 'no positions still waits out maxWaitMs');
  t.ok(Date.now() - emptyStarted >= 25);
  t.equal(reg.size, 0);
});

t.test('waiters: abort resolves "abort" and removes the listener; an aborted signal returns at once', async (t) => {
  const reg = new WaiterRegistry(10);
  const list = reg.newPartitionList();
  const ac = new AbortController();
  const parked = reg.wait([{ list, afterOffset: 0 }], 60_000, ac.signal);
  ac.abort();
  t.equal(await parked, 'abort');
  t.equal(reg.size, 0);
  t.equal(list.size, 0);
  t.equal(await reg.wait([{ list, afterOffset: 0 }], 60_000, ac.signal), 'abort');
  t.equal(reg.size, 0);
  // A signal reused across many waits that end by data does not accumulate listeners.
  const shared = new AbortController();
  for (let i = 0; i < 50; i++) {
    const p = reg.wait([{ list, afterOffset: i }], 60_000, shared.signal);
    list.wake(i + 1);
    await p;
  }
  t.equal(getEventListeners(shared.signal, 'abort').length, 0, 'no abort listener left behind');
  t.equal(reg.size, 0);
});

t.test('waiters: exactly maxWaiting readers park; one more is refused with LIMIT_EXCEEDED', async (t) => {
  const reg = new WaiterRegistry(3);
  const list = reg.newPartitionList();
  const parked = [0, 1, 2].map(() => reg.wait([{ list, afterOffset: 0 }], 60_000));
  t.equal(reg.size, 3);
  await t.rejects(reg.wait([{ list, afterOffset: 0 }], 60_000), { code: 'LIMIT_EXCEEDED' });
  t.equal(reg.size, 3, 'the refused one did not park');
  list.wakeAll('shutdown');
  t.same(await Promise.all(parked), ['shutdown', 'shutdown', 'shutdown']);
  // Room again after they left.
  const again = reg.wait([{ list, afterOffset: 0 }], 60_000);
  list.wake(1);
  t.equal(await again, 'data');
  t.ok(new BrokerError('LIMIT_EXCEEDED', 'x').spec.retriable, 'LIMIT_EXCEEDED is retriable');
});
