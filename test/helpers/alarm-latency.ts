// Shared by test/integration/uplink-lanes.test.ts and bench/uplink.bench.ts: alarm latency while a
// telemetry backlog drains under a bandwidth cap. A backlog is stored at the edge while no uplink
// runs (a link that was down), the edge restarts with the uplink on and a cap, and while the
// telemetry drains, alarms are produced at the edge with kafkajs (acks all) at a fixed interval. A
// kafkajs consumer on the target (a client nobody here wrote) notes when each alarm arrives there:
// latency = arrival − the moment just before the edge was asked to store it (edge fsync, uplink,
// target fsync and the consumer's fetch included — an overestimate of the uplink's share).
import kafkajs from 'kafkajs';
import { performance } from 'node:perf_hooks';
import { eventually, sh, startBroker, type BrokerProcess } from './index.js';
import { metrics, sum } from './uplink.js';

const { Kafka, logLevel } = kafkajs;
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface AlarmRun {
  /** Latency of each measured alarm in ms, by alarm index (the warm-up alarm before them is not measured). */
  latenciesMs: number[];
  p50: number;
  p99: number;
  max: number;
  /** Telemetry records the target had acknowledged when the first and the last alarm arrived (of `telemetryRecords`). */
  telemetryAtFirst: number;
  telemetryAtLast: number;
  telemetryRecords: number;
  /** Every alarm produced, in order (the warm-up first): what the target must hold. */
  alarmValues: string[];
}

export function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

/** Stores `records` telemetry records per partition (of `valueBytes`) at `dataDir`, topics telemetry (`partitions`) and alarms (1) created; the process is stopped after. */
export async function storeBacklog(t: Teardown, dataDir: string, o: { partitions: number; records: number; valueBytes: number }): Promise<void> {
  const loader = await startBroker(t, { dataDir, args: ['--set', 'broker.defaultPartitions=1'] });
  for (const [name, partitions] of [['telemetry', o.partitions], ['alarms', 1]] as const) {
    const r = await fetch(`http://${loader.listeners.http}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions }) });
    if (r.status !== 200) throw new Error(`create ${name}: ${r.status} ${await r.text()}`);
  }
  for (let p = 0; p < o.partitions; p++) {
    const values = Array.from({ length: o.records }, (_, i) => `t-${p}-${i}-`.padEnd(o.valueBytes, 'x'));
    const r = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', 'telemetry', '-p', String(p), '-X', 'acks=all', '-X', 'batch.num.messages=50'], values.join('\n') + '\n');
    if (r.code !== 0) throw new Error(`kcat load failed: ${r.stderr}`);
  }
  if ((await loader.stop()) !== 0) throw new Error('the loader did not stop cleanly');
}

/** Edge args for an uplink of telemetry and alarms toward `target`, with `extra` appended. */
export function laneArgs(site: string, target: string, extra: string[]): string[] {
  // compression=none: single alarms go re-encoded, and the reader here is kafkajs, which has no lz4
  // codec of its own (uplink.compression's default); the lane's latency is what is measured.
  return ['--set', `uplink.site=${site}`, '--set', `uplink.bootstrap=${target}`, '--set', 'uplink.topics=telemetry,alarms', '--set', 'uplink.topicScanIntervalMs=100', '--set', 'broker.defaultPartitions=1', '--set', 'uplink.compression=none', ...extra];
}

/** Runs the edge at `dataDir` with `args`, produces `alarms` alarms every `intervalMs` while the telemetry drains, and measures each one's arrival at the target. */
export async function alarmLatency(t: Teardown, dataDir: string, target: BrokerProcess, site: string, args: string[], o: { alarms: number; intervalMs: number; telemetryRecords: number }): Promise<AlarmRun> {
  const edge = await startBroker(t, { dataDir, args });
  // The drain is under way before the first alarm.
  await eventually(async () => (sum(await metrics(edge), 'tributary_uplink_records_sent_total', 'topic="telemetry"') > 0 ? true : Promise.reject(new Error('telemetry not draining yet'))), 30_000, 20);
  const central = new Kafka({ clientId: 'alarm-latency', brokers: [target.listeners.kafka!], logLevel: logLevel.NOTHING });
  const admin = central.admin();
  await admin.connect();
  await eventually(async () => ((await admin.listTopics()).includes(`${site}.alarms`) ? true : Promise.reject(new Error('no target alarms topic yet'))), 20_000, 50);
  await admin.disconnect();
  const sentAt = new Map<number, number>();
  const latenciesMs: number[] = [];
  const consumer = central.consumer({ groupId: `alarm-latency-${Date.now()}`, maxWaitTimeInMs: 50 });
  await consumer.connect();
  t.teardown(() => consumer.disconnect());
  await consumer.subscribe({ topic: `${site}.alarms`, fromBeginning: true });
  let arrived = 0;
  let telemetryAtFirst = -1;
  await consumer.run({
    eachMessage: async ({ message }) => {
      const now = performance.now();
      const i = Number(/^alarm-(\d+)-/.exec(message.value!.toString())?.[1]);
      if (sentAt.has(i) && latenciesMs[i] === undefined) {
        latenciesMs[i] = now - sentAt.get(i)!;
        arrived++;
      }
    },
  });
  const producer = new Kafka({ clientId: 'alarm-producer', brokers: [edge.listeners.kafka!], logLevel: logLevel.NOTHING }).producer({ allowAutoTopicCreation: false });
  await producer.connect();
  t.teardown(() => producer.disconnect());
  // A warm-up alarm first, not measured: kafkajs's first send to a topic also fetches its metadata.
  const warmUp = `alarm-warmup-${'a'.repeat(100)}`;
  await producer.send({ topic: 'alarms', acks: -1, messages: [{ value: warmUp, partition: 0 }] });
  const alarmValues: string[] = [warmUp];
  for (let i = 0; i < o.alarms; i++) {
    const value = `alarm-${i}-${'a'.repeat(100)}`;
    sentAt.set(i, performance.now());
    await producer.send({ topic: 'alarms', acks: -1, messages: [{ value, partition: 0 }] });
    alarmValues.push(value);
    if (i === 0) telemetryAtFirst = sum(await metrics(edge), 'tributary_uplink_records_sent_total', 'topic="telemetry"');
    await new Promise((r) => setTimeout(r, o.intervalMs));
  }
  await eventually(() => (arrived >= o.alarms ? true : Promise.reject(new Error(`${arrived} of ${o.alarms} alarms at the target`))), 30_000, 20);
  const telemetryAtLast = sum(await metrics(edge), 'tributary_uplink_records_sent_total', 'topic="telemetry"');
  await consumer.disconnect();
  await producer.disconnect();
  await edge.stop();
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return { latenciesMs, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1], telemetryAtFirst, telemetryAtLast, telemetryRecords: o.telemetryRecords, alarmValues };
}
