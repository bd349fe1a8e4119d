// Purpose: bearer tokens hashed at rest (issue 13, "Secrets hashed at rest"). `tributary tokens
// hash` turns a token on standard input into `sha256:<hex>`; a real broker process whose config
// holds only that hash accepts the token on the HTTP API (200), the WebSocket upgrade (opens) and
// the schema registry, and refuses a wrong one (401, close 1008, 401). A plain `token` still works
// and logs a warning naming the key. Malformed entries (bad prefix, wrong length, non-hex, both
// token and hash, neither) stop the node at start (exit 2) with a message naming the entry — and
// neither the token nor the hash ever appears in the logs or the error.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '../unit/ws/harness.js';
import { cliJs, mainJs, startBroker, tempDir } from '../helpers/index.js';

const TOKEN = 'dash-board-token-0123456789';
const PLAIN = 'plain-token-kept-in-the-clear';

function hashCli(input: string, args: string[] = []): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliJs, 'tokens', 'hash', ...args], { input, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function status(url: string, token: string | undefined, init: RequestInit = {}): Promise<number> {
  const res = await fetch(url, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string>) } });
  await res.arrayBuffer();
  return res.status;
}

function start(dir: string, config: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [mainJs, 'start', '--data-dir', join(dir, 'data'), '--config', config, '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      if (stdout.includes('"ready')) child.kill('SIGTERM'); // started: the entry was accepted
    });
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('tokens hash: the CLI prints sha256:<hex>; a broker holding only the hash accepts the token on HTTP, WebSocket and the registry', async (t) => {
  const printed = hashCli(`${TOKEN}\n`);
  t.equal(printed.code, 0, printed.stderr);
  t.match(printed.stdout, /^sha256:[0-9a-f]{64}\n$/, 'one line: sha256 and 64 hex digits');
  const hash = printed.stdout.trim();
  t.equal(hashCli(TOKEN).stdout.trim(), hash, 'with or without the trailing newline, the same hash');
  t.not(hashCli(`${TOKEN}x`).stdout.trim(), hash, 'another token, another hash');

  const dir = await tempDir(t, 'tributary-secrets-');
  const config = join(dir, 'tributary.json');
  await writeFile(config, JSON.stringify({ http: { tokens: [{ hash, read: ['*'], admin: true }, { token: PLAIN, read: ['*'] }] } }));
  const b = await startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', config] });
  const http = `http://${b.listeners.http}`;

  t.equal(await status(`${http}/topics`, TOKEN), 200, 'the right token: 200');
  t.equal(await status(`${http}/topics`, `${TOKEN}x`), 401, 'a wrong token: 401');
  t.equal(await status(`${http}/topics`, hash), 401, 'the hash itself is not a token: 401');
  t.equal(await status(`${http}/topics`, undefined), 401, 'no token: 401');
  t.equal(await status(`${http}/topics`, PLAIN), 200, 'a plain token still works');

  const ok = await Client.open(t, `ws://${b.listeners.http}/ws`, 'json', { headers: { authorization: `Bearer ${TOKEN}` } });
  t.equal((await ok.request({ type: 'ping' })).type, 'pong', 'the WebSocket upgrade with the token opens and answers');
  const viaQuery = await Client.open(t, `ws://${b.listeners.http}/ws?access_token=${encodeURIComponent(TOKEN)}`, 'json');
  t.equal((await viaQuery.request({ type: 'ping' })).type, 'pong', 'the token in the query opens too');
  const wrong = new Client(`ws://${b.listeners.http}/ws`, 'json', { headers: { authorization: `Bearer ${TOKEN}x` } });
  t.teardown(() => wrong.ws.terminate());
  t.equal((await wrong.closed).code, 1008, 'a wrong token: closed 1008');

  const reg = `http://${b.listeners.schemas}`;
  t.equal(await status(`${reg}/subjects`, TOKEN), 200, 'the registry takes the hashed token');
  t.equal(await status(`${reg}/subjects`, `${TOKEN}x`), 401, 'and refuses a wrong one');

  const logs = b.logs.map((l) => JSON.stringify(l)).join('\n');
  t.match(logs, /http\.tokens\[1\]\.token keeps a bearer token in the clear/, 'the plain entry is warned about, by its key');
  t.notMatch(logs, /http\.tokens\[0\]\.token/, 'the hashed entry is not');
  t.notOk(logs.includes(TOKEN) || logs.includes(hash.slice(7)) || logs.includes(PLAIN), 'neither a token nor a hash is logged');
  t.equal(await b.stop(), 0);
});

