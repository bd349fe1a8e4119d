// Purpose: every broker limit holds at its boundary: exactly at the limit is accepted, one
// past is refused with its specific code, and the broker keeps serving afterwards.
import t from 'tap';
import { BrokerError } from '../../../host/errors/index.js';
import { encodeBatch } from '../../../host/core/index.js';
import { openBroker, bytes, batchOfSize } from './broker-fixture.js';

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return err instanceof BrokerError ? err.code : `not a BrokerError: ${(err as Error).message}`;
  }
  return undefined;
}

t.test('limit maxTopics: the last allowed topic is created, the next is POLICY_VIOLATION', async (t) => {
  const { broker, metrics } = await openBroker(t, { maxTopics: 3 });
  await broker.createTopic('t1', 1);
  await broker.createTopic('t2', 1);
  await broker.ensureTopic('t3');
  t.equal(await codeOf(broker.createTopic('t4', 1)), 'POLICY_VIOLATION');
  t.equal(await codeOf(broker.ensureTopic('t4')), 'POLICY_VIOLATION', 'auto-creation obeys it too');
  t.equal(metrics.get('tributary_broker_limit_refusals_total')!.value({ limit: 'maxTopics' }), 2);
  await broker.deleteTopic('t1');
  await broker.createTopic('t4', 1);
  t.equal(broker.listTopics().length, 3);
});

t.test('limit maxPartitionsPerTopic: at the limit ok, one more INVALID_PARTITIONS (create and grow)', async (t) => {
  const { broker } = await openBroker(t, { maxPartitionsPerTopic: 4, defaultPartitions: 1 });
  await broker.createTopic('four', 4);
  t.equal(await codeOf(broker.createTopic('five', 5)), 'INVALID_PARTITIONS');
  await broker.createTopic('two', 2);
  t.equal(await codeOf(broker.createPartitions('two', 5)), 'INVALID_PARTITIONS');
  await broker.createPartitions('two', 4);
  t.equal(broker.describeTopic('two')!.partitions, 4);
});

t.test('limit maxPartitionsTotal: at the limit ok, one more POLICY_VIOLATION (create and grow)', async (t) => {
  const { broker } = await openBroker(t, { maxPartitionsTotal: 5 });
  await broker.createTopic('a', 3);
  t.equal(await codeOf(broker.createTopic('b', 3)), 'POLICY_VIOLATION');
  await broker.createTopic('b', 1);
  t.equal(await codeOf(broker.createPartitions('b', 3)), 'POLICY_VIOLATION');
  await broker.createPartitions('b', 2);
  await broker.deleteTopic('a');
  await broker.createTopic('c', 3);
});

t.test('limit max.message.bytes: a batch of exactly the limit is stored, one byte more is MESSAGE_TOO_LARGE', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('m', 1, { 'max.message.bytes': 1000 });
  const tp = { topic: 'm', partition: 0 };
  await broker.append(tp, batchOfSize(1000), { acks: 1 });
  t.equal(await codeOf(broker.append(tp, batchOfSize(1001), { acks: 1 })), 'MESSAGE_TOO_LARGE');
  t.equal(await codeOf(broker.produce('m', [{ key: null, value: new Uint8Array(2000) }], { acks: 1 })), 'MESSAGE_TOO_LARGE', 'produce obeys it');
  t.equal(broker.offsets(tp).logEndOffset, 1);
  // The topic's limit can never pass the broker ceiling.
  const { broker: small } = await openBroker(t, { maxMessageBytesMax: 2_000_000 });
  t.equal(await codeOf(small.createTopic('x', 1, { 'max.message.bytes': 2_000_001 })), 'INVALID_CONFIG');
  await small.createTopic('x', 1, { 'max.message.bytes': 2_000_000 });
});

