// Purpose: the downlink end to end between two real Tributary processes — commands produced at
// the centre (kcat) are copied into the edge's local topic exactly once, reach an MQTT device
// (mosquitto_sub, through the edge's reverse route), are never sent back up by the edge's uplink
// (loop prevention both ways), and a command that went up from this site is not copied down. Then
// the edge is killed with SIGKILL mid-downlink and restarted: the local log holds every central
// record once, in order (read back with kcat).
import t from 'tap';
import { spawn } from 'node:child_process';
import { cliJs, eventually, haveCommand, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatReadAll, sh, uplinkToolsPresent, type TargetRecord } from '../helpers/uplink.js';

const SITE = 'edge1';

function edgeArgs(central: string, extra: string[] = []): string[] {
  return [
    '--set', `uplink.site=${SITE}`,
    '--set', `uplink.bootstrap=${central}`,
    // The local `commands` topic is also forwarded up, into edge1.commands at the centre: the very
    // topic the downlink reads. Only loop prevention keeps the commands from circling.
    '--set', 'uplink.topics=commands',
    '--set', 'uplink.downlink={site}.commands=commands',
    '--set', 'uplink.topicScanIntervalMs=100',
    '--set', 'uplink.pollWaitMs=200',
    '--set', 'uplink.downlinkWaitMs=200',
    '--set', 'uplink.reconnectBackoffMaxMs=500',
    '--set', 'mqtt.reverseRoutes=[{"topic":"commands","mqttTopic":"cmd/{key}"}]',
    ...extra,
  ];
}

/** Produces `key:value` lines to a partition with kcat (acks all). */
async function kcatProduceKeyed(bootstrap: string, topic: string, partition: number, lines: string[], extra: string[] = []): Promise<void> {
  const r = await sh('kcat', ['-P', '-b', bootstrap, '-t', topic, '-p', String(partition), '-K', ':', '-X', 'acks=all', ...extra], lines.join('\n') + '\n');
  if (r.code !== 0) throw new Error(`kcat produce failed: ${r.stderr}`);
}

/** Per central partition: lost, duplicated and reordered central offsets in the local log (every downlinked record carries its origin). */
function check(local: TargetRecord[], partition: number, expected: string[]): { found: number; lost: number; duplicated: number; reordered: number; wrongValue: number } {
  const mine = local.filter((r) => r.headers['tributary.origin.site'] === 'central' && r.headers['tributary.origin.topic'] === `${SITE}.commands` && r.headers['tributary.origin.partition'] === String(partition));
  const seen = new Map<number, number>();
  let last = -1;
  let reordered = 0;
  let wrongValue = 0;
  for (const r of mine) {
    const o = Number(r.headers['tributary.origin.offset']);
    seen.set(o, (seen.get(o) ?? 0) + 1);
    if (o <= last) reordered++;
    last = Math.max(last, o);
    if (expected[o] !== r.value) wrongValue++;
  }
  let lost = 0;
  for (let i = 0; i < expected.length; i++) if (expected[i] !== undefined && !seen.has(i)) lost++;
  return { found: mine.length, lost, duplicated: [...seen.values()].filter((n) => n > 1).length, reordered, wrongValue };
}

async function metric(edge: BrokerProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://${edge.listeners.http}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, 'gm'))) n += Number(m[1]);
  return n;
}

