// WebSocket fan-out and HTTP produce, against a real broker process (dist/host/main.js).
//
// Fan-out: one topic fed at TARGET_RATE records/s over HTTP POST (20 records every 10 ms),
// read by 100 and 1,000 WebSocket subscribers (JSON and CBOR) living in LOADGEN_PROCS child
// processes (this same file with TRIBUTARY_WS_LOADGEN set). Each subscriber counts what it
// receives; latency is receive time − the record's timestamp (stamped by the broker when the
// POST is appended), sampled per process into a bounded reservoir. The broker's RSS (max over
// the window) and CPU come from its own GET /stats; the generators report their CPU so they are
// never the hidden bottleneck. Scenarios are interleaved over REPS repetitions; the table gives
// medians.
//
// HTTP produce: POST batches of 100 records (100-byte values) with 4 requests in flight, and
// single-record POSTs with 16 in flight, for a fixed time.
//
// Engines: every scenario runs against each HTTP/WebSocket engine (http.engine): native
// uWebSockets.js where a build loads here, and node:http + ws; one broker process per engine,
// both up for the whole run, scenarios interleaved across them. The engine is a column.
//
// Environment: TRIBUTARY_BENCH_REPS (default 3), TRIBUTARY_BENCH_WINDOW_MS (default 6000),
// TRIBUTARY_BENCH_WS_ONLY (e.g. "1000:json" to run a subset), TRIBUTARY_BENCH_WS_HTTP=0 to skip
// the HTTP produce table, TRIBUTARY_BENCH_WS_ENGINES (default "uws,node"),
// TRIBUTARY_BENCH_QUICK=1 (1 repetition, 2 s windows, 100 and 1,000 JSON subscribers only).
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Table } from './table.js';
import { median, quantile } from './table.js';
import { loadUws } from '../gateway/ws/uws-loader.js';

export const subject = 'ws';
export const order = 60;

const TARGET_RATE = 2_000;
const TICK_MS = 10;
const LOADGEN_PROCS = Number(process.env.TRIBUTARY_BENCH_WS_LOADGENS ?? 4);
const SAMPLES_PER_PROC = 40_000;
const QUICK = process.env.TRIBUTARY_BENCH_QUICK === '1';
const REPS = Number(process.env.TRIBUTARY_BENCH_REPS ?? (QUICK ? 1 : 3));
const WINDOW_MS = Number(process.env.TRIBUTARY_BENCH_WINDOW_MS ?? (QUICK ? 2_000 : 6_000));
const WARMUP_MS = QUICK ? 500 : 1_500;
const HTTP_PRODUCE_MS = QUICK ? 1_000 : 3_000;
const TOPIC = 'fanout'; // default topic config: flush=always (records readable after their fsync)
const TOPIC_NO_FSYNC = 'fanout-interval'; // flush=interval: isolates the gateway's own fan-out latency
/** Every SAMPLE_EVERY-th subscriber decodes its frames fully and samples latency; the others count records. */
const SAMPLE_EVERY = 10;
const RECORDS_MARK = Buffer.from('records');
const SUBSCRIBED_MARK = Buffer.from('subscribed');
const JSON_OFFSET_KEY = Buffer.from('{"offset":');
const CBOR_OFFSET_KEY = Buffer.from([0x66, ...Buffer.from('offset')]); // text(6) "offset"


// --- load generator (child process) -------------------------------------------------------------

