// Purpose: the uplink's bandwidth cap and priority classes between two real Tributary processes.
// A backlog is taken while no uplink is configured (a link that was down), then the edge restarts
// with the uplink on. The cap: the produce bytes the edge reports sending (its /metrics) over the
// drain come within ±20% of uplink.bandwidthBytesPerSec. The priorities: no telemetry record is
// acknowledged by the target before every alarm is; and the target holds every record once, in
// order, read back with kcat.
import t from 'tap';
import { performance } from 'node:perf_hooks';
import { eventually, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatReadAll, metrics, sh, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';

const SITE = 'edge1';

function age(text: string): number {
  const m = /^tributary_uplink_oldest_unsent_age_seconds\{[^}]*\} ([0-9.e+-]+)$/m.exec(text);
  return m ? Number(m[1]) : -1;
}

/** Loads `values` into topic-partition 0 of a stopped-uplink edge in batches of `perBatch`. */
async function load(edge: BrokerProcess, topic: string, values: string[], perBatch: number): Promise<void> {
  const r = await sh('kcat', ['-P', '-b', edge.listeners.kafka!, '-t', topic, '-p', '0', '-X', 'acks=all', '-X', `batch.num.messages=${perBatch}`], values.join('\n') + '\n');
  if (r.code !== 0) throw new Error(`kcat load failed: ${r.stderr}`);
}

function uplinkArgs(target: string, topics: string, extra: string[]): string[] {
  return ['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${target}`, '--set', `uplink.topics=${topics}`, '--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=200', '--set', 'broker.defaultPartitions=1', ...extra];
}

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('uplink bandwidth cap: the drain runs at the configured rate ±20%', async (t) => {
    const target = await startBroker(t, { dataDir: await tempDir(t) });
    const dir = await tempDir(t);
    const loader = await startBroker(t, { dataDir: dir, args: ['--set', 'broker.defaultPartitions=1'] });
    const n = 1500;
    const expected = Array.from({ length: n }, (_, i) => `t-${i}-${'x'.repeat(200)}`);
    await load(loader, 'telemetry', expected, 50); // ~11 KB batches, forwarded raw
    t.equal(await loader.stop(), 0, 'backlog of 1500 records acknowledged by the edge');
    const rate = 100_000;
    const edge = await startBroker(t, { dataDir: dir, args: uplinkArgs(target.listeners.kafka!, 'telemetry', ['--set', `uplink.bandwidthBytesPerSec=${rate}`, '--set', 'uplink.bandwidthBurstBytes=16384']) });
    // From the first acknowledged batch (the burst and the start-up requests are behind us) to the last.
    const first = await eventually(async () => {
      const m = await metrics(edge);
      const sent = sum(m, 'tributary_uplink_records_sent_total');
      return sent > 0 && sent < n ? { ms: performance.now(), bytes: sum(m, 'tributary_uplink_bytes_sent'), ageS: age(m) } : Promise.reject(new Error(`sent ${sent}`));
    }, 30_000, 20);
    // The backlog was written before the edge restarted: its oldest unsent record is that old.
    t.ok(first.ageS > 0.5, `age of the oldest unsent record while draining: ${first.ageS.toFixed(2)} s`);
    const last = await eventually(async () => {
      const m = await metrics(edge);
      return sum(m, 'tributary_uplink_records_sent_total') >= n ? { ms: performance.now(), bytes: sum(m, 'tributary_uplink_bytes_sent') } : Promise.reject(new Error('not yet'));
    }, 60_000, 20);
    await eventually(async () => (age(await metrics(edge)) === 0 ? true : Promise.reject(new Error('not idle yet'))), 10_000, 100);
    t.pass('the age is 0 once caught up');
    const achieved = (last.bytes - first.bytes) / ((last.ms - first.ms) / 1000);
    t.ok(last.ms - first.ms > 2000, `the drain took ${((last.ms - first.ms) / 1000).toFixed(1)} s (uncapped it takes well under one)`);
    t.ok(achieved > rate * 0.8 && achieved < rate * 1.2, `achieved ${Math.round(achieved)} B/s against a cap of ${rate} B/s (${((achieved / rate - 1) * 100).toFixed(1)}%)`);
    const v = verdict(await kcatReadAll(target.listeners.kafka!, 'edge1.telemetry'), { site: SITE, topic: 'telemetry', partition: 0 }, expected);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: n, lost: 0, duplicated: 0, reordered: 0 }, 'every record once, in order');
  });

  t.test('uplink priorities: after an outage the alarms drain before any telemetry', async (t) => {
    const target = await startBroker(t, { dataDir: await tempDir(t) });
    const dir = await tempDir(t);
    const loader = await startBroker(t, { dataDir: dir, args: ['--set', 'broker.defaultPartitions=1'] });
    const n = 600;
    const telemetry = Array.from({ length: n }, (_, i) => `t-${i}-${'x'.repeat(300)}`);
    const alarms = Array.from({ length: n }, (_, i) => `a-${i}-${'y'.repeat(300)}`);
    // Telemetry first: stored before the alarms, so only the priority can put the alarms ahead.
    await load(loader, 'telemetry', telemetry, 50);
    await load(loader, 'alarms', alarms, 50);
    t.equal(await loader.stop(), 0, 'backlog of 600 + 600 records acknowledged by the edge');
    const edge = await startBroker(t, { dataDir: dir, args: uplinkArgs(target.listeners.kafka!, 'telemetry,alarms', ['--set', 'uplink.priorities=alarms', '--set', 'uplink.bandwidthBytesPerSec=150000', '--set', 'uplink.bandwidthBurstBytes=16384']) });
    const samples: Array<{ alarms: number; telemetry: number }> = [];
    await eventually(async () => {
      const m = await metrics(edge);
      const s = { alarms: sum(m, 'tributary_uplink_records_sent_total', 'topic="alarms"'), telemetry: sum(m, 'tributary_uplink_records_sent_total', 'topic="telemetry"') };
      samples.push(s);
      return s.alarms + s.telemetry >= 2 * n ? true : Promise.reject(new Error(JSON.stringify(s)));
    }, 60_000, 20);
    const early = samples.filter((s) => s.alarms > 0 && s.alarms < n);
    t.ok(early.length >= 3, `the alarms' drain was watched while under way (${early.length} samples)`);
    const overtaken = samples.filter((s) => s.telemetry > 0 && s.alarms < n);
    t.same(overtaken, [], 'no telemetry acknowledged before every alarm was');
    t.ok(samples.some((s) => s.alarms === n && s.telemetry < n), 'telemetry drained after the alarms');
    for (const [topic, expected] of [['alarms', alarms], ['telemetry', telemetry]] as const) {
      const v = verdict(await kcatReadAll(target.listeners.kafka!, `edge1.${topic}`), { site: SITE, topic, partition: 0 }, expected);
      t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: n, lost: 0, duplicated: 0, reordered: 0 }, `${topic}: every record once, in order`);
    }
  });
}
