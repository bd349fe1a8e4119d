// Committed offsets over the JS API: commit and fetch, the checks on each partition, deletion
// with tombstones, expiry, lag, and durability — close and reopen over the same data dir.
import t from 'tap';
import { decodeBatches } from '../../../host/core/index.js';
import { GroupCoordinator, OFFSETS_TOPIC } from '../../../host/broker/groups/index.js';
import { silentLogger } from '../../../host/logging.js';
import { eventually } from '../../helpers/index.js';
import { codeOf, join, settle, setup, testGroupOptions, text, bytes } from './fixture.js';

t.test('commit then fetch: offsets, leader epoch and metadata come back; unknown partitions are -1', async (t) => {
  const { groups, broker } = await setup(t);
  await broker.createTopic('events', 3);
  const res = await groups.commitOffsets({
    groupId: 'solo',
    offsets: [
      { topic: 'events', partition: 0, offset: 10, leaderEpoch: 0, metadata: 'm0' },
      { topic: 'events', partition: 2, offset: 7 },
      { topic: 'events', partition: 3, offset: 1 },
      { topic: 'nope', partition: 0, offset: 1 },
      { topic: 'events', partition: 1, offset: 5, metadata: 'x'.repeat(4097) },
      { topic: 'events', partition: 1, offset: -5 },
    ],
  });
  t.same(
    res.map((r) => r.error?.code ?? null),
    [null, null, 'UNKNOWN_TOPIC_OR_PARTITION', 'UNKNOWN_TOPIC_OR_PARTITION', 'OFFSET_METADATA_TOO_LARGE', 'INVALID_REQUEST'],
  );
  const fetched = await groups.fetchOffsets({ groupId: 'solo', partitions: [0, 1, 2].map((partition) => ({ topic: 'events', partition })) });
  t.same(
    fetched.map((f) => [f.partition, f.offset, f.leaderEpoch, f.metadata]),
    [
      [0, 10, 0, 'm0'],
      [1, -1, -1, ''],
      [2, 7, -1, ''],
    ],
  );
  const all = await groups.fetchOffsets({ groupId: 'solo' });
  t.same(all.map((f) => `${f.topic}-${f.partition}@${f.offset}`).sort(), ['events-0@10', 'events-2@7'], 'null partitions = everything committed');
  t.same(await groups.fetchOffsets({ groupId: 'unknown', partitions: [{ topic: 'events', partition: 0 }] }).then((r) => r[0].offset), -1);
  t.equal(groups.describeGroups(['solo'])[0].state, 'Empty', 'a standalone commit creates an empty group');
  // Each commit is a record of __consumer_offsets, acknowledged after the append.
  const tp = { topic: OFFSETS_TOPIC, partition: groups.partitionFor('solo') };
  const info = broker.describeTopic(OFFSETS_TOPIC)!;
  t.equal(info.config['cleanup.policy'], 'compact');
  t.equal(info.config.flush, 'always');
  t.equal(broker.offsets(tp).highWatermark, 2, 'two offset records written');
});

