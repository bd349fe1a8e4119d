// A WebSocket subscription with a consumer group: the socket becomes a member of a Kafka
// consumer group through the group coordinator's JS API (the same groups, generations and
// committed offsets Kafka clients use), so a dashboard and a Kafka consumer can share a group.
//
// Membership speaks Kafka's "consumer" protocol type, so Kafka members can read our metadata
// and we can read theirs:
//   ConsumerProtocolSubscription v0: version int16 | topics [int32 count, string(int16 len)]
//                                    | userData bytes (int32 len, -1 = null)
//     (v1+ append ownedPartitions...; we read only what precedes them)
//   ConsumerProtocolAssignment v0:   version int16 | [int32 count, topic string, partitions
//                                    [int32 count, int32]] | userData bytes
// Offered assignors: "range", "roundrobin" (Java clients) and "RoundRobinAssigner" (kafkajs).
// When a WebSocket member is the leader it assigns round-robin over (topic, partition) sorted
// by name, members sorted by id — a valid assignment for whichever name the group chose.
//
// Life of a membership: join → (leader: assign) → sync → fetch committed offsets → deliver;
// heartbeats every sessionTimeoutMs/3; REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID or
// ILLEGAL_GENERATION → commit what was delivered, stop cursors, join again. Delivered
// positions are committed every autoCommitIntervalMs, on every rebalance and on leave, and on
// an explicit `commit` frame.
import type { BrokerApi, TopicInfo } from '../../host/broker/api.js';
import type { GroupCoordinator } from '../../host/broker/groups/index.js';
import { asBrokerError, BrokerError } from '../../host/errors/index.js';
import type { Logger } from '../../host/logging.js';
import { resolveStart } from '../../host/broker/cursor.js';
import { PartCursor, type Fanout, type Subscription } from './fanout.js';
import type { SubscribeRequest } from './protocol.js';
import { encodeFrame } from './protocol.js';

/** What this gateway needs of the coordinator (host/broker/groups: the Kafka door uses the same). */
export type GroupApi = Pick<GroupCoordinator, 'joinGroup' | 'syncGroup' | 'heartbeat' | 'leaveGroup' | 'commitOffsets' | 'fetchOffsets' | 'listGroups' | 'describeGroups' | 'lag'>;

export interface GroupSessionSettings {
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  autoCommitIntervalMs: number;
}

const ASSIGNORS = ['range', 'roundrobin', 'RoundRobinAssigner'];

// --- consumer protocol codecs -----------------------------------------------------------------

/** `userData` is opaque to every assignor offered here (the MQTT gateway's shared subscriptions carry their topology in it). */
export function encodeSubscription(topics: string[], userData: Uint8Array | null = null): Uint8Array {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(6);
  head.writeInt16BE(0, 0);
  head.writeInt32BE(topics.length, 2);
  parts.push(head);
  for (const t of topics) {
    const b = Buffer.from(t, 'utf8');
    const len = Buffer.alloc(2);
    len.writeInt16BE(b.length, 0);
    parts.push(len, b);
  }
  const userDataLen = Buffer.alloc(4);
  userDataLen.writeInt32BE(userData === null ? -1 : userData.byteLength, 0);
  parts.push(userDataLen);
  if (userData !== null) parts.push(Buffer.from(userData.buffer, userData.byteOffset, userData.byteLength));
  return Buffer.concat(parts);
}

