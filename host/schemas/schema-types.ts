// Schema texts → usable schemas. AVRO through avsc (Type.forSchema), JSON Schema through ajv
// (draft-07 by default; 2019-09 and 2020-12 when `$schema` names them). PROTOBUF is recognised
// and refused (not supported). References are resolved before the schema itself: an Avro
// reference's named types go into the avsc registry the schema is parsed with; a JSON Schema
// reference is added to the ajv instance under its reference name, which is what `$ref` uses.
//
// Hostile input is bounded before any library sees it: the text's size (schemaBytesMax), its
// JSON nesting (schemaNestingMax, checked on the text so JSON.parse never recurses deeply), the
// reference chain's depth and count (a cycle hits the depth bound). Every failure is a
// RegistryError naming what is wrong.
import { createRequire } from 'node:module';
import type avro from 'avsc';
import type { ValidateFunction } from 'ajv';
import type { RegistryErrorName } from '../errors/index.js';

const require = createRequire(import.meta.url);

export type SchemaType = 'AVRO' | 'JSON';
export const SCHEMA_TYPES: readonly string[] = ['AVRO', 'JSON'];

export interface SchemaReference {
  name: string;
  subject: string;
  version: number;
}

/** A schema as stored: its type, its text (compact JSON) and what it references. */
export interface SchemaDef {
  schemaType: SchemaType;
  schema: string;
  references: SchemaReference[];
}

/** A registry operating error: a row of REGISTRY_ERRORS and a message for the client. */
export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorName,
    message: string,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

export interface ParseLimits {
  schemaBytesMax: number;
  schemaNestingMax: number;
  referenceDepthMax: number;
  referencesMax: number;
}

/** Finds a referenced schema (subject + version, deleted ones included as Confluent does). */
export type ReferenceLookup = (subject: string, version: number) => SchemaDef | undefined;

/** A parsed schema: the Avro type or the compiled JSON Schema validator, and the JSON document. */
export type ParsedSchema = { schemaType: 'AVRO'; type: avro.Type; doc: unknown } | { schemaType: 'JSON'; validate: ValidateFunction; doc: unknown };

