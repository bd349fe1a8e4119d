// The admin-side APIs over a socket at their newest (flexible) versions, which kafkajs and kcat
// do not send: IncrementalAlterConfigs (SET/DELETE/APPEND, errors naming the key), CreateTopics
// validate_only and replication factor, DeleteTopics v6, DescribeCluster, InitProducerId with a
// transactional id, ListOffsets max-timestamp, and Metadata without auto-creation.
import t from 'tap';
import net from 'node:net';
import { createRequire } from 'node:module';
import { startInProcess } from './harness.js';
import { decode, encode, Reader, Writer } from '../../../host/kafka/protocol/codec.js';
import { handlers } from '../../../host/kafka/apis/index.js';

const require = createRequire(import.meta.url);
const kjs = (p: string) => require(`kafkajs/src/protocol/${p}`);

/** One request at `version` (flexible header when the API is flexible there), decoded response body. */
function call(port: number, apiKey: number, version: number, body: object): Promise<any> {
  const h = handlers.get(apiKey)!;
  const flexible = version >= h.flexibleFrom;
  const w = new Writer();
  w.int32(0);
  w.int16(apiKey);
  w.int16(version);
  w.int32(42);
  w.string('admin-test', false);
  if (flexible) w.uvarint(0);
  encode(h.request, body, version, flexible, w);
  const req = Buffer.concat(w.finish());
  req.writeInt32BE(req.length - 4, 0);
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(req));
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        s.destroy();
        const headerBytes = 4 + (flexible && apiKey !== 18 ? 1 : 0);
        resolve(decode(h.response, new Reader(buf.subarray(4 + headerBytes, 4 + buf.readInt32BE(0))), version, flexible));
      }
    });
    s.on('error', reject);
  });
}

const topicSpec = (name: string, extra: object = {}) => ({ name, numPartitions: 2, replicationFactor: 1, assignments: [], configs: [], ...extra });

