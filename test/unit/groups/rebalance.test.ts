// Group coordinator state machine over the JS API with a manual clock: joins, leader election,
// generations, session and rebalance timeouts, leaving, static membership, and every limit.
import t from 'tap';
import type { GroupCoordinator, JoinGroupResult } from '../../../host/broker/groups/index.js';
import { bytes, codeOf, join, JoinGroupError, settle, setup, text, type JoinSpec, type ManualClock } from './fixture.js';

/** Joins `specs.length` members at once, passes the initial delay, and syncs (leader assigns "a-<index>"). */
async function formStable(groups: GroupCoordinator, clock: ManualClock, groupId: string, specs: JoinSpec[]): Promise<JoinGroupResult[]> {
  const results = await settle(clock, specs.map((s) => join(groups, groupId, s)));
  const leader = results.find((r) => r.leader === r.memberId)!;
  const assignments = leader.members.map((m) => ({ memberId: m.memberId, assignment: bytes(`a-${results.findIndex((r) => r.memberId === m.memberId)}`) }));
  await Promise.all(
    results.map((r) => groups.syncGroup({ groupId, generationId: r.generationId, memberId: r.memberId, assignments: r === leader ? assignments : [] })),
  );
  return results;
}

t.test('a lone member waits for the initial delay, leads generation 1, and its sync makes the group stable', async (t) => {
  const { groups, clock } = await setup(t);
  const p = join(groups, 'g');
  let settled = false;
  void p.then(() => (settled = true));
  await clock.advance(49);
  t.equal(settled, false, 'held for group.initial.rebalance.delay');
  t.equal(groups.describeGroups(['g'])[0].state, 'PreparingRebalance');
  await clock.advance(1);
  const r = await p;
  t.equal(r.generationId, 1);
  t.equal(r.leader, r.memberId, 'the only member leads');
  t.equal(r.protocolName, 'range');
  t.same(r.members.map((m) => text(m.metadata)), ['sub-a'], 'the leader gets the member list with metadata');
  t.equal(groups.describeGroups(['g'])[0].state, 'CompletingRebalance');
  const s = await groups.syncGroup({ groupId: 'g', generationId: 1, memberId: r.memberId, assignments: [{ memberId: r.memberId, assignment: bytes('all') }] });
  t.equal(text(s.assignment), 'all');
  const d = groups.describeGroups(['g'])[0];
  t.equal(d.state, 'Stable');
  t.equal(d.protocolName, 'range');
  t.equal(text(d.members[0].assignment), 'all');
  await groups.heartbeat({ groupId: 'g', generationId: 1, memberId: r.memberId });
  t.same(groups.listGroups(), [{ groupId: 'g', protocolType: 'consumer', state: 'Stable' }]);
  t.same(groups.listGroups({ states: ['empty'] }), [], 'states filter is case-insensitive');
});

t.test('JoinGroup v4 semantics: a new dynamic member first gets MEMBER_ID_REQUIRED with its id', async (t) => {
  const { groups, clock } = await setup(t, { groupMaxSize: 2 });
  const first = await groups
    .joinGroup({ groupId: 'g', memberId: '', sessionTimeoutMs: 1000, protocolType: 'consumer', protocols: [{ name: 'range', metadata: bytes('x') }], requireKnownMemberId: true, clientId: 'c1' })
    .catch((e) => e);
  t.ok(first instanceof JoinGroupError);
  t.equal(first.code, 'MEMBER_ID_REQUIRED');
  t.match(first.memberId, /^c1-/);
  // A second pending member that never comes back counts towards the size limit until its session ends.
  const ghost = await groups
    .joinGroup({ groupId: 'g', memberId: '', sessionTimeoutMs: 1000, protocolType: 'consumer', protocols: [{ name: 'range', metadata: bytes('x') }], requireKnownMemberId: true })
    .catch((e) => e);
  t.equal(ghost.code, 'MEMBER_ID_REQUIRED');
  t.equal(await codeOf(join(groups, 'g')), 'GROUP_MAX_SIZE_REACHED', 'pending members count towards groupMaxSize');
  const p = join(groups, 'g', { memberId: first.memberId });
  await clock.advance(50);
  await clock.advance(1000); // the ghost's pending id expires; the join then completes
  const r = await p;
  t.equal(r.memberId, first.memberId);
  t.equal(r.generationId, 1);
  t.equal(r.members.length, 1, 'the ghost never became a member');
});

