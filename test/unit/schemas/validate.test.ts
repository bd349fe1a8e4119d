// Purpose: the registry and the ingest validator in process, over a real broker on real files:
// each refusal rule, the Kafka path's record errors bounded by recordErrorsMax (at and past the
// limit), dead letters with their headers (and the case where none can be written), the hook
// consulted only for topics that ask, the parse limits, a reference cycle in stored state, the
// options' bounds, and the store's replay giving the same ids.
import t from 'tap';
import avro from 'avsc';
import { encodeBatch } from '../../../host/core/index.js';
import { BrokerError } from '../../../host/errors/index.js';
import { silentLogger } from '../../../host/logging.js';
import { SchemaRegistry } from '../../../host/schemas/registry.js';
import { IngestValidator, decodeWireValue, wireSchemaId } from '../../../host/schemas/validate.js';
import { validateSchemaRegistryOptions, defaultSchemaRegistryOptions } from '../../../host/schemas/options.js';
import { jsonNesting, parseSchema, regexRisk, RegistryError } from '../../../host/schemas/schema-types.js';
import { PartitionCursor } from '../../../host/broker/cursor.js';
import { openBroker, bytes, text } from '../broker/broker-fixture.js';
type Teardown = Parameters<typeof openBroker>[0];

const JSON_SCHEMA = { type: 'object', properties: { t: { type: 'number', maximum: 100 } }, required: ['t'] };
const AVRO_SCHEMA = { type: 'record', name: 'R', fields: [{ name: 'n', type: 'int' }] };
const wire = (id: number, body: Uint8Array) => {
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(id, 1);
  out.set(body, 5);
  return out;
};

async function setup(t: Teardown, options = {}) {
  const { broker, metrics } = await openBroker(t);
  const o = validateSchemaRegistryOptions({ port: -1, ...options });
  const registry = await SchemaRegistry.open(broker, o, silentLogger);
  const validator = new IngestValidator(registry, broker, silentLogger, metrics);
  broker.setAppendValidator(validator);
  const j = await registry.register('j-value', { schemaType: 'JSON', schema: JSON.stringify(JSON_SCHEMA) });
  const a = await registry.register('a-value', { schema: JSON.stringify(AVRO_SCHEMA) });
  return { broker, metrics, registry, validator, j: j.id, a: a.id, o };
}

async function readAll(broker: Awaited<ReturnType<typeof setup>>['broker'], topic: string) {
  if (!broker.describeTopic(topic)) return [];
  const c = new PartitionCursor(broker, { topic, partition: 0 }, 0, { maxBytes: 1 << 20, onOutOfRange: 'fail' });
  const out = [];
  while (!c.caughtUp()) out.push(...(await c.read()).records);
  return out;
}

t.test('each rule: JSON, JSON in the wire format, Avro, unknown id, missing wire format, no schema, tombstone', async (t) => {
  const { validator: v, j, a } = await setup(t);
  t.equal(v.check('j-value', bytes('{"t":5}')), undefined, 'valid JSON');
  t.match(v.check('j-value', bytes('{"t":500}')), { rule: 'json-schema', path: '/t' }, 'JSON above maximum');
  t.match(v.check('j-value', bytes('{"t":')), { rule: 'json-parse' }, 'not JSON');
  t.equal(v.check('j-value', wire(j, bytes('{"t":1}'))), undefined, 'JSON in the wire format with the subject id');
  t.match(v.check('j-value', wire(a, bytes('{"t":1}'))), { rule: 'schema-id-unknown' }, 'an id of another subject');
  const avroType = avro.Type.forSchema(AVRO_SCHEMA as avro.Schema);
  t.equal(v.check('a-value', wire(a, avroType.toBuffer({ n: 7 }))), undefined, 'valid Avro');
  t.match(v.check('a-value', wire(a, Buffer.from([0x80]))), { rule: 'avro-decode' }, 'truncated Avro');
  t.match(v.check('a-value', wire(a, Buffer.concat([avroType.toBuffer({ n: 7 }), Buffer.from([1])]))), { rule: 'avro-decode' }, 'trailing bytes');
  t.match(v.check('a-value', avroType.toBuffer({ n: 7 })), { rule: 'wire-format-missing' }, 'raw Avro without the wire format');
  t.match(v.check('nothing-value', bytes('{}')), { rule: 'no-schema' }, 'no schema under the subject');
  t.equal(v.check('j-value', null), undefined, 'a tombstone passes');
  t.equal(wireSchemaId(wire(258, bytes('x'))), 258);
  t.equal(wireSchemaId(bytes('{"a":1}')), undefined);
});