t.test('limit maxPendingAppendBytes: appends filling it exactly are taken, one byte more is LIMIT_EXCEEDED (retriable)', async (t) => {
  const { broker, metrics } = await openBroker(t, {
    maxMessageBytesMax: 1000,
    maxPendingAppendBytes: 3000,
    topicDefaults: { 'max.message.bytes': 1000 },
  });
  await broker.createTopic('busy', 2);
  // Started in one tick: none has flushed, so all count as pending together.
  const ok = [0, 1, 0].map((p) => broker.append({ topic: 'busy', partition: p }, batchOfSize(1000), { acks: 1 }));
  t.equal(broker.pendingBytes, 3000);
  const refused = await broker.append({ topic: 'busy', partition: 1 }, batchOfSize(100), { acks: 1 }).catch((e) => e);
  t.equal(refused.code, 'LIMIT_EXCEEDED');
  t.ok(refused.spec.retriable, 'retriable: broker busy');
  t.match(refused.message, /maxPendingAppendBytes=3000/);
  await Promise.all(ok);
  t.equal(broker.pendingBytes, 0, 'released once flushed');
  await broker.append({ topic: 'busy', partition: 1 }, batchOfSize(100), { acks: 1 });
  t.equal(metrics.get('tributary_broker_limit_refusals_total')!.value({ limit: 'maxPendingAppendBytes' }), 1);
  // A failed append releases its bytes too.
  await codeOf(broker.append({ topic: 'busy', partition: 0 }, new Uint8Array(500).fill(7), { acks: 1 }));
  t.equal(broker.pendingBytes, 0);
});

t.test('limit maxWaitingReaders: exactly the limit park, one more is LIMIT_EXCEEDED; all leave cleanly', async (t) => {
  const { broker } = await openBroker(t, { maxWaitingReaders: 2 });
  await broker.createTopic('w', 1);
  const pos = [{ topic: 'w', partition: 0, afterOffset: 0 }];
  const a = broker.waitForData(pos, 30_000);
  const b = broker.waitForData(pos, 30_000);
  t.equal(await codeOf(broker.waitForData(pos, 30_000)), 'LIMIT_EXCEEDED');
  t.equal(broker.waitingReaders, 2);
  await broker.produce('w', [{ key: null, value: bytes('wake') }], { acks: 1 });
  await Promise.all([a, b]);
  t.equal(broker.waitingReaders, 0);
  await broker.waitForData([{ topic: 'w', partition: 0, afterOffset: 1 }], 10);
});

t.test('limit maxRecordsPerProduce: at the limit ok, one more RECORD_LIST_TOO_LARGE', async (t) => {
  const { broker } = await openBroker(t, { maxRecordsPerProduce: 50 });
  const rec = { key: null, value: bytes('r') };
  const placed = await broker.produce('n', Array.from({ length: 50 }, () => rec), { acks: 1 });
  t.equal(placed.length, 50);
  t.equal(await codeOf(broker.produce('n', Array.from({ length: 51 }, () => rec), { acks: 1 })), 'RECORD_LIST_TOO_LARGE');
});

t.test('limit maxReadBytes: reads are clamped, the first batch still whole', async (t) => {
  const { broker } = await openBroker(t, { maxReadBytes: 1500 });
  await broker.createTopic('rd', 1);
  for (let i = 0; i < 4; i++) await broker.append({ topic: 'rd', partition: 0 }, batchOfSize(1000), { acks: 1 });
  const one = await broker.read({ topic: 'rd', partition: 0 }, 0, { maxBytes: 1 << 20 });
  t.equal(one.records.byteLength, 1000, 'one 1000-byte batch: a second would pass 1500');
  const r = await broker.append({ topic: 'rd', partition: 0 }, encodeBatch([{ key: null, value: new Uint8Array(3000) }]), { acks: 1 });
  const big = await broker.read({ topic: 'rd', partition: 0 }, r.baseOffset, { maxBytes: 1 << 20 });
  t.ok(big.records.byteLength > 3000, 'a batch larger than maxReadBytes is still returned whole');
});

t.test('limit log.maxDecompressedBytes reaches every log: a batch inflating past it is refused', async (t) => {
  const { broker } = await openBroker(t, {
    maxMessageBytesMax: 4096,
    maxPendingAppendBytes: 4096,
    topicDefaults: { 'max.message.bytes': 4096 },
    log: { maxDecompressedBytes: 4096 },
  });
  await broker.createTopic('bomb', 1);
  const tp = { topic: 'bomb', partition: 0 };
  const small = encodeBatch([{ key: null, value: new Uint8Array(3000) }], { compression: 1 });
  await broker.append(tp, small, { acks: 1 });
  const inflating = encodeBatch([{ key: null, value: new Uint8Array(50_000) }], { compression: 1 });
  t.ok(inflating.byteLength < 4096, `the gzip batch itself is small (${inflating.byteLength} bytes)`);
  t.equal(await codeOf(broker.append(tp, inflating, { acks: 1 })), 'CORRUPT_MESSAGE');
  t.equal(broker.offsets(tp).logEndOffset, 1);
});
