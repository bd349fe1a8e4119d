// Purpose: the one error table (host/errors/codes.ts) is complete and true: every row has every
// column with a value in range, the Kafka codes are Kafka's (checked against kafkajs's own table,
// a client nobody here wrote, and the names in Kafka's message specs), the MQTT reasons are
// MQTT 5 reason codes, the WebSocket close codes are sendable ones, and the doors read the table
// instead of writing codes as numbers.
import t from 'tap';
import { createRequire } from 'node:module';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ERRORS, errorNameForKafkaCode, mqttAckReason, mqttDisconnectReason, type ErrorName, type ErrorSpec } from '../../../host/errors/index.js';
import { projectRoot } from '../../helpers/index.js';

const require = createRequire(import.meta.url);
const { errorCodes: kafkajsErrors } = require('kafkajs/src/protocol/error.js') as {
  errorCodes: Array<{ type: string; code: number; retriable: boolean }>;
};

const rows = Object.entries(ERRORS) as Array<[ErrorName, ErrorSpec]>;

/** Rows of ours, not Kafka's: the gateways' limits and access; the Kafka code is the row they borrow. */
const GATEWAY_ROWS: Partial<Record<ErrorName, number>> = {
  LIMIT_EXCEEDED: -1, // no Kafka error for "broker busy": UNKNOWN_SERVER_ERROR's code (Produce answers REQUEST_TIMED_OUT)
  NOT_AUTHORIZED: 29, // TOPIC_AUTHORIZATION_FAILED
  STORAGE_FULL: 56, // KAFKA_STORAGE_ERROR: what a Kafka broker answers for a full log dir
  UPLINK_BACKLOG_FULL: 56, // KAFKA_STORAGE_ERROR, retriable: a Kafka producer is held back while the uplink's budget is full
  UNSUPPORTED_MEDIA_TYPE: -1, // HTTP only (CSRF: a non-JSON body): never on the Kafka wire
  ORIGIN_NOT_ALLOWED: -1, // HTTP/WebSocket upgrades only (a cross-origin browser page): never on the Kafka wire
  CLIENT_CERTIFICATE_REFUSED: -1, // HTTP/WebSocket on a mutual-TLS listener; Kafka refuses in the handshake, with no code
};
/** Kafka renamed these after kafkajs copied its table (kafkajs name → Kafka's current name). */
const RENAMED: Record<string, string> = {
  UNKNOWN: 'UNKNOWN_SERVER_ERROR',
  NOT_LEADER_FOR_PARTITION: 'NOT_LEADER_OR_FOLLOWER',
  GROUP_LOAD_IN_PROGRESS: 'COORDINATOR_LOAD_IN_PROGRESS',
  GROUP_COORDINATOR_NOT_AVAILABLE: 'COORDINATOR_NOT_AVAILABLE',
  NOT_COORDINATOR_FOR_GROUP: 'NOT_COORDINATOR',
};
/**
 * Kafka codes newer than kafkajs's table, from kafka.apache.org/protocol#protocol_error_codes,
 * with Kafka's retriable flag (the exception's base class: RetriableException or InvalidMetadataException).
 */
const NEWER_THAN_KAFKAJS: Record<string, { code: number; retriable: boolean }> = {
  THROTTLING_QUOTA_EXCEEDED: { code: 89, retriable: true },
  UNKNOWN_TOPIC_ID: { code: 100, retriable: true },
  RESOURCE_NOT_FOUND: { code: 91, retriable: false },
  DUPLICATE_RESOURCE: { code: 92, retriable: false },
  UNACCEPTABLE_CREDENTIAL: { code: 93, retriable: false },
  PRODUCER_FENCED: { code: 90, retriable: false },
};
const SUCCESS: ErrorName = 'NONE';

// MQTT 5.0 §2.4: reason codes ≥ 0x80 are failures; these are the ones the spec defines.
const MQTT5_FAILURE_REASONS = new Set([
  0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
  0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2,
]);
// RFC 6455 §7.4.1 and the IANA registry: codes an endpoint may send (1004–1006 and 1015 must not be sent).
const WS_STANDARD_CLOSE = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]);

