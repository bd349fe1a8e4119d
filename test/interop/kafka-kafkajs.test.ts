// kafkajs (a client nobody here wrote) against the Kafka listener over a real broker on real
// files: admin (topics, configs, partitions, offsets), producing with acks 0/1/-1, keys,
// headers, gzip/lz4/snappy, an idempotent producer whose first response is lost, and consuming
// back with order per key and byte-exact payloads checked.
import t from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import kafkajs from 'kafkajs';
import { eventually } from '../helpers/index.js';
import { startKafka } from '../unit/kafka/harness.js';
import { lz4FrameCompress, lz4FrameDecompress } from '../../host/core/lz4.js';
import { snappyCompress, snappyDecompress } from '../../host/core/snappy.js';

const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = kafkajs;
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

// Test-only codec adapters: kafkajs ships gzip only; LZ4 (frame) and Snappy (xerial) come from
// our own core, the same functions the broker uses.
const MAX_DECOMPRESSED = 64 * 1024 * 1024;
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: async (encoder: { buffer: Buffer }) => Buffer.from(lz4FrameCompress(encoder.buffer)),
  decompress: async (buffer: Buffer) => Buffer.from(lz4FrameDecompress(buffer, MAX_DECOMPRESSED)),
});
CompressionCodecs[CompressionTypes.Snappy] = () => ({
  compress: async (encoder: { buffer: Buffer }) => Buffer.from(snappyCompress(encoder.buffer)),
  decompress: async (buffer: Buffer) => Buffer.from(snappyDecompress(buffer, MAX_DECOMPRESSED)),
});

async function errorOf(p: Promise<unknown>): Promise<{ message: string; type?: string; errors?: Array<{ type?: string }> }> {
  try {
    await p;
  } catch (err) {
    return err as { message: string };
  }
  throw new Error('expected a rejection');
}

interface Got {
  partition: number;
  offset: number;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
}

/** Consumes `topic` from the beginning with a fresh group until `count` messages arrived. */
async function consumeAll(kafka: InstanceType<typeof Kafka>, topic: string, count: number): Promise<Got[]> {
  const consumer = kafka.consumer({ groupId: `g-${topic}-${Date.now()}`, maxWaitTimeInMs: 200, sessionTimeout: 10_000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const got: Got[] = [];
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
      got.push({ partition, offset: Number(message.offset), key: message.key?.toString() ?? '', value: Buffer.from(message.value ?? Buffer.alloc(0)), headers });
    },
  });
  try {
    await eventually(() => got.length >= count, 30_000);
  } finally {
    await consumer.disconnect();
  }
  return got;
}

