// RecordBatch v2 through the core: batches it encodes decode with kafkajs's own decoder and
// batches kafkajs encodes decode with the core (uncompressed and gzip); random records round
// trip through every codec this process has; header helpers keep the CRC valid.
import t, { type Test } from 'tap';
import { createRequire } from 'node:module';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import type { RecordInput } from '../../../host/broker/api.js';
import { BrokerError } from '../../../host/errors/index.js';
import {
  codecSupport, CODEC_NAMES, decodeBatch, decodeBatches, defaultVerifyOptions, encodeBatch, readBatchHeader,
  restampLogAppendTime, setBaseOffset, setMaxTimestamp, setPartitionLeaderEpoch, verifyBatches,
  CRC, ATTRIBUTES, RECORDS, LOG_OVERHEAD, type DecodedBatch,
} from '../../../host/core/index.js';
import { seededRandom } from '../../helpers/seeded-random.js';

const require = createRequire(import.meta.url);
/* eslint-disable @typescript-eslint/no-explicit-any */
const KafkaDecoder: any = require('kafkajs/src/protocol/decoder');
const kafkaBatchDecode: any = require('kafkajs/src/protocol/recordBatch/v0/decoder');
const { RecordBatch: kafkaRecordBatch }: any = require('kafkajs/src/protocol/recordBatch/v0');
const kafkaRecord: any = require('kafkajs/src/protocol/recordBatch/record/v0');
const Long: any = require('kafkajs/src/utils/long');
/* eslint-enable @typescript-eslint/no-explicit-any */

const enc = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('utf8'));

const rng = seededRandom;

function caught(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  return undefined;
}

const UNICODE = ['température', '温度', 'Δ', '🙂', 'ok', 'ß', ''];

function randomRecords(rand: () => number, n: number, maxValue: number): RecordInput[] {
  const out: RecordInput[] = [];
  const base = 1_700_000_000_000;
  for (let i = 0; i < n; i++) {
    const r = rand();
    const key = r < 0.2 ? null : enc(`sensor/${Math.floor(rand() * 1000)}/${UNICODE[i % UNICODE.length]}`);
    const valueLen = Math.floor(rand() * rand() * maxValue);
    const value = rand() < 0.1 ? null : Uint8Array.from({ length: valueLen }, () => Math.floor(rand() * 256));
    const hc = rand() < 0.5 ? 0 : Math.floor(rand() * 20);
    const headers = [] as Array<{ key: string; value: Uint8Array | null }>;
    for (let h = 0; h < hc; h++) {
      headers.push({ key: `h${h}-${UNICODE[h % UNICODE.length]}`, value: rand() < 0.2 ? null : enc(`v${Math.floor(rand() * 1e6)}`) });
    }
    out.push({ key, value, timestampMs: base + Math.floor((rand() - 0.3) * 100_000), headers });
  }
  return out;
}

function sameRecords(t: Test, decoded: DecodedBatch, input: RecordInput[], baseOffset: number): void {
  t.equal(decoded.records.length, input.length, 'record count');
  let bad = 0;
  decoded.records.forEach((r, i) => {
    const want = input[i];
    const ok =
      r.offset === baseOffset + i &&
      r.timestampMs === want.timestampMs &&
      Buffer.compare(Buffer.from(r.key ?? []), Buffer.from(want.key ?? [])) === 0 &&
      (r.key === null) === (want.key === null) &&
      (r.value === null) === (want.value === null) &&
      Buffer.compare(Buffer.from(r.value ?? []), Buffer.from(want.value ?? [])) === 0 &&
      r.headers.length === (want.headers ?? []).length &&
      r.headers.every((h, k) => {
        const w = want.headers![k];
        return h.key === w.key && (h.value === null) === (w.value === null) && Buffer.compare(Buffer.from(h.value ?? []), Buffer.from(w.value ?? [])) === 0;
      });
    if (!ok && bad++ < 3) t.fail(`record ${i} differs: ${JSON.stringify({ got: r, want })}`);
  });
  t.equal(bad, 0, 'every record equal');
}

