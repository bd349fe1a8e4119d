// Purpose: the client side of our Kafka codec and the uplink against a broker nobody here wrote:
// librdkafka's mock cluster (3 brokers, partition leaders spread over them, started through
// librdkafka's C API from /usr/bin/python3). The mock checks no sequences for idempotent
// producers, so exactly-once here rests on the read-back alone — which is what these tests
// prove: records read back with kcat from the mock arrive once, in order, with origin headers,
// also after the edge is killed with SIGKILL mid-transfer and restarted.
import t from 'tap';
import { eventually, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatProduce, kcatReadAll, sh, startMockCluster, uplinkToolsPresent, verdict } from '../helpers/uplink.js';
import { KafkaClient } from '../../host/kafka/client/client.js';
import { encodeBatch } from '../../host/core/index.js';
import { ERRORS } from '../../host/errors/index.js';

const SITE = 'edge9';

async function forwarded(edge: BrokerProcess, topic: string): Promise<number> {
  const text = await (await fetch(`http://${edge.listeners.http}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^tributary_uplink_records_sent_total\{([^}]*)\} (\d+)$/gm)) if (m[1].includes(`topic="${topic}"`)) n += Number(m[2]);
  return n;
}

if (uplinkToolsPresent(t, ['kcat', 'mock'])) {
  t.test('client codec against the mock cluster: metadata routing, create, produce, fetch, list offsets', async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    const client = new KafkaClient({ bootstrap: mock.bootstrap.split(','), clientId: 'mock-test', connectTimeoutMs: 3000, requestTimeoutMs: 5000, inFlightMax: 5, queuedMax: 100, responseBytesMax: 16 << 20, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 500 });
    t.teardown(() => client.close());
    // librdkafka 2.0.2's mock has no CreateTopics: a clean 'unsupported' fault naming the API,
    // and the mock creates topics on Metadata itself (with its default partition count).
    const created = await client.createTopic('mock.codec', 3, 1).catch((e) => e);
    if (created instanceof Error) {
      t.equal((created as { fault?: string }).fault, 'unsupported', `CreateTopics: ${created.message}`);
      t.match(created.message, /CreateTopics/);
    } else t.equal(created.errorCode, ERRORS.NONE.kafka, 'CreateTopics accepted');
    const md = await eventually(async () => {
      const m = (await client.metadata(['mock.codec'])).get('mock.codec')!;
      return m.errorCode === ERRORS.NONE.kafka ? m : Promise.reject(new Error(`metadata error ${m.errorCode}`));
    }, 5000, 100);
    t.ok(md.partitions.length >= 3, `${md.partitions.length} partitions`);
    t.ok(new Set(md.partitions.map((p) => p.leaderId)).size >= 1, `leaders: ${md.partitions.map((p) => p.leaderId).join(',')}`);
    const { producerId } = await client.initProducerId();
    t.ok(producerId >= 0, `InitProducerId: ${producerId}`);
    for (let p = 0; p < 3; p++) {
      const r = await client.produce('mock.codec', p, encodeBatch([{ key: null, value: Buffer.from(`hello-${p}`), headers: [{ key: 'h', value: Buffer.from('v') }] }], { producerId, producerEpoch: 0, baseSequence: 0 }), { timeoutMs: 5000 });
      t.equal(r.errorCode, ERRORS.NONE.kafka, `produce to partition ${p} (leader ${md.partitions[p].leaderId})`);
      t.equal(await client.listOffset('mock.codec', p, -1), 1, `partition ${p}: end offset 1`);
      const f = await client.fetchBatches('mock.codec', p, 0, { maxBytes: 1 << 20, maxWaitMs: 0 });
      t.same(f.batches.flatMap((b) => b.records.map((r) => Buffer.from(r.value!).toString())), [`hello-${p}`], `partition ${p}: fetched back`);
    }
    const all = await kcatReadAll(mock.bootstrap, 'mock.codec');
    t.same(all.map((r) => r.value).sort(), ['hello-0', 'hello-1', 'hello-2'], 'kcat reads what our client produced');
  });

  // Both modes against the same target: read-back (forced) and transactions (auto: the mock advertises
  // the transaction APIs). kcat reads with librdkafka's default isolation.level=read_committed.
  for (const mode of ['read-back', 'auto'] as const) t.test(`uplink to the mock cluster: exactly once through an edge SIGKILL mid-transfer (${mode === 'auto' ? 'transactions mode' : 'read-back mode'})`, async (t) => {
    const dir = await tempDir(t);
    const mock = await startMockCluster(t, dir);
    const args = [
      '--set', `uplink.exactlyOnce=${mode}`,
      '--set', `uplink.site=${SITE}`,
      '--set', `uplink.bootstrap=${mock.bootstrap}`,
      '--set', 'uplink.topics=plant.*',
      '--set', 'uplink.rename={site}-{topic}',
      '--set', 'uplink.topicScanIntervalMs=100',
      '--set', 'uplink.pollWaitMs=200',
      '--set', 'uplink.readBytesMax=2048',
      // kcat stores batches of 10 (below): each one forwarded raw, so the kill lands between raw batches.
      '--set', 'uplink.rawBatchRecordsMin=5',
      '--set', 'broker.defaultPartitions=3',
    ];
    const edgeDir = await tempDir(t);
    // The backlog is taken while no uplink is configured (a link that was down), so the kill below lands mid-transfer.
    const loader = await startBroker(t, { dataDir: edgeDir, args: ['--set', 'broker.defaultPartitions=3'] });
    const n = 2000;
    const expected = [0, 1, 2].map((p) => Array.from({ length: n }, (_, i) => `p${p}-${i}-${'y'.repeat(300)}`));
    for (let p = 0; p < 3; p++) {
      const r = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', 'plant.line1', '-p', String(p), '-X', 'acks=all', '-X', 'batch.num.messages=10'], expected[p].join('\n') + '\n');
      t.equal(r.code, 0, `partition ${p} loaded in batches of 10`);
    }
    // Acknowledged by the edge: 3 × 2000 records.
    t.equal(await loader.stop(), 0);
    let edge = await startBroker(t, { dataDir: edgeDir, args });
    const atKill = await eventually(async () => {
      const c = await forwarded(edge, 'plant.line1');
      return c >= 300 ? c : Promise.reject(new Error(`only ${c}`));
    }, 30_000, 5);
    await edge.kill();
    t.ok(atKill < 3 * n, `killed mid-transfer (${atKill} of ${3 * n} reported forwarded)`);
    edge = await startBroker(t, { dataDir: edgeDir, args });
    await eventually(async () => ((await kcatReadAll(mock.bootstrap, `${SITE}-plant.line1`).catch(() => [])).length >= 3 * n ? true : Promise.reject(new Error('not yet'))), 60_000, 300);
    await new Promise((r) => setTimeout(r, 500));
    const all = await kcatReadAll(mock.bootstrap, `${SITE}-plant.line1`);
    t.equal(all.length, 3 * n, 'exactly 3 × 2000 records in the mock');
    for (let p = 0; p < 3; p++) {
      const v = verdict(all, { site: SITE, topic: 'plant.line1', partition: p }, expected[p]);
      t.same({ lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue, withoutOrigin: v.withoutOrigin }, { lost: 0, duplicated: 0, reordered: 0, wrongValue: 0, withoutOrigin: 0 }, `partition ${p}: ${v.found} records, exactly once, in order`);
    }
    const metrics = await (await fetch(`http://${edge.listeners.http}/metrics`)).text();
    t.match(metrics, /tributary_uplink_batches_sent_total\{path="raw",site="[^"]+"\} [1-9]/, 'the mock took raw-forwarded batches');
    const modes = edge.logs.filter((l) => typeof l.msg === 'string' && (mode === 'auto' ? /exactly-once by transactions/ : /exactly-once by read-back/).test(l.msg));
    t.ok(modes.length >= 3 && modes.every((l) => l.targetAdvertisesTransactions === true), `decided at connect: the mock advertises transactions (logged; ${mode === 'auto' ? 'transactions' : 'read-back, as configured,'} mode is used)`);
    const md = await sh('kcat', ['-L', '-b', mock.bootstrap, '-t', `${SITE}-plant.line1`]);
    t.match(md.stdout, /with [3-9] partitions/, 'the target topic has at least the source partition count (the mock creates topics itself on Metadata)');
  });

  t.test('uplink to the mock cluster: the target forgets the producer (UNKNOWN_PRODUCER_ID, injected): read back, new producer id, exactly once', async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    // Read-back mode's idempotent producer path (transactions mode would re-initialise instead).
    const args = ['--set', 'uplink.exactlyOnce=read-back', '--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${mock.bootstrap}`, '--set', 'uplink.topics=plant.*', '--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=100', '--set', 'uplink.reconnectBackoffMs=50', '--set', 'broker.defaultPartitions=1',
      // The mock checks no sequences: behind an injected refusal it would take the pipelined batches after it.
      '--set', 'uplink.inFlightBatchesMax=1'];
    const edge = await startBroker(t, { dataDir: await tempDir(t), args });
    const first = Array.from({ length: 300 }, (_, i) => `a-${i}`);
    await kcatProduce(edge.listeners.kafka!, 'plant.line2', 0, first);
    await eventually(async () => ((await forwarded(edge, 'plant.line2')) >= 300 ? true : Promise.reject(new Error('not yet'))), 30_000, 50);
    // The next three Produce requests answer UNKNOWN_PRODUCER_ID, as a target whose producer state expired after days offline.
    await mock.pushErrors(0, ERRORS.UNKNOWN_PRODUCER_ID.kafka, 3);
    const second = Array.from({ length: 300 }, (_, i) => `b-${i}`);
    await kcatProduce(edge.listeners.kafka!, 'plant.line2', 0, second);
    const expected = [...first, ...second]; // acknowledged by the edge
    await eventually(async () => ((await forwarded(edge, 'plant.line2')) >= 600 ? true : Promise.reject(new Error('not yet'))), 30_000, 50);
    const all = await kcatReadAll(mock.bootstrap, `${SITE}.plant.line2`);
    const v = verdict(all, { site: SITE, topic: 'plant.line2', partition: 0 }, expected);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { found: 600, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, 'all 600 once, in order');
    const reinit = edge.logs.filter((l) => l.action === 'read back, then a new producer id');
    t.ok(reinit.length >= 1, `the refusal was answered by read-back and a new producer id (${reinit.length} times)`);
  });

  t.test('uplink to the mock cluster, transactions mode: the target forgets the producer (UNKNOWN_PRODUCER_ID, injected): re-initialised with a new epoch, read back, exactly once', async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    const args = ['--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${mock.bootstrap}`, '--set', 'uplink.topics=plant.*', '--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=100', '--set', 'uplink.reconnectBackoffMs=50', '--set', 'broker.defaultPartitions=1'];
    const edge = await startBroker(t, { dataDir: await tempDir(t), args });
    const first = Array.from({ length: 300 }, (_, i) => `a-${i}`);
    await kcatProduce(edge.listeners.kafka!, 'plant.line4', 0, first);
    await eventually(async () => ((await forwarded(edge, 'plant.line4')) >= 300 ? true : Promise.reject(new Error('not yet'))), 30_000, 50);
    // The next three Produce requests answer UNKNOWN_PRODUCER_ID (a target whose producer state expired).
    await mock.pushErrors(0, ERRORS.UNKNOWN_PRODUCER_ID.kafka, 3);
    const second = Array.from({ length: 300 }, (_, i) => `b-${i}`);
    await kcatProduce(edge.listeners.kafka!, 'plant.line4', 0, second);
    const expected = [...first, ...second]; // acknowledged by the edge
    await eventually(async () => ((await forwarded(edge, 'plant.line4')) >= 600 ? true : Promise.reject(new Error('not yet'))), 30_000, 50);
    const v = verdict(await kcatReadAll(mock.bootstrap, `${SITE}.plant.line4`), { site: SITE, topic: 'plant.line4', partition: 0 }, expected);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { found: 600, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, 'all 600 once, in order (kcat, read_committed)');
    const epochs = edge.logs.filter((l) => typeof l.msg === 'string' && /exactly-once by transactions/.test(l.msg)).map((l) => Number(/epoch (\d+)\)/.exec(String(l.msg))?.[1]));
    t.ok(epochs.length >= 2 && epochs[epochs.length - 1] > epochs[0], `re-initialised after the refusal: epochs ${epochs.join(' → ')}`);
  });

  t.test('uplink to the mock cluster: the target partition\'s leader moves twice mid-transfer: exactly once', async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    // Read-back mode: the test watches the idempotent pipeline's refusal by the old leader.
    const args = ['--set', 'uplink.exactlyOnce=read-back', '--set', `uplink.site=${SITE}`, '--set', `uplink.bootstrap=${mock.bootstrap}`, '--set', 'uplink.topics=plant.*', '--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=100', '--set', 'uplink.reconnectBackoffMs=50', '--set', 'uplink.readBytesMax=2048', '--set', 'uplink.rawBatchRecordsMin=5', '--set', 'broker.defaultPartitions=1',
      // The mock checks no sequences (see above).
      '--set', 'uplink.inFlightBatchesMax=1'];
    const dir = await tempDir(t);
    const loader = await startBroker(t, { dataDir: dir, args: ['--set', 'broker.defaultPartitions=1'] });
    const n = 3000;
    const expected = Array.from({ length: n }, (_, i) => `m-${i}-${'q'.repeat(200)}`);
    const r = await sh('kcat', ['-P', '-b', loader.listeners.kafka!, '-t', 'plant.line3', '-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=10'], expected.join('\n') + '\n');
    t.equal(r.code, 0, '3000 records acknowledged by the edge, in batches of 10');
    t.equal(await loader.stop(), 0);
    const edge = await startBroker(t, { dataDir: dir, args });
    const target = `${SITE}.plant.line3`;
    const client = new KafkaClient({ bootstrap: mock.bootstrap.split(','), clientId: 'mock-watch', connectTimeoutMs: 3000, requestTimeoutMs: 5000, inFlightMax: 5, queuedMax: 100, responseBytesMax: 16 << 20, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 500 });
    t.teardown(() => client.close());
    const leaders: number[] = [];
    for (const threshold of [300, 1200]) {
      await eventually(async () => ((await forwarded(edge, 'plant.line3')) >= threshold ? true : Promise.reject(new Error('not yet'))), 30_000, 5);
      const md = (await client.metadata([target])).get(target)!;
      const from = md.partitions[0].leaderId;
      const to = (from % 3) + 1; // the mock's broker ids are 1..3
      await mock.setLeader(target, 0, to);
      const moved = await eventually(async () => {
        const now = (await client.metadata([target])).get(target)!.partitions[0].leaderId;
        return now === to ? now : Promise.reject(new Error(`leader still ${now}`));
      }, 5000, 50);
      leaders.push(from, moved);
      t.ok((await forwarded(edge, 'plant.line3')) < n, `the leader moved ${from} → ${moved} mid-transfer`);
    }
    await eventually(async () => ((await forwarded(edge, 'plant.line3')) >= n ? true : Promise.reject(new Error('not yet'))), 60_000, 100);
    await new Promise((res) => setTimeout(res, 500));
    const all = await kcatReadAll(mock.bootstrap, target);
    const v = verdict(all, { site: SITE, topic: 'plant.line3', partition: 0 }, expected);
    t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { found: n, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, 'all 3000 once, in order, across two leader moves');
    const refused = edge.logs.filter((l) => l.msg === 'uplink produce failed').map((l) => String(l.err));
    t.ok(refused.some((e) => /NOT_LEADER/.test(e)), `the old leader refused a produce (${refused.length} refused or lost: ${[...new Set(refused)].join('; ')}); leaders ${leaders.join(' → ')}`);
  });
}
