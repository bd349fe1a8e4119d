// Purpose: WebSocket subscriptions with a consumer group share a topic's partitions among sockets, rebalance when members come and go, commit delivered offsets, and resume from the committed offset after reconnecting — through the same coordinator Kafka clients use.
import t from 'tap';
import { Client, openGateway, type Frame } from '../unit/ws/harness.js';
import { eventually, sleep } from '../helpers/index.js';

const assigned = (c: Client): number[] => {
  const frames = c.frames.filter((f) => (f.type === 'subscribed' || f.type === 'assignment') && f.group);
  const last = frames[frames.length - 1];
  return last ? last.partitions.map((p: Frame) => p.partition) : [];
};

t.test('ws groups: two sockets in one group split the partitions; one leaving gives all to the other', async (t) => {
  const g = await openGateway(t, { groupSessionTimeoutMs: 6_000, groupRebalanceTimeoutMs: 6_000 }, { groups: true });
  await g.broker.createTopic('gt', 4);
  const a = await Client.open(t, g.wsUrl);
  const subA = await a.request({ type: 'subscribe', topic: 'gt', group: 'dash', start: 'earliest' }, 20_000);
  t.equal(subA.type, 'subscribed');
  t.same(assigned(a), [0, 1, 2, 3], 'alone, the first member gets every partition');
  const b = await Client.open(t, g.wsUrl, 'cbor');
  // b's join starts a rebalance; a learns of it on its next heartbeat and rejoins.
  const subB = await b.request({ type: 'subscribe', topic: 'gt', group: 'dash', start: 'earliest' }, 20_000);
  t.equal(subB.type, 'subscribed');
  await eventually(() => assigned(a).length === 2 && assigned(b).length === 2, 20_000);
  t.same([...assigned(a), ...assigned(b)].sort(), [0, 1, 2, 3], 'each partition to exactly one member');
  t.ok(a.frames.some((f) => f.type === 'assignment'), 'a got an assignment frame for the new generation');

  // Records produced now go to whichever member owns the partition, once.
  for (let p = 0; p < 4; p++) await g.broker.produce('gt', [{ key: null, value: Buffer.from(`p${p}`) }], { acks: -1, partition: p });
  await eventually(() => a.records().length + b.records().length >= 4, 10_000);
  await sleep(200);
  const got = [...a.records(), ...b.records()].map((r) => String(r.value instanceof Uint8Array ? Buffer.from(r.value) : r.value)).sort();
  t.same(got, ['p0', 'p1', 'p2', 'p3']);
  t.ok(a.records().every((r) => assigned(a).includes(r.partition)));

  const described = await (await fetch(`${g.http}/groups/dash`)).json();
  t.equal(described.state, 'Stable');
  t.equal(described.members.length, 2);
  t.same(described.members.flatMap((m: Frame) => m.assignment.gt ?? []).sort(), [0, 1, 2, 3]);
  const list = await (await fetch(`${g.http}/groups`)).json();
  t.match(list.groups, [{ groupId: 'dash', protocolType: 'consumer', state: 'Stable' }]);

  b.ws.close();
  await eventually(() => assigned(a).length === 4, 20_000);
  t.pass('after b left, a owns every partition again');
});

t.test('ws groups: committed offsets survive a reconnect; commit frames and lag', async (t) => {
  const g = await openGateway(t, { groupSessionTimeoutMs: 6_000, groupRebalanceTimeoutMs: 6_000 }, { groups: true });
  await g.broker.createTopic('gr', 1);
  await g.broker.produce('gr', [0, 1, 2, 3, 4].map((i) => ({ key: null, value: Buffer.from(`v${i}`) })), { acks: -1 });
  const a = await Client.open(t, g.wsUrl);
  await a.request({ type: 'subscribe', topic: 'gr', group: 'resume', start: 'earliest' }, 20_000);
  await a.waitForRecords(5);
  // Commit an explicit offset (3 = the next record to read), as a dashboard that processed v0..v2.
  const committed = await a.request({ type: 'commit', topic: 'gr', offsets: [{ partition: 0, offset: 3 }] });
  t.same(committed, { type: 'committed', id: committed.id, topic: 'gr' });
  t.match(await a.request({ type: 'commit', topic: 'gr', offsets: [{ partition: 7, offset: 1 }] }), { type: 'error', code: 'INVALID_REQUEST', message: /partition 7/ });
  const lag = await (await fetch(`${g.http}/groups/resume`)).json();
  t.match(lag.partitions, [{ topic: 'gr', partition: 0, committedOffset: 3, lag: 2 }]);
  t.equal(lag.totalLag, 2);
  // A socket that goes away (even abruptly) commits what it delivered (5) and leaves the group.
  a.ws.terminate();
  await eventually(async () => (await (await fetch(`${g.http}/groups/resume`)).json()).members?.length === 0, 20_000, 200);
  const after = await (await fetch(`${g.http}/groups/resume`)).json();
  t.equal(after.partitions[0].committedOffset, 5, 'the delivered position was committed on close');

  const b = await Client.open(t, g.wsUrl);
  const sub = await b.request({ type: 'subscribe', topic: 'gr', group: 'resume', start: 'earliest' }, 20_000);
  t.equal(sub.partitions[0].offset, after.partitions[0].committedOffset, 'a new member resumes from the committed offset, not from earliest');
  await g.broker.produce('gr', [{ key: null, value: Buffer.from('v5') }], { acks: -1 });
  const recs = await b.waitForRecords(6 - after.partitions[0].committedOffset);
  t.equal(recs[0].offset, after.partitions[0].committedOffset);
  t.equal(recs[recs.length - 1].value, 'v5');
  // Unsubscribe commits the delivered position.
  await b.request({ type: 'unsubscribe', topic: 'gr' });
  await eventually(async () => (await (await fetch(`${g.http}/groups/resume`)).json()).partitions[0].committedOffset === 6, 10_000, 100);
  t.pass('unsubscribe committed the delivered position (6)');
  t.match(await (await fetch(`${g.http}/groups/nobody`)).json(), { error: { code: 'GROUP_ID_NOT_FOUND' } });
});
