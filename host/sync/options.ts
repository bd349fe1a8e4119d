// The `uplink` config section: where this site's data goes (docs/uplink.md). No `site` (or no
// bootstrap) = no uplink at all: the node runs exactly as without this section. Every buffer
// and wait below is bounded; each default says why.
import type { ConnectionOptions } from 'node:tls';
import { boolean, int32, integer, list, object, oneOf, orNull, section, string, type KeySchema, type SectionSchema } from '../config/schema.js';
import { clientTlsOptions } from '../security/tls.js';
import { codecSupport } from '../core/index.js';
import type { ClusterOptions } from '../cluster/options.js';

/** Codecs of the batches the uplink re-encodes (uplink.compression; host/sync/wire-compression.ts). */
export const WIRE_COMPRESSIONS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
export type WireCompression = (typeof WIRE_COMPRESSIONS)[number];

/** Throws naming uplink.compression when this process cannot compress with it. */
function checkWireCompression(name: WireCompression): void {
  if (!codecSupport()[name].compress) throw new Error(`uplink.compression "${name}": this build cannot compress with it (the codec did not load); use one of ${WIRE_COMPRESSIONS.filter((c) => codecSupport()[c].compress).join(', ')}`);
}

/** What happens to an append when the link's byte budget is full (host/sync/budget.ts). */
export type OnFullPolicy = 'block' | 'drop-oldest' | 'drop-lower-priority';
export const ON_FULL_POLICIES: readonly OnFullPolicy[] = ['block', 'drop-oldest', 'drop-lower-priority'];

export interface UplinkOptions {
  site: string;
  bootstrap: string[] | string;
  topics: string[] | string;
  rename: string;
  clientId: string;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  produceTimeoutMs: number;
  inFlightMax: number;
  inFlightBatchesMax: number;
  inFlightBytesMax: number;
  queuedMax: number;
  responseBytesMax: number;
  reconnectBackoffMs: number;
  reconnectBackoffMaxMs: number;
  readBytesMax: number;
  batchRecordsMax: number;
  batchBytesMax: number;
  rawForwarding: boolean;
  rawBatchRecordsMin: number;
  readBackBytes: number;
  readBackRecordsMax: number;
  topicScanIntervalMs: number;
  pollWaitMs: number;
  tls: UplinkTls | null;
  sasl: UplinkSasl | null;
  bandwidthBytesPerSec: number;
  bandwidthBurstBytes: number;
  priorities: string[] | string;
  downlink: string[] | string;
  downlinkOriginSite: string;
  downlinkFetchBytes: number;
  downlinkWaitMs: number;
  exactlyOnce: 'auto' | 'read-back';
  transactionTimeoutMs: number;
  checkpointTopic: string;
  transactionBatchesMax: number;
  fencedRecheckMs: number;
  backlogBytesMax: number;
  onFull: OnFullPolicy;
  onFullTopics: string[] | string;
  compression: WireCompression;
  bandwidthWindowMs: number;
  statusPartitionsMax: number;
  reservedTopics: string[] | string;
  reservedShareMax: number;
  stallAlarmSec: number;
  backlogAgeMsMax: number;
  drainOrderTopics: string[] | string;
  newestFirstRecords: number;
  clusterLeaseMs: number;
  clusterHandoverMs: number;
}

/** TLS toward the central cluster; the server's certificate is always verified. */
export interface UplinkTls {
  /** PEM CA bundle the central brokers' certificates chain to; null = the system's CAs. */
  caFile: string | null;
  /** This site's certificate and key, for a central cluster that requires client certificates (both or neither). */
  certFile: string | null;
  keyFile: string | null;
  /** Name the certificate must carry when it differs from the bootstrap host (also sent as SNI); null = the host dialled. */
  serverName: string | null;
}

/** SASL toward the central cluster (over TLS when uplink.tls is set: SASL_SSL, else SASL_PLAINTEXT). */
export type UplinkSasl = UplinkPasswordSasl | UplinkOAuthSasl;

export interface UplinkPasswordSasl {
  mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
  user: string;
  /** Never logged: config errors print it redacted, the client's errors name the user only. */
  password: string;
}

