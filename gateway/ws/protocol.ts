// The dashboard protocol over WebSocket (docs/websocket.md describes every frame).
//
// Two encodings, chosen by subprotocol, carrying the same frames:
//   tributary.json.v1  text frames, one JSON object each. Keys, values and header values are
//                      UTF-8 strings, or base64 strings when the request says
//                      `"encoding": "base64"` (subscribe: for what the server sends;
//                      produce: for what the client sends).
//   tributary.cbor.v1  binary frames, one CBOR map each (RFC 8949, plain maps, no tags).
//                      Keys, values and header values are byte strings.
//
// Every client frame is a map with `type` and `id` (a string or number chosen by the client,
// ≤ 128 characters); every answer (`subscribed`, `unsubscribed`, `ack`, `committed`, `pong`,
// `error`) repeats that id. `records`, `heartbeat` and `assignment` frames are pushed.
//
// This file only parses and encodes; it holds no state and never touches a socket.
import { createRequire } from 'node:module';
import type { Encoder as CborEncoder } from 'cbor-x';
import { BrokerError, ERRORS, type ErrorName } from '../../host/errors/index.js';
import type { RecordInput } from '../../host/broker/api.js';

export const JSON_PROTOCOL = 'tributary.json.v1';
export const CBOR_PROTOCOL = 'tributary.cbor.v1';
export type Encoding = 'json' | 'cbor';

/** How JSON frames spell bytes. CBOR always uses byte strings. */
export type TextEncodingName = 'utf8' | 'base64';

export type RequestId = string | number;

export type StartAt = { kind: 'earliest' } | { kind: 'latest' } | { kind: 'offset'; offset: number } | { kind: 'timestamp'; timestampMs: number };

export interface SubscribeRequest {
  type: 'subscribe';
  id: RequestId;
  topic: string;
  partitions: number[] | 'all';
  start: StartAt;
  group?: string;
  filter?: string;
  encoding: TextEncodingName;
  /** `confluent`: values in Confluent's wire format (byte 0 + schema id) are sent decoded, as JSON (docs/schemas.md). */
  decode?: 'confluent';
}

/** Turns a stored value into JSON through the schema registry; undefined when it is not in the wire format or its id is unknown. */
export type ValueDecoder = (value: Uint8Array) => { schemaId: number; value: unknown } | undefined;

export function decodeField(v: unknown, field: string): 'confluent' | undefined {
  if (v === undefined || v === null || v === 'none') return undefined;
  if (v === 'confluent') return 'confluent';
  throw bad(`${field}: must be "confluent" or "none"`);
}

/** A record for a `decode: confluent` reader: the value decoded (and its schema id), else as text with the reason. */
export function decodedRecordJson(r: OutRecord, enc: TextEncodingName, decode: ValueDecoder): Record<string, unknown> {
  const base = { offset: r.offset, timestamp: r.timestampMs, key: text(r.key, enc), headers: r.headers.map((h) => [h.key, text(h.value, enc)]) };
  if (r.value === null) return { ...base, value: null };
  try {
    const d = decode(r.value);
    if (d) return { ...base, value: d.value, schemaId: d.schemaId };
    return { ...base, value: text(r.value, enc), decodeError: 'not in the Confluent wire format, or its schema id is unknown' };
  } catch (err) {
    return { ...base, value: text(r.value, enc), decodeError: (err as Error).message };
  }
}

export interface UnsubscribeRequest {
  type: 'unsubscribe';
  id: RequestId;
  topic: string;
}

export interface ProduceRequest {
  type: 'produce';
  id: RequestId;
  topic: string;
  partition?: number;
  records: RecordInput[];
}

export interface CommitRequest {
  type: 'commit';
  id: RequestId;
  topic: string;
  /** Explicit offsets (the next offset to read, Kafka style); omitted = this socket's cursors. */
  offsets?: Array<{ partition: number; offset: number }>;
}

export interface PingRequest {
  type: 'ping';
  id: RequestId;
}

export type ClientRequest = SubscribeRequest | UnsubscribeRequest | ProduceRequest | CommitRequest | PingRequest;

/** A record as the gateway sends it: decoded once from a stored batch. */
export interface OutRecord {
  offset: number;
  timestampMs: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: Array<{ key: string; value: Uint8Array | null }>;
}

