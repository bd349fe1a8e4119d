// Options of the MQTT gateway: every limit in one place, each default with its reason, and the
// schema of the `mqtt` config section. `validateMqttOptions` runs at start and names the key and
// the value it refuses.
import { listenerSchemas, tlsRefusal, type ListenerOptions } from '../../host/config/listener.js';
import { boolean, checkOptions, int32, integer, list, object, oneOf, port, section, string, type KeySchema, type SectionSchema } from '../../host/config/schema.js';

export interface MqttRoute {
  /** MQTT topic filter (`+`, `#` allowed) this route applies to. */
  match: string;
  /** Stream topic template: literal text plus `{1}`..`{9}` (MQTT topic levels, 1-based) and `{clientId}`; the result is sanitised to Kafka's legal characters. */
  topic: string;
  /** Record key template (same placeholders plus `{topic}` = the full MQTT topic). Default `{topic}`. */
  key?: string;
  /** Fixed partition; by default the partition comes from the key (Kafka's murmur2 partitioner). */
  partition?: number;
}

export interface MqttReverseRoute {
  /** Stream topic whose records are delivered to MQTT subscribers. */
  topic: string;
  /** MQTT topic template for each record: `{key}` (record key as UTF-8), `{topic}` (stream topic), `{partition}`. */
  mqttTopic: string;
}

export interface MqttUser {
  username: string;
  /** `scrypt$N$r$p$<salt base64>$<hash base64>` as produced by `hashPassword` (gateway/mqtt/auth.ts). */
  passwordHash: string;
  /** MQTT topic filters this user may publish to; `{username}` and `{clientId}` are substituted. */
  publish: string[];
  /** MQTT topic filters this user may subscribe to (a subscription must lie inside one of them). */
  subscribe: string[];
}

/** Host, port (MQTT over TCP), connectionsMax (TCP and WebSocket together) and tls are the listener's. */
export interface MqttGatewayOptions extends ListenerOptions {
  /** MQTT over WebSocket; 0 = any free port; -1 = off. */
  wsPort: number;
  wsPath: string;

  routes: MqttRoute[];
  /** First MQTT level → stream topic, full MQTT topic → key, when no route matches. */
  defaultRoute: boolean;
  /** A publish matching no route (and no default): 'mqtt-only' = delivered to live MQTT subscribers, not stored; 'disconnect' = the client is disconnected (MQTT 3.1.1 has no negative PUBACK). Both are logged and counted. */
  unrouted: 'mqtt-only' | 'disconnect';
  headers: { topic: boolean; qos: boolean; retain: boolean; clientId: boolean };

  /** Records appended by others (Kafka, WebSocket, uplink) reach MQTT subscribers. */
  reverse: boolean;
  reverseRoutes: MqttReverseRoute[];
  /** QoS at which reverse-routed records are published to subscribers (capped by each subscription's QoS). */
  reverseQos: 0 | 1;
  /** Stream topics tailed at most at once (a `#` subscription would otherwise tail every topic). */
  tailTopicsMax: number;
  /** Bytes read per partition per tail read. */
  tailReadBytesMax: number;
  /** How often a wildcard subscription looks for newly created stream topics. */
  tailRescanMs: number;

  /** Append batching: wait this long for more publishes when no append is in flight. */
  lingerMs: number;
  /** A stream topic's next append (group commit) starts at least this long after its previous one started, unless its batch is full (append.ts). */
  commitLingerMs: number;
  /** Appends (produce calls) in flight per stream topic; 2 overlaps writing the next batch with the previous fsync. */
  appendsInFlightMax: number;
  batchBytesMax: number;
  batchRecordsMax: number;

