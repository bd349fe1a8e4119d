// Purpose: TLS on the Kafka door over real sockets, against a real broker process, with clients
// nobody here wrote: kcat (librdkafka) SASL_SSL + SCRAM-SHA-512 and SSL, /usr/bin/python3
// confluent_kafka SASL_SSL + SCRAM-SHA-256, kafkajs ssl + SCRAM; a plain-text client on the TLS
// port fails and the broker keeps serving others; start-up refuses missing/mismatched files
// naming the key and the file, before any bind; an expired certificate starts with a warning;
// SIGHUP reloads the certificate without dropping a connection, and a broken file keeps the old
// one; a handshake that never comes is dropped at handshakeTimeoutMs; mutual TLS takes the
// principal from the certificate subject (Kafka's `User:CN=…,OU=…,O=…`) and refuses a client
// with no certificate or one from another CA. Certificates are made per run (test/helpers/certs.ts).
// Missing tools skip locally, fail in CI.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { cliJs, eventually, haveCommand, mainJs, sh, startBroker, tempDir } from '../helpers/index.js';
import { makeCerts, type CertFiles } from '../helpers/certs.js';

const { Kafka, logLevel } = kafkajs;
const PYTHON = '/usr/bin/python3';

const run = (cmd: string, args: string[], input = '', timeoutMs = 30_000) => sh(cmd, args, input, timeoutMs);

const haveKcat = haveCommand('kcat');
const havePython = spawnSync(PYTHON, ['-c', 'import confluent_kafka'], { stdio: 'ignore' }).status === 0;
if (process.env.CI) {
  if (!haveKcat) t.fail('kcat is needed (Debian package kcat)');
  if (!havePython) t.fail(`${PYTHON} with confluent_kafka is needed (Debian package python3-confluent-kafka)`);
}

const ports = ['--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0'];

/** The certificate a fresh TLS connection is shown (its subject's O tells which file is served). */
function servedCertificate(port: number, ca: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(ca) }, () => {
      const cert = s.getPeerCertificate();
      s.end();
      resolve(cert);
    });
    s.on('error', reject);
  });
}

async function writeConfig(dir: string, name: string, config: object): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(config));
  return file;
}

t.test('kafka TLS: start-up refuses bad files naming the key and the file, before any bind', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const cases: Array<[string, object, RegExp]> = [
    ['missing key', { keyFile: join(certs.dir, 'nope.key'), certFile: certs.serverCert }, /kafka\.tls\.keyFile: .*nope\.key: file not found/],
    ['missing cert', { keyFile: certs.serverKey, certFile: join(certs.dir, 'nope.crt') }, /kafka\.tls\.certFile: .*nope\.crt: file not found/],
    ['key of another certificate', { keyFile: certs.clientKey, certFile: certs.serverCert }, /kafka\.tls\.keyFile: .*client\.key: the private key does not match the certificate in .*server\.crt/],
    ['a key file as the certificate', { keyFile: certs.serverKey, certFile: certs.serverKey }, /kafka\.tls\.certFile: .*server\.key: no PEM certificate/],
    ['a directory', { keyFile: certs.dir, certFile: certs.serverCert }, /kafka\.tls\.keyFile: .*: is a directory/],
    ['requestCert without caFile', { keyFile: certs.serverKey, certFile: certs.serverCert, requestCert: true }, /kafka\.tls.*requestCert: true needs caFile/],
    ['handshake bound below its minimum', { keyFile: certs.serverKey, certFile: certs.serverCert, handshakeTimeoutMs: 99 }, /kafka\.tls/],
  ];
  for (const [name, tls, expected] of cases) {
    const config = await writeConfig(dir, 'c.json', { kafka: { tls } });
    const r = await run(process.execPath, [mainJs, 'start', '--data-dir', join(dir, 'data'), ...ports, '--config', config]);
    t.equal(r.code, 2, `${name}: exit 2`);
    t.match(r.stderr, expected, name);
    t.notMatch(r.stdout, /ready|listener bound/, `${name}: nothing bound`);
  }
  // The boundary itself is accepted: 100 ms.
  const ok = await startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', await writeConfig(dir, 'ok.json', { kafka: { tls: { keyFile: certs.serverKey, certFile: certs.serverCert, handshakeTimeoutMs: 100 } } })] });
  t.equal(await ok.stop(), 0);
  // An expired certificate starts (it may be being replaced) with a warning naming key and file.
  const expired = await startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', await writeConfig(dir, 'exp.json', { kafka: { tls: { keyFile: certs.expiredKey, certFile: certs.expiredCert } } })] });
  t.ok(expired.logs.some((l) => l.level === 40 && /kafka\.tls\.certFile: .*expired\.crt: certificate expired on/.test(String(l.msg))), 'expired: warned');
  t.equal(await expired.stop(), 0);
});

