// Purpose: Mosquitto 2.0's defaults (issue 13): a fresh node listens on loopback only and says
// how to open it; a non-loopback bind with anonymous clients is refused at start (exit 2, one line
// naming security.allowAnonymous and the listener's host key) unless security.allowAnonymous is
// true, which starts with a warning per exposed listener; authorization without a super-user is
// refused; and the admin CLI passes --token / TRIBUTARY_TOKEN to an HTTP API with tokens on.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliJs, mainJs, startBroker, tempDir } from '../helpers/index.js';

function run(cmd: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, cmd, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const ports = ['--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0'];

t.test('security start-up: the default host is loopback, and the log says how to open it', async (t) => {
  const dir = await tempDir(t);
  const child = spawn(process.execPath, [mainJs, 'start', '--data-dir', dir, ...ports], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve) => child.stdout.on('data', (d) => ((out += d), out.includes('"ready') && resolve())));
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  const ready = out.split('\n').map((l) => (l ? JSON.parse(l) : {})).find((l) => String(l.msg).startsWith('ready'));
  for (const address of Object.values(ready.listeners as Record<string, string>)) t.match(address, /^127\.0\.0\.1:\d+$/, `bound to loopback: ${address}`);
  t.match(out, /listeners on loopback only \(host: 127\.0\.0\.1\); to serve the network set host: 0\.0\.0\.0 with security\.allowAnonymous/);
});

t.test('security start-up: 0.0.0.0 with anonymous clients is refused unless allowAnonymous is true (then warned)', async (t) => {
  const dir = await tempDir(t);
  const refused = await run([mainJs, 'start', '--data-dir', dir, '--host', '0.0.0.0', ...ports]);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /security\.allowAnonymous.*kafka listener on 0\.0\.0\.0 \(host\) would accept anonymous clients from the network: set security\.allowAnonymous: true/);
  t.notMatch(refused.stdout, /ready/, 'nothing bound');
  const b = await startBroker(t, { dataDir: dir, args: ['--host', '0.0.0.0', '--set', 'security.allowAnonymous=true'] });
  t.match(b.listeners.kafka!, /^0\.0\.0\.0:/);
  t.ok(b.logs.some((l) => l.level === 40 && String(l.msg) === 'kafka listener on 0.0.0.0 accepts anonymous clients (security.allowAnonymous: true)'), 'warned');
  await b.stop();
  const authed = await run([mainJs, 'start', '--data-dir', dir, '--host', '0.0.0.0', '--set', 'security.allowAnonymous=false', '--set', 'mqtt.host=127.0.0.1', '--set', 'http.host=127.0.0.1', '--set', 'schemas.host=127.0.0.1', ...ports, '--set', 'security.reauthMs=-1']);
  t.equal(authed.code, 2, 'a bad value still names its key');
  t.match(authed.stderr, /security\.reauthMs/);
});

t.test('security start-up: authorization without a super-user is refused', async (t) => {
  const r = await run([mainJs, 'start', '--data-dir', await tempDir(t), ...ports, '--set', 'security.authorization=true']);
  t.equal(r.code, 2);
  t.match(r.stderr, /authorization: true needs at least one entry in superUsers/);
});

t.test('admin CLI: --token and TRIBUTARY_TOKEN reach an HTTP API with tokens on (finding 8)', async (t) => {
  const dir = await tempDir(t);
  const config = join(dir, 'c.json');
  await writeFile(config, JSON.stringify({ http: { tokens: [{ token: 'admin-token-1', read: ['*'], write: ['*'], admin: true }] } }));
  const b = await startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', config] });
  const broker = `http://${b.listeners.http}`;
  const without = await run([cliJs, 'topics', 'list', '--broker', broker]);
  t.equal(without.code, 1, 'refused without a token');
  t.match(without.stderr, /401/);
  const flag = await run([cliJs, 'topics', 'create', 'via-token', '--broker', broker, '--token', 'admin-token-1']);
  t.equal(flag.code, 0, flag.stderr);
  const env = await run([cliJs, 'topics', 'list', '--broker', broker], { TRIBUTARY_TOKEN: 'admin-token-1' });
  t.equal(env.code, 0, env.stderr);
  t.match(env.stdout, /via-token/);
  const short = await run([cliJs, 'topics', 'list', '--broker', broker, '--token', 'x']);
  t.equal(short.code, 2);
  t.match(short.stderr, /--token .* at least 8 characters/);
  await b.stop();
});