t.test('a second member triggers a rebalance: the first rejoins, generation 2, the leader stays', async (t) => {
  const { groups, clock } = await setup(t);
  const [m1] = await formStable(groups, clock, 'g', [{}]);
  const p2 = join(groups, 'g', { protocols: [['range', 'sub-b']] });
  t.equal(groups.describeGroups(['g'])[0].state, 'PreparingRebalance');
  t.equal(await codeOf(groups.heartbeat({ groupId: 'g', generationId: 1, memberId: m1.memberId })), 'REBALANCE_IN_PROGRESS');
  const r1 = await join(groups, 'g', { memberId: m1.memberId });
  const r2 = await p2;
  t.equal(r1.generationId, 2);
  t.equal(r2.generationId, 2);
  t.equal(r1.leader, m1.memberId, 'the existing leader keeps leading');
  t.equal(r2.leader, m1.memberId);
  t.same(r1.members.map((m) => text(m.metadata)).sort(), ['sub-a', 'sub-b']);
  t.same(r2.members, [], 'followers get no member list');
  t.equal(await codeOf(groups.syncGroup({ groupId: 'g', generationId: 1, memberId: r2.memberId, assignments: [] })), 'ILLEGAL_GENERATION');
  const follower = groups.syncGroup({ groupId: 'g', generationId: 2, memberId: r2.memberId, assignments: [] });
  const leader = await groups.syncGroup({
    groupId: 'g',
    generationId: 2,
    memberId: r1.memberId,
    assignments: [
      { memberId: r1.memberId, assignment: bytes('p0') },
      { memberId: r2.memberId, assignment: bytes('p1') },
    ],
  });
  t.equal(text(leader.assignment), 'p0');
  t.equal(text((await follower).assignment), 'p1', 'the follower waited for the leader and got its share');
});

t.test('a member that stops heartbeating is expired after its session timeout', async (t) => {
  const { groups, clock, metrics } = await setup(t);
  const [m1, m2] = await formStable(groups, clock, 'g', [{}, {}]);
  await clock.advance(600);
  await groups.heartbeat({ groupId: 'g', generationId: 1, memberId: m2.memberId });
  await clock.advance(600); // m1: 1200 ms without a heartbeat > 1000
  const d = groups.describeGroups(['g'])[0];
  t.equal(d.state, 'PreparingRebalance');
  t.same(d.members.map((m) => m.memberId), [m2.memberId]);
  t.equal(await codeOf(groups.heartbeat({ groupId: 'g', generationId: 1, memberId: m1.memberId })), 'UNKNOWN_MEMBER_ID');
  t.equal(await codeOf(groups.heartbeat({ groupId: 'g', generationId: 1, memberId: m2.memberId })), 'REBALANCE_IN_PROGRESS');
  const r = await join(groups, 'g', { memberId: m2.memberId });
  t.equal(r.generationId, 2);
  t.equal(r.leader, m2.memberId, 'a new leader is elected when the leader leaves');
  t.equal(metrics.get('tributary_group_member_expirations_total')!.value(), 1);
});

t.test('a member that does not rejoin within the rebalance timeout is removed', async (t) => {
  const { groups, clock } = await setup(t);
  const [m1, m2] = await formStable(groups, clock, 'g', [{ sessionTimeoutMs: 5000 }, { sessionTimeoutMs: 5000 }]);
  const p3 = join(groups, 'g', { sessionTimeoutMs: 5000 });
  const p1 = join(groups, 'g', { memberId: m1.memberId, sessionTimeoutMs: 5000 });
  let done = false;
  void p1.then(() => (done = true));
  await clock.advance(1999);
  t.equal(done, false, 'still waiting for m2');
  await clock.advance(1);
  const [r1, r3] = await Promise.all([p1, p3]);
  t.equal(r1.generationId, 2);
  t.equal(r3.generationId, 2);
  const ids = groups.describeGroups(['g'])[0].members.map((m) => m.memberId);
  t.notOk(ids.includes(m2.memberId), 'm2 was removed');
  t.equal(ids.length, 2);
});

t.test('a member that never syncs is removed after the rebalance timeout and the group rebalances', async (t) => {
  const { groups, clock } = await setup(t);
  const [a, b] = await settle(clock, [join(groups, 'g', { sessionTimeoutMs: 5000 }), join(groups, 'g', { sessionTimeoutMs: 5000 })]);
  const follower = a.leader === a.memberId ? b : a;
  const sync = codeOf(groups.syncGroup({ groupId: 'g', generationId: 1, memberId: follower.memberId, assignments: [] }));
  await clock.advance(2000);
  t.equal(await sync, 'REBALANCE_IN_PROGRESS', 'the waiting follower is told to rejoin');
  t.same(groups.describeGroups(['g'])[0].members.map((m) => m.memberId), [follower.memberId], 'the silent leader is gone');
});

