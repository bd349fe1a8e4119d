// Shared subscriptions as consumer groups: the members of `$share/{group}/{filter}` share the
// records the way the members of Kafka consumer group `{group}` do, and a Kafka consumer (or a
// WebSocket dashboard) in group `{group}` shares the same stream with the MQTT devices.
//
// The mapping, one MQTT member = one client's shared subscription = one group member:
// - the member joins `{group}` through the group coordinator's JS API (host/broker/groups), the
//   same joins, generations and committed offsets the Kafka door uses, with protocol type
//   "consumer" and Kafka's ConsumerProtocol subscription listing the stream topics its filter
//   can reach (Router.streamTopicsFor; a filter whose first level is a wildcard lists every
//   non-internal topic, at most `topicsMax`). Offered assignors: "range", "roundrobin" (Java)
//   and "RoundRobinAssigner" (kafkajs); when an MQTT member leads it assigns round-robin over
//   sorted (topic, partition), as the WebSocket gateway does (gateway/ws/group-session.ts);
// - it reads its assigned partitions through the one partition reader (host/broker/cursor.ts,
//   over the broker's `read` and `waitForData`), and delivers only records whose MQTT topic
//   (reverse route, `mqtt.topic` header, else the key) matches its filter; the others are
//   passed over and committed;
// - delivery QoS = min(subscription QoS, the record's `mqtt.qos` header, else `reverseQos`);
// - it commits, every `commitIntervalMs` and when it leaves or rebalances, the lowest offset not
//   yet done per partition: a QoS 0 record is done once written to the socket, a QoS 1/2 record
//   once the client acknowledged it (PUBACK / PUBCOMP). A member that disconnects leaves the
//   group at once; the records it had in flight are above the committed offset, so the member
//   that gets the partition next delivers them again (at least once).
// - bounded: at most `inflightMax` deliveries awaiting their acknowledgement per member (then
//   the reader waits; nothing is queued), one read of at most `readBytesMax` decoded at a time
//   per member, at most `membersMax` memberships in this gateway.
//
// Limits of the mapping (docs/groups.md, "Shared subscriptions"): the unit of sharing is the
// partition, so a member may own a partition holding nothing for its filter; order is kept per
// partition only; one share name carries one filter at a time in this gateway (a different
// filter would silently lose the records of partitions owned by the other filter's members —
// refused, reason 0x83); retained messages are never sent to shared subscriptions (MQTT 5).
//
// Reason codes: a refused SUBSCRIBE gets the MQTT 5 reason for v5 clients (0x8F topic filter
// invalid, 0x97 quota exceeded, 0x83 implementation specific) and 0x80 for 3.1/3.1.1 clients.
//
// Concurrency: every state change of a membership happens on the event loop between awaits;
// `epoch` (an object replaced on every (re)assignment) tells late callbacks of a previous
// assignment apart, so an acknowledgement arriving after a rebalance only frees its window slot.
import type { BrokerApi, TopicPartition } from '../../host/broker/api.js';
import { PartitionCursor } from '../../host/broker/cursor.js';
import type { GroupCoordinator } from '../../host/broker/groups/index.js';
import { asBrokerError, BrokerError, ERRORS } from '../../host/errors/index.js';
import type { Logger } from '../../host/logging.js';
import type { MetricsRegistry } from '../../host/metrics/registry.js';
import { assignRoundRobin, decodeAssignment, decodeSubscriptionTopics, encodeAssignment, encodeSubscription } from '../ws/group-session.js';
import { filterMatches, isValidFilter, type Router } from './routes.js';

export const SHARE_PREFIX = '$share/';
const TOPIC_HEADER = 'mqtt.topic';
const QOS_HEADER = 'mqtt.qos';
const ASSIGNORS = ['range', 'roundrobin', 'RoundRobinAssigner'];
const JOIN_RETRY_MS_MAX = 5_000;
const WAIT_MS = 5_000;
const LOG_INTERVAL_MS = 5_000;

/** MQTT 5 reason codes a SUBACK may carry (MQTT 5 §3.9.3). */
export const SUBACK = {
  UNSPECIFIED: 0x80,
  IMPLEMENTATION_SPECIFIC: 0x83,
  TOPIC_FILTER_INVALID: 0x8f,
  QUOTA_EXCEEDED: 0x97,
  SHARED_NOT_SUPPORTED: 0x9e,
} as const;
const SUBACK_CODES = new Set([0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2]);

