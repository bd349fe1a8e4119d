// Purpose: drive the pure Raft state machine (host/cluster/raft.ts) through thousands of seeded
// schedules — message loss, duplication and reordering, partitions and heals, crashes (some
// tearing the write in progress) and restarts from disk, compactions and client proposals — on 3
// and 5 voters, checking election safety, log matching, leader completeness, state-machine
// safety and persist-before-send after every step, and liveness once healed. Then prove the
// checkers bite: Raft's Figure 8 with a mutation that commits an earlier term's entry by counting
// must be caught.
//
//   RAFT_SIM_SEEDS=N   schedules per cluster size (default below); for a soak run the file with
//                      TAP_TIMEOUT=0 node dist/test/unit/cluster/raft-sim.test.js
//   RAFT_SIM_STEPS=N   steps per schedule
//   RAFT_SIM_SEED=S    replay one seed (with RAFT_SIM_NODES=3|5 and RAFT_SIM_TRACE=1 to see it)
import t from 'tap';
import type { Message, NodeId } from '../../../host/cluster/raft-types.js';
import { SimCluster, SimViolation, runSchedule } from '../../helpers/raft-sim.js';

const SEEDS_DEFAULT = 1000;
const STEPS = Number(process.env.RAFT_SIM_STEPS ?? 1000);
const seedsPerSize = Number(process.env.RAFT_SIM_SEEDS ?? SEEDS_DEFAULT);
const onlySeed = process.env.RAFT_SIM_SEED === undefined ? null : Number(process.env.RAFT_SIM_SEED);
const onlyNodes = process.env.RAFT_SIM_NODES === undefined ? null : Number(process.env.RAFT_SIM_NODES);
const trace = process.env.RAFT_SIM_TRACE ? (line: string) => console.log(line) : undefined;

for (const nodes of [3, 5]) {
  if (onlyNodes !== null && onlyNodes !== nodes) continue;
  t.test(`raft sim: ${nodes} voters keep every safety property through seeded faults and converge after heal`, (t) => {
    const seeds = onlySeed !== null ? [onlySeed] : Array.from({ length: seedsPerSize }, (_, i) => nodes * 1_000_000 + i);
    const totals = { elections: 0, crashes: 0, tornWrites: 0, restarts: 0, committed: 0, snapshotsSent: 0, dropped: 0, duplicated: 0 };
    let convergeTicksMax = 0;
    const started = Date.now();
    for (const seed of seeds) {
      let result;
      try {
        result = runSchedule({ nodes, seed, steps: STEPS, ...(trace ? { trace } : {}) });
      } catch (err) {
        const step = err instanceof SimViolation ? '' : ' (not a checker verdict: a thrown assertion)';
        t.fail(`seed ${seed} on ${nodes} voters: ${(err as Error).message}${step}\n  replay: RAFT_SIM_SEED=${seed} RAFT_SIM_NODES=${nodes} RAFT_SIM_TRACE=1 npx tap dist/test/unit/cluster/raft-sim.test.js`);
        return t.end();
      }
      for (const k of Object.keys(totals) as Array<keyof typeof totals>) totals[k] += result.cluster.stats[k];
      convergeTicksMax = Math.max(convergeTicksMax, result.convergeTicks);
    }
    t.comment(`${seeds.length} schedules × ${STEPS} steps on ${nodes} voters in ${Date.now() - started} ms; ${JSON.stringify(totals)}; slowest convergence ${convergeTicksMax} ticks`);
    // The schedules must have exercised what they claim to, or a pass means nothing.
    if (seeds.length >= 100) {
      for (const k of Object.keys(totals) as Array<keyof typeof totals>) t.ok(totals[k] > seeds.length / 20, `schedules exercised ${k} (${totals[k]})`);
    }
    t.pass('no violation');
    t.end();
  });
}

t.test('raft sim: a seed replays exactly (same trace, same stats)', (t) => {
  const run = () => {
    const lines: string[] = [];
    const r = runSchedule({ nodes: 5, seed: 4242, steps: STEPS, trace: (l) => lines.push(l) });
    return { lines, stats: r.cluster.stats };
  };
  const a = run();
  const b = run();
  t.ok(a.lines.length > 20, `the trace has content (${a.lines.length} lines)`);
  t.same(b.lines, a.lines);
  t.same(b.stats, a.stats);
  t.end();
});

/**
 * Raft's Figure 8 on five voters, with appends of one entry each so the script controls what
 * reaches whom. S1 leads term 1 and gets entry A to S2 only; a node L of {3,4,5} leads term 2 with
 * a no-op at A's index that reaches nobody, and crashes; S1 leads term 3 and replicates A to the
 * other two of {3,4,5} (A is now on a majority) but not its own term-3 no-op; S1 crashes; L
 * restarts and, its last term (2) beating A's (1), is elected for term 4 and overwrites A.
 * A correct leader never committed A in term 3 — nothing is violated. A leader that commits an
 * earlier term's entry by counting did, and the checker must say so.
 */
