// The values the Raft state machine (raft.ts) takes in and gives out: log entries, the hard
// state that must survive a crash, snapshots, and the messages between voters. Plain data, no
// I/O, so the codec (raft-codec.ts), the storage (raft-storage.ts) and the simulator share them.

/** A voter's id: an integer ≥ 1 (`cluster.nodeId`); 0 means "nobody" in `vote` and `lead`. */
export type NodeId = number;
export const NO_NODE: NodeId = 0;

/** One log entry. An empty `data` is the no-op a new leader appends to commit its term. */
export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly data: Uint8Array;
}

/**
 * What must be on disk before any message that depends on it leaves (Raft §5.1, Figure 2):
 * the current term and the vote cast in it, so a restarted node never votes twice in one term;
 * the commit index so a restart re-applies what it had applied (it may lag; never lead).
 */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

/** The applied state up to `index` (whose entry had `term`), and the voters it was taken under. */
export interface Snapshot {
  readonly index: number;
  readonly term: number;
  readonly voters: readonly NodeId[];
  readonly data: Uint8Array;
}

export type MessageType =
  | 'PreVote'
  | 'PreVoteResp'
  | 'Vote'
  | 'VoteResp'
  | 'Append'
  | 'AppendResp'
  | 'Snapshot';

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  /**
   * The sender's term, except for PreVote (the term the sender would campaign in, one above its
   * own) and a granted PreVoteResp (echoes the PreVote's term): pre-votes never move a term.
   */
  readonly term: number;
}

/** Vote and PreVote: "my log ends at (lastIndex, lastTerm); would you elect me?" (§5.4.1). */
export interface VoteRequest extends MessageBase {
  readonly type: 'PreVote' | 'Vote';
  readonly lastIndex: number;
  readonly lastTerm: number;
}

export interface VoteResponse extends MessageBase {
  readonly type: 'PreVoteResp' | 'VoteResp';
  readonly reject: boolean;
}

/** AppendEntries; with no entries it is the heartbeat. `commit` is the leader's commit index. */
export interface AppendRequest extends MessageBase {
  readonly type: 'Append';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * Answer to Append and Snapshot. Accepted: `index` is the highest index known to match the
 * leader's log. Rejected: `index` is the rejected prevIndex and (hintIndex, hintTerm) say where
 * the follower's log diverges (hintTerm 0: the follower's log ends before hintIndex), so the
 * leader skips a whole conflicting term per round trip instead of one entry (§5.3, "fast
 * backtracking").
 */
export interface AppendResponse extends MessageBase {
  readonly type: 'AppendResp';
  readonly reject: boolean;
  readonly index: number;
  readonly hintIndex: number;
  readonly hintTerm: number;
}

/** InstallSnapshot (§7), whole in one message: metadata snapshots are small. */
export interface SnapshotRequest extends MessageBase {
  readonly type: 'Snapshot';
  readonly snapshot: Snapshot;
}

export type Message = VoteRequest | VoteResponse | AppendRequest | AppendResponse | SnapshotRequest;

export const emptyData = new Uint8Array(0);
