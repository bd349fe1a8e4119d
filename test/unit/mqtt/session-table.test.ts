// A cluster's session view (gateway/mqtt/session-table.ts): records folded in log order, the
// owner before a takeover kept, a release waited for by offset and node, records that do not
// decode refused. Pure logic; the handover over real processes is cluster-mqtt-sessions.test.ts.
import t from 'tap';
import { SessionTable, positionsOf } from '../../../gateway/mqtt/session-table.js';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const subsOf = (v: Uint8Array) => JSON.parse(Buffer.from(v).toString()) as Array<{ topic: string; qos: number }>;

t.test('records fold in: subscriptions, expiry, owner (with the one before), positions; tombstones remove', { timeout: 5_000 }, async (t) => {
  const table = new SessionTable();
  t.equal(table.apply('o', 'truck', json({ node: 1 }), 0, subsOf)?.node, 1, 'an owner record is returned to the caller');
  table.apply('s', 'truck', json([{ topic: 'fleet/#', qos: 1 }]), 1, subsOf);
  table.apply('e', 'truck', Buffer.from('1700000000000'), 2, subsOf);
  table.apply('p', 'truck', json({ node: 1, positions: { fleet: { 0: 7 } } }), 3, subsOf);
  table.apply('o', 'truck', json({ node: 2, clean: false }), 4, subsOf);
  const e = table.get('truck')!;
  t.same([e.owner, e.previous], [{ node: 2, clean: false, offset: 4 }, { node: 1, clean: false, offset: 0 }], 'the owner and the one it took over from');
  t.same(e.subs, [{ topic: 'fleet/#', qos: 1 }]);
  t.equal(e.expiry, 1700000000000);
  t.same(e.positions, { node: 1, released: false, positions: { fleet: { 0: 7 } }, offset: 3 });
  t.same(table.ownedBy(2), ['truck']);
  t.same(table.ownedBy(1), []);
  for (const [k, o] of [['s', 5], ['e', 6], ['p', 7], ['o', 8]] as const) table.apply(k, 'truck', null, o, subsOf);
  t.same(table.get('truck')?.owner, undefined, 'the owner tombstoned');
});

t.test('a record that does not decode is refused with what is wrong', { timeout: 5_000 }, async (t) => {
  const table = new SessionTable();
  t.throws(() => table.apply('o', 'x', Buffer.from('{'), 0, subsOf), /owner/);
  t.throws(() => table.apply('o', 'x', json({ node: 0 }), 0, subsOf), /not a node id/);
  t.throws(() => table.apply('p', 'x', json({ node: 1, positions: { fleet: { 0: -1 } } }), 0, subsOf), /positions/);
  t.throws(() => table.apply('e', 'x', Buffer.from('soon'), 0, subsOf), /not a time/);
  t.throws(() => table.apply('q', 'x', json({}), 0, subsOf), /not s, e, o or p/);
  t.throws(() => positionsOf([]), /not a JSON object/);
  t.same(positionsOf({ a: { 0: 0, 3: 12 } }), { a: { 0: 0, 3: 12 } });
});

t.test('a takeover waits for the old owner\'s release after its own record, or gives up after the bound', { timeout: 5_000 }, async (t) => {
  const table = new SessionTable();
  table.apply('o', 'truck', json({ node: 1 }), 0, subsOf);
  table.apply('o', 'truck', json({ node: 2 }), 10, subsOf);
  const waiting = table.waitRelease('truck', 1, 10, 2_000);
  table.apply('p', 'truck', json({ node: 1, released: true, positions: {} }), 9, subsOf); // before the takeover: not its release
  table.apply('p', 'truck', json({ node: 3, released: true, positions: {} }), 11, subsOf); // another node's
  table.apply('p', 'truck', json({ node: 1, released: false, positions: {} }), 12, subsOf); // a checkpoint, not a release
  let settled = false;
  void waiting.then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(settled, 'still waiting: none of those is node 1\'s release after offset 10');
  table.apply('p', 'truck', json({ node: 1, released: true, positions: { fleet: { 0: 4 } } }), 13, subsOf);
  t.equal(await waiting, true, 'released');
  t.equal(await table.waitRelease('truck', 1, 10, 10), true, 'a release already applied answers at once');
  const started = Date.now();
  t.equal(await table.waitRelease('truck', 1, 20, 100), false, 'no release after offset 20: gives up');
  t.ok(Date.now() - started >= 90, 'after about the bound');
});

t.test('waitApplied: resolves once the follower folded the record in, false after the bound', { timeout: 5_000 }, async (t) => {
  const table = new SessionTable();
  const w = table.waitApplied(5, 2_000);
  table.applied(4);
  let settled = false;
  void w.then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(settled, 'offset 4 applied: still waiting for 5');
  table.applied(5);
  t.equal(await w, true);
  t.equal(await table.waitApplied(3, 10), true, 'already applied');
  t.equal(await table.waitApplied(9, 50), false, 'never applied: false after the bound');
});
