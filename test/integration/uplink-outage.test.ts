// Purpose: a days-long outage, time-compressed, between two real Tributary processes: the target
// is down while the edge keeps taking records, and the edge's retention (retention.ms = 3 s here,
// standing for days; on-full policy drop-oldest, so no hold) deletes records the uplink has not
// forwarded. When the target returns (same port, restarted from its data), the uplink resumes
// from what it reads back from the target: nothing duplicated, nothing reordered, and the only
// records missing from the target are the ones retention removed — each counted in
// tributary_uplink_gap_records_total and named by offsets in a gap log line.
import t from 'tap';
import { eventually, sleep, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { FAST_LINK_SETS, kcatReadAll, metrics, sh, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { freePort } from '../helpers/cluster.js';

const SITE = 'edge1';

async function metric(edge: BrokerProcess, name: string): Promise<number> {
  return sum(await metrics(edge), name);
}

async function produce(edge: BrokerProcess, values: string[]): Promise<void> {
  const r = await sh('kcat', ['-P', '-b', edge.listeners.kafka!, '-t', 'telemetry', '-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=5'], values.join('\n') + '\n');
  if (r.code !== 0) throw new Error(`kcat produce failed: ${r.stderr}`);
}

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('uplink after a long outage (time-compressed): retention gaps counted and logged, the rest once, in order', async (t) => {
    const port = await freePort();
    const targetDir = await tempDir(t);
    let target = await startBroker(t, { dataDir: targetDir, args: ['--kafka-port', String(port)] });
    const edge = await startBroker(t, {
      dataDir: await tempDir(t),
      args: [
        ...['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=127.0.0.1:${port}`, '--set', 'uplink.topics=telemetry', '--set', 'uplink.onFull=drop-oldest'],
        ...FAST_LINK_SETS,
        ...['--set', 'broker.retentionCheckIntervalMs=200'],
      ],
    });
    const created = await fetch(`http://${edge.listeners.http}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'telemetry', partitions: 1, config: { 'retention.ms': 3000, 'segment.bytes': 4096 } }) });
    t.equal(created.status, 200, 'edge topic with retention.ms=3000 and 4 KiB segments');
    const value = (i: number) => `v-${String(i).padStart(4, '0')}-${'z'.repeat(400)}`;
    const expected = Array.from({ length: 120 }, (_, i) => value(i));
    await produce(edge, expected.slice(0, 40));
    await eventually(async () => (await metric(edge, 'tributary_uplink_records_sent_total')) >= 40, 20_000, 100);
    t.pass('40 records forwarded while the link was up');

    t.equal(await target.stop(), 0, 'the target goes away (the outage begins)');
    await produce(edge, expected.slice(40, 100));
    // Retention removes expired segments, unforwarded ones included (drop-oldest holds nothing back).
    await eventually(() => edge.logs.some((l) => l.msg === 'retention deleted segments' && Number(l.logStartOffset) > 40), 20_000, 100);
    t.pass('retention deleted unforwarded records at the edge during the outage');
    // Observability during the outage: the lag in seconds keeps being reported (the age of the oldest unforwarded record still stored).
    const lagSeconds = await eventually(async () => {
      const v = Number(/^tributary_uplink_lag_seconds\{[^}]*\} ([\d.]+)$/m.exec(await metrics(edge))?.[1]);
      return v > 0 ? v : Promise.reject(new Error(`lag seconds ${v}`));
    }, 15_000, 100); // sampled every uplink.bandwidthWindowMs / 10 (1 s); a loaded run missed 5 s once
    t.ok(lagSeconds > 0 && lagSeconds < 60, `lag in seconds reported during the outage: ${lagSeconds}`);
    target = await startBroker(t, { dataDir: targetDir, args: ['--kafka-port', String(port)] });
    // The outage is over: new records follow the resume (within retention.ms, so they stay).
    await produce(edge, expected.slice(100, 120));
    t.pass('120 records acknowledged by the edge in all');
    await eventually(async () => (await metric(edge, 'tributary_uplink_records_sent_total')) + (await metric(edge, 'tributary_uplink_gap_records_total')) >= 120, 30_000, 100);
    await sleep(300);
    const gaps = await metric(edge, 'tributary_uplink_gap_records_total');
    const sent = await metric(edge, 'tributary_uplink_records_sent_total');
    t.ok(gaps > 0 && sent >= 60 && gaps + sent === 120, `forwarded ${sent} (the 20 after the outage among them) + gaps ${gaps} = 120`);
    const gapLines = edge.logs.filter((l) => l.msg === 'uplink gap: source records removed by retention before they were forwarded');
    const gapOffsets = gapLines.flatMap((l) => Array.from({ length: Number(l.toOffset) - Number(l.fromOffset) }, (_, i) => Number(l.fromOffset) + i));
    t.equal(gapOffsets.length, gaps, 'every gap record is named by a gap log line (offsets)');
    // Bytes too (observability): retention deleted them, so they come from the uplink's last sample of the unforwarded range.
    const gapBytes = await metric(edge, 'tributary_uplink_gap_bytes_total');
    t.equal(gapBytes, gapLines.reduce((n, l) => n + Number(l.bytes), 0), `gap bytes in /metrics (${gapBytes}) = the gap lines' bytes`);
    t.same([...new Set(gapLines.map((l) => l.bytesMeasured))], ['sampled'], 'measured from a sample taken before the deletion (the uplink had not moved since: an outage)');
    t.ok(gapBytes >= gaps * 400 && gapBytes <= gaps * 520, `${gapBytes} bytes for ${gaps} records of ~410 bytes stored 5 to a batch`);
    const v = verdict(await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`), { site: SITE, topic: 'telemetry', partition: 0 }, expected);
    t.same({ duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { duplicated: 0, reordered: 0, wrongValue: 0 }, `${v.found} records in the target, none twice, in order`);
    t.same(v.lost, gapOffsets.sort((a, b) => a - b), 'the only records missing from the target are the counted, logged gaps');
    t.ok(v.lost.every((o) => o >= 40 && o < 100), 'nothing from before or after the outage is missing');
  });
}