t.test('LeaveGroup removes one member or a batch; the group empties with a generation bump', async (t) => {
  const { groups, clock } = await setup(t);
  const [m1, m2, m3] = await formStable(groups, clock, 'g', [{}, {}, {}]);
  const leaderId = m1.leader;
  const [res] = await groups.leaveGroup({ groupId: 'g', members: [{ memberId: leaderId }] });
  t.equal(res.error, null);
  const rest = [m1, m2, m3].filter((m) => m.memberId !== leaderId);
  const rejoined = await Promise.all(rest.map((m) => join(groups, 'g', { memberId: m.memberId })));
  t.equal(rejoined[0].generationId, 2);
  t.ok(rest.some((m) => m.memberId === rejoined[0].leader), 'the new leader is a remaining member');
  const batch = await groups.leaveGroup({ groupId: 'g', members: [...rest.map((m) => ({ memberId: m.memberId })), { memberId: 'nobody' }] });
  t.same(batch.map((b) => b.error?.code ?? null), [null, null, 'UNKNOWN_MEMBER_ID']);
  const d = groups.describeGroups(['g'])[0];
  t.equal(d.state, 'Empty');
  t.equal(d.generationId, 3);
  const unknownGroup = await groups.leaveGroup({ groupId: 'nope', members: [{ memberId: 'x' }] });
  t.equal(unknownGroup[0].error?.code, 'UNKNOWN_MEMBER_ID');
});

t.test('static member: rejoining with the same instance id and metadata replaces it without a rebalance', async (t) => {
  const { groups, clock } = await setup(t);
  const [leader, follower] = await formStable(groups, clock, 'g', [{ instance: 'i-1' }, { instance: 'i-2', protocols: [['range', 'sub-b']] }]);
  t.equal(leader.leader, leader.memberId);
  const again = await join(groups, 'g', { instance: 'i-2', protocols: [['range', 'sub-b']] });
  t.not(again.memberId, follower.memberId, 'a new member id');
  t.equal(again.generationId, 1, 'same generation: no rebalance');
  t.equal(groups.describeGroups(['g'])[0].state, 'Stable');
  t.equal(await codeOf(groups.heartbeat({ groupId: 'g', generationId: 1, memberId: follower.memberId, groupInstanceId: 'i-2' })), 'FENCED_INSTANCE_ID', 'the old incarnation is fenced');
  const s = await groups.syncGroup({ groupId: 'g', generationId: 1, memberId: again.memberId, groupInstanceId: 'i-2', assignments: [] });
  t.equal(text(s.assignment), 'a-1', 'the assignment carries over');
  // The static leader rejoining (or changed metadata) does rebalance.
  const p = join(groups, 'g', { instance: 'i-1' });
  t.equal(groups.describeGroups(['g'])[0].state, 'PreparingRebalance');
  const p2 = join(groups, 'g', { memberId: again.memberId, instance: 'i-2', protocols: [['range', 'sub-b']] });
  const [r1, r2] = await Promise.all([p, p2]);
  t.equal(r1.generationId, 2);
  t.equal(r1.leader, r1.memberId, 'the replaced leader keeps leading under its new id');
  t.equal(r2.memberId, again.memberId);
  // LeaveGroup by instance id alone (as the admin API does).
  const left = await groups.leaveGroup({ groupId: 'g', members: [{ memberId: '', groupInstanceId: 'i-2' }, { memberId: 'wrong', groupInstanceId: 'i-1' }] });
  t.same(left.map((l) => l.error?.code ?? null), [null, 'FENCED_INSTANCE_ID']);
});

t.test('protocol selection: the common protocol the members prefer', async (t) => {
  const { groups, clock } = await setup(t);
  const joins = [
    join(groups, 'g', { protocols: [['range', 'r'], ['roundrobin', 'rr']] }),
    join(groups, 'g', { protocols: [['cooperative-sticky', 'c'], ['roundrobin', 'rr2']] }),
  ];
  const [a, b] = await settle(clock, joins);
  t.equal(a.protocolName, 'roundrobin');
  const leader = a.leader === a.memberId ? a : b;
  t.same(leader.members.map((m) => text(m.metadata)).sort(), ['rr', 'rr2'], 'metadata of the chosen protocol');
  t.equal(await codeOf(join(groups, 'g', { protocols: [['range', 'r']] })), 'INCONSISTENT_GROUP_PROTOCOL', 'no protocol in common');
  t.equal(await codeOf(join(groups, 'g', { protocolType: 'connect', protocols: [['roundrobin', 'x']] })), 'INCONSISTENT_GROUP_PROTOCOL', 'another protocol type');
  t.equal(await codeOf(join(groups, 'new', { protocols: [] })), 'INCONSISTENT_GROUP_PROTOCOL', 'a first member must offer a protocol');
  t.equal(await codeOf(join(groups, 'new2', { protocolType: '' })), 'INCONSISTENT_GROUP_PROTOCOL', 'and a protocol type');
  t.same(groups.listGroups().map((g) => g.groupId), ['g'], 'refused first joins leave no group behind');
});