t.test('batch: a core-encoded batch decodes with kafkajs (fields, records, headers, CRC)', async (t) => {
  const records: RecordInput[] = [
    { key: enc('k1'), value: enc('{"t":21.5}'), timestampMs: 1_700_000_000_123, headers: [{ key: 'mqtt-topic', value: enc('site/a/temp') }] },
    { key: null, value: enc('v2'), timestampMs: 1_700_000_000_100 },
    { key: enc('k3'), value: null, timestampMs: 1_700_000_000_200, headers: [{ key: 'none', value: null }] },
  ];
  const batch = encodeBatch(records, { baseOffset: 42, partitionLeaderEpoch: 7, producerId: 9001, producerEpoch: 3, baseSequence: 17 });
  t.equal(new DataView(batch.buffer, batch.byteOffset).getUint32(CRC), nativeCrc32c(Buffer.from(batch.subarray(ATTRIBUTES))), 'CRC agrees with @node-rs/crc32');
  const k = await kafkaBatchDecode(new KafkaDecoder(Buffer.from(batch)));
  t.equal(k.firstOffset, '42');
  t.equal(k.partitionLeaderEpoch, 7);
  t.equal(k.lastOffsetDelta, 2);
  t.equal(k.firstTimestamp, '1700000000123');
  t.equal(k.maxTimestamp, '1700000000200');
  t.equal(k.producerId, '9001');
  t.equal(k.producerEpoch, 3);
  t.equal(k.firstSequence, 17);
  t.equal(k.records.length, 3);
  t.same(k.records.map((r: { offset: string }) => r.offset), ['42', '43', '44']);
  t.same(k.records.map((r: { timestamp: string }) => r.timestamp), ['1700000000123', '1700000000100', '1700000000200']);
  t.equal(k.records[0].key.toString(), 'k1');
  t.equal(k.records[0].value.toString(), '{"t":21.5}');
  t.equal(k.records[0].headers['mqtt-topic'].toString(), 'site/a/temp');
  t.equal(k.records[1].key, null);
  t.equal(k.records[2].value, null);
  t.equal(k.records[2].headers.none, null);
});

t.test('batch: gzip batches encoded by the core decode with kafkajs', async (t) => {
  const records = randomRecords(rng(11), 50, 300);
  for (const r of records) r.headers = (r.headers ?? []).filter((h, i, all) => all.findIndex((x) => x.key === h.key) === i);
  const batch = encodeBatch(records, { compression: 1, baseOffset: 1000 });
  t.equal(readBatchHeader(batch).compression, 1);
  const k = await kafkaBatchDecode(new KafkaDecoder(Buffer.from(batch)));
  t.equal(k.records.length, 50);
  let bad = 0;
  k.records.forEach((r: { offset: string; key: Buffer | null; value: Buffer | null; timestamp: string }, i: number) => {
    if (r.offset !== String(1000 + i)) bad++;
    if (str(r.key) !== str(records[i].key)) bad++;
    if ((r.value === null) !== (records[i].value === null)) bad++;
    if (r.value && Buffer.compare(r.value, Buffer.from(records[i].value!)) !== 0) bad++;
    if (r.timestamp !== String(records[i].timestampMs)) bad++;
  });
  t.equal(bad, 0);
});

async function kafkajsBatch(records: RecordInput[], compression: number, firstOffset = 0, lastOffsetDelta?: number, offsetDeltas?: number[]): Promise<Buffer> {
  const first = records[0].timestampMs!;
  const max = Math.max(...records.map((r) => r.timestampMs!));
  const encoded = records.map((r, i) =>
    kafkaRecord({
      offsetDelta: offsetDeltas ? offsetDeltas[i] : i,
      timestampDelta: r.timestampMs! - first,
      key: r.key === null ? null : Buffer.from(r.key),
      value: r.value === null ? null : Buffer.from(r.value),
      headers: Object.fromEntries((r.headers ?? []).map((h) => [h.key, h.value === null ? null : Buffer.from(h.value)])),
    }),
  );
  const e = await kafkaRecordBatch({
    compression,
    firstOffset: Long.fromNumber(firstOffset),
    firstTimestamp: first,
    maxTimestamp: max,
    lastOffsetDelta: lastOffsetDelta ?? records.length - 1,
    records: encoded,
  });
  return e.buffer as Buffer;
}