t.test('error table: every row has every column, with the right type', async (t) => {
  t.ok(rows.length >= 50, `${rows.length} rows`);
  for (const [name, s] of rows) {
    t.same(Object.keys(s).sort(), ['http', 'kafka', 'mqtt', 'retriable', 'ws'], `${name}: columns`);
    for (const column of ['kafka', 'mqtt', 'ws', 'http'] as const) t.ok(Number.isInteger(s[column]), `${name}.${column} is an integer`);
    t.equal(typeof s.retriable, 'boolean', `${name}.retriable is a boolean`);
  }
});

t.test('error table: the success row is 0 / 0x00 / 1000 / 200 and no failure row uses a success value', async (t) => {
  t.same(ERRORS[SUCCESS], { kafka: 0, mqtt: 0x00, ws: 1000, http: 200, retriable: false });
  for (const [name, s] of rows) {
    if (name === SUCCESS) continue;
    t.not(s.kafka, 0, `${name}: Kafka code is not NONE`);
    t.ok(s.mqtt >= 0x80 && MQTT5_FAILURE_REASONS.has(s.mqtt), `${name}: MQTT reason 0x${s.mqtt.toString(16)} is an MQTT 5 failure reason`);
    t.ok(WS_STANDARD_CLOSE.has(s.ws) || (s.ws >= 4000 && s.ws <= 4999), `${name}: close code ${s.ws} is a sendable standard code or ours (4000–4999)`);
    t.not(s.ws, 1000, `${name}: a failure does not close with 1000 (normal)`);
    t.ok(s.http >= 400 && s.http <= 599, `${name}: HTTP status ${s.http} is an error status`);
  }
});

t.test("error table: Kafka codes and retriable flags are Kafka's (kafkajs's table and the protocol page)", async (t) => {
  const kafkajs = new Map(kafkajsErrors.map((e) => [e.code, { name: RENAMED[e.type] ?? e.type, retriable: e.retriable }]));
  t.ok(kafkajs.size > 50, `kafkajs knows ${kafkajs.size} codes`);
  for (const [name, s] of rows) {
    t.ok(s.kafka >= -1 && s.kafka <= 0x7fff, `${name}: ${s.kafka} fits an int16 error code`);
    if (name === SUCCESS) continue;
    const borrowed = GATEWAY_ROWS[name];
    if (borrowed !== undefined) {
      t.equal(s.kafka, borrowed, `${name}: a gateway row borrowing Kafka code ${borrowed}`);
      continue;
    }
    const known = kafkajs.get(s.kafka);
    const newer = NEWER_THAN_KAFKAJS[name];
    if (newer) {
      t.notOk(known, `${name}: kafkajs does not know code ${s.kafka} (else check it there)`);
      t.same({ code: s.kafka, retriable: s.retriable }, newer, `${name}: Kafka's code and retriable flag`);
    } else {
      t.equal(known?.name, name, `${name}: Kafka code ${s.kafka} is ${known?.name ?? 'unknown to kafkajs'}`);
      t.equal(s.retriable, known?.retriable, `${name}: retriable as Kafka classifies it`);
    }
  }
});

const SPECS_DIR = '/work/shared/reference/kafka-message-specs';
t.test("error table: the error names Kafka's message specs mention are spelled as in the table", { skip: existsSync(SPECS_DIR) ? false : `no ${SPECS_DIR} here` }, async (t) => {
  const text = readdirSync(SPECS_DIR).filter((f) => f.endsWith('.json')).map((f) => readFileSync(join(SPECS_DIR, f), 'utf8')).join('\n');
  const mentioned = new Set(text.match(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g) ?? []);
  const kafkaNames = new Set([...kafkajsErrors.map((e) => RENAMED[e.type] ?? e.type), ...Object.keys(NEWER_THAN_KAFKAJS)]);
  const inTable = rows.map(([name]) => name).filter((name) => mentioned.has(name));
  t.ok(inTable.length >= 10, `${inTable.length} table rows named in the specs: ${inTable.join(', ')}`);
  for (const name of inTable) t.ok(kafkaNames.has(name) && GATEWAY_ROWS[name] === undefined, `${name}: a Kafka error name`);
  // Every Kafka-named row is a name Kafka uses (kafkajs or the specs): catches a misspelt row.
  for (const [name] of rows) if (GATEWAY_ROWS[name] === undefined && name !== SUCCESS) t.ok(kafkaNames.has(name) || mentioned.has(name), `${name}: Kafka knows this name`);
});

