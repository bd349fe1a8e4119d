// Purpose: the compatibility rules case by case (issue 15). Each row is a writer (old) and a
// reader (new) schema and whether the new one may follow the old under BACKWARD (new reads
// old), FORWARD (old reads new) and FULL (both); then the transitive levels against a history
// where only the oldest version conflicts, and NONE. Avro rows follow the Avro spec's schema
// resolution; JSON Schema rows the subset documented in docs/schemas.md.
import t from 'tap';
import { compatibilityProblems, COMPATIBILITY_LEVELS } from '../../../host/schemas/compat.js';
import { parseSchema, type SchemaDef, type ParsedSchema } from '../../../host/schemas/schema-types.js';
import { defaultSchemaRegistryOptions } from '../../../host/schemas/options.js';

const noRefs = () => undefined;
const avro = (doc: unknown): ParsedSchema => parseSchema({ schemaType: 'AVRO', schema: JSON.stringify(doc), references: [] } as SchemaDef, noRefs, defaultSchemaRegistryOptions);
const json = (doc: unknown): ParsedSchema => parseSchema({ schemaType: 'JSON', schema: JSON.stringify(doc), references: [] } as SchemaDef, noRefs, defaultSchemaRegistryOptions);
const rec = (fields: unknown[], extra: Record<string, unknown> = {}) => ({ type: 'record', name: 'Reading', fields, ...extra });
const f = (name: string, type: unknown, def?: unknown) => (def === undefined ? { name, type } : { name, type, default: def });
const closed = (name: string) => ({ required: [name], additionalProperties: false });
const obj = (properties: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ type: 'object', properties, ...extra });

interface Row {
  name: string;
  old: ParsedSchema;
  next: ParsedSchema;
  backward: boolean;
  forward: boolean;
}

const AVRO_ROWS: Row[] = [
  { name: 'identical', old: avro(rec([f('t', 'double')])), next: avro(rec([f('t', 'double')])), backward: true, forward: true },
  { name: 'field added with default', old: avro(rec([f('t', 'double')])), next: avro(rec([f('t', 'double'), f('h', 'double', 0)])), backward: true, forward: true },
  { name: 'field added without default', old: avro(rec([f('t', 'double')])), next: avro(rec([f('t', 'double'), f('h', 'double')])), backward: false, forward: true },
  { name: 'field removed (had a default)', old: avro(rec([f('t', 'double'), f('h', 'double', 0)])), next: avro(rec([f('t', 'double')])), backward: true, forward: true },
  { name: 'field removed (no default)', old: avro(rec([f('t', 'double'), f('h', 'double')])), next: avro(rec([f('t', 'double')])), backward: true, forward: false },
  { name: 'int promoted to long', old: avro(rec([f('n', 'int')])), next: avro(rec([f('n', 'long')])), backward: true, forward: false },
  { name: 'long promoted to double', old: avro(rec([f('n', 'long')])), next: avro(rec([f('n', 'double')])), backward: true, forward: false },
  { name: 'float promoted to double', old: avro(rec([f('n', 'float')])), next: avro(rec([f('n', 'double')])), backward: true, forward: false },
  { name: 'double narrowed to int', old: avro(rec([f('n', 'double')])), next: avro(rec([f('n', 'int')])), backward: false, forward: true },
  { name: 'string and bytes', old: avro(rec([f('s', 'string')])), next: avro(rec([f('s', 'bytes')])), backward: true, forward: true },
  { name: 'string to int', old: avro(rec([f('s', 'string')])), next: avro(rec([f('s', 'int')])), backward: false, forward: false },
  { name: 'enum symbol added', old: avro(rec([f('e', { type: 'enum', name: 'E', symbols: ['A', 'B'] })])), next: avro(rec([f('e', { type: 'enum', name: 'E', symbols: ['A', 'B', 'C'] })])), backward: true, forward: false },
  { name: 'enum symbol removed', old: avro(rec([f('e', { type: 'enum', name: 'E', symbols: ['A', 'B'] })])), next: avro(rec([f('e', { type: 'enum', name: 'E', symbols: ['A'] })])), backward: false, forward: true },
  { name: 'enum symbol removed, reader has a default', old: avro(rec([f('e', { type: 'enum', name: 'E', symbols: ['A', 'B'] })])), next: avro(rec([f('e', { type: 'enum', name: 'E', symbols: ['A'], default: 'A' })])), backward: true, forward: true },
  { name: 'type widened into a union', old: avro(rec([f('v', 'int')])), next: avro(rec([f('v', ['null', 'int'], null)])), backward: true, forward: false },
  { name: 'union branch removed', old: avro(rec([f('v', ['null', 'int', 'string'])])), next: avro(rec([f('v', ['null', 'int'])])), backward: false, forward: true },
  { name: 'record renamed', old: avro(rec([f('t', 'double')])), next: avro({ ...rec([f('t', 'double')]), name: 'Other' }), backward: false, forward: false },
  { name: 'record renamed with an alias', old: avro(rec([f('t', 'double')])), next: avro({ ...rec([f('t', 'double')]), name: 'Other', aliases: ['Reading'] }), backward: true, forward: false },
  { name: 'field renamed with an alias', old: avro(rec([f('t', 'double')])), next: avro(rec([{ name: 'temp', type: 'double', aliases: ['t'] }])), backward: true, forward: false },
];