/** OAUTHBEARER toward the target (host/kafka/client/oauth-token.ts): a token file, or a token endpoint with client credentials. */
export interface UplinkOAuthSasl {
  mechanism: 'OAUTHBEARER';
  /** A file holding the JWT, read at every login; null when tokenUrl is set. */
  tokenFile?: string | null;
  /** The identity provider's token endpoint (OAuth 2.0 client credentials); null when tokenFile is set. */
  tokenUrl?: string | null;
  clientId?: string | null;
  /** Never logged (config errors print it redacted). */
  clientSecret?: string | null;
  scope?: string | null;
  /** Largest token file or token endpoint answer accepted, in bytes. */
  tokenBytesMax?: number;
}

export const defaultUplinkOptions: UplinkOptions = {
  // This site's name: the `{site}` of renamed topics and the origin header of every forwarded record. '' = no uplink.
  site: '',
  // The central cluster's brokers (host:port, a list or one comma-separated string), tried in order.
  bootstrap: [],
  // Source topics: names, or prefixes ending in `*` (`sensors.*`); a list or one comma-separated string.
  topics: [],
  // Target topic per source topic; `{site}`, `{topic}` and `{partition}` are replaced (with `{partition}` each source partition gets a one-partition topic).
  rename: '{site}.{topic}',
  // Client id on every request to the target (its logs and quotas name us by it).
  clientId: 'tributary-uplink',
  // A cellular link takes seconds to set up a TCP connection; past this the next broker is tried.
  connectTimeoutMs: 10_000,
  // A request unanswered this long is indefinite: the connection is dropped and the outcome read back from the target.
  requestTimeoutMs: 30_000,
  // The target's wait for its replicas (Produce timeout_ms); below requestTimeoutMs so the target answers first.
  produceTimeoutMs: 20_000,
  // Requests written and unanswered per connection (every partition led by that broker shares it; more wait in the queue below).
  inFlightMax: 5,
  // Batches of one partition written and unanswered at once (the pipeline): Kafka keeps the last five batches per producer for deduplication, so at most 5; 1 = one batch at a time (for a target that does not check sequences, such as librdkafka's mock, where a pipeline could leave a gap behind a refused batch).
  inFlightBatchesMax: 5,
  // Bytes of batches built and unanswered across all partitions of the link at once (counted in the start-up memory budget); a batch waits past it, except when nothing is in flight (so one batch larger than the bound still goes).
  inFlightBytesMax: 8 * 1024 * 1024,
  // Requests waiting for a window slot per connection; past it a request is refused (and retried later).
  queuedMax: 1024,
  // Largest answer accepted (a fetch during read-back is at most readBackBytes, plus headers).
  responseBytesMax: 64 * 1024 * 1024,
  // First reconnect waits this long; doubled per failure.
  reconnectBackoffMs: 200,
  // A link down for days is retried at least this often, so it is found again soon after it heals.
  reconnectBackoffMaxMs: 15_000,
  // Bytes read from a source partition at once: what one partition's forwarding holds in memory, and one produce request at most (well under the 1 MiB message.max.bytes of a default Kafka).
  readBytesMax: 512 * 1024,
  // Records per forwarded batch at most (a read with more is sent as several batches).
  batchRecordsMax: 10_000,
  // Bytes per forwarded batch at most: under the max.message.bytes of a default Kafka (1048588) with 8 KiB to spare, and above the 1 000 000-byte batches librdkafka producers store, so those go raw. A raw batch is measured exactly (origin headers included); a re-encoded one is estimated from above (keys, values, headers with the origin ones, framing), so it comes out smaller.
  batchBytesMax: 1_040_000,
  // Forward stored batches as stored (origin headers on the last record only) when they qualify (docs/uplink.md); false = decode and re-encode every record with its own origin headers.
  rawForwarding: true,
  // A stored batch with fewer records is decoded and merged with its neighbours instead of sent raw: MQTT stores one record per batch, and one produce per tiny batch costs more than re-encoding.
  rawBatchRecordsMin: 32,
  // Bytes per fetch while reading a target partition back.
  readBackBytes: 1024 * 1024,
  // Records of a target partition scanned backwards at most while looking for this site's last origin; past it the local checkpoint decides (and the log says so).
  readBackRecordsMax: 1_000_000,
  // How often new source topics and partitions are looked for, and a blocked target topic re-checked.
  topicScanIntervalMs: 5_000,
  // A caught-up partition waits this long for new records before looking again (appends wake it sooner).
  pollWaitMs: 1_000,
  // Plain TCP unless set; with a block the central brokers' certificates are verified against caFile (or the system's CAs): a site's data never goes to an unverified peer.
  tls: null,
  // No SASL unless set: { mechanism: PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512, user, password }, or { mechanism: OAUTHBEARER, tokenFile } (a JWT file read at every login), or { mechanism: OAUTHBEARER, tokenUrl, clientId, clientSecret, scope? } (OAuth 2.0 client credentials; tokenBytesMax bounds the answer, default 65536). PLAIN sends the password itself, and a bearer token is as good as one: use them over uplink.tls only (the node warns otherwise).
  sasl: null,
  // Bandwidth cap of the link: produce bytes per second toward the target (token bucket); 0 = no cap (as fast as the target takes it). Metered cellular plans and shared uplinks need one.
  bandwidthBytesPerSec: 0,
  // Bytes the cap lets through at once after an idle spell (the bucket's size); a batch larger than this is sent whole and its debt waited out by the batches after it.
  bandwidthBurstBytes: 256 * 1024,
  // Priority classes, highest first: topic names or prefixes ending in * (a list or one comma-separated string). A partition starts a batch only while no partition of a higher class has unsent data, so after an outage alarms drain before telemetry; unmatched topics come last. [] = one class.
  priorities: [],
  // Downlink: central topics copied into local topics, `central=local` pairs ({site} allowed in the central name), a list or one comma-separated string; [] = no downlink.
  downlink: [],
  // The origin site stamped on downlinked records (tributary.origin.site): read back from the local log to resume exactly once, and never sent up again.
  downlinkOriginSite: 'central',
  // Bytes per fetch from a central partition: what one downlink partition holds in memory at once (under the default 1 MiB max.message.bytes of the local topic it is appended to).
  downlinkFetchBytes: 512 * 1024,
  // A caught-up downlink partition waits this long at the centre for new records (long poll); below requestTimeoutMs.
  downlinkWaitMs: 1_000,
  // How exactly-once is proven against the target, decided per target partition at every (re)connect: auto = transactions (data and a checkpoint record in one transaction, KIP-618) where the target advertises the transaction APIs, else read-back of the origin headers; read-back = always read-back.
  exactlyOnce: 'auto',
  // Transactions mode: how long the target's coordinator lets a transaction stay open before aborting it (a killed edge's open transaction is fenced at the next start anyway).
  transactionTimeoutMs: 60_000,
  // Transactions mode: the target topic (one partition, created when missing) holding each source partition's checkpoint, written in the same transaction as its data.
  checkpointTopic: 'tributary-uplink-checkpoints',
  // Transactions mode: batches (of at most batchBytesMax each) in one transaction, sent pipelined, with one checkpoint record. Each transaction costs two round trips more than its produces (AddPartitionsToTxn, EndTxn), so more batches amortise them; fewer bound what a failed transaction makes the next one send again. At most 64, and at most uplink.inFlightMax + uplink.queuedMax are used: the data produces of one transaction are queued on one connection at once.
  transactionBatchesMax: 5,
  // Transactions mode: a partition fenced by a newer producer of its transactional id is blocked, and looked at again this often (docs/uplink.md, "Fenced, then re-checked"): if the checkpoint committed in the target has not moved meanwhile, nobody else is forwarding it, and it re-initialises and resumes from the target as at start; if it moved, it stays blocked. A minute: one checkpoint read per fenced partition per minute, and a gateway whose twin was switched off forwards again within a minute. 0 = blocked until the node restarts.
  fencedRecheckMs: 60_000,
  // Byte budget of the link: bytes stored here and not yet forwarded, over every source partition of the link (docs/uplink.md, "Byte budget"). A week offline at 1.5 KB/s of telemetry is about 1 GiB, and an SD card that holds it still has room for the rest; past it the on-full policy of the appended topic decides. 0 = no budget (the backlog is bounded only by retention and the disk floor).
  backlogBytesMax: 1024 * 1024 * 1024,
  // On-full policy of topics no onFullTopics entry names: block (refuse new appends, keep every unforwarded record, also against retention), drop-oldest (admit, drop the topic's own oldest unforwarded records from the uplink), drop-lower-priority (admit by dropping lower-priority classes' oldest, else refuse). block by default: nothing a producer was acknowledged for is lost to the uplink.
  onFull: 'block',
  // Per-topic on-full policies, `pattern=policy` (pattern: a topic name or prefix ending in *), first match wins; a list or one comma-separated string. [] = every topic has uplink.onFull.
  onFullTopics: [],
  // Codec of the batches the uplink re-encodes (the decoding path: batches too small to go raw, compressed or origin-carrying ones, or all with rawForwarding=false): none, gzip, snappy, lz4 or zstd. Raw batches go as stored, whatever this says. lz4 by default: it costs the edge's CPU least of the codecs that shrink telemetry several-fold (docs/uplink.md has the bench), and bytes are what a metered link charges for.
  compression: 'lz4',
  // Window of the bandwidth in use shown by /metrics, /stats, the console and `tributary uplink status` (sampled every tenth of it): long enough to smooth one batch's burst at a capped rate, short enough to show a drain starting within seconds.
  bandwidthWindowMs: 10_000,
  // Partition rows shown by /stats, the console and `tributary uplink status` (and kept in the status view file): the ones blocked or retrying first, then the largest lag in bytes. A screenful an operator reads; the link's totals always cover every partition, and the view says how many rows were left out.
  statusPartitionsMax: 100,
  // The reserved lane (docs/uplink.md, "Reserved lane"): topics (names or prefixes ending in *) whose batches go first through the bandwidth cap and the connection's queue, skip the priority classes, and hold every other partition to one batch in flight while they have unsent data — commands and alarms are never stuck behind a telemetry backlog. [] = no reserved lane.
  reservedTopics: [],
  // The others' floor beside the reserved lane (docs/uplink.md, "Reserved lane"): while both the lane and other partitions have data to send, the lane takes at most this fraction of the capped rate's bytes (without a cap: of the produce requests started), the others at least the rest, so a flooded reserved topic cannot starve telemetry forever. 1 = a strict lane (the others get nothing while it has data). 0.8: alarms and commands are a trickle beside telemetry, so the floor only bites on a flood — a lane sending up to 4× the others' floor is never held (uplink-lanes tests: alarm p99 unchanged), and the others still get a fifth of the link instead of none.
  reservedShareMax: 0.8,
  // Liveness alarm: a partition whose position has not moved for this many seconds while it has records to send is `stalled` (a warning once per episode, tributary_uplink_stalled, `tributary uplink status`). A minute: longer than any healthy produce round trip or reconnect backoff (15 s), short enough to page someone the same hour. 0 = off.
  stallAlarmSec: 60,
  // A bound by age of the backlog: the oldest record stored here and not yet forwarded may be at most this old (ms); past it the topic's on-full policy decides as for the byte budget (block refuses appends, drop-oldest gives up the records older than the bound). 0 = no bound (default: the byte budget alone bounds the disk; an age bound is a data-freshness choice only the site can make).
  backlogAgeMsMax: 0,
  // Drain order per topic when a backlog exists, `pattern=order` (order: oldest-first or newest-first), first match wins; a list or one comma-separated string. [] = every topic oldest-first (the target partition then holds the records in source order; newest-first puts the newest window before the older backlog there).
  drainOrderTopics: [],
  // Newest-first: how many of the newest stored records of a partition go before its older backlog (the head); the rest is backfilled after. A few minutes of telemetry at typical gateway rates: the centre sees the present first, and the out-of-order span in the target stays this small at its start.
  newestFirstRecords: 1000,
  // In a cluster (docs/uplink.md, "In a cluster"): a node forwards a partition it leads only while it has heard from the controller within this many ms, so a node cut off from the cluster stops by itself before the controller fences it (cluster.sessionTimeoutMs) and elects another leader. Must stay below cluster.sessionTimeoutMs − cluster.electionTicks·cluster.tickMs (checked at start). Five heartbeats at the cluster's defaults: one late frame never stops a link.
  clusterLeaseMs: 500,
  // In a cluster: a node that starts leading a partition (or gets its lease back) waits this long before its first read-back of the target, so every byte the previous leader wrote has landed or been refused first. At least uplink.requestTimeoutMs (checked at start): the longest a written request stays unanswered before its sender gives it up and drops the connection.
  clusterHandoverMs: 30_000,
};