  // --- limits ------------------------------------------------------------------------------
  /** Largest MQTT packet accepted (fixed header excluded), checked before it is buffered. */
  packetBytesMax: number;
  clientIdBytesMax: number;
  /** Unacknowledged QoS 1/2 publishes per connection before its socket stops being read. */
  inflightMax: number;
  /** Bytes of a connection's stream handed to aedes' parser per read (a packet larger than this still arrives whole, over several reads). */
  readBytesMax: number;
  /** Memory held by one connection's publishes not yet appended (their bytes and each record's heap) before its socket stops being read (QoS 0 included). */
  pendingBytesPerConnectionMax: number;
  /** Memory held by publishes not yet appended (their bytes and each record's heap), all connections together, before every socket stops being read. */
  pendingBytesTotalMax: number;
  /** Bytes queued toward one client before its socket stops being read. */
  outgoingBytesMax: number;
  /** A client whose outgoing buffer does not drain within this time is disconnected. */
  drainTimeoutMs: number;
  /** Messages waiting in aedes' delivery queue before every connection stops handing it publishes (resumed below half). */
  deliveriesQueuedMax: number;
  /** Publishes per second per connection (token bucket); 0 = no limit. Excess is delayed, not dropped. */
  publishRatePerSecond: number;
  publishBurst: number;
  connectTimeoutMs: number;
  /** Largest keep-alive a client may ask for; 0 = any. A CONNECT above it is refused (return code 2). */
  keepaliveMaxSeconds: number;
  /** QoS 2 publishes awaiting PUBREL per connection (aedes disconnects beyond). */
  qos2InflightInboundMax: number;
  /** A cluster: how often the delivery positions of connected persistent sessions are written when they moved (bounds what a takeover from a dead node redelivers). */
  sessionCheckpointMs: number;
  /** Levels (`/`-separated) of a topic name or filter; a publish beyond is refused (MQTT 5: reason 0x90). At most 100, the matcher's own ceiling. */
  topicLevelsMax: number;
  /** MQTT 5: Topic Alias Maximum offered to clients for their publishes (0 = none). */
  topicAliasMax: number;
  /** MQTT 5: largest Session Expiry Interval a client may ask for, in seconds (a larger one is lowered and the CONNACK says so). */
  sessionExpiryMaxSeconds: number;
  /** MQTT 5: delayed wills and expiring sessions held at once (aedes `pendingSessionsLimit`); beyond, they end at once. */
  pendingSessionsMax: number;
  /** Bytes waiting in the socket toward one client beyond which QoS 0 deliveries to it are dropped (counted) and QoS 1/2 ones wait in its queue. */
  deliveryBytesQueuedMax: number;
  /** QoS 1/2 deliveries queued toward one client while its Receive Maximum window is full; beyond, the oldest QoS 0 is dropped first, then the client is disconnected (counted). */
  deliveryQueueMax: number;
  /** MQTT 5: Response Information returned to a client that asks for it (empty = none); `{clientId}` is substituted. */
  responseInformation: string;

  // --- persistent state ---------------------------------------------------------------------
  retainedMessagesMax: number;
  persistentSessionsMax: number;
  offlineMessagesPerClientMax: number;

  auth: {
    enabled: boolean;
    users: MqttUser[];
  };

  // --- shared subscriptions: $share/{group}/{filter} as consumer group {group} (shared-subscriptions.ts) ---
  /** `$share/{group}/{filter}` members join consumer group `{group}`; false = such SUBSCRIBEs are refused (0x9E in MQTT 5, 0x80 before). */
  sharedSubscriptions: boolean;
  /** Shared memberships (client × share name) this gateway holds; past it the SUBSCRIBE is refused (0x97 / 0x80). */
  sharedMembersMax: number;
  /** Deliveries awaiting PUBACK/PUBCOMP per shared membership; at the limit its reader waits. */
  sharedInflightMax: number;
  /** How often a shared membership commits the group offsets it has finished. */
  sharedCommitIntervalMs: number;
  /** Group session timeout of a shared membership (must lie within the coordinator's min/max). */
  sharedSessionTimeoutMs: number;
  /** On a rebalance or an UNSUBSCRIBE, how long in-flight deliveries may still be acknowledged before the commit. */
  sharedAckWaitMs: number;
  /** Bytes per read of a shared membership (one read is held decoded per membership). */
  sharedReadBytesMax: number;
}