t.test('kafkajs admin: create, describe, alter, grow and delete topics; list offsets', async (t) => {
  const k = await startKafka(t);
  const kafka = new Kafka({ brokers: [k.bootstrap], clientId: 'admin-test', logLevel: logLevel.NOTHING, retry: { retries: 1, initialRetryTime: 50 } });
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());

  t.equal(await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 2, configEntries: [{ name: 'retention.ms', value: '3600000' }] }] }), true, 'created');
  // kafkajs reports TOPIC_ALREADY_EXISTS as `false` rather than an error.
  t.equal(await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 1 }] }), false, 'duplicate not created');
  const rf = await errorOf(admin.createTopics({ topics: [{ topic: 'replicated', numPartitions: 1, replicationFactor: 3 }] }));
  t.equal(rf.errors?.[0]?.type, 'INVALID_REPLICATION_FACTOR', 'replication factor 3 refused');
  const cfg = await errorOf(admin.createTopics({ topics: [{ topic: 'badcfg', numPartitions: 1, configEntries: [{ name: 'no.such.key', value: '1' }] }] }));
  t.equal(cfg.errors?.[0]?.type, 'INVALID_CONFIG', 'unknown config refused');
  t.ok((await admin.listTopics()).includes('orders'));

  const meta = await admin.fetchTopicMetadata({ topics: ['orders'] });
  t.equal(meta.topics[0]!.partitions.length, 2);
  t.same(meta.topics[0]!.partitions.map((p) => [p.leader, p.replicas, p.isr]), [
    [0, [0], [0]],
    [0, [0], [0]],
  ]);

  const described = await admin.describeConfigs({ resources: [{ type: 2, name: 'orders', configNames: ['retention.ms', 'cleanup.policy'] }], includeSynonyms: false });
  const entries = Object.fromEntries(described.resources[0]!.configEntries.map((e) => [e.configName, e]));
  t.equal(entries['retention.ms']!.configValue, '3600000');
  t.equal(entries['retention.ms']!.isDefault, false);
  t.equal(entries['cleanup.policy']!.configValue, 'delete');
  t.equal(entries['cleanup.policy']!.isDefault, true);

  await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: 'orders', configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }] });
  const after = await admin.describeConfigs({ resources: [{ type: 2, name: 'orders', configNames: ['retention.ms', 'cleanup.policy'] }], includeSynonyms: false });
  const afterEntries = Object.fromEntries(after.resources[0]!.configEntries.map((e) => [e.configName, e.configValue]));
  t.same(afterEntries, { 'retention.ms': String(7 * 24 * 3600 * 1000), 'cleanup.policy': 'compact' }, 'AlterConfigs replaces the set: retention.ms back to its default');
  const bad = await errorOf(admin.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: 'orders', configEntries: [{ name: 'retention.ms', value: 'soon' }] }] }));
  t.equal(bad.type, 'INVALID_CONFIG', 'a bad value is refused');

  const brokerCfg = await admin.describeConfigs({ resources: [{ type: 4, name: '0' }], includeSynonyms: false });
  t.ok(brokerCfg.resources[0]!.configEntries.some((e) => e.configName === 'socket.request.max.bytes' && e.configValue === String(8 * 1024 * 1024)), 'broker settings shown');

  await admin.createPartitions({ topicPartitions: [{ topic: 'orders', count: 3 }] });
  t.equal((await admin.fetchTopicMetadata({ topics: ['orders'] })).topics[0]!.partitions.length, 3, 'grown to 3 partitions');
  await t.rejects(admin.createPartitions({ topicPartitions: [{ topic: 'orders', count: 2 }] }), /partition/i, 'shrinking refused');

  const producer = kafka.producer();
  await producer.connect();
  const before = Date.now();
  await producer.send({ topic: 'orders', acks: -1, messages: Array.from({ length: 5 }, (_, i) => ({ partition: 1, value: `m${i}` })) });
  await producer.disconnect();
  const offsets = await admin.fetchTopicOffsets('orders');
  t.same(
    offsets.map((o) => [o.partition, o.low, o.high]),
    [
      [0, '0', '0'],
      [1, '0', '5'],
      [2, '0', '0'],
    ],
  );
  const byTime = await admin.fetchTopicOffsetsByTimestamp('orders', before - 1000);
  t.equal(byTime.find((o) => o.partition === 1)!.offset, '0', 'by timestamp: the first record at or after it');

  const cluster = await admin.describeCluster();
  t.equal(cluster.controller, 0);
  t.equal(cluster.brokers[0]!.port, k.port, 'advertised port = the port the client used');

  await admin.deleteTopics({ topics: ['orders'] });
  t.notOk((await admin.listTopics()).includes('orders'), 'deleted');
  t.match((await errorOf(admin.deleteTopics({ topics: ['orders'] }))).message, /does not host this topic-partition/, 'deleting again: UNKNOWN_TOPIC_OR_PARTITION');
});

