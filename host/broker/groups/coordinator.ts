// The consumer group coordinator: Kafka's classic rebalance protocol (JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup) and committed offsets, over a JS API shared by the Kafka handlers and
// the WebSocket gateway.
//
// Group states (Kafka's GroupMetadata):
//   Empty ──join──> PreparingRebalance ──all joined / rebalance timeout──> CompletingRebalance
//   CompletingRebalance ──leader's SyncGroup persisted──> Stable
//   Stable / CompletingRebalance ──join with new metadata, leave, session expiry──> PreparingRebalance
//   PreparingRebalance ──nobody rejoined──> Empty      any ──DeleteGroups / expiry──> Dead
//
// Concurrency: every transition runs synchronously (no await between a check and the change it
// guards). Waiting happens only in promises parked on a member (its pending JoinGroup or
// SyncGroup answer), so a JoinGroup held for a rebalance never blocks other calls. Writes to
// the offsets topic are the only awaits; state they guard is re-checked after them.
//
// Crash policy: committed offsets and group metadata (generation, protocol, members with their
// assignments) are acknowledged only after the offsets topic met flush=always; on open the
// topic is replayed, groups with members come back Stable and keep their generation, so
// consumers that heartbeat in time carry on without a rebalance; the others expire.
import { randomUUID } from 'node:crypto';
import type { BrokerApi } from '../api.js';
import { BrokerError, asBrokerError, type ErrorName } from '../../errors/index.js';
import type { Logger } from '../../logging.js';
import type { MetricsRegistry, Counter } from '../../metrics/registry.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { resolveGroupOptions, type GroupOptions } from './options.js';
import { partitionForGroup, type GroupValue, type OffsetValue } from './records.js';
import { offsetsTable, OFFSETS_TOPIC, type OffsetsChange, type OffsetsTable } from './store.js';
import type {
  CommitOffsetsRequest,
  DescribedMember,
  FetchOffsetsRequest,
  FetchedOffset,
  GroupDescription,
  GroupLag,
  GroupListing,
  GroupState,
  HeartbeatRequest,
  JoinGroupRequest,
  JoinGroupResult,
  LeaveGroupMemberResult,
  LeaveGroupRequest,
  PartitionLag,
  PartitionResult,
  ProtocolOffer,
  SyncGroupRequest,
  SyncGroupResult,
} from './types.js';

/** JoinGroup refused with MEMBER_ID_REQUIRED still hands the client its member id (KIP-394). */
export class JoinGroupError extends BrokerError {
  constructor(
    code: ErrorName,
    message: string,
    readonly memberId: string,
  ) {
    super(code, message);
  }
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(err: BrokerError): void;
}

interface Member {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: ProtocolOffer[];
  assignment: Uint8Array;
  joinWaiter: Waiter<JoinGroupResult> | null;
  syncWaiter: Waiter<SyncGroupResult> | null;
  heartbeatTimer: TimerHandle | null;
}

interface Committed extends OffsetValue {
  /** Offset of the record in `__consumer_offsets`: a later write supersedes an earlier one. */
  recordOffset: number;
}

class Group {
  state: GroupState = 'Empty';
  generationId = 0;
  protocolType: string | null = null;
  protocolName: string | null = null;
  leaderId: string | null = null;
  readonly members = new Map<string, Member>();
  /** Dynamic members handed an id by MEMBER_ID_REQUIRED, not joined yet: id → expiry timer. */
  readonly pending = new Map<string, TimerHandle>();
  /** Static membership: group.instance.id → current member id. */
  readonly staticMembers = new Map<string, string>();
  readonly offsets = new Map<string, Map<number, Committed>>();
  joinTimer: TimerHandle | null = null;
  syncTimer: TimerHandle | null = null;
  initialDelay: { remainingMs: number; newMemberAdded: boolean } | null = null;
  /** Serialises this group's writes to the offsets topic. */
  chain: Promise<unknown> = Promise.resolve();
  /** Writes issued and not yet settled. */
  writes = 0;

  constructor(
    readonly id: string,
    public stateTimestampMs: number,
  ) {}

  offsetCount(): number {
    let n = 0;
    for (const m of this.offsets.values()) n += m.size;
    return n;
  }
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();
const err = (code: ErrorName, message: string) => new BrokerError(code, message);

export interface GroupCoordinatorDeps {
  logger: Logger;
  metrics: MetricsRegistry;
  /** Time source; unit tests pass a manual clock. */
  clock?: Clock;
  /**
   * A cluster (`__consumer_offsets` replicated): subscribes to the broker's leadership changes.
   * The coordinator then serves only the groups of the partitions this node leads, replaying a
   * partition when it becomes its leader and forgetting it when it stops (NOT_COORDINATOR for
   * the others). Absent on one node: every group is served, the whole topic replayed at open.
   */
  leadership?: (onChange: () => void) => () => void;
}

/** How often a new leader looks whether its high watermark reached its log end before replaying. */
const LEADER_CATCH_UP_POLL_MS = 25;
/** Pause before a failed partition load is tried again (the partition stays unserved meanwhile). */
const LOAD_RETRY_MS = 1000;

/** A `__consumer_offsets` partition this node leads (a cluster): loading, then serving. */
interface OwnedPartition {
  leaderEpoch: number;
  state: 'loading' | 'serving';
}

export class GroupCoordinator {
  private readonly groups = new Map<string, Group>();
  private readonly table: OffsetsTable;
  private readonly clock: Clock;
  private readonly log: Logger;
  private loading = true;
  private closed = false;
  private loadError: BrokerError | null = null;
  private sweepTimer: TimerHandle | null = null;
  private readonly inflight = new Set<Promise<unknown>>();
  /** Committed offsets held over all groups (bounded by maxCommittedOffsets). */
  private committedCount = 0;
  private readonly rebalances: Counter;
  private readonly commits: Counter;
  private readonly expirations: Counter;
  /** Resolves when the replay of `__consumer_offsets` has finished (or failed). */
  readonly loaded: Promise<void>;
  /** A cluster: partitions of `__consumer_offsets` this node leads (absent: one node, every group served). */
  private readonly owned: Map<number, OwnedPartition> | null;
  private unsubscribeLeadership: () => void = () => undefined;

  private constructor(
    private readonly broker: BrokerApi,
    readonly options: GroupOptions,
    deps: GroupCoordinatorDeps,
  ) {
    this.clock = deps.clock ?? systemClock;
    this.owned = deps.leadership ? new Map() : null;
    this.log = deps.logger.bindings().component ? deps.logger : deps.logger.child({ component: 'groups' });
    // Room for the largest group record the limits allow, within the broker's default ceiling
    // on max.message.bytes (8 MiB); past that a group record fails with MESSAGE_TOO_LARGE.
    const maxMessageBytes = Math.min(options.groupMaxSize * (options.memberMetadataMaxBytes + options.memberAssignmentMaxBytes + 2048) + 64 * 1024, 8 * 1024 * 1024);
    this.table = offsetsTable(
      broker,
      {
        partitions: options.offsetsTopicPartitions,
        segmentBytes: options.offsetsTopicSegmentBytes,
        maxMessageBytes,
        readBytes: options.loadReadBytes,
        // One key per committed partition and one per group: the coordinator's own limits
        // refuse first (with Kafka's codes); this bounds the table itself.
        maxEntries: options.maxCommittedOffsets + options.maxGroups,
      },
      { logger: this.log, metrics: deps.metrics },
    );
    const m = deps.metrics;
    this.rebalances = m.counter('tributary_group_rebalances_total', 'Rebalances started by the group coordinator');
    this.commits = m.counter('tributary_group_offset_commits_total', 'Partition offsets committed to __consumer_offsets');
    this.expirations = m.counter('tributary_group_member_expirations_total', 'Members removed because their session timed out');
    const groupsGauge = m.gauge('tributary_groups', 'Consumer groups by state');
    groupsGauge.collect(() => {
      if (this.closed) return;
      const counts: Record<string, number> = { Empty: 0, PreparingRebalance: 0, CompletingRebalance: 0, Stable: 0 };
      for (const g of this.groups.values()) if (g.state !== 'Dead') counts[g.state]++;
      for (const [state, n] of Object.entries(counts)) groupsGauge.set(n, { state });
    });
    const membersGauge = m.gauge('tributary_group_members', 'Members of consumer groups');
    membersGauge.collect(() => {
      if (this.closed) return;
      let n = 0;
      for (const g of this.groups.values()) n += g.members.size;
      membersGauge.set(n);
    });
    const lagGauge = m.gauge('tributary_consumer_group_lag', 'Sum over committed partitions of high watermark minus committed offset');
    lagGauge.collect(() => {
      if (this.closed || this.loading) return;
      for (const g of this.groups.values()) if (g.state !== 'Dead' && g.offsets.size > 0) lagGauge.set(this.lagOf(g).totalLag, { group: g.id });
    });
    this.loaded = deps.leadership ? this.follow(deps.leadership) : this.load();
  }

