// MQTT: one load generator against four servers, each started here as its own process on
// loopback, side by side in one table per scenario:
//   tributary  `node dist/host/main.js start` (every listener, default config), durable acks:
//              PUBACK only after the append met the flush policy (fsync per group commit)
//   aedes      aedes (the pinned version the gateway runs) alone, in-memory persistence (same file, TRIBUTARY_MQTT_BENCH_SERVE=aedes)
//   mosquitto  Debian mosquitto, persistence on (periodic autosave, no fsync per message)
//   nats       nats-server with JetStream and its MQTT listener (file store)
// A peer whose binary is missing is skipped with a note.
//
// Scenarios (issue 5's rows first, then issue 9's; each bounded in count and in time):
//   ack       fan-in, no subscriber: 50 publishers (mqtt.js) × MSGS at QoS 1 (10 in flight
//             each) and QoS 0; acknowledged msg/s, publish→PUBACK latency, CPU µs/msg, RSS
//   paced5k   QoS 1 at 5,000 msg/s, no subscriber: publish→PUBACK latency
//   idle      RSS of a fresh server with 1,000 idle connections
//   a         QoS 0 fan-in with one `#` subscriber: 50 publishers flood (write until TCP
//             pushes back); delivered msg/s, publish→delivery p50/p99, peak server RSS, and
//             what the server dropped (subscriber count, and the server's own counter where
//             it has one: Tributary's /metrics, Mosquitto's $SYS)
//   slow      as `a`, but the subscriber does not read until the publishers are done: a
//             bounded server pauses or drops it; an unbounded one buffers (peak RSS)
//   b         QoS 1 fan-in with a `#` subscriber at QoS 1: delivered msg/s
//   c         QoS 1 paced at 2,000 msg/s end to end (publisher → server → QoS 1 subscriber):
//             server CPU per message (utime+stime from /proc/<pid>/stat over the run ÷
//             messages), publish→delivery p50/p99
// Scenarios a, slow, b and c use a fresh server process per run (peak RSS is per run: VmHWM
// after a reset through /proc/<pid>/clear_refs) and a raw-socket load client (mqtt-load.ts).
//
// Environment (or `npm run bench -- mqtt --quick`):
//   TRIBUTARY_BENCH_QUICK=1              a short smoke run (1 repetition, small counts)
//   TRIBUTARY_BENCH_REPS                 repetitions, interleaved (default 3)
//   TRIBUTARY_MQTT_BENCH_MSGS            per publisher, `ack` scenario (default 400)
//   TRIBUTARY_MQTT_BENCH_SCENARIOS       comma list of the scenarios above (default all)
//   TRIBUTARY_MQTT_BENCH_SERVERS         comma list of servers (default all found)
//   TRIBUTARY_MQTT_BENCH_NODE_ARGS       node flags for Tributary, space-separated (default: npm start's);
//                                        with `--trace-gc` the b and c tables note young-generation
//                                        collections per 1,000 messages
//   TRIBUTARY_MQTT_BENCH_BASELINE        a second built tree (e.g. a worktree of main): also run its
//                                        dist/host/main.js as server `tributary-baseline`,
//                                        interleaved with this tree's, for an A/B in one run
//   TRIBUTARY_MQTT_BENCH_C_WARM_MS       c: ms of the same paced load, unmeasured, before the measured
//                                        10 s (default 0): V8 still compiles hot code then, on its
//                                        worker threads, which a long-running server pays once
//   TRIBUTARY_MQTT_BENCH_THREADS=1       print b's and c's CPU per message per server thread (stderr)
//   TRIBUTARY_MQTT_BENCH_STDOUT=1        copy the servers' stdout to stderr (e.g. node's --trace-opt)
//   TRIBUTARY_MQTT_BENCH_PROFILE=cpu|heap  run Tributary under `node --cpu-prof` / `--heap-prof`
//                                        (one profile per fresh process, stopped with SIGTERM),
//                                        written to TRIBUTARY_MQTT_BENCH_PROFILE_DIR
//                                        (default bench-results/profiles); see cpuprofile-top.ts
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { startNodeFlags } from './start-flags.js';
import type { Table } from './table.js';
import { median, quantile } from './table.js';
import { LoadClient, PAYLOAD_BYTES, publishBytes, writePublish } from './mqtt-load.js';

export const subject = 'mqtt';
export const order = 50;

const QUICK = process.env.TRIBUTARY_BENCH_QUICK === '1';
const PUBLISHERS = 50;
const MSGS = Number(process.env.TRIBUTARY_MQTT_BENCH_MSGS ?? (QUICK ? 100 : 400));
const WINDOW = 10; // QoS 1 publishes in flight per publisher
const REPS = Number(process.env.TRIBUTARY_BENCH_REPS ?? (QUICK ? 1 : 3));
const PACED_RATE = 5_000;
const PACED_MS = QUICK ? 1_000 : 3_000;
const IDLE_CLIENTS = QUICK ? 200 : 1_000;
const ACK_CAP_MS = QUICK ? 20_000 : 60_000; // each `ack` run stops here whatever it reached

// issue 9 scenarios
const FLOOD_MSGS = QUICK ? 200 : 2_000; // per publisher (a)
// per publisher (slow): more than loopback socket buffers hold (several MiB per connection),
// so a server that buffers for the subscriber shows it in RSS
const SLOW_MSGS = QUICK ? 400 : 4_000;
const QOS1_MSGS = QUICK ? 100 : 1_000; // per publisher (b)
const E2E_RATE = 2_000; // msg/s in total (c)
const E2E_MS = QUICK ? 2_000 : 10_000;
/** c: that long of the same paced load before the measured part (TRIBUTARY_MQTT_BENCH_C_WARM_MS, default 0). */
const E2E_WARM_MS = Number(process.env.TRIBUTARY_MQTT_BENCH_C_WARM_MS ?? 0);
const E2E_PUBLISHERS = 50;
const WARM_MSGS = 10; // per publisher, QoS 1, before any measurement (topic creation, JIT)
const SLOW_PAUSE_MS = QUICK ? 2_000 : 5_000; // the slow subscriber reads nothing for this long
const SETTLE_MS = 5_000; // no delivery for this long after the publishers finished = the rest was dropped (2 s misjudged stalls on a loaded machine)
const RUN_CAP_MS = QUICK ? 20_000 : 60_000; // each a/slow/b run stops here whatever it reached
const CLK_TCK = 100; // Linux USER_HZ

/**
 * The node flags Tributary runs with: those of `npm start` (package.json), unless
 * TRIBUTARY_MQTT_BENCH_NODE_ARGS names others (space-separated; '' = none), to weigh a flag.
 */
const START_NODE_FLAGS: string[] = startNodeFlags(process.env.TRIBUTARY_MQTT_BENCH_NODE_ARGS);
const SCENARIOS = new Set((process.env.TRIBUTARY_MQTT_BENCH_SCENARIOS ?? 'ack,paced5k,idle,a,slow,b,c').split(',').map((x) => x.trim()));
const SERVERS_WANTED = process.env.TRIBUTARY_MQTT_BENCH_SERVERS?.split(',').map((x) => x.trim());
const PROFILE = process.env.TRIBUTARY_MQTT_BENCH_PROFILE as 'cpu' | 'heap' | undefined;
const PROFILE_DIR = resolvePath(process.env.TRIBUTARY_MQTT_BENCH_PROFILE_DIR ?? join(fileURLToPath(new URL('../../bench-results/profiles', import.meta.url))));

