// Purpose: the registry's REST API against a real broker process on real files (issue 15):
// every endpoint of the Confluent subset with its answers and Confluent's error codes, references
// (Avro named types, JSON Schema $ref), mode and config, every registry limit at its boundary,
// hostile schemas answered with errors while the broker stays up, and kill -9 after
// registrations: every acknowledged id is there, unchanged, after the restart.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';

type Answer = { status: number; body: any };

function client(p: BrokerProcess) {
  const addr = (p.listeners as Record<string, string>).schemas;
  const base = `http://${addr}`;
  return async (method: string, path: string, body?: unknown, contentType = 'application/vnd.schemaregistry.v1+json'): Promise<Answer> => {
    const res = await fetch(base + path, { method, headers: body === undefined ? {} : { 'content-type': contentType }, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed };
  };
}

const avroRec = (name: string, fields: unknown[]) => JSON.stringify({ type: 'record', name, fields });
const LIMIT_ARGS = ['--set', 'schemas.port=0', '--set', 'schemas.subjectsMax=4', '--set', 'schemas.versionsPerSubjectMax=2', '--set', 'schemas.schemaBytesMax=4096', '--set', 'schemas.referenceDepthMax=2', '--set', 'schemas.schemaNestingMax=16', '--set', 'schemas.requestBytesMax=16384'];

t.test('registry API: register, look up, list, versions, ids, config, mode, compatibility, delete', async (t) => {
  const dataDir = await tempDir(t);
  const p = await startBroker(t, { dataDir, args: ['--set', 'schemas.port=0'] });
  const sr = client(p);
  const v1 = avroRec('Reading', [{ name: 't', type: 'double' }]);
  const v2 = avroRec('Reading', [{ name: 't', type: 'double' }, { name: 'h', type: 'double', default: 0 }]);

  t.same((await sr('GET', '/schemas/types')).body, ['AVRO', 'JSON'], 'schema types');
  t.same((await sr('GET', '/subjects')).body, [], 'no subjects yet');
  const r1 = await sr('POST', '/subjects/s-value/versions', { schema: v1 });
  t.same(r1, { status: 200, body: { id: 1 } }, 'first registration gets id 1');
  t.same((await sr('POST', '/subjects/s-value/versions', { schema: ' ' + v1 + '\n' })).body, { id: 1 }, 'the same schema (whitespace aside) again: the same id');
  t.same((await sr('POST', '/subjects/other-value/versions', { schema: v1 }, 'application/json')).body, { id: 1 }, 'the same schema under another subject shares the id');
  t.same((await sr('POST', '/subjects/s-value/versions', { schema: v2 }, 'application/vnd.schemaregistry+json')).body, { id: 2 }, 'a compatible new version gets id 2');
  t.same((await sr('GET', '/subjects')).body, ['other-value', 's-value'], 'subjects listed');
  t.same((await sr('GET', '/subjects/s-value/versions')).body, [1, 2], 'versions listed');
  const latest = await sr('GET', '/subjects/s-value/versions/latest');
  t.same(latest.body, { subject: 's-value', version: 2, id: 2, schema: v2 }, 'latest version (AVRO: no schemaType, as Confluent)');
  t.same((await sr('GET', '/subjects/s-value/versions/1/schema')).body, JSON.parse(v1), '.../schema answers the bare schema');
  t.same((await sr('POST', '/subjects/s-value', { schema: v1 })).body, { subject: 's-value', version: 1, id: 1, schema: v1 }, 'lookup finds version 1');
  t.same((await sr('GET', '/schemas/ids/2')).body, { schema: v2 }, 'schema by id');
  t.same((await sr('GET', '/schemas/ids/1/subjects')).body, ['other-value', 's-value'], 'subjects of an id');
  t.same((await sr('GET', '/schemas/ids/1/versions')).body, [{ subject: 'other-value', version: 1 }, { subject: 's-value', version: 1 }], 'subject-versions of an id');

  // errors, with Confluent's numbers
  const code = async (a: Promise<Answer>) => {
    const x = await a;
    return [x.status, x.body.error_code];
  };
  t.same(await code(sr('GET', '/subjects/nope/versions')), [404, 40401], 'unknown subject: 40401');
  t.same(await code(sr('GET', '/subjects/s-value/versions/9')), [404, 40402], 'unknown version: 40402');
  t.same(await code(sr('GET', '/schemas/ids/99')), [404, 40403], 'unknown id: 40403');
  t.same(await code(sr('POST', '/subjects/s-value', { schema: avroRec('X', []) })), [404, 40403], 'lookup of an unregistered schema: 40403');
  t.same(await code(sr('GET', '/subjects/s-value/versions/0')), [422, 42202], 'version 0: 42202');
  t.same(await code(sr('GET', '/subjects/s-value/versions/x1')), [422, 42202], 'version "x1": 42202');
  t.same(await code(sr('POST', '/subjects/s-value/versions', { schema: '{"type":"record"' })), [422, 42201], 'not JSON: 42201');
  t.same(await code(sr('POST', '/subjects/s-value/versions', { schema: '{"type":"recrod","name":"x","fields":[]}' })), [422, 42201], 'not Avro: 42201');
  const proto = await sr('POST', '/subjects/p-value/versions', { schema: 'syntax = "proto3";', schemaType: 'PROTOBUF' });
  t.same([proto.status, proto.body.error_code], [422, 42201], 'PROTOBUF: 42201');
  t.match(proto.body.message, /PROTOBUF is not supported/, 'PROTOBUF: says it is not supported');
  const incompatible = await sr('POST', '/subjects/s-value/versions', { schema: avroRec('Reading', [{ name: 't', type: 'string' }]) });
  t.same([incompatible.status, incompatible.body.error_code], [409, 409], 'incompatible: 409');
  t.same(await code(sr('POST', '/subjects/s-value/versions', 'not json')), [422, 422], 'a body that is not JSON: 422');
  t.same(await code(sr('POST', '/subjects/s-value/versions', { schema: v1 }, 'text/plain')), [422, 422], 'a content type not accepted: 422');
  t.same(await code(sr('GET', '/nothing/here')), [404, 404], 'unknown endpoint: 404');
  t.same(await code(sr('PATCH', '/subjects')), [405, 405], 'wrong method: 405');

  // compatibility endpoint
  const bad = { schema: avroRec('Reading', [{ name: 't', type: 'double' }, { name: 'x', type: 'int' }]) };
  t.same((await sr('POST', '/compatibility/subjects/s-value/versions/latest', bad)).body, { is_compatible: false }, 'compatibility: false');
  const verbose = await sr('POST', '/compatibility/subjects/s-value/versions/latest?verbose=true', bad);
  t.equal(verbose.body.is_compatible, false);
  t.match(verbose.body.messages[0], /BACKWARD.*x/, 'verbose: the reason');
  t.same((await sr('POST', '/compatibility/subjects/s-value/versions/1', { schema: v2 })).body, { is_compatible: true }, 'against version 1: compatible');

  // config: GET answers compatibilityLevel, PUT takes compatibility
  t.same((await sr('GET', '/config')).body, { compatibilityLevel: 'BACKWARD' }, 'global default BACKWARD');
  t.same((await sr('PUT', '/config/s-value', { compatibility: 'NONE' })).body, { compatibility: 'NONE' }, 'subject config set');
  t.same((await sr('GET', '/config/s-value')).body, { compatibilityLevel: 'NONE' }, 'subject config read');
  t.same(await code(sr('GET', '/config/other-value')), [404, 40408], 'subject without its own config: 40408');
  t.same((await sr('GET', '/config/other-value?defaultToGlobal=true')).body, { compatibilityLevel: 'BACKWARD' }, 'defaultToGlobal');
  t.same(await code(sr('PUT', '/config', { compatibility: 'SIDEWAYS' })), [422, 42203], 'bad level: 42203');
  t.same((await sr('POST', '/subjects/s-value/versions', bad)).body, { id: 3 }, 'NONE lets the incompatible schema in');
  t.same((await sr('DELETE', '/config/s-value')).body, { compatibilityLevel: 'NONE' }, 'subject config deleted (answers what it was)');

  // mode
  t.same((await sr('GET', '/mode')).body, { mode: 'READWRITE' });
  t.same((await sr('PUT', '/mode', { mode: 'READONLY' })).body, { mode: 'READONLY' });
  t.same(await code(sr('POST', '/subjects/s-value/versions', { schema: avroRec('Y', []) })), [422, 42205], 'READONLY refuses registration: 42205');
  t.same(await code(sr('PUT', '/mode', { mode: 'SOMETIMES' })), [422, 42204], 'bad mode: 42204');
  t.same(await code(sr('PUT', '/mode', { mode: 'IMPORT' })), [422, 42205], 'IMPORT with subjects needs force');
  t.same((await sr('PUT', '/mode?force=true', { mode: 'IMPORT' })).body, { mode: 'IMPORT' });
  t.same((await sr('POST', '/subjects/imported-value/versions', { schema: avroRec('Imp', []), id: 100, version: 7 })).body, { id: 100 }, 'IMPORT keeps the given id');
  t.same((await sr('GET', '/subjects/imported-value/versions')).body, [7], 'and the given version');
  t.same((await sr('PUT', '/mode', { mode: 'READWRITE' })).body, { mode: 'READWRITE' });
  t.same(await code(sr('POST', '/subjects/x-value/versions', { schema: avroRec('Z', []), id: 5 })), [422, 42205], 'an id outside IMPORT: 42205');
  t.same((await sr('POST', '/subjects/next-value/versions', { schema: avroRec('Next', []) })).body, { id: 101 }, 'ids continue after the imported one');

  // delete: soft, then permanent
  t.same(await code(sr('DELETE', '/subjects/other-value?permanent=true')), [404, 40405], 'permanent before soft: 40405');
  t.same((await sr('DELETE', '/subjects/other-value')).body, [1], 'soft delete answers the versions');
  t.same(await code(sr('DELETE', '/subjects/other-value')), [404, 40404], 'soft delete twice: 40404');
  t.same(await code(sr('GET', '/subjects/other-value/versions')), [404, 40401], 'soft-deleted subject is gone from reads');
  t.same((await sr('GET', '/subjects/other-value/versions?deleted=true')).body, [1], '...unless deleted=true');
  t.same((await sr('GET', '/schemas/ids/1')).body, { schema: v1 }, 'its id still resolves');
  t.same((await sr('DELETE', '/subjects/other-value?permanent=true')).body, [1], 'then permanently');
  t.same((await sr('GET', '/subjects?deleted=true')).body.includes('other-value'), false, 'gone even with deleted=true');
  t.same((await sr('DELETE', '/subjects/s-value/versions/3')).body, 3, 'version soft delete');
  t.same(await code(sr('DELETE', '/subjects/s-value/versions/3')), [404, 40406], 'version soft delete twice: 40406');
  t.same(await code(sr('DELETE', '/subjects/s-value/versions/2?permanent=true')), [404, 40407], 'version permanent before soft: 40407');
  t.same((await sr('GET', '/subjects/s-value/versions/latest')).body.version, 2, 'latest skips the deleted version');
  await p.stop();
});

t.test('references: Avro named types and JSON Schema $ref, resolved; deleting a referenced version is refused', async (t) => {
  const dataDir = await tempDir(t);
  const p = await startBroker(t, { dataDir, args: ['--set', 'schemas.port=0'] });
  const sr = client(p);
  const loc = JSON.stringify({ type: 'record', name: 'Location', namespace: 'io.t', fields: [{ name: 'lat', type: 'double' }] });
  t.same((await sr('POST', '/subjects/location/versions', { schema: loc })).body, { id: 1 });
  const reading = JSON.stringify({ type: 'record', name: 'Reading', namespace: 'io.t', fields: [{ name: 'where', type: 'io.t.Location' }] });
  const noRef = await sr('POST', '/subjects/r-value/versions', { schema: reading });
  t.equal(noRef.body.error_code, 42201, 'unresolved named type without the reference: 42201');
  const refs = [{ name: 'io.t.Location', subject: 'location', version: 1 }];
  t.same((await sr('POST', '/subjects/r-value/versions', { schema: reading, references: refs })).body, { id: 2 }, 'with the reference: registered');
  t.same((await sr('GET', '/schemas/ids/2')).body, { schema: reading, references: refs }, 'references answered with the schema');
  const missing = await sr('POST', '/subjects/r2-value/versions', { schema: reading, references: [{ name: 'io.t.Location', subject: 'location', version: 9 }] });
  t.equal(missing.body.error_code, 42201, 'a reference to a missing version: 42201');
  const del = await sr('DELETE', '/subjects/location/versions/1');
  t.equal(del.body.error_code, 42206, 'deleting a referenced version: 42206');

  const addr = JSON.stringify({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] });
  t.same((await sr('POST', '/subjects/address/versions', { schema: addr, schemaType: 'JSON' })).body, { id: 3 });
  const person = JSON.stringify({ type: 'object', properties: { home: { $ref: 'address.json' } } });
  t.same((await sr('POST', '/subjects/person-value/versions', { schema: person, schemaType: 'JSON', references: [{ name: 'address.json', subject: 'address', version: 1 }] })).body, { id: 4 }, 'JSON $ref resolved by reference name');
  const bad = await sr('POST', '/subjects/person2-value/versions', { schema: person, schemaType: 'JSON' });
  t.equal(bad.body.error_code, 42201, 'unresolved $ref: 42201');
  t.same((await sr('GET', '/subjects/person-value/versions/1')).body.schemaType, 'JSON', 'JSON versions name their type');
  await p.stop();
});