const REQUEST_ID_CHARS_MAX = 128;
const TOPIC_CHARS_MAX = 249; // Kafka's limit on topic names
const HEADERS_MAX = 64;

/**
 * cbor-x loads at the first CBOR frame, not with the door: a node whose dashboards all speak JSON
 * never holds it (~1 MiB of heap, docs/performance.md#footprint). `require` (cbor-x ships a
 * CommonJS build) keeps encode and decode synchronous.
 */
let encoders: { out: CborEncoder; in: CborEncoder } | undefined;
function cborEncoders(): { out: CborEncoder; in: CborEncoder } {
  if (!encoders) {
    const { Encoder } = createRequire(import.meta.url)('cbor-x') as typeof import('cbor-x');
    encoders = {
      out: new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: true }),
      /**
       * Client frames are decoded with every map as a Map (cbor-x's mapsAsObjects would throw on a
       * byte-string key, or turn an integer key into text), then maps with text keys become plain
       * objects: a map with other keys stays a Map and is refused naming its field, never stored as
       * `{}` or dropped (issue 14, finding 5).
       */
      in: new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: false }),
    };
  }
  return encoders;
}
/** The encoder for server frames (and a decoder with the same options, for tests and tools). */
export const cbor = {
  encode: (value: unknown): Uint8Array => cborEncoders().out.encode(value),
  decode: (bytes: Uint8Array): any => cborEncoders().out.decode(bytes), // eslint-disable-line @typescript-eslint/no-explicit-any
};
const cborIn = { decode: (bytes: Uint8Array): unknown => cborEncoders().in.decode(bytes) };
/** Deepest nesting of a decoded CBOR frame (its own envelope plus a valueDepthMax value); the walk below is recursive. */
const FRAME_DEPTH_MAX = 256;
/** The default of the http section's valueDepthMax (gateway/ws/options.ts). */
export const VALUE_DEPTH_MAX_DEFAULT = 64;

const textDecoder = new TextDecoder('utf-8');

const bad = (message: string) => new BrokerError('INVALID_REQUEST', message);