  /**
   * Opens the coordinator over the broker: replays `__consumer_offsets` (created on first
   * write), then starts the offsets-expiry sweep. With `loadInBackground`, resolves at once and
   * calls get COORDINATOR_LOAD_IN_PROGRESS until the replay is done.
   */
  static async open(broker: BrokerApi, options: Partial<GroupOptions>, deps: GroupCoordinatorDeps): Promise<GroupCoordinator> {
    const c = new GroupCoordinator(broker, resolveGroupOptions(options), deps);
    if (!c.options.loadInBackground) {
      await c.loaded;
      if (c.loadError) {
        await c.close();
        throw c.loadError;
      }
    }
    return c;
  }

  /** True while `__consumer_offsets` is being replayed. */
  get isLoading(): boolean {
    return this.loading;
  }

  /** Partition of `__consumer_offsets` holding a group (for FindCoordinator and tools). */
  partitionFor(groupId: string): number {
    return partitionForGroup(groupId, this.broker.describeTopic(OFFSETS_TOPIC)?.partitions ?? this.table.partitions);
  }

  /**
   * The node coordinating a group (FindCoordinator): the leader of its `__consumer_offsets`
   * partition. On one node, this node. In a cluster the topic is created by the first lookup
   * (COORDINATOR_NOT_AVAILABLE until its leaders are known: the client asks again).
   */
  coordinatorFor(groupId: string, selfId: number): number {
    this.checkServing();
    if (!this.owned) return selfId;
    this.checkGroupId(groupId);
    if (!this.broker.describeTopic(OFFSETS_TOPIC)) {
      this.table.ensureTopic().then(
        () => this.reconcile(),
        (e) => this.log.warn({ err: asBrokerError(e).message }, `creating ${OFFSETS_TOPIC} failed`),
      );
      throw err('COORDINATOR_NOT_AVAILABLE', `${OFFSETS_TOPIC} is being created`);
    }
    let leader = -1;
    try {
      leader = this.broker.partitionState({ topic: OFFSETS_TOPIC, partition: this.partitionFor(groupId) }).leaderId;
    } catch {
      // created in the metadata, its partitions not open here yet: the client asks again
    }
    if (leader < 0) throw err('COORDINATOR_NOT_AVAILABLE', `${OFFSETS_TOPIC}-${this.partitionFor(groupId)} has no leader right now`);
    return leader;
  }

  // --- membership --------------------------------------------------------------------------

  async joinGroup(req: JoinGroupRequest): Promise<JoinGroupResult> {
    this.checkServing();
    this.checkGroupId(req.groupId);
    this.checkOwner(req.groupId);
    const o = this.options;
    if (!Number.isInteger(req.sessionTimeoutMs) || req.sessionTimeoutMs < o.minSessionTimeoutMs || req.sessionTimeoutMs > o.maxSessionTimeoutMs) {
      throw err('INVALID_SESSION_TIMEOUT', `sessionTimeoutMs ${req.sessionTimeoutMs} is outside [${o.minSessionTimeoutMs}, ${o.maxSessionTimeoutMs}]`);
    }
    const rebalanceTimeoutMs = req.rebalanceTimeoutMs === undefined || req.rebalanceTimeoutMs < 0 ? req.sessionTimeoutMs : req.rebalanceTimeoutMs;
    if (!Number.isInteger(rebalanceTimeoutMs)) throw err('INVALID_REQUEST', `rebalanceTimeoutMs ${req.rebalanceTimeoutMs} is not an integer`);
    this.checkProtocols(req);
    const instanceId = req.groupInstanceId ?? null;
    if (instanceId !== null && instanceId.length === 0) throw err('INVALID_REQUEST', 'groupInstanceId must not be empty');

    let group = this.groups.get(req.groupId);
    let created = false;
    if (!group) {
      if (req.memberId !== '') throw err('UNKNOWN_MEMBER_ID', `group ${req.groupId} does not exist, so member ${req.memberId} is unknown`);
      group = this.createGroup(req.groupId);
      created = true;
    }
    try {
      if (group.state === 'Dead') throw err('COORDINATOR_NOT_AVAILABLE', `group ${req.groupId} is being deleted`);
      if (!this.supportsProtocols(group, req.protocolType, req.protocols)) {
        throw err('INCONSISTENT_GROUP_PROTOCOL', `protocol type ${req.protocolType} with protocols [${req.protocols.map((p) => p.name).join(', ')}] does not match group ${group.id}`);
      }
      const spec = { ...req, rebalanceTimeoutMs, groupInstanceId: instanceId };
      return req.memberId === '' ? this.joinNewMember(group, spec) : this.joinKnownMember(group, spec);
    } catch (e) {
      if (created) this.dropIfUnborn(group);
      throw e;
    }
  }

  async syncGroup(req: SyncGroupRequest): Promise<SyncGroupResult> {
    this.checkServing();
    this.checkGroupId(req.groupId);
    this.checkOwner(req.groupId);
    const group = this.groups.get(req.groupId);
    if (!group) throw err('UNKNOWN_MEMBER_ID', `group ${req.groupId} does not exist`);
    if (group.state === 'Dead') throw err('COORDINATOR_NOT_AVAILABLE', `group ${req.groupId} is being deleted`);
    const member = this.knownMember(group, req.memberId, req.groupInstanceId ?? null);
    if (req.generationId !== group.generationId) throw err('ILLEGAL_GENERATION', `generation ${req.generationId} is not the group's ${group.generationId}`);
    if ((req.protocolType != null && req.protocolType !== group.protocolType) || (req.protocolName != null && req.protocolName !== group.protocolName)) {
      throw err('INCONSISTENT_GROUP_PROTOCOL', `protocol ${req.protocolType}/${req.protocolName} differs from the group's ${group.protocolType}/${group.protocolName}`);
    }
    switch (group.state) {
      case 'Empty':
        throw err('UNKNOWN_MEMBER_ID', `group ${group.id} is empty`);
      case 'PreparingRebalance':
        throw err('REBALANCE_IN_PROGRESS', `group ${group.id} is rebalancing`);
      case 'Stable':
        this.scheduleHeartbeat(group, member);
        return { protocolType: group.protocolType, protocolName: group.protocolName, assignment: member.assignment };
      case 'CompletingRebalance':
        break;
    }
    const isLeader = group.leaderId === member.memberId;
    if (isLeader) {
      for (const a of req.assignments) {
        if (a.assignment.length > this.options.memberAssignmentMaxBytes) {
          const e = err('INVALID_REQUEST', `assignment for ${a.memberId} is ${a.assignment.length} bytes, above memberAssignmentMaxBytes (${this.options.memberAssignmentMaxBytes})`);
          this.prepareRebalance(group, e.message);
          throw e;
        }
      }
    }
    const result = new Promise<SyncGroupResult>((resolve, reject) => {
      member.syncWaiter?.reject(err('REBALANCE_IN_PROGRESS', 'superseded by a newer SyncGroup from the same member'));
      member.syncWaiter = { resolve, reject };
    });
    this.scheduleHeartbeat(group, member);
    if (isLeader) this.completeSync(group, req.assignments);
    return result;
  }

