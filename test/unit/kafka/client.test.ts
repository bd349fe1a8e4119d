// Purpose: the client side of the Kafka codec (host/kafka/client/) against the server side over a
// real socket — every API the uplink speaks round-trips through both (ApiVersions, Metadata,
// CreateTopics, InitProducerId, Produce with idempotent sequences, Fetch, ListOffsets) — and the
// connection's failure contract: a request past its timeout, a socket lost mid-request, a full
// window and an oversized answer each fail with their own fault, and the first two are marked
// indefinite (the request may have taken effect).
import t from 'tap';
import net from 'node:net';
import { startInProcess } from './harness.js';
import { KafkaClient } from '../../../host/kafka/client/client.js';
import { KafkaConnection } from '../../../host/kafka/client/connection.js';
import { CLIENT_APIS, negotiate } from '../../../host/kafka/client/apis.js';
import { KafkaClientError } from '../../../host/kafka/client/errors.js';
import { advance } from '../../../host/kafka/client/producer.js';
import { encodeBatch } from '../../../host/core/index.js';
import { ERRORS } from '../../../host/errors/index.js';

const clientOptions = (bootstrap: string) => ({
  bootstrap: [bootstrap],
  clientId: 'client-test',
  connectTimeoutMs: 2000,
  requestTimeoutMs: 5000,
  inFlightMax: 5,
  queuedMax: 100,
  responseBytesMax: 16 * 1024 * 1024,
  reconnectBackoffMs: 10,
  reconnectBackoffMaxMs: 100,
});