t.test('admin APIs at their newest versions', async (t) => {
  const k = await startInProcess(t);

  await t.test('CreateTopics v7: validate_only creates nothing; bad factor and config named', async (t) => {
    const r = await call(k.port, 19, 7, { topics: [topicSpec('checked')], timeoutMs: 1000, validateOnly: true });
    t.equal(r.topics[0].errorCode, 0);
    t.equal(r.topics[0].numPartitions, 2);
    const meta = await call(k.port, 3, 12, { topics: [{ name: 'checked' }], allowAutoTopicCreation: false, includeTopicAuthorizedOperations: false });
    t.equal(meta.topics[0].errorCode, 3, 'validate_only created nothing; Metadata without auto-create says UNKNOWN_TOPIC_OR_PARTITION');

    // validate_only makes every check a real create would: values and names, not just existence.
    const invalid = await call(k.port, 19, 7, {
      topics: [topicSpec('badvalue', { configs: [{ name: 'retention.ms', value: 'soon' }] }), topicSpec('bad name!')],
      timeoutMs: 1000,
      validateOnly: true,
    });
    t.equal(invalid.topics[0].errorCode, 40, 'validate_only: a bad config value is INVALID_CONFIG');
    t.match(invalid.topics[0].errorMessage, /retention\.ms/);
    t.equal(invalid.topics[1].errorCode, 17, 'validate_only: an illegal name is INVALID_TOPIC_EXCEPTION');

    const bad = await call(k.port, 19, 7, {
      topics: [topicSpec('rf3', { replicationFactor: 3 }), topicSpec('cfg', { configs: [{ name: 'retention.mss', value: '1' }] }), topicSpec('ok', { numPartitions: -1, replicationFactor: -1 })],
      timeoutMs: 1000,
      validateOnly: false,
    });
    t.equal(bad.topics[0].errorCode, 38, 'INVALID_REPLICATION_FACTOR');
    t.match(bad.topics[0].errorMessage, /replication factor 3/);
    t.equal(bad.topics[1].errorCode, 40, 'INVALID_CONFIG');
    t.match(bad.topics[1].errorMessage, /retention\.mss/, 'the message names the key');
    t.equal(bad.topics[2].errorCode, 0, '-1/-1 = broker defaults');
    t.equal(bad.topics[2].numPartitions, 1);
    t.equal(bad.topics[2].topicId.length, 16);
    t.ok(bad.topics[2].configs.some((c: { name: string; value: string }) => c.name === 'cleanup.policy' && c.value === 'delete'), 'v5+ returns the configs');
  });

  await t.test('IncrementalAlterConfigs v1: SET, APPEND, DELETE; unknown keys and bad values named', async (t) => {
    await call(k.port, 19, 7, { topics: [topicSpec('tuned')], timeoutMs: 1000, validateOnly: false });
    const set = await call(k.port, 44, 1, {
      resources: [{ resourceType: 2, resourceName: 'tuned', configs: [{ name: 'retention.ms', configOperation: 0, value: '5000' }, { name: 'cleanup.policy', configOperation: 2, value: 'compact' }] }],
      validateOnly: false,
    });
    t.equal(set.responses[0].errorCode, 0);
    const described = await call(k.port, 32, 4, { resources: [{ resourceType: 2, resourceName: 'tuned', configurationKeys: ['retention.ms', 'cleanup.policy'] }], includeSynonyms: false, includeDocumentation: true });
    const byName = Object.fromEntries(described.results[0].configs.map((c: { name: string }) => [c.name, c]));
    t.equal(byName['retention.ms'].value, '5000');
    t.equal(byName['retention.ms'].configSource, 1, 'DYNAMIC_TOPIC_CONFIG');
    t.equal(byName['cleanup.policy'].value, 'compact,delete', 'APPEND added to the list');
    t.type(byName['retention.ms'].documentation, 'string');

    const del = await call(k.port, 44, 1, { resources: [{ resourceType: 2, resourceName: 'tuned', configs: [{ name: 'retention.ms', configOperation: 1, value: null }] }], validateOnly: false });
    t.equal(del.responses[0].errorCode, 0);
    const after = await call(k.port, 32, 4, { resources: [{ resourceType: 2, resourceName: 'tuned', configurationKeys: ['retention.ms'] }], includeSynonyms: false, includeDocumentation: false });
    t.equal(after.results[0].configs[0].configSource, 5, 'DELETE: back to DEFAULT_CONFIG');

    const unknown = await call(k.port, 44, 1, { resources: [{ resourceType: 2, resourceName: 'tuned', configs: [{ name: 'segment.byte', configOperation: 0, value: '1' }] }], validateOnly: false });
    t.equal(unknown.responses[0].errorCode, 40);
    t.match(unknown.responses[0].errorMessage, /segment\.byte/);
    const badValue = await call(k.port, 44, 1, { resources: [{ resourceType: 2, resourceName: 'tuned', configs: [{ name: 'retention.ms', configOperation: 0, value: 'soon' }] }], validateOnly: false });
    t.equal(badValue.responses[0].errorCode, 40);
    t.match(badValue.responses[0].errorMessage, /retention\.ms/);
    const brokerRes = await call(k.port, 44, 1, { resources: [{ resourceType: 4, resourceName: '0', configs: [{ name: 'max.connections', configOperation: 0, value: '5' }] }], validateOnly: false });
    t.equal(brokerRes.responses[0].errorCode, 42, 'broker settings are read-only over Kafka');
  });

  await t.test('DeleteTopics v6 by name; by id refused', async (t) => {
    await call(k.port, 19, 7, { topics: [topicSpec('doomed')], timeoutMs: 1000, validateOnly: false });
    const r = await call(k.port, 20, 6, { topics: [{ name: 'doomed', topicId: new Uint8Array(16) }, { name: null, topicId: new Uint8Array(16).fill(1) }], timeoutMs: 1000 });
    t.equal(r.responses[0].errorCode, 0);
    t.equal(r.responses[1].errorCode, 3);
    t.match(r.responses[1].errorMessage, /topic id/);
  });

  await t.test('DescribeCluster v1, InitProducerId v4 with a transactional id', async (t) => {
    const c = await call(k.port, 60, 1, { includeClusterAuthorizedOperations: false, endpointType: 1 });
    t.same(c.brokers, [{ brokerId: 0, host: '127.0.0.1', port: k.port, rack: null }]);
    t.equal(c.clusterId, 'tributary');
    const controllers = await call(k.port, 60, 1, { includeClusterAuthorizedOperations: false, endpointType: 2 });
    t.equal(controllers.errorCode, 42);
    const txn = await call(k.port, 22, 4, { transactionalId: 'tx-1', transactionTimeoutMs: 60000, producerId: -1, producerEpoch: -1 });
    t.equal(txn.errorCode, 42, 'transactions refused with INVALID_REQUEST');
    const idem = await call(k.port, 22, 4, { transactionalId: null, transactionTimeoutMs: 60000, producerId: -1, producerEpoch: -1 });
    t.equal(idem.errorCode, 0);
    t.equal(idem.producerEpoch, 0);
  });

  await t.test('ListOffsets v7: earliest, latest, max timestamp, by timestamp', async (t) => {
    const { RecordBatch } = kjs('recordBatch/v0/index.js');
    const Record = kjs('recordBatch/record/v0/index.js');
    const base = 1_700_000_000_000;
    const batch: Buffer = (
      await RecordBatch({
        firstTimestamp: base,
        maxTimestamp: base + 500,
        lastOffsetDelta: 2,
        records: [Record({ offsetDelta: 0, timestampDelta: 0, value: Buffer.from('a') }), Record({ offsetDelta: 1, timestampDelta: 500, value: Buffer.from('b') }), Record({ offsetDelta: 2, timestampDelta: 200, value: Buffer.from('c') })],
      })
    ).buffer;
    const p = await call(k.port, 0, 9, { transactionalId: null, acks: -1, timeoutMs: 1000, topicData: [{ name: 'timed', partitionData: [{ index: 0, records: batch }] }] });
    t.equal(p.responses[0].partitionResponses[0].errorCode, 0);
    const lo = await call(k.port, 2, 7, {
      replicaId: -1,
      isolationLevel: 0,
      topics: [{ name: 'timed', partitions: [-2, -1, -3, base + 100, base + 10_000].map((timestamp) => ({ partitionIndex: 0, currentLeaderEpoch: -1, timestamp })) }],
    });
    const got = lo.topics[0].partitions.map((x: { offset: number; timestamp: number }) => [x.offset, x.timestamp]);
    t.same(got[0]![0], 0, 'earliest');
    t.same(got[1]![0], 3, 'latest = log end');
    // The timestamp is exact; the offset is the broker's answer for the batch holding it (the
    // log reports the batch's last offset, as Kafka before KAFKA-16310; the record is offset 1).
    t.equal(got[2]![1], base + 500, 'max timestamp');
    t.ok(got[2]![0] === 1 || got[2]![0] === 2, `max timestamp offset within its batch (${got[2]![0]})`);
    t.same(got[3]![0], 1, 'by timestamp: first record at or after');
    t.same(got[4], [-1, -1], 'past every record: -1');
  });
});

