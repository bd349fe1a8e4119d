// Purpose: the uplink between two real Tributary processes (edge → target), checked by reading
// the target back with kcat: every record the edge acknowledged arrives exactly once, in order
// per partition, with its origin headers; records carrying this site's own origin are not
// forwarded (loop prevention); and the same holds when the edge is killed with SIGKILL
// mid-transfer and restarted, when the target is restarted, and when the link is blackholed
// (answers lost while the writes land, then nothing at all) through a TCP fault proxy.
import t from 'tap';
import { cliJs, eventually, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { kcatProduce, kcatReadAll, sh, traceOrigins, uplinkToolsPresent, verdict } from '../helpers/uplink.js';

const SITE = 'edge1';

function edgeArgs(bootstrap: string, extra: string[] = []): string[] {
  return [
    '--set', `uplink.site=${SITE}`,
    '--set', `uplink.bootstrap=${bootstrap}`,
    '--set', 'uplink.topics=sensors.*,alarms',
    '--set', 'uplink.topicScanIntervalMs=100',
    '--set', 'uplink.pollWaitMs=200',
    '--set', 'uplink.reconnectBackoffMaxMs=500',
    '--set', 'broker.defaultPartitions=3',
    ...extra,
  ];
}

const values = (p: number, n: number, from = 0, pad = 0) => Array.from({ length: n }, (_, i) => `p${p}-${from + i}${pad ? '-' + 'x'.repeat(pad) : ''}`);

async function targetCount(target: string, topic: string): Promise<number> {
  return (await kcatReadAll(target, topic).catch(() => [])).length;
}

/** Records the edge's uplink reports forwarded for a source topic (its /metrics), no target reads needed. */
async function forwarded(edge: BrokerProcess, topic: string): Promise<number> {
  const text = await (await fetch(`http://${edge.listeners.http}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^tributary_uplink_records_sent_total\{([^}]*)\} (\d+)$/gm)) if (m[1].includes(`topic="${topic}"`)) n += Number(m[2]);
  return n;
}

function logged(proc: BrokerProcess, pattern: RegExp): Array<Record<string, unknown>> {
  return proc.logs.filter((l) => typeof l.msg === 'string' && pattern.test(l.msg));
}

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('uplink: every record once, in order, with origin headers; own-origin records are not forwarded', async (t) => {
    const target = await startBroker(t, { dataDir: await tempDir(t) });
    const edge = await startBroker(t, { dataDir: await tempDir(t), args: edgeArgs(target.listeners.kafka!) });
    const expected = [0, 1, 2].map((p) => values(p, 300));
    for (let p = 0; p < 3; p++) await kcatProduce(edge.listeners.kafka!, 'sensors.a', p, expected[p]);
    // A record that came from this site before (e.g. mirrored back down): must not go up again.
    const r = await sh('kcat', ['-P', '-b', edge.listeners.kafka!, '-t', 'sensors.a', '-p', '0', '-H', `tributary.origin.site=${SITE}`], 'looped\n');
    t.equal(r.code, 0, 'the looped record is stored at the edge');
    await kcatProduce(edge.listeners.kafka!, 'sensors.a', 0, ['after-loop']);
    expected[0].push('looped', 'after-loop');

    await eventually(async () => (await targetCount(target.listeners.kafka!, 'edge1.sensors.a')) >= 901 || Promise.reject(new Error('not yet')), 30_000, 200);
    await new Promise((res) => setTimeout(res, 500)); // anything extra would show up now
    const all = await kcatReadAll(target.listeners.kafka!, 'edge1.sensors.a');
    t.equal(all.length, 901, 'the target holds 901 records: 3 × 300 + 1, not the looped one');
    t.notOk(all.some((x) => x.value === 'looped'), 'the record with our own origin was not forwarded');
    for (let p = 0; p < 3; p++) {
      const v = verdict(all, { site: SITE, topic: 'sensors.a', partition: p }, expected[p]);
      const lost = p === 0 ? v.lost.filter((o) => o !== 300) : v.lost; // offset 300 is the looped record
      t.same({ lost, duplicated: v.duplicated, reordered: v.reordered, wrongValue: v.wrongValue, withoutOrigin: v.withoutOrigin }, { lost: [], duplicated: [], reordered: 0, wrongValue: 0, withoutOrigin: 0 }, `partition ${p}: exactly once, in order`);
      t.ok(traceOrigins(all).filter((x) => x.headers['tributary.origin.partition'] === String(p)).every((x) => x.partition === p), `partition ${p} stays partition ${p}`);
    }
    // kcat stored 300-record batches: forwarded raw (origin on each batch's last record, the rest traced).
    const traced = traceOrigins(all).filter((x) => x.traced).length;
    t.ok(traced > 0 && traced < all.length, `records traced through their batch's last record: ${traced} of ${all.length}`);
    const md = await sh('kcat', ['-L', '-b', target.listeners.kafka!, '-t', 'edge1.sensors.a']);
    t.match(md.stdout, /with 3 partitions/, 'the target topic was created with the source partition count');
    t.ok(logged(edge, /exactly-once by read-back/).length >= 3, 'the mode is logged per target partition');
    t.ok(logged(edge, /exactly-once by read-back/).every((l) => l.targetAdvertisesTransactions === false), 'decided at connect: a Tributary target does not advertise transactions');

    const metrics = await (await fetch(`http://${edge.listeners.http}/metrics`)).text();
    t.match(metrics, /tributary_uplink_link_up\{site="edge1"\} 1/, 'link state in /metrics');
    t.match(metrics, /tributary_uplink_lag_records\{partition="0",site="edge1",topic="sensors.a"\} 0/, 'lag in records per partition in /metrics');
    t.match(metrics, /tributary_uplink_bytes_sent\{site="edge1"\} [1-9]/, 'bytes sent in /metrics');
    t.match(metrics, /tributary_uplink_batches_sent_total\{path="raw",site="edge1"\} [1-9]/, 'stored batches forwarded raw');
    t.match(metrics, /tributary_uplink_batches_sent_total\{path="reencoded",site="edge1"\} [1-9]/, 'the looped record\'s neighbours re-encoded');

    const status = await eventually(async () => {
      const r = await sh(process.execPath, [cliJs, 'uplink', 'status', '--data-dir', edge.dataDir]);
      return /sensors\.a-2\tedge1\.sensors\.a-2\tidle\tread-back\t300\t0\t300/.test(r.stdout) ? r : Promise.reject(new Error(r.stdout + r.stderr));
    }, 10_000, 200);
    t.match(status.stdout, /site edge1 → .*: link up/, `tributary uplink status:\n${status.stdout}`);
    const none = await sh(process.execPath, [cliJs, 'uplink', 'status', '--data-dir', target.dataDir]);
    t.equal(none.code, 1, 'no uplink on the target: exit 1');
    t.match(none.stderr, /no uplink status/);
  });

  t.test('uplink: edge killed with SIGKILL mid-transfer, restarted: no duplicates, no gaps', async (t) => {
    // The link is held down (blackhole) while the edge takes the records, so the kill lands mid-transfer.
    const proxy = await startFaultProxy();
    t.teardown(() => proxy.close());
    const target = await startBroker(t, { dataDir: await tempDir(t), args: ['--set', `kafka.advertisedPort=${proxy.port}`] });
    proxy.upstream = { host: '127.0.0.1', port: target.port('kafka') };
    proxy.setMode('blackhole');
    const dir = await tempDir(t);
    // Small reads: many batches.
    const args = edgeArgs(proxy.address, ['--set', 'uplink.readBytesMax=2048', '--set', 'uplink.connectTimeoutMs=1000', '--set', 'uplink.requestTimeoutMs=2000', '--set', 'uplink.produceTimeoutMs=1500']);
    let edge = await startBroker(t, { dataDir: dir, args });
    const n = 2000;
    const expected = [0, 1, 2].map((p) => values(p, n, 0, 400));
    // Batches of 100 records (~40 KB): each stored batch is forwarded whole (raw), so each must
    // cross the throttled link below well within uplink.produceTimeoutMs.
    for (let p = 0; p < 3; p++) await kcatProduce(edge.listeners.kafka!, 'sensors.b', p, expected[p], ['-X', 'batch.num.messages=100']);
    // Acknowledged by the edge: 3 × 2000 records (kcat acks=all, exit 0).
    // The link is throttled so the ~2.5 MB transfer takes seconds on any machine: raw batch
    // forwarding sends the stored batches whole, fast enough on loopback to finish between two
    // polls of the trigger below.
    proxy.throttle = 256 * 1024;
    proxy.setMode('pass');
    // Polled on the edge's own /metrics (fast): a kcat read of the target takes longer than the transfer.
    const atKill = await eventually(async () => {
      const c = await forwarded(edge, 'sensors.b');
      return c >= 300 ? c : Promise.reject(new Error(`only ${c}`));
    }, 40_000, 5);
    await edge.kill();
    t.ok(atKill < 3 * n, `killed mid-transfer (${atKill} of ${3 * n} reported forwarded)`);
    proxy.throttle = 0;
    edge = await startBroker(t, { dataDir: dir, args });
    await eventually(async () => (await targetCount(target.listeners.kafka!, 'edge1.sensors.b')) >= 3 * n || Promise.reject(new Error('not yet')), 60_000, 200);
    await new Promise((res) => setTimeout(res, 500));
    const all = await kcatReadAll(target.listeners.kafka!, 'edge1.sensors.b');
    t.equal(all.length, 3 * n, 'exactly 3 × 2000 records in the target');
    for (let p = 0; p < 3; p++) {
      const v = verdict(all, { site: SITE, topic: 'sensors.b', partition: p }, expected[p]);
      t.same({ lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, `partition ${p}: ${v.found} records, exactly once, in order`);
    }
    t.ok(logged(edge, /resuming at [1-9]/).length >= 1, 'the restarted edge resumed after what the target held');
  });

  t.test('uplink: target restarted mid-transfer: the link resumes, exactly once', async (t) => {
    const targetDir = await tempDir(t);
    let target = await startBroker(t, { dataDir: targetDir });
    const port = target.port('kafka');
    const edge = await startBroker(t, { dataDir: await tempDir(t), args: edgeArgs(target.listeners.kafka!, ['--set', 'uplink.readBytesMax=2048']) });
    const n = 3000;
    const expected = values(0, n);
    await kcatProduce(edge.listeners.kafka!, 'alarms', 0, expected);
    await eventually(async () => ((await targetCount(target.listeners.kafka!, 'edge1.alarms')) >= 300 ? true : Promise.reject(new Error('not yet'))), 30_000, 20);
    t.equal(await target.stop(), 0, 'target stopped cleanly mid-transfer');
    await new Promise((res) => setTimeout(res, 1000)); // the link is down for a while
    target = await startBroker(t, { dataDir: targetDir, args: ['--kafka-port', String(port)] });
    await eventually(async () => (await targetCount(target.listeners.kafka!, 'edge1.alarms')) >= n || Promise.reject(new Error('not yet')), 60_000, 200);
    await new Promise((res) => setTimeout(res, 500));
    const all = await kcatReadAll(target.listeners.kafka!, 'edge1.alarms');
    const v = verdict(all, { site: SITE, topic: 'alarms', partition: 0 }, expected);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: n, lost: 0, duplicated: 0, reordered: 0 }, 'every record once, in order');
  });

  t.test('uplink: link blackholed mid-request (answers lost, then all traffic): outcome read back, no duplicates', async (t) => {
    // The target advertises the proxy, so every connection (bootstrap and leader) goes through it.
    const proxy = await startFaultProxy();
    t.teardown(() => proxy.close());
    const target = await startBroker(t, { dataDir: await tempDir(t), args: ['--set', `kafka.advertisedPort=${proxy.port}`] });
    proxy.upstream = { host: '127.0.0.1', port: target.port('kafka') };
    const edge = await startBroker(t, {
      dataDir: await tempDir(t),
      args: edgeArgs(proxy.address, ['--set', 'uplink.requestTimeoutMs=1500', '--set', 'uplink.produceTimeoutMs=1000', '--set', 'uplink.connectTimeoutMs=1000']),
    });
    const expected: string[] = [];
    let stop = false;
    const producing = (async () => {
      for (let round = 0; !stop; round++) {
        const batch = values(0, 50, round * 50);
        await kcatProduce(edge.listeners.kafka!, 'sensors.c', 0, batch);
        expected.push(...batch); // acknowledged by the edge
        await new Promise((res) => setTimeout(res, 30));
      }
    })();
    await eventually(async () => ((await forwarded(edge, 'sensors.c')) >= 100 ? true : Promise.reject(new Error('not yet'))), 30_000, 50).catch((err) => {
      t.comment(edge.logs.filter((l) => l.component === 'uplink').map((l) => JSON.stringify(l)).join('\n'));
      throw err;
    });
    proxy.setMode('blackhole-down');
    await new Promise((res) => setTimeout(res, 3000));
    proxy.setMode('blackhole');
    await new Promise((res) => setTimeout(res, 2000));
    proxy.setMode('pass');
    t.ok(proxy.dropped.down > 0, `answers were dropped (${proxy.dropped.down} bytes)`);
    t.ok(proxy.dropped.up > 0, `requests were dropped (${proxy.dropped.up} bytes)`);
    await new Promise((res) => setTimeout(res, 1000));
    stop = true;
    await producing;
    await eventually(async () => (await forwarded(edge, 'sensors.c')) >= expected.length || Promise.reject(new Error('not yet')), 60_000, 200);
    await new Promise((res) => setTimeout(res, 500));
    const all = await kcatReadAll(target.listeners.kafka!, 'edge1.sensors.c');
    const v = verdict(all, { site: SITE, topic: 'sensors.c', partition: 0 }, expected);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: expected.length, lost: 0, duplicated: 0, reordered: 0 }, `all ${expected.length} acknowledged records once, in order`);
    const resolved = logged(edge, /resolved by read-back/);
    t.ok(resolved.length >= 1, `an indefinite produce was resolved by reading the target back (${resolved.map((l) => l.outcome).join(', ')})`);
    t.ok(resolved.some((l) => l.outcome === 'landed'), 'one of them had landed although its answer was lost');
    if (!t.passing()) t.comment(edge.logs.filter((l) => l.component === 'uplink').map((l) => JSON.stringify(l)).join('\n'));
  });

  t.test('uplink: both sides killed with SIGKILL at once mid-transfer, both restarted (edge first): exactly once', async (t) => {
    const targetDir = await tempDir(t);
    let target = await startBroker(t, { dataDir: targetDir });
    const port = target.port('kafka');
    const dir = await tempDir(t);
    const args = edgeArgs(target.listeners.kafka!, ['--set', 'uplink.readBytesMax=2048', '--set', 'uplink.requestTimeoutMs=3000', '--set', 'uplink.produceTimeoutMs=2000']);
    // The backlog is taken while no uplink is configured (a link that was down), in batches of 20.
    const loader = await startBroker(t, { dataDir: dir, args: ['--set', 'broker.defaultPartitions=3'] });
    const n = 3000;
    const expected = [0, 1, 2].map((p) => values(p, n, 0, 100));
    for (let p = 0; p < 3; p++) {
      const r = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', 'sensors.d', '-p', String(p), '-X', 'acks=all', '-X', 'batch.num.messages=20'], expected[p].join('\n') + '\n');
      t.equal(r.code, 0, `partition ${p} loaded`);
    }
    // Acknowledged by the edge: 3 × 3000 records.
    t.equal(await loader.stop(), 0);
    let edge = await startBroker(t, { dataDir: dir, args });
    const atStop = await eventually(async () => {
      const c = await forwarded(edge, 'sensors.d');
      return c >= 500 ? c : Promise.reject(new Error(`only ${c}`));
    }, 40_000, 5);
    await Promise.all([edge.kill(), target.kill()]);
    t.ok(atStop < 3 * n, `both killed mid-transfer (${atStop} of ${3 * n} reported forwarded)`);
    // The edge comes back first, to a target that is not there yet.
    edge = await startBroker(t, { dataDir: dir, args });
    await new Promise((res) => setTimeout(res, 1500));
    target = await startBroker(t, { dataDir: targetDir, args: ['--kafka-port', String(port)] });
    await eventually(async () => (await targetCount(target.listeners.kafka!, 'edge1.sensors.d')) >= 3 * n || Promise.reject(new Error('not yet')), 90_000, 300);
    await new Promise((res) => setTimeout(res, 1000));
    const all = await kcatReadAll(target.listeners.kafka!, 'edge1.sensors.d');
    t.equal(all.length, 3 * n, 'exactly 3 × 3000 records in the target');
    for (let p = 0; p < 3; p++) {
      const v = verdict(all, { site: SITE, topic: 'sensors.d', partition: p }, expected[p]);
      t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { found: n, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, `partition ${p}: every record once, in order`);
    }
  });
}
