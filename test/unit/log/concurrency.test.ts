// Purpose: the write path under concurrency and each flush policy: many appenders on one log get
// dense, unique offsets in acknowledgement order; group commit makes concurrent appends share
// fsyncs; acks=0 (durable: false) does not wait; interval and never acknowledge once written;
// the pending-bytes limit refuses at its boundary; reads never see unacknowledged bytes.
import t from 'tap';
import { PartitionLog } from '../../../host/log/partition-log.js';
import type { AppendInfo } from '../../../host/log/api.js';
import { durable, makeBatch, openLog, readAll } from './fixture.js';

function fsyncCount(o: { metrics: { render(): string } }): number {
  const m = /tributary_log_fsyncs_total\{partition="t-0"\} (\d+)/.exec(o.metrics.render());
  return m ? Number(m[1]) : 0;
}

t.test('64 concurrent appenders: offsets dense, unique, and acknowledged in offset order', async (t) => {
  const o = await openLog(t, { segmentBytes: 64 * 1024 });
  const acked: AppendInfo[] = [];
  const appenders = 64;
  const perAppender = 20;
  await Promise.all(
    Array.from({ length: appenders }, async (_, a) => {
      for (let i = 0; i < perAppender; i++) {
        const count = 1 + ((a + i) % 5);
        const info = await o.log.appendAsLeader(makeBatch(count, { fill: a }), durable);
        acked.push(info);
      }
    }),
  );
  const total = acked.reduce((n, i) => n + i.recordCount, 0);
  const sorted = [...acked].sort((x, y) => x.baseOffset - y.baseOffset);
  let next = 0;
  for (const i of sorted) {
    if (i.baseOffset !== next) break;
    next = i.lastOffset + 1;
  }
  t.equal(next, total, 'offset ranges tile 0..total-1 with no gap or overlap');
  // Acknowledgement order = offset order: each acked range starts after every earlier-acked one... within one fsync
  // round acks resolve in queue order, so the sequence of base offsets is increasing.
  let increasing = true;
  for (let i = 1; i < acked.length; i++) if (acked[i].baseOffset < acked[i - 1].baseOffset) increasing = false;
  t.ok(increasing, 'acknowledged in offset order');
  t.equal(o.log.logEndOffset, total);
  t.ok(o.log.segmentCount > 1, 'rolled while appenders raced');
  const all = await readAll(o.log);
  t.same(all.map((r) => r.offset), Array.from({ length: total }, (_, i) => i));
  const fsyncs = fsyncCount(o);
  t.ok(fsyncs < appenders * perAppender, `group commit: ${fsyncs} fsyncs for ${appenders * perAppender} appends`);
});

t.test('group commit: with a slow fsync, 50 concurrent appends share a handful of fsyncs', async (t) => {
  const o = await openLog(t, { injectedFlushDelayMs: 20 });
  await o.log.appendAsLeader(makeBatch(1), durable);
  const before = fsyncCount(o);
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 50 }, () => o.log.appendAsLeader(makeBatch(1), durable)));
  const used = fsyncCount(o) - before;
  t.ok(used >= 1 && used <= 3, `${used} fsyncs covered 50 appends`);
  t.ok(Date.now() - t0 < 50 * 20, 'far faster than one 20 ms fsync per append');
});

t.test('flush=always: an append resolves only after its fsync; readers do not see it before', async (t) => {
  const o = await openLog(t, { injectedFlushDelayMs: 150 });
  let resolved = false;
  const p = o.log.appendAsLeader(makeBatch(1), durable).then((i) => {
    resolved = true;
    return i;
  });
  await new Promise((r) => setTimeout(r, 60));
  t.notOk(resolved, 'not acknowledged while the fsync is in flight');
  t.equal(o.log.logEndOffset, 0, 'not visible to readers before it is durable');
  t.equal((await o.log.read(0, 1000)).records.byteLength, 0);
  await p;
  t.ok(resolved);
  t.equal(o.log.logEndOffset, 1);
});

t.test('durable: false (acks=0) resolves once written, without waiting for the fsync', async (t) => {
  const o = await openLog(t, { injectedFlushDelayMs: 300 });
  const t0 = Date.now();
  const info = await o.log.appendAsLeader(makeBatch(1), { leaderEpoch: 0, durable: false });
  t.equal(info.baseOffset, 0);
  t.ok(Date.now() - t0 < 250, 'did not wait for the 300 ms fsync');
  let seen = -1;
  o.log.onEndOffsetAdvance((end) => (seen = end));
  await o.log.flush();
  t.equal(o.log.logEndOffset, 1, 'visible after the fsync');
  t.equal(seen, 1, 'end-offset listeners hear about it');
});

