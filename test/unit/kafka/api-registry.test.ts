// Purpose: the Kafka listener loads each API's handler at the first request of its key
// (host/kafka/apis/registry.ts, issue 14's footprint). Every registry entry declares what its
// handler declares (ApiVersions cannot drift from what is answered) and loads exactly that
// handler; over a real socket, the first Metadata and Produce requests of a fresh listener are
// answered in order, pipelined behind requests of loaded APIs; a handler module that fails to
// load answers its requests UNKNOWN_SERVER_ERROR, is logged with its module and cause once, and
// the connection and the other APIs keep working.
import t from 'tap';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { encode, Writer } from '../../../host/kafka/protocol/codec.js';
import { handlers } from '../../../host/kafka/apis/index.js';
import { apiRegistry } from '../../../host/kafka/apis/registry.js';
import { isLazyApi } from '../../../host/kafka/apis/types.js';
import { startKafkaServer } from '../../../host/kafka/server.js';
import { openTestStack } from '../../helpers/stack.js';
import type { Logger } from '../../../host/logging.js';

t.test('api registry: every entry declares what its handler declares, and loads that handler', { timeout: 30_000 }, async (t) => {
  t.same([...apiRegistry.keys()].sort((a, b) => a - b), [...handlers.keys()].sort((a, b) => a - b), 'the same API keys as the full table');
  for (const entry of apiRegistry.values()) {
    const handler = handlers.get(entry.apiKey)!;
    t.same({ apiKey: entry.apiKey, name: entry.name, minVersion: entry.minVersion, maxVersion: entry.maxVersion }, { apiKey: handler.apiKey, name: handler.name, minVersion: handler.minVersion, maxVersion: handler.maxVersion }, `${entry.name}: declaration = handler`);
    t.equal(isLazyApi(entry) ? await entry.load() : entry, handler, `${entry.name}: ${isLazyApi(entry) ? 'loads' : 'is'} its handler`);
  }
  t.notOk(isLazyApi(apiRegistry.get(18)!), 'ApiVersions is loaded with the listener');
});

/** A request frame (header v1: none of these versions is flexible). */
function request(apiKey: number, version: number, correlationId: number, body: object): Buffer {
  const w = new Writer();
  w.int32(0);
  w.int16(apiKey);
  w.int16(version);
  w.int32(correlationId);
  w.string('registry-test', false);
  encode(handlers.get(apiKey)!.request, body, version, false, w);
  const b = Buffer.concat(w.finish());
  b.writeInt32BE(b.length - 4, 0);
  return b;
}

/** A request of `apiKey` at a version nobody supports: the header alone (header v1). */
function unsupported(apiKey: number, correlationId: number): Buffer {
  const w = new Writer();
  w.int32(0);
  w.int16(apiKey);
  w.int16(99);
  w.int32(correlationId);
  w.string('registry-test', false);
  const b = Buffer.concat(w.finish());
  b.writeInt32BE(b.length - 4, 0);
  return b;
}

/** Writes `frames` at once on one connection; resolves with the responses' bodies (after the correlation id), in order. */
function exchange(port: number, frames: Buffer[]): Promise<Array<{ correlationId: number; body: Buffer }>> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.concat(frames)));
    let buf = Buffer.alloc(0);
    const out: Array<{ correlationId: number; body: Buffer }> = [];
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        const frame = buf.subarray(4, 4 + buf.readInt32BE(0));
        out.push({ correlationId: frame.readInt32BE(0), body: frame.subarray(4) });
        buf = buf.subarray(4 + buf.readInt32BE(0));
      }
      if (out.length === frames.length) {
        s.destroy();
        resolve(out);
      }
    });
    s.on('close', () => reject(new Error(`connection closed after ${out.length} of ${frames.length} responses`)));
    s.on('error', reject);
    setTimeout(() => reject(new Error('timeout')), 10_000).unref();
  });
}

function logSink(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream) as unknown as Logger, lines };
}

