// Schemas (issue 15): what ingest validation costs.
//   1. per record, in process: the validator's check of a 10-field sensor reading (JSON Schema
//      via ajv; Avro in the Confluent wire format via avsc), and the Kafka path's decode + check
//      of a 100-record batch, next to the batch decode alone;
//   2. MQTT QoS 1 fan-in through a real broker process: the same publishers into three topics
//      in turn — validation off, JSON Schema (reject), Avro (reject) — interleaved over the
//      repetitions, so the three columns share the machine's state; target ≤ 15 % loss;
//   3. registry lookups/s over HTTP (GET /schemas/ids/{id} as a deserializer's cache miss does,
//      POST /subjects/{s} as a serializer's), keep-alive, 16 concurrent.
//
// Env: TRIBUTARY_BENCH_QUICK=1 (or `-- schemas --quick`) short cells; BENCH_SCHEMAS_CELL_MS,
// BENCH_SCHEMAS_REPS, BENCH_SCHEMAS_PUBLISHERS, BENCH_SCHEMAS_WINDOW.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { connect, type Socket } from 'node:net';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { Broker } from '../host/broker/broker.js';
import { encodeBatch, decodeBatches } from '../host/core/index.js';
import { silentLogger } from '../host/logging.js';
import { MetricsRegistry } from '../host/metrics/registry.js';
import { SchemaRegistry } from '../host/schemas/registry.js';
import { IngestValidator } from '../host/schemas/validate.js';
import { validateSchemaRegistryOptions } from '../host/schemas/options.js';
import { defaultTopicConfig } from '../host/broker/topic-config.js';
import { median, type Table } from './table.js';
import avro from 'avsc';

export const subject = 'schemas';
export const order = 75;

const QUICK = process.env.TRIBUTARY_BENCH_QUICK === '1';
const CELL_MS = Number(process.env.BENCH_SCHEMAS_CELL_MS ?? (QUICK ? 1500 : 4000));
const REPS = Number(process.env.BENCH_SCHEMAS_REPS ?? (QUICK ? 1 : 3));
const PUBLISHERS = Number(process.env.BENCH_SCHEMAS_PUBLISHERS ?? 8);
const WINDOW = Number(process.env.BENCH_SCHEMAS_WINDOW ?? 64);

/** A 10-field sensor reading, the example. */
const READING = { device: 'boiler-17', site: 'plant-north', seq: 123456, ts: 1764720000000, temperature: 71.25, humidity: 40.5, pressure: 1013.2, battery: 3.71, ok: true, status: 'running' };
const JSON_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: Object.keys(READING),
  properties: {
    device: { type: 'string', maxLength: 64 },
    site: { type: 'string', maxLength: 64 },
    seq: { type: 'integer', minimum: 0 },
    ts: { type: 'integer', minimum: 0 },
    temperature: { type: 'number', minimum: -100, maximum: 300 },
    humidity: { type: 'number', minimum: 0, maximum: 100 },
    pressure: { type: 'number' },
    battery: { type: 'number' },
    ok: { type: 'boolean' },
    status: { enum: ['running', 'idle', 'fault'] },
  },
};
const AVRO_SCHEMA = {
  type: 'record',
  name: 'Reading',
  namespace: 'io.tributary.bench',
  fields: [
    { name: 'device', type: 'string' },
    { name: 'site', type: 'string' },
    { name: 'seq', type: 'long' },
    { name: 'ts', type: 'long' },
    { name: 'temperature', type: 'double' },
    { name: 'humidity', type: 'double' },
    { name: 'pressure', type: 'double' },
    { name: 'battery', type: 'double' },
    { name: 'ok', type: 'boolean' },
    { name: 'status', type: { type: 'enum', name: 'Status', symbols: ['running', 'idle', 'fault'] } },
  ],
};

function wire(id: number, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(id, 1);
  body.copy(out, 5);
  return out;
}

const avroPayload = (id: number) => wire(id, avro.Type.forSchema(AVRO_SCHEMA as avro.Schema).toBuffer(READING));
const jsonPayload = () => Buffer.from(JSON.stringify(READING));