/** One client as a member of shared subscriptions (the gateway's adapter builds it per connection). */
export interface SharedMember {
  readonly clientId: string;
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5: decides which reason codes a refused SUBSCRIBE gets. */
  readonly protocolVersion: number;
  /** For describeGroups (Kafka's client host). */
  readonly clientHost: string;
  /** MQTT 5 Receive Maximum of the client: caps the in-flight window below `inflightMax`. */
  readonly receiveMaximum?: number;
  /**
   * Sends one PUBLISH. `acked` is called exactly once: for QoS 0 when written, for QoS 1 on
   * PUBACK, for QoS 2 on PUBCOMP — with an error instead when it will never be acknowledged
   * on this connection (closed). The record stays uncommitted until `acked(null)`.
   */
  deliver(packet: SharedDelivery, acked: (err?: Error | null) => void): void;
}

export interface SharedDelivery {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  /** The record's headers (MQTT 5 user properties travel here). */
  headers: Array<{ key: string; value: Uint8Array | null }>;
  /** MQTT 5 subscription identifier given with the SUBSCRIBE, if any. */
  subscriptionId?: number;
  /** Where the record is (diagnostics, tests). */
  streamTopic: string;
  partition: number;
  offset: number;
}

export type SharedGroupApi = Pick<GroupCoordinator, 'joinGroup' | 'syncGroup' | 'heartbeat' | 'leaveGroup' | 'commitOffsets' | 'fetchOffsets' | 'describeGroups' | 'options'>;

export interface SharedSubscriptionOptions {
  /** Memberships (client × share name) held by this gateway. */
  membersMax: number;
  /** Deliveries awaiting their acknowledgement per membership. */
  inflightMax: number;
  /** How often each membership commits its progress. */
  commitIntervalMs: number;
  /** The group session timeout each membership asks for (also its rebalance timeout). */
  sessionTimeoutMs: number;
  /** On a rebalance or an UNSUBSCRIBE, how long to wait for in-flight acknowledgements before committing. */
  ackWaitMs: number;
  /** Bytes per read (one read is held decoded per membership). */
  readBytesMax: number;
  /** Stream topics a wildcard filter subscribes to at most. */
  topicsMax: number;
  /** How often topic and partition changes are looked for (a change rejoins the group). */
  rescanMs: number;
  /** QoS of records without an `mqtt.qos` header (appended by Kafka, WebSocket, uplink). */
  reverseQos: 0 | 1;
}

export interface SharedSubscriptionDeps {
  broker: BrokerApi;
  groups: SharedGroupApi;
  router: Router;
  logger: Logger;
  metrics?: MetricsRegistry;
}

export type ParsedShare = { group: string; filter: string } | { problem: string };

export function isSharedFilter(topic: string): boolean {
  return topic.startsWith(SHARE_PREFIX);
}

/**
 * `$share/{ShareName}/{filter}` (MQTT 5 §4.8.2): the share name is at least one character
 * without '/', '+' or '#' (MQTT-4.8.2-1/2), followed by '/' and a valid topic filter.
 */
