// MQTT fan-in: one load generator (mqtt.js, 50 publishers, ~100-byte JSON messages) against
// four servers, each started here as its own process on loopback:
//   tributary  `node dist/host/main.js start` (every listener, default config), durable acks:
//              PUBACK only after the append met the flush policy (fsync per group commit)
//   aedes      aedes 1.2 alone, in-memory persistence (same file, SERVE=aedes)
//   mosquitto  Debian mosquitto, persistence on (periodic autosave, no fsync per message)
//   nats       nats-server with JetStream and its MQTT listener (file store)
// A peer whose binary is missing is skipped with a note.
//
// Figures per server: acknowledged msgs/s, p50/p99 publish→PUBACK latency (QoS 1), server RSS
// at the end, and server CPU µs per message from /proc/<pid>/stat (utime+stime). On 2 cores one
// generator saturates a core near 30–40k msg/s, so CPU per message is the fair efficiency
// figure. Runs are interleaved over REPS repetitions; the table gives medians.
// Extra rows: QoS 1 paced at 5,000 msg/s (latency under a set load) and the server's RSS with
// 1,000 idle connected clients.
//
// Environment: TRIBUTARY_BENCH_REPS (default 3), TRIBUTARY_MQTT_BENCH_MSGS (per publisher, default 400).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Table } from './table.js';
import { median, quantile } from './table.js';

export const subject = 'mqtt';
export const order = 50;

const PUBLISHERS = 50;
const MSGS = Number(process.env.TRIBUTARY_MQTT_BENCH_MSGS ?? 400);
const WINDOW = 10; // QoS 1 publishes in flight per publisher
const REPS = Number(process.env.TRIBUTARY_BENCH_REPS ?? 3);
const PACED_RATE = 5_000;
const PACED_MS = 3_000;
const IDLE_CLIENTS = 1_000;
const CLK_TCK = 100; // Linux USER_HZ

const self = fileURLToPath(import.meta.url);
const mainJs = fileURLToPath(new URL('../host/main.js', import.meta.url));

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
  stop(): Promise<void>;
}

function have(cmd: string): boolean {
  return ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(':')].some((d) => d && existsSync(join(d, cmd)));
}

function which(cmd: string): string {
  const d = ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(':')].find((x) => x && existsSync(join(x, cmd)));
  return d ? join(d, cmd) : cmd;
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

function spawnAndWait(name: string, cmd: string, args: string[], port: number | 'stdout', env?: Record<string, string>): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const stop = async () => {
      child.kill('SIGKILL');
      await exited;
    };
    const ready = async (p: number) => {
      const { default: mqtt } = await import('mqtt');
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${p}`, { reconnectPeriod: 0, connectTimeout: 1_000 });
          await c.endAsync(true);
          return resolve({ name, pid: child.pid!, port: p, stop });
        } catch {
          if (Date.now() > deadline) {
            await stop();
            return reject(new Error(`${name} did not accept MQTT connections: ${err.slice(-2000)}`));
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    if (port === 'stdout') {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /^PORT (\d+)$/.exec(line);
        if (m) void ready(Number(m[1]));
      });
    } else {
      child.stdout!.resume();
      void ready(port);
    }
    void exited.then(() => reject(new Error(`${name} exited: ${err.slice(-2000)}`)));
  });
}

async function startServer(name: string, dir: string): Promise<Server> {
  const dataDir = await mkdtemp(join(dir, `${name}-`));
  if (name === 'aedes') {
    return spawnAndWait(name, process.execPath, [self], 'stdout', { TRIBUTARY_MQTT_BENCH_SERVE: name, TRIBUTARY_MQTT_BENCH_DIR: dataDir });
  }
  const port = await freePort();
  if (name === 'tributary') {
    // the real thing: `tributary start` with every listener, default config (flush=always)
    const args = [mainJs, 'start', '--data-dir', dataDir, '--host', '127.0.0.1', '--kafka-port', '0', '--mqtt-port', String(port), '--mqtt-ws-port', '0', '--http-port', '0'];
    return spawnAndWait(name, process.execPath, args, port, { TRIBUTARY_LOG_LEVEL: 'warn' });
  }
  if (name === 'mosquitto') {
    const conf = join(dataDir, 'mosquitto.conf');
    await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence true', `persistence_location ${dataDir}/`, 'max_inflight_messages 0', 'max_queued_messages 100000', 'log_dest none', ''].join('\n'));
    return spawnAndWait(name, which('mosquitto'), ['-c', conf], port);
  }
  const conf = join(dataDir, 'nats.conf');
  await writeFile(conf, [`server_name: bench`, `listen: 127.0.0.1:${await freePort()}`, `jetstream { store_dir: "${dataDir}/js" }`, `mqtt { listen: 127.0.0.1:${port} }`, ''].join('\n'));
  return spawnAndWait(name, which('nats-server'), ['-c', conf], port);
}

async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
}

async function rssMiBOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

interface RunResult {
  msgsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerMsg: number;
  rssMiB: number;
}

const payloadFor = (p: number, i: number) => JSON.stringify({ device: `dev-${p}`, seq: i, temp: 21.5 + (i % 10) / 10, humidity: 40 + (i % 7), ts: 1_700_000_000_000 + i });

/** 50 publishers × MSGS messages; QoS 1 with a window per publisher, or QoS 0 closed by one QoS 1 per publisher. */
async function fanIn(server: Server, qos: 0 | 1, run: number): Promise<RunResult> {
  const { default: mqtt } = await import('mqtt');
  const clients = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, p) => mqtt.connectAsync(`mqtt://127.0.0.1:${server.port}`, { clientId: `bench-${run}-${p}`, reconnectPeriod: 0 })),
  );
  const latencies: number[] = [];
  const cpu0 = await cpuTicks(server.pid);
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (c, p) => {
      const topic = `sensors/dev-${p}/reading`;
      if (qos === 0) {
        for (let i = 0; i < MSGS; i++) {
          await c.publishAsync(topic, payloadFor(p, i), { qos: 0 });
        }
        await c.publishAsync(topic, 'end', { qos: 1 }); // in order after the QoS 0 ones
        return;
      }
      let next = 0;
      const lane = async () => {
        while (next < MSGS) {
          const i = next++;
          const start = performance.now();
          await c.publishAsync(topic, payloadFor(p, i), { qos: 1 });
          latencies.push(performance.now() - start);
        }
      };
      await Promise.all(Array.from({ length: WINDOW }, lane));
    }),
  );
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu1 = await cpuTicks(server.pid);
  const rss = await rssMiBOf(server.pid);
  await Promise.all(clients.map((c) => c.endAsync(true)));
  const total = PUBLISHERS * MSGS;
  return {
    msgsPerSec: total / elapsedS,
    p50Ms: latencies.length ? quantile(latencies, 0.5) : NaN,
    p99Ms: latencies.length ? quantile(latencies, 0.99) : NaN,
    cpuUsPerMsg: (((cpu1 - cpu0) / CLK_TCK) * 1e6) / total,
    rssMiB: rss,
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
      await new Promise((r) => setTimeout(r, Math.random() * perClientEveryMs));
      for (let i = 0; Date.now() < end; i++) {
        const start = performance.now();
        sent++;
        pending.push(c.publishAsync(`sensors/dev-${p}/paced`, payloadFor(p, i), { qos: 1 }).then(() => void latencies.push(performance.now() - start)));
        await new Promise((r) => setTimeout(r, perClientEveryMs));
      }
    }),
  );
  await Promise.all(pending);
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
          s.once('data', () => resolve());
          s.on('error', () => resolve());
          sockets.push(s);
        }),
      ),
    );
  }
  await new Promise((r) => setTimeout(r, 500));
  const rss = await rssMiBOf(server.pid);
  for (const s of sockets) s.destroy();
  return rss;
}