/** ns per call of fn over about CELL_MS / 4. */
function nsPer(fn: () => void): number {
  for (let i = 0; i < 2000; i++) fn(); // warm up (ajv/avsc compile paths, JIT)
  let n = 0;
  const t0 = process.hrtime.bigint();
  const deadline = performance.now() + CELL_MS / 4;
  while (performance.now() < deadline) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
  }
  return Number(process.hrtime.bigint() - t0) / n;
}

export async function perRecordTable(): Promise<Table> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-schemas-'));
  const deps = { logger: silentLogger, metrics: new MetricsRegistry() };
  const broker = await Broker.open({ dataDir: dir }, deps);
  try {
    const options = validateSchemaRegistryOptions({ port: -1 });
    const registry = await SchemaRegistry.open(broker, options, silentLogger);
    const j = await registry.register('j-value', { schemaType: 'JSON', schema: JSON.stringify(JSON_SCHEMA) });
    const a = await registry.register('a-value', { schema: JSON.stringify(AVRO_SCHEMA) });
    const v = new IngestValidator(registry, broker, silentLogger, deps.metrics);
    const jp = jsonPayload();
    const ap = avroPayload(a.id);
    const config = { ...defaultTopicConfig, 'schema.validation': 'reject' as const };
    const batchOf = (p: Buffer) => encodeBatch(Array.from({ length: 100 }, () => ({ key: null, value: p })));
    const jb = batchOf(jp);
    const ab = batchOf(ap);
    const ok = (x: unknown) => {
      if (x !== undefined) throw new Error(`bench payload refused: ${JSON.stringify(x)}`);
    };
    ok(v.check('j-value', jp));
    ok(v.check('a-value', ap));
    const rows = [
      ['JSON Schema (ajv), check one value', jp.length, nsPer(() => v.check('j-value', jp))],
      ['Avro (avsc), wire format, check one value', ap.length, nsPer(() => v.check('a-value', ap))],
      ['batch decode alone (100 JSON records), per record', jp.length, nsPer(() => decodeBatches(jb)) / 100],
      ['Kafka path: decode + JSON check (100 records), per record', jp.length, nsPer(() => v.checkBatches({ topic: 'j', partition: 0 }, jb, { ...config, 'schema.subject': 'j-value' })) / 100],
      ['Kafka path: decode + Avro check (100 records), per record', ap.length, nsPer(() => v.checkBatches({ topic: 'a', partition: 0 }, ab, { ...config, 'schema.subject': 'a-value' })) / 100],
    ];
    return {
      title: 'schemas: validation cost per record (in process, 10-field sensor reading)',
      columns: ['what', 'value bytes', 'ns/record'],
      rows: rows as Array<[string, number, number]>,
      notes: [`JSON ids ${j.id}, Avro id ${a.id}; each cell ≈ ${CELL_MS / 4} ms after 2000 warm-up calls.`],
    };
  } finally {
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- a broker process and a minimal MQTT 3.1.1 QoS 1 publisher ------------------------------

interface Proc {
  child: ChildProcess;
  listeners: Record<string, string>;
  port(name: string): number;
}

async function startProc(dataDir: string): Promise<Proc> {
  const mainJs = fileURLToPath(new URL('../host/main.js', import.meta.url));
  const child = spawn(process.execPath, [mainJs, 'start', '--data-dir', dataDir, '--host', '127.0.0.1', '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    // the bench's own TRIBUTARY_BENCH_* knobs are not the broker's (it refuses unknown ones)
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TRIBUTARY_BENCH'))), TRIBUTARY_LOG_LEVEL: 'warn' },
  });
  const listeners = await new Promise<Record<string, string>>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      try {
        const e = JSON.parse(line);
        if (typeof e.msg === 'string' && e.msg.startsWith('ready') && e.listeners) resolve(e.listeners);
      } catch {
        /* not a log line */
      }
    });
    child.once('exit', (code) => reject(new Error(`broker exited ${code} before ready`)));
  });
  return { child, listeners, port: (n) => Number(listeners[n].slice(listeners[n].lastIndexOf(':') + 1)) };
}

function packet(type: number, flags: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    len.push(b);
  } while (n > 0);
  return Buffer.concat([Buffer.from([(type << 4) | flags, ...len]), body]);
}