  async heartbeat(req: HeartbeatRequest): Promise<void> {
    this.checkServing();
    this.checkGroupId(req.groupId);
    this.checkOwner(req.groupId);
    const group = this.groups.get(req.groupId);
    if (!group) throw err('UNKNOWN_MEMBER_ID', `group ${req.groupId} does not exist`);
    if (group.state === 'Dead') throw err('COORDINATOR_NOT_AVAILABLE', `group ${req.groupId} is being deleted`);
    if (group.state === 'Empty') throw err('UNKNOWN_MEMBER_ID', `group ${req.groupId} is empty`);
    const member = this.knownMember(group, req.memberId, req.groupInstanceId ?? null);
    if (req.generationId !== group.generationId) throw err('ILLEGAL_GENERATION', `generation ${req.generationId} is not the group's ${group.generationId}`);
    this.scheduleHeartbeat(group, member);
    if (group.state === 'PreparingRebalance') throw err('REBALANCE_IN_PROGRESS', `group ${group.id} is rebalancing; rejoin`);
  }

  async leaveGroup(req: LeaveGroupRequest): Promise<LeaveGroupMemberResult[]> {
    this.checkServing();
    this.checkGroupId(req.groupId);
    this.checkOwner(req.groupId);
    const group = this.groups.get(req.groupId);
    if (group?.state === 'Dead') throw err('COORDINATOR_NOT_AVAILABLE', `group ${req.groupId} is being deleted`);
    return req.members.map((m) => {
      const instanceId = m.groupInstanceId ?? null;
      const out: LeaveGroupMemberResult = { memberId: m.memberId, groupInstanceId: instanceId, error: null };
      if (!group) {
        out.error = err('UNKNOWN_MEMBER_ID', `group ${req.groupId} does not exist`);
        return out;
      }
      let memberId = m.memberId;
      if (instanceId !== null) {
        const mapped = group.staticMembers.get(instanceId);
        if (mapped === undefined) {
          out.error = err('UNKNOWN_MEMBER_ID', `no member with instance id ${instanceId}`);
          return out;
        }
        if (memberId !== '' && memberId !== mapped) {
          out.error = err('FENCED_INSTANCE_ID', `instance id ${instanceId} belongs to another member`);
          return out;
        }
        memberId = mapped;
      }
      const pendingTimer = group.pending.get(memberId);
      if (pendingTimer !== undefined) {
        this.clock.clearTimeout(pendingTimer);
        group.pending.delete(memberId);
        this.tryCompleteJoin(group);
        this.dropIfUnborn(group);
        return out;
      }
      const member = group.members.get(memberId);
      if (!member) {
        out.error = err('UNKNOWN_MEMBER_ID', `member ${memberId} is not in group ${group.id}`);
        return out;
      }
      this.log.info({ group: group.id, member: memberId, reason: m.reason ?? undefined }, 'member left the group');
      this.removeMemberAndUpdateGroup(group, member, 'left');
      return out;
    });
  }

  // --- offsets -----------------------------------------------------------------------------

  async commitOffsets(req: CommitOffsetsRequest): Promise<PartitionResult[]> {
    this.checkServing();
    this.checkGroupId(req.groupId);
    this.checkOwner(req.groupId);
    const generationId = req.generationId ?? -1;
    const memberId = req.memberId ?? '';
    const instanceId = req.groupInstanceId ?? null;
    let group = this.groups.get(req.groupId);
    if (!group) {
      if (generationId >= 0) throw err('ILLEGAL_GENERATION', `group ${req.groupId} does not exist, generation ${generationId} is stale`);
      group = this.createGroup(req.groupId);
    }
    if (group.state === 'Dead') throw err('COORDINATOR_NOT_AVAILABLE', `group ${req.groupId} is being deleted`);
    if (!(generationId < 0 && group.state === 'Empty')) {
      this.knownMember(group, memberId, instanceId);
      if (generationId !== group.generationId) throw err('ILLEGAL_GENERATION', `generation ${generationId} is not the group's ${group.generationId}`);
      if (group.state === 'CompletingRebalance') throw err('REBALANCE_IN_PROGRESS', `group ${group.id} is completing a rebalance`);
    }
    const results: PartitionResult[] = [];
    const accepted: Array<{ result: PartitionResult; value: OffsetValue }> = [];
    const records: OffsetsChange[] = [];
    const now = this.clock.now();
    let newKeys = 0;
    for (const o of req.offsets) {
      const result: PartitionResult = { topic: o.topic, partition: o.partition, error: null };
      results.push(result);
      const info = this.broker.describeTopic(o.topic);
      if (!info || !Number.isInteger(o.partition) || o.partition < 0 || o.partition >= info.partitions || o.topic === OFFSETS_TOPIC) {
        result.error = err('UNKNOWN_TOPIC_OR_PARTITION', `${o.topic}-${o.partition} does not exist`);
        continue;
      }
      if (!Number.isSafeInteger(o.offset) || o.offset < -1) {
        result.error = err('INVALID_REQUEST', `committed offset ${o.offset} for ${o.topic}-${o.partition} is not a valid offset`);
        continue;
      }
      const metadata = o.metadata ?? '';
      if (utf8.encode(metadata).length > this.options.offsetMetadataMaxBytes) {
        result.error = err('OFFSET_METADATA_TOO_LARGE', `metadata of ${o.topic}-${o.partition} exceeds offsetMetadataMaxBytes (${this.options.offsetMetadataMaxBytes})`);
        continue;
      }
      if (!group.offsets.get(o.topic)?.has(o.partition)) {
        // Checked when the request arrives: concurrent requests may overshoot by their own size.
        if (this.committedCount + newKeys >= this.options.maxCommittedOffsets) {
          result.error = err('THROTTLING_QUOTA_EXCEEDED', `the coordinator holds maxCommittedOffsets (${this.options.maxCommittedOffsets}) committed offsets; cannot add ${o.topic}-${o.partition}`);
          continue;
        }
        newKeys++;
      }
      const value: OffsetValue = { offset: o.offset, leaderEpoch: o.leaderEpoch ?? -1, metadata, commitTimestampMs: now };
      accepted.push({ result, value });
      records.push({ key: { kind: 'offset', group: group.id, topic: o.topic, partition: o.partition }, value });
    }
    if (records.length === 0) {
      this.dropIfUnborn(group); // a refused standalone commit leaves no group behind
      return results;
    }
    const g = group;
    try {
      const recordOffsets = await this.write(g, records);
      accepted.forEach(({ result, value }, i) => this.applyOffset(g, result.topic, result.partition, { ...value, recordOffset: recordOffsets[i] }));
      this.commits.inc(undefined, accepted.length);
    } catch (e) {
      const failure = coordinatorError(asBrokerError(e));
      this.log.error({ group: g.id, err: failure.message }, 'offset commit write failed');
      for (const a of accepted) a.result.error = failure;
    }
    return results;
  }

  async fetchOffsets(req: FetchOffsetsRequest): Promise<FetchedOffset[]> {
    this.checkServing();
    this.checkGroupId(req.groupId);
    this.checkOwner(req.groupId);
    const group = this.groups.get(req.groupId);
    const out: FetchedOffset[] = [];
    const none = (topic: string, partition: number): FetchedOffset => ({ topic, partition, offset: -1, leaderEpoch: -1, metadata: '', commitTimestampMs: -1, error: null });
    if (req.partitions == null) {
      if (!group) return out;
      for (const [topic, parts] of group.offsets) {
        for (const [partition, c] of parts) out.push({ topic, partition, offset: c.offset, leaderEpoch: c.leaderEpoch, metadata: c.metadata, commitTimestampMs: c.commitTimestampMs, error: null });
      }
      return out;
    }
    for (const { topic, partition } of req.partitions) {
      const c = group?.offsets.get(topic)?.get(partition);
      out.push(c ? { topic, partition, offset: c.offset, leaderEpoch: c.leaderEpoch, metadata: c.metadata, commitTimestampMs: c.commitTimestampMs, error: null } : none(topic, partition));
    }
    return out;
  }

  /** Committed offset vs high watermark for each partition the group committed. */
  lag(groupId: string): GroupLag {
    this.checkServing();
    this.checkOwner(groupId);
    const group = this.groups.get(groupId);
    if (!group || group.state === 'Dead') throw err('GROUP_ID_NOT_FOUND', `group ${groupId} does not exist`);
    return this.lagOf(group);
  }

  // --- administration ----------------------------------------------------------------------

