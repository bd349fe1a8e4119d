// Purpose: the single-node behaviours of host/cluster/raft.ts that the simulator only covers
// statistically, each pinned by hand: the persistence contract of ready()/advance(), pre-vote
// (no term inflation), the follower lease, check-quorum, fast backtracking in few round trips,
// InstallSnapshot after compaction, and the limits at their boundaries.
import t from 'tap';
import { RaftNode, type RaftConfig, type RaftInitialState, type Ready } from '../../../host/cluster/raft.js';
import type { Entry, Message } from '../../../host/cluster/raft-types.js';
import { BrokerError } from '../../../host/errors/broker-error.js';
import { prng } from '../../helpers/codec-inputs.js';

const EMPTY: RaftInitialState = { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: null, entries: [] };
const enc = new TextEncoder();

function node(id: number, extra: Partial<RaftConfig> = {}, initial: RaftInitialState = EMPTY): RaftNode {
  return new RaftNode({ id, voters: [1, 2, 3], electionTicks: 10, heartbeatTicks: 1, random: prng(id), ...extra }, initial);
}

/** Runs ready/advance until idle; returns the messages handed out and the Readies seen. */
function drain(n: RaftNode): { msgs: Message[]; readies: Ready[] } {
  const msgs: Message[] = [];
  const readies: Ready[] = [];
  while (n.hasReady()) {
    const rd = n.ready();
    readies.push(rd);
    msgs.push(...n.advance(rd));
  }
  return { msgs, readies };
}

/** Delivers messages among `nodes` until none are left (a perfect network); returns all delivered. */
function pump(nodes: Map<number, RaftNode>, start: Message[], filter: (m: Message) => boolean = () => true): Message[] {
  const queue = [...start];
  const seen: Message[] = [];
  while (queue.length) {
    const m = queue.shift()!;
    const to = nodes.get(m.to);
    if (!to || !filter(m)) continue;
    seen.push(m);
    to.step(m);
    queue.push(...drain(to).msgs);
  }
  return seen;
}

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return err instanceof BrokerError ? err.code : String(err);
  }
};

function tickUntil(n: RaftNode, cond: () => boolean, max = 100): Message[] {
  const out: Message[] = [];
  for (let i = 0; i < max && !cond(); i++) {
    n.tick();
    out.push(...drain(n).msgs);
  }
  return out;
}

/** Elects node `id` over a perfect network; returns every message delivered meanwhile. */
function electOne(nodes: Map<number, RaftNode>, id: number): Message[] {
  const n = nodes.get(id)!;
  const msgs = tickUntil(n, () => n.role !== 'follower');
  const seen = pump(nodes, msgs);
  if (n.role !== 'leader') throw new Error(`node ${id} not elected (${n.role})`);
  return seen;
}

t.test('raft: messages leave only through advance(), after the Ready that persists their term and vote', (t) => {
  const n = node(1, { preVote: false });
  for (let i = 0; i < 30 && !n.hasReady(); i++) n.tick();
  t.equal(n.role, 'candidate');
  const rd = n.ready();
  t.same(rd.hardState, { term: 1, vote: 1, commit: 0 }, 'the Ready carries the new term and the self-vote');
  t.equal(rd.messageCount, 2, 'two vote requests wait in it');
  t.throws(() => n.ready(), /not advanced/, 'a second Ready before advance is refused');
  t.throws(() => n.advance({ ...rd, seq: rd.seq + 1 }), /outstanding ready/, 'advance of another Ready is refused');
  t.notOk(n.hasReady(), 'nothing more is offered while one is outstanding');
  // A message arriving during the fsync: its answer waits for the next Ready.
  n.step({ type: 'Vote', from: 2, to: 1, term: 2, lastIndex: 0, lastTerm: 0 });
  const msgs = n.advance(rd);
  t.same(msgs.map((m) => `${m.type}:${m.term}`), ['Vote:1', 'Vote:1'], 'advance hands out exactly the messages of that Ready');
  const rd2 = n.ready();
  t.same(rd2.hardState, { term: 2, vote: 2, commit: 0 }, 'the vote for node 2 is persisted in the next Ready');
  t.same(n.advance(rd2).map((m) => `${m.type}:${m.term}:${'reject' in m ? m.reject : ''}`), ['VoteResp:2:false'], '…and only then is the grant handed out');
  t.end();
});

