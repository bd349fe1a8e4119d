// Purpose: the MQTT door on the one authorizer (issue 13, findings 6 and 7), against a real broker
// process with clients nobody here wrote: users made with `tributary users add` (the Kafka SCRAM
// store) log in over MQTT; ACLs made with `tributary acls add` decide PUBLISH (WRITE on the
// stream topic), SUBSCRIBE (READ) and every delivery. Wrong passwords answer CONNACK 5 (3.1.1,
// Mosquitto's answer) / 0x86 (v5), anonymous 0x87, and are rate-limited per address; a refused
// SUBSCRIBE is SUBACK 0x80 (mosquitto_sub) / 0x87 (mqtt.js v5), a refused v5 PUBLISH PUBACK 0x87.
// Finding 6: a principal without WRITE on `cmd` cannot make a restricted device receive a command
// through any door (MQTT 3.1.1 and 5, an anonymous Kafka producer with kcat, HTTP produce); the
// device still receives what the admin sends, and the broker keeps serving after every refusal.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import kafkajs from 'kafkajs';
import { cliJs, eventually, haveCommand, sh, sleep, startBroker, tempDir } from '../helpers/index.js';

const run = (cmd: string, args: string[], input = '', timeoutMs = 20_000) => sh(cmd, args, input, timeoutMs);

const haveMosquitto = haveCommand('mosquitto_pub') && haveCommand('mosquitto_sub');
const haveKcat = haveCommand('kcat');
if (process.env.CI) {
  if (!haveMosquitto) t.fail('mosquitto_pub/mosquitto_sub are needed (Debian package mosquitto-clients)');
  if (!haveKcat) t.fail('kcat is needed (Debian package kcat)');
}

