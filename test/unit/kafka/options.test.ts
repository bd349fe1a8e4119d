// Listener options: each is validated at start with a message naming it, the idle timeout
// closes a silent connection, and the defaults carry every key.
import t from 'tap';
import net from 'node:net';
import { startInProcess } from './harness.js';
import { defaultKafkaServerOptions, startKafkaServer } from '../../../host/kafka/server.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { decode, encode, Reader, Writer } from '../../../host/kafka/protocol/codec.js';
import { createRequire } from 'node:module';
import { handlers } from '../../../host/kafka/apis/index.js';
import type { BrokerApi } from '../../../host/broker/api.js';

const require = createRequire(import.meta.url);
const kjs = (p: string) => require(`kafkajs/src/protocol/${p}`);

t.test('kafka options: bad values are refused at start, naming the option', async (t) => {
  const deps = { broker: {} as BrokerApi, groups: undefined, logger: silentLogger, metrics: new MetricsRegistry(), producerIds: { allocate: async () => 0 } as never };
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ maxRequestBytes: 0 }, /maxRequestBytes must be a positive integer/],
    [{ maxConnections: -1 }, /maxConnections/],
    [{ maxInFlightRequestsPerConnection: 1.5 }, /maxInFlightRequestsPerConnection/],
    [{ port: 70000 }, /port must be 0\.\.65535/],
    [{ advertisedPort: 'x' }, /advertisedPort must be null or a port/],
    [{ advertisedHost: '' }, /advertisedHost/],
    [{ nodeId: -2 }, /nodeId/],
    [{ idleTimeoutMs: 0 }, /idleTimeoutMs/],
  ];
  for (const [bad, message] of cases) {
    await t.rejects(startKafkaServer(deps, { ...bad, port: (bad.port as number) ?? 0, host: '127.0.0.1' } as never), { message }, JSON.stringify(bad));
  }
  t.ok(Object.keys(defaultKafkaServerOptions).length >= 17, 'every option has a default');
});

t.test('kafka options: an idle connection is closed after idleTimeoutMs; an advertised port given as text is what Metadata names', async (t) => {
  const k = await startInProcess(t, { idleTimeoutMs: 300, advertisedPort: '19999' as unknown as number });
  const closedAfter = await new Promise<number>((resolve, reject) => {
    const started = Date.now();
    const s = net.connect(k.port, '127.0.0.1');
    s.on('close', () => resolve(Date.now() - started));
    s.on('error', reject);
  });
  t.ok(closedAfter >= 250 && closedAfter < 5000, `closed after ${closedAfter} ms of silence`);

  // Metadata v1 names the advertised port, not the bound one.
  const w = new Writer();
  w.int32(0);
  w.int16(3);
  w.int16(1);
  w.int32(7);
  w.string('opts', false);
  w.int32(0); // no topics
  const req = Buffer.concat(w.finish());
  req.writeInt32BE(req.length - 4, 0);
  const resp = await new Promise<Buffer>((resolve, reject) => {
    const s = net.connect(k.port, '127.0.0.1', () => s.write(req));
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        s.destroy();
        resolve(buf.subarray(8, 4 + buf.readInt32BE(0)));
      }
    });
    s.on('error', reject);
  });
  const meta = decode(handlers.get(3)!.response, new Reader(resp), 1, false);
  t.same(meta.brokers, [{ nodeId: 0, host: '127.0.0.1', port: 19999, rack: null }]);
});

function flexRequest(apiKey: number, version: number, correlationId: number, body: object): Buffer {
  const w = new Writer();
  w.int32(0);
  w.int16(apiKey);
  w.int16(version);
  w.int32(correlationId);
  w.string('opts', false);
  w.uvarint(0);
  encode(handlers.get(apiKey)!.request, body, version, true, w);
  const b = Buffer.concat(w.finish());
  b.writeInt32BE(b.length - 4, 0);
  return b;
}

function roundTrip(port: number, req: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(req));
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        s.destroy();
        resolve(buf.subarray(9, 4 + buf.readInt32BE(0))); // size, correlation id, header v1 tag byte
      }
    });
    s.on('error', reject);
  });
}

