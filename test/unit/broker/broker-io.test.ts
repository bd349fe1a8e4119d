// Purpose: the write path (append, produce with the one partitioner) and the read path (read,
// offsets, listOffset, waitForData woken by appends) on a real broker writing real files.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import kafkajs from 'kafkajs';
import { BrokerError } from '../../../host/errors/index.js';
import { encodeBatch } from '../../../host/core/index.js';
import { EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, MAX_TIMESTAMP } from '../../../host/broker/api.js';
import { openBroker, bytes, decodeAll } from './broker-fixture.js';
import { eventually } from '../../helpers/index.js';

type KafkajsPartitioner = (args: { topic: string; partitionMetadata: Array<{ partitionId: number; leader: number }>; message: { key?: Buffer | null } }) => number;
const kafkajsPartitioner = (kafkajs.Partitioners.DefaultPartitioner as unknown as () => KafkajsPartitioner)();

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err instanceof BrokerError ? err.code : `not a BrokerError: ${(err as Error).message}`;
  }
  return undefined;
}

t.test('produce: keyed records land where kafkajs would put them, every time, in input order', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('keyed', 6);
  const meta = Array.from({ length: 6 }, (_, i) => ({ partitionId: i, leader: 0 }));
  const keys = Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? bytes(`sensor-${i % 17}`) : randomBytes(1 + (i % 23))));
  keys.push(new Uint8Array(0)); // the empty key is hashed, not treated as null (as Kafka)
  const records = keys.map((key, i) => ({ key, value: bytes(`value-${i}`) }));
  const placed = await broker.produce('keyed', records, { acks: 1 });
  t.equal(placed.length, records.length);
  let mismatches = 0;
  placed.forEach((p, i) => {
    const expected = kafkajsPartitioner({ topic: 'keyed', partitionMetadata: meta, message: { key: Buffer.from(keys[i]) } });
    if (p.partition !== expected || broker.partitionForKey('keyed', keys[i]) !== expected) mismatches++;
  });
  t.equal(mismatches, 0, 'every partition matches kafkajs');
  // Same key again → same partition.
  const again = await broker.produce('keyed', [{ key: bytes('sensor-3'), value: bytes('again') }], { acks: 1 });
  t.equal(again[0].partition, placed[3].partition);
  // Returned offsets point at the right records.
  for (const p of [0, 1, 2, 3, 4, 5]) {
    const read = await broker.read({ topic: 'keyed', partition: p }, 0, { maxBytes: 1 << 20 });
    const byOffset = new Map(decodeAll(read.records).map((r) => [r.offset, r.value]));
    placed.forEach((pl, i) => {
      if (pl.partition === p && byOffset.get(pl.offset) !== `value-${i}`) mismatches++;
    });
  }
  t.equal(mismatches, 0, 'every returned offset holds its record');
});

t.test('produce: unkeyed records of one call share one partition; calls spread', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('unkeyed', 4);
  const used = new Set<number>();
  for (let call = 0; call < 40; call++) {
    const placed = await broker.produce('unkeyed', Array.from({ length: 5 }, (_, i) => ({ key: null, value: bytes(`${call}-${i}`) })), { acks: 1 });
    t.equal(new Set(placed.map((p) => p.partition)).size, 1, `call ${call} in one partition`);
    t.same(placed.map((p) => p.offset), [0, 1, 2, 3, 4].map((i) => placed[0].offset + i), 'consecutive offsets');
    used.add(placed[0].partition);
  }
  t.equal(used.size, 4, 'all partitions used across calls');
  // A batch that fills (past stickyBatchBytes = 16 KiB) moves on within a call.
  const big = await broker.produce('unkeyed', Array.from({ length: 8 }, () => ({ key: null, value: new Uint8Array(5000) })), { acks: 1 });
  t.ok(new Set(big.map((p) => p.partition)).size > 1, 'a full sticky batch switches partition');
});