if (uplinkToolsPresent(t, ['kcat'])) {
  const mosquitto = haveCommand('mosquitto_sub');
  if (!mosquitto && process.env.CI === 'true') t.fail('missing in CI: mosquitto_sub (Debian package mosquitto-clients)');

  t.test('downlink: centre → local log exactly once → MQTT device; nothing circles back up; own-origin commands stay central', { skip: mosquitto ? false : 'mosquitto_sub not installed' }, async (t) => {
    const central = await startBroker(t, { dataDir: await tempDir(t), args: ['--set', 'broker.defaultPartitions=1'] });
    // The central topic exists before the edge connects (one command already queued for the site).
    await kcatProduceKeyed(central.listeners.kafka!, `${SITE}.commands`, 0, ['boiler-0:boot']);
    const edge = await startBroker(t, { dataDir: await tempDir(t), args: edgeArgs(central.listeners.kafka!) });
    await eventually(async () => ((await metric(edge, 'tributary_downlink_records_total')) >= 1 ? true : Promise.reject(new Error('not yet'))), 30_000, 100);

    const n = 200;
    const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(edge.port('mqtt')), '-V', 'mqttv311', '-i', 'device-all', '-q', '1', '-t', 'cmd/#', '-v', '-C', String(n), '-W', '60']);
    t.teardown(() => sub.kill('SIGKILL'));
    let out = '';
    sub.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => sub.once('exit', resolve));
    await new Promise((r) => setTimeout(r, 2500)); // the subscription and the edge's tail of `commands` are in place
    const commands = Array.from({ length: n }, (_, i) => `boiler-${i % 3}:cmd-${i}`);
    await kcatProduceKeyed(central.listeners.kafka!, `${SITE}.commands`, 0, commands);
    // A command that this site sent up itself: it must not come back down.
    await kcatProduceKeyed(central.listeners.kafka!, `${SITE}.commands`, 0, ['boiler-9:went-up-from-here'], ['-H', `tributary.origin.site=${SITE}`]);
    // Acknowledged by the centre: boot, cmd-0..cmd-199 (and the own-origin one, not for the edge).

    t.equal(await exited, 0, 'mosquitto_sub received its 200 messages');
    const got = out.trim().split('\n');
    t.same(got, commands.map((c) => `cmd/${c.split(':')[0]} ${c.split(':')[1]}`), 'the device got every command once, in order, on cmd/<key>');

    await eventually(async () => ((await metric(edge, 'tributary_downlink_records_total')) >= n + 1 ? true : Promise.reject(new Error('not yet'))), 30_000, 100);
    await new Promise((r) => setTimeout(r, 1000)); // a duplicate or a looped record would show up now
    const local = await kcatReadAll(edge.listeners.kafka!, 'commands');
    const expected = ['boot', ...commands.map((c) => c.split(':')[1])];
    t.same(check(local, 0, expected), { found: n + 1, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, 'the local log: every central record once, in order (offset 201, the own-origin one, not copied)');
    t.equal(local.length, n + 1, 'nothing else in the local topic');
    const centralAll = await kcatReadAll(central.listeners.kafka!, `${SITE}.commands`);
    t.equal(centralAll.length, n + 2, 'the centre holds what was produced there and nothing the uplink sent back up');
    t.ok(edge.logs.some((l) => typeof l.msg === 'string' && /exactly-once by local read-back/.test(l.msg)), 'the downlink logs its resume point');
    const status = await eventually(async () => {
      const r = await sh(process.execPath, [cliJs, 'uplink', 'status', '--data-dir', edge.dataDir]);
      return /edge1\.commands-0\tcommands-0\tfollowing\t202\t0\t201\t/.test(r.stdout) ? r : Promise.reject(new Error(r.stdout + r.stderr));
    }, 15_000, 200);
    t.match(status.stdout, /downlink: central/, `tributary uplink status shows the downlink:\n${status.stdout}`);
  });

  t.test('downlink: edge killed with SIGKILL mid-downlink, restarted: the local log holds every central record once, in order', async (t) => {
    const central = await startBroker(t, { dataDir: await tempDir(t), args: ['--set', 'broker.defaultPartitions=2'] });
    const n = 3000;
    const expected = [0, 1].map((p) => Array.from({ length: n }, (_, i) => `p${p}-${i}-${'z'.repeat(200)}`));
    for (let p = 0; p < 2; p++) await kcatProduceKeyed(central.listeners.kafka!, `${SITE}.commands`, p, expected[p].map((v, i) => `dev-${i % 7}:${v}`));
    // Acknowledged by the centre: 2 × 3000 records.
    const dir = await tempDir(t);
    // Small fetches: many local appends, so the kill lands between them.
    const args = edgeArgs(central.listeners.kafka!, ['--set', 'uplink.downlinkFetchBytes=4096']);
    let edge = await startBroker(t, { dataDir: dir, args });
    const atKill = await eventually(async () => {
      const c = await metric(edge, 'tributary_downlink_records_total');
      return c >= 300 ? c : Promise.reject(new Error(`only ${c}`));
    }, 30_000, 5);
    await edge.kill();
    t.ok(atKill < 2 * n, `killed mid-downlink (${atKill} of ${2 * n} reported copied)`);
    edge = await startBroker(t, { dataDir: dir, args });
    await eventually(async () => ((await kcatReadAll(edge.listeners.kafka!, 'commands').catch(() => [])).length >= 2 * n ? true : Promise.reject(new Error('not yet'))), 60_000, 300);
    await new Promise((r) => setTimeout(r, 1000));
    const local = await kcatReadAll(edge.listeners.kafka!, 'commands');
    t.equal(local.length, 2 * n, 'exactly 2 × 3000 records in the local topic');
    for (let p = 0; p < 2; p++) {
      t.same(check(local, p, expected[p]), { found: n, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, `central partition ${p}: every record once, in order`);
      t.ok(local.filter((r) => r.headers['tributary.origin.partition'] === String(p)).every((r) => r.partition === p), `central partition ${p} lands in local partition ${p}`);
    }
    t.ok(edge.logs.some((l) => typeof l.msg === 'string' && /resuming at [1-9]/.test(l.msg) && l.component === 'downlink'), 'the restarted edge resumed after what its local log held');
    t.equal((await kcatReadAll(central.listeners.kafka!, `${SITE}.commands`)).length, 2 * n, 'nothing went back up');
  });
}
