// Shared by the uplink tests: produce at the edge and read the target back with kcat (librdkafka,
// a client nobody here wrote), librdkafka's mock cluster as a second target, and a checker that
// classifies what the target holds per source partition (lost, duplicated, reordered, missing
// origin headers) instead of one boolean.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { eventually, haveCommand, sh, sleep, startBroker, tempDir, type BrokerProcess } from './index.js';

export { sh, type Ran } from './index.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}


/** Every record of a target topic, read by kcat logged in with SCRAM-SHA-512 as `user`. */
export function kcatReadScram(bootstrap: string, topic: string, user: string, password: string): Promise<TargetRecord[]> {
  return kcatReadAll(bootstrap, topic, ['-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=SCRAM-SHA-512', '-X', `sasl.username=${user}`, '-X', `sasl.password=${password}`]);
}

/** An edge of `site` whose uplink forwards `topic` to `target`, logging in with `sasl` (a config file, mode 0600: it holds the password); fast reconnects, one partition per topic. */
export async function startSaslEdge(t: Parameters<typeof startBroker>[0], site: string, target: string, topic: string, sasl: object): Promise<BrokerProcess> {
  const dir = await tempDir(t);
  const config = join(dir, 'edge.json');
  await writeFile(config, JSON.stringify({ uplink: { site, bootstrap: [target], topics: [topic], sasl, topicScanIntervalMs: 100, pollWaitMs: 200, reconnectBackoffMs: 100, reconnectBackoffMaxMs: 500 }, broker: { defaultPartitions: 1 } }), { mode: 0o600 });
  return startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', config] });
}

/** Produces one line per value to a partition with kcat (acks all); throws when kcat fails. */
export async function kcatProduce(bootstrap: string, topic: string, partition: number, values: string[], extraArgs: string[] = []): Promise<void> {
  const r = await sh('kcat', ['-P', '-b', bootstrap, '-t', topic, '-p', String(partition), '-X', 'acks=all', '-X', 'topic.request.required.acks=-1', ...extraArgs], values.join('\n') + '\n');
  if (r.code !== 0) throw new Error(`kcat produce to ${topic}-${partition} failed (${r.code}): ${r.stderr}`);
}

export interface TargetRecord {
  partition: number;
  offset: number;
  value: string;
  headers: Record<string, string>;
}