/** A CONNECT's outcome: 0 = accepted, else the CONNACK code mqtt.js reports. */
async function connackOf(url: string, opts: mqtt.IClientOptions): Promise<number> {
  try {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    await c.endAsync(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

t.test('mqtt on the one authorizer: SCRAM users, Kafka ACLs, refusals with their codes, no command through any door', async (t) => {
  const dir = await tempDir(t, 'tributary-authz-mqtt-');
  const dataDir = join(dir, 'data');
  // 1. bootstrap on the defaults (loopback, anonymous, authorization off): users and ACLs through the CLI
  const first = await startBroker(t, { dataDir });
  const k0 = first.listeners.kafka!;
  for (const [user, pw] of [['admin', 'admin-secret'], ['alice', 'alice-secret'], ['eve', 'eve-secret']]) {
    const r = await run(process.execPath, [cliJs, 'users', 'add', user, '--password', pw, '--kafka', k0]);
    t.equal(r.code, 0, `users add ${user}: ${r.stderr}`);
  }
  for (const a of [
    ['--principal', 'User:alice', '--operation', 'read', '--topic', 'cmd'],
    ['--principal', 'User:alice', '--operation', 'write', '--topic', 'telemetry'],
    ['--principal', 'User:eve', '--operation', 'write', '--topic', 'telemetry'],
    ['--principal', 'User:eve', '--operation', 'read', '--topic', 'telemetry'],
    ['--principal', 'User:eve', '--operation', 'read', '--topic', 'offsets'],
  ]) {
    const r = await run(process.execPath, [cliJs, 'acls', 'add', ...a, '--kafka', k0]);
    t.equal(r.code, 0, `acls add ${a.join(' ')}: ${r.stderr}`);
  }
  t.equal(await first.stop(), 0);

  // 2. restart with MQTT authentication and authorization on
  const config = join(dir, 'tributary.json');
  await writeFile(config, JSON.stringify({ security: { authorization: true, superUsers: ['User:admin'], loginFailuresMax: 3, loginFailureWindowMs: 3000 }, mqtt: { auth: { enabled: true }, reverseRoutes: [{ topic: '__consumer_offsets', mqttTopic: 'offsets/{partition}' }] } }));
  const b = await startBroker(t, { dataDir, args: ['--config', config] });
  const url = `mqtt://${b.listeners.mqtt}`;
  const port = String(b.port('mqtt'));

  await t.test('CONNECT: SCRAM users log in; wrong password 5 / 0x86; anonymous 5 / 0x87', async (t) => {
    t.equal(await connackOf(url, { clientId: 'a1', username: 'alice', password: 'alice-secret' }), 0, 'a user made with `tributary users add` logs in over MQTT');
    t.equal(await connackOf(url, { clientId: 'a2', username: 'alice', password: 'wrong', protocolVersion: 5 }), 0x86, 'v5 wrong password: 0x86');
    t.equal(await connackOf(url, { clientId: 'a3', protocolVersion: 5 }), 0x87, 'v5 anonymous: 0x87 not authorized');
    t.equal(await connackOf(url, { clientId: 'a4', username: 'nobody', password: 'x' }), 5, '3.1.1 unknown user: 5');
    if (haveMosquitto) {
      const wrong = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv311', '-u', 'alice', '-P', 'wrong', '-t', 'telemetry/x', '-m', '1']);
      t.equal(wrong.code, 5, 'mosquitto_pub: CONNACK 5 (not authorised)');
      t.match(wrong.stderr, /not authori[sz]ed/i);
    }
    // three failures above (a2, a4, mosquitto_pub or not): the address is now limited
    if (!haveMosquitto) t.equal(await connackOf(url, { clientId: 'a5', username: 'eve', password: 'wrong' }), 5);
    t.equal(await connackOf(url, { clientId: 'a6', username: 'alice', password: 'alice-secret' }), 5, 'past loginFailuresMax even the right password is refused unchecked');
    await sleep(3100);
    t.equal(await connackOf(url, { clientId: 'a7', username: 'alice', password: 'alice-secret' }), 0, 'after the window the right password works again');
  });

  await t.test('finding 6: no command reaches the restricted device except from a principal with WRITE on cmd', async (t) => {
    const device = await mqtt.connectAsync(url, { clientId: 'dev1', username: 'alice', password: 'alice-secret', reconnectPeriod: 0, protocolVersion: 5 });
    t.teardown(() => device.end(true));
    const received: string[] = [];
    device.on('message', (topic, payload) => received.push(`${topic} ${payload}`));
    const granted = await device.subscribeAsync('cmd/dev1/#', { qos: 1 });
    t.equal(granted[0].qos, 1, 'READ on cmd: the device may subscribe');

    // eve over MQTT 5: PUBACK 0x87, connection kept
    const eve5 = await mqtt.connectAsync(url, { clientId: 'eve5', username: 'eve', password: 'eve-secret', reconnectPeriod: 0, protocolVersion: 5 });
    t.teardown(() => eve5.end(true));
    const refused = await eve5.publishAsync('cmd/dev1/reboot', 'from-eve-v5', { qos: 1 }).then(
      () => 0,
      (e: { code?: number }) => e.code ?? -1,
    );
    t.equal(refused, 0x87, 'v5 PUBLISH without WRITE on cmd: PUBACK 0x87');
    await eve5.publishAsync('telemetry/eve', 'still-served', { qos: 1 });
    // mqtt.js rejects a SUBACK carrying a failure code and attaches the packet
    const sub = await eve5.subscribeAsync('cmd/#', { qos: 1 }).then(
      () => undefined,
      (e: { packet?: { granted?: number[] } }) => e.packet?.granted,
    );
    t.same(sub, [0x87], 'v5 SUBSCRIBE without READ on cmd: SUBACK 0x87');

    if (haveMosquitto) {
      const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv311', '-i', 'eve3', '-u', 'eve', '-P', 'eve-secret', '-q', '1', '-t', 'cmd/dev1/reboot', '-m', 'from-eve-311']);
      t.not(pub.code, 0, `3.1.1 QoS 1 PUBLISH without WRITE: the connection is closed (${pub.stderr.trim()})`);
      const s = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv311', '-u', 'eve', '-P', 'eve-secret', '-t', 'cmd/#', '-d', '-W', '2']);
      t.match(s.stdout + s.stderr, /Subscribed \(mid: \d+\): 128/, 'mosquitto_sub: SUBACK 0x80');
    }
    if (haveKcat) {
      const anon = await run('kcat', ['-P', '-b', b.listeners.kafka!, '-t', 'cmd', '-k', 'cmd/dev1/reboot', '-X', 'message.send.max.retries=0'], 'from-anonymous-kafka\n');
      t.match(anon.stderr, /[Tt]opic authorization failed/, 'anonymous Kafka producer: TOPIC_AUTHORIZATION_FAILED');
    }
    // a will is a deferred publish: checked at CONNECT (it may outlive the broker's memory of who set it)
    t.equal(await connackOf(url, { clientId: 'eve-will', username: 'eve', password: 'eve-secret', protocolVersion: 5, will: { topic: 'cmd/dev1/reboot', payload: Buffer.from('from-eve-will'), qos: 1, retain: false } }), 0x87, 'a will on cmd without WRITE: CONNACK 0x87');
    t.equal(await connackOf(url, { clientId: 'eve-will2', username: 'eve', password: 'eve-secret', will: { topic: 'telemetry/eve/status', payload: Buffer.from('gone'), qos: 1, retain: false } }), 0, 'a will she may write: accepted');
    const http = await fetch(`http://${b.listeners.http}/topics/cmd/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ key: 'cmd/dev1/reboot', value: 'from-http' }]) });
    t.equal(http.status, 403, 'anonymous HTTP produce to cmd: 403');

    // the admin (super-user) may: over MQTT and over Kafka (SASL), both reach the device
    const admin = await mqtt.connectAsync(url, { clientId: 'ops', username: 'admin', password: 'admin-secret', reconnectPeriod: 0 });
    t.teardown(() => admin.end(true));
    await admin.publishAsync('cmd/dev1/reboot', 'from-admin-mqtt', { qos: 1 });
    if (haveKcat) {
      const sasl = ['-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=SCRAM-SHA-512', '-X', 'sasl.username=admin', '-X', 'sasl.password=admin-secret'];
      const p = await run('kcat', ['-P', '-b', b.listeners.kafka!, '-t', 'cmd', '-k', 'cmd/dev1/update', ...sasl], 'from-admin-kafka\n');
      t.equal(p.code, 0, p.stderr);
    }
    const expected = haveKcat ? ['cmd/dev1/reboot from-admin-mqtt', 'cmd/dev1/update from-admin-kafka'] : ['cmd/dev1/reboot from-admin-mqtt'];
    await eventually(() => received.length >= expected.length, 15_000);
    await sleep(300);
    t.same(received.sort(), expected.sort(), 'the device got the admin\'s commands and nothing else');
  });

  await t.test('deliveries: a wildcard subscription never carries a topic the subscriber may not read', async (t) => {
    const eve = await mqtt.connectAsync(url, { clientId: 'eve-all', username: 'eve', password: 'eve-secret', reconnectPeriod: 0, protocolVersion: 5 });
    t.teardown(() => eve.end(true));
    const got: string[] = [];
    eve.on('message', (topic) => got.push(topic));
    const s = await eve.subscribeAsync('#', { qos: 0 });
    t.equal(s[0].qos, 0, 'eve may read telemetry, so `#` is granted at SUBSCRIBE');
    const admin = await mqtt.connectAsync(url, { clientId: 'ops2', username: 'admin', password: 'admin-secret', reconnectPeriod: 0 });
    t.teardown(() => admin.end(true));
    await admin.publishAsync('cmd/dev9/x', 'secret-command', { qos: 1 });
    await admin.publishAsync('telemetry/dev9', 'reading', { qos: 1 });
    await eventually(() => got.includes('telemetry/dev9'));
    await sleep(200);
    t.same(got, ['telemetry/dev9'], 'the cmd message was withheld from eve, telemetry delivered');
  });

  await t.test('finding 7: an internal topic reverse-routed onto MQTT reaches no subscriber', async (t) => {
    // a reverse route maps __consumer_offsets onto MQTT; eve may read `offsets`, so offsets/# is granted
    const eve = await mqtt.connectAsync(url, { clientId: 'eve-offsets', username: 'eve', password: 'eve-secret', reconnectPeriod: 0 });
    t.teardown(() => eve.end(true));
    const got: string[] = [];
    eve.on('message', (topic) => got.push(topic));
    t.equal((await eve.subscribeAsync('offsets/#', { qos: 0 }))[0].qos, 0);
    const kafka = new kafkajs.Kafka({ brokers: [b.listeners.kafka!], clientId: 'offsets', logLevel: kafkajs.logLevel.NOTHING, sasl: { mechanism: 'scram-sha-512', username: 'admin', password: 'admin-secret' } });
    const admin = kafka.admin();
    await admin.connect();
    t.teardown(() => admin.disconnect());
    const commit = (offset: string) => admin.setOffsets({ groupId: 'fleet', topic: 'telemetry', partitions: [{ partition: 0, offset }] });
    await commit('0');
    await sleep(1500); // the tail reads __consumer_offsets (interest came from the subscription); nothing may come
    t.same(got, [], 'a committed offset (a record of __consumer_offsets) is withheld: READ on `offsets` does not open the internal topic');
    // (the reverse path never tails `__*` topics at all, tail.ts; the per-delivery READ check
    // withholds them too, so both would have to break for this to leak)
    await commit('1');
    await eve.publishAsync('telemetry/eve', 'still-served', { qos: 1 });
    await sleep(500);
    t.same(got, [], 'still nothing from the internal topic; eve is still served');
  });

  t.equal(await b.stop(), 0, 'the broker stops cleanly after serving every refusal');
});
