// Purpose: the fenced partition's re-check (host/sync/fence.ts) at its boundaries: blocked until
// uplink.fencedRecheckMs has passed (to the millisecond), kept blocked while the committed
// checkpoint moves, released when it did not, and never released with 0.
import t from 'tap';
import { FenceRecheck } from '../../../host/sync/fence.js';

t.test('a fence is looked at again exactly fencedRecheckMs after it, and after each look that found the newer producer forwarding', { timeout: 5000 }, async (t) => {
  const f = new FenceRecheck(1000);
  t.same(f.due(0), { kind: 'check' }, 'not fenced: nothing to wait for');
  f.fencedAt(10_000, 500, 'fenced by a newer producer');
  t.ok(f.fenced);
  t.same(f.due(10_999), { kind: 'wait', leftMs: 1 }, '1 ms before the re-check: still waiting');
  t.same(f.due(11_000), { kind: 'check' }, 'at fencedRecheckMs: looked at');
  t.equal(f.decide(520, 11_000), 'newer-producer-forwarding', 'the committed checkpoint moved 500 → 520: the newer producer forwards');
  t.ok(f.fenced, 'still fenced');
  t.same(f.due(11_500), { kind: 'wait', leftMs: 500 }, 'the wait starts again from that look');
  t.equal(f.decide(520, 12_000), 'reinitialise', 'unchanged since the last look: nobody forwards, re-initialise');
  t.notOk(f.fenced, 'the fence is cleared');
});

t.test('a checkpoint unreadable at the fence (-1) counts as moved once one is found: conservative', { timeout: 5000 }, async (t) => {
  const f = new FenceRecheck(10);
  f.fencedAt(0, -1, 'x');
  t.equal(f.decide(-1, 10), 'reinitialise', 'none then, none now: nobody forwards');
  f.fencedAt(20, -1, 'x');
  t.equal(f.decide(0, 30), 'newer-producer-forwarding', 'none then, one now: someone committed');
});

t.test('uplink.fencedRecheckMs=0: blocked until the node restarts', { timeout: 5000 }, async (t) => {
  const f = new FenceRecheck(0);
  f.fencedAt(0, 5, 'x');
  t.same(f.due(Number.MAX_SAFE_INTEGER), { kind: 'never' });
});