t.test('kafka TLS and the exposure rule: a non-loopback Kafka listener with mutual TLS counts as authenticated; TLS alone does not', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const others = ['--host', '0.0.0.0', '--set', 'mqtt.host=127.0.0.1', '--set', 'http.host=127.0.0.1', '--set', 'schemas.host=127.0.0.1'];
  const tlsOnly = await writeConfig(dir, 'tls.json', { kafka: { tls: { keyFile: certs.serverKey, certFile: certs.serverCert } } });
  const refused = await run(process.execPath, [mainJs, 'start', '--data-dir', join(dir, 'data'), ...ports, ...others, '--config', tlsOnly]);
  t.equal(refused.code, 2, 'TLS without authentication on 0.0.0.0 is refused');
  t.match(refused.stderr, /kafka listener on 0\.0\.0\.0 \(host\) would accept anonymous clients/);
  const mtls = await writeConfig(dir, 'mtls.json', { kafka: { tls: { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: certs.caCert, requestCert: true } } });
  const b = await startBroker(t, { dataDir: join(dir, 'data'), args: [...others, '--config', mtls] });
  t.match(b.listeners.kafka!, /^0\.0\.0\.0:/, 'mutual TLS opens the Kafka door to the network');
  t.notOk(b.logs.some((l) => /accepts anonymous clients/.test(String(l.msg))), 'without an anonymous warning');
  t.equal(await b.stop(), 0);
});

t.test('kafka TLS: sockets still in their handshake count towards connectionsMax (boundary 2)', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const config = await writeConfig(dir, 'c.json', { kafka: { connectionsMax: 2, tls: { keyFile: certs.serverKey, certFile: certs.serverCert, handshakeTimeoutMs: 20_000 } } });
  const b = await startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', config] });
  const port = b.port('kafka');
  // Two sockets that never start a handshake fill the listener (a slow-loris client).
  const idle = await Promise.all([0, 1].map(() => new Promise<import('node:net').Socket>((resolve) => {
    const s = netConnect(port, '127.0.0.1', () => resolve(s));
    s.on('error', () => undefined);
  })));
  await eventually(async () => {
    const third = await servedCertificate(port, certs.caCert).then(() => 'served', (e: Error) => e.message);
    return third !== 'served' ? third : null;
  }, 5000).then((why) => t.pass(`the third connection is refused (${why})`));
  await eventually(() => b.logs.some((l) => l.msg === 'refusing connection: connectionsMax reached'), 5000);
  t.pass('the refusal is logged');
  idle[0]!.destroy();
  await eventually(async () => (await servedCertificate(port, certs.caCert)).subject.O === 'tributary-test', 5000);
  t.pass('with one slot free, a TLS client is served again');
  idle[1]!.destroy();
  t.equal(await b.stop(), 0);
});

