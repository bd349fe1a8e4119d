// Purpose: the uplink's liveness alarm (uplink.stallAlarmSec) between two real Tributary processes.
// Second case: the link blackholed mid-transfer (a TCP proxy drops every byte, no RST: the silent
// stall users of other tools report) — stalled, then cleared when the link heals, every record once.
// The target is down (its port reserved, nothing listening) while records wait at the edge: the
// partition is reported stalled — one warning for the episode, tributary_uplink_stalled 1, and
// `tributary uplink status` shows it — not before stallAlarmSec; then the target comes up on that
// port, the stall clears (an info line, the gauge back to 0) and every acknowledged record is in
// the target once, in order (kcat).
import t from 'tap';
import { performance } from 'node:perf_hooks';
import { cliJs, eventually, sh, startBroker, tempDir } from '../helpers/index.js';
import { FAST_LINK_SETS, kcatProduce, kcatReadAll, metrics, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { freePort } from '../helpers/cluster.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';

const SITE = 'edge1';
const STALL_SEC = 2;
const STALLED = /^uplink stalled: /;
const CLEARED = /^uplink stall cleared: /;

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('liveness alarm: a stopped target stalls the partition after stallAlarmSec, once; it clears when the target is back', async (t) => {
    const port = await freePort();
    const edge = await startBroker(t, {
      dataDir: await tempDir(t),
      args: [
        ...['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=127.0.0.1:${port}`, '--set', 'uplink.topics=telemetry', '--set', `uplink.stallAlarmSec=${STALL_SEC}`],
        ...FAST_LINK_SETS,
        ...['--set', 'broker.defaultPartitions=1'],
      ],
    });
    const values = Array.from({ length: 50 }, (_, i) => `s-${i}`);
    await kcatProduce(edge.listeners.kafka!, 'telemetry', 0, values);
    const producedAt = performance.now();
    const stalledAt = await eventually(async () => (sum(await metrics(edge), 'tributary_uplink_stalled', 'topic="telemetry"') === 1 ? performance.now() : Promise.reject(new Error('not stalled yet'))), 20_000, 50);
    // The episode starts when forwarding last moved (at the latest when the records were stored), so it cannot be reported sooner than STALL_SEC after that.
    t.ok(stalledAt - producedAt >= STALL_SEC * 1000 - 1500, `reported ${((stalledAt - producedAt) / 1000).toFixed(1)} s after the records were stored (stallAlarmSec ${STALL_SEC}; the episode may have begun at start)`);
    const warn = edge.logs.filter((l) => STALLED.test(String(l.msg)));
    t.equal(warn.length, 1, `one warning for the episode: ${String(warn[0]?.msg)}`);
    t.same([warn[0]?.level, warn[0]?.lagRecords], [40, 50], 'a warning (level 40) naming the 50 records waiting');
    const status = await eventually(async () => {
      const r = await sh(process.execPath, [cliJs, 'uplink', 'status', '--data-dir', edge.dataDir]);
      return /telemetry-0\t\S+\t\S+ STALLED \d+s/.test(r.stdout) ? r.stdout : Promise.reject(new Error(r.stdout + r.stderr));
    }, 10_000, 200);
    t.pass(`tributary uplink status shows it:\n${status}`);
    const json = JSON.parse((await sh(process.execPath, [cliJs, 'uplink', 'status', '--data-dir', edge.dataDir, '--json'])).stdout);
    t.ok(json.partitions[0].stalledForSec >= STALL_SEC - 1, `--json: stalledForSec ${json.partitions[0].stalledForSec}`);
    await new Promise((r) => setTimeout(r, 1500));
    t.equal(edge.logs.filter((l) => STALLED.test(String(l.msg))).length, 1, 'still one warning 1.5 s later (once per episode, not per look)');

    const target = await startBroker(t, { dataDir: await tempDir(t), args: ['--kafka-port', String(port)] });
    await eventually(async () => (sum(await metrics(edge), 'tributary_uplink_stalled', 'topic="telemetry"') === 0 ? true : Promise.reject(new Error('still stalled'))), 30_000, 100);
    const cleared = edge.logs.filter((l) => CLEARED.test(String(l.msg)));
    t.same(cleared.map((l) => l.level), [30], 'one info line (level 30) when it clears');
    await eventually(async () => sum(await metrics(edge), 'tributary_uplink_records_sent_total') >= values.length, 30_000, 100);
    const v = verdict(await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`), { site: SITE, topic: 'telemetry', partition: 0 }, values);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: 50, lost: 0, duplicated: 0, reordered: 0 }, 'the 50 acknowledged records in the target once, in order');
    t.equal(sum(await metrics(edge), 'tributary_uplink_stalled', 'topic="telemetry"'), 0, 'caught up: not stalled (lag 0)');
  });

  t.test('liveness alarm: a blackholed link (no RST, no answer) stalls the partition; it clears when the link heals', async (t) => {
    const proxy = await startFaultProxy();
    t.teardown(() => proxy.close());
    const target = await startBroker(t, { dataDir: await tempDir(t), args: ['--set', `kafka.advertisedPort=${proxy.port}`] });
    proxy.upstream = { host: '127.0.0.1', port: target.port('kafka') };
    const edge = await startBroker(t, {
      dataDir: await tempDir(t),
      args: [
        ...['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${proxy.address}`, '--set', 'uplink.topics=telemetry', '--set', `uplink.stallAlarmSec=${STALL_SEC}`],
        ...['--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=200', '--set', 'uplink.requestTimeoutMs=1500', '--set', 'uplink.produceTimeoutMs=1000', '--set', 'uplink.connectTimeoutMs=1000'],
        ...['--set', 'broker.defaultPartitions=1'],
      ],
    });
    const first = Array.from({ length: 20 }, (_, i) => `b-${i}`);
    await kcatProduce(edge.listeners.kafka!, 'telemetry', 0, first);
    await eventually(async () => sum(await metrics(edge), 'tributary_uplink_records_sent_total') >= 20, 20_000, 50);
    proxy.setMode('blackhole');
    const more = Array.from({ length: 20 }, (_, i) => `b-${20 + i}`);
    await kcatProduce(edge.listeners.kafka!, 'telemetry', 0, more);
    await eventually(async () => (sum(await metrics(edge), 'tributary_uplink_stalled', 'topic="telemetry"') === 1 ? true : Promise.reject(new Error('not stalled yet'))), 20_000, 100);
    t.ok(proxy.dropped.up > 0, `the blackhole dropped traffic (${proxy.dropped.up} bytes toward the target)`);
    t.equal(edge.logs.filter((l) => STALLED.test(String(l.msg))).length, 1, 'one stall warning');
    proxy.setMode('pass');
    await eventually(async () => (sum(await metrics(edge), 'tributary_uplink_stalled', 'topic="telemetry"') === 0 ? true : Promise.reject(new Error('still stalled'))), 30_000, 100);
    t.equal(edge.logs.filter((l) => CLEARED.test(String(l.msg))).length, 1, 'one cleared line');
    await eventually(async () => sum(await metrics(edge), 'tributary_uplink_records_sent_total') >= 40, 30_000, 100);
    const v = verdict(await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`), { site: SITE, topic: 'telemetry', partition: 0 }, [...first, ...more]);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: 40, lost: 0, duplicated: 0, reordered: 0 }, 'all 40 acknowledged records once, in order');
  });
}