t.test('raft: pre-vote — a node cut off from the others campaigns forever without raising its term', (t) => {
  const n = node(1);
  for (let i = 0; i < 500; i++) {
    n.tick();
    drain(n); // its PreVotes go nowhere
  }
  t.equal(n.term, 0, 'term unchanged after 500 ticks');
  t.equal(n.role, 'preCandidate');
  // Without pre-vote the same isolation inflates the term.
  const m = node(1, { preVote: false });
  for (let i = 0; i < 500; i++) {
    m.tick();
    drain(m);
  }
  t.ok(m.term > 10, `without pre-vote: term ${m.term}`);
  t.end();
});

t.test('raft: a follower with a live leader ignores vote requests (lease); after an election timeout it answers', (t) => {
  const nodes = new Map([1, 2, 3].map((id) => [id, node(id)]));
  electOne(nodes, 1);
  const f = nodes.get(2)!;
  const term = f.term;
  f.step({ type: 'Vote', from: 3, to: 2, term: term + 5, lastIndex: 100, lastTerm: term + 4 });
  t.equal(f.term, term, 'term not moved by a vote request inside the lease');
  t.same(drain(f).msgs, [], 'and no answer');
  for (let i = 0; i < 10; i++) f.tick(); // the leader is silent for an election timeout (not the randomized one)
  drain(f);
  f.step({ type: 'Vote', from: 3, to: 2, term: term + 5, lastIndex: 100, lastTerm: term + 4 });
  t.equal(f.term, term + 5, 'outside the lease the higher term is adopted');
  t.same(drain(f).msgs.map((m) => m.type === 'VoteResp' && !m.reject), [true], 'and the vote granted');
  t.end();
});

t.test('raft: check-quorum — a leader that hears from nobody for an election timeout steps down', (t) => {
  const nodes = new Map([1, 2, 3].map((id) => [id, node(id)]));
  electOne(nodes, 1);
  const l = nodes.get(1)!;
  let ticks = 0;
  while (l.role === 'leader' && ticks < 100) {
    l.tick();
    drain(l); // heartbeats lost
    ticks++;
  }
  t.equal(l.role, 'follower');
  t.ok(ticks <= 20, `stepped down after ${ticks} ticks (two check rounds of 10 at most)`);
  t.end();
});

t.test('raft: fast backtracking skips a divergent term per round trip', (t) => {
  const e = (index: number, term: number): Entry => ({ index, term, data: enc.encode(`${index}@${term}`) });
  const range = (from: number, to: number, term: number) => Array.from({ length: to - from + 1 }, (_, i) => e(from + i, term));
  // Node 2 holds 60 uncommitted entries of term 2; node 1 holds 10 of term 3 after the same prefix.
  const n1 = node(1, {}, { hardState: { term: 3, vote: 1, commit: 3 }, snapshot: null, entries: [...range(1, 3, 1), ...range(4, 13, 3)] });
  const n2 = node(2, {}, { hardState: { term: 3, vote: 1, commit: 3 }, snapshot: null, entries: [...range(1, 3, 1), ...range(4, 63, 2)] });
  const nodes = new Map([
    [1, n1],
    [2, n2],
  ]);
  const seen = [...electOne(nodes, 1), ...pump(nodes, drain(n1).msgs)];
  const rejects = seen.filter((m) => m.type === 'AppendResp' && m.reject);
  t.same(n2.log.allEntries().map((x) => x.term), n1.log.allEntries().map((x) => x.term), 'node 2 converged to the leader log');
  t.equal(n2.log.lastIndex(), 14);
  t.ok(n1.log.commit >= 14, 'and the leader committed its term');
  // One rejection names term 2 and its first index (4): the leader, with no term 2 in its log,
  // jumps straight there. Entry-by-entry backtracking would take 10 (one per leader entry above 3).
  t.ok(rejects.length >= 1 && rejects.length <= 2, `${rejects.length} rejection(s), not one per divergent entry`);
  t.end();
});

t.test('raft: a follower behind a compaction gets the snapshot, restores it and catches up', (t) => {
  const nodes = new Map([1, 2, 3].map((id) => [id, node(id, { appendEntriesMax: 4 })]));
  electOne(nodes, 1);
  const l = nodes.get(1)!;
  const without3 = (m: Message) => m.to !== 3 && m.from !== 3;
  for (let i = 0; i < 20; i++) {
    l.propose(enc.encode(`p${i}`));
    pump(nodes, drain(l).msgs, without3);
  }
  pump(nodes, drain(l).msgs, without3);
  t.equal(l.log.commit, 21);
  const snap = { index: 15, term: l.log.term(15)!, voters: [1, 2, 3], data: enc.encode('state@15') };
  l.compact(snap);
  t.equal(l.log.snapshotIndex, 15);
  l.tick();
  const seen = pump(nodes, drain(l).msgs);
  t.ok(seen.some((m) => m.type === 'Snapshot' && m.to === 3), 'the leader sent its snapshot');
  const f = nodes.get(3)!;
  t.equal(f.log.snapshotIndex, 15, 'node 3 restored it');
  t.equal(f.log.lastIndex(), 21, 'and received the entries after it');
  t.equal(f.log.commit, 21);
  t.end();
});