/** Users made over plain text on a fresh node (the documented bootstrap), then the node is stopped. */
async function bootstrapUsers(t: { equal: typeof import("tap").default.equal; teardown: typeof import("tap").default.teardown }, dataDir: string, certs: CertFiles): Promise<void> {
  const b = await startBroker(t, { dataDir });
  for (const [user, pw] of [['alice', 'alice-secret'], ['admin', 'admin-secret']]) {
    const r = await run(process.execPath, [cliJs, 'users', 'add', user, '--password', pw, '--kafka', b.listeners.kafka!]);
    t.equal(r.code, 0, r.stderr);
  }
  for (const acl of [
    // ALL on `plant` includes CREATE (its first produce creates it) and WRITE and READ.
    ['--principal', certs.clientPrincipal, '--operation', 'all', '--topic', 'plant'],
    ['--principal', 'User:alice', '--operation', 'all', '--topic', 'orders'],
    ['--principal', 'User:alice', '--operation', 'all', '--group', 'g-', '--prefixed'],
    ['--principal', 'User:alice', '--operation', 'create', '--cluster'],
  ]) {
    const r = await run(process.execPath, [cliJs, 'acls', 'add', ...acl, '--kafka', b.listeners.kafka!]);
    t.equal(r.code, 0, `acls add ${acl.join(' ')}: ${r.stderr}`);
  }
  t.equal(await b.stop(), 0);
}

