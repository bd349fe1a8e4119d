// Purpose: a partition fenced in transactions mode recovers without a restart
// (uplink.fencedRecheckMs; host/sync/fence.ts, docs/uplink.md "Fenced, then re-checked"): two real
// processes, an edge and librdkafka 2.0.2's mock cluster (the only target here with a transaction
// coordinator). The fence is made with the mock's error injection: an EndTxn refused
// INVALID_PRODUCER_EPOCH sends the link to re-initialise, and that InitProducerId (KIP-360, the
// process's own id and epoch) is refused INVALID_PRODUCER_EPOCH too — what a coordinator answers
// when a newer epoch exists — so the producer takes itself as fenced. Nobody else forwards, so the
// committed checkpoint does not move: after fencedRecheckMs the partition re-initialises and resumes
// from the target, and kcat (read_committed) reads every acknowledged record once, in order. With
// fencedRecheckMs=0 (the rule before: blocked until restart) the same fault leaves it blocked.
import t, { type Test } from 'tap';
import { eventually, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatReadAll, metrics, sh, startMockCluster, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { ERRORS } from '../../host/errors/index.js';

const SITE = 'edgefence';
const TOPIC = 'plant.fence';
const TARGET = `${SITE}.${TOPIC}`;
const N = 1200;
const READ_COMMITTED = ['-X', 'isolation.level=read_committed'];
const API_INIT_PRODUCER_ID = 22;
const API_END_TXN = 26;

const forwarded = async (edge: BrokerProcess) => sum(await metrics(edge), 'tributary_uplink_records_sent_total', `topic="${TOPIC}"`);
const fenceEvents = async (edge: BrokerProcess, event: string) => sum(await metrics(edge), 'tributary_uplink_fence_events_total', `event="${event}"`);

/** An edge holding N acknowledged records, draining them slowly in transactions mode into a fresh mock; fenced mid-transfer. */
async function fencedEdge(t: Test, recheckMs: number) {
  const mock = await startMockCluster(t, await tempDir(t));
  const dir = await tempDir(t);
  const loader = await startBroker(t, { dataDir: dir, args: ['--set', 'broker.defaultPartitions=1'] });
  const expected = Array.from({ length: N }, (_, i) => `f-${i}-${'w'.repeat(100)}`);
  const r = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', TOPIC, '-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=10'], expected.join('\n') + '\n');
  t.equal(r.code, 0, `${N} records acknowledged by the edge (kcat, acks=all)`);
  t.equal(await loader.stop(), 0);
  const edge = await startBroker(t, {
    dataDir: dir,
    args: [
      '--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${mock.bootstrap}`, '--set', `uplink.topics=${TOPIC}`,
      '--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=100', '--set', 'uplink.reconnectBackoffMs=50', '--set', 'uplink.reconnectBackoffMaxMs=500',
      '--set', 'uplink.readBytesMax=4096', '--set', 'uplink.rawBatchRecordsMin=5',
      // Slow enough (~5 s for the backlog) that the fence lands mid-transfer.
      '--set', 'uplink.bandwidthBytesPerSec=30000', '--set', 'uplink.bandwidthBurstBytes=8192',
      '--set', `uplink.fencedRecheckMs=${recheckMs}`, '--set', 'broker.defaultPartitions=1',
    ],
  });
  await eventually(async () => ((await forwarded(edge)) >= 150 ? true : Promise.reject(new Error('not yet'))), 30_000, 20);
  // The next InitProducerId is refused as a coordinator refuses a stale epoch; the next EndTxn makes the link re-initialise.
  await mock.pushErrors(API_INIT_PRODUCER_ID, ERRORS.INVALID_PRODUCER_EPOCH.kafka, 1);
  await mock.pushErrors(API_END_TXN, ERRORS.INVALID_PRODUCER_EPOCH.kafka, 1);
  const fencedLine = await eventually(async () => edge.logs.find((l) => typeof l.msg === 'string' && /fenced: .*fenced by a newer producer/.test(l.msg)) ?? Promise.reject(new Error('not fenced yet')), 30_000, 50);
  const atFence = await forwarded(edge);
  t.ok(atFence < N, `fenced mid-transfer (${atFence} of ${N} forwarded): ${String(fencedLine.msg)}`);
  t.equal(await fenceEvents(edge, 'fenced'), 1, 'tributary_uplink_fence_events_total{event="fenced"} 1');
  return { mock, edge, expected, atFence };
}

if (uplinkToolsPresent(t, ['kcat', 'mock'])) {
  t.test('fenced mid-transfer, nobody else forwarding: re-initialised after uplink.fencedRecheckMs, every record once, in order', { timeout: 90_000 }, async (t) => {
    const recheckMs = 2000;
    const { mock, edge, expected, atFence } = await fencedEdge(t, recheckMs);
    const fencedAt = Date.now();
    const blocked = await eventually(async () => edge.logs.find((l) => l.msg === 'uplink partition blocked' && /looked at again in/.test(String(l.err))) ?? Promise.reject(new Error('not blocked yet')), 10_000, 50);
    t.match(String(blocked.err), /fenced by a newer producer.*looked at again in \d+ s \(uplink\.fencedRecheckMs\)/, 'the partition is blocked with the fence and when it is looked at again');
    const reinit = await eventually(async () => edge.logs.find((l) => typeof l.msg === 'string' && /re-initialising as at start/.test(l.msg)) ?? Promise.reject(new Error('not yet')), 30_000, 50);
    const waited = Date.now() - fencedAt;
    t.ok(waited >= recheckMs - 300, `re-initialised after the re-check delay (${waited} ms after the fence was seen; fencedRecheckMs ${recheckMs}): ${String(reinit.msg)}`);
    t.equal(await fenceEvents(edge, 'reinitialised'), 1, 'counted: tributary_uplink_fence_events_total{event="reinitialised"} 1');
    await eventually(async () => ((await kcatReadAll(mock.bootstrap, TARGET, READ_COMMITTED).catch(() => [])).length >= N ? true : Promise.reject(new Error('not yet'))), 45_000, 300);
    await new Promise((r) => setTimeout(r, 500));
    const all = await kcatReadAll(mock.bootstrap, TARGET, READ_COMMITTED);
    const v = verdict(all, { site: SITE, topic: TOPIC, partition: 0 }, expected);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue, withoutOrigin: v.withoutOrigin }, { found: N, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0, withoutOrigin: 0 }, `${v.found} records in the target, exactly once, in order (kcat, read_committed)`);
    t.equal(all.length, N, `the target holds exactly ${N} records`);
    const resumes = edge.logs.filter((l) => typeof l.msg === 'string' && /exactly-once by transactions/.test(l.msg));
    t.ok(resumes.length >= 2, `resumed from the target after the re-initialisation (${resumes.length} resumes logged)`);
    t.comment(`FAULT MATRIX | transactions mode, fenced mid-transfer (InitProducerId refused INVALID_PRODUCER_EPOCH after an EndTxn refusal, mock injection), nobody else forwarding | fenced at ${atFence} forwarded, re-initialised ${waited} ms later | acknowledged ${N}, in target ${v.found}, duplicated ${v.duplicated.length}, missing ${v.lost.length}, reordered ${v.reordered}`);
  });

  t.test('uplink.fencedRecheckMs=0: the same fence leaves the partition blocked (until the node restarts)', { timeout: 60_000 }, async (t) => {
    const { mock, edge, atFence } = await fencedEdge(t, 0);
    await new Promise((r) => setTimeout(r, 4000));
    t.equal(await forwarded(edge), atFence, `nothing more forwarded in 4 s (${atFence})`);
    t.equal(await fenceEvents(edge, 'reinitialised'), 0, 'never re-initialised');
    t.ok(edge.logs.some((l) => l.msg === 'uplink partition blocked' && /blocked until the node restarts \(uplink\.fencedRecheckMs=0\)/.test(String(l.err))), 'the reason says it stays blocked until a restart');
    t.ok((await kcatReadAll(mock.bootstrap, TARGET, READ_COMMITTED)).length < N, 'the target lacks the rest');
  });
}
