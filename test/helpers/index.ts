// Helpers shared by the test suites: temp dirs, polling instead of sleeping, and a real
// broker process on random ports.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Path of a file under the project root (tests run from dist/test/...). */
export const projectRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const mainJs = join(projectRoot, 'dist/host/main.js');
export const cliJs = join(projectRoot, 'dist/host/cli.js');

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh temp dir removed when the test ends. */
export async function tempDir(t: Teardown, prefix = 'tributary-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Polls `check` until it returns a truthy value (or stops throwing), or fails after timeoutMs. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      lastError = new Error('condition still false');
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`eventually: timed out after ${timeoutMs} ms: ${(lastError as Error)?.message ?? lastError}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** True when an external command exists on PATH. */
export function haveCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export interface Listeners {
  schemas?: string;
  kafka?: string;
  mqtt?: string;
  mqttWs?: string;
  http?: string;
}

export interface BrokerProcess {
  child: ChildProcess;
  dataDir: string;
  listeners: Listeners;
  /** Port of a listener, parsed from the ready line. */
  port(name: keyof Listeners): number;
  /** Log lines seen so far (parsed JSON where possible). */
  logs: Array<Record<string, unknown>>;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (a power cut, as far as the process is concerned). */
  kill(): Promise<void>;
}

/**
 * A bound a slow machine may raise (a Pi, qemu-user): TEST_READY_TIMEOUT_MS, or READY_TIMEOUT_S
 * (the node matrix's name for the same knob), raises a test's own bound and never lowers it.
 */
export function slowMachineBoundMs(testBoundMs: number): number {
  const fromEnv = process.env.TEST_READY_TIMEOUT_MS
    ? Number(process.env.TEST_READY_TIMEOUT_MS)
    : process.env.READY_TIMEOUT_S
      ? Number(process.env.READY_TIMEOUT_S) * 1000
      : 0;
  return Number.isFinite(fromEnv) ? Math.max(testBoundMs, fromEnv) : testBoundMs;
}

export interface StartOptions {
  dataDir: string;
  /** Extra CLI args, e.g. ['--config', file]. */
  args?: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  /** Options for node itself, before the script (`--max-semi-space-size=1`, `--import x`). */
  nodeArgs?: string[];
  /**
   * Run node without the test runner's preload: tap re-adds its NODE_OPTIONS (coverage through
   * @tapjs/processinfo) to every spawn, so the broker goes through `env -u NODE_OPTIONS` (exec,
   * same pid). For measurements of the broker's own memory.
   */
  withoutRunnerPreload?: boolean;
}

/**
 * Starts `node dist/host/main.js start` on port 0 everywhere and waits for the `ready` log
 * line, which names every listener's bound address.
 */
export async function startBroker(t: Teardown, options: StartOptions): Promise<BrokerProcess> {
  const args = [
    ...(options.nodeArgs ?? []),
    mainJs,
    'start',
    '--data-dir',
    options.dataDir,
    '--host',
    '127.0.0.1',
    '--kafka-port',
    '0',
    '--mqtt-port',
    '0',
    '--mqtt-ws-port',
    '0',
    '--http-port',
    '0',
    // the schema registry too: tests run in parallel, its default 8081 would collide
    '--set',
    'schemas.port=0',
    ...(options.args ?? []),
  ];
  // The broker refuses unknown TRIBUTARY_* variables, and a bench's own knobs
  // (TRIBUTARY_BENCH_QUICK, TRIBUTARY_MQTT_BENCH_*, TRIBUTARY_WS_LOADGEN) are not its; config
  // variables a test sets on purpose (TRIBUTARY_HTTP_ENGINE) pass.
  const benchKnob = /^TRIBUTARY_(BENCH|MQTT_BENCH|WS_LOADGEN)/;
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !benchKnob.test(k)));
  const [command, argv] = options.withoutRunnerPreload ? ['/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ...args]] : [process.execPath, args];
  const child = spawn(command, argv, {
    env: { ...inherited, TRIBUTARY_LOG_LEVEL: process.env.TRIBUTARY_LOG_LEVEL ?? 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
    if (stderr.length > 64_000) stderr = stderr.slice(-32_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let alive = true;
  void exited.then(() => (alive = false));

  // Slow hardware (a Pi, qemu-user) raises the bound from the environment (slowMachineBoundMs).
  // A node is ready in 1–3 s here; the default leaves room for a machine shared with other jobs
  // (a loaded 2-core run measured 20 s starts).
  const timeoutMs = slowMachineBoundMs(options.readyTimeoutMs ?? 60_000);
  let timedOut = false;
  const ready = new Promise<Listeners>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        entry = { msg: line };
      }
      logs.push(entry);
      if (logs.length > 5000) logs.splice(0, 1000);
      if (typeof entry.msg === 'string' && entry.msg.includes('ready') && entry.listeners) {
        resolve(entry.listeners as Listeners);
      }
    });
    void exited.then((code) => reject(new Error(`${timedOut ? `broker not ready within ${timeoutMs} ms (killed; TEST_READY_TIMEOUT_MS raises it)` : `broker exited (${code}) before ready`}:\n${stderr}\n${logs.map((l) => JSON.stringify(l)).join('\n')}`)));
  });
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  let listeners: Listeners;
  try {
    listeners = await ready;
  } finally {
    clearTimeout(timer);
  }

  const proc: BrokerProcess = {
    child,
    dataDir: options.dataDir,
    listeners,
    logs,
    port(name) {
      const addr = listeners[name];
      if (!addr) throw new Error(`no ${name} listener in ready line`);
      return Number(addr.slice(addr.lastIndexOf(':') + 1));
    },
    async stop() {
      if (!alive) return child.exitCode;
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), slowMachineBoundMs(15_000));
      const code = await exited;
      clearTimeout(killTimer);
      return code;
    },
    async kill() {
      if (!alive) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
  t.teardown(() => proc.kill());
  return proc;
}

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command without blocking the event loop: its exit code and output, killed after
 * timeoutMs. `input` is written to its stdin (undefined: stdin is /dev/null).
 */
export function sh(cmd: string, args: string[], input?: string | Buffer, timeoutMs = 60_000): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: out, stderr: err });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}