t.test('error table: a Kafka code read back names a row with that code', async (t) => {
  for (const [name, s] of rows) t.equal(ERRORS[errorNameForKafkaCode(s.kafka)].kafka, s.kafka, `${name} (${s.kafka})`);
  t.equal(errorNameForKafkaCode(12345), 'UNKNOWN_SERVER_ERROR', 'a code we never produce');
});

/** Every .ts file under a folder of the project. */
function sourcesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(projectRoot, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(join(projectRoot, rel)).isDirectory()) out.push(...sourcesUnder(rel));
    else if (rel.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** Lines (comments dropped) matching any pattern, as `file:line: text`. */
function literalCodes(files: string[], patterns: RegExp[]): string[] {
  const out: string[] = [];
  for (const file of files) {
    readFileSync(join(projectRoot, file), 'utf8').split('\n').forEach((line, i) => {
      if (/^\s*(?:\*|\/\*)/.test(line)) return; // a block comment's line
      const code = line.replace(/\/\/.*$/, '').replace(/\/\*.*?\*\//g, '');
      if (patterns.some((p) => p.test(code))) out.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  return out;
}

t.test('error table: the Kafka door writes no error code as a number (named rows only)', async (t) => {
  const files = sourcesUnder('host/kafka').filter((f) => !f.startsWith('host/kafka/protocol/'));
  t.ok(files.length > 20, `${files.length} files`);
  const rowConst = new RegExp(`\\bconst (?:${Object.keys(ERRORS).join('|')})\\w* = -?\\d`);
  const found = literalCodes(files, [
    /\b[eE]rrorCode\s*(?::|===|!==|=)\s*-?\d/, // errorCode: 0, out.errorCode === 1
    /\bcode\s*(?:===|!==)\s*-?\d/, // code === -1
    /kafkaCode\([^)]*\)\s*(?:===|!==|:)\s*-?\d/, // kafkaCode(err) === -1, … ? kafkaCode(e) : 0
    /\b[A-Z_]*CODE[A-Z_]*\s*=\s*-?\d/, // INVALID_REQUEST_CODE = 42
    /\bint16\(\s*-?\d+\s*\)/, // w.int16(35)
    rowConst, // const REQUEST_TIMED_OUT = 7
  ]);
  t.same(found, [], 'numeric error codes in host/kafka');
});

t.test('error table: the WebSocket gateway closes with codes from the table only', async (t) => {
  const files = sourcesUnder('gateway/ws');
  const found = literalCodes(files, [/\.(?:end|close)\(\s*\d/, /\bcode:\s*\d/, /\w\s*:\s*(?:100[0-3]|10(?:0[7-9]|1[0-4]))\b/, /\b44(?:0[0-9]|29)\b/]);
  t.same(found, [], 'numeric close codes in gateway/ws');
});

t.test('error table: a PUBACK/PUBREC reason is always one an acknowledgement may carry (MQTT 5 §3.4.2.1)', async (t) => {
  const ackCodes = new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]);
  for (const name of Object.keys(ERRORS) as Array<keyof typeof ERRORS>) t.ok(ackCodes.has(mqttAckReason(name)), `${name}: 0x${mqttAckReason(name).toString(16)}`);
  t.equal(mqttAckReason('NOT_ENOUGH_REPLICAS'), 0x80, 'server unavailable (0x88, a CONNACK code) becomes unspecified error');
  t.equal(mqttAckReason('LIMIT_EXCEEDED'), 0x97, 'a row whose code an ack may carry keeps it');
});

t.test('error table: a server DISCONNECT reason is always one DISCONNECT may carry (MQTT 5 §3.14.2.1)', async (t) => {
  const disconnectCodes = new Set([0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2]);
  for (const name of Object.keys(ERRORS) as Array<keyof typeof ERRORS>) t.ok(disconnectCodes.has(mqttDisconnectReason(name)), `${name}: 0x${mqttDisconnectReason(name).toString(16)}`);
  t.equal(mqttDisconnectReason('NOT_ENOUGH_REPLICAS'), 0x80, 'server unavailable (0x88, a CONNACK code) becomes unspecified error');
  t.equal(mqttDisconnectReason('LIMIT_EXCEEDED'), 0x97, 'quota exceeded is a DISCONNECT code and is kept');
});
