// Kafka message schemas as data. Each API declares its request and response as a table of
// fields, written here from Kafka's JSON message definitions (names in camelCase, versions as
// in the spec). One generic codec (codec.ts) reads and writes every table, so supporting a new
// version of an API means adding or widening a line, never writing a function.
//
// Version ranges use the spec's notation: "0+" (from 0 on), "3-5" (inclusive), "7" (exactly 7),
// "none". `nullableVersions` says in which versions the field may be null (strings, bytes,
// records, arrays, structs). `taggedVersions` + `tag` make the field a tagged field (KIP-482) in
// those versions: written only when it differs from its default, skipped by readers that do not
// know it. Flexible versions (compact strings/arrays, tagged-field sections) are a property of
// the API (`flexibleFrom` on the handler), not of a field.

export type ScalarType =
  | 'bool'
  | 'int8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64' // JS number on our side (safe integers); int64 on the wire
  | 'float64'
  | 'uuid' // 16 raw bytes (Uint8Array); the zero uuid is the default
  | 'string' // UTF-8; JS string
  | 'bytes' // Uint8Array (a view into the request frame when read; never copied)
  | 'records'; // like nullable bytes: RecordBatch bytes passed through untouched

export type FieldType = ScalarType | 'array' | 'struct';

export interface Field {
  /** Property name in the JS object (camelCase of the spec's name). */
  readonly name: string;
  readonly type: FieldType;
  /** For arrays of scalars: the element type. */
  readonly items?: ScalarType;
  /** For structs and arrays of structs: the nested fields. */
  readonly fields?: readonly Field[];
  /** Versions in which the field exists. */
  readonly versions: string;
  readonly nullableVersions?: string;
  readonly taggedVersions?: string;
  readonly tag?: number;
  /** Value used when the field is absent in a version, or omitted by a handler when writing. */
  readonly default?: unknown;
}

/** A message body: the list of top-level fields. */
export type Schema = readonly Field[];

export interface FieldOptions {
  nullable?: string;
  tagged?: string;
  tag?: number;
  default?: unknown;
}

const withOptions = (base: Field, o?: FieldOptions): Field => ({
  ...base,
  ...(o?.nullable !== undefined ? { nullableVersions: o.nullable } : {}),
  ...(o?.tagged !== undefined ? { taggedVersions: o.tagged, tag: o.tag } : {}),
  ...(o?.default !== undefined ? { default: o.default } : {}),
});

/** A scalar field: `f('errorCode', 'int16', '0+')`. */
export function f(name: string, type: ScalarType, versions: string, o?: FieldOptions): Field {
  return withOptions({ name, type, versions }, o);
}

/** An array of scalars (`[]int32`) or of structs (pass the fields). */
export function arr(name: string, versions: string, items: ScalarType | readonly Field[], o?: FieldOptions): Field {
  return typeof items === 'string'
    ? withOptions({ name, type: 'array', items, versions }, o)
    : withOptions({ name, type: 'array', fields: items, versions }, o);
}

/** A nested struct (not an array). */
export function struct(name: string, versions: string, fields: readonly Field[], o?: FieldOptions): Field {
  return withOptions({ name, type: 'struct', fields, versions }, o);
}

export interface VersionRange {
  min: number;
  max: number;
}

const NONE: VersionRange = { min: 1, max: 0 };
const rangeCache = new Map<string, VersionRange>();

/** Parses "0+", "3-5", "7" or "none". Throws on anything else (a programmer error in a table). */
export function parseVersions(spec: string): VersionRange {
  let r = rangeCache.get(spec);
  if (r) return r;
  const s = spec.trim();
  if (s === 'none' || s === '') r = NONE;
  else if (s.endsWith('+')) r = { min: Number(s.slice(0, -1)), max: 0x7fff };
  else if (s.includes('-')) {
    const [a, b] = s.split('-');
    r = { min: Number(a), max: Number(b) };
  } else r = { min: Number(s), max: Number(s) };
  if (!Number.isInteger(r.min) || !Number.isInteger(r.max)) throw new Error(`bad version range "${spec}"`);
  rangeCache.set(spec, r);
  return r;
}

export function inVersions(spec: string | undefined, version: number): boolean {
  if (spec === undefined) return false;
  const r = parseVersions(spec);
  return version >= r.min && version <= r.max;
}