/** A list of strings, or one string of comma-separated items (environment variables and `--set`). */
function listOrString(what: string): KeySchema {
  return { anyOf: [list(string(1)), { type: 'string' }], 'x-allowed': `a list of ${what}, or one comma-separated string` };
}

export const uplinkSchema: SectionSchema = section({
  site: { type: 'string', pattern: '^[A-Za-z0-9._-]{0,100}$', 'x-allowed': "'' (no uplink) or a name of letters, digits, '.', '_' and '-' (at most 100)" },
  bootstrap: listOrString('host:port'),
  topics: listOrString('topic names or prefixes ending in *'),
  rename: string(1),
  clientId: string(1),
  connectTimeoutMs: int32(1),
  requestTimeoutMs: int32(1),
  produceTimeoutMs: int32(1),
  inFlightMax: integer(1, 1000),
  inFlightBatchesMax: integer(1, 5),
  inFlightBytesMax: integer(1024, 2_147_483_647),
  queuedMax: integer(0, 1_000_000),
  responseBytesMax: integer(1024, 2_147_483_647),
  reconnectBackoffMs: int32(1),
  reconnectBackoffMaxMs: int32(1),
  readBytesMax: integer(1024, 2_147_483_647),
  batchRecordsMax: integer(1, 1_000_000),
  batchBytesMax: integer(1024, 2_147_483_647),
  rawForwarding: boolean(),
  rawBatchRecordsMin: integer(1, 1_000_000),
  readBackBytes: integer(1024, 2_147_483_647),
  readBackRecordsMax: integer(1, Number.MAX_SAFE_INTEGER),
  topicScanIntervalMs: int32(10),
  pollWaitMs: int32(1),
  tls: {
    anyOf: [{ type: 'null' }, object({ caFile: orNull(string(1)), certFile: orNull(string(1)), keyFile: orNull(string(1)), serverName: orNull(string(1)) })],
    'x-allowed': 'null (plain TCP) or { caFile, certFile, keyFile, serverName } (each a string or null): TLS with the server certificate verified',
  },
  sasl: {
    anyOf: [
      { type: 'null' },
      object({ mechanism: oneOf('PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'), user: string(1), password: string(1) }, ['mechanism', 'user', 'password']),
      object({ mechanism: oneOf('OAUTHBEARER'), tokenFile: string(1), tokenBytesMax: integer(1024, 16 * 1024 * 1024) }, ['mechanism', 'tokenFile']),
      object(
        { mechanism: oneOf('OAUTHBEARER'), tokenUrl: { type: 'string', pattern: '^https?://', 'x-allowed': 'an http:// or https:// URL' }, clientId: string(1), clientSecret: string(1), scope: orNull(string(1)), tokenBytesMax: integer(1024, 16 * 1024 * 1024) },
        ['mechanism', 'tokenUrl', 'clientId', 'clientSecret'],
      ),
    ],
    'x-allowed': 'null (no SASL), { mechanism: PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512, user, password }, { mechanism: OAUTHBEARER, tokenFile, tokenBytesMax? } or { mechanism: OAUTHBEARER, tokenUrl, clientId, clientSecret, scope?, tokenBytesMax? } (tokenBytesMax 1024 to 16777216)',
  },
  bandwidthBytesPerSec: integer(0, Number.MAX_SAFE_INTEGER),
  bandwidthBurstBytes: integer(1024, 2_147_483_647),
  priorities: listOrString('topic names or prefixes ending in *'),
  downlink: listOrString('central=local topic pairs'),
  downlinkOriginSite: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,100}$', 'x-allowed': "a name of letters, digits, '.', '_' and '-' (1 to 100)" },
  downlinkFetchBytes: integer(1024, 64 * 1024 * 1024),
  downlinkWaitMs: int32(0),
  exactlyOnce: oneOf('auto', 'read-back'),
  transactionTimeoutMs: int32(1000),
  checkpointTopic: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,249}$', 'x-allowed': "a topic name (letters, digits, '.', '_', '-')" },
  transactionBatchesMax: integer(1, 64),
  fencedRecheckMs: integer(0, 86_400_000),
  backlogBytesMax: integer(0, Number.MAX_SAFE_INTEGER),
  onFull: oneOf(...ON_FULL_POLICIES),
  onFullTopics: listOrString('pattern=policy pairs (policy: block, drop-oldest or drop-lower-priority)'),
  compression: oneOf(...WIRE_COMPRESSIONS),
  bandwidthWindowMs: integer(100, 3_600_000),
  statusPartitionsMax: integer(1, 100_000),
  reservedTopics: listOrString('topic names or prefixes ending in *'),
  reservedShareMax: { type: 'number', exclusiveMinimum: 0, maximum: 1, 'x-allowed': 'a number greater than 0 and at most 1 (1 = a strict lane)' },
  stallAlarmSec: integer(0, 31_536_000),
  backlogAgeMsMax: integer(0, Number.MAX_SAFE_INTEGER),
  drainOrderTopics: listOrString('pattern=order pairs (order: oldest-first or newest-first)'),
  newestFirstRecords: integer(1, Number.MAX_SAFE_INTEGER),
  clusterLeaseMs: integer(1, 600_000),
  clusterHandoverMs: integer(0, 86_400_000),
});