function figure8(mutate: boolean): { c: SimCluster; s1CommitInTerm3: number } {
  const c = new SimCluster({ nodes: 5, seed: 8, appendEntriesMax: 1, ...(mutate ? { mutation: { commitPreviousTermByCounting: true } } : {}) });
  const votes = (m: Message) => m.type !== 'Append' && m.type !== 'AppendResp' && m.type !== 'Snapshot';
  const until = (what: string, cond: () => boolean, round: () => void) => {
    for (let i = 0; i < 200 && !cond(); i++) round();
    if (!cond()) throw new Error(`figure 8 script: ${what} did not happen`);
  };
  // 1. S1 leads term 1; its no-op commits everywhere.
  until('S1 elected', () => c.raft(1).role === 'leader', () => {
    c.tickNode(1);
    c.deliverWhere(() => true);
  });
  c.deliverWhere(() => true);
  // 2. A reaches S2 only.
  c.partition([1], [3, 4, 5]);
  c.propose(1, 'A');
  c.deliverWhere(() => true);
  const indexA = c.raft(1).log.lastIndex();
  // 3. One of {3,4,5} leads term 2 on their votes; its no-op reaches nobody; it crashes.
  c.partition([1, 2], [3, 4, 5]);
  const side = [3, 4, 5];
  let l2: NodeId = 0;
  until('a leader among 3,4,5', () => l2 !== 0, () => {
    for (const id of side) c.tickNode(id);
    c.deliverWhere(votes);
    l2 = side.find((id) => c.raft(id).role === 'leader') ?? 0;
  });
  c.dropWhere(() => true);
  c.crash(l2);
  const [f1, f2] = side.filter((id) => id !== l2) as [NodeId, NodeId];
  // 4. S1 leads term 3 with f1, f2; A reaches them, S1's term-3 no-op does not.
  c.heal();
  c.partition([2], [1, f1, f2]);
  // Deliver everything except an Append that would put a term-3 entry into a log (a probe the
  // follower rejects for a gap still goes through: it is how S1 finds where to send A from).
  const noTerm3Entries = (m: Message) =>
    !(m.type === 'Append' && m.entries.some((e) => e.term >= 3) && m.prevIndex <= (c.node(m.to).raft?.log.lastIndex() ?? Infinity));
  until('S1 leads term 3 and A is on f1 and f2', () => c.raft(1).role === 'leader' && c.raft(1).term >= 3 && [f1, f2].every((id) => c.raft(id).log.entry(indexA)?.term === 1), () => {
    c.tickNode(1);
    c.deliverWhere(noTerm3Entries);
  });
  c.deliverWhere(noTerm3Entries);
  const s1CommitInTerm3 = c.raft(1).log.commit;
  c.dropWhere(() => true);
  // 5. S1 crashes; L restarts; the others restart too (a restarted node has no leader, so no lease) and elect L.
  c.crash(1);
  c.heal();
  for (const id of [l2, 2, f1, f2]) {
    c.crash(id);
    c.restart(id);
  }
  until(`node ${l2} elected`, () => c.raft(l2).role === 'leader', () => {
    c.tickNode(l2);
    c.deliverWhere(() => true);
  });
  c.deliverWhere(() => true);
  return { c, s1CommitInTerm3 };
}

t.test('raft sim: Figure 8 — a correct leader does not commit an earlier term by counting, and L may overwrite A', (t) => {
  const { c, s1CommitInTerm3 } = figure8(false);
  t.equal(c.raft(2).log.entry(2)?.term, 2, "node 2's index 2 was overwritten by L's term-2 no-op");
  t.ok(s1CommitInTerm3 < 2, `S1 in term 3 kept A (index 2) uncommitted though a majority held it (commit ${s1CommitInTerm3})`);
  t.doesNotThrow(() => c.converge(400), 'and the cluster converges afterwards');
  t.end();
});

t.test('raft sim: Figure 8 — the checker catches a leader that commits an earlier term by counting', (t) => {
  let caught: unknown;
  try {
    figure8(true);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof SimViolation, `a checker verdict, not a pass (${(caught as Error)?.message})`);
  t.match((caught as SimViolation).property, /leader completeness|state-machine safety|commit safety/);
  t.end();
});

t.test('raft sim: the checker catches a driver that sends before it persists', (t) => {
  let caught: unknown;
  try {
    runSchedule({ nodes: 3, seed: 1, steps: STEPS, sendBeforePersist: true });
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof SimViolation && caught.property === 'persist-before-send', `caught: ${(caught as Error)?.message}`);
  t.end();
});

t.test('raft sim: the random schedules find the Figure 8 mutation too', (t) => {
  // Without a script the bug needs a rare coincidence (an old-term entry committed by counting,
  // then a leader elected from a log that lacks it): measured once in 3,000 schedules; seed 58 on
  // 3 voters is the first. If a change to the scheduler moves it out of this range, widen the
  // range after checking the scheduler still produces such schedules at all.
  let found: string | null = null;
  for (let seed = 1; seed <= 100 && !found; seed++) {
    try {
      runSchedule({ nodes: 3, seed, steps: 1000, mutation: { commitPreviousTermByCounting: true } });
    } catch (err) {
      if (!(err instanceof SimViolation)) throw err;
      found = `seed ${seed}: ${err.message}`;
    }
  }
  t.ok(found, `a violation within seeds 1..100 on 3 voters (${found})`);
  t.end();
});
