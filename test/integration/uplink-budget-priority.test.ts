// Purpose: the byte budget's drop-lower-priority policy between two real Tributary processes (its
// rule is unit-tested in test/unit/sync/budget.test.ts; this is the same over real sockets). The
// edge has a tiny budget and its target is down (port reserved, nothing listening); alarms are
// the higher class with drop-lower-priority, telemetry the lower with drop-oldest. Telemetry is
// stored first (within the budget), then alarms past it: every alarm append is admitted (kafkajs),
// the telemetry's oldest records are given up — counted and logged with offsets — and once the
// target is up kcat finds every alarm once, in order, and exactly the telemetry records that were
// not counted as dropped, once each, in order.
import t from 'tap';
import { eventually, startBroker, tempDir } from '../helpers/index.js';
import { kcatReadAll, metrics, startPolicyEdge, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { freePort } from '../helpers/cluster.js';

const SITE = 'edge1';
const BUDGET = 20_000;
const valueOf = (kind: string, i: number) => `${kind}-${String(i).padStart(4, '0')}-${'x'.repeat(990)}`;

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('drop-lower-priority over real sockets: alarms admitted past the budget, telemetry gives way, drops = what the target lacks', async (t) => {
    const port = await freePort();
    const { edge, producer, created } = await startPolicyEdge(t, SITE, port, ['--set', 'uplink.priorities=alarms', '--set', `uplink.backlogBytesMax=${BUDGET}`, '--set', 'uplink.onFullTopics=alarms=drop-lower-priority,telemetry=drop-oldest'], 'dlp-test');
    for (const name of ['telemetry', 'alarms']) t.equal(created[name], 200, `topic ${name} created at the edge`);
    const telemetry = Array.from({ length: 15 }, (_, i) => valueOf('t', i));
    for (const value of telemetry) await producer.send({ topic: 'telemetry', acks: -1, messages: [{ value, partition: 0 }] });
    const before = await metrics(edge);
    t.equal(sum(before, 'tributary_uplink_dropped_records_total'), 0, `15 telemetry records stored within the budget (${sum(before, 'tributary_uplink_backlog_bytes')} of ${BUDGET} bytes), nothing dropped`);
    const alarms = Array.from({ length: 10 }, (_, i) => valueOf('a', i));
    for (const value of alarms) await producer.send({ topic: 'alarms', acks: -1, messages: [{ value, partition: 0 }] });
    t.pass('all 10 alarm appends admitted past the budget (kafkajs, acks all, no retries)');
    const after = await metrics(edge);
    t.equal(sum(after, 'tributary_uplink_refused_appends_total'), 0, 'nothing refused');
    t.ok(sum(after, 'tributary_uplink_backlog_bytes') <= BUDGET, `the link stays within the budget: ${sum(after, 'tributary_uplink_backlog_bytes')} bytes`);

    const target = await startBroker(t, { dataDir: await tempDir(t), args: ['--kafka-port', String(port)] });
    const m = await eventually(async () => {
      const text = await metrics(edge);
      const done = sum(text, 'tributary_uplink_dropped_records_total') + sum(text, 'tributary_uplink_records_sent_total');
      return done >= telemetry.length + alarms.length ? text : Promise.reject(new Error(`${done} settled`));
    }, 30_000, 100);
    const dropped = sum(m, 'tributary_uplink_dropped_records_total', 'topic="telemetry"');
    t.ok(dropped > 0 && dropped < telemetry.length, `telemetry gave way: ${dropped} of ${telemetry.length} dropped`);
    t.equal(sum(m, 'tributary_uplink_dropped_records_total', 'topic="alarms"'), 0, 'no alarm dropped');
    const logged = edge.logs.filter((l) => l.msg === 'uplink drop: source records given up by the on-full policy (not forwarded)');
    t.same(logged.map((l) => [l.source, l.fromOffset, l.toOffset]), [['telemetry-0', 0, dropped]], `logged as a gap event with its offsets: telemetry-0 [0, ${dropped})`);
    t.match(String(logged[0]?.why), /drop-lower-priority: .* alarms-0 \(class 0\).* class 1 gives way/, 'the log says why (an alarm of class 0, class 1 gave way)');
    const a = verdict(await kcatReadAll(target.listeners.kafka!, `${SITE}.alarms`), { site: SITE, topic: 'alarms', partition: 0 }, alarms);
    t.same({ found: a.found, lost: a.lost.length, duplicated: a.duplicated.length, reordered: a.reordered, wrongValue: a.wrongValue }, { found: 10, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, 'every alarm in the target once, in order (kcat)');
    const v = verdict(await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`), { site: SITE, topic: 'telemetry', partition: 0 }, telemetry);
    t.same({ found: v.found, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { found: telemetry.length - dropped, duplicated: 0, reordered: 0, wrongValue: 0 }, 'the telemetry kept: once each, in order');
    t.same(v.lost, Array.from({ length: dropped }, (_, i) => i), 'what the target lacks is exactly the counted, logged drops');
  });
}
