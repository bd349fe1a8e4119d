// Purpose: CompactedTable keeps a keyed table in a compacted internal topic: writes are
// acknowledged before entries move, a replay (same broker or after a restart) rebuilds exactly
// the acknowledged state with tombstones applied, the table refuses new keys past maxEntries
// with LIMIT_EXCEEDED (overwrites and tombstones still pass), and records that do not decode
// are skipped, logged and counted without stopping the load.
import t from 'tap';
import { CompactedTable, type TableCodec } from '../../../host/broker/compacted-table.js';
import { BrokerError } from '../../../host/errors/index.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { openBroker, bytes, text, readAll } from './broker-fixture.js';

const TOPIC = '__test_table';

/** String keys; values are numbers written as text. A value "X…" or key "?…" does not decode. */
const codec: TableCodec<string, number> = {
  encodeKey: (k) => bytes(k),
  decodeKey: (b) => {
    const k = text(b)!;
    if (k.startsWith('?')) throw new Error(`not a key: ${k}`);
    return k;
  },
  encodeValue: (v) => bytes(String(v)),
  decodeValue: (b) => {
    const n = Number(text(b));
    if (!Number.isSafeInteger(n)) throw new Error(`not a number: ${text(b)}`);
    return n;
  },
};

function options(maxEntries = 100) {
  return { topic: TOPIC, partitions: 2, maxEntries, maxEntriesSetting: 'test.maxEntries', readBytes: 256, clientId: 'table-test' };
}

/** Warnings the table logged, for the "logged" part of skipping. */
function recordingLogger() {
  const warnings: Array<Record<string, unknown>> = [];
  const logger = Object.create(silentLogger) as typeof silentLogger;
  logger.warn = ((obj: Record<string, unknown>) => void warnings.push(obj)) as typeof silentLogger.warn;
  return { logger, warnings };
}

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return err instanceof BrokerError ? err.code : String(err);
  }
  return undefined;
};

const snapshot = (table: CompactedTable<string, number>) => Object.fromEntries([...table.values()].map((e) => [e.key, e.value]));

t.test('compacted table: acknowledged writes and tombstones come back on replay, in the same broker and after a restart', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  const table = await CompactedTable.open(broker, codec, options(), { logger: silentLogger });
  t.equal(table.size, 0, 'no topic yet: an empty table');
  const offsets = await table.write(0, [{ key: 'a', value: 1 }, { key: 'b', value: 2 }]);
  t.same(offsets, [0, 1]);
  await table.write(1, [{ key: 'c', value: 3 }]);
  await table.write(0, [{ key: 'a', value: 10 }, { key: 'b', value: null }]);
  t.same(snapshot(table), { a: 10, c: 3 });
  t.same([table.get('a')?.partition, table.get('a')?.offset], [0, 2], 'an entry knows where its value is');
  const info = broker.describeTopic(TOPIC)!;
  t.same([info.partitions, info.config['cleanup.policy'], info.config.flush], [2, 'compact', 'always'], 'the topic is compacted and fsynced per write');

  const replayed = await CompactedTable.open(broker, codec, options(), { logger: silentLogger });
  t.same(snapshot(replayed), { a: 10, c: 3 }, 'replay: last value per key, tombstone applied');

  await broker.close();
  const { broker: again } = await openBroker(t, { dataDir });
  const restarted = await CompactedTable.open(again, codec, options(), { logger: silentLogger });
  t.same(snapshot(restarted), { a: 10, c: 3 }, 'the same after a restart');
  t.equal(restarted.get('a')?.offset, 2);
});

t.test('compacted table: replay survives compaction of its topic', async (t) => {
  const { broker } = await openBroker(t);
  // Small segments so compaction has closed segments to clean; tombstones dropped at once.
  const small = { ...options(), partitions: 1, topicConfig: { 'segment.bytes': 1024, 'delete.retention.ms': 0 } };
  const table = await CompactedTable.open(broker, codec, small, { logger: silentLogger });
  for (let i = 0; i < 100; i++) await table.write(0, [{ key: `k${i % 5}`, value: i }]);
  await table.write(0, [{ key: 'k0', value: null }]);
  for (let i = 0; i < 20; i++) await table.write(0, [{ key: 'pad', value: i }]); // rolls the tombstone's segment
  await broker.runMaintenance(Date.now() + 86_400_000);
  const left = await readAll(broker, { topic: TOPIC, partition: 0 });
  t.ok(left.length < 60, `compaction removed superseded records (${left.length} of 121 left)`);
  const replayed = await CompactedTable.open(broker, codec, small, { logger: silentLogger });
  t.same(snapshot(replayed), { k1: 96, k2: 97, k3: 98, k4: 99, pad: 19 });
});

