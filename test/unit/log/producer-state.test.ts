// Purpose: idempotent-producer checks on append (KIP-98 / KIP-360 rules as in producer-state.ts):
// a retried batch among the last five is answered with its original offsets and not written; a
// sequence gap, a stale epoch and a new epoch not starting at 0 are refused with Kafka's codes;
// and the state survives a clean close/reopen and a crash (snapshot + replay).
import t from 'tap';
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ProducerStateTable } from '../../../host/log/producer-state.js';
import { durable, makeBatch, openLog } from './fixture.js';

const pid = 4242;
const batch = (seq: number, count = 2, epoch = 0, producerId = pid) =>
  makeBatch(count, { producerId, producerEpoch: epoch, baseSequence: seq });

t.test('in-order sequences are accepted; a retry of any of the last five batches is a duplicate with the original offsets', async (t) => {
  const { log } = await openLog(t);
  const infos = [];
  for (let i = 0; i < 6; i++) infos.push(await log.appendAsLeader(batch(i * 2), durable));
  t.same(infos.map((i) => i.baseOffset), [0, 2, 4, 6, 8, 10]);
  const end = log.logEndOffset;
  const sizeBefore = log.sizeBytes;
  const dup = await log.appendAsLeader(batch(6), durable); // the 4th batch (offsets 6..7)
  t.match(dup, { duplicate: true, baseOffset: 6, lastOffset: 7, recordCount: 2 });
  t.equal(log.logEndOffset, end, 'nothing written');
  t.equal(log.sizeBytes, sizeBefore);
  // The first batch fell out of the five kept: its retry is now out of order, as in Kafka.
  await t.rejects(log.appendAsLeader(batch(0), durable), { code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' });
  t.equal(log.producerState(pid)!.batches.length, 5);
});

t.test('a gap in sequence is OUT_OF_ORDER_SEQUENCE_NUMBER and writes nothing', async (t) => {
  const { log } = await openLog(t);
  await log.appendAsLeader(batch(0), durable);
  await t.rejects(log.appendAsLeader(batch(5), durable), { code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' });
  await t.rejects(log.appendAsLeader(batch(1), durable), { code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' }, 'overlapping, not a duplicate');
  t.equal(log.logEndOffset, 2);
  t.equal((await log.appendAsLeader(batch(2), durable)).baseOffset, 2);
});

t.test('epochs: an older epoch is INVALID_PRODUCER_EPOCH; a newer epoch must start at sequence 0', async (t) => {
  const { log } = await openLog(t);
  await log.appendAsLeader(batch(0, 2, 3), durable);
  await t.rejects(log.appendAsLeader(batch(2, 2, 2), durable), { code: 'INVALID_PRODUCER_EPOCH' });
  await t.rejects(log.appendAsLeader(batch(2, 2, 4), durable), { code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' });
  t.equal((await log.appendAsLeader(batch(0, 2, 4), durable)).baseOffset, 2, 'bumped epoch from sequence 0');
  await t.rejects(log.appendAsLeader(batch(2, 2, 3), durable), { code: 'INVALID_PRODUCER_EPOCH' }, 'the old epoch is fenced');
  t.equal(log.producerState(pid)!.epoch, 4);
});

t.test('an unknown producer id is accepted at any sequence (Kafka 2.5+, KIP-360), then checked from there', async (t) => {
  const { log } = await openLog(t);
  t.equal((await log.appendAsLeader(batch(17), durable)).baseOffset, 0);
  await t.rejects(log.appendAsLeader(batch(20), durable), { code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' });
  t.equal((await log.appendAsLeader(batch(19), durable)).baseOffset, 2);
});

t.test('sequence numbers wrap from 2^31-1 to 0', async (t) => {
  const { log } = await openLog(t);
  await log.appendAsLeader(batch(2147483646, 2), durable); // 2147483646, 2147483647
  t.equal((await log.appendAsLeader(batch(0, 1), durable)).baseOffset, 2);
});

t.test('non-idempotent batches (producerId -1) are never checked', async (t) => {
  const { log } = await openLog(t);
  await log.appendAsLeader(makeBatch(1), durable);
  await log.appendAsLeader(makeBatch(1), durable);
  t.equal(log.logEndOffset, 2);
});

t.test('a retry that arrives while the original is still waiting for its fsync waits for it and answers duplicate', async (t) => {
  const { log } = await openLog(t, { injectedFlushDelayMs: 80 });
  const first = log.appendAsLeader(batch(0), durable);
  const retry = log.appendAsLeader(batch(0), durable);
  const [a, b] = await Promise.all([first, retry]);
  t.match(a, { baseOffset: 0, duplicate: false });
  t.match(b, { baseOffset: 0, lastOffset: 1, duplicate: true });
  t.equal(log.logEndOffset, 2);
});

t.test('producer state survives a clean close and reopen (snapshot at the log end)', async (t) => {
  const o = await openLog(t, { segmentBytes: 800 });
  for (let i = 0; i < 12; i++) await o.log.appendAsLeader(batch(i * 2), durable);
  await o.log.close();
  t.ok((await readdir(o.dir)).some((n) => n.endsWith('.snapshot')));
  const log = await o.reopen();
  t.match(await log.appendAsLeader(batch(20), durable), { duplicate: true, baseOffset: 20 });
  await t.rejects(log.appendAsLeader(batch(30), durable), { code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' });
  t.equal((await log.appendAsLeader(batch(24), durable)).baseOffset, 24);
});

t.test('producer state survives a crash: rebuilt from the last snapshot plus the batches after it', async (t) => {
  const o = await openLog(t, { segmentBytes: 800 });
  for (let i = 0; i < 12; i++) await o.log.appendAsLeader(batch(i * 2, 2, 1), durable);
  await o.log.appendAsLeader(batch(0, 2, 0, 777), durable); // a second producer
  await o.log.abandon(); // no close: no snapshot at the end, no clean marker
  const log = await o.reopen();
  t.equal(log.recovery.clean, false);
  t.match(await log.appendAsLeader(batch(22, 2, 1), durable), { duplicate: true, baseOffset: 22 });
  t.match(await log.appendAsLeader(batch(0, 2, 0, 777), durable), { duplicate: true, baseOffset: 24 });
  await t.rejects(log.appendAsLeader(batch(2, 2, 0), durable), { code: 'INVALID_PRODUCER_EPOCH' });
  t.equal((await log.appendAsLeader(batch(24, 2, 1), durable)).baseOffset, 26);
});

t.test('with every snapshot lost, the state is replayed from the whole log', async (t) => {
  const o = await openLog(t, { segmentBytes: 600 });
  for (let i = 0; i < 10; i++) await o.log.appendAsLeader(batch(i * 2), durable);
  await o.log.abandon();
  for (const n of await readdir(o.dir)) if (n.endsWith('.snapshot')) await unlink(join(o.dir, n));
  const log = await o.reopen();
  t.match(await log.appendAsLeader(batch(18), durable), { duplicate: true, baseOffset: 18 });
  await t.rejects(log.appendAsLeader(batch(0), durable), { code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' });
});

t.test('a damaged snapshot is ignored (CRC) and an older one or the log replaces it', async (t) => {
  const table = new ProducerStateTable(10);
  const h = { producerId: 1, producerEpoch: 0, baseSequence: 0, lastOffsetDelta: 1, baseOffset: 0, maxTimestamp: 5, recordCount: 2 };
  table.apply(h as never, 1);
  const snap = table.snapshot(10);
  const other = new ProducerStateTable(10);
  t.ok(other.load(snap));
  t.equal(other.get(1)!.batches[0].lastSeq, 1);
  snap[snap.byteLength - 1] ^= 1;
  t.notOk(other.load(snap), 'flipped bit detected');
  t.equal(other.size, 0);
});

t.test('the producer table is bounded: past maxProducerIds the least recently used id is forgotten', async (t) => {
  const { log } = await openLog(t, { maxProducerIds: 3 });
  for (const p of [1, 2, 3, 4]) await log.appendAsLeader(batch(0, 1, 0, p), durable);
  t.equal(log.producerState(1), undefined);
  t.ok(log.producerState(4));
  t.equal((await log.appendAsLeader(batch(9, 1, 0, 1), durable)).duplicate, false, 'a forgotten id counts as unknown');
});
