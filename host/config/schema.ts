// The configuration schema: one declarative JSON Schema per section, checked by ajv. The loader
// validates every key against it (whatever its source), and docs/configuration.md prints what it
// allows; the defaults (with their reasons) stay beside the module each section configures.
//
// A key's schema may carry two annotations of ours (ajv is told about them): `x-port` (a
// listener port: -1 turns the listener off, 0 picks a free one) and `x-allowed` (the sentence the
// docs and errors print instead of one derived from the keywords).
//
// ajv is needed while a node starts (the loader checks every key it sets, each section's
// validator its whole section) and not after: `releaseValidation()` drops the instance, its
// compiled validators and ajv's modules once the node is up (~3 MiB of heap: ajv's code and
// ~110 generated validators; issue 14's footprint). A later check loads it again.
import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';

export type KeySchema = Record<string, unknown>;

export interface SectionSchema {
  type: 'object';
  additionalProperties: false;
  properties: Record<string, KeySchema>;
}

const INT32_MAX = 2_147_483_647;

/** An integer from `min` to `max` (inclusive). */
export function integer(min: number, max: number = Number.MAX_SAFE_INTEGER): KeySchema {
  return { type: 'integer', minimum: min, maximum: max };
}

/** A duration or size the runtime hands to timers or int32 fields. */
export function int32(min: number): KeySchema {
  return integer(min, INT32_MAX);
}

/** A listener port. */
export function port(): KeySchema {
  return { type: 'integer', minimum: -1, maximum: 65535, 'x-port': true };
}

export function boolean(): KeySchema {
  return { type: 'boolean' };
}

export function string(minLength = 0): KeySchema {
  return { type: 'string', minLength };
}

export function oneOf(...values: Array<string | number>): KeySchema {
  return { enum: values };
}

/** `schema` or null (null = a default chosen elsewhere, stated in the reason). */
export function orNull(schema: KeySchema): KeySchema {
  return { anyOf: [{ type: 'null' }, schema], 'x-allowed': `null or ${allowed(schema)}` };
}

/** A mapping with exactly these keys (those in `required` must be present). */
export function object(properties: Record<string, KeySchema>, required: string[] = [], allowedText?: string): KeySchema {
  return { type: 'object', additionalProperties: false, properties, required, ...(allowedText ? { 'x-allowed': allowedText } : {}) };
}

export function list(items: KeySchema, allowedText?: string): KeySchema {
  return { type: 'array', items, ...(allowedText ? { 'x-allowed': allowedText } : {}) };
}

/** Any one of `schemas`, described by `allowedText` (e.g. a list, or the same list as one comma-separated string). */
export function anyOfText(schemas: KeySchema[], allowedText: string): KeySchema {
  return { anyOf: schemas, 'x-allowed': allowedText };
}

export function section(properties: Record<string, KeySchema>): SectionSchema {
  return { type: 'object', additionalProperties: false, properties };
}

interface Validation {
  ajv: Ajv;
  compiled: WeakMap<KeySchema, ValidateFunction>;
  /** CommonJS cache keys present before ajv loaded: what `releaseValidation` must not forget. */
  cachedBefore: Set<string>;
}

let validation: Validation | undefined;

/** ajv and the files it is made of (its own dependencies included). */
const AJV_FILES = /[\\/]node_modules[\\/](ajv|fast-deep-equal|fast-uri|json-schema-traverse|require-from-string)[\\/]/;

function openValidation(): Validation {
  // A require of its own (not kept): once released, nothing here points at ajv's modules.
  const require = createRequire(import.meta.url);
  const cachedBefore = new Set(Object.keys(require.cache));
  const { Ajv: AjvClass } = require('ajv') as typeof import('ajv');
  const ajv = new AjvClass({ allErrors: false, strict: true });
  ajv.addKeyword({ keyword: 'x-port', schemaType: 'boolean' });
  ajv.addKeyword({ keyword: 'x-allowed', schemaType: 'string' });
  return { ajv, compiled: new WeakMap(), cachedBefore };
}

function validatorOf(schema: KeySchema): ValidateFunction {
  validation ??= openValidation();
  let v = validation.compiled.get(schema);
  if (!v) validation.compiled.set(schema, (v = validation.ajv.compile(schema)));
  return v;
}

/**
 * Forgets ajv once start-up has checked the configuration: the instance, its compiled
 * validators, and the CommonJS cache entries of the ajv files this module loaded (not those
 * loaded before it, e.g. by the schema registry for JSON schemas), so the collector can take
 * them. Returns whether there was anything to release. A later `check` loads ajv again.
 */
export function releaseValidation(): boolean {
  if (!validation) return false;
  const { cachedBefore } = validation;
  validation = undefined;
  const cache = createRequire(import.meta.url).cache;
  for (const file of Object.keys(cache)) if (AJV_FILES.test(file) && !cachedBefore.has(file)) delete cache[file];
  return true;
}

