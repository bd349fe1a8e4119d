// Purpose: the partition log's basic contract on real files: append assigns dense offsets by
// rewriting baseOffset, reads return whole batches from the one containing the offset (KIP-74
// for oversize batches), segments roll by size and age with sparse indexes, timestamp lookup,
// leader epochs, truncation, option validation, and the files survive close/reopen.
import t from 'tap';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { BrokerError } from '../../../host/errors/index.js';
import { decodeBatches, readBatchHeader } from '../../../host/core/index.js';
import { PartitionLog, defaultLogOptions } from '../../../host/log/partition-log.js';
import { silentLogger } from '../../../host/logging.js';
import { tempDir } from '../../helpers/index.js';
import { durable, makeBatch, openLog, readAll } from './fixture.js';

t.test('append assigns dense offsets, rewrites baseOffset and the leader epoch, and reads back byte-exact', async (t) => {
  const { log } = await openLog(t);
  const a = makeBatch(3);
  const b = makeBatch(5);
  const ia = await log.appendAsLeader(a, { leaderEpoch: 7, durable: true });
  const ib = await log.appendAsLeader(b, { leaderEpoch: 7, durable: true });
  t.match(ia, { baseOffset: 0, lastOffset: 2, recordCount: 3, duplicate: false, logAppendTimeMs: -1 });
  t.match(ib, { baseOffset: 3, lastOffset: 7, recordCount: 5 });
  t.equal(log.logEndOffset, 8);
  const r = await log.read(0, 1 << 20);
  t.equal(r.nextOffset, 8);
  t.same(Buffer.from(r.records), Buffer.concat([a, b]), 'stored bytes are the appended bytes (after offset assignment)');
  const h = readBatchHeader(r.records, a.byteLength);
  t.equal(h.baseOffset, 3);
  t.equal(h.partitionLeaderEpoch, 7);
  t.equal(log.sizeBytes, a.byteLength + b.byteLength);
});

t.test('read starts at the batch containing the offset and returns whole batches up to maxBytes', async (t) => {
  const { log } = await openLog(t);
  const sizes: number[] = [];
  for (let i = 0; i < 10; i++) {
    const b = makeBatch(4);
    sizes.push(b.byteLength);
    await log.appendAsLeader(b, durable);
  }
  const mid = await log.read(13, 1 << 20); // offset 13 is inside batch 3 (offsets 12..15)
  t.equal(readBatchHeader(mid.records, 0).baseOffset, 12);
  t.equal(mid.nextOffset, 40);
  const two = await log.read(0, sizes[0] + sizes[1] + 5);
  t.equal(two.records.byteLength, sizes[0] + sizes[1], 'never a partial batch');
  t.equal(two.nextOffset, 8);
  const tiny = await log.read(4, 1);
  t.equal(tiny.records.byteLength, sizes[1], 'KIP-74: the first batch comes whole even when larger than maxBytes');
  const zero = await log.read(0, 0);
  t.equal(zero.records.byteLength, sizes[0]);
  const atEnd = await log.read(40, 1000);
  t.equal(atEnd.records.byteLength, 0, 'at the log end: empty');
  t.equal(atEnd.nextOffset, 40);
  const past = await log.read(1000, 1000);
  t.equal(past.records.byteLength, 0, 'past the log end: empty');
  await t.rejects(log.read(-1, 100), { code: 'OFFSET_OUT_OF_RANGE' });
});

t.test('a batch over max.message.bytes, a corrupt batch and an empty record set are refused with their codes', async (t) => {
  const { log } = await openLog(t, { maxMessageBytes: 1000 });
  await t.rejects(log.appendAsLeader(makeBatch(20, { valueBytes: 100 }), durable), { code: 'MESSAGE_TOO_LARGE' });
  const bad = makeBatch(2);
  bad[bad.byteLength - 1] ^= 0xff;
  await t.rejects(log.appendAsLeader(bad, durable), { code: 'CORRUPT_MESSAGE' });
  await t.rejects(log.appendAsLeader(new Uint8Array(0), durable), { code: 'CORRUPT_MESSAGE' });
  const ok = makeBatch(2);
  t.equal((await log.appendAsLeader(ok, durable)).baseOffset, 0, 'nothing was consumed by the refused appends');
});