t.test('limits and bad input get specific errors at the boundary', async (t) => {
  const { groups, clock } = await setup(t, { groupMaxSize: 2, maxGroups: 2, memberMetadataMaxBytes: 20, memberAssignmentMaxBytes: 8, maxSessionTimeoutMs: 5000 });
  t.equal(await codeOf(join(groups, 'g', { sessionTimeoutMs: 99 })), 'INVALID_SESSION_TIMEOUT', 'below min');
  t.equal(await codeOf(join(groups, 'g', { sessionTimeoutMs: 5001 })), 'INVALID_SESSION_TIMEOUT', 'above max');
  t.equal(await codeOf(join(groups, '')), 'INVALID_GROUP_ID');
  t.equal(await codeOf(join(groups, 'x'.repeat(256))), 'INVALID_GROUP_ID', 'longer than groupIdMaxBytes');
  t.equal(await codeOf(join(groups, 'g', { protocols: [['range', 'x'.repeat(16)]] })), 'INVALID_REQUEST', 'metadata 21 bytes > 20');
  const ok = [join(groups, 'g', { protocols: [['range', 'x'.repeat(15)]] }), join(groups, 'g')];
  t.equal(await codeOf(join(groups, 'g')), 'GROUP_MAX_SIZE_REACHED', 'third member of a 2-member group');
  const [a, b] = await settle(clock, ok);
  const leader = a.leader === a.memberId ? a : b;
  const second = join(groups, 'g2'); // the second group: within maxGroups
  second.catch(() => undefined);
  t.equal(
    await codeOf(groups.syncGroup({ groupId: 'g', generationId: 1, memberId: leader.memberId, assignments: [{ memberId: leader.memberId, assignment: bytes('123456789') }] })),
    'INVALID_REQUEST',
    'assignment 9 bytes > 8',
  );
  t.equal(groups.describeGroups(['g'])[0].state, 'PreparingRebalance', 'an oversized assignment restarts the rebalance');
  t.equal(await codeOf(groups.heartbeat({ groupId: 'g', generationId: 7, memberId: a.memberId })), 'ILLEGAL_GENERATION');
  t.equal(await codeOf(groups.heartbeat({ groupId: 'g', generationId: 1, memberId: 'nobody' })), 'UNKNOWN_MEMBER_ID');
  t.equal(await codeOf(groups.heartbeat({ groupId: 'none', generationId: 1, memberId: 'nobody' })), 'UNKNOWN_MEMBER_ID');
  t.equal(await codeOf(groups.syncGroup({ groupId: 'none', generationId: 1, memberId: 'x', assignments: [] })), 'UNKNOWN_MEMBER_ID');
  t.equal(await codeOf(join(groups, 'g', { memberId: 'made-up' })), 'UNKNOWN_MEMBER_ID');
  t.equal(await codeOf(join(groups, 'g3')), 'THROTTLING_QUOTA_EXCEEDED', 'a third group beyond maxGroups');
  t.equal(await codeOf(groups.commitOffsets({ groupId: 'g4', offsets: [] })), 'THROTTLING_QUOTA_EXCEEDED', 'commits cannot create groups past the limit either');
});

t.test('a follower waiting for a slow leader is not expired by its session timeout', async (t) => {
  const { groups, clock } = await setup(t);
  // The first joiner leads; its session outlives the test, the follower's is short.
  const [leader, follower] = await settle(clock, [join(groups, 'g', { sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 3000 }), join(groups, 'g', { sessionTimeoutMs: 1100, rebalanceTimeoutMs: 3000 })]);
  t.equal(leader.leader, leader.memberId);
  const sync = codeOf(groups.syncGroup({ groupId: 'g', generationId: 1, memberId: follower.memberId, assignments: [] }));
  await clock.advance(1500);
  t.ok(groups.describeGroups(['g'])[0].members.some((m) => m.memberId === follower.memberId), 'still a member past its session timeout');
  await clock.advance(1500);
  t.equal(await sync, 'REBALANCE_IN_PROGRESS', 'the sync timeout removes the silent leader instead');
  t.same(groups.describeGroups(['g'])[0].members.map((m) => m.memberId), [follower.memberId]);
});
