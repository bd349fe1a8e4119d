// Purpose: the one partition reader (host/broker/cursor.ts) on a real broker writing real
// files: every start mode, isolation committed vs logEnd with the high watermark held below the
// log end through the partition object, out-of-range recovery under each policy, the long poll
// woken by appends and by HW moves, bounded reads, and the one retry rule.
import t from 'tap';
import { openBroker, bytes, text, batchOfSize } from './broker-fixture.js';
import { PartitionCursor, resolveStart, NO_RETRY, type CursorOptions } from '../../../host/broker/cursor.js';
import { BrokerError } from '../../../host/errors/index.js';
import type { Broker } from '../../../host/broker/broker.js';

const HOUR_MS = 3_600_000;
const tp = { topic: 'c', partition: 0 };
const opts = (o: Partial<CursorOptions> = {}): CursorOptions => ({ maxBytes: 1 << 20, onOutOfRange: 'fail', ...o });

async function withRecords(broker: Broker, n: number, timestampMs?: (i: number) => number): Promise<void> {
  await broker.createTopic(tp.topic, 1);
  for (let i = 0; i < n; i++) await broker.produce(tp.topic, [{ key: null, value: bytes(`v${i}`), timestampMs: timestampMs?.(i) }], { acks: 1, partition: 0 });
}

/** A topic whose log start moved past 0 (retention deleted old segments). */
async function withTrimmedLog(broker: Broker): Promise<number> {
  await broker.createTopic(tp.topic, 1, { 'retention.ms': HOUR_MS, 'segment.bytes': 1024 });
  const oldTs = Date.now() - 48 * HOUR_MS;
  for (let i = 0; i < 20; i++) await broker.produce(tp.topic, [{ key: null, value: new Uint8Array(300), timestampMs: oldTs }], { acks: 1 });
  await broker.produce(tp.topic, [{ key: null, value: bytes('fresh') }], { acks: 1 });
  await broker.runMaintenance();
  const start = broker.offsets(tp).logStartOffset;
  if (start === 0) throw new Error('retention did not move the log start');
  return start;
}

t.test('partition: on one node the high watermark equals the log end after every append; role leader, epoch 0', async (t) => {
  const { broker } = await openBroker(t);
  await withRecords(broker, 3);
  const self = broker.metadata.image().node.nodeId;
  t.same(broker.partitionState(tp), { role: 'leader', leaderEpoch: 0, leaderId: self, isr: [self], replicas: [self], logStartOffset: 0, highWatermark: 3, logEndOffset: 3 });
  await broker.produce(tp.topic, [{ key: null, value: bytes('x') }], { acks: 0, partition: 0 });
  await broker.partitionObject(tp).log.flush();
  const s = broker.partitionState(tp);
  t.equal(s.highWatermark, s.logEndOffset, 'HW = LEO');
  t.equal(s.logEndOffset, 4);
});

t.test('partition: the high watermark never passes the log end nor goes back', async (t) => {
  const { broker } = await openBroker(t);
  await withRecords(broker, 3);
  const p = broker.partitionObject(tp);
  p.hwFollowsLogEnd = false;
  p.advanceHighWatermark(99);
  t.equal(p.highWatermark, 3, 'clamped to the log end');
  await broker.produce(tp.topic, [{ key: null, value: bytes('x') }], { acks: 1, partition: 0 });
  t.equal(p.highWatermark, 3, 'held: no replica confirmed offset 3');
  p.advanceHighWatermark(2);
  t.equal(p.highWatermark, 3, 'never back');
  p.advanceHighWatermark(4);
  t.equal(p.highWatermark, 4);
});

t.test('cursor: start earliest, latest, offset (clamped), timestamp (found, and past the end)', async (t) => {
  const { broker } = await openBroker(t);
  const base = Date.now() - 10_000;
  await withRecords(broker, 5, (i) => base + i * 1_000);
  t.equal(await resolveStart(broker, tp, { kind: 'earliest' }), 0);
  t.equal(await resolveStart(broker, tp, { kind: 'latest' }), 5);
  t.equal(await resolveStart(broker, tp, { kind: 'offset', offset: 2 }), 2);
  t.equal(await resolveStart(broker, tp, { kind: 'offset', offset: -7 }), 0, 'below the start → start');
  t.equal(await resolveStart(broker, tp, { kind: 'offset', offset: 70 }), 5, 'past the end → end');
  t.equal(await resolveStart(broker, tp, { kind: 'timestamp', timestampMs: base + 2_500 }), 3, 'first record at or after it');
  t.equal(await resolveStart(broker, tp, { kind: 'timestamp', timestampMs: base + 60_000 }), 5, 'none that late → end');
  const c = await PartitionCursor.open(broker, tp, { kind: 'offset', offset: 3 }, opts());
  t.same((await c.read()).records.map((r) => text(r.value)), ['v3', 'v4']);
  t.equal(c.position, 5);
  t.ok(c.caughtUp());
});

