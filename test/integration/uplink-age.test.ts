// Purpose: the uplink's bound by age (uplink.backlogAgeMsMax) between two real Tributary processes,
// the target down while the backlog ages (port reserved, nothing listening). telemetry is
// drop-oldest: its records older than the bound are given up — counted, logged with offsets — and
// appends stay admitted; alarms is block: once its unforwarded records are older than the bound an
// append is refused (kafkajs sees KAFKA_STORAGE_ERROR) and nothing of it is lost. Then the target
// comes up: kcat finds every alarm once, in order, and exactly the telemetry records not counted
// as dropped, once each, in order; alarms are admitted again.
import t from 'tap';
import { eventually, startBroker, tempDir } from '../helpers/index.js';
import { kcatReadAll, metrics, startPolicyEdge, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { freePort } from '../helpers/cluster.js';

const SITE = 'edge1';
const AGE_MS = 6000;

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('age bound: drop-oldest gives up records older than backlogAgeMsMax, block refuses appends; the target lacks exactly the drops', async (t) => {
    const port = await freePort();
    const { edge, producer, created } = await startPolicyEdge(t, SITE, port, ['--set', 'uplink.backlogBytesMax=0', '--set', `uplink.backlogAgeMsMax=${AGE_MS}`, '--set', 'uplink.onFullTopics=telemetry=drop-oldest,alarms=block'], 'age-test');
    for (const name of ['telemetry', 'alarms']) t.equal(created[name], 200, `topic ${name} created at the edge`);
    const send = (topic: string, value: string) => producer.send({ topic, acks: -1, messages: [{ value, partition: 0 }] });
    const telemetry = Array.from({ length: 30 }, (_, i) => `t-${i}`);
    const alarms: string[] = Array.from({ length: 5 }, (_, i) => `a-${i}`);
    for (const v of telemetry.slice(0, 20)) await send('telemetry', v);
    const firstAlarmAt = Date.now();
    for (const v of alarms) await send('alarms', v);
    t.equal(sum(await metrics(edge), 'tributary_uplink_dropped_records_total'), 0, 'younger than the bound: nothing dropped, every append admitted');

    // The bound passes: telemetry's 20 are given up, the alarms' block refuses.
    // Alarms keep coming while the bound approaches: each admitted one is acknowledged (and must arrive), until one is refused.
    const refusal = await eventually(async () => {
      const value = `a-${alarms.length}`;
      try {
        await send('alarms', value);
        alarms.push(value);
        return Promise.reject(new Error('admitted'));
      } catch (err) {
        return err as { type?: string; cause?: { type?: string } };
      }
    }, AGE_MS + 10_000, 300);
    t.equal(refusal.type ?? refusal.cause?.type, 'KAFKA_STORAGE_ERROR', 'block: past the bound an append is refused (KAFKA_STORAGE_ERROR)');
    const refusedAfter = Date.now() - firstAlarmAt;
    t.ok(refusedAfter >= AGE_MS - 300, `not before the bound: refused ${refusedAfter} ms after the oldest alarm was stored (bound ${AGE_MS} ms)`);
    for (const v of telemetry.slice(20)) await send('telemetry', v);
    t.pass('drop-oldest: appends still admitted');
    // Drops are counted and logged when the uplink skips them (at its next resume: the target is down until then).

    const target = await startBroker(t, { dataDir: await tempDir(t), args: ['--kafka-port', String(port)] });
    const m = await eventually(async () => {
      const text = await metrics(edge);
      const done = sum(text, 'tributary_uplink_dropped_records_total') + sum(text, 'tributary_uplink_records_sent_total');
      return done >= telemetry.length + alarms.length ? text : Promise.reject(new Error(`${done} settled`));
    }, 30_000, 100);
    const dropped = sum(m, 'tributary_uplink_dropped_records_total', 'topic="telemetry"');
    t.ok(dropped >= 20 && dropped < telemetry.length, `telemetry: ${dropped} dropped (the 20 older than the bound, and any that aged past it before the target came up)`);
    const spans = edge.logs.filter((e) => e.msg === 'uplink drop: source records given up by the on-full policy (not forwarded)' && e.source === 'telemetry-0');
    t.equal(spans.reduce((n, e) => n + Number(e.records), 0), dropped, 'every dropped record is in a logged gap event');
    t.match(String(spans[0]?.why), /stored more than uplink\.backlogAgeMsMax=6000 ms ago/, 'the drop says why (the age bound)');
    t.equal(sum(m, 'tributary_uplink_dropped_records_total', 'topic="alarms"'), 0, 'block: no alarm dropped');
    const a = verdict(await kcatReadAll(target.listeners.kafka!, `${SITE}.alarms`), { site: SITE, topic: 'alarms', partition: 0 }, alarms);
    t.same({ found: a.found, lost: a.lost.length, duplicated: a.duplicated.length, reordered: a.reordered }, { found: alarms.length, lost: 0, duplicated: 0, reordered: 0 }, 'every acknowledged alarm in the target once, in order (kcat)');
    const v = verdict(await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`), { site: SITE, topic: 'telemetry', partition: 0 }, telemetry);
    t.same({ found: v.found, duplicated: v.duplicated.length, reordered: v.reordered }, { found: telemetry.length - dropped, duplicated: 0, reordered: 0 }, 'the telemetry kept: once each, in order');
    t.same(v.lost, Array.from({ length: dropped }, (_, i) => i), 'what the target lacks is exactly the counted drops (the oldest)');
    await eventually(() => send('alarms', 'a-after'), 10_000, 200);
    t.pass('drained: alarms admitted again');
  });
}