  listGroups(filter: { states?: string[] } = {}): GroupListing[] {
    this.checkServing();
    const states = filter.states && filter.states.length > 0 ? new Set(filter.states.map((s) => s.toLowerCase())) : null;
    const out: GroupListing[] = [];
    for (const g of this.groups.values()) {
      if (g.state === 'Dead') continue;
      if (states && !states.has(g.state.toLowerCase())) continue;
      out.push({ groupId: g.id, protocolType: g.protocolType ?? '', state: g.state });
    }
    return out;
  }

  describeGroups(groupIds: string[]): GroupDescription[] {
    this.checkServing();
    return groupIds.map((groupId) => {
      const d: GroupDescription = { groupId, state: 'Dead', protocolType: '', protocolName: '', generationId: -1, leader: null, members: [], error: null };
      try {
        this.checkGroupId(groupId);
        this.checkOwner(groupId);
      } catch (e) {
        d.error = e as BrokerError;
        return d;
      }
      const g = this.groups.get(groupId);
      if (!g) return d;
      const stable = g.state === 'Stable';
      d.state = g.state;
      d.protocolType = g.protocolType ?? '';
      d.protocolName = stable ? (g.protocolName ?? '') : '';
      d.generationId = g.generationId;
      d.leader = g.leaderId;
      d.members = [...g.members.values()].map(
        (m): DescribedMember => ({
          memberId: m.memberId,
          groupInstanceId: m.groupInstanceId,
          clientId: m.clientId,
          clientHost: m.clientHost,
          metadata: stable ? this.metadataFor(m, g.protocolName) : EMPTY,
          assignment: stable ? m.assignment : EMPTY,
        }),
      );
      return d;
    });
  }

  /** Deletes empty groups and their committed offsets (tombstones in `__consumer_offsets`). */
  async deleteGroups(groupIds: string[]): Promise<Array<{ groupId: string; error: BrokerError | null }>> {
    this.checkServing();
    return Promise.all(
      groupIds.map(async (groupId) => {
        try {
          this.checkGroupId(groupId);
          this.checkOwner(groupId);
          const g = this.groups.get(groupId);
          if (!g || g.state === 'Dead') throw err('GROUP_ID_NOT_FOUND', `group ${groupId} does not exist`);
          if (g.state !== 'Empty' || g.members.size > 0 || g.pending.size > 0) throw err('NON_EMPTY_GROUP', `group ${groupId} has members (state ${g.state})`);
          await this.removeGroup(g, 'deleted');
          return { groupId, error: null };
        } catch (e) {
          return { groupId, error: asBrokerError(e) };
        }
      }),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer !== null) this.clock.clearTimeout(this.sweepTimer);
    this.unsubscribeLeadership();
    const shutdown = err('COORDINATOR_NOT_AVAILABLE', 'the group coordinator is shutting down');
    for (const g of this.groups.values()) this.stopGroup(g, shutdown);
    await this.loaded;
    await Promise.allSettled([...this.inflight]);
  }

  /** Stops a group's timers and answers its parked calls with `reason` (close, or lost leadership). */
  private stopGroup(g: Group, reason: BrokerError): void {
    if (g.joinTimer !== null) this.clock.clearTimeout(g.joinTimer);
    if (g.syncTimer !== null) this.clock.clearTimeout(g.syncTimer);
    g.joinTimer = g.syncTimer = null;
    for (const t of g.pending.values()) this.clock.clearTimeout(t);
    for (const m of g.members.values()) {
      if (m.heartbeatTimer !== null) this.clock.clearTimeout(m.heartbeatTimer);
      m.heartbeatTimer = null;
      m.joinWaiter?.reject(reason);
      m.syncWaiter?.reject(reason);
      m.joinWaiter = m.syncWaiter = null;
    }
  }

  // --- join internals ----------------------------------------------------------------------

  private joinNewMember(group: Group, req: JoinGroupRequest & { rebalanceTimeoutMs: number; groupInstanceId: string | null }): Promise<JoinGroupResult> {
    const instanceId = req.groupInstanceId;
    const memberId = `${(instanceId ?? req.clientId ?? 'member').slice(0, 64) || 'member'}-${randomUUID()}`;
    if (instanceId !== null) {
      const oldId = group.staticMembers.get(instanceId);
      if (oldId !== undefined) return this.replaceStaticMember(group, oldId, memberId, req);
      this.checkGroupSize(group);
      return this.addMemberAndRebalance(group, memberId, req);
    }
    this.checkGroupSize(group);
    if (req.requireKnownMemberId) {
      // KIP-394: hand out the id first, so a client that dies before rejoining leaves no ghost member.
      const timer = this.clock.setTimeout(() => {
        if (group.pending.delete(memberId)) {
          this.tryCompleteJoin(group);
          this.dropIfUnborn(group);
        }
      }, req.sessionTimeoutMs);
      group.pending.set(memberId, timer);
      throw new JoinGroupError('MEMBER_ID_REQUIRED', `join again with member id ${memberId}`, memberId);
    }
    return this.addMemberAndRebalance(group, memberId, req);
  }

  private joinKnownMember(group: Group, req: JoinGroupRequest & { rebalanceTimeoutMs: number; groupInstanceId: string | null }): Promise<JoinGroupResult> {
    const pendingTimer = group.pending.get(req.memberId);
    if (pendingTimer !== undefined) {
      this.clock.clearTimeout(pendingTimer);
      group.pending.delete(req.memberId);
      return this.addMemberAndRebalance(group, req.memberId, req);
    }
    const member = this.knownMember(group, req.memberId, req.groupInstanceId);
    switch (group.state) {
      case 'PreparingRebalance':
        this.updateMember(member, req);
        return this.awaitJoin(group, member, true);
      case 'CompletingRebalance':
        if (this.sameMetadata(member, req.protocols)) return Promise.resolve(this.joinResult(group, member));
        this.updateMember(member, req);
        {
          const p = this.awaitJoin(group, member, false);
          this.prepareRebalance(group, `member ${member.memberId} changed its metadata`);
          return p;
        }
      case 'Stable':
        if (group.leaderId !== member.memberId && this.sameMetadata(member, req.protocols)) {
          this.scheduleHeartbeat(group, member);
          return Promise.resolve(this.joinResult(group, member));
        }
        this.updateMember(member, req);
        {
          const p = this.awaitJoin(group, member, false);
          this.prepareRebalance(group, group.leaderId === member.memberId ? 'the leader rejoined' : `member ${member.memberId} changed its metadata`);
          return p;
        }
      default:
        throw err('UNKNOWN_MEMBER_ID', `member ${req.memberId} is not in group ${group.id} (${group.state})`);
    }
  }

  private addMemberAndRebalance(group: Group, memberId: string, req: JoinGroupRequest & { rebalanceTimeoutMs: number; groupInstanceId: string | null }): Promise<JoinGroupResult> {
    const member: Member = {
      memberId,
      groupInstanceId: req.groupInstanceId,
      clientId: req.clientId ?? '',
      clientHost: req.clientHost ?? '',
      sessionTimeoutMs: req.sessionTimeoutMs,
      rebalanceTimeoutMs: req.rebalanceTimeoutMs,
      protocolType: req.protocolType,
      protocols: copyProtocols(req.protocols),
      assignment: EMPTY,
      joinWaiter: null,
      syncWaiter: null,
      heartbeatTimer: null,
    };
    if (group.members.size === 0) group.protocolType = req.protocolType;
    group.members.set(memberId, member);
    if (member.groupInstanceId !== null) group.staticMembers.set(member.groupInstanceId, memberId);
    if (group.leaderId === null || !group.members.has(group.leaderId)) group.leaderId = memberId;
    if (group.initialDelay) group.initialDelay.newMemberAdded = true;
    this.log.debug({ group: group.id, member: memberId, instance: member.groupInstanceId }, 'member joined');
    const p = this.awaitJoin(group, member, false);
    if (group.state === 'PreparingRebalance') this.tryCompleteJoin(group);
    else this.prepareRebalance(group, `member ${memberId} joined`);
    return p;
  }

