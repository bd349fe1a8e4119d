// Purpose: the `written` isolation (followers' fetches, issue 11): a leader serves its followers
// what it has written before its own fsync returns, so their fsyncs overlap; everything else
// waits for the fsync. Pinned here over a real partition log with a slow fsync (1 s injected):
// a written-level reader sees the batch and is woken by the write; a log-end reader and a client
// see it only after the fsync; and the high watermark never passes the leader's fsynced end, even
// when every follower reports more (it fetched the unsynced batch and fsynced it first).
import t from 'tap';
import { encodeBatch } from '../../../host/core/index.js';
import { PartitionCursor } from '../../../host/broker/cursor.js';
import { openBroker, bytes } from './broker-fixture.js';

const FSYNC_DELAY_MS = 1000;
const tp = { topic: 'w', partition: 0 };
const opts = (isolation: 'committed' | 'logEnd' | 'written') => ({ maxBytes: 1 << 20, onOutOfRange: 'fail' as const, isolation });

t.test('log: a batch is readable through the written end before its fsync returns, and only so', { timeout: 20_000 }, async (t) => {
  const { broker } = await openBroker(t, { injectedFlushDelayMs: FSYNC_DELAY_MS });
  await broker.createTopic(tp.topic, 1);
  const log = broker.partitionObject(tp).log;
  const acked = log.appendAsLeader(encodeBatch([{ key: null, value: bytes('a') }]), { leaderEpoch: 0, durable: true });
  await new Promise<void>((resolve) => {
    const off = log.onWrittenEndAdvance(() => (off(), resolve()));
  });
  t.equal(log.writtenEndOffset, 1, 'written: the batch is in the file');
  t.equal(log.logEndOffset, 0, 'not readable yet: its fsync is still running');
  t.equal((await log.read(0, 1 << 20, 1)).records.byteLength, 0, 'a plain read stops at the log end');
  t.ok((await log.read(0, 1 << 20, 1, { throughWritten: true })).records.byteLength > 0, 'a read through the written end gets it');
  await acked;
  t.equal(log.logEndOffset, 1, 'the fsync returned: readable to everyone');
});

t.test('broker: a written-level wait is woken by the write; a log-end wait and a client by the fsync and the HW', { timeout: 20_000 }, async (t) => {
  const { broker } = await openBroker(t, { injectedFlushDelayMs: FSYNC_DELAY_MS });
  await broker.createTopic(tp.topic, 1);
  const p = broker.partitionObject(tp);
  p.replicated(1);
  p.becomeLeader(1, [1, 2], [1, 2], Date.now());
  const woken: Record<string, number> = {};
  const started = Date.now();
  const waits = (['written', 'logEnd', 'committed'] as const).map((level) =>
    new PartitionCursor(broker, tp, 0, opts(level)).wait(10_000).then((seen) => void (woken[level] = seen ? Date.now() - started : -1)),
  );
  const acked = p.log.appendAsLeader(encodeBatch([{ key: null, value: bytes('a') }]), { leaderEpoch: 1, durable: true });
  await waits[0];
  t.ok(woken.written! >= 0 && woken.written! < FSYNC_DELAY_MS, `the follower's wait ended ${woken.written} ms in, before the ${FSYNC_DELAY_MS} ms fsync`);
  t.equal(p.log.logEndOffset, 0, 'the fsync is still running');
  const r = await broker.read(tp, 0, { maxBytes: 1 << 20, isolation: 'written' });
  t.ok(r.records.byteLength > 0 && r.visibleEnd === 1, 'a follower reads the unsynced batch');
  t.equal((await broker.read(tp, 0, { maxBytes: 1 << 20 })).records.byteLength, 0, 'a client does not');
  await acked;
  await waits[1];
  t.ok(woken.logEnd! >= FSYNC_DELAY_MS - 20, `the log-end wait ended with the fsync (${woken.logEnd} ms)`);
  t.equal(woken.committed, undefined, 'the client still waits: no follower has reported');
  p.followerFetched(2, 1, Date.now());
  await waits[2];
  t.ok(woken.committed! > 0, 'the HW move woke the client');
});

t.test('partition: the HW never passes what the leader has fsynced, whatever its followers report', { timeout: 20_000 }, async (t) => {
  const { broker } = await openBroker(t, { injectedFlushDelayMs: FSYNC_DELAY_MS });
  await broker.createTopic(tp.topic, 1);
  const p = broker.partitionObject(tp);
  p.replicated(1);
  p.becomeLeader(1, [1, 2, 3], [1, 2, 3], Date.now());
  const first = p.log.appendAsLeader(encodeBatch([{ key: null, value: bytes('a') }]), { leaderEpoch: 1, durable: true });
  await first;
  p.followerFetched(2, 1, Date.now());
  p.followerFetched(3, 1, Date.now());
  t.equal(p.highWatermark, 1, 'everyone has offset 0 on disk: committed');
  const acks = p.awaitHighWatermark(3, 10_000);
  const second = p.log.appendAsLeader(encodeBatch([{ key: null, value: bytes('b') }, { key: null, value: bytes('c') }]), { leaderEpoch: 1, durable: true });
  await new Promise<void>((resolve) => {
    const off = p.log.onWrittenEndAdvance(() => (off(), resolve()));
  });
  // Both followers fetched the unsynced batch through the written end and fsynced it first.
  p.followerFetched(2, 3, Date.now());
  p.followerFetched(3, 3, Date.now());
  t.equal(p.log.logEndOffset, 1, "the leader's own fsync of offsets 1-2 is still running");
  t.equal(p.highWatermark, 1, 'so the HW stays at 1: an acks=all producer is not answered yet');
  let answered = false;
  void acks.then(() => (answered = true));
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(answered, 'acks=all waits');
  await second;
  await acks;
  t.equal(p.highWatermark, 3, "the leader's fsync returned: the HW moves to what all three hold on disk");
});

t.test('partition: the HW never passes what an in-sync follower reports fsynced', { timeout: 20_000 }, async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic(tp.topic, 1);
  const p = broker.partitionObject(tp);
  p.replicated(1);
  p.becomeLeader(1, [1, 2, 3], [1, 2, 3], Date.now());
  await p.log.appendAsLeader(encodeBatch([{ key: null, value: bytes('a') }, { key: null, value: bytes('b') }]), { leaderEpoch: 1, durable: true });
  p.followerFetched(2, 2, Date.now());
  t.equal(p.highWatermark, 0, 'follower 3 has reported nothing: nothing committed');
  p.followerFetched(3, 1, Date.now());
  t.equal(p.highWatermark, 1, 'follower 3 has offset 0 on disk: the HW is the lowest report');
});