const JSON_ROWS: Row[] = [
  { name: 'identical', old: json(obj({ t: { type: 'number' } })), next: json(obj({ t: { type: 'number' } })), backward: true, forward: true },
  { name: 'optional property added', old: json(obj({ t: { type: 'number' } })), next: json(obj({ t: { type: 'number' }, h: { type: 'number' } })), backward: true, forward: true },
  { name: 'required property added', old: json(obj({ t: { type: 'number' } })), next: json(obj({ t: { type: 'number' }, h: { type: 'number' } }, { required: ['h'] })), backward: false, forward: true },
  { name: 'property removed, open content model', old: json(obj({ t: { type: 'number' }, h: { type: 'number' } })), next: json(obj({ t: { type: 'number' } })), backward: true, forward: true },
  { name: 'property removed, additionalProperties false', old: json(obj({ t: { type: 'number' }, h: { type: 'number' } })), next: json(obj({ t: { type: 'number' } }, { additionalProperties: false })), backward: false, forward: true },
  { name: 'content model closed', old: json(obj({ t: { type: 'number' } })), next: json(obj({ t: { type: 'number' } }, { additionalProperties: false })), backward: false, forward: true },
  { name: 'integer widened to number', old: json(obj({ n: { type: 'integer' } })), next: json(obj({ n: { type: 'number' } })), backward: true, forward: false },
  { name: 'type narrowed string→integer', old: json(obj({ n: { type: 'string' } })), next: json(obj({ n: { type: 'integer' } })), backward: false, forward: false },
  { name: 'type widened to a list', old: json(obj({ n: { type: 'number' } })), next: json(obj({ n: { type: ['number', 'null'] } })), backward: true, forward: false },
  { name: 'enum value added', old: json(obj({ s: { enum: ['on', 'off'] } })), next: json(obj({ s: { enum: ['on', 'off', 'fault'] } })), backward: true, forward: false },
  { name: 'enum value removed', old: json(obj({ s: { enum: ['on', 'off'] } })), next: json(obj({ s: { enum: ['on'] } })), backward: false, forward: true },
  { name: 'maximum tightened', old: json(obj({ t: { type: 'number', maximum: 100 } })), next: json(obj({ t: { type: 'number', maximum: 50 } })), backward: false, forward: true },
  { name: 'minimum loosened', old: json(obj({ t: { type: 'number', minimum: 0 } })), next: json(obj({ t: { type: 'number', minimum: -40 } })), backward: true, forward: false },
  { name: 'maxLength added', old: json(obj({ s: { type: 'string' } })), next: json(obj({ s: { type: 'string', maxLength: 8 } })), backward: false, forward: true },
  { name: 'nested property type narrowed', old: json(obj({ g: obj({ lat: { type: 'number' } }) })), next: json(obj({ g: obj({ lat: { type: 'integer' } }) })), backward: false, forward: true },
  { name: 'array items narrowed', old: json({ type: 'array', items: { type: 'number' } }), next: json({ type: 'array', items: { type: 'integer' } }), backward: false, forward: true },
  // combinators: every shape the writer's data may take must be read by the reader
  { name: 'anyOf branch added', old: json(obj({ v: { anyOf: [{ type: 'string' }] } })), next: json(obj({ v: { anyOf: [{ type: 'string' }, { type: 'number' }] } })), backward: true, forward: false },
  { name: 'oneOf branch removed', old: json(obj({ v: { oneOf: [{ type: 'string' }, { type: 'number' }] } })), next: json(obj({ v: { oneOf: [{ type: 'string' }] } })), backward: false, forward: true },
  { name: 'plain type widened into anyOf', old: json(obj({ v: { type: 'string' } })), next: json(obj({ v: { anyOf: [{ type: 'string' }, { type: 'null' }] } })), backward: true, forward: false },
  // closed, required branches: with open ones the other branch would read any object (JSON Schema's rule, not a gap)
  { name: 'oneOf branch narrowed inside', old: json({ oneOf: [obj({ t: { type: 'number' } }, closed('t')), obj({ s: { type: 'string' } }, closed('s'))] }), next: json({ oneOf: [obj({ t: { type: 'integer' } }, closed('t')), obj({ s: { type: 'string' } }, closed('s'))] }), backward: false, forward: true },
  { name: 'allOf branch requires a property', old: json(obj({ t: { type: 'number' } })), next: json({ allOf: [obj({ t: { type: 'number' } }), { required: ['t'] }] }), backward: false, forward: true },
  { name: 'allOf split into the same constraints', old: json(obj({ t: { type: 'number' } }, { required: ['t'] })), next: json({ allOf: [obj({ t: { type: 'number' } }), { required: ['t'] }] }), backward: true, forward: true },
  // keywords not reasoned about: a change is refused, never let through; dropping one only loosens
  { name: 'pattern changed', old: json(obj({ id: { type: 'string', pattern: '^[a-z]+$' } })), next: json(obj({ id: { type: 'string', pattern: '^[a-z]{4}$' } })), backward: false, forward: false },
  { name: 'pattern dropped', old: json(obj({ id: { type: 'string', pattern: '^[a-z]+$' } })), next: json(obj({ id: { type: 'string' } })), backward: true, forward: false },
  { name: 'patternProperties added', old: json(obj({})), next: json(obj({}, { patternProperties: { '^x-': { type: 'string' } } })), backward: false, forward: true },
];

