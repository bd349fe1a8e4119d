// Purpose: newest-first drain (uplink.drainOrderTopics) between two real Tributary processes, with
// the edge killed by SIGKILL twice: once while the head (the newest window) is being sent, once in
// the middle of the backfill. A backlog of 3000 records is stored while no uplink runs; the edge
// restarts with newest-first and newestFirstRecords=510 (the split falls inside a stored batch of
// 50). Afterwards kcat reads the target: every record exactly once, and in target order exactly
// source offsets 2490..2999 then 0..2489 — the newest first, each range in order, nothing resent.
// Then records appended after the backfill retire the split (back to the plain read-back), and a
// third SIGKILL and restart still resend nothing. Second case: drop-oldest under a byte budget while
// the backfill runs gives up the backlog's oldest records only; the target lacks exactly those.
import t from 'tap';
import { eventually, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatProduce, kcatReadAll, metrics, sh, sum, traceOrigins, uplinkToolsPresent, verdict } from '../helpers/uplink.js';

const SITE = 'edge1';
const N = 3000;
const HEAD = 510;

function lag(text: string): number {
  return sum(text, 'tributary_uplink_lag_records', 'topic="telemetry"');
}

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('newest-first: the newest window, then the backlog; SIGKILL mid-head and mid-backfill; every record once', async (t) => {
    const target = await startBroker(t, { dataDir: await tempDir(t) });
    const dir = await tempDir(t);
    const loader = await startBroker(t, { dataDir: dir, args: ['--set', 'broker.defaultPartitions=1'] });
    const values = Array.from({ length: N }, (_, i) => `n-${i}`);
    const loaded = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', 'telemetry', '-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=50'], values.join('\n') + '\n');
    t.equal(loaded.code, 0, 'backlog stored');
    t.equal(await loader.stop(), 0, `${N} records acknowledged by the edge while no uplink ran`);
    const args = [
      ...['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${target.listeners.kafka}`, '--set', 'uplink.topics=telemetry'],
      ...['--set', 'uplink.drainOrderTopics=telemetry=newest-first', '--set', `uplink.newestFirstRecords=${HEAD}`],
      // Slow enough to kill mid-range: small reads, a 30 kB/s cap.
      ...['--set', 'uplink.readBytesMax=2048', '--set', 'uplink.bandwidthBytesPerSec=30000', '--set', 'uplink.bandwidthBurstBytes=4096'],
      ...['--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=200', '--set', 'broker.defaultPartitions=1'],
    ];
    let edge: BrokerProcess = await startBroker(t, { dataDir: dir, args });
    // Mid-head: some of the newest window acknowledged, not all of it.
    await eventually(async () => {
      const sent = sum(await metrics(edge), 'tributary_uplink_records_sent_total');
      return sent >= 150 && sent < HEAD ? true : Promise.reject(new Error(`sent ${sent}`));
    }, 30_000, 10);
    const split = edge.logs.find((l) => /^uplink newest-first: the newest/.test(String(l.msg)));
    t.same([split?.split, split?.backfillFrom], [N - HEAD, 0], `split logged: ${String(split?.msg)}`);
    await edge.kill();
    t.pass('edge killed (SIGKILL) mid-head');
    edge = await startBroker(t, { dataDir: dir, args });
    // Mid-backfill: the head done, part of the backlog acknowledged (lag counts the backfill's rest).
    await eventually(async () => {
      const l = lag(await metrics(edge));
      return l > 300 && l < N - HEAD - 600 ? true : Promise.reject(new Error(`lag ${l}`));
    }, 60_000, 10);
    await edge.kill();
    t.pass('edge killed (SIGKILL) mid-backfill');
    edge = await startBroker(t, { dataDir: dir, args });
    await eventually(async () => ((await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`)).length >= N ? true : Promise.reject(new Error('not yet'))), 90_000, 500);
    await eventually(async () => (lag(await metrics(edge)) === 0 ? true : Promise.reject(new Error('lag'))), 20_000, 100);
    // New appends after the backfill: the first head batch acknowledged after it retires the split;
    // then a SIGKILL and a restart resume by the plain read-back, and 10 more arrive once.
    const later = Array.from({ length: 20 }, (_, i) => `n-${N + i}`);
    values.push(...later);
    await kcatProduce(edge.listeners.kafka!, 'telemetry', 0, later.slice(0, 10));
    await eventually(() => (edge.logs.some((l) => l.msg === 'uplink newest-first: backfill complete') ? true : Promise.reject(new Error('split not retired'))), 20_000, 100);
    t.pass('a head batch after the backfill retired the split');
    await eventually(async () => (lag(await metrics(edge)) === 0 ? true : Promise.reject(new Error('lag'))), 20_000, 100);
    await new Promise((r) => setTimeout(r, 300)); // the state (split retired) saved at the catch-up
    await edge.kill();
    edge = await startBroker(t, { dataDir: dir, args });
    await kcatProduce(edge.listeners.kafka!, 'telemetry', 0, later.slice(10));
    await eventually(async () => ((await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`)).length >= N + 20 ? true : Promise.reject(new Error('not yet'))), 30_000, 300);
    await eventually(async () => (lag(await metrics(edge)) === 0 ? true : Promise.reject(new Error('lag'))), 20_000, 100);
    await new Promise((r) => setTimeout(r, 500));
    const records = await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`);
    const v = verdict(records, { site: SITE, topic: 'telemetry', partition: 0 }, values);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, wrongValue: v.wrongValue, withoutOrigin: v.withoutOrigin }, { found: N + 20, lost: 0, duplicated: 0, wrongValue: 0, withoutOrigin: 0 }, 'every record once (kcat), each value at its origin offset');
    const order = traceOrigins(records).map((r) => Number(r.headers['tributary.origin.offset']));
    const expected = [...Array.from({ length: HEAD }, (_, i) => N - HEAD + i), ...Array.from({ length: N - HEAD }, (_, i) => i), ...Array.from({ length: 20 }, (_, i) => N + i)];
    const firstDiff = order.findIndex((o, i) => o !== expected[i]);
    t.equal(firstDiff, -1, `target order is ${N - HEAD}..${N - 1}, then 0..${N - HEAD - 1}, then ${N}..${N + 19}${firstDiff >= 0 ? ` (differs at ${firstDiff}: ${order.slice(firstDiff, firstDiff + 5).join(',')})` : ''}`);
  });

  t.test('newest-first with drop-oldest: a drop during the backfill gives up the oldest of the backlog, counted and logged; the target lacks exactly those', async (t) => {
    const target = await startBroker(t, { dataDir: await tempDir(t) });
    const dir = await tempDir(t);
    const loader = await startBroker(t, { dataDir: dir, args: ['--set', 'broker.defaultPartitions=1'] });
    const values = Array.from({ length: N }, (_, i) => `d-${i}-${'x'.repeat(40)}`);
    const loaded = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', 'telemetry', '-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=50'], values.join('\n') + '\n');
    t.equal(loaded.code, 0, 'backlog stored');
    t.equal(await loader.stop(), 0, `${N} records acknowledged while no uplink ran`);
    const edge = await startBroker(t, {
      dataDir: dir,
      args: [
        ...['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${target.listeners.kafka}`, '--set', 'uplink.topics=telemetry'],
        ...['--set', 'uplink.drainOrderTopics=telemetry=newest-first', '--set', `uplink.newestFirstRecords=${HEAD}`],
        ...['--set', 'uplink.backlogBytesMax=250000', '--set', 'uplink.onFull=drop-oldest'],
        ...['--set', 'uplink.readBytesMax=2048', '--set', 'uplink.bandwidthBytesPerSec=30000', '--set', 'uplink.bandwidthBurstBytes=4096'],
        ...['--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=200', '--set', 'broker.defaultPartitions=1'],
      ],
    });
    // The head sent, the backfill under way: then a burst past the budget.
    await eventually(async () => {
      const sent = sum(await metrics(edge), 'tributary_uplink_records_sent_total');
      return sent >= HEAD + 100 ? true : Promise.reject(new Error(`sent ${sent}`));
    }, 60_000, 20);
    const burst = Array.from({ length: 2000 }, (_, i) => `d-${N + i}-${'y'.repeat(60)}`);
    values.push(...burst);
    await kcatProduce(edge.listeners.kafka!, 'telemetry', 0, burst);
    t.pass('2000 more records admitted past the budget (drop-oldest)');
    const done = await eventually(async () => {
      const m = await metrics(edge);
      const settled = sum(m, 'tributary_uplink_records_sent_total') + sum(m, 'tributary_uplink_dropped_records_total');
      return settled >= values.length && lag(m) === 0 ? m : Promise.reject(new Error(`settled ${settled}`));
    }, 120_000, 200);
    const dropped = sum(done, 'tributary_uplink_dropped_records_total');
    t.ok(dropped > 0, `${dropped} records dropped`);
    const spans = edge.logs.filter((l) => l.msg === 'uplink drop: source records given up by the on-full policy (not forwarded)').map((l) => [Number(l.fromOffset), Number(l.toOffset)]);
    const loggedOffsets = spans.flatMap(([a, b]) => Array.from({ length: b - a }, (_, i) => a + i));
    t.equal(loggedOffsets.length, dropped, `the logged gap events (${JSON.stringify(spans)}) hold exactly the counted drops`);
    await new Promise((r) => setTimeout(r, 500));
    const v = verdict(await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`), { site: SITE, topic: 'telemetry', partition: 0 }, values);
    t.same({ found: v.found, duplicated: v.duplicated.length, wrongValue: v.wrongValue }, { found: values.length - dropped, duplicated: 0, wrongValue: 0 }, 'the records not dropped: once each (kcat)');
    t.same(v.lost, [...loggedOffsets].sort((a, b) => a - b), 'what the target lacks is exactly the logged, counted drops');
    t.ok(v.lost.every((o) => o < N - HEAD), 'only the backlog gave way (the head and the burst were forwarded)');
  });
}