/** The section with lists resolved: null when no uplink is configured. */
export interface ResolvedUplink extends Omit<UplinkOptions, 'bootstrap' | 'topics' | 'downlink' | 'priorities' | 'onFullTopics' | 'reservedTopics' | 'drainOrderTopics'> {
  drainOrderTopics: Array<{ pattern: string; order: 'oldest-first' | 'newest-first' }>;
  reservedTopics: string[];
  /** uplink.onFullTopics parsed, in order (first match wins). */
  onFullTopics: Array<{ pattern: string; policy: OnFullPolicy }>;
  bootstrap: string[];
  topics: string[];
  /** `uplink.tls` with its files read and checked; null = plain TCP. */
  tlsConnect: ConnectionOptions | null;
  priorities: string[];
  /** Central topic (site filled in) → local topic. */
  downlink: Array<{ central: string; local: string }>;
}

function items(v: string[] | string): string[] {
  return (typeof v === 'string' ? v.split(',') : v).map((s) => s.trim()).filter((s) => s.length > 0);
}

const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const TOPIC_ITEM = /^[A-Za-z0-9._-]+\*?$/;

/**
 * Checks the rules between keys (the schema checked each key alone). Throws an Error naming
 * `uplink.<key>` and the value. Null = no uplink (site empty).
 */