t.test('limits at their boundary, hostile schemas refused, the broker stays up', async (t) => {
  const dataDir = await tempDir(t);
  const p = await startBroker(t, { dataDir, args: LIMIT_ARGS });
  const sr = client(p);
  // schemaBytesMax 4096: a schema of exactly 4096 bytes passes, 4097 does not
  const pad = (n: number) => {
    const base = { type: 'record', name: 'P', doc: '', fields: [] as unknown[] };
    const len = JSON.stringify(base).length;
    return JSON.stringify({ ...base, doc: 'x'.repeat(n - len) });
  };
  t.equal(Buffer.byteLength(pad(4096)), 4096);
  t.same((await sr('POST', '/subjects/a/versions', { schema: pad(4096) })).body, { id: 1 }, 'schemaBytesMax: exactly at the limit');
  const big = await sr('POST', '/subjects/a2/versions', { schema: pad(4097) });
  t.equal(big.body.error_code, 42299, 'schemaBytesMax + 1: refused (42299)');
  t.match(big.body.message, /schemaBytesMax/);
  // versionsPerSubjectMax 2
  await sr('PUT', '/config/a', { compatibility: 'NONE' });
  t.same((await sr('POST', '/subjects/a/versions', { schema: avroRec('V2', []) })).body, { id: 2 }, 'version 2 of 2');
  const v3 = await sr('POST', '/subjects/a/versions', { schema: avroRec('V3', []) });
  t.equal(v3.body.error_code, 42299, 'versionsPerSubjectMax: version 3 refused');
  t.match(v3.body.message, /versionsPerSubjectMax/);
  // subjectsMax 4 (a is 1)
  for (const s of ['b', 'c', 'd']) t.equal((await sr('POST', `/subjects/${s}/versions`, { schema: avroRec(s.toUpperCase(), []) })).status, 200, `subject ${s}`);
  const e = await sr('POST', '/subjects/e/versions', { schema: avroRec('E', []) });
  t.equal(e.body.error_code, 42299, 'subjectsMax: the 5th subject refused');
  t.match(e.body.message, /subjectsMax/);
  // referenceDepthMax 2: b ← c-chain of depth 2 passes, depth 3 refused (c and d reuse subjects: versions 2)
  await sr('PUT', '/config', { compatibility: 'NONE' });
  const named = (n: string, fields: unknown[] = []) => JSON.stringify({ type: 'record', name: n, fields });
  t.equal((await sr('POST', '/subjects/b/versions', { schema: named('B2', [{ name: 'x', type: 'B' }]), references: [{ name: 'B', subject: 'b', version: 1 }] })).status, 200, 'depth 1');
  t.equal((await sr('POST', '/subjects/c/versions', { schema: named('C2', [{ name: 'x', type: 'B2' }]), references: [{ name: 'B2', subject: 'b', version: 2 }] })).status, 200, 'depth 2 (at the limit)');
  const deep = await sr('POST', '/subjects/d/versions', { schema: named('D2', [{ name: 'x', type: 'C2' }]), references: [{ name: 'C2', subject: 'c', version: 2 }] });
  t.equal(deep.body.error_code, 42299, 'depth 3: refused');
  t.match(deep.body.message, /referenceDepthMax/);
  // schemaNestingMax 16: nesting of exactly 16 parses (as an invalid schema), 17 is refused before parsing
  const nest = (n: number) => '['.repeat(n) + ']'.repeat(n);
  t.equal((await sr('POST', '/subjects/d/versions', { schema: nest(16) })).body.error_code, 42201, 'nesting 16: parsed, not a valid Avro schema (42201)');
  const deepNest = await sr('POST', '/subjects/d/versions', { schema: nest(17) });
  t.equal(deepNest.body.error_code, 42299, 'nesting 17: refused unparsed');
  // requestBytesMax 16384: the body streams in and is cut off
  const huge = await sr('POST', '/subjects/d/versions', { schema: 'x'.repeat(20_000) });
  t.same([huge.status, huge.body.error_code], [413, 413], 'body above requestBytesMax: 413');
  // hostile schemas
  const invalidJson = await sr('POST', '/subjects/d/versions', { schemaType: 'JSON', schema: JSON.stringify({ type: 'object', properties: { a: { type: 'strung' } } }) });
  t.equal(invalidJson.body.error_code, 42201, 'invalid JSON Schema: 42201');
  t.match(invalidJson.body.message, /invalid JSON Schema/);
  const badDefault = await sr('POST', '/subjects/d/versions', { schema: JSON.stringify({ type: 'record', name: 'Bomb', fields: [{ name: 'a', type: { type: 'array', items: 'int' }, default: [[[[['x']]]]] }] }) });
  t.equal(badDefault.body.error_code, 42201, 'Avro default of the wrong shape: 42201');
  const bomb = JSON.stringify({ type: 'record', name: 'Bomb2', fields: [{ name: 'a', type: { type: 'array', items: { type: 'array', items: 'int' } }, default: Array(80).fill(Array(30).fill(1)) }] });
  const bombAnswer = await sr('POST', '/subjects/d/versions', { schema: bomb });
  t.equal(bombAnswer.body.error_code, 42299, 'a large default is bounded by schemaBytesMax');
  // a reference cycle cannot be built (a reference names a version that exists already); a
  // schema naming the version it would become is an unresolved reference
  const selfRef = await sr('POST', '/subjects/d/versions', { schema: named('S', [{ name: 'x', type: 'S' }]), references: [{ name: 'S', subject: 'd', version: 2 }] });
  t.equal(selfRef.body.error_code, 42201, 'a reference to itself (not yet registered): 42201');
  const notArray = await sr('POST', '/subjects/d/versions', { schema: named('Q'), references: { name: 'x' } });
  t.equal(notArray.body.error_code, 42201, 'references not an array: 42201');
  // bounded in memory: a stream of hostile requests (oversized bodies cut off while streaming,
  // nesting bombs refused before parsing, invalid schemas) leaves the broker's RSS where it was
  const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'))![1]);
  const hostileRound = () =>
    Promise.all([
      ...Array.from({ length: 10 }, () => sr('POST', '/subjects/d/versions', { schema: 'y'.repeat(2_000_000) })),
      ...Array.from({ length: 10 }, () => sr('POST', '/subjects/d/versions', { schema: nest(5_000) })),
      ...Array.from({ length: 10 }, () => sr('POST', '/subjects/d/versions', { schema: bomb })),
    ]);
  for (let round = 0; round < 3; round++) await hostileRound(); // the heap settles at its working size
  const before = rssKiB();
  for (let round = 0; round < 10; round++) await hostileRound();
  const grownMiB = (rssKiB() - before) / 1024;
  // 100 bodies of 2 MB were sent: keeping them would grow RSS by ~200 MB; the bound leaves room
  // for the garbage collector's own pace (RSS is not a precise measure of what is kept)
  t.ok(grownMiB < 64, `RSS grew ${grownMiB.toFixed(1)} MiB over 300 more hostile requests carrying 200 MB (bound 64 MiB: no body kept)`);
  t.equal((await sr('GET', '/subjects')).status, 200, 'the registry still answers');
  t.equal(p.child.exitCode, null, 'the broker is still running');
  await p.stop();
});

