// aedes persistence backed by the log: retained messages, persistent sessions' subscriptions,
// will messages and the offline QoS 1/2 queue survive a restart (and a power cut) because
// every change is appended — through the one append path, with acks -1 — to a compacted
// internal topic before aedes is told it is done. Reads are served from memory: aedes'
// own in-memory persistence (aedes-persistence, the reference implementation that its
// conformance suite checks) holds the state; this class makes each change durable first
// and rebuilds that state from the topics at start.
//
// Internal topics (1 partition each, cleanup.policy=compact, so the latest value per key
// is what remains; a null value is a tombstone):
//   __mqtt_retained   key = MQTT topic            value = payload; header `qos`; MQTT 5 only:
//                                                 header `props` = JSON of the publish properties, `expiresAtMs`
//   __mqtt_sessions   key = "s" 0x00 clientId     value = JSON [{topic, qos, rh, rap, nl, subscriptionIdentifier}]
//                     key = "w" 0x00 clientId     value = will payload; header `will` = JSON {topic, qos, retain, brokerId, properties,
//                                                 delayMs (MQTT 5: min(Will Delay, Session Expiry) in ms; absent in older records)}
//                     key = "e" 0x00 clientId     value = decimal ms since the epoch when the (MQTT 5) session expires
//                                                 while disconnected; tombstoned when it reconnects or is wiped
//                     a cluster only (session-table.ts): key = "o" 0x00 clientId (owner node), "p" 0x00 clientId
//                     (delivery positions); wills under "W" 0x00 nodeId 0x00 clientId (written by the node the
//                     device is connected to; a fenced node's are published by the table's leader, fenced-wills.ts)
//   __mqtt_outgoing   key = clientId 0x00 brokerId 0x00 brokerCounter
//                     value = payload; header `msg` = JSON {topic, qos, retain, properties, messageExpiry}
// Properties in JSON: Buffers (Correlation Data) as {"$b64": "..."}; User Properties as the
// ordered list of single-pair objects (MQTT-3.3.2-18).
//
// Crash policy: a change is acknowledged (SUBACK, CONNACK, PUBACK of the publisher) only
// after its record is durable, so after a restart the state is at least what was
// acknowledged. aedes stores retained messages and queues offline messages after the
// publisher's PUBACK; the gateway does both before it (storeRetainedBeforeAck,
// enqueueBeforeAck) and aedes' later calls are skipped. What stays in memory only: inbound QoS 2 packets awaiting PUBREL (their
// records are already in the stream topic before PUBREC; a PUBREL for an unknown id is
// simply completed) and packet identifiers assigned to queued messages (reassigned when
// the queue is replayed; MQTT allows the redelivery).
//
// Inbound QoS 2 table: kept here (not in aedes-persistence 10.3, which has no `cleanIncoming`),
// at most `qos2InflightInboundMax` per client. A clean start, a session that ends with its
// connection and an expired session drop it (`cleanIncoming`, the fix for advisory
// GHSA-p8r9-qf8w-p73r: otherwise a reused packet id after a clean reconnect is taken for a
// retransmission, acknowledged and silently dropped).
//
// In a cluster (docs/cluster.md "MQTT retained messages in a cluster"): `__mqtt_retained` is
// replicated, one replica per voter, created in the background once every voter registered;
// a retained write on any node goes through the one write path (forwarded to the leader as the
// node itself: host/security/node-identity.ts), and every node follows the table's committed
// records into its memory (followTable), in log order, a record never replaced by an older
// one. `__mqtt_sessions` is replicated the same way and followed into a view of every session
// (session-table.ts): a persistent session has one owner node, another node takes it over,
// waits for the old owner's release and replays what the device missed from its delivery
// positions (docs/cluster.md "MQTT sessions in a cluster"). The offline queue and the inbound
// QoS 2 table stay each node's own; wills are written by the node the device is connected to,
// and the leader of `__mqtt_sessions` publishes those of a node the controller fenced
// (fenced-wills.ts; docs/cluster.md "Wills of a node that died").
//
// Bounds: retainedMessagesMax (new topics beyond are not retained, logged), persistent
// sessions (a new one beyond is refused: the CONNECT fails), offline messages per client
// (newer ones beyond are not queued, logged — the records stay in the stream topic).
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type { BrokerApi, RecordInput } from '../../host/broker/api.js';
import { BrokerError } from '../../host/errors/index.js';
import { PartitionCursor } from '../../host/broker/cursor.js';
import type { Logger } from '../../host/logging.js';
import type { Counter, MetricsRegistry } from '../../host/metrics/registry.js';
import type { AppendBatcher } from './append.js';
import { hideShare, isHiddenShare } from './share-adapter.js';
import { filterMatches, type Router } from './routes.js';
import { headersToProperties } from './headers.js';
import { SessionTable, type Positions, type SessionEntry, type Sub } from './session-table.js';
import { FencedWills } from './fenced-wills.js';

type SessionEntryOwner = NonNullable<SessionEntry['owner']>;

const require = createRequire(import.meta.url);

export const RETAINED_TOPIC = '__mqtt_retained';
export const SESSIONS_TOPIC = '__mqtt_sessions';
export const OUTGOING_TOPIC = '__mqtt_outgoing';
const REPLAY_READ_BYTES = 1 << 20;
/** A cluster's retained follower: one long poll at most this long (then it looks again). */
const FOLLOW_WAIT_MS = 5_000;
/** After a failed read of the retained table (no replica yet, a restart of the partition), wait this long. */
const FOLLOW_RETRY_MS = 500;
/** Skipped state records logged one by one per topic and replay; the rest are counted in one line. */
const SKIP_WARNINGS_MAX = 10;
/** Publishes queued before their PUBACK whose aedes call has not come yet (it follows within a tick or two). */
const EARLY_MARKS_MAX = 10_000;

import type { AedesPacket } from './aedes-packet.js';
export type { AedesPacket };

export type { Sub };

interface ClientLike {
  id: string;
}

/** aedes-persistence's async in-memory implementation (asyncPersistence.js). */
interface MemoryPersistence {
  setup(broker: unknown): Promise<void>;
  storeRetained(p: AedesPacket): Promise<void>;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
  addSubscriptions(c: ClientLike, subs: Sub[]): Promise<void>;
  removeSubscriptions(c: ClientLike, topics: string[]): Promise<void>;
  subscriptionsByClient(c: ClientLike): Promise<Sub[]>;
  countOffline(): Promise<{ subsCount: number; clientsCount: number }>;
  subscriptionsByTopic(pattern: string): Promise<Sub[]>;
  cleanSubscriptions(c: ClientLike): Promise<void>;
  outgoingEnqueue(sub: { clientId: string }, p: AedesPacket): Promise<void>;
  outgoingEnqueueCombi(subs: Array<{ clientId: string }>, p: AedesPacket): Promise<void>;
  outgoingUpdate(c: ClientLike, p: AedesPacket): Promise<void>;
  outgoingClearMessageId(c: ClientLike, p: AedesPacket): Promise<AedesPacket | undefined>;
  outgoingStream(c: ClientLike): Readable;
  incomingStorePacket(c: ClientLike, p: AedesPacket): Promise<void>;
  incomingGetPacket(c: ClientLike, p: AedesPacket): Promise<AedesPacket>;
  incomingDelPacket(c: ClientLike, p: AedesPacket): Promise<void>;
  cleanIncoming(c: ClientLike): Promise<void>;
  putWill(c: ClientLike, p: AedesPacket): Promise<void>;
  getWill(c: ClientLike): Promise<AedesPacket | undefined>;
  delWill(c: ClientLike): Promise<AedesPacket | undefined>;
  streamWill(brokers?: Record<string, number>): Readable;
  getClientList(topic: string): Readable;
  destroy(): Promise<void>;
}

const MemoryPersistenceCtor = require('aedes-persistence/asyncPersistence.js') as new () => MemoryPersistence;

/** The cluster this node votes in (absent: a single node). */
export interface PersistenceCluster {
  /** Voters (nodes) in the cluster: the retained table's replication factor, so every node holds a replica it can serve from. */
  voters: number;
  /** How long a cluster's first gateway waits for every voter to register before creating the retained table at the default factor (cluster.joinTimeoutMs). */
  tableCreateWaitMs: number;
  /** This node's id (cluster.nodeId): the owner of the sessions it serves. */
  nodeId: number;
  /** How long a takeover waits for the old owner's release before loading what is committed (2 × cluster.sessionTimeoutMs + 1 s). */
  handoverWaitMs: number;
  /**
   * Whether a node is a live broker (registered and not fenced): a takeover stops waiting for the
   * release of an old owner the controller has fenced (silent for cluster.sessionTimeoutMs, so
   * dead or cut off: it releases nothing either way). Absent: wait the whole handoverWaitMs.
   */
  nodeLive?: (nodeId: number) => boolean;
  /**
   * Whether the controller has fenced a registered node (the metadata image's `fenced`): the
   * wills of the devices connected to it are then published by the leader of `__mqtt_sessions`
   * (fenced-wills.ts). Absent: no node's wills are published by another node.
   */
  nodeFenced?: (nodeId: number) => boolean;
}

/** What a cluster's session handover needs from the gateway (index.ts sets it). */
export interface HandoverHooks {
  /** Closes this node's connection of `clientId`, if any, as a same-node takeover does; resolves once closed. */
  closeClient(clientId: string): Promise<void>;
  /** True while `clientId` is connected to this node. */
  connected(clientId: string): boolean;
  /** A reverse-delivery reader's position in a partition: `done` = every record below was handed on, `read` = below was read; undefined without a reader. */
  tailPosition(topic: string, partition: number, which: 'done' | 'read'): number | undefined;
  /** A session's filters were loaded: reverse-delivery readers start now (synchronously). */
  sessionLoaded(filters: string[]): void;
  router: Router;
  reverseQos: 0 | 1;
  /**
   * Publishes a will of a fenced node's device through the gateway's one write path (as a will
   * cut by a restart is): true once stored, false when refused for good; rejects on a transient failure.
   */
  publishWill?(will: AedesPacket): Promise<boolean>;
  /** Closes this node's connection of `clientId` without publishing its will (another node published it). */
  closeWithoutWill?(clientId: string): void;
}

export interface PersistenceLimits {
  retainedMessagesMax: number;
  persistentSessionsMax: number;
  offlineMessagesPerClientMax: number;
  qos2InflightInboundMax: number;
  /** A cluster: the period of the delivery-position checkpoints of connected sessions (absent: none). */
  sessionCheckpointMs?: number;
}