t.test('tokens hash --new: a random token and its hash; bad input is a usage error naming the problem', async (t) => {
  const made = hashCli('', ['--new']);
  t.equal(made.code, 0, made.stderr);
  const m = /^token: ([A-Za-z0-9_-]{43})\nhash: (sha256:[0-9a-f]{64})\n$/.exec(made.stdout);
  t.ok(m, `token and hash printed: ${made.stdout.replace(/token: \S+/, 'token: …')}`);
  t.equal(hashCli(m![1]).stdout.trim(), m![2], 'the printed hash is the printed token\'s');
  t.not(hashCli('', ['--new']).stdout, made.stdout, 'each run makes a new token');

  const short = hashCli('seven77\n');
  t.equal(short.code, 2);
  t.match(short.stderr, /has 7 characters; at least 8 are needed/);
  t.match(hashCli('two words here\n').stderr, /white space/);
  t.match(hashCli('line-one-xx\nline-two-xx\n').stderr, /more than one line/);
  const argv = hashCli('', ['some-token-on-argv']);
  t.equal(argv.code, 2);
  t.match(argv.stderr, /standard input, not the command line/);
  t.equal(spawnSync(process.execPath, [cliJs, 'tokens', 'list']).status, 2, 'unknown subcommand: 2');
});

t.test('config errors at the boundary: each malformed entry stops the node naming it, without quoting it', async (t) => {
  const dir = await tempDir(t, 'tributary-secrets-cfg-');
  const good = `sha256:${'ab'.repeat(32)}`;
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['bad prefix', { hash: `sha512:${'ab'.repeat(32)}` }, /tokens\[0\]\.hash must start with "sha256:"/],
    ['63 hex digits', { hash: good.slice(0, -1) }, /tokens\[0\]\.hash must have 64 hex digits after "sha256:", it has 63 characters/],
    ['65 hex digits', { hash: `${good}a` }, /tokens\[0\]\.hash must have 64 hex digits after "sha256:", it has 65 characters/],
    ['non-hex', { hash: `sha256:${'zz'.repeat(32)}` }, /tokens\[0\]\.hash must have only hex digits/],
    ['both token and hash', { token: 'both-token-xyz', hash: good }, /tokens\[0\]: give either token or hash, not both/],
    ['neither', { principal: 'User:x' }, /tokens\[0\]: needs a hash/],
    ['plain token too short', { token: 'abc1234' }, /tokens\[0\]\.token must be a string of at least 8 characters/],
    ['the same token twice', { hash: good, dup: true }, /tokens\[1\]: the same token as tokens\[0\]/],
  ];
  for (const [name, entry, message] of cases) {
    const config = join(dir, `${name.replace(/\W/g, '-')}.json`);
    const { dup, ...e } = entry;
    await writeFile(config, JSON.stringify({ http: { tokens: dup ? [e, { hash: good.toUpperCase().replace('SHA256', 'sha256') }] : [e] } }));
    const r = await start(dir, config);
    t.equal(r.code, 2, `${name}: exit 2`);
    t.match(r.stderr, message, `${name}: ${r.stderr.trim()}`);
    const secret = e.hash !== undefined ? String(e.hash).slice(7) : String(e.token ?? '');
    if (secret) t.notOk(r.stderr.includes(secret) || r.stdout.includes(secret), `${name}: the value is not printed`);
  }
  // the boundary's other side: exactly 64 digits, upper-case hex too, starts
  const config = join(dir, 'upper.json');
  await writeFile(config, JSON.stringify({ http: { tokens: [{ hash: `sha256:${'AB'.repeat(32)}` }] } }));
  const r = await start(dir, config);
  t.match(r.stdout, /"ready/, `64 upper-case hex digits start: ${r.stderr}`);
});