class Reader {
  pos = 0;
  constructor(private readonly b: Buffer) {}
  int16(): number {
    if (this.pos + 2 > this.b.length) throw new BrokerError('INCONSISTENT_GROUP_PROTOCOL', 'consumer protocol metadata truncated');
    const v = this.b.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    if (this.pos + 4 > this.b.length) throw new BrokerError('INCONSISTENT_GROUP_PROTOCOL', 'consumer protocol metadata truncated');
    const v = this.b.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  string(): string {
    const n = this.int16();
    if (n < 0 || this.pos + n > this.b.length) throw new BrokerError('INCONSISTENT_GROUP_PROTOCOL', 'consumer protocol string truncated');
    const s = this.b.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  count(max: number): number {
    const n = this.int32();
    if (n < 0) return 0;
    if (n > max) throw new BrokerError('INCONSISTENT_GROUP_PROTOCOL', `consumer protocol array of ${n} entries`);
    return n;
  }
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

export function decodeSubscriptionTopics(meta: Uint8Array): string[] {
  const r = new Reader(asBuffer(meta));
  r.int16();
  const n = r.count(100_000);
  const topics: string[] = [];
  for (let i = 0; i < n; i++) topics.push(r.string());
  return topics;
}

export function encodeAssignment(assigned: Map<string, number[]>): Uint8Array {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(6);
  head.writeInt16BE(0, 0);
  head.writeInt32BE(assigned.size, 2);
  parts.push(head);
  for (const [topic, partitions] of assigned) {
    const t = Buffer.from(topic, 'utf8');
    const b = Buffer.alloc(2 + t.length + 4 + 4 * partitions.length);
    b.writeInt16BE(t.length, 0);
    t.copy(b, 2);
    b.writeInt32BE(partitions.length, 2 + t.length);
    partitions.forEach((p, i) => b.writeInt32BE(p, 6 + t.length + 4 * i));
    parts.push(b);
  }
  const userData = Buffer.alloc(4);
  userData.writeInt32BE(-1, 0);
  parts.push(userData);
  return Buffer.concat(parts);
}

export function decodeAssignment(bytes: Uint8Array): Map<string, number[]> {
  const out = new Map<string, number[]>();
  if (bytes.byteLength === 0) return out; // an empty assignment (Kafka sends zero bytes)
  const r = new Reader(asBuffer(bytes));
  r.int16();
  const n = r.count(100_000);
  for (let i = 0; i < n; i++) {
    const topic = r.string();
    const m = r.count(1_000_000);
    const ps: number[] = [];
    for (let j = 0; j < m; j++) ps.push(r.int32());
    out.set(topic, ps);
  }
  return out;
}

/** Round-robin over sorted (topic, partition) among the members subscribed to each topic. */
export function assignRoundRobin(members: Array<{ memberId: string; topics: string[] }>, partitionsOf: (topic: string) => number): Map<string, Map<string, number[]>> {
  const sorted = [...members].sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0));
  const result = new Map<string, Map<string, number[]>>(sorted.map((m) => [m.memberId, new Map()]));
  const topics = [...new Set(sorted.flatMap((m) => m.topics))].sort();
  let next = 0;
  for (const topic of topics) {
    const n = partitionsOf(topic);
    const takers = sorted.filter((m) => m.topics.includes(topic));
    if (takers.length === 0) continue;
    for (let p = 0; p < n; p++) {
      // Continue the rotation across topics, skipping members not subscribed to this one.
      let m = sorted[next % sorted.length];
      while (!m.topics.includes(topic)) m = sorted[++next % sorted.length];
      next++;
      const mine = result.get(m.memberId)!;
      if (!mine.has(topic)) mine.set(topic, []);
      mine.get(topic)!.push(p);
    }
  }
  return result;
}

// --- one membership ---------------------------------------------------------------------------

interface Membership {
  sub: Subscription;
  req: SubscribeRequest;
  info: TopicInfo;
  memberId: string;
  generationId: number;
  heartbeat?: NodeJS.Timeout;
  autoCommit?: NodeJS.Timeout;
  rejoining: boolean;
  left: boolean;
  answered: boolean;
}

export class GroupSessions {
  private readonly members = new Map<Subscription, Membership>();

  constructor(
    private readonly groups: GroupApi,
    private readonly broker: BrokerApi,
    private readonly fanout: Fanout,
    private readonly logger: Logger,
    private readonly settings: GroupSessionSettings,
    private readonly clientHost: (sub: Subscription) => string,
  ) {}

  /** Joins the group for a subscribe request; answers `subscribed` once the first assignment is known. */
  async join(sub: Subscription, req: SubscribeRequest, info: TopicInfo): Promise<void> {
    const m: Membership = { sub, req, info, memberId: '', generationId: -1, rejoining: false, left: false, answered: false };
    this.members.set(sub, m);
    await this.rejoin(m);
    if (m.left) return;
    m.autoCommit = setInterval(() => void this.commitDelivered(m).catch(() => undefined), this.settings.autoCommitIntervalMs);
    m.autoCommit.unref();
  }

  private async rejoin(m: Membership): Promise<void> {
    m.rejoining = true;
    if (m.heartbeat) clearInterval(m.heartbeat);
    try {
      for (let attempt = 0; ; attempt++) {
        if (m.left) return;
        try {
          await this.joinAndSync(m);
          break;
        } catch (err) {
          const e = asBrokerError(err);
          if (m.left) return;
          if ((e.code === 'UNKNOWN_MEMBER_ID' || e.code === 'ILLEGAL_GENERATION' || e.code === 'REBALANCE_IN_PROGRESS' || e.code === 'MEMBER_ID_REQUIRED') && attempt < 10) {
            if (e.code === 'UNKNOWN_MEMBER_ID') m.memberId = '';
            const id = (err as { memberId?: string }).memberId;
            if (e.code === 'MEMBER_ID_REQUIRED' && id) m.memberId = id;
            continue;
          }
          throw e;
        }
      }
    } finally {
      m.rejoining = false;
    }
    m.heartbeat = setInterval(() => void this.beat(m), Math.max(100, Math.floor(this.settings.sessionTimeoutMs / 3)));
    m.heartbeat.unref();
  }