t.test('member commits are fenced by generation, membership and rebalance state', async (t) => {
  const { groups, broker, clock } = await setup(t);
  await broker.createTopic('events', 1);
  const [m] = await settle(clock, [join(groups, 'g')]);
  const offsets = [{ topic: 'events', partition: 0, offset: 3 }];
  t.equal(await codeOf(groups.commitOffsets({ groupId: 'g', generationId: 1, memberId: m.memberId, offsets })), 'REBALANCE_IN_PROGRESS', 'not before the sync');
  await groups.syncGroup({ groupId: 'g', generationId: 1, memberId: m.memberId, assignments: [] });
  t.equal(await codeOf(groups.commitOffsets({ groupId: 'g', generationId: 0, memberId: m.memberId, offsets })), 'ILLEGAL_GENERATION');
  t.equal(await codeOf(groups.commitOffsets({ groupId: 'g', generationId: 1, memberId: 'ghost', offsets })), 'UNKNOWN_MEMBER_ID');
  t.equal(await codeOf(groups.commitOffsets({ groupId: 'g', offsets })), 'UNKNOWN_MEMBER_ID', 'no standalone commits into a live group');
  t.equal(await codeOf(groups.commitOffsets({ groupId: 'fresh', generationId: 3, memberId: 'x', offsets })), 'ILLEGAL_GENERATION', 'a generation for a group that does not exist');
  const ok = await groups.commitOffsets({ groupId: 'g', generationId: 1, memberId: m.memberId, offsets });
  t.equal(ok[0].error, null);
  t.equal(await codeOf(groups.commitOffsets({ groupId: '', offsets })), 'INVALID_GROUP_ID');
  const refused = await groups.commitOffsets({ groupId: 'typo', offsets: [{ topic: 'no-such-topic', partition: 0, offset: 1 }] });
  t.equal(refused[0].error?.code, 'UNKNOWN_TOPIC_OR_PARTITION');
  t.notOk(groups.listGroups().some((x) => x.groupId === 'typo'), 'a commit refused for every partition creates no group');
});

t.test('offsets and group metadata survive a restart; members resume without a rebalance', async (t) => {
  const fx = await setup(t);
  await fx.broker.createTopic('events', 2);
  const [m] = await settle(fx.clock, [join(fx.groups, 'g', { sessionTimeoutMs: 5000 })]);
  await fx.groups.syncGroup({ groupId: 'g', generationId: 1, memberId: m.memberId, assignments: [{ memberId: m.memberId, assignment: bytes('both') }] });
  for (let i = 1; i <= 5; i++) {
    await fx.groups.commitOffsets({ groupId: 'g', generationId: 1, memberId: m.memberId, offsets: [{ topic: 'events', partition: 0, offset: i * 10, metadata: `n${i}` }, { topic: 'events', partition: 1, offset: i }] });
  }
  await fx.groups.commitOffsets({ groupId: 'other', offsets: [{ topic: 'events', partition: 1, offset: 99 }] });
  await fx.reopen();
  const g = await fx.groups.fetchOffsets({ groupId: 'g' });
  t.same(g.map((o) => [o.partition, o.offset, o.metadata]).sort(), [
    [0, 50, 'n5'],
    [1, 5, ''],
  ], 'the last commit of each partition is back');
  t.same((await fx.groups.fetchOffsets({ groupId: 'other' })).map((o) => o.offset), [99]);
  const d = fx.groups.describeGroups(['g'])[0];
  t.equal(d.state, 'Stable');
  t.equal(d.generationId, 1);
  t.equal(text(d.members[0].assignment), 'both');
  await fx.groups.heartbeat({ groupId: 'g', generationId: 1, memberId: m.memberId });
  const s = await fx.groups.syncGroup({ groupId: 'g', generationId: 1, memberId: m.memberId, assignments: [] });
  t.equal(text(s.assignment), 'both', 'the member carries on with its assignment');
  // A member that does not come back expires, and the group empties.
  await fx.clock.advance(5000);
  t.equal(fx.groups.describeGroups(['g'])[0].state, 'Empty');
});

