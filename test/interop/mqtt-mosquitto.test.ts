// Eclipse Mosquitto's command-line clients (mosquitto_pub / mosquitto_sub, Debian
// mosquitto-clients) against the gateway: publish at each QoS, subscribe, retained.
import t from 'tap';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { openStack, readTopic } from '../unit/mqtt/fixture.js';
import { eventually, haveCommand } from '../helpers/index.js';

const run = promisify(execFile);

if (!haveCommand('mosquitto_pub') || !haveCommand('mosquitto_sub')) {
  t.test('mosquitto_pub/mosquitto_sub not installed (Debian package mosquitto-clients): Mosquitto client interop skipped', { skip: true }, () => undefined);
} else {
  t.test('mosquitto_pub at QoS 0, 1 and 2: each message stored with its key and headers', async (t) => {
    const s = await openStack(t);
    for (const qos of [0, 1, 2]) {
      await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(s.port), '-V', 'mqttv311', '-i', `mpub-${qos}`, '-q', String(qos), '-t', `plant/line1/q${qos}`, '-m', `{"qos":${qos}}`], { timeout: 10_000 });
    }
    const recs = await eventually(async () => {
      const r = await readTopic(s.broker, 'plant');
      return r.length === 3 ? r : undefined;
    });
    t.same(recs!.map((r) => [r.key, r.value, r.headers['mqtt.qos'], r.headers['mqtt.clientId']]).sort(), [
      ['plant/line1/q0', '{"qos":0}', '0', 'mpub-0'],
      ['plant/line1/q1', '{"qos":1}', '1', 'mpub-1'],
      ['plant/line1/q2', '{"qos":2}', '2', 'mpub-2'],
    ]);
  });

  t.test('mosquitto_sub receives what mosquitto_pub sends, and records produced through the broker', async (t) => {
    const s = await openStack(t);
    const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(s.port), '-V', 'mqttv311', '-i', 'msub', '-q', '1', '-t', 'alerts/#', '-v', '-C', '2', '-W', '20']);
    t.teardown(() => sub.kill('SIGKILL'));
    let out = '';
    sub.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => sub.once('exit', resolve));
    await eventually(() => s.gateway.tails.tailedTopics().includes('alerts'));
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(s.port), '-q', '1', '-t', 'alerts/boiler', '-m', 'over-temperature'], { timeout: 10_000 });
    await s.broker.produce('alerts', [{ key: Buffer.from('alerts/cloud'), value: Buffer.from('firmware-update') }], { acks: -1 });
    t.equal(await exited, 0, 'mosquitto_sub got its 2 messages and exited');
    t.same(out.trim().split('\n').sort(), ['alerts/boiler over-temperature', 'alerts/cloud firmware-update']);
  });

  t.test('a retained message from mosquitto_pub is delivered to a later mosquitto_sub, also after a restart', async (t) => {
    const s1 = await openStack(t);
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(s1.port), '-q', '1', '-r', '-t', 'state/door', '-m', 'closed'], { timeout: 10_000 });
    const first = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(s1.port), '-t', 'state/#', '-v', '-C', '1', '-W', '10'], { timeout: 15_000 });
    t.equal(first.stdout.trim(), 'state/door closed');
    await s1.close();
    const s2 = await openStack(t, { dataDir: s1.dataDir });
    const second = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(s2.port), '-t', 'state/#', '-v', '-C', '1', '-W', '10'], { timeout: 15_000 });
    t.equal(second.stdout.trim(), 'state/door closed', 'retained message survived the restart');
  });

  t.test('mosquitto_pub -V mqttv5 with user properties and a content type: stored with them as headers, in order', async (t) => {
    const s = await openStack(t);
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(s.port), '-V', 'mqttv5', '-q', '1', '-t', 'x/y', '-m', 'v5', '-D', 'publish', 'user-property', 'b', '2', '-D', 'publish', 'user-property', 'a', '1', '-D', 'publish', 'user-property', 'b', '3', '-D', 'publish', 'content-type', 'text/plain'], { timeout: 10_000 });
    const recs = await eventually(async () => {
      const r = await readTopic(s.broker, 'x');
      return r.length === 1 ? r : undefined;
    });
    t.equal(recs![0].value, 'v5');
    t.equal(recs![0].headers['mqtt.contentType'], 'text/plain');
    // headers keep the order of the user properties (readTopic keeps the last of a repeated key)
    t.equal(recs![0].headers['mqtt.user.a'], '1');
    t.equal(recs![0].headers['mqtt.user.b'], '3');
  });

  t.test('mosquitto_sub -V mqttv5 gets the user properties of an MQTT 5 publish in the order they were sent', async (t) => {
    const s = await openStack(t);
    const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(s.port), '-V', 'mqttv5', '-q', '1', '-t', 'ordered/#', '-F', '%t %p %P', '-C', '1', '-W', '20']);
    t.teardown(() => sub.kill('SIGKILL'));
    let out = '';
    sub.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => sub.once('exit', resolve));
    await eventually(() => s.gateway.aedes.connectedClients > 0);
    await new Promise((r) => setTimeout(r, 300));
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(s.port), '-V', 'mqttv5', '-q', '1', '-t', 'ordered/a', '-m', 'p', '-D', 'publish', 'user-property', 'z', '1', '-D', 'publish', 'user-property', 'a', '2', '-D', 'publish', 'user-property', 'z', '3'], { timeout: 10_000 });
    t.equal(await exited, 0, 'mosquitto_sub got its message');
    t.equal(out.trim(), 'ordered/a p z:1 a:2 z:3', 'MQTT-3.3.2-18: order kept');
  });
}
