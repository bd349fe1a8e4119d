// Purpose: the background scheduler applies retention (and compaction) to every log on its
// interval without overlapping itself, and stops on close.
import t from 'tap';
import { openBroker, bytes, readAll } from './broker-fixture.js';
import { eventually } from '../../helpers/index.js';

const HOUR_MS = 3_600_000;

t.test('maintenance: the scheduler deletes segments past retention.ms on its own', async (t) => {
  const { broker, metrics } = await openBroker(t, { retentionCheckIntervalMs: 50 });
  await broker.createTopic('old', 1, { 'retention.ms': HOUR_MS, 'segment.bytes': 1024 });
  const tp = { topic: 'old', partition: 0 };
  const oldTs = Date.now() - 48 * HOUR_MS;
  for (let i = 0; i < 20; i++) await broker.produce('old', [{ key: null, value: new Uint8Array(300), timestampMs: oldTs }], { acks: 1 });
  await broker.produce('old', [{ key: null, value: bytes('fresh') }], { acks: 1 });
  await eventually(() => broker.offsets(tp).logStartOffset > 0, 10_000);
  t.ok(metrics.get('tributary_broker_retention_bytes_freed_total')!.value({ topic: 'old' }) > 0);
  t.ok(metrics.get('tributary_broker_retention_runs_total')!.value() >= 1);
  // One more pass after the last produce: every expired segment is gone, later passes find none.
  await broker.runMaintenance();
  const values = (await readAll(broker, tp)).map((r) => r.value);
  t.equal(values[values.length - 1], 'fresh', 'the fresh record stays');
});

t.test('maintenance: runMaintenance compacts compact topics and never overlaps itself', async (t) => {
  const { broker, metrics } = await openBroker(t);
  await broker.createTopic('kv', 1, { 'cleanup.policy': 'compact', 'segment.bytes': 1024, 'min.compaction.lag.ms': 0 });
  const tp = { topic: 'kv', partition: 0 };
  for (let round = 0; round < 10; round++) {
    await broker.produce('kv', ['a', 'b', 'c'].map((k) => ({ key: bytes(k), value: bytes(`${k}${round}${'.'.repeat(100)}`) })), { acks: 1 });
  }
  const runsBefore = metrics.get('tributary_broker_retention_runs_total')!.value();
  const first = broker.runMaintenance();
  const second = broker.runMaintenance();
  await Promise.all([first, second]);
  t.equal(metrics.get('tributary_broker_retention_runs_total')!.value(), runsBefore + 1, 'the second call joined the running pass');
  const records = await readAll(broker, tp);
  const latest = new Map(records.map((r) => [r.key, r.value]));
  t.same([...latest.keys()].sort(), ['a', 'b', 'c']);
  t.equal(latest.get('a')!.slice(0, 2), 'a9', 'the newest value per key survives');
  t.ok(records.length < 30, `compaction dropped superseded records (${records.length} left of 30)`);
  t.equal(broker.offsets(tp).logEndOffset, 30, 'offsets are unchanged by compaction');
});

t.test('maintenance: close stops the scheduler', async (t) => {
  const { broker, metrics } = await openBroker(t, { retentionCheckIntervalMs: 20 });
  await broker.createTopic('x', 1);
  await eventually(() => metrics.get('tributary_broker_retention_runs_total')!.value() >= 2);
  await broker.close();
  const runs = metrics.get('tributary_broker_retention_runs_total')!.value();
  await new Promise((r) => setTimeout(r, 100));
  t.equal(metrics.get('tributary_broker_retention_runs_total')!.value(), runs, 'no pass after close');
});