export function resolveUplinkOptions(o: UplinkOptions): ResolvedUplink | null {
  if (o.site === '') return null;
  const bootstrap = items(o.bootstrap);
  const topics = items(o.topics);
  if (bootstrap.length === 0) throw new Error(`uplink.bootstrap is empty but uplink.site is "${o.site}": name the central brokers (host:port)`);
  for (const a of bootstrap) {
    const m = ADDRESS.exec(a);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new Error(`uplink.bootstrap entry "${a}" is not host:port (port 1-65535)`);
  }
  if (topics.length === 0) throw new Error(`uplink.topics is empty but uplink.site is "${o.site}": name the topics to forward (names or prefixes like sensors.*)`);
  for (const t of topics) if (!TOPIC_ITEM.test(t) || t.startsWith('__')) throw new Error(`uplink.topics entry "${t}" is not a topic name or a prefix ending in * (internal __ topics are never forwarded)`);
  if (!o.rename.includes('{topic}')) throw new Error(`uplink.rename "${o.rename}" has no {topic}: every source topic would map to one target topic`);
  const unknown = o.rename.match(/\{[^}]*\}/g)?.find((p) => !['{site}', '{topic}', '{partition}'].includes(p));
  if (unknown) throw new Error(`uplink.rename "${o.rename}" has an unknown placeholder ${unknown} (allowed: {site}, {topic}, {partition})`);
  if (o.produceTimeoutMs >= o.requestTimeoutMs) throw new Error(`uplink.produceTimeoutMs (${o.produceTimeoutMs}) must be below uplink.requestTimeoutMs (${o.requestTimeoutMs}): the target should answer before we give up`);
  if (o.reconnectBackoffMs > o.reconnectBackoffMaxMs) throw new Error(`uplink.reconnectBackoffMs (${o.reconnectBackoffMs}) is above uplink.reconnectBackoffMaxMs (${o.reconnectBackoffMaxMs})`);
  if (o.readBackBytes > o.responseBytesMax) throw new Error(`uplink.readBackBytes (${o.readBackBytes}) is above uplink.responseBytesMax (${o.responseBytesMax})`);
  const tlsConnect = o.tls ? clientTlsOptions('uplink.tls', { caFile: o.tls.caFile ?? null, certFile: o.tls.certFile ?? null, keyFile: o.tls.keyFile ?? null, serverName: o.tls.serverName ?? null }) : null;
  const downlink = items(o.downlink).map((pair) => {
    const m = /^([A-Za-z0-9._{}-]+)=([A-Za-z0-9._-]+)$/.exec(pair);
    if (!m || m[2].startsWith('__')) throw new Error(`uplink.downlink entry "${pair}" is not central=local (topic names; {site} allowed in the central one; no internal __ topics)`);
    const bad = m[1].match(/\{[^}]*\}/g)?.find((p) => p !== '{site}');
    if (bad) throw new Error(`uplink.downlink entry "${pair}" has an unknown placeholder ${bad} (allowed: {site})`);
    return { central: m[1].replaceAll('{site}', o.site), local: m[2] };
  });
  if (downlink.length > 0 && o.downlinkOriginSite === o.site) throw new Error(`uplink.downlinkOriginSite "${o.downlinkOriginSite}" equals uplink.site: downlinked records could not be told from this site's own`);
  if (downlink.length > 0 && o.downlinkWaitMs >= o.requestTimeoutMs) throw new Error(`uplink.downlinkWaitMs (${o.downlinkWaitMs}) must be below uplink.requestTimeoutMs (${o.requestTimeoutMs})`);
  if (o.downlinkFetchBytes > o.responseBytesMax) throw new Error(`uplink.downlinkFetchBytes (${o.downlinkFetchBytes}) is above uplink.responseBytesMax (${o.responseBytesMax})`);
  const priorities = items(o.priorities);
  for (const p of priorities) if (!TOPIC_ITEM.test(p)) throw new Error(`uplink.priorities entry "${p}" is not a topic name or a prefix ending in *`);
  const onFullTopics = items(o.onFullTopics).map((pair) => {
    const m = /^([^=]+)=([^=]+)$/.exec(pair);
    const pattern = m?.[1].trim() ?? '';
    const policy = m?.[2].trim() as OnFullPolicy;
    if (!m || !TOPIC_ITEM.test(pattern) || !ON_FULL_POLICIES.includes(policy)) throw new Error(`uplink.onFullTopics entry "${pair}" is not pattern=policy (a topic name or prefix ending in *, and one of ${ON_FULL_POLICIES.join(', ')})`);
    return { pattern, policy };
  });
  checkWireCompression(o.compression);
  const reservedTopics = items(o.reservedTopics);
  for (const p of reservedTopics) if (!TOPIC_ITEM.test(p)) throw new Error(`uplink.reservedTopics entry "${p}" is not a topic name or a prefix ending in *`);
  const drainOrderTopics = items(o.drainOrderTopics).map((pair) => {
    const m = /^([^=]+)=([^=]+)$/.exec(pair);
    const pattern = m?.[1].trim() ?? '';
    const order = m?.[2].trim();
    if (!m || !TOPIC_ITEM.test(pattern) || (order !== 'oldest-first' && order !== 'newest-first')) throw new Error(`uplink.drainOrderTopics entry "${pair}" is not pattern=order (a topic name or prefix ending in *, and oldest-first or newest-first)`);
    return { pattern, order: order as 'oldest-first' | 'newest-first' };
  });
  return { ...o, bootstrap, topics, tlsConnect, downlink, priorities, onFullTopics, reservedTopics, drainOrderTopics };
}

