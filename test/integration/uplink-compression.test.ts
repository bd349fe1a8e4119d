// Purpose: uplink.compression between real Tributary processes. Batches the uplink re-encodes
// (here: stored 5 records to a batch, under uplink.rawBatchRecordsMin, so they take the decoding
// path; and a gzip-compressed stored batch from kafkajs, which never goes raw) leave compressed with the
// configured codec — none, gzip, snappy, lz4 (the default) or zstd — checked in the target's own
// segment files (the codec bits of each stored batch's attributes, parsed here byte by byte) and
// by kcat (librdkafka decompresses) reading every value back once, in order; a stored batch that
// goes raw keeps its bytes, uncompressed, whatever uplink.compression says. The bytes written to
// the target (tributary_uplink_bytes_sent) shrink with a codec on compressible telemetry.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { eventually, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatReadAll, metrics, sh, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';

const { Kafka, logLevel, CompressionTypes } = kafkajs;
const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
const ATTRIBUTES_AT = 21; // baseOffset 8, batchLength 4, partitionLeaderEpoch 4, magic 1, crc 4
const RECORD_COUNT_AT = 57;

/** Every stored batch of a partition directory: its codec (attributes & 7) and record count, read from the segment files. */
function storedBatches(dir: string): Array<{ codec: number; records: number }> {
  const out: Array<{ codec: number; records: number }> = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.log')).sort()) {
    const buf = readFileSync(join(dir, f));
    for (let pos = 0; pos + 61 <= buf.length; ) {
      const length = buf.readInt32BE(pos + 8);
      if (length <= 0 || pos + 12 + length > buf.length) break;
      out.push({ codec: buf.readInt16BE(pos + ATTRIBUTES_AT) & 7, records: buf.readInt32BE(pos + RECORD_COUNT_AT) });
      pos += 12 + length;
    }
  }
  return out;
}

/** Compressible telemetry: JSON readings that share most of their bytes. */
const reading = (i: number) => JSON.stringify({ device: `boiler-${i % 7}`, site: 'plant-7', metric: 'temperature', unit: 'celsius', value: 20 + (i % 50) / 10, seq: i });

async function kcatProduce(edge: BrokerProcess, values: string[], extra: string[]): Promise<void> {
  const r = await sh('kcat', ['-P', '-b', edge.listeners.kafka!, '-t', 'telemetry', '-p', '0', '-X', 'acks=all', ...extra], values.join('\n') + '\n');
  if (r.code !== 0) throw new Error(`kcat produce failed: ${r.stderr}`);
}

/** One gzip batch from kafkajs: librdkafka 2.0.2 (kcat) sends uncompressed toward Tributary ("Broker does not support compression type gzip: not compressing batch"; its feature probe disables MsgVer1, as Produce v2 and Fetch v2 are not advertised). */
async function gzipProduce(edge: BrokerProcess, values: string[]): Promise<void> {
  const producer = new Kafka({ clientId: 'compression-test', brokers: [edge.listeners.kafka!], logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  try {
    await producer.send({ topic: 'telemetry', acks: -1, compression: CompressionTypes.GZIP, messages: values.map((value) => ({ value, partition: 0 })) });
  } finally {
    await producer.disconnect();
  }
}

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('uplink.compression: re-encoded batches leave compressed with each codec; raw batches as stored; kcat reads them all', async (t) => {
    const target = await startBroker(t, { dataDir: await tempDir(t) });
    const sentBytes: Record<string, number> = {};
    for (const codec of CODECS) {
      const site = `edge-${codec}`;
      const edge = await startBroker(t, {
        dataDir: await tempDir(t),
        args: [
          ...['--set', `uplink.site=${site}`, '--set', `uplink.bootstrap=${target.listeners.kafka}`, '--set', 'uplink.topics=telemetry', '--set', `uplink.compression=${codec}`],
          ...['--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.pollWaitMs=100', '--set', 'broker.defaultPartitions=1'],
        ],
      });
      // 200 readings stored 5 to a batch (re-encoded), then 100 in one uncompressed batch (raw),
      // then 100 in one gzip batch (kafkajs; compressed at the source: re-encoded).
      const values = Array.from({ length: 400 }, (_, i) => reading(i));
      await kcatProduce(edge, values.slice(0, 200), ['-X', 'batch.num.messages=5', '-X', 'linger.ms=50']);
      await kcatProduce(edge, values.slice(200, 300), ['-X', 'batch.num.messages=1000', '-X', 'linger.ms=500']);
      await gzipProduce(edge, values.slice(300, 400));
      await eventually(async () => sum(await metrics(edge), 'tributary_uplink_records_sent_total') >= 400, 20_000, 100).catch((err: Error) => {
        // Say why in the failure itself (CI logs): the edge's warnings name the refusal or the fault.
        throw new Error(`${codec}: ${err.message}; edge warnings: ${JSON.stringify(edge.logs.filter((l) => Number(l.level) >= 40).slice(-5))}`);
      });
      sentBytes[codec] = sum(await metrics(edge), 'tributary_uplink_bytes_sent');
      const edgeBatches = storedBatches(join(edge.dataDir, 'telemetry-0'));
      t.ok(edgeBatches.some((b) => b.codec === 0 && b.records === 100) && edgeBatches.some((b) => b.codec === 1 && b.records === 100), `${codec}: the edge stored a 100-record uncompressed batch and a 100-record gzip one`);

      const v = verdict(await kcatReadAll(target.listeners.kafka!, `${site}.telemetry`), { site, topic: 'telemetry', partition: 0 }, values);
      t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue }, { found: 400, lost: 0, duplicated: 0, reordered: 0, wrongValue: 0 }, `${codec}: kcat reads all 400 values from the target once, in order`);
      const batches = storedBatches(join(target.dataDir, `${site}.telemetry-0`));
      const raw = batches.filter((b) => b.records === 100 && b.codec === 0);
      const reencoded = batches.filter((b) => !(b.records === 100 && b.codec === 0));
      const want = CODECS.indexOf(codec);
      t.ok(raw.length >= 1 || codec === 'none', `${codec}: the raw batch is stored at the target as stored at the edge (uncompressed, 100 records)`);
      t.same([...new Set(reencoded.map((b) => b.codec))], [want], `${codec}: every re-encoded batch at the target carries codec ${want} in its attributes (${reencoded.length} batches, ${reencoded.reduce((n, b) => n + b.records, 0)} records)`);
      t.equal(raw.reduce((n, b) => n + b.records, 0) + reencoded.reduce((n, b) => n + b.records, 0), 400, `${codec}: 400 records in the target's segment files`);
      await edge.stop();
    }
    t.comment(`request bytes written to the target for the same 400 readings: ${CODECS.map((c) => `${c} ${sentBytes[c]}`).join(', ')}`);
    for (const c of CODECS.filter((c) => c !== 'none')) t.ok(sentBytes[c] < sentBytes.none * 0.8, `${c} writes fewer bytes than none: ${sentBytes[c]} < ${sentBytes.none}`);
  });
}
