// A cluster's coordinator serves only the groups of the `__consumer_offsets` partitions this node
// leads: NOT_COORDINATOR for the others, FindCoordinator's answer is each partition's leader, a
// parked JoinGroup is answered NOT_COORDINATOR when the leadership goes, and on becoming leader
// again (a new epoch) the partition is replayed, so a commit another leader made meanwhile is
// what this node serves. Leadership is scripted over a real broker's partition state (the
// process-level failover is test/integration/cluster-groups.test.ts).
import t from 'tap';
import { GroupCoordinator, OFFSETS_TOPIC } from '../../../host/broker/groups/index.js';
import { partitionForGroup } from '../../../host/broker/groups/records.js';
import type { BrokerApi, PartitionState, TopicPartition } from '../../../host/broker/api.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { eventually } from '../../helpers/index.js';
import { codeOf, join, setup, testGroupOptions } from './fixture.js';

const SELF = 1;
const OTHER = 2;

t.test('ownership: only the leader of a group partition coordinates it; leadership lost and regained replays it', async (t) => {
  const { groups: writer, broker } = await setup(t);
  await broker.createTopic('events', 1);
  const partitions = testGroupOptions.offsetsTopicPartitions!;
  // Two groups in different partitions of __consumer_offsets.
  const names = Array.from({ length: 50 }, (_, i) => `g${i}`);
  const mine = names[0]!;
  const theirs = names.find((g) => partitionForGroup(g, partitions) !== partitionForGroup(mine, partitions))!;
  const minePartition = partitionForGroup(mine, partitions);
  // The other coordinator (same data) writes first: the topic exists and `mine` has offset 5.
  await writer.commitOffsets({ groupId: mine, offsets: [{ topic: 'events', partition: 0, offset: 5 }] });

  const led = new Set<number>([minePartition]);
  let epoch = 0;
  let fire: () => void = () => undefined;
  const scripted = new Proxy(broker as unknown as BrokerApi, {
    get(target, prop) {
      if (prop === 'partitionState') {
        return (tp: TopicPartition): PartitionState => {
          const s = target.partitionState(tp);
          if (tp.topic !== OFFSETS_TOPIC) return s;
          const leads = led.has(tp.partition);
          return { ...s, role: leads ? 'leader' : 'follower', leaderId: leads ? SELF : OTHER, leaderEpoch: epoch };
        };
      }
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const groups = await GroupCoordinator.open(scripted, testGroupOptions, {
    logger: silentLogger,
    metrics: new MetricsRegistry(),
    leadership: (onChange) => ((fire = onChange), () => (fire = () => undefined)),
  });
  t.teardown(() => groups.close());

  await eventually(async () => (await codeOf(groups.fetchOffsets({ groupId: mine }))) === 'resolved', 5000);
  t.same((await groups.fetchOffsets({ groupId: mine })).map((o) => o.offset), [5], 'the led partition was replayed at open');
  t.equal(groups.coordinatorFor(mine, SELF), SELF, 'FindCoordinator: this node for a group of a partition it leads');
  t.equal(groups.coordinatorFor(theirs, SELF), OTHER, 'FindCoordinator: the leader of the other partition');
  t.equal(await codeOf(groups.commitOffsets({ groupId: theirs, offsets: [{ topic: 'events', partition: 0, offset: 1 }] })), 'NOT_COORDINATOR', 'a group of a partition led elsewhere: NOT_COORDINATOR');
  t.same(groups.describeGroups([theirs]).map((d) => d.error?.code), ['NOT_COORDINATOR'], 'DescribeGroups per group too');

  // A member joins (parked for the initial rebalance delay); the leadership goes meanwhile.
  const parked = join(groups, mine);
  led.clear();
  fire();
  t.equal(await codeOf(parked), 'NOT_COORDINATOR', 'the parked JoinGroup is answered NOT_COORDINATOR when leadership goes');
  t.equal(await codeOf(groups.fetchOffsets({ groupId: mine })), 'NOT_COORDINATOR', 'the group is no longer served here');
  t.equal(groups.listGroups().length, 0, 'and no longer listed here');

  // Another leader commits meanwhile; this node leads again in a new epoch and replays.
  await writer.commitOffsets({ groupId: mine, offsets: [{ topic: 'events', partition: 0, offset: 9 }] });
  led.add(minePartition);
  epoch = 1;
  fire();
  await eventually(async () => (await codeOf(groups.fetchOffsets({ groupId: mine }))) === 'resolved', 5000);
  t.same((await groups.fetchOffsets({ groupId: mine })).map((o) => o.offset), [9], 'the new leader serves what the other leader committed (replayed on becoming leader)');
  const res = await groups.commitOffsets({ groupId: mine, offsets: [{ topic: 'events', partition: 0, offset: 11 }] });
  t.same(res.map((r) => r.error), [null], 'and takes commits again');
});
