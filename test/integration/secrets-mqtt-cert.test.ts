// Purpose: MQTT with mutual TLS (issue 13): a device that presents a client certificate and no
// CONNECT user name is the certificate's subject (`User:CN=…,OU=…,O=…`, Kafka's SSL principal),
// so Kafka-style ACLs on that principal decide what it may do — with mqtt.auth.enabled on, the
// certificate is its login. Real broker process, mosquitto_pub/sub with --cert/--key and mqtt.js
// over wss:// with the same certificate; the
// acknowledged publish is read back from the stored topic, the refused subscribe and publish
// leave nothing. Missing tools skip locally, fail in CI.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { cliJs, haveCommand, sh, startBroker, tempDir } from '../helpers/index.js';
import { makeCerts } from '../helpers/certs.js';
import { tokenHash } from '../../host/security/index.js';

const ADMIN_TOKEN = 'admin-token-0123456789';

const haveMosquitto = haveCommand('mosquitto_pub') && haveCommand('mosquitto_sub');
if (process.env.CI && !haveMosquitto) t.fail('mosquitto_pub/mosquitto_sub are needed (Debian package mosquitto-clients)');

const run = (cmd: string, args: string[], timeoutMs = 20_000) => sh(cmd, args, undefined, timeoutMs);

t.test('mqtt mutual TLS: the certificate subject is the principal, and its ACLs apply', { skip: haveMosquitto ? false : 'mosquitto_pub/mosquitto_sub not installed' }, async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t, 'tributary-secrets-mtls-');
  const dataDir = join(dir, 'data');
  // 1. the ACLs, through the Kafka admin API of a plain node
  const first = await startBroker(t, { dataDir });
  const acl = ['acls', 'add', '--principal', certs.clientPrincipal, '--operation', 'all', '--topic', 'plant', '--kafka', first.listeners.kafka!];
  const added = await run(process.execPath, [cliJs, ...acl]);
  t.equal(added.code, 0, `acls add for ${certs.clientPrincipal}: ${added.stderr}`);
  t.equal(await first.stop(), 0);

  // 2. authorization on, MQTT login required, client certificates required
  const config = join(dir, 'c.json');
  await writeFile(
    config,
    JSON.stringify({
      security: { authorization: true, superUsers: ['User:admin'] },
      http: { tokens: [{ hash: tokenHash(ADMIN_TOKEN), principal: 'User:admin', admin: true }] },
      mqtt: { auth: { enabled: true }, tls: { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: certs.caCert, requestCert: true } },
    }),
  );
  const b = await startBroker(t, { dataDir, args: ['--config', config] });
  const tls = ['-h', '127.0.0.1', '-p', String(b.port('mqtt')), '--cafile', certs.caCert, '--cert', certs.clientCert, '--key', certs.clientKey];

  const pub = await run('mosquitto_pub', [...tls, '-q', '1', '-t', 'plant/mtls', '-m', 'by-certificate']);
  t.equal(pub.code, 0, `no user name, a certificate whose subject may write plant: published at QoS 1 (${pub.stderr})`);

  const denied = await run('mosquitto_sub', [...tls, '-V', 'mqttv5', '-t', 'cmd/#', '-C', '1', '-W', '3']);
  t.match(denied.stderr, /All subscription requests were denied/, 'a subscribe to a topic its ACLs do not name is refused (SUBACK 0x87)');

  const refusedPub = await run('mosquitto_pub', [...tls, '-V', 'mqttv5', '-q', '1', '-t', 'cmd/reboot', '-m', 'nope']);
  t.match(refusedPub.stderr, /Publish 1 failed: Not authori[sz]ed/, 'a publish to a topic its ACLs do not name: PUBACK 0x87');

  // the same over MQTT over WebSocket (wss://, the same mqtt.tls): mqtt.js with the certificate, no user name
  const ws = await mqtt.connectAsync(`wss://127.0.0.1:${b.port('mqttWs')}/mqtt`, {
    ca: readFileSync(certs.caCert),
    cert: readFileSync(certs.clientCert),
    key: readFileSync(certs.clientKey),
    reconnectPeriod: 0,
    connectTimeout: 5000,
    protocolVersion: 5,
  } as mqtt.IClientOptions);
  await ws.publishAsync('plant/wss', 'by-certificate-over-wss', { qos: 1 });
  await t.rejects(ws.subscribeAsync('cmd/#', { qos: 1 }), /Not authorized/, 'over wss: a subscribe its ACLs do not allow is refused (SUBACK 0x87)');
  await ws.endAsync();

  // what was acknowledged is stored; what was refused is not (no topic cmd was made): read as the
  // super-user through the HTTP API, with a token kept hashed in the config
  const asAdmin = ['--broker', `http://${b.listeners.http}`, '--token', ADMIN_TOKEN];
  const stored = await run(process.execPath, [cliJs, 'consume', 'plant', '--offset', 'earliest', '--limit', '2', ...asAdmin]);
  t.match(stored.stdout, /by-certificate-over-wss/, 'the acknowledged wss publish is stored in plant');
  t.match(stored.stdout, /by-certificate\n/, `the acknowledged publish is stored in plant (${stored.stderr.trim()})`);
  const topics = await run(process.execPath, [cliJs, 'topics', 'list', ...asAdmin]);
  t.equal(topics.code, 0, topics.stderr);
  t.match(topics.stdout, /plant/);
  t.notMatch(topics.stdout, /\bcmd\b/, 'the refused publish created nothing');

  const log = b.logs.map((l) => JSON.stringify(l)).join('\n');
  t.notMatch(log, /CONNECT refused: anonymous clients are not allowed/, 'the certificate client was not treated as anonymous');
  t.equal(await b.stop(), 0);
});