/** Parses one client frame; BrokerError INVALID_REQUEST naming the field on any mistake. `idOf` recovers the id for the error answer. */
export function decodeFrame(encoding: Encoding, data: Uint8Array, isBinary: boolean): unknown {
  if (encoding === 'json') {
    if (isBinary) throw bad(`binary frame on ${JSON_PROTOCOL}: send JSON as text frames`);
    try {
      return JSON.parse(textDecoder.decode(data));
    } catch (err) {
      throw bad(`frame is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!isBinary) throw bad(`text frame on ${CBOR_PROTOCOL}: send CBOR as binary frames`);
  let decoded: unknown;
  try {
    decoded = cborIn.decode(data);
  } catch (err) {
    const why = err instanceof RangeError ? `nested too deeply (${err.message})` : (err as Error).message;
    throw bad(`frame is not valid CBOR: ${why}`);
  }
  return objectsFromMaps(decoded, 0);
}

/** Maps whose keys are all text → plain objects (recursively); other maps stay Maps. */
function objectsFromMaps(v: unknown, depth: number): unknown {
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return v;
  if (depth > FRAME_DEPTH_MAX) throw bad(`frame: nested deeper than ${FRAME_DEPTH_MAX} levels`);
  if (Array.isArray(v)) return v.map((x) => objectsFromMaps(x, depth + 1));
  if (v instanceof Map) {
    const textKeys = [...v.keys()].every((k) => typeof k === 'string' && k !== '__proto__');
    if (!textKeys) return new Map([...v].map(([k, x]) => [k, objectsFromMaps(x, depth + 1)]));
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) o[k as string] = objectsFromMaps(x, depth + 1);
    return o;
  }
  return v;
}

/** A short description of a key or value's CBOR/JSON type, for messages. */
function kindOf(v: unknown): string {
  if (v instanceof Uint8Array) return 'byte string';
  if (v instanceof Map) return 'map';
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  return typeof v;
}

/**
 * Checks that a structured key/value (JSON or CBOR) can be stored as JSON text without any
 * change: plain objects with text keys, arrays, text, finite numbers, booleans, null; nesting
 * at most `depthMax`. Walks with an explicit stack (a deeply nested value must answer 400,
 * never overflow the call stack); a mistake names its path.
 */
function assertJsonValue(root: unknown, field: string, depthMax: number): void {
  const stack: Array<[unknown, string, number]> = [[root, field, 0]];
  while (stack.length) {
    const [v, path, depth] = stack.pop()!;
    if (v === null || typeof v === 'string' || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw bad(`${path}: ${v} has no JSON form`);
      if (Number.isInteger(v) && !Number.isSafeInteger(v)) throw bad(`${path}: integer ${v} is beyond 2^53 − 1 and would not be stored exactly; send it as text`);
      continue;
    }
    if (typeof v === 'bigint') throw bad(`${path}: integer ${v} is beyond 2^53 − 1 and would not be stored exactly; send it as text`);
    if (depth >= depthMax) throw bad(`${path}: nested deeper than ${depthMax} levels (valueDepthMax)`);
    if (v instanceof Map) {
      const k = [...v.keys()].find((x) => typeof x !== 'string');
      throw bad(`${path}: a map with a ${kindOf(k)} key cannot be stored as JSON text; use text keys, or send the value as bytes`);
    }
    if (v instanceof Uint8Array) throw bad(`${path}: a byte string inside a structured value cannot be stored as JSON text; send the whole value as bytes`);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push([v[i], `${path}[${i}]`, depth + 1]);
      continue;
    }
    if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      for (const [k, x] of Object.entries(v)) stack.push([x, `${path}.${k}`, depth + 1]);
      continue;
    }
    throw bad(`${path}: a ${kindOf(v)} value cannot be stored as JSON text`);
  }
}

/** The request id of a parsed frame, if it has a usable one (for error answers). */
export function idOf(frame: unknown): RequestId | null {
  const id = (frame as { id?: unknown } | null)?.id;
  if (typeof id === 'number' && Number.isFinite(id)) return id;
  if (typeof id === 'string' && id.length <= REQUEST_ID_CHARS_MAX) return id;
  return null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function topicField(o: Record<string, unknown>): string {
  const t = o.topic;
  if (typeof t !== 'string' || t.length === 0) throw bad('topic: required, a non-empty string');
  if (t.length > TOPIC_CHARS_MAX) throw bad(`topic: longer than ${TOPIC_CHARS_MAX} characters`);
  return t;
}

function nonNegativeInt(v: unknown, field: string): number {
  if ((typeof v === 'bigint' && v > 0n) || (typeof v === 'number' && Number.isInteger(v) && v > Number.MAX_SAFE_INTEGER)) {
    throw bad(`${field}: ${v} is above 2^53 − 1 (${Number.MAX_SAFE_INTEGER}), the largest integer kept exactly${field.endsWith('timestamp') ? '; a timestamp is milliseconds since the epoch' : ''}`);
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${field}: must be a non-negative integer`);
  return v;
}

function textEncodingField(v: unknown, field: string): TextEncodingName {
  if (v === undefined || v === 'utf8') return 'utf8';
  if (v === 'base64') return 'base64';
  throw bad(`${field}: must be "utf8" or "base64"`);
}

/** Bytes from a client field: a byte string (CBOR) or a string (JSON, UTF-8 or base64). */
function bytesField(v: unknown, field: string, enc: TextEncodingName): Uint8Array | null {
  if (v === undefined || v === null) return null;
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') {
    if (enc === 'base64') {
      if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) throw bad(`${field}: not valid base64`);
      return Buffer.from(v, 'base64');
    }
    return Buffer.from(v, 'utf8');
  }
  throw bad(`${field}: must be a string${enc === 'base64' ? ' (base64)' : ''}, bytes or null`);
}

/**
 * One record's fields (key, value, headers, timestamp, and with allowPartition a partition).
 * With the utf8 text encoding a value that is a JSON number, boolean, object or array is
 * stored as its JSON text, so a device can post `{"value": {"t": 21.5}}` as is.
 */
