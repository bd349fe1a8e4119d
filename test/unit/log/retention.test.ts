// Purpose: retention deletes whole closed segments by age (largest timestamp) and by partition
// size, advances and persists the log start offset, rolls the active segment only when all of
// the log has expired (as Kafka), runs beside appends, and never breaks a reader that holds a
// deleted segment (POSIX unlink semantics).
import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeBatches } from '../../../host/core/index.js';
import { durable, makeBatch, openLog, readAll } from './fixture.js';

const HOUR = 3600_000;

t.test('retention.ms deletes segments whose largest timestamp is older, advances the log start, persists it', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 700, retentionMs: 10 * HOUR });
  // old records (20 h ago), then new ones
  for (let i = 0; i < 8; i++) await o.log.appendAsLeader(makeBatch(2, { timestampMs: now - 20 * HOUR }), durable);
  for (let i = 0; i < 8; i++) await o.log.appendAsLeader(makeBatch(2, { timestampMs: now - HOUR }), durable);
  const before = o.log.segmentBaseOffsets;
  const sizeBefore = o.log.sizeBytes;
  const freed = await o.log.applyRetention(now);
  t.ok(freed > 0, `freed ${freed} bytes`);
  t.equal(o.log.sizeBytes, sizeBefore - freed);
  const after = o.log.segmentBaseOffsets;
  t.ok(after.length < before.length);
  t.equal(o.log.logStartOffset, after[0]);
  t.ok(o.log.logStartOffset <= 16, 'only segments made entirely of old records went');
  await t.rejects(o.log.read(0, 1000), { code: 'OFFSET_OUT_OF_RANGE' });
  const all = await readAll(o.log);
  t.equal(all[0].offset, o.log.logStartOffset);
  t.equal(all[all.length - 1].offset, 31);
  t.equal(await readFile(join(o.dir, 'log-start-offset'), 'utf8'), `0\n${o.log.logStartOffset}\n`);
  const files = await readdir(o.dir);
  for (const b of before.filter((x) => !after.includes(x))) {
    t.notOk(files.includes(String(b).padStart(20, '0') + '.log'), `segment ${b} removed from disk`);
  }
  t.equal(await o.log.applyRetention(now), 0, 'nothing more to delete');
  await o.log.abandon();
  const log = await o.reopen();
  t.equal(log.logStartOffset, after[0], 'log start survives a crash');
});

t.test('retention.bytes deletes the oldest segments until the partition fits, never the active one', async (t) => {
  const o = await openLog(t, { segmentBytes: 1000, retentionBytes: 2500, retentionMs: -1 });
  for (let i = 0; i < 30; i++) await o.log.appendAsLeader(makeBatch(2, { valueBytes: 60 }), durable);
  await o.log.applyRetention(Date.now());
  t.ok(o.log.sizeBytes <= 2500 + 1000, `size ${o.log.sizeBytes} within retention.bytes plus one segment`);
  t.ok(o.log.sizeBytes > 2500 - 1000);
  const o2 = await openLog(t, { segmentBytes: 1000, retentionBytes: 0, retentionMs: -1 });
  for (let i = 0; i < 10; i++) await o2.log.appendAsLeader(makeBatch(2, { valueBytes: 60 }), durable);
  await o2.log.applyRetention(Date.now());
  t.equal(o2.log.segmentCount, 1, 'only the active segment is left');
  t.equal(o2.log.logStartOffset, o2.log.segmentBaseOffsets[0]);
});

t.test('when every segment has expired the active one is rolled and deleted too (Kafka); appends continue at the end', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 700, retentionMs: HOUR });
  for (let i = 0; i < 6; i++) await o.log.appendAsLeader(makeBatch(2, { timestampMs: now - 2 * HOUR }), durable);
  await o.log.applyRetention(now);
  t.equal(o.log.logStartOffset, 12);
  t.equal(o.log.logEndOffset, 12);
  t.equal(o.log.sizeBytes, 0);
  t.equal((await o.log.appendAsLeader(makeBatch(1), durable)).baseOffset, 12);
});