t.test('batch: kafkajs-encoded batches (none, gzip) verify and decode with the core', async (t) => {
  const records = randomRecords(rng(5), 40, 500);
  // kafkajs writes headers from an object (unique keys) and cannot write null header values.
  for (const r of records) r.headers = (r.headers ?? []).filter((h, i, all) => h.value !== null && all.findIndex((x) => x.key === h.key) === i);
  for (const compression of [0, 1]) {
    const buf = await kafkajsBatch(records, compression, 77);
    const hs = verifyBatches(buf, defaultVerifyOptions);
    t.equal(hs.length, 1);
    t.equal(hs[0].compression, compression);
    t.equal(hs[0].recordCount, 40);
    sameRecords(t, decodeBatch(buf), records, 77);
  }
});

for (let codec = 0; codec <= 4; codec++) {
  const name = CODEC_NAMES[codec];
  const support = codecSupport()[name];
  const skip = support.compress && support.decompress ? false : `${name} is not available in this process`;
  t.test(`batch: random records round trip through ${name}`, { skip }, async (t) => {
    const rand = rng(2024 + codec);
    for (let round = 0; round < 6; round++) {
      const n = 1 + Math.floor(rand() * 200);
      const records = randomRecords(rand, n, round === 5 ? 20_000 : 400);
      const batch = encodeBatch(records, { compression: codec as 0 | 1 | 2 | 3 | 4, baseOffset: round * 1000 });
      verifyBatches(batch, { ...defaultVerifyOptions, maxBatchBytes: 64 << 20 });
      t.equal(readBatchHeader(batch).compression, codec, `${name}: codec in attributes`);
      sameRecords(t, decodeBatch(batch), records, round * 1000);
    }
  });
}

t.test('batch: edge records (empty key/value vs null, huge value, many headers, unicode keys)', async (t) => {
  const records: RecordInput[] = [
    { key: new Uint8Array(0), value: new Uint8Array(0), timestampMs: 5 },
    { key: null, value: null, timestampMs: 0 },
    { key: enc('big'), value: new Uint8Array(3 << 20).fill(7), timestampMs: 10 },
    { key: enc('🙂'), value: enc('x'), timestampMs: -5, headers: Array.from({ length: 1000 }, (_, i) => ({ key: `ключ-${i}`, value: i % 3 ? enc(`${i}`) : null })) },
  ];
  const batch = encodeBatch(records);
  verifyBatches(batch, { ...defaultVerifyOptions, maxBatchBytes: 8 << 20 });
  const d = decodeBatch(batch);
  sameRecords(t, d, records, 0);
  t.equal(d.records[0].key!.byteLength, 0, 'empty key stays empty, not null');
  t.equal(d.header.baseTimestamp, 5, 'baseTimestamp is the first record timestamp');
  t.equal(d.header.maxTimestamp, 10);
});

t.test('batch: encode options land in the header', async (t) => {
  const b = encodeBatch([{ key: null, value: enc('a'), timestampMs: 1 }], {
    baseOffset: 2 ** 40, partitionLeaderEpoch: 12, timestampType: 1, producerId: 2 ** 45, producerEpoch: 32000, baseSequence: 2 ** 31 - 1, isTransactional: true, isControl: true,
  });
  const h = readBatchHeader(b);
  t.equal(h.baseOffset, 2 ** 40);
  t.equal(h.partitionLeaderEpoch, 12);
  t.equal(h.timestampType, 1);
  t.equal(h.producerId, 2 ** 45);
  t.equal(h.producerEpoch, 32000);
  t.equal(h.baseSequence, 2 ** 31 - 1);
  t.ok(h.isTransactional);
  t.ok(h.isControl);
  t.equal(h.magic, 2);
  t.equal(h.totalBytes, b.byteLength);
  t.equal(h.lastOffset, 2 ** 40);
  const d = encodeBatch([{ key: null, value: null }]);
  t.equal(readBatchHeader(d).producerId, -1, 'defaults: no producer id');
  t.ok(Math.abs(readBatchHeader(d).baseTimestamp - Date.now()) < 60_000, 'default timestamp is now');
});

