// The schema registry's options: its listener, its limits and the ingest validation knobs, each
// default with its reason, validated once at start so a bad value stops the node with a message
// naming the option.
import { BrokerError } from '../errors/index.js';
import { listenerSchemas, tlsRefusal, type ListenerOptions } from '../config/listener.js';
import { checkOptions, integer, section, string, type SectionSchema } from '../config/schema.js';

/**
 * The registry's own HTTP listener follows the one listener model (host, port: 0 = pick a free
 * port, -1 = no listener while validation still runs, connectionsMax, tls).
 */
export interface SchemaRegistryOptions extends ListenerOptions {
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
  connectionsMax: 64, // producers and consumers keep one keep-alive connection each and cache what they look up
  tls: null, // plain HTTP until certificate files are named (https with them)
  schemaBytesMax: 256 * 1024, // a 10-field sensor schema is ~1 KiB; 256 KiB holds large enterprise Avro schemas and bounds parse memory
  subjectsMax: 10_000, // two subjects per topic (key, value) for thousands of topics, and a bound on memory
  versionsPerSubjectMax: 1_000, // firmware updates are rare; 1000 versions × 10k subjects still bounds what replays at start
  referenceDepthMax: 16, // real reference chains are two or three deep; 16 stops a cycle long before the stack
  referencesMax: 256, // a schema composed of many small ones; bounds resolution work per registration
  schemaNestingMax: 64, // JSON.parse recursion and the avsc and ajv recursive walks stay far from the stack limit
  requestBytesMax: 512 * 1024, // schemaBytesMax escaped inside a JSON envelope (quotes and backslashes), with room for references
  requestsInFlightMax: 8, // clients cache what they look up, so a gateway's registry sees a trickle; 8 bodies in flight ≤ 4 MiB of the node's memory budget, more waits for a 503 + Retry-After
  deadLetterTopic: '{topic}.dlq', // next to its topic in listings; the suffix is legal in Kafka topic names
  recordErrorsMax: 16, // enough to see a pattern; a 10k-record batch does not produce a 10k-line answer
  replayReadBytes: 1024 * 1024, // one read at start holds at most 1 MiB of the schemas topic
  parsedSchemasCachedMax: 64, // a compiled validator costs ~15 KiB for a 10-field schema (measured: ajv + avsc pair 28 KiB); a gateway validates a few dozen schemas
};

/** What each key of the `schemas` config section allows (host/config/schema.ts). */
export const schemasSchema: SectionSchema = section({
  ...listenerSchemas(),
  schemaBytesMax: integer(64, 64 * 1024 * 1024),
  subjectsMax: integer(1, 10_000_000),
  versionsPerSubjectMax: integer(1, 1_000_000),
  referenceDepthMax: integer(0, 1000),
  referencesMax: integer(0, 100_000),
  schemaNestingMax: integer(2, 10_000),
  requestBytesMax: integer(128, 256 * 1024 * 1024),
  requestsInFlightMax: integer(1, 100_000),
  deadLetterTopic: { ...string(1), 'x-allowed': 'a topic name; {topic} stands for the refused record\'s topic' },
  recordErrorsMax: integer(1, 100_000),
  replayReadBytes: integer(1024, 256 * 1024 * 1024),
  parsedSchemasCachedMax: integer(1, 1_000_000),
});

/** Fills defaults and checks every key (options passed in code, or a node's section); throws INVALID_CONFIG naming the key. */
export function validateSchemaRegistryOptions(partial: Partial<SchemaRegistryOptions> = {}): SchemaRegistryOptions {
  const o = { ...defaultSchemaRegistryOptions, ...partial };
  try {
    checkOptions(schemasSchema, o as unknown as Record<string, unknown>, 'schemas.');
  } catch (err) {
    throw new BrokerError('INVALID_CONFIG', (err as Error).message);
  }
  if (typeof o.host !== 'string') throw new BrokerError('INVALID_CONFIG', 'schemas.host must be a string');
  const tls = tlsRefusal(o.tls);
  if (tls) throw new BrokerError('INVALID_CONFIG', `schemas.tls: ${tls}`);
  return o;
}