const self = fileURLToPath(import.meta.url);
const mainJs = fileURLToPath(new URL('../host/main.js', import.meta.url));
/** Another built tree (a checkout of main, say) run as server `tributary-baseline`, interleaved with this one: an A/B in one run. */
const BASELINE = process.env.TRIBUTARY_MQTT_BENCH_BASELINE;
const isTributary = (name: string) => name === 'tributary' || name === 'tributary-baseline';

// --- server roles (child processes) ---------------------------------------------------------

async function serve(role: string, _dataDir: string): Promise<void> {
  if (role === 'aedes') {
    const { Aedes } = await import('aedes');
    const aedes = await Aedes.createBroker();
    const server = createServer((s) => aedes.handle(s));
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      process.stdout.write(`PORT ${typeof a === 'object' && a ? a.port : 0}\n`);
    });
  }
}

// --- harness --------------------------------------------------------------------------------

interface Server {
  name: string;
  pid: number;
  port: number;
  /** Tributary's HTTP listener (for /metrics), from its ready line. */
  httpPort?: number;
  /** Collections the server reported on stdout (node's `--trace-gc`, if given in TRIBUTARY_MQTT_BENCH_NODE_ARGS). */
  gc: { scavenges: number; fullCollections: number };
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function which(cmd: string): string | undefined {
  const d = ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(':')].find((x) => x && existsSync(join(x, cmd)));
  return d ? join(d, cmd) : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function spawnAndWait(name: string, cmd: string, args: string[], port: number | 'stdout', env?: Record<string, string>, graceful = false): Promise<Server> {
  return new Promise((resolve, reject) => {
    // the bench's own TRIBUTARY_* variables are not the server's: `tributary start` refuses
    // unknown ones (config/env), so none is passed on but those given here
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TRIBUTARY_')));
    const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...inherited, ...env } });
    let err = '';
    let httpPort: number | undefined;
    const gc = { scavenges: 0, fullCollections: 0 };
    child.stderr!.on('data', (d) => {
      err = (err + d).slice(-4000);
      if (process.env.TRIBUTARY_MQTT_BENCH_STDERR) process.stderr.write(`[${name}] ${d}`);
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const stop = async () => {
      if (graceful) {
        // a profiled process writes its profile on a clean exit only
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(t);
        return;
      }
      child.kill('SIGKILL');
      await exited;
    };
    const ready = async (p: number) => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          const c = await LoadClient.connect(p, { clientId: `ready-${name}`, connectTimeoutMs: 1_000 });
          c.close();
          // httpPort is read when used: the MQTT probe may answer before the ready line names it
          // (the HTTP door binds after the MQTT one)
          return resolve({ name, pid: child.pid!, port: p, get httpPort() { return httpPort; }, gc, stop });
        } catch {
          if (Date.now() > deadline) {
            await stop();
            return reject(new Error(`${name} did not accept MQTT connections: ${err.slice(-2000)}`));
          }
          await sleep(100);
        }
      }
    };
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (process.env.TRIBUTARY_MQTT_BENCH_STDOUT) process.stderr.write(`[${name} stdout] ${line}\n`);
      if (line.includes(' ms: Scavenge')) gc.scavenges++;
      else if (line.includes(' ms: Mark-Compact')) gc.fullCollections++;
      const m = /^PORT (\d+)$/.exec(line);
      if (m && port === 'stdout') void ready(Number(m[1]));
      if (line.includes('"listeners"')) {
        try {
          const http = (JSON.parse(line) as { listeners?: Record<string, string> }).listeners?.http;
          if (http) httpPort = Number(/:(\d+)$/.exec(http)?.[1]);
        } catch {
          // not a JSON log line
        }
      }
    });
    if (port !== 'stdout') void ready(port);
    void exited.then(() => reject(new Error(`${name} exited: ${err.slice(-2000)}`)));
  });
}

let profileSeq = 0;

async function startServer(name: string, dir: string, profileTag = ''): Promise<Server> {
  const dataDir = await mkdtemp(join(dir, `${name}-`));
  if (name === 'aedes') {
    return spawnAndWait(name, process.execPath, [self], 'stdout', { TRIBUTARY_MQTT_BENCH_SERVE: name, TRIBUTARY_MQTT_BENCH_DIR: dataDir });
  }
  const port = await freePort();
  if (isTributary(name)) {
    // the real thing: `tributary start` with every listener, default config (flush=always)
    const nodeArgs: string[] = [...START_NODE_FLAGS];
    if (PROFILE && profileTag) {
      await mkdir(PROFILE_DIR, { recursive: true });
      const file = `tributary-${profileTag}-${++profileSeq}`;
      if (PROFILE === 'cpu') nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=${file}.cpuprofile`);
      else nodeArgs.push('--heap-prof', `--heap-prof-dir=${PROFILE_DIR}`, `--heap-prof-name=${file}.heapprofile`);
    }
    const main = name === 'tributary-baseline' ? resolvePath(BASELINE!, 'dist/host/main.js') : mainJs;
    const args = [...nodeArgs, main, 'start', '--data-dir', dataDir, '--host', '127.0.0.1', '--kafka-port', '0', '--mqtt-port', String(port), '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0'];
    const extra = process.env.TRIBUTARY_MQTT_BENCH_SERVER_ENV ? (Object.fromEntries(process.env.TRIBUTARY_MQTT_BENCH_SERVER_ENV.split(',').map((kv) => kv.split('='))) as Record<string, string>) : {};
    return spawnAndWait(name, process.execPath, args, port, { TRIBUTARY_LOG_LEVEL: 'warn', ...extra }, nodeArgs.length > START_NODE_FLAGS.length);
  }
  if (name === 'mosquitto') {
    const conf = join(dataDir, 'mosquitto.conf');
    // sys_interval 1: $SYS/broker/publish/messages/dropped is read after each run
    await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence true', `persistence_location ${dataDir}/`, 'max_inflight_messages 0', 'max_queued_messages 100000', 'sys_interval 1', 'log_dest none', ''].join('\n'));
    return spawnAndWait(name, which('mosquitto')!, ['-c', conf], port);
  }
  const conf = join(dataDir, 'nats.conf');
  await writeFile(conf, [`server_name: bench`, `listen: 127.0.0.1:${await freePort()}`, `jetstream { store_dir: "${dataDir}/js" }`, `mqtt { listen: 127.0.0.1:${port} }`, ''].join('\n'));
  return spawnAndWait(name, which('nats-server')!, ['-c', conf], port);
}

async function cpuTicks(pid: number): Promise<number> {
  const [user, sys] = await cpuTicksSplit(pid);
  return user + sys;
}

/** [utime, stime] of the whole process (every thread, libuv's pool included), in ticks. */
async function cpuTicksSplit(pid: number): Promise<[number, number]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(fields[11]), Number(fields[12])]; // utime, stime (fields 14 and 15)
}

const ticksToUsPerMsg = (ticks: number, msgs: number) => ((ticks / CLK_TCK) * 1e6) / Math.max(1, msgs);

/**
 * CPU ticks per thread (id and `comm`; node 20 names its helper threads all `node`: V8's workers
 * start with the process, libuv's pool at the first file operation, so by id), utime+stime and stime: where a process's CPU goes by thread
 * (TRIBUTARY_MQTT_BENCH_THREADS=1 prints the difference over each b and c run on stderr).
 */
async function threadTicks(pid: number): Promise<Map<string, [number, number]>> {
  const out = new Map<string, [number, number]>();
  let tids: string[] = [];
  try {
    tids = await readdir(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = `${tid === String(pid) ? 'main' : tid}:${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}`;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const prev = out.get(name) ?? [0, 0];
      out.set(name, [prev[0] + Number(fields[11]) + Number(fields[12]), prev[1] + Number(fields[12])]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

const THREADS = process.env.TRIBUTARY_MQTT_BENCH_THREADS === '1';

/** One stderr line: µs per message (kernel) per thread name over a run. */
function printThreadTicks(label: string, before: Map<string, [number, number]>, after: Map<string, [number, number]>, msgs: number): void {
  const parts: string[] = [];
  for (const [name, [t1, s1]] of after) {
    const [t0, s0] = before.get(name) ?? [0, 0];
    if (t1 - t0 > 0) parts.push(`${name} ${ticksToUsPerMsg(t1 - t0, msgs).toFixed(1)} (${ticksToUsPerMsg(s1 - s0, msgs).toFixed(1)})`);
  }
  process.stderr.write(`${label} CPU µs/msg (kernel) by thread: ${parts.join(', ')}\n`);
}

/** The sum of one Tributary counter over its labels (the log's fsyncs: commits per message), NaN without /metrics. */
async function scrapeCounterSum(server: Server, name: string): Promise<number> {
  if (!isTributary(server.name) || !server.httpPort) return NaN;
  try {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/metrics`);
    let sum = 0;
    for (const line of (await res.text()).split('\n')) {
      if (line.startsWith(name) && (line[name.length] === '{' || line[name.length] === ' ')) {
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
        if (THREADS) process.stderr.write(`  ${line}\n`);
      }
    }
    return sum;
  } catch {
    return NaN;
  }
}