t.test('the hook: off topics untouched, reject refuses and dead-letters, warn stores; Kafka record errors capped at recordErrorsMax', async (t) => {
  const { broker, metrics, a } = await setup(t, { recordErrorsMax: 3 });
  await broker.createTopic('free', 1);
  await broker.createTopic('j', 1, { 'schema.validation': 'reject' });
  await broker.createTopic('w', 1, { 'schema.validation': 'warn', 'schema.subject': 'j-value' });
  await broker.produce('free', [{ key: null, value: bytes('anything') }], { acks: -1 });
  t.equal((await readAll(broker, 'free')).length, 1, 'validation off: stored');
  await broker.produce('j', [{ key: bytes('k'), value: bytes('{"t":1}') }], { acks: -1 });
  const err = await broker.produce('j', [{ key: null, value: bytes('{"t":2}') }, { key: bytes('d1'), value: bytes('{"t":"hot"}'), headers: [{ key: 'h', value: bytes('v') }] }], { acks: -1 }).catch((e) => e);
  t.ok(err instanceof BrokerError && err.code === 'INVALID_RECORD', 'produce: INVALID_RECORD');
  t.same(err.recordErrors.map((e: { batchIndex: number }) => e.batchIndex), [1], 'names record 1');
  t.ok(err.deadLettered, 'dead-lettered before the refusal');
  t.same((await readAll(broker, 'j')).map((r) => text(r.value)), ['{"t":1}'], 'the refused batch stored nothing');
  const dlq = await readAll(broker, 'j.dlq');
  t.equal(dlq.length, 1, 'one dead letter');
  const h = Object.fromEntries(dlq[0].headers.map((x) => [x.key, text(x.value)]));
  t.same([text(dlq[0].key), h.h, h['schema.topic'], h['schema.rule'], h['schema.path']], ['d1', 'v', 'j', 'json-schema', '/t'], 'key, own header and the reasons');

  // Kafka path: client-encoded batch; 3 bad records = recordErrorsMax reported, 4 → still 3
  const bad = (n: number) => encodeBatch(Array.from({ length: n + 1 }, (_, i) => ({ key: null, value: bytes(i === 0 ? '{"t":1}' : '{"t":"x"}') })));
  const e3 = await broker.append({ topic: 'j', partition: 0 }, bad(3), { acks: -1 }).catch((e) => e);
  t.same(e3.recordErrors.map((e: { batchIndex: number }) => e.batchIndex), [1, 2, 3], 'at recordErrorsMax: every refused record named');
  const e4 = await broker.append({ topic: 'j', partition: 0 }, bad(4), { acks: -1 }).catch((e) => e);
  t.equal(e4.recordErrors.length, 3, 'past recordErrorsMax: capped');
  t.match(e4.message, /and 3 more/, 'the message counts the rest');
  const wireOk = wire(a, avro.Type.forSchema(AVRO_SCHEMA as avro.Schema).toBuffer({ n: 1 }));
  t.rejects(broker.append({ topic: 'j', partition: 0 }, encodeBatch([{ key: null, value: wireOk }]), { acks: -1 }), { code: 'INVALID_RECORD' }, 'an Avro id that is not the subject\'s');

  await broker.produce('w', [{ key: null, value: bytes('{"t":"x"}') }], { acks: -1 });
  t.equal((await readAll(broker, 'w')).length, 1, 'warn: stored');
  t.equal(metrics.get('tributary_schema_warned_total')?.value({ topic: 'w', rule: 'json-schema' }), 1, 'warn: counted');
  t.equal((await readAll(broker, 'w.dlq')).length, 0, 'warn: no dead letter');
  t.equal(metrics.get('tributary_schema_refused_total')?.value({ topic: 'j', rule: 'json-schema' }), 1 + 3 + 4, 'refusals counted per record');
});

