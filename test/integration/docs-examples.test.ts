// Purpose: every shell (```sh / ```bash / ```console) and JavaScript (```js) example in README.md
// and docs/*.md runs, as written, against a real broker process — docs that do not run are
// defects (issue 14, finding 7). Each example gets a fresh broker on random ports; the text is
// rewritten only to reach it: the hosts `localhost`, `gateway.local` and `gateway` become
// 127.0.0.1, the default ports (9092, 1883, 8083, 8080, 8081) become the bound ones, and
// TRIBUTARY_BROKER and TRIBUTARY_KAFKA point the admin CLI at it. Shell examples run in bash with `set -e -o
// pipefail` from the project root, with a `tributary` command on PATH (as after a global
// install); JS examples run as an ES module with the project's node_modules.
//
// An HTML comment on the line before a fence changes how the example runs (the syntax is in
// README.md, "Tests"):
//   <!-- example: skip="why it cannot run here" -->            listed with its reason, not run
//   <!-- example: setup="shell" stop-after=N expect="text" expect=/regex/ -->
// `setup` runs first (for what a reader would already have, e.g. records in a topic);
// `expect` (repeatable) must appear in the example's standard output; `stop-after=N` is for
// examples that run until stopped (a subscriber, a group consumer): they are stopped once every
// expect was seen or after N seconds, and pass only if every expect was seen and nothing failed
// before. Without `stop-after` an example must exit 0 by itself. No sh/js block is ignored: each
// one runs, or is skipped with its reason; a marker not followed by such a block fails the test.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, symlink, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { startBroker, tempDir, projectRoot, cliJs, haveCommand, type BrokerProcess } from '../helpers/index.js';

const RUN_LANGS = new Map([['sh', 'sh'], ['bash', 'sh'], ['console', 'sh'], ['js', 'js'], ['javascript', 'js']]);
const TOOLS = ['kcat', 'mosquitto_pub', 'mosquitto_sub', 'curl'];
// An example that exits by itself gets this long (raisable for slow hardware).
const EXAMPLE_TIMEOUT_MS = Number(process.env.DOCS_EXAMPLE_TIMEOUT_MS ?? 180_000); // the README walk-through is 7 npx calls, ~8 s each on a loaded 2-core machine
const OUTPUT_BYTES_MAX = 256 * 1024;
// A fresh broker per example: the file needs more than the suite's 300 s default.
t.setTimeout(Number(process.env.DOCS_EXAMPLES_TIMEOUT_MS ?? 900_000));

export interface Marker {
  skip?: string;
  setup?: string;
  stopAfterS?: number;
  expect: Array<string | RegExp>;
}

export interface Example {
  file: string;
  line: number;
  kind: 'sh' | 'js';
  code: string;
  marker: Marker;
}

const MARKER_RE = /^\s*<!--\s*example:(.*)-->\s*$/;

export function parseMarker(text: string, where: string): Marker {
  const marker: Marker = { expect: [] };
  const token = /\s*([a-z-]+)=("((?:[^"\\]|\\.)*)"|'([^']*)'|\/((?:[^/\\]|\\.)+)\/([a-z]*)|(\S+))/gy;
  let rest = text.trim();
  let m: RegExpExecArray | null;
  token.lastIndex = 0;
  let consumed = 0;
  while ((m = token.exec(rest)) !== null) {
    consumed = token.lastIndex;
    const [, key, , dq, sq, re, flags, bare] = m;
    const value = dq !== undefined ? dq.replace(/\\(.)/g, '$1') : sq ?? bare;
    if (key === 'skip') marker.skip = value;
    else if (key === 'setup') marker.setup = value;
    else if (key === 'stop-after' && /^\d+$/.test(value ?? '')) marker.stopAfterS = Number(value);
    else if (key === 'expect') marker.expect.push(re !== undefined ? new RegExp(re, flags) : value!);
    else throw new Error(`${where}: bad example marker key or value "${m[0].trim()}" (skip, setup, stop-after=N, expect)`);
  }
  rest = rest.slice(consumed).trim();
  if (rest) throw new Error(`${where}: cannot read example marker near "${rest}"`);
  if (marker.stopAfterS !== undefined && marker.expect.length === 0) throw new Error(`${where}: stop-after needs at least one expect (otherwise the example could not fail)`);
  return marker;
}

