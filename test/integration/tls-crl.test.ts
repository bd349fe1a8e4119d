// Purpose: certificate revocation lists (`tls.crlFile`) on the Kafka and MQTT doors, against a
// real broker process, with clients nobody here wrote: kcat (ssl.certificate.location) and
// mosquitto_pub/mosquitto_sub (--cafile --cert --key). The test CA issues a client certificate
// and revokes it (`openssl ca -revoke`, `-gencrl`, test/helpers/certs.ts): the revoked one is
// refused at the TLS layer on both doors (the node's log names CERT_REVOKED and the listener),
// its records are never stored, and a valid certificate keeps producing and subscribing; the
// admin CLI with the revoked certificate says the broker refused it. Start-up refuses crlFile
// without requestCert, and a file with no CRL in it, naming the key. Missing tools skip
// locally, fail in CI.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliJs, eventually, haveCommand, mainJs, sh, startBroker, tempDir } from '../helpers/index.js';
import { makeCerts } from '../helpers/certs.js';

const haveKcat = haveCommand('kcat');
const haveMosquitto = haveCommand('mosquitto_pub') && haveCommand('mosquitto_sub');
if (process.env.CI) {
  if (!haveKcat) t.fail('kcat is needed (Debian package kcat)');
  if (!haveMosquitto) t.fail('mosquitto_pub/mosquitto_sub are needed (Debian package mosquitto-clients)');
}

const run = (cmd: string, args: string[], input = '', timeoutMs = 30_000) => sh(cmd, args, input, timeoutMs);