t.test('batch: setBaseOffset and setPartitionLeaderEpoch keep the CRC valid', async (t) => {
  const b = encodeBatch(randomRecords(rng(3), 5, 50));
  const crc = readBatchHeader(b).crc;
  setBaseOffset(b, 0, 123_456_789_012);
  setPartitionLeaderEpoch(b, 0, 99);
  const h = verifyBatches(b, defaultVerifyOptions)[0];
  t.equal(h.baseOffset, 123_456_789_012);
  t.equal(h.partitionLeaderEpoch, 99);
  t.equal(h.crc, crc, 'CRC unchanged');
  t.equal(decodeBatch(b).records[4].offset, 123_456_789_016);
});

t.test('batch: restampLogAppendTime sets type and maxTimestamp, recomputes the CRC, decode uses it', async (t) => {
  const records = randomRecords(rng(8), 4, 50);
  const b = encodeBatch(records);
  restampLogAppendTime(b, 0, 1_800_000_000_000);
  const h = verifyBatches(b, defaultVerifyOptions)[0];
  t.equal(h.timestampType, 1);
  t.equal(h.maxTimestamp, 1_800_000_000_000);
  t.ok(decodeBatch(b).records.every((r) => r.timestampMs === 1_800_000_000_000), 'every record takes the log append time');
  const k = await kafkaBatchDecode(new KafkaDecoder(Buffer.from(b)));
  t.equal(k.records[0].timestamp, '1800000000000', 'kafkajs agrees');
  setMaxTimestamp(b, 0, 1_900_000_000_000);
  t.equal(verifyBatches(b, defaultVerifyOptions)[0].maxTimestamp, 1_900_000_000_000);
});

t.test('batch: several batches in one buffer are walked batch by batch', async (t) => {
  const parts = [encodeBatch(randomRecords(rng(1), 3, 30), { baseOffset: 0 }), encodeBatch(randomRecords(rng(2), 2, 30), { baseOffset: 3, compression: 1 }), encodeBatch(randomRecords(rng(3), 1, 30), { baseOffset: 5 })];
  const all = Buffer.concat(parts);
  const hs = verifyBatches(all, defaultVerifyOptions);
  t.same(hs.map((h) => h.baseOffset), [0, 3, 5]);
  t.same(hs.map((h) => h.totalBytes), parts.map((p) => p.byteLength));
  const shallow = verifyBatches(all, { ...defaultVerifyOptions, deep: false });
  t.same(shallow.map((h) => h.crc), hs.map((h) => h.crc), 'shallow walk sees the same batches');
  const ds = decodeBatches(all);
  t.same(ds.flatMap((d) => d.records.map((r) => r.offset)), [0, 1, 2, 3, 4, 5]);
  const cut = all.subarray(0, all.byteLength - 10);
  t.throws(() => decodeBatches(cut), { code: 'CORRUPT_MESSAGE' }, 'a cut tail is an error by default');
  t.equal(decodeBatches(cut, { partialTail: 'ignore' }).length, 2, 'or skipped when asked (fetch responses)');
});

t.test('batch: compacted batches (gaps in offset deltas) decode, and verify only when not strict', async (t) => {
  const records = randomRecords(rng(4), 3, 20).map((r) => ({ ...r, headers: [] }));
  const buf = await kafkajsBatch(records, 0, 100, 9, [0, 4, 9]);
  t.throws(() => verifyBatches(buf, defaultVerifyOptions), { code: 'INVALID_RECORD' }, 'strict: lastOffsetDelta must be count-1');
  const hs = verifyBatches(buf, { ...defaultVerifyOptions, strictOffsets: false });
  t.equal(hs[0].lastOffset, 109);
  t.same(decodeBatch(buf).records.map((r) => r.offset), [100, 104, 109]);
});