async function rssMiBOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/**
 * Peak RSS over a run: VmHWM after resetting it (`5` > /proc/<pid>/clear_refs, Linux ≥ 4.0),
 * or, where the reset is refused, the largest of samples taken every 50 ms.
 */
class PeakRss {
  private sampled = 0;
  private timer: NodeJS.Timeout | undefined;
  private resetOk = false;

  constructor(private readonly pid: number) {}

  async start(): Promise<void> {
    try {
      await writeFile(`/proc/${this.pid}/clear_refs`, '5');
      this.resetOk = true;
    } catch {
      this.resetOk = false;
    }
    this.sampled = await rssMiBOf(this.pid);
    this.timer = setInterval(() => {
      rssMiBOf(this.pid).then(
        (r) => (this.sampled = Math.max(this.sampled, r)),
        () => undefined,
      );
    }, 50);
  }

  async stop(): Promise<number> {
    clearInterval(this.timer);
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    return this.resetOk ? Math.max(hwm, this.sampled) : this.sampled;
  }
}

/** Tributary's /metrics: counters and gauges whose name speaks of drops or pauses (by labels). */
async function scrapeDropMetrics(server: Server): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (!server.httpPort) return out;
  try {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/metrics`);
    for (const line of (await res.text()).split('\n')) {
      if (line.startsWith('#') || !line.startsWith('tributary_mqtt_')) continue;
      const m = /^(\S+?)(\{[^}]*\})?\s+(\S+)$/.exec(line);
      if (!m) continue;
      const [, name, labels = ''] = m;
      const relevant = /drop|discard|evict|slow|skipp/i.test(name) || (name === 'tributary_mqtt_read_holds_total' && labels.includes('outgoing')) || /disconnect/i.test(name + labels);
      if (relevant) out.set(name + labels, Number(m[3]));
    }
  } catch {
    // no HTTP listener: the cell says so
  }
  return out;
}

function metricsDiff(before: Map<string, number>, after: Map<string, number>): string {
  const parts: string[] = [];
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) parts.push(`${k.replace(/^tributary_mqtt_/, '')} +${d}`);
  }
  return parts.join(', ');
}

/** One $SYS value of Mosquitto (published every sys_interval = 1 s, retained). */
async function mosquittoSys(server: Server, topic: string): Promise<string | undefined> {
  try {
    const c = await LoadClient.connect(server.port, { clientId: `sys-${Date.now()}-${Math.random().toString(36).slice(2, 8)}` });
    let value: string | undefined;
    c.onPublish = (payload) => (value = payload.toString('utf8'));
    await c.subscribe(topic, 0);
    const until = Date.now() + 2_500;
    while (value === undefined && Date.now() < until) await sleep(50);
    c.close();
    return value;
  } catch {
    return undefined;
  }
}

/** Mosquitto's own count of dropped messages since its start. */
async function mosquittoDropped(server: Server): Promise<string> {
  const v = await mosquittoSys(server, '$SYS/broker/publish/messages/dropped');
  return v === undefined ? 'n/a' : `$SYS dropped ${v}`;
}

/**
 * Publishes the server has taken in so far, where it says (Tributary's
 * tributary_mqtt_publishes_total, Mosquitto's $SYS, up to 1 s old); NaN elsewhere.
 */
async function serverReceived(server: Server): Promise<number> {
  if (isTributary(server.name) && server.httpPort) {
    try {
      const text = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();
      let sum = 0;
      for (const m of text.matchAll(/^tributary_mqtt_publishes_total(?:\{[^}]*\})?\s+(\S+)$/gm)) sum += Number(m[1]);
      return sum;
    } catch {
      return NaN;
    }
  }
  if (server.name === 'mosquitto') return Number((await mosquittoSys(server, '$SYS/broker/publish/messages/received')) ?? NaN);
  return NaN;
}

async function serverDrops(server: Server, before: Map<string, number>): Promise<string> {
  if (isTributary(server.name)) {
    if (!server.httpPort) return 'no /metrics';
    return metricsDiff(before, await scrapeDropMetrics(server)) || 'no drop counted';
  }
  if (server.name === 'mosquitto') return mosquittoDropped(server);
  return 'no counter';
}

const loadNow = () => loadavg().map((x) => x.toFixed(2)).join(' ');

// --- issue 5's scenarios (mqtt.js, one server process for all runs) ---------------------------

interface RunResult {
  msgsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerMsg: number;
  rssMiB: number;
  timedOut: boolean;
}

const payloadFor = (p: number, i: number) => JSON.stringify({ device: `dev-${p}`, seq: i, temp: 21.5 + (i % 10) / 10, humidity: 40 + (i % 7), ts: 1_700_000_000_000 + i });

/** 50 publishers × MSGS messages; QoS 1 with a window per publisher, or QoS 0 closed by one QoS 1 per publisher. */
async function fanIn(server: Server, qos: 0 | 1, run: number): Promise<RunResult> {
  const { default: mqtt } = await import('mqtt');
  const clients = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, p) => mqtt.connectAsync(`mqtt://127.0.0.1:${server.port}`, { clientId: `bench-${run}-${p}`, reconnectPeriod: 0 })),
  );
  const latencies: number[] = [];
  let done = 0;
  let stopped = false;
  const cpu0 = await cpuTicks(server.pid);
  const t0 = performance.now();
  const work = Promise.all(
    clients.map(async (c, p) => {
      const topic = `sensors/dev-${p}/reading`;
      if (qos === 0) {
        for (let i = 0; i < MSGS && !stopped; i++) {
          await c.publishAsync(topic, payloadFor(p, i), { qos: 0 });
          done++;
        }
        if (!stopped) await c.publishAsync(topic, 'end', { qos: 1 }); // in order after the QoS 0 ones
        return;
      }
      let next = 0;
      const lane = async () => {
        while (next < MSGS && !stopped) {
          const i = next++;
          const start = performance.now();
          await c.publishAsync(topic, payloadFor(p, i), { qos: 1 });
          latencies.push(performance.now() - start);
          done++;
        }
      };
      await Promise.all(Array.from({ length: WINDOW }, lane));
    }),
  );
  let timedOut = false;
  let capTimer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((r) => (capTimer = setTimeout(() => ((timedOut = stopped = true), r()), ACK_CAP_MS)))]);
  clearTimeout(capTimer);
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu1 = await cpuTicks(server.pid);
  const rss = await rssMiBOf(server.pid);
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return {
    msgsPerSec: done / elapsedS,
    p50Ms: latencies.length ? quantile(latencies, 0.5) : NaN,
    p99Ms: latencies.length ? quantile(latencies, 0.99) : NaN,
    cpuUsPerMsg: (((cpu1 - cpu0) / CLK_TCK) * 1e6) / Math.max(1, done),
    rssMiB: rss,
    timedOut,
  };
}

