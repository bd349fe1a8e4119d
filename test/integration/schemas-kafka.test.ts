// Purpose: the Kafka door's answer to a batch refused by ingest validation (issue 15), at the
// byte level: Produce v8 (record_errors added by KIP-467) answers INVALID_RECORD (87) for the
// partition with each refused record's index and reason, and v3 (no record_errors) the same
// code; nothing of the refused batch is stored, the refused records are dead-lettered.
import t from 'tap';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker } from '../../host/broker/broker.js';
import { GroupCoordinator } from '../../host/broker/groups/index.js';
import { startKafkaServer } from '../../host/kafka/server.js';
import { handlers } from '../../host/kafka/apis/index.js';
import { Writer, Reader, encode, decode } from '../../host/kafka/protocol/codec.js';
import { encodeBatch } from '../../host/core/index.js';
import { ERRORS } from '../../host/errors/index.js';
import { silentLogger } from '../../host/logging.js';
import { MetricsRegistry } from '../../host/metrics/registry.js';
import { startSchemas } from '../../host/schemas/index.js';

function request(version: number, topic: string, records: Uint8Array): Buffer {
  const w = new Writer();
  w.int32(0);
  w.int16(0);
  w.int16(version);
  w.int32(7);
  w.string('schemas-test', false);
  encode(handlers.get(0)!.request, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: topic, partitionData: [{ index: 0, records: Buffer.from(records) }] }] }, version, false, w);
  const b = Buffer.concat(w.finish());
  b.writeInt32BE(b.length - 4, 0);
  return b;
}

async function roundTrip(port: number, frame: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(frame));
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        s.destroy();
        resolve(buf.subarray(8, 4 + buf.readInt32BE(0))); // past size and correlation id
      }
    });
    s.on('error', reject);
  });
}

t.test('Produce v8: INVALID_RECORD with record_errors; v3: the code alone; nothing stored, dead-lettered', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-schemas-kafka-'));
  const metrics = new MetricsRegistry();
  const broker = await Broker.open({ dataDir: dir }, { logger: silentLogger, metrics });
  const groups = await GroupCoordinator.open(broker, {}, { logger: silentLogger, metrics });
  const schemas = await startSchemas(broker, { port: -1 }, { logger: silentLogger, metrics });
  const listener = await startKafkaServer({ broker, groups, logger: silentLogger, metrics }, { host: '127.0.0.1', port: 0 });
  t.teardown(async () => {
    await listener.close();
    await schemas.close();
    await groups.close();
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  });
  t.equal(schemas.listener, undefined, 'port -1: no registry listener');
  await schemas.registry.register('m-value', { schemaType: 'JSON', schema: JSON.stringify({ type: 'object', properties: { v: { type: 'integer' } }, required: ['v'] }) });
  await broker.createTopic('m', 1, { 'schema.validation': 'reject' });
  const port = Number(listener.address.slice(listener.address.lastIndexOf(':') + 1));
  const values = ['{"v":1}', '{"v":1.5}', '{}', '{"v":2}'];
  const batch = encodeBatch(values.map((v) => ({ key: null, value: Buffer.from(v) })));

  const v8 = decode(handlers.get(0)!.response, new Reader(await roundTrip(port, request(8, 'm', batch)), 0), 8, false);
  const p8 = v8.responses[0].partitionResponses[0];
  t.equal(p8.errorCode, ERRORS.INVALID_RECORD.kafka, 'v8: INVALID_RECORD (87)');
  t.same(p8.recordErrors.map((e: { batchIndex: number }) => e.batchIndex), [1, 2], 'v8: record_errors name records 1 and 2');
  t.match(p8.recordErrors[0].batchIndexErrorMessage, /json-schema: \/v must be integer/, 'v8: each with its reason');
  t.match(p8.recordErrors[1].batchIndexErrorMessage, /required property 'v'/);
  t.match(p8.errorMessage, /record 1 of the batch/, 'v8: error_message');

  const v3 = decode(handlers.get(0)!.response, new Reader(await roundTrip(port, request(3, 'm', batch)), 0), 3, false);
  t.equal(v3.responses[0].partitionResponses[0].errorCode, ERRORS.INVALID_RECORD.kafka, 'v3: INVALID_RECORD');

  t.equal(broker.offsets({ topic: 'm', partition: 0 }).logEndOffset, 0, 'nothing of the refused batches stored');
  t.equal(broker.offsets({ topic: 'm.dlq', partition: 0 }).logEndOffset, 4, 'both refusals dead-lettered (2 records each)');
  const good = encodeBatch([{ key: null, value: Buffer.from('{"v":3}') }]);
  const ok = decode(handlers.get(0)!.response, new Reader(await roundTrip(port, request(8, 'm', good)), 0), 8, false);
  t.equal(ok.responses[0].partitionResponses[0].errorCode, 0, 'a valid batch is stored');
  t.equal(broker.offsets({ topic: 'm', partition: 0 }).logEndOffset, 1);
});
