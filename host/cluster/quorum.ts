// The metadata quorum running for real: the driver around the pure RaftNode (raft.ts). It owns
// the node, its durable file (raft-storage.ts), a tick timer and a Transport (TCP between
// processes, tcp-transport.ts; the in-memory hub in tests), and applies committed entries to a
// state machine (the metadata store, quorum-metadata-store.ts).
//
// The drain (raft.ts's contract): each Ready is written AND fsynced before its committed entries
// are applied and before advance() hands out its messages, so a vote, a term or an
// acknowledgement never leaves ahead of the state it depends on. One drain runs at a time;
// messages and ticks arriving during its fsync are stepped in and drained by the next round.
//
// Proposals. On the leader, propose() appends and resolves with the entry's index once that
// entry is committed and applied here; if another entry ends up at that index (leadership lost
// before it committed) it rejects with NOT_CONTROLLER. On a follower, propose() forwards the
// data to the leader it knows (a forward frame on the same transport), which proposes it as its
// own; the follower resolves once its own state machine has applied that index, so the caller
// reads its own write. No known leader: NOT_CONTROLLER at once. At most proposalsPendingMax
// proposals wait per node (LIMIT_EXCEEDED past it); each gives up after proposalTimeoutMs with
// REQUEST_TIMED_OUT (the entry may still commit: a timeout is "unknown", not "failed").
//
// Forward frames share the raft-codec frame shape (length, version, type, from, to) with types
// from 64 up, so one reader on the transport tells them apart by the type byte:
//   ForwardRequest  (64) body := requestId:uint32 dataLength:uint32 data
//   ForwardResponse (65) body := requestId:uint32 index:uint64 leader:uint32
//                                errorLength:uint16 error:utf8 messageLength:uint16 message:utf8
//                                (error "" = committed at index; else a name from host/errors/codes.ts)
//
// Compaction: once snapshotEntries entries are applied past the last snapshot, the state
// machine's snapshot at the applied index goes to the storage (a Compact record) and the log
// before it is dropped; a follower that needs dropped entries gets the snapshot (InstallSnapshot).
import { mkdir } from 'node:fs/promises';
import { BrokerError } from '../errors/broker-error.js';
import { ERRORS, type ErrorName } from '../errors/codes.js';
import type { Logger } from '../logging.js';
import { RaftNode, type Ready, type Role } from './raft.js';
import { ByteReader, ByteWriter, RAFT_WIRE_VERSION, decodeMessage, encodeMessage } from './raft-codec.js';
import { FileRaftStorage } from './raft-storage.js';
import { NO_NODE, type NodeId, type Snapshot } from './raft-types.js';
import type { Transport } from './transport.js';

const FORWARD_REQUEST = 64;
const FORWARD_RESPONSE = 65;

/** What the quorum applies committed entries to. */
export interface StateMachine {
  /** Applies one committed entry; a returned error is the proposer's answer (every node computes the same one). */
  apply(data: Uint8Array, index: number): Promise<Error | undefined>;
  /** Replaces the whole state with a snapshot's (at open, or one received from the leader). */
  restore(data: Uint8Array, index: number): Promise<void>;
  /** The state as of the last applied entry, for a compaction snapshot. */
  snapshot(): Uint8Array;
}

export interface QuorumOptions {
  nodeId: NodeId;
  voters: readonly NodeId[];
  electionTicks: number;
  heartbeatTicks: number;
  tickMs: number;
  proposalsPendingMax: number;
  proposalTimeoutMs: number;
  snapshotEntries: number;
  /** Frame bound (the transport's too): also bounds one proposal and one Append. */
  frameBytesMax: number;
  recordBytesMax: number;
  storageRewriteBytes: number;
  random?: () => number;
  logger: Logger;
  /** The storage failed (fsync refused): the node must stop; it cannot vote or lead safely. */
  onFatal?: (err: Error) => void;
}

