// Purpose: the transactional producer of the project's own client (host/kafka/client/
// transactions.ts) against librdkafka's mock cluster, which has a transaction coordinator:
// FindCoordinator (key type 1), InitProducerId with a transactional id, AddPartitionsToTxn,
// transactional Produce and EndTxn(commit), with a checkpoint record written in the same
// transaction as the data (the KIP-618 pattern). A re-initialisation (what follows an indefinite
// failure) gets a new epoch, and transactions after it commit. What the target holds is read back
// by kcat (librdkafka) with isolation.level=read_committed: every record once, in order, and the
// checkpoints in step with the data. (The 2.0.2 mock writes no transaction markers and does not
// fence: neither aborts nor fencing can be shown against it.)
import t from 'tap';
import { tempDir } from '../helpers/index.js';
import { sh, startMockCluster, uplinkToolsPresent } from '../helpers/uplink.js';
import { KafkaClient } from '../../host/kafka/client/client.js';
import { recordsOutgoing } from '../../host/kafka/client/producer.js';
import { TransactionalProducer } from '../../host/kafka/client/transactions.js';

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
}