  private async joinAndSync(m: Membership): Promise<void> {
    const { sub } = m;
    const topics = [sub.topic];
    const joined = await this.groups.joinGroup({
      groupId: m.req.group!,
      memberId: m.memberId,
      sessionTimeoutMs: this.settings.sessionTimeoutMs,
      rebalanceTimeoutMs: this.settings.rebalanceTimeoutMs,
      protocolType: 'consumer',
      protocols: ASSIGNORS.map((name) => ({ name, metadata: encodeSubscription(topics) })),
      clientId: 'tributary-ws',
      clientHost: this.clientHost(sub),
      requireKnownMemberId: false,
    });
    m.memberId = joined.memberId;
    m.generationId = joined.generationId;
    let assignments: Array<{ memberId: string; assignment: Uint8Array }> = [];
    if (joined.leader === joined.memberId && !joined.skipAssignment) {
      const members = joined.members.map((x) => ({ memberId: x.memberId, topics: safeTopics(x.metadata) }));
      const plan = assignRoundRobin(members, (t) => this.broker.describeTopic(t)?.partitions ?? 0);
      assignments = [...plan].map(([memberId, map]) => ({ memberId, assignment: encodeAssignment(map) }));
    }
    const synced = await this.groups.syncGroup({ groupId: m.req.group!, generationId: m.generationId, memberId: m.memberId, protocolType: 'consumer', protocolName: joined.protocolName, assignments });
    if (m.left) return;
    const mine = decodeAssignment(synced.assignment).get(sub.topic) ?? [];
    await this.startAssigned(m, mine.filter((p) => p < m.info.partitions).sort((a, b) => a - b));
  }

  /** Starts cursors at the group's committed offsets (or the subscribe's start when none). */
  private async startAssigned(m: Membership, partitions: number[]): Promise<void> {
    const { sub } = m;
    const fetched = partitions.length
      ? await this.groups.fetchOffsets({ groupId: m.req.group!, partitions: partitions.map((p) => ({ topic: sub.topic, partition: p })) })
      : [];
    if (m.left) return;
    const starts: number[] = [];
    for (const p of partitions) {
      const tp = { topic: sub.topic, partition: p };
      const committed = fetched.find((f) => f.partition === p && f.topic === sub.topic && !f.error)?.offset ?? -1;
      // A committed offset is clamped into [log start, high watermark] like an explicit one.
      starts.push(await resolveStart(this.broker, tp, committed >= 0 ? { kind: 'offset', offset: committed } : m.req.start));
    }
    if (m.left) return;
    partitions.forEach((p, i) => sub.parts.set(p, new PartCursor(sub, p, starts[i])));
    const frame = {
      type: m.answered ? 'assignment' : 'subscribed',
      id: m.answered ? undefined : m.req.id,
      topic: sub.topic,
      group: m.req.group,
      generation: m.generationId,
      memberId: m.memberId,
      partitions: partitions.map((p, i) => ({ partition: p, offset: starts[i], highWatermark: this.broker.offsets({ topic: sub.topic, partition: p }).highWatermark })),
    };
    if (m.answered) delete (frame as { id?: unknown }).id;
    m.answered = true;
    if (sub.peer.alive) sub.peer.send(encodeFrame(sub.peer.encoding, frame));
    for (const c of sub.parts.values()) this.fanout.start(c);
  }

  private async beat(m: Membership): Promise<void> {
    if (m.left || m.rejoining) return;
    try {
      await this.groups.heartbeat({ groupId: m.req.group!, generationId: m.generationId, memberId: m.memberId });
    } catch (err) {
      const e = asBrokerError(err);
      if (m.left || m.rejoining) return;
      if (e.code === 'REBALANCE_IN_PROGRESS' || e.code === 'ILLEGAL_GENERATION' || e.code === 'UNKNOWN_MEMBER_ID') {
        await this.commitDelivered(m).catch(() => undefined);
        this.stopCursors(m);
        if (e.code === 'UNKNOWN_MEMBER_ID') m.memberId = '';
        try {
          await this.rejoin(m);
        } catch (err2) {
          this.fail(m, asBrokerError(err2));
        }
        return;
      }
      this.logger.warn({ err: e.message, group: m.req.group }, 'ws group heartbeat failed');
    }
  }