t.test('DeleteGroups: only empty groups, tombstones make it permanent', async (t) => {
  const fx = await setup(t);
  await fx.broker.createTopic('events', 1);
  const [m] = await settle(fx.clock, [join(fx.groups, 'busy')]);
  await fx.groups.commitOffsets({ groupId: 'idle', offsets: [{ topic: 'events', partition: 0, offset: 4 }] });
  const res = await fx.groups.deleteGroups(['idle', 'busy', 'missing', '']);
  t.same(res.map((r) => [r.groupId, r.error?.code ?? null]), [
    ['idle', null],
    ['busy', 'NON_EMPTY_GROUP'],
    ['missing', 'GROUP_ID_NOT_FOUND'],
    ['', 'INVALID_GROUP_ID'],
  ]);
  t.same(fx.groups.listGroups().map((g) => g.groupId), ['busy']);
  t.equal((await fx.groups.fetchOffsets({ groupId: 'idle', partitions: [{ topic: 'events', partition: 0 }] }))[0].offset, -1);
  // The tombstones are in the log: the record for the group's key has a null value.
  const tp = { topic: OFFSETS_TOPIC, partition: fx.groups.partitionFor('idle') };
  const read = await fx.broker.read(tp, 0, { maxBytes: 1 << 20 });
  const values = decodeBatches(read.records, { strictOffsets: false }).flatMap((b) => b.records.map((r) => r.value));
  t.ok(values.length >= 3 && values.slice(-2).every((v) => v === null), 'offset and group tombstones appended');
  await fx.groups.leaveGroup({ groupId: 'busy', members: [{ memberId: m.memberId }] });
  await fx.reopen();
  t.same(fx.groups.listGroups().map((g) => [g.groupId, g.state]), [['busy', 'Empty']], 'the deleted group stays deleted after a restart');
});

t.test('offsets of an empty group expire after offsetsRetentionMs, with tombstones', async (t) => {
  const fx = await setup(t, { offsetsRetentionMs: 10_000, offsetsRetentionCheckIntervalMs: 60_000 });
  await fx.broker.createTopic('events', 2);
  await fx.groups.commitOffsets({ groupId: 'standalone', offsets: [{ topic: 'events', partition: 0, offset: 1 }] });
  await fx.clock.advance(6000);
  await fx.groups.commitOffsets({ groupId: 'standalone', offsets: [{ topic: 'events', partition: 1, offset: 2 }] });
  const [m] = await settle(fx.clock, [join(fx.groups, 'consumers', { sessionTimeoutMs: 5000 })]);
  await fx.groups.syncGroup({ groupId: 'consumers', generationId: 1, memberId: m.memberId, assignments: [] });
  await fx.groups.commitOffsets({ groupId: 'consumers', generationId: 1, memberId: m.memberId, offsets: [{ topic: 'events', partition: 0, offset: 8 }] });
  await fx.groups.leaveGroup({ groupId: 'consumers', members: [{ memberId: m.memberId }] });
  await fx.clock.advance(5000); // standalone p0 is 11 s old; the consumer group has been empty 5 s
  await fx.groups.expireOffsets();
  t.same((await fx.groups.fetchOffsets({ groupId: 'standalone' })).map((o) => o.partition), [1], 'standalone offsets expire one by one');
  t.same((await fx.groups.fetchOffsets({ groupId: 'consumers' })).map((o) => o.offset), [8], 'a consumer group keeps all until empty for the retention');
  await fx.clock.advance(6000);
  const r = await fx.groups.expireOffsets();
  t.same(r, { offsets: 2, groups: 2 });
  t.same(fx.groups.listGroups(), [], 'groups left without offsets are removed');
  await fx.reopen();
  t.same(fx.groups.listGroups(), [], 'expiry is durable');
  // The periodic sweep does the same on its own.
  await fx.groups.commitOffsets({ groupId: 'later', offsets: [{ topic: 'events', partition: 0, offset: 1 }] });
  await fx.clock.advance(60_000);
  await eventually(() => fx.groups.listGroups().length === 0);
});

t.test('lag: high watermark minus committed offset', async (t) => {
  const { groups, broker } = await setup(t);
  await broker.createTopic('events', 2);
  await broker.produce('events', [1, 2, 3, 4, 5].map((i) => ({ key: null, value: bytes(`v${i}`) })), { acks: 1, partition: 0 });
  await broker.produce('events', [{ key: null, value: bytes('x') }], { acks: 1, partition: 1 });
  await groups.commitOffsets({ groupId: 'g', offsets: [{ topic: 'events', partition: 0, offset: 2 }, { topic: 'events', partition: 1, offset: 1 }] });
  const lag = groups.lag('g');
  t.same(lag.partitions.map((p) => [p.partition, p.committedOffset, p.highWatermark, p.lag]), [
    [0, 2, 5, 3],
    [1, 1, 1, 0],
  ]);
  t.equal(lag.totalLag, 3);
  t.equal(await codeOf(() => groups.lag('nope')), 'GROUP_ID_NOT_FOUND');
});

