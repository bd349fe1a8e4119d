// Purpose: inter-node TLS (`cluster.tls`, mutual): three real voter processes elect a controller
// and replicate metadata over TLS; a status read verifies the listener against the CA and
// presents a certificate; a plain-TCP reader and a reader with another CA's certificate are
// refused and the quorum keeps working; a start with a missing CA file names the key.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { readStatus } from '../../host/cluster/tcp-transport.js';
import { startCluster, freePort } from '../helpers/cluster.js';
import { eventually, mainJs, tempDir } from '../helpers/index.js';
import { makeCerts } from '../helpers/certs.js';

t.test('cluster TLS: voters elect and replicate over mutual TLS; strangers are refused', async (t) => {
  const certs = await makeCerts(t);
  const tls = { keyFile: certs.nodeKey, certFile: certs.nodeCert, caFile: certs.caCert, requestCert: true };
  const statusTls = { ca: readFileSync(certs.caCert), cert: readFileSync(certs.nodeCert), key: readFileSync(certs.nodeKey) };
  const c = await startCluster(t, 3, { set: [`cluster.tls=${JSON.stringify(tls)}`, 'cluster.tickMs=50'], statusTls });
  const { leader } = await c.waitForLeader();
  t.ok(leader >= 1 && leader <= 3, `controller ${leader} elected over TLS`);
  const created = await fetch(`${c.httpUrl(1)}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'over-tls', partitions: 1 }) });
  t.ok(created.status < 300, `topic created through node 1 (${created.status})`);
  await eventually(async () => (await c.topics(3)).has('over-tls'), 15_000);
  t.pass('node 3 sees the topic: metadata replicated over TLS');
  const address = { host: '127.0.0.1', port: c.node(2).clusterPort };
  const plain = await readStatus(address, 2000).then(
    () => null,
    (e: Error) => e,
  );
  t.ok(plain, `a plain-TCP status read is refused (${plain?.message})`);
  const stranger = await readStatus(address, 2000, undefined, { ca: readFileSync(certs.caCert), cert: readFileSync(certs.otherClientCert), key: readFileSync(certs.otherClientKey) }).then(
    () => null,
    (e: Error) => e,
  );
  t.ok(stranger, `a certificate from another CA is refused (${stranger?.message})`);
  const wrongCa = await readStatus(address, 2000, undefined, { ca: readFileSync(certs.otherCaCert), cert: readFileSync(certs.nodeCert), key: readFileSync(certs.nodeKey) }).then(
    () => null,
    (e: Error) => e,
  );
  t.ok(wrongCa, `a reader trusting another CA refuses the node (${wrongCa?.message})`);
  t.equal((await c.waitForLeader()).leader > 0, true, 'the quorum still has a controller');
  await c.stopAll();
});

t.test('cluster TLS: caFile is required (every voter verifies the others)', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const port = await freePort();
  const tls = { keyFile: certs.nodeKey, certFile: certs.nodeCert, caFile: null };
  const child = spawn(process.execPath, [mainJs, 'start', '--data-dir', join(dir, 'd'), '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0', '--set', 'cluster.nodeId=1', '--set', `cluster.listen=127.0.0.1:${port}`, '--set', `cluster.voters=1@127.0.0.1:${port}`, '--set', `cluster.tls=${JSON.stringify(tls)}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  t.equal(await new Promise((r) => child.on('exit', r)), 2);
  t.match(stderr, /cluster\.tls\.caFile must be set/);
});
