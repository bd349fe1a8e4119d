// A deterministic simulator for host/cluster/raft.ts: N RaftNodes, each with a "disk" (the
// DurableState the file storage replays into), a network of in-flight messages the scheduler
// delivers in any order, drops, duplicates or cuts by partition, crashes that lose everything not
// persisted (and sometimes tear the write in progress), restarts rebuilt from the disk alone, and
// client proposals. Everything random comes from one seeded RNG, so a seed replays exactly.
//
// The checker runs after every step and throws a SimViolation naming the property:
//   election safety      at most one leader per term, over the whole run
//   log matching         two logs with an entry of the same index and term agree on it and on
//                        everything before it (checked through a registry of (index, term) →
//                        data and previous term, which by induction pins the whole prefix)
//   leader completeness  an entry committed in term t is in the log (or snapshot) of every
//                        leader of a later term
//   leader append-only   a leader never shortens its log within its term
//   state-machine safety no two nodes apply different entries at one index
//   persist-before-send  a message never leaves before the term, vote or entries it vouches for
//                        are on the sender's disk
// and the scheduler's end phase checks liveness: once healed, restarted and reliable, a leader is
// elected and a proposal commits on every node within a bounded number of ticks.
import { RaftNode, type RaftMutation, type Ready } from '../../host/cluster/raft.js';
import { decodeMessage, encodeMessage } from '../../host/cluster/raft-codec.js';
import { DurableState, recordsForReady } from '../../host/cluster/raft-storage.js';
import type { Entry, Message, NodeId, Snapshot } from '../../host/cluster/raft-types.js';
import { prng } from './codec-inputs.js';

export class SimViolation extends Error {
  constructor(
    readonly property: string,
    detail: string,
  ) {
    super(`${property}: ${detail}`);
    this.name = 'SimViolation';
  }
}

export interface SimOptions {
  readonly nodes: number;
  readonly seed: number;
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  readonly appendEntriesMax?: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly mutation?: RaftMutation;
  /** Probability that a crash happens while a Ready is being persisted (a prefix of its records survives). */
  readonly tornWriteProbability?: number;
  readonly trace?: (line: string) => void;
  /** Send every message through the binary codec (encode, then decode at the receiver). */
  readonly wireCodec?: boolean;
  /** A deliberately wrong driver for the checker's self-test: sends a Ready's messages before persisting it. */
  readonly sendBeforePersist?: boolean;
}

const FRAME_BYTES_MAX = 1 << 24;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How an entry is compared across nodes: its term and its data. */
const entryKey = (e: Entry): string => `${e.term}:${decoder.decode(e.data)}`;

interface SimNode {
  readonly id: NodeId;
  raft: RaftNode | null; // null while crashed
  readonly disk: DurableState;
  /** The applied state machine: entryKey of every applied index, from 1. */
  applied: string[];
  /** Highest commit index the checker has seen on this node (reset at restart). */
  commitSeen: number;
  /** Log matching: entries up to this index (with this term there) are registered. */
  checkedIndex: number;
  checkedTerm: number;
  crashes: number;
}

interface InFlight {
  readonly m: Message;
}

export class SimCluster {
  readonly rng: () => number;
  readonly nodes: SimNode[] = [];
  network: InFlight[] = [];
  /** Blocked links as "from>to". */
  readonly blocked = new Set<string>();
  step = 0;
  proposals = 0;
  readonly stats = { delivered: 0, dropped: 0, duplicated: 0, crashes: 0, tornWrites: 0, restarts: 0, elections: 0, committed: 0, snapshotsSent: 0 };

  // checker state
  private readonly leaders = new Map<number, NodeId>();
  private readonly leaderLast = new Map<NodeId, { term: number; lastIndex: number }>();
  private readonly logRegistry = new Map<string, { key: string; prevTerm: number }>();
  private readonly committed = new Map<number, { key: string; commitTerm: number }>();
  private readonly appliedAt = new Map<number, string>();
  private readonly voters: NodeId[];
  /** Cleared by converge(): the liveness phase has no faults. */
  tornWriteProbability: number;

  constructor(readonly opts: SimOptions) {
    this.tornWriteProbability = opts.tornWriteProbability ?? 0;
    this.rng = prng(opts.seed);
    this.voters = Array.from({ length: opts.nodes }, (_, i) => i + 1);
    for (const id of this.voters) {
      const node: SimNode = { id, raft: null, disk: new DurableState(), applied: [], commitSeen: 0, checkedIndex: 0, checkedTerm: 0, crashes: 0 };
      this.nodes.push(node);
      this.start(node);
    }
  }

