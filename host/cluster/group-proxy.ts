// The other doors' consumer groups in a cluster (MQTT shared subscriptions, WebSocket group
// subscriptions): a door calls this object exactly as it calls the coordinator. A group whose
// `__consumer_offsets` partition this node leads is served by the local coordinator; any other
// group is sent to its coordinator's Kafka listener as the Kafka group APIs (JoinGroup v5,
// SyncGroup v3, Heartbeat v3, LeaveGroup v3, OffsetCommit v7, OffsetFetch v6), so a door member
// on any node belongs to the one group the cluster has, and follows it when it fails over
// (NOT_COORDINATOR and lost connections reach the door, whose join/heartbeat loops retry; the
// next call asks FindCoordinator's question again).
//
// Connections: a broker answers one connection's requests in order and parks a JoinGroup until
// the rebalance completes, so each remote member has a connection of its own (its heartbeats
// wait only behind its own JoinGroup, as a Kafka client's do); OffsetFetch without a member uses
// one shared connection per coordinator. At most `cluster.groupProxyMembersMax` member connections
// (LIMIT_EXCEEDED past it); a member's connection closes when it leaves, when its coordinator
// answers NOT_COORDINATOR, or when the connection fails. Not authenticated (like forward.ts):
// with SASL required on the Kafka listener the proxy's calls are refused.
import { BrokerError, errorNameForKafkaCode, ERRORS } from '../errors/index.js';
import { JoinGroupError, type GroupCoordinator } from '../broker/groups/index.js';
import type {
  CommitOffsetsRequest,
  FetchOffsetsRequest,
  FetchedOffset,
  HeartbeatRequest,
  JoinGroupRequest,
  JoinGroupResult,
  LeaveGroupMemberResult,
  LeaveGroupRequest,
  PartitionResult,
  SyncGroupRequest,
  SyncGroupResult,
} from '../broker/groups/index.js';
import { KafkaConnection } from '../kafka/client/connection.js';
import type { ClientApi } from '../kafka/client/apis.js';
import type { ApiHandler, ClusterView } from '../kafka/apis/types.js';
import { joinGroup as joinApi } from '../kafka/apis/groups/join-group.js';
import { syncGroup as syncApi } from '../kafka/apis/groups/sync-group.js';
import { heartbeat as heartbeatApi } from '../kafka/apis/groups/heartbeat.js';
import { leaveGroup as leaveApi } from '../kafka/apis/groups/leave-group.js';
import { offsetCommit as commitApi } from '../kafka/apis/groups/offset-commit.js';
import { offsetFetch as fetchApi } from '../kafka/apis/groups/offset-fetch.js';

const api = (h: ApiHandler): ClientApi => ({ key: h.apiKey, name: h.name, minVersion: h.minVersion, maxVersion: h.maxVersion, flexibleFrom: h.flexibleFrom, request: h.request, response: h.response });
const JOIN = api(joinApi);
const SYNC = api(syncApi);
const HEARTBEAT = api(heartbeatApi);
const LEAVE = api(leaveApi);
const COMMIT = api(commitApi);
const FETCH = api(fetchApi);

export interface GroupProxyOptions {
  /** Remote members (one connection each) held at once; past it LIMIT_EXCEEDED (cluster.groupProxyMembersMax). */
  membersMax: number;
  connectTimeoutMs: number;
  /** Added to a call's own wait (a JoinGroup's rebalance timeout) before the connection gives up. */
  requestMarginMs: number;
}

/** 1,000 door members on other coordinators; 5 s to connect on a loaded Pi; 10 s of slack past a rebalance. */
export const defaultGroupProxyOptions: GroupProxyOptions = { membersMax: 1000, connectTimeoutMs: 5000, requestMarginMs: 10_000 };

const codeError = (code: number, what: string) => new BrokerError(errorNameForKafkaCode(code), `${what} at the group's coordinator: ${errorNameForKafkaCode(code)}`);

export class ClusterGroups {
  /** `${groupId}\0${memberId}` → that member's connection to its coordinator. */
  private readonly members = new Map<string, { conn: KafkaConnection; nodeId: number }>();
  private readonly shared = new Map<number, KafkaConnection>();

  constructor(
    private readonly local: GroupCoordinator,
    private readonly view: ClusterView,
    private readonly selfId: number,
    private readonly o: GroupProxyOptions = defaultGroupProxyOptions,
  ) {}

  get options() {
    return this.local.options;
  }
  listGroups(...a: Parameters<GroupCoordinator['listGroups']>) {
    return this.local.listGroups(...a);
  }
  describeGroups(...a: Parameters<GroupCoordinator['describeGroups']>) {
    return this.local.describeGroups(...a);
  }
  lag(...a: Parameters<GroupCoordinator['lag']>) {
    return this.local.lag(...a);
  }