t.test('kafka TLS: SASL_SSL and SSL with kcat, confluent_kafka and kafkajs; plain text refused; SIGHUP reload; handshake bound', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const dataDir = join(dir, 'data');
  await bootstrapUsers(t, dataDir, certs);
  // The served files are copies, so the reload test can replace them.
  const key = join(dir, 'served.key');
  const cert = join(dir, 'served.crt');
  await copyFile(certs.serverKey, key);
  await copyFile(certs.serverCert, cert);
  const config = await writeConfig(dir, 'tls.json', { kafka: { tls: { keyFile: key, certFile: cert, caFile: null, handshakeTimeoutMs: 500 } } });
  const b = await startBroker(t, { dataDir, args: ['--config', config] });
  const k = b.listeners.kafka!;
  const port = b.port('kafka');
  const ssl = ['-X', 'security.protocol=SASL_SSL', '-X', `ssl.ca.location=${certs.caCert}`];

  await t.test('kcat: SASL_SSL with SCRAM-SHA-512 produce and consume; SSL alone', { skip: haveKcat ? false : 'kcat not installed' }, async (t) => {
    const auth = [...ssl, '-X', 'sasl.mechanisms=SCRAM-SHA-512', '-X', 'sasl.username=alice', '-X', 'sasl.password=alice-secret'];
    const p = await run('kcat', ['-P', '-b', k, '-t', 'orders', ...auth], 'over-tls-kcat\n');
    t.equal(p.code, 0, `kcat produce: ${p.stderr}`);
    const c = await run('kcat', ['-C', '-b', k, '-t', 'orders', '-e', '-o', 'beginning', ...auth]);
    t.equal(c.code, 0, c.stderr);
    t.match(c.stdout, /over-tls-kcat/);
    const sslOnly = await run('kcat', ['-C', '-b', k, '-t', 'orders', '-e', '-o', 'beginning', '-X', 'security.protocol=SSL', '-X', `ssl.ca.location=${certs.caCert}`]);
    t.equal(sslOnly.code, 0, `SSL without SASL (anonymous on loopback): ${sslOnly.stderr}`);
    t.match(sslOnly.stdout, /over-tls-kcat/);
    const wrongCa = await run('kcat', ['-L', '-b', k, '-m', '3', '-X', 'security.protocol=SSL', '-X', `ssl.ca.location=${certs.otherCaCert}`]);
    t.not(wrongCa.code, 0, 'a client trusting another CA refuses the broker');
    t.match(wrongCa.stderr, /certificate verify failed|SSL handshake failed/);
  });

  await t.test('confluent_kafka (/usr/bin/python3): SASL_SSL with SCRAM-SHA-256 produce and consume', { skip: havePython ? false : 'confluent_kafka not installed' }, async (t) => {
    const script = `
import sys, json
from confluent_kafka import Producer, Consumer
conf = {'bootstrap.servers': sys.argv[1], 'security.protocol': 'SASL_SSL', 'ssl.ca.location': sys.argv[2], 'sasl.mechanisms': 'SCRAM-SHA-256', 'sasl.username': 'alice', 'sasl.password': 'alice-secret'}
p = Producer(conf)
errs = []
p.produce('orders', b'over-tls-python', callback=lambda e, m: errs.append(str(e)) if e else None)
p.flush(10)
c = Consumer({**conf, 'group.id': 'g-py', 'auto.offset.reset': 'earliest'})
c.subscribe(['orders'])
seen = []
for _ in range(40):
    m = c.poll(0.5)
    if m is None or m.error():
        if 'over-tls-python' in seen: break
        continue
    seen.append(m.value().decode())
c.close()
print(json.dumps({'errors': errs, 'seen': seen}))
`;
    const r = await run(PYTHON, ['-c', script, k, certs.caCert], '', 60_000);
    t.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    t.same(out.errors, []);
    t.ok(out.seen.includes('over-tls-python'), `consumed ${JSON.stringify(out.seen)}`);
  });

  const kafkajsClient = () =>
    new Kafka({ brokers: [k], clientId: 'tls-test', logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 3000, ssl: { ca: [readFileSync(certs.caCert)] }, sasl: { mechanism: 'scram-sha-512', username: 'alice', password: 'alice-secret' } });

  await t.test('kafkajs: ssl + SCRAM-SHA-512 produce; a plain-text client on the TLS port fails and others keep being served', async (t) => {
    const producer = kafkajsClient().producer();
    await producer.connect();
    await producer.send({ topic: 'orders', messages: [{ value: 'over-tls-kafkajs' }] });
    const plain = new Kafka({ brokers: [k], clientId: 'plain', logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 2000, requestTimeout: 2000 });
    const admin = plain.admin();
    const failed = await admin.connect().then(
      () => null,
      (e: Error) => e,
    );
    t.ok(failed, `plain-text client refused (${failed?.name}: ${failed?.message})`);
    await admin.disconnect().catch(() => undefined);
    await producer.send({ topic: 'orders', messages: [{ value: 'still-served' }] });
    t.pass('the TLS client on its open connection is still served');
    await producer.disconnect();
    const again = kafkajsClient().admin();
    await again.connect();
    t.ok((await again.listTopics()).includes('orders'), 'a new TLS client is served');
    await again.disconnect();
  });

  await t.test('handshake bound: a socket that never starts its handshake is dropped after handshakeTimeoutMs (500)', async (t) => {
    const started = Date.now();
    const closedAfterMs = await new Promise<number>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('close', () => resolve(Date.now() - started));
    });
    t.ok(closedAfterMs >= 450 && closedAfterMs < 5000, `closed after ${closedAfterMs} ms`);
  });

  await t.test('SIGHUP: new handshakes get the new certificate, an open connection keeps working; a broken file keeps the old one', async (t) => {
    t.match((await servedCertificate(port, certs.caCert)).subject.O, 'tributary-test');
    const producer = kafkajsClient().producer();
    await producer.connect();
    await producer.send({ topic: 'orders', messages: [{ value: 'before-reload' }] });
    await copyFile(certs.server2Key, key);
    await copyFile(certs.server2Cert, cert);
    b.child.kill('SIGHUP');
    await eventually(() => b.logs.some((l) => l.msg === 'TLS certificate reloaded'), 5000);
    t.equal((await servedCertificate(port, certs.caCert)).subject.O, 'tributary-test-reloaded', 'a new connection sees the new certificate');
    await producer.send({ topic: 'orders', messages: [{ value: 'after-reload' }] });
    t.pass('the connection opened before the reload still produces');
    await writeFile(key, 'not a key\n');
    b.child.kill('SIGHUP');
    await eventually(() => b.logs.some((l) => /^TLS reload failed, keeping the previous certificate: kafka\.tls\.keyFile: .*served\.key: not a PEM private key/.test(String(l.msg))), 5000);
    t.equal((await servedCertificate(port, certs.caCert)).subject.O, 'tributary-test-reloaded', 'still the last good certificate');
    await producer.send({ topic: 'orders', messages: [{ value: 'after-failed-reload' }] });
    await producer.disconnect();
    const c = await run('kcat', ['-C', '-b', k, '-t', 'orders', '-e', '-o', 'beginning', '-X', 'security.protocol=SSL', '-X', `ssl.ca.location=${certs.caCert}`]);
    if (haveKcat) t.match(c.stdout, /before-reload\nafter-reload\nafter-failed-reload/, 'every acknowledged record is there, in order');
  });
  t.equal(await b.stop(), 0);
});

