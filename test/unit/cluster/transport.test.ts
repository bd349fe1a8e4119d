// Purpose: the in-memory transport hub (host/cluster/transport.ts) that cluster tests run over:
// messages between named nodes arrive (copied), partitions cut both directions and the messages
// in flight on them, heal restores, per-link loss / delay / duplication behave as configured and
// replay exactly from a seed, the per-link bound refuses instead of growing, and a Raft cluster
// elects a leader and commits over it, through the binary codec, across a partition and heal.
import t from 'tap';
import { RaftNode, type Ready } from '../../../host/cluster/raft.js';
import { decodeMessage, encodeMessage } from '../../../host/cluster/raft-codec.js';
import { DurableState, recordsForReady } from '../../../host/cluster/raft-storage.js';
import { ManualTimers, MemoryHub, type Transport } from '../../../host/cluster/transport.js';
import { prng } from '../../helpers/codec-inputs.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function inbox(ep: Transport): string[] {
  const got: string[] = [];
  ep.onMessage((from, m) => got.push(`${from}:${text(m)}`));
  return got;
}

t.test('transport: messages between named nodes arrive, copied', (t) => {
  const timers = new ManualTimers();
  const hub = new MemoryHub({ random: prng(1), timers });
  const a = hub.connect('a');
  const b = hub.connect('b');
  const got = inbox(b);
  const buf = bytes('hello');
  t.ok(a.send('b', buf));
  buf[0] = 0x78; // the sender reuses its buffer
  t.same(got, [], 'nothing before the timers run');
  timers.advance(0);
  t.same(got, ['a:hello']);
  t.notOk(a.send('nobody', bytes('x')), 'an unknown node is refused');
  t.throws(() => hub.connect('a'), /already connected/);
  t.end();
});

t.test('transport: a partition cuts both directions and what is in flight; heal restores', (t) => {
  const timers = new ManualTimers();
  const hub = new MemoryHub({ random: prng(1), timers, faults: { delayMs: 10 } });
  const [a, b, c] = ['a', 'b', 'c'].map((n) => hub.connect(n)) as [Transport, Transport, Transport];
  const [ga, gb, gc] = [inbox(a), inbox(b), inbox(c)];
  a.send('b', bytes('in-flight'));
  hub.partition(['a'], ['b', 'c']);
  a.send('c', bytes('cut'));
  c.send('a', bytes('cut back'));
  b.send('c', bytes('same side'));
  timers.advance(20);
  t.same(gb, [], 'the message in flight when the partition came is lost');
  t.same(ga, []);
  t.same(gc, ['b:same side'], 'nodes on one side still talk');
  t.notOk(hub.canReach('a', 'b'));
  hub.heal();
  a.send('b', bytes('after heal'));
  timers.advance(20);
  t.same(gb, ['a:after heal']);
  hub.isolate('c');
  b.send('c', bytes('isolated'));
  timers.advance(20);
  t.same(gc, ['b:same side'], 'isolate cuts one node from all');
  t.ok(hub.stats.partitioned >= 4);
  t.end();
});

t.test('transport: loss, delay and duplication follow the link settings and replay from a seed', (t) => {
  const run = (seed: number) => {
    const timers = new ManualTimers();
    const hub = new MemoryHub({ random: prng(seed), timers });
    const a = hub.connect('a');
    const b = hub.connect('b');
    const got = inbox(b);
    hub.setLinkFaults('a', 'b', { dropProbability: 0.3, duplicateProbability: 0.1, delayMs: 5, jitterMs: 20 });
    for (let i = 0; i < 1000; i++) a.send('b', bytes(String(i)));
    timers.advance(4);
    const early = got.length;
    timers.advance(100);
    return { got, early, stats: { ...hub.stats } };
  };
  const r = run(42);
  t.equal(r.early, 0, 'nothing arrives before delayMs');
  t.ok(r.stats.dropped > 250 && r.stats.dropped < 350, `about 30% lost (${r.stats.dropped})`);
  t.ok(r.stats.duplicated > 40 && r.stats.duplicated < 110, `about 10% of survivors doubled (${r.stats.duplicated})`);
  t.equal(r.got.length, r.stats.delivered);
  const order = r.got.map((s) => Number(s.slice(2)));
  t.ok(order.some((v, i) => i > 0 && v < order[i - 1]!), 'jitter reorders');
  t.same(run(42).got, r.got, 'the same seed gives the same deliveries in the same order');
  t.end();
});

