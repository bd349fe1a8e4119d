// The schema registry: subjects, versions, ids, compatibility config and mode, in memory,
// rebuilt from `_schemas` at start (store.ts) and changed only by appending to it.
//
// Ids: a schema's id is global and stable. Registering a schema that exists anywhere (same type,
// same compact text, same references) reuses its id, as Confluent does; a new one gets the
// highest id seen + 1. The id is stored in each version record, so a restart gives the same ids.
//
// Concurrency: every change runs through one promise chain (`change`), so the check (limits,
// compatibility, "already registered?") and the append it guards see the same state; memory is
// updated only after the append is acknowledged.
import type { BrokerApi } from '../broker/api.js';
import type { Logger } from '../logging.js';
import { compatibilityProblems, isCompatibilityLevel, type CompatibilityLevel } from './compat.js';
import type { SchemaRegistryOptions } from './options.js';
import {
  RegistryError,
  canonicalText,
  parseDocument,
  parseSchema,
  referencesOf,
  schemaTypeOf,
  type ParsedSchema,
  type SchemaDef,
  type SchemaReference,
} from './schema-types.js';
import { appendChanges, ensureSchemasTopic, replayChanges, type StoreChange, type VersionRecord } from './store.js';

export const MODES = ['READWRITE', 'READONLY', 'IMPORT'] as const;
export type Mode = (typeof MODES)[number];
const DEFAULT_COMPATIBILITY: CompatibilityLevel = 'BACKWARD'; // Confluent's default

/** What a client sends to register, look up or test a schema. */
export interface SchemaRequest {
  schema?: unknown;
  schemaType?: unknown;
  references?: unknown;
  id?: unknown;
  version?: unknown;
}

/** A version as answered (Confluent omits schemaType for AVRO and references when empty). */
export interface VersionAnswer {
  subject: string;
  version: number;
  id: number;
  schema: string;
  schemaType?: string;
  references?: SchemaReference[];
}

interface StoredSchema extends SchemaDef {
  id: number;
  identity: string;
}

function identityOf(def: SchemaDef): string {
  return `${def.schemaType}\u0000${def.schema}\u0000${JSON.stringify(def.references)}`;
}

export class SchemaRegistry {
  /** subject → version → record (soft-deleted ones kept with deleted: true). */
  private readonly subjects = new Map<string, Map<number, VersionRecord>>();
  private readonly schemas = new Map<number, StoredSchema>();
  private readonly byIdentity = new Map<string, number>();
  private readonly configs = new Map<string | null, CompatibilityLevel>();
  private mode: Mode = 'READWRITE';
  private maxId = 0;
  /** Parsed schemas by id, least recently used first (Map order). */
  private readonly parsedCache = new Map<number, ParsedSchema>();
  private tail: Promise<unknown> = Promise.resolve();
  /** Bumped on every applied change: validators cache per generation. */
  generation = 0;

  private constructor(
    private readonly broker: BrokerApi,
    readonly options: SchemaRegistryOptions,
    private readonly log: Logger,
  ) {}

  /** Replays `_schemas` into memory. */
  static async open(broker: BrokerApi, options: SchemaRegistryOptions, log: Logger): Promise<SchemaRegistry> {
    const r = new SchemaRegistry(broker, options, log);
    let skipped = 0;
    const count = await replayChanges(broker, options.replayReadBytes, (c, offset) => {
      if (c) r.apply(c);
      else if (skipped++ === 0) log.warn({ offset }, 'schemas: a _schemas record this version does not know was skipped');
    });
    log.info({ records: count, subjects: r.subjects.size, schemas: r.schemas.size, maxId: r.maxId }, 'schemas: registry replayed');
    return r;
  }

  // --- applying stored changes (replay and after each acknowledged append) -------------------

