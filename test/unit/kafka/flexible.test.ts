// Flexible versions end to end over a socket: request header v2, compact strings/arrays and
// tagged fields in bodies, response header v1 — except ApiVersions, whose response header is
// always v0 (so a client can parse it before knowing our versions). Produce v9 then Fetch v12
// return the stored batch unchanged; Metadata v12 names this node.
import t from 'tap';
import net from 'node:net';
import { createRequire } from 'node:module';
import { startInProcess } from './harness.js';
import { decode, encode, Reader, Writer } from '../../../host/kafka/protocol/codec.js';
import { handlers } from '../../../host/kafka/apis/index.js';

const require = createRequire(import.meta.url);
const kjs = (p: string) => require(`kafkajs/src/protocol/${p}`);

function request(apiKey: number, version: number, correlationId: number, body: object): Buffer {
  const h = handlers.get(apiKey)!;
  const w = new Writer();
  w.int32(0);
  w.int16(apiKey);
  w.int16(version);
  w.int32(correlationId);
  w.string('flex-test', false);
  w.uvarint(0); // header v2 tagged fields
  encode(h.request, body, version, true, w);
  const b = Buffer.concat(w.finish());
  b.writeInt32BE(b.length - 4, 0);
  return b;
}

function exchange(port: number, frames: Buffer[]): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.concat(frames)));
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        out.push(buf.subarray(4, 4 + buf.readInt32BE(0)));
        buf = buf.subarray(4 + buf.readInt32BE(0));
      }
      if (out.length === frames.length) {
        s.destroy();
        resolve(out);
      }
    });
    s.on('error', reject);
    setTimeout(() => reject(new Error('timeout')), 10_000).unref();
  });
}

t.test('flexible versions: ApiVersions v3 (header v0), Metadata v12, Produce v9, Fetch v12 (header v1)', async (t) => {
  const k = await startInProcess(t);
  const [av] = await exchange(k.port, [request(18, 3, 1, { clientSoftwareName: 'flex', clientSoftwareVersion: '1.0' })]);
  t.equal(av!.readInt32BE(0), 1);
  // Header v0: the body starts right after the correlation id (error_code int16 = 0).
  const avBody = decode(handlers.get(18)!.response, new Reader(av!, 4), 3, true);
  t.equal(avBody.errorCode, 0);
  t.same(
    avBody.apiKeys.find((a: { apiKey: number }) => a.apiKey === 1),
    { apiKey: 1, minVersion: 4, maxVersion: 12 },
    'Fetch 4–12 advertised',
  );
  t.equal(avBody.apiKeys.length, handlers.size, 'exactly the registered APIs');

  const { RecordBatch } = kjs('recordBatch/v0/index.js');
  const Record = kjs('recordBatch/record/v0/index.js');
  const batch: Buffer = (await RecordBatch({ records: [Record({ key: Buffer.from('k'), value: Buffer.from('flexible payload'), headers: { h: 'v' } })] })).buffer;

  const [meta, prod, fetched] = await exchange(k.port, [
    request(3, 12, 2, { topics: [{ name: 'flex' }], allowAutoTopicCreation: true, includeTopicAuthorizedOperations: false }),
    request(0, 9, 3, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: 'flex', partitionData: [{ index: 0, records: batch }] }] }),
    request(1, 12, 4, { maxWaitMs: 2000, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1, topics: [{ topic: 'flex', partitions: [{ partition: 0, fetchOffset: 0, partitionMaxBytes: 1 << 20 }] }], forgottenTopicsData: [], rackId: '' }),
  ]);
  for (const [i, r] of [meta, prod, fetched].entries()) {
    t.equal(r!.readInt32BE(0), i + 2, 'in order');
    t.equal(r![4], 0, 'response header v1: empty tagged-field section');
  }
  const m = decode(handlers.get(3)!.response, new Reader(meta!, 5), 12, true);
  t.same(m.brokers, [{ nodeId: 0, host: '127.0.0.1', port: k.port, rack: null }]);
  t.equal(m.topics[0].name, 'flex');
  t.equal(m.topics[0].partitions[0].leaderId, 0);
  t.equal(m.topics[0].topicId.length, 16);

  const p = decode(handlers.get(0)!.response, new Reader(prod!, 5), 9, true);
  t.equal(p.responses[0].partitionResponses[0].errorCode, 0);
  t.equal(p.responses[0].partitionResponses[0].baseOffset, 0);

  const f = decode(handlers.get(1)!.response, new Reader(fetched!, 5), 12, true);
  const part = f.responses[0].partitions[0];
  t.equal(f.sessionId, 0, 'sessionless');
  t.equal(part.highWatermark, 1);
  const stored: Buffer = part.records;
  t.equal(stored.length, batch.length);
  t.ok(stored.subarray(8).equals(batch.subarray(8)), 'the stored batch is returned as sent (only baseOffset is the broker’s)');
});

t.test('fetch long poll: answers when data arrives, not after max_wait', async (t) => {
  const k = await startInProcess(t);
  const [created] = await exchange(k.port, [request(19, 5, 1, { topics: [{ name: 'poll', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }], timeoutMs: 5000, validateOnly: false })]);
  t.equal(decode(handlers.get(19)!.response, new Reader(created!, 5), 5, true).topics[0].errorCode, 0);
  const { RecordBatch } = kjs('recordBatch/v0/index.js');
  const Record = kjs('recordBatch/record/v0/index.js');
  const batch: Buffer = (await RecordBatch({ records: [Record({ value: Buffer.from('wake up') })] })).buffer;
  const started = Date.now();
  const pending = exchange(k.port, [request(1, 12, 2, { maxWaitMs: 20_000, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1, topics: [{ topic: 'poll', partitions: [{ partition: 0, fetchOffset: 0, partitionMaxBytes: 1 << 20 }] }], forgottenTopicsData: [], rackId: '' })]);
  setTimeout(() => void exchange(k.port, [request(0, 9, 3, { transactionalId: null, acks: 1, timeoutMs: 5000, topicData: [{ name: 'poll', partitionData: [{ index: 0, records: batch }] }] })]), 300);
  const [fetched] = await pending;
  const elapsed = Date.now() - started;
  const f = decode(handlers.get(1)!.response, new Reader(fetched!, 5), 12, true);
  t.equal(f.responses[0].partitions[0].highWatermark, 1, 'the fetch saw the append');
  t.ok(elapsed < 10_000, `woken by the append after ${elapsed} ms, not at max_wait (20 s)`);

  // Offset past the end: OFFSET_OUT_OF_RANGE with the log start offset.
  const [oor] = await exchange(k.port, [request(1, 12, 4, { maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1, topics: [{ topic: 'poll', partitions: [{ partition: 0, fetchOffset: 99, partitionMaxBytes: 1 << 20 }] }], forgottenTopicsData: [], rackId: '' })]);
  const o = decode(handlers.get(1)!.response, new Reader(oor!, 5), 12, true).responses[0].partitions[0];
  t.equal(o.errorCode, 1, 'OFFSET_OUT_OF_RANGE');
  t.equal(o.logStartOffset, 0);
  t.equal(o.highWatermark, 1);
});