export function parseRecordFields(
  r: unknown,
  at: string,
  enc: TextEncodingName,
  allowPartition: boolean,
  valueDepthMax = VALUE_DEPTH_MAX_DEFAULT,
): { record: RecordInput; partition?: number } {
  if (!isObject(r) || r instanceof Map) throw bad(`${at || 'record'}: must be a map/object${r instanceof Map ? ' with text keys' : ''}`.replace(/\.:/, ':'));
  const structured = (v: unknown) => enc === 'utf8' && v !== null && v !== undefined && typeof v !== 'string' && !(v instanceof Uint8Array);
  const asJson = (v: unknown, field: string) => {
    assertJsonValue(v, field, valueDepthMax);
    return Buffer.from(JSON.stringify(v));
  };
  const record: RecordInput = {
    key: structured(r.key) ? asJson(r.key, `${at}key`) : bytesField(r.key, `${at}key`, enc),
    value: structured(r.value) ? asJson(r.value, `${at}value`) : bytesField(r.value, `${at}value`, enc),
    headers: headersField(r.headers, `${at}headers`, enc),
  };
  if (r.timestamp !== undefined) record.timestampMs = nonNegativeInt(r.timestamp, `${at}timestamp`);
  let partition: number | undefined;
  if (r.partition !== undefined) {
    if (!allowPartition) throw bad(`${at}partition: set partition on the produce frame, not per record`);
    partition = nonNegativeInt(r.partition, `${at}partition`);
  }
  return { record, partition };
}

function headersField(v: unknown, field: string, enc: TextEncodingName): Array<{ key: string; value: Uint8Array | null }> {
  if (v === undefined || v === null) return [];
  let pairs: Array<[unknown, unknown]>;
  if (v instanceof Map) {
    // A CBOR map with a key that is not text (objectsFromMaps keeps those as Maps): never dropped.
    const k = [...v.keys()].find((x) => typeof x !== 'string');
    throw bad(`${field}: header keys must be text strings; found a ${kindOf(k)} key`);
  }
  if (Array.isArray(v)) pairs = v.map((p, i) => (Array.isArray(p) && p.length === 2 ? (p as [unknown, unknown]) : ((): never => { throw bad(`${field}[${i}]: must be a [key, value] pair`); })()));
  else if (isObject(v)) pairs = Object.entries(v);
  else throw bad(`${field}: must be an object or an array of [key, value] pairs`);
  if (pairs.length > HEADERS_MAX) throw bad(`${field}: more than ${HEADERS_MAX} headers`);
  return pairs.map(([k, val], i) => {
    if (typeof k !== 'string') throw bad(`${field}[${i}]: header key must be a string`);
    return { key: k, value: bytesField(val, `${field}.${k}`, enc) };
  });
}

function startField(o: Record<string, unknown>): StartAt {
  const s = o.start ?? 'latest';
  switch (s) {
    case 'earliest':
      return { kind: 'earliest' };
    case 'latest':
      return { kind: 'latest' };
    case 'offset':
      return { kind: 'offset', offset: nonNegativeInt(o.offset, 'offset') };
    case 'timestamp':
      return { kind: 'timestamp', timestampMs: nonNegativeInt(o.timestamp, 'timestamp') };
    default:
      throw bad('start: must be "earliest", "latest", "offset" (with offset) or "timestamp" (with timestamp)');
  }
}

