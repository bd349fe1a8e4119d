// Ingest validation: the hook the registry installs at the broker's one write path
// (Broker.setAppendValidator), so MQTT, WebSocket, HTTP and Kafka records are checked once,
// in one place, for topics whose `schema.validation` is `warn` or `reject`.
//
// What a record must be, against the topic's subject (`schema.subject`, default `<topic>-value`):
//   Confluent wire format (byte 0 = 0, then a 4-byte big-endian schema id, then the payload):
//     the id must be a live version of the subject; an Avro payload must decode with that
//     schema (no trailing bytes); a JSON payload must parse and match that JSON Schema.
//   anything else: the subject's latest schema must be JSON Schema and the value JSON matching
//     it (an Avro subject needs the wire format: raw Avro carries no schema id).
//   a null value (a tombstone) passes.
//
// `warn`: counted and logged, stored. `reject`: the refused records go to the dead-letter topic
// (`deadLetterTopic`, default `<topic>.dlq`) with headers saying why (schema.topic, schema.rule,
// schema.path, schema.error), acks -1, before the writer hears INVALID_RECORD; the records of
// the same batch that passed are refused with it (a batch is atomic, as in Kafka) and the MQTT
// gateway resubmits them.
import type avro from 'avsc';
import type { AppendValidator, BrokerApi, RecordInput, TopicConfig, TopicPartition } from '../broker/api.js';
import { decodeBatches } from '../core/index.js';
import { BrokerError } from '../errors/index.js';
import type { Logger } from '../logging.js';
import type { Counter, MetricsRegistry } from '../metrics/registry.js';
import type { SchemaRegistry } from './registry.js';
import { ajvFailure, RegistryError, type ParsedSchema } from './schema-types.js';

/** Confluent's wire format: magic byte 0, then the schema id (int32, big-endian). */
export const WIRE_MAGIC = 0;
export const WIRE_HEADER_BYTES = 5;

export interface Refusal {
  rule: 'no-schema' | 'schema-id-unknown' | 'avro-decode' | 'wire-format-missing' | 'json-parse' | 'json-schema';
  path: string;
  message: string;
}

/** The schema id of a value in the wire format, or undefined. */
export function wireSchemaId(value: Uint8Array): number | undefined {
  if (value.length < WIRE_HEADER_BYTES || value[0] !== WIRE_MAGIC) return undefined;
  return ((value[1] << 24) >>> 0) + (value[2] << 16) + (value[3] << 8) + value[4];
}

// A Buffer over a decoded record's view of a large ArrayBuffer costs ~1 µs to create (measured:
// more than parsing the JSON), so JSON goes through one TextDecoder and small Avro values are
// copied into Node's pooled buffers instead.
const utf8 = new TextDecoder();
const POOLED_COPY_BYTES_MAX = 4096;

function asBuffer(v: Uint8Array): Buffer {
  if (Buffer.isBuffer(v)) return v;
  return v.byteLength <= POOLED_COPY_BYTES_MAX ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** Decodes a wire-format value to a JSON-ready object (dashboards), or throws a Refusal-shaped error. */
export function decodeWireValue(registry: SchemaRegistry, value: Uint8Array): { id: number; value: unknown } | undefined {
  const id = wireSchemaId(value);
  if (id === undefined) return undefined;
  const parsed = registry.parsed(id);
  if (!parsed) return undefined;
  const body = asBuffer(value).subarray(WIRE_HEADER_BYTES);
  if (parsed.schemaType === 'AVRO') return { id, value: toJsonReady(parsed.type.fromBuffer(body)) };
  return { id, value: JSON.parse(body.toString('utf8')) };
}

/** avsc values → JSON-ready: bytes as strings (latin1, Avro's JSON encoding), longs as numbers. */
function toJsonReady(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  if (Array.isArray(v)) return v.map(toJsonReady);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = toJsonReady(x);
    return out;
  }
  return v;
}

