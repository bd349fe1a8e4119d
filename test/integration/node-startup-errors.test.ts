// Purpose: every start-up mistake (issue 14 item 4) stops the real CLI with one line naming the
// key, the value and what is allowed — no stack trace, a non-zero exit — before anything binds:
// the process logs nothing (its logger starts after the checks) and every port it was given can
// be bound by the test afterwards. Also: old key names still work with a warning, and port -1
// turns each listener off.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mainJs, startBroker, tempDir } from '../helpers/index.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [mainJs, 'start', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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

/** A port free right now on loopback (the kernel picks it; we release it at once). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Binds and releases `port` on loopback: resolves true when nobody holds it. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function portArgs(): Promise<{ args: string[]; ports: number[] }> {
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  return { ports, args: ['--kafka-port', String(ports[0]), '--mqtt-port', String(ports[1]), '--mqtt-ws-port', String(ports[2]), '--http-port', String(ports[3])] };
}

/** Runs a bad start and checks the one-line contract; returns the line. */
async function refused(t: Test, extra: string[], message: RegExp, opts: { dataDir?: string; host?: string; code?: number } = {}): Promise<string> {
  const dataDir = opts.dataDir ?? (await tempDir(t));
  const { args, ports } = await portArgs();
  const r = await run(['--data-dir', dataDir, '--host', opts.host ?? '127.0.0.1', ...args, ...extra]);
  t.equal(r.code, opts.code ?? 2, `exit code ${opts.code ?? 2}`);
  const lines = r.stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `one line on stderr: ${r.stderr}`);
  t.match(lines[0], message);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  if ((opts.code ?? 2) === 2) t.equal(r.stdout, '', 'nothing logged: the checks run before the logger, the broker and every listener');
  else t.notMatch(r.stdout, /listener bound|listening|"ready/, 'no listener was bound');
  for (const p of ports) t.ok(await canBind(p), `port ${p} is free`);
  return lines[0];
}

t.test('start-up errors: the data dir', async (t) => {
  await refused(t, [], /^tributary: config: dataDir = "" \(flag\): must be a non-empty directory path$/, { dataDir: '' });
  const dir = await tempDir(t);
  const file = join(dir, 'a-file');
  await writeFile(file, 'x');
  await refused(t, [], /dataDir = ".*a-file" \(flag\): .*a-file is a file: must be a writable directory/, { dataDir: file });
  await refused(t, [], /dataDir = ".*a-file\/below" \(flag\): .*below cannot be used \(ENOTDIR\): must be a writable directory/, { dataDir: join(file, 'below') });
});

t.test('start-up errors: a bind address that is not this machine\'s', async (t) => {
  // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a host.
  await refused(t, [], /host = "192\.0\.2\.7" \(flag\): cannot bind it \(EADDRNOTAVAIL\): must be an address of this machine/, { host: '192.0.2.7' });
  await refused(t, [], /host = "no-such-host\.invalid" \(flag\): cannot bind it \(ENOTFOUND\)/, { host: 'no-such-host.invalid' });
  await refused(t, ['--set', 'mqtt.host=192.0.2.8'], /mqtt\.host = "192\.0\.2\.8" \(flag\): cannot bind it/);
});

t.test('start-up errors: a port another process holds is named before any listener binds', async (t) => {
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
  const held = (holder.address() as AddressInfo).port;
  await refused(t, ['--mqtt-port', String(held)], new RegExp(`mqtt\\.port = ${held} \\(flag\\): cannot bind 127\\.0\\.0\\.1:${held} \\(EADDRINUSE\\): must be a free port`));
});

t.test('start-up errors: MQTT routes that do not compile', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'routes.yaml');
  await writeFile(file, 'mqtt:\n  routes:\n    - { match: "plant/#", topic: "plant" }\n    - { match: "a/#/b", topic: "x" }\n');
  await refused(t, ['--config', file], /mqtt\.routes\[1\] = \{"match":"a\/#\/b","topic":"x"\} \(file .*routes\.yaml\): match is not a valid MQTT topic filter/);
  await writeFile(file, 'mqtt:\n  routes:\n    - { match: "a/+", topic: "t-{7}-{nope}" }\n');
  await refused(t, ['--config', file], /mqtt\.routes\[0\] = .*unknown placeholder \{nope\}/);
  await writeFile(file, 'mqtt:\n  routes:\n    - { match: "a/+" }\n');
  await refused(t, ['--config', file], /mqtt\.routes = \[\{"match":"a\/\+"\}\] \(file .*\): at 0: must have required property 'topic'/);
});