t.test('while loading __consumer_offsets every call gets COORDINATOR_LOAD_IN_PROGRESS', async (t) => {
  const fx = await setup(t);
  await fx.broker.createTopic('events', 1);
  for (let i = 0; i < 20; i++) await fx.groups.commitOffsets({ groupId: `g${i}`, offsets: [{ topic: 'events', partition: 0, offset: i }] });
  await fx.groups.close();
  const c = await GroupCoordinator.open(fx.broker, { ...testGroupOptions, loadInBackground: true }, { logger: silentLogger, metrics: fx.metrics, clock: fx.clock });
  t.teardown(() => c.close());
  t.equal(c.isLoading, true);
  t.equal(await codeOf(c.fetchOffsets({ groupId: 'g1' })), 'COORDINATOR_LOAD_IN_PROGRESS');
  t.equal(await codeOf(join(c, 'g1')), 'COORDINATOR_LOAD_IN_PROGRESS');
  await c.loaded;
  t.equal((await c.fetchOffsets({ groupId: 'g7' }))[0].offset, 7);
  t.equal(c.listGroups().length, 20);
});

t.test('metrics: groups by state, members, lag', async (t) => {
  const { groups, broker, metrics } = await setup(t);
  await broker.createTopic('events', 1);
  await broker.produce('events', [{ key: null, value: bytes('a') }, { key: null, value: bytes('b') }], { acks: 1 });
  await groups.commitOffsets({ groupId: 'g', offsets: [{ topic: 'events', partition: 0, offset: 0 }] });
  const text = metrics.render();
  t.match(text, /tributary_groups\{state="Empty"\} 1/);
  t.match(text, /tributary_consumer_group_lag\{group="g"\} 2/);
  t.match(text, /tributary_group_offset_commits_total 1/);
});

t.test('maxCommittedOffsets bounds offsets over all groups; updates and deletions are always possible', async (t) => {
  const fx = await setup(t, { maxCommittedOffsets: 3 });
  await fx.broker.createTopic('events', 4);
  const first = await fx.groups.commitOffsets({ groupId: 'a', offsets: [0, 1].map((partition) => ({ topic: 'events', partition, offset: 1 })) });
  t.same(first.map((r) => r.error), [null, null]);
  const second = await fx.groups.commitOffsets({ groupId: 'b', offsets: [0, 1].map((partition) => ({ topic: 'events', partition, offset: 1 })) });
  t.same(second.map((r) => r.error?.code ?? null), [null, 'THROTTLING_QUOTA_EXCEEDED'], 'the fourth offset is refused');
  const update = await fx.groups.commitOffsets({ groupId: 'a', offsets: [{ topic: 'events', partition: 1, offset: 9 }] });
  t.equal(update[0].error, null, 'updating a held offset is always allowed');
  await fx.groups.deleteGroups(['a']);
  const after = await fx.groups.commitOffsets({ groupId: 'b', offsets: [{ topic: 'events', partition: 1, offset: 1 }] });
  t.equal(after[0].error, null, 'deleting a group frees its offsets');
  await fx.reopen();
  const reloaded = await fx.groups.commitOffsets({ groupId: 'c', offsets: [0, 1, 2].map((partition) => ({ topic: 'events', partition, offset: 1 })) });
  t.same(reloaded.map((r) => r.error?.code ?? null), [null, 'THROTTLING_QUOTA_EXCEEDED', 'THROTTLING_QUOTA_EXCEEDED'], 'the count is restored by the replay');
});