const str = (s: string) => {
  const b = Buffer.from(s);
  const out = Buffer.alloc(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
};

/** A QoS 1 publisher keeping `window` publishes in flight; counts PUBACKs. */
class Publisher {
  acked = 0;
  private sock!: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private nextId = 1;
  private running = false;
  private readonly templates: Buffer;

  constructor(
    private readonly clientId: string,
    private readonly topic: string,
    private readonly payload: Buffer,
  ) {
    this.templates = packet(3, 0x02, Buffer.concat([str(topic), Buffer.from([0, 0]), payload]));
  }

  async connect(port: number): Promise<void> {
    this.sock = connect(port, '127.0.0.1');
    this.sock.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      this.sock.once('error', reject);
      this.sock.once('data', () => resolve());
      this.sock.write(packet(1, 0, Buffer.concat([str('MQTT'), Buffer.from([4, 0x02, 0, 0]), str(this.clientId)])));
    });
    this.sock.on('data', (d) => this.onData(d));
  }

  private publishOne(): void {
    const p = Buffer.from(this.templates);
    const at = p.length - this.payload.length - 2;
    p.writeUInt16BE(this.nextId, at);
    this.nextId = this.nextId === 65535 ? 1 : this.nextId + 1;
    this.sock.write(p);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let pos = 0;
    while (this.buf.length - pos >= 4 && this.buf[pos] >> 4 === 4) {
      pos += 4;
      this.acked++;
      if (this.running) this.publishOne();
    }
    this.buf = this.buf.subarray(pos);
  }

  start(window: number): void {
    this.running = true;
    for (let i = 0; i < window; i++) this.publishOne();
  }

  stop(): void {
    this.running = false;
  }

  close(): void {
    this.sock.destroy();
  }
}

/** CPU seconds (user + system) the process has used so far (/proc/<pid>/stat, clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface FanIn {
  perS: number;
  /** Broker CPU per acknowledged message: robust to other load on a shared machine. */
  cpuUs: number;
}

async function fanIn(port: number, pid: number, topic: string, payload: Buffer, rep: number, cellMs = CELL_MS): Promise<FanIn> {
  const pubs = Array.from({ length: PUBLISHERS }, (_, i) => new Publisher(`b-${topic}-${rep}-${i}`, `${topic}/dev${i}`, payload));
  await Promise.all(pubs.map((p) => p.connect(port)));
  // a short warm-up, then the measured cell
  pubs.forEach((p) => p.start(WINDOW));
  await new Promise((r) => setTimeout(r, 300));
  const a0 = pubs.reduce((s, p) => s + p.acked, 0);
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, cellMs));
  const acked = pubs.reduce((s, p) => s + p.acked, 0) - a0;
  const cpu = cpuSeconds(pid) - c0;
  const secs = (performance.now() - t0) / 1000;
  pubs.forEach((p) => p.stop());
  await new Promise((r) => setTimeout(r, 200));
  pubs.forEach((p) => p.close());
  return { perS: acked / secs, cpuUs: (cpu / acked) * 1e6 };
}

