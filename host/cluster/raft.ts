// Raft (Ongaro & Ousterhout 2014; Ongaro's thesis §9.6 pre-vote, §6.2 check-quorum) as a pure
// state machine, the etcd-raft shape: no clock, no socket, no disk. The driver calls
//
//   step(message)   a message from another voter
//   tick()          one unit of logical time (the driver decides how long a tick is)
//   propose(data)   a client's entry (leader only)
//
// and then drains the work those produced:
//
//   while (node.hasReady()) {
//     const rd = node.ready();          // hard state, entries and snapshot to persist, entries to apply
//     await persist(rd);                // write AND fsync: rd.snapshot, then rd.entries, then rd.hardState
//     apply(rd.snapshot, rd.committedEntries);
//     send(node.advance(rd));           // only now are the messages handed out
//   }
//
// The persistence contract is structural: the messages of a Ready are returned by advance(),
// never by ready(), so a vote, a higher term or an acknowledgement cannot leave before the state
// it depends on is on disk (§5.1: "updated on stable storage before responding to RPCs").
// advance() refuses a Ready other than the one outstanding, and ready() refuses to hand out a
// second before the first is advanced. Messages produced while a Ready is outstanding (step() may
// be called during the fsync) wait for the next Ready, whose hard state covers them.
//
// Features: randomized election timeouts from the injected RNG; pre-vote (a partitioned node
// does not inflate terms); check-quorum (a leader that has not heard from a quorum for an
// election timeout steps down) and the follower lease (a follower that heard from a leader within
// an election timeout ignores vote requests); log replication with the consistency check and
// fast backtracking by conflict term; commit of current-term entries only, by counting (§5.4.2);
// InstallSnapshot and compaction. The voter set is static (see docs/cluster.md for membership
// changes as a later step). Leader transfer is not implemented.
import { BrokerError } from '../errors/broker-error.js';
import { RaftLog } from './raft-log.js';
import {
  NO_NODE,
  emptyData,
  type AppendRequest,
  type AppendResponse,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type Snapshot,
  type SnapshotRequest,
  type VoteRequest,
  type VoteResponse,
} from './raft-types.js';

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Deliberate bugs for the simulator's self-test: a checker that never fires proves nothing. */
export interface RaftMutation {
  /** Commit an entry of an earlier term by counting replicas (the Figure 8 bug, §5.4.2). */
  readonly commitPreviousTermByCounting?: boolean;
}

export interface RaftConfig {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  /** Ticks without a leader before a follower campaigns; the actual timeout is random in [electionTicks, 2·electionTicks). */
  readonly electionTicks: number;
  /** Ticks between a leader's heartbeats; well below electionTicks so one lost heartbeat costs no election. */
  readonly heartbeatTicks: number;
  /** Uniform in [0, 1); seeded in tests so a schedule replays exactly. */
  readonly random: () => number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  /** Entries per Append message: bounds a message and the work one step does. */
  readonly appendEntriesMax?: number;
  /** Data bytes per Append message (one entry is always sent, so an entry larger than this still moves). */
  readonly appendBytesMax?: number;
  /** Proposals a leader accepts beyond its commit index before refusing with LIMIT_EXCEEDED. */
  readonly uncommittedEntriesMax?: number;
  /** Committed entries handed out per Ready. */
  readonly applyEntriesMax?: number;
  readonly mutation?: RaftMutation;
}

/** What a restart is rebuilt from: exactly what was persisted, nothing else. */
export interface RaftInitialState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
}

export interface Ready {
  /** Sequence number of this Ready; advance() must be given this one. */
  readonly seq: number;
  /** Changed since the last Ready: persist it (term and vote before any message leaves). */
  readonly hardState: HardState | null;
  /** Unstable entries: truncate the stored log from entries[0].index, then append them. */
  readonly entries: readonly Entry[];
  /** A snapshot received from the leader: it replaces the stored log, and the application's state. */
  readonly snapshot: Snapshot | null;
  /** Committed entries now on disk, in order, to apply to the state machine. */
  readonly committedEntries: readonly Entry[];
  /** How many messages advance() will hand out. */
  readonly messageCount: number;
}

interface Progress {
  match: number;
  next: number;
  /** Heard from since the leader's last check-quorum round. */
  recentActive: boolean;
}