/** Every sh/js fenced block of a markdown text, with the marker on the line before it. */
export function extractExamples(markdown: string, file: string): Example[] {
  const lines = markdown.split('\n');
  const examples: Example[] = [];
  let pending: { marker: Marker; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const markerMatch = MARKER_RE.exec(lines[i]);
    if (markerMatch) {
      if (pending) throw new Error(`${file}:${pending.line}: example marker not followed by a sh/js block`);
      pending = { marker: parseMarker(markerMatch[1], `${file}:${i + 1}`), line: i + 1 };
      continue;
    }
    const fence = /^(\s*)```([a-z]*)\s*$/.exec(lines[i]);
    if (!fence) {
      if (pending && lines[i].trim() !== '') throw new Error(`${file}:${pending.line}: example marker not followed by a sh/js block`);
      continue;
    }
    const indent = fence[1].length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]); j++) body.push(lines[j].slice(Math.min(indent, lines[j].length - lines[j].trimStart().length)));
    const kind = RUN_LANGS.get(fence[2]);
    // ```console is a transcript: the commands are the lines after a `$ ` prompt, the rest is output
    const code = fence[2] === 'console' ? body.filter((l) => l.startsWith('$ ')).map((l) => l.slice(2)) : body;
    if (kind) examples.push({ file, line: i + 1, kind: kind as 'sh' | 'js', code: code.join('\n') + '\n', marker: pending?.marker ?? { expect: [] } });
    else if (pending) throw new Error(`${file}:${pending.line}: example marker before a \`\`\`${fence[2]} block (only sh/js examples run)`);
    pending = undefined;
    i = j;
  }
  if (pending) throw new Error(`${file}:${pending.line}: example marker at the end of the file`);
  return examples;
}

const DEFAULT_PORTS: Array<[string, 'kafka' | 'mqtt' | 'mqttWs' | 'http' | 'schemas']> = [
  ['9092', 'kafka'],
  ['1883', 'mqtt'],
  ['8083', 'mqttWs'],
  ['8080', 'http'],
  ['8081', 'schemas'],
];

/** The example's text aimed at the test broker: hosts to 127.0.0.1, default ports to bound ones. */
export function aimAt(code: string, broker: Pick<BrokerProcess, 'port'>): string {
  let s = code.replace(/\bgateway\.local\b/g, '127.0.0.1').replace(/\bgateway:(?=\d)/g, '127.0.0.1:').replace(/\blocalhost\b/g, '127.0.0.1');
  for (const [port, name] of DEFAULT_PORTS) s = s.replace(new RegExp(`\\b${port}\\b`, 'g'), String(broker.port(name)));
  return s;
}

export interface Outcome {
  ok: boolean;
  why: string;
  stdout: string;
  stderr: string;
}

interface RunContext {
  broker: BrokerProcess;
  binDir: string;
  jsDir: string;
}

function missingTools(ex: Example): string[] {
  const text = ex.code + (ex.marker.setup ?? '');
  return TOOLS.filter((tool) => new RegExp(`(^|[\\s|;&(])${tool}\\b`, 'm').test(text) && !haveCommand(tool));
}

function expectSeen(expect: Array<string | RegExp>, stdout: string): Array<string | RegExp> {
  return expect.filter((e) => (typeof e === 'string' ? !stdout.includes(e) : !e.test(stdout)));
}

