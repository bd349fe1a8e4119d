// Purpose: compaction keeps the latest record per key over closed segments with records at
// their original offsets, removes tombstones after delete.retention.ms, respects
// min.compaction.lag.ms, keeps an empty batch to preserve an idempotent producer's sequence,
// rewrites compressed batches, and is crash-safe: an interrupted clean never loses data
// (`.cleaned` discarded, `.swap` completed on open).
import t from 'tap';
import { readdir, copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeBatches } from '../../../host/core/index.js';
import { durable, makeBatch, openLog, readAll } from './fixture.js';

const HOUR = 3600_000;

async function fill(log: { appendAsLeader: (b: Uint8Array, o: typeof durable) => Promise<unknown> }, ts: number) {
  // 40 batches × 3 records over 5 keys: key k<j> for j in 0..4, value = round number
  for (let round = 0; round < 40; round++) {
    await log.appendAsLeader(makeBatch(3, { keys: 5, keyPrefix: `r${round % 2}-`, fill: round, timestampMs: ts + round, valueBytes: 20 }), durable);
  }
}

t.test('keeps the latest record of each key in closed segments; offsets unchanged; active segment untouched', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 1200, cleanupPolicy: 'compact' });
  await fill(o.log, now - HOUR);
  const before = await readAll(o.log);
  const sizeBefore = o.log.sizeBytes;
  await o.log.compact(now);
  const after = await readAll(o.log);
  t.ok(o.log.sizeBytes < sizeBefore, `shrank ${sizeBefore} → ${o.log.sizeBytes}`);
  const activeBase = o.log.segmentBaseOffsets[o.log.segmentCount - 1];
  // Expected: for records in closed segments, only those that are the latest for their key anywhere in the cleanable range
  const lastInClosed = new Map<string, number>();
  for (const r of before) if (r.offset < activeBase) lastInClosed.set(r.key!, r.offset);
  const expected = before.filter((r) => r.offset >= activeBase || lastInClosed.get(r.key!) === r.offset);
  t.same(after.map((r) => [r.offset, r.key, r.value!.toString('hex')]), expected.map((r) => [r.offset, r.key, r.value!.toString('hex')]));
  t.equal(o.log.logEndOffset, before[before.length - 1].offset + 1);
  await o.log.close();
  const log = await o.reopen();
  t.same((await readAll(log)).map((r) => r.offset), expected.map((r) => r.offset), 'after reopen');
  t.equal((await log.appendAsLeader(makeBatch(1), durable)).baseOffset, 120);
});

t.test('tombstones stay until delete.retention.ms has passed, then go', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 500, cleanupPolicy: 'compact', deleteRetentionMs: 10 * HOUR });
  await o.log.appendAsLeader(makeBatch(2, { keys: 2, timestampMs: now - 20 * HOUR }), durable); // k0,k1
  await o.log.appendAsLeader(makeBatch(1, { keys: 1, nullValue: true, timestampMs: now - 5 * HOUR }), durable); // tombstone k0
  for (let i = 0; i < 8; i++) await o.log.appendAsLeader(makeBatch(2, { keyPrefix: 'other', keys: 2, timestampMs: now - 4 * HOUR }), durable);
  await o.log.compact(now);
  let recs = await readAll(o.log);
  t.same(recs.filter((r) => r.key === 'k0').map((r) => [r.offset, r.value]), [[2, null]], 'the tombstone replaced k0 and is still there');
  t.same(recs.filter((r) => r.key === 'k1').map((r) => r.offset), [1]);
  await o.log.compact(now + 6 * HOUR);
  recs = await readAll(o.log);
  t.same(recs.filter((r) => r.key === 'k0'), [], 'tombstone older than delete.retention.ms is removed');
  t.same(recs.filter((r) => r.key === 'k1').map((r) => r.offset), [1]);
});

t.test('min.compaction.lag.ms protects recent segments', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 1200, cleanupPolicy: 'compact', minCompactionLagMs: 2 * HOUR });
  await fill(o.log, now - HOUR);
  const size = o.log.sizeBytes;
  await o.log.compact(now);
  t.equal(o.log.sizeBytes, size, 'nothing older than the lag: untouched');
  await o.log.compact(now + 2 * HOUR);
  t.ok(o.log.sizeBytes < size, 'cleaned once old enough');
});

