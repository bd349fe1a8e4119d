// Purpose: TLS on the MQTT doors (TCP and WebSocket) against a real broker process, with clients
// nobody here wrote: mosquitto_pub/mosquitto_sub with --cafile and a user/password (mqtt.auth),
// mqtt.js over mqtts:// and wss://; a plain-text MQTT client on the TLS port fails and the TLS
// clients keep being served; a client trusting another CA refuses the broker; with requestCert a
// client certificate from the CA is required (none, or one from another CA, is refused).
// Every acknowledged (QoS 1) publish is read back from the stored topic. Missing tools skip
// locally, fail in CI.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import kafkajs from 'kafkajs';
import { eventually, haveCommand, sh, startBroker, tempDir } from '../helpers/index.js';
import { makeCerts } from '../helpers/certs.js';
import { hashPasswordSync } from '../../gateway/mqtt/index.js';

const haveMosquitto = haveCommand('mosquitto_pub') && haveCommand('mosquitto_sub');
if (process.env.CI && !haveMosquitto) t.fail('mosquitto_pub/mosquitto_sub are needed (Debian package mosquitto-clients)');

const run = (cmd: string, args: string[], timeoutMs = 20_000) => sh(cmd, args, undefined, timeoutMs);

/** Values stored in a topic, read through the Kafka door (plain text there) from the beginning. */
async function storedValues(kafka: string, topic: string, expected: number): Promise<string[]> {
  const admin = new kafkajs.Kafka({ brokers: [kafka], logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return await eventually(async () => {
      const offsets = await admin.fetchTopicOffsets(topic);
      return offsets.reduce((n, p) => n + Number(p.high), 0) >= expected;
    }, 10_000).then(async () => {
      const consumer = new kafkajs.Kafka({ brokers: [kafka], logLevel: kafkajs.logLevel.NOTHING }).consumer({ groupId: `read-${Date.now()}` });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const seen: string[] = [];
      await consumer.run({ eachMessage: async ({ message }) => void seen.push(String(message.value)) });
      await eventually(() => seen.length >= expected, 15_000);
      await consumer.disconnect();
      return seen;
    });
  } finally {
    await admin.disconnect();
  }
}

function connectMqtt(url: string, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 4000, ...options });
    c.once('connect', () => resolve(c));
    c.once('error', (e) => (c.end(true), reject(e)));
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