t.test('cleanup.policy=compact alone never deletes by retention', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 700, retentionMs: HOUR, cleanupPolicy: 'compact' });
  for (let i = 0; i < 6; i++) await o.log.appendAsLeader(makeBatch(2, { timestampMs: now - 2 * HOUR }), durable);
  t.equal(await o.log.applyRetention(now), 0);
  t.equal(o.log.logStartOffset, 0);
});

t.test('retention beside appends and a reader holding a deleted segment: no crash, no lost append', async (t) => {
  const now = Date.now();
  const o = await openLog(t, { segmentBytes: 2000, retentionMs: HOUR, maxOpenSegmentFiles: 2 });
  for (let i = 0; i < 30; i++) await o.log.appendAsLeader(makeBatch(3, { timestampMs: now - 3 * HOUR }), durable);
  // Start a big read of the oldest segment, then delete it while the read is in flight.
  const reading = o.log.read(0, 1 << 20);
  const appends = Array.from({ length: 50 }, () => o.log.appendAsLeader(makeBatch(1, { timestampMs: now }), durable));
  const retention = o.log.applyRetention(now);
  const r = await reading;
  t.ok(r.records.byteLength > 0, 'the in-flight read completed');
  t.doesNotThrow(() => decodeBatches(r.records), 'and its bytes are whole batches');
  await retention;
  const infos = await Promise.all(appends);
  t.equal(infos.length, 50);
  const all = await readAll(o.log);
  t.equal(all.length, o.log.logEndOffset - o.log.logStartOffset);
  t.equal(all[all.length - 1].offset, 139);
});

t.test('retention hold (keepFrom): a segment holding an offset at or above the hold stays whatever its age; the ones wholly below go', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 700, retentionMs: 10 * HOUR });
  for (let i = 0; i < 16; i++) await o.log.appendAsLeader(makeBatch(2, { timestampMs: now - 20 * HOUR }), durable);
  const bases = o.log.segmentBaseOffsets;
  t.ok(bases.length >= 4, `${bases.length} segments, all expired`);
  const hold = bases[2] + 1; // inside the third segment
  const freed = await o.log.applyRetention(now, hold);
  t.ok(freed > 0, `the segments wholly below the hold went (${freed} bytes)`);
  t.equal(o.log.logStartOffset, bases[2], 'the segment holding the hold is kept, and every one after it');
  t.same(o.log.segmentBaseOffsets, bases.slice(2));
  t.equal(await o.log.applyRetention(now, hold), 0, 'nothing at or above the hold is deleted');
  t.ok((await o.log.applyRetention(now, o.log.logEndOffset)) > 0, 'with the hold at the log end (everything forwarded) the expired segments go');
});

t.test('bytesBetween: exact at segment bounds, from above by less than one index interval plus a batch inside one; 0 at the end', async (t) => {
  const o = await openLog(t, { segmentBytes: 2000, indexIntervalBytes: 200 });
  const sizes: number[] = [];
  for (let i = 0; i < 40; i++) {
    const b = makeBatch(1);
    sizes.push(b.byteLength);
    await o.log.appendAsLeader(b, durable);
  }
  const end = o.log.logEndOffset;
  const exact = (from: number, to: number) => sizes.slice(from, to).reduce((n, s) => n + s, 0);
  t.equal(o.log.bytesBetween(0, end), o.log.sizeBytes, 'the whole log');
  t.equal(o.log.bytesBetween(end, end), 0, 'nothing at the end');
  for (const base of o.log.segmentBaseOffsets) t.equal(o.log.bytesBetween(base, end), exact(base, end), `from segment base ${base}: exact`);
  const batchMax = Math.max(...sizes);
  for (let from = 0; from < end; from += 3) {
    const got = o.log.bytesBetween(from, end);
    t.ok(got >= exact(from, end) && got < exact(from, end) + 200 + batchMax, `from ${from}: ${got} vs exact ${exact(from, end)}`);
  }
  t.equal(o.log.bytesBetween(5, 5), 0, 'an empty range');
});