  private replaceStaticMember(group: Group, oldId: string, newId: string, req: JoinGroupRequest & { rebalanceTimeoutMs: number; groupInstanceId: string | null }): Promise<JoinGroupResult> {
    const old = group.members.get(oldId)!;
    const fenced = err('FENCED_INSTANCE_ID', `instance ${req.groupInstanceId} rejoined as ${newId}`);
    old.joinWaiter?.reject(fenced);
    old.syncWaiter?.reject(fenced);
    if (old.heartbeatTimer !== null) this.clock.clearTimeout(old.heartbeatTimer);
    const unchanged = this.sameMetadata(old, req.protocols);
    const member: Member = { ...old, memberId: newId, joinWaiter: null, syncWaiter: null, heartbeatTimer: null };
    this.updateMember(member, req);
    group.members.delete(oldId);
    group.members.set(newId, member);
    group.staticMembers.set(member.groupInstanceId!, newId);
    const wasLeader = group.leaderId === oldId;
    if (wasLeader) group.leaderId = newId;
    this.log.info({ group: group.id, instance: member.groupInstanceId, old: oldId, member: newId }, 'static member replaced');

    if (group.state === 'Stable' && unchanged && !wasLeader) {
      // KIP-345: a static member restarting with the same subscription keeps its assignment;
      // persist the new member id, then answer with the current generation (no rebalance).
      this.scheduleHeartbeat(group, member);
      const generation = group.generationId;
      return this.write(group, [this.groupRecord(group)]).then(
        () => this.joinResult(group, member),
        (e) => {
          if (group.generationId === generation && group.state === 'Stable') this.prepareRebalance(group, 'persisting a static member failed');
          throw asBrokerError(e);
        },
      );
    }
    const p = this.awaitJoin(group, member, false);
    if (group.state === 'PreparingRebalance') this.tryCompleteJoin(group);
    else this.prepareRebalance(group, `static member ${member.groupInstanceId} rejoined`);
    return p;
  }

  private awaitJoin(group: Group, member: Member, tryComplete: boolean): Promise<JoinGroupResult> {
    const p = new Promise<JoinGroupResult>((resolve, reject) => {
      member.joinWaiter?.reject(err('REBALANCE_IN_PROGRESS', 'superseded by a newer JoinGroup from the same member'));
      member.joinWaiter = { resolve, reject };
    });
    this.scheduleHeartbeat(group, member);
    if (tryComplete) this.tryCompleteJoin(group);
    return p;
  }

  private prepareRebalance(group: Group, reason: string): void {
    if (group.state === 'CompletingRebalance') {
      const e = err('REBALANCE_IN_PROGRESS', `group ${group.id} is rebalancing again: ${reason}`);
      for (const m of group.members.values()) {
        m.syncWaiter?.reject(e);
        m.syncWaiter = null;
      }
    }
    if (group.syncTimer !== null) this.clock.clearTimeout(group.syncTimer);
    group.syncTimer = null;
    if (group.joinTimer !== null) this.clock.clearTimeout(group.joinTimer);
    group.joinTimer = null;
    const wasEmpty = group.state === 'Empty';
    this.setState(group, 'PreparingRebalance');
    this.rebalances.inc();
    this.log.info({ group: group.id, generation: group.generationId, reason }, 'preparing rebalance');
    const rebalanceTimeoutMs = this.maxRebalanceTimeout(group);
    const delay = this.options.initialRebalanceDelayMs;
    if (wasEmpty && delay > 0) {
      // Kafka's InitialDelayedJoin: an empty group waits for more members, extending while they
      // keep coming, but never beyond the rebalance timeout.
      const first = Math.min(delay, rebalanceTimeoutMs);
      group.initialDelay = { remainingMs: Math.max(rebalanceTimeoutMs - first, 0), newMemberAdded: false };
      group.joinTimer = this.clock.setTimeout(() => this.onInitialDelay(group), first);
      return;
    }
    group.initialDelay = null;
    group.joinTimer = this.clock.setTimeout(() => this.completeJoin(group), rebalanceTimeoutMs);
    this.tryCompleteJoin(group);
  }

  private onInitialDelay(group: Group): void {
    const d = group.initialDelay;
    group.joinTimer = null;
    if (!d || group.state !== 'PreparingRebalance') return;
    if (d.newMemberAdded && d.remainingMs > 0) {
      const next = Math.min(this.options.initialRebalanceDelayMs, d.remainingMs);
      d.remainingMs -= next;
      d.newMemberAdded = false;
      group.joinTimer = this.clock.setTimeout(() => this.onInitialDelay(group), next);
      return;
    }
    group.initialDelay = null;
    this.completeJoin(group);
  }

  private tryCompleteJoin(group: Group): void {
    if (group.state !== 'PreparingRebalance' || group.initialDelay) return;
    if (group.pending.size > 0) return;
    for (const m of group.members.values()) if (!m.joinWaiter) return;
    this.completeJoin(group);
  }

  private completeJoin(group: Group): void {
    if (group.state !== 'PreparingRebalance') return;
    if (group.joinTimer !== null) this.clock.clearTimeout(group.joinTimer);
    group.joinTimer = null;
    group.initialDelay = null;
    for (const m of [...group.members.values()]) {
      if (!m.joinWaiter) {
        this.log.info({ group: group.id, member: m.memberId }, 'member did not rejoin within the rebalance timeout; removed');
        this.removeMember(group, m, err('UNKNOWN_MEMBER_ID', 'removed: did not rejoin in time'));
      }
    }
    group.generationId++;
    if (group.members.size > 0) {
      group.protocolName = this.selectProtocol(group);
      if (group.leaderId === null || !group.members.has(group.leaderId)) group.leaderId = group.members.keys().next().value!;
      this.setState(group, 'CompletingRebalance');
      const generation = group.generationId;
      group.syncTimer = this.clock.setTimeout(() => this.onSyncTimeout(group, generation), this.maxRebalanceTimeout(group));
    } else {
      group.protocolName = null;
      group.leaderId = null;
      this.setState(group, 'Empty');
      this.persistInBackground(group);
    }
    this.log.info({ group: group.id, generation: group.generationId, protocol: group.protocolName, members: group.members.size, leader: group.leaderId }, 'rebalance: join complete');
    for (const m of group.members.values()) {
      const w = m.joinWaiter;
      m.joinWaiter = null;
      w?.resolve(this.joinResult(group, m));
      this.scheduleHeartbeat(group, m);
    }
  }

  private onSyncTimeout(group: Group, generation: number): void {
    group.syncTimer = null;
    if (group.state !== 'CompletingRebalance' || group.generationId !== generation) return;
    const missing = [...group.members.values()].filter((m) => !m.syncWaiter);
    this.log.info({ group: group.id, generation, missing: missing.map((m) => m.memberId) }, 'members did not sync within the rebalance timeout');
    for (const m of missing) this.removeMember(group, m, err('UNKNOWN_MEMBER_ID', 'removed: did not sync in time'));
    this.prepareRebalance(group, 'members did not sync in time');
  }

  private completeSync(group: Group, assignments: SyncGroupRequest['assignments']): void {
    const byMember = new Map<string, Uint8Array>();
    for (const a of assignments) {
      if (group.members.has(a.memberId)) byMember.set(a.memberId, a.assignment.slice()); // copy: request buffers are transient
    }
    const generation = group.generationId;
    const record = this.groupRecord(group, byMember);
    this.write(group, [record]).then(
      () => {
        if (group.state !== 'CompletingRebalance' || group.generationId !== generation) return;
        for (const m of group.members.values()) m.assignment = byMember.get(m.memberId) ?? EMPTY;
        if (group.syncTimer !== null) this.clock.clearTimeout(group.syncTimer);
        group.syncTimer = null;
        this.setState(group, 'Stable');
        this.log.info({ group: group.id, generation }, 'rebalance: group stable');
        for (const m of group.members.values()) {
          const w = m.syncWaiter;
          m.syncWaiter = null;
          w?.resolve({ protocolType: group.protocolType, protocolName: group.protocolName, assignment: m.assignment });
        }
      },
      (e) => {
        this.log.error({ group: group.id, err: asBrokerError(e).message }, 'persisting the group assignment failed');
        if (group.state !== 'CompletingRebalance' || group.generationId !== generation) return;
        const failure = err('COORDINATOR_NOT_AVAILABLE', `storing the assignment failed: ${asBrokerError(e).message}`);
        for (const m of group.members.values()) {
          m.syncWaiter?.reject(failure);
          m.syncWaiter = null;
        }
        this.prepareRebalance(group, 'storing the assignment failed');
      },
    );
  }