t.test('batch: limits are enforced at the boundary', async (t) => {
  const b = encodeBatch([{ key: null, value: new Uint8Array(1000), timestampMs: 1 }]);
  t.equal(verifyBatches(b, { ...defaultVerifyOptions, maxBatchBytes: b.byteLength }).length, 1, 'exactly at the limit passes');
  const err = caught(() => verifyBatches(b, { ...defaultVerifyOptions, maxBatchBytes: b.byteLength - 1 }));
  t.ok(err instanceof BrokerError && err.code === 'MESSAGE_TOO_LARGE' && /batch 0/.test(err.message), `one byte over: ${err?.message}`);
  const records = b.byteLength - RECORDS;
  const z = encodeBatch([{ key: null, value: new Uint8Array(1000), timestampMs: 1 }], { compression: 1 });
  t.equal(verifyBatches(z, { ...defaultVerifyOptions, maxDecompressedBytes: records }).length, 1, 'records exactly at the decompressed limit pass');
  const over = caught(() => verifyBatches(z, { ...defaultVerifyOptions, maxDecompressedBytes: records - 1 }));
  t.ok(over instanceof BrokerError && over.code === 'CORRUPT_MESSAGE' && over.message.includes(String(records - 1)), `one byte over names the limit: ${over?.message}`);
  t.equal(b.byteLength, readBatchHeader(b).batchLength + LOG_OVERHEAD);
});

t.test('batch: inputs larger than one wasm copy (4 MiB) verify and decode batch by batch', async (t) => {
  const big = encodeBatch([{ key: enc('big'), value: new Uint8Array(5 << 20).fill(3), timestampMs: 1 }], { baseOffset: 0 });
  const small = Array.from({ length: 5 }, (_, i) => encodeBatch([{ key: null, value: new Uint8Array(1 << 20).fill(i), timestampMs: 2 }], { baseOffset: 1 + i }));
  const all = Buffer.concat([big, ...small]);
  const limits = { ...defaultVerifyOptions, maxBatchBytes: 8 << 20 };
  t.equal(verifyBatches(all, { ...limits, deep: false }).length, 6, 'shallow');
  t.equal(verifyBatches(all, limits).length, 6, 'deep');
  const ds = decodeBatches(all);
  t.equal(ds[0].records[0].value!.byteLength, 5 << 20);
  t.same(ds.slice(1).map((d) => d.records[0].value![100]), [0, 1, 2, 3, 4]);
  const flipped = Buffer.from(all);
  flipped[big.byteLength + small[0].byteLength + 500] ^= 4;
  t.throws(() => verifyBatches(flipped, { ...limits, deep: false }), { code: 'CORRUPT_MESSAGE', message: /batch 2 at byte \d+: CRC-32C mismatch/ });
  t.throws(() => decodeBatches(flipped), { code: 'CORRUPT_MESSAGE' });
  t.equal(decodeBatches(flipped, { verifyCrc: false }).length, 6, 'verifyCrc: false skips the CRC');
});

t.test('batch: encoding nothing is refused', async (t) => {
  t.throws(() => encodeBatch([]), { code: 'INVALID_RECORD' });
  t.throws(() => encodeBatch([{ key: null, value: null, timestampMs: 1.5 }]), { code: 'INVALID_TIMESTAMP' }, 'fractional timestamp');
  t.throws(() => encodeBatch([{ key: null, value: null, timestampMs: NaN }]), { code: 'INVALID_TIMESTAMP' }, 'NaN timestamp');
  t.throws(() => encodeBatch([{ key: null, value: null }], { compression: 6 as 1 }), { code: 'UNSUPPORTED_COMPRESSION_TYPE' });
});
