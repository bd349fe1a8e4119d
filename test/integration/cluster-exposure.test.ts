// Purpose: the inter-node listener falls under the exposure rule (host/security/exposure.ts) like
// the Kafka, MQTT, HTTP and registry doors: `cluster.listen` on a non-loopback address without
// mutual TLS is refused at start (exit 2, one line naming security.allowAnonymous, the
// listener's key `cluster.listen` and what would allow it), and with security.allowAnonymous:
// true the node starts and warns. Real `tributary start` processes (a one-voter cluster); the
// mutual-TLS verdict is checked on the rule itself (certificates are tls-cluster.test.ts's).
import t from 'tap';
import { spawn } from 'node:child_process';
import { mainJs, startBroker, tempDir } from '../helpers/index.js';
import { freePort } from '../helpers/cluster.js';
import { checkExposure, clusterListener } from '../../host/security/index.js';

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
  });
}

const ports = ['--host', '127.0.0.1', '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0'];

t.test('exposure: cluster.listen on 0.0.0.0 without mutual TLS is refused at start, naming the key; allowAnonymous: true starts with a warning', { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t, 'tributary-cluster-exposure-');
  const port = await freePort();
  const cluster = ['--set', 'cluster.nodeId=1', '--set', `cluster.listen=0.0.0.0:${port}`, '--set', `cluster.voters=1@127.0.0.1:${port}`, '--set', 'cluster.tickMs=50'];
  const refused = await run([mainJs, 'start', '--data-dir', dir, ...ports, ...cluster]);
  t.equal(refused.code, 2, 'exit 2');
  t.match(refused.stderr, /security\.allowAnonymous.*cluster listener on 0\.0\.0\.0 \(cluster\.listen\) would accept anonymous clients from the network: set security\.allowAnonymous: true to allow that, set cluster\.tls with requestCert: true/, `one line naming the key: ${refused.stderr.trim()}`);
  t.notMatch(refused.stdout, /ready/, 'nothing bound');

  // The other doors stay on loopback, so this is the cluster listener's rule alone.
  const started = await startBroker(t, { dataDir: dir, args: [...cluster, '--set', 'security.allowAnonymous=true'] });
  t.ok(started.logs.some((l) => l.level === 40 && String(l.msg) === 'cluster listener on 0.0.0.0 accepts anonymous clients (security.allowAnonymous: true)'), 'started, and warned');
  t.notOk(started.logs.some((l) => /kafka listener on/.test(String(l.msg))), 'the loopback doors are not named');
  await started.stop();
});

t.test('exposure: the cluster listener counts as authenticated only with mutual TLS', { timeout: 5_000 }, async (t) => {
  const off = { host: '10.0.0.1' };
  t.same(checkExposure([clusterListener(off, { requestCert: true })], null).problems, [], 'cluster.tls with requestCert: true: allowed');
  t.equal(checkExposure([clusterListener(off, { requestCert: false })], null).problems.length, 1, 'TLS without client certificates: refused (it hides traffic, it does not say who dials)');
  t.equal(checkExposure([clusterListener(off, null)], null).problems.length, 1, 'plain TCP: refused');
  t.equal(checkExposure([clusterListener(off, null)], false).problems.length, 1, 'allowAnonymous: false does not authenticate voters (SASL is the Kafka door\'s)');
  t.same(checkExposure([clusterListener({ host: '127.0.0.1' }, null)], null).problems, [], 'loopback: allowed');
});
