// The registry's durable state: the compacted internal topic `_schemas` (Confluent's and
// Redpanda's name), one partition, written through the broker's one append path (`produce`,
// acks -1, so flush=always has fsynced before the client hears "registered") and replayed at
// start through the one partition cursor.
//
// Record layout (JSON key → JSON value, UTF-8; shaped like Confluent's so the topic reads the
// same to anyone who knows theirs):
//   {"keytype":"SCHEMA","subject":s,"version":v,"magic":1}
//       → {"subject","version","id","schemaType","schema","references","deleted"}   null = hard-deleted
//   {"keytype":"CONFIG","subject":s|null,"magic":0} → {"compatibilityLevel":L}     null = cleared
//   {"keytype":"MODE","subject":null,"magic":0}      → {"mode":M}                     null = cleared
// Compaction keeps the newest value per key, which is the state; replay applies records in
// log order, so the newest wins there too.
//
// Crash policy: a change is applied to memory only after its append was acknowledged
// (fsynced), so what a client was told is on disk; an append that fails leaves memory as it
// was. A torn tail is truncated by the log's recovery (CRC) before the replay reads it.
import type { BrokerApi, RecordInput } from '../broker/api.js';
import { PartitionCursor } from '../broker/cursor.js';
import { BrokerError } from '../errors/index.js';
import type { SchemaReference, SchemaType } from './schema-types.js';

export const SCHEMAS_TOPIC = '_schemas';
const TP = { topic: SCHEMAS_TOPIC, partition: 0 };

export interface VersionRecord {
  subject: string;
  version: number;
  id: number;
  schemaType: SchemaType;
  schema: string;
  references: SchemaReference[];
  deleted: boolean;
}

export type StoreKey = { keytype: 'SCHEMA'; subject: string; version: number } | { keytype: 'CONFIG'; subject: string | null } | { keytype: 'MODE'; subject: string | null };

export interface StoreChange {
  key: StoreKey;
  value: Record<string, unknown> | null;
}

function keyJson(k: StoreKey): string {
  if (k.keytype === 'SCHEMA') return JSON.stringify({ keytype: 'SCHEMA', subject: k.subject, version: k.version, magic: 1 });
  return JSON.stringify({ keytype: k.keytype, subject: k.subject, magic: 0 });
}

export function encodeChange(c: StoreChange): RecordInput {
  return { key: Buffer.from(keyJson(c.key)), value: c.value === null ? null : Buffer.from(JSON.stringify(c.value)) };
}

/** Decodes one stored record; undefined for a record this version does not know (skipped, logged by the caller). */
export function decodeChange(key: Uint8Array, value: Uint8Array | null): StoreChange | undefined {
  let k: Record<string, unknown>;
  let v: Record<string, unknown> | null;
  try {
    k = JSON.parse(Buffer.from(key).toString('utf8'));
    v = value === null ? null : (JSON.parse(Buffer.from(value).toString('utf8')) as Record<string, unknown>);
  } catch {
    return undefined;
  }
  if (!k || typeof k !== 'object') return undefined;
  if (k.keytype === 'SCHEMA' && typeof k.subject === 'string' && Number.isSafeInteger(k.version)) {
    return { key: { keytype: 'SCHEMA', subject: k.subject, version: k.version as number }, value: v };
  }
  if ((k.keytype === 'CONFIG' || k.keytype === 'MODE') && (k.subject === null || typeof k.subject === 'string')) {
    return { key: { keytype: k.keytype, subject: k.subject as string | null }, value: v };
  }
  return undefined;
}

/** Creates `_schemas` (one partition, compacted) when missing. */
export async function ensureSchemasTopic(broker: BrokerApi): Promise<void> {
  if (broker.describeTopic(SCHEMAS_TOPIC)) return;
  try {
    await broker.createTopic(SCHEMAS_TOPIC, 1, { 'cleanup.policy': 'compact' });
  } catch (err) {
    if (!(err instanceof BrokerError && err.code === 'TOPIC_ALREADY_EXISTS')) throw err;
  }
}

/** Appends changes in one batch, acks -1: resolves once they are durable. */
export async function appendChanges(broker: BrokerApi, changes: StoreChange[]): Promise<void> {
  await broker.produce(SCHEMAS_TOPIC, changes.map(encodeChange), { acks: -1, partition: 0, internal: true });
}

/** Reads every record committed when the replay starts, in log order. Returns the count. */
export async function replayChanges(broker: BrokerApi, readBytes: number, apply: (c: StoreChange | undefined, offset: number) => void): Promise<number> {
  if (!broker.describeTopic(SCHEMAS_TOPIC)) return 0;
  const reader = new PartitionCursor(broker, TP, broker.offsets(TP).logStartOffset, { maxBytes: readBytes, onOutOfRange: 'fail' });
  const end = reader.visibleEnd();
  let count = 0;
  while (reader.position < end) {
    const { records, from, nextOffset } = await reader.read();
    for (const r of records) {
      if (r.key === null) continue;
      apply(decodeChange(r.key, r.value), r.offset);
      count++;
    }
    if (nextOffset <= from) throw new BrokerError('UNKNOWN_SERVER_ERROR', `${SCHEMAS_TOPIC}: no progress reading at offset ${from}`);
  }
  return count;
}