t.test('start-up errors: a TLS block with missing files or keys names the key and the file', async (t) => {
  await refused(t, ['--set', 'kafka.tls={"keyFile":"k.pem","certFile":"c.pem"}'], /kafka\.tls\.keyFile: k\.pem: file not found \(kafka\.tls from flag\)/);
  await refused(t, ['--set', 'mqtt.tls={"keyFile":"k.pem"}'], /mqtt\.tls = .* \(flag\): must be null \(plain TCP\) or \{ keyFile, certFile/);
});

t.test('start-up errors: limits that disagree across sections name both keys', async (t) => {
  await refused(t, ['--set', 'mqtt.packetBytesMax=2000000', '--set', 'mqtt.batchBytesMax=2000000'], /mqtt\.packetBytesMax = 2000000 \(flag\): must be at most broker\.topicDefaults\.max\.message\.bytes = 1048588 \(built-in topic default\)/);
  await refused(t, ['--set', 'http.maxPayloadBytes=16777216'], /http\.maxPayloadBytes = 16777216 \(flag\): must be at most broker\.maxMessageBytesMax = 8388608 \(default\)/);
  await refused(
    t,
    ['--set', 'broker.topicDefaults={"max.message.bytes":4194304}', '--set', 'kafka.maxRequestBytes=2097152'],
    /broker\.topicDefaults\.max\.message\.bytes = 4194304 \(flag\): must be at most kafka\.maxRequestBytes = 2097152 \(flag\)/,
  );
  await refused(t, ['--set', 'groups.maxSessionTimeoutMs=7000'], /mqtt\.sharedSessionTimeoutMs = 10000 \(default\): must be at most groups\.maxSessionTimeoutMs = 7000 \(flag\)/);
});

t.test('start-up errors: a module\'s own rule names the key, the value and where it was set', async (t) => {
  await refused(t, ['--set', 'broker.defaultPartitions=5000'], /^tributary: config: invalid broker option defaultPartitions=5000: an integer from 1 to 1000 \(broker\.defaultPartitions from flag\)$/);
  await refused(t, ['--set', 'http.tailLingerMs=30', '--set', 'http.tailLingerMaxMs=20'], /tailLingerMaxMs \(20\) must be at least tailLingerMs \(30\) \(http\.tailLingerMs from flag, http\.tailLingerMaxMs from flag\)/);
});

t.test('start-up errors: a memory budget too small for the configured limits lists the biggest items', async (t) => {
  const line = await refused(t, ['--set', 'node.memoryBudgetBytes=104857600'], /node\.memoryBudgetBytes = 104857600 \(flag\): the configured limits may hold \d+\.\d MiB .* more than this budget \(100\.0 MiB\); biggest: /);
  t.match(line, /mqtt\.deliveriesQueuedMax × mqtt\.packetBytesMax = 250\.0 MiB/, 'the biggest item is named with its size');
  await refused(t, ['--set', 'mqtt.tailReadBytesMax=4194304'], /node\.memoryBudgetBytes = 838860800 \(default\): .*biggest: mqtt\.tailTopicsMax × mqtt\.tailReadBytesMax = 1024\.0 MiB/);
});

t.test('start-up errors: a data dir in use is one line too (exit 1), and the second node binds nothing', async (t) => {
  const dataDir = await tempDir(t);
  const first = await startBroker(t, { dataDir });
  await refused(t, [], /^tributary: failed to start: .*(in use|lock)/, { dataDir, code: 1 });
  t.equal(await first.stop(), 0, 'the first node is unharmed');
});

t.test('start: old key names still work and log a warning naming the new key', async (t) => {
  const dataDir = await tempDir(t);
  const b = await startBroker(t, { dataDir, args: ['--set', 'kafka.maxConnections=5'], env: { TRIBUTARY_HTTP_MAX_SOCKETS: '7' } });
  const warnings = b.logs.filter((l) => l.level === 40).map((l) => l.msg);
  t.ok(warnings.includes('kafka.maxConnections (flag) is deprecated: use kafka.connectionsMax'), 'kafka warning');
  t.ok(warnings.includes('http.maxSockets (env TRIBUTARY_HTTP_MAX_SOCKETS) is deprecated: use http.connectionsMax'), 'http warning');
  const budget = b.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('memory budget:'));
  t.ok(budget, 'the memory budget is logged in one line');
  t.match(budget, { memoryBudget: { limitBytes: 838860800, items: { 'broker.maxPendingAppendBytes': 67108864 } } });
  t.equal((budget!.memoryBudget as { items: Record<string, number> }).items['http.connectionsMax × (http.sendBufferPauseBytes + http.frameBytesMax)'], 7 * (65536 + 65536), 'the old name set the new key');
  t.equal(await b.stop(), 0);
});

t.test('start: port -1 turns each listener off', async (t) => {
  const dataDir = await tempDir(t);
  const r = await startBroker(t, { dataDir, args: ['--kafka-port', '-1', '--http-port', '-1', '--mqtt-ws-port', '-1', '--set', 'schemas.port=-1'] });
  t.same(Object.keys(r.listeners).sort(), ['mqtt'], 'only MQTT over TCP is bound');
  t.equal(await r.stop(), 0);
  const s = await startBroker(t, { dataDir, args: ['--mqtt-port', '-1', '--mqtt-ws-port', '-1', '--set', 'schemas.port=-1'] });
  t.same(Object.keys(s.listeners).sort(), ['http', 'kafka'], 'MQTT off entirely, the others on');
  t.equal(await s.stop(), 0);
});

t.test('start-up errors: ports outside -1..65535 name the allowed range', async (t) => {
  await refused(t, ['--set', 'http.port=-2'], /http\.port = "-2" \(flag\): must be a port number from -1 to 65535 \(0 picks a free port, -1 turns the listener off\)/);
});

