// Purpose: issue 12's "days-long outage simulated by retention and producer-state expiry" in one
// test, between a real edge process and librdkafka 2.0.2's mock cluster, once per exactly-once
// mode. The outage: every mock broker down (connections closed, new ones refused) while the edge
// keeps taking records, and the edge's retention (retention.ms = 3 s standing for days; on-full
// policy drop-oldest, so nothing is held back) deletes records the uplink has not forwarded. The
// expiry: while the target is away its producer state is made to be forgotten — the mock's error
// injection answers the next Produce requests UNKNOWN_PRODUCER_ID (and, in transactions mode, the
// next InitProducerId too, as a coordinator that expired the transactional id) — which is what a
// Kafka target answers after days offline (the mock itself keeps producer state forever, and a
// Tributary target accepts any sequence from a producer it forgot, so neither shows expiry alone).
// When the brokers return, kcat reads the target: every record the edge acknowledged is there once,
// in order, except exactly the ones retention removed — each counted in
// tributary_uplink_gap_records_total and named by offsets in a gap log line.
import t from 'tap';
import { eventually, sleep, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatReadAll, metrics, sh, startMockCluster, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { ERRORS } from '../../host/errors/index.js';

const SITE = 'edgeexp';
const TOPIC = 'telemetry';
const TARGET = `${SITE}.${TOPIC}`;
const API_PRODUCE = 0;
const API_INIT_PRODUCER_ID = 22;
const READ_COMMITTED = ['-X', 'isolation.level=read_committed'];

const metric = async (edge: BrokerProcess, name: string) => sum(await metrics(edge), name);

async function produce(edge: BrokerProcess, values: string[]): Promise<void> {
  const r = await sh('kcat', ['-P', '-b', edge.listeners.kafka!, '-t', TOPIC, '-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=5'], values.join('\n') + '\n');
  if (r.code !== 0) throw new Error(`kcat produce failed: ${r.stderr}`);
}

const MODES = [
  // The mock checks no sequences for idempotent producers: one batch in flight (docs/uplink.md).
  { mode: 'read-back', sets: ['--set', 'uplink.exactlyOnce=read-back', '--set', 'uplink.inFlightBatchesMax=1'] },
  { mode: 'transactions', sets: [] },
] as const;

if (uplinkToolsPresent(t, ['kcat', 'mock'])) {
  for (const { mode, sets } of MODES) {
    t.test(`${mode} mode: a days-long outage (time-compressed) with the target's producer state expired: gaps counted and logged, the rest once, in order`, { timeout: 90_000 }, async (t) => {
      const mock = await startMockCluster(t, await tempDir(t));
      const edge = await startBroker(t, {
        dataDir: await tempDir(t),
        args: [
          ...['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${mock.bootstrap}`, '--set', `uplink.topics=${TOPIC}`, '--set', 'uplink.onFull=drop-oldest', ...sets],
          ...['--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=100', '--set', 'uplink.reconnectBackoffMs=100', '--set', 'uplink.reconnectBackoffMaxMs=300', '--set', 'uplink.connectTimeoutMs=1000'],
          ...['--set', 'broker.retentionCheckIntervalMs=200'],
        ],
      });
      const created = await fetch(`http://${edge.listeners.http}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: TOPIC, partitions: 1, config: { 'retention.ms': 3000, 'segment.bytes': 4096 } }) });
      t.equal(created.status, 200, 'edge topic with retention.ms=3000 and 4 KiB segments');
      const value = (i: number) => `x-${String(i).padStart(4, '0')}-${'y'.repeat(400)}`;
      const expected = Array.from({ length: 120 }, (_, i) => value(i));
      await produce(edge, expected.slice(0, 40));
      await eventually(async () => (await metric(edge, 'tributary_uplink_records_sent_total')) >= 40, 20_000, 100);
      t.pass(`40 records forwarded while the link was up (${mode} mode)`);

      for (const b of [1, 2, 3]) await mock.command(`down ${b}`);
      t.pass('the outage begins: every mock broker down');
      // While it is away the target forgets this producer (what days offline do to a Kafka target's producer state).
      await mock.pushErrors(API_PRODUCE, ERRORS.UNKNOWN_PRODUCER_ID.kafka, 2);
      if (mode === 'transactions') await mock.pushErrors(API_INIT_PRODUCER_ID, ERRORS.UNKNOWN_PRODUCER_ID.kafka, 1);
      await produce(edge, expected.slice(40, 100));
      await eventually(() => edge.logs.some((l) => l.msg === 'retention deleted segments' && Number(l.logStartOffset) > 40), 20_000, 100);
      t.pass('retention deleted unforwarded records at the edge during the outage');
      for (const b of [1, 2, 3]) await mock.command(`up ${b}`);
      await produce(edge, expected.slice(100, 120));
      t.pass('120 records acknowledged by the edge in all (the last 20 after the outage)');
      await eventually(async () => (await metric(edge, 'tributary_uplink_records_sent_total')) + (await metric(edge, 'tributary_uplink_gap_records_total')) >= 120, 45_000, 100);
      await sleep(300);
      const gaps = await metric(edge, 'tributary_uplink_gap_records_total');
      const sent = await metric(edge, 'tributary_uplink_records_sent_total');
      t.ok(gaps > 0 && gaps + sent === 120, `forwarded ${sent} + gaps ${gaps} = 120`);
      // The expiry was met and answered: read-back mode by reading back and taking a new producer id,
      // transactions mode by a fresh InitProducerId (the coordinator forgot the id) and re-initialising.
      if (mode === 'read-back') {
        const answered = edge.logs.filter((l) => l.action === 'read back, then a new producer id');
        t.ok(answered.length >= 1, `UNKNOWN_PRODUCER_ID answered by read-back and a new producer id (${answered.length} times)`);
      } else {
        const fresh = edge.logs.filter((l) => typeof l.msg === 'string' && /^uplink transactional producer .*fresh producer id .*UNKNOWN_PRODUCER_ID/.test(l.msg));
        t.ok(fresh.length >= 1, `the coordinator's forgotten id answered by a fresh producer id: ${String(fresh[0]?.msg)}`);
        const refused = edge.logs.filter((l) => l.msg === 'uplink partition retrying' && /UNKNOWN_PRODUCER_ID/.test(String(l.err)));
        t.ok(refused.length >= 1, `a transactional produce refused UNKNOWN_PRODUCER_ID, answered by re-initialising (${refused.length} times)`);
      }
      const gapLines = edge.logs.filter((l) => l.msg === 'uplink gap: source records removed by retention before they were forwarded');
      const gapOffsets = gapLines.flatMap((l) => Array.from({ length: Number(l.toOffset) - Number(l.fromOffset) }, (_, i) => Number(l.fromOffset) + i));
      t.equal(gapOffsets.length, gaps, 'every gap record is named by a gap log line (offsets)');
      const all = await kcatReadAll(mock.bootstrap, TARGET, READ_COMMITTED);
      const v = verdict(all, { site: SITE, topic: TOPIC, partition: 0 }, expected);
      t.same({ duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue, withoutOrigin: v.withoutOrigin }, { duplicated: 0, reordered: 0, wrongValue: 0, withoutOrigin: 0 }, `${v.found} records in the target, none twice, in order (kcat${mode === 'transactions' ? ', read_committed' : ''})`);
      t.same(v.lost, gapOffsets.sort((a, b) => a - b), 'the only records missing from the target are the counted, logged gaps');
      t.ok(v.lost.every((o) => o >= 40 && o < 100), 'nothing from before or after the outage is missing');
      t.comment(`FAULT MATRIX | ${mode} mode: days-long outage (mock brokers down, edge retention 3 s) + target producer state expired (UNKNOWN_PRODUCER_ID injected) | acknowledged 120, in target ${v.found}, gaps ${gaps} (logged), duplicated ${v.duplicated.length}, reordered ${v.reordered}`);
    });
  }
}