/** A sentence saying what the schema allows ("an integer from 1 to 65535"). */
export function allowed(s: KeySchema): string {
  if (typeof s['x-allowed'] === 'string') return s['x-allowed'];
  if (s['x-port']) return 'a port number from -1 to 65535 (0 picks a free port, -1 turns the listener off)';
  if (Array.isArray(s.enum)) return `one of ${s.enum.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ')}`;
  switch (s.type) {
    case 'integer':
    case 'number': {
      const what = s.type === 'integer' ? 'an integer' : 'a number';
      const min = s.minimum as number | undefined;
      const max = s.maximum as number | undefined;
      if (min !== undefined && max !== undefined && max < Number.MAX_SAFE_INTEGER) return `${what} from ${min} to ${max}`;
      if (min !== undefined) return `${what} ≥ ${min}`;
      return what;
    }
    case 'boolean':
      return 'true or false';
    case 'string':
      return (s.minLength as number) > 0 ? 'a non-empty string' : 'a string';
    case 'array':
      return 'a list';
    case 'object':
      return 'a mapping';
    default:
      return 'a value';
  }
}

/** The JSON type a schema expects, for coercing text from the environment or a flag. */
function textKinds(s: KeySchema): Set<string> {
  const kinds = new Set<string>();
  const add = (x: KeySchema): void => {
    if (Array.isArray(x.anyOf)) for (const y of x.anyOf as KeySchema[]) add(y);
    else if (Array.isArray(x.enum)) for (const v of x.enum) kinds.add(typeof v);
    else if (Array.isArray(x.type)) for (const t of x.type) kinds.add(t as string);
    else if (typeof x.type === 'string') kinds.add(x.type);
  };
  add(s);
  return kinds;
}

export type Coerced = { ok: true; value: unknown } | { ok: false; why: string };

/**
 * Turns text from the environment or a flag into the value the schema expects: numbers from
 * numeric text, booleans from true/false/yes/no/1/0, lists and mappings from JSON, `null` from
 * "null" where null is allowed. Values from a file arrive typed and are left alone.
 */
export function coerceText(s: KeySchema, raw: string): Coerced {
  const kinds = textKinds(s);
  const text = raw.trim();
  if (kinds.has('null') && text === 'null') return { ok: true, value: null };
  if ((kinds.has('integer') || kinds.has('number')) && /^-?\d+(\.\d+)?$/.test(text)) return { ok: true, value: Number(text) };
  if (kinds.has('boolean') && /^(true|false|1|0|yes|no)$/i.test(text)) return { ok: true, value: /^(true|1|yes)$/i.test(text) };
  // A key that takes a list or one string (e.g. a comma-separated list) keeps text that is not JSON as text.
  if ((kinds.has('array') || kinds.has('object')) && kinds.has('string') && !/^[[{]/.test(text)) return { ok: true, value: raw };
  if (kinds.has('array') || kinds.has('object')) {
    try {
      return { ok: true, value: JSON.parse(raw) };
    } catch {
      // A key that also takes text (a list or one comma-separated string) keeps the text.
      if (kinds.has('string')) return { ok: true, value: raw };
      return { ok: false, why: `must be JSON (${allowed(s)})` };
    }
  }
  // Anything else stays text: a string key takes it as is, any other key's check says what was expected.
  return { ok: true, value: raw };
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** Null when the value satisfies the schema, else what is allowed (and where inside, for nested values). */
export function check(s: KeySchema, value: unknown): string | null {
  const v = validatorOf(s);
  if (v(value)) return null;
  const err = (v.errors ?? [])[0] as ErrorObject | undefined;
  const atRoot = !err || (err.instancePath === '' && !['additionalProperties', 'required'].includes(err.keyword));
  if (atRoot || s['x-port']) {
    const kinds = textKinds(s);
    const wrongType = !kinds.has(typeOf(value)) && !(typeOf(value) === 'integer' && kinds.has('number'));
    if (s['x-port'] && wrongType) return 'must be an integer (a port number from -1 to 65535; 0 picks a free port, -1 turns the listener off)';
    return `must be ${allowed(s)}`;
  }
  const where = err!.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(top)';
  const extra = err!.keyword === 'additionalProperties' ? ` "${(err!.params as { additionalProperty: string }).additionalProperty}"` : '';
  return `at ${where}: ${err!.message}${extra} (allowed: ${allowed(s)})`;
}

/**
 * Checks an options object passed in code against its section's schema (the config loader has
 * already checked a node's own); throws an Error naming `<prefix><key>`, what is allowed and the value.
 */
export function checkOptions(schema: SectionSchema, options: Record<string, unknown>, prefix: string): void {
  for (const [key, s] of Object.entries(schema.properties)) {
    if (!(key in options)) continue;
    const why = check(s, options[key]);
    const v = options[key];
    if (why) throw new Error(`${prefix}${key} ${why}, got ${typeof v === 'number' || v === undefined ? String(v) : JSON.stringify(v)}`);
  }
}