t.test('a batch encoded by kafkajs (an independent encoder) is stored and read back', async (t) => {
  const require = createRequire(import.meta.url);
  const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0');
  const Record = require('kafkajs/src/protocol/recordBatch/record/v0');
  const now = 1_700_000_000_000;
  const records = [0, 1, 2].map((i) => Record({ offsetDelta: i, timestampDelta: i, key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) }));
  const enc = await RecordBatch({ records, lastOffsetDelta: 2, firstTimestamp: now, maxTimestamp: now + 2 });
  const { log } = await openLog(t);
  await log.appendAsLeader(makeBatch(1), durable);
  const info = await log.appendAsLeader(new Uint8Array(enc.buffer), durable);
  t.match(info, { baseOffset: 1, lastOffset: 3, maxTimestampMs: now + 2 });
  const all = await readAll(log);
  t.same(all.slice(1).map((r) => [r.offset, r.key, r.value!.toString()]), [[1, 'k0', 'v0'], [2, 'k1', 'v1'], [3, 'k2', 'v2']]);
});

t.test('segments roll by size, are named by base offset (20 digits), and indexes get trimmed on roll', async (t) => {
  const { log, dir } = await openLog(t, { segmentBytes: 2000, indexIntervalBytes: 100, segmentIndexBytes: 4096 });
  for (let i = 0; i < 40; i++) await log.appendAsLeader(makeBatch(2, { valueBytes: 60 }), durable);
  const names = (await readdir(dir)).sort();
  const logs = names.filter((n) => n.endsWith('.log'));
  t.ok(logs.length >= 4, `rolled into ${logs.length} segments`);
  t.equal(logs[0], '00000000000000000000.log');
  t.same(log.segmentBaseOffsets.map((b) => String(b).padStart(20, '0') + '.log'), logs);
  for (const l of logs.slice(0, -1)) {
    t.ok((await stat(join(dir, l))).size <= 2000, `${l} stays within segment.bytes`);
    const idx = (await stat(join(dir, l.replace('.log', '.index')))).size;
    t.ok(idx % 8 === 0 && idx > 0 && idx < 4096, `closed ${l}: .index trimmed to ${idx} bytes`);
    const tidx = (await stat(join(dir, l.replace('.log', '.timeindex')))).size;
    t.ok(tidx % 12 === 0 && tidx > 0 && tidx < 4096, `closed ${l}: .timeindex trimmed to ${tidx} bytes`);
  }
  const active = logs[logs.length - 1];
  t.equal((await stat(join(dir, active.replace('.log', '.index')))).size, 4096, 'the active index is preallocated to segment.index.bytes');
  const all = await readAll(log, 0, 300);
  t.same(all.map((r) => r.offset), Array.from({ length: 80 }, (_, i) => i), 'every offset readable across segments');
  for (let off = 0; off < 80; off += 7) {
    const r = await log.read(off, 1);
    const h = readBatchHeader(r.records, 0);
    t.ok(h.baseOffset <= off && off <= h.lastOffset, `offset ${off} found via the sparse index`);
  }
});

