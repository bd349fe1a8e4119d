// librdkafka (kcat, a client nobody here wrote) decodes batches whose records section the wasm
// core compressed: kafkajs produces through the core's LZ4 frame and Snappy xerial codecs, the
// broker stores the batches as they came, and kcat consumes them byte-exact. This is the check
// that another Kafka client library accepts what the core writes. Skips without kcat.
import t from 'tap';
import { spawn } from 'node:child_process';
import kafkajs from 'kafkajs';
import { haveCommand } from '../helpers/index.js';
import { startKafka } from '../unit/kafka/harness.js';
import { lz4FrameCompress, lz4FrameDecompress } from '../../host/core/lz4.js';
import { snappyCompress, snappyDecompress } from '../../host/core/snappy.js';

const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = kafkajs;
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const MAX_DECOMPRESSED = 64 * 1024 * 1024;
const compressedBy = { lz4: 0, snappy: 0 };
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: async (encoder: { buffer: Buffer }) => {
    compressedBy.lz4++;
    return Buffer.from(lz4FrameCompress(encoder.buffer));
  },
  decompress: async (buffer: Buffer) => Buffer.from(lz4FrameDecompress(buffer, MAX_DECOMPRESSED)),
});
CompressionCodecs[CompressionTypes.Snappy] = () => ({
  compress: async (encoder: { buffer: Buffer }) => {
    compressedBy.snappy++;
    return Buffer.from(snappyCompress(encoder.buffer));
  },
  decompress: async (buffer: Buffer) => Buffer.from(snappyDecompress(buffer, MAX_DECOMPRESSED)),
});

function kcat(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('kcat', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: out, stderr: err });
    });
  });
}

if (!haveCommand('kcat')) {
  t.comment('kcat is not installed (Debian package `kcat`): skipping');
  t.pass('skipped: no kcat');
} else {
  t.test('kcat consumes LZ4 frames and xerial Snappy written by the core, byte-exact', async (t) => {
    const k = await startKafka(t);
    const kafka = new Kafka({ brokers: [k.bootstrap], clientId: 'core-codecs', logLevel: logLevel.NOTHING, retry: { retries: 2, initialRetryTime: 50 } });
    const producer = kafka.producer({ allowAutoTopicCreation: true });
    await producer.connect();
    t.teardown(() => producer.disconnect());
    // ~1,500 readings of ~150 bytes per batch: > 64 KiB (several LZ4 blocks) and > 32 KiB
    // (several xerial chunks) of records.
    const values = Array.from({ length: 1500 }, (_, i) =>
      JSON.stringify({ device: `gw-01/sensor-${String(i % 37).padStart(3, '0')}`, ts: 1732147200000 + i * 250, seq: i, temperature: 20 + (i % 50) / 10, humidity: 40 + (i % 21), status: i % 13 ? 'ok' : 'degraded' }),
    );
    for (const [name, type] of [['lz4', CompressionTypes.LZ4], ['snappy', CompressionTypes.Snappy]] as const) {
      const topic = `core-${name}`;
      const before = compressedBy[name];
      await producer.send({ topic, compression: type, acks: -1, messages: values.map((value, i) => ({ key: `k${i % 5}`, value })) });
      t.ok(compressedBy[name] > before, `${name}: the core compressed the batch`);
      const r = await kcat(['-b', k.bootstrap, '-X', 'socket.timeout.ms=10000', '-C', '-t', topic, '-o', 'beginning', '-e', '-f', '%o\t%k\t%s\n']);
      t.equal(r.code, 0, `${name}: kcat exits 0 ${r.stderr.trim()}`);
      const lines = r.stdout.split('\n').filter((l) => l.length > 0);
      t.equal(lines.length, values.length, `${name}: every record`);
      const ok = lines.every((l, i) => {
        const [offset, key, value] = l.split('\t');
        return Number(offset) === i && key === `k${i % 5}` && value === values[i];
      });
      t.ok(ok, `${name}: offsets, keys and values exact`);
    }
  });
}
