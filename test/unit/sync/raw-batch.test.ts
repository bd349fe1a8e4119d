// Purpose: raw forwarding's two byte operations against the core's own decoder — the origin
// appended to a stored batch's last record leaves every other record byte-identical, keeps the
// last record's own fields and headers, and yields a batch whose CRC and framing the core
// verifies once the producer stamps it; and which stored batches qualify (each refusal reason,
// the record-count and byte bounds on both sides).
import t from 'tap';
import { decodeBatch, encodeBatch, readBatchHeader, verifyBatches, type RecordInput } from '../../../host/core/index.js';
import { rawOutgoing } from '../../../host/kafka/client/producer.js';
import { ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_SITE, ORIGIN_TOPIC, originOffset, type Origin } from '../../../host/sync/origin.js';
import { originOverheadBytes, rawForwardable, withBatchOrigin } from '../../../host/sync/raw-batch.js';

const origin: Origin = { site: 'plant-7', topic: 'sensors.temp', partition: 2 };
const text = (s: string) => Buffer.from(s, 'utf8');

function records(n: number, valueBytes = 20): RecordInput[] {
  return Array.from({ length: n }, (_, i) => ({
    key: i % 3 === 0 ? null : text(`k${i}`),
    value: i % 5 === 4 ? null : text(`v${i}`.padEnd(valueBytes, 'x')),
    timestampMs: 1_700_000_000_000 + i * 7,
    headers: i % 2 === 0 ? [{ key: 'h', value: text(`hv${i}`) }] : [],
  }));
}

t.test('raw batch: origin on the last record only, the others byte-identical, CRC valid after stamping', async (t) => {
  for (const n of [1, 2, 64, 300]) {
    const stored = encodeBatch(records(n), { baseOffset: 1000, producerId: 77, producerEpoch: 3, baseSequence: 10 });
    const h = readBatchHeader(stored);
    const withOrigin = withBatchOrigin(stored, 0, h, origin);
    const sent = rawOutgoing(withOrigin, h.recordCount).bytes(9001, 4, 123);
    t.doesNotThrow(() => verifyBatches(sent), `n=${n}: the core verifies CRC and framing`);
    const before = decodeBatch(stored).records;
    const after = decodeBatch(sent);
    t.equal(after.header.producerId, 9001);
    t.equal(after.header.producerEpoch, 4);
    t.equal(after.header.baseSequence, 123);
    t.equal(after.header.recordCount, n);
    t.equal(after.header.baseTimestamp, h.baseTimestamp, 'timestamps kept');
    t.equal(after.header.maxTimestamp, h.maxTimestamp);
    t.same(after.records.slice(0, -1), before.slice(0, -1), `n=${n}: records before the last are unchanged`);
    const last = after.records[n - 1];
    const was = before[n - 1];
    t.same({ key: last.key, value: last.value, offset: last.offset, timestampMs: last.timestampMs }, { key: was.key, value: was.value, offset: was.offset, timestampMs: was.timestampMs });
    t.same(last.headers.slice(0, was.headers.length), was.headers, 'its own headers first');
    t.same(last.headers.slice(was.headers.length).map((x) => x.key), [ORIGIN_SITE, ORIGIN_TOPIC, ORIGIN_PARTITION, ORIGIN_OFFSET]);
    t.equal(originOffset(last, origin), 1000 + n - 1, 'origin offset = the last record\'s source offset');
    t.ok(sent.byteLength - stored.byteLength <= originOverheadBytes(origin), 'growth within the bound used for sizing');
  }
});

t.test('raw batch: which stored batches qualify', async (t) => {
  const limits = { recordsMin: 32, bytesMax: 1_000_000 };
  const ok = encodeBatch(records(32), { baseOffset: 100 });
  t.ok(rawForwardable(ok, 0, readBatchHeader(ok), 100, origin, limits), '32 records at the position: raw');
  const small = encodeBatch(records(31), { baseOffset: 100 });
  t.notOk(rawForwardable(small, 0, readBatchHeader(small), 100, origin, limits), '31 records (below rawBatchRecordsMin): re-encoded');
  t.notOk(rawForwardable(ok, 0, readBatchHeader(ok), 101, origin, limits), 'starts below the position: re-encoded');
  const lz4 = encodeBatch(records(64), { baseOffset: 100, compression: 3 });
  t.notOk(rawForwardable(lz4, 0, readBatchHeader(lz4), 100, origin, limits), 'compressed: re-encoded');
  const logAppend = encodeBatch(records(64), { baseOffset: 100, timestampType: 1 });
  t.notOk(rawForwardable(logAppend, 0, readBatchHeader(logAppend), 100, origin, limits), 'LogAppendTime: re-encoded');
  const carrying = records(64);
  carrying[40].headers = [{ key: ORIGIN_SITE, value: text('elsewhere') }];
  const withOrig = encodeBatch(carrying, { baseOffset: 100 });
  t.notOk(rawForwardable(withOrig, 0, readBatchHeader(withOrig), 100, origin, limits), 'a record with an origin header: decided per record');
  const h = readBatchHeader(ok);
  const exact = h.totalBytes + originOverheadBytes(origin);
  t.ok(rawForwardable(ok, 0, h, 100, origin, { recordsMin: 1, bytesMax: exact }), 'bytesMax boundary: exactly fits');
  t.notOk(rawForwardable(ok, 0, h, 100, origin, { recordsMin: 1, bytesMax: exact - 1 }), 'bytesMax boundary: one byte over');
});
