// Purpose: the log's memory and descriptor bounds hold at their limits: open read fds of closed
// segments (maxOpenSegmentFiles), cached index bytes (indexCacheBytes), the decompressed-size
// bound on append (maxDecompressedBytes), compaction's key-map bound (compactionMapBytes) and
// producer-id expiry (producerIdExpirationMs).
import t from 'tap';
import { readdir } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { durable, makeBatch, openLog, readAll } from './fixture.js';

async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

t.test('maxOpenSegmentFiles bounds read descriptors, even with concurrent readers across many segments', async (t) => {
  const o = await openLog(t, { segmentBytes: 500, maxOpenSegmentFiles: 2 });
  for (let i = 0; i < 40; i++) await o.log.appendAsLeader(makeBatch(2, { valueBytes: 60 }), durable);
  t.ok(o.log.segmentCount >= 15, `${o.log.segmentCount} segments`);
  await o.log.close();
  const log = await o.reopen();
  const fdsBefore = await openFds();
  const offsets = Array.from({ length: 40 }, (_, i) => i * 2);
  const results = await Promise.all(offsets.map((off) => log.read(off, 1)));
  t.ok(results.every((r, i) => r.nextOffset > offsets[i]), 'every concurrent read answered');
  t.ok(log.openSegmentFiles <= 2, `open read fds ${log.openSegmentFiles} ≤ 2 once readers are done`);
  t.ok((await openFds()) - fdsBefore <= 2, 'the process holds no extra descriptors');
  await readAll(log);
  t.ok(log.openSegmentFiles <= 2);
});

t.test('indexCacheBytes bounds the closed segments\' index entries held in memory', async (t) => {
  const o = await openLog(t, { segmentBytes: 2000, indexIntervalBytes: 100, indexCacheBytes: 300 });
  for (let i = 0; i < 60; i++) await o.log.appendAsLeader(makeBatch(2, { valueBytes: 60 }), durable);
  await o.log.close();
  const log = await o.reopen();
  const all = await readAll(log, 0, 150);
  t.equal(all.length, 120, 'every record still readable');
  t.ok(log.cachedIndexBytes <= 300, `cached index bytes ${log.cachedIndexBytes} ≤ 300`);
});

t.test('maxDecompressedBytes: a batch that inflates past the bound is refused (zip bomb), one below passes', async (t) => {
  const o = await openLog(t, { maxDecompressedBytes: 64 * 1024 });
  const big = makeBatch(1, { valueBytes: 200 * 1024, compression: 1, fill: 0 });
  t.ok(big.byteLength < 2000, `compressed to ${big.byteLength} bytes`);
  await t.rejects(o.log.appendAsLeader(big, durable), { code: 'CORRUPT_MESSAGE' });
  const ok = makeBatch(1, { valueBytes: 30 * 1024, compression: 1, fill: 0 });
  t.equal((await o.log.appendAsLeader(ok, durable)).baseOffset, 0);
  void gzipSync;
});

t.test('compactionMapBytes: a small key map cleans the log over several runs, never wrongly', async (t) => {
  const now = 1_800_000_000_000;
  const o = await openLog(t, { segmentBytes: 1500, cleanupPolicy: 'compact', compactionMapBytes: 1 });
  for (let i = 0; i < 40; i++) await o.log.appendAsLeader(makeBatch(3, { keys: 4, keyPrefix: `g${i % 3}-`, timestampMs: now - 1000 + i }), durable);
  const before = await readAll(o.log);
  const activeBase = o.log.segmentBaseOffsets[o.log.segmentCount - 1];
  const size0 = o.log.sizeBytes;
  await o.log.compact(now);
  const size1 = o.log.sizeBytes;
  t.ok(size1 < size0, 'first run cleaned something');
  for (let i = 0; i < 20; i++) await o.log.compact(now + i + 1);
  const after = await readAll(o.log);
  const last = new Map<string, number>();
  for (const r of before) if (r.offset < activeBase) last.set(r.key!, r.offset);
  const expected = before.filter((r) => r.offset >= activeBase || last.get(r.key!) === r.offset).map((r) => r.offset);
  t.same(after.map((r) => r.offset), expected, 'after enough runs: exactly the latest per key');
});

t.test('producerIdExpirationMs: an idle producer is forgotten at the next snapshot', async (t) => {
  const o = await openLog(t, { producerIdExpirationMs: 1 });
  await o.log.appendAsLeader(makeBatch(1, { producerId: 5, producerEpoch: 0, baseSequence: 0 }), durable);
  await new Promise((r) => setTimeout(r, 10));
  await o.log.close();
  const log = await o.reopen();
  t.equal(log.producerState(5), undefined);
  const again = await log.appendAsLeader(makeBatch(1, { producerId: 5, producerEpoch: 0, baseSequence: 0 }), durable);
  t.equal(again.duplicate, false, 'its retry is no longer recognised (as in Kafka after expiry)');
});

t.test('concurrent atomic replaces of one checkpoint file never collide, and the last call wins', async (t) => {
  const { writeFileAtomic } = await import('../../../host/log/io.js');
  const { tempDir } = await import('../../helpers/index.js');
  const { readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const dir = await tempDir(t);
  const path = join(dir, 'checkpoint');
  await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomic(path, `value ${i}\n`)));
  t.equal(await readFile(path, 'utf8'), 'value 19\n');
});
