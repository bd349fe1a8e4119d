// Purpose: the uplink's byte budget at a real broker's write path (host/sync/budget.ts), in one
// process: drop-lower-priority admits an alarm append by giving up telemetry's oldest records
// (lowest class first), refuses — dropping nothing — when lower classes hold too little, and never
// takes from a `block` partition; `block` holds retention at the first unforwarded offset.
import t from 'tap';
import { Broker } from '../../../host/broker/broker.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { LinkBudget, type BudgetPartition } from '../../../host/sync/budget.js';
import type { OnFullPolicy } from '../../../host/sync/options.js';
import { tempDir } from '../../helpers/index.js';

/** A source partition as the uplink holds it: nothing forwarded yet, a drop floor. */
function partition(topic: string, priority: number, policy: OnFullPolicy): BudgetPartition & { floor: number; drops: number[] } {
  return {
    source: { topic, partition: 0 },
    priority,
    policy,
    floor: 0,
    drops: [],
    unforwardedFrom() {
      return this.floor;
    },
    dropBelow(offset: number) {
      if (offset > this.floor) {
        this.drops.push(offset);
        this.floor = offset;
      }
    },
  };
}

t.test('budget: drop-lower-priority takes from the lowest class, refuses when too little is there, never touches block', async (t) => {
  const broker = await Broker.open({ dataDir: await tempDir(t) }, { logger: silentLogger, metrics: new MetricsRegistry() });
  t.teardown(() => broker.close());
  for (const name of ['alarms', 'telemetry', 'logs']) await broker.createTopic(name, 1);
  const alarms = partition('alarms', 0, 'drop-lower-priority');
  const telemetry = partition('telemetry', 1, 'drop-oldest');
  const logs = partition('logs', 2, 'block');
  const parts = [alarms, telemetry, logs];
  const refusals: string[] = [];
  const value = Buffer.alloc(900, 1);
  const put = (topic: string) => broker.produce(topic, [{ key: null, value }], { acks: -1, partition: 0 });
  // Fill without a budget, then measure one stored batch.
  for (let i = 0; i < 10; i++) await put('telemetry');
  for (let i = 0; i < 5; i++) await put('logs');
  const batch = broker.bytesBetween({ topic: 'logs', partition: 0 }, 0) / 5;
  const budget = new LinkBudget(broker, 15 * batch, () => parts, (tp) => parts.find((p) => p.source.topic === tp.topic), { refused: (tp) => refusals.push(tp.topic), drained: () => undefined });
  broker.setAppendAdmission(budget);
  t.equal(budget.backlogBytes(), 15 * batch, 'the link holds exactly its budget (15 batches)');

  await put('alarms');
  t.ok(telemetry.floor > 0, `an alarm over the budget is admitted by dropping telemetry's oldest (floor ${telemetry.floor})`);
  t.equal(logs.floor, 0, 'the block partition gives nothing');
  t.ok(budget.backlogBytes() <= 15 * batch, `the link is back within the budget: ${budget.backlogBytes()}`);

  // Drops land on index entries (every index.interval.bytes), so a little more than the excess went: block fills the room.
  let refusedLogs = null as { code?: string } | null;
  for (let i = 0; i < 20 && !refusedLogs; i++) await put('logs').catch((err) => (refusedLogs = err));
  t.equal(refusedLogs?.code, 'UPLINK_BACKLOG_FULL', 'block: the append that would pass the budget is refused');
  t.ok(budget.backlogBytes() <= 15 * batch && budget.backlogBytes() + batch > 15 * batch, `block: refused at the boundary (${budget.backlogBytes()} + ${batch} > ${15 * batch})`);
  for (let i = 0; i < 12; i++) await put('alarms').catch(() => undefined);
  t.equal(telemetry.floor, broker.offsets({ topic: 'telemetry', partition: 0 }).logEndOffset, 'telemetry gave up everything it held');
  const before = budget.backlogBytes();
  await t.rejects(put('alarms'), { code: 'UPLINK_BACKLOG_FULL' }, 'nothing lower left to drop: the alarm is refused like block');
  t.equal(budget.backlogBytes(), before, 'a refusal drops nothing');
  t.equal(logs.floor, 0, 'block records were never dropped');
  t.ok(refusals.includes('alarms') && refusals.includes('logs'), 'refusals reported per topic');
  t.equal(budget.retentionHold({ topic: 'logs', partition: 0 }), 0, 'block: retention held at the first unforwarded offset');
  t.equal(budget.retentionHold({ topic: 'telemetry', partition: 0 }), undefined, 'a drop policy: no hold');
  broker.setAppendAdmission(undefined);
});

