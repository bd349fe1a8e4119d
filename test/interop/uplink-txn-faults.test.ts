// Purpose: the uplink in transactions mode (each batch one transaction with its checkpoint record,
// host/sync/uplink.ts + host/kafka/client/transactions.ts) through the faults of issue 12's matrix,
// over real sockets between a real edge process and librdkafka 2.0.2's mock cluster (the only
// target here with a transaction coordinator: Tributary refuses transactional ids). After each
// fault the target is read back by kcat with isolation.level=read_committed and checked per source
// partition against what the edge acknowledged: every record once, in order, none missing.
//
// How each fault is made on the mock (its C API through ctypes, test/helpers/uplink.ts):
//   answers withheld  rd_kafka_mock_broker_set_rtt on every broker: requests are still handled but
//                     their answers come after the uplink's request timeout — a link blackholed
//                     after the writes, so every step of a transaction may have landed or not.
//   target restarted  rd_kafka_mock_broker_set_down then _up on every broker (connections closed,
//                     new ones refused): the mock's state survives (it cannot be killed and
//                     restarted with its log; a Tributary target could, but has no transactions).
//   leader moved      rd_kafka_mock_partition_set_leader twice, and the transaction coordinator
//                     moved (rd_kafka_mock_coordinator_set) in between.
//   request errors    rd_kafka_mock_push_request_errors: REQUEST_TIMED_OUT on AddPartitionsToTxn,
//                     Produce and EndTxn mid-transfer; each answered by re-initialising the same
//                     producer id with a bumped epoch (KIP-360), never by an EndTxn(abort).
//   edge kill -9      the restarted edge re-initialises with the producer id and epoch its link
//                     state kept, bumping the epoch (the killed process's is fenced).
// What the mock cannot show (docs/uplink.md): it writes no transaction markers, so the records of a
// transaction left open or failed stay visible to read_committed readers (the read-back of origin
// headers then resumes after them; on Kafka the re-initialisation aborts them and they are resent),
// and a true blackhole of its sockets (its metadata names its own ports, so no proxy sits between).
import t, { type Test } from 'tap';
import { eventually, mainJs, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatReadAll, metrics, sh, startMockCluster, sum, uplinkToolsPresent, verdict, type MockCluster } from '../helpers/uplink.js';
import { ERRORS } from '../../host/errors/index.js';
import { cp } from 'node:fs/promises';

const SITE = 'edgetx';
const TOPIC = 'plant.tx';
const TARGET = `${SITE}.${TOPIC}`;
const PARTITIONS = 2;
const N = 1500;
const READ_COMMITTED = ['-X', 'isolation.level=read_committed'];

const forwarded = async (edge: BrokerProcess) => sum(await metrics(edge), 'tributary_uplink_records_sent_total', `topic="${TOPIC}"`);

interface Ctx {
  mock: MockCluster;
  edge: BrokerProcess;
  /** Restarts the edge (after a kill) with the same data dir and arguments. */
  restart(): Promise<BrokerProcess>;
}