  node(id: NodeId): SimNode {
    return this.nodes[id - 1]!;
  }

  raft(id: NodeId): RaftNode {
    const r = this.node(id).raft;
    if (!r) throw new Error(`node ${id} is down`);
    return r;
  }

  alive(): SimNode[] {
    return this.nodes.filter((n) => n.raft);
  }

  leadersNow(): RaftNode[] {
    return this.alive()
      .map((n) => n.raft!)
      .filter((r) => r.role === 'leader');
  }

  trace(line: string): void {
    this.opts.trace?.(`[${this.step}] ${line}`);
  }

  // ---- node lifecycle ----

  private start(n: SimNode): void {
    const initial = n.disk.initial();
    n.raft = new RaftNode(
      {
        id: n.id,
        voters: this.voters,
        electionTicks: this.opts.electionTicks ?? 10,
        heartbeatTicks: this.opts.heartbeatTicks ?? 2,
        random: this.rng,
        appendEntriesMax: this.opts.appendEntriesMax ?? 8,
        preVote: this.opts.preVote ?? true,
        checkQuorum: this.opts.checkQuorum ?? true,
        ...(this.opts.mutation ? { mutation: this.opts.mutation } : {}),
      },
      initial,
    );
    // The state machine restarts from the snapshot on disk; committed entries are re-applied.
    n.applied = initial.snapshot ? (JSON.parse(decoder.decode(initial.snapshot.data)) as string[]) : [];
    n.commitSeen = n.raft.log.commit;
    n.checkedIndex = n.raft.log.snapshotIndex;
    n.checkedTerm = n.raft.log.snapshot.term;
  }

  crash(id: NodeId): void {
    const n = this.node(id);
    if (!n.raft) return;
    this.trace(`crash ${id}`);
    n.raft = null;
    n.crashes++;
    this.stats.crashes++;
  }

  restart(id: NodeId): void {
    const n = this.node(id);
    if (n.raft) return;
    this.trace(`restart ${id}`);
    this.start(n);
    this.stats.restarts++;
    this.check();
  }

  // ---- inputs ----

  tickAll(): void {
    for (const n of this.alive()) this.tickNode(n.id);
  }

