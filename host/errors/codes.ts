// One error table for the whole broker. A BrokerError carries a name from this table;
// each door translates it: Kafka error code on the wire, MQTT 5 reason code, WebSocket
// close code (connection-level faults only), HTTP status. `retriable` follows Kafka's
// classification so clients and the uplink know whether to try again.
//
// Who reads which column: the Kafka door `kafka` (host/kafka, through BrokerError.kafkaCode or a
// named row such as `ERRORS.NONE.kafka`: no numeric code literals there); the WebSocket gateway
// `ws` for every close it sends and `http` for every HTTP error status (gateway/ws); the MQTT
// gateway `mqtt`. `retriable` is read where the broker itself decides about a retry: the Kafka
// Produce answer for a retriable refusal with no Kafka code of its own (LIMIT_EXCEEDED →
// REQUEST_TIMED_OUT, so clients back off and resend) and the WebSocket tail's read loop. Kafka
// clients carry their own copy of Kafka's classification, so a Kafka code on the wire already
// tells them; test/unit/errors/codes.test.ts checks every row against Kafka's numbers.
//
// Kafka codes: the protocol's error table (kafka.apache.org/protocol#protocol_error_codes).
// MQTT reasons: MQTT 5.0 §2.4. WS close codes: RFC 6455 §7.4 (4000–4999 are ours).

export interface ErrorSpec {
  kafka: number;
  mqtt: number;
  ws: number;
  http: number;
  retriable: boolean;
}

const spec = (kafka: number, mqtt: number, ws: number, http: number, retriable = false): ErrorSpec => ({
  kafka,
  mqtt,
  ws,
  http,
  retriable,
});

// MQTT 5 reasons used below.
const MQTT_UNSPECIFIED = 0x80;
const MQTT_MALFORMED = 0x81;
const MQTT_PROTOCOL = 0x82;
const MQTT_IMPLEMENTATION = 0x83;
const MQTT_BAD_CREDENTIALS = 0x86;
const MQTT_NOT_AUTHORIZED = 0x87;
const MQTT_BAD_AUTH_METHOD = 0x8c;
const MQTT_UNAVAILABLE = 0x88;
const MQTT_BUSY = 0x89;
const MQTT_TOPIC_NAME_INVALID = 0x90;
const MQTT_PACKET_TOO_LARGE = 0x95;
const MQTT_SHUTTING_DOWN = 0x8b;
const MQTT_QUOTA = 0x97;
const MQTT_PAYLOAD_FORMAT = 0x99;

// WebSocket close codes used below.
const WS_NORMAL = 1000;
const WS_GOING_AWAY = 1001;
const WS_PROTOCOL = 1002;
const WS_INVALID_DATA = 1007;
const WS_POLICY = 1008;
const WS_TOO_BIG = 1009;
const WS_INTERNAL = 1011;
const WS_TRY_AGAIN = 1013;
const WS_BAD_REQUEST = 4400;
const WS_NOT_FOUND = 4404;
const WS_TOO_MANY = 4429;