async function scenario(t: Test, name: string, fault: (ctx: Ctx) => Promise<string>): Promise<void> {
  const mock = await startMockCluster(t, await tempDir(t));
  const dir = await tempDir(t);
  const args = [
    '--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${mock.bootstrap}`, '--set', `uplink.topics=${TOPIC}`,
    '--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=100', '--set', 'uplink.reconnectBackoffMs=50', '--set', 'uplink.reconnectBackoffMaxMs=500',
    // A batch of ~6 stored batches per transaction, so the transfer is many transactions long.
    '--set', 'uplink.readBytesMax=4096', '--set', 'uplink.rawBatchRecordsMin=5',
    // Withheld answers become indefinite timeouts within the test's bounds.
    '--set', 'uplink.requestTimeoutMs=2000', '--set', 'uplink.produceTimeoutMs=1500', '--set', 'uplink.connectTimeoutMs=1000',
    '--set', `broker.defaultPartitions=${PARTITIONS}`,
  ];
  // The backlog is taken while no uplink is configured (a link that was down), so the fault lands mid-transfer.
  const loader = await startBroker(t, { dataDir: dir, args: ['--set', `broker.defaultPartitions=${PARTITIONS}`] });
  const expected = Array.from({ length: PARTITIONS }, (_, p) => Array.from({ length: N }, (_, i) => `p${p}-${i}-${'t'.repeat(120)}`));
  for (let p = 0; p < PARTITIONS; p++) {
    const r = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', TOPIC, '-p', String(p), '-X', 'acks=all', '-X', 'batch.num.messages=10'], expected[p].join('\n') + '\n');
    t.equal(r.code, 0, `partition ${p}: ${N} records acknowledged by the edge (kcat, acks=all)`);
  }
  t.equal(await loader.stop(), 0);
  const ctx: Ctx = {
    mock,
    edge: await startBroker(t, { dataDir: dir, args }),
    restart: async () => (ctx.edge = await startBroker(t, { dataDir: dir, args })),
  };
  await eventually(async () => ((await forwarded(ctx.edge)) >= 200 ? true : Promise.reject(new Error('not yet'))), 30_000, 5);
  const what = await fault(ctx);
  const total = PARTITIONS * N;
  await eventually(async () => ((await kcatReadAll(mock.bootstrap, TARGET, READ_COMMITTED).catch(() => [])).length >= total ? true : Promise.reject(new Error('not yet'))), 90_000, 300);
  await new Promise((r) => setTimeout(r, 500));
  const all = await kcatReadAll(mock.bootstrap, TARGET, READ_COMMITTED);
  const rows: string[] = [];
  for (let p = 0; p < PARTITIONS; p++) {
    const v = verdict(all, { site: SITE, topic: TOPIC, partition: p }, expected[p]);
    rows.push(`p${p}: acknowledged ${N}, in target ${v.found}, duplicated ${v.duplicated.length}, missing ${v.lost.length}, reordered ${v.reordered}`);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue, withoutOrigin: v.withoutOrigin }, { found: N, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0, withoutOrigin: 0 }, `partition ${p}: ${v.found} records, exactly once, in order (kcat, read_committed)`);
  }
  t.equal(all.length, total, `the target holds exactly ${total} records`);
  const modes = ctx.edge.logs.filter((l) => typeof l.msg === 'string' && /exactly-once by transactions/.test(l.msg));
  t.ok(modes.length >= PARTITIONS, `transactions mode (${modes.length} resumes logged by the last edge process)`);
  t.comment(`FAULT MATRIX | ${name} | ${what} | ${rows.join('; ')}`);
}

/** The edge's transactional-producer init lines: kind (bumped/fresh) and epoch. */
function inits(edge: BrokerProcess): Array<{ init: string; producerId: number; producerEpoch: number; transactionalId: string }> {
  return edge.logs.filter((l) => typeof l.msg === 'string' && /^uplink transactional producer/.test(l.msg)) as never;
}