/** Deepest nesting of objects/arrays in a JSON text, counted without parsing (strings skipped). */
export function jsonNesting(text: string, stopAbove: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped char
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) {
        max = depth;
        if (max > stopAbove) return max;
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** Parses a schema document's text within the limits; INVALID_SCHEMA names what is wrong. */
export function parseDocument(text: unknown, limits: ParseLimits, what = 'schema'): unknown {
  if (typeof text !== 'string') throw new RegistryError('INVALID_SCHEMA', `${what} must be a string holding the schema document`);
  const bytes = Buffer.byteLength(text);
  if (bytes > limits.schemaBytesMax) throw new RegistryError('LIMIT_EXCEEDED', `${what} is ${bytes} bytes, above schemaBytesMax ${limits.schemaBytesMax}`);
  const nesting = jsonNesting(text, limits.schemaNestingMax);
  if (nesting > limits.schemaNestingMax) throw new RegistryError('LIMIT_EXCEEDED', `${what} nests deeper than schemaNestingMax ${limits.schemaNestingMax}`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RegistryError('INVALID_SCHEMA', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The schemaType field: absent = AVRO (Confluent's default); PROTOBUF and others are refused. */
export function schemaTypeOf(raw: unknown): SchemaType {
  if (raw === undefined || raw === null) return 'AVRO';
  if (raw === 'AVRO' || raw === 'JSON') return raw;
  if (raw === 'PROTOBUF') throw new RegistryError('INVALID_SCHEMA', 'schemaType PROTOBUF is not supported by this registry (supported: AVRO, JSON)');
  throw new RegistryError('INVALID_SCHEMA', `unknown schemaType ${JSON.stringify(raw)} (supported: AVRO, JSON)`);
}

/** References as sent: an array of {name, subject, version}; anything else is INVALID_SCHEMA. */
export function referencesOf(raw: unknown, limits: ParseLimits): SchemaReference[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new RegistryError('INVALID_SCHEMA', 'references must be an array of {name, subject, version}');
  if (raw.length > limits.referencesMax) throw new RegistryError('LIMIT_EXCEEDED', `${raw.length} references, above referencesMax ${limits.referencesMax}`);
  return raw.map((r, i) => {
    const ok = r && typeof r === 'object' && typeof r.name === 'string' && r.name.length > 0 && typeof r.subject === 'string' && Number.isSafeInteger(r.version);
    if (!ok) throw new RegistryError('INVALID_SCHEMA', `references[${i}] must be {name: string, subject: string, version: integer}`);
    return { name: r.name as string, subject: r.subject as string, version: r.version as number };
  });
}

interface Resolved {
  /** Every referenced schema, dependencies before dependents, each once. */
  order: Array<{ name: string; def: SchemaDef; doc: unknown }>;
}

/** Walks the reference graph depth-first; a cycle or a chain past referenceDepthMax is refused. */
function resolveReferences(refs: SchemaReference[], lookup: ReferenceLookup, limits: ParseLimits): Resolved {
  const order: Resolved['order'] = [];
  const seen = new Set<string>();
  let count = 0;
  const walk = (list: SchemaReference[], depth: number, path: string[]): void => {
    for (const ref of list) {
      const id = `${ref.subject}\u0000${ref.version}`;
      if (path.includes(id)) throw new RegistryError('INVALID_SCHEMA', `reference cycle: ${[...path, id].map((p) => p.replace('\u0000', '/')).join(' → ')}`);
      if (depth + 1 > limits.referenceDepthMax) throw new RegistryError('LIMIT_EXCEEDED', `references nest deeper than referenceDepthMax ${limits.referenceDepthMax}`);
      if (seen.has(id)) continue;
      if (++count > limits.referencesMax) throw new RegistryError('LIMIT_EXCEEDED', `more than referencesMax ${limits.referencesMax} references in the chain`);
      const def = lookup(ref.subject, ref.version);
      if (!def) throw new RegistryError('INVALID_SCHEMA', `reference ${ref.name}: subject ${ref.subject} version ${ref.version} not found`);
      walk(def.references, depth + 1, [...path, id]);
      seen.add(id);
      order.push({ name: ref.name, def, doc: parseDocument(def.schema, limits, `reference ${ref.name}`) });
    }
  };
  walk(refs, 0, []);
  return { order };
}

/** avsc loads at the first Avro schema parsed: a node without Avro schemas never holds it. */
let avscModule: typeof avro | undefined;
function avsc(): typeof avro {
  return (avscModule ??= require('avsc') as typeof avro);
}

function avroType(doc: unknown, registry: Record<string, avro.Type>, what: string): avro.Type {
  try {
    return avsc().Type.forSchema(doc as avro.Schema, { registry });
  } catch (err) {
    throw new RegistryError('INVALID_SCHEMA', `invalid Avro ${what}: ${(err as Error).message}`);
  }
}

type AjvLike = { addSchema(s: unknown, key: string): unknown; compile(s: unknown): ValidateFunction };
type AjvCtor = new (o: Record<string, unknown>) => AjvLike;

// ajv is CommonJS; its default export is the class (one per draft).
const AJV_BY_DRAFT: Record<string, () => AjvCtor> = {
  '2020-12': () => require('ajv/dist/2020.js').default,
  '2019-09': () => require('ajv/dist/2019.js').default,
  'draft-07': () => require('ajv').default,
};
// Loaded with the first JSON schema compiled, like the drafts above.
const addFormats = (ajv: AjvLike): void => (require('ajv-formats').default as (ajv: AjvLike) => void)(ajv);

function draftOf(doc: unknown): string {
  const s = doc && typeof doc === 'object' ? (doc as { $schema?: unknown }).$schema : undefined;
  if (typeof s !== 'string') return 'draft-07';
  if (s.includes('2020-12')) return '2020-12';
  if (s.includes('2019-09')) return '2019-09';
  if (/draft-0[467]/.test(s)) return 'draft-07';
  throw new RegistryError('INVALID_SCHEMA', `unsupported $schema ${JSON.stringify(s)} (supported: draft-07, 2019-09, 2020-12)`);
}

/**
 * Why a regular expression could make validation backtrack for exponential time on one record
 * (a stalled event loop stops every door), or null. JavaScript's engine backtracks; a quantified
 * group that itself holds an unbounded quantifier or an alternation (`(a+)+`, `(\w*)*`,
 * `(a|ab)*`) is the classic catastrophic shape, and a back-reference is outside regular
 * languages. Refused at registration — a conservative check, not a proof: a safe pattern of
 * that shape must be rewritten (atomic forms do not exist in JavaScript).
 */
export function regexRisk(source: string): string | null {
  const groups: Array<{ inner: boolean }> = [];
  let lastGroupInner = false;
  let afterGroup = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      const n = source[i + 1];
      if (n !== undefined && /[1-9k]/.test(n)) return 'a back-reference';
      i++;
      afterGroup = false;
      continue;
    }
    if (c === '[') {
      // a character class: skip to its end (escapes inside skipped)
      for (i++; i < source.length && source[i] !== ']'; i++) if (source[i] === '\\') i++;
      afterGroup = false;
      continue;
    }
    const unbounded = c === '*' || c === '+' || (c === '{' && /^\{\d+,\d*\}/.test(source.slice(i)) && !/^\{\d+,\d+\}/.test(source.slice(i))) || (c === '{' && /^\{\d+,(\d+)\}/.test(source.slice(i)) && Number(/^\{\d+,(\d+)\}/.exec(source.slice(i))![1]) > 1);
    if (c === '(') {
      groups.push({ inner: false });
      afterGroup = false;
    } else if (c === ')') {
      lastGroupInner = groups.pop()?.inner ?? false;
      if (groups.length > 0 && lastGroupInner) groups[groups.length - 1].inner = true;
      afterGroup = true;
      continue;
    } else if (unbounded) {
      if (afterGroup && lastGroupInner) return 'a repeated group that itself repeats or alternates (nested quantifier)';
      if (groups.length > 0) groups[groups.length - 1].inner = true;
    } else if (c === '|') {
      if (groups.length > 0) groups[groups.length - 1].inner = true;
    }
    afterGroup = false;
  }
  return null;
}

/** Every regular expression a JSON Schema document holds (`pattern` values, `patternProperties` keys), checked by regexRisk. */
function checkPatterns(doc: unknown, where: string, depth = 0): void {
  if (depth > 10_000 || doc === null || typeof doc !== 'object') return;
  if (Array.isArray(doc)) {
    for (const v of doc) checkPatterns(v, where, depth + 1);
    return;
  }
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    const sources = k === 'pattern' && typeof v === 'string' ? [v] : k === 'patternProperties' && v && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v) : [];
    for (const src of sources) {
      const why = regexRisk(src);
      if (why) throw new RegistryError('INVALID_SCHEMA', `${where}: ${k} ${JSON.stringify(src)} is refused: ${why} can take exponential time to match`);
    }
    checkPatterns(v, where, depth + 1);
  }
}

function jsonValidator(doc: unknown, order: Resolved['order']): ValidateFunction {
  if (typeof doc !== 'object' && typeof doc !== 'boolean') throw new RegistryError('INVALID_SCHEMA', 'a JSON Schema must be an object or a boolean');
  checkPatterns(doc, 'schema');
  for (const r of order) checkPatterns(r.doc, `reference ${r.name}`);
  const Ctor = AJV_BY_DRAFT[draftOf(doc)]();
  // strict off: Confluent accepts unknown keywords (titles, vendor extensions); allErrors off:
  // the first failing path is what a refusal names, and stopping there is cheaper.
  const ajv = new Ctor({ strict: false, allErrors: false, validateSchema: true, addUsedSchema: false });
  addFormats(ajv);
  try {
    for (const r of order) ajv.addSchema(r.doc, r.name);
    return ajv.compile(doc);
  } catch (err) {
    throw new RegistryError('INVALID_SCHEMA', `invalid JSON Schema: ${(err as Error).message}`);
  }
}

/** Parses and checks one schema with its references; throws RegistryError. */
export function parseSchema(def: SchemaDef, lookup: ReferenceLookup, limits: ParseLimits): ParsedSchema {
  const doc = parseDocument(def.schema, limits);
  const { order } = resolveReferences(def.references, lookup, limits);
  for (const r of order) {
    if (r.def.schemaType !== def.schemaType) throw new RegistryError('INVALID_SCHEMA', `reference ${r.name} is ${r.def.schemaType}, the schema is ${def.schemaType}`);
  }
  if (def.schemaType === 'AVRO') {
    const registry: Record<string, avro.Type> = {};
    for (const r of order) avroType(r.doc, registry, `reference ${r.name}`);
    return { schemaType: 'AVRO', type: avroType(doc, registry, 'schema'), doc };
  }
  return { schemaType: 'JSON', validate: jsonValidator(doc, order), doc };
}

/** The stored text: compact JSON, so whitespace does not make two registrations differ. */
export function canonicalText(doc: unknown): string {
  return JSON.stringify(doc);
}

/** The first failing path and message of an ajv validation, as one line. */
export function ajvFailure(validate: ValidateFunction): { path: string; message: string } {
  const e = validate.errors?.[0];
  if (!e) return { path: '/', message: 'does not match the schema' };
  const path = e.instancePath === '' ? '/' : e.instancePath;
  const extra = e.keyword === 'additionalProperties' ? ` (${(e.params as { additionalProperty?: string }).additionalProperty})` : '';
  return { path, message: `${e.message ?? e.keyword}${extra}` };
}