  // --- member internals --------------------------------------------------------------------

  private scheduleHeartbeat(group: Group, member: Member): void {
    if (member.heartbeatTimer !== null) this.clock.clearTimeout(member.heartbeatTimer);
    member.heartbeatTimer = this.clock.setTimeout(() => this.onSessionExpired(group, member), member.sessionTimeoutMs);
  }

  private onSessionExpired(group: Group, member: Member): void {
    member.heartbeatTimer = null;
    if (group.members.get(member.memberId) !== member || this.closed) return;
    if (member.joinWaiter || member.syncWaiter) {
      // Awaiting the rebalance (join) or the leader's assignment (sync): the rebalance and sync
      // timeouts decide, not the session.
      this.scheduleHeartbeat(group, member);
      return;
    }
    this.expirations.inc();
    this.log.info({ group: group.id, member: member.memberId, sessionTimeoutMs: member.sessionTimeoutMs }, 'member session expired');
    this.removeMemberAndUpdateGroup(group, member, 'session expired');
  }

  private removeMember(group: Group, member: Member, reason: BrokerError): void {
    if (member.heartbeatTimer !== null) this.clock.clearTimeout(member.heartbeatTimer);
    member.heartbeatTimer = null;
    member.joinWaiter?.reject(reason);
    member.syncWaiter?.reject(reason);
    member.joinWaiter = member.syncWaiter = null;
    group.members.delete(member.memberId);
    if (member.groupInstanceId !== null && group.staticMembers.get(member.groupInstanceId) === member.memberId) group.staticMembers.delete(member.groupInstanceId);
    if (group.leaderId === member.memberId) group.leaderId = group.members.keys().next().value ?? null;
  }

  private removeMemberAndUpdateGroup(group: Group, member: Member, reason: string): void {
    this.removeMember(group, member, err('UNKNOWN_MEMBER_ID', `member removed: ${reason}`));
    switch (group.state) {
      case 'Stable':
      case 'CompletingRebalance':
        this.prepareRebalance(group, `member ${member.memberId} ${reason}`);
        break;
      case 'PreparingRebalance':
        this.tryCompleteJoin(group);
        break;
      default:
        break;
    }
  }

  private updateMember(member: Member, req: JoinGroupRequest & { rebalanceTimeoutMs: number }): void {
    member.protocols = copyProtocols(req.protocols);
    member.sessionTimeoutMs = req.sessionTimeoutMs;
    member.rebalanceTimeoutMs = req.rebalanceTimeoutMs;
    if (req.clientId !== undefined) member.clientId = req.clientId;
    if (req.clientHost !== undefined) member.clientHost = req.clientHost;
  }

  private knownMember(group: Group, memberId: string, instanceId: string | null): Member {
    if (instanceId !== null) {
      const mapped = group.staticMembers.get(instanceId);
      if (mapped !== undefined && mapped !== memberId) throw err('FENCED_INSTANCE_ID', `instance id ${instanceId} now belongs to member ${mapped}`);
    }
    const member = group.members.get(memberId);
    if (!member) throw err('UNKNOWN_MEMBER_ID', `member ${memberId || "''"} is not in group ${group.id}`);
    return member;
  }