/** Whether a source topic is forwarded (an exact name, or a prefix pattern `x.*`). */
export function topicMatches(patterns: readonly string[], topic: string): boolean {
  if (topic.startsWith('__')) return false;
  return patterns.some((p) => (p.endsWith('*') ? topic.startsWith(p.slice(0, -1)) : topic === p));
}

/** The target topic for a source partition. */
export function targetTopicOf(template: string, site: string, topic: string, partition: number): string {
  return template.replaceAll('{site}', site).replaceAll('{topic}', topic).replaceAll('{partition}', String(partition));
}

/** The on-full policy of a topic: the first uplink.onFullTopics entry whose pattern matches, else uplink.onFull. */
export function policyOf(topic: string, rules: ReadonlyArray<{ pattern: string; policy: OnFullPolicy }>, fallback: OnFullPolicy): OnFullPolicy {
  return rules.find((r) => topicMatches([r.pattern], topic))?.policy ?? fallback;
}

/** How often eligibility is looked at: a fifth of the lease, between 10 and 100 ms. */
export function checkIntervalMsOf(leaseMs: number): number {
  return Math.max(10, Math.min(100, Math.floor(leaseMs / 5)));
}

/**
 * Start-up checks of the uplink together with `cluster.*`; every error names the keys. The lease
 * must run out before the controller can fence this node (see the file header), the handover
 * must outlast a written request, and what is not cluster-aware is refused.
 */