/** Every record of a target topic, read with kcat from the beginning to the end (`clientArgs`: e.g. SASL `-X` settings). */
export async function kcatReadAll(bootstrap: string, topic: string, clientArgs: string[] = []): Promise<TargetRecord[]> {
  const r = await sh('kcat', ['-C', '-b', bootstrap, ...clientArgs, '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p\t%o\t%s\t%h\n']);
  if (r.code !== 0) throw new Error(`kcat consume ${topic} failed (${r.code}): ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [p, o, value, h] = l.split('\t');
      const headers: Record<string, string> = {};
      for (const kv of (h ?? '').split(',')) {
        const i = kv.indexOf('=');
        if (i > 0) headers[kv.slice(0, i)] = kv.slice(i + 1);
      }
      return { partition: Number(p), offset: Number(o), value, headers };
    });
}

export interface Verdict {
  /** Records per source partition found in the target. */
  found: number;
  lost: number[];
  duplicated: number[];
  reordered: number;
  withoutOrigin: number;
  wrongValue: number;
}

const ORIGIN_KEYS = ['tributary.origin.site', 'tributary.origin.topic', 'tributary.origin.partition'] as const;

/**
 * The target records with the origin each one traces to. A re-encoded batch carries the origin
 * headers on every record; a raw-forwarded batch only on its last record, and a record before it
 * traces by offset arithmetic (docs/uplink.md): source offset = the next origin record's origin
 * offset − (its target offset − this record's target offset). Sound while the uplink is the only
 * writer of the target partition (true in these tests); `traced` says which records were inferred.
 */
export function traceOrigins(records: TargetRecord[]): Array<TargetRecord & { traced: boolean }> {
  const byPartition = new Map<number, TargetRecord[]>();
  for (const r of records) {
    const list = byPartition.get(r.partition) ?? [];
    list.push(r);
    byPartition.set(r.partition, list);
  }
  const out: Array<TargetRecord & { traced: boolean }> = [];
  for (const list of byPartition.values()) {
    list.sort((a, b) => a.offset - b.offset);
    const traced: Array<TargetRecord & { traced: boolean }> = [];
    let anchor: TargetRecord | null = null;
    for (let i = list.length - 1; i >= 0; i--) {
      const r = list[i];
      if (r.headers['tributary.origin.site'] !== undefined) {
        anchor = r;
        traced.push({ ...r, traced: false });
      } else if (anchor) {
        const headers: Record<string, string> = { ...r.headers };
        for (const k of ORIGIN_KEYS) headers[k] = anchor.headers[k];
        headers['tributary.origin.offset'] = String(Number(anchor.headers['tributary.origin.offset']) - (anchor.offset - r.offset));
        traced.push({ ...r, headers, traced: true });
      } else traced.push({ ...r, traced: false });
    }
    out.push(...traced.reverse());
  }
  return out;
}

/**
 * Classifies the target's records of one source partition against what the edge acknowledged:
 * `expected[i]` is the value the edge stored at source offset i. Origins are traced first
 * (traceOrigins): `withoutOrigin` counts records that trace to no origin at all.
 */
export function verdict(records: TargetRecord[], origin: { site: string; topic: string; partition: number }, expected: string[]): Verdict {
  const all = traceOrigins(records);
  const mine = all.filter((r) => r.headers['tributary.origin.site'] === origin.site && r.headers['tributary.origin.topic'] === origin.topic && r.headers['tributary.origin.partition'] === String(origin.partition));
  const seen = new Map<number, number>();
  let reordered = 0;
  let wrongValue = 0;
  let last = -1;
  for (const r of mine) {
    const o = Number(r.headers['tributary.origin.offset']);
    seen.set(o, (seen.get(o) ?? 0) + 1);
    if (o <= last) reordered++;
    last = Math.max(last, o);
    if (expected[o] !== r.value) wrongValue++;
  }
  const lost: number[] = [];
  for (let i = 0; i < expected.length; i++) if (!seen.has(i)) lost.push(i);
  const duplicated = [...seen].filter(([, n]) => n > 1).map(([o]) => o);
  return { found: mine.length, lost, duplicated, reordered, withoutOrigin: all.filter((r) => !r.headers['tributary.origin.site']).length, wrongValue };
}

/** True when kcat and /usr/bin/python3 with librdkafka are present (CI=true makes a missing one fatal). */
export function uplinkToolsPresent(t: { comment(s: string): void; pass(s: string): void; fail(s: string): void }, needs: Array<'kcat' | 'mock'>): boolean {
  const missing: string[] = [];
  if (needs.includes('kcat') && !haveCommand('kcat')) missing.push('kcat (Debian package kcat)');
  if (needs.includes('mock') && !haveCommand('/usr/bin/python3')) missing.push('/usr/bin/python3 (with librdkafka1)');
  if (missing.length === 0) return true;
  if (process.env.CI === 'true') t.fail(`missing in CI: ${missing.join(', ')}`);
  else {
    t.comment(`skipping: ${missing.join(', ')} not installed`);
    t.pass('skipped: tools missing');
  }
  return false;
}

// librdkafka's mock cluster, created through its C API with ctypes (no confluent_kafka needed):
// rd_kafka_mock_cluster_new(rk, brokers) then rd_kafka_mock_cluster_bootstraps(). The process
// prints the bootstrap list and lives until its stdin closes.
const MOCK_SCRIPT = `
import ctypes, sys
lib = ctypes.CDLL('librdkafka.so.1')
lib.rd_kafka_conf_new.restype = ctypes.c_void_p
lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
lib.rd_kafka_new.restype = ctypes.c_void_p
lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
err = ctypes.create_string_buffer(512)
conf = lib.rd_kafka_conf_new()
lib.rd_kafka_conf_set(conf, b'log_level', b'0', err, 512)
rk = lib.rd_kafka_new(1, conf, err, 512)
mc = lib.rd_kafka_mock_cluster_new(rk, int(sys.argv[1]))
print(lib.rd_kafka_mock_cluster_bootstraps(mc).decode(), flush=True)
lib.rd_kafka_mock_partition_set_leader.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
# Commands, one per line: "errors <api key> <error code> <count>" makes the next <count> requests
# of that API (on any broker) fail with that code (rd_kafka_mock_push_request_errors);
# "leader <topic> <partition> <broker id>" moves a partition's leader
# (rd_kafka_mock_partition_set_leader); "rtt <broker id> <ms>" delays that broker's answers (the
# requests are still handled: answers withheld, as on a link blackholed after the writes);
# "down <broker id>" / "up <broker id>" closes its connections and refuses new ones, then lets
# them in again (rd_kafka_mock_broker_set_down/up); "coordinator <type> <key> <broker id>" moves
# the group or transaction coordinator of a key (rd_kafka_mock_coordinator_set).
lib.rd_kafka_mock_broker_set_rtt.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int]
lib.rd_kafka_mock_broker_set_down.argtypes = [ctypes.c_void_p, ctypes.c_int32]
lib.rd_kafka_mock_broker_set_up.argtypes = [ctypes.c_void_p, ctypes.c_int32]
lib.rd_kafka_mock_coordinator_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int32]
for line in sys.stdin:
    parts = line.split()
    if len(parts) == 3 and parts[0] == 'rtt':
        rc = lib.rd_kafka_mock_broker_set_rtt(mc, int(parts[1]), int(parts[2]))
        print('ok' if rc == 0 else 'error %d' % rc, flush=True)
        continue
    if len(parts) == 2 and parts[0] in ('down', 'up'):
        rc = (lib.rd_kafka_mock_broker_set_down if parts[0] == 'down' else lib.rd_kafka_mock_broker_set_up)(mc, int(parts[1]))
        print('ok' if rc == 0 else 'error %d' % rc, flush=True)
        continue
    if len(parts) == 4 and parts[0] == 'coordinator':
        rc = lib.rd_kafka_mock_coordinator_set(mc, parts[1].encode(), parts[2].encode(), int(parts[3]))
        print('ok' if rc == 0 else 'error %d' % rc, flush=True)
        continue
    if len(parts) == 4 and parts[0] == 'leader':
        rc = lib.rd_kafka_mock_partition_set_leader(mc, parts[1].encode(), int(parts[2]), int(parts[3]))
        print('ok' if rc == 0 else 'error %d' % rc, flush=True)
        continue
    if len(parts) == 4 and parts[0] == 'errors':
        key, code, cnt = int(parts[1]), int(parts[2]), int(parts[3])
        lib.rd_kafka_mock_push_request_errors(ctypes.c_void_p(mc), ctypes.c_int16(key), ctypes.c_size_t(cnt), *([ctypes.c_int(code)] * cnt))
        print('ok', flush=True)
