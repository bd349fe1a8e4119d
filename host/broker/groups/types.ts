// The coordinator's JS API types: what the Kafka handlers and the WebSocket gateway pass in and
// get back. Errors that concern the whole call are thrown as BrokerError (Kafka code via the
// error table); errors that concern one partition or one member come back in the result.
import type { BrokerError } from '../../errors/index.js';

export type GroupState = 'Empty' | 'PreparingRebalance' | 'CompletingRebalance' | 'Stable' | 'Dead';

export interface ProtocolOffer {
  name: string;
  /** Opaque to the coordinator (for protocolType "consumer": the ConsumerProtocol subscription). */
  metadata: Uint8Array;
}

export interface JoinGroupRequest {
  groupId: string;
  /** '' for a member joining for the first time. */
  memberId: string;
  /** Static membership (KIP-345): a stable identity across restarts; null/undefined = dynamic. */
  groupInstanceId?: string | null;
  sessionTimeoutMs: number;
  /** How long the coordinator waits for every member to rejoin; defaults to sessionTimeoutMs. */
  rebalanceTimeoutMs?: number;
  protocolType: string;
  protocols: ProtocolOffer[];
  clientId?: string;
  clientHost?: string;
  /**
   * Kafka JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED carrying its id
   * (see JoinGroupError.memberId) and must join again with it.
   */
  requireKnownMemberId?: boolean;
  reason?: string | null;
}

export interface JoinGroupMember {
  memberId: string;
  groupInstanceId: string | null;
  metadata: Uint8Array;
}

export interface JoinGroupResult {
  generationId: number;
  protocolType: string | null;
  protocolName: string | null;
  leader: string;
  memberId: string;
  /** Filled for the leader only: every member with its metadata for the chosen protocol. */
  members: JoinGroupMember[];
  /** True when the leader must not compute a new assignment (static leader replaced, KIP-814). */
  skipAssignment: boolean;
}

export interface SyncGroupRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId?: string | null;
  /** SyncGroup v5+: checked against the group's when given. */
  protocolType?: string | null;
  protocolName?: string | null;
  /** From the leader: one assignment per member; others send []. */
  assignments: Array<{ memberId: string; assignment: Uint8Array }>;
}

export interface SyncGroupResult {
  protocolType: string | null;
  protocolName: string | null;
  assignment: Uint8Array;
}

export interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId?: string | null;
}

export interface LeaveGroupRequest {
  groupId: string;
  /** memberId '' with a groupInstanceId removes a static member by instance id. */
  members: Array<{ memberId: string; groupInstanceId?: string | null; reason?: string | null }>;
}

export interface LeaveGroupMemberResult {
  memberId: string;
  groupInstanceId: string | null;
  error: BrokerError | null;
}

export interface CommitOffsetsRequest {
  groupId: string;
  /** -1 with memberId '' = a standalone (non-member) commit, allowed when the group is empty. */
  generationId?: number;
  memberId?: string;
  groupInstanceId?: string | null;
  offsets: Array<{ topic: string; partition: number; offset: number; leaderEpoch?: number; metadata?: string | null }>;
}

export interface PartitionResult {
  topic: string;
  partition: number;
  error: BrokerError | null;
}

export interface FetchOffsetsRequest {
  groupId: string;
  /** null/undefined = every partition the group has committed. */
  partitions?: Array<{ topic: string; partition: number }> | null;
}

export interface FetchedOffset {
  topic: string;
  partition: number;
  /** -1 when nothing was committed. */
  offset: number;
  leaderEpoch: number;
  metadata: string | null;
  commitTimestampMs: number;
  error: BrokerError | null;
}

export interface GroupListing {
  groupId: string;
  protocolType: string;
  state: GroupState;
}

export interface DescribedMember {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  /** Metadata of the chosen protocol and the member's assignment (empty unless Stable, as Kafka). */
  metadata: Uint8Array;
  assignment: Uint8Array;
}

export interface GroupDescription {
  groupId: string;
  state: GroupState;
  protocolType: string;
  protocolName: string;
  generationId: number;
  leader: string | null;
  members: DescribedMember[];
  error: BrokerError | null;
}

export interface PartitionLag {
  topic: string;
  partition: number;
  committedOffset: number;
  highWatermark: number;
  logEndOffset: number;
  /** highWatermark - committedOffset, never negative; null when the partition no longer exists. */
  lag: number | null;
}

export interface GroupLag {
  groupId: string;
  state: GroupState;
  partitions: PartitionLag[];
  totalLag: number;
}