const rec = (i: number) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`), headers: [{ key: 'h', value: Buffer.from(String(i)) }] });

t.test('client: every uplink API round-trips through the server codec', async (t) => {
  const k = await startInProcess(t);
  const client = new KafkaClient(clientOptions(k.bootstrap));
  t.teardown(() => client.close());

  const conn = await client.anyConnection();
  // Tributary has no transaction coordinator: AddPartitionsToTxn and EndTxn are spoken toward targets
  // that have one (test/interop/uplink-txn-mock.test.ts) and must not be advertised here.
  const coordinatorOnly = new Set<unknown>([CLIENT_APIS.addPartitionsToTxn, CLIENT_APIS.endTxn]);
  for (const api of Object.values(CLIENT_APIS)) {
    if (coordinatorOnly.has(api)) t.equal(negotiate(api, conn.versions), -1, `${api.name}: not advertised by Tributary (no transaction coordinator)`);
    else t.ok(negotiate(api, conn.versions) >= api.minVersion, `${api.name}: a common version (${negotiate(api, conn.versions)})`);
  }

  const created = await client.createTopic('client.t', 3);
  t.equal(created.errorCode, ERRORS.NONE.kafka, 'CreateTopics: created');
  const again = await client.createTopic('client.t', 3);
  t.equal(again.errorCode, ERRORS.TOPIC_ALREADY_EXISTS.kafka, 'CreateTopics: the second is TOPIC_ALREADY_EXISTS');

  const md = await client.metadata(['client.t', 'client.missing']);
  t.equal(md.get('client.t')!.partitions.length, 3, 'Metadata: three partitions with leaders');
  t.equal(md.get('client.missing')!.errorCode, ERRORS.UNKNOWN_TOPIC_OR_PARTITION.kafka, 'Metadata: an unknown topic is not auto-created');

  const { producerId, producerEpoch } = await client.initProducerId();
  t.ok(producerId >= 0, `InitProducerId: id ${producerId} epoch ${producerEpoch}`);

  const batch0 = encodeBatch([rec(0), rec(1)], { producerId, producerEpoch, baseSequence: 0 });
  const p0 = await client.produce('client.t', 1, batch0, { timeoutMs: 5000 });
  t.same([p0.errorCode, p0.baseOffset], [0, 0], 'Produce: first batch at offset 0');
  const dup = await client.produce('client.t', 1, batch0, { timeoutMs: 5000 });
  t.ok(dup.errorCode === 0 || dup.errorCode === ERRORS.DUPLICATE_SEQUENCE_NUMBER.kafka, `Produce: the same sequence again is deduplicated (code ${dup.errorCode})`);
  const gap = await client.produce('client.t', 1, encodeBatch([rec(9)], { producerId, producerEpoch, baseSequence: 5 }), { timeoutMs: 5000 });
  t.equal(gap.errorCode, ERRORS.OUT_OF_ORDER_SEQUENCE_NUMBER.kafka, 'Produce: a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER');
  const p1 = await client.produce('client.t', 1, encodeBatch([rec(2)], { producerId, producerEpoch, baseSequence: 2 }), { timeoutMs: 5000 });
  t.same([p1.errorCode, p1.baseOffset], [0, 2], 'Produce: the next sequence lands at offset 2');

  t.equal(await client.listOffset('client.t', 1, -1), 3, 'ListOffsets: latest is 3 (the duplicate was not stored)');
  t.equal(await client.listOffset('client.t', 1, -2), 0, 'ListOffsets: earliest is 0');

  const f = await client.fetchBatches('client.t', 1, 0, { maxBytes: 1 << 20, maxWaitMs: 0 });
  const records = f.batches.flatMap((b) => b.records);
  t.same(records.map((r) => [r.offset, Buffer.from(r.key!).toString(), Buffer.from(r.value!).toString(), Buffer.from(r.headers[0].value!).toString()]), [
    [0, 'k0', 'v0', '0'],
    [1, 'k1', 'v1', '1'],
    [2, 'k2', 'v2', '2'],
  ], 'Fetch: the records as produced, headers included');
  t.equal(f.highWatermark, 3);
  t.ok(client.bytesSent > 0, 'bytes sent are counted');
});

/** A TCP server that accepts, reads and never answers (or closes after the first bytes). */
async function silentServer(t: { teardown(fn: () => unknown): void }, behaviour: 'silent' | 'close-on-request', answerHandshake = true): Promise<number> {
  // The handshake (ApiVersions) needs an answer; take it from a real server.
  const real = await startInProcess(t);
  const server = net.createServer((sock) => {
    const upstream = net.connect(real.port, '127.0.0.1');
    let handshakeDone = !answerHandshake;
    sock.on('data', (d) => {
      if (!handshakeDone) {
        handshakeDone = true;
        upstream.write(d);
        upstream.once('data', (a) => sock.write(a));
        return;
      }
      if (behaviour === 'close-on-request') sock.destroy();
    });
    sock.on('error', () => {});
    upstream.on('error', () => {});
    sock.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

const connOptions = (port: number, over: Partial<ReturnType<typeof clientOptions>> = {}) => ({
  host: '127.0.0.1',
  port,
  clientId: 'client-test',
  connectTimeoutMs: 2000,
  requestTimeoutMs: 300,
  inFlightMax: 2,
  queuedMax: 1,
  responseBytesMax: 1 << 20,
  ...over,
});

t.test('connection: an unanswered request times out, indefinite, and the connection closes', async (t) => {
  const port = await silentServer(t, 'silent');
  const conn = await KafkaConnection.connect(connOptions(port));
  const started = Date.now();
  const err = await conn.request(CLIENT_APIS.metadata, { topics: [], allowAutoTopicCreation: false }).catch((e) => e);
  t.ok(err instanceof KafkaClientError, 'a client error');
  t.equal(err.fault, 'timeout');
  t.equal(err.indefinite, true, 'indefinite: the broker may have applied it');
  t.ok(Date.now() - started >= 290, 'not before the timeout');
  t.equal(conn.closed, true, 'the connection is closed');
  const after = await conn.request(CLIENT_APIS.metadata, { topics: [] }).catch((e) => e);
  t.equal(after.fault, 'closed', 'later requests fail at once');
});

t.test('connection: a socket lost mid-request fails it as disconnected and indefinite', async (t) => {
  const port = await silentServer(t, 'close-on-request');
  const conn = await KafkaConnection.connect(connOptions(port, { requestTimeoutMs: 5000 }));
  const err = await conn.request(CLIENT_APIS.metadata, { topics: [] }).catch((e) => e);
  t.equal(err.fault, 'disconnected');
  t.equal(err.indefinite, true);
});

t.test('connection: the in-flight window and its queue are bounded', async (t) => {
  const port = await silentServer(t, 'silent');
  const conn = await KafkaConnection.connect(connOptions(port, { requestTimeoutMs: 1000, inFlightMax: 2, queuedMax: 1 }));
  const body = { topics: [] };
  const inFlight = [conn.request(CLIENT_APIS.metadata, body), conn.request(CLIENT_APIS.metadata, body)].map((p) => p.catch((e) => e));
  const queued = conn.request(CLIENT_APIS.metadata, body).catch((e) => e);
  const refused = await conn.request(CLIENT_APIS.metadata, body).catch((e) => e);
  t.equal(refused.fault, 'limit', 'the fourth request (2 in flight + 1 queued) is refused at once');
  t.equal(refused.indefinite, false, 'a refused request never left: not indefinite');
  const [a, b] = await Promise.all(inFlight);
  t.same([a.fault, a.indefinite, b.indefinite], ['timeout', true, true], 'written requests time out indefinite');
  const q = await queued;
  t.same([q.fault, q.indefinite], ['closed', false], 'the queued request was never written: not indefinite');
});

t.test('connection: an urgent request goes ahead of the queued ones that are not, behind the urgent ones', async (t) => {
  const k = await startInProcess(t);
  const conn = await KafkaConnection.connect(connOptions(k.port, { requestTimeoutMs: 5000, inFlightMax: 1, queuedMax: 10 }));
  t.teardown(() => conn.close());
  const order: string[] = [];
  const req = (name: string, urgent: boolean) => conn.request(CLIENT_APIS.metadata, { topics: [], allowAutoTopicCreation: false }, urgent).then(() => order.push(name));
  // 'first' takes the only window slot; the rest queue in call order, the urgent ones jump.
  await Promise.all([req('first', false), req('a', false), req('b', false), req('u1', true), req('c', false), req('u2', true)]);
  t.same(order, ['first', 'u1', 'u2', 'a', 'b', 'c'], 'written in that order: urgent ones first, each kind in call order');
});

t.test('connection: an answer larger than responseBytesMax closes the connection', async (t) => {
  const k = await startInProcess(t);
  const conn = await KafkaConnection.connect(connOptions(k.port, { requestTimeoutMs: 5000, responseBytesMax: 1 << 20 }));
  const client = new KafkaClient(clientOptions(k.bootstrap));
  t.teardown(() => client.close());
  await client.createTopic('big', 1);
  for (let i = 0; i < 3; i++) {
    const r = await client.produce('big', 0, encodeBatch([{ key: null, value: Buffer.alloc(400_000, 7) }]), { timeoutMs: 5000 });
    t.equal(r.errorCode, ERRORS.NONE.kafka, 'a 400 kB batch stored');
  }
  const small = await KafkaConnection.connect(connOptions(k.port, { requestTimeoutMs: 5000, responseBytesMax: 64 * 1024 }));
  const err = await small
    .request(CLIENT_APIS.fetch, { replicaId: -1, maxWaitMs: 0, minBytes: 1, maxBytes: 2 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1, topics: [{ topic: 'big', partitions: [{ partition: 0, fetchOffset: 0, partitionMaxBytes: 2 << 20 }] }], forgottenTopicsData: [], rackId: '' })
    .catch((e) => e);
  t.equal(err.fault, 'protocol', `refused: ${err.message}`);
  t.match(err.message, /responseBytesMax 65536/);
  conn.close();
});

t.test('client: an unreachable bootstrap list fails with a connect fault naming every address', async (t) => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  const client = new KafkaClient({ ...clientOptions(`127.0.0.1:${port}`), bootstrap: [`127.0.0.1:${port}`, `localhost:${port}`] });
  const err = await client.metadata([]).catch((e) => e);
  t.equal(err.fault, 'connect');
  t.match(err.message, new RegExp(`127.0.0.1:${port}, localhost:${port}`));
  await client.close();
});

t.test('producer: sequences wrap from 2^31-1 to 0 (Kafka rule)', async (t) => {
  t.equal(advance(0, 5), 5);
  t.equal(advance(0x7ffffffe, 1), 0x7fffffff);
  t.equal(advance(0x7fffffff, 1), 0);
  t.equal(advance(0x7ffffffe, 3), 1);
});