t.test('kafkajs producer and consumer: acks 0/1/-1, keys, headers, gzip/lz4/snappy; order per key, bytes exact', async (t) => {
  const k = await startKafka(t);
  const kafka = new Kafka({ brokers: [k.bootstrap], clientId: 'produce-test', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'readings', numPartitions: 3 }] });
  await admin.disconnect();

  const producer = kafka.producer();
  await producer.connect();
  const sent: Array<{ key: string; value: Buffer; seq: number }> = [];
  const variants: Array<[number, number]> = [
    [-1, CompressionTypes.None],
    [1, CompressionTypes.GZIP],
    [-1, CompressionTypes.LZ4],
    [1, CompressionTypes.Snappy],
    [0, CompressionTypes.None],
  ];
  let seq = 0;
  for (const [acks, compression] of variants) {
    const messages = [];
    for (let i = 0; i < 40; i++) {
      const key = `sensor-${i % 7}`;
      const value = randomBytes(1 + ((i * 37) % 900)); // binary, varied sizes
      sent.push({ key, value, seq });
      messages.push({ key, value, headers: { seq: String(seq), codec: String(compression) } });
      seq++;
    }
    const res = await producer.send({ topic: 'readings', acks, compression, messages });
    if (acks !== 0) t.ok(res.every((r) => r.errorCode === 0), `acks=${acks} codec=${compression}: no errors`);
  }
  await producer.disconnect();

  const got = await consumeAll(kafka, 'readings', sent.length);
  t.equal(got.length, sent.length, 'every record came back once');
  const bySeq = new Map(got.map((g) => [Number(g.headers.seq), g]));
  let exact = 0;
  for (const s of sent) {
    const g = bySeq.get(s.seq);
    if (g && g.key === s.key && g.value.equals(s.value)) exact++;
  }
  t.equal(exact, sent.length, 'keys and payloads byte-exact');
  // Order per key: within a key (one partition), offsets grow with the send order.
  const perKey = new Map<string, Got[]>();
  for (const g of got) perKey.set(g.key, [...(perKey.get(g.key) ?? []), g]);
  let ordered = true;
  for (const list of perKey.values()) {
    const parts = new Set(list.map((g) => g.partition));
    if (parts.size !== 1) ordered = false;
    const bySend = [...list].sort((a, b) => Number(a.headers.seq) - Number(b.headers.seq));
    for (let i = 1; i < bySend.length; i++) if (bySend[i]!.offset <= bySend[i - 1]!.offset) ordered = false;
  }
  t.ok(ordered, 'one partition per key, offsets in send order');
});

/**
 * A TCP proxy that forwards everything but, once, swallows the first Produce response and
 * drops the connection: the append happened, the client never heard, so it retries.
 */
async function startLossyProxy(t: { teardown(fn: () => unknown): void }) {
  let upstreamPort = 0;
  let dropped = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    sockets.add(upstream);
    const produceIds = new Set<number>();
    let inBuf = Buffer.alloc(0);
    let outBuf = Buffer.alloc(0);
    client.on('data', (d) => {
      inBuf = Buffer.concat([inBuf, d]);
      while (inBuf.length >= 12 && inBuf.length >= 4 + inBuf.readInt32BE(0)) {
        if (inBuf.readInt16BE(4) === 0) produceIds.add(inBuf.readInt32BE(8));
        inBuf = inBuf.subarray(4 + inBuf.readInt32BE(0));
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      outBuf = Buffer.concat([outBuf, d]);
      while (outBuf.length >= 8 && outBuf.length >= 4 + outBuf.readInt32BE(0)) {
        const n = outBuf.readInt32BE(0);
        const frame = outBuf.subarray(0, 4 + n);
        outBuf = outBuf.subarray(4 + n);
        if (produceIds.has(frame.readInt32BE(4)) && dropped === 0) {
          dropped++;
          client.destroy();
          upstream.destroy();
          return;
        }
        client.write(frame);
      }
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    setUpstream(port: number) {
      upstreamPort = port;
    },
    get dropped() {
      return dropped;
    },
  };
}

t.test('kafkajs idempotent producer: a lost response and a retry write each record once', async (t) => {
  const proxy = await startLossyProxy(t);
  // The broker advertises the proxy, so every kafkajs connection goes through it.
  const k = await startKafka(t, { advertisedHost: '127.0.0.1', advertisedPort: proxy.port });
  proxy.setUpstream(k.port);
  const kafka = new Kafka({ brokers: [`127.0.0.1:${proxy.port}`], clientId: 'idem', logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 50 } });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'once', numPartitions: 1 }] });
  await admin.disconnect();

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const values = Array.from({ length: 10 }, (_, i) => `exactly-once-${i}`);
  for (const v of values.slice(0, 5)) await producer.send({ topic: 'once', acks: -1, messages: [{ key: 'k', value: v }] });
  await producer.send({ topic: 'once', acks: -1, messages: values.slice(5).map((v) => ({ key: 'k', value: v })) });
  await producer.disconnect();
  t.equal(proxy.dropped, 1, 'one produce response was lost on the way');

  const direct = new Kafka({ brokers: [`127.0.0.1:${proxy.port}`], clientId: 'idem-check', logLevel: logLevel.NOTHING });
  const got = await consumeAll(direct, 'once', values.length);
  t.same(
    got.map((g) => g.value.toString()),
    values,
    'each record once, in order',
  );
  const admin2 = direct.admin();
  await admin2.connect();
  const [o] = await admin2.fetchTopicOffsets('once');
  await admin2.disconnect();
  t.equal(o!.high, String(values.length), 'the log holds no duplicate');
});