  async joinGroup(req: JoinGroupRequest): Promise<JoinGroupResult> {
    const node = this.coordinator(req.groupId);
    if (node === null) return this.local.joinGroup(req);
    let memberId = req.memberId;
    const timeoutMs = (req.rebalanceTimeoutMs ?? req.sessionTimeoutMs) + this.o.requestMarginMs;
    // A known member keeps its connection; a new one gets its own, kept once it has an id.
    const conn = memberId ? await this.memberConnection(req.groupId, memberId, node, timeoutMs) : await this.open(node, timeoutMs);
    try {
      for (let attempt = 0; ; attempt++) {
        const r = await conn.send(JOIN, 5, {
          groupId: req.groupId,
          sessionTimeoutMs: req.sessionTimeoutMs,
          rebalanceTimeoutMs: req.rebalanceTimeoutMs ?? -1,
          memberId,
          groupInstanceId: req.groupInstanceId ?? null,
          protocolType: req.protocolType,
          protocols: req.protocols,
        });
        if (r.errorCode === ERRORS.MEMBER_ID_REQUIRED.kafka) {
          // KIP-394 at the coordinator: a door that did not ask for it joins again at once.
          if (req.requireKnownMemberId || attempt > 0) throw new JoinGroupError('MEMBER_ID_REQUIRED', `join again with member id ${r.memberId}`, r.memberId);
          memberId = r.memberId;
          continue;
        }
        if (r.errorCode !== 0) throw codeError(r.errorCode, 'JoinGroup');
        this.keep(req.groupId, r.memberId, conn, node);
        return { generationId: r.generationId, protocolType: r.protocolType ?? req.protocolType, protocolName: r.protocolName, leader: r.leader, memberId: r.memberId, members: r.members, skipAssignment: false };
      }
    } catch (e) {
      this.forget(conn);
      throw e instanceof BrokerError ? e : this.unreachable(e);
    }
  }

  async syncGroup(req: SyncGroupRequest): Promise<SyncGroupResult> {
    const node = this.coordinator(req.groupId);
    if (node === null) return this.local.syncGroup(req);
    const conn = await this.memberConnection(req.groupId, req.memberId, node, this.o.requestMarginMs);
    const r = await this.call(conn, SYNC, 3, { ...req, groupInstanceId: req.groupInstanceId ?? null });
    this.check(conn, r.errorCode, 'SyncGroup');
    return { protocolType: req.protocolType ?? null, protocolName: req.protocolName ?? null, assignment: r.assignment };
  }

  async heartbeat(req: HeartbeatRequest): Promise<void> {
    const node = this.coordinator(req.groupId);
    if (node === null) return this.local.heartbeat(req);
    const conn = await this.memberConnection(req.groupId, req.memberId, node, this.o.requestMarginMs);
    const r = await this.call(conn, HEARTBEAT, 3, { ...req, groupInstanceId: req.groupInstanceId ?? null });
    this.check(conn, r.errorCode, 'Heartbeat');
  }