t.test('produce: explicit partition, bad partition, bad records, headers and timestamps', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('p', 2);
  const r = await broker.produce('p', [{ key: bytes('a'), value: bytes('1'), headers: [{ key: 'mqtt.topic', value: bytes('a/b') }], timestampMs: 1_700_000_000_000 }], { acks: 1, partition: 1 });
  t.same(r, [{ topic: 'p', partition: 1, offset: 0 }]);
  const read = await broker.read({ topic: 'p', partition: 1 }, 0, { maxBytes: 10_000 });
  t.equal(decodeAll(read.records)[0].timestampMs, 1_700_000_000_000);
  t.equal(await codeOf(broker.produce('p', [{ key: null, value: bytes('x') }], { acks: 1, partition: 2 })), 'UNKNOWN_TOPIC_OR_PARTITION');
  t.equal(await codeOf(broker.produce('p', [{ key: 'str' as unknown as Uint8Array, value: null }], { acks: 1 })), 'INVALID_RECORD');
  t.equal(await codeOf(broker.produce('p', [{ key: null, value: null, timestampMs: -5 }], { acks: 1 })), 'INVALID_TIMESTAMP');
  t.equal(await codeOf(broker.produce('p', [{ key: null, value: bytes('x') }], { acks: 2 as 1 })), 'INVALID_REQUIRED_ACKS');
  t.same(await broker.produce('p', [], { acks: 1 }), []);
});

t.test('append: client batches get offsets; acks 0 is fire and forget; acks 2 and unknown partitions refused', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('raw', 2);
  const tp = { topic: 'raw', partition: 1 };
  const batch = encodeBatch([{ key: null, value: bytes('a') }, { key: null, value: bytes('b') }]);
  const first = await broker.append(tp, batch, { acks: -1 });
  t.same(first, { baseOffset: 0, lastOffset: 1, logAppendTimeMs: -1, logStartOffset: 0 });
  const second = await broker.append(tp, encodeBatch([{ key: null, value: bytes('c') }]), { acks: 0 });
  t.equal(second.baseOffset, 2);
  t.equal(await codeOf(broker.append(tp, batch, { acks: 2 as 1 })), 'INVALID_REQUIRED_ACKS');
  t.equal(await codeOf(broker.append({ topic: 'raw', partition: 2 }, batch, { acks: 1 })), 'UNKNOWN_TOPIC_OR_PARTITION');
  t.equal(await codeOf(broker.append({ topic: 'nope', partition: 0 }, batch, { acks: 1 })), 'UNKNOWN_TOPIC_OR_PARTITION');
  t.equal(await codeOf(broker.append(tp, new Uint8Array(0), { acks: 1 })), 'CORRUPT_MESSAGE');
  const flipped = batch.slice();
  flipped[flipped.length - 1] ^= 0xff;
  t.equal(await codeOf(broker.append(tp, flipped, { acks: 1 })), 'CORRUPT_MESSAGE', 'a CRC failure is refused');
  // acks=0 resolved once written; the record becomes readable once its fsync lands.
  await eventually(() => broker.offsets(tp).logEndOffset === 3);
  t.same(broker.offsets(tp), { logStartOffset: 0, highWatermark: 3, logEndOffset: 3 });
  t.same(decodeAll((await broker.read(tp, 0, { maxBytes: 1 << 20 })).records).map((r) => r.value), ['a', 'b', 'c']);
});

t.test('append: LogAppendTime topics stamp the broker time', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('lat', 1, { 'message.timestamp.type': 'LogAppendTime' });
  const before = Date.now();
  const r = await broker.append({ topic: 'lat', partition: 0 }, encodeBatch([{ key: null, value: bytes('x'), timestampMs: 1000 }]), { acks: 1 });
  t.ok(r.logAppendTimeMs >= before && r.logAppendTimeMs <= Date.now(), `logAppendTimeMs ${r.logAppendTimeMs}`);
});

t.test('read: offsets, out of range, bad sizes, and metrics in and out', async (t) => {
  const { broker, metrics } = await openBroker(t);
  await broker.createTopic('r', 1);
  const tp = { topic: 'r', partition: 0 };
  for (let i = 0; i < 5; i++) await broker.produce('r', [{ key: null, value: bytes(`m${i}`) }, { key: null, value: bytes(`n${i}`) }], { acks: 1 });
  const all = await broker.read(tp, 0, { maxBytes: 1 << 20 });
  t.equal(decodeAll(all.records).length, 10);
  t.equal(all.highWatermark, 10);
  const fromMiddle = await broker.read(tp, 5, { maxBytes: 1 << 20 });
  t.equal(decodeAll(fromMiddle.records)[0].offset, 4, 'starts at the batch holding offset 5 (as Kafka)');
  const atEnd = await broker.read(tp, 10, { maxBytes: 1 << 20 });
  t.equal(atEnd.records.byteLength, 0);
  const tiny = await broker.read(tp, 0, { maxBytes: 1 });
  t.equal(decodeAll(tiny.records).length, 2, 'the first batch comes whole even past maxBytes (KIP-74)');
  t.equal(await codeOf(broker.read(tp, 11, { maxBytes: 100 })), 'OFFSET_OUT_OF_RANGE');
  t.equal(await codeOf(broker.read(tp, -1, { maxBytes: 100 })), 'OFFSET_OUT_OF_RANGE');
  t.equal(await codeOf(broker.read(tp, 0, { maxBytes: -1 })), 'INVALID_FETCH_SIZE');
  t.equal(await codeOf(broker.read({ topic: 'r', partition: 1 }, 0, { maxBytes: 100 })), 'UNKNOWN_TOPIC_OR_PARTITION');
  const labels = { topic: 'r' };
  t.equal(metrics.get('tributary_broker_records_in_total')!.value(labels), 10);
  t.ok(metrics.get('tributary_broker_bytes_in_total')!.value(labels) > 5 * 61 + 10);
  t.equal(metrics.get('tributary_broker_records_out_total')!.value(labels), 10 + 6 + 2);
  t.equal(metrics.get('tributary_broker_bytes_out_total')!.value(labels), all.records.byteLength + fromMiddle.records.byteLength + tiny.records.byteLength);
  t.equal(metrics.get('tributary_broker_partitions')!.value(), 1);
  t.match(metrics.render(), /tributary_broker_appends_total\{topic="r"\} 5/);
});

