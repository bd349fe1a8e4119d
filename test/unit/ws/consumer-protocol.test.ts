// Purpose: the consumer-protocol codecs and the round-robin assignor used by WebSocket group members interoperate with Kafka's layout.
import t from 'tap';
import { assignRoundRobin, decodeAssignment, decodeSubscriptionTopics, encodeAssignment, encodeSubscription } from '../../../gateway/ws/group-session.js';

t.test('consumer protocol: subscription v0 layout round-trips', async (t) => {
  const bytes = encodeSubscription(['a', 'bé']);
  t.same([...bytes.subarray(0, 6)], [0, 0, 0, 0, 0, 2], 'version 0, two topics');
  t.same(decodeSubscriptionTopics(bytes), ['a', 'bé']);
  // v1 (with ownedPartitions after userData) is read up to the topics.
  const v1 = Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 1, 0, 1, 0x78]), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.from([0, 0, 0, 0])]);
  t.same(decodeSubscriptionTopics(v1), ['x']);
});

t.test('consumer protocol: assignment round-trips, empty bytes = nothing assigned, truncation refused', async (t) => {
  const m = new Map([['t', [0, 2]], ['u', [1]]]);
  t.same(decodeAssignment(encodeAssignment(m)), m);
  t.same(decodeAssignment(new Uint8Array(0)).size, 0);
  t.throws(() => decodeAssignment(encodeAssignment(m).subarray(0, 9)), { code: 'INCONSISTENT_GROUP_PROTOCOL' });
});

t.test('round robin: every partition assigned once, spread evenly, only to subscribers', async (t) => {
  const plan = assignRoundRobin(
    [
      { memberId: 'b', topics: ['t'] },
      { memberId: 'a', topics: ['t', 'u'] },
      { memberId: 'c', topics: ['u'] },
    ],
    (topic) => (topic === 't' ? 4 : 2),
  );
  const seen: string[] = [];
  for (const [member, map] of plan) {
    for (const [topic, ps] of map) {
      for (const p of ps) seen.push(`${topic}-${p}`);
      if (topic === 't') t.not(member, 'c', 'c is not subscribed to t');
      if (topic === 'u') t.not(member, 'b', 'b is not subscribed to u');
    }
  }
  t.same(seen.sort(), ['t-0', 't-1', 't-2', 't-3', 'u-0', 'u-1']);
  t.equal(plan.get('a')!.get('t')!.length, 2);
  t.equal(plan.get('b')!.get('t')!.length, 2);
});