  private apply(c: StoreChange): void {
    this.generation++;
    const k = c.key;
    if (k.keytype === 'CONFIG') {
      const level = c.value?.compatibilityLevel;
      if (c.value === null || !isCompatibilityLevel(level)) this.configs.delete(k.subject);
      else this.configs.set(k.subject, level);
      return;
    }
    if (k.keytype === 'MODE') {
      const m = c.value?.mode as Mode;
      this.mode = c.value !== null && MODES.includes(m) ? m : 'READWRITE';
      return;
    }
    const versions = this.subjects.get(k.subject);
    if (c.value === null) {
      const gone = versions?.get(k.version);
      versions?.delete(k.version);
      if (versions && versions.size === 0) this.subjects.delete(k.subject);
      if (gone) this.forgetIfUnused(gone.id);
      return;
    }
    const v = c.value as unknown as VersionRecord;
    const rec: VersionRecord = {
      subject: k.subject,
      version: k.version,
      id: v.id,
      schemaType: v.schemaType ?? 'AVRO',
      schema: v.schema,
      references: v.references ?? [],
      deleted: v.deleted === true,
    };
    let map = versions;
    if (!map) this.subjects.set(k.subject, (map = new Map()));
    map.set(k.version, rec);
    if (!this.schemas.has(rec.id)) {
      const def = { schemaType: rec.schemaType, schema: rec.schema, references: rec.references };
      const stored = { ...def, id: rec.id, identity: identityOf(def) };
      this.schemas.set(rec.id, stored);
      this.byIdentity.set(stored.identity, rec.id);
    }
    if (rec.id > this.maxId) this.maxId = rec.id;
  }

  private forgetIfUnused(id: number): void {
    for (const versions of this.subjects.values()) for (const v of versions.values()) if (v.id === id) return;
    const s = this.schemas.get(id);
    if (s) this.byIdentity.delete(s.identity);
    this.schemas.delete(id);
    this.parsedCache.delete(id);
  }