t.test('listOffset: earliest, latest, max timestamp and by timestamp', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('ts', 1);
  const tp = { topic: 'ts', partition: 0 };
  t.same(await broker.listOffset(tp, LATEST_TIMESTAMP), { offset: 0, timestampMs: -1 });
  t.same(await broker.listOffset(tp, MAX_TIMESTAMP), { offset: -1, timestampMs: -1 }, 'empty log');
  for (const ts of [1000, 2000, 5000, 3000]) await broker.produce('ts', [{ key: null, value: bytes(String(ts)), timestampMs: ts }], { acks: 1 });
  t.same(await broker.listOffset(tp, EARLIEST_TIMESTAMP), { offset: 0, timestampMs: -1 });
  t.same(await broker.listOffset(tp, LATEST_TIMESTAMP), { offset: 4, timestampMs: -1 });
  t.same(await broker.listOffset(tp, MAX_TIMESTAMP), { offset: 2, timestampMs: 5000 });
  t.same(await broker.listOffset(tp, 1500), { offset: 1, timestampMs: 2000 });
  t.same(await broker.listOffset(tp, 0), { offset: 0, timestampMs: 1000 });
  t.same(await broker.listOffset(tp, 6000), { offset: -1, timestampMs: -1 }, 'nothing at or after');
  t.equal(await codeOf(broker.listOffset(tp, -7)), 'INVALID_REQUEST');
});

t.test('waitForData: woken promptly by the append that satisfies it; times out; aborts; no leaks', async (t) => {
  const { broker, metrics } = await openBroker(t);
  await broker.createTopic('w', 2);
  const tp0 = { topic: 'w', partition: 0 };
  // Woken by an append.
  const started = Date.now();
  const parked = broker.waitForData([{ ...tp0, afterOffset: 0 }, { topic: 'w', partition: 1, afterOffset: 0 }], 30_000);
  t.equal(broker.waitingReaders, 1);
  setTimeout(() => void broker.produce('w', [{ key: null, value: bytes('x') }], { acks: 1, partition: 1 }), 20);
  await parked;
  const wokenMs = Date.now() - started;
  t.ok(wokenMs < 10_000, `woken by the append after ${wokenMs} ms, not by the 30 s timeout`);
  t.equal(broker.waitingReaders, 0);
  // Already satisfied: returns at once.
  await broker.waitForData([{ topic: 'w', partition: 1, afterOffset: 0 }], 30_000);
  // An append to another partition, or not past the offset, does not wake it.
  const p2 = broker.waitForData([{ ...tp0, afterOffset: 1 }], 200);
  await broker.produce('w', [{ key: null, value: bytes('y') }], { acks: 1, partition: 1 });
  await broker.produce('w', [{ key: null, value: bytes('z') }], { acks: 1, partition: 0 }); // offset 0: not past 1... end offset 1
  t.equal(broker.waitingReaders, 1, 'still parked: partition 0 has no offset 1 yet');
  await p2; // times out
  t.equal(broker.waitingReaders, 0);
  // Abort.
  const ac = new AbortController();
  const p3 = broker.waitForData([{ ...tp0, afterOffset: 50 }], 30_000, ac.signal);
  setTimeout(() => ac.abort(), 10);
  await p3;
  t.equal(broker.waitingReaders, 0);
  t.equal(metrics.get('tributary_broker_waiting_readers')!.value(), 0);
  t.equal(await codeOf(broker.waitForData([{ topic: 'w', partition: 9, afterOffset: 0 }], 10)), 'UNKNOWN_TOPIC_OR_PARTITION');
  // Close releases parked readers.
  const p4 = broker.waitForData([{ ...tp0, afterOffset: 50 }], 30_000);
  await broker.close();
  await p4;
});