t.test('compacted table: maxEntries refuses new keys with LIMIT_EXCEEDED; overwrites and tombstones still pass', async (t) => {
  const { broker } = await openBroker(t);
  const table = await CompactedTable.open(broker, codec, options(3), { logger: silentLogger });
  await table.write(0, [{ key: 'a', value: 1 }, { key: 'b', value: 2 }, { key: 'c', value: 3 }]);
  t.equal(table.size, 3, 'at the limit: accepted');
  let refusal: unknown;
  try {
    await table.write(0, [{ key: 'd', value: 4 }]);
  } catch (err) {
    refusal = err;
  }
  t.equal((refusal as BrokerError)?.code, 'LIMIT_EXCEEDED', 'one more key: refused');
  t.match((refusal as Error).message, /__test_table.*test\.maxEntries/, 'the message names the table and the setting');
  t.equal(table.get('d'), undefined, 'nothing written for a refused key');
  t.equal(broker.offsets({ topic: TOPIC, partition: 0 }).logEndOffset, 3, 'not even in the log');
  await table.write(0, [{ key: 'a', value: 11 }]);
  t.equal(table.get('a')?.value, 11, 'an overwrite needs no room');
  await table.write(0, [{ key: 'b', value: null }]);
  await table.write(0, [{ key: 'd', value: 4 }]);
  t.same(snapshot(table), { a: 11, c: 3, d: 4 }, 'a tombstone makes room');

  // Concurrent writes share the room: the check and the reservation have no await between them.
  await table.write(0, [{ key: 'd', value: null }]);
  const results = await Promise.all([codeOf(table.write(0, [{ key: 'x', value: 1 }])), codeOf(table.write(1, [{ key: 'y', value: 1 }]))]);
  t.same(results.sort(), ['LIMIT_EXCEEDED', undefined].sort(), 'of two concurrent new keys with room for one, one is refused');
  t.equal(table.size, 3);
});

t.test('compacted table: a replay finding more keys than maxEntries keeps them all and refuses new ones', async (t) => {
  const { broker } = await openBroker(t);
  const wide = await CompactedTable.open(broker, codec, options(10), { logger: silentLogger });
  await wide.write(0, [{ key: 'a', value: 1 }, { key: 'b', value: 2 }, { key: 'c', value: 3 }]);
  const { logger, warnings } = recordingLogger();
  const narrow = await CompactedTable.open(broker, codec, options(2), { logger });
  t.equal(narrow.size, 3, 'durable state is never dropped');
  t.ok(warnings.some((w) => w.maxEntries === 2), 'warned');
  t.equal(await codeOf(narrow.write(0, [{ key: 'd', value: 4 }])), 'LIMIT_EXCEEDED');
});

t.test('compacted table: records that do not decode are skipped, logged and counted; the rest loads', async (t) => {
  const { broker } = await openBroker(t);
  const table = await CompactedTable.open(broker, codec, { ...options(), partitions: 1 }, { logger: silentLogger });
  await table.write(0, [{ key: 'good', value: 1 }]);
  // Bytes a table writer of another version (or a bug) could have left: bad value, bad key, no key.
  await broker.produce(TOPIC, [{ key: bytes('good'), value: bytes('Xgarbage') }, { key: bytes('?what'), value: bytes('5') }, { key: null, value: bytes('7') }], { acks: -1, partition: 0, internal: true });
  await table.write(0, [{ key: 'later', value: 2 }]);
  const { logger, warnings } = recordingLogger();
  const metrics = new MetricsRegistry();
  const replayed = new CompactedTable(broker, codec, { ...options(), partitions: 1 }, { logger, metrics });
  t.same(await replayed.load(), { records: 5, skipped: 3 });
  t.same(snapshot(replayed), { good: 1, later: 2 }, 'an undecodable value leaves the last good one');
  t.equal(replayed.skipped, 3);
  t.equal(warnings.filter((w) => w.offset !== undefined).length, 3, 'each skipped record is logged with its offset');
  t.match(metrics.render(), /tributary_table_skipped_records_total\{topic="__test_table"\} 3/, 'and counted');
});

t.test('compacted table: a codec may keep part of a value in record headers (as MQTT retained messages do)', async (t) => {
  const { broker } = await openBroker(t);
  const withUnit: TableCodec<string, { n: number; unit: string }> = {
    encodeKey: (k) => bytes(k),
    decodeKey: (b) => text(b)!,
    encodeValue: (v) => bytes(String(v.n)),
    encodeHeaders: (v) => [{ key: 'unit', value: bytes(v.unit) }],
    decodeValue: (b, _k, headers) => {
      const unit = headers.find((h) => h.key === 'unit');
      if (!unit?.value) throw new Error('no unit header');
      return { n: Number(text(b)), unit: text(unit.value)! };
    },
  };
  const opts = { ...options(), topic: '__test_headers', partitions: 1 };
  const table = await CompactedTable.open(broker, withUnit, opts, { logger: silentLogger });
  await table.write(0, [{ key: 't1', value: { n: 21, unit: 'C' } }]);
  await broker.produce('__test_headers', [{ key: bytes('t2'), value: bytes('5') }], { acks: -1, partition: 0, internal: true });
  const replayed = await CompactedTable.open(broker, withUnit, opts, { logger: silentLogger });
  t.same(replayed.get('t1')?.value, { n: 21, unit: 'C' }, 'the header came back with the value');
  t.equal(replayed.get('t2'), undefined, 'a record missing its header does not decode: skipped');
  t.equal(replayed.skipped, 1);
});
