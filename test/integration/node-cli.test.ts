// The user's contract for one node: `start` binds every listener and logs one ready line with
// the real ports, SIGTERM stops cleanly with exit 0, bad configuration stops it with a message
// naming the key, and the admin commands work against the running broker.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBroker, tempDir, mainJs, cliJs } from '../helpers/index.js';

function run(script: string, args: string[], input?: string, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end(input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('node: ready line names every listener with its real port; SIGTERM exits 0', async (t) => {
  const dataDir = await tempDir(t);
  const broker = await startBroker(t, { dataDir });
  for (const name of ['kafka', 'mqtt', 'mqttWs', 'http', 'schemas'] as const) {
    t.match(broker.listeners[name], /^127\.0\.0\.1:\d+$/, `${name} listener bound`);
    t.not(broker.port(name), 0, `${name} got a real port`);
  }
  t.equal(await broker.stop(), 0, 'clean stop exits 0');
  t.ok(
    broker.logs.some((l) => l.msg === 'stopped cleanly'),
    'logged the clean stop',
  );
});

t.test('node: admin commands work against a running broker', async (t) => {
  const dataDir = await tempDir(t);
  const broker = await startBroker(t, { dataDir });
  const url = `http://127.0.0.1:${broker.port('http')}`;
  const create = await run(cliJs, ['topics', 'create', 'metrics', '--partitions', '3', '--config', 'retention.ms=3600000', '--broker', url]);
  t.equal(create.code, 0, create.stderr);
  t.match(create.stdout, /created topic metrics with 3 partition/);

  const produced = await run(cliJs, ['produce', 'metrics', '--key', 'sensor-7', '--broker', url], 'one\ntwo\nthree\n');
  t.equal(produced.code, 0, produced.stderr);
  const lines = produced.stdout.trim().split('\n');
  t.equal(lines.length, 3, 'one offset per line of input');
  const partition = Number(/metrics\/(\d+)@0/.exec(lines[0])?.[1]);
  t.same(lines, [0, 1, 2].map((o) => `metrics/${partition}@${o}`), 'one key, one partition, dense offsets');

  const consumed = await run(cliJs, ['consume', 'metrics', '--partition', String(partition), '--broker', url]);
  t.equal(consumed.code, 0, consumed.stderr);
  t.same(
    consumed.stdout.trim().split('\n'),
    ['one', 'two', 'three'].map((v, o) => `${partition}@${o}\tsensor-7\t${v}`),
  );

  const described = await run(cliJs, ['topics', 'describe', 'metrics', '--broker', url]);
  t.match(described.stdout, /retention\.ms=3600000/);
  const listed = await run(cliJs, ['topics', 'list', '--broker', url]);
  t.match(listed.stdout, /^metrics\t3\t3$/m);

  const unknown = await run(cliJs, ['consume', 'nope', '--broker', url]);
  t.equal(unknown.code, 1, 'the broker refused');
  t.match(unknown.stderr, /404 UNKNOWN_TOPIC_OR_PARTITION/);

  const deleted = await run(cliJs, ['topics', 'delete', 'metrics', '--broker', url]);
  t.equal(deleted.code, 0, deleted.stderr);
  const after = await run(cliJs, ['topics', 'list', '--broker', url]);
  t.notMatch(after.stdout, /^metrics\t/m);

  const badFlag = await run(cliJs, ['consume', 'x', '--offset', 'soon', '--broker', url]);
  t.equal(badFlag.code, 2);
  t.match(badFlag.stderr, /--offset must be earliest, latest or an offset/);
  await broker.stop();
});

t.test('node: consume reads every partition by default; --partition narrows it; a numeric --offset needs --partition', async (t) => {
  const dataDir = await tempDir(t);
  const broker = await startBroker(t, { dataDir });
  const url = `http://127.0.0.1:${broker.port('http')}`;
  t.equal((await run(cliJs, ['topics', 'create', 'spread', '--partitions', '3', '--broker', url])).code, 0);
  // one record per partition, each placed explicitly, so all three partitions hold data
  for (const p of [0, 1, 2]) {
    const r = await run(cliJs, ['produce', 'spread', '--partition', String(p), '--key', `k${p}`, '--value', `v${p}`, '--broker', url]);
    t.equal(r.stdout.trim(), `spread/${p}@0`, r.stderr);
  }
  const all = await run(cliJs, ['consume', 'spread', '--broker', url]);
  t.equal(all.code, 0, all.stderr);
  t.same(all.stdout.trim().split('\n').sort(), ['0@0\tk0\tv0', '1@0\tk1\tv1', '2@0\tk2\tv2'], 'records of every partition');

  const limited = await run(cliJs, ['consume', 'spread', '--limit', '2', '--broker', url]);
  t.equal(limited.stdout.trim().split('\n').length, 2, '--limit counts records over all partitions');

  const one = await run(cliJs, ['consume', 'spread', '--partition', '2', '--broker', url]);
  t.same(one.stdout.trim().split('\n'), ['2@0\tk2\tv2'], 'only the partition asked for');

  const json = await run(cliJs, ['consume', 'spread', '--partition', '1', '--json', '--broker', url]);
  t.match(JSON.parse(json.stdout), { partition: 1, offset: 0, key: 'k1', value: 'v1' });

  const numeric = await run(cliJs, ['consume', 'spread', '--offset', '0', '--broker', url]);
  t.equal(numeric.code, 2);
  t.match(numeric.stderr, /--offset 0 needs --partition/);
  const missing = await run(cliJs, ['consume', 'spread', '--partition', '3', '--broker', url]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /404 UNKNOWN_TOPIC_OR_PARTITION: topic spread has no partition 3/);
  await broker.stop();
});

t.test('node: admin commands say when the broker cannot be reached', async (t) => {
  const r = await run(cliJs, ['topics', 'list', '--broker', 'http://127.0.0.1:1']);
  t.equal(r.code, 3);
  t.match(r.stderr, /cannot reach the broker at http:\/\/127\.0\.0\.1:1/);
});

t.test('node: bad configuration stops the broker with a message naming the key', async (t) => {
  const dataDir = await tempDir(t);
  const file = join(dataDir, 'bad.yaml');
  await writeFile(file, 'kafka:\n  maxConnections: lots\n');
  const r = await run(mainJs, ['start', '--data-dir', dataDir, '--config', file]);
  t.equal(r.code, 2);
  t.match(r.stderr, /kafka\.maxConnections = "lots" \(file .*bad\.yaml\): must be an integer/);

  const env = await run(mainJs, ['start', '--data-dir', dataDir], undefined, { TRIBUTARY_MQTT_PORT: 'x' });
  t.equal(env.code, 2);
  t.match(env.stderr, /mqtt\.port = "x" \(env TRIBUTARY_MQTT_PORT\): must be an integer/);

  const flag = await run(mainJs, ['start', '--data-dir', dataDir, '--kafka-port', '99999']);
  t.equal(flag.code, 2);
  t.match(flag.stderr, /kafka\.port = "99999" \(flag\): must be a port number/);
});

t.test('node: help and version', async (t) => {
  const help = await run(cliJs, ['--help']);
  t.match(help.stdout, /usage: tributary <command>/);
  const v = await run(cliJs, ['--version']);
  t.match(v.stdout, /^\d+\.\d+\.\d+/);
  const bad = await run(cliJs, ['frobnicate']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /unknown command "frobnicate"/);
});

t.test('node: the ready line is written even when the log level hides info lines', async (t) => {
  const dataDir = await tempDir(t);
  const broker = await startBroker(t, { dataDir, args: ['--log-level', 'warn'] });
  t.ok(broker.port('kafka') > 0, 'ready line seen and parsed');
  t.notOk(
    broker.logs.some((l) => l.msg === 'starting tributary'),
    'other info lines stay hidden',
  );
  await broker.stop();
});