if (uplinkToolsPresent(t, ['kcat', 'mock'])) {
  t.test('transactions mode, answers withheld mid-transaction (every broker answers after the request timeout, 3 s)', (t) =>
    scenario(t, 'answers withheld 3 s (mock rtt)', async ({ mock, edge }) => {
      for (const b of [1, 2, 3]) await mock.command(`rtt ${b} 8000`);
      await new Promise((r) => setTimeout(r, 3000));
      for (const b of [1, 2, 3]) await mock.command(`rtt ${b} 0`);
      const failed = edge.logs.filter((l) => l.msg === 'uplink partition retrying').map((l) => String(l.err));
      t.ok(failed.some((e) => /no answer within|timed out|timeout/i.test(e)), `transactions cut by indefinite timeouts: ${[...new Set(failed)].slice(0, 3).join('; ')}`);
      await eventually(async () => (inits(edge).filter((l) => l.init === 'bumped').length >= 1 ? true : Promise.reject(new Error('no re-init yet'))), 30_000, 100);
      return `re-initialised (KIP-360 bumps: ${inits(edge).filter((l) => l.init === 'bumped').length})`;
    }),
  );

  t.test('transactions mode, target restarted mid-transaction (every mock broker down 2 s, then up)', (t) =>
    scenario(t, 'target brokers down 2 s, up (mock set_down/up)', async ({ mock, edge }) => {
      for (const b of [1, 2, 3]) await mock.command(`down ${b}`);
      await new Promise((r) => setTimeout(r, 2000));
      const during = await forwarded(edge);
      for (const b of [1, 2, 3]) await mock.command(`up ${b}`);
      t.ok(during < PARTITIONS * N, `down mid-transfer (${during} forwarded)`);
      return `down at ${during} forwarded`;
    }),
  );

  t.test('transactions mode, target partition leader moved twice and the transaction coordinator moved', (t) =>
    scenario(t, 'leader moved twice + coordinator moved (mock)', async ({ mock, edge }) => {
      const moves: string[] = [];
      for (const [i, threshold] of [[0, 200], [1, 900]] as const) {
        await eventually(async () => ((await forwarded(edge)) >= threshold ? true : Promise.reject(new Error('not yet'))), 30_000, 5);
        const to = (i % 3) + 2;
        for (let p = 0; p < PARTITIONS; p++) await mock.setLeader(TARGET, p, to);
        moves.push(`leaders → ${to} at ${await forwarded(edge)}`);
        if (i === 0) for (let p = 0; p < PARTITIONS; p++) await mock.command(`coordinator transaction tributary-uplink/${SITE}/${TOPIC}/${p} 1`);
      }
      return moves.join(', ') + ', coordinators → 1';
    }),
  );

  t.test('transactions mode, REQUEST_TIMED_OUT injected on AddPartitionsToTxn, Produce and EndTxn: re-initialised (KIP-360), never aborted blindly', (t) =>
    scenario(t, 'errors on AddPartitionsToTxn, Produce, EndTxn (mock injection)', async ({ mock, edge }) => {
      for (const key of [24, 0, 26]) {
        const before = inits(edge).length;
        await mock.pushErrors(key, ERRORS.REQUEST_TIMED_OUT.kafka, 2);
        await eventually(async () => (inits(edge).length > before ? true : Promise.reject(new Error('not yet'))), 30_000, 50);
      }
      const all = inits(edge);
      const bumped = all.filter((l) => l.init === 'bumped');
      t.ok(bumped.length >= 3, `${bumped.length} re-initialisations bumped the epoch of the same producer id`);
      t.ok(bumped.every((b) => all.some((l) => l.transactionalId === b.transactionalId && l.producerId === b.producerId && l.producerEpoch === b.producerEpoch - 1)), 'each bump kept its producer id, epoch + 1');
      t.notOk(edge.logs.some((l) => /EndTxn\(abort\)|abort/i.test(String(l.msg))), 'no abort sent');
      return `${bumped.length} KIP-360 re-initialisations`;
    }),
  );

  t.test('transactions mode, edge kill -9 mid-transfer: the restarted edge bumps the saved epoch (fencing the killed one)', (t) =>
    scenario(t, 'edge kill -9 mid-transfer, restarted', async (ctx) => {
      const before = inits(ctx.edge);
      const atKill = await forwarded(ctx.edge);
      await ctx.edge.kill();
      const edge = await ctx.restart();
      await eventually(async () => (inits(edge).length >= PARTITIONS ? true : Promise.reject(new Error('not yet'))), 30_000, 50);
      const after = inits(edge).slice(0, PARTITIONS);
      t.ok(after.every((a) => a.init === 'bumped' && before.some((b) => b.transactionalId === a.transactionalId && b.producerId === a.producerId && a.producerEpoch > b.producerEpoch)), `restarted: ${after.map((a) => `${a.transactionalId} ${a.init} to epoch ${a.producerEpoch}`).join('; ')}`);
      return `killed at ${atKill} forwarded; restart bumped the saved epochs`;
    }),
  );

  t.test('fencing between two live edges: a copy of the edge (its data dir, so its saved producer ids and epochs) bumps the epochs; the old edge is refused INVALID_PRODUCER_EPOCH, stops as fenced, and writes nothing more', async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    const dir = await tempDir(t);
    const common = ['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${mock.bootstrap}`, '--set', `uplink.topics=${TOPIC}`, '--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=100', '--set', 'uplink.reconnectBackoffMs=50', '--set', 'uplink.readBytesMax=4096', '--set', 'uplink.rawBatchRecordsMin=5', '--set', `broker.defaultPartitions=${PARTITIONS}`];
    const loader = await startBroker(t, { dataDir: dir, args: ['--set', `broker.defaultPartitions=${PARTITIONS}`] });
    const expected = Array.from({ length: PARTITIONS }, (_, p) => Array.from({ length: N }, (_, i) => `f${p}-${i}-${'u'.repeat(120)}`));
    for (let p = 0; p < PARTITIONS; p++) {
      const r = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', TOPIC, '-p', String(p), '-X', 'acks=all', '-X', 'batch.num.messages=10'], expected[p].join('\n') + '\n');
      t.equal(r.code, 0, `partition ${p}: ${N} records acknowledged`);
    }
    t.equal(await loader.stop(), 0);
    // The old edge drains slowly (a 30 kB/s cap), so the copy takes over mid-transfer.
    const old = await startBroker(t, { dataDir: dir, args: [...common, '--set', 'uplink.bandwidthBytesPerSec=30000', '--set', 'uplink.bandwidthBurstBytes=8192'] });
    await eventually(async () => (inits(old).length >= PARTITIONS && (await forwarded(old)) >= 100 ? true : Promise.reject(new Error('not yet'))), 30_000, 20);
    const copyDir = await tempDir(t);
    // A copy of a live data dir: a temp file of an atomic replace (written, then renamed) may go
    // between the copy's listing and its read; it is not state, so it is not copied.
    await cp(dir, copyDir, { recursive: true, filter: (src) => !src.endsWith('.tmp') });
    const copy = await startBroker(t, { dataDir: copyDir, args: common });
    await eventually(async () => (inits(copy).length >= PARTITIONS ? true : Promise.reject(new Error('not yet'))), 30_000, 50);
    t.ok(inits(copy).slice(0, PARTITIONS).every((c) => c.init === 'bumped'), `the copy bumped the saved epochs: ${inits(copy).slice(0, PARTITIONS).map((c) => `${c.transactionalId} → epoch ${c.producerEpoch}`).join('; ')}`);
    const fenced = await eventually(async () => {
      const lines = old.logs.filter((l) => l.msg === 'uplink partition blocked' && /fenced by a newer producer/.test(String(l.err)));
      return lines.length >= PARTITIONS ? lines : Promise.reject(new Error(`${lines.length} fenced`));
    }, 30_000, 50);
    const refusals = old.logs.filter((l) => l.msg === 'uplink partition retrying' && /INVALID_PRODUCER_EPOCH|PRODUCER_FENCED/.test(String(l.err)));
    t.ok(refusals.length >= 1, `the old edge's transactions were refused: ${String(refusals[0]?.err)}`);
    t.ok(fenced.length >= PARTITIONS, `the old edge stopped every partition as fenced: ${String(fenced[0].err)}`);
    const oldAtFence = await forwarded(old);
    await eventually(async () => ((await kcatReadAll(mock.bootstrap, TARGET, READ_COMMITTED).catch(() => [])).length >= PARTITIONS * N ? true : Promise.reject(new Error('not yet'))), 90_000, 300);
    await new Promise((r) => setTimeout(r, 1000));
    t.equal(await forwarded(old), oldAtFence, `the fenced edge forwarded nothing more (${oldAtFence} before the fence)`);
    const all = await kcatReadAll(mock.bootstrap, TARGET, READ_COMMITTED);
    const rows: string[] = [];
    for (let p = 0; p < PARTITIONS; p++) {
      const v = verdict(all, { site: SITE, topic: TOPIC, partition: p }, expected[p]);
      rows.push(`p${p}: acknowledged ${N}, in target ${v.found}, duplicated ${v.duplicated.length}, missing ${v.lost.length}, reordered ${v.reordered}`);
      t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: N, lost: 0, duplicated: 0, reordered: 0 }, `partition ${p}: exactly once, in order across both edges (kcat, read_committed)`);
    }
    const status = await sh(process.execPath, [mainJs, 'uplink', 'status', '--data-dir', dir]);
    t.match(status.stdout, /fenced by a newer producer/, 'tributary uplink status on the old edge names the fence as the reason');
    t.comment(`FAULT MATRIX | second live edge (copy of the data dir) fences the first | old forwarded ${oldAtFence} then fenced | ${rows.join('; ')}`);
  });

  // uplink.transactionBatchesMax at its boundary: one checkpoint record is committed per
  // transaction (its value: the next source offset), so the checkpoints read back with kcat show
  // how many 10-record raw batches each transaction held: never more than the bound, and the bound
  // reached.
  for (const batchesMax of [1, 3]) t.test(`uplink.transactionBatchesMax=${batchesMax}: each transaction holds at most ${batchesMax} batches (checkpoints read back), all records once`, async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    const dir = await tempDir(t);
    const loader = await startBroker(t, { dataDir: dir, args: ['--set', 'broker.defaultPartitions=1'] });
    const n = 600;
    const expected = Array.from({ length: n }, (_, i) => `b-${i}-${'v'.repeat(60)}`);
    // Exactly 10 per stored batch: a long linger, so a loaded machine never sends a short one (a
    // stored batch below uplink.rawBatchRecordsMin is re-encoded together with its neighbours,
    // and one outgoing batch would then hold more than 10 records).
    const r = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', TOPIC, '-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=10', '-X', 'linger.ms=2000'], expected.join('\n') + '\n');
    t.equal(r.code, 0, `${n} records acknowledged, in stored batches of 10`);
    t.equal(await loader.stop(), 0);
    const edge = await startBroker(t, { dataDir: dir, args: ['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${mock.bootstrap}`, '--set', `uplink.topics=${TOPIC}`, '--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=100', '--set', 'uplink.rawBatchRecordsMin=5', '--set', `uplink.transactionBatchesMax=${batchesMax}`, '--set', 'broker.defaultPartitions=1'] });
    await eventually(async () => ((await forwarded(edge)) >= n ? true : Promise.reject(new Error('not yet'))), 60_000, 100);
    const v = verdict(await kcatReadAll(mock.bootstrap, TARGET, READ_COMMITTED), { site: SITE, topic: TOPIC, partition: 0 }, expected);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: n, lost: 0, duplicated: 0, reordered: 0 }, `all ${n} once, in order`);
    const checkpoints = (await kcatReadAll(mock.bootstrap, 'tributary-uplink-checkpoints', READ_COMMITTED)).filter((c) => c.headers['tributary.origin.topic'] === TOPIC).map((c) => Number(c.value));
    const sizes = checkpoints.map((c, i) => c - (i === 0 ? 0 : checkpoints[i - 1]));
    t.equal(checkpoints[checkpoints.length - 1], n, 'the last checkpoint is the source end');
    t.ok(sizes.every((s) => s > 0 && s <= 10 * batchesMax), `every transaction held 1 to ${batchesMax} batches of 10: ${sizes.length} transactions`);
    t.equal(Math.max(...sizes), 10 * batchesMax, `the bound was reached (${10 * batchesMax} records in a transaction)`);
  });
}