t.test('budget, age bound: the boundary by record timestamp; drop-oldest drops below it, block refuses until it drains', async (t) => {
  const broker = await Broker.open({ dataDir: await tempDir(t) }, { logger: silentLogger, metrics: new MetricsRegistry() });
  t.teardown(() => broker.close());
  for (const name of ['telemetry', 'alarms']) await broker.createTopic(name, 1);
  const telemetry = partition('telemetry', 1, 'drop-oldest');
  const alarms = partition('alarms', 0, 'block');
  const parts = [telemetry, alarms];
  const T = 1_700_000_000_000;
  const AGE = 60_000;
  // Records at T, T+1000, ..., T+9000 in each topic (one batch each).
  for (let i = 0; i < 10; i++) {
    for (const topic of ['telemetry', 'alarms']) await broker.produce(topic, [{ key: null, value: Buffer.from(`v${i}`), timestampMs: T + i * 1000 }], { acks: -1, partition: 0 });
  }
  const refusals: string[] = [];
  // No byte budget (0): the age bound alone.
  const budget = new LinkBudget(broker, 0, () => parts, (tp) => parts.find((p) => p.source.topic === tp.topic), { refused: (_tp, _b, _n, _f, why) => refusals.push(why), drained: () => undefined }, AGE);
  broker.setAppendAdmission(budget);
  t.teardown(() => broker.setAppendAdmission(undefined));
  const put = (topic: string) => broker.produce(topic, [{ key: null, value: Buffer.from('new'), timestampMs: T + 100_000 }], { acks: -1, partition: 0 });

  // now = T + 3000 + AGE: the record at T+3000 is exactly AGE old (within the bound); T+2000 is older.
  await budget.refreshAge(T + 3000 + AGE);
  t.equal(telemetry.floor, 3, 'drop-oldest: records 0..2 (older than the bound) dropped; 3 (exactly at the bound) kept');
  t.equal(alarms.floor, 0, 'block: nothing dropped');
  await t.rejects(put('alarms'), { code: 'UPLINK_BACKLOG_FULL' }, 'block: an append refused while older records wait');
  t.match(refusals[0], /older than uplink\.backlogAgeMsMax=60000 ms/, 'the refusal names the key');
  await put('telemetry');
  t.pass('drop-oldest: appends admitted');
  // The alarms' old records forwarded (the floor stands for the uplink's position): admitted again.
  alarms.floor = 3;
  await put('alarms');
  t.pass('block: admitted once nothing older than the bound waits');

  // One millisecond earlier the boundary record would be too young to drop: no drop at all.
  const fresh = partition('telemetry', 1, 'drop-oldest');
  const b2 = new LinkBudget(broker, 0, () => [fresh], () => fresh, { refused: () => undefined, drained: () => undefined }, AGE);
  await b2.refreshAge(T + AGE);
  t.equal(fresh.floor, 0, 'now = T + AGE: the first record is exactly AGE old: kept');
  await b2.refreshAge(T + AGE + 1);
  t.equal(fresh.floor, 1, 'now = T + AGE + 1: it is dropped');
  const off = new LinkBudget(broker, 0, () => [fresh], () => fresh, { refused: () => undefined, drained: () => undefined }, 0);
  await off.refreshAge(T + 10 * AGE);
  t.equal(fresh.floor, 1, 'backlogAgeMsMax 0: no bound');
});

t.test('budget: appends in flight together count before their writes return (a pipelining producer cannot pass it)', async (t) => {
  // flush=always with a slow fsync: each append's bytes reach the log's sizes only once fsynced.
  const broker = await Broker.open({ dataDir: await tempDir(t), injectedFlushDelayMs: 30 }, { logger: silentLogger, metrics: new MetricsRegistry() });
  t.teardown(() => broker.close());
  await broker.createTopic('logs', 1);
  const logs = partition('logs', 0, 'block');
  const value = Buffer.alloc(900, 1);
  const put = () => broker.produce('logs', [{ key: null, value }], { acks: -1, partition: 0 });
  await put();
  const batch = broker.bytesBetween({ topic: 'logs', partition: 0 }, 0);
  const budget = new LinkBudget(broker, 5 * batch + batch / 2, () => [logs], () => logs, { refused: () => undefined, drained: () => undefined });
  broker.setAppendAdmission(budget);
  // 1 stored + 10 sent at once, none awaited: room for 4 more.
  const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => put()));
  const admitted = outcomes.filter((o) => o.status === 'fulfilled').length;
  const refused = outcomes.filter((o) => o.status === 'rejected' && (o.reason as { code?: string }).code === 'UPLINK_BACKLOG_FULL').length;
  t.same({ admitted, refused }, { admitted: 4, refused: 6 }, 'exactly the room was admitted, the rest refused UPLINK_BACKLOG_FULL');
  t.ok(budget.backlogBytes() <= 5 * batch + batch / 2, `within the budget once written: ${budget.backlogBytes()} of ${5 * batch + batch / 2}`);
  t.equal(budget.backlogBytes(), broker.bytesBetween({ topic: 'logs', partition: 0 }, 0), 'nothing left counted as landing once every write returned');
  broker.setAppendAdmission(undefined);
});