interface Pending {
  term: number;
  resolve: (index: number) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface Forwarded {
  /** The controller the proposal was sent to. */
  lead: NodeId;
  resolve: (index: number) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface QuorumStatus {
  nodeId: NodeId;
  role: Role;
  term: number;
  leader: NodeId | null;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  voters: Array<{ id: NodeId; matchIndex: number | null; lag: number | null }>;
  pendingProposals: number;
}

export class Quorum {
  private readonly pending = new Map<number, Pending>();
  private readonly forwarded = new Map<number, Forwarded>();
  /** When (ms) each peer last sent this node a frame: the controller's broker heartbeats (replication.ts). */
  private readonly heardMs = new Map<number, number>();
  /** Resolvers waiting until the applied index reaches theirs (forwarded proposals). */
  private appliedWaiters: Array<{ index: number; resolve: () => void }> = [];
  private nextRequestId = 1;
  private draining = false;
  private drained: Promise<void> = Promise.resolve();
  private ticker: NodeJS.Timeout | undefined;
  private closed = false;
  private failed: Error | null = null;
  private lastRole: Role = 'follower';
  private lastLead: NodeId = NO_NODE;

  private constructor(
    readonly node: RaftNode,
    private readonly storage: FileRaftStorage,
    private readonly transport: Transport<Uint8Array>,
    private readonly sm: StateMachine,
    private readonly opts: QuorumOptions,
  ) {}

  /**
   * Opens the durable state in `dir`, restores the state machine from the stored snapshot,
   * re-applies the committed entries after it, and starts ticking and listening.
   */
  static async open(dir: string, opts: QuorumOptions, sm: StateMachine, transport: Transport<Uint8Array>): Promise<Quorum> {
    await mkdir(dir, { recursive: true });
    const { storage, initial, truncatedBytes } = await FileRaftStorage.open(dir, { recordBytesMax: opts.recordBytesMax, rewriteBytes: opts.storageRewriteBytes });
    if (truncatedBytes > 0) opts.logger.warn({ truncatedBytes }, 'raft log: cut a torn tail left by a crash');
    if (initial.snapshot) await sm.restore(initial.snapshot.data, initial.snapshot.index);
    const node = new RaftNode(
      {
        id: opts.nodeId,
        voters: opts.voters,
        electionTicks: opts.electionTicks,
        heartbeatTicks: opts.heartbeatTicks,
        random: opts.random ?? Math.random,
        // One entry always moves; this keeps a whole Append under the frame bound.
        appendBytesMax: Math.max(1, Math.floor(opts.frameBytesMax / 2)),
      },
      initial,
    );
    const q = new Quorum(node, storage, transport, sm, opts);
    transport.onMessage((from, frame) => q.receive(from, frame));
    q.kick();
    await q.drained; // the committed entries this node had applied before it stopped
    q.ticker = setInterval(() => q.tick(), opts.tickMs);
    opts.logger.info({ nodeId: opts.nodeId, voters: opts.voters, term: node.term, commit: node.log.commit, snapshot: node.log.snapshotIndex }, 'metadata quorum open');
    return q;
  }

  get isLeader(): boolean {
    return this.node.role === 'leader';
  }

  /** The controller (Raft leader) this node knows, or null. */
  get leader(): NodeId | null {
    return this.node.lead === NO_NODE ? null : this.node.lead;
  }

  /** Commits `data` through the leader; resolves with its index once applied on this node. */
  propose(data: Uint8Array): Promise<number> {
    if (this.failed || this.closed) return Promise.reject(new BrokerError('BROKER_NOT_AVAILABLE', 'the metadata quorum is stopped'));
    if (this.pending.size + this.forwarded.size >= this.opts.proposalsPendingMax) {
      return Promise.reject(new BrokerError('LIMIT_EXCEEDED', `${this.opts.proposalsPendingMax} metadata proposals are waiting (cluster.proposalsPendingMax)`));
    }
    if (this.isLeader) return this.proposeHere(data);
    const lead = this.node.lead;
    if (lead === NO_NODE) return Promise.reject(new BrokerError('NOT_CONTROLLER', `no controller elected yet (node ${this.opts.nodeId}, term ${this.node.term}); retry`));
    return this.forward(lead, data).then((index) => this.waitApplied(index));
  }

  /** When (ms since the epoch) `id` last sent this node anything, or 0 if never since start. */
  lastHeardMs(id: NodeId): number {
    return this.heardMs.get(id) ?? 0;
  }

  status(): QuorumStatus {
    const n = this.node;
    const progress = new Map(n.voterProgress().map((p) => [p.id, p.match]));
    const last = n.log.lastIndex();
    return {
      nodeId: this.opts.nodeId,
      role: n.role,
      term: n.term,
      leader: this.leader,
      commitIndex: n.log.commit,
      appliedIndex: n.log.applied,
      lastIndex: last,
      snapshotIndex: n.log.snapshotIndex,
      voters: n.voters.map((id) => {
        const match = id === n.id && n.role === 'leader' ? n.log.stableIndex : progress.get(id);
        return { id, matchIndex: match ?? null, lag: match === undefined ? null : last - match };
      }),
      pendingProposals: this.pending.size + this.forwarded.size,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ticker);
    this.transport.close();
    const stopped = new BrokerError('BROKER_NOT_AVAILABLE', 'the metadata quorum is stopping');
    for (const p of this.pending.values()) this.settle(p.timer, () => p.reject(stopped));
    for (const f of this.forwarded.values()) this.settle(f.timer, () => f.reject(stopped));
    this.pending.clear();
    this.forwarded.clear();
    await this.drained.catch(() => undefined);
    await this.storage.close();
  }

  // ---- inputs ----

  private tick(): void {
    if (this.closed || this.failed) return;
    this.node.tick();
    this.kick();
  }

  private receive(from: string, frame: Uint8Array): void {
    if (this.closed || this.failed || frame.length < 6) return;
    // Raft's heartbeat answers arrive every tick from a live voter: its broker session.
    this.heardMs.set(Number(from), Date.now());
    try {
      const type = frame[5]!;
      if (type === FORWARD_REQUEST) this.onForwardRequest(Number(from), frame);
      else if (type === FORWARD_RESPONSE) this.onForwardResponse(frame);
      else {
        const m = decodeMessage(frame, this.opts.frameBytesMax);
        if (String(m.from) !== from) throw new BrokerError('INVALID_REQUEST', `raft message from ${m.from} arrived on node ${from}'s connection`);
        if (m.to !== this.opts.nodeId) return;
        this.node.step(m);
      }
    } catch (err) {
      this.opts.logger.warn({ from, err: (err as Error).message }, 'cluster frame dropped');
      return;
    }
    this.kick();
  }

  private proposeHere(data: Uint8Array): Promise<number> {
    let at: { index: number; term: number };
    try {
      at = this.node.propose(data);
    } catch (err) {
      return Promise.reject(err);
    }
    const promise = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(at.index);
        reject(new BrokerError('REQUEST_TIMED_OUT', `metadata entry ${at.index} not committed within ${this.opts.proposalTimeoutMs} ms (cluster.proposalTimeoutMs); it may still commit`));
      }, this.opts.proposalTimeoutMs);
      this.pending.set(at.index, { term: at.term, resolve, reject, timer });
    });
    this.kick();
    return promise;
  }

  // ---- the drain ----

  private kick(): void {
    if (this.draining || this.failed) return;
    this.draining = true;
    this.drained = this.drain().then(
      () => {
        this.draining = false;
        // A step or proposal between the loop's last check and here found `draining` set and
        // left its work to this drain: pick it up now, not at the next tick.
        if (this.node.hasReady() && !this.closed) this.kick();
      },
      (err: Error) => {
        this.draining = false;
        this.failed = err;
        this.opts.logger.fatal({ err: err.message }, 'metadata quorum storage failed: this node stops voting and leading');
        this.opts.onFatal?.(err);
      },
    );
  }

  private async drain(): Promise<void> {
    while (this.node.hasReady() && !this.failed) {
      const rd = this.node.ready();
      await this.storage.saveReady(rd);
      await this.applyReady(rd);
      const messages = this.node.advance(rd);
      for (const m of messages) this.transport.send(String(m.to), encodeMessage(m));
      this.noteRoleChange();
      this.releaseApplied();
      await this.maybeCompact();
    }
  }

  private async applyReady(rd: Ready): Promise<void> {
    if (rd.snapshot) {
      await this.sm.restore(rd.snapshot.data, rd.snapshot.index);
      // Proposals at or below the snapshot were decided elsewhere; this node cannot tell which.
      for (const [index, p] of this.pending) {
        if (index <= rd.snapshot.index) this.finish(index, p, new BrokerError('NOT_CONTROLLER', `leadership lost: entry ${index} was replaced by a snapshot`));
      }
    }
    for (const e of rd.committedEntries) {
      const error = e.data.length ? await this.sm.apply(e.data, e.index) : undefined;
      const p = this.pending.get(e.index);
      if (!p) continue;
      if (p.term !== e.term) this.finish(e.index, p, new BrokerError('NOT_CONTROLLER', `leadership lost: entry ${e.index} of term ${p.term} was replaced by the leader of term ${e.term}`));
      else this.finish(e.index, p, error);
    }
  }

  private finish(index: number, p: Pending, error: Error | undefined): void {
    this.pending.delete(index);
    // An entry that committed but did not apply: a forwarding follower waits until it has applied
    // this index too, so its caller sees the state that made the proposal fail.
    if (error && p.term === this.node.log.term(index)) Object.assign(error, { committedIndex: index });
    this.settle(p.timer, () => (error ? p.reject(error) : p.resolve(index)));
  }

  private settle(timer: NodeJS.Timeout, fn: () => void): void {
    clearTimeout(timer);
    fn();
  }

  private noteRoleChange(): void {
    const n = this.node;
    if (n.role === this.lastRole && n.lead === this.lastLead) return;
    if (n.lead !== this.lastLead) this.abandonForwardsTo(n.lead);
    if (n.lead !== this.lastLead || n.role === 'leader') this.opts.logger.info({ role: n.role, term: n.term, leader: this.leader }, n.role === 'leader' ? 'elected controller (metadata quorum leader)' : 'metadata quorum leader changed');
    this.lastRole = n.role;
    this.lastLead = n.lead;
  }

  private async maybeCompact(): Promise<void> {
    const log = this.node.log;
    if (log.applied - log.snapshotIndex < this.opts.snapshotEntries) return;
    const snapshot: Snapshot = { index: log.applied, term: log.term(log.applied)!, voters: this.node.voters, data: this.sm.snapshot() };
    await this.storage.compact(snapshot);
    this.node.compact(snapshot);
    this.opts.logger.debug({ index: snapshot.index, bytes: snapshot.data.length }, 'metadata snapshot taken; raft log compacted');
  }

  // ---- forwarding ----

  private forward(lead: NodeId, data: Uint8Array): Promise<number> {
    const requestId = this.nextRequestId++ >>> 0;
    const w = frameHead(FORWARD_REQUEST, this.opts.nodeId, lead);
    w.u32(requestId);
    w.u32(data.length);
    w.bytes(data);
    const frame = finishFrame(w);
    if (frame.length > this.opts.frameBytesMax) return Promise.reject(new BrokerError('MESSAGE_TOO_LARGE', `a metadata proposal of ${data.length} bytes exceeds cluster.frameBytesMax ${this.opts.frameBytesMax}`));
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.forwarded.delete(requestId);
        reject(new BrokerError('REQUEST_TIMED_OUT', `controller ${lead} did not answer a metadata proposal within ${this.opts.proposalTimeoutMs} ms (cluster.proposalTimeoutMs); it may still commit`));
      }, this.opts.proposalTimeoutMs);
      this.forwarded.set(requestId, { lead, resolve, reject, timer });
      if (!this.transport.send(String(lead), frame)) {
        this.forwarded.delete(requestId);
        this.settle(timer, () => reject(new BrokerError('NOT_CONTROLLER', `controller ${lead} is not reachable from node ${this.opts.nodeId}; retry`)));
      }
    });
  }

  /**
   * A proposal forwarded to a controller that is no longer this node's (it died, or lost an
   * election) would otherwise wait out cluster.proposalTimeoutMs for an answer that may never
   * come: a caller such as the append forwarder's producer-id reservation then stalls for the
   * whole timeout after every controller failover. It fails now, with the same code and the
   * same doubt as that timeout (REQUEST_TIMED_OUT: the old controller may have replicated the
   * entry before it went, so it may still commit), and the caller retries against `lead`.
   */
  private abandonForwardsTo(lead: NodeId): void {
    for (const [requestId, f] of this.forwarded) {
      if (f.lead === lead) continue;
      this.forwarded.delete(requestId);
      const now = lead === NO_NODE ? 'no controller known yet' : `now node ${lead}`;
      this.settle(f.timer, () => f.reject(new BrokerError('REQUEST_TIMED_OUT', `controller ${f.lead} was replaced (${now}) before it answered a metadata proposal; it may still commit; retry`)));
    }
  }

  private onForwardRequest(from: NodeId, frame: Uint8Array): void {
    const r = new ByteReader(frame, 14, frame.length, 'forward request');
    const requestId = r.u32('requestId');
    const data = r.bytes(r.u32('dataLength'), 'data');
    const answer = (index: number, err?: Error) => {
      const name = err instanceof BrokerError ? err.code : err ? 'INVALID_REQUEST' : '';
      const w = frameHead(FORWARD_RESPONSE, this.opts.nodeId, from);
      w.u32(requestId);
      w.u64(index);
      w.u32(this.node.lead);
      writeString(w, name);
      writeString(w, err ? err.message : '');
      this.transport.send(String(from), finishFrame(w));
    };
    if (!this.isLeader) return answer(0, notController(this.opts.nodeId, this.leader));
    if (this.pending.size >= this.opts.proposalsPendingMax) return answer(0, new BrokerError('LIMIT_EXCEEDED', `${this.opts.proposalsPendingMax} metadata proposals are waiting on the controller (cluster.proposalsPendingMax)`));
    this.proposeHere(data.slice()).then(
      (index) => answer(index),
      (err: Error) => answer((err as { committedIndex?: number }).committedIndex ?? 0, err),
    );
  }

  private onForwardResponse(frame: Uint8Array): void {
    const r = new ByteReader(frame, 14, frame.length, 'forward response');
    const requestId = r.u32('requestId');
    const index = r.u64('index');
    const leader = r.u32('leader');
    const name = readString(r, 'error');
    const message = readString(r, 'message');
    const f = this.forwarded.get(requestId);
    if (!f) return; // timed out already
    this.forwarded.delete(requestId);
    if (!name) return this.settle(f.timer, () => f.resolve(index));
    const code = (name in ERRORS ? name : 'UNKNOWN_SERVER_ERROR') as ErrorName;
    const error = new BrokerError(code, leader && code === 'NOT_CONTROLLER' ? `${message} (controller: node ${leader})` : message);
    clearTimeout(f.timer);
    if (index === 0) return f.reject(error);
    this.waitApplied(index).then(() => f.reject(error), () => f.reject(error));
  }

  private waitApplied(index: number): Promise<number> {
    if (this.node.log.applied >= index) return Promise.resolve(index);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.appliedWaiters = this.appliedWaiters.filter((w) => w.resolve !== done);
        reject(new BrokerError('REQUEST_TIMED_OUT', `metadata entry ${index} committed but not applied on node ${this.opts.nodeId} within ${this.opts.proposalTimeoutMs} ms`));
      }, this.opts.proposalTimeoutMs);
      const done = () => this.settle(timer, () => resolve(index));
      this.appliedWaiters.push({ index, resolve: done });
    });
  }

  private releaseApplied(): void {
    if (!this.appliedWaiters.length) return;
    const applied = this.node.log.applied;
    const ready = this.appliedWaiters.filter((w) => w.index <= applied);
    this.appliedWaiters = this.appliedWaiters.filter((w) => w.index > applied);
    for (const w of ready) w.resolve();
  }
}

export function notController(self: NodeId, leader: NodeId | null): BrokerError {
  return new BrokerError('NOT_CONTROLLER', leader ? `node ${self} is not the controller; the controller is node ${leader}` : `node ${self} is not the controller and none is elected yet; retry`);
}

function frameHead(type: number, from: NodeId, to: NodeId): ByteWriter {
  const w = new ByteWriter();
  w.u32(0);
  w.u8(RAFT_WIRE_VERSION);
  w.u8(type);
  w.u32(from);
  w.u32(to);
  return w;
}

function finishFrame(w: ByteWriter): Uint8Array {
  w.setU32(0, w.length - 4);
  return w.finish();
}

function writeString(w: ByteWriter, s: string): void {
  const b = new TextEncoder().encode(s.slice(0, 1000));
  w.u16(b.length);
  w.bytes(b);
}

function readString(r: ByteReader, field: string): string {
  return new TextDecoder().decode(r.bytes(r.u16(`${field}Length`), field));
}