t.test('cursor: committed stops at the high watermark, logEnd reads to the log end', async (t) => {
  const { broker } = await openBroker(t);
  await withRecords(broker, 2);
  const p = broker.partitionObject(tp);
  p.hwFollowsLogEnd = false; // as on a leader whose followers have not fetched yet
  for (let i = 2; i < 5; i++) await broker.produce(tp.topic, [{ key: null, value: bytes(`v${i}`) }], { acks: 1, partition: 0 });
  t.equal(broker.partitionState(tp).highWatermark, 2);
  t.equal(broker.partitionState(tp).logEndOffset, 5);

  const committed = new PartitionCursor(broker, tp, 0, opts());
  t.same((await committed.read()).records.map((r) => r.offset), [0, 1]);
  t.ok(committed.caughtUp(), 'caught up at the HW');
  t.same((await committed.read()).records, [], 'nothing past the HW');
  t.equal(await resolveStart(broker, tp, { kind: 'latest' }), 2, 'latest = HW for clients');

  const follower = new PartitionCursor(broker, tp, 0, opts({ isolation: 'logEnd' }));
  t.same((await follower.read()).records.map((r) => r.offset), [0, 1, 2, 3, 4]);
  t.equal(await resolveStart(broker, tp, { kind: 'latest' }, 'logEnd'), 5);

  p.advanceHighWatermark(4);
  t.same((await committed.read()).records.map((r) => r.offset), [2, 3], 'the HW moved: two more');
});

t.test('cursor: out of range below the start resets to earliest or nearest, or fails', async (t) => {
  const { broker } = await openBroker(t);
  const start = await withTrimmedLog(broker);
  for (const policy of ['earliest', 'nearest'] as const) {
    const resets: Array<[number, number]> = [];
    const c = new PartitionCursor(broker, tp, 0, opts({ onOutOfRange: policy, onReset: (from, to) => resets.push([from, to]) }));
    const r = await c.read();
    t.same(resets, [[0, start]], `${policy}: told of the reset`);
    t.equal(r.from, start, `${policy}: read on from the log start`);
    t.ok(r.records.length > 0);
  }
  const latest = new PartitionCursor(broker, tp, 0, opts({ onOutOfRange: 'latest' }));
  const r = await latest.read();
  t.equal(r.from, broker.offsets(tp).highWatermark, 'latest: skips to the end');
  t.same(r.records, []);
  const failing = new PartitionCursor(broker, tp, 0, opts({ onOutOfRange: 'fail' }));
  await t.rejects(failing.read(), { code: 'OFFSET_OUT_OF_RANGE' });
  t.equal(failing.position, 0, 'a failed read does not move the cursor');
});

t.test('cursor: out of range past the end resets to latest (or nearest), to earliest when asked', async (t) => {
  const { broker } = await openBroker(t);
  await withRecords(broker, 3);
  const nearest = new PartitionCursor(broker, tp, 9, opts({ onOutOfRange: 'nearest' }));
  t.equal((await nearest.read()).from, 3);
  const earliest = new PartitionCursor(broker, tp, 9, opts({ onOutOfRange: 'earliest' }));
  t.same((await earliest.read()).records.map((r) => r.offset), [0, 1, 2]);
  await t.rejects(new PartitionCursor(broker, tp, 9, opts()).readRaw(), { code: 'OFFSET_OUT_OF_RANGE' });
});

t.test('cursor: a wait parks until an append wakes it, and times out when none comes', async (t) => {
  const { broker } = await openBroker(t);
  await withRecords(broker, 1);
  const c = new PartitionCursor(broker, tp, 1, opts());
  const t0 = Date.now();
  t.equal(await c.wait(60), false, 'nothing came');
  t.ok(Date.now() - t0 >= 50, 'it waited');
  const parked = c.wait(30_000);
  t.equal(broker.waitingReaders, 1, 'parked in the broker waiters');
  await broker.produce(tp.topic, [{ key: null, value: bytes('new') }], { acks: 1, partition: 0 });
  t.equal(await parked, true, 'woken by the append');
  t.same((await c.read()).records.map((r) => text(r.value)), ['new']);
  t.equal(await c.wait(0), false, 'caught up again');
  t.equal(await new PartitionCursor(broker, tp, 0, opts()).wait(30_000), true, 'data visible: no wait');
});

t.test('cursor: a committed wait is woken by the HW move, not the append; a logEnd wait by the append', async (t) => {
  const { broker } = await openBroker(t);
  await withRecords(broker, 1);
  const p = broker.partitionObject(tp);
  p.hwFollowsLogEnd = false;
  const committed = new PartitionCursor(broker, tp, 1, opts());
  const follower = new PartitionCursor(broker, tp, 1, opts({ isolation: 'logEnd' }));
  let committedWoke = false;
  const committedWait = committed.wait(30_000).then((v) => (committedWoke = v));
  const followerWait = follower.wait(30_000);
  await broker.produce(tp.topic, [{ key: null, value: bytes('x') }], { acks: 1, partition: 0 });
  t.equal(await followerWait, true, 'the follower sees the append');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(committedWoke, false, 'a client does not: the HW has not moved');
  p.advanceHighWatermark(2);
  t.equal(await committedWait, true, 'the HW move wakes it');
});

