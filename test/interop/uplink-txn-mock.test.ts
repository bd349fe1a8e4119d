// Purpose: the transactional producer of the project's own client (host/kafka/client/
// transactions.ts) against librdkafka's mock cluster, which has a transaction coordinator:
// FindCoordinator (key type 1), InitProducerId with a transactional id, AddPartitionsToTxn,
// transactional Produce and EndTxn(commit), with a checkpoint record written in the same
// transaction as the data (the KIP-618 pattern). A re-initialisation (what follows an indefinite
// failure) gets a new epoch, and transactions after it commit. What the target holds is read back
// by kcat (librdkafka) with isolation.level=read_committed: every record once, in order, and the
// checkpoints in step with the data. The 2.0.2 mock writes no transaction markers (an aborted or
// abandoned transaction's records stay visible to read_committed readers), but it does check the
// epoch of a transactional producer id on AddPartitionsToTxn, Produce and EndTxn, and bumps it on a
// KIP-360 InitProducerId: so re-initialisation after injected errors, fencing of an old epoch by a
// restarted edge, and the fenced producer's stop are shown against it below. It keeps one epoch per
// producer id, not per transactional id: a fresh InitProducerId gets a new id and fences nothing.
import t from 'tap';
import { tempDir } from '../helpers/index.js';
import { sh, startMockCluster, uplinkToolsPresent } from '../helpers/uplink.js';
import { KafkaClient } from '../../host/kafka/client/client.js';
import { recordsOutgoing } from '../../host/kafka/client/producer.js';
import { ProducerFencedError, TransactionalProducer } from '../../host/kafka/client/transactions.js';
import { KafkaResponseError } from '../../host/kafka/client/errors.js';
import { ERRORS } from '../../host/errors/index.js';

const clientOptions = (bootstrap: string) => ({ bootstrap: bootstrap.split(','), clientId: 'txn-test', connectTimeoutMs: 5000, requestTimeoutMs: 10_000, inFlightMax: 5, queuedMax: 100, responseBytesMax: 16 * 1024 * 1024, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 500 });
const batchOf = (values: string[]) => recordsOutgoing(values.map((v) => ({ key: null, value: Buffer.from(v) })));