/** Holds an offline replay to the client's Receive Maximum (outbound.ts). */
export interface ReplayGate {
  reserve(packet: AedesPacket): Promise<void>;
  unreserve(packet: AedesPacket): void;
}

/** Publish properties as JSON (Buffers as {"$b64": ...}). */
export function propsToJson(props: unknown): unknown {
  if (props === undefined || props === null) return undefined;
  return JSON.parse(JSON.stringify(props, (_k, v: unknown) => {
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
      return { $b64: Buffer.from((v as { data: number[] }).data).toString('base64') };
    }
    return v;
  }));
}

export function propsFromJson(json: unknown): Record<string, unknown> | undefined {
  if (json === undefined || json === null) return undefined;
  return JSON.parse(JSON.stringify(json), (_k, v: unknown) => (v && typeof v === 'object' && typeof (v as { $b64?: unknown }).$b64 === 'string' ? Buffer.from((v as { $b64: string }).$b64, 'base64') : v)) as Record<string, unknown>;
}

/** Prefix of the per-topic chains of retained stores (`serial`), told apart from the per-client ones. */
const RETAINED_CHAIN = 'r\u0000';

/** outgoingClearMessageId's answer when the session's queue was never given an entry. */
const NOTHING_REMOVED: Promise<AedesPacket | undefined> = Promise.resolve(undefined);
const enc = (s: string) => Buffer.from(s, 'utf8');
const text = (b: Uint8Array | null) => (b === null ? '' : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'));
const copy = (b: Uint8Array | null) => (b === null ? Buffer.alloc(0) : Buffer.from(b));

/**
 * An already settled result that says so in the same tick: aedes runs the next step of a
 * publish from `storeRetained(...).then(...)`, and a resolved Promise would cost a retained
 * publish one more turn than a plain one behind it, which would then be delivered first
 * (order per publisher and topic, MQTT-4.6.0-5).
 */
const SETTLED_NOW: Promise<void> = { then: (ok?: () => unknown) => (ok?.(), SETTLED_NOW) } as unknown as Promise<void>;

export class LogPersistence {
  private readonly mem = new MemoryPersistenceCtor();
  private broker: { id: string } | undefined;
  private readonly retainedTopics = new Set<string>();
  /** clientId → subscription filters, mirrored for the tail readers and the session bound. */
  private readonly sessions = new Map<string, Sub[]>();
  /** clientId → messages queued. */
  private readonly offlineCount = new Map<string, number>();
  /** clientId 0x00 messageId → outgoing record key, to tombstone the right record on PUBACK/PUBCOMP. */
  private readonly inflightKeys = new Map<string, string>();
  /**
   * Client ids whose queue in `mem` was ever given an entry (enqueued, restored or updated): a
   * PUBACK of any other client finds nothing there, so it is answered without asking `mem`.
   * Bounded by the sessions: an id leaves when its session is wiped (its queue is then empty).
   */
  private readonly outgoingHeld = new Set<string>();
  /**
   * outgoing key → the QoS a delivery was written at (lower than the stored publish's when the
   * subscription's was): a resend repeats that QoS (MQTT-4.4.0-1), even if a subscription made
   * since would allow more. Same entries and lifetime as `inflightKeys`.
   */
  private readonly sentQoS = new Map<string, number>();
  /** Per-client chain so a client's session records are written in the order they happen. */
  private readonly chains = new Map<string, Promise<void>>();
  private lastLimitLogMs = 0;
  /** Called when persisted subscriptions change (the tail readers follow them). */
  onSessionsChanged: () => void = () => undefined;
  /** The Receive Maximum gate of a connected client, for offline replays. */
  gateOf: (client: object) => ReplayGate | undefined = () => undefined;
  /** clientId → when its disconnected MQTT 5 session expires (ms since the epoch), survives restarts. */
  readonly expiries = new Map<string, number>();
  /** clientId → packet id → inbound QoS 2 publish awaiting PUBREL. */
  private readonly incoming = new Map<string, Map<number, AedesPacket>>();
  readonly dropped = { retained: 0, offline: 0 };

  private readonly skippedCounter: Counter | undefined;

  constructor(
    private readonly store: BrokerApi,
    private readonly batcher: AppendBatcher,
    private readonly logger: Logger,
    private readonly limits: PersistenceLimits,
    metrics?: MetricsRegistry,
    private readonly cluster?: PersistenceCluster,
  ) {
    this.skippedCounter = metrics?.counter('tributary_table_skipped_records_total', 'Records of internal tables skipped on replay because they did not decode');
    if (cluster) {
      const fenced = cluster.nodeFenced ?? (() => false);
      this.fencedWills = new FencedWills({
        nodeId: cluster.nodeId,
        fenced,
        leads: () => this.leadsSessions(),
        owner: (clientId) => this.table.get(clientId)?.owner,
        publish: () => this.handover?.publishWill,
        tombstone: async (nodeId, clientId) => void (await this.write(SESSIONS_TOPIC, [{ key: enc(`W\u0000${nodeId}\u0000${clientId}`), value: null }])),
        logger,
        currentBrokerId: () => this.broker?.id,
        outcomes: metrics?.counter('tributary_mqtt_fenced_wills_total', 'Wills of devices connected to a node the controller fenced, handled by the leader of __mqtt_sessions, by outcome (published, resumed: the session resumed on another node within the will delay, refused)'),
        rareLog: (msg, fields) => this.limitLog(msg, fields),
      });
    }
  }

  /**
   * A cluster's table of every node's committed wills, and the publisher of those of fenced nodes
   * (fenced-wills.ts); undefined on one node.
   */
  readonly fencedWills: FencedWills | undefined;

  /** True while this node leads `__mqtt_sessions`'s partition (the one publisher of fenced nodes' wills). */
  private leadsSessions(): boolean {
    if (!this.store.describeTopic(SESSIONS_TOPIC)) return false;
    try {
      return this.store.partitionState({ topic: SESSIONS_TOPIC, partition: 0 }).role === 'leader';
    } catch {
      return false; // no replica open here (yet)
    }
  }

  // --- life -----------------------------------------------------------------------------------

  async setup(broker: { id: string }): Promise<void> {
    this.broker = broker;
    await this.mem.setup(broker);
    for (const t of [RETAINED_TOPIC, SESSIONS_TOPIC, OUTGOING_TOPIC]) {
      if (this.store.describeTopic(t)) continue;
      // A cluster's retained table waits for every voter to register, which happens after the
      // doors are up: created in the background (retained writes and the follower wait for it).
      if (t === RETAINED_TOPIC && this.cluster) {
        this.retainedTable = this.createReplicatedTable(t);
        continue;
      }
      if (t === SESSIONS_TOPIC && this.cluster) {
        this.sessionsTable = this.createReplicatedTable(t);
        continue;
      }
      try {
        await this.store.createTopic(t, 1, { 'cleanup.policy': 'compact' });
      } catch (err) {
        if (!(err instanceof BrokerError && err.code === 'TOPIC_ALREADY_EXISTS')) throw err;
      }
    }
    const sessionsExisted = this.store.describeTopic(SESSIONS_TOPIC) !== undefined;
    const { retainedEnd, sessionsEnd } = await this.replay();
    if (this.cluster && this.limits.sessionCheckpointMs) {
      this.checkpointTimer = setInterval(() => void this.checkpoint(), this.limits.sessionCheckpointMs);
      this.checkpointTimer.unref();
    }
    if (this.cluster) {
      this.following = Promise.all([
        this.followTable(RETAINED_TOPIC, retainedEnd, this.retainedTable, (r) => this.applyFollowed(r.key, r.value, r.headers, r.offset)),
        this.followTable(SESSIONS_TOPIC, sessionsEnd, this.sessionsTable, (r) => this.applySessionFollowed(r.key, r.value, r.headers, r.offset)),
      ]).then(() => undefined);
      // in the background: replication starts after the listeners (see the method)
      this.orphansPublished = this.publishOrphanWillsWhenCaughtUp(sessionsExisted).catch((err: Error) => this.logger.warn({ err: err.message }, 'mqtt: publishing the wills of the previous run failed'));
      if (this.cluster.nodeFenced) this.fencedWills?.start();
    }
  }

  /**
   * A cluster's restart: the wills of this node's previous run still committed are published
   * once the view caught up (fenced-wills.ts `publishOrphansWhenCaughtUp` says why not before the
   * listeners bind). The barrier: a tombstone of the key `W 0x00 nodeId 0x00` (no client id: no
   * will has it), written through the leader and applied by the follower. A first start (the
   * table being created) has none.
   */
  private publishOrphanWillsWhenCaughtUp(existed: boolean): Promise<void> {
    const wills = this.fencedWills;
    if (!this.cluster || !existed || !wills) return Promise.resolve();
    const signal = this.stopFollowing.signal;
    const key = enc(`W\u0000${this.cluster.nodeId}\u0000`);
    return wills.publishOrphansWhenCaughtUp(async () => {
      const [offset] = await this.write(SESSIONS_TOPIC, [{ key, value: null }]);
      while (!signal.aborted && !(await this.table.waitApplied(offset, FOLLOW_WAIT_MS)));
    }, signal);
  }

  /** A cluster's restart: settles once the previous run's wills were handled (tests). */
  orphansPublished: Promise<void> = Promise.resolve();

  /** Resolves once the retained table exists (at once but for a cluster's first start). */
  private retainedTable: Promise<void> | undefined;
  /** Resolves once a cluster's session table exists. */
  private sessionsTable: Promise<void> | undefined;

  /**
   * A cluster's retained table: one partition on every node (replication factor = voters), so
   * each node serves its subscribers from its own committed replica; flush=always and
   * min.insync.replicas 2 like `__consumer_offsets`. A voter that has not registered yet makes
   * the factor impossible (INVALID_REPLICATION_FACTOR): asked again until `tableCreateWaitMs`,
   * then created at the default, min(3, live nodes) (docs/cluster.md says what that costs).
   */
  private async createReplicatedTable(topic: string): Promise<void> {
    const config = { 'cleanup.policy': 'compact', flush: 'always' };
    const deadline = Date.now() + this.cluster!.tableCreateWaitMs;
    while (!this.stopFollowing.signal.aborted && !this.store.describeTopic(topic)) {
      const atDefault = Date.now() >= deadline;
      try {
        await this.store.createTopicFrom({ name: topic, partitions: 1, replicationFactor: atDefault ? -1 : this.cluster!.voters, config }, { internal: true });
        if (atDefault) this.logger.warn({ topic, voters: this.cluster!.voters }, 'mqtt: not every voter registered in time; the table was created at the default replication factor');
        return;
      } catch (err) {
        const code = err instanceof BrokerError ? err.code : '';
        if (code === 'TOPIC_ALREADY_EXISTS') return;
        // not every voter registered yet; anything else (no controller for a moment) is tried again too
        if (code !== 'INVALID_REPLICATION_FACTOR') this.limitLog('mqtt: creating a replicated table failed; trying again', { topic, err: (err as Error).message });
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  async destroy(): Promise<void> {
    clearInterval(this.checkpointTimer);
    this.fencedWills?.stop();
    this.stopFollowing.abort();
    await this.orphansPublished;
    await this.following;
    await Promise.all([...this.chains.values()]);
    await this.mem.destroy();
  }

  // --- a cluster's retained table, followed on every node --------------------------------------

  private readonly stopFollowing = new AbortController();
  private following: Promise<void> = Promise.resolve();
  /**
   * MQTT topic → offset of the retained record this node's memory holds for it (a cluster only).
   * A record applied here is never replaced by an older one, whichever of the follower and this
   * node's own acknowledged write gets there first. Entries of cleared topics are dropped once the
   * follower passes their tombstone; bounded by the retained topics plus clears in flight.
   */
  private readonly retainedOffsets = new Map<string, number>();

  /**
   * Follows a replicated table's committed records from `from` (where the replay ended) for as
   * long as the gateway runs: what another node retains, clears or does to a session reaches
   * this node, in log order, once committed. Reads at most REPLAY_READ_BYTES at a time; a failed
   * read (the partition not open yet, a restart of its replica) is tried again after FOLLOW_RETRY_MS.
   */
  private async followTable(topic: string, from: number, created: Promise<void> | undefined, apply: (r: { key: Uint8Array | null; value: Uint8Array | null; headers: ReadonlyArray<{ key: string; value: Uint8Array | null }>; offset: number }) => void): Promise<void> {
    const signal = this.stopFollowing.signal;
    await created;
    const tp = { topic, partition: 0 };
    const cursor = new PartitionCursor(this.store, tp, from, { isolation: 'committed', maxBytes: REPLAY_READ_BYTES, onOutOfRange: 'earliest', signal });
    while (!signal.aborted) {
      try {
        if (cursor.caughtUp()) {
          await cursor.wait(FOLLOW_WAIT_MS);
          continue;
        }
        const { records, from: at, nextOffset } = await cursor.read();
        for (const r of records) apply(r);
        if (nextOffset === at) await cursor.wait(FOLLOW_WAIT_MS);
      } catch (err) {
        if (signal.aborted) break;
        this.limitLog(`mqtt: reading the ${topic === RETAINED_TOPIC ? 'retained' : 'session'} table failed; trying again`, { err: (err as Error).message });
        await new Promise((resolve) => setTimeout(resolve, FOLLOW_RETRY_MS));
      }
    }
  }

  private applyFollowed(key: Uint8Array | null, value: Uint8Array | null, headers: ReadonlyArray<{ key: string; value: Uint8Array | null }>, offset: number): void {
    const state: ReplayState = { retained: new Map(), subs: new Map(), wills: new Map(), outgoing: new Map(), expiries: new Map() };
    try {
      applyRetained(state, key, value, new Map(headers.map((h) => [h.key, h.value])));
    } catch (err) {
      this.skippedCounter?.inc({ topic: RETAINED_TOPIC });
      this.limitLog('mqtt: skipping a retained record that does not decode', { offset, err: (err as Error).message });
      return;
    }
    const topic = text(key);
    const r = state.retained.get(topic);
    const held = this.retainedOffsets.get(topic);
    if (held !== undefined && offset <= held) {
      // this node's own write got there first; a clear's entry has served its purpose
      if (offset === held && !r) this.retainedOffsets.delete(topic);
      return;
    }
    if (!r) {
      this.retainedOffsets.delete(topic);
      this.retainedTopics.delete(topic);
      void this.mem.storeRetained({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true });
      return;
    }
    this.retainedOffsets.set(topic, offset);
    const p: AedesPacket = { cmd: 'publish', topic, payload: r.payload, qos: r.qos, retain: true };
    if (r.properties) p.properties = r.properties;
    if (r.messageExpiry !== undefined) p.messageExpiry = r.messageExpiry;
    this.retainedTopics.add(topic);
    void this.mem.storeRetained(p);
  }

  // --- a cluster's sessions: one owner node, handed over (docs/cluster.md) --------------------

  /** Every session of the cluster as the committed session table says (session-table.ts). */
  private readonly table = new SessionTable();
  /**
   * Client id → offset of the owner record by which this node serves the session (the table's
   * owner is this node). Only a later owner record takes it away: the follower may still apply
   * an older one after this node wrote its own.
   */
  private readonly owned = new Map<string, number>();
  /** Set by the gateway in a cluster. */
  handover: HandoverHooks | undefined;
  /** Sessions being loaded by a takeover: offline queueing for them waits (their missed messages go first). */
  private readonly loading = new Map<string, Promise<void>>();
  /** Offline enqueues running now: a release or a position waits for them (the tail counts them handed on). */
  private readonly enqueuing = new Set<Promise<unknown>>();
  /** Payload → the stream record it was read from or appended as: where a queued message sits in the log. */
  private readonly streamPositions = new WeakMap<object, { topic: string; partition: number; offset: number }>();

  /** Notes where a delivery's record is (reverse delivery, a takeover's replay). */
  noteStreamPosition(payload: object, topic: string, partition: number, offset: number): void {
    this.streamPositions.set(payload, { topic, partition, offset });
  }

  /** A record of the session table (replay and follower). Wills (every node's) go to the fenced-will table (fenced-wills.ts). */
  private applySessionRecord(state: ReplayState | undefined, key: Uint8Array | null, value: Uint8Array | null, headers: Map<string, Uint8Array | null>, offset: number): SessionEntryOwner | undefined {
    if (key === null) throw new Error('the record has no key');
    const k = text(key);
    if (k.startsWith('W\u0000')) {
      const rest = k.slice(2);
      const cut = rest.indexOf('\u0000');
      if (cut <= 0) throw new Error('a will key without node 0x00 clientId');
      const node = Number(rest.slice(0, cut));
      if (!Number.isSafeInteger(node) || node < 1) throw new Error(`a will key with node ${JSON.stringify(rest.slice(0, cut))}`);
      const clientId = rest.slice(cut + 1);
      const will = value === null ? null : willOf(clientId, value, headers);
      // this node's own wills of its previous run: published by publishOrphanWillsWhenCaughtUp
      if (!state && node === this.cluster!.nodeId && will === null) this.ownWillGone(clientId, offset);
      this.fencedWills?.apply(node, clientId, will && { packet: will, delayMs: willDelayMsOf(will, headers) }, offset);
      return undefined;
    }
    if (k.startsWith('w\u0000')) return undefined; // a single node's will, from before the cluster: no connection of it is left
    if (k.charCodeAt(1) !== 0) throw new Error(`key ${JSON.stringify(k.slice(0, 16))} is not kind 0x00 clientId`);
    return this.table.apply(k[0], k.slice(2), value, offset, subscriptionsOf);
  }

  /** A committed session record another node (or this one) wrote: another owner takes the session from this node. */
  private applySessionFollowed(key: Uint8Array | null, value: Uint8Array | null, headers: ReadonlyArray<{ key: string; value: Uint8Array | null }>, offset: number): void {
    let owner: SessionEntryOwner | undefined;
    try {
      owner = this.applySessionRecord(undefined, key, value, new Map(headers.map((h) => [h.key, h.value])), offset);
    } catch (err) {
      this.skippedCounter?.inc({ topic: SESSIONS_TOPIC });
      this.limitLog('mqtt: skipping a session record that does not decode', { offset, err: (err as Error).message });
      return;
    } finally {
      this.table.applied(offset);
    }
    const clientId = text(key).slice(2);
    const mine = this.owned.get(clientId);
    if (owner && owner.node !== this.cluster!.nodeId && mine !== undefined && owner.offset > mine) {
      this.owned.delete(clientId);
      void this.release(clientId, owner.clean).catch((err: Error) => this.logger.warn({ clientId, err: err.message }, 'mqtt: releasing a session another node took failed'));
    }
  }

  /**
   * Another node took `clientId`: its connection here is closed (as a same-node takeover does),
   * offline queueing for it stops, its queue here is dropped, and — unless the new owner
   * started clean — the delivery positions are written with `released`, the last write this node
   * makes for the session (the new owner waits for it).
   */
  private release(clientId: string, clean: boolean): Promise<void> {
    return this.serial(clientId, async () => {
      const subs = this.sessions.get(clientId);
      if (subs) {
        // no more offline queueing here: aedes matches offline sessions through this store
        await this.mem.cleanSubscriptions({ id: clientId });
        this.sessions.delete(clientId);
        this.onSessionsChanged();
      }
      await this.handover?.closeClient(clientId);
      const positions = await this.deliveryPositions(clientId, subs ?? this.table.get(clientId)?.subs ?? []);
      await this.dropQueue(clientId);
      this.expiries.delete(clientId);
      this.incoming.delete(clientId);
      if (!clean) await this.write(SESSIONS_TOPIC, [this.positionsRecord(clientId, positions, true)]);
      this.logger.info({ clientId, released: !clean }, 'mqtt: session taken over by another node; released here');
    });
  }

  private positionsRecord(clientId: string, positions: Positions, released: boolean): RecordInput {
    return { key: enc(`p\u0000${clientId}`), value: enc(JSON.stringify({ node: this.cluster!.nodeId, released, positions })) };
  }

  /** Stream topics a session's filters name (all non-internal ones for a wildcard first level). */
  private streamTopicsOf(subs: Sub[]): string[] {
    const router = this.handover?.router;
    if (!router) return [];
    const out = new Set<string>();
    for (const s of subs) {
      if (s.topic.startsWith('$share/')) continue;
      const topics = router.streamTopicsFor(s.topic);
      if (topics === 'all') {
        for (const t of this.store.listTopics()) if (!t.name.startsWith('__')) out.add(t.name);
      } else for (const t of topics) out.add(t);
    }
    return [...out];
  }

  /**
   * The session's delivery positions now: per partition of the topics its filters name, the
   * lowest of where reverse delivery has handed records on (or the previous position, or the
   * high watermark without a reader) and the records of messages still queued or unacknowledged
   * here. A queued message whose record is not known (restored from the queue after a restart)
   * keeps every position at most the previous committed one: redelivered rather than lost.
   */
  private async deliveryPositions(clientId: string, subs: Sub[]): Promise<Positions> {
    await Promise.all([...this.enqueuing]);
    const prev = this.table.get(clientId)?.positions?.positions ?? {};
    const queued = new Map<string, number>();
    let unknown = false;
    for await (const item of this.mem.outgoingStream({ id: clientId })) {
      const p = item as AedesPacket;
      if (p.cmd !== 'publish') continue; // a PUBREL: the device has the message
      const at = this.streamPositions.get(p.payload);
      if (!at) {
        unknown = true;
        continue;
      }
      const k = `${at.topic}\u0000${at.partition}`;
      queued.set(k, Math.min(queued.get(k) ?? Number.MAX_SAFE_INTEGER, at.offset));
    }
    const out: Positions = {};
    for (const topic of this.streamTopicsOf(subs)) {
      const info = this.store.describeTopic(topic);
      if (!info) continue;
      const parts: Record<string, number> = {};
      for (let p = 0; p < info.partitions; p++) {
        const before = prev[topic]?.[p];
        let at = this.handover?.tailPosition(topic, p, 'done') ?? before ?? this.store.offsets({ topic, partition: p }).highWatermark;
        at = Math.min(at, queued.get(`${topic}\u0000${p}`) ?? Number.MAX_SAFE_INTEGER);
        if (unknown && before !== undefined) at = Math.min(at, before);
        parts[p] = at;
      }
      out[topic] = parts;
    }
    return out;
  }

  /**
   * A persistent session connecting here (aedes asks for its subscriptions): this node writes
   * itself as the owner and waits until its follower applied that record, so the view holds
   * every owner before it; a session another node owned is then taken over — this node waits
   * for the old owner's release (at most `handoverWaitMs`: a dead node releases nothing, and
   * what is committed is then the session) and loads it: subscriptions, expiry, and the QoS 1/2
   * messages its filters missed since its delivery positions, queued before anything newer.
   */
  private claim(clientId: string): Promise<void> {
    return this.serial(clientId, async () => {
      if (this.owned.has(clientId)) return;
      await this.sessionsTable;
      const me = this.cluster!.nodeId;
      let before = this.table.get(clientId)?.owner;
      if (before?.node === me) {
        this.owned.set(clientId, before.offset);
        await this.load(clientId, this.table.get(clientId)?.positions?.positions);
        return;
      }
      const [offset] = await this.write(SESSIONS_TOPIC, [{ key: enc(`o\u0000${clientId}`), value: enc(JSON.stringify({ node: me, clean: false })) }]);
      this.owned.set(clientId, offset);
      const seen = await this.table.waitApplied(offset, this.cluster!.handoverWaitMs);
      const e = this.table.get(clientId);
      // the owner before this node's record (or, when the follower lags, the one seen before writing)
      const previous = seen ? (e?.owner?.offset === offset ? e.previous : e?.owner) : before;
      if (!previous || previous.node === me) {
        await this.load(clientId, e?.positions?.positions);
        return;
      }
      before = previous;
      const from = before.node;
      const live = this.cluster!.nodeLive;
      const started = Date.now();
      const released = before.clean ? false : await this.table.waitRelease(clientId, from, offset, this.cluster!.handoverWaitMs, live && (() => !live(from)));
      if (!released && !before.clean) {
        const fenced = live !== undefined && !live(from);
        this.logger.warn({ clientId, from, waitedMs: Date.now() - started }, fenced ? 'mqtt: the session\'s old owner is fenced (taken for dead) and released nothing; loading what is committed' : 'mqtt: the session\'s old owner did not release it in time; loading what is committed');
      }
      await this.load(clientId, this.table.get(clientId)?.positions?.positions);
    });
  }

  private async load(clientId: string, positions: Positions | undefined): Promise<void> {
    const e = this.table.get(clientId);
    if (e?.expiry !== undefined) this.expiries.set(clientId, e.expiry);
    const subs = e?.subs ?? [];
    if (subs.length === 0) return;
    let finish: () => void = () => undefined;
    this.loading.set(clientId, new Promise<void>((resolve) => (finish = resolve)));
    try {
      await this.memAddSubscriptions({ id: clientId }, subs);
      this.sessions.set(clientId, subs);
      // readers start now; what they had not read yet reaches the session through them
      this.handover?.sessionLoaded(subs.map((s) => s.topic).filter((f) => !f.startsWith('$share/')));
      const until = new Map<string, number>();
      for (const [topic, parts] of Object.entries(positions ?? {})) {
        for (const p of Object.keys(parts)) until.set(`${topic}\u0000${p}`, this.handover?.tailPosition(topic, Number(p), 'read') ?? this.store.offsets({ topic, partition: Number(p) }).highWatermark);
      }
      this.onSessionsChanged();
      let queued = 0;
      for (const [topic, parts] of Object.entries(positions ?? {})) {
        for (const [p, from] of Object.entries(parts)) queued += await this.replayMissed(clientId, subs, topic, Number(p), from, until.get(`${topic}\u0000${p}`)!);
      }
      this.logger.info({ clientId, subscriptions: subs.length, queued }, 'mqtt: session taken over from another node');
    } finally {
      this.loading.delete(clientId);
      finish();
    }
  }

  /** Queues for `clientId` the QoS 1/2 messages of partition records [from, until) its filters match. */
  private async replayMissed(clientId: string, subs: Sub[], topic: string, partition: number, from: number, until: number): Promise<number> {
    const h = this.handover;
    if (!h || from >= until || !this.store.describeTopic(topic)) return 0;
    const cursor = new PartitionCursor(this.store, { topic, partition }, from, { isolation: 'committed', maxBytes: REPLAY_READ_BYTES, onOutOfRange: 'earliest' });
    let queued = 0;
    // the queue's bound (offlineMessagesPerClientMax) ends the replay: newer ones would not be queued
    while (cursor.position < until && (this.offlineCount.get(clientId) ?? 0) < this.limits.offlineMessagesPerClientMax) {
      const { records, from: at, nextOffset } = await cursor.read();
      if (nextOffset === at) break;
      for (const r of records) {
        if (r.offset >= until) break;
        let headerTopic: string | undefined;
        let headerQos: number | undefined;
        let publisher: string | undefined;
        for (const hd of r.headers) {
          if (hd.value === null) continue;
          if (hd.key === 'mqtt.topic') headerTopic = text(hd.value);
          else if (hd.key === 'mqtt.qos') headerQos = Number(text(hd.value));
          else if (hd.key === 'mqtt.clientId') publisher = text(hd.value);
        }
        const mqttTopic = h.router.reverse(topic, partition, r.key, headerTopic);
        if (mqttTopic === undefined) continue;
        let qos = -1;
        for (const s of subs) if (!s.topic.startsWith('$share/') && !(s.nl && publisher === clientId) && filterMatches(s.topic, mqttTopic)) qos = Math.max(qos, s.qos);
        qos = Math.min(qos, headerQos === 1 || headerQos === 2 ? headerQos : h.reverseQos);
        if (qos < 1) continue; // QoS 0 is not queued for an offline session
        const { properties, messageExpiry } = headersToProperties(r.headers as Array<{ key: string; value: Uint8Array | null }>);
        if (messageExpiry !== undefined && messageExpiry <= Date.now()) continue;
        const counters = this.broker as unknown as { id: string; counter: number };
        const payload = copy(r.value);
        const packet: AedesPacket = { cmd: 'publish', topic: mqttTopic, payload, qos: qos as 1 | 2, retain: false, dup: false, brokerId: counters.id, brokerCounter: ++counters.counter };
        if (properties) packet.properties = properties;
        if (messageExpiry !== undefined) packet.messageExpiry = messageExpiry;
        this.noteStreamPosition(payload, topic, partition, r.offset);
        await this.outgoingEnqueueCombi([{ clientId }], packet, true, true);
        queued++;
      }
    }
    return queued;
  }

  private checkpointTimer: NodeJS.Timeout | undefined;
  private checkpointing = false;

  /**
   * Every `sessionCheckpointMs`: the delivery positions of the persistent sessions connected here
   * are written where they moved since the committed ones (one session at a time, in its chain),
   * so a takeover after this node dies redelivers at most about one period of what the device
   * acknowledged. A disconnected session's positions were written when it left.
   */
  private async checkpoint(): Promise<void> {
    if (this.checkpointing) return;
    this.checkpointing = true;
    try {
      for (const clientId of [...this.owned.keys()]) {
        if (!this.sessions.has(clientId) || !this.handover?.connected(clientId)) continue;
        await this.serial(clientId, async () => {
          const subs = this.sessions.get(clientId);
          if (!subs || !this.owned.has(clientId)) return;
          const positions = await this.deliveryPositions(clientId, subs);
          if (JSON.stringify(positions) === JSON.stringify(this.table.get(clientId)?.positions?.positions)) return;
          await this.write(SESSIONS_TOPIC, [this.positionsRecord(clientId, positions, false)]);
        }).catch((err: Error) => this.limitLog('mqtt: writing a session\'s delivery positions failed', { clientId, err: err.message }));
      }
    } finally {
      this.checkpointing = false;
    }
  }

  /** A persistent session's connection ended here: its delivery positions are written (a later takeover, even from a dead node, starts there). */
  sessionEnded(clientId: string): void {
    if (!this.cluster || !this.owned.has(clientId)) return;
    void this.serial(clientId, async () => {
      if (!this.owned.has(clientId)) return;
      const subs = this.sessions.get(clientId);
      if (!subs) return;
      await this.write(SESSIONS_TOPIC, [this.positionsRecord(clientId, await this.deliveryPositions(clientId, subs), false)]);
    }).catch((err: Error) => this.limitLog('mqtt: writing a session\'s delivery positions failed', { clientId, err: err.message }));
  }

  /** Filters of every persisted subscription. */
  persistedFilters(): string[] {
    const out: string[] = [];
    for (const subs of this.sessions.values()) for (const s of subs) out.push(s.topic);
    return out;
  }

  /** Rebuilds the state from the topics; returns the offsets after the last retained and session records read. */
  private async replay(): Promise<{ retainedEnd: number; sessionsEnd: number }> {
    const state: ReplayState = { retained: new Map(), subs: new Map(), wills: new Map(), outgoing: new Map(), expiries: this.expiries };
    // a cluster's first start: the tables are still being created (nothing to replay)
    const retainedEnd = this.store.describeTopic(RETAINED_TOPIC) ? await this.scan(RETAINED_TOPIC, (key, value, headers) => applyRetained(state, key, value, headers)) : 0;
    let sessionsEnd = 0;
    if (!this.cluster) await this.scan(SESSIONS_TOPIC, (key, value, headers) => applySession(state, key, value, headers));
    else if (this.store.describeTopic(SESSIONS_TOPIC)) {
      sessionsEnd = await this.scan(SESSIONS_TOPIC, (key, value, headers, offset) => {
        this.table.applied(offset);
        this.applySessionRecord(state, key, value, headers, offset);
      });
      // this node serves the sessions the table says it owns; the others stay in the view
      for (const clientId of this.table.ownedBy(this.cluster.nodeId)) {
        const e = this.table.get(clientId)!;
        this.owned.set(clientId, e.owner!.offset);
        if (e.subs) state.subs.set(clientId, e.subs);
        if (e.expiry !== undefined) state.expiries.set(clientId, e.expiry);
      }
    }
    await this.scan(OUTGOING_TOPIC, (key, value, headers) => applyOutgoing(state, key, value, headers));
    const { retained, subs, wills, outgoing } = state;
    for (const [topic, r] of retained) {
      if (r.messageExpiry !== undefined && r.messageExpiry <= Date.now()) continue; // expired while the broker was down
      const p: AedesPacket = { cmd: 'publish', topic, payload: r.payload, qos: r.qos, retain: true };
      if (r.properties) p.properties = r.properties;
      if (r.messageExpiry !== undefined) p.messageExpiry = r.messageExpiry;
      await this.mem.storeRetained(p);
      this.retainedTopics.add(topic);
    }
    for (const [clientId, s] of subs) {
      await this.memAddSubscriptions({ id: clientId }, s);
      this.sessions.set(clientId, s);
    }
    for (const [clientId, w] of wills) {
      // putWill stamps the current broker id; the original one tells a cut session apart
      const brokerId = w.brokerId;
      await this.mem.putWill({ id: clientId }, w);
      w.brokerId = brokerId;
    }
    const stale: RecordInput[] = [];
    for (const [k, p] of outgoing) {
      const clientId = k.split('\u0000')[0];
      // a cluster: a session another node took while this one was down is not served here (its queue here is dropped)
      if (this.cluster && !this.owned.has(clientId)) {
        stale.push({ key: enc(k), value: null });
        continue;
      }
      this.outgoingHeld.add(clientId);
      await this.mem.outgoingEnqueue({ clientId }, p);
      this.offlineCount.set(clientId, (this.offlineCount.get(clientId) ?? 0) + 1);
    }
    await this.write(OUTGOING_TOPIC, stale);
    this.logger.info({ retained: retained.size, sessions: subs.size, wills: wills.size, queued: outgoing.size, skipped: this.skippedOnReplay }, 'mqtt: state restored from the log');
    return { retainedEnd, sessionsEnd };
  }

  /** Records of the state topics skipped on replay because they did not decode. */
  skippedOnReplay = 0;

  /**
   * Reads a whole internal topic in order, through the one partition reader: a position that
   * leaves the log (retention racing the restore) is an error, not a silent skip. A record that
   * does not decode is skipped, logged (the first few) and counted, never a reason to stay down
   * (the same rule as CompactedTable's; damaged batches are skipped by the broker's read).
   */
  private async scan(topic: string, apply: (key: Uint8Array | null, value: Uint8Array | null, headers: Map<string, Uint8Array | null>, offset: number) => void): Promise<number> {
    const cursor = await PartitionCursor.open(this.store, { topic, partition: 0 }, { kind: 'earliest' }, { maxBytes: REPLAY_READ_BYTES, onOutOfRange: 'fail' });
    let skipped = 0;
    while (!cursor.caughtUp()) {
      // decoded by the cursor: records below the position and control batches already dropped
      const { records, from, nextOffset } = await cursor.read();
      if (nextOffset === from) break; // nothing readable below the visible end
      for (const r of records) {
        const headers = new Map<string, Uint8Array | null>();
        for (const h of r.headers) headers.set(h.key, h.value);
        try {
          apply(r.key, r.value, headers, r.offset);
        } catch (err) {
          skipped++;
          this.skippedOnReplay++;
          this.skippedCounter?.inc({ topic });
          if (skipped <= SKIP_WARNINGS_MAX) this.logger.warn({ topic, partition: 0, offset: r.offset, err: (err as Error).message }, 'mqtt: skipping a state record that does not decode');
        }
      }
    }
    if (skipped > SKIP_WARNINGS_MAX) this.logger.warn({ topic, skipped }, 'mqtt: skipped state records that did not decode');
    return cursor.position;
  }

  /** Appends state records durably (acks=all); resolves with their offsets, in order. */
  private write(topic: string, records: RecordInput[]): Promise<number[]> {
    // a cluster's first start: the session table is written once it exists at its replication factor
    if (topic === SESSIONS_TOPIC && this.sessionsTable) return this.sessionsTable.then(() => this.writeNow(topic, records));
    return this.writeNow(topic, records);
  }

  private writeNow(topic: string, records: RecordInput[]): Promise<number[]> {
    if (records.length === 0) return Promise.resolve([]);
    return new Promise<number[]>((resolve, reject) => {
      let left = records.length;
      let failed: Error | null = null;
      const offsets = new Array<number>(records.length).fill(-1);
      records.forEach((r, i) => {
        const bytes = (r.key?.length ?? 0) + (r.value?.length ?? 0) + 64;
        this.batcher.append(topic, 0, r, bytes, true, (err, offset) => {
          failed ??= err;
          if (offset !== undefined) offsets[i] = offset;
          if (--left === 0) {
            if (failed) reject(failed);
            else resolve(offsets);
          }
        });
      });
    });
  }

  private serial(clientId: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.chains.get(clientId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.chains.set(clientId, tail);
    void tail.then(() => {
      if (this.chains.get(clientId) === tail) this.chains.delete(clientId);
    });
    return next;
  }

  private limitLog(msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.lastLimitLogMs < 5_000) return;
    this.lastLimitLogMs = now;
    this.logger.warn(fields, msg);
  }

  // --- retained -------------------------------------------------------------------------------

  /** Payloads already stored by `storeRetainedBeforeAck` (aedes' own later call is skipped). */
  private readonly storedEarly = new WeakSet<object>();

  /**
   * Stores a retained publish before its PUBACK (aedes stores retained messages only after
   * acknowledging). aedes' own call for the same packet carries the same payload buffer and
   * is then skipped.
   */
  storeRetainedBeforeAck(packet: AedesPacket): Promise<void> {
    if (typeof packet.payload !== 'string') this.storedEarly.add(packet.payload);
    return this.storeRetained(packet, true);
  }

  storeRetained(packet: AedesPacket, early = false): Promise<void> {
    if (!early && typeof packet.payload !== 'string' && this.storedEarly.has(packet.payload)) {
      this.storedEarly.delete(packet.payload);
      return SETTLED_NOW;
    }
    // serialised per topic: aedes stores a retained message after the PUBACK, so the next
    // publish to the same topic can arrive while the previous store is still being appended
    return this.serial(RETAINED_CHAIN + packet.topic, async () => {
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      const remove = payload.length === 0;
      if (!remove && !this.retainedTopics.has(packet.topic) && this.retainedTopics.size >= this.limits.retainedMessagesMax) {
        this.dropped.retained++;
        this.limitLog('mqtt: retained message not kept: retainedMessagesMax reached', { topic: packet.topic, retainedMessagesMax: this.limits.retainedMessagesMax });
        return;
      }
      // In a cluster a clear is always written: another node's retained message may not have
      // reached this node's follower yet, and skipping the tombstone would leave it everywhere.
      if (remove && !this.retainedTopics.has(packet.topic) && !this.cluster) return;
      // a cluster's first start: written once the table exists at its replication factor
      if (this.retainedTable) await this.retainedTable;
      const headers = [{ key: 'qos', value: enc(String(packet.qos)) }];
      const stored: AedesPacket = { ...packet, payload };
      const props = packet.properties as Record<string, unknown> | undefined;
      if (props && !remove) {
        const { topicAlias: _alias, subscriptionIdentifier: _sid, ...kept } = props;
        stored.properties = kept;
        headers.push({ key: 'props', value: enc(JSON.stringify(propsToJson(kept))) });
        // MQTT 5 §3.3.2.3.3: a retained message expires too; aedes' own call has the absolute time
        const interval = kept.messageExpiryInterval;
        stored.messageExpiry ??= typeof interval === 'number' && interval > 0 ? Date.now() + interval * 1000 : undefined;
        if (stored.messageExpiry === undefined) delete stored.messageExpiry;
        else headers.push({ key: 'expiresAtMs', value: enc(String(stored.messageExpiry)) });
      }
      const [offset] = await this.write(RETAINED_TOPIC, [{ key: enc(packet.topic), value: remove ? null : payload, headers }]);
      if (this.cluster && offset >= 0) {
        // the follower may have applied a newer record of this topic (another node's) already
        const held = this.retainedOffsets.get(packet.topic);
        if (held !== undefined && held >= offset) return;
        this.retainedOffsets.set(packet.topic, offset);
      }
      await this.mem.storeRetained(stored);
      if (remove) this.retainedTopics.delete(packet.topic);
      else this.retainedTopics.add(packet.topic);
    });
  }

  /** False when a retained publish to `topic` would be dropped at retainedMessagesMax. */
  canRetain(topic: string, payload: Buffer | string): boolean {
    return payload.length === 0 || this.retainedTopics.has(topic) || this.retainedTopics.size < this.limits.retainedMessagesMax;
  }

  /**
   * The retained messages matching `patterns`, once every retained store already started has
   * finished. A store becomes visible when durable, and a QoS 0 one is started but not awaited:
   * a SUBSCRIBE handled meanwhile (even the publisher's own next packet) would miss it, where
   * MQTT-3.3.1-5 stores it "so that it can be delivered to future subscribers" (differential
   * seed 409245). Waits only for stores in flight (one chain per topic, bounded by the topics).
   */
  private retainedAfterStores(read: () => Readable): Readable {
    const pending: Promise<void>[] = [];
    for (const [key, chain] of this.chains) if (key.startsWith(RETAINED_CHAIN)) pending.push(chain);
    return Readable.from(
      (async function* () {
        if (pending.length > 0) await Promise.all(pending);
        // The set is taken whole, now: the memory store's stream walks the live map lazily, one
        // message per write callback, so a retained message stored or cleared while a slow
        // subscriber drains would change what this SUBSCRIBE gets (MQTT-3.3.1-6 sends what is
        // retained when the subscription is made). An array of references to the stored
        // packets, bounded by retainedMessagesMax.
        const matched: unknown[] = [];
        for await (const p of read()) matched.push(p);
        yield* matched;
      })(),
      { objectMode: true },
    );
  }

  createRetainedStream(pattern: string): Readable {
    return this.retainedAfterStores(() => this.mem.createRetainedStream(pattern));
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    return this.retainedAfterStores(() => this.mem.createRetainedStreamCombi(patterns));
  }

  // --- subscriptions --------------------------------------------------------------------------

  addSubscriptions(client: ClientLike, subs: Sub[]): Promise<void> {
    return this.serial(client.id, async () => {
      if (!this.sessions.has(client.id) && this.sessions.size >= this.limits.persistentSessionsMax) {
        throw new BrokerError('LIMIT_EXCEEDED', `persistentSessionsMax (${this.limits.persistentSessionsMax}) reached: session of ${client.id} not stored`);
      }
      // placeholders of shared subscriptions (share-adapter.ts): a granted one is stored under its real name
      const real = subs.filter((s) => !isHiddenShare(s.topic));
      if (real.length > 0) await this.memAddSubscriptions(client, real);
      await this.saveSubscriptions(client);
    });
  }

  removeSubscriptions(client: ClientLike, topics: string[]): Promise<void> {
    return this.serial(client.id, async () => {
      await this.mem.removeSubscriptions(client, topics);
      await this.saveSubscriptions(client);
    });
  }

  cleanSubscriptions(client: ClientLike): Promise<void> {
    // a clean start (aedes asks before its CONNACK) of a client id another node holds: taken over
    if (this.cluster && (client as { connackSent?: boolean }).connackSent === false) return this.cleanStart(client.id);
    return this.serial(client.id, async () => {
      if (!this.sessions.has(client.id)) return;
      await this.mem.cleanSubscriptions(client);
      await this.saveSubscriptions(client);
    });
  }

  /**
   * A clean start in a cluster whose client id another node owns: this node becomes the owner
   * of an empty session (`clean`: nothing to hand over, no wait), the old owner closes its
   * connection and drops what it held. Without an owner record elsewhere nothing is written.
   */
  private cleanStart(clientId: string): Promise<void> {
    return this.serial(clientId, async () => {
      const owner = this.table.get(clientId)?.owner;
      if (!owner || owner.node === this.cluster!.nodeId) return;
      await this.sessionsTable;
      const gone = (kind: string) => ({ key: enc(`${kind}\u0000${clientId}`), value: null });
      const [offset] = await this.write(SESSIONS_TOPIC, [{ key: enc(`o\u0000${clientId}`), value: enc(JSON.stringify({ node: this.cluster!.nodeId, clean: true })) }, gone('s'), gone('e'), gone('p')]);
      this.owned.set(clientId, offset);
    });
  }

  private async saveSubscriptions(client: ClientLike): Promise<void> {
    const subs = await this.mem.subscriptionsByClient(client);
    const had = this.sessions.has(client.id);
    if (subs.length === 0 && !had) return;
    // a cluster: the session's delivery positions go with its filters (a takeover replays from them)
    const records: RecordInput[] = [{ key: enc(`s\u0000${client.id}`), value: subs.length === 0 ? null : enc(JSON.stringify(subs)) }];
    if (this.cluster) {
      if (!this.owned.has(client.id)) return; // taken over meanwhile: the new owner's to write
      records.push(subs.length === 0 ? { key: enc(`p\u0000${client.id}`), value: null } : this.positionsRecord(client.id, await this.deliveryPositions(client.id, subs), false));
    }
    await this.write(SESSIONS_TOPIC, records);
    if (subs.length === 0) this.sessions.delete(client.id);
    else this.sessions.set(client.id, subs);
    this.onSessionsChanged();
  }

  /**
   * A session's `$share/...` subscriptions come back as placeholders: past aedes' own MQTT 5
   * refusal to the shared-subscription module (share-adapter.ts). aedes asks when a persistent
   * session connects: in a cluster the session is claimed first (`claim`).
   */
  async subscriptionsByClient(client: ClientLike): Promise<Sub[]> {
    if (this.cluster) await this.claim(client.id);
    return (await this.mem.subscriptionsByClient(client)).map((s) => {
      if (!s.topic.startsWith('$share/')) return s;
      const copy = { ...s };
      hideShare(copy);
      return copy;
    });
  }

  countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return this.mem.countOffline();
  }

  /**
   * True from the first subscription stored in the memory store on (a persistent session's),
   * set before it is stored, never reset. Until then no publish can match a stored subscription,
   * and the questions aedes asks for every QoS 1/2 publish (`subscriptionsByTopic`, then
   * `outgoingEnqueueCombi` with what it found) are answered without the matcher.
   */
  private subscriptionsStored = false;

  private memAddSubscriptions(client: ClientLike, subs: Sub[]): Promise<void> {
    this.subscriptionsStored = true;
    return this.mem.addSubscriptions(client, subs);
  }

  subscriptionsByTopic(pattern: string): Promise<Sub[]> {
    if (!this.subscriptionsStored) return Promise.resolve([]);
    return this.mem.subscriptionsByTopic(pattern);
  }

  getClientList(topic: string): Readable {
    return this.mem.getClientList(topic);
  }

  // --- offline queue --------------------------------------------------------------------------

  private outgoingKey(clientId: string, p: AedesPacket): string {
    return `${clientId}\u0000${p.brokerId}\u0000${p.brokerCounter}`;
  }

  async outgoingEnqueue(sub: { clientId: string }, packet: AedesPacket): Promise<void> {
    await this.outgoingEnqueueCombi([sub], packet);
  }

  /** brokerId 0x00 brokerCounter of publishes queued by `enqueueBeforeAck` (aedes' own later call is skipped). */
  private readonly enqueuedEarly = new Set<string>();

  /**
   * Queues a QoS 1/2 publish for the persistent sessions subscribed to it before its PUBACK
   * (aedes queues only after acknowledging). The packet carries the brokerId and
   * brokerCounter aedes will give it, so aedes' own call for it is recognised and skipped.
   */
  enqueueBeforeAck(packet: AedesPacket): Promise<void> | undefined {
    // without a persistent session nothing is queued: undefined, so the caller waits for no promise
    if (this.sessions.size === 0) return undefined;
    return this.enqueueForSessions(packet);
  }

  private async enqueueForSessions(packet: AedesPacket): Promise<void> {
    const subs = await this.mem.subscriptionsByTopic(packet.topic);
    if (subs.length === 0) return;
    const id = `${packet.brokerId}\u0000${packet.brokerCounter}`;
    if (this.enqueuedEarly.size >= EARLY_MARKS_MAX) this.enqueuedEarly.delete(this.enqueuedEarly.values().next().value!);
    this.enqueuedEarly.add(id);
    await this.outgoingEnqueueCombi(subs as Array<{ clientId: string }>, packet, true);
  }

  outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: AedesPacket, early = false, replayed = false): Promise<void> {
    // aedes' call for every QoS 1/2 publish that no persistent session wants: nothing to queue,
    // and no early mark of this packet to take back (marks are made only for a non-empty list)
    if (subs.length === 0 && this.enqueuedEarly.size === 0) return SETTLED_NOW;
    if (!this.cluster) return this.enqueue(subs, packet, early);
    const running = (async () => {
      // a session being taken over gets its missed messages first (`load`), then this one
      if (!replayed && this.loading.size > 0) for (const s of subs) await this.loading.get(s.clientId);
      await this.enqueue(subs, packet, early);
    })();
    this.enqueuing.add(running);
    const done = () => this.enqueuing.delete(running);
    running.then(done, done);
    return running;
  }

  private async enqueue(subs: Array<{ clientId: string }>, packet: AedesPacket, early: boolean): Promise<void> {
    if (!early && this.enqueuedEarly.delete(`${packet.brokerId}\u0000${packet.brokerCounter}`)) return;
    const accepted: Array<{ clientId: string }> = [];
    const sessions = new Set<string>();
    for (const s of subs) {
      // the memory store's matcher lets "#" and "+/…" match "$…" topics; MQTT-4.7.2-1 does not
      const filter = (s as { topic?: string }).topic;
      if (packet.topic.startsWith('$') && filter !== undefined && (filter.startsWith('#') || filter.startsWith('+'))) continue;
      // one copy per session, however many of its subscriptions match: the delivery is one copy
      // (outbound.ts), and a second stored copy would be resent after the first was acknowledged
      if (sessions.has(s.clientId)) continue;
      sessions.add(s.clientId);
      const n = this.offlineCount.get(s.clientId) ?? 0;
      if (n >= this.limits.offlineMessagesPerClientMax) {
        this.dropped.offline++;
        this.limitLog('mqtt: message not queued for an offline session: offlineMessagesPerClientMax reached', { clientId: s.clientId, offlineMessagesPerClientMax: this.limits.offlineMessagesPerClientMax });
        continue;
      }
      this.offlineCount.set(s.clientId, n + 1);
      accepted.push(s);
    }
    if (accepted.length === 0) return;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const props = packet.properties as Record<string, unknown> | undefined;
    let messageExpiry = packet.messageExpiry as number | undefined;
    if (messageExpiry === undefined && typeof props?.messageExpiryInterval === 'number' && props.messageExpiryInterval > 0) {
      // queued before aedes stamped the absolute expiry (enqueueBeforeAck): the clock started at receipt
      messageExpiry = Date.now() + props.messageExpiryInterval * 1000;
      packet.messageExpiry = messageExpiry;
    }
    const meta = enc(JSON.stringify({ topic: packet.topic, qos: packet.qos, retain: packet.retain, properties: propsToJson(props), messageExpiry }));
    try {
      await this.write(
        OUTGOING_TOPIC,
        accepted.map((s) => ({ key: enc(this.outgoingKey(s.clientId, packet)), value: payload, headers: [{ key: 'msg', value: meta }] })),
      );
    } catch (err) {
      for (const s of accepted) this.offlineCount.set(s.clientId, (this.offlineCount.get(s.clientId) ?? 1) - 1);
      throw err;
    }
    for (const s of accepted) this.outgoingHeld.add(s.clientId);
    await this.mem.outgoingEnqueueCombi(accepted, packet);
  }

  /** Numbers the stored PUBRELs (see outgoingUpdate); negative, so never a message's brokerCounter. */
  private pubrelCounter = 0;

  /**
   * `outgoingKey`s of replayed PUBLISHes the session was already sent (they had a packet id, or
   * this process sent them): aedes hands each to outgoingUpdate as a fresh packet right before
   * writing it, and that copy gets DUP 1 (MQTT-3.3.1-1). A message queued while the client was
   * away is a first delivery (DUP 0). After a broker restart the stored copy has no packet id,
   * so a resend then goes with DUP 0 (the flag is advisory, MQTT-3.3.1-3). The stored packet is
   * never changed (aedes-persistence's contract). Bounded by the sessions' queues.
   */
  private readonly resends = new Set<string>();

  /** Sets DUP on a PUBLISH sent again to its session (MQTT-3.3.1-1); see `resends`. */
  protected markResend(packet: AedesPacket): void {
    packet.dup = true;
  }

  async outgoingUpdate(client: ClientLike, packet: AedesPacket): Promise<void> {
    this.outgoingHeld.add(client.id);
    if (packet.cmd === 'publish' && packet.brokerId !== undefined && packet.messageId !== undefined) {
      const key = this.outgoingKey(client.id, packet);
      if (this.resends.delete(key)) this.markResend(packet);
      this.inflightKeys.set(`${client.id}\u0000${packet.messageId}`, key);
      if (packet.qos > 0) this.sentQoS.set(key, packet.qos);
    }
    if (packet.cmd !== 'pubrel') return this.mem.outgoingUpdate(client, packet);
    // aedes-persistence's memory store looks for the entry to update by brokerId first and by
    // packet id only for entries of another brokerId. A PUBREL carries no brokerId, so the
    // PUBREL stored for an earlier PUBREC (no brokerId, no brokerCounter either) "matched" the
    // next one: it was renamed to the new packet id, and the PUBLISH it should have replaced
    // stayed in the session — acknowledged with PUBCOMP yet sent again on every reconnect, an
    // exactly-once message delivered twice (MQTT-4.3.3, MQTT-4.4.0-1; differential seed 409514).
    // A counter of its own (negative: never a message's) keeps each stored PUBREL apart.
    packet.brokerCounter = --this.pubrelCounter;
    // PUBREC of a QoS 2 delivery aedes never stored: a retained message sent on SUBSCRIBE (its
    // deliverQoS keeps no copy of those). Nothing to update; the flow goes on with PUBREL
    // rather than the connection being closed on 'no such packet'.
    await this.mem.outgoingUpdate(client, packet).catch(() => undefined);
  }

  outgoingClearMessageId(client: ClientLike, packet: AedesPacket): Promise<AedesPacket | undefined> {
    this.gateOf(client)?.unreserve(packet);
    // a clean session's PUBACK (aedes asks for every one): nothing was ever queued for it in
    // `mem` and nothing of ours is noted, so there is nothing to remove — no promises per ack
    if (!this.outgoingHeld.has(client.id) && this.inflightKeys.size === 0) return NOTHING_REMOVED;
    return this.clearOutgoing(client, packet);
  }

  private async clearOutgoing(client: ClientLike, packet: AedesPacket): Promise<AedesPacket | undefined> {
    const removed = await this.mem.outgoingClearMessageId(client, packet);
    // a clean session's PUBACK (aedes asks for every one): nothing stored, nothing of ours noted
    if (removed === undefined && this.inflightKeys.size === 0) return undefined;
    const idKey = `${client.id}\u0000${packet.messageId}`;
    // shared subscriptions: an in-memory entry only, never counted nor stored
    if (removed && this.sharedDeliveries.delete(this.outgoingKey(client.id, removed))) {
      this.inflightKeys.delete(idKey);
      return removed;
    }
    const key = this.inflightKeys.get(idKey) ?? (removed?.brokerId !== undefined ? this.outgoingKey(client.id, removed) : undefined);
    this.inflightKeys.delete(idKey);
    if (key !== undefined) {
      this.sentQoS.delete(key);
      this.resends.delete(key);
    }
    if (removed) {
      const n = (this.offlineCount.get(client.id) ?? 1) - 1;
      if (n <= 0) this.offlineCount.delete(client.id);
      else this.offlineCount.set(client.id, n);
    }
    // the acknowledgement is not waited on by anyone who could lose data: a lost tombstone
    // means one redelivery after a crash, which QoS 1 allows
    if (key !== undefined && removed) await this.write(OUTGOING_TOPIC, [{ key: enc(key), value: null }]);
    return removed;
  }

  // --- shared subscriptions (gateway/mqtt/shared-subscriptions.ts) ---------------------------

  /** `outgoingKey`s of shared-subscription deliveries in flight to persistent sessions (in memory only). */
  private readonly sharedDeliveries = new Set<string>();

  /**
   * A shared-subscription delivery to a persistent session: aedes must find it on PUBACK,
   * PUBREC and PUBCOMP, but it is neither stored nor counted against the offline queue — the
   * consumer group, not the session, delivers it again when it is never acknowledged.
   */
  async trackSharedDelivery(clientId: string, packet: AedesPacket): Promise<void> {
    this.sharedDeliveries.add(this.outgoingKey(clientId, packet));
    this.outgoingHeld.add(clientId);
    await this.mem.outgoingEnqueue({ clientId }, packet);
  }

  /** The connection closed: its unacknowledged shared deliveries leave the session (bounded by what was in flight). */
  async dropSharedDeliveries(clientId: string, packets: AedesPacket[]): Promise<void> {
    for (const p of packets) {
      if (!this.sharedDeliveries.delete(this.outgoingKey(clientId, p))) continue;
      this.inflightKeys.delete(`${clientId}\u0000${p.messageId}`);
      await this.mem.outgoingClearMessageId({ id: clientId }, p).catch(() => undefined);
    }
  }

  outgoingStream(client: ClientLike): Readable {
    const src = this.mem.outgoingStream(client);
    const gate = this.gateOf(client);
    const sentQoS = (p: AedesPacket) => this.sentQoS.get(this.outgoingKey(client.id, p));
    const keyOf = (p: AedesPacket) => this.outgoingKey(client.id, p);
    const resends = this.resends;
    return Readable.from(
      (async function* () {
        for await (const item of src) {
          const p = item as AedesPacket;
          const sent = p.cmd === 'publish' ? sentQoS(p) : undefined;
          if (sent !== undefined && sent < p.qos) p.qos = sent as 0 | 1 | 2;
          if (p.cmd === 'publish' && p.brokerId !== undefined && (sent !== undefined || p.messageId !== undefined)) resends.add(keyOf(p));
          // the replay waits for room in the client's Receive Maximum window before each message
          if (gate) await gate.reserve(p);
          yield p;
        }
      })(),
    );
  }

  // --- inbound QoS 2 (memory only, see the crash policy above) --------------------------------

  async incomingStorePacket(client: ClientLike, packet: AedesPacket): Promise<void> {
    let table = this.incoming.get(client.id);
    if (!table) this.incoming.set(client.id, (table = new Map()));
    if (!table.has(packet.messageId!) && table.size >= this.limits.qos2InflightInboundMax) {
      throw new BrokerError('LIMIT_EXCEEDED', `qos2InflightInboundMax (${this.limits.qos2InflightInboundMax}) QoS 2 publishes of ${client.id} await PUBREL`);
    }
    table.set(packet.messageId!, { cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: packet.qos, dup: packet.dup ?? false, retain: packet.retain, messageId: packet.messageId });
  }

  async incomingGetPacket(client: ClientLike, packet: AedesPacket): Promise<AedesPacket> {
    const p = this.incoming.get(client.id)?.get(packet.messageId!);
    if (!p) throw new Error('no such packet');
    return p;
  }

  async incomingDelPacket(client: ClientLike, packet: AedesPacket): Promise<void> {
    const table = this.incoming.get(client.id);
    if (!table?.delete(packet.messageId!)) throw new Error('no such packet');
    if (table.size === 0) this.incoming.delete(client.id);
  }

  /** Drops the client's inbound QoS 2 table (GHSA-p8r9-qf8w-p73r). */
  async cleanIncoming(client: ClientLike): Promise<void> {
    this.incoming.delete(client.id);
  }

  /** Inbound QoS 2 publishes awaiting PUBREL (tests, diagnostics). */
  incomingCount(clientId: string): number {
    return this.incoming.get(clientId)?.size ?? 0;
  }

  // --- session expiry (MQTT 5) ------------------------------------------------------------------

  /** Records (or, with null, clears) when a disconnected session expires, durably. */
  setSessionExpiry(clientId: string, expiresAtMs: number | null): Promise<void> {
    return this.serial(clientId, async () => {
      if (expiresAtMs === null && !this.expiries.has(clientId)) return;
      if (this.cluster && !this.owned.has(clientId)) return; // another node's session now
      await this.write(SESSIONS_TOPIC, [{ key: enc(`e\u0000${clientId}`), value: expiresAtMs === null ? null : enc(String(expiresAtMs)) }]);
      if (expiresAtMs === null) this.expiries.delete(clientId);
      else this.expiries.set(clientId, expiresAtMs);
    });
  }

  /**
   * Drops an expired session of a client that is not connected: subscriptions, queued messages
   * (their records tombstoned), will, inbound QoS 2 table and the expiry record.
   */
  async wipeSession(clientId: string): Promise<void> {
    const client = { id: clientId };
    await this.cleanSubscriptions(client);
    await this.dropQueue(clientId);
    await this.delWill(client);
    this.incoming.delete(clientId);
    await this.setSessionExpiry(clientId, null);
  }

  /** Drops a session's queued messages here (their records in this node's `__mqtt_outgoing` tombstoned). */
  private async dropQueue(clientId: string): Promise<void> {
    const client = { id: clientId };
    const queued: AedesPacket[] = [];
    for await (const p of this.mem.outgoingStream(client)) queued.push(p as AedesPacket);
    let id = 0;
    for (const p of queued) {
      // aedes-persistence removes a queued message by packet id; give unsent ones a unique one
      if (p.messageId === undefined) p.messageId = 70_000 + ++id;
      await this.outgoingClearMessageId(client, p);
      if (p.brokerId !== undefined) await this.write(OUTGOING_TOPIC, [{ key: enc(this.outgoingKey(clientId, p)), value: null }]);
    }
    this.offlineCount.delete(clientId);
    this.outgoingHeld.delete(clientId); // the queue is empty: a PUBACK finds nothing there again
  }

  // --- wills ----------------------------------------------------------------------------------

  async putWill(client: ClientLike, packet: AedesPacket): Promise<void> {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    // as aedes times a will on this node (client.js): the delay, capped by the session's expiry
    const c = client as ClientLike & { version?: number; sessionExpiryInterval?: number };
    const willDelayS = c.version === 5 ? Number((packet.properties as { willDelayInterval?: number } | undefined)?.willDelayInterval ?? 0) : 0;
    const delayMs = Math.max(0, Math.min(willDelayS, c.sessionExpiryInterval ?? 0)) * 1000;
    this.ownWills.delete(client.id);
    const [offset] = await this.write(SESSIONS_TOPIC, [
      {
        key: enc(this.willKey(client.id)),
        value: payload,
        headers: [{ key: 'will', value: enc(JSON.stringify({ topic: packet.topic, qos: packet.qos, retain: packet.retain, brokerId: this.broker?.id, properties: propsToJson(packet.properties), delayMs })) }],
      },
    ]);
    if (this.cluster && offset >= 0) this.ownWills.set(client.id, offset);
    await this.mem.putWill(client, packet);
  }

  getWill(client: ClientLike): Promise<AedesPacket | undefined> {
    return this.mem.getWill(client);
  }

  async delWill(client: ClientLike): Promise<AedesPacket | undefined> {
    const will = await this.mem.delWill(client);
    // forgotten before the tombstone is written: the follower then does not take it for another node's
    this.ownWills.delete(client.id);
    if (will) await this.write(SESSIONS_TOPIC, [{ key: enc(this.willKey(client.id)), value: null }]);
    return will;
  }

  /**
   * A cluster: client id → offset of the will record this process wrote for a connection here
   * (putWill), until this node removes it itself (delWill). Bounded by the connections.
   */
  private readonly ownWills = new Map<string, number>();

  /**
   * A tombstone of one of this node's will records, committed (the follower). Written by this
   * node, the entry is gone already. Otherwise another node wrote it: the leader of
   * `__mqtt_sessions` published the will while the controller had this node fenced (cut off,
   * not dead: the device is still connected here). For the cluster that connection ended, so it
   * is closed here without a second copy of the will; the device reconnects (anywhere) and
   * leaves a new will (docs/cluster.md "Wills of a node that died").
   */
  private ownWillGone(clientId: string, offset: number): void {
    const mine = this.ownWills.get(clientId);
    if (mine === undefined || offset <= mine) return;
    this.ownWills.delete(clientId);
    void this.serial(clientId, async () => {
      await this.mem.delWill({ id: clientId });
      this.handover?.closeWithoutWill?.(clientId);
      this.logger.warn({ clientId }, 'mqtt: another node published this device\'s will while this node was fenced; its connection here is closed without publishing the will again');
    }).catch((err: Error) => this.limitLog('mqtt: dropping a will another node published failed', { clientId, err: err.message }));
  }

  /** A will belongs to one connection: in a cluster each node's under its own key. */
  private willKey(clientId: string): string {
    return this.cluster ? `W\u0000${this.cluster.nodeId}\u0000${clientId}` : `w\u0000${clientId}`;
  }

  streamWill(brokers?: Record<string, number>): Readable {
    return this.mem.streamWill(brokers);
  }
}

// --- replay decoders: each throws on a record that is not what its topic's layout (above) says,
// and the replay skips that record (scan) -----------------------------------------------------

interface ReplayState {
  retained: Map<string, { payload: Buffer; qos: 0 | 1 | 2; properties?: Record<string, unknown>; messageExpiry?: number }>;
  subs: Map<string, Sub[]>;
  wills: Map<string, AedesPacket>;
  outgoing: Map<string, AedesPacket>;
  expiries: Map<string, number>;
}

function qosOf(v: unknown, what: string): 0 | 1 | 2 {
  if (v === 0 || v === 1 || v === 2) return v;
  throw new Error(`${what}: QoS ${JSON.stringify(v)} is not 0, 1 or 2`);
}

function jsonOf(bytes: Uint8Array | null | undefined, what: string): unknown {
  if (bytes === null || bytes === undefined) throw new Error(`${what} is missing`);
  try {
    return JSON.parse(text(bytes));
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`);
  }
}

function objectOf(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function timeOf(bytes: Uint8Array | null | undefined, what: string): number | undefined {
  if (bytes === null || bytes === undefined) return undefined;
  const n = Number(text(bytes));
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what}: ${JSON.stringify(text(bytes))} is not a time in ms`);
  return n;
}

function propsOf(bytes: Uint8Array | null | undefined, what: string): Record<string, unknown> | undefined {
  if (bytes === null || bytes === undefined) return undefined;
  return propsFromJson(objectOf(jsonOf(bytes, what), what));
}

function applyRetained(state: ReplayState, key: Uint8Array | null, value: Uint8Array | null, headers: Map<string, Uint8Array | null>): void {
  if (key === null) throw new Error('the record has no key');
  const topic = text(key);
  if (value === null || value.length === 0) {
    state.retained.delete(topic);
    return;
  }
  const qosHeader = headers.get('qos');
  state.retained.set(topic, {
    payload: copy(value),
    qos: qosHeader === undefined || qosHeader === null ? 0 : qosOf(Number(text(qosHeader)), 'header qos'),
    properties: propsOf(headers.get('props'), 'header props'),
    messageExpiry: timeOf(headers.get('expiresAtMs'), 'header expiresAtMs'),
  });
}

function subscriptionsOf(value: Uint8Array): Sub[] {
  const subs = jsonOf(value, 'subscriptions');
  if (!Array.isArray(subs)) throw new Error('subscriptions: not a JSON array');
  for (const s of subs) {
    const o = objectOf(s, 'a subscription');
    if (typeof o.topic !== 'string' || o.topic.length === 0) throw new Error('a subscription has no topic filter');
    qosOf(o.qos, `subscription ${o.topic}`);
  }
  return subs as Sub[];
}

function willOf(clientId: string, value: Uint8Array, headers: Map<string, Uint8Array | null>): AedesPacket {
  const meta = objectOf(jsonOf(headers.get('will'), 'header will'), 'header will');
  if (typeof meta.topic !== 'string' || meta.topic.length === 0) throw new Error('header will: no topic');
  const w: AedesPacket = { cmd: 'publish', topic: meta.topic, payload: copy(value), qos: qosOf(meta.qos, 'header will'), retain: meta.retain === true, brokerId: typeof meta.brokerId === 'string' ? meta.brokerId : undefined, clientId };
  if (meta.properties) w.properties = propsFromJson(objectOf(meta.properties, 'header will: properties'));
  return w;
}

/**
 * How long after its connection was lost a will is due: the `delayMs` its node recorded, or —
 * a record from before that field — its Will Delay Interval (uncapped: later, never earlier).
 */
function willDelayMsOf(will: AedesPacket, headers: Map<string, Uint8Array | null>): number {
  const meta = objectOf(jsonOf(headers.get('will'), 'header will'), 'header will');
  if (typeof meta.delayMs === 'number' && Number.isFinite(meta.delayMs) && meta.delayMs >= 0) return meta.delayMs;
  const interval = (will.properties as { willDelayInterval?: unknown } | undefined)?.willDelayInterval;
  return typeof interval === 'number' && interval > 0 ? interval * 1000 : 0;
}

function applySession(state: ReplayState, key: Uint8Array | null, value: Uint8Array | null, headers: Map<string, Uint8Array | null>): void {
  if (key === null) throw new Error('the record has no key');
  const k = text(key);
  const clientId = k.slice(2);
  const kind = k.slice(0, 2);
  if (kind !== 's\u0000' && kind !== 'e\u0000' && kind !== 'w\u0000') throw new Error(`key ${JSON.stringify(k.slice(0, 16))} is not s/e/w 0x00 clientId`);
  if (kind === 's\u0000') {
    if (value === null) state.subs.delete(clientId);
    else state.subs.set(clientId, subscriptionsOf(value));
  } else if (kind === 'e\u0000') {
    if (value === null) state.expiries.delete(clientId);
    else state.expiries.set(clientId, timeOf(value, 'session expiry')!);
  } else if (value === null) state.wills.delete(clientId);
  else state.wills.set(clientId, willOf(clientId, value, headers));
}

function applyOutgoing(state: ReplayState, key: Uint8Array | null, value: Uint8Array | null, headers: Map<string, Uint8Array | null>): void {
  if (key === null) throw new Error('the record has no key');
  const k = text(key);
  const parts = k.split('\u0000');
  if (parts.length !== 3 || parts[0].length === 0 || !/^-?\d+$/.test(parts[2])) throw new Error(`key ${JSON.stringify(k.slice(0, 32))} is not clientId 0x00 brokerId 0x00 counter`);
  if (value === null) {
    state.outgoing.delete(k);
    return;
  }
  const meta = objectOf(jsonOf(headers.get('msg'), 'header msg'), 'header msg');
  if (typeof meta.topic !== 'string' || meta.topic.length === 0) throw new Error('header msg: no topic');
  const p: AedesPacket = { cmd: 'publish', topic: meta.topic, payload: copy(value), qos: qosOf(meta.qos, 'header msg'), retain: meta.retain === true, brokerId: parts[1], brokerCounter: Number(parts[2]), dup: false };
  if (meta.properties) p.properties = propsFromJson(objectOf(meta.properties, 'header msg: properties'));
  if (meta.messageExpiry !== undefined) {
    if (typeof meta.messageExpiry !== 'number' || !Number.isFinite(meta.messageExpiry)) throw new Error('header msg: messageExpiry is not a number');
    p.messageExpiry = meta.messageExpiry;
  }
  state.outgoing.set(k, p);
}