t.test('kafka options: maxFetchWaitMs caps a long poll; maxFetchResponseBytes caps a fetch (first batch whole)', async (t) => {
  const k = await startInProcess(t, { maxFetchWaitMs: 300, maxFetchResponseBytes: 15_000 });
  const { RecordBatch } = kjs('recordBatch/v0/index.js');
  const Record = kjs('recordBatch/record/v0/index.js');
  const batch: Buffer = (await RecordBatch({ records: [Record({ value: Buffer.alloc(10_000, 0x61) })] })).buffer;
  for (let i = 0; i < 3; i++) {
    const p = decode(handlers.get(0)!.response, new Reader(await roundTrip(k.port, flexRequest(0, 9, i, { transactionalId: null, acks: 1, timeoutMs: 1000, topicData: [{ name: 'capped', partitionData: [{ index: 0, records: batch }] }] }))), 9, true);
    t.equal(p.responses[0].partitionResponses[0].errorCode, 0);
  }
  const fetchBody = (offset: number) => ({ maxWaitMs: 60_000, minBytes: 1, maxBytes: 50_000_000, isolationLevel: 0, sessionId: 0, sessionEpoch: -1, topics: [{ topic: 'capped', partitions: [{ partition: 0, fetchOffset: offset, partitionMaxBytes: 50_000_000 }] }], forgottenTopicsData: [], rackId: '' });
  const capped = decode(handlers.get(1)!.response, new Reader(await roundTrip(k.port, flexRequest(1, 12, 9, fetchBody(0)))), 12, true);
  const records: Buffer = capped.responses[0].partitions[0].records;
  t.ok(records.length >= batch.length && records.length < 2 * batch.length, `one whole batch (${records.length} B) under a 15,000 B cap`);

  const started = Date.now();
  const idle = decode(handlers.get(1)!.response, new Reader(await roundTrip(k.port, flexRequest(1, 12, 10, fetchBody(3)))), 12, true);
  const waited = Date.now() - started;
  t.equal(idle.responses[0].partitions[0].records.length, 0, 'nothing new');
  t.ok(waited >= 250 && waited < 10_000, `a 60 s max_wait_ms was cut to ~300 ms (${waited} ms)`);
});

/** Sends `frames` in one write and collects `n` responses (bodies after a header v1). */
function pipeline(port: number, frames: Buffer[], n: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.concat(frames)));
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        out.push(buf.subarray(9, 4 + buf.readInt32BE(0)));
        buf = buf.subarray(4 + buf.readInt32BE(0));
      }
      if (out.length === n) {
        s.destroy();
        resolve(out);
      }
    });
    s.on('error', reject);
  });
}

t.test('kafka options: the in-flight bounds stop reading a connection at exactly the limit', async (t) => {
  const { RecordBatch } = kjs('recordBatch/v0/index.js');
  const Record = kjs('recordBatch/record/v0/index.js');
  const batch: Buffer = (await RecordBatch({ records: [Record({ value: Buffer.from('wake') })] })).buffer;
  const fetch = flexRequest(1, 12, 1, { maxWaitMs: 1500, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1, topics: [{ topic: 'inflight', partitions: [{ partition: 0, fetchOffset: 0, partitionMaxBytes: 1 << 20 }] }], forgottenTopicsData: [], rackId: '' });
  const produce = flexRequest(0, 9, 2, { transactionalId: null, acks: 1, timeoutMs: 1000, topicData: [{ name: 'inflight', partitionData: [{ index: 0, records: batch }] }] });
  // A long-poll fetch, then a produce that would wake it. Read together (limit ≥ 2), the
  // append wakes the fetch at once; past the limit the produce is not read until the fetch
  // has answered empty after its full wait.
  const cases: Array<[string, Record<string, number>, boolean]> = [
    ['1 request', { maxInFlightRequestsPerConnection: 1 }, false],
    ['2 requests', { maxInFlightRequestsPerConnection: 2 }, true],
    ['bytes = the fetch', { maxInFlightBytesPerConnection: fetch.length - 4 }, false],
    ['bytes = the fetch + 1', { maxInFlightBytesPerConnection: fetch.length - 4 + 1 }, true],
  ];
  for (const [name, options, wakes] of cases) {
    const k = await startInProcess(t, options);
    await roundTrip(k.port, flexRequest(19, 5, 0, { topics: [{ name: 'inflight', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }], timeoutMs: 1000, validateOnly: false }));
    const [f] = await pipeline(k.port, [fetch, produce], 2);
    const got = decode(handlers.get(1)!.response, new Reader(f!), 12, true).responses[0].partitions[0].records.length;
    t.equal(got > 0, wakes, `${name}: ${wakes ? 'produce read alongside, fetch woken with data' : 'produce held back, fetch answered empty'}`);
    await k.stop();
  }
});