export const defaultMqttGatewayOptions: MqttGatewayOptions = {
  host: '0.0.0.0', // gateways are reached by devices on the LAN
  port: 1883, // IANA port for MQTT
  wsPort: 8083, // the de-facto MQTT-over-WebSocket port (EMQX, HiveMQ)
  wsPath: '/mqtt', // what mqtt.js and most dashboards use

  routes: [], // the default route covers the common site/device/metric layout
  defaultRoute: true, // a new user publishes and finds the data without configuring anything
  unrouted: 'mqtt-only', // still an MQTT broker for topics not meant to be stored
  headers: { topic: true, qos: true, retain: true, clientId: true }, // a consumer can reconstruct the MQTT message

  reverse: true, // the cloud can send a command to one device
  reverseRoutes: [], // records keyed by an MQTT topic need none
  reverseQos: 1, // persistent sessions queue commands while a device is offline
  tailTopicsMax: 256, // a subscriber of # tails every topic; bounded so it cannot open thousands of readers
  tailReadBytesMax: 256 * 1024, // one read of 256 KiB serves thousands of small records; 256 tails × 256 KiB = 64 MiB of the memory budget
  tailRescanMs: 2_000, // new topics reach subscribers of # within a couple of seconds

  lingerMs: 1, // enough for other devices' publishes of the same tick to join one append
  commitLingerMs: 2, // at a paced rate several ticks share one append and one fsync; adds at most ~2 ms to a PUBACK (docs/performance.md #9 c)
  appendsInFlightMax: 1, // the log's group commit already batches fsyncs; 2 measured no faster here
  batchBytesMax: 512 * 1024, // half of Kafka's default max.message.bytes (1 MiB)
  batchRecordsMax: 4_096, // one wasm call and one fsync for thousands of small readings

  connectionsMax: 10_000, // a Pi gateway serves hundreds of devices; each idle connection costs ~10 KiB
  packetBytesMax: 256 * 1024, // sensor messages are small; stays below max.message.bytes so a publish always fits one batch
  clientIdBytesMax: 256, // generous beyond MQTT 3.1.1's 23 guaranteed bytes, still bounded
  inflightMax: 100, // mqtt.js and paho default to far fewer in flight
  readBytesMax: 8 * 1024, // ~40 small publishes parsed at once per connection, not a whole socket read of 64 KiB (~350)
  pendingBytesPerConnectionMax: 1 << 20, // one flooding device cannot hold more than 1 MiB of broker memory
  pendingBytesTotalMax: 4 << 20, // all devices together: ~4,000 small publishes (~1 KiB of heap each), a full batch waiting behind the one being written
  outgoingBytesMax: 1 << 20, // a subscriber that reads slowly stops its own publishes, not the broker
  drainTimeoutMs: 30_000, // a frozen client is dropped rather than buffered forever
  deliveriesQueuedMax: 1_000, // ~1 MiB of small readings; measured: 25,800 queued (200+ MiB heap) without it, half the CPU per message with it
  publishRatePerSecond: 0, // off by default: devices differ too much for one number
  publishBurst: 100, // with a rate: short bursts (a reconnect flushing its queue) pass untouched
  connectTimeoutMs: 10_000, // a socket that never sends CONNECT is closed
  keepaliveMaxSeconds: 0, // any keep-alive; set it to force devices to be detected dead sooner
  qos2InflightInboundMax: 1_000, // aedes' own default; QoS 2 is rare at the edge
  sessionCheckpointMs: 10_000, // a cluster: a node's death redelivers at most ~10 s of acknowledged messages; one small replicated write per connected persistent session per period at most
  topicLevelsMax: 100, // aedes' matcher (qlobber) cannot go beyond 100 levels; device topics use fewer than 10
  topicAliasMax: 64, // a device publishes to a handful of topics; each alias costs one map entry per connection
  sessionExpiryMaxSeconds: 7 * 24 * 3600, // a week: a device offline longer resubscribes; bounds how long a session pins state
  pendingSessionsMax: 10_000, // matches persistentSessionsMax
  deliveryBytesQueuedMax: 512 * 1024, // a subscriber that stops reading costs at most half a MiB beyond the kernel buffers, then misses QoS 0 messages
  deliveryQueueMax: 1_000, // matches offlineMessagesPerClientMax: what a slow client may owe before it is dropped
  responseInformation: '', // request/response is application-specific; off unless configured

  retainedMessagesMax: 100_000, // one retained status per device for a large site
  persistentSessionsMax: 10_000, // matches connectionsMax
  offlineMessagesPerClientMax: 1_000, // commands for an offline device; older devices catch up from the log

  auth: { enabled: false, users: [] }, // loopback and lab setups need nothing; documented for production

  sharedSubscriptions: true, // MQTT 5's way to share a stream among devices, and the door to Kafka consumer groups
  sharedMembersMax: 1_000, // a large site's devices; each holds a group member and one decoded read
  sharedInflightMax: 32, // keeps a device busy over a slow link; a device that stops acknowledging holds at most 32 records
  sharedCommitIntervalMs: 1_000, // one fsynced commit per second per member; a crash redelivers at most a second of acknowledged records
  sharedSessionTimeoutMs: 10_000, // members of a crashed gateway expire within 10 s; above the coordinator's 6 s minimum
  sharedAckWaitMs: 1_000, // most acknowledgements arrive within a round trip; a rebalance is not held up longer
  sharedReadBytesMax: 64 * 1024, // hundreds of readings per read; 1,000 members hold at most 64 MiB decoded

  tls: null, // plain TCP until certificate files are named; one block serves MQTT over TCP (mqtts) and over WebSocket (wss)
};