`;

export interface MockCluster {
  bootstrap: string;
  child: ChildProcess;
  /** The next `count` requests of API `apiKey` fail with Kafka error `code`. */
  pushErrors(apiKey: number, code: number, count: number): Promise<void>;
  /** Moves the leader of `topic`/`partition` to broker `brokerId`. */
  setLeader(topic: string, partition: number, brokerId: number): Promise<void>;
  /** One mock command (see the script): `rtt <id> <ms>`, `down <id>`, `up <id>`, `coordinator <type> <key> <id>`. */
  command(line: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startMockCluster(t: Teardown, dir: string, brokers = 3): Promise<MockCluster> {
  const script = join(dir, 'mock-cluster.py');
  await writeFile(script, MOCK_SCRIPT);
  const child = spawn('/usr/bin/python3', [script, String(brokers)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    child.stdin!.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  t.teardown(stop);
  const rl = createInterface({ input: child.stdout! });
  const lines: Array<(line: string) => void> = [];
  rl.on('line', (line) => lines.shift()?.(line.trim()));
  const nextLine = (what: string) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the mock cluster did not answer (${what}) within 10 s`)), 10_000);
      lines.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
      void exited.then(() => reject(new Error(`the mock cluster exited (${what})`)));
    });
  const bootstrap = await nextLine('bootstrap list');
  const pushErrors = async (apiKey: number, code: number, count: number) => {
    const answer = nextLine('push errors');
    child.stdin!.write(`errors ${apiKey} ${code} ${count}\n`);
    if ((await answer) !== 'ok') throw new Error('the mock cluster refused the error injection');
  };
  const setLeader = async (topic: string, partition: number, brokerId: number) => {
    const answer = nextLine('set leader');
    child.stdin!.write(`leader ${topic} ${partition} ${brokerId}\n`);
    const a = await answer;
    if (a !== 'ok') throw new Error(`the mock cluster refused to move the leader: ${a}`);
  };
  const command = async (line: string) => {
    const answer = nextLine(line);
    child.stdin!.write(`${line}\n`);
    const a = await answer;
    if (a !== 'ok') throw new Error(`the mock cluster refused "${line}": ${a}`);
  };
  return { bootstrap, child, stop, pushErrors, setLeader, command };
}

