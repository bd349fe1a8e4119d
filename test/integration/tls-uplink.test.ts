// Purpose: the uplink's Kafka client over TLS (`uplink.tls`): an edge node forwards to a central
// node whose Kafka listener is TLS-only, verifying its certificate against the test CA; every
// record produced (acknowledged) at the edge is read back from the target over TLS with kcat.
// An edge trusting another CA forwards nothing and logs why; a missing CA file stops the start
// naming the key.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { eventually, haveCommand, mainJs, sh, sleep, startBroker, tempDir } from '../helpers/index.js';
import { makeCerts } from '../helpers/certs.js';

const haveKcat = haveCommand('kcat');
if (process.env.CI && !haveKcat) t.fail('kcat is needed (Debian package kcat)');

const run = (cmd: string, args: string[], timeoutMs = 30_000) => sh(cmd, args, undefined, timeoutMs);

const edgeSets = (bootstrap: string, tls: object) => ['--set', 'uplink.site=edge1', '--set', `uplink.bootstrap=${bootstrap}`, '--set', 'uplink.topics=sensors', '--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=200', '--set', 'uplink.reconnectBackoffMaxMs=500', '--set', `uplink.tls=${JSON.stringify(tls)}`];

t.test('uplink over TLS: forwards to a TLS-only target verified against the CA; another CA forwards nothing', { skip: haveKcat ? false : 'kcat not installed' }, async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const targetConfig = join(dir, 'target.json');
  await writeFile(targetConfig, JSON.stringify({ kafka: { tls: { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: null } } }));
  const target = await startBroker(t, { dataDir: join(dir, 'target'), args: ['--config', targetConfig] });
  const edge = await startBroker(t, { dataDir: join(dir, 'edge'), args: edgeSets(target.listeners.kafka!, { caFile: certs.caCert, certFile: null, keyFile: null, serverName: null }) });
  const producer = new kafkajs.Kafka({ brokers: [edge.listeners.kafka!], logLevel: kafkajs.logLevel.NOTHING }).producer();
  await producer.connect();
  const sent = Array.from({ length: 20 }, (_, i) => `reading-${i}`);
  await producer.send({ topic: 'sensors', acks: -1, messages: sent.map((value) => ({ value })) });
  await producer.disconnect();
  const ssl = ['-X', 'security.protocol=SSL', '-X', `ssl.ca.location=${certs.caCert}`];
  const got = await eventually(async () => {
    const r = await run('kcat', ['-C', '-b', target.listeners.kafka!, '-t', 'edge1.sensors', '-e', '-o', 'beginning', '-q', ...ssl]);
    const lines = r.stdout.split('\n').filter(Boolean);
    return lines.length >= sent.length ? lines : null;
  }, 30_000, 500);
  t.same(got, sent, 'every acknowledged record reached the TLS target once, in order');

  // An edge that trusts another CA refuses the target: nothing forwarded, the reason logged.
  const wrong = await startBroker(t, { dataDir: join(dir, 'edge2'), args: [...edgeSets(target.listeners.kafka!, { caFile: certs.otherCaCert, certFile: null, keyFile: null, serverName: null }), '--set', 'uplink.site=edge2'] });
  const p2 = new kafkajs.Kafka({ brokers: [wrong.listeners.kafka!], logLevel: kafkajs.logLevel.NOTHING }).producer();
  await p2.connect();
  await p2.send({ topic: 'sensors', acks: -1, messages: [{ value: 'must-not-arrive' }] });
  await p2.disconnect();
  await eventually(() => wrong.logs.some((l) => /certificate|self.signed|unable to verify/i.test(JSON.stringify(l))), 15_000);
  t.pass('the edge logged the certificate failure');
  await sleep(1000);
  const none = await run('kcat', ['-L', '-b', target.listeners.kafka!, ...ssl]);
  t.notMatch(none.stdout, /edge2\.sensors/, 'no topic created on the target by the unverified link');
  t.equal(await wrong.stop(), 0);
  t.equal(await edge.stop(), 0);
  t.equal(await target.stop(), 0);
});

t.test('uplink TLS: a missing CA file stops the start naming uplink.tls.caFile', async (t) => {
  const dir = await tempDir(t);
  const child = spawn(process.execPath, [mainJs, 'start', '--data-dir', join(dir, 'd'), '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0', ...edgeSets('127.0.0.1:1', { caFile: join(dir, 'no-ca.pem'), certFile: null, keyFile: null, serverName: null })], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  t.equal(await new Promise((r) => child.on('exit', r)), 2);
  t.match(stderr, /uplink\.tls\.caFile: .*no-ca\.pem: file not found/);
});
