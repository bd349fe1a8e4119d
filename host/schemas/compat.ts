// Compatibility between schema versions, Confluent's seven levels.
//
// The question is always "can a reader with schema R read data written with schema W?":
//   BACKWARD  the new schema reads data written with the previous one (R = new, W = previous)
//   FORWARD   the previous schema reads data written with the new one (R = previous, W = new)
//   FULL      both
//   *_TRANSITIVE the same against every live version, not only the latest; NONE: no check.
//
// Avro: Avro's schema resolution decides (Avro spec, "Schema Resolution"): avsc's
// `createResolver` builds a resolver exactly when resolution succeeds — fields added with a
// default, fields removed, int→long→float→double, string↔bytes, enum symbols (a writer symbol
// the reader lacks needs the reader's default), unions, names and aliases.
//
// JSON Schema: a documented, practical subset (docs/schemas.md), checked recursively: types may
// widen (integer ⊂ number), not narrow; a property the writer knows and the reader lacks is
// fine unless the reader closes its content model (additionalProperties false); a property the
// reader adds is fine unless it is required (old data lacks it); the reader may not require
// more; enums may grow, not shrink; bounds (minimum, maximum, exclusive*, min/maxLength,
// min/maxItems, min/maxProperties) may loosen, not tighten; an open content model may not close.
import type avro from 'avsc';
import type { ParsedSchema } from './schema-types.js';

export const COMPATIBILITY_LEVELS = ['BACKWARD', 'BACKWARD_TRANSITIVE', 'FORWARD', 'FORWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE', 'NONE'] as const;
export type CompatibilityLevel = (typeof COMPATIBILITY_LEVELS)[number];

export function isCompatibilityLevel(v: unknown): v is CompatibilityLevel {
  return typeof v === 'string' && (COMPATIBILITY_LEVELS as readonly string[]).includes(v);
}