t.test('concurrent produce and append: offsets dense, unique, per partition', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('dense', 4);
  const calls = Array.from({ length: 60 }, (_, c) =>
    broker.produce(
      'dense',
      Array.from({ length: 1 + (c % 4) }, (_, i) => ({ key: bytes(`key-${(c * 7 + i) % 23}`), value: bytes(`${c}:${i}`) })),
      { acks: c % 2 === 0 ? 1 : -1 },
    ),
  );
  const raw = Array.from({ length: 20 }, (_, i) => broker.append({ topic: 'dense', partition: i % 4 }, encodeBatch([{ key: null, value: bytes(`raw${i}`) }]), { acks: 1 }));
  const placed = (await Promise.all(calls)).flat();
  const appended = await Promise.all(raw);
  const byPartition = new Map<number, number[]>();
  for (const p of placed) byPartition.set(p.partition, [...(byPartition.get(p.partition) ?? []), p.offset]);
  appended.forEach((a, i) => byPartition.set(i % 4, [...(byPartition.get(i % 4) ?? []), a.baseOffset]));
  let total = 0;
  for (const [p, offsets] of byPartition) {
    offsets.sort((a, b) => a - b);
    t.same(offsets, offsets.map((_, i) => i), `partition ${p}: 0..${offsets.length - 1} with no gap or repeat`);
    t.equal(broker.offsets({ topic: 'dense', partition: p }).logEndOffset, offsets.length);
    total += offsets.length;
  }
  t.equal(total, placed.length + 20);
});

t.test('produce: broker-built batches use the topic compression.type; client batches are stored as sent', async (t) => {
  const { broker } = await openBroker(t);
  const { readBatchHeader, codecSupport } = await import('../../../host/core/index.js');
  const codecs = (['gzip', 'snappy', 'lz4', 'zstd'] as const).filter((c) => codecSupport()[c].compress);
  t.ok(codecs.includes('gzip'), `codecs available: ${codecs.join(', ')}`);
  for (const codec of codecs) {
    await broker.createTopic(`c-${codec}`, 1, { 'compression.type': codec });
    const value = bytes('x'.repeat(500));
    await broker.produce(`c-${codec}`, [{ key: bytes('k'), value }, { key: bytes('k2'), value }], { acks: 1 });
    const read = await broker.read({ topic: `c-${codec}`, partition: 0 }, 0, { maxBytes: 1 << 20 });
    const header = readBatchHeader(read.records);
    t.equal(header.compression, ['none', 'gzip', 'snappy', 'lz4', 'zstd'].indexOf(codec), `${codec} batch`);
    t.ok(read.records.byteLength < 1000, `${codec} compressed 1000 bytes of values to ${read.records.byteLength}`);
    t.same(decodeAll(read.records).map((r) => r.value?.length), [500, 500]);
  }
  await broker.createTopic('c-none', 1, { 'compression.type': 'uncompressed' });
  await broker.produce('c-none', [{ key: null, value: bytes('plain') }], { acks: 1 });
  t.equal(readBatchHeader((await broker.read({ topic: 'c-none', partition: 0 }, 0, { maxBytes: 1 << 20 })).records).compression, 0);
  // A client's gzip batch on an uncompressed topic is kept as sent (one copy, no recompression).
  await broker.append({ topic: 'c-none', partition: 0 }, encodeBatch([{ key: null, value: bytes('zipped') }], { compression: 1 }), { acks: 1 });
  t.equal(readBatchHeader((await broker.read({ topic: 'c-none', partition: 0 }, 1, { maxBytes: 1 << 20 })).records).compression, 1);
});

t.test('waitForData: maxWaitMs is clamped to maxWaitMsMax', async (t) => {
  const { broker } = await openBroker(t, { maxWaitMsMax: 50 });
  await broker.createTopic('clamp', 1);
  const started = Date.now();
  await broker.waitForData([{ topic: 'clamp', partition: 0, afterOffset: 0 }], 60_000);
  t.ok(Date.now() - started < 10_000, `returned after ${Date.now() - started} ms, not 60 s`);
  t.equal(broker.waitingReaders, 0);
});