const ok = (problems: string[]) => problems.length === 0;

for (const [kind, rows] of [['avro', AVRO_ROWS], ['json', JSON_ROWS]] as const) {
  for (const row of rows) {
    t.test(`${kind}: ${row.name}`, async (t) => {
      const b = compatibilityProblems('BACKWARD', row.next, [row.old]);
      const fw = compatibilityProblems('FORWARD', row.next, [row.old]);
      const full = compatibilityProblems('FULL', row.next, [row.old]);
      t.equal(ok(b), row.backward, `BACKWARD ${row.backward ? 'allowed' : 'refused'}: ${b.join('; ')}`);
      t.equal(ok(fw), row.forward, `FORWARD ${row.forward ? 'allowed' : 'refused'}: ${fw.join('; ')}`);
      t.equal(ok(full), row.backward && row.forward, `FULL = BACKWARD and FORWARD: ${full.join('; ')}`);
      t.ok(ok(compatibilityProblems('NONE', row.next, [row.old])), 'NONE allows anything');
    });
  }
}

t.test('transitive levels check every version, plain ones only the latest', async (t) => {
  // v1 has `h` without a default; v2 drops it; v3 adds `x` with a default. v3 reads v2 data and
  // v2 reads v3 data, but v1 cannot read v3 data (no `h`, no default): only FORWARD_TRANSITIVE
  // (and FULL_TRANSITIVE) see it.
  const v1 = avro(rec([f('t', 'double'), f('h', 'double')]));
  const v2 = avro(rec([f('t', 'double')]));
  const v3 = avro(rec([f('t', 'double'), f('x', 'int', 0)]));
  const expect: Record<string, boolean> = {
    BACKWARD: true,
    BACKWARD_TRANSITIVE: true,
    FORWARD: true,
    FORWARD_TRANSITIVE: false,
    FULL: true,
    FULL_TRANSITIVE: false,
    NONE: true,
  };
  t.same(Object.keys(expect).sort(), [...COMPATIBILITY_LEVELS].sort(), 'all seven levels');
  for (const level of COMPATIBILITY_LEVELS) {
    const p = compatibilityProblems(level, v3, [v1, v2]);
    t.equal(ok(p), expect[level], `${level}: ${p.join('; ') || 'compatible'}`);
  }
  // and BACKWARD_TRANSITIVE: w3 requires `y` without a default; w2 has `y`, w1 does not
  const w1 = avro(rec([f('t', 'double')]));
  const w2 = avro(rec([f('t', 'double'), f('y', 'int', 1)]));
  const w3 = avro(rec([f('t', 'double'), f('y', 'int')]));
  t.ok(ok(compatibilityProblems('BACKWARD', w3, [w1, w2])), 'BACKWARD: w3 reads w2 data (both have y)');
  t.notOk(ok(compatibilityProblems('BACKWARD_TRANSITIVE', w3, [w1, w2])), 'BACKWARD_TRANSITIVE: w3 cannot read w1 data (no y, no default)');
  t.notOk(ok(compatibilityProblems('FULL_TRANSITIVE', w3, [w1, w2])), 'FULL_TRANSITIVE too');
});

t.test('a schema type change is incompatible', async (t) => {
  const p = compatibilityProblems('BACKWARD', json(obj({})), [avro(rec([f('t', 'double')]))]);
  t.match(p.join(), /schema type changed/);
});