t.test('CRL on Kafka and MQTT: a revoked client certificate is refused (kcat, mosquitto), a valid one keeps being served', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const tls = { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: certs.caCert, requestCert: true, crlFile: certs.crlAfter };
  const config = join(dir, 'c.json');
  await writeFile(config, JSON.stringify({ kafka: { tls }, mqtt: { tls } }));
  // debug: a refused handshake is logged at debug level (a refused device retrying must not flood the log)
  const b = await startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', config], env: { TRIBUTARY_LOG_LEVEL: 'debug' } });
  t.ok(b.logs.some((l) => l.msg === 'client certificates are checked against the revocation list' && l.listener === 'kafka' && l.revoked === 1), 'the start log says the Kafka door checks the CRL (1 revoked)');
  const refusedOn = (listener: string) => b.logs.some((l) => l.msg === 'TLS handshake failed' && l.listener === listener && /^client certificate refused: revoked \(listed in (kafka|mqtt)\.tls\.crlFile\) \(CERT_REVOKED\)$/.test(String(l.clientCertificate)));

  await t.test('kcat: the valid certificate produces and reads back; the revoked one is refused and stores nothing', { skip: haveKcat ? false : 'kcat not installed' }, async (t) => {
    const k = b.listeners.kafka!;
    const ssl = (cert: string, key: string) => ['-X', 'security.protocol=SSL', '-X', `ssl.ca.location=${certs.caCert}`, '-X', `ssl.certificate.location=${cert}`, '-X', `ssl.key.location=${key}`];
    const good = await run('kcat', ['-P', '-b', k, '-t', 'plant', '-X', 'topic.request.required.acks=-1', ...ssl(certs.clientCert, certs.clientKey)], 'valid-1\n');
    t.equal(good.code, 0, `valid certificate produces: ${good.stderr}`);
    const revoked = await run('kcat', ['-P', '-b', k, '-t', 'plant', '-X', 'topic.request.required.acks=-1', '-X', 'message.timeout.ms=5000', ...ssl(certs.revokedCert, certs.revokedKey)], 'revoked-1\n');
    t.not(revoked.code, 0, `the revoked certificate is refused: ${revoked.stderr.split('\n').slice(0, 3).join(' | ')}`);
    await eventually(() => refusedOn('kafka'), 5000);
    t.pass('the node logs the refusal: CERT_REVOKED on the kafka listener');
    const again = await run('kcat', ['-P', '-b', k, '-t', 'plant', '-X', 'topic.request.required.acks=-1', ...ssl(certs.clientCert, certs.clientKey)], 'valid-2\n');
    t.equal(again.code, 0, 'and keeps serving the valid certificate');
    const read = await run('kcat', ['-C', '-b', k, '-t', 'plant', '-e', '-o', 'beginning', ...ssl(certs.clientCert, certs.clientKey)]);
    t.equal(read.code, 0, read.stderr);
    t.same(read.stdout.split('\n').filter(Boolean), ['valid-1', 'valid-2'], 'both acknowledged records are stored, in order; the revoked client stored nothing');
  });

  await t.test('admin CLI over Kafka with the revoked certificate: the message says the broker refuses it', async (t) => {
    const r = await run(process.execPath, [cliJs, 'users', 'list', '--kafka', b.listeners.kafka!, '--cacert', certs.caCert, '--cert', certs.revokedCert, '--cert-key', certs.revokedKey]);
    t.equal(r.code, 3);
    t.match(r.stderr, /it refuses our client certificate \(--cert: revoked, expired, or from another CA\)/);
    const ok = await run(process.execPath, [cliJs, 'users', 'list', '--kafka', b.listeners.kafka!, '--cacert', certs.caCert, '--cert', certs.clientCert, '--cert-key', certs.clientKey]);
    t.equal(ok.code, 0, `the valid certificate: ${ok.stderr}`);
    const plain = await run(process.execPath, [cliJs, 'users', 'list', '--kafka', b.listeners.kafka!]);
    t.equal(plain.code, 3);
    t.match(plain.stderr, /add --tls .* and --cacert FILE/);
  });

  await t.test('mosquitto_pub/sub --cafile --cert --key: the revoked certificate is refused; the valid one publishes and subscribes', { skip: haveMosquitto ? false : 'mosquitto clients not installed' }, async (t) => {
    const port = String(b.port('mqtt'));
    const tlsArgs = (cert: string, key: string) => ['-h', '127.0.0.1', '-p', port, '--cafile', certs.caCert, '--cert', cert, '--key', key];
    const sub = spawn('mosquitto_sub', [...tlsArgs(certs.clientCert, certs.clientKey), '-i', 'crl-sub', '-q', '1', '-t', 'plant/#', '-v', '-C', '1', '-W', '20']);
    t.teardown(() => sub.kill('SIGKILL'));
    let out = '';
    sub.stdout.on('data', (d) => (out += d));
    sub.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => sub.once('exit', resolve));
    await new Promise((r) => setTimeout(r, 1000)); // mosquitto_sub has no "subscribed" signal on stdout
    const revoked = await run('mosquitto_pub', [...tlsArgs(certs.revokedCert, certs.revokedKey), '-i', 'crl-revoked', '-q', '1', '-t', 'plant/boiler', '-m', 'from-revoked']);
    t.not(revoked.code, 0, `mosquitto_pub with the revoked certificate fails: ${revoked.stderr.trim()}`);
    await eventually(() => refusedOn('mqtt'), 5000);
    t.pass('the node logs the refusal: CERT_REVOKED on the mqtt listener');
    const good = await run('mosquitto_pub', [...tlsArgs(certs.clientCert, certs.clientKey), '-i', 'crl-good', '-q', '1', '-t', 'plant/boiler', '-m', 'from-valid']);
    t.equal(good.code, 0, `mosquitto_pub with the valid certificate: ${good.stderr}`);
    t.equal(await exited, 0, `mosquitto_sub (valid certificate) got one message: ${out}`);
    t.match(out, /^plant\/boiler from-valid$/m, 'the valid publish, not the revoked one');
    t.notMatch(out, /from-revoked/);
  });
  t.equal(await b.stop(), 0);
});

t.test('crlFile start-up checks: without requestCert, and a file with no CRL, each refused naming the key', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const start = async (tls: object) => {
    const config = join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(config, JSON.stringify({ kafka: { tls } }));
    const child = spawn(process.execPath, [mainJs, 'start', '--data-dir', join(dir, 'data'), '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    return { code, stderr };
  };
  const base = { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: certs.caCert };
  const noRequest = await start({ ...base, crlFile: certs.crlAfter });
  t.equal(noRequest.code, 2);
  t.match(noRequest.stderr, /kafka\.tls.*crlFile needs requestCert: true/);
  const notCrl = await start({ ...base, requestCert: true, crlFile: certs.caCert });
  t.equal(notCrl.code, 2);
  t.match(notCrl.stderr, /kafka\.tls\.crlFile: .*ca\.crt: no PEM revocation list \(-----BEGIN X509 CRL-----\)/);
});