  private stopCursors(m: Membership): void {
    for (const c of m.sub.parts.values()) this.fanout.stop(c);
    m.sub.parts.clear();
  }

  private fail(m: Membership, e: BrokerError): void {
    this.logger.warn({ err: e.message, group: m.req.group }, 'ws group membership lost');
    const sub = m.sub;
    if (sub.peer.alive) sub.peer.send(encodeFrame(sub.peer.encoding, { type: 'error', id: m.req.id, code: e.code, kafkaCode: e.kafkaCode, message: `group ${m.req.group}: ${e.message}`, topic: sub.topic }));
  }

  /** Commits each cursor's delivered position (the next offset to send, Kafka style). */
  private async commitDelivered(m: Membership): Promise<void> {
    if (m.generationId < 0 || m.sub.parts.size === 0) return;
    const offsets = [...m.sub.parts.values()].map((c) => ({ topic: m.sub.topic, partition: c.partition, offset: c.cursor }));
    await this.commitOffsets(m, offsets);
  }

  private async commitOffsets(m: Membership, offsets: Array<{ topic: string; partition: number; offset: number }>): Promise<void> {
    const results = await this.groups.commitOffsets({ groupId: m.req.group!, generationId: m.generationId, memberId: m.memberId, offsets });
    const failed = results.find((r) => r.error);
    if (failed?.error) throw failed.error;
  }

  /** An explicit `commit` frame: given offsets, or the delivered positions. */
  async commit(sub: Subscription, offsets?: Array<{ partition: number; offset: number }>): Promise<void> {
    const m = this.members.get(sub);
    if (!m) throw new BrokerError('INVALID_REQUEST', 'commit: not a group subscription');
    if (offsets) {
      for (const o of offsets) if (!sub.parts.has(o.partition)) throw new BrokerError('INVALID_REQUEST', `offsets: partition ${o.partition} is not assigned to this socket`);
      await this.commitOffsets(m, offsets.map((o) => ({ topic: sub.topic, ...o })));
    } else await this.commitDelivered(m);
  }

  /** Unsubscribe or socket close: commit what was delivered, leave the group. */
  async leave(sub: Subscription): Promise<void> {
    const m = this.members.get(sub);
    if (!m || m.left) return;
    this.members.delete(sub);
    await this.commitDelivered(m).catch(() => undefined);
    m.left = true;
    if (m.heartbeat) clearInterval(m.heartbeat);
    if (m.autoCommit) clearInterval(m.autoCommit);
    this.stopCursors(m);
    if (m.memberId) {
      await this.groups.leaveGroup({ groupId: m.req.group!, members: [{ memberId: m.memberId, reason: 'WebSocket subscription ended' }] }).catch((err) => {
        this.logger.debug({ err: (err as Error).message }, 'ws group leave failed');
      });
    }
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.members.keys()].map((s) => this.leave(s)));
  }

  // --- HTTP views -----------------------------------------------------------------------------

  listWithLag(): unknown[] {
    const g = this.groups;
    return g.listGroups().map((l) => {
      let totalLag: number | null = null;
      try {
        totalLag = g.lag(l.groupId).totalLag;
      } catch {
        totalLag = null; // deleted meanwhile
      }
      return { groupId: l.groupId, protocolType: l.protocolType, state: l.state, totalLag };
    });
  }

  describeWithLag(groupId: string): unknown {
    const g = this.groups;
    const [d] = g.describeGroups([groupId]);
    if (d?.error) throw d.error;
    if (!d || d.state === 'Dead') throw new BrokerError('GROUP_ID_NOT_FOUND', `no group ${groupId}`);
    const lag = g.lag(groupId);
    return {
      groupId: d.groupId,
      state: d.state,
      protocolType: d.protocolType,
      protocol: d.protocolName,
      generation: d.generationId,
      leader: d.leader,
      members: d.members.map((x) => {
        let assignment: Record<string, number[]> = {};
        try {
          if (d.protocolType === 'consumer') assignment = Object.fromEntries(decodeAssignment(x.assignment));
        } catch {
          assignment = {};
        }
        return { memberId: x.memberId, clientId: x.clientId, clientHost: x.clientHost, assignment };
      }),
      partitions: lag.partitions,
      totalLag: lag.totalLag,
    };
  }
}

function safeTopics(meta: Uint8Array): string[] {
  try {
    return decodeSubscriptionTopics(meta);
  } catch {
    return [];
  }
}