async function loadgen(): Promise<void> {
  const { default: WebSocket } = await import('ws');
  const { decode, encode } = await import('cbor-x');
  const [url, countArg, encoding, topic] = process.argv.slice(2);
  const count = Number(countArg);
  const protocol = encoding === 'cbor' ? 'tributary.cbor.v1' : 'tributary.json.v1';
  const perSocket = new Array<number>(count).fill(0);
  const samples: number[] = [];
  let seen = 0;
  let counting = false;
  const sockets: InstanceType<typeof WebSocket>[] = [];
  const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
  await Promise.all(
    [...Array(count).keys()].map(
      (i) =>
        new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(url, protocol, { perMessageDeflate: false });
          sockets.push(ws);
          ws.on('error', reject);
          const sampled = i % SAMPLE_EVERY === 0;
          ws.on('message', (data: Buffer, isBinary: boolean) => {
            if (!counting || !sampled) {
              // Most sockets only count records (one per "offset" key in a records frame), so the
              // generator's own decoding does not cap what the broker is seen to deliver.
              if (!data.subarray(0, 24).includes(RECORDS_MARK)) {
                if (!counting && data.subarray(0, 32).includes(SUBSCRIBED_MARK)) resolve();
                return;
              }
              if (!counting) return;
              const mark = isBinary ? CBOR_OFFSET_KEY : JSON_OFFSET_KEY;
              let n = 0;
              for (let at = data.indexOf(mark); at >= 0; at = data.indexOf(mark, at + mark.length)) n++;
              perSocket[i] += n;
              return;
            }
            const frame = isBinary ? decode(data) : JSON.parse(data.toString());
            if (frame.type !== 'records') return;
            const now = Date.now();
            perSocket[i] += frame.records.length;
            for (const r of frame.records) {
              // Reservoir sampling keeps the latency sample bounded and unbiased.
              seen++;
              const lat = now - r.timestamp;
              if (samples.length < SAMPLES_PER_PROC) samples.push(lat);
              else {
                const j = Math.floor(Math.random() * seen);
                if (j < SAMPLES_PER_PROC) samples[j] = lat;
              }
            }
          });
          const subscribe = { type: 'subscribe', id: i, topic, start: 'latest' };
          ws.on('open', () => ws.send(encoding === 'cbor' ? encode(subscribe) : JSON.stringify(subscribe)));
        }),
    ),
  );
  out({ ready: true });
  let cpuStart = process.cpuUsage();
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'start') {
      perSocket.fill(0);
      samples.length = 0;
      seen = 0;
      counting = true;
      cpuStart = process.cpuUsage();
    } else if (line === 'stop') {
      counting = false;
      const cpu = process.cpuUsage(cpuStart);
      out({ delivered: perSocket.reduce((a, b) => a + b, 0), minPerSocket: Math.min(...perSocket), samples, cpuMs: (cpu.user + cpu.system) / 1000 });
      for (const ws of sockets) ws.terminate();
      setTimeout(() => process.exit(0), 50);
    }
  });
}

// --- the bench (parent) ---------------------------------------------------------------------------

interface BrokerProc {
  child: ChildProcess;
  http: string;
  /** The engine serving HTTP/WebSocket, as the ready line names it ("node: node:http + ws 8.23.0 ..."). */
  engine: string;
  stop(): Promise<void>;
}

async function startBrokerProcess(dataDir: string, engine: string): Promise<BrokerProc> {
  const mainJs = fileURLToPath(new URL('../host/main.js', import.meta.url));
  const child = spawn(process.execPath, [mainJs, 'start', '--data-dir', dataDir, '--host', '127.0.0.1', '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0', '--set', `http.engine=${engine}`], {
    // The broker refuses unknown TRIBUTARY_* variables: pass none of ours (bench knobs) to it.
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TRIBUTARY_'))), TRIBUTARY_LOG_LEVEL: 'info' }, // the ready line is an info line
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = await new Promise<{ http: string; engine: string }>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      try {
        const e = JSON.parse(line);
        if (typeof e.msg === 'string' && e.msg.includes('ready') && e.listeners?.http) resolve({ http: `http://${e.listeners.http}`, engine: String(e.engines?.http ?? '?') });
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`broker exited ${code} before ready`)));
  });
  return {
    child,
    ...ready,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      }),
  };
}

async function brokerStats(http: string): Promise<{ rssBytes: number; cpuSeconds: number; eventLoopDelayP99Ms: number }> {
  const s = await (await fetch(`${http}/stats`)).json();
  return s.process;
}