/** A node's /metrics text (its HTTP listener). */
export async function metrics(edge: BrokerProcess): Promise<string> {
  return (await fetch(`http://${edge.listeners.http}/metrics`)).text();
}

/** The sum of a labelled series' samples whose labels contain `label`. */
export function sum(text: string, name: string, label = ''): number {
  let n = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\d+)$`, 'gm'))) if (m[1].includes(label)) n += Number(m[2]);
  return n;
}

/** Quick reconnects toward a target that is down, so a test's outage ends within a second or so. */
export const FAST_LINK_SETS = ['--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=200', '--set', 'uplink.reconnectBackoffMs=100', '--set', 'uplink.reconnectBackoffMaxMs=300', '--set', 'uplink.connectTimeoutMs=1000'];

/**
 * An edge forwarding `telemetry` and `alarms` (one partition each, both created and seen by the
 * uplink) toward 127.0.0.1:`port` with `sets`, and a kafkajs producer on it that never retries
 * (a refusal reaches the test as it is).
 */
export async function startPolicyEdge(t: Teardown, site: string, port: number, sets: string[], clientId: string): Promise<{ edge: BrokerProcess; producer: import('kafkajs').Producer; created: Record<string, number> }> {
  const edge = await startBroker(t, {
    dataDir: await tempDir(t),
    args: ['--set', `uplink.site=${site}`, '--set', `uplink.bootstrap=127.0.0.1:${port}`, '--set', 'uplink.topics=telemetry,alarms', ...sets, ...FAST_LINK_SETS, '--set', 'broker.defaultPartitions=1'],
  });
  const created: Record<string, number> = {};
  for (const name of ['telemetry', 'alarms']) {
    const r = await fetch(`http://${edge.listeners.http}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions: 1 }) });
    created[name] = r.status; // the HTTP status of each topic's creation, for the test to assert
    if (r.status !== 200) continue;
    await eventually(async () => new RegExp(`tributary_uplink_lag_records\\{[^}]*topic="${name}"`).test(await metrics(edge)), 10_000, 50);
  }
  const producer = new kafkajs.Kafka({ clientId, brokers: [edge.listeners.kafka!], logLevel: kafkajs.logLevel.NOTHING, retry: { retries: 0 } }).producer({ allowAutoTopicCreation: false, retry: { retries: 0 } });
  await producer.connect();
  t.teardown(() => producer.disconnect());
  return { edge, producer, created };
}

/**
 * Produces `perRound` records to partition 0 of `topic` on `edge` every `gapMs` for `forMs` with an
 * idempotent kafkajs producer (acks all, one request in flight); returns the values acknowledged,
 * in order. Traffic that spans several SASL session lifetimes of the edge's link.
 */
export async function produceRounds(t: { teardown(f: () => unknown): void }, edge: BrokerProcess, topic: string, forMs: number, perRound = 5, gapMs = 150): Promise<string[]> {
  const producer = new kafkajs.Kafka({ clientId: `rounds-${topic}`, brokers: [edge.listeners.kafka!], logLevel: kafkajs.logLevel.NOTHING }).producer({ allowAutoTopicCreation: true, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.teardown(() => producer.disconnect());
  const acked: string[] = [];
  const until = Date.now() + forMs;
  for (let round = 0; Date.now() < until; round++) {
    const values = Array.from({ length: perRound }, (_, i) => `${topic}-${round}-${i}`);
    await producer.send({ topic, acks: -1, messages: values.map((value) => ({ value, partition: 0 })) });
    acked.push(...values);
    await sleep(gapMs);
  }
  return acked;
}