t.test('kafka mutual TLS: the certificate subject is the principal; no certificate or another CA is refused', { skip: haveKcat ? false : 'kcat not installed' }, async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const dataDir = join(dir, 'data');
  await bootstrapUsers(t, dataDir, certs);
  const config = await writeConfig(dir, 'mtls.json', {
    kafka: { tls: { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: certs.caCert, requestCert: true } },
    security: { authorization: true, superUsers: ['User:admin'] },
  });
  const b = await startBroker(t, { dataDir, args: ['--config', config] });
  const k = b.listeners.kafka!;
  const mtls = (cert: string, keyFile: string) => ['-X', 'security.protocol=SSL', '-X', `ssl.ca.location=${certs.caCert}`, '-X', `ssl.certificate.location=${cert}`, '-X', `ssl.key.location=${keyFile}`];
  const p = await run('kcat', ['-P', '-b', k, '-t', 'plant', '-X', 'topic.request.required.acks=-1', ...mtls(certs.clientCert, certs.clientKey)], 'from-sensor-1\n');
  t.equal(p.code, 0, `the certificate's principal may write plant: ${p.stderr}`);
  if (p.code !== 0) t.comment(b.logs.slice(-10).map((l) => JSON.stringify(l)).join('\n'));
  const c = await run('kcat', ['-C', '-b', k, '-t', 'plant', '-e', '-o', 'beginning', ...mtls(certs.clientCert, certs.clientKey)]);
  t.match(c.stdout, /from-sensor-1/, 'and read it back');
  const denied = await run('kcat', ['-P', '-b', k, '-t', 'orders', ...mtls(certs.clientCert, certs.clientKey)], 'x\n');
  t.not(denied.code, 0, 'no ACL for the certificate principal on orders');
  t.match(denied.stderr, /[Tt]opic authorization failed/);
  const noCert = await run('kcat', ['-L', '-b', k, '-m', '3', '-X', 'security.protocol=SSL', '-X', `ssl.ca.location=${certs.caCert}`]);
  t.not(noCert.code, 0, 'a client without a certificate is refused');
  const otherCa = await run('kcat', ['-L', '-b', k, '-m', '3', ...mtls(certs.otherClientCert, certs.otherClientKey)]);
  t.not(otherCa.code, 0, 'a certificate signed by another CA is refused');
  t.notMatch(otherCa.stdout, /plant/, 'and sees nothing');
  // SASL over the same mutual-TLS listener: the SASL user replaces the certificate's principal.
  const sasl = await run('kcat', ['-P', '-b', k, '-t', 'orders', ...mtls(certs.clientCert, certs.clientKey), '-X', 'security.protocol=SASL_SSL', '-X', 'sasl.mechanisms=SCRAM-SHA-512', '-X', 'sasl.username=alice', '-X', 'sasl.password=alice-secret'], 'alice-over-mtls\n');
  t.equal(sasl.code, 0, `SASL_SSL on the mutual-TLS listener: ${sasl.stderr}`);
  t.equal(await b.stop(), 0);
});