/** Why an Avro reader cannot read a writer's data (empty = it can). */
export function avroReadProblems(reader: avro.Type, writer: avro.Type): string[] {
  try {
    reader.createResolver(writer);
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

type Doc = Record<string, unknown>;
const isObj = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);

function typesOf(s: Doc): Set<string> | undefined {
  const t = s.type;
  if (t === undefined) return undefined; // any type
  return new Set(Array.isArray(t) ? (t as string[]) : [t as string]);
}

/** The type names W admits that R does not (integer is inside number). */
function narrowedTypes(r: Doc, w: Doc): string[] {
  const rt = typesOf(r);
  if (!rt) return [];
  const wt = typesOf(w);
  if (!wt) return ['(any)'];
  return [...wt].filter((t) => !rt.has(t) && !(t === 'integer' && rt.has('number')));
}

const LOWER_BOUNDS = ['minimum', 'exclusiveMinimum', 'minLength', 'minItems', 'minProperties'];
const UPPER_BOUNDS = ['maximum', 'exclusiveMaximum', 'maxLength', 'maxItems', 'maxProperties'];

function boundProblems(r: Doc, w: Doc, path: string): string[] {
  const out: string[] = [];
  for (const k of LOWER_BOUNDS) {
    if (typeof r[k] !== 'number') continue;
    if (typeof w[k] !== 'number' || (w[k] as number) < (r[k] as number)) out.push(`${path}: ${k} tightened to ${r[k]} (was ${w[k] ?? 'unset'})`);
  }
  for (const k of UPPER_BOUNDS) {
    if (typeof r[k] !== 'number') continue;
    if (typeof w[k] !== 'number' || (w[k] as number) > (r[k] as number)) out.push(`${path}: ${k} tightened to ${r[k]} (was ${w[k] ?? 'unset'})`);
  }
  return out;
}

function enumProblems(r: Doc, w: Doc, path: string): string[] {
  if (!Array.isArray(r.enum)) return [];
  if (!Array.isArray(w.enum)) return [`${path}: enum added (the writer allowed any value)`];
  const allowed = new Set(r.enum.map((v) => JSON.stringify(v)));
  const lost = w.enum.filter((v) => !allowed.has(JSON.stringify(v)));
  return lost.length > 0 ? [`${path}: enum lost ${lost.map((v) => JSON.stringify(v)).join(', ')}`] : [];
}

function objectProblems(r: Doc, w: Doc, path: string, depth: number): string[] {
  const out: string[] = [];
  const rp = isObj(r.properties) ? r.properties : {};
  const wp = isObj(w.properties) ? w.properties : {};
  const rClosed = r.additionalProperties === false;
  const wClosed = w.additionalProperties === false;
  if (rClosed && !wClosed) out.push(`${path}: additionalProperties closed (was open)`);
  for (const [name, ws] of Object.entries(wp)) {
    if (name in rp) out.push(...jsonReadProblemsAt(rp[name], ws, `${path}/properties/${name}`, depth + 1));
    else if (rClosed) out.push(`${path}/properties/${name}: removed while additionalProperties is false`);
  }
  const wRequired = new Set(Array.isArray(w.required) ? (w.required as string[]) : []);
  for (const name of Array.isArray(r.required) ? (r.required as string[]) : []) {
    if (!wRequired.has(name)) out.push(`${path}/required: ${name} is required now (the writer did not require it)`);
  }
  if (isObj(r.items) && isObj(w.items)) out.push(...jsonReadProblemsAt(r.items, w.items, `${path}/items`, depth + 1));
  else if (isObj(r.items) && w.items === undefined && typesOf(w)?.has('array')) out.push(`${path}/items: constrained (the writer allowed any item)`);
  return out;
}

const NESTING_MAX = 64; // the registry's nesting limit already holds documents shallower than this

/**
 * Keywords whose change is not reasoned about: a reader that has one with a value other than the
 * writer's is reported (a change the registry cannot prove safe is refused, never let through
 * silently; NONE registers it anyway). A reader that drops one only loosens.
 */
const UNCOMPARED = [
  'pattern', 'format', 'multipleOf', 'patternProperties', 'propertyNames', 'dependencies', 'dependentRequired', 'dependentSchemas',
  'not', 'if', 'then', 'else', '$ref', 'contains', 'prefixItems', 'additionalItems', 'unevaluatedProperties', 'unevaluatedItems', 'uniqueItems',
];

function uncomparedProblems(r: Doc, w: Doc, path: string): string[] {
  const out: string[] = [];
  for (const k of UNCOMPARED) {
    if (k in r && JSON.stringify(r[k]) !== JSON.stringify(w[k])) out.push(`${path}/${k}: changed (${k} is not compared; treated as incompatible)`);
  }
  // additionalProperties as a schema (false is compared in objectProblems)
  if (isObj(r.additionalProperties) && JSON.stringify(r.additionalProperties) !== JSON.stringify(w.additionalProperties)) {
    out.push(`${path}/additionalProperties: schema changed (not compared; treated as incompatible)`);
  }
  return out;
}

/** Writer data satisfies every allOf branch: one shape with their constraints merged (properties joined, required united). */
function mergeShapes(a: Doc, b: Doc): Doc {
  const out: Doc = { ...a, ...b };
  if (isObj(a.properties) || isObj(b.properties)) out.properties = { ...(isObj(a.properties) ? a.properties : {}), ...(isObj(b.properties) ? b.properties : {}) };
  const req = [...(Array.isArray(a.required) ? a.required : []), ...(Array.isArray(b.required) ? b.required : [])];
  if (req.length > 0) out.required = [...new Set(req)];
  if (a.type !== undefined && b.type === undefined) out.type = a.type;
  return out;
}

function withoutKeys(d: Doc, keys: string[]): Doc {
  return Object.fromEntries(Object.entries(d).filter(([k]) => !keys.includes(k)));
}

/**
 * The shapes writer data may take: with `anyOf`/`oneOf`, one per branch (each with the
 * writer's own keywords merged in); `allOf` merged into one. (`oneOf`'s exclusivity is not
 * used: treating it as `anyOf` only ever reports more, never less.)
 */
function writerShapes(w: Doc): Doc[] {
  let base = withoutKeys(w, ['allOf', 'anyOf', 'oneOf']);
  for (const b of Array.isArray(w.allOf) ? w.allOf : []) if (isObj(b)) base = mergeShapes(base, b);
  const alternatives = [...(Array.isArray(w.anyOf) ? w.anyOf : []), ...(Array.isArray(w.oneOf) ? w.oneOf : [])];
  if (alternatives.length === 0) return [base];
  return alternatives.map((b) => (isObj(b) ? mergeShapes(base, b) : b === false ? { not: {} } : base));
}

/** The reader's combinators against one writer shape: every allOf branch reads it, some anyOf/oneOf branch does. */
function readerCombinatorProblems(r: Doc, w: Doc, path: string, depth: number): string[] {
  const out: string[] = [];
  (Array.isArray(r.allOf) ? r.allOf : []).forEach((b, i) => out.push(...jsonReadProblemsAt(b, w, `${path}/allOf/${i}`, depth + 1)));
  for (const k of ['anyOf', 'oneOf'] as const) {
    const branches = Array.isArray(r[k]) ? (r[k] as unknown[]) : undefined;
    if (!branches) continue;
    const reasons = branches.map((b, i) => jsonReadProblemsAt(b, w, `${path}/${k}/${i}`, depth + 1));
    if (!reasons.some((p) => p.length === 0)) out.push(`${path}/${k}: no branch reads the writer's data (${reasons.map((p) => p[0]).join('; ')})`);
  }
  return out;
}

function jsonReadProblemsAt(r: unknown, w: unknown, path: string, depth: number): string[] {
  if (depth > NESTING_MAX) return [`${path}: nested too deep to compare`];
  if (r === true || (isObj(r) && Object.keys(r).length === 0)) return [];
  if (w === false) return [];
  if (r === false) return [`${path}: the reader accepts nothing`];
  if (!isObj(r)) return [];
  if (isObj(w) && ('anyOf' in w || 'oneOf' in w || 'allOf' in w)) {
    const shapes = writerShapes(w);
    if (shapes.length === 1) return shapeProblems(r, shapes[0], path, depth);
    return shapes.flatMap((shape, i) => shapeProblems(r, shape, `${path}(writer branch ${i})`, depth));
  }
  return shapeProblems(r, isObj(w) ? w : {}, path, depth);
}

/** The reader against one writer shape (no combinators left on the writer's side). */
function shapeProblems(r: Doc, ws: Doc, path: string, depth: number): string[] {
  const out: string[] = [];
  out.push(...readerCombinatorProblems(r, ws, path, depth), ...uncomparedProblems(r, ws, path));
  const narrowed = narrowedTypes(r, ws);
  if (narrowed.length > 0) out.push(`${path}: type narrowed (${narrowed.join(', ')} no longer accepted)`);
  out.push(...enumProblems(r, ws, path), ...boundProblems(r, ws, path));
  if ('const' in r && JSON.stringify(r.const) !== JSON.stringify(ws.const)) out.push(`${path}: const changed`);
  out.push(...objectProblems(r, ws, path, depth));
  return out;
}

/** Why a JSON Schema reader would refuse data its writer schema accepted (empty = it would not). */
export function jsonReadProblems(reader: unknown, writer: unknown): string[] {
  return jsonReadProblemsAt(reader, writer, '#', 0);
}

/** Whether a reader schema can read a writer schema's data, with the reasons when not. */
export function readProblems(reader: ParsedSchema, writer: ParsedSchema): string[] {
  if (reader.schemaType !== writer.schemaType) return [`schema type changed from ${writer.schemaType} to ${reader.schemaType}`];
  if (reader.schemaType === 'AVRO' && writer.schemaType === 'AVRO') return avroReadProblems(reader.type, writer.type);
  return jsonReadProblems(reader.doc, writer.doc);
}

/**
 * Problems registering `candidate` under `level`, given the subject's live versions oldest
 * first. Empty = compatible.
 */
export function compatibilityProblems(level: CompatibilityLevel, candidate: ParsedSchema, previous: ParsedSchema[]): string[] {
  if (level === 'NONE' || previous.length === 0) return [];
  const against = level.endsWith('_TRANSITIVE') ? previous : previous.slice(-1);
  const backward = level.startsWith('BACKWARD') || level.startsWith('FULL');
  const forward = level.startsWith('FORWARD') || level.startsWith('FULL');
  const out: string[] = [];
  against.forEach((old, i) => {
    const which = level.endsWith('_TRANSITIVE') ? `version index ${i}` : 'the latest version';
    if (backward) for (const p of readProblems(candidate, old)) out.push(`BACKWARD against ${which}: ${p}`);
    if (forward) for (const p of readProblems(old, candidate)) out.push(`FORWARD against ${which}: ${p}`);
  });
  return out;
}