interface Gen {
  child: ChildProcess;
  lines: AsyncIterator<string>;
}

async function startLoadgens(wsUrl: string, subscribers: number, encoding: string, topic: string): Promise<Gen[]> {
  const self = fileURLToPath(import.meta.url);
  const gens: Gen[] = [];
  const per = Math.ceil(subscribers / LOADGEN_PROCS);
  for (let i = 0, left = subscribers; i < LOADGEN_PROCS && left > 0; i++, left -= per) {
    const child = spawn(process.execPath, [self, wsUrl, String(Math.min(per, left)), encoding, topic], { env: { ...process.env, TRIBUTARY_WS_LOADGEN: '1' }, stdio: ['pipe', 'pipe', 'inherit'] });
    gens.push({ child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator]() });
  }
  for (const g of gens) {
    const first = await g.lines.next();
    if (!JSON.parse(first.value).ready) throw new Error('load generator failed to start');
  }
  return gens;
}

/** Feeds the topic at TARGET_RATE with POSTs of 20 records every 10 ms. */
function startProducer(http: string, topic: string): { acked(): number; ackLatencies: number[]; stop(): Promise<number> } {
  const perTick = (TARGET_RATE * TICK_MS) / 1000;
  const body = JSON.stringify([...Array(perTick)].map((_, i) => ({ key: `sensor-${i}`, value: { t: 21.5, h: 40, seq: i } })));
  let acked = 0;
  let inFlight = 0;
  let failedPosts = 0;
  let lastFailure = '';
  const ackLatencies: number[] = [];
  const pending = new Set<Promise<void>>();
  const started = performance.now();
  let ticks = 0;
  const timer = setInterval(() => {
    // Catch up missed ticks (timers drift under load) so the offered rate stays at the target.
    const due = Math.floor((performance.now() - started) / TICK_MS) - ticks;
    // Up to 64 POSTs in flight: a slow fsync (shared disk) must not lower the offered rate.
    for (let k = 0; k < due && inFlight < 64; k++) {
      ticks++;
      inFlight++;
      const sent = performance.now();
      const p = fetch(`${http}/topics/${topic}/records`, { method: 'POST', body, headers: { 'content-type': 'application/json' } })
        .then(async (res) => {
          await res.arrayBuffer();
          if (res.status === 200) acked += perTick;
          if (ackLatencies.length < 100_000) ackLatencies.push(performance.now() - sent);
        })
        .catch((err: Error) => {
          // Counted and reported, not fatal: one refused connection must not end a long run.
          failedPosts++;
          lastFailure = `${err.message}: ${(err.cause as Error | undefined)?.message ?? ''}`;
        })
        .finally(() => {
          inFlight--;
          pending.delete(p);
        });
      pending.add(p);
    }
  }, TICK_MS / 2);
  return {
    acked: () => acked,
    ackLatencies,
    async stop() {
      clearInterval(timer);
      await Promise.allSettled([...pending]);
      if (failedPosts) process.stderr.write(`ws bench: ${failedPosts} producer POSTs failed (last: ${lastFailure})\n`);
      return acked;
    },
  };
}

interface FanoutResult {
  delivered: number;
  minPerSocket: number;
  produced: number;
  p50: number;
  p99: number;
  rssMiB: number;
  brokerCpuPct: number;
  genCpuPct: number;
  loopP99: number;
  ackP50: number;
  ackP99: number;
}