  tickNode(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) {
      const r = this.node(id).raft;
      if (!r) return;
      r.tick();
      this.drain(id);
      this.check();
    }
  }

  /** Proposes to node `id` if it is the leader; returns the data's text or null. */
  propose(id: NodeId, text = `p${++this.proposals}`): string | null {
    const r = this.node(id).raft;
    if (!r || r.role !== 'leader') return null;
    try {
      r.propose(encoder.encode(text));
    } catch {
      return null; // LIMIT_EXCEEDED: the client would back off
    }
    this.trace(`propose ${text} at ${id} (term ${r.term})`);
    this.drain(id);
    this.check();
    return text;
  }

  /** The application of node `id` snapshots its applied state and compacts. */
  compact(id: NodeId): void {
    const n = this.node(id);
    const r = n.raft;
    if (!r || r.log.applied <= r.log.snapshotIndex) return;
    const index = r.log.applied;
    const snapshot: Snapshot = { index, term: r.log.term(index)!, voters: this.voters, data: encoder.encode(JSON.stringify(n.applied.slice(0, index))) };
    n.disk.apply({ kind: 'compact', snapshot });
    r.compact(snapshot);
    this.trace(`compact ${id} to ${index}`);
    this.check();
  }

  deliver(i: number): void {
    const [f] = this.network.splice(i, 1);
    if (!f) return;
    const m = f.m;
    const to = this.node(m.to);
    if (!to.raft || this.blocked.has(`${m.from}>${m.to}`)) {
      this.stats.dropped++;
      return;
    }
    this.stats.delivered++;
    if (m.type === 'Snapshot') this.stats.snapshotsSent++;
    to.raft.step(m);
    this.drain(m.to);
    this.check();
  }

  /** Delivers, in order, every in-flight message matching `pred` (and those they cause), up to `max` deliveries. */
  deliverWhere(pred: (m: Message) => boolean, max = 10_000): void {
    for (let k = 0; k < max; k++) {
      const i = this.network.findIndex((f) => pred(f.m));
      if (i < 0) return;
      this.deliver(i);
    }
  }

  dropWhere(pred: (m: Message) => boolean): void {
    const before = this.network.length;
    this.network = this.network.filter((f) => !pred(f.m));
    this.stats.dropped += before - this.network.length;
  }

  partition(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) for (const y of b) this.blocked.add(`${x}>${y}`).add(`${y}>${x}`);
    this.trace(`partition ${a.join(',')} | ${b.join(',')}`);
  }

  heal(): void {
    this.blocked.clear();
    this.trace('heal');
  }

  // ---- the drain: persist, apply, then send ----

  drain(id: NodeId): void {
    const n = this.node(id);
    while (n.raft?.hasReady()) {
      const r = n.raft;
      const rd = r.ready();
      const records = recordsForReady(rd);
      const torn = this.tornWriteProbability;
      if (records.length && torn > 0 && this.rng() < torn) {
        // Power cut mid-write: a prefix of the records reached the disk, nothing was sent.
        const keep = Math.floor(this.rng() * (records.length + 1));
        for (const rec of records.slice(0, keep)) n.disk.apply(rec);
        this.stats.tornWrites++;
        this.trace(`torn write at ${id}: ${keep}/${records.length} records`);
        this.crash(id);
        return;
      }
      if (this.opts.sendBeforePersist) for (const m of r.advance(rd)) this.send(n, m);
      for (const rec of records) n.disk.apply(rec);
      this.applyReady(n, rd);
      if (!this.opts.sendBeforePersist) for (const m of r.advance(rd)) this.send(n, m);
    }
  }

  private applyReady(n: SimNode, rd: Ready): void {
    if (rd.snapshot) {
      const sm = JSON.parse(decoder.decode(rd.snapshot.data)) as string[];
      sm.forEach((key, i) => this.recordApplied(n, i + 1, key));
      n.applied = sm;
    }
    for (const e of rd.committedEntries) {
      if (e.index !== n.applied.length + 1) throw new SimViolation('apply order', `node ${n.id} applies ${e.index} after ${n.applied.length}`);
      const key = entryKey(e);
      this.recordApplied(n, e.index, key);
      n.applied.push(key);
    }
  }

  private recordApplied(n: SimNode, index: number, key: string): void {
    const seen = this.appliedAt.get(index);
    if (seen === undefined) this.appliedAt.set(index, key);
    else if (seen !== key) throw new SimViolation('state-machine safety', `node ${n.id} applies ${key} at index ${index}, another node applied ${seen}`);
  }

  private send(from: SimNode, m: Message): void {
    this.checkPersistedBeforeSend(from, m);
    if (this.blocked.has(`${m.from}>${m.to}`)) {
      this.stats.dropped++;
      return;
    }
    this.network.push({ m: this.opts.wireCodec ? decodeMessage(encodeMessage(m), FRAME_BYTES_MAX) : m });
  }

  // ---- the checker ----

  private checkPersistedBeforeSend(n: SimNode, m: Message): void {
    const hs = n.disk.hardState;
    const fail = (what: string): never => {
      throw new SimViolation('persist-before-send', `node ${n.id} sends ${m.type} (term ${m.term}) to ${m.to} but its disk has ${what}`);
    };
    const preVote = m.type === 'PreVote' || (m.type === 'PreVoteResp' && !m.reject);
    if (!preVote && hs.term < m.term) fail(`term ${hs.term}`);
    if (m.type === 'Vote' && (hs.vote !== n.id || hs.term !== m.term)) fail(`vote ${hs.vote} in term ${hs.term}`);
    if (m.type === 'VoteResp' && !m.reject && (hs.vote !== m.to || hs.term !== m.term)) fail(`vote ${hs.vote} in term ${hs.term}`);
    if (m.type === 'AppendResp' && !m.reject && m.index > n.disk.lastIndex()) fail(`entries only up to ${n.disk.lastIndex()}`);
  }

  /** Runs every safety property over the current state; throws SimViolation. */
  check(): void {
    for (const n of this.nodes) {
      const r = n.raft;
      if (!r) continue;
      if (r.role === 'leader') this.checkLeader(n, r);
      this.checkLogMatching(n, r);
      this.checkCommits(n, r);
    }
  }

  private checkLeader(n: SimNode, r: RaftNode): void {
    const known = this.leaders.get(r.term);
    if (known === undefined) {
      this.leaders.set(r.term, n.id);
      this.stats.elections++;
      this.trace(`leader ${n.id} in term ${r.term}`);
      // Leader completeness, at the start of the term: every entry committed in an earlier term is here.
      const snapshotState = JSON.parse(decoder.decode(r.log.snapshot.data.length ? r.log.snapshot.data : encoder.encode('[]'))) as string[];
      for (const [index, c] of this.committed) {
        if (c.commitTerm < r.term) this.checkHas(n, r, index, c.key, snapshotState);
      }
      this.leaderLast.set(n.id, { term: r.term, lastIndex: r.log.lastIndex() });
    } else if (known !== n.id) {
      throw new SimViolation('election safety', `nodes ${known} and ${n.id} both lead term ${r.term}`);
    } else {
      // Leader append-only (§5.3): in its term a leader never shortens its log.
      const seen = this.leaderLast.get(n.id);
      if (seen && seen.term === r.term && r.log.lastIndex() < seen.lastIndex) {
        throw new SimViolation('leader append-only', `leader ${n.id} of term ${r.term} shrank its log from ${seen.lastIndex} to ${r.log.lastIndex()}`);
      }
      this.leaderLast.set(n.id, { term: r.term, lastIndex: r.log.lastIndex() });
    }
  }

  private checkHas(n: SimNode, r: RaftNode, index: number, key: string, snapshotState?: string[]): void {
    if (index <= r.log.snapshotIndex) {
      // Inside its snapshot: the snapshot's state must hold the entry.
      const inSnapshot = snapshotState ?? (JSON.parse(decoder.decode(r.log.snapshot.data)) as string[]);
      if (inSnapshot[index - 1] !== key) {
        throw new SimViolation('leader completeness', `leader ${n.id} of term ${r.term} has ${inSnapshot[index - 1]} in its snapshot at committed index ${index} (${key})`);
      }
      return;
    }
    const e = r.log.entry(index);
    if (!e || entryKey(e) !== key) {
      throw new SimViolation('leader completeness', `leader ${n.id} of term ${r.term} has ${e ? entryKey(e) : 'nothing'} at committed index ${index} (${key})`);
    }
  }

  private checkLogMatching(n: SimNode, r: RaftNode): void {
    const log = r.log;
    // Rewind the watermark past a truncation or below a restore.
    if (n.checkedIndex > log.lastIndex() || (n.checkedIndex >= log.snapshotIndex && log.term(n.checkedIndex) !== n.checkedTerm)) {
      n.checkedIndex = log.snapshotIndex;
      n.checkedTerm = log.snapshot.term;
    }
    if (n.checkedIndex < log.snapshotIndex) {
      n.checkedIndex = log.snapshotIndex;
      n.checkedTerm = log.snapshot.term;
    }
    for (let i = n.checkedIndex + 1; i <= log.lastIndex(); i++) {
      const e = log.entry(i)!;
      const prevTerm = log.term(i - 1)!;
      const id = `${i}:${e.term}`;
      const key = entryKey(e);
      const seen = this.logRegistry.get(id);
      if (!seen) this.logRegistry.set(id, { key, prevTerm });
      else if (seen.key !== key || seen.prevTerm !== prevTerm) {
        throw new SimViolation('log matching', `node ${n.id} has ${key} after term ${prevTerm} at index ${i}; another log has ${seen.key} after term ${seen.prevTerm}`);
      }
    }
    n.checkedIndex = log.lastIndex();
    n.checkedTerm = log.lastTerm();
  }

  private checkCommits(n: SimNode, r: RaftNode): void {
    const commit = r.log.commit;
    for (let i = Math.max(n.commitSeen, r.log.snapshotIndex) + 1; i <= commit; i++) {
      const key = entryKey(r.log.entry(i)!);
      const c = this.committed.get(i);
      if (!c) {
        this.committed.set(i, { key, commitTerm: r.term });
        this.stats.committed++;
        for (const other of this.nodes) {
          const o = other.raft;
          if (o && o.role === 'leader' && o.term > r.term) this.checkHas(other, o, i, key);
        }
      } else if (c.key !== key) {
        throw new SimViolation('commit safety', `node ${n.id} commits ${key} at index ${i}, already committed: ${c.key}`);
      }
    }
    n.commitSeen = Math.max(n.commitSeen, commit);
  }

  // ---- liveness ----

  /**
   * Heals, restarts every node, makes the network reliable, and runs ticks (delivering every
   * message between ticks) until a leader has committed a fresh proposal on every node.
   * Returns the ticks it took; throws SimViolation('liveness') past `ticksMax`.
   */
  converge(ticksMax: number): number {
    this.heal();
    this.tornWriteProbability = 0;
    for (const n of this.nodes) this.restart(n.id);
    let text: string | null = null;
    let index = 0;
    let term = 0;
    for (let tick = 0; tick <= ticksMax; tick++) {
      this.deliverWhere(() => true);
      const leaders = this.leadersNow();
      const leader = leaders.length === 1 ? leaders[0]! : undefined;
      // A proposal a newer leader overwrote is lost, as a client would see: propose again.
      // (A newer leader's log never gains an older leader's entry it lacks: if it is not there, it is gone.)
      if (text !== null && leader && leader.term > term && index > leader.log.snapshotIndex) {
        const e = leader.log.entry(index);
        if (!e || decoder.decode(e.data) !== text) text = null;
      }
      if (text === null && leader) {
        text = this.propose(leader.id, `final-${this.opts.seed}-${tick}`);
        if (text !== null) {
          index = leader.log.lastIndex();
          term = leader.term;
        }
        this.deliverWhere(() => true);
      }
      if (text !== null && this.nodes.every((n) => n.applied[index - 1]?.endsWith(`:${text}`))) return tick;
      this.tickAll();
    }
    const state = this.nodes.map((n) => `${n.id}:${n.raft?.role}/t${n.raft?.term}/c${n.raft?.log.commit}/a${n.applied.length}`).join(' ');
    throw new SimViolation('liveness', `no proposal committed on every node within ${ticksMax} ticks after heal (${state})`);
  }
}

