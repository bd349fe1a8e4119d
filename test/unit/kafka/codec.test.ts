// The generic Kafka codec: round trips over every registered API table and version, bytes
// checked against kafkajs's own encoders/decoders (a client nobody here wrote), and hostile
// input (lengths past the end, negative counts, runaway varints) refused with a ProtocolError.
import t from 'tap';
import { createRequire } from 'node:module';
import { decode, encode, encodeToBuffer, ProtocolError, Reader, Writer } from '../../../host/kafka/protocol/codec.js';
import { arr, f, struct, type Schema } from '../../../host/kafka/protocol/schema.js';
import { handlers } from '../../../host/kafka/apis/index.js';
import { readRequestHeader } from '../../../host/kafka/protocol/header.js';

const require = createRequire(import.meta.url);
const kjs = (p: string) => require(`kafkajs/src/protocol/${p}`);

t.test('codec: every API table round-trips at every version (defaults filled, tagged fields kept)', async (t) => {
  for (const h of handlers.values()) {
    for (let v = h.minVersion; v <= h.maxVersion; v++) {
      const flexible = v >= h.flexibleFrom;
      for (const schema of [h.request, h.response]) {
        const empty = decode(schema, new Reader(encodeToBuffer(schema, {}, v, flexible)), v, flexible);
        const again = encodeToBuffer(schema, empty, v, flexible);
        t.same(decode(schema, new Reader(again), v, flexible), empty, `${h.name} v${v} round trip`);
      }
    }
  }
});

t.test('codec: a flexible struct with a tagged field survives, unknown tags are skipped', async (t) => {
  const schema: Schema = [f('a', 'int32', '0+'), f('s', 'string', '0+', { nullable: '0+' }), f('t', 'int64', '1+', { tagged: '1+', tag: 3, default: -1 }), arr('xs', '0+', [f('b', 'bool', '0+'), struct('inner', '0+', [f('u', 'uuid', '0+')])])];
  const uuid = Buffer.alloc(16, 7);
  const value = { a: -5, s: 'héllo', t: 42, xs: [{ b: true, inner: { u: uuid } }] };
  const bytes = encodeToBuffer(schema, value, 1, true);
  const back = decode(schema, new Reader(bytes), 1, true);
  t.equal(back.a, -5);
  t.equal(back.s, 'héllo');
  t.equal(back.t, 42);
  t.same(Buffer.from(back.xs[0].inner.u), uuid);
  // A reader that does not know tag 3 (version 0 has no tagged `t`) still parses the rest.
  const noTag: Schema = [f('a', 'int32', '0+'), f('s', 'string', '0+', { nullable: '0+' }), arr('xs', '0+', [f('b', 'bool', '0+'), struct('inner', '0+', [f('u', 'uuid', '0+')])])];
  const r = new Reader(bytes);
  const skipped = decode(noTag, r, 1, true);
  t.equal(skipped.s, 'héllo');
  t.equal(r.remaining, 0, 'the unknown tagged field was consumed');
  // Null string in compact form is a single 0 byte.
  t.equal(encodeToBuffer([f('s', 'string', '0+', { nullable: '0+' })], { s: null }, 0, true).toString('hex'), '0000');
});

t.test('codec: int64 values survive the wire (negative, large safe integers)', async (t) => {
  const schema: Schema = [f('x', 'int64', '0+')];
  for (const x of [0, -1, -2, 1, 2 ** 32, -(2 ** 32) - 1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 1_700_000_000_123]) {
    t.equal(decode(schema, new Reader(encodeToBuffer(schema, { x }, 0, false)), 0, false).x, x, String(x));
  }
});

t.test('codec: hostile input is refused with a ProtocolError naming the field', async (t) => {
  const schema: Schema = [f('name', 'string', '0+'), arr('items', '0+', 'int32'), f('blob', 'bytes', '0+', { nullable: '0+' })];
  const w = new Writer();
  w.int16(100); // string length past the end
  w.raw(Buffer.from('abc'));
  t.throws(() => decode(schema, new Reader(Buffer.concat(w.finish())), 0, false), { name: 'ProtocolError', message: /name: needs 100 bytes/ });

  const neg = Buffer.from([0, 1, 0x41, 0xff, 0xff, 0xff, 0xfe]); // "A", then array count -2
  t.throws(() => decode(schema, new Reader(neg), 0, false), { message: /items: invalid length -2/ });

  const nullNotAllowed = Buffer.from([0, 1, 0x41, 0xff, 0xff, 0xff, 0xff]); // array count -1, not nullable
  t.throws(() => decode(schema, new Reader(nullNotAllowed), 0, false), { message: /items: invalid length -1 \(null not allowed\)/ });

  const hugeCount = Buffer.from([0, 1, 0x41, 0x7f, 0xff, 0xff, 0xff]); // 2^31-1 elements announced
  t.throws(() => decode(schema, new Reader(hugeCount), 0, false), { message: /items: array count 2147483647 exceeds/ });

  const runaway = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // compact length varint never ends
  t.throws(() => decode(schema, new Reader(runaway), 0, true), ProtocolError);

  const truncated = Buffer.from([0, 1, 0x41, 0, 0, 0, 1, 0, 0]); // one int32 announced, two bytes present
  t.throws(() => decode(schema, new Reader(truncated), 0, false), { message: /items\[0\]: needs 4 bytes/ });
});