async function runFanout(http: string, subscribers: number, encoding: string, topic: string): Promise<FanoutResult> {
  const wsUrl = http.replace('http:', 'ws:') + '/ws';
  const gens = await startLoadgens(wsUrl, subscribers, encoding, topic);
  const producer = startProducer(http, topic);
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  for (const g of gens) g.child.stdin!.write('start\n');
  // The producer keeps its rate; count what it acked during the window only.
  const before = await brokerStats(http);
  const t0 = performance.now();
  let rssMax = before.rssBytes;
  const loopP99: number[] = [];
  const poll = setInterval(
    () =>
      void brokerStats(http).then(
        (s) => {
          rssMax = Math.max(rssMax, s.rssBytes);
          loopP99.push(s.eventLoopDelayP99Ms);
        },
        () => undefined,
      ),
    500,
  );
  const ackedAtStart = producer.acked();
  producer.ackLatencies.length = 0;
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  for (const g of gens) g.child.stdin!.write('stop\n');
  const elapsedSec = (performance.now() - t0) / 1000;
  const after = await brokerStats(http);
  clearInterval(poll);
  if (process.env.TRIBUTARY_BENCH_WS_DEBUG) {
    const m = await (await fetch(`${http}/metrics`)).text();
    process.stderr.write(m.split('\n').filter((l) => /^tributary_(log_fsync_ms|broker_append_latency_ms)_(sum|count)|eventloop/.test(l)).join('\n') + '\n');
  }
  rssMax = Math.max(rssMax, after.rssBytes);
  const ackedAtEnd = producer.acked();
  const acks = [...producer.ackLatencies];
  const reports = await Promise.all(gens.map(async (g) => JSON.parse((await g.lines.next()).value)));
  await producer.stop();
  await Promise.all(gens.map((g) => new Promise((r) => (g.child.exitCode !== null ? r(null) : g.child.once('exit', r)))));
  const samples = reports.flatMap((r) => r.samples as number[]);
  return {
    delivered: reports.reduce((n, r) => n + r.delivered, 0) / elapsedSec,
    minPerSocket: Math.min(...reports.map((r) => r.minPerSocket)) / elapsedSec,
    produced: (ackedAtEnd - ackedAtStart) / elapsedSec,
    p50: samples.length ? quantile(samples, 0.5) : NaN,
    p99: samples.length ? quantile(samples, 0.99) : NaN,
    rssMiB: rssMax / 1048576,
    brokerCpuPct: ((after.cpuSeconds - before.cpuSeconds) / elapsedSec) * 100,
    genCpuPct: reports.reduce((n, r) => n + r.cpuMs, 0) / 10 / elapsedSec,
    loopP99: loopP99.length ? median(loopP99) : NaN,
    ackP50: acks.length ? quantile(acks, 0.5) : NaN,
    ackP99: acks.length ? quantile(acks, 0.99) : NaN,
  };
}