export const ERRORS = {
  NONE: spec(0, 0x00, WS_NORMAL, 200),
  UNKNOWN_SERVER_ERROR: spec(-1, MQTT_UNSPECIFIED, WS_INTERNAL, 500),
  OFFSET_OUT_OF_RANGE: spec(1, MQTT_UNSPECIFIED, WS_BAD_REQUEST, 416),
  CORRUPT_MESSAGE: spec(2, MQTT_MALFORMED, WS_INVALID_DATA, 400, true),
  UNKNOWN_TOPIC_OR_PARTITION: spec(3, MQTT_TOPIC_NAME_INVALID, WS_NOT_FOUND, 404, true),
  INVALID_FETCH_SIZE: spec(4, MQTT_PROTOCOL, WS_BAD_REQUEST, 400),
  LEADER_NOT_AVAILABLE: spec(5, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 503, true),
  NOT_LEADER_OR_FOLLOWER: spec(6, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 503, true),
  REQUEST_TIMED_OUT: spec(7, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 504, true),
  // Kafka's name for a broker that cannot serve; here: the broker is shutting down (WS 1001 going away).
  BROKER_NOT_AVAILABLE: spec(8, MQTT_SHUTTING_DOWN, WS_GOING_AWAY, 503),
  MESSAGE_TOO_LARGE: spec(10, MQTT_PACKET_TOO_LARGE, WS_TOO_BIG, 413),
  OFFSET_METADATA_TOO_LARGE: spec(12, MQTT_PACKET_TOO_LARGE, WS_BAD_REQUEST, 413),
  NETWORK_EXCEPTION: spec(13, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 503, true),
  COORDINATOR_LOAD_IN_PROGRESS: spec(14, MQTT_BUSY, WS_TRY_AGAIN, 503, true),
  COORDINATOR_NOT_AVAILABLE: spec(15, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 503, true),
  NOT_COORDINATOR: spec(16, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 503, true),
  INVALID_TOPIC_EXCEPTION: spec(17, MQTT_TOPIC_NAME_INVALID, WS_BAD_REQUEST, 400),
  RECORD_LIST_TOO_LARGE: spec(18, MQTT_PACKET_TOO_LARGE, WS_TOO_BIG, 413),
  NOT_ENOUGH_REPLICAS: spec(19, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 503, true),
  // acks=all: the ISR fell below min.insync.replicas while the append waited for the HW (Kafka's
  // answer: the record is in the leader's log but was not acknowledged on enough replicas).
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: spec(20, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 503, true),
  INVALID_REQUIRED_ACKS: spec(21, MQTT_PROTOCOL, WS_BAD_REQUEST, 400),
  ILLEGAL_GENERATION: spec(22, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  INCONSISTENT_GROUP_PROTOCOL: spec(23, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  INVALID_GROUP_ID: spec(24, MQTT_PROTOCOL, WS_BAD_REQUEST, 400),
  UNKNOWN_MEMBER_ID: spec(25, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  INVALID_SESSION_TIMEOUT: spec(26, MQTT_PROTOCOL, WS_BAD_REQUEST, 400),
  REBALANCE_IN_PROGRESS: spec(27, MQTT_BUSY, WS_TRY_AGAIN, 409),
  INVALID_COMMIT_OFFSET_SIZE: spec(28, MQTT_PROTOCOL, WS_BAD_REQUEST, 400),
  TOPIC_AUTHORIZATION_FAILED: spec(29, MQTT_NOT_AUTHORIZED, WS_POLICY, 403),
  GROUP_AUTHORIZATION_FAILED: spec(30, MQTT_NOT_AUTHORIZED, WS_POLICY, 403),
  CLUSTER_AUTHORIZATION_FAILED: spec(31, MQTT_NOT_AUTHORIZED, WS_POLICY, 403),
  INVALID_TIMESTAMP: spec(32, MQTT_PAYLOAD_FORMAT, WS_BAD_REQUEST, 400),
  UNSUPPORTED_VERSION: spec(35, MQTT_PROTOCOL, WS_PROTOCOL, 400),
  TOPIC_ALREADY_EXISTS: spec(36, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  INVALID_PARTITIONS: spec(37, MQTT_PROTOCOL, WS_BAD_REQUEST, 400),
  INVALID_REPLICATION_FACTOR: spec(38, MQTT_PROTOCOL, WS_BAD_REQUEST, 400),
  INVALID_CONFIG: spec(40, MQTT_PROTOCOL, WS_BAD_REQUEST, 400),
  // The metadata quorum's leader (the controller) is elsewhere or unknown: a follower cannot
  // decide a metadata change itself; the message names the controller when it is known.
  NOT_CONTROLLER: spec(41, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 503, true),
  INVALID_REQUEST: spec(42, MQTT_PROTOCOL, WS_PROTOCOL, 400),
  // Authentication (Kafka SASL): a connection-level fault; MQTT 0x86 bad user name or password, WS
  // 1008 (policy violation: RFC 6455's code for a refusal on policy grounds, what issue 13 names).
  UNSUPPORTED_SASL_MECHANISM: spec(33, MQTT_BAD_AUTH_METHOD, WS_POLICY, 401),
  ILLEGAL_SASL_STATE: spec(34, MQTT_PROTOCOL, WS_PROTOCOL, 400),
  POLICY_VIOLATION: spec(44, MQTT_NOT_AUTHORIZED, WS_POLICY, 403),
  OUT_OF_ORDER_SEQUENCE_NUMBER: spec(45, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  DUPLICATE_SEQUENCE_NUMBER: spec(46, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  INVALID_PRODUCER_EPOCH: spec(47, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  KAFKA_STORAGE_ERROR: spec(56, MQTT_IMPLEMENTATION, WS_INTERNAL, 500, true),
  // Transaction coordinator answers the uplink's transactional producer reads (host/kafka/client/
  // transactions.ts); never sent by this broker (it has no coordinator), so the door columns are nominal.
  INVALID_TXN_STATE: spec(48, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  CONCURRENT_TRANSACTIONS: spec(51, MQTT_BUSY, WS_TRY_AGAIN, 409, true),
  // The coordinator knows the producer id under another transactional id (or none): a KIP-360
  // re-initialisation with a stale id gets it; the producer then starts fresh.
  INVALID_PRODUCER_ID_MAPPING: spec(49, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  // Another producer with the same transactional id took a newer epoch (KIP-588): this one stops.
  PRODUCER_FENCED: spec(90, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  // The data dir is below its free-space floor, or a write met ENOSPC/EDQUOT (docs/broker.md,
  // "Disk contract"). Kafka has no code of its own for a full disk: its brokers answer
  // KAFKA_STORAGE_ERROR (retriable), so do we. MQTT 5 §3.4.2.1 has no "disk full" reason; 0x97
  // "Quota exceeded" ("an implementation or administrative imposed limit has been exceeded")
  // is the nearest and tells a device to back off rather than that its packet was wrong.
  // HTTP 507 Insufficient Storage (RFC 4918 §11.5). WebSocket: a produce error frame, never a
  // close (1013 try again later is what a close would carry).
  STORAGE_FULL: spec(56, MQTT_QUOTA, WS_TRY_AGAIN, 507, true),
  // The uplink's byte budget for a link is full and the topic's on-full policy is `block` (or
  // `drop-lower-priority` found nothing lower to drop): records not yet forwarded to the central
  // cluster are kept, new ones refused until the link drains (docs/uplink.md, "Byte budget").
  // The same columns as STORAGE_FULL and for the same reasons: a Kafka client retries
  // KAFKA_STORAGE_ERROR (so it is held back, which is what `block` means), an MQTT device backs
  // off on 0x97 quota exceeded, HTTP 507.
  UPLINK_BACKLOG_FULL: spec(56, MQTT_QUOTA, WS_TRY_AGAIN, 507, true),
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: spec(53, MQTT_NOT_AUTHORIZED, WS_POLICY, 403),
  SECURITY_DISABLED: spec(54, MQTT_IMPLEMENTATION, WS_POLICY, 400),
  SASL_AUTHENTICATION_FAILED: spec(58, MQTT_BAD_CREDENTIALS, WS_POLICY, 401),
  UNKNOWN_PRODUCER_ID: spec(59, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  NON_EMPTY_GROUP: spec(68, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  GROUP_ID_NOT_FOUND: spec(69, MQTT_PROTOCOL, WS_NOT_FOUND, 404),
  // A request carried a leader epoch older than the partition's (KIP-320): refresh metadata.
  FENCED_LEADER_EPOCH: spec(74, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 503, true),
  // A request carried a leader epoch newer than this replica knows: its metadata is behind; retry.
  UNKNOWN_LEADER_EPOCH: spec(75, MQTT_UNAVAILABLE, WS_TRY_AGAIN, 503, true),
  UNSUPPORTED_COMPRESSION_TYPE: spec(76, MQTT_PAYLOAD_FORMAT, WS_INVALID_DATA, 415),
  MEMBER_ID_REQUIRED: spec(79, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  GROUP_MAX_SIZE_REACHED: spec(81, MQTT_QUOTA, WS_TOO_MANY, 429),
  FENCED_INSTANCE_ID: spec(82, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  INVALID_RECORD: spec(87, MQTT_PAYLOAD_FORMAT, WS_INVALID_DATA, 400),
  THROTTLING_QUOTA_EXCEEDED: spec(89, MQTT_QUOTA, WS_TOO_MANY, 429, true),
  RESOURCE_NOT_FOUND: spec(91, MQTT_UNSPECIFIED, WS_NOT_FOUND, 404),
  DUPLICATE_RESOURCE: spec(92, MQTT_PROTOCOL, WS_BAD_REQUEST, 409),
  UNACCEPTABLE_CREDENTIAL: spec(93, MQTT_BAD_CREDENTIALS, WS_BAD_REQUEST, 400),
  UNKNOWN_TOPIC_ID: spec(100, MQTT_TOPIC_NAME_INVALID, WS_NOT_FOUND, 404, true),
  // Not Kafka errors: limits and access at the gateways. Kafka code -1 where no better exists.
  LIMIT_EXCEEDED: spec(-1, MQTT_QUOTA, WS_TOO_MANY, 429, true),
  NOT_AUTHORIZED: spec(29, MQTT_NOT_AUTHORIZED, WS_POLICY, 401),
  // A client certificate a mutual-TLS door does not accept (none sent, another CA's, expired,
  // revoked in crlFile). Kafka and MQTT refuse it in the TLS handshake (Kafka has no error code
  // for it: its SslAuthenticationException never reaches the wire); the HTTP door
  // (http.tls.requestCert) answers 401 / WebSocket close 1008 naming why, as nginx does.
  CLIENT_CERTIFICATE_REFUSED: spec(-1, MQTT_BAD_CREDENTIALS, WS_POLICY, 401),
  // A state-changing HTTP request whose body is not JSON (CSRF: browsers send text/plain and
  // form bodies cross-site without a preflight); never a WebSocket close or an MQTT answer.
  UNSUPPORTED_MEDIA_TYPE: spec(-1, MQTT_PAYLOAD_FORMAT, WS_INVALID_DATA, 415),
  // A WebSocket upgrade from a browser page on an origin not allowed (security.allowedOrigins):
  // HTTP 403 before the upgrade; 1008 is the policy close a socket would carry.
  ORIGIN_NOT_ALLOWED: spec(-1, MQTT_NOT_AUTHORIZED, WS_POLICY, 403),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorName = keyof typeof ERRORS;

const byKafkaCode = new Map<number, ErrorName>();
for (const [name, s] of Object.entries(ERRORS) as [ErrorName, ErrorSpec][]) {
  if (!byKafkaCode.has(s.kafka)) byKafkaCode.set(s.kafka, name);
}

/** MQTT 5 §3.4.2.1 / §3.5.2.1: the only reason codes a PUBACK or PUBREC may carry. */
const MQTT_ACK_REASONS = new Set([0x00, 0x10, MQTT_UNSPECIFIED, MQTT_IMPLEMENTATION, MQTT_NOT_AUTHORIZED, MQTT_TOPIC_NAME_INVALID, 0x91, MQTT_QUOTA, MQTT_PAYLOAD_FORMAT]);

/**
 * The reason a PUBACK/PUBREC carries for an error: the row's MQTT code where an acknowledgement
 * may carry it, else 0x80 Unspecified error (e.g. 0x88 Server unavailable is a CONNACK code:
 * a publish refused because no leader answered is still refused, with a code the client parses).
 */
export function mqttAckReason(name: ErrorName): number {
  const code = ERRORS[name].mqtt;
  return MQTT_ACK_REASONS.has(code) ? code : MQTT_UNSPECIFIED;
}

/** MQTT 5 §3.14.2.1: the reason codes a DISCONNECT may carry (0x88 and 0x86, CONNACK codes, are not among them). */
const MQTT_DISCONNECT_REASONS = new Set([
  0x00, 0x04, MQTT_UNSPECIFIED, MQTT_MALFORMED, MQTT_PROTOCOL, MQTT_IMPLEMENTATION, MQTT_NOT_AUTHORIZED, MQTT_BUSY, MQTT_SHUTTING_DOWN, 0x8d, 0x8e, 0x8f,
  MQTT_TOPIC_NAME_INVALID, 0x93, 0x94, MQTT_PACKET_TOO_LARGE, 0x96, MQTT_QUOTA, 0x98, MQTT_PAYLOAD_FORMAT, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2,
]);

/** The reason a server's DISCONNECT carries for an error: the row's MQTT code where DISCONNECT allows it, else 0x80. */
export function mqttDisconnectReason(name: ErrorName): number {
  const code = ERRORS[name].mqtt;
  return MQTT_DISCONNECT_REASONS.has(code) ? code : MQTT_UNSPECIFIED;
}

/** The table's name for a Kafka error code (UNKNOWN_SERVER_ERROR for codes we never produce). */
export function errorNameForKafkaCode(code: number): ErrorName {
  return byKafkaCode.get(code) ?? 'UNKNOWN_SERVER_ERROR';
}

// --- the schema registry's REST errors ------------------------------------------------------
// Confluent Schema Registry answers `{error_code, message}` where error_code is the HTTP status
// followed by two digits of its own (io.confluent.kafka.schemaregistry.rest.exceptions.Errors);
// clients (@kafkajs/confluent-schema-registry, confluent_kafka) read these numbers, so they are
// Confluent's, not ours. host/schemas reads every answer from a named row here.

export interface RegistryErrorSpec {
  /** Confluent's error_code in the JSON body. */
  code: number;
  /** The HTTP status it travels with. */
  http: number;
}

const reg = (code: number, http: number): RegistryErrorSpec => ({ code, http });

export const REGISTRY_ERRORS = {
  /** No, bad or rate-limited credentials (Confluent's security plugin: 40101). */
  UNAUTHORIZED: reg(40101, 401),
  /** The ACLs refuse the operation (Confluent's security plugin: 40301). */
  FORBIDDEN: reg(40301, 403),
  SUBJECT_NOT_FOUND: reg(40401, 404),
  VERSION_NOT_FOUND: reg(40402, 404),
  SCHEMA_NOT_FOUND: reg(40403, 404),
  SUBJECT_SOFT_DELETED: reg(40404, 404),
  SUBJECT_NOT_SOFT_DELETED: reg(40405, 404),
  SCHEMA_VERSION_SOFT_DELETED: reg(40406, 404),
  SCHEMA_VERSION_NOT_SOFT_DELETED: reg(40407, 404),
  SUBJECT_COMPATIBILITY_NOT_CONFIGURED: reg(40408, 404),
  SUBJECT_MODE_NOT_CONFIGURED: reg(40409, 404),
  /** Not Confluent's: an unknown path or method (Confluent answers a bare 404/405 here). */
  NOT_FOUND: reg(404, 404),
  METHOD_NOT_ALLOWED: reg(405, 405),
  INCOMPATIBLE_SCHEMA: reg(409, 409),
  /** The body is not JSON or misses a field (Confluent: 422 with the parse message). */
  UNPROCESSABLE: reg(422, 422),
  INVALID_SCHEMA: reg(42201, 422),
  INVALID_VERSION: reg(42202, 422),
  INVALID_COMPATIBILITY_LEVEL: reg(42203, 422),
  INVALID_MODE: reg(42204, 422),
  OPERATION_NOT_PERMITTED: reg(42205, 422),
  REFERENCE_EXISTS: reg(42206, 422),
  /** A registry limit (subjects, versions, schema bytes, reference depth). Ours: 422 with a 5th digit pair Confluent leaves unused. */
  LIMIT_EXCEEDED: reg(42299, 422),
  /** Request body larger than the registry accepts. */
  BODY_TOO_LARGE: reg(413, 413),
  /** Ours: requestsInFlightMax reached; retry (sent with Retry-After). */
  OVERLOADED: reg(503, 503),
  STORE_ERROR: reg(50001, 500),
  OPERATION_TIMEOUT: reg(50002, 500),
} as const satisfies Record<string, RegistryErrorSpec>;

export type RegistryErrorName = keyof typeof REGISTRY_ERRORS;