interface SubjectView {
  generation: number;
  latestId: number | undefined;
  ids: Set<number>;
  /** The schema this subject's records used last (a device sends one schema): skips the LRU touch per record. */
  memoId: number;
  memoParsed: ParsedSchema | undefined;
}

const SUBJECT_VIEWS_MAX = 4_096; // one per validated subject; past it the map starts over (a view is cheap to rebuild)

export class IngestValidator implements AppendValidator {
  private readonly views = new Map<string, SubjectView>();
  private readonly refused: Counter;
  private readonly warned: Counter;
  private readonly deadLettered: Counter;
  private lastLogMs = 0;

  constructor(
    private readonly registry: SchemaRegistry,
    private readonly broker: BrokerApi,
    private readonly log: Logger,
    metrics: MetricsRegistry,
  ) {
    this.refused = metrics.counter('tributary_schema_refused_total', 'Records refused by ingest schema validation (schema.validation=reject), by topic and rule');
    this.warned = metrics.counter('tributary_schema_warned_total', 'Records that failed ingest schema validation and were stored anyway (schema.validation=warn), by topic and rule');
    this.deadLettered = metrics.counter('tributary_schema_dead_lettered_total', 'Refused records written to a dead-letter topic, by topic');
  }

  private view(subject: string): SubjectView {
    const g = this.registry.generation;
    let v = this.views.get(subject);
    if (v && v.generation === g) return v;
    const latest = this.registry.latest(subject);
    const ids = new Set<number>();
    if (latest) for (const n of this.registry.listVersions(subject)) ids.add(this.registry.getVersion(subject, n).id);
    v = { generation: g, latestId: latest?.id, ids, memoId: -1, memoParsed: undefined };
    if (this.views.size >= SUBJECT_VIEWS_MAX) this.views.clear();
    this.views.set(subject, v);
    return v;
  }

  private parsedOrRefusal(id: number): ParsedSchema | Refusal {
    try {
      const p = this.registry.parsed(id);
      if (p) return p;
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
    }
    return { rule: 'schema-id-unknown', path: '/', message: `schema id ${id} cannot be loaded` };
  }

  /** Why one value does not fit the subject, or undefined when it does. */
  check(subject: string, value: Uint8Array | null): Refusal | undefined {
    if (value === null) return undefined;
    const view = this.view(subject);
    if (view.latestId === undefined) return { rule: 'no-schema', path: '/', message: `no schema registered under subject ${subject}` };
    const id = wireSchemaId(value);
    let body: Uint8Array = value;
    if (id !== undefined) {
      if (!view.ids.has(id)) return { rule: 'schema-id-unknown', path: '/', message: `schema id ${id} is not a version of subject ${subject}` };
      body = value.subarray(WIRE_HEADER_BYTES);
    }
    const want = id ?? view.latestId;
    let parsed: ParsedSchema | Refusal | undefined = view.memoId === want ? view.memoParsed : undefined;
    if (!parsed) {
      parsed = this.parsedOrRefusal(want);
      if ('rule' in parsed) return parsed;
      view.memoId = want;
      view.memoParsed = parsed;
    }
    if (parsed.schemaType === 'AVRO') {
      if (id === undefined) return { rule: 'wire-format-missing', path: '/', message: `subject ${subject} is Avro: records must carry the Confluent wire format (byte 0, then the 4-byte schema id)` };
      return avroRefusal(parsed.type, body);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(utf8.decode(body));
    } catch (err) {
      return { rule: 'json-parse', path: '/', message: `value is not JSON: ${(err as Error).message}` };
    }
    if (parsed.validate(doc)) return undefined;
    const f = ajvFailure(parsed.validate);
    return { rule: 'json-schema', path: f.path, message: `${f.path} ${f.message}` };
  }

  private subjectOf(topic: string, config: TopicConfig): string {
    return config['schema.subject'] || `${topic}-value`;
  }