/** Runs one example against a broker; never throws for the example's own failures. */
export async function runExample(ex: Example, ctx: RunContext): Promise<Outcome> {
  const setup = ex.marker.setup ? aimAt(ex.marker.setup, ctx.broker) + '\n' : '';
  const code = aimAt(ex.code, ctx.broker);
  let command: string;
  let cwd = projectRoot;
  if (ex.kind === 'sh') command = `set -e -o pipefail\n${setup}${code}`;
  else {
    const file = join(ctx.jsDir, `example-${ex.line}.mjs`);
    await writeFile(file, code);
    // Node 22+ has a global WebSocket; Node 20 behind a flag (the README's browser snippet runs on both).
    const wsFlag = Number(process.versions.node.split('.')[0]) < 22 ? '--experimental-websocket ' : '';
    command = `set -e -o pipefail\n${setup}exec ${JSON.stringify(process.execPath)} ${wsFlag}${JSON.stringify(file)}\n`;
    cwd = ctx.jsDir;
  }
  const env = {
    ...process.env,
    PATH: `${ctx.binDir}:${process.env.PATH}`,
    TRIBUTARY_BROKER: `http://127.0.0.1:${ctx.broker.port('http')}`,
    TRIBUTARY_KAFKA: `127.0.0.1:${ctx.broker.port('kafka')}`,
  };
  const child = spawn('bash', ['-c', command], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const keep = (s: string) => (s.length > OUTPUT_BYTES_MAX ? s.slice(-OUTPUT_BYTES_MAX) : s);
  child.stdout.on('data', (d) => (stdout = keep(stdout + d)));
  child.stderr.on('data', (d) => (stderr = keep(stderr + d)));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let exitCode: number | null | undefined; // undefined while running; -1 when killed by a signal
  child.once('exit', (c, sig) => (exitCode = sig ? -1 : c));
  const stopAfter = ex.marker.stopAfterS !== undefined;
  const deadline = Date.now() + (stopAfter ? ex.marker.stopAfterS! * 1000 : EXAMPLE_TIMEOUT_MS);
  // Poll until the example fails, ends (output read to the end), or — with stop-after — showed
  // everything it should, even from a process it left in the background.
  for (;;) {
    const allSeen = expectSeen(ex.marker.expect, stdout).length === 0;
    if (exitCode !== undefined && exitCode !== 0) break;
    if (exitCode === 0 && (!stopAfter || allSeen)) {
      await Promise.race([closed, new Promise((r) => setTimeout(r, 500))]);
      break;
    }
    if (stopAfter && allSeen) break;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const finished = exitCode;
  // Stop the example and everything it started in the background as Ctrl-C would (SIGTERM lets
  // a tool flush what it buffered, e.g. kcat's stdout into a pipe), then SIGKILL what is left.
  const signalGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* already gone */
    }
  };
  signalGroup('SIGTERM');
  await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
  signalGroup('SIGKILL');
  await closed;
  const unseen = expectSeen(ex.marker.expect, stdout);
  let why = '';
  if (finished !== undefined && finished !== 0) why = `exited with ${finished}`;
  else if (finished === undefined && ex.marker.stopAfterS === undefined) why = `did not finish within ${EXAMPLE_TIMEOUT_MS} ms`;
  else if (unseen.length) why = `expected output not seen: ${unseen.map(String).join(', ')}`;
  return { ok: why === '', why, stdout, stderr };
}

async function docFiles(): Promise<string[]> {
  const docs = (await readdir(join(projectRoot, 'docs'))).filter((f) => f.endsWith('.md')).sort();
  return ['README.md', ...docs.map((f) => `docs/${f}`)];
}

async function context(t: { teardown(fn: () => unknown): void }): Promise<RunContext> {
  const dir = await tempDir(t, 'tributary-docs-');
  const dataDir = join(dir, 'data');
  const binDir = join(dir, 'bin');
  const jsDir = join(dir, 'js');
  await mkdir(binDir);
  await mkdir(jsDir);
  // `tributary` as after `npm install -g`; JS examples import the project's dependencies.
  await writeFile(join(binDir, 'tributary'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cliJs)} "$@"\n`);
  await chmod(join(binDir, 'tributary'), 0o755);
  await symlink(join(projectRoot, 'node_modules'), join(jsDir, 'node_modules'));
  const broker = await startBroker(t, { dataDir });
  return { broker, binDir, jsDir };
}

t.test('docs examples: markers are read as documented', async (t) => {
  const md = [
    '<!-- example: skip="needs a browser" -->',
    '```sh',
    'echo skipped',
    '```',
    '```js',
    'console.log(1)',
    '```',
    '<!-- example: setup="echo hi" stop-after=3 expect="a b" expect=/c\\sd/ -->',
    '',
    '  ```bash',
    '  echo indented',
    '  ```',
    '```yaml',
    'not: run',
    '```',
  ].join('\n');
  const ex = extractExamples(md, 'x.md');
  t.same(ex.map((e) => [e.line, e.kind]), [[2, 'sh'], [5, 'js'], [10, 'sh']]);
  t.equal(ex[0].marker.skip, 'needs a browser');
  t.same(ex[2].marker.expect, ['a b', /c\sd/]);
  t.equal(ex[2].marker.stopAfterS, 3);
  t.equal(ex[2].code, 'echo indented\n');
  t.throws(() => extractExamples('<!-- example: skip="x" -->\n```yaml\na: 1\n```\n', 'y.md'), /only sh\/js examples run/);
  t.throws(() => extractExamples('<!-- example: skip="x" -->\ntext\n```sh\n```\n', 'y.md'), /not followed by a sh\/js block/);
  t.throws(() => parseMarker(' stop-after=3 ', 'z'), /stop-after needs at least one expect/);
  t.throws(() => parseMarker(' wait=3 ', 'z'), /bad example marker key/);
});