t.test('kill -9 after registrations: every acknowledged id survives, ids stay stable', async (t) => {
  const dataDir = await tempDir(t);
  let p = await startBroker(t, { dataDir, args: ['--set', 'schemas.port=0'] });
  let sr = client(p);
  await sr('PUT', '/config', { compatibility: 'NONE' });
  const acked = new Map<string, number>();
  // registrations race each other; each answer is an acknowledgement (fsynced before it)
  await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const subject = `dev${i % 8}-value`;
      const schema = avroRec(`R${i}`, [{ name: `f${i}`, type: 'int' }]);
      const a = await sr('POST', `/subjects/${subject}/versions`, { schema });
      if (a.status === 200) acked.set(`${subject}\u0000${schema}`, a.body.id);
    }),
  );
  t.equal(acked.size, 40, 'all 40 registrations acknowledged');
  await sr('PUT', '/config/dev0-value', { compatibility: 'FULL' });
  await p.kill();
  p = await startBroker(t, { dataDir, args: ['--set', 'schemas.port=0'] });
  sr = client(p);
  let found = 0;
  for (const [k, id] of acked) {
    const [subject, schema] = k.split('\u0000');
    const a = await sr('POST', `/subjects/${subject}`, { schema });
    if (a.status === 200 && a.body.id === id) found++;
    else t.fail(`lost or changed after kill -9: ${subject} id ${id}: ${JSON.stringify(a.body)}`);
  }
  t.equal(found, 40, 'every acknowledged registration is there with its id');
  t.same((await sr('GET', '/config/dev0-value')).body, { compatibilityLevel: 'FULL' }, 'the acknowledged config too');
  const next = await sr('POST', '/subjects/new-value/versions', { schema: avroRec('New', []) });
  t.equal(next.body.id, 41, 'the next id follows the highest replayed one');
  await p.stop();
});