  checkRecords(topic: string, records: RecordInput[], config: TopicConfig): Promise<void> | void {
    const subject = this.subjectOf(topic, config);
    const bad: Array<{ index: number; refusal: Refusal; record: RecordInput }> = [];
    for (let i = 0; i < records.length; i++) {
      const r = this.check(subject, records[i].value ?? null);
      if (r) bad.push({ index: i, refusal: r, record: records[i] });
    }
    if (bad.length === 0) return;
    return this.refuse(topic, config, bad, Number.MAX_SAFE_INTEGER);
  }

  checkBatches(tp: TopicPartition, batches: Uint8Array, config: TopicConfig): Promise<void> | void {
    const subject = this.subjectOf(tp.topic, config);
    let decoded;
    try {
      decoded = decodeBatches(batches);
    } catch {
      return; // the append's own verification answers a broken batch with its specific error
    }
    const bad: Array<{ index: number; refusal: Refusal; record: RecordInput }> = [];
    let index = 0;
    for (const b of decoded) {
      for (const r of b.records) {
        const refusal = this.check(subject, r.value);
        if (refusal) bad.push({ index, refusal, record: { key: r.key, value: r.value, headers: r.headers, timestampMs: r.timestampMs } as RecordInput });
        index++;
      }
    }
    if (bad.length === 0) return;
    return this.refuse(tp.topic, config, bad, this.registry.options.recordErrorsMax);
  }

  private async refuse(topic: string, config: TopicConfig, bad: Array<{ index: number; refusal: Refusal; record: RecordInput }>, reportMax: number): Promise<void> {
    const mode = config['schema.validation'];
    for (const b of bad) (mode === 'warn' ? this.warned : this.refused).inc({ topic, rule: b.refusal.rule });
    const first = bad[0].refusal;
    this.rareLog({ topic, mode, records: bad.length, rule: first.rule, path: first.path }, `schemas: ${bad.length} record(s) for ${topic} failed validation: ${first.message}`);
    if (mode === 'warn') return;
    const deadLettered = await this.deadLetter(topic, bad);
    const err = new BrokerError('INVALID_RECORD', `record ${bad[0].index} of the batch does not match its schema (${first.rule}): ${first.message}${bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''}`);
    err.recordErrors = bad.slice(0, reportMax).map((b) => ({ batchIndex: b.index, message: `${b.refusal.rule}: ${b.refusal.message}` }));
    err.deadLettered = deadLettered;
    throw err;
  }

  /** Writes refused records to the dead-letter topic (acks -1); false when that failed (logged). */
  private async deadLetter(topic: string, bad: Array<{ refusal: Refusal; record: RecordInput }>): Promise<boolean> {
    const target = this.registry.options.deadLetterTopic.replaceAll('{topic}', topic);
    if (target === topic) return false; // a topic cannot be its own dead-letter topic
    const records: RecordInput[] = bad.map(({ refusal, record }) => ({
      key: record.key ?? null,
      value: record.value ?? null,
      headers: [
        ...(record.headers ?? []),
        { key: 'schema.topic', value: Buffer.from(topic) },
        { key: 'schema.rule', value: Buffer.from(refusal.rule) },
        { key: 'schema.path', value: Buffer.from(refusal.path) },
        { key: 'schema.error', value: Buffer.from(refusal.message.slice(0, 1024)) },
      ],
    }));
    try {
      await this.broker.produce(target, records, { acks: -1 });
      this.deadLettered.inc({ topic }, records.length);
      return true;
    } catch (err) {
      this.rareLog({ topic, deadLetterTopic: target, err: (err as Error).message }, 'schemas: refused records could not be dead-lettered');
      return false;
    }
  }

  /** At most one line a second: a misbehaving device must not flood the log. */
  private rareLog(fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - this.lastLogMs < 1000) return;
    this.lastLogMs = now;
    this.log.warn(fields, message);
  }
}

function avroRefusal(type: avro.Type, body: Uint8Array): Refusal | undefined {
  try {
    type.fromBuffer(asBuffer(body));
    return undefined;
  } catch (err) {
    return { rule: 'avro-decode', path: '/', message: `Avro payload does not decode with its schema: ${(err as Error).message}` };
  }
}