const topicFilter = string(1);
const routeSchema: KeySchema = object({ match: topicFilter, topic: string(1), key: string(1), partition: integer(0, 999_999) }, ['match', 'topic']);
const reverseRouteSchema: KeySchema = object({ topic: string(1), mqttTopic: string(1) }, ['topic', 'mqttTopic']);
const userSchema: KeySchema = object(
  { username: string(1), passwordHash: string(1), publish: list(topicFilter), subscribe: list(topicFilter) },
  ['username', 'passwordHash', 'publish', 'subscribe'],
);

/** What each key of the `mqtt` config section allows (host/config/schema.ts); cross-key rules stay in validateMqttOptions. */
export const mqttSchema: SectionSchema = section({
  ...listenerSchemas(),
  wsPort: port(),
  wsPath: { type: 'string', pattern: '^/', 'x-allowed': 'a path starting with "/"' },
  routes: list(routeSchema, 'a list of { match, topic, key?, partition? } (docs/mqtt.md)'),
  defaultRoute: boolean(),
  unrouted: oneOf('mqtt-only', 'disconnect'),
  headers: object({ topic: boolean(), qos: boolean(), retain: boolean(), clientId: boolean() }, [], 'a mapping of topic, qos, retain, clientId to true or false'),
  reverse: boolean(),
  reverseRoutes: list(reverseRouteSchema, 'a list of { topic, mqttTopic }'),
  reverseQos: oneOf(0, 1),
  tailTopicsMax: int32(0),
  tailReadBytesMax: int32(1024),
  tailRescanMs: int32(10),
  lingerMs: integer(0, 1000),
  commitLingerMs: integer(0, 100),
  appendsInFlightMax: integer(1, 16),
  batchBytesMax: int32(1024),
  batchRecordsMax: int32(1),
  packetBytesMax: integer(64, 268_435_455),
  clientIdBytesMax: integer(23, 65535),
  inflightMax: integer(1, 65535),
  readBytesMax: int32(1024),
  pendingBytesPerConnectionMax: int32(1024),
  pendingBytesTotalMax: integer(1024),
  outgoingBytesMax: int32(1024),
  drainTimeoutMs: int32(0),
  deliveriesQueuedMax: int32(1),
  publishRatePerSecond: int32(0),
  publishBurst: int32(1),
  connectTimeoutMs: int32(100),
  keepaliveMaxSeconds: integer(0, 65535),
  qos2InflightInboundMax: int32(1),
  sessionCheckpointMs: int32(100),
  topicLevelsMax: integer(1, 100),
  topicAliasMax: integer(0, 65535),
  sessionExpiryMaxSeconds: integer(0, 0xffffffff),
  pendingSessionsMax: int32(1),
  deliveryBytesQueuedMax: int32(1024),
  deliveryQueueMax: int32(1),
  responseInformation: string(),
  retainedMessagesMax: int32(0),
  persistentSessionsMax: int32(0),
  offlineMessagesPerClientMax: int32(0),
  auth: object({ enabled: boolean(), users: list(userSchema) }, [], 'a mapping { enabled, users: [{ username, passwordHash, publish, subscribe }] }'),
  sharedSubscriptions: boolean(),
  sharedMembersMax: int32(0),
  sharedInflightMax: integer(1, 65535),
  sharedCommitIntervalMs: int32(10),
  sharedSessionTimeoutMs: int32(1),
  sharedAckWaitMs: int32(0),
  sharedReadBytesMax: int32(1024),
});

/** Throws a message naming the key when an option is out of range (ranges and types: `mqttSchema`). */
export function validateMqttOptions(o: MqttGatewayOptions): void {
  checkOptions(mqttSchema, o as unknown as Record<string, unknown>, 'mqtt.');
  if (o.batchBytesMax < o.packetBytesMax) throw new Error(`mqtt.batchBytesMax (${o.batchBytesMax}) must be at least mqtt.packetBytesMax (${o.packetBytesMax})`);
  const tls = tlsRefusal(o.tls);
  if (tls) throw new Error(`mqtt.tls: ${tls}`);
}

/** Defaults overlaid with the given options (nested `headers` and `auth` merged too). */
export function resolveMqttOptions(options: Partial<MqttGatewayOptions> = {}): MqttGatewayOptions {
  const o: MqttGatewayOptions = {
    ...defaultMqttGatewayOptions,
    ...options,
    headers: { ...defaultMqttGatewayOptions.headers, ...options.headers },
    auth: { ...defaultMqttGatewayOptions.auth, ...options.auth },
  };
  validateMqttOptions(o);
  return o;
}
