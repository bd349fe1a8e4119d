// RecordBatch encode/decode: the core vs kafkajs's own RecordBatch encoder/decoder (its
// internal protocol modules), 1,000 records of ~100 bytes (sensor JSON with a key and one
// header), uncompressed and lz4. kafkajs has no built-in lz4: it gets lz4js as its codec, the
// usual pure-JS setup. records/s and MB/s of record bytes, median of interleaved repetitions.
import { createRequire } from 'node:module';
import type { RecordInput } from '../host/broker/api.js';
import { codecSupport, decodeBatch, encodeBatch, verifyBatches, defaultVerifyOptions } from '../host/core/index.js';
import { median, rssMiB, type Table } from './table.js';
import { cpuMs } from './crc32c.bench.js';

export const subject = 'batch';
export const order = 11;

const require = createRequire(import.meta.url);
/* eslint-disable @typescript-eslint/no-explicit-any */
const KafkaDecoder: any = require('kafkajs/src/protocol/decoder');
const kafkaBatchDecode: any = require('kafkajs/src/protocol/recordBatch/v0/decoder');
const { RecordBatch: kafkaRecordBatch }: any = require('kafkajs/src/protocol/recordBatch/v0');
const kafkaRecord: any = require('kafkajs/src/protocol/recordBatch/record/v0');
const { Codecs }: any = require('kafkajs/src/protocol/message/compression');
const Long: any = require('kafkajs/src/utils/long');
const lz4js: any = require('lz4js');
/* eslint-enable @typescript-eslint/no-explicit-any */
Codecs[3] = () => ({
  compress: async (encoder: { buffer: Buffer }) => Buffer.from(lz4js.compress(encoder.buffer)),
  decompress: async (buf: Buffer) => Buffer.from(lz4js.decompress(buf)),
});

const RECORDS = 1000;

function makeRecords(): RecordInput[] {
  const enc = new TextEncoder();
  const out: RecordInput[] = [];
  for (let i = 0; i < RECORDS; i++) {
    const sensor = `temp-${i % 113}`;
    out.push({
      key: enc.encode(`plant-3/${sensor}`),
      value: enc.encode(`{"sensor":"${sensor}","ts":${1_700_000_000_000 + i * 250},"value":${(20 + Math.sin(i) * 5).toFixed(3)},"unit":"C","ok":true}`),
      timestampMs: 1_700_000_000_000 + i * 250,
      headers: [{ key: 'mqtt-topic', value: enc.encode(`plant-3/${sensor}`) }],
    });
  }
  return out;
}

async function kafkajsEncode(records: RecordInput[], compression: number): Promise<Buffer> {
  const first = records[0].timestampMs!;
  let max = first;
  const encoded = new Array(records.length);
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (r.timestampMs! > max) max = r.timestampMs!;
    encoded[i] = kafkaRecord({
      offsetDelta: i,
      timestampDelta: r.timestampMs! - first,
      key: r.key ? Buffer.from(r.key.buffer, r.key.byteOffset, r.key.byteLength) : null,
      value: r.value ? Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength) : null,
      headers: { 'mqtt-topic': Buffer.from(r.headers![0].value!) },
    });
  }
  const e = await kafkaRecordBatch({ compression, firstOffset: Long.fromNumber(0), firstTimestamp: first, maxTimestamp: max, lastOffsetDelta: records.length - 1, records: encoded });
  return e.buffer as Buffer;
}

async function kafkajsDecode(buf: Buffer): Promise<number> {
  const b = await kafkaBatchDecode(new KafkaDecoder(buf));
  return b.records.length;
}

/** Calls per CPU second of this process (see cpuMs in crc32c.bench.ts for why CPU time). */
async function rateAsync(fn: () => Promise<unknown>, budgetMs: number): Promise<number> {
  let calls = 0;
  const start = cpuMs();
  let now = start;
  do {
    await fn();
    await fn();
    calls += 2;
    now = cpuMs();
  } while (now - start < budgetMs);
  return (calls * 1000) / (now - start);
}

export async function run(): Promise<Table[]> {
  const records = makeRecords();
  const recordBytes = records.reduce((n, r) => n + (r.key?.byteLength ?? 0) + (r.value?.byteLength ?? 0) + 10 + 20, 0);
  const codecs: Array<[string, 0 | 3]> = [['none', 0]];
  if (codecSupport().lz4.compress) codecs.push(['lz4', 3]);
  const rows: Array<Array<string | number>> = [];
  const reps = 7;
  const budgetMs = 80;
  for (const [name, codec] of codecs) {
    const ours = encodeBatch(records, { compression: codec });
    const theirs = await kafkajsEncode(records, codec);
    // Cross-check before timing: each side reads the other's batch.
    if ((await kafkajsDecode(Buffer.from(ours))) !== RECORDS) throw new Error('kafkajs cannot read the core batch');
    if (decodeBatch(theirs).records.length !== RECORDS) throw new Error('the core cannot read the kafkajs batch');
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['encode core', async () => encodeBatch(records, { compression: codec })],
      ['encode kafkajs', () => kafkajsEncode(records, codec)],
      ['decode core', async () => decodeBatch(ours)],
      ['decode kafkajs', () => kafkajsDecode(Buffer.from(theirs))],
      ['verify (deep) core', async () => verifyBatches(ours, defaultVerifyOptions)],
    ];
    const samples = cases.map(() => [] as number[]);
    for (let r = 0; r < reps; r++) for (let i = 0; i < cases.length; i++) samples[i].push(await rateAsync(cases[i][1], budgetMs));
    const perSec = samples.map(median);
    const row = (label: string, i: number, peer?: number) => [
      `${label} (${name})`,
      Math.round(perSec[i] * RECORDS),
      Math.round((perSec[i] * recordBytes) / 1e6),
      peer === undefined ? '—' : `${(perSec[i] / perSec[peer]).toFixed(2)}×`,
    ];
    rows.push(row('encode · core', 0, 1), row('encode · kafkajs', 1), row('decode · core', 2, 3), row('decode · kafkajs', 3), row('verify deep · core', 4));
  }
  // Sustained loop for memory.
  const rssBefore = rssMiB();
  const until = performance.now() + 1500;
  const batch = encodeBatch(records);
  while (performance.now() < until) {
    decodeBatch(batch);
    encodeBatch(records);
  }
  const rssAfter = rssMiB();
  return [
    {
      title: `RecordBatch encode/decode, ${RECORDS} records of ~${Math.round(recordBytes / RECORDS)} bytes (CPU time, median of ${reps} interleaved repetitions)`,
      columns: ['operation', 'records/s', 'MB/s', 'core ÷ kafkajs (target ≥ 3×)'],
      rows,
      notes: [
        'kafkajs: its internal RecordBatch v0 encoder/decoder (records pre-encoded with its Record encoder, as its producer does); lz4 through lz4js registered as its codec.',
        'core decode returns keys/values as views into the input (no copy); kafkajs returns Buffer slices as well.',
        `RSS: ${rssBefore.toFixed(0)} MiB before, ${rssAfter.toFixed(0)} MiB after 1.5 s of encode+decode of 1,000-record batches.`,
      ],
    },
  ];
}