async function fanInAndLookups(): Promise<Table[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-schemas-mqtt-'));
  const proc = await startProc(dir);
  try {
    const sr = `http://${proc.listeners.schemas}`;
    const post = async (path: string, body: unknown) => (await fetch(sr + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json();
    const j = await post('/subjects/sjson-value/versions', { schemaType: 'JSON', schema: JSON.stringify(JSON_SCHEMA) });
    const a = await post('/subjects/savro-value/versions', { schema: JSON.stringify(AVRO_SCHEMA) });
    const kafka = new Kafka({ clientId: 'bench', brokers: [`127.0.0.1:${proc.port('kafka')}`], logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const reject = [{ name: 'schema.validation', value: 'reject' }];
    await admin.createTopics({ topics: [{ topic: 'snone', numPartitions: 1 }, { topic: 'sjson', numPartitions: 1, configEntries: reject }, { topic: 'savro', numPartitions: 1, configEntries: reject }] });
    await admin.disconnect();
    const variants: Array<[string, string, Buffer]> = [
      ['none', 'snone', jsonPayload()],
      ['JSON Schema', 'sjson', jsonPayload()],
      ['Avro', 'savro', avroPayload(a.id)],
    ];
    const results = new Map<string, FanIn[]>(variants.map(([n]) => [n, []]));
    const pid = proc.child.pid!;
    // warm-up pass (JIT, first appends, ajv/avsc caches), not measured
    for (const [, topic, payload] of variants) await fanIn(proc.port('mqtt'), pid, topic, payload, -1, 500);
    for (let rep = 0; rep < REPS; rep++) {
      // the order rotates per repetition, so no variant always runs first
      for (let k = 0; k < variants.length; k++) {
        const [name, topic, payload] = variants[(k + rep) % variants.length];
        results.get(name)!.push(await fanIn(proc.port('mqtt'), pid, topic, payload, rep));
      }
    }
    // every measured publish was accepted: nothing refused, nothing dead-lettered
    const metricsText = await (await fetch(`http://127.0.0.1:${proc.port('http')}/metrics`)).text();
    const refused = metricsText.split('\n').filter((l) => l.startsWith('tributary_schema_refused_total')).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
    if (refused > 0) throw new Error(`bench payloads were refused by validation (${refused}): the bench would measure refusals`);
    const perS = (name: string) => median(results.get(name)!.map((r) => r.perS));
    const cpuUs = (name: string) => median(results.get(name)!.map((r) => r.cpuUs));
    const fan: Table = {
      title: `schemas: MQTT QoS 1 fan-in, ${PUBLISHERS} publishers × ${WINDOW} in flight, 10-field reading, flush=always (broker process)`,
      columns: ['validation', 'payload bytes', 'msgs/s (median)', 'runs msgs/s', 'broker CPU µs/msg (median)', 'CPU-bound loss vs none', 'msgs/s loss vs none'],
      rows: variants.map(([name, , payload]) => {
        const none = name === 'none';
        return [
          name,
          payload.length,
          perS(name),
          results.get(name)!.map((x) => Math.round(x.perS)).join(' / '),
          cpuUs(name),
          none ? '—' : `${((1 - cpuUs('none') / cpuUs(name)) * 100).toFixed(1)} %`,
          none ? '—' : `${(((perS('none') - perS(name)) / perS('none')) * 100).toFixed(1)} %`,
        ];
      }),
      notes: [
        `target: ≤ 15 % loss for the 10-field sensor schema. "CPU-bound loss" = 1 − (CPU/msg without validation ÷ CPU/msg with it): the throughput lost when the broker's CPU is the limit, robust to other load on a shared machine; msgs/s swings with that load.`,
        `JSON id ${j.id}, Avro id ${a.id}; ${REPS} repetition(s), variants interleaved with the order rotated; ${CELL_MS} ms per cell after a 300 ms warm-up.`,
      ],
    };

    // registry lookups/s
    const lookupCell = async (op: () => Promise<unknown>) => {
      let n = 0;
      const deadline = performance.now() + CELL_MS / 2;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (performance.now() < deadline) {
            await op();
            n++;
          }
        }),
      );
      return n / ((performance.now() - t0) / 1000);
    };
    // node:http with a keep-alive agent: on this machine undici's fetch tops out far below the server
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const { hostname, port } = new URL(sr);
    const call = (method: string, path: string, body?: string) =>
      new Promise<void>((resolve, reject) => {
        const req = http.request({ host: hostname, port, method, path, agent, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
          if (res.statusCode !== 200) reject(new Error(`${method} ${path}: ${res.statusCode}`));
          res.resume();
          res.on('end', () => resolve());
        });
        req.on('error', reject);
        req.end(body);
      });
    const lookupBody = JSON.stringify({ schema: JSON.stringify(AVRO_SCHEMA) });
    const byId = await lookupCell(() => call('GET', `/schemas/ids/${a.id}`));
    const bySchema = await lookupCell(() => call('POST', '/subjects/savro-value', lookupBody));
    agent.destroy();
    const lookups: Table = {
      title: 'schemas: registry lookups over HTTP (16 concurrent, keep-alive node:http client on the same machine)',
      columns: ['request', 'requests/s'],
      rows: [
        ['GET /schemas/ids/{id}', byId],
        ['POST /subjects/{s} (lookup by schema)', bySchema],
      ],
    };
    return [fan, lookups];
  } finally {
    proc.child.kill('SIGTERM');
    await new Promise((r) => proc.child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<Table[]> {
  return [await perRecordTable(), ...(await fanInAndLookups())];
}
