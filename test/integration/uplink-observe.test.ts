// Purpose: the uplink's observability between two real Tributary processes (docs/uplink.md,
// "Observability"): with the target down, /stats, /metrics and `tributary uplink status` (text and
// --json) agree on the lag in records, bytes (= the link's backlog, both from bytesBetween) and
// seconds (the age of the first unforwarded record, whose timestamp the producer set 120 s in the
// past), the link is shown down and the partition rows are cut at uplink.statusPartitionsMax with
// the count left out; with the target up under a 20 000 B/s cap, the bandwidth in use is seen and
// stays within the cap, and once drained every lag is 0 and kcat reads every record from the target.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import kafkajs from 'kafkajs';
import { cliJs, eventually, sleep, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { FAST_LINK_SETS, kcatReadAll, metrics, sh, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { freePort } from '../helpers/cluster.js';

const { Kafka, logLevel } = kafkajs;
const SITE = 'edge1';
const CAP = 20_000;
const AGE_S = 120;

interface Stats {
  uplink: {
    link: string;
    lagRecords: number;
    lagBytes: number;
    lagSecondsMax: number;
    backlogBytes: number;
    bandwidthBytesPerSec: number;
    bandwidthCapBytesPerSec: number;
    partitionsTotal: number;
    partitions: Array<{ source: { topic: string; partition: number }; state: string; lagRecords: number; lagBytes: number; lagSeconds: number; bytesSent: number }>;
  } | null;
}

async function stats(edge: BrokerProcess): Promise<Stats> {
  return (await (await fetch(`http://${edge.listeners.http}/stats`)).json()) as Stats;
}

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('uplink observability: lag in records, bytes and seconds, link state, bandwidth in use, capped rows — /stats, /metrics, the CLI agree', async (t) => {
    const port = await freePort();
    const edge = await startBroker(t, {
      dataDir: await tempDir(t),
      args: [
        ...['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=127.0.0.1:${port}`, '--set', 'uplink.topics=telemetry'],
        ...['--set', `uplink.bandwidthBytesPerSec=${CAP}`, '--set', 'uplink.bandwidthBurstBytes=4096', '--set', 'uplink.bandwidthWindowMs=2000', '--set', 'uplink.statusPartitionsMax=2'],
        // Batches of at most 4 KiB (re-encoded: 100 records in one stored batch would otherwise go raw, whole), so the cap paces them.
        ...['--set', 'uplink.batchBytesMax=4096', '--set', 'uplink.rawForwarding=false'],
        ...FAST_LINK_SETS,
      ],
    });
    const created = await fetch(`http://${edge.listeners.http}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'telemetry', partitions: 3 }) });
    t.equal(created.status, 200, 'topic telemetry with 3 partitions at the edge');
    await eventually(async () => ((await stats(edge)).uplink?.partitionsTotal ?? 0) === 3, 10_000, 50);
    const s0 = (await stats(edge)).uplink!;
    t.equal(s0.link, 'down', '/stats: the link is down (nothing listens on the target port)');
    t.equal(s0.bandwidthCapBytesPerSec, CAP, '/stats: the cap');

    // Random (incompressible) values, so the bytes on the wire are the bytes stored.
    const kafka = new Kafka({ clientId: 'observe-test', brokers: [edge.listeners.kafka!], logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    t.teardown(() => producer.disconnect());
    const oldest = Date.now() - AGE_S * 1000;
    const values = Array.from({ length: 100 }, () => randomBytes(600).toString('base64'));
    await producer.send({ topic: 'telemetry', acks: -1, messages: values.map((value, i) => ({ value, partition: 0, timestamp: String(i === 0 ? oldest : Date.now()) })) });
    await producer.send({ topic: 'telemetry', acks: -1, messages: [{ value: 'p1-a', partition: 1 }, { value: 'p1-b', partition: 1 }] });
    const started = Date.now();

    const s = await eventually(async () => {
      const u = (await stats(edge)).uplink!;
      return u.lagRecords === 102 && u.partitions[0]?.lagSeconds >= AGE_S ? u : Promise.reject(new Error(JSON.stringify(u)));
    }, 10_000, 100);
    t.equal(s.lagBytes, s.backlogBytes, `/stats: lag in bytes ${s.lagBytes} = the link's backlog (both bytesBetween)`);
    t.ok(s.lagBytes > 100 * 600, 'and at least the values\' bytes');
    const p0 = s.partitions[0];
    t.same([p0.source.partition, s.partitions[1].source.partition], [0, 1], 'rows: the largest lag in bytes first');
    t.equal(s.partitions.length, 2, 'at most uplink.statusPartitionsMax=2 rows');
    t.equal(s.partitionsTotal, 3, 'and the total says one was left out');
    const bound = AGE_S + (Date.now() - started) / 1000 + 1;
    t.ok(p0.lagSeconds >= AGE_S && p0.lagSeconds <= bound, `lag in seconds of partition 0: ${p0.lagSeconds} (its first unforwarded record was stamped ${AGE_S} s ago)`);
    t.equal(s.lagSecondsMax, Math.max(...s.partitions.map((p) => p.lagSeconds)), 'the link shows the oldest');
    t.ok(s.partitions[1].lagSeconds < 60, `partition 1's records are fresh: ${s.partitions[1].lagSeconds} s`);

    const m = await metrics(edge);
    t.equal(sum(m, 'tributary_uplink_lag_bytes'), sum(m, 'tributary_uplink_backlog_bytes'), '/metrics: tributary_uplink_lag_bytes over the partitions = the backlog');
    const lagSeconds0 = Number(/^tributary_uplink_lag_seconds\{partition="0",[^}]*\} ([\d.]+)$/m.exec(m)?.[1]);
    t.ok(lagSeconds0 >= AGE_S, `/metrics: tributary_uplink_lag_seconds of partition 0: ${lagSeconds0}`);
    t.equal(sum(m, 'tributary_uplink_bandwidth_cap_bytes_per_second'), CAP, '/metrics: the cap');
    t.match(m, /tributary_uplink_bandwidth_bytes_per_second\{site="edge1"\} /, '/metrics: the bandwidth in use');

    const text = await eventually(async () => {
      const r = await sh(process.execPath, [cliJs, 'uplink', 'status', '--data-dir', edge.dataDir]);
      return /lag 102 records/.test(r.stdout) ? r.stdout : Promise.reject(new Error(r.stdout + r.stderr));
    }, 10_000, 200);
    t.match(text, /lag 102 records, \d+ bytes, oldest \d+(\.\d+)? s · bandwidth \d+ B\/s over 2 s \(cap 20000 B\/s\)/, `tributary uplink status (text):\n${text}`);
    t.match(text, /… 1 more partitions not shown \(uplink.statusPartitionsMax=2/, 'the text names the rows left out');
    const json = JSON.parse((await sh(process.execPath, [cliJs, 'uplink', 'status', '--data-dir', edge.dataDir, '--json'])).stdout) as NonNullable<Stats['uplink']>;
    t.same([json.partitions.length, json.partitionsTotal, json.lagRecords], [2, 3, 102], 'tributary uplink status --json: 2 rows of 3, lag 102 records');
    t.ok(json.partitions[0].lagSeconds >= AGE_S, '--json: lag seconds');

    // The target comes up: the backlog drains under the cap; the bandwidth in use is seen.
    const target = await startBroker(t, { dataDir: await tempDir(t), args: ['--kafka-port', String(port)] });
    const rates: number[] = [];
    await eventually(async () => {
      const u = (await stats(edge)).uplink!;
      rates.push(u.bandwidthBytesPerSec);
      return u.lagRecords === 0 ? u : Promise.reject(new Error(`lag ${u.lagRecords}`));
    }, 30_000, 250);
    const peak = Math.max(...rates);
    t.ok(peak >= CAP * 0.5, `bandwidth in use seen while draining: peak ${peak} B/s`);
    t.ok(peak <= CAP * 1.3 + 4096 / 2, `within the cap (${CAP} B/s, burst 4096 over a 2 s window): peak ${peak} B/s`);
    const done = await eventually(async () => {
      const u = (await stats(edge)).uplink!;
      return u.link === 'up' && u.lagBytes === 0 && u.lagSecondsMax === 0 ? u : Promise.reject(new Error(JSON.stringify(u)));
    }, 10_000, 200);
    t.pass(`drained: link ${done.link}, lag 0 records, 0 bytes, 0 s`);
    t.ok(done.partitions[0].bytesSent > 100 * 600, `partition 0 bytes acknowledged: ${done.partitions[0].bytesSent}`);
    const v = verdict(await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`), { site: SITE, topic: 'telemetry', partition: 0 }, values);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { found: 100, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, 'kcat reads partition 0\'s 100 records from the target once, in order');
    await sleep(2500);
    t.equal((await stats(edge)).uplink!.bandwidthBytesPerSec < 1000, true, 'idle for a window: the bandwidth in use falls back (only read-back and metadata requests)');
  });
}