t.test('raft: limits at their boundaries', (t) => {
  const nodes = new Map([1, 2, 3].map((id) => [id, node(id, { uncommittedEntriesMax: 5, appendEntriesMax: 3 })]));
  electOne(nodes, 1);
  const l = nodes.get(1)!;
  const f = nodes.get(2)!;
  t.equal(codeOf(() => f.propose(enc.encode('x'))), 'NOT_LEADER_OR_FOLLOWER');
  t.equal(codeOf(() => l.propose(new Uint8Array(0))), 'INVALID_REQUEST');
  // The no-op is committed; five proposals fill the window, the sixth is refused.
  for (let i = 0; i < 5; i++) l.propose(enc.encode(`p${i}`));
  t.equal(codeOf(() => l.propose(enc.encode('p5'))), 'LIMIT_EXCEEDED');
  const appends = drain(l).msgs.filter((m) => m.type === 'Append');
  t.ok(appends.length > 0 && appends.every((m) => m.type === 'Append' && m.entries.length <= 3), 'no Append carries more than appendEntriesMax entries');
  t.ok(appends.some((m) => m.type === 'Append' && m.entries.length === 3), 'and a full one carries exactly appendEntriesMax');
  pump(nodes, appends);
  t.doesNotThrow(() => l.propose(enc.encode('p5')), 'accepted again once the window commits');
  t.throws(() => node(4), /not among the voters/);
  t.throws(() => node(1, { heartbeatTicks: 10 }), /heartbeatTicks/);
  t.end();
});

t.test('raft: appendBytesMax at its boundary', (t) => {
  const nodes = new Map([1, 2, 3].map((id) => [id, node(id, { appendBytesMax: 250 })]));
  electOne(nodes, 1);
  const l = nodes.get(1)!;
  // Entries of 100 bytes: two fit in 250 bytes, a third would not.
  for (let i = 0; i < 5; i++) l.propose(new Uint8Array(100).fill(65 + i));
  const appends = drain(l).msgs.filter((m): m is Extract<Message, { type: 'Append' }> => m.type === 'Append');
  t.ok(appends.every((m) => m.entries.reduce((n, e) => n + e.data.length, 0) <= 250), 'no Append over appendBytesMax');
  t.ok(appends.some((m) => m.entries.length === 2), 'a full Append carries exactly the two entries that fit');
  pump(nodes, appends);
  l.tick();
  pump(nodes, drain(l).msgs);
  t.equal(nodes.get(3)!.log.commit, 6, 'all five and the no-op committed on a follower');
  const lone = new Map([1, 2, 3].map((id) => [id, node(id, { appendBytesMax: 10 })]));
  electOne(lone, 1);
  lone.get(1)!.propose(new Uint8Array(50));
  const one = drain(lone.get(1)!).msgs.filter((m): m is Extract<Message, { type: 'Append' }> => m.type === 'Append' && m.entries.length > 0);
  t.ok(one.length > 0 && one.every((m) => m.entries.length === 1), 'an entry over appendBytesMax is sent alone');
  t.end();
});

t.test('raft: committed entries come out at most applyEntriesMax per Ready', (t) => {
  const nodes = new Map([1, 2, 3].map((id) => [id, node(id, { applyEntriesMax: 2 })]));
  electOne(nodes, 1);
  const l = nodes.get(1)!;
  const not2 = (m: Message) => m.to !== 2 && m.from !== 2;
  for (let i = 0; i < 5; i++) {
    l.propose(enc.encode(`p${i}`));
    pump(nodes, drain(l).msgs, not2);
  }
  t.equal(l.log.commit, 6, 'committed with node 3');
  // Node 2 now gets all six entries and the commit index in one Append.
  l.tick();
  const toTwo = drain(l).msgs.filter((m) => m.to === 2);
  const n2 = nodes.get(2)!;
  const sizes: number[] = [];
  for (const m of toTwo) {
    n2.step(m);
    while (n2.hasReady()) {
      const rd = n2.ready();
      if (rd.committedEntries.length) sizes.push(rd.committedEntries.length);
      n2.advance(rd);
    }
  }
  t.same(sizes, [2, 2, 1], 'five entries after the no-op (applied earlier) come out two by two');
  t.equal(n2.log.applied, 6);
  t.end();
});