t.test('OffsetForLeaderEpoch v2–v4 on one node: epoch 0 ends at the log end; errors per partition', async (t) => {
  const k = await startInProcess(t);
  await call(k.port, 19, 7, { topics: [topicSpec('epochs', { numPartitions: 1 })], timeoutMs: 1000, validateOnly: false });
  const { RecordBatch } = kjs('recordBatch/v0/index.js');
  const Record = kjs('recordBatch/record/v0/index.js');
  const records: Buffer = (await RecordBatch({ firstTimestamp: 1, maxTimestamp: 1, lastOffsetDelta: 1, records: [Record({ offsetDelta: 0, timestampDelta: 0, value: Buffer.from('a') }), Record({ offsetDelta: 1, timestampDelta: 0, value: Buffer.from('b') })] })).buffer;
  const produced = await call(k.port, 0, 9, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: 'epochs', partitionData: [{ index: 0, records }] }] });
  t.equal(produced.responses[0].partitionResponses[0].errorCode, 0, 'two records produced');
  for (const version of [2, 3, 4]) {
    const r = await call(k.port, 23, version, {
      replicaId: -1,
      topics: [
        { topic: 'epochs', partitions: [{ partition: 0, currentLeaderEpoch: 0, leaderEpoch: 0 }, { partition: 7, currentLeaderEpoch: -1, leaderEpoch: 0 }] },
        { topic: 'nope', partitions: [{ partition: 0, currentLeaderEpoch: -1, leaderEpoch: 0 }] },
      ],
    });
    const [ok, missing] = r.topics[0].partitions;
    t.same([ok.errorCode, ok.leaderEpoch, ok.endOffset], [0, 0, 2], `v${version}: epoch 0 ends at the log end (2)`);
    t.equal(missing.errorCode, 3, `v${version}: an unknown partition is UNKNOWN_TOPIC_OR_PARTITION`);
    t.equal(r.topics[1].partitions[0].errorCode, 3, `v${version}: an unknown topic too`);
  }
  const fenced = await call(k.port, 23, 4, { replicaId: -1, topics: [{ topic: 'epochs', partitions: [{ partition: 0, currentLeaderEpoch: 5, leaderEpoch: 0 }] }] });
  t.equal(fenced.topics[0].partitions[0].errorCode, 75, 'a current epoch newer than the replica knows: UNKNOWN_LEADER_EPOCH');
  const future = await call(k.port, 23, 4, { replicaId: -1, topics: [{ topic: 'epochs', partitions: [{ partition: 0, currentLeaderEpoch: -1, leaderEpoch: 9 }] }] });
  t.same([future.topics[0].partitions[0].leaderEpoch, future.topics[0].partitions[0].endOffset], [-1, -1], 'an epoch newer than any in the log: -1/-1 (KIP-101)');
});