t.test('docs examples: a broken example fails, a working one passes', async (t) => {
  const ctx = await context(t);
  const run = (code: string, marker: Partial<Marker> = {}) => runExample({ file: 'self', line: 1, kind: 'sh', code, marker: { expect: [], ...marker } }, ctx);
  const good = await run(`echo '21.5' | tributary produce t1 --key k\ntributary consume t1\n`, { expect: [/^0@0\tk\t21\.5$/m] });
  t.ok(good.ok, `${good.why} ${good.stderr}`);
  const refused = await run(`tributary consume no-such-topic\necho not reached\n`);
  t.notOk(refused.ok, 'a command that fails fails the example');
  t.match(refused.why, /exited with 1/);
  t.notMatch(refused.stdout, /not reached/, 'set -e stopped it');
  const unseen = await run(`tributary topics list\n`, { expect: ['no such line'] });
  t.notOk(unseen.ok);
  t.match(unseen.why, /expected output not seen/);
  const forever = await run(`sleep 30 &\necho started\nwait\n`, { stopAfterS: 1, expect: ['never printed'] });
  t.notOk(forever.ok, 'a stopped example whose output never came fails');
  const js = await runExample({ file: 'self', line: 2, kind: 'js', code: `throw new Error('boom')\n`, marker: { expect: [] } }, ctx);
  t.notOk(js.ok);
  t.match(js.stderr, /boom/);
  await ctx.broker.stop();
});

t.test('docs examples: every shell and JS example in README.md and docs/ runs', async (t) => {
  const all: Example[] = [];
  for (const file of await docFiles()) all.push(...extractExamples(await readFile(join(projectRoot, file), 'utf8'), file));
  t.ok(all.length >= 20, `found ${all.length} examples`);
  const skipped = all.filter((e) => e.marker.skip);
  t.comment(`${all.length} examples, ${skipped.length} skipped:`);
  for (const e of skipped) t.comment(`  ${e.file}:${e.line} — ${e.marker.skip}`);
  // DOCS_EXAMPLE=docs/groups.md runs only the examples whose name contains it.
  const only = process.env.DOCS_EXAMPLE;
  for (const ex of all) {
    const name = `${ex.file}:${ex.line} (${ex.kind})`;
    if (only && !name.includes(only)) continue;
    if (ex.marker.skip) {
      t.test(name, { skip: ex.marker.skip }, async () => {});
      continue;
    }
    const missing = missingTools(ex);
    if (missing.length && process.env.CI !== 'true') {
      t.test(name, { skip: `${missing.join(', ')} not installed` }, async () => {});
      continue;
    }
    await t.test(name, async (t) => {
      t.same(missing, [], 'every tool the example uses is installed (CI installs them)');
      const ctx = await context(t);
      const outcome = await runExample(ex, ctx);
      t.ok(outcome.ok, `${name}: ${outcome.why}\n--- example\n${ex.code}--- stdout\n${outcome.stdout.slice(-4000)}--- stderr\n${outcome.stderr.slice(-4000)}`);
      await ctx.broker.stop();
    });
  }
});