async function runHttpProduce(http: string, recordsPerPost: number, concurrency: number, durationMs: number): Promise<{ recordsPerSec: number; postsPerSec: number; p50: number; p99: number }> {
  const body = JSON.stringify([...Array(recordsPerPost)].map((_, i) => ({ key: `k${i % 16}`, value: 'v'.repeat(100) })));
  const latencies: number[] = [];
  let posts = 0;
  const end = performance.now() + durationMs;
  const t0 = performance.now();
  await Promise.all(
    [...Array(concurrency)].map(async () => {
      while (performance.now() < end) {
        const s = performance.now();
        const res = await fetch(`${http}/topics/httpbench/records`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`POST ${res.status}`);
        latencies.push(performance.now() - s);
        posts++;
      }
    }),
  );
  const sec = (performance.now() - t0) / 1000;
  return { recordsPerSec: (posts * recordsPerPost) / sec, postsPerSec: posts / sec, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

/** The engines to compare: uWS only where a native build loads here. */
function engines(): { names: string[]; note: string } {
  const asked = (process.env.TRIBUTARY_BENCH_WS_ENGINES ?? 'uws,node').split(',');
  try {
    loadUws();
    return { names: asked, note: '' };
  } catch (err) {
    return { names: asked.filter((e) => e !== 'uws'), note: `No uWS row: ${(err as Error).message.split('\n')[0]}` };
  }
}

type Scenario = { subscribers: number; encoding: string; topic: string };
const label = (s: Scenario) => `${s.subscribers}:${s.encoding}${s.topic === TOPIC_NO_FSYNC ? ':interval' : ''}`;

function scenarios(): Scenario[] {
  const all: Scenario[] = [
    { subscribers: 100, encoding: 'json', topic: TOPIC },
    { subscribers: 100, encoding: 'cbor', topic: TOPIC },
    { subscribers: 1000, encoding: 'json', topic: TOPIC },
    { subscribers: 1000, encoding: 'cbor', topic: TOPIC },
    { subscribers: 1000, encoding: 'json', topic: TOPIC_NO_FSYNC },
    { subscribers: 1000, encoding: 'cbor', topic: TOPIC_NO_FSYNC },
  ];
  // TRIBUTARY_BENCH_WS_ONLY=1000:json,100:cbor:interval runs a subset (development runs on a shared machine).
  const only = process.env.TRIBUTARY_BENCH_WS_ONLY?.split(',') ?? (QUICK ? ['100:json', '1000:json'] : undefined);
  return only ? all.filter((s) => only.includes(label(s))) : all;
}

async function createTopics(http: string): Promise<void> {
  const mk = async (body: string) => {
    const res = await fetch(`${http}/topics`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    if (res.status !== 200) throw new Error(`create topic: ${res.status} ${await res.text()}`);
  };
  await mk(JSON.stringify({ name: TOPIC, partitions: 1 }));
  await mk(JSON.stringify({ name: TOPIC_NO_FSYNC, partitions: 1, config: { flush: 'interval', 'flush.interval.ms': 1000 } }));
}

type HttpResult = { recordsPerSec: number; postsPerSec: number; p50: number; p99: number };

/** One broker per engine; each repetition runs every scenario on every engine in turn. */
async function measure(brokers: BrokerProc[], list: Scenario[]) {
  const results = new Map<string, FanoutResult[]>();
  const batch = new Map<string, HttpResult[]>();
  const single = new Map<string, HttpResult[]>();
  const push = <T>(m: Map<string, T[]>, k: string, v: T) => (m.get(k) ?? m.set(k, []).get(k)!).push(v);
  for (let rep = 0; rep < REPS; rep++) {
    for (const s of list) for (const b of brokers) push(results, `${b.engine}|${label(s)}`, await runFanout(b.http, s.subscribers, s.encoding, s.topic));
    if (process.env.TRIBUTARY_BENCH_WS_HTTP === '0') continue;
    for (const b of brokers) {
      push(batch, b.engine, await runHttpProduce(b.http, 100, 4, HTTP_PRODUCE_MS));
      push(single, b.engine, await runHttpProduce(b.http, 1, 16, HTTP_PRODUCE_MS));
    }
  }
  return { results, batch, single };
}

const engineName = (engine: string) => engine.split(':')[0];

export async function run(): Promise<Table[]> {
  const { names, note } = engines();
  const dirs: string[] = [];
  const brokers: BrokerProc[] = [];
  try {
    for (const engine of names) {
      const dataDir = await mkdtemp(join(tmpdir(), `tributary-bench-ws-${engine}-`));
      dirs.push(dataDir);
      const b = await startBrokerProcess(dataDir, engine);
      brokers.push(b);
      await createTopics(b.http);
    }
    const list = scenarios();
    const { results, batch, single } = await measure(brokers, list);
    const med = (rs: FanoutResult[], k: keyof FanoutResult) => median(rs.map((r) => r[k]));
    const fanoutRows = list.flatMap((s) =>
      brokers.map((b) => {
        const rs = results.get(`${b.engine}|${label(s)}`)!;
        return [
          `${s.subscribers} × ${s.encoding}${s.topic === TOPIC_NO_FSYNC ? ', flush=interval' : ''}`,
          engineName(b.engine),
          med(rs, 'produced'),
          med(rs, 'delivered'),
          med(rs, 'delivered') / s.subscribers,
          med(rs, 'minPerSocket'),
          med(rs, 'p50'),
          med(rs, 'p99'),
          `${med(rs, 'ackP50').toFixed(0)} / ${med(rs, 'ackP99').toFixed(0)}`,
          med(rs, 'rssMiB'),
          med(rs, 'brokerCpuPct'),
          med(rs, 'loopP99'),
          med(rs, 'genCpuPct'),
        ];
      }),
    );
    const hrow = (name: string, engine: string, rs: HttpResult[] | undefined) =>
      !rs?.length ? [name, engineName(engine), NaN, NaN, NaN, NaN] : [name, engineName(engine), median(rs.map((r) => r.recordsPerSec)), median(rs.map((r) => r.postsPerSec)), median(rs.map((r) => r.p50)), median(rs.map((r) => r.p99))];
    const finals = await Promise.all(brokers.map(async (b) => `${engineName(b.engine)} ${((await brokerStats(b.http)).rssBytes / 1048576).toFixed(0)} MiB`));
    const engineNotes = [`Engines: ${brokers.map((b) => b.engine).join('; ')}. One broker process per engine, scenarios interleaved across them.${note ? ' ' + note : ''}`];
    if (QUICK) engineNotes.push('QUICK smoke run (TRIBUTARY_BENCH_QUICK=1): 1 repetition, 2 s windows — checks the bench works, not a measurement.');
    return [
      {
        title: `WebSocket fan-out: one topic at ${TARGET_RATE.toLocaleString('en-US')} records/s to N subscribers, per HTTP/WebSocket engine (median of ${REPS} interleaved runs, ${WINDOW_MS / 1000} s windows)`,
        columns: ['subscribers × encoding', 'engine', 'produced rec/s', 'delivered rec/s (all)', 'per subscriber rec/s', 'slowest subscriber rec/s', 'p50 ms', 'p99 ms', 'POST ack p50 / p99 ms', 'broker RSS MiB', 'broker CPU %', 'broker loop delay p99 ms', `load gen CPU % (${LOADGEN_PROCS} procs)`],
        rows: fanoutRows,
        notes: [
          ...engineNotes,
          'Latency: append (record timestamp set by the broker on POST) → the subscriber decoded the frame, sampled on every 10th subscriber (the others count records without decoding, so the generators stay light). Records become readable after their fsync (flush=always), so this latency includes the fsync: the POST ack column shows that share.',
          'Producer: HTTP POST of 20 records every 10 ms from the bench process (up to 64 in flight). Rows marked flush=interval use a topic that acks before fsync (flush.interval.ms 1000), isolating the gateway from the shared disk.',
          'Broker loop delay: median over the window of the event-loop delay p99 per 500 ms (perf_hooks), high when the broker is busy or not scheduled (a loaded machine).',
          `Target: 1,000 subscribers each receiving ${TARGET_RATE.toLocaleString('en-US')} records/s with p99 ≤ 50 ms and broker RSS ≤ 200 MB. CPU % is of one core (200 % = both cores of this machine), shared by broker, generators and the producer.`,
        ],
      },
      {
        title: `HTTP produce throughput per engine (POST /topics/{topic}/records, acks after fsync, median of ${REPS})`,
        columns: ['request shape', 'engine', 'records/s', 'requests/s', 'p50 ms', 'p99 ms'],
        rows: brokers.flatMap((b) => [hrow('100 records × 100 B per POST, 4 in flight', b.engine, batch.get(b.engine)), hrow('1 record per POST, 16 in flight', b.engine, single.get(b.engine))]),
        notes: [`Broker RSS after the run: ${finals.join(', ')}.`, ...engineNotes.slice(1)],
      },
    ];
  } finally {
    await Promise.all(brokers.map((b) => b.stop()));
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
}

if (process.env.TRIBUTARY_WS_LOADGEN) {
  loadgen().catch((err) => {
    process.stderr.write(`load generator: ${err.stack ?? err}\n`);
    process.exit(1);
  });
}