/** QoS 1 at a fixed total rate: each publisher sends on its own timer. */
async function paced(server: Server): Promise<{ p50Ms: number; p99Ms: number; sent: number; cpuUsPerMsg: number }> {
  const { default: mqtt } = await import('mqtt');
  const clients = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, p) => mqtt.connectAsync(`mqtt://127.0.0.1:${server.port}`, { clientId: `paced-${p}`, reconnectPeriod: 0 })),
  );
  const perClientEveryMs = (1000 * PUBLISHERS) / PACED_RATE;
  const latencies: number[] = [];
  const pending: Array<Promise<void>> = [];
  const cpu0 = await cpuTicks(server.pid);
  const end = Date.now() + PACED_MS;
  let sent = 0;
  await Promise.all(
    clients.map(async (c, p) => {
      await sleep(Math.random() * perClientEveryMs);
      for (let i = 0; Date.now() < end; i++) {
        const start = performance.now();
        sent++;
        pending.push(c.publishAsync(`sensors/dev-${p}/paced`, payloadFor(p, i), { qos: 1 }).then(() => void latencies.push(performance.now() - start)));
        await sleep(perClientEveryMs);
      }
    }),
  );
  // bounded: acknowledgements still missing 10 s after the last publish are left out
  await Promise.race([Promise.all(pending), sleep(10_000)]);
  const cpu1 = await cpuTicks(server.pid);
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return { p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99), sent, cpuUsPerMsg: (((cpu1 - cpu0) / CLK_TCK) * 1e6) / sent };
}

/** RSS of the server with IDLE_CLIENTS connected (opened 100 at a time). */
async function idleClients(server: Server): Promise<number> {
  const { connect } = await import('node:net');
  const sockets: Array<import('node:net').Socket> = [];
  const connectPacket = (id: string) => {
    const cid = Buffer.from(id);
    const body = Buffer.concat([Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([4, 2, 0, 60, cid.length >> 8, cid.length & 0xff]), cid]);
    return Buffer.concat([Buffer.from([0x10, body.length]), body]);
  };
  for (let i = 0; i < IDLE_CLIENTS; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, IDLE_CLIENTS - i) }, (_, k) =>
        new Promise<void>((resolve) => {
          const s = connect(server.port, '127.0.0.1', () => s.write(connectPacket(`idle-${i + k}`)));
          const t = setTimeout(resolve, 10_000);
          s.once('data', () => (clearTimeout(t), resolve()));
          s.on('error', () => (clearTimeout(t), resolve()));
          sockets.push(s);
        }),
      ),
    );
  }
  await sleep(500);
  const rss = await rssMiBOf(server.pid);
  for (const s of sockets) s.destroy();
  return rss;
}

// --- issue 9's scenarios (raw load client, fresh server per run) -------------------------------

interface DeliveredResult {
  sent: number;
  delivered: number;
  /** Delivered messages per second, from the first publish to the last delivery. */
  deliveredPerSec: number;
  /** Publishes acknowledged per second (QoS 1 scenarios). */
  ackedPerSec: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerMsg: number;
  /** Of cpuUsPerMsg, the kernel's part (stime): system calls, fsync, socket writes (b and c). */
  sysUsPerMsg?: number;
  /** Tributary's log fdatasyncs (group commits) per message sent (b and c; NaN for the others). */
  fsyncsPerMsg?: number;
  /** Young-generation collections per 1,000 messages sent (only under `--trace-gc`). */
  scavengesPerKMsg?: number;
  peakRssMiB: number;
  /** `slow`: messages the publishers got written while the subscriber read nothing. */
  sentWhilePaused?: number;
  /** `slow`: publishes the server says it took in meanwhile (NaN where it does not say). */
  receivedWhilePaused?: number;
  drops: string;
  subscriberClosed: boolean;
  timedOut: boolean;
}

interface Rig {
  sub: LoadClient;
  pubs: LoadClient[];
  /** Records a delivery's latency (the payload starts with the send time). */
  latencies: Float64Array;
  delivered: number;
  lastDeliveryMs: number;
  measuring: boolean;
  close(): void;
}

/** A `#` subscriber at `subQos` and `publishers` publishers, warmed up with QoS 1 traffic. */
async function openRig(server: Server, subQos: 0 | 1, publishers: number, expected: number, tag: string): Promise<Rig> {
  const sub = await LoadClient.connect(server.port, { clientId: `${tag}-sub` });
  await sub.subscribe('#', subQos);
  const pubs: LoadClient[] = [];
  for (let p = 0; p < publishers; p += 25) {
    pubs.push(...(await Promise.all(Array.from({ length: Math.min(25, publishers - p) }, (_, k) => LoadClient.connect(server.port, { clientId: `${tag}-pub-${p + k}` })))));
  }
  const rig: Rig = {
    sub,
    pubs,
    latencies: new Float64Array(expected),
    delivered: 0,
    lastDeliveryMs: 0,
    measuring: false,
    close: () => {
      sub.close();
      for (const c of pubs) c.close();
    },
  };
  let warm = 0;
  sub.onPublish = (payload) => {
    const now = performance.now();
    // anything but the bench's own payload (a server's $SYS or client notices) is not counted
    if (payload.length !== PAYLOAD_BYTES) return;
    if (!rig.measuring) {
      warm++;
      return;
    }
    if (rig.delivered < rig.latencies.length) rig.latencies[rig.delivered] = now - payload.readDoubleLE(0);
    rig.delivered++;
    rig.lastDeliveryMs = now;
  };
  // warm-up: topic creation, JIT, every connection past its first publish
  let acked = 0;
  pubs.forEach((c, p) => {
    const topic = Buffer.from(`sensors/dev-${p}/reading`);
    const out = Buffer.allocUnsafe(WARM_MSGS * publishBytes(topic.length, 1));
    let at = 0;
    for (let i = 0; i < WARM_MSGS; i++) at = writePublish(out, at, topic, 1, 60_000 + i, performance.now(), p, i);
    c.onPuback = () => void acked++;
    c.write(out);
  });
  const until = Date.now() + 10_000;
  while ((acked < publishers * WARM_MSGS || warm < publishers * WARM_MSGS) && Date.now() < until) await sleep(20);
  for (const c of pubs) c.onPuback = undefined;
  await sleep(200);
  return rig;
}