/** InitProducerId v1 over a raw socket: the producer id the broker hands out. */
function initProducerId(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = Buffer.alloc(4 + 2 + 2 + 4 + 2 + 2 + 4);
    let o = 0;
    o = req.writeInt32BE(req.length - 4, o);
    o = req.writeInt16BE(22, o); // InitProducerId
    o = req.writeInt16BE(1, o);
    o = req.writeInt32BE(1, o); // correlation id
    o = req.writeInt16BE(-1, o); // client id null
    o = req.writeInt16BE(-1, o); // transactional id null
    req.writeInt32BE(60_000, o);
    const s = net.connect(port, '127.0.0.1', () => s.write(req));
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        s.destroy();
        // size, correlation id, throttle_time_ms, error_code, producer_id (int64), epoch
        if (buf.readInt16BE(12) !== 0) return reject(new Error(`InitProducerId error ${buf.readInt16BE(12)}`));
        resolve(Number(buf.readBigInt64BE(14)));
      }
    });
    s.on('error', reject);
  });
}

t.test('kafkajs after a broker restart: records, offsets and configs intact; producer ids never reused', async (t) => {
  let k = await startKafka(t);
  const values = Array.from({ length: 20 }, (_, i) => randomBytes(50 + i));
  let kafka = new Kafka({ brokers: [k.bootstrap], clientId: 'restart', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'durable', numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '123456789' }] }] });
  await admin.disconnect();
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  await producer.send({ topic: 'durable', acks: -1, messages: values.map((value) => ({ key: 'k', value })) });
  await producer.disconnect();
  const idsBefore = [await initProducerId(k.port), await initProducerId(k.port)];

  k = await k.restart();
  kafka = new Kafka({ brokers: [k.bootstrap], clientId: 'restart-2', logLevel: logLevel.NOTHING });
  const idAfter = await initProducerId(k.port);
  t.ok(idAfter > Math.max(...idsBefore), `producer id after restart (${idAfter}) is past every earlier one (${idsBefore})`);
  const got = await consumeAll(kafka, 'durable', values.length);
  t.ok(
    got.length === values.length && got.every((g, i) => g.offset === i && g.value.equals(values[i]!)),
    'every record, same offsets, same bytes',
  );
  const admin2 = kafka.admin();
  await admin2.connect();
  const cfg = await admin2.describeConfigs({ resources: [{ type: 2, name: 'durable', configNames: ['retention.ms'] }], includeSynonyms: false });
  await admin2.disconnect();
  t.equal(cfg.resources[0]!.configEntries[0]!.configValue, '123456789', 'topic config kept');
});
