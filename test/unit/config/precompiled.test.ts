// Purpose: the configuration's validators come from the build (host/config/precompiled.ts,
// scripts/build-config-validators.mjs), not from ajv at start (issue 14's footprint): every key
// schema a node checks has a generated validator; loading and preparing a node with keys from
// every source loads no ajv file; each generated validator answers exactly as ajv compiling the
// same schema does (result and first error) over values of every JSON type, so error messages
// stay as they were; a schema the build did not see still validates (ajv, loaded then), and the
// node is told it happened; the annotations never split or change a validator.
import t from 'tap';
import { createRequire } from 'node:module';
import type { Ajv as AjvType } from 'ajv';
import { keySchema, topLevelSchema } from '../../../host/config/loader.js';
import { check, integer, releaseValidation, type KeySchema } from '../../../host/config/schema.js';
import { loadGeneratedValidators, validatorKey } from '../../../host/config/precompiled.js';
import { configSchemas, configSections, loadNodeConfig, prepareNode } from '../../../host/node.js';
import { tempDir } from '../../helpers/index.js';

const requireHere = createRequire(import.meta.url);
const ajvFiles = () => Object.keys(requireHere.cache).filter((f) => /[\\/]node_modules[\\/]ajv[\\/]/.test(f));

/** Every key schema a node checks, as the build collects them. */
function nodeKeySchemas(): Array<{ key: string; schema: KeySchema; def?: unknown }> {
  const out: Array<{ key: string; schema: KeySchema; def?: unknown }> = Object.entries(topLevelSchema).map(([key, schema]) => ({ key, schema }));
  const schemas = configSchemas();
  for (const [name, section] of Object.entries(configSections() as unknown as Record<string, Record<string, unknown>>)) {
    for (const [key, def] of Object.entries(section)) out.push({ key: `${name}.${key}`, schema: keySchema(schemas, name, key, def), def });
  }
  return out;
}

t.test('config validators: loading and preparing a node loads no ajv, and warns of nothing', { timeout: 30_000 }, async (t) => {
  t.same(ajvFiles(), [], 'no ajv file before (the test process loads none)');
  const dataDir = await tempDir(t);
  const config = loadNodeConfig(
    ['--data-dir', dataDir, '--host', '127.0.0.1', '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'mqtt.routes=[{"match":"a/#","topic":"a"}]', '--set', 'broker.log={"indexCacheBytes":0}'],
    { TRIBUTARY_MQTT_APPENDS_IN_FLIGHT_MAX: '16', TRIBUTARY_KAFKA_ADVERTISED_PORT: 'null' },
  );
  await prepareNode(config);
  t.throws(() => loadNodeConfig(['--data-dir', dataDir, '--set', 'groups.groupMaxSize=0'], {}), { message: 'config: groups.groupMaxSize = "0" (flag): must be an integer from 1 to 2147483647' }, 'a refusal words its error as before');
  t.same(ajvFiles(), [], 'no ajv file after: every check used a generated validator');
  const warnings: string[] = [];
  t.equal(releaseValidation((w) => warnings.push(w)), true, 'released');
  t.same(warnings, [], 'nothing compiled at run time, nothing to warn of');
  t.notOk(Object.keys(requireHere.cache).some((f) => f.endsWith('config-validators.generated.cjs')), 'the generated module left the require cache');
});

t.test('config validators: the build generated one for every key schema a node checks', { timeout: 30_000 }, async (t) => {
  // Loaded here, after the test above proved a node's own checks drop it from the require cache.
  const generated = loadGeneratedValidators();
  if (!generated.validators) return t.fail(`no generated validators: ${generated.why}`);
  const missing = nodeKeySchemas().filter(({ schema }) => !generated.validators![validatorKey(schema)]);
  t.same(
    missing.map((m) => m.key),
    [],
    'every key has a generated validator',
  );
  t.ok(Object.keys(generated.validators).length < nodeKeySchemas().length, `equal rules share one (${Object.keys(generated.validators).length} validators for ${nodeKeySchemas().length} keys)`);
});

t.test('config validators: a schema the build did not see validates with ajv, and the node hears of it', { timeout: 30_000 }, async (t) => {
  const unseen = integer(3, 7919);
  t.equal(check(unseen, 7920), 'must be an integer from 3 to 7919', 'refused, worded from the schema');
  t.equal(check(unseen, 7919), null, 'its bound allowed');
  t.ok(ajvFiles().length > 0, 'ajv was loaded for it');
  const warnings: string[] = [];
  releaseValidation((w) => warnings.push(w));
  t.match(warnings, [/^config: 1 validator\(s\) compiled with ajv at start: .*npm run build generates them$/], 'the release warns, naming the count');
  t.same(ajvFiles(), [], 'and ajv left the require cache');
});

/** Values of every JSON type and the edges config keys use. */
const PROBES: unknown[] = [null, true, false, 0, -1, -2, 1, 1.5, 16, 17, 65535, 65536, 2 ** 31 - 1, 2 ** 31, Number.MAX_SAFE_INTEGER, '', 'x', '😀', 'a b', '1', 'null', 'a'.repeat(300), [], [1], ['a'], [''], [{}], [{ match: 'a/#', topic: 't' }], {}, { a: 1 }, { keyFile: 'k', certFile: 'c' }, { indexCacheBytes: -1 }];

t.test('config validators: each generated validator answers as ajv does (result and first error)', { timeout: 60_000 }, async (t) => {
  const generated = loadGeneratedValidators();
  if (!generated.validators) return t.fail(`no generated validators: ${generated.why}`);
  // Loaded here, after the tests above proved a node's checks load none of it.
  const { Ajv } = requireHere('ajv') as { Ajv: typeof AjvType };
  const ajv = new Ajv({ allErrors: false, strict: true });
  let compared = 0;
  const differ: string[] = [];
  for (const [key, fn] of Object.entries(generated.validators)) {
    const reference = ajv.compile(JSON.parse(key));
    const defaults = nodeKeySchemas()
      .filter((k) => validatorKey(k.schema) === key && k.def !== undefined)
      .map((k) => k.def);
    for (const value of [...PROBES, ...defaults]) {
      const ok = fn(value);
      const expected = reference(value);
      compared++;
      if (ok !== expected || JSON.stringify(fn.errors?.[0] ?? null) !== JSON.stringify(reference.errors?.[0] ?? null)) differ.push(`${key} on ${JSON.stringify(value)}`);
    }
  }
  t.same(differ, [], `${compared} answers compared, none differ`);
});

t.test('config validators: annotations neither split nor change a validator', async (t) => {
  const plain = { type: 'integer', minimum: -1, maximum: 65535 };
  t.equal(validatorKey({ ...plain, 'x-port': true }), validatorKey(plain), 'x-port dropped');
  t.equal(validatorKey({ maximum: 65535, 'x-allowed': 'text', type: 'integer', minimum: -1 }), validatorKey(plain), 'x-allowed dropped, key order irrelevant');
  const nested = { type: 'object', properties: { 'x-key': { type: 'string', 'x-allowed': 'a' } }, required: ['x-key'] };
  t.same(JSON.parse(validatorKey(nested)), { properties: { 'x-key': { type: 'string' } }, required: ['x-key'], type: 'object' }, 'a property named x-… is a name, kept; its schema loses its annotation');
  t.same(JSON.parse(validatorKey({ enum: [{ 'x-a': 1 }] })), { enum: [{ 'x-a': 1 }] }, 'enum values are data, kept');
});