t.test('segments roll by age (segment.ms) and when the index is full', async (t) => {
  const { log } = await openLog(t, { segmentMs: 30 });
  await log.appendAsLeader(makeBatch(1), durable);
  await new Promise((r) => setTimeout(r, 50));
  await log.appendAsLeader(makeBatch(1), durable);
  t.same(log.segmentBaseOffsets, [0, 1], 'rolled after segment.ms');
  const small = await openLog(t, { indexIntervalBytes: 0, segmentIndexBytes: 24 });
  for (let i = 0; i < 9; i++) await small.log.appendAsLeader(makeBatch(1), durable);
  t.ok(small.log.segmentCount >= 3, `index of 2-3 entries fills and rolls (${small.log.segmentCount} segments)`);
  t.same((await readAll(small.log)).map((r) => r.offset), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
});

t.test('offsetForTimestamp finds the first record at or after a timestamp; maxTimestamp tracks the largest', async (t) => {
  const { log } = await openLog(t, { segmentBytes: 1500, indexIntervalBytes: 200 });
  // 30 batches of 3 records, timestamps 10_000 + 10*i + j
  for (let i = 0; i < 30; i++) await log.appendAsLeader(makeBatch(3, { timestampMs: 10_000 + 10 * i, valueBytes: 40 }), durable);
  t.ok(log.segmentCount > 2);
  t.same(await log.offsetForTimestamp(0), { offset: 0, timestampMs: 10_000 });
  t.same(await log.offsetForTimestamp(10_001), { offset: 1, timestampMs: 10_001 });
  t.same(await log.offsetForTimestamp(10_155), { offset: 48, timestampMs: 10_160 }, 'between batches: the next batch');
  t.same(await log.offsetForTimestamp(10_292), { offset: 89, timestampMs: 10_292 });
  t.equal(await log.offsetForTimestamp(10_293), null, 'after every timestamp: none');
  t.same(log.maxTimestamp(), { offset: 89, timestampMs: 10_292 });
  await log.close();
  const again = await PartitionLog.open(log.dir, { segmentBytes: 1500, indexIntervalBytes: 200 } as never, { logger: silentLogger });
  t.teardown(() => again.abandon());
  t.same(await again.offsetForTimestamp(10_155), { offset: 48, timestampMs: 10_160 }, 'after reopen: from the time index');
  t.same(again.maxTimestamp(), { offset: 89, timestampMs: 10_292 });
});

t.test('LogAppendTime restamps batches with the broker clock (CRC still valid)', async (t) => {
  const { log } = await openLog(t, { logAppendTime: true });
  const before = Date.now();
  const info = await log.appendAsLeader(makeBatch(2, { timestampMs: 5 }), durable);
  t.ok(info.logAppendTimeMs >= before && info.logAppendTimeMs <= Date.now());
  const r = await log.read(0, 10_000);
  const [b] = decodeBatches(r.records); // verifies the CRC
  t.equal(b.header.timestampType, 1);
  t.same(b.records.map((x) => x.timestampMs), [info.logAppendTimeMs, info.logAppendTimeMs]);
});

t.test('the leader-epoch checkpoint records epoch → first offset, survives reopen, and is cut by truncateTo', async (t) => {
  const o = await openLog(t);
  await o.log.appendAsLeader(makeBatch(2), { leaderEpoch: 0, durable: true });
  await o.log.appendAsLeader(makeBatch(2), { leaderEpoch: 3, durable: true });
  await o.log.appendAsLeader(makeBatch(2), { leaderEpoch: 3, durable: true });
  await o.log.appendAsLeader(makeBatch(2), { leaderEpoch: 5, durable: true });
  t.same(o.log.leaderEpochEntries(), [{ epoch: 0, startOffset: 0 }, { epoch: 3, startOffset: 2 }, { epoch: 5, startOffset: 6 }]);
  const text = await readFile(join(o.dir, 'leader-epoch-checkpoint'), 'utf8');
  t.equal(text, '0\n3\n0 0\n3 2\n5 6\n', "Kafka's checkpoint format");
  t.same(o.log.endOffsetForEpoch(3), { epoch: 3, endOffset: 6 });
  t.same(o.log.endOffsetForEpoch(4), { epoch: 3, endOffset: 6 });
  t.same(o.log.endOffsetForEpoch(5), { epoch: 5, endOffset: 8 });
  await o.log.abandon(); // crash: the epoch file and batches must agree after recovery
  const log = await o.reopen();
  t.same(log.leaderEpochEntries(), [{ epoch: 0, startOffset: 0 }, { epoch: 3, startOffset: 2 }, { epoch: 5, startOffset: 6 }]);
  t.equal(await log.truncateTo(5), 4, 'the batch containing offset 5 goes whole');
  t.equal(log.logEndOffset, 4);
  t.same(log.leaderEpochEntries(), [{ epoch: 0, startOffset: 0 }, { epoch: 3, startOffset: 2 }]);
  t.equal(await readFile(join(o.dir, 'leader-epoch-checkpoint'), 'utf8'), '0\n2\n0 0\n3 2\n');
  const info = await log.appendAsLeader(makeBatch(1), { leaderEpoch: 6, durable: true });
  t.equal(info.baseOffset, 4, 'appends continue at the truncation point');
  t.same((await readAll(log)).map((r) => r.offset), [0, 1, 2, 3, 4]);
});

t.test('truncateTo across segments deletes later segments and keeps reads consistent', async (t) => {
  const { log } = await openLog(t, { segmentBytes: 600 });
  for (let i = 0; i < 20; i++) await log.appendAsLeader(makeBatch(2, { valueBytes: 40 }), durable);
  const segs = log.segmentBaseOffsets;
  t.ok(segs.length > 3);
  const cutAt = segs[1] + 2;
  await log.truncateTo(cutAt);
  t.equal(log.logEndOffset, cutAt);
  t.same(log.segmentBaseOffsets, segs.slice(0, 2));
  t.same((await readAll(log)).map((r) => r.offset), Array.from({ length: cutAt }, (_, i) => i));
  await log.appendAsLeader(makeBatch(2), durable);
  t.equal(log.logEndOffset, cutAt + 2);
  await log.truncateTo(0);
  t.equal(log.logEndOffset, 0);
  t.equal(log.logStartOffset, 0);
  t.equal((await log.appendAsLeader(makeBatch(1), durable)).baseOffset, 0);
});

t.test('close writes the clean-shutdown marker; reopen skips the scan and keeps offsets; the marker is removed on open', async (t) => {
  const o = await openLog(t, { segmentBytes: 1000 });
  for (let i = 0; i < 15; i++) await o.log.appendAsLeader(makeBatch(2), durable);
  await o.log.close();
  t.ok((await readdir(o.dir)).includes('clean-shutdown'));
  await t.rejects(o.log.appendAsLeader(makeBatch(1), durable), { code: 'NOT_LEADER_OR_FOLLOWER' });
  const log = await o.reopen({ segmentBytes: 1000 });
  t.equal(log.recovery.clean, true);
  t.ok(o.cap.find('clean shutdown'));
  t.notOk((await readdir(o.dir)).includes('clean-shutdown'), 'marker removed before appends');
  t.equal(log.logEndOffset, 30);
  t.equal((await log.appendAsLeader(makeBatch(1), durable)).baseOffset, 30);
  t.same((await readAll(log)).map((r) => r.offset), Array.from({ length: 31 }, (_, i) => i));
});

t.test('options are validated with INVALID_CONFIG naming the option', async (t) => {
  const dir = await tempDir(t);
  const bad: Array<[string, unknown]> = [
    ['segmentBytes', 10],
    ['segmentBytes', 2 ** 31],
    ['flush', 'sometimes'],
    ['cleanupPolicy', 'keep'],
    ['retentionMs', -2],
    ['maxOpenSegmentFiles', 0],
  ];
  for (const [k, v] of bad) {
    const err = await PartitionLog.open(dir, { [k]: v } as never, { logger: silentLogger }).then(
      () => null,
      (e: unknown) => e,
    );
    t.ok(err instanceof BrokerError && err.code === 'INVALID_CONFIG' && err.message.includes(k), `${k}=${v}: ${(err as Error)?.message}`);
  }
  t.equal(defaultLogOptions.flush, 'always', 'flush=always is the default');
});

t.test('metrics: bytes and records appended, fsyncs, segments, recovery time', async (t) => {
  const o = await openLog(t, { segmentBytes: 1000 });
  for (let i = 0; i < 10; i++) await o.log.appendAsLeader(makeBatch(3), durable);
  const text = o.metrics.render();
  t.match(text, /tributary_log_appended_records_total\{partition="t-0"\} 30/);
  t.match(text, /tributary_log_appended_bytes_total\{partition="t-0"\} \d+/);
  t.match(text, /tributary_log_fsyncs_total\{partition="t-0"\} \d+/);
  t.match(text, /tributary_log_fsync_ms_count\{partition="t-0"\} \d+/);
  t.match(text, new RegExp(`tributary_log_segments\\{partition="t-0"\\} ${o.log.segmentCount}`));
  t.match(text, /tributary_log_recovery_seconds\{partition="t-0"\} [\d.e-]+/);
});

t.test('destroy removes the partition directory', async (t) => {
  const o = await openLog(t);
  await o.log.appendAsLeader(makeBatch(1), durable);
  await o.log.destroy();
  await t.rejects(stat(o.dir), { code: 'ENOENT' });
});