function latencyQuantiles(rig: Rig): { p50Ms: number; p99Ms: number } {
  const n = Math.min(rig.delivered, rig.latencies.length);
  if (n === 0) return { p50Ms: NaN, p99Ms: NaN };
  const s = rig.latencies.slice(0, n).sort();
  return { p50Ms: s[Math.min(n - 1, Math.ceil(0.5 * n) - 1)], p99Ms: s[Math.min(n - 1, Math.ceil(0.99 * n) - 1)] };
}

/** Waits until every sent message is delivered, none arrived for SETTLE_MS after `sendersDone`, or the cap. */
async function awaitDeliveries(rig: Rig, sent: () => number, sendersDone: () => boolean, capAtMs: number): Promise<boolean> {
  let quietSince = performance.now();
  let last = rig.delivered;
  for (;;) {
    if (sendersDone() && rig.delivered >= sent()) return false;
    const now = performance.now();
    if (rig.delivered !== last) {
      last = rig.delivered;
      quietSince = now;
    }
    if (sendersDone() && now - quietSince > SETTLE_MS) return false;
    if (now > capAtMs) return true;
    await sleep(20);
  }
}

/**
 * Scenario a (and `slow`): QoS 0 flood, FLOOD_MSGS per publisher, each publisher writing until
 * TCP pushes back. `slow`: the subscriber reads nothing for SLOW_PAUSE_MS (or until the
 * publishers are done), then reads again; what the publishers got written meanwhile shows
 * whether the server paused them, and peak RSS whether it buffered for the subscriber.
 */
async function flood(server: Server, slowSubscriber: boolean, tag: string): Promise<DeliveredResult> {
  const perPublisher = slowSubscriber ? SLOW_MSGS : FLOOD_MSGS;
  const total = PUBLISHERS * perPublisher;
  const rig = await openRig(server, 0, PUBLISHERS, total, tag);
  const peak = new PeakRss(server.pid);
  const before = isTributary(server.name) ? await scrapeDropMetrics(server) : new Map<string, number>();
  await peak.start();
  if (slowSubscriber) rig.sub.socket.pause();
  const received0 = slowSubscriber ? await serverReceived(server) : NaN;
  rig.measuring = true;
  const cpu0 = await cpuTicks(server.pid);
  const t0 = performance.now();
  const capAt = t0 + RUN_CAP_MS;
  let sent = 0;
  let finished = 0;
  let stopped = false;
  rig.pubs.forEach((c, p) => {
    const topic = Buffer.from(`sensors/dev-${p}/reading`);
    const bytes = publishBytes(topic.length, 0);
    const CHUNK = 32;
    let seq = 0;
    const pump = () => {
      while (seq < perPublisher && !stopped && !c.closed) {
        const k = Math.min(CHUNK, perPublisher - seq);
        const out = Buffer.allocUnsafe(k * bytes);
        const now = performance.now();
        let at = 0;
        for (let j = 0; j < k; j++) at = writePublish(out, at, topic, 0, 0, now, p, seq++);
        sent += k;
        if (!c.write(out)) {
          c.socket.once('drain', pump);
          return;
        }
      }
      finished++;
    };
    pump();
  });
  const sendersDone = () => finished === rig.pubs.length;
  let sentWhilePaused = NaN;
  let receivedWhilePaused = NaN;
  let peakWhilePausedMiB = NaN;
  if (slowSubscriber) {
    const resumeAt = t0 + SLOW_PAUSE_MS;
    while (!sendersDone() && performance.now() < resumeAt) await sleep(20);
    if (sendersDone()) await sleep(Math.min(1_000, Math.max(0, resumeAt - performance.now()))); // what the server still had to read
    sentWhilePaused = sent;
    peakWhilePausedMiB = await peak.stop();
    receivedWhilePaused = (await serverReceived(server)) - received0;
    rig.sub.socket.resume();
  }
  const timedOut = await awaitDeliveries(rig, () => sent, () => sendersDone() || stopped, capAt);
  stopped = true;
  const cpu1 = await cpuTicks(server.pid);
  const peakMiB = slowSubscriber ? peakWhilePausedMiB : await peak.stop();
  const drops = await serverDrops(server, before);
  const subscriberClosed = rig.sub.closed;
  rig.close();
  const { p50Ms, p99Ms } = latencyQuantiles(rig);
  return {
    sent,
    delivered: rig.delivered,
    deliveredPerSec: rig.delivered / Math.max(1e-3, (rig.lastDeliveryMs - t0) / 1000),
    ackedPerSec: NaN,
    p50Ms,
    p99Ms,
    cpuUsPerMsg: (((cpu1 - cpu0) / CLK_TCK) * 1e6) / Math.max(1, sent),
    peakRssMiB: peakMiB,
    sentWhilePaused,
    receivedWhilePaused,
    drops,
    subscriberClosed,
    timedOut,
  };
}

/** One QoS 1 publisher's sender: packet ids cycle 1..59,999 (the warm-up used 60,000+). */
function qos1Sender(c: LoadClient, p: number): (seq: number) => void {
  const topic = Buffer.from(`sensors/dev-${p}/reading`);
  const bytes = publishBytes(topic.length, 1);
  let id = 0;
  return (seq) => {
    id = id >= 59_999 ? 1 : id + 1;
    const out = Buffer.allocUnsafe(bytes);
    writePublish(out, 0, topic, 1, id, performance.now(), p, seq);
    c.write(out);
  };
}

/** Scenario b: QoS 1 fan-in, WINDOW in flight per publisher, `#` subscriber at QoS 1. */
async function qos1FanIn(server: Server, tag: string): Promise<DeliveredResult> {
  const total = PUBLISHERS * QOS1_MSGS;
  const rig = await openRig(server, 1, PUBLISHERS, total, tag);
  const peak = new PeakRss(server.pid);
  const before = isTributary(server.name) ? await scrapeDropMetrics(server) : new Map<string, number>();
  await peak.start();
  rig.measuring = true;
  const fsyncs0 = await scrapeCounterSum(server, 'tributary_log_fsyncs_total');
  const scavenges0 = server.gc.scavenges;
  const threads0 = THREADS ? await threadTicks(server.pid) : null;
  const [user0, sys0] = await cpuTicksSplit(server.pid);
  const t0 = performance.now();
  let sent = 0;
  let acked = 0;
  let lastAckMs = t0;
  let finished = 0;
  let stopped = false;
  rig.pubs.forEach((c, p) => {
    const send = qos1Sender(c, p);
    let seq = 0;
    let mine = 0;
    c.onPuback = () => {
      acked++;
      mine++;
      lastAckMs = performance.now();
      if (seq < QOS1_MSGS && !stopped) {
        send(seq++);
        sent++;
      } else if (mine === seq) finished++;
    };
    c.socket.cork();
    for (let k = 0; k < WINDOW && seq < QOS1_MSGS; k++) {
      send(seq++);
      sent++;
    }
    c.socket.uncork();
  });
  const timedOut = await awaitDeliveries(rig, () => sent, () => finished === rig.pubs.length || stopped, t0 + RUN_CAP_MS);
  stopped = true;
  const [user1, sys1] = await cpuTicksSplit(server.pid);
  if (threads0) printThreadTicks(`mqtt b ${tag}`, threads0, await threadTicks(server.pid), sent);
  const fsyncs1 = await scrapeCounterSum(server, 'tributary_log_fsyncs_total');
  const peakMiB = await peak.stop();
  const drops = await serverDrops(server, before);
  const subscriberClosed = rig.sub.closed;
  rig.close();
  return {
    sent,
    delivered: rig.delivered,
    deliveredPerSec: rig.delivered / Math.max(1e-3, (rig.lastDeliveryMs - t0) / 1000),
    ackedPerSec: acked / Math.max(1e-3, (lastAckMs - t0) / 1000),
    ...latencyQuantiles(rig),
    cpuUsPerMsg: ticksToUsPerMsg(user1 - user0 + sys1 - sys0, sent),
    sysUsPerMsg: ticksToUsPerMsg(sys1 - sys0, sent),
    fsyncsPerMsg: (fsyncs1 - fsyncs0) / Math.max(1, sent),
    scavengesPerKMsg: ((server.gc.scavenges - scavenges0) * 1000) / Math.max(1, sent),
    peakRssMiB: peakMiB,
    drops,
    subscriberClosed,
    timedOut,
  };
}