export function parseRequest(frame: unknown, valueDepthMax = VALUE_DEPTH_MAX_DEFAULT): ClientRequest {
  if (!isObject(frame) || frame instanceof Map) throw bad('frame must be a map/object with text keys');
  const id = idOf(frame);
  if (id === null) throw bad(`id: required, a string (≤ ${REQUEST_ID_CHARS_MAX} characters) or a number`);
  switch (frame.type) {
    case 'subscribe': {
      let partitions: number[] | 'all' = 'all';
      if (frame.partitions !== undefined && frame.partitions !== 'all') {
        if (!Array.isArray(frame.partitions) || frame.partitions.length === 0) throw bad('partitions: must be "all" or a non-empty array of partition numbers');
        partitions = [...new Set(frame.partitions.map((p, i) => nonNegativeInt(p, `partitions[${i}]`)))];
      }
      const group = frame.group;
      if (group !== undefined && (typeof group !== 'string' || group.length === 0 || group.length > 255)) throw bad('group: must be a non-empty string of at most 255 characters');
      const filter = frame.filter;
      if (filter !== undefined && typeof filter !== 'string') throw bad('filter: must be a string');
      if (group !== undefined && partitions !== 'all') throw bad('partitions: a group subscription is assigned its partitions by the group; omit partitions');
      return { type: 'subscribe', id, topic: topicField(frame), partitions, start: startField(frame), group: group as string | undefined, filter: filter as string | undefined, encoding: textEncodingField(frame.encoding, 'encoding'), decode: decodeField(frame.decode, 'decode') };
    }
    case 'unsubscribe':
      return { type: 'unsubscribe', id, topic: topicField(frame) };
    case 'produce': {
      const topic = topicField(frame);
      const enc = textEncodingField(frame.encoding, 'encoding');
      const partition = frame.partition === undefined ? undefined : nonNegativeInt(frame.partition, 'partition');
      let raw: unknown[];
      if (frame.records !== undefined) {
        if (!Array.isArray(frame.records) || frame.records.length === 0) throw bad('records: must be a non-empty array');
        raw = frame.records;
      } else {
        if (!('value' in frame) && !('key' in frame)) throw bad('value: required (or records: [...])');
        raw = [frame];
      }
      const records = raw.map((r, i) => parseRecordFields(r, frame.records !== undefined ? `records[${i}].` : '', enc, frame.records === undefined, valueDepthMax).record);
      return { type: 'produce', id, topic, partition, records };
    }
    case 'commit': {
      const topic = topicField(frame);
      let offsets: CommitRequest['offsets'];
      if (frame.offsets !== undefined) {
        if (!Array.isArray(frame.offsets)) throw bad('offsets: must be an array of {partition, offset}');
        offsets = frame.offsets.map((o, i) => {
          if (!isObject(o)) throw bad(`offsets[${i}]: must be {partition, offset}`);
          return { partition: nonNegativeInt(o.partition, `offsets[${i}].partition`), offset: nonNegativeInt(o.offset, `offsets[${i}].offset`) };
        });
      }
      return { type: 'commit', id, topic, offsets };
    }
    case 'ping':
      return { type: 'ping', id };
    default:
      throw bad(`type: unknown frame type ${JSON.stringify(frame.type)}; expected subscribe, unsubscribe, produce, commit or ping`);
  }
}

// --- server → client ------------------------------------------------------------------------

function text(bytes: Uint8Array | null, enc: TextEncodingName): string | null {
  if (bytes === null) return null;
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return enc === 'base64' ? b.toString('base64') : b.toString('utf8');
}

/** Serialises a frame (an answer, heartbeat...) in the socket's encoding. */
export function encodeFrame(encoding: Encoding, frame: Record<string, unknown>): string | Uint8Array {
  return encoding === 'json' ? JSON.stringify(frame) : cbor.encode(frame);
}

/** The shared `records` frame: encoded once per (encoding, text encoding) and sent to every socket at that position. */
export function encodeRecords(encoding: Encoding, enc: TextEncodingName, topic: string, partition: number, records: OutRecord[], decode?: ValueDecoder): string | Uint8Array {
  if (decode) {
    const frame = { type: 'records', topic, partition, records: records.map((r) => decodedRecordJson(r, enc, decode)) };
    return encoding === 'json' ? JSON.stringify(frame) : cbor.encode(frame);
  }
  if (encoding === 'json') {
    return JSON.stringify({
      type: 'records',
      topic,
      partition,
      records: records.map((r) => ({ offset: r.offset, timestamp: r.timestampMs, key: text(r.key, enc), value: text(r.value, enc), headers: r.headers.map((h) => [h.key, text(h.value, enc)]) })),
    });
  }
  return cbor.encode({
    type: 'records',
    topic,
    partition,
    records: records.map((r) => ({ offset: r.offset, timestamp: r.timestampMs, key: r.key, value: r.value, headers: r.headers.map((h) => [h.key, h.value]) })),
  });
}

/** Rough encoded size of a record, to cut frames near frameBytesMax without encoding twice. */
export function approxRecordBytes(r: OutRecord, enc: TextEncodingName): number {
  let n = 64 + (r.key?.byteLength ?? 0) + (r.value?.byteLength ?? 0);
  for (const h of r.headers) n += 8 + h.key.length + (h.value?.byteLength ?? 0);
  return enc === 'base64' ? Math.ceil(n * 1.34) : n;
}

export function errorFrame(id: RequestId | null, err: BrokerError): Record<string, unknown> {
  const code: ErrorName = err.code;
  return { type: 'error', id, code, kafkaCode: ERRORS[code].kafka, message: err.message };
}