  async leaveGroup(req: LeaveGroupRequest): Promise<LeaveGroupMemberResult[]> {
    const node = this.coordinator(req.groupId);
    if (node === null) return this.local.leaveGroup(req);
    const first = req.members[0]?.memberId ?? '';
    const conn = await this.memberConnection(req.groupId, first, node, this.o.requestMarginMs);
    try {
      const r = await this.call(conn, LEAVE, 3, { groupId: req.groupId, members: req.members.map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId ?? null })) });
      this.check(conn, r.errorCode, 'LeaveGroup');
      return r.members.map((m: { memberId: string; groupInstanceId: string | null; errorCode: number }) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, error: m.errorCode === 0 ? null : codeError(m.errorCode, 'LeaveGroup') }));
    } finally {
      // a member that left needs its connection no more
      this.forget(conn);
    }
  }

  async commitOffsets(req: CommitOffsetsRequest): Promise<PartitionResult[]> {
    const node = this.coordinator(req.groupId);
    if (node === null) return this.local.commitOffsets(req);
    const memberId = req.memberId ?? '';
    const conn = memberId ? await this.memberConnection(req.groupId, memberId, node, this.o.requestMarginMs) : await this.sharedConnection(node);
    const topics = new Map<string, Array<{ partitionIndex: number; committedOffset: number; committedLeaderEpoch: number; committedMetadata: string | null }>>();
    for (const o of req.offsets) {
      if (!topics.has(o.topic)) topics.set(o.topic, []);
      topics.get(o.topic)!.push({ partitionIndex: o.partition, committedOffset: o.offset, committedLeaderEpoch: o.leaderEpoch ?? -1, committedMetadata: o.metadata ?? null });
    }
    const body = { groupId: req.groupId, generationIdOrMemberEpoch: req.generationId ?? -1, memberId, groupInstanceId: req.groupInstanceId ?? null, topics: [...topics].map(([name, partitions]) => ({ name, partitions })) };
    const r = await this.call(conn, COMMIT, 7, body);
    const out: PartitionResult[] = [];
    for (const t of r.topics) for (const p of t.partitions) out.push({ topic: t.name, partition: p.partitionIndex, error: p.errorCode === 0 ? null : codeError(p.errorCode, 'OffsetCommit') });
    if (out.some((x) => x.error?.code === 'NOT_COORDINATOR')) this.forget(conn);
    return out;
  }

  async fetchOffsets(req: FetchOffsetsRequest): Promise<FetchedOffset[]> {
    const node = this.coordinator(req.groupId);
    if (node === null) return this.local.fetchOffsets(req);
    const conn = await this.sharedConnection(node);
    let topics: Array<{ name: string; partitionIndexes: number[] }> | null = null;
    if (req.partitions != null) {
      const m = new Map<string, number[]>();
      for (const p of req.partitions) (m.get(p.topic) ?? m.set(p.topic, []).get(p.topic)!).push(p.partition);
      topics = [...m].map(([name, partitionIndexes]) => ({ name, partitionIndexes }));
    }
    const r = await this.call(conn, FETCH, 6, { groupId: req.groupId, topics, requireStable: false });
    this.check(conn, r.errorCode, 'OffsetFetch');
    const out: FetchedOffset[] = [];
    for (const t of r.topics) {
      for (const p of t.partitions) {
        out.push({ topic: t.name, partition: p.partitionIndex, offset: p.committedOffset, leaderEpoch: p.committedLeaderEpoch, metadata: p.metadata, commitTimestampMs: -1, error: p.errorCode === 0 ? null : codeError(p.errorCode, 'OffsetFetch') });
      }
    }
    return out;
  }

  close(): void {
    for (const m of this.members.values()) m.conn.close();
    for (const c of this.shared.values()) c.close();
    this.members.clear();
    this.shared.clear();
  }

  /** null: this node coordinates the group (or decides it cannot: the local coordinator answers). */
  private coordinator(groupId: string): number | null {
    let id: number;
    try {
      id = this.local.coordinatorFor(groupId, this.selfId);
    } catch {
      return null; // the local coordinator gives the door the specific error
    }
    return id === this.selfId ? null : id;
  }

  private address(nodeId: number): { host: string; port: number } {
    const b = this.view.brokers().find((x) => x.nodeId === nodeId);
    if (!b) throw new BrokerError('COORDINATOR_NOT_AVAILABLE', `the group's coordinator, node ${nodeId}, is not a live broker right now`);
    return b;
  }

  private connect(nodeId: number, requestTimeoutMs: number): Promise<KafkaConnection> {
    const { host, port } = this.address(nodeId);
    return KafkaConnection.connect({ host, port, clientId: `tributary-${this.selfId}-groups`, connectTimeoutMs: this.o.connectTimeoutMs, requestTimeoutMs, inFlightMax: 4, queuedMax: 16, responseBytesMax: 16 * 1024 * 1024 });
  }

  private open(nodeId: number, requestTimeoutMs: number): Promise<KafkaConnection> {
    if (this.members.size >= this.o.membersMax) throw new BrokerError('LIMIT_EXCEEDED', `${this.o.membersMax} door members already talk to coordinators on other nodes (cluster.groupProxyMembersMax)`);
    return this.connect(nodeId, requestTimeoutMs);
  }

  private async memberConnection(groupId: string, memberId: string, nodeId: number, requestTimeoutMs: number): Promise<KafkaConnection> {
    const held = this.members.get(`${groupId}\0${memberId}`);
    if (held && held.nodeId === nodeId) return held.conn;
    if (held) this.forget(held.conn);
    const conn = await this.open(nodeId, requestTimeoutMs);
    this.keep(groupId, memberId, conn, nodeId);
    return conn;
  }

  private keep(groupId: string, memberId: string, conn: KafkaConnection, nodeId: number): void {
    const key = `${groupId}\0${memberId}`;
    const held = this.members.get(key);
    if (held && held.conn !== conn) held.conn.close();
    this.members.set(key, { conn, nodeId });
  }

  /** Closes a connection and forgets every use of it. */
  private forget(conn: KafkaConnection): void {
    conn.close();
    for (const [k, v] of this.members) if (v.conn === conn) this.members.delete(k);
    for (const [n, c] of this.shared) if (c === conn) this.shared.delete(n);
  }

  private unreachable(e: unknown): BrokerError {
    return new BrokerError('COORDINATOR_NOT_AVAILABLE', `the group's coordinator did not answer: ${(e as Error).message}`);
  }

  private async sharedConnection(nodeId: number): Promise<KafkaConnection> {
    const held = this.shared.get(nodeId);
    if (held) return held;
    const conn = await this.connect(nodeId, this.o.requestMarginMs * 3);
    this.shared.set(nodeId, conn);
    return conn;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private async call(conn: KafkaConnection, a: ClientApi, version: number, body: object): Promise<any> {
    try {
      return await conn.send(a, version, body);
    } catch (e) {
      this.forget(conn);
      throw this.unreachable(e);
    }
  }

  /** A refusal: the member's connection goes when the coordinator moved (the next call finds the new one). */
  private check(conn: KafkaConnection, code: number, what: string): void {
    if (code === 0) return;
    if (code === ERRORS.NOT_COORDINATOR.kafka || code === ERRORS.COORDINATOR_NOT_AVAILABLE.kafka) this.forget(conn);
    throw codeError(code, what);
  }
}