export function checkUplinkInCluster(uplink: ResolvedUplink, cluster: ClusterOptions): void {
  const newestFirst = uplink.drainOrderTopics.filter((d) => d.order === 'newest-first').map((d) => `${d.pattern}=newest-first`);
  if (newestFirst.length > 0) {
    throw new Error(`uplink.drainOrderTopics (${newestFirst.join(', ')}) cannot be used with cluster.*: newest-first keeps its split in this node's link state, which does not move with partition leadership, so a failover would skip the backfill; use oldest-first in a cluster`);
  }
  if (uplink.downlink.length > 0) {
    throw new Error('uplink.downlink cannot be used with cluster.* yet: every node would copy the central topics into the local ones (docs/uplink.md, "In a cluster")');
  }
  const electionMs = cluster.electionTicks * cluster.tickMs;
  const checkMs = checkIntervalMsOf(uplink.clusterLeaseMs);
  if (uplink.clusterLeaseMs + electionMs + 2 * checkMs >= cluster.sessionTimeoutMs) {
    throw new Error(
      `uplink.clusterLeaseMs (${uplink.clusterLeaseMs}) + cluster.electionTicks·cluster.tickMs (${electionMs}) + two lease checks (${2 * checkMs}) must stay below cluster.sessionTimeoutMs (${cluster.sessionTimeoutMs}): a node cut off from the cluster must stop forwarding before the controller fences it and elects another leader`,
    );
  }
  if (uplink.clusterHandoverMs < uplink.requestTimeoutMs) {
    throw new Error(`uplink.clusterHandoverMs (${uplink.clusterHandoverMs}) must be at least uplink.requestTimeoutMs (${uplink.requestTimeoutMs}): a new leader must not read the target back while the previous one's written requests may still land`);
  }
}