t.test('MQTT TLS: mosquitto and mqtt.js over mqtts and wss with a user and password; plain text refused', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const config = join(dir, 'c.json');
  const users = [{ username: 'dev', passwordHash: hashPasswordSync('dev-secret', { N: 1024, r: 8, p: 1 }), publish: ['plant/#'], subscribe: ['plant/#'] }];
  await writeFile(config, JSON.stringify({ mqtt: { auth: { enabled: true, users }, tls: { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: null } } }));
  const b = await startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', config] });
  const port = String(b.port('mqtt'));
  const ca = readFileSync(certs.caCert);
  const acked: string[] = [];

  await t.test('mosquitto_pub/mosquitto_sub --cafile with -u/-P', { skip: haveMosquitto ? false : 'mosquitto clients not installed' }, async (t) => {
    const tlsArgs = ['-h', '127.0.0.1', '-p', port, '--cafile', certs.caCert, '-u', 'dev', '-P', 'dev-secret'];
    const sub = spawn('mosquitto_sub', [...tlsArgs, '-i', 'msub', '-q', '1', '-t', 'plant/#', '-v', '-C', '1', '-W', '20']);
    t.teardown(() => sub.kill('SIGKILL'));
    let out = '';
    sub.stdout.on('data', (d) => (out += d));
    sub.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => sub.once('exit', resolve));
    await new Promise((r) => setTimeout(r, 1000)); // mosquitto_sub has no "subscribed" signal on stdout
    const pub = await run('mosquitto_pub', [...tlsArgs, '-i', 'mpub', '-q', '1', '-t', 'plant/boiler', '-m', 'mosquitto-over-tls']);
    t.equal(pub.code, 0, `mosquitto_pub: ${pub.stderr}`);
    acked.push('mosquitto-over-tls');
    t.equal(await exited, 0, `mosquitto_sub got it: ${out}`);
    t.match(out, /plant\/boiler mosquitto-over-tls/);
    const wrongPw = await run('mosquitto_pub', [...tlsArgs.slice(0, -1), 'wrong', '-q', '1', '-t', 'plant/x', '-m', 'x']);
    t.not(wrongPw.code, 0, 'a wrong password over TLS is refused');
    t.match(wrongPw.stderr, /not authori[sz]ed|Connection Refused|bad user name or password/i);
    const wrongCa = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '--cafile', certs.otherCaCert, '-u', 'dev', '-P', 'dev-secret', '-q', '1', '-t', 'plant/x', '-m', 'x']);
    t.not(wrongCa.code, 0, 'a client trusting another CA refuses the broker');
  });

  await t.test('mqtt.js over mqtts:// and wss://: QoS 1 publish and subscribe', async (t) => {
    const tcp = await connectMqtt(`mqtts://127.0.0.1:${port}`, { ca, username: 'dev', password: 'dev-secret', clientId: 'js-tls' });
    const ws = await connectMqtt(`wss://127.0.0.1:${b.port('mqttWs')}/mqtt`, { ca, username: 'dev', password: 'dev-secret', clientId: 'js-wss' } as mqtt.IClientOptions);
    const got: string[] = [];
    ws.on('message', (topic, payload) => got.push(`${topic} ${payload}`));
    await ws.subscribeAsync('plant/#', { qos: 1 });
    await tcp.publishAsync('plant/line1', 'mqttjs-over-mqtts', { qos: 1 });
    acked.push('mqttjs-over-mqtts');
    await ws.publishAsync('plant/line2', 'mqttjs-over-wss', { qos: 1 });
    acked.push('mqttjs-over-wss');
    await eventually(() => got.includes('plant/line1 mqttjs-over-mqtts') && got.includes('plant/line2 mqttjs-over-wss'), 10_000);
    t.pass('each client received the other door’s publish');
    // A plain-text MQTT client on the TLS port: its CONNECT is not a TLS ClientHello; it never gets a CONNACK.
    const plain = await connectMqtt(`mqtt://127.0.0.1:${port}`, { username: 'dev', password: 'dev-secret', connectTimeout: 2000 }).then(
      (c) => (c.end(true), null),
      (e: Error) => e,
    );
    t.ok(plain, `plain text refused (${plain?.message})`);
    await tcp.publishAsync('plant/line1', 'after-plain-attempt', { qos: 1 });
    acked.push('after-plain-attempt');
    t.pass('the TLS client is still served');
    await tcp.endAsync();
    await ws.endAsync();
  });

  const stored = await storedValues(b.listeners.kafka!, 'plant', acked.length);
  for (const v of acked) t.ok(stored.includes(v), `acknowledged "${v}" is stored`);
  t.equal(await b.stop(), 0);
});

t.test('MQTT mutual TLS: a certificate from the CA is required; none, or another CA’s, is refused', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const config = join(dir, 'c.json');
  await writeFile(config, JSON.stringify({ mqtt: { tls: { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: certs.caCert, requestCert: true } } }));
  const b = await startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', config] });
  const url = `mqtts://127.0.0.1:${b.port('mqtt')}`;
  const ca = readFileSync(certs.caCert);
  const ok = await connectMqtt(url, { ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) });
  await ok.publishAsync('plant/mtls', 'with-client-cert', { qos: 1 });
  await ok.endAsync();
  t.pass('a client certificate signed by the CA connects and publishes at QoS 1');
  const none = await connectMqtt(url, { ca }).then(
    (c) => (c.end(true), null),
    (e: Error) => e,
  );
  t.ok(none, `no client certificate: refused (${none?.message})`);
  const other = await connectMqtt(url, { ca, cert: readFileSync(certs.otherClientCert), key: readFileSync(certs.otherClientKey) }).then(
    (c) => (c.end(true), null),
    (e: Error) => e,
  );
  t.ok(other, `another CA's certificate: refused (${other?.message})`);
  if (haveMosquitto) {
    const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.port('mqtt')), '--cafile', certs.caCert, '--cert', certs.clientCert, '--key', certs.clientKey, '-q', '1', '-t', 'plant/mtls', '-m', 'mosquitto-with-cert']);
    t.equal(pub.code, 0, `mosquitto_pub --cert: ${pub.stderr}`);
    const noCert = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.port('mqtt')), '--cafile', certs.caCert, '-q', '1', '-t', 'plant/mtls', '-m', 'x']);
    t.not(noCert.code, 0, 'mosquitto_pub without --cert is refused');
  }
  const stored = await storedValues(b.listeners.kafka!, 'plant', haveMosquitto ? 2 : 1);
  t.ok(stored.includes('with-client-cert'), 'the acknowledged publish is stored');
  t.equal(await b.stop(), 0);
});
