// Purpose: the others' floor beside the reserved lane (uplink.reservedShareMax) between two real
// Tributary processes. A misconfigured device has flooded the reserved topic (`alarms`: ~1.5 MB
// stored while the link was down) and telemetry has a backlog too; the edge restarts with a
// 1 Mbit/s cap (125 000 B/s), alarms both reserved and the highest priority class. Over a window
// of WINDOW_MS while both still have data (lag read from the edge's /metrics):
//   - share 1 (the strict lane of before): telemetry forwards (almost) nothing;
//   - the default share 0.8: telemetry forwards at least (1 − 0.8) × cap × window (with slack for
//     a loaded machine and the stored-vs-wire framing), and the flood still gets most of the link.
// Then the target is read back with kcat: whatever was forwarded, each partition's records are
// there once, in order (the floor reorders between partitions, never inside one).
import t from 'tap';
import { eventually, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatReadAll, metrics, sh, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { laneArgs } from '../helpers/alarm-latency.js';

const CAP = 125_000;
const VALUE_BYTES = 300;
const FLOOD_RECORDS = 5_000; // ~1.5 MB: 12 s at the whole cap, longer than the start and the window
const TELEMETRY_RECORDS = 2_000; // ~0.6 MB: far more than its floor's share of the window
const WINDOW_MS = 6_000;
/** Telemetry must reach this fraction of its floor's bytes in the window (the lag counts stored bytes; the cap counts wire bytes with framing; timers on a loaded machine). */
const FLOOR_SLACK = 0.7;

/** Stores both backlogs at `dataDir` while no uplink runs (a link that was down), in batches of 50 records as a device's producer would; the loader is stopped after. */
async function storeBacklogs(t: { teardown(fn: () => unknown): void }, dataDir: string, topics: Record<string, string[]>): Promise<void> {
  const loader = await startBroker(t, { dataDir, args: ['--set', 'broker.defaultPartitions=1'] });
  for (const [topic, values] of Object.entries(topics)) {
    const r = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', topic, '-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=50'], values.join('\n') + '\n');
    if (r.code !== 0) throw new Error(`kcat load of ${topic} failed: ${r.stderr}`);
  }
  if ((await loader.stop()) !== 0) throw new Error('the loader did not stop cleanly');
}

interface Window {
  telemetryBytes: number;
  floodBytes: number;
  ms: number;
}

/** Starts the edge on the stored backlogs, waits for both to be moving, and measures what each forwarded over WINDOW_MS. */
async function measure(t: { ok(pass: boolean, message: string): void; teardown(fn: () => unknown): void }, site: string, dir: string, target: BrokerProcess, share: string | null): Promise<Window> {
  const shareSet = share === null ? [] : ['--set', `uplink.reservedShareMax=${share}`];
  const edge = await startBroker(t, { dataDir: dir, args: laneArgs(site, target.listeners.kafka!, ['--set', `uplink.bandwidthBytesPerSec=${CAP}`, '--set', 'uplink.bandwidthBurstBytes=16384', '--set', 'uplink.priorities=alarms', '--set', 'uplink.reservedTopics=alarms', ...shareSet]) });
  const lag = async () => {
    const m = await metrics(edge);
    return { telemetry: sum(m, 'tributary_uplink_lag_bytes', 'topic="telemetry"'), flood: sum(m, 'tributary_uplink_lag_bytes', 'topic="alarms"') };
  };
  // The flood is under way (its lag is known and falling) before the window opens.
  let first = 0;
  await eventually(async () => ((first = (await lag()).flood) > 0 ? true : Promise.reject(new Error('no flood lag yet'))), 30_000, 20);
  await eventually(async () => ((await lag()).flood < first ? true : Promise.reject(new Error('the flood is not draining yet'))), 30_000, 20);
  const a = await lag();
  const opened = performance.now();
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  const b = await lag();
  const ms = performance.now() - opened;
  t.ok(b.flood > 0 && b.telemetry > 0, `both still had data at the window's end (flood lag ${b.flood} B, telemetry lag ${b.telemetry} B)`);
  await edge.stop();
  return { telemetryBytes: a.telemetry - b.telemetry, floodBytes: a.flood - b.flood, ms };
}

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('reservedShareMax: a flooded reserved lane starves telemetry at share 1 and leaves it its floor at the default 0.8', { timeout: 120_000 }, async (t) => {
    const target = await startBroker(t, { dataDir: await tempDir(t) });
    const runs: Array<{ share: string | null; floor: number }> = [
      { share: '1', floor: 0 },
      { share: null, floor: 0.2 }, // the default
    ];
    const floodValues = Array.from({ length: FLOOD_RECORDS }, (_, i) => `flood-${i}-`.padEnd(VALUE_BYTES, 'f'));
    const telemetryValues = Array.from({ length: TELEMETRY_RECORDS }, (_, i) => `t-0-${i}-`.padEnd(VALUE_BYTES, 'x'));
    for (const [run, { share, floor }] of runs.entries()) {
      // A site per run: each edge is a new site to the target (its read-back must not see the other's records as its own).
      const site = `edge${run}`;
      const dir = await tempDir(t);
      await storeBacklogs(t, dir, { telemetry: telemetryValues, alarms: floodValues });
      const w = await measure(t, site, dir, target, share);
      const capBytes = (CAP * w.ms) / 1000;
      t.comment(`share ${share ?? 'default (0.8)'}: over ${(w.ms / 1000).toFixed(1)} s telemetry forwarded ${w.telemetryBytes} B (${((w.telemetryBytes / capBytes) * 100).toFixed(1)} % of the cap's ${capBytes.toFixed(0)} B), the flood ${w.floodBytes} B (${((w.floodBytes / capBytes) * 100).toFixed(1)} %)`);
      if (floor === 0) {
        t.ok(w.telemetryBytes < 0.02 * capBytes, `share 1: telemetry made (almost) no progress while the flood lasted (${w.telemetryBytes} B < 2 % of the cap's bytes)`);
      } else {
        t.ok(w.telemetryBytes >= FLOOR_SLACK * floor * capBytes, `share 0.8: telemetry forwarded ${w.telemetryBytes} B ≥ ${FLOOR_SLACK} × ${floor} × cap × window = ${(FLOOR_SLACK * floor * capBytes).toFixed(0)} B`);
        t.ok(w.floodBytes >= 0.5 * capBytes, `the flood still had most of the link (${w.floodBytes} B)`);
      }
      // The edge was stopped mid-drain: the target holds a prefix of each source partition, once, in order.
      for (const [topic, values] of [['alarms', floodValues], ['telemetry', telemetryValues]] as const) {
        const v = verdict(await kcatReadAll(target.listeners.kafka!, `${site}.${topic}`), { site, topic, partition: 0 }, values);
        const prefix = v.lost.every((o, i) => o === v.found + i);
        t.same({ prefix, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { prefix: true, duplicated: 0, reordered: 0, wrongValue: 0 }, `${site} ${topic}: the first ${v.found} records in the target once, in order (kcat)`);
      }
    }
  });
}