/**
 * Sends at E2E_RATE msg/s in total, round robin over `senders`, for `ms` (at most `total`); the
 * sequence numbers start at `seq0` over all senders. One timer for every publisher: it sends what
 * the rate owes by now (setTimeout drifts; this does not). Returns the count sent.
 */
async function pacedSend(senders: Array<(seq: number) => void>, ms: number, total: number, seq0: number): Promise<number> {
  const t0 = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - t0;
      const owed = Math.min(total, Math.floor((elapsed * E2E_RATE) / 1000));
      while (sent < owed) {
        const k = seq0 + sent;
        senders[k % senders.length](Math.floor(k / senders.length));
        sent++;
      }
      if (elapsed >= ms) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  return sent;
}

/** Scenario c: QoS 1 at E2E_RATE msg/s in total, round robin over E2E_PUBLISHERS, `#` subscriber at QoS 1. */
async function pacedE2e(server: Server, tag: string): Promise<DeliveredResult> {
  const total = Math.ceil((E2E_RATE * E2E_MS) / 1000) + E2E_PUBLISHERS;
  const rig = await openRig(server, 1, E2E_PUBLISHERS, total, tag);
  const peak = new PeakRss(server.pid);
  const before = isTributary(server.name) ? await scrapeDropMetrics(server) : new Map<string, number>();
  await peak.start();
  rig.measuring = true;
  const senders = rig.pubs.map((c, p) => qos1Sender(c, p));
  let acked = 0;
  for (const c of rig.pubs) c.onPuback = () => void acked++;
  if (E2E_WARM_MS > 0) {
    // the same paced load, not measured: V8 compiles the hot paths during the first seconds
    // (on its worker threads, counted in the process's CPU time), which a long-running server
    // pays once
    rig.measuring = false;
    await pacedSend(senders, E2E_WARM_MS, Math.ceil((E2E_RATE * E2E_WARM_MS) / 1000), 0);
    await sleep(500);
    rig.measuring = true;
  }
  const fsyncs0 = await scrapeCounterSum(server, 'tributary_log_fsyncs_total');
  const scavenges0 = server.gc.scavenges;
  const threads0 = THREADS ? await threadTicks(server.pid) : null;
  const [user0, sys0] = await cpuTicksSplit(server.pid);
  const sent = await pacedSend(senders, E2E_MS, total, E2E_WARM_MS > 0 ? Math.ceil((E2E_RATE * E2E_WARM_MS) / 1000) : 0);
  const timedOut = await awaitDeliveries(rig, () => sent, () => true, performance.now() + 10_000);
  const [user1, sys1] = await cpuTicksSplit(server.pid);
  if (threads0) printThreadTicks(`mqtt c ${tag}`, threads0, await threadTicks(server.pid), sent);
  const fsyncs1 = await scrapeCounterSum(server, 'tributary_log_fsyncs_total');
  const peakMiB = await peak.stop();
  const drops = await serverDrops(server, before);
  const subscriberClosed = rig.sub.closed;
  rig.close();
  return {
    sent,
    delivered: rig.delivered,
    deliveredPerSec: rig.delivered / (E2E_MS / 1000),
    ackedPerSec: acked / (E2E_MS / 1000),
    ...latencyQuantiles(rig),
    cpuUsPerMsg: ticksToUsPerMsg(user1 - user0 + sys1 - sys0, sent),
    sysUsPerMsg: ticksToUsPerMsg(sys1 - sys0, sent),
    fsyncsPerMsg: (fsyncs1 - fsyncs0) / Math.max(1, sent),
    scavengesPerKMsg: ((server.gc.scavenges - scavenges0) * 1000) / Math.max(1, sent),
    peakRssMiB: peakMiB,
    drops,
    subscriberClosed,
    timedOut,
  };
}

// --- the run -----------------------------------------------------------------------------------