const metadataV1 = { topics: [] };
const produceV3 = { transactionalId: null, acks: 1, timeoutMs: 1000, topicData: [] };

t.test('api registry: the first requests of unloaded APIs are answered in order, pipelined behind loaded ones; an unsupported version loads nothing', { timeout: 30_000 }, async (t) => {
  const stack = await openTestStack(t, { groups: {} });
  t.teardown(stack.close);
  const { logger, lines } = logSink();
  const kafka = await startKafkaServer({ broker: stack.broker, groups: stack.groups, logger, metrics: stack.metrics }, { host: '127.0.0.1', port: 0 });
  t.teardown(() => kafka.close());
  const port = Number(kafka.address!.slice(kafka.address!.lastIndexOf(':') + 1));
  const res = await exchange(port, [request(18, 0, 1, {}), request(3, 1, 2, metadataV1), request(18, 0, 3, {}), request(0, 3, 4, produceV3), request(3, 1, 5, metadataV1), unsupported(20, 6)]);
  t.same(
    res.map((r) => r.correlationId),
    [1, 2, 3, 4, 5, 6],
    'every response, in request order',
  );
  t.equal(res[5]!.body.readInt16BE(0), 35, 'an unsupported DeleteTopics version: UNSUPPORTED_VERSION, answered without loading its handler');
  t.equal(res[0]!.body.readInt16BE(0), 0, 'ApiVersions answered');
  t.ok(res[1]!.body.length > 8, 'Metadata answered with a body');
  t.same(
    lines.filter((l) => typeof l.msg === 'string' && /^loaded the \w+ handler$/.test(l.msg)).map((l) => l.api),
    ['Metadata', 'Produce'],
    'each handler loaded once, at its first request',
  );
});

t.test('api registry: a handler module that fails to load answers UNKNOWN_SERVER_ERROR, is logged, and the node keeps serving', { timeout: 30_000 }, async (t) => {
  const stack = await openTestStack(t, { groups: {} });
  t.teardown(stack.close);
  const { logger, lines } = logSink();
  // Metadata's entry pointing at a module that is not there (a damaged install).
  const missing = './no-such-handler-module.js';
  const table = new Map(apiRegistry);
  table.set(3, { ...apiRegistry.get(3)!, module: 'no-such-handler-module.js', load: () => import(missing) });
  const kafka = await startKafkaServer({ broker: stack.broker, groups: stack.groups, logger, metrics: stack.metrics, handlers: table }, { host: '127.0.0.1', port: 0 });
  t.teardown(() => kafka.close());
  const port = Number(kafka.address!.slice(kafka.address!.lastIndexOf(':') + 1));
  const res = await exchange(port, [request(3, 1, 1, metadataV1), request(18, 0, 2, {}), request(3, 1, 3, metadataV1), request(0, 3, 4, produceV3)]);
  t.same(
    res.map((r) => r.correlationId),
    [1, 2, 3, 4],
    'every request answered, in order, on the same connection',
  );
  t.equal(res[0]!.body.readInt16BE(0), -1, 'Metadata: UNKNOWN_SERVER_ERROR');
  t.equal(res[2]!.body.readInt16BE(0), -1, 'and again for the next Metadata');
  t.equal(res[1]!.body.readInt16BE(0), 0, 'ApiVersions still answered');
  t.ok(res[3]!.body.length > 2, 'Produce (loaded fine) still answered');
  const failures = lines.filter((l) => l.level === 50 && typeof l.msg === 'string' && l.msg.includes('failed to load'));
  t.equal(failures.length, 1, 'logged once');
  t.match(failures[0], { api: 'Metadata', module: 'host/kafka/apis/no-such-handler-module.js', msg: /^the Metadata handler \(host\/kafka\/apis\/no-such-handler-module\.js\) failed to load/, err: { message: /no-such-handler-module/ } }, 'naming the API, the module and the cause');
  t.match(stack.metrics.render(), /^tributary_kafka_handler_load_failures_total\{api="Metadata"\} 2$/m, 'counted per request');
});