  /** Runs a change after every earlier one; appends what it returns, then applies it. */
  private change<T>(fn: () => { changes: StoreChange[]; result: T }): Promise<T> {
    const run = this.tail.then(async () => {
      const { changes, result } = fn();
      if (changes.length > 0) {
        await ensureSchemasTopic(this.broker);
        try {
          await appendChanges(this.broker, changes);
        } catch (err) {
          this.log.error({ err: (err as Error).message }, 'schemas: append to _schemas failed');
          throw new RegistryError('STORE_ERROR', `could not store the change: ${(err as Error).message}`);
        }
        for (const c of changes) this.apply(c);
      }
      return result;
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  // --- reading ---------------------------------------------------------------------------

  private limits() {
    return this.options;
  }

  /** Parsed schemas held now (at most parsedSchemasCachedMax). */
  get parsedCached(): number {
    return this.parsedCache.size;
  }

  /** A schema's parsed form (cached, bounded). */
  parsed(id: number): ParsedSchema | undefined {
    const hit = this.parsedCache.get(id);
    if (hit) {
      this.parsedCache.delete(id);
      this.parsedCache.set(id, hit);
      return hit;
    }
    const s = this.schemas.get(id);
    if (!s) return undefined;
    const p = parseSchema(s, this.lookupRef, this.limits());
    if (this.parsedCache.size >= this.options.parsedSchemasCachedMax) this.parsedCache.delete(this.parsedCache.keys().next().value as number);
    this.parsedCache.set(id, p);
    return p;
  }

  private readonly lookupRef = (subject: string, version: number): SchemaDef | undefined => {
    const v = this.versionsOf(subject, true)?.get(version === -1 ? this.latestVersionNumber(subject) ?? -1 : version);
    return v ? this.schemas.get(v.id) : undefined;
  };

  private versionsOf(subject: string, deleted: boolean): Map<number, VersionRecord> | undefined {
    const all = this.subjects.get(subject);
    if (!all) return undefined;
    if (deleted) return all;
    const live = new Map([...all].filter(([, v]) => !v.deleted));
    return live.size > 0 ? live : undefined;
  }

  private latestVersionNumber(subject: string): number | undefined {
    const live = this.versionsOf(subject, false);
    return live ? Math.max(...live.keys()) : undefined;
  }

  listSubjects(deleted = false): string[] {
    return [...this.subjects.keys()].filter((s) => this.versionsOf(s, deleted)).sort();
  }

  listVersions(subject: string, deleted = false): number[] {
    const v = this.versionsOf(subject, deleted);
    if (!v) throw new RegistryError('SUBJECT_NOT_FOUND', `Subject '${subject}' not found.`);
    return [...v.keys()].sort((a, b) => a - b);
  }

  private parseVersionId(raw: string | number): number | 'latest' {
    if (raw === 'latest' || raw === '-1' || raw === -1) return 'latest';
    const n = typeof raw === 'number' ? raw : /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < 1 || n > 2_147_483_647) {
      throw new RegistryError('INVALID_VERSION', `The specified version '${raw}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`);
    }
    return n;
  }

  /** One version of a subject; `latest` = the highest live one. */
  getVersion(subject: string, rawVersion: string | number, deleted = false): VersionAnswer {
    const asked = this.parseVersionId(rawVersion);
    const versions = this.versionsOf(subject, deleted || asked !== 'latest' ? true : false);
    if (!versions || (!deleted && !this.versionsOf(subject, false))) throw new RegistryError('SUBJECT_NOT_FOUND', `Subject '${subject}' not found.`);
    const n = asked === 'latest' ? this.latestVersionNumber(subject)! : asked;
    const v = versions.get(n);
    if (!v || (v.deleted && !deleted)) throw new RegistryError('VERSION_NOT_FOUND', `Version ${rawVersion} not found.`);
    return answerOf(v);
  }

  /** The latest live version's id and parsed schema (ingest validation). */
  latest(subject: string): { id: number; version: number } | undefined {
    const n = this.latestVersionNumber(subject);
    if (n === undefined) return undefined;
    const v = this.subjects.get(subject)!.get(n)!;
    return { id: v.id, version: n };
  }

  /** Whether `id` is a live version of `subject` (ingest validation of the wire format). */
  idInSubject(subject: string, id: number): boolean {
    const v = this.versionsOf(subject, false);
    if (!v) return false;
    for (const r of v.values()) if (r.id === id) return true;
    return false;
  }

  schemaById(id: number): StoredSchema {
    const s = this.schemas.get(id);
    if (!s) throw new RegistryError('SCHEMA_NOT_FOUND', `Schema ${id} not found`);
    return s;
  }

  /** subject/version pairs using an id. */
  usesOf(id: number, deleted = false): Array<{ subject: string; version: number }> {
    this.schemaById(id);
    const out: Array<{ subject: string; version: number }> = [];
    for (const [subject, versions] of this.subjects) for (const v of versions.values()) if (v.id === id && (deleted || !v.deleted)) out.push({ subject, version: v.version });
    return out.sort((a, b) => (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : a.version - b.version));
  }

  // --- parsing a request -----------------------------------------------------------------

  /** The request's schema as stored (compact text) and parsed; INVALID_SCHEMA / LIMIT_EXCEEDED. */
  private definition(req: SchemaRequest): { def: SchemaDef; parsed: ParsedSchema } {
    const def = this.definitionText(req);
    return { def, parsed: parseSchema(def, this.lookupRef, this.limits()) };
  }

  /** The request's schema as stored, without compiling it (a lookup compares stored texts only). */
  private definitionText(req: SchemaRequest): SchemaDef {
    if (req === null || typeof req !== 'object') throw new RegistryError('UNPROCESSABLE', 'the body must be a JSON object with a "schema" string');
    if (req.schema === undefined) throw new RegistryError('UNPROCESSABLE', 'the body has no "schema" field');
    const schemaType = schemaTypeOf(req.schemaType);
    const references = referencesOf(req.references, this.limits());
    const doc = parseDocument(req.schema, this.limits());
    return { schemaType, schema: canonicalText(doc), references };
  }

  /** Finds a subject's version holding this schema (POST /subjects/{s}). */
  lookup(subject: string, req: SchemaRequest, deleted = false): VersionAnswer {
    const versions = this.versionsOf(subject, deleted);
    const def = this.definitionText(req);
    if (!versions) throw new RegistryError('SUBJECT_NOT_FOUND', `Subject '${subject}' not found.`);
    const id = this.byIdentity.get(identityOf(def));
    const hit = id === undefined ? undefined : [...versions.values()].filter((v) => v.id === id).sort((a, b) => b.version - a.version)[0];
    if (!hit) throw new RegistryError('SCHEMA_NOT_FOUND', 'Schema not found');
    return answerOf(hit);
  }

  // --- config and mode -------------------------------------------------------------------

  compatibilityOf(subject: string | null): CompatibilityLevel {
    return (subject !== null ? this.configs.get(subject) : undefined) ?? this.configs.get(null) ?? DEFAULT_COMPATIBILITY;
  }

  getConfig(subject: string | null, defaultToGlobal: boolean): CompatibilityLevel {
    if (subject === null) return this.compatibilityOf(null);
    const own = this.configs.get(subject);
    if (own) return own;
    if (defaultToGlobal) return this.compatibilityOf(null);
    throw new RegistryError('SUBJECT_COMPATIBILITY_NOT_CONFIGURED', `Subject '${subject}' does not have subject-level compatibility configured`);
  }

  setConfig(subject: string | null, level: unknown): Promise<CompatibilityLevel> {
    return this.change(() => {
      this.assertWritable();
      if (!isCompatibilityLevel(level)) throw new RegistryError('INVALID_COMPATIBILITY_LEVEL', `Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive`);
      return { changes: [{ key: { keytype: 'CONFIG', subject }, value: { compatibilityLevel: level } }], result: level };
    });
  }

  deleteConfig(subject: string | null): Promise<CompatibilityLevel> {
    return this.change(() => {
      this.assertWritable();
      const was = subject === null ? this.compatibilityOf(null) : this.getConfig(subject, false);
      return { changes: [{ key: { keytype: 'CONFIG', subject }, value: null }], result: was };
    });
  }

  getMode(): Mode {
    return this.mode;
  }

  setMode(mode: unknown, force: boolean): Promise<Mode> {
    return this.change(() => {
      if (typeof mode !== 'string' || !MODES.includes(mode as Mode)) throw new RegistryError('INVALID_MODE', `Invalid mode. Valid values are READWRITE, READONLY and IMPORT`);
      if (mode === 'IMPORT' && this.mode !== 'IMPORT' && this.subjects.size > 0 && !force) {
        throw new RegistryError('OPERATION_NOT_PERMITTED', 'Cannot import since found existing subjects (add ?force=true to import anyway)');
      }
      return { changes: [{ key: { keytype: 'MODE', subject: null }, value: { mode } }], result: mode as Mode };
    });
  }

  private assertWritable(): void {
    if (this.mode === 'READONLY') throw new RegistryError('OPERATION_NOT_PERMITTED', 'The registry is in READONLY mode');
  }

  // --- register, test, delete ------------------------------------------------------------

  private liveParsed(subject: string): ParsedSchema[] {
    const live = this.versionsOf(subject, false);
    if (!live) return [];
    return [...live.values()].sort((a, b) => a.version - b.version).map((v) => this.parsed(v.id)!);
  }

  /** Registers a schema under a subject; the same schema again answers its existing id. */
  register(subject: string, req: SchemaRequest): Promise<{ id: number }> {
    return this.change(() => {
      this.assertWritable();
      checkSubjectName(subject);
      const { def, parsed } = this.definition(req);
      const importing = this.mode === 'IMPORT';
      if (!importing && req.id !== undefined && req.id !== null) throw new RegistryError('OPERATION_NOT_PERMITTED', 'an id may be given only in IMPORT mode');
      const all = this.subjects.get(subject);
      const existingId = this.byIdentity.get(identityOf(def));
      const live = this.versionsOf(subject, false);
      if (existingId !== undefined && live) {
        for (const v of live.values()) if (v.id === existingId) return { changes: [], result: { id: existingId } };
      }
      if (!all && this.subjects.size >= this.options.subjectsMax) throw new RegistryError('LIMIT_EXCEEDED', `${this.subjects.size} subjects exist: subjectsMax ${this.options.subjectsMax} reached`);
      if (all && all.size >= this.options.versionsPerSubjectMax) throw new RegistryError('LIMIT_EXCEEDED', `subject ${subject} has ${all.size} versions: versionsPerSubjectMax ${this.options.versionsPerSubjectMax} reached`);
      if (!importing) {
        const problems = compatibilityProblems(this.compatibilityOf(subject), parsed, this.liveParsed(subject));
        if (problems.length > 0) throw new RegistryError('INCOMPATIBLE_SCHEMA', `Schema being registered is incompatible with an earlier schema for subject "${subject}", details: ${problems.join('; ')}`);
      }
      const id = this.idFor(def, existingId, importing ? req.id : undefined);
      const version = importing && Number.isSafeInteger(req.version) && (req.version as number) > 0 ? (req.version as number) : Math.max(0, ...(all?.keys() ?? [])) + 1;
      if (all?.has(version)) throw new RegistryError('OPERATION_NOT_PERMITTED', `subject ${subject} already has version ${version}`);
      const value = { subject, version, id, schemaType: def.schemaType, schema: def.schema, references: def.references, deleted: false };
      return { changes: [{ key: { keytype: 'SCHEMA', subject, version }, value }], result: { id } };
    });
  }

  private idFor(def: SchemaDef, existing: number | undefined, imported: unknown): number {
    if (imported === undefined || imported === null) return existing ?? this.maxId + 1;
    if (!Number.isSafeInteger(imported) || (imported as number) < 1) throw new RegistryError('UNPROCESSABLE', `id must be a positive integer, got ${String(imported)}`);
    const taken = this.schemas.get(imported as number);
    if (taken && taken.identity !== identityOf(def)) throw new RegistryError('OPERATION_NOT_PERMITTED', `Overwrite new schema with id ${imported} is not permitted.`);
    return imported as number;
  }

  /** POST /compatibility/subjects/{s}/versions/{v}: the candidate against one version (or all, for transitive levels with `latest`). */
  testCompatibility(subject: string, rawVersion: string, req: SchemaRequest): { is_compatible: boolean; messages: string[] } {
    const { parsed } = this.definition(req);
    const level = this.compatibilityOf(subject);
    const live = this.versionsOf(subject, false);
    if (!live) {
      if (rawVersion === 'latest') return { is_compatible: true, messages: [] };
      throw new RegistryError('SUBJECT_NOT_FOUND', `Subject '${subject}' not found.`);
    }
    const asked = this.parseVersionId(rawVersion);
    let against: ParsedSchema[];
    if (asked === 'latest') against = this.liveParsed(subject);
    else {
      const v = live.get(asked);
      if (!v) throw new RegistryError('VERSION_NOT_FOUND', `Version ${rawVersion} not found.`);
      against = [this.parsed(v.id)!];
    }
    const messages = compatibilityProblems(level, parsed, against);
    return { is_compatible: messages.length === 0, messages };
  }

  /** Soft delete (versions marked deleted), or hard (`permanent`, only after a soft one). */
  deleteSubject(subject: string, permanent: boolean): Promise<number[]> {
    return this.change(() => {
      this.assertWritable();
      const all = this.subjects.get(subject);
      if (!all) throw new RegistryError('SUBJECT_NOT_FOUND', `Subject '${subject}' not found.`);
      const live = [...all.values()].filter((v) => !v.deleted);
      if (permanent) {
        if (live.length > 0) throw new RegistryError('SUBJECT_NOT_SOFT_DELETED', `Subject '${subject}' was not deleted first before being permanently deleted`);
        this.assertNotReferenced(subject, [...all.keys()]);
        const versions = [...all.keys()].sort((a, b) => a - b);
        return { changes: versions.map((version) => ({ key: { keytype: 'SCHEMA' as const, subject, version }, value: null })), result: versions };
      }
      if (live.length === 0) throw new RegistryError('SUBJECT_SOFT_DELETED', `Subject '${subject}' was soft deleted. Set permanent=true to delete permanently`);
      this.assertNotReferenced(subject, live.map((v) => v.version));
      const versions = live.map((v) => v.version).sort((a, b) => a - b);
      return { changes: live.map((v) => ({ key: { keytype: 'SCHEMA' as const, subject, version: v.version }, value: { ...v, deleted: true } })), result: versions };
    });
  }

  deleteVersion(subject: string, rawVersion: string, permanent: boolean): Promise<number> {
    return this.change(() => {
      this.assertWritable();
      const all = this.subjects.get(subject);
      const asked = this.parseVersionId(rawVersion);
      if (!all) throw new RegistryError('SUBJECT_NOT_FOUND', `Subject '${subject}' not found.`);
      const n = asked === 'latest' ? this.latestVersionNumber(subject) : asked;
      const v = n === undefined ? undefined : all.get(n);
      if (!v) throw new RegistryError('VERSION_NOT_FOUND', `Version ${rawVersion} not found.`);
      this.assertNotReferenced(subject, [v.version]);
      if (permanent) {
        if (!v.deleted) throw new RegistryError('SCHEMA_VERSION_NOT_SOFT_DELETED', `Subject '${subject}' Version ${v.version} was not deleted first before being permanently deleted`);
        return { changes: [{ key: { keytype: 'SCHEMA', subject, version: v.version }, value: null }], result: v.version };
      }
      if (v.deleted) throw new RegistryError('SCHEMA_VERSION_SOFT_DELETED', `Subject '${subject}' Version ${v.version} was soft deleted. Set permanent=true to delete permanently`);
      return { changes: [{ key: { keytype: 'SCHEMA', subject, version: v.version }, value: { ...v, deleted: true } }], result: v.version };
    });
  }

  /** A version another live schema references cannot be deleted (Confluent's 42206). */
  private assertNotReferenced(subject: string, versions: number[]): void {
    for (const s of this.schemas.values()) {
      for (const r of s.references) {
        if (r.subject === subject && versions.includes(r.version) && this.usesOf(s.id).length > 0) {
          throw new RegistryError('REFERENCE_EXISTS', `One or more references exist to the schema {subject=${subject},version=${r.version}}`);
        }
      }
    }
  }

  /** Resolves when every change issued so far has settled (tests, shutdown). */
  async idle(): Promise<void> {
    await this.tail;
  }
}

function answerOf(v: VersionRecord): VersionAnswer {
  const a: VersionAnswer = { subject: v.subject, version: v.version, id: v.id, schema: v.schema };
  if (v.schemaType !== 'AVRO') a.schemaType = v.schemaType;
  if (v.references.length > 0) a.references = v.references;
  return a;
}

const SUBJECT_BYTES_MAX = 1024; // a subject is a topic name plus a suffix; bounds keys in `_schemas`

function checkSubjectName(subject: string): void {
  if (subject.length === 0 || Buffer.byteLength(subject) > SUBJECT_BYTES_MAX || /[\u0000-\u001f]/.test(subject)) {
    throw new RegistryError('UNPROCESSABLE', `invalid subject name (1 to ${SUBJECT_BYTES_MAX} bytes, no control characters)`);
  }
}
