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