t.test('transport: a full link refuses instead of queueing more', (t) => {
  const timers = new ManualTimers();
  const hub = new MemoryHub({ random: prng(1), timers, inFlightMax: 3, faults: { delayMs: 100 } });
  const a = hub.connect('a');
  hub.connect('b');
  const results = [1, 2, 3, 4].map((i) => a.send('b', bytes(String(i))));
  t.same(results, [true, true, true, false], 'the fourth undelivered message is refused');
  timers.advance(100);
  t.ok(a.send('b', bytes('5')), 'room again once delivered');
  t.equal(hub.stats.refused, 1);
  a.close();
  t.notOk(a.send('b', bytes('6')), 'a closed endpoint sends nothing');
  t.end();
});

t.test('transport: three Raft nodes over the hub elect, commit, survive a partition of the leader, heal', (t) => {
  const timers = new ManualTimers();
  const rnd = prng(3);
  const hub = new MemoryHub({ random: rnd, timers, faults: { delayMs: 1, jitterMs: 3, dropProbability: 0.05 } });
  const ids = [1, 2, 3];
  const disks = new Map(ids.map((id) => [id, new DurableState()]));
  const applied = new Map<number, string[]>(ids.map((id) => [id, []]));
  const nodes = new Map<number, RaftNode>();
  const eps = new Map<number, Transport>();
  const drain = (id: number) => {
    const n = nodes.get(id)!;
    while (n.hasReady()) {
      const rd: Ready = n.ready();
      for (const r of recordsForReady(rd)) disks.get(id)!.apply(r);
      for (const e of rd.committedEntries) if (e.data.length) applied.get(id)!.push(text(e.data));
      for (const m of n.advance(rd)) eps.get(id)!.send(String(m.to), encodeMessage(m));
    }
  };
  for (const id of ids) {
    nodes.set(id, new RaftNode({ id, voters: ids, electionTicks: 10, heartbeatTicks: 2, random: rnd }, disks.get(id)!.initial()));
    const ep = hub.connect(String(id));
    ep.onMessage((_from, frame) => {
      nodes.get(id)!.step(decodeMessage(frame, 1 << 20));
      drain(id);
    });
    eps.set(id, ep);
  }
  const runTicks = (n: number) => {
    for (let i = 0; i < n; i++) {
      for (const id of ids) {
        nodes.get(id)!.tick();
        drain(id);
      }
      timers.advance(10);
    }
  };
  const leader = () => ids.find((id) => nodes.get(id)!.role === 'leader');
  runTicks(60);
  const first = leader();
  t.ok(first, `a leader (${first})`);
  nodes.get(first!)!.propose(bytes('one'));
  drain(first!);
  runTicks(10);
  t.same(ids.map((id) => applied.get(id)), [['one'], ['one'], ['one']], 'committed and applied everywhere');
  hub.isolate(String(first));
  runTicks(60);
  const second = ids.find((id) => id !== first && nodes.get(id)!.role === 'leader');
  t.ok(second, `the majority side elected ${second}`);
  t.not(nodes.get(first!)!.role, 'leader', 'the isolated leader stepped down (check-quorum)');
  nodes.get(second!)!.propose(bytes('two'));
  drain(second!);
  hub.heal();
  runTicks(40);
  t.same(ids.map((id) => applied.get(id)), [['one', 'two'], ['one', 'two'], ['one', 'two']], 'after heal every node applied both');
  t.end();
});