t.test("an idempotent producer's last batch stays as an empty batch when all its records are compacted away", async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 400, cleanupPolicy: 'compact' });
  await o.log.appendAsLeader(makeBatch(1, { keyPrefix: 'p', keys: 1, producerId: 9, producerEpoch: 0, baseSequence: 0, timestampMs: now - HOUR }), durable);
  for (let i = 0; i < 10; i++) await o.log.appendAsLeader(makeBatch(2, { keyPrefix: 'p', keys: 1, timestampMs: now - HOUR }), durable);
  await o.log.compact(now);
  const r = await o.log.read(0, 100_000);
  const batches = decodeBatches(r.records);
  t.equal(batches[0].header.baseOffset, 0);
  t.equal(batches[0].header.recordCount, 0, 'empty batch kept');
  t.equal(batches[0].header.producerId, 9);
  t.equal(batches[0].header.baseSequence, 0);
  await o.log.abandon();
  const log = await o.reopen();
  t.match(
    await log.appendAsLeader(makeBatch(1, { keyPrefix: 'p', keys: 1, producerId: 9, producerEpoch: 0, baseSequence: 0 }), durable),
    { duplicate: true, baseOffset: 0 },
    'sequence state survives compaction and a crash',
  );
});

t.test('compressed batches are rewritten with their codec, records keep their offsets', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 600, cleanupPolicy: 'compact' });
  for (let i = 0; i < 12; i++) await o.log.appendAsLeader(makeBatch(4, { keys: 3, compression: 1, fill: i, timestampMs: now - HOUR }), durable);
  await o.log.compact(now);
  const r = await o.log.read(0, 1 << 20);
  const batches = decodeBatches(r.records);
  t.ok(batches.every((b) => b.header.compression === 1 || b.header.recordCount === 0));
  const recs = await readAll(o.log);
  const keys = recs.filter((x) => x.offset < o.log.segmentBaseOffsets[o.log.segmentCount - 1]).map((x) => x.key);
  t.equal(new Set(keys).size, keys.length, 'one record per key in the closed segments');
});

t.test('a crash mid-clean: a leftover .cleaned file is discarded, a .swap file is completed on open', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 1200, cleanupPolicy: 'compact' });
  await fill(o.log, now - HOUR);
  const before = await readAll(o.log);
  await o.log.abandon();
  const first = '00000000000000000000.log';
  await writeFile(join(o.dir, first + '.cleaned'), Buffer.from('half written garbage'));
  let log = await o.reopen();
  t.notOk((await readdir(o.dir)).some((n) => n.endsWith('.cleaned')), '.cleaned removed');
  t.same((await readAll(log)).map((r) => r.offset), before.map((r) => r.offset), 'old data intact');
  // The moment after ".cleaned → .swap" and before the swap replaces the .log: the old .log and
  // its old indexes are still in place, the complete cleaned segment sits in .swap.
  await log.close();
  for (const ext of ['.log', '.index', '.timeindex']) await copyFile(join(o.dir, '00000000000000000000' + ext), join(o.dir, 'old' + ext));
  log = await o.reopen();
  await log.compact(now);
  const cleaned = await readAll(log);
  t.ok(cleaned.length < before.length);
  await log.close();
  await copyFile(join(o.dir, first), join(o.dir, first + '.swap'));
  for (const ext of ['.log', '.index', '.timeindex']) await copyFile(join(o.dir, 'old' + ext), join(o.dir, '00000000000000000000' + ext));
  const after = await o.reopen();
  t.ok(o.cap.find('completed an interrupted compaction swap'));
  t.notOk((await readdir(o.dir)).some((n) => n.endsWith('.swap')));
  t.same((await readAll(after)).map((r) => r.offset), cleaned.map((r) => r.offset), 'the cleaned segment is in place and readable');
  for (let off = 0; off < 30; off += 3) {
    const r = await after.read(off, 1);
    t.ok(r.records.byteLength > 0 && r.nextOffset > off, `offset ${off} served via rebuilt indexes`);
  }
});

t.test('readers running while compaction swaps segments always get whole, valid batches', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 1200, cleanupPolicy: 'compact', maxOpenSegmentFiles: 1 });
  await fill(o.log, now - HOUR);
  let stop = false;
  let reads = 0;
  const readers = Array.from({ length: 4 }, async (_, k) => {
    while (!stop) {
      const from = (reads * 7 + k * 13) % 100;
      const r = await o.log.read(from, 2000);
      if (r.records.byteLength) decodeBatches(r.records); // throws on a torn or mixed-up answer
      reads++;
    }
  });
  await o.log.compact(now);
  stop = true;
  await Promise.all(readers);
  t.ok(reads > 0, `${reads} reads raced the compaction without error`);
});