export async function run(): Promise<Table[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-mqtt-bench-'));
  const notes: string[] = [];
  const names = ['tributary', 'aedes'];
  if (have('mosquitto')) names.push('mosquitto');
  else notes.push('mosquitto: binary not found (Debian package mosquitto), skipped.');
  if (have('nats-server')) names.push('nats');
  else notes.push('nats: nats-server not found (Debian package nats-server), skipped.');

  const servers = new Map<string, Server>();
  try {
    for (const n of names) {
      try {
        servers.set(n, await startServer(n, dir));
      } catch (err) {
        notes.push(`${n}: could not start (${(err as Error).message.split('\n')[0]}), skipped.`);
      }
    }
    const results = new Map<string, RunResult[]>();
    let runNo = 0;
    for (let rep = 0; rep < REPS; rep++) {
      for (const qos of [1, 0] as const) {
        for (const [n, s] of servers) {
          const key = `${n}|${qos}`;
          if (!results.has(key)) results.set(key, []);
          results.get(key)!.push(await fanIn(s, qos, runNo++));
        }
      }
    }
    const idleBaseline = new Map<string, number>();
    const pacedRows = new Map<string, Awaited<ReturnType<typeof paced>>>();
    for (const [n, s] of servers) pacedRows.set(n, await paced(s));
    // a fresh process per server, so the row shows what 1,000 connections cost, not the
    // heap left over from the runs above
    for (const s of servers.values()) await s.stop();
    servers.clear();
    const idle = new Map<string, number>();
    for (const n of names) {
      const s = await startServer(n, dir).catch(() => undefined);
      if (!s) continue;
      servers.set(n, s);
      const baseline = await rssMiBOf(s.pid);
      idle.set(n, await idleClients(s));
      idleBaseline.set(n, baseline);
    }

    const med = (xs: RunResult[], f: (r: RunResult) => number) => median(xs.map(f));
    const aedes1 = results.get('aedes|1');
    const rows: Array<Array<string | number>> = [];
    for (const qos of [1, 0]) {
      for (const n of servers.keys()) {
        const r = results.get(`${n}|${qos}`)!;
        const rate = med(r, (x) => x.msgsPerSec);
        rows.push([
          `${n} QoS ${qos}${n === 'tributary' && qos === 1 ? ' (durable acks)' : ''}`,
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
          'Load generator and servers share a 2-core machine: ratios within one run are what matter.',
          ...notes,
        ],
      },
    ];
  } finally {
    for (const s of servers.values()) await s.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.env.TRIBUTARY_MQTT_BENCH_SERVE) {
  void serve(process.env.TRIBUTARY_MQTT_BENCH_SERVE, process.env.TRIBUTARY_MQTT_BENCH_DIR ?? tmpdir());
}
