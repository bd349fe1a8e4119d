// Purpose: the uplink's byte budget (uplink.backlogBytesMax) and its on-full policies, between two
// real Tributary processes, with the target down while the backlog builds (the port is reserved,
// nothing listens on it, then the target is started on it).
//   block        appends are admitted while the link's unforwarded bytes stay within the budget
//                and the one that would pass it is refused with the error table's
//                UPLINK_BACKLOG_FULL (Kafka KAFKA_STORAGE_ERROR through kafkajs, HTTP 507); once
//                the target is up everything acknowledged reaches it once, in order (kcat), and
//                appends are admitted again
//   drop-oldest  every append is admitted; the oldest unforwarded records are given up, counted
//                (tributary_uplink_dropped_records_total) and logged with their offsets; the target
//                holds exactly the records that were not dropped, once, in order
import t, { type Test } from 'tap';
import kafkajs from 'kafkajs';
import { eventually, haveCommand, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { FAST_LINK_SETS, kcatReadAll, metrics, sh, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { freePort } from '../helpers/cluster.js';

const { Kafka, logLevel } = kafkajs;
const SITE = 'edge1';
const BUDGET = 20_000;
const VALUE_BYTES = 1000;

/** An edge whose uplink points at `port` (nothing listens there yet), topic `telemetry` created and linked. */
async function edgeWithBudget(t: Test, port: number, policy: string): Promise<BrokerProcess> {
  const edge = await startBroker(t, {
    dataDir: await tempDir(t),
    args: [
      ...['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=127.0.0.1:${port}`, '--set', 'uplink.topics=telemetry'],
      ...['--set', `uplink.backlogBytesMax=${BUDGET}`, '--set', `uplink.onFullTopics=telemetry=${policy}`],
      ...FAST_LINK_SETS,
      ...['--set', 'broker.defaultPartitions=1'],
    ],
  });
  const created = await fetch(`http://${edge.listeners.http}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'telemetry', partitions: 1 }) });
  t.equal(created.status, 200, 'topic telemetry created at the edge');
  // The link's loop exists once its lag gauge is exported: from then on its appends are counted.
  await eventually(async () => /tributary_uplink_lag_records\{[^}]*topic="telemetry"/.test(await metrics(edge)), 10_000, 50);
  return edge;
}

function producerFor(edge: BrokerProcess) {
  const kafka = new Kafka({ clientId: 'budget-test', brokers: [edge.listeners.kafka!], logLevel: logLevel.NOTHING, retry: { retries: 0 } });
  return kafka.producer({ allowAutoTopicCreation: false, retry: { retries: 0 } });
}

const valueOf = (i: number) => `r-${String(i).padStart(4, '0')}-${'x'.repeat(VALUE_BYTES - 7)}`;

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('uplink budget, block: the append that would pass the budget is refused; nothing acknowledged is lost', async (t) => {
    const port = await freePort();
    const edge = await edgeWithBudget(t, port, 'block');
    const producer = producerFor(edge);
    await producer.connect();
    t.teardown(() => producer.disconnect());
    const accepted: string[] = [];
    let refusal: { type?: string; code?: number } | null = null;
    for (let i = 0; i < 100 && !refusal; i++) {
      try {
        await producer.send({ topic: 'telemetry', acks: -1, messages: [{ value: valueOf(i), partition: 0 }] });
        accepted.push(valueOf(i));
      } catch (err) {
        const e = err as { type?: string; code?: number; cause?: { type?: string; code?: number } };
        refusal = e.type === 'KAFKA_STORAGE_ERROR' ? e : (e.cause ?? e);
      }
    }
    t.equal(refusal?.type, 'KAFKA_STORAGE_ERROR', 'kafkajs: the refused produce carries KAFKA_STORAGE_ERROR (code 56, retriable: a Kafka producer is held back)');
    const k = accepted.length;
    const backlog = sum(await metrics(edge), 'tributary_uplink_backlog_bytes');
    const batchBytes = backlog / k;
    t.ok(k >= 2 && Number.isInteger(batchBytes), `${k} appends admitted, ${backlog} bytes not yet forwarded (${batchBytes} bytes per stored batch)`);
    t.ok(backlog <= BUDGET && backlog + batchBytes > BUDGET, `boundary: ${backlog} ≤ ${BUDGET} < ${backlog} + ${batchBytes} (the refused append)`);
    const http = await fetch(`http://${edge.listeners.http}/topics/telemetry/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ value: valueOf(999), partition: 0 }]) });
    const body = await http.text();
    t.equal(http.status, 507, `HTTP produce refused with 507: ${body}`);
    t.match(body, /UPLINK_BACKLOG_FULL|backlogBytesMax/, 'the answer names the limit');
    if (haveCommand('mosquitto_pub')) {
      const mqtt = await sh('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(edge.port('mqtt')), '-V', '5', '-q', '1', '-t', 'telemetry/dev1', '-m', valueOf(998)]);
      t.match(mqtt.stderr + mqtt.stdout, /Quota exceeded/, 'MQTT 5 QoS 1 publish answered PUBACK 0x97 quota exceeded (mosquitto_pub), the connection kept');
    } else if (process.env.CI === 'true') t.fail('mosquitto_pub missing in CI (Debian package mosquitto-clients)');
    else t.comment('mosquitto_pub not installed: the MQTT refusal is not checked');
    t.equal(sum(await metrics(edge), 'tributary_uplink_refused_appends_total'), haveCommand('mosquitto_pub') ? 3 : 2, 'every refusal counted (Kafka, HTTP, MQTT)');
    t.equal(edge.logs.filter((l) => l.msg === 'uplink byte budget full: refusing appends (UPLINK_BACKLOG_FULL) until the link drains').length, 1, 'the full spell is logged once');

    // The target comes up on the reserved port: the backlog drains, each record once, in order.
    const target = await startBroker(t, { dataDir: await tempDir(t), args: ['--kafka-port', String(port)] });
    await eventually(async () => sum(await metrics(edge), 'tributary_uplink_records_sent_total') >= k, 30_000, 100);
    const v = verdict(await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`), { site: SITE, topic: 'telemetry', partition: 0 }, accepted);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { found: k, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, `every acknowledged record (${k}) in the target once, in order`);
    await eventually(async () => sum(await metrics(edge), 'tributary_uplink_backlog_bytes') === 0, 10_000, 100);
    await producer.send({ topic: 'telemetry', acks: -1, messages: [{ value: valueOf(k), partition: 0 }] });
    t.pass('after the drain an append is admitted again');
  });

  t.test('uplink budget, drop-oldest: every append admitted, the oldest unforwarded records dropped, counted and logged', async (t) => {
    const port = await freePort();
    const edge = await edgeWithBudget(t, port, 'drop-oldest');
    const producer = producerFor(edge);
    await producer.connect();
    t.teardown(() => producer.disconnect());
    const n = 60;
    const values = Array.from({ length: n }, (_, i) => valueOf(i));
    for (const value of values) await producer.send({ topic: 'telemetry', acks: -1, messages: [{ value, partition: 0 }] });
    t.pass(`${n} appends of ~${VALUE_BYTES} bytes admitted against a budget of ${BUDGET} bytes`);
    const backlog = sum(await metrics(edge), 'tributary_uplink_backlog_bytes');
    t.ok(backlog > 0 && backlog <= BUDGET, `the link's unforwarded bytes stay within the budget: ${backlog}`);

    const target = await startBroker(t, { dataDir: await tempDir(t), args: ['--kafka-port', String(port)] });
    const m = await eventually(async () => {
      const text = await metrics(edge);
      return sum(text, 'tributary_uplink_dropped_records_total') + sum(text, 'tributary_uplink_records_sent_total') >= n ? text : Promise.reject(new Error('not drained yet'));
    }, 30_000, 100);
    const dropped = sum(m, 'tributary_uplink_dropped_records_total', 'policy="drop-oldest"');
    const sent = sum(m, 'tributary_uplink_records_sent_total');
    t.ok(dropped > 0 && dropped + sent === n, `dropped ${dropped} + forwarded ${sent} = ${n}`);
    const drops = edge.logs.filter((l) => l.msg === 'uplink drop: source records given up by the on-full policy (not forwarded)');
    t.ok(drops.length >= 1, 'the drop is logged');
    t.same(drops.map((l) => [l.fromOffset, l.toOffset]), [[0, dropped]], `the log names the offsets given up: [0, ${dropped})`);
    // Bytes too (observability): each dropped record is one stored batch of its ~1000-byte value plus framing.
    const droppedBytes = sum(m, 'tributary_uplink_dropped_bytes_total', 'policy="drop-oldest"');
    t.equal(droppedBytes, drops.reduce((n, l) => n + Number(l.bytes), 0), `dropped bytes in /metrics (${droppedBytes}) = the log lines' bytes`);
    t.ok(droppedBytes >= dropped * VALUE_BYTES && droppedBytes <= dropped * (VALUE_BYTES + 100), `${droppedBytes} bytes for ${dropped} records of ${VALUE_BYTES} bytes each, stored one per batch`);
    const records = await kcatReadAll(target.listeners.kafka!, `${SITE}.telemetry`);
    // The target holds exactly source offsets dropped..n-1: the expected list marks the dropped ones as absent on purpose.
    const v = verdict(records, { site: SITE, topic: 'telemetry', partition: 0 }, values);
    t.same({ found: v.found, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { found: n - dropped, duplicated: 0, reordered: 0, wrongValue: 0 }, 'the kept records once each, in order');
    t.same(v.lost, Array.from({ length: dropped }, (_, i) => i), 'the only records missing from the target are the counted, logged drops (the oldest)');
  });
}