  private joinResult(group: Group, member: Member): JoinGroupResult {
    const isLeader = group.leaderId === member.memberId;
    return {
      generationId: group.generationId,
      protocolType: group.protocolType,
      protocolName: group.protocolName,
      leader: group.leaderId ?? '',
      memberId: member.memberId,
      members: isLeader
        ? [...group.members.values()].map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, metadata: this.metadataFor(m, group.protocolName) }))
        : [],
      skipAssignment: false,
    };
  }

  private metadataFor(member: Member, protocolName: string | null): Uint8Array {
    return member.protocols.find((p) => p.name === protocolName)?.metadata ?? EMPTY;
  }

  private sameMetadata(member: Member, protocols: ProtocolOffer[]): boolean {
    if (member.protocols.length !== protocols.length) return false;
    return member.protocols.every((p, i) => p.name === protocols[i].name && bytesEqual(p.metadata, protocols[i].metadata));
  }

  private supportsProtocols(group: Group, protocolType: string, protocols: ProtocolOffer[]): boolean {
    if (group.members.size === 0) return protocolType.length > 0 && protocols.length > 0;
    if (protocolType !== group.protocolType) return false;
    const candidates = this.candidateProtocols(group);
    return protocols.some((p) => candidates.has(p.name));
  }

  private candidateProtocols(group: Group): Set<string> {
    let candidates: Set<string> | null = null;
    for (const m of group.members.values()) {
      const names = new Set<string>(m.protocols.map((p) => p.name));
      if (candidates === null) candidates = names;
      else {
        const previous: Set<string> = candidates;
        candidates = new Set<string>([...previous].filter((n) => names.has(n)));
      }
    }
    return candidates ?? new Set<string>();
  }

  /** Kafka's vote: each member votes for its most preferred candidate; most votes wins. */
  private selectProtocol(group: Group): string {
    const candidates = this.candidateProtocols(group);
    const votes = new Map<string, number>();
    for (const m of group.members.values()) {
      const choice = m.protocols.find((p) => candidates.has(p.name));
      if (choice) votes.set(choice.name, (votes.get(choice.name) ?? 0) + 1);
    }
    let best: string | null = null;
    let bestVotes = -1;
    for (const [name, n] of votes) {
      if (n > bestVotes) {
        best = name;
        bestVotes = n;
      }
    }
    if (best === null) throw new Error(`group ${group.id}: no common protocol among members (checked at join)`);
    return best;
  }

  private maxRebalanceTimeout(group: Group): number {
    let max = 0;
    for (const m of group.members.values()) max = Math.max(max, m.rebalanceTimeoutMs);
    return max;
  }

  private checkProtocols(req: JoinGroupRequest): void {
    if (typeof req.protocolType !== 'string') throw err('INVALID_REQUEST', 'protocolType is required');
    if (!Array.isArray(req.protocols)) throw err('INVALID_REQUEST', 'protocols must be an array');
    if (req.protocols.length > this.options.memberProtocolsMax) {
      throw err('INVALID_REQUEST', `${req.protocols.length} protocols offered, above memberProtocolsMax (${this.options.memberProtocolsMax})`);
    }
    let bytes = 0;
    for (const p of req.protocols) bytes += utf8.encode(p.name).length + p.metadata.length;
    if (bytes > this.options.memberMetadataMaxBytes) {
      throw err('INVALID_REQUEST', `protocol metadata is ${bytes} bytes, above memberMetadataMaxBytes (${this.options.memberMetadataMaxBytes})`);
    }
  }

  private checkGroupSize(group: Group): void {
    if (group.members.size + group.pending.size >= this.options.groupMaxSize) {
      throw err('GROUP_MAX_SIZE_REACHED', `group ${group.id} has reached groupMaxSize (${this.options.groupMaxSize})`);
    }
  }

  // --- groups ------------------------------------------------------------------------------

  private checkServing(): void {
    if (this.closed) throw err('COORDINATOR_NOT_AVAILABLE', 'the group coordinator is closed');
    if (this.loading) throw err('COORDINATOR_LOAD_IN_PROGRESS', 'the group coordinator is loading __consumer_offsets');
    if (this.loadError) throw err('COORDINATOR_NOT_AVAILABLE', `loading __consumer_offsets failed: ${this.loadError.message}`);
  }

  /** A cluster: only the leader of the group's `__consumer_offsets` partition serves it, once replayed. */
  private checkOwner(groupId: string): void {
    if (!this.owned) return;
    const partition = this.partitionFor(groupId);
    const owned = this.owned.get(partition);
    if (!owned) throw err('NOT_COORDINATOR', `this node does not lead ${OFFSETS_TOPIC}-${partition}, which holds group ${groupId}: ask FindCoordinator again`);
    if (owned.state === 'loading') throw err('COORDINATOR_LOAD_IN_PROGRESS', `this node is replaying ${OFFSETS_TOPIC}-${partition} after becoming its leader`);
  }

  private checkGroupId(groupId: string): void {
    if (typeof groupId !== 'string' || groupId.length === 0) throw err('INVALID_GROUP_ID', 'group id must be a non-empty string');
    if (utf8.encode(groupId).length > this.options.groupIdMaxBytes) throw err('INVALID_GROUP_ID', `group id is longer than groupIdMaxBytes (${this.options.groupIdMaxBytes})`);
  }

  private createGroup(groupId: string): Group {
    if (this.groups.size >= this.options.maxGroups) {
      // Kafka has no group-count limit, so no dedicated code: the quota code is the closest and
      // is retriable (an empty group expiring frees a slot).
      throw err('THROTTLING_QUOTA_EXCEEDED', `the coordinator holds maxGroups (${this.options.maxGroups}) groups; cannot create ${groupId}`);
    }
    const g = new Group(groupId, this.clock.now());
    this.groups.set(groupId, g);
    return g;
  }

  /** Forgets a group that never stored anything (e.g. a join refused, an id never used). */
  private dropIfUnborn(group: Group): void {
    if (group.state === 'Empty' && group.generationId === 0 && group.members.size === 0 && group.pending.size === 0 && group.offsets.size === 0) {
      if (this.groups.get(group.id) === group && group.writes === 0) this.groups.delete(group.id);
    }
  }

  private setState(group: Group, state: GroupState): void {
    if (group.state !== state) {
      group.state = state;
      group.stateTimestampMs = this.clock.now();
    }
  }

  private groupRecord(group: Group, assignments?: Map<string, Uint8Array>): OffsetsChange {
    const value: GroupValue = {
      protocolType: group.protocolType ?? '',
      generationId: group.generationId,
      protocolName: group.protocolName,
      leaderId: group.leaderId,
      stateTimestampMs: group.stateTimestampMs,
      members: [...group.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        rebalanceTimeoutMs: m.rebalanceTimeoutMs,
        sessionTimeoutMs: m.sessionTimeoutMs,
        subscription: this.metadataFor(m, group.protocolName),
        assignment: assignments ? (assignments.get(m.memberId) ?? EMPTY) : m.assignment,
      })),
    };
    return { key: { kind: 'group', group: group.id }, value };
  }

  private persistInBackground(group: Group): void {
    this.write(group, [this.groupRecord(group)]).catch((e) => this.log.error({ group: group.id, err: asBrokerError(e).message }, 'persisting group metadata failed'));
  }

  /** Appends a group's records after its earlier writes; resolves with their offsets. */
  private write(group: Group, records: OffsetsChange[]): Promise<number[]> {
    group.writes++;
    const partition = this.partitionFor(group.id);
    const p = group.chain.then(() => this.table.write(partition, records));
    group.chain = p.catch(() => undefined);
    const tracked = p.finally(() => {
      group.writes--;
      this.inflight.delete(tracked);
    });
    this.inflight.add(tracked);
    tracked.catch(() => undefined);
    return p;
  }

  private applyOffset(group: Group, topic: string, partition: number, c: Committed): void {
    let parts = group.offsets.get(topic);
    const prev = parts?.get(partition);
    if (prev && prev.recordOffset > c.recordOffset) return;
    if (!parts) group.offsets.set(topic, (parts = new Map()));
    if (!prev) this.committedCount++;
    parts.set(partition, c);
  }

  /** Writes tombstones for the group's offsets and metadata, then forgets it. */
  private async removeGroup(group: Group, reason: string): Promise<void> {
    const previous = group.state;
    this.setState(group, 'Dead');
    const records: OffsetsChange[] = [];
    for (const [topic, parts] of group.offsets) for (const partition of parts.keys()) records.push({ key: { kind: 'offset', group: group.id, topic, partition }, value: null });
    records.push({ key: { kind: 'group', group: group.id }, value: null });
    try {
      await this.write(group, records);
    } catch (e) {
      group.state = previous;
      throw e;
    }
    if (this.groups.get(group.id) === group) {
      this.groups.delete(group.id);
      this.committedCount -= group.offsetCount();
    }
    this.log.info({ group: group.id, reason, offsets: records.length - 1 }, 'group removed');
  }

  private lagOf(group: Group): GroupLag {
    const partitions: PartitionLag[] = [];
    let totalLag = 0;
    for (const [topic, parts] of group.offsets) {
      for (const [partition, c] of parts) {
        let hw = -1;
        let leo = -1;
        let lag: number | null = null;
        try {
          const o = this.broker.offsets({ topic, partition });
          hw = o.highWatermark;
          leo = o.logEndOffset;
          lag = Math.max(0, hw - Math.max(c.offset, 0));
          totalLag += lag;
        } catch {
          // the topic or partition is gone: no lag to report
        }
        partitions.push({ topic, partition, committedOffset: c.offset, highWatermark: hw, logEndOffset: leo, lag });
      }
    }
    return { groupId: group.id, state: group.state, partitions, totalLag };
  }

  // --- loading and expiry ------------------------------------------------------------------

  private async load(): Promise<void> {
    const started = Date.now();
    try {
      // The table replays __consumer_offsets (last value per key, tombstones applied, records
      // that do not decode skipped and counted); the groups are rebuilt from what it holds.
      const { records, skipped } = await this.table.load();
      this.restoreGroups(null);
      this.log.info({ groups: this.groups.size, records, skipped, ms: Date.now() - started }, 'consumer groups loaded');
      if (this.committedCount > this.options.maxCommittedOffsets) {
        this.log.warn({ offsets: this.committedCount, maxCommittedOffsets: this.options.maxCommittedOffsets }, 'more committed offsets on disk than maxCommittedOffsets; new ones are refused until some expire');
      }
      if (this.groups.size > this.options.maxGroups) this.log.warn({ groups: this.groups.size, maxGroups: this.options.maxGroups }, 'more groups on disk than maxGroups; new groups are refused until some expire');
    } catch (e) {
      this.loadError = asBrokerError(e);
      this.log.error({ err: this.loadError.message }, 'loading __consumer_offsets failed');
    } finally {
      this.loading = false;
    }
    if (!this.closed && !this.loadError) this.scheduleSweep();
  }

  /** Rebuilds the groups the table holds (of one `__consumer_offsets` partition, or all). */
  private restoreGroups(partition: number | null): number {
    const replayed = new Map<string, { value: GroupValue | null; offsets: Map<string, Map<number, Committed>> }>();
    for (const entry of this.table.values()) {
      if (partition !== null && entry.partition !== partition) continue;
      const key = entry.key;
      let e = replayed.get(key.group);
      if (!e) replayed.set(key.group, (e = { value: null, offsets: new Map() }));
      if (key.kind === 'group') {
        e.value = entry.value as GroupValue;
        continue;
      }
      let parts = e.offsets.get(key.topic);
      if (!parts) e.offsets.set(key.topic, (parts = new Map()));
      parts.set(key.partition, { ...(entry.value as OffsetValue), recordOffset: entry.offset });
    }
    for (const [groupId, e] of replayed) this.restoreGroup(groupId, e.value, e.offsets);
    return replayed.size;
  }

  // --- a cluster: the groups of the partitions this node leads ----------------------------

  /** Subscribes to leadership changes and takes the partitions this node leads now. */
  private async follow(leadership: (onChange: () => void) => () => void): Promise<void> {
    this.unsubscribeLeadership = leadership(() => this.reconcile());
    this.loading = false;
    this.reconcile();
    this.scheduleSweep();
  }

  /**
   * Loads the partitions this node now leads (or leads in a new epoch: another leader may have
   * written meanwhile) and unloads those it stopped leading. Synchronous: the owned map changes
   * with no await, so a group call sees either the old owner state or the new.
   */
  private reconcile(): void {
    if (!this.owned || this.closed) return;
    const info = this.broker.describeTopic(OFFSETS_TOPIC);
    const count = info?.partitions ?? 0;
    for (const p of [...this.owned.keys()]) if (p >= count) this.unloadPartition(p, 'the partition is gone');
    for (let p = 0; p < count; p++) {
      let state;
      try {
        state = this.broker.partitionState({ topic: OFFSETS_TOPIC, partition: p });
      } catch {
        continue; // not open yet: the next change brings it
      }
      const owned = this.owned.get(p);
      const leads = state.role === 'leader' && state.leaderId >= 0;
      if (owned && (!leads || owned.leaderEpoch !== state.leaderEpoch)) this.unloadPartition(p, leads ? `new leader epoch ${state.leaderEpoch}` : `leader is now ${state.leaderId}`);
      if (leads && !this.owned.has(p)) this.loadPartition(p, state.leaderEpoch);
    }
  }

  /**
   * Becomes the coordinator of one partition's groups: waits until this new leader's high
   * watermark reaches the log end it had when elected (what the old leader acknowledged is
   * then committed here), replays the partition up to it and restores its groups.
   */
  private loadPartition(partition: number, leaderEpoch: number): void {
    const entry: OwnedPartition = { leaderEpoch, state: 'loading' };
    this.owned!.set(partition, entry);
    const current = () => !this.closed && this.owned!.get(partition) === entry;
    const tp = { topic: OFFSETS_TOPIC, partition };
    const started = this.clock.now();
    const run = async () => {
      const target = this.broker.partitionState(tp).logEndOffset;
      while (current() && this.broker.partitionState(tp).highWatermark < target) {
        await new Promise<void>((resolve) => this.clock.setTimeout(resolve, LEADER_CATCH_UP_POLL_MS));
      }
      if (!current()) return;
      const { records } = await this.table.loadPartition(partition);
      if (!current()) return;
      const groups = this.restoreGroups(partition);
      entry.state = 'serving';
      this.log.info({ partition, leaderEpoch, groups, records, ms: this.clock.now() - started }, `coordinating the groups of ${OFFSETS_TOPIC}-${partition}`);
    };
    const p = run().catch((e) => {
      this.log.error({ partition, err: asBrokerError(e).message }, `loading ${OFFSETS_TOPIC}-${partition} failed; retrying`);
      if (!current()) return;
      this.owned!.delete(partition);
      this.table.dropPartition(partition);
      this.clock.setTimeout(() => this.reconcile(), LOAD_RETRY_MS);
    });
    this.inflight.add(p);
    p.finally(() => this.inflight.delete(p));
  }

  /** Stops coordinating one partition's groups: parked calls get NOT_COORDINATOR, state is forgotten. */
  private unloadPartition(partition: number, reason: string): void {
    this.owned!.delete(partition);
    const moved = err('NOT_COORDINATOR', `${OFFSETS_TOPIC}-${partition} moved (${reason}): ask FindCoordinator again`);
    let n = 0;
    for (const g of [...this.groups.values()]) {
      if (this.partitionFor(g.id) !== partition) continue;
      this.stopGroup(g, moved);
      g.state = 'Dead'; // a write still in flight for it settles without effect
      this.committedCount -= g.offsetCount();
      this.groups.delete(g.id);
      n++;
    }
    this.table.dropPartition(partition);
    this.log.info({ partition, groups: n, reason }, `no longer coordinating the groups of ${OFFSETS_TOPIC}-${partition}`);
  }

  private restoreGroup(groupId: string, value: GroupValue | null, offsets: Map<string, Map<number, Committed>>): void {
    for (const [topic, parts] of offsets) if (parts.size === 0) offsets.delete(topic);
    if (!value && offsets.size === 0) return;
    const g = new Group(groupId, value?.stateTimestampMs ?? this.clock.now());
    for (const [topic, parts] of offsets) g.offsets.set(topic, parts);
    this.committedCount += g.offsetCount();
    if (value) {
      g.generationId = value.generationId;
      g.protocolType = value.protocolType || null;
      g.protocolName = value.protocolName;
      g.leaderId = value.leaderId;
      if (value.protocolName !== null) {
        for (const sm of value.members) {
          const member: Member = {
            memberId: sm.memberId,
            groupInstanceId: sm.groupInstanceId,
            clientId: sm.clientId,
            clientHost: sm.clientHost,
            sessionTimeoutMs: sm.sessionTimeoutMs,
            rebalanceTimeoutMs: sm.rebalanceTimeoutMs,
            protocolType: g.protocolType ?? '',
            protocols: [{ name: value.protocolName, metadata: sm.subscription }],
            assignment: sm.assignment,
            joinWaiter: null,
            syncWaiter: null,
            heartbeatTimer: null,
          };
          g.members.set(member.memberId, member);
          if (member.groupInstanceId !== null) g.staticMembers.set(member.groupInstanceId, member.memberId);
        }
      }
      if (g.members.size > 0) {
        g.state = 'Stable';
        if (g.leaderId === null || !g.members.has(g.leaderId)) g.leaderId = g.members.keys().next().value!;
        for (const m of g.members.values()) this.scheduleHeartbeat(g, m);
      } else {
        g.leaderId = null;
      }
    }
    this.groups.set(groupId, g);
  }

  private scheduleSweep(): void {
    this.sweepTimer = this.clock.setTimeout(() => {
      this.sweepTimer = null;
      if (this.closed) return;
      this.expireOffsets()
        .catch((e) => this.log.error({ err: asBrokerError(e).message }, 'offset expiry failed'))
        .finally(() => {
          if (!this.closed) this.scheduleSweep();
        });
    }, this.options.offsetsRetentionCheckIntervalMs);
  }

  /**
   * Kafka's offsets retention: a consumer group's offsets expire `offsetsRetentionMs` after the
   * group became Empty; a group without a protocol (standalone commits) expires each offset
   * `offsetsRetentionMs` after its commit. An Empty group left without offsets is removed.
   * Exposed for tests and the admin CLI; the coordinator runs it every
   * `offsetsRetentionCheckIntervalMs`.
   */
  async expireOffsets(): Promise<{ offsets: number; groups: number }> {
    this.checkServing();
    const now = this.clock.now();
    const retention = this.options.offsetsRetentionMs;
    let expiredOffsets = 0;
    let removedGroups = 0;
    const work: Promise<void>[] = [];
    for (const g of [...this.groups.values()]) {
      if (g.state !== 'Empty' || g.members.size > 0 || g.pending.size > 0) continue;
      const expired: Array<{ topic: string; partition: number; c: Committed }> = [];
      const whole = g.protocolType !== null && now - g.stateTimestampMs >= retention;
      for (const [topic, parts] of g.offsets) {
        for (const [partition, c] of parts) if (whole || c.commitTimestampMs + retention <= now) expired.push({ topic, partition, c });
      }
      if (expired.length === g.offsetCount()) {
        removedGroups++;
        expiredOffsets += expired.length;
        work.push(this.removeGroup(g, 'offsets expired'));
        continue;
      }
      if (expired.length === 0) continue;
      expiredOffsets += expired.length;
      const records: OffsetsChange[] = expired.map((x) => ({ key: { kind: 'offset', group: g.id, topic: x.topic, partition: x.partition }, value: null }));
      work.push(
        this.write(g, records).then(() => {
          for (const x of expired) {
            const parts = g.offsets.get(x.topic);
            // Only if no newer commit replaced it meanwhile.
            if (parts?.get(x.partition) === x.c) {
              parts.delete(x.partition);
              this.committedCount--;
            }
            if (parts && parts.size === 0) g.offsets.delete(x.topic);
          }
        }),
      );
    }
    await Promise.all(work);
    if (expiredOffsets > 0 || removedGroups > 0) this.log.info({ offsets: expiredOffsets, groups: removedGroups }, 'expired committed offsets');
    return { offsets: expiredOffsets, groups: removedGroups };
  }
}

/** A table write refused because this node no longer leads the partition: the client must find the new coordinator. */
function coordinatorError(e: BrokerError): BrokerError {
  if (e.code === 'NOT_LEADER_OR_FOLLOWER' || e.code === 'FENCED_LEADER_EPOCH' || e.code === 'UNKNOWN_LEADER_EPOCH') {
    return err('NOT_COORDINATOR', `this node stopped leading the group's ${OFFSETS_TOPIC} partition: ${e.message}`);
  }
  return e;
}

function copyProtocols(protocols: ProtocolOffer[]): ProtocolOffer[] {
  // Copied: a Kafka request's bytes are views into a frame buffer that is reused.
  return protocols.map((p) => ({ name: p.name, metadata: p.metadata.slice() }));
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