export interface ScheduleOptions {
  readonly nodes: number;
  readonly seed: number;
  readonly steps: number;
  readonly mutation?: RaftMutation;
  readonly trace?: (line: string) => void;
  readonly livenessTicksMax?: number;
  readonly sendBeforePersist?: boolean;
}

export interface ScheduleResult {
  readonly cluster: SimCluster;
  readonly convergeTicks: number;
}

/**
 * One random schedule: `steps` events drawn from the seed (deliver, tick, drop, duplicate,
 * propose, partition, heal, crash, restart, compact), the checker after each, then liveness.
 */
export function runSchedule(o: ScheduleOptions): ScheduleResult {
  // The shape of the cluster is drawn from the seed too: one-entry appends make partial
  // replication (Figure 8's raw material) common, larger ones exercise batching.
  const shape = prng(o.seed ^ 0x5eed);
  const appendEntriesMax = [1, 2, 8][Math.floor(shape() * 3)]!;
  // Pre-vote and check-quorum are on in production; one schedule in five runs without each,
  // so safety is shown not to lean on them.
  const preVote = shape() >= 0.2;
  const checkQuorum = shape() >= 0.2;
  // One schedule in ten sends every message through the wire codec, so the frames meet real traffic.
  const wireCodec = o.seed % 10 === 0;
  const c = new SimCluster({ nodes: o.nodes, seed: o.seed, appendEntriesMax, preVote, checkQuorum, mutation: o.mutation, tornWriteProbability: 0.01, wireCodec, sendBeforePersist: o.sendBeforePersist, ...(o.trace ? { trace: o.trace } : {}) });
  const rng = c.rng;
  const pick = <T>(xs: readonly T[]): T | undefined => (xs.length ? xs[Math.floor(rng() * xs.length)] : undefined);
  const ids = c.nodes.map((n) => n.id);
  for (c.step = 0; c.step < o.steps; c.step++) {
    const r = rng();
    if (r < 0.6) {
      if (c.network.length) c.deliver(Math.floor(rng() * c.network.length));
      else c.tickAll();
    } else if (r < 0.72) c.tickAll();
    else if (r < 0.75) {
      if (c.network.length) c.dropWhere(((victim) => (m: Message) => m === victim)(pick(c.network)!.m));
    } else if (r < 0.77) {
      const f = pick(c.network);
      if (f) {
        c.network.push({ m: f.m });
        c.stats.duplicated++;
      }
    } else if (r < 0.89) {
      for (const l of c.leadersNow()) c.propose(l.id);
    } else if (r < 0.905) {
      const shuffled = [...ids];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(rng() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      const cut = 1 + Math.floor(rng() * (ids.length - 1));
      c.partition(shuffled.slice(0, cut), shuffled.slice(cut));
    } else if (r < 0.93) c.heal();
    else if (r < 0.945) {
      const n = pick(c.alive());
      if (n) c.crash(n.id);
    } else if (r < 0.975) {
      const n = pick(c.nodes.filter((x) => !x.raft));
      if (n) c.restart(n.id);
    } else {
      const n = pick(c.alive());
      if (n) c.compact(n.id);
    }
  }
  const convergeTicks = c.converge(o.livenessTicksMax ?? 500);
  return { cluster: c, convergeTicks };
}