t.test('flush=never and flush=interval acknowledge once written; interval fsyncs on its timer', async (t) => {
  const never = await openLog(t, { flush: 'never', injectedFlushDelayMs: 500 });
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 20 }, () => never.log.appendAsLeader(makeBatch(2), durable)));
  t.ok(Date.now() - t0 < 400, 'never: no fsync wait');
  t.equal(never.log.logEndOffset, 40, 'visible once written');
  t.equal(fsyncCount(never), 0, 'never: no fsync yet');

  const interval = await openLog(t, { flush: 'interval', flushIntervalMs: 30 });
  await interval.log.appendAsLeader(makeBatch(1), durable);
  t.equal(interval.log.logEndOffset, 1);
  await new Promise((r) => setTimeout(r, 120));
  t.ok(fsyncCount(interval) >= 1, 'interval: the timer fsynced');
  const n = fsyncCount(interval);
  await new Promise((r) => setTimeout(r, 100));
  t.equal(fsyncCount(interval), n, 'interval: no fsync when nothing new was written');
});

t.test('maxPendingAppendBytes: appends past the bound fail with LIMIT_EXCEEDED, then succeed once drained', async (t) => {
  const o = await openLog(t, { maxPendingAppendBytes: 2000, injectedFlushDelayMs: 5 });
  const first = makeBatch(10, { valueBytes: 150 }); // ~1.7 KB
  t.ok(first.byteLength < 2000);
  const p1 = o.log.appendAsLeader(first, { leaderEpoch: 0, durable: false });
  await t.rejects(o.log.appendAsLeader(makeBatch(10, { valueBytes: 150 }), durable), { code: 'LIMIT_EXCEEDED' });
  await p1;
  await t.resolves(o.log.appendAsLeader(makeBatch(10, { valueBytes: 150 }), durable), 'room again after the queue drained');
  t.equal(o.log.logEndOffset, 20, 'the refused append consumed no offsets');
});

t.test('close waits for queued appends, and a closed log refuses new ones', async (t) => {
  const o = await openLog(t, { injectedFlushDelayMs: 30 });
  const ps = Array.from({ length: 10 }, () => o.log.appendAsLeader(makeBatch(1), durable));
  await o.log.close();
  const infos = await Promise.all(ps);
  t.same(infos.map((i) => i.baseOffset), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const again = await PartitionLog.open(o.dir, {} as never, { logger: o.cap.logger });
  t.teardown(() => again.abandon());
  t.equal(again.logEndOffset, 10);
});

t.test('updateOptions from flush=always to never releases appends waiting for an fsync', async (t) => {
  const o = await openLog(t, { injectedFlushDelayMs: 200 });
  await o.log.appendAsLeader(makeBatch(1), durable);
  const waiting = Promise.all(Array.from({ length: 5 }, () => o.log.appendAsLeader(makeBatch(1), durable)));
  o.log.updateOptions({ flush: 'never', injectedFlushDelayMs: 0 });
  const infos = await waiting;
  t.same(infos.map((i) => i.baseOffset), [1, 2, 3, 4, 5]);
  await o.log.appendAsLeader(makeBatch(1), durable);
  t.equal(o.log.logEndOffset, 7, 'never: visible once written');
});

t.test('a failing disk write fails the log: pending and later appends get KAFKA_STORAGE_ERROR, reads still work', async (t) => {
  const { closeSync } = await import('node:fs');
  const o = await openLog(t);
  await o.log.appendAsLeader(makeBatch(2), durable);
  // Pull the active segment's descriptor out from under the log (what an I/O error looks like to it).
  const active = (o.log as unknown as { active: { fd: number } }).active;
  closeSync(active.fd);
  await t.rejects(o.log.appendAsLeader(makeBatch(1), durable), { code: 'KAFKA_STORAGE_ERROR' });
  await t.rejects(o.log.appendAsLeader(makeBatch(1), durable), { code: 'KAFKA_STORAGE_ERROR' }, 'the log stays failed');
  t.equal(o.log.logEndOffset, 2, 'nothing past the last good write is visible');
  active.fd = -1; // the test closed it; keep teardown from closing a reused descriptor number
});