t.test('cursor: an abort ends a wait at once', async (t) => {
  const { broker } = await openBroker(t);
  await withRecords(broker, 1);
  const ac = new AbortController();
  const c = new PartitionCursor(broker, tp, 1, opts({ signal: ac.signal }));
  const parked = c.wait(30_000);
  ac.abort();
  t.equal(await parked, false);
  t.equal(broker.waitingReaders, 0, 'nothing left parked');
});

t.test('cursor: reads are bounded by maxBytes, the first batch whole (KIP-74)', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic(tp.topic, 1);
  for (let i = 0; i < 4; i++) await broker.append(tp, batchOfSize(1_000), { acks: 1 });
  const c = new PartitionCursor(broker, tp, 0, opts({ maxBytes: 2_500 }));
  const first = await c.readRaw();
  t.equal(first.records.byteLength, 2_000, 'two whole batches fit in 2500 bytes');
  t.equal(first.nextOffset, 2);
  const small = await c.readRaw(10);
  t.equal(small.records.byteLength, 1_000, 'a batch larger than maxBytes comes whole');
  t.equal(small.from, 2);
  t.equal(c.position, 3);
});

t.test('cursor: transient errors are retried attemptsMax times; others go straight to the caller', async (t) => {
  const { broker } = await openBroker(t);
  await withRecords(broker, 1);
  await broker.createTopic('gone', 1);
  const retried: string[] = [];
  const onRetry = (e: BrokerError) => retried.push(e.code);
  const gone = new PartitionCursor(broker, { topic: 'gone', partition: 0 }, 0, opts({ retry: { attemptsMax: 3, backoffMs: 1, backoffMaxMs: 1 }, onRetry }));
  await broker.deleteTopic('gone');
  await t.rejects(gone.read(), { code: 'UNKNOWN_TOPIC_OR_PARTITION' });
  t.same(retried, [], 'a deleted partition is not retried');
  const c = new PartitionCursor(broker, tp, 0, opts({ retry: { attemptsMax: 2, backoffMs: 1, backoffMaxMs: 5 }, onRetry }));
  await broker.close(); // every read now fails with LEADER_NOT_AVAILABLE (retriable)
  await t.rejects(c.read(), { code: 'LEADER_NOT_AVAILABLE' });
  t.same(retried, ['LEADER_NOT_AVAILABLE', 'LEADER_NOT_AVAILABLE'], 'retried twice, then given up');
  const none = new PartitionCursor(broker, tp, 0, opts({ retry: NO_RETRY, onRetry }));
  await t.rejects(none.read(), { code: 'LEADER_NOT_AVAILABLE' });
  t.equal(retried.length, 2, 'NO_RETRY: the first error goes to the caller');
});

t.test('cursor: waitAny wakes on any partition passing what its cursor saw', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('m', 2);
  await broker.produce('m', [{ key: null, value: bytes('a') }], { acks: 1, partition: 0 });
  const a = new PartitionCursor(broker, { topic: 'm', partition: 0 }, 0, opts());
  const b = new PartitionCursor(broker, { topic: 'm', partition: 1 }, 0, opts());
  await a.readRaw();
  b.offsets();
  let woke = false;
  const parked = PartitionCursor.waitAny([a, b], 30_000).then(() => (woke = true));
  await new Promise((r) => setTimeout(r, 30));
  t.equal(woke, false, 'what each saw is already read: it waits');
  await broker.produce('m', [{ key: null, value: bytes('b') }], { acks: 1, partition: 1 });
  await parked;
  t.ok(woke);
});

t.test('cursor: a wait refused for too many parked readers (LIMIT_EXCEEDED) follows the same retry rule', async (t) => {
  const { broker } = await openBroker(t, { maxWaitingReaders: 1 });
  await withRecords(broker, 1);
  const ac = new AbortController();
  const other = broker.waitForData([{ ...tp, afterOffset: 1 }], 30_000, ac.signal); // takes the only slot
  const retried: string[] = [];
  const c = new PartitionCursor(broker, tp, 1, opts({ retry: { attemptsMax: 2, backoffMs: 1, backoffMaxMs: 1 }, onRetry: (e) => retried.push(e.code) }));
  await t.rejects(c.wait(30_000), { code: 'LIMIT_EXCEEDED' });
  t.same(retried, ['LIMIT_EXCEEDED', 'LIMIT_EXCEEDED'], 'retried twice, then given up');
  const parked = c.wait(30_000);
  ac.abort(); // the slot frees while the cursor backs off... or before it asks: either way it parks
  await other;
  await broker.produce(tp.topic, [{ key: null, value: bytes('x') }], { acks: 1, partition: 0 });
  t.equal(await parked, true);
});