const DEFAULTS = {
  appendEntriesMax: 64,
  appendBytesMax: 1 << 20,
  uncommittedEntriesMax: 1024,
  applyEntriesMax: 256,
};

export class RaftNode {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  readonly log: RaftLog;
  term: number;
  vote: NodeId;
  role: Role = 'follower';
  /** The leader this node follows in `term`, NO_NODE when unknown. */
  lead: NodeId = NO_NODE;

  private readonly cfg: Required<Omit<RaftConfig, 'mutation'>> & { mutation: RaftMutation };
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();
  private msgs: Message[] = [];
  private pendingSnapshot: Snapshot | null = null;
  private persistedHardState: HardState;
  private outstanding: { seq: number; messages: Message[]; lastEntry: Entry | null; snapshot: Snapshot | null; applyTo: number } | null = null;
  private readySeq = 0;

  constructor(config: RaftConfig, initial: RaftInitialState) {
    if (!Number.isInteger(config.id) || config.id < 1) throw new Error(`raft: node id ${config.id} must be an integer ≥ 1`);
    if (!config.voters.includes(config.id)) throw new Error(`raft: node ${config.id} is not among the voters ${config.voters.join(',')}`);
    if (config.heartbeatTicks >= config.electionTicks) throw new Error('raft: heartbeatTicks must be below electionTicks');
    this.cfg = { preVote: true, checkQuorum: true, ...DEFAULTS, ...config, mutation: config.mutation ?? {} };
    this.id = config.id;
    this.voters = [...config.voters].sort((a, b) => a - b);
    const snapshot = initial.snapshot ?? { index: 0, term: 0, voters: this.voters, data: emptyData };
    this.log = new RaftLog(snapshot, initial.entries, initial.hardState.commit);
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.persistedHardState = { term: this.term, vote: this.vote, commit: this.log.commit };
    this.resetElectionTimeout();
  }

  // ---- inputs ----