export async function run(): Promise<Table[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-mqtt-bench-'));
  const notes: string[] = [];
  const names: string[] = [];
  for (const n of ['tributary', 'tributary-baseline', 'aedes', 'mosquitto', 'nats']) {
    if (n === 'tributary-baseline' ? !BASELINE : SERVERS_WANTED && !SERVERS_WANTED.includes(n)) continue;
    if (n === 'mosquitto' && !which('mosquitto')) notes.push('mosquitto: binary not found (Debian package mosquitto), skipped.');
    else if (n === 'nats' && !which('nats-server')) notes.push('nats: nats-server not found (Debian package nats-server), skipped.');
    else names.push(n);
  }
  if (QUICK) notes.push('QUICK smoke run (TRIBUTARY_BENCH_QUICK=1): small counts, 1 repetition — checks the bench works, not a measurement.');
  const tables: Table[] = [];
  const servers = new Map<string, Server>();
  try {
    if (SCENARIOS.has('ack') || SCENARIOS.has('paced5k') || SCENARIOS.has('idle')) tables.push(...(await issue5Scenarios(names, dir, servers, notes)));
    for (const s of servers.values()) await s.stop();
    servers.clear();
    tables.push(...(await issue9Scenarios(names, dir, notes)));
    return tables;
  } finally {
    for (const s of servers.values()) await s.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function issue5Scenarios(names: string[], dir: string, servers: Map<string, Server>, notes: string[]): Promise<Table[]> {
  const load0 = loadNow();
  for (const n of names) {
    try {
      servers.set(n, await startServer(n, dir, 'ack'));
    } catch (err) {
      notes.push(`${n}: could not start (${(err as Error).message.split('\n')[0]}), skipped.`);
    }
  }
  const results = new Map<string, RunResult[]>();
  let runNo = 0;
  if (SCENARIOS.has('ack')) {
    for (let rep = 0; rep < REPS; rep++) {
      for (const qos of [1, 0] as const) {
        for (const [n, s] of servers) {
          const key = `${n}|${qos}`;
          if (!results.has(key)) results.set(key, []);
          results.get(key)!.push(await fanIn(s, qos, runNo++));
        }
      }
    }
  }
  const pacedRows = new Map<string, Awaited<ReturnType<typeof paced>>>();
  if (SCENARIOS.has('paced5k')) for (const [n, s] of servers) pacedRows.set(n, await paced(s));
  // a fresh process per server, so the row shows what 1,000 connections cost, not the
  // heap left over from the runs above
  const live = [...servers.keys()];
  for (const s of servers.values()) await s.stop();
  servers.clear();
  const idle = new Map<string, number>();
  const idleBaseline = new Map<string, number>();
  if (SCENARIOS.has('idle')) {
    for (const n of live) {
      const s = await startServer(n, dir).catch(() => undefined);
      if (!s) continue;
      servers.set(n, s);
      const baseline = await rssMiBOf(s.pid);
      idle.set(n, await idleClients(s));
      idleBaseline.set(n, baseline);
      await s.stop();
      servers.delete(n);
    }
  }

  const med = (xs: RunResult[], f: (r: RunResult) => number) => median(xs.map(f));
  const aedes1 = results.get('aedes|1');
  const rows: Array<Array<string | number>> = [];
  let anyTimedOut = false;
  for (const qos of [1, 0]) {
    for (const n of live) {
      const r = results.get(`${n}|${qos}`);
      if (!r) continue;
      anyTimedOut ||= r.some((x) => x.timedOut);
      const rate = med(r, (x) => x.msgsPerSec);
      rows.push([
        `${n} QoS ${qos}${isTributary(n) && qos === 1 ? ' (durable acks)' : ''}`,
        rate,
        qos === 1 && aedes1 ? `${(rate / med(aedes1, (x) => x.msgsPerSec)).toFixed(2)}×` : '',
        qos === 1 ? med(r, (x) => x.p50Ms) : '–',
        qos === 1 ? med(r, (x) => x.p99Ms) : '–',
        med(r, (x) => x.cpuUsPerMsg),
        med(r, (x) => x.rssMiB),
      ]);
    }
  }
  for (const [n, p] of pacedRows) rows.push([`${n} QoS 1 paced ${PACED_RATE.toLocaleString('en-US')}/s`, p.sent / (PACED_MS / 1000), '', p.p50Ms, p.p99Ms, p.cpuUsPerMsg, '']);
  for (const [n, r] of idle) rows.push([`${n}: ${IDLE_CLIENTS.toLocaleString('en-US')} idle clients (fresh process, ${idleBaseline.get(n)!.toFixed(0)} MiB before)`, '', '', '', '', '', r]);
  return [
    {
      title: `MQTT fan-in: ${PUBLISHERS} publishers × ${MSGS} messages of ~100 B JSON (median of ${REPS} interleaved runs)`,
      columns: ['server / load', 'acked msg/s', 'vs aedes', 'p50 ack ms', 'p99 ack ms', 'server CPU µs/msg', 'server RSS MiB'],
      rows,
      notes: [
        `QoS 1: ${WINDOW} publishes in flight per publisher; latency = publish → PUBACK. QoS 0: msg/s until a closing QoS 1 publish per publisher is acknowledged.`,
        'Tributary acknowledges only after the append met the topic flush policy (fsync, group commit); aedes keeps everything in memory; Mosquitto autosaves its persistence file periodically; NATS JetStream writes its file store without fsync per message.',
        'Targets (issue 5): ≤ 25 µs/msg server CPU with durable acks, ≥ 1.0× aedes-in-memory throughput, p99 PUBACK ≤ 20 ms at 5,000 msg/s, RSS ≤ 120 MB with 1,000 connected clients.',
        ...(anyTimedOut ? [`Some runs hit the ${ACK_CAP_MS / 1000} s cap: their rate counts what was acknowledged by then.`] : []),
        `Load average (1/5/15 min) at start: ${load0}; at end: ${loadNow()}. Load generator and servers share a 2-core machine: ratios within one run are what matter.`,
        ...notes,
      ],
    },
  ];
}

type Scenario = 'a' | 'slow' | 'b' | 'c';

async function issue9Scenarios(names: string[], dir: string, notes: string[]): Promise<Table[]> {
  const wanted = (['a', 'slow', 'b', 'c'] as const).filter((s) => SCENARIOS.has(s));
  const results = new Map<string, DeliveredResult[]>();
  const loads = new Map<Scenario, string[]>();
  const failures: string[] = [];
  let runNo = 0;
  for (let rep = 0; rep < REPS; rep++) {
    for (const sc of wanted) {
      for (const n of names) {
        let server: Server | undefined;
        const tag = `${sc}${rep}-${runNo++}`;
        try {
          server = await startServer(n, dir, sc);
          if (!loads.has(sc)) loads.set(sc, [loadNow()]);
          const r = sc === 'a' ? await flood(server, false, tag) : sc === 'slow' ? await flood(server, true, tag) : sc === 'b' ? await qos1FanIn(server, tag) : await pacedE2e(server, tag);
          const key = `${sc}|${n}`;
          if (!results.has(key)) results.set(key, []);
          results.get(key)!.push(r);
          // each run as it ends (stderr): the medians hide how far runs spread on a shared machine
          process.stderr.write(`mqtt ${sc} ${n} rep ${rep}: ${r.deliveredPerSec.toFixed(0)} delivered msg/s, ${r.cpuUsPerMsg.toFixed(1)} µs/msg (kernel ${(r.sysUsPerMsg ?? NaN).toFixed(1)}), fsyncs/msg ${(r.fsyncsPerMsg ?? NaN).toFixed(3)}, p50/p99 ${r.p50Ms.toFixed(2)}/${r.p99Ms.toFixed(2)} ms, load ${loadNow()}\n`);
        } catch (err) {
          failures.push(`${sc}/${n}: ${(err as Error).message.split('\n')[0]}`);
        } finally {
          await server?.stop();
        }
      }
      loads.get(sc)?.push(loadNow());
    }
  }
  const med = (xs: DeliveredResult[], f: (r: DeliveredResult) => number) => median(xs.map(f));
  const vs = (sc: Scenario, n: string, f: (r: DeliveredResult) => number) => {
    const a = results.get(`${sc}|aedes`);
    const r = results.get(`${sc}|${n}`);
    return a && r ? `${(med(r, f) / med(a, f)).toFixed(2)}×` : '';
  };
  const all = (sc: Scenario) => names.filter((n) => results.has(`${sc}|${n}`)).map((n) => [n, results.get(`${sc}|${n}`)!] as const);
  const joinDrops = (rs: DeliveredResult[]) => [...new Set(rs.map((r) => r.drops))].join(' / ');
  const gcNote = (sc: Scenario) => {
    const counted = all(sc).filter(([, rs]) => rs.some((r) => (r.scavengesPerKMsg ?? 0) > 0));
    return counted.length ? [`Young-generation collections per 1,000 messages (--trace-gc): ${counted.map(([n, rs]) => `${n} ${med(rs, (r) => r.scavengesPerKMsg ?? NaN).toFixed(2)}`).join(', ')}.`] : [];
  };
  const fsyncCell = (rs: DeliveredResult[]) => {
    const m = med(rs, (r) => r.fsyncsPerMsg ?? NaN);
    return Number.isNaN(m) ? '' : m.toFixed(3);
  };
  const flags = (rs: DeliveredResult[]) => [rs.some((r) => r.timedOut) ? 'cap hit' : '', rs.some((r) => r.subscriberClosed) ? 'subscriber disconnected' : ''].filter(Boolean).join(', ');
  const loadNote = (sc: Scenario) => `Load average (1/5/15 min) at start: ${loads.get(sc)?.[0] ?? '?'}; after each repetition: ${(loads.get(sc) ?? []).slice(1).join(' | ')}.`;
  const common = [
    `Median of ${REPS} interleaved repetitions; a fresh server process per run, warmed with ${WARM_MSGS} QoS 1 publishes per publisher; ~${100} B payloads; raw-socket load client (bench/mqtt-load.ts) in one process with the subscriber, on the same 2 cores as the server.`,
    'Latency = publish written by the load client → PUBLISH read by the subscriber. Peak RSS = VmHWM of the server process over the measured part (reset before it).',
    ...(failures.length ? [`Failed runs: ${failures.join('; ')}.`] : []),
    ...notes,
  ];
  const tables: Table[] = [];
  if (SCENARIOS.has('a')) {
    tables.push({
      title: `MQTT a: QoS 0 fan-in, ${PUBLISHERS} publishers flooding ${FLOOD_MSGS.toLocaleString('en-US')} msgs each, one \`#\` subscriber (QoS 0)`,
      columns: ['server', 'delivered msg/s', 'vs aedes', 'delivered / sent', 'p50 ms', 'p99 ms', 'server CPU µs/msg', 'peak RSS MiB', 'drops (server counter)', 'notes'],
      rows: all('a').map(([n, rs]) => [n, med(rs, (r) => r.deliveredPerSec), vs('a', n, (r) => r.deliveredPerSec), `${med(rs, (r) => r.delivered)} / ${med(rs, (r) => r.sent)}`, med(rs, (r) => r.p50Ms), med(rs, (r) => r.p99Ms), med(rs, (r) => r.cpuUsPerMsg), med(rs, (r) => r.peakRssMiB), joinDrops(rs), flags(rs)]),
      notes: ['Targets (issue 9): Tributary ≥ 1.5× aedes delivered msg/s; peak RSS ≤ 120 MiB; a slow subscriber paused or dropped by a bounded queue, counted.', 'Publishers write until TCP pushes back, so latency includes the time a message waits in socket buffers.', loadNote('a'), ...common],
    });
  }
  if (SCENARIOS.has('slow')) {
    tables.push({
      title: `MQTT slow subscriber: as a, but the \`#\` subscriber reads nothing for ${SLOW_PAUSE_MS / 1000} s (or until the ${PUBLISHERS} publishers are done with ${SLOW_MSGS.toLocaleString('en-US')} msgs each)`,
      columns: ['server', 'sent while not read', 'server took in meanwhile', 'peak RSS MiB (while not read)', 'delivered / sent (after)', 'drops (server counter)', 'notes'],
      rows: all('slow').map(([n, rs]) => [n, med(rs, (r) => r.sentWhilePaused ?? NaN), Number.isNaN(med(rs, (r) => r.receivedWhilePaused ?? NaN)) ? 'not exposed' : med(rs, (r) => r.receivedWhilePaused ?? NaN), med(rs, (r) => r.peakRssMiB), `${med(rs, (r) => r.delivered)} / ${med(rs, (r) => r.sent)}`, joinDrops(rs), flags(rs)]),
      notes: [
        'A bounded server either pauses the publishers (few messages sent while the subscriber reads nothing: every publisher waits for one reader) or drops the subscriber\'s messages and counts them (delivered < sent); an unbounded one keeps every undelivered message in memory (peak RSS). Kernel socket buffers on loopback hold a few MiB per connection, so the publishers get everything written either way: "server took in meanwhile" (Tributary\'s tributary_mqtt_publishes_total, Mosquitto\'s $SYS/broker/publish/messages/received, up to 1 s old) tells a paused flood from a queued or dropped one.',
        loadNote('slow'),
        ...common,
      ],
    });
  }
  if (SCENARIOS.has('b')) {
    tables.push({
      title: `MQTT b: QoS 1 fan-in, ${PUBLISHERS} publishers × ${QOS1_MSGS.toLocaleString('en-US')} msgs (${WINDOW} in flight each), one \`#\` subscriber at QoS 1`,
      columns: ['server', 'delivered msg/s', 'vs aedes', 'acked msg/s', 'delivered / sent', 'p50 ms', 'p99 ms', 'server CPU µs/msg', 'of which kernel', 'fsyncs/msg', 'peak RSS MiB', 'notes'],
      rows: all('b').map(([n, rs]) => [n, med(rs, (r) => r.deliveredPerSec), vs('b', n, (r) => r.deliveredPerSec), med(rs, (r) => r.ackedPerSec), `${med(rs, (r) => r.delivered)} / ${med(rs, (r) => r.sent)}`, med(rs, (r) => r.p50Ms), med(rs, (r) => r.p99Ms), med(rs, (r) => r.cpuUsPerMsg), med(rs, (r) => r.sysUsPerMsg ?? NaN), fsyncCell(rs), med(rs, (r) => r.peakRssMiB), flags(rs)]),
      notes: ['Target (issue 9): Tributary ≥ 1.0× aedes delivered msg/s. Tributary acknowledges and delivers after the fsync (group commit); the others keep QoS 1 in memory or write without fsync.', loadNote('b'), ...gcNote('b'), ...common],
    });
  }
  if (SCENARIOS.has('c')) {
    tables.push({
      title: `MQTT c: QoS 1 paced at ${E2E_RATE.toLocaleString('en-US')} msg/s for ${E2E_MS / 1000} s (${E2E_PUBLISHERS} publishers, round robin) → one \`#\` subscriber at QoS 1`,
      columns: ['server', 'sent msg/s', 'delivered / sent', 'server CPU µs/msg', 'vs aedes', 'of which kernel', 'fsyncs/msg', 'p50 ms', 'p99 ms', 'peak RSS MiB', 'notes'],
      rows: all('c').map(([n, rs]) => [n, med(rs, (r) => r.sent) / (E2E_MS / 1000), `${med(rs, (r) => r.delivered)} / ${med(rs, (r) => r.sent)}`, med(rs, (r) => r.cpuUsPerMsg), vs('c', n, (r) => r.cpuUsPerMsg), med(rs, (r) => r.sysUsPerMsg ?? NaN), fsyncCell(rs), med(rs, (r) => r.p50Ms), med(rs, (r) => r.p99Ms), med(rs, (r) => r.peakRssMiB), flags(rs)]),
      notes: ['Targets (issue 9): server CPU per message ≤ aedes\'s; p99 publish → delivery ≤ 10 ms including Tributary\'s fsync. CPU = utime+stime of the server process (all its threads) from /proc/<pid>/stat over the run (10 ms ticks) ÷ messages sent; "of which kernel" is the stime part. fsyncs/msg = Tributary\'s `tributary_log_fsyncs_total` over the run ÷ messages sent (one per group commit).', loadNote('c'), ...gcNote('c'), ...common],
    });
  }
  return tables;
}

if (process.env.TRIBUTARY_MQTT_BENCH_SERVE) {
  void serve(process.env.TRIBUTARY_MQTT_BENCH_SERVE, process.env.TRIBUTARY_MQTT_BENCH_DIR ?? tmpdir());
}