export function parseSharedFilter(topic: string): ParsedShare {
  if (!isSharedFilter(topic)) return { problem: 'not a shared subscription' };
  const rest = topic.slice(SHARE_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return { problem: `"${topic}": a share name must be followed by "/" and a topic filter (MQTT-4.8.2-2)` };
  const group = rest.slice(0, slash);
  const filter = rest.slice(slash + 1);
  if (group.length === 0) return { problem: `"${topic}": the share name is empty (MQTT-4.8.2-1)` };
  if (/[+#]/.test(group)) return { problem: `"${topic}": the share name must not contain "+" or "#" (MQTT-4.8.2-2)` };
  if (!isValidFilter(filter)) return { problem: `"${topic}": "${filter}" is not a valid topic filter (MQTT-4.7.1)` };
  return { group, filter };
}

interface Buffered {
  offset: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: Array<{ key: string; value: Uint8Array | null }>;
}

/** One assigned partition: where delivery stands and what awaits an acknowledgement. */
class PartState {
  /** Offset of the next record to handle. */
  position: number;
  /** Delivered, awaiting acknowledgement (insertion order = offset order). */
  readonly pending = new Set<number>();
  lastCommitted = -1;
  constructor(
    readonly tp: TopicPartition,
    start: number,
  ) {
    this.position = start;
  }
  /** The offset to commit: the lowest record not yet done. */
  committable(): number {
    for (const o of this.pending) return o;
    return this.position;
  }
}

interface Epoch {
  readonly abort: AbortController;
  readonly parts: Map<string, PartState>;
  generationId: number;
}

class Membership {
  memberId = '';
  generationId = -1;
  epoch: Epoch | undefined;
  /** Deliveries of this membership awaiting acknowledgement, every epoch together. */
  inflight = 0;
  left = false;
  rebalancing = false;
  topology = '';
  heartbeat?: NodeJS.Timeout;
  commitTimer?: NodeJS.Timeout;
  /** Wakes the reader when a window slot frees or the membership stops. */
  private wake: (() => void) | undefined;
  joined: Promise<void> = Promise.resolve();

  constructor(
    readonly member: SharedMember,
    readonly group: string,
    readonly filter: string,
    public qos: 0 | 1 | 2,
    public subscriptionId: number | undefined,
  ) {}

  nudge(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  waitForSlot(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.wake = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

interface GroupHere {
  filter: string;
  memberships: Set<Membership>;
  /** Log end offsets when the first membership here subscribed: where a partition never committed starts. */
  starts: Map<string, number>;
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export class SharedSubscriptions {
  private readonly byMember = new Map<SharedMember, Map<string, Membership>>();
  private readonly groupsHere = new Map<string, GroupHere>();
  /** Members whose connection closed: nothing they have in flight will be acknowledged. */
  private readonly gone = new WeakSet<SharedMember>();
  private count = 0;
  private closed = false;
  private readonly lastLogMs = new Map<string, number>();
  private readonly rescanTimer: NodeJS.Timeout;
  private readonly log: Logger;
  private readonly metrics: {
    deliveries?: ReturnType<MetricsRegistry['counter']>;
    refused?: ReturnType<MetricsRegistry['counter']>;
    skipped?: ReturnType<MetricsRegistry['counter']>;
  } = {};

  constructor(
    private readonly deps: SharedSubscriptionDeps,
    private readonly o: SharedSubscriptionOptions,
  ) {
    this.log = deps.logger;
    const { minSessionTimeoutMs, maxSessionTimeoutMs } = deps.groups.options;
    if (o.sessionTimeoutMs < minSessionTimeoutMs || o.sessionTimeoutMs > maxSessionTimeoutMs) {
      throw new Error(`mqtt.sharedSessionTimeoutMs ${o.sessionTimeoutMs} is outside the group coordinator's [minSessionTimeoutMs ${minSessionTimeoutMs}, maxSessionTimeoutMs ${maxSessionTimeoutMs}]`);
    }
    const m = deps.metrics;
    if (m) {
      this.metrics.deliveries = m.counter('tributary_mqtt_shared_deliveries_total', 'Records delivered to shared-subscription members, by QoS');
      this.metrics.refused = m.counter('tributary_mqtt_shared_refused_total', 'Shared SUBSCRIBEs refused, by rule');
      this.metrics.skipped = m.counter('tributary_mqtt_shared_skipped_total', 'Records of an assigned partition not matching the member\'s filter (committed, not delivered)');
      const g = m.gauge('tributary_mqtt_shared_members', 'Shared-subscription memberships (client × share name) held by this gateway');
      g.collect(() => g.set(this.count));
    }
    this.rescanTimer = setInterval(() => this.rescan(), o.rescanMs);
    this.rescanTimer.unref();
  }

  /** Memberships held now (tests, diagnostics). */
  get size(): number {
    return this.count;
  }

  /** `$share/...` as it came in a SUBSCRIBE: the granted QoS (0–2) or a failure reason code. */
  subscribeTopic(member: SharedMember, topic: string, qos: 0 | 1 | 2, subscriptionId?: number): number {
    const parsed = parseSharedFilter(topic);
    if ('problem' in parsed) return this.refuse(member, SUBACK.TOPIC_FILTER_INVALID, 'share-name', parsed.problem);
    return this.subscribe(member, parsed.group, parsed.filter, qos, subscriptionId);
  }

  /** Joins `group` for `filter`: the granted QoS (0–2) or a failure reason code. */
  subscribe(member: SharedMember, group: string, filter: string, qos: 0 | 1 | 2, subscriptionId?: number): number {
    if (this.closed) return this.refuse(member, SUBACK.UNSPECIFIED, 'closing', 'the gateway is closing');
    const parsed = parseSharedFilter(`${SHARE_PREFIX}${group}/${filter}`);
    if ('problem' in parsed || parsed.group !== group) return this.refuse(member, SUBACK.TOPIC_FILTER_INVALID, 'share-name', 'problem' in parsed ? parsed.problem : `share name "${group}" contains "/"`);
    const idBytes = Buffer.byteLength(group);
    if (idBytes > this.deps.groups.options.groupIdMaxBytes) {
      return this.refuse(member, SUBACK.TOPIC_FILTER_INVALID, 'groupIdMaxBytes', `share name of ${idBytes} bytes is above the group id limit groupIdMaxBytes ${this.deps.groups.options.groupIdMaxBytes}`);
    }
    const mine = this.byMember.get(member);
    const existing = mine?.get(group);
    const here = this.groupsHere.get(group);
    if (here && here.filter !== filter) {
      return this.refuse(member, SUBACK.IMPLEMENTATION_SPECIFIC, 'one-filter-per-share-name', `share name "${group}" is in use here with filter "${here.filter}"; one share name carries one filter at a time (records of partitions owned by members of another filter would be lost)`);
    }
    if (existing) {
      // MQTT-3.8.4-3: a repeated SUBSCRIBE replaces the subscription (QoS, identifier)
      existing.qos = qos;
      existing.subscriptionId = subscriptionId;
      return qos;
    }
    if (this.count >= this.o.membersMax) return this.refuse(member, SUBACK.QUOTA_EXCEEDED, 'sharedMembersMax', `${this.count} shared memberships held, sharedMembersMax ${this.o.membersMax}`);
    const refusal = this.checkGroup(group);
    if (refusal) return this.refuse(member, refusal.code, refusal.rule, refusal.message);

    const ms = new Membership(member, group, filter, qos, subscriptionId);
    let g = here;
    if (!g) {
      g = { filter, memberships: new Set(), starts: this.logEnds(filter) };
      this.groupsHere.set(group, g);
    }
    g.memberships.add(ms);
    if (mine) mine.set(group, ms);
    else this.byMember.set(member, new Map([[group, ms]]));
    this.count++;
    ms.joined = this.joinLoop(ms);
    ms.commitTimer = setInterval(() => void this.commit(ms).catch(() => undefined), this.o.commitIntervalMs);
    ms.commitTimer.unref();
    return qos;
  }

  /** UNSUBSCRIBE: stop reading, give in-flight deliveries `ackWaitMs` to be acknowledged, commit, leave. */
  async unsubscribe(member: SharedMember, group: string, filter?: string): Promise<void> {
    const ms = this.byMember.get(member)?.get(group);
    if (!ms || (filter !== undefined && ms.filter !== filter)) return;
    await this.end(ms, 'MQTT UNSUBSCRIBE', true);
  }

  /** The connection closed: every membership of this client leaves now; in-flight records go to others. */
  async disconnected(member: SharedMember): Promise<void> {
    this.gone.add(member);
    const mine = this.byMember.get(member);
    if (!mine) return;
    await Promise.allSettled([...mine.values()].map((ms) => this.end(ms, 'MQTT connection closed', false)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.rescanTimer);
    const all = [...this.byMember.values()].flatMap((m) => [...m.values()]);
    await Promise.allSettled(all.map((ms) => this.end(ms, 'gateway closing', false)));
  }

  // --- subscribe helpers ------------------------------------------------------------------------

  private refuse(member: SharedMember, v5Code: number, rule: string, message: string): number {
    this.metrics.refused?.inc({ rule });
    // one line per rule per LOG_INTERVAL_MS: a client repeating a bad SUBSCRIBE cannot flood the log
    const now = Date.now();
    if (now - (this.lastLogMs.get(rule) ?? 0) >= LOG_INTERVAL_MS) {
      this.lastLogMs.set(rule, now);
      this.log.warn({ clientId: member.clientId, rule, reason: v5Code }, `mqtt: shared SUBSCRIBE refused: ${message}`);
    }
    return member.protocolVersion >= 5 ? v5Code : SUBACK.UNSPECIFIED;
  }

  /** What the coordinator would refuse at join time, known now (so the SUBACK says it). */
  private checkGroup(group: string): { code: number; rule: string; message: string } | undefined {
    let d;
    try {
      [d] = this.deps.groups.describeGroups([group]);
    } catch {
      return undefined; // loading: the join retries until the coordinator serves
    }
    if (!d || d.state === 'Dead' || d.state === 'Empty') return undefined;
    if (d.protocolType && d.protocolType !== 'consumer') {
      return { code: subackCode(new BrokerError('INCONSISTENT_GROUP_PROTOCOL', '')), rule: 'group-protocol', message: `group "${group}" uses protocol type "${d.protocolType}", not "consumer"` };
    }
    const max = this.deps.groups.options.groupMaxSize;
    if (d.members.length >= max) return { code: subackCode(new BrokerError('GROUP_MAX_SIZE_REACHED', '')), rule: 'groupMaxSize', message: `group "${group}" has ${d.members.length} members, groupMaxSize ${max}` };
    return undefined;
  }

  /** Stream topics a filter can reach, sorted (a wildcard first level: every non-internal topic, at most topicsMax). */
  private topicsFor(filter: string): string[] {
    const wanted = this.deps.router.streamTopicsFor(filter);
    const names = wanted === 'all' ? this.deps.broker.listTopics().filter((t) => !t.internal).map((t) => t.name) : [...wanted];
    return names.filter((t) => !t.startsWith('__')).sort().slice(0, this.o.topicsMax);
  }

  private logEnds(filter: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const topic of this.topicsFor(filter)) {
      const n = this.deps.broker.describeTopic(topic)?.partitions ?? 0;
      for (let p = 0; p < n; p++) out.set(tpKey(topic, p), this.deps.broker.offsets({ topic, partition: p }).logEndOffset);
    }
    return out;
  }

  /** "topic:partitions,..." — a change means the assignment must be recomputed. */
  private topologyOf(topics: string[]): string {
    return topics.map((t) => `${t}:${this.deps.broker.describeTopic(t)?.partitions ?? 0}`).join(',');
  }

  private rescan(): void {
    for (const mine of this.byMember.values()) {
      for (const ms of mine.values()) {
        if (ms.left || ms.rebalancing || ms.generationId < 0) continue;
        if (this.topologyOf(this.topicsFor(ms.filter)) !== ms.topology) void this.rebalance(ms, 'stream topics or partitions changed');
      }
    }
  }

  // --- membership life --------------------------------------------------------------------------

  private async joinLoop(ms: Membership): Promise<void> {
    let waitMs = 100;
    for (let attempt = 0; !ms.left; attempt++) {
      try {
        await this.joinAndSync(ms);
        if (ms.left) return;
        ms.heartbeat ??= setInterval(() => void this.beat(ms), Math.max(100, Math.floor(this.o.sessionTimeoutMs / 3)));
        ms.heartbeat.unref();
        return;
      } catch (err) {
        if (ms.left) return;
        const e = asBrokerError(err);
        if (e.code === 'UNKNOWN_MEMBER_ID') ms.memberId = '';
        const id = (err as { memberId?: string }).memberId;
        if (e.code === 'MEMBER_ID_REQUIRED' && id) ms.memberId = id;
        const quick = e.code === 'UNKNOWN_MEMBER_ID' || e.code === 'ILLEGAL_GENERATION' || e.code === 'REBALANCE_IN_PROGRESS' || e.code === 'MEMBER_ID_REQUIRED';
        if (quick && attempt < 5) continue;
        this.log.warn({ clientId: ms.member.clientId, group: ms.group, err: e.message, code: e.code, retryMs: waitMs }, 'mqtt: shared subscription cannot join its group; retrying');
        await sleep(waitMs);
        waitMs = Math.min(waitMs * 2, JOIN_RETRY_MS_MAX);
      }
    }
  }

  private async joinAndSync(ms: Membership): Promise<void> {
    const { groups, broker } = this.deps;
    const topics = this.topicsFor(ms.filter);
    const topology = this.topologyOf(topics);
    // the topology rides in userData: a member whose topics or partition counts changed
    // rejoins with different metadata, which makes the coordinator rebalance the group
    const metadata = encodeSubscription(topics, Buffer.from(topology));
    const joined = await groups.joinGroup({
      groupId: ms.group,
      memberId: ms.memberId,
      sessionTimeoutMs: this.o.sessionTimeoutMs,
      rebalanceTimeoutMs: this.o.sessionTimeoutMs,
      protocolType: 'consumer',
      protocols: ASSIGNORS.map((name) => ({ name, metadata })),
      clientId: ms.member.clientId,
      clientHost: ms.member.clientHost,
      requireKnownMemberId: false,
      reason: 'MQTT shared subscription',
    });
    ms.memberId = joined.memberId;
    ms.generationId = joined.generationId;
    ms.topology = topology;
    if (ms.left) {
      // ended while the join was parked: leave now rather than hold the group until the session expires
      await groups.leaveGroup({ groupId: ms.group, members: [{ memberId: ms.memberId, reason: 'MQTT shared subscription ended' }] }).catch(() => undefined);
      return;
    }
    let assignments: Array<{ memberId: string; assignment: Uint8Array }> = [];
    if (joined.leader === joined.memberId && !joined.skipAssignment) {
      const members = joined.members.map((x) => ({ memberId: x.memberId, topics: safeTopics(x.metadata) }));
      const plan = assignRoundRobin(members, (t) => broker.describeTopic(t)?.partitions ?? 0);
      assignments = [...plan].map(([memberId, map]) => ({ memberId, assignment: encodeAssignment(map) }));
    }
    const synced = await groups.syncGroup({ groupId: ms.group, generationId: ms.generationId, memberId: ms.memberId, protocolType: 'consumer', protocolName: joined.protocolName, assignments });
    if (ms.left) return;
    const assigned: TopicPartition[] = [];
    for (const [topic, partitions] of decodeAssignment(synced.assignment)) {
      const n = broker.describeTopic(topic)?.partitions ?? 0;
      for (const p of partitions) if (p >= 0 && p < n) assigned.push({ topic, partition: p });
    }
    const fetched = assigned.length ? await groups.fetchOffsets({ groupId: ms.group, partitions: assigned }) : [];
    if (ms.left) return;
    const starts = this.groupsHere.get(ms.group)?.starts;
    const epoch: Epoch = { abort: new AbortController(), parts: new Map(), generationId: ms.generationId };
    for (const tp of assigned) {
      const { logStartOffset, highWatermark } = broker.offsets(tp);
      const committed = fetched.find((f) => f.topic === tp.topic && f.partition === tp.partition && !f.error)?.offset ?? -1;
      // never committed: from the log end when the first member here subscribed (what a plain
      // MQTT subscription would see), or from the start of a partition born after that
      const base = committed >= 0 ? committed : (starts?.get(tpKey(tp.topic, tp.partition)) ?? logStartOffset);
      const part = new PartState(tp, Math.min(Math.max(base, logStartOffset), highWatermark));
      part.lastCommitted = committed;
      epoch.parts.set(tpKey(tp.topic, tp.partition), part);
    }
    ms.epoch = epoch;
    this.log.debug({ clientId: ms.member.clientId, group: ms.group, generation: ms.generationId, partitions: assigned.map((a) => `${a.topic}-${a.partition}`) }, 'mqtt: shared subscription assigned');
    void this.read(ms, epoch);
  }

  private async beat(ms: Membership): Promise<void> {
    if (ms.left || ms.rebalancing || ms.generationId < 0) return;
    try {
      await this.deps.groups.heartbeat({ groupId: ms.group, generationId: ms.generationId, memberId: ms.memberId });
    } catch (err) {
      const e = asBrokerError(err);
      if (ms.left || ms.rebalancing) return;
      if (e.code === 'UNKNOWN_MEMBER_ID') ms.memberId = '';
      if (e.code === 'REBALANCE_IN_PROGRESS' || e.code === 'ILLEGAL_GENERATION' || e.code === 'UNKNOWN_MEMBER_ID') await this.rebalance(ms, e.code);
      else this.log.warn({ group: ms.group, err: e.message }, 'mqtt: shared subscription heartbeat failed');
    }
  }

  /** Revoke everything, let in-flight deliveries be acknowledged (briefly), commit, join again. */
  private async rebalance(ms: Membership, why: string): Promise<void> {
    if (ms.rebalancing || ms.left) return;
    ms.rebalancing = true;
    try {
      this.log.debug({ clientId: ms.member.clientId, group: ms.group, why }, 'mqtt: shared subscription rejoins its group');
      await this.revoke(ms, true);
      if (!ms.left) await this.joinLoop(ms);
    } finally {
      ms.rebalancing = false;
    }
  }

  /** Stops reading; optionally waits for acknowledgements; commits the epoch's progress. */
  private async revoke(ms: Membership, waitForAcks: boolean): Promise<void> {
    const epoch = ms.epoch;
    if (!epoch) return;
    epoch.abort.abort();
    ms.nudge();
    if (waitForAcks) {
      const until = Date.now() + this.o.ackWaitMs;
      while (!this.gone.has(ms.member) && pendingOf(epoch) > 0 && Date.now() < until) await sleep(Math.min(20, until - Date.now()));
    }
    await this.commit(ms).catch((err) => this.log.debug({ group: ms.group, err: (err as Error).message }, 'mqtt: shared subscription commit on revoke failed'));
    if (ms.epoch === epoch) ms.epoch = undefined;
  }

  private async end(ms: Membership, reason: string, waitForAcks: boolean): Promise<void> {
    if (ms.left) return;
    const mine = this.byMember.get(ms.member);
    mine?.delete(ms.group);
    if (mine?.size === 0) this.byMember.delete(ms.member);
    const g = this.groupsHere.get(ms.group);
    g?.memberships.delete(ms);
    if (g?.memberships.size === 0) this.groupsHere.delete(ms.group);
    this.count--;
    if (ms.heartbeat) clearInterval(ms.heartbeat);
    if (ms.commitTimer) clearInterval(ms.commitTimer);
    // a join in flight sees `left` and stops (and leaves if it got a member id meanwhile);
    // the commit below still uses the current generation
    ms.left = true;
    await this.revoke(ms, waitForAcks);
    ms.nudge();
    if (ms.memberId) {
      await this.deps.groups.leaveGroup({ groupId: ms.group, members: [{ memberId: ms.memberId, reason }] }).catch((err) => {
        this.log.debug({ group: ms.group, err: (err as Error).message }, 'mqtt: shared subscription leave failed');
      });
    }
  }

  /** Commits each assigned partition whose lowest not-done offset moved. */
  private async commit(ms: Membership): Promise<void> {
    const epoch = ms.epoch;
    if (!epoch || ms.memberId === '' || epoch.generationId !== ms.generationId) return;
    const changed = [...epoch.parts.values()].filter((p) => p.committable() !== p.lastCommitted);
    if (changed.length === 0) return;
    const offsets = changed.map((p) => ({ topic: p.tp.topic, partition: p.tp.partition, offset: p.committable() }));
    const results = await this.deps.groups.commitOffsets({ groupId: ms.group, generationId: epoch.generationId, memberId: ms.memberId, offsets });
    for (const r of results) {
      if (r.error) continue;
      const p = epoch.parts.get(tpKey(r.topic, r.partition));
      const o = offsets.find((x) => x.topic === r.topic && x.partition === r.partition);
      if (p && o) p.lastCommitted = o.offset;
    }
    const failed = results.find((r) => r.error);
    if (failed?.error) throw failed.error;
  }

  // --- reading and delivering -------------------------------------------------------------------

  /**
   * One reader per epoch: partitions in turn, one decoded read at a time, window-bounded. Each
   * partition is read by a cursor (host/broker/cursor.ts, committed isolation); `part.position`
   * follows the records handled, the cursor the records read.
   */
  private async read(ms: Membership, epoch: Epoch): Promise<void> {
    const { broker } = this.deps;
    const signal = epoch.abort.signal;
    const parts = [...epoch.parts.values()];
    if (parts.length === 0) return;
    const cursors = parts.map(
      (part) =>
        new PartitionCursor(broker, part.tp, part.position, {
          maxBytes: this.o.readBytesMax,
          // retention moved the log start past us (or the log was cut below us): go on from the nearest end
          onOutOfRange: 'nearest',
          signal,
          onReset: (_from, to) => {
            part.position = to;
          },
        }),
    );
    let turn = 0;
    while (!signal.aborted && !ms.left) {
      try {
        let progressed = false;
        for (let i = 0; i < parts.length && !signal.aborted; i++) {
          const k = (turn + i) % parts.length;
          const part = parts[k];
          // decoded by the cursor: records below the position and control batches dropped
          const { records, from, nextOffset } = await cursors[k].read();
          if (signal.aborted) return;
          if (nextOffset === from) continue;
          const window = Math.max(1, Math.min(this.o.inflightMax, ms.member.receiveMaximum ?? Infinity));
          for (const r of records) {
            while (ms.inflight >= window && !signal.aborted) await ms.waitForSlot(signal);
            if (signal.aborted) return;
            this.handle(ms, epoch, part, r);
          }
          if (nextOffset > part.position) part.position = nextOffset;
          progressed = true;
          turn = (turn + i + 1) % parts.length;
          break; // one read per turn, then the next partition (fairness)
        }
        if (!progressed && !signal.aborted) await PartitionCursor.waitAny(cursors, WAIT_MS, signal);
      } catch (err) {
        if (signal.aborted) return;
        const e = asBrokerError(err);
        this.log.warn({ group: ms.group, err: e.message }, 'mqtt: shared subscription read failed; retrying');
        await sleep(1_000, signal);
      }
    }
  }

  /** Delivers one record if it matches the filter; either way the partition moves past it. */
  private handle(ms: Membership, epoch: Epoch, part: PartState, r: Buffered): void {
    part.position = r.offset + 1;
    let headerTopic: string | undefined;
    let recordQos: number | undefined;
    for (const h of r.headers) {
      if (h.value === null) continue;
      if (h.key === TOPIC_HEADER) headerTopic = Buffer.from(h.value.buffer, h.value.byteOffset, h.value.byteLength).toString('utf8');
      else if (h.key === QOS_HEADER && h.value.length === 1) recordQos = h.value[0] - 48;
    }
    const mqttTopic = this.deps.router.reverse(part.tp.topic, part.tp.partition, r.key, headerTopic);
    if (mqttTopic === undefined || !filterMatches(ms.filter, mqttTopic)) {
      this.metrics.skipped?.inc();
      return;
    }
    const fromRecord = recordQos !== undefined && recordQos >= 0 && recordQos <= 2 ? recordQos : this.o.reverseQos;
    const qos = Math.min(ms.qos, fromRecord) as 0 | 1 | 2;
    part.pending.add(r.offset);
    ms.inflight++;
    this.metrics.deliveries?.inc({ qos: String(qos) });
    let answered = false;
    ms.member.deliver(
      {
        topic: mqttTopic,
        payload: r.value === null ? Buffer.alloc(0) : Buffer.from(r.value),
        qos,
        headers: r.headers,
        subscriptionId: ms.subscriptionId,
        streamTopic: part.tp.topic,
        partition: part.tp.partition,
        offset: r.offset,
      },
      (err) => {
        if (answered) return;
        answered = true;
        ms.inflight--;
        // unacknowledged (connection gone): stays pending, so the commit never passes it
        if (!err && ms.epoch === epoch) part.pending.delete(r.offset);
        ms.nudge();
      },
    );
  }
}

function pendingOf(epoch: Epoch): number {
  let n = 0;
  for (const p of epoch.parts.values()) n += p.pending.size;
  return n;
}

/** SUBACK reason for a coordinator error, from the error table (a code SUBACK cannot carry → 0x83). */
export function subackCode(e: BrokerError): number {
  const c = ERRORS[e.code].mqtt;
  return SUBACK_CODES.has(c) ? c : SUBACK.IMPLEMENTATION_SPECIFIC;
}

function safeTopics(meta: Uint8Array): string[] {
  try {
    return decodeSubscriptionTopics(meta);
  } catch {
    return [];
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, Math.max(0, ms));
    t.unref(); // a retry back-off never holds the process open
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