t.test('a dead-letter topic that cannot be written: refused, not dead-lettered', async (t) => {
  const { broker } = await setup(t, { deadLetterTopic: '{topic}' });
  await broker.createTopic('j', 1, { 'schema.validation': 'reject', 'schema.subject': 'j-value' });
  const err = await broker.produce('j', [{ key: null, value: bytes('{}') }], { acks: -1 }).catch((e) => e);
  t.equal(err.code, 'INVALID_RECORD');
  t.equal(err.deadLettered, false, 'a topic is never its own dead-letter topic');
  t.equal((await readAll(broker, 'j')).length, 0);
});

t.test('JSON Schema drafts: draft-07 by default, 2020-12 and 2019-09 by $schema, others refused', async (t) => {
  const { registry, validator: v } = await setup(t);
  const tuple = { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'array', prefixItems: [{ type: 'number' }, { type: 'string' }], items: false };
  await registry.register('tuple-value', { schemaType: 'JSON', schema: JSON.stringify(tuple) });
  t.equal(v.check('tuple-value', bytes('[1,"a"]')), undefined, '2020-12 prefixItems: a matching tuple passes');
  t.match(v.check('tuple-value', bytes('["a",1]')), { rule: 'json-schema', path: '/0' }, '2020-12 prefixItems: checked');
  t.match(v.check('tuple-value', bytes('[1,"a",3]')), { rule: 'json-schema' }, '2020-12 items:false after the prefix');
  const d7 = { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', dependencies: { a: ['b'] } };
  await registry.register('d7-value', { schemaType: 'JSON', schema: JSON.stringify(d7) });
  t.match(v.check('d7-value', bytes('{"a":1}')), { rule: 'json-schema' }, 'draft-07 dependencies: checked');
  const d19 = { $schema: 'https://json-schema.org/draft/2019-09/schema', type: 'object', dependentRequired: { a: ['b'] } };
  await registry.register('d19-value', { schemaType: 'JSON', schema: JSON.stringify(d19) });
  t.match(v.check('d19-value', bytes('{"a":1}')), { rule: 'json-schema' }, '2019-09 dependentRequired: checked');
  await t.rejects(registry.register('d3-value', { schemaType: 'JSON', schema: JSON.stringify({ $schema: 'http://json-schema.org/draft-03/schema#' }) }), { code: 'INVALID_SCHEMA', message: /unsupported \$schema/ });
});

t.test('decodeWireValue: Avro and JSON to JSON-ready values', async (t) => {
  const { registry, j, a } = await setup(t);
  t.same(decodeWireValue(registry, wire(a, avro.Type.forSchema(AVRO_SCHEMA as avro.Schema).toBuffer({ n: -3 }))), { id: a, value: { n: -3 } });
  t.same(decodeWireValue(registry, wire(j, bytes('{"t":2}'))), { id: j, value: { t: 2 } });
  t.equal(decodeWireValue(registry, wire(999, bytes('{}'))), undefined, 'unknown id');
  t.equal(decodeWireValue(registry, bytes('{}')), undefined, 'not the wire format');
});

t.test('replay: the same ids, versions, config and mode after reopening', async (t) => {
  const { broker, registry, j, a, o } = await setup(t);
  await registry.setConfig('j-value', 'FULL');
  await registry.setConfig(null, 'NONE');
  const v2 = await registry.register('j-value', { schemaType: 'JSON', schema: JSON.stringify({ ...JSON_SCHEMA, title: 'v2' }) });
  await registry.deleteVersion('a-value', '1', false);
  const again = await SchemaRegistry.open(broker, o, silentLogger);
  t.same([again.getVersion('j-value', 1).id, again.getVersion('j-value', 2).id], [j, v2.id]);
  t.same(again.listVersions('a-value', true), [1], 'soft-deleted version kept');
  t.throws(() => again.listVersions('a-value'), { code: 'SUBJECT_NOT_FOUND' }, 'and hidden');
  t.equal(again.schemaById(a).id, a, 'its id still resolves');
  t.equal(again.compatibilityOf('j-value'), 'FULL');
  t.equal(again.compatibilityOf('other'), 'NONE');
});

t.test('parse limits and a reference cycle in stored state', async (t) => {
  const limits = { ...defaultSchemaRegistryOptions, referenceDepthMax: 8 };
  t.equal(jsonNesting('[[["]]]]]"]]]', 99), 3, 'brackets inside strings do not count');
  // a cycle can only exist in state written by someone else (an import, a hand-made topic)
  const cyclic = { schemaType: 'AVRO' as const, schema: '{"type":"record","name":"A","fields":[]}', references: [{ name: 'B', subject: 'b', version: 1 }] };
  const lookup = (subject: string) => ({ ...cyclic, references: [{ name: subject === 'b' ? 'A' : 'B', subject: subject === 'b' ? 'a' : 'b', version: 1 }] });
  const caught = (fn: () => unknown): unknown => {
    try {
      fn();
    } catch (e) {
      return e;
    }
    return undefined;
  };
  const cycle = caught(() => parseSchema(cyclic, lookup, limits));
  t.ok(cycle instanceof RegistryError, 'a cycle: RegistryError');
  t.match(cycle, { code: 'INVALID_SCHEMA', message: /reference cycle/ }, 'a cycle is named, not followed');
  const chain = (subject: string) => ({ schemaType: 'AVRO' as const, schema: '"int"', references: [{ name: 'x', subject: subject + 'x', version: 1 }] });
  t.match(caught(() => parseSchema(chain(''), chain, limits)), { code: 'LIMIT_EXCEEDED', message: /referenceDepthMax 8/ }, 'an endless chain stops at referenceDepthMax');
});

t.test('options: every limit refused outside its range, naming the key', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['port', -2],
    ['port', 65536],
    ['schemaBytesMax', 63],
    ['subjectsMax', 0],
    ['versionsPerSubjectMax', 0],
    ['referenceDepthMax', -1],
    ['schemaNestingMax', 1],
    ['requestBytesMax', 127],
    ['requestsInFlightMax', 0],
    ['recordErrorsMax', 0],
    ['parsedSchemasCachedMax', 0],
    ['deadLetterTopic', ''],
    ['connectionsMax', 0],
    ['tls', 'on'],
  ];
  for (const [key, value] of bad) t.throws(() => validateSchemaRegistryOptions({ [key]: value }), { code: 'INVALID_CONFIG', message: new RegExp(`schemas.${key}`) }, `${key}=${String(value)}`);
  t.equal(validateSchemaRegistryOptions({ port: -1 }).port, -1, 'port -1 (no listener) allowed');
  t.equal(validateSchemaRegistryOptions({ schemaBytesMax: 64 }).schemaBytesMax, 64, 'lowest schemaBytesMax allowed');
});

