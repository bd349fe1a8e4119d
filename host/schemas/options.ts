// The schema registry's options: its listener, its limits and the ingest validation knobs, each
// default with its reason, validated once at start so a bad value stops the node with a message
// naming the option.
import { BrokerError } from '../errors/index.js';

export interface SchemaRegistryOptions {
  host: string;
  /** The registry's own HTTP listener; 0 = pick a free port, -1 = no listener (validation still runs). */
  port: number;
  /** Largest schema text accepted (bytes of the `schema` string). */
  schemaBytesMax: number;
  /** Most subjects (soft-deleted ones count until hard-deleted). */
  subjectsMax: number;
  /** Most versions in one subject (soft-deleted ones count until hard-deleted). */
  versionsPerSubjectMax: number;
  /** Deepest chain of references (A references B references C … counts each step). */
  referenceDepthMax: number;
  /** Most references in one schema, over the whole chain. */
  referencesMax: number;
  /** Deepest JSON nesting of one schema document (objects and arrays, defaults included). */
  schemaNestingMax: number;
  /** Largest request body (JSON envelope around the schema). */
  requestBytesMax: number;
  /** Concurrent requests served; past it the connection is refused with 503 (a bounded registry). */
  requestsInFlightMax: number;
  /** Where a rejected record goes: `{topic}` is replaced by the topic's name. */
  deadLetterTopic: string;
  /** Errors reported per refused batch (Kafka's record_errors); the rest are counted only. */
  recordErrorsMax: number;
  /** Bytes per read while `_schemas` is replayed at start. */
  replayReadBytes: number;
  /** Parsed schemas (avsc types, compiled ajv validators) kept in memory; the least recently used go first. */
  parsedSchemasCachedMax: number;
}

export const defaultSchemaRegistryOptions: SchemaRegistryOptions = {
  host: '127.0.0.1', // used when run alone (tests, bench); a node binds its top-level host, like every listener
  port: 8081, // Confluent Schema Registry's well-known port, so clients work unconfigured
  schemaBytesMax: 256 * 1024, // a 10-field sensor schema is ~1 KiB; 256 KiB holds large enterprise Avro schemas and bounds parse memory
  subjectsMax: 10_000, // two subjects per topic (key, value) for thousands of topics, and a bound on memory
  versionsPerSubjectMax: 1_000, // firmware updates are rare; 1000 versions × 10k subjects still bounds what replays at start
  referenceDepthMax: 16, // real reference chains are two or three deep; 16 stops a cycle long before the stack
  referencesMax: 256, // a schema composed of many small ones; bounds resolution work per registration
  schemaNestingMax: 64, // JSON.parse recursion and the avsc and ajv recursive walks stay far from the stack limit
  requestBytesMax: 1024 * 1024, // schemaBytesMax escaped inside a JSON envelope, with room for references
  requestsInFlightMax: 64, // a registry serves the cached lookups of producers; 64 concurrent bodies ≤ 64 MiB
  deadLetterTopic: '{topic}.dlq', // next to its topic in listings; the suffix is legal in Kafka topic names
  recordErrorsMax: 16, // enough to see a pattern; a 10k-record batch does not produce a 10k-line answer
  replayReadBytes: 1024 * 1024, // one read at start holds at most 1 MiB of the schemas topic
  parsedSchemasCachedMax: 1_000, // a compiled validator costs tens of KiB; a gateway validates a few dozen schemas
};

function intIn(o: Record<string, unknown>, key: string, min: number, max: number): void {
  const v = o[key];
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) {
    throw new BrokerError('INVALID_CONFIG', `schemas.${key} must be an integer from ${min} to ${max}, got ${String(v)}`);
  }
}

export function validateSchemaRegistryOptions(partial: Partial<SchemaRegistryOptions> = {}): SchemaRegistryOptions {
  const o = { ...defaultSchemaRegistryOptions, ...partial };
  const r = o as unknown as Record<string, unknown>;
  intIn(r, 'port', -1, 65535);
  intIn(r, 'schemaBytesMax', 64, 64 * 1024 * 1024);
  intIn(r, 'subjectsMax', 1, 10_000_000);
  intIn(r, 'versionsPerSubjectMax', 1, 1_000_000);
  intIn(r, 'referenceDepthMax', 0, 1000);
  intIn(r, 'referencesMax', 0, 100_000);
  intIn(r, 'schemaNestingMax', 2, 10_000);
  intIn(r, 'requestBytesMax', 128, 256 * 1024 * 1024);
  intIn(r, 'requestsInFlightMax', 1, 100_000);
  intIn(r, 'recordErrorsMax', 1, 100_000);
  intIn(r, 'replayReadBytes', 1024, 256 * 1024 * 1024);
  intIn(r, 'parsedSchemasCachedMax', 1, 1_000_000);
  if (typeof o.deadLetterTopic !== 'string' || o.deadLetterTopic.length === 0) {
    throw new BrokerError('INVALID_CONFIG', `schemas.deadLetterTopic must be a topic name, {topic} standing for the refused record's topic; got ${String(o.deadLetterTopic)}`);
  }
  if (typeof o.host !== 'string') throw new BrokerError('INVALID_CONFIG', 'schemas.host must be a string');
  return o;
}