  tick(): void {
    if (this.role === 'leader') return this.tickLeader();
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      if (this.cfg.preVote) this.campaign('PreVote');
      else this.campaign('Vote');
    }
  }

  /** Appends a client entry; throws NOT_LEADER_OR_FOLLOWER off the leader and LIMIT_EXCEEDED past uncommittedEntriesMax. */
  propose(data: Uint8Array): { index: number; term: number } {
    if (this.role !== 'leader') throw new BrokerError('NOT_LEADER_OR_FOLLOWER', `raft: node ${this.id} is not the leader (leader ${this.lead || 'unknown'})`);
    if (data.length === 0) throw new BrokerError('INVALID_REQUEST', 'raft: a proposal needs data (empty entries are the leader no-op)');
    if (this.log.lastIndex() - this.log.commit >= this.cfg.uncommittedEntriesMax) {
      throw new BrokerError('LIMIT_EXCEEDED', `raft: ${this.cfg.uncommittedEntriesMax} uncommitted entries (uncommittedEntriesMax)`);
    }
    const entry = { index: this.log.lastIndex() + 1, term: this.term, data };
    this.log.append(entry);
    this.broadcastAppend();
    this.maybeCommit();
    return { index: entry.index, term: entry.term };
  }

  step(m: Message): void {
    if (m.to !== this.id) throw new Error(`raft: node ${this.id} got a message for ${m.to}`);
    if (m.from === this.id || !this.voters.includes(m.from)) return; // static voter set: strangers (and echoes of ourselves) are ignored
    if (m.term > this.term) {
      if (!this.stepHigherTerm(m)) return;
    } else if (m.term < this.term) {
      return this.stepLowerTerm(m);
    }
    switch (m.type) {
      case 'PreVote':
      case 'Vote':
        return this.handleVoteRequest(m);
      case 'PreVoteResp':
      case 'VoteResp':
        return this.handleVoteResponse(m);
      case 'Append':
        return this.handleAppend(m);
      case 'Snapshot':
        return this.handleSnapshot(m);
      case 'AppendResp':
        return this.handleAppendResponse(m);
    }
  }

  /** Drop entries up to `snapshot.index` (≤ applied): the application has persisted the snapshot itself. */
  compact(snapshot: Snapshot): void {
    this.log.compact(snapshot);
  }

  // ---- the drain ----

  hasReady(): boolean {
    if (this.outstanding) return false;
    return (
      this.msgs.length > 0 ||
      this.pendingSnapshot !== null ||
      this.hardStateChanged() ||
      this.log.unstableEntries().length > 0 ||
      this.log.nextToApply(1).length > 0
    );
  }

  ready(): Ready {
    if (this.outstanding) throw new Error(`raft: ready ${this.outstanding.seq} not advanced yet`);
    const hardState = this.hardStateChanged() ? this.hardState() : null;
    const entries = this.log.unstableEntries();
    const committedEntries = this.log.nextToApply(this.cfg.applyEntriesMax);
    const seq = ++this.readySeq;
    const messages = this.msgs;
    this.msgs = [];
    const snapshot = this.pendingSnapshot;
    this.pendingSnapshot = null;
    if (hardState) this.persistedHardState = hardState;
    const applyTo = committedEntries.length ? committedEntries[committedEntries.length - 1]!.index : this.log.applied;
    this.outstanding = { seq, messages, lastEntry: entries.length ? entries[entries.length - 1]! : null, snapshot, applyTo };
    return { seq, hardState, entries, snapshot, committedEntries, messageCount: messages.length };
  }

  /** The caller has persisted (and fsynced) `rd` and applied its entries: returns the messages to send. */
  advance(rd: Ready): Message[] {
    const o = this.outstanding;
    if (!o || o.seq !== rd.seq) throw new Error(`raft: advance(${rd.seq}) but the outstanding ready is ${o?.seq ?? 'none'}`);
    this.outstanding = null;
    if (o.snapshot && this.log.snapshotIndex === o.snapshot.index) this.log.stableTo(o.snapshot.index, o.snapshot.term);
    if (o.lastEntry) this.log.stableTo(o.lastEntry.index, o.lastEntry.term);
    if (o.applyTo > this.log.applied) this.log.appliedTo(o.applyTo);
    if (this.role === 'leader') {
      this.selfProgress().match = this.log.stableIndex;
      this.maybeCommit();
    }
    return o.messages;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.commit };
  }

  /** The leader's view of each voter's log (match: highest index known replicated); empty off the leader. For status, never for decisions. */
  voterProgress(): Array<{ id: NodeId; match: number; next: number }> {
    if (this.role !== 'leader') return [];
    return [...this.progress].map(([id, pr]) => ({ id, match: pr.match, next: pr.next }));
  }

  // ---- elections ----

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) return this.becomeFollower(this.term, NO_NODE);
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastAppend();
    }
  }

  /** Check-quorum (thesis §6.2): did a quorum, counting this node, speak to it since the last round? */
  private quorumActive(): boolean {
    let active = 0;
    for (const [id, pr] of this.progress) {
      if (id === this.id || pr.recentActive) active++;
      pr.recentActive = false;
    }
    return active >= this.quorum();
  }

  private campaign(kind: 'PreVote' | 'Vote'): void {
    if (kind === 'PreVote') {
      this.role = 'preCandidate';
      this.lead = NO_NODE;
    } else {
      this.becomeCandidateState();
    }
    this.votes = new Map([[this.id, true]]);
    const term = kind === 'PreVote' ? this.term + 1 : this.term;
    if (this.countVotes().granted >= this.quorum()) return kind === 'PreVote' ? this.campaign('Vote') : this.becomeLeader();
    for (const to of this.voters) {
      if (to === this.id) continue;
      this.send({ type: kind, from: this.id, to, term, lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm() });
    }
  }

  private becomeCandidateState(): void {
    this.term++;
    this.vote = this.id;
    this.role = 'candidate';
    this.lead = NO_NODE;
    this.resetElectionTimeout();
  }

  /** A message of a higher term: adopt the term, unless it is a vote request inside a lease or a pre-vote. Returns false to drop it. */
  private stepHigherTerm(m: Message): boolean {
    if (m.type === 'PreVote' || m.type === 'Vote') {
      // Lease (thesis §4.2.3): a follower that heard from its leader within the minimum election
      // timeout neither votes nor moves its term, so a rejoining node cannot depose a live leader.
      const inLease = this.cfg.checkQuorum && this.lead !== NO_NODE && this.electionElapsed < this.cfg.electionTicks;
      if (inLease) return false;
    }
    if (m.type === 'PreVote') return true; // a pre-vote never moves our term
    if (m.type === 'PreVoteResp' && !m.reject) return true; // echoes the term we would campaign in
    const lead = m.type === 'Append' || m.type === 'Snapshot' ? m.from : NO_NODE;
    this.becomeFollower(m.term, lead);
    return true;
  }

  private stepLowerTerm(m: Message): void {
    if (m.type === 'Append' || m.type === 'Snapshot') {
      // A stale leader (e.g. back from a partition) learns our term from the answer and steps
      // down; without this, pre-vote plus lease could leave it leading alone forever.
      this.send({ type: 'AppendResp', from: this.id, to: m.from, term: this.term, reject: true, index: 0, hintIndex: 0, hintTerm: 0 });
    } else if (m.type === 'PreVote') {
      this.send({ type: 'PreVoteResp', from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private handleVoteRequest(m: VoteRequest): void {
    const canVote = this.vote === m.from || (this.vote === NO_NODE && this.lead === NO_NODE) || (m.type === 'PreVote' && m.term > this.term);
    const grant = canVote && this.log.isUpToDate(m.lastIndex, m.lastTerm);
    const respType = m.type === 'PreVote' ? 'PreVoteResp' : 'VoteResp';
    if (grant) {
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === 'Vote') {
        this.vote = m.from;
        this.electionElapsed = 0;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private handleVoteResponse(m: VoteResponse): void {
    const expected = this.role === 'preCandidate' ? 'PreVoteResp' : this.role === 'candidate' ? 'VoteResp' : null;
    if (m.type !== expected) return;
    // A grant from an older pre-campaign for another term does not count in this one.
    if (m.type === 'PreVoteResp' && !m.reject && m.term !== this.term + 1) return;
    this.votes.set(m.from, !m.reject);
    const { granted, rejected } = this.countVotes();
    if (granted >= this.quorum()) {
      if (this.role === 'preCandidate') this.campaign('Vote');
      else this.becomeLeader();
    } else if (rejected >= this.quorum()) {
      this.becomeFollower(this.term, NO_NODE);
    }
  }

  private countVotes(): { granted: number; rejected: number } {
    let granted = 0;
    let rejected = 0;
    for (const v of this.votes.values()) v ? granted++ : rejected++;
    return { granted, rejected };
  }

  private becomeFollower(term: number, lead: NodeId): void {
    if (term > this.term) {
      this.term = term;
      this.vote = NO_NODE;
    }
    this.role = 'follower';
    this.lead = lead;
    this.electionElapsed = 0;
    this.resetElectionTimeout();
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.lead = this.id;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.progress = new Map();
    for (const id of this.voters) {
      this.progress.set(id, { match: id === this.id ? this.log.stableIndex : 0, next: this.log.lastIndex() + 1, recentActive: true });
    }
    // The no-op of this term (§8): entries of earlier terms commit only under an entry of ours.
    this.log.append({ index: this.log.lastIndex() + 1, term: this.term, data: emptyData });
    this.broadcastAppend();
  }

  private resetElectionTimeout(): void {
    const e = this.cfg.electionTicks;
    this.randomizedElectionTimeout = e + Math.floor(this.cfg.random() * e);
  }

  private quorum(): number {
    return Math.floor(this.voters.length / 2) + 1;
  }

  // ---- replication: follower side ----

  private handleAppend(m: AppendRequest): void {
    this.becomeFollowerOf(m.from);
    const reply = (fields: Pick<AppendResponse, 'reject' | 'index' | 'hintIndex' | 'hintTerm'>): void =>
      this.send({ type: 'AppendResp', from: this.id, to: m.from, term: this.term, ...fields });
    if (m.prevIndex < this.log.commit) {
      // Everything up to our commit index matches the leader's log (leader completeness) and may
      // be compacted here: say where we are and let the leader resend from there.
      return reply({ reject: false, index: this.log.commit, hintIndex: 0, hintTerm: 0 });
    }
    if (this.log.matchTerm(m.prevIndex, m.prevTerm)) return this.acceptAppend(m, m.prevIndex, m.entries, reply);
    const last = this.log.lastIndex();
    if (m.prevIndex > last) return reply({ reject: true, index: m.prevIndex, hintIndex: last + 1, hintTerm: 0 });
    const conflictTerm = this.log.term(m.prevIndex)!;
    reply({ reject: true, index: m.prevIndex, hintIndex: this.log.firstIndexOfTerm(m.prevIndex, conflictTerm), hintTerm: conflictTerm });
  }

  private acceptAppend(
    m: AppendRequest,
    prevIndex: number,
    entries: readonly Entry[],
    reply: (f: Pick<AppendResponse, 'reject' | 'index' | 'hintIndex' | 'hintTerm'>) => void,
  ): void {
    const lastNew = this.log.appendFromLeader(prevIndex, entries);
    // Commit no further than what this request proved matches the leader (§5.3 rule 5).
    this.log.commitTo(Math.min(m.commit, lastNew));
    reply({ reject: false, index: lastNew, hintIndex: 0, hintTerm: 0 });
  }

  private handleSnapshot(m: SnapshotRequest): void {
    this.becomeFollowerOf(m.from);
    const s = m.snapshot;
    if (s.index > this.log.commit) {
      if (this.log.matchTerm(s.index, s.term)) {
        // Our log already holds the snapshot's last entry: keep it, just learn the commit.
        this.log.commitTo(s.index);
      } else {
        this.log.restore(s);
        this.pendingSnapshot = s;
      }
    }
    this.send({ type: 'AppendResp', from: this.id, to: m.from, term: this.term, reject: false, index: this.log.commit, hintIndex: 0, hintTerm: 0 });
  }

  private becomeFollowerOf(leader: NodeId): void {
    if (this.role !== 'follower' || this.lead !== leader) this.becomeFollower(this.term, leader);
    this.electionElapsed = 0;
  }

  // ---- replication: leader side ----

  private handleAppendResponse(m: AppendResponse): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(m.from)!;
    pr.recentActive = true;
    if (!m.reject) {
      if (m.index > pr.match) {
        pr.match = m.index;
        this.maybeCommit();
      }
      pr.next = Math.max(pr.next, pr.match + 1);
      if (pr.next <= this.log.lastIndex()) this.sendAppend(m.from);
      return;
    }
    if (m.index !== pr.next - 1) return; // an answer to an older probe: the newer one is in flight
    let next = m.hintIndex;
    if (m.hintTerm > 0) {
      const mine = this.log.lastIndexOfTerm(m.hintTerm);
      if (mine > 0) next = mine + 1;
    }
    pr.next = Math.max(pr.match + 1, Math.min(next, m.index));
    this.sendAppend(m.from);
  }

  private broadcastAppend(): void {
    for (const to of this.voters) if (to !== this.id) this.sendAppend(to);
  }

  private sendAppend(to: NodeId): void {
    const pr = this.progress.get(to)!;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      // The entries this follower needs were compacted: send the snapshot instead (§7).
      this.send({ type: 'Snapshot', from: this.id, to, term: this.term, snapshot: this.log.snapshot });
      return;
    }
    const entries = pr.next <= this.log.lastIndex() ? this.log.slice(pr.next, this.log.lastIndex(), this.cfg.appendEntriesMax, this.cfg.appendBytesMax) : [];
    this.send({ type: 'Append', from: this.id, to, term: this.term, prevIndex, prevTerm, entries, commit: this.log.commit });
  }

  private selfProgress(): Progress {
    return this.progress.get(this.id)!;
  }

  /** Commit the highest index a quorum has on disk, if its entry is of this term (§5.4.2). */
  private maybeCommit(): void {
    if (this.role !== 'leader') return;
    const matches = this.voters.map((id) => this.progress.get(id)!.match).sort((a, b) => b - a);
    const index = matches[this.quorum() - 1]!;
    if (index <= this.log.commit) return;
    if (this.log.term(index) !== this.term && !this.cfg.mutation.commitPreviousTermByCounting) return;
    this.log.commitTo(index);
    this.broadcastAppend(); // followers learn the commit index now, not at the next heartbeat
  }

  private hardStateChanged(): boolean {
    const p = this.persistedHardState;
    return p.term !== this.term || p.vote !== this.vote || p.commit !== this.log.commit;
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }
}