t.test('regular expressions that can backtrack for exponential time are refused at registration', async (t) => {
  const parse = (doc: unknown) => parseSchema({ schemaType: 'JSON', schema: JSON.stringify(doc), references: [] } as never, () => undefined, defaultSchemaRegistryOptions);
  // the shape is real: with `(a+)+$` V8 took 567 ms on 26 characters and doubles per character (measured on Node 20)
  for (const bad of ['(a+)+$', '(\\w*)*x', '(a|ab)*c', '^(x{2,})+$', '(.)\\1']) {
    t.throws(() => parse({ type: 'string', pattern: bad }), { code: 'INVALID_SCHEMA', message: /pattern .* is refused/ }, `pattern ${bad}`);
  }
  t.throws(() => parse({ type: 'object', patternProperties: { '^(a+)+$': { type: 'number' } } }), { message: /patternProperties "\^\(a\+\)\+\$" is refused: a repeated group/ }, 'patternProperties keys too');
  t.throws(() => parse({ type: 'object', properties: { id: { type: 'string', pattern: '([0-9]*)*' } } }), { message: /schema: pattern/ }, 'found nested anywhere');
  for (const good of ['^[a-z0-9-]+$', '^\\d+(\\.\\d+)?$', '^(abc)+$', '^([A-Z]{2}[0-9]{2})+$', '[(+*]+', '\\(a+\\)+']) {
    t.equal(regexRisk(good), null, `pattern ${good} accepted`);
  }
  t.ok(parse({ type: 'object', properties: { pattern: { type: 'string' } } }), 'a property named "pattern" is not a pattern');
});