t.test('codec: requests encoded by kafkajs decode to the same values', async (t) => {
  const fetchV11 = kjs('requests/fetch/v11/request.js')({
    replicaId: -1,
    maxWaitTime: 500,
    minBytes: 1,
    maxBytes: 1048576,
    isolationLevel: 1,
    topics: [{ topic: 'sensors', partitions: [{ partition: 3, fetchOffset: '12345678901', maxBytes: 65536 }] }],
    rackId: 'rack-a',
  });
  const body: Buffer = await fetchV11.encode().then((e: { buffer: Buffer }) => e.buffer);
  const req = decode(handlers.get(1)!.request, new Reader(body), 11, false);
  t.equal(req.maxWaitMs, 500);
  t.equal(req.isolationLevel, 1);
  t.equal(req.topics[0].topic, 'sensors');
  t.equal(req.topics[0].partitions[0].fetchOffset, 12345678901);
  t.equal(req.topics[0].partitions[0].partitionMaxBytes, 65536);
  t.equal(req.rackId, 'rack-a');

  const produceV7 = kjs('requests/produce/v7/request.js')({
    acks: -1,
    timeout: 30000,
    compression: 0,
    topicData: [{ topic: 't', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v', headers: { h: 'x' } }] }] }],
  });
  const pbody: Buffer = await produceV7.encode().then((e: { buffer: Buffer }) => e.buffer);
  const preq = decode(handlers.get(0)!.request, new Reader(pbody), 7, false);
  t.equal(preq.acks, -1);
  t.equal(preq.transactionalId, null);
  const records: Buffer = preq.topicData[0].partitionData[0].records;
  t.equal(records[16], 2, 'records are a RecordBatch v2 (magic at byte 16), passed through untouched');
  t.equal(records.buffer, pbody.buffer, 'records are a view of the request frame, not a copy');

  // The whole request header + body, as kafkajs frames it.
  const framed = await kjs('request.js')({ correlationId: 77, clientId: 'tester', request: kjs('requests/metadata/v6/request.js')({ topics: ['a', 'b'], allowAutoTopicCreation: false }) });
  const frame: Buffer = framed.buffer;
  const r = new Reader(frame, 4);
  const header = readRequestHeader(r);
  t.same(header, { apiKey: 3, apiVersion: 6, correlationId: 77, clientId: 'tester' });
  const mreq = decode(handlers.get(3)!.request, r, 6, false);
  t.same(mreq.topics.map((x: { name: string }) => x.name), ['a', 'b']);
  t.equal(mreq.allowAutoTopicCreation, false);
});

t.test('codec: responses we encode decode with kafkajs (metadata v6, fetch v11 with records, api versions v2)', async (t) => {
  const meta = handlers.get(3)!;
  const mbytes = encodeToBuffer(
    meta.response,
    {
      brokers: [{ nodeId: 0, host: 'edge', port: 9092, rack: null }],
      clusterId: 'c1',
      controllerId: 0,
      topics: [{ errorCode: 0, name: 'a', isInternal: false, partitions: [{ errorCode: 0, partitionIndex: 0, leaderId: 0, leaderEpoch: 0, replicaNodes: [0], isrNodes: [0], offlineReplicas: [] }] }],
    },
    6,
    false,
  );
  const m = await kjs('requests/metadata/v6/response.js').decode(mbytes);
  t.equal(m.clusterId, 'c1');
  t.same(m.brokers, [{ nodeId: 0, host: 'edge', port: 9092, rack: null }]);
  t.equal(m.topicMetadata[0].partitionMetadata[0].leader, 0);

  // A real batch, encoded by kafkajs's own record-batch writer.
  const RecordBatch = kjs('recordBatch/v0/index.js').RecordBatch;
  const Record = kjs('recordBatch/record/v0/index.js');
  const batch = await RecordBatch({
    firstOffset: kjs('../utils/long.js').fromInt(5),
    firstTimestamp: 1_700_000_000_000,
    maxTimestamp: 1_700_000_000_000,
    records: [Record({ offsetDelta: 0, key: Buffer.from('k'), value: Buffer.from('payload'), headers: {} })],
  }).then((e: { buffer: Buffer }) => e.buffer);
  const batchBytes: Buffer = batch;
  const fh = handlers.get(1)!;
  const w = new Writer();
  encode(
    fh.response,
    {
      errorCode: 0,
      sessionId: 0,
      responses: [{ topic: 't', partitions: [{ partitionIndex: 0, errorCode: 0, highWatermark: 6, lastStableOffset: 6, logStartOffset: 0, abortedTransactions: null, preferredReadReplica: -1, records: batchBytes }] }],
    },
    11,
    false,
    w,
  );
  const fbytes = Buffer.concat(w.finish());
  const fr = await kjs('requests/fetch/v11/response.js').decode(fbytes);
  const part = fr.responses[0].partitions[0];
  t.equal(part.highWatermark, '6');
  t.equal(part.messages.length, 1);
  t.equal(part.messages[0].value.toString(), 'payload');

  const av = handlers.get(18)!;
  const abytes = encodeToBuffer(av.response, { errorCode: 0, apiKeys: [{ apiKey: 0, minVersion: 3, maxVersion: 9 }], throttleTimeMs: 0 }, 2, false);
  const a = await kjs('requests/apiVersions/v2/response.js').decode(abytes);
  t.same(a.apiVersions, [{ apiKey: 0, minVersion: 3, maxVersion: 9 }]);
});

t.test('codec: large records are written as their own chunk (no copy)', async (t) => {
  const schema: Schema = [f('records', 'records', '0+', { nullable: '0+' })];
  const big = Buffer.alloc(64 * 1024, 1);
  const w = new Writer();
  encode(schema, { records: big }, 0, false, w);
  const chunks = w.finish();
  t.ok(chunks.includes(big), 'the stored bytes are one of the output chunks');
  t.equal(chunks.reduce((n, c) => n + c.length, 0), 4 + big.length);
});