async function readCommitted(bootstrap: string, topic: string): Promise<string[]> {
  const r = await sh('kcat', ['-C', '-b', bootstrap, '-t', topic, '-X', 'isolation.level=read_committed', '-o', 'beginning', '-e', '-q', '-f', '%s\n']);
  if (r.code !== 0) throw new Error(`kcat consume ${topic} failed (${r.code}): ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.length > 0);
}

if (uplinkToolsPresent(t, ['kcat', 'mock'])) {
  t.test('transactional producer: data and checkpoint committed in one transaction, re-initialised with a new epoch, read back read_committed', async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    const client = new KafkaClient({ bootstrap: mock.bootstrap.split(','), clientId: 'txn-test', connectTimeoutMs: 5000, requestTimeoutMs: 10_000, inFlightMax: 5, queuedMax: 100, responseBytesMax: 16 * 1024 * 1024, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 500 });
    t.teardown(() => client.close());
    // The mock creates topics on first Metadata; ask for them once so they exist before the transaction names them.
    await client.metadata(['txn-data', 'txn-ckpt']);
    t.ok(await client.advertisesTransactions('txn-data', 0), 'the mock advertises FindCoordinator, AddPartitionsToTxn and EndTxn');
    const producer = new TransactionalProducer(client, { transactionalId: 'edge1/telemetry/0', transactionTimeoutMs: 10_000, produceTimeoutMs: 5000 });
    await producer.init();
    t.ok(producer.producerId >= 0 && producer.producerEpoch >= 0, `InitProducerId with the transactional id: id ${producer.producerId}, epoch ${producer.producerEpoch}`);
    const expected: string[] = [];
    const checkpoints: string[] = [];
    const commitOne = async (n: number) => {
      const values = Array.from({ length: 10 }, (_, i) => `rec-${n * 10 + i}`);
      expected.push(...values);
      checkpoints.push(`edge1/telemetry/0=${(n + 1) * 10}`);
      await producer.commit([
        { topic: 'txn-data', partition: 0, batch: recordsOutgoing(values.map((v) => ({ key: null, value: Buffer.from(v) }))) },
        { topic: 'txn-ckpt', partition: 0, batch: recordsOutgoing([{ key: Buffer.from('edge1/telemetry/0'), value: Buffer.from(checkpoints[checkpoints.length - 1]) }]) },
      ]);
    };
    for (let n = 0; n < 3; n++) await commitOne(n);
    t.pass('three transactions committed (AddPartitionsToTxn, two transactional produces, EndTxn each)');
    const before = { id: producer.producerId, epoch: producer.producerEpoch };
    await producer.init();
    t.ok(producer.producerId !== before.id || producer.producerEpoch > before.epoch, `re-initialised: id ${before.id} epoch ${before.epoch} → id ${producer.producerId} epoch ${producer.producerEpoch} (the old epoch is fenced on a coordinator that fences)`);
    for (let n = 3; n < 5; n++) await commitOne(n);
    t.pass('transactions after the re-initialisation commit (sequences from 0 for the new epoch)');
    t.same(await readCommitted(mock.bootstrap, 'txn-data'), expected, `read_committed: the ${expected.length} records once, in order`);
    t.same(await readCommitted(mock.bootstrap, 'txn-ckpt'), checkpoints, 'read_committed: one checkpoint per transaction, in step with the data');
  });

  t.test('transactional producer: an error mid-transaction (AddPartitionsToTxn, Produce, EndTxn) is settled by re-initialising the same producer id with a bumped epoch (KIP-360), never by an abort', async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    const client = new KafkaClient(clientOptions(mock.bootstrap));
    t.teardown(() => client.close());
    await client.metadata(['kip360-data']);
    const producer = new TransactionalProducer(client, { transactionalId: 'edge1/kip360/0', transactionTimeoutMs: 10_000, produceTimeoutMs: 5000 });
    t.same(await producer.init(), { kind: 'fresh', why: 'no producer id known' }, 'first init: a fresh producer id');
    const proto = await producer.protocol();
    t.same({ spoken: proto.spoken, v2: proto.coordinatorAdvertisesV2, add: proto.addPartitionsVersion, end: proto.endTxnVersion, kip360: proto.kip360 }, { spoken: 'v1', v2: false, add: 1, end: 1, kip360: true }, `the mock advertises AddPartitionsToTxn ≤ 1, EndTxn ≤ 1 (no Transactions V2): V1 spoken; InitProducerId v${proto.initProducerIdVersion} carries the producer id (KIP-360)`);
    const committed: string[] = [];
    let n = 0;
    const next = () => Array.from({ length: 5 }, () => `k-${n++}`);
    const ok = next();
    await producer.commit([{ topic: 'kip360-data', partition: 0, batch: batchOf(ok) }]);
    committed.push(...ok);
    for (const [api, key] of [['AddPartitionsToTxn', 24], ['Produce', 0], ['EndTxn', 26]] as const) {
      const before = { id: producer.producerId, epoch: producer.producerEpoch };
      await mock.pushErrors(key, ERRORS.REQUEST_TIMED_OUT.kafka, 1);
      const failed = next();
      const err = await producer.commit([{ topic: 'kip360-data', partition: 0, batch: batchOf(failed) }]).then(() => null, (e: unknown) => e);
      t.ok(err instanceof KafkaResponseError && err.code === 'REQUEST_TIMED_OUT', `${api} answered REQUEST_TIMED_OUT (injected): the commit failed (${(err as Error | null)?.message})`);
      // The mock writes no markers: a transaction whose EndTxn failed after its Produce stays visible (on Kafka the re-initialisation aborts it).
      if (api === 'EndTxn') committed.push(...failed);
      const outcome = await producer.init();
      t.same({ kind: outcome.kind, id: producer.producerId, epoch: producer.producerEpoch }, { kind: 'bumped', id: before.id, epoch: before.epoch + 1 }, `after the ${api} error: re-initialised, producer id ${before.id} epoch ${before.epoch} → ${producer.producerEpoch} (no EndTxn(abort) sent)`);
      const after = next();
      await producer.commit([{ topic: 'kip360-data', partition: 0, batch: batchOf(after) }]);
      committed.push(...after);
    }
    t.same(await readCommitted(mock.bootstrap, 'kip360-data'), committed, `read_committed: every committed record once, in order; the failed AddPartitionsToTxn and Produce wrote nothing (${committed.length} records)`);
  });

  t.test('fencing: a restarted edge (the old producer id and epoch from its state) bumps the epoch; the old producer is refused INVALID_PRODUCER_EPOCH, then stops as fenced and never writes again', async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    const client = new KafkaClient(clientOptions(mock.bootstrap));
    t.teardown(() => client.close());
    await client.metadata(['fence-data']);
    const id = 'edge1/fence/0';
    const old = new TransactionalProducer(client, { transactionalId: id, transactionTimeoutMs: 10_000, produceTimeoutMs: 5000 });
    await old.init();
    await old.commit([{ topic: 'fence-data', partition: 0, batch: batchOf(['old-0', 'old-1']) }]);
    const restarted = new TransactionalProducer(client, { transactionalId: id, transactionTimeoutMs: 10_000, produceTimeoutMs: 5000, resume: { producerId: old.producerId, producerEpoch: old.producerEpoch } });
    const outcome = await restarted.init();
    t.same({ kind: outcome.kind, id: restarted.producerId, epoch: restarted.producerEpoch }, { kind: 'bumped', id: old.producerId, epoch: old.producerEpoch + 1 }, `the restarted edge bumped producer id ${old.producerId} to epoch ${restarted.producerEpoch}`);
    const refused = await old.commit([{ topic: 'fence-data', partition: 0, batch: batchOf(['zombie-0']) }]).then(() => null, (e: unknown) => e);
    t.ok(refused instanceof KafkaResponseError && refused.code === 'INVALID_PRODUCER_EPOCH', `the old epoch's next transaction is refused: ${(refused as Error | null)?.message}`);
    const fenced = await old.init().then(() => null, (e: unknown) => e);
    t.ok(fenced instanceof ProducerFencedError, `the old producer's re-initialisation (KIP-360 with its stale epoch) is refused: fenced — ${(fenced as Error | null)?.message}`);
    t.ok(old.fenced !== null, 'fenced is sticky');
    const again = await old.commit([{ topic: 'fence-data', partition: 0, batch: batchOf(['zombie-1']) }]).then(() => null, (e: unknown) => e);
    t.ok(again instanceof ProducerFencedError, 'a fenced producer refuses to write without asking the target');
    await restarted.commit([{ topic: 'fence-data', partition: 0, batch: batchOf(['new-0', 'new-1']) }]);
    t.same(await readCommitted(mock.bootstrap, 'fence-data'), ['old-0', 'old-1', 'new-0', 'new-1'], 'read_committed: the old producer\'s records before the fence and the new one\'s after, once each; nothing written by the fenced epoch');
  });

  t.test('first init from a saved producer id: a stale epoch or a forgotten id falls back to a fresh producer id (logged why)', async (t) => {
    const mock = await startMockCluster(t, await tempDir(t));
    const client = new KafkaClient(clientOptions(mock.bootstrap));
    t.teardown(() => client.close());
    const first = new TransactionalProducer(client, { transactionalId: 'edge1/stale/0', transactionTimeoutMs: 10_000, produceTimeoutMs: 5000 });
    await first.init();
    await first.init(); // epoch 1: a process that died mid-init saved epoch 0 at most
    const stale = new TransactionalProducer(client, { transactionalId: 'edge1/stale/0', transactionTimeoutMs: 10_000, produceTimeoutMs: 5000, resume: { producerId: first.producerId, producerEpoch: first.producerEpoch - 1 } });
    const o1 = await stale.init();
    t.ok(o1.kind === 'fresh' && /INVALID_PRODUCER_EPOCH/.test(o1.why), `a stale saved epoch: fresh id (${o1.kind === 'fresh' ? o1.why : ''})`);
    const forgotten = new TransactionalProducer(client, { transactionalId: 'edge1/stale/0', transactionTimeoutMs: 10_000, produceTimeoutMs: 5000, resume: { producerId: 4242, producerEpoch: 7 } });
    const o2 = await forgotten.init();
    t.ok(o2.kind === 'fresh' && /UNKNOWN_PRODUCER_ID/.test(o2.why), `an id the coordinator does not know: fresh id (${o2.kind === 'fresh' ? o2.why : ''})`);
    t.equal(ERRORS.PRODUCER_FENCED.kafka, 90, 'PRODUCER_FENCED is in the error table');
  });
}
