// Purpose: the deciding halves of replication, without processes or sockets: leadership records
// applied to the image (partitionChange with its partition-epoch guard, broker registration and
// fencing), the controller's elections (only from the ISR, epochs bumped, the last in-sync
// replica kept), and a replicated Partition's high watermark (the lowest log end of the ISR),
// acks=all waiters and follower bookkeeping, over a real partition log in a temp dir.
import t from 'tap';
import { applyRecords, EMPTY_IMAGE, liveNodes, NO_LEADER, partitionStateOf, type MetadataImage, type MetadataRecord } from '../../../host/broker/metadata/records.js';
import { elections, nextIsr, type ReplicationOptions } from '../../../host/cluster/replication.js';
import { decideCreateTopic } from '../../../host/broker/topic-admin.js';
import { BrokerError } from '../../../host/errors/index.js';
import { openBroker, bytes } from '../broker/broker-fixture.js';
import { encodeBatch } from '../../../host/core/index.js';

/** The BrokerError code a call or promise fails with (null: it did not fail). */
async function codeOf(f: Promise<unknown> | (() => unknown)): Promise<string | null> {
  try {
    await (typeof f === 'function' ? f() : f);
    return null;
  } catch (err) {
    return err instanceof BrokerError ? err.code : String(err);
  }
}

const node1: MetadataImage = { ...EMPTY_IMAGE, node: { nodeId: 1, clusterId: 'c' } };

function cluster(fenced: number[] = []): MetadataImage {
  const records: MetadataRecord[] = [1, 2, 3].map((id) => ({ type: 'brokerRegistration', nodeId: id, host: '127.0.0.1', port: 9000 + id }));
  for (const id of fenced) records.push({ type: 'brokerFence', nodeId: id, fenced: true });
  records.push({ type: 'topic', name: 'orders', topicId: 'x', partitions: 2, replicationFactor: 3, assignment: [[1, 2, 3], [2, 3, 1]], createdMs: 0 });
  return applyRecords(node1, records);
}

t.test('records: a new topic starts with its preferred leader, epoch 0, every replica in sync', async (t) => {
  const image = cluster();
  t.same(partitionStateOf(image.topics.get('orders')!, 0), { leader: 1, leaderEpoch: 0, partitionEpoch: 0, isr: [1, 2, 3] });
  t.same(partitionStateOf(image.topics.get('orders')!, 1).leader, 2, 'partition 1 led by its first replica');
  t.same(liveNodes(image), [1, 2, 3], 'registered brokers are the live nodes');
  t.same(liveNodes(applyRecords(image, [{ type: 'brokerFence', nodeId: 2, fenced: true }])), [1, 3], 'a fenced broker is not live');
  t.same(liveNodes(node1), [1], 'one node (nothing registered): this node');
});

t.test('records: a partition change applies once; one decided on an older image fails', async (t) => {
  const image = cluster();
  const change: MetadataRecord = { type: 'partitionChange', topic: 'orders', partition: 0, basedOn: 0, leader: 2, leaderEpoch: 1, isr: [2, 3] };
  const next = applyRecords(image, [change]);
  t.same(partitionStateOf(next.topics.get('orders')!, 0), { leader: 2, leaderEpoch: 1, partitionEpoch: 1, isr: [2, 3] });
  t.throws(() => applyRecords(next, [change]), /stale partition change/, 'the same change again (basedOn 0, now 1) is refused');
  t.throws(() => applyRecords(next, [{ ...change, basedOn: 1, leaderEpoch: 0 }]), /cannot go back/, 'leader epochs never go back');
  t.throws(() => applyRecords(next, [{ ...change, basedOn: 1, leader: 1 }]), /not in its ISR/, 'a leader outside its ISR is refused');
  t.throws(() => applyRecords(image, [{ type: 'brokerFence', nodeId: 9, fenced: true }]), /not registered/);
});

t.test('records: a registration of a new incarnation is a new broker epoch: the node leaves its ISRs, never emptying one', { timeout: 10_000 }, async (t) => {
  const reg = (nodeId: number, incarnation?: string): MetadataRecord => ({ type: 'brokerRegistration', nodeId, host: '127.0.0.1', port: 9000 + nodeId, ...(incarnation ? { incarnation } : {}) });
  let image = applyRecords(node1, [reg(1, 'a1'), reg(2, 'a2'), reg(3, 'a3')]);
  t.same([1, 2, 3].map((id) => image.brokers.get(id)!.epoch), [1, 1, 1], 'first registrations: broker epoch 1');
  image = applyRecords(image, [
    { type: 'topic', name: 'orders', topicId: 'x', partitions: 2, replicationFactor: 3, assignment: [[1, 2, 3], [2, 3, 1]], createdMs: 0 },
    { type: 'topic', name: 'lone', topicId: 'y', partitions: 1, replicationFactor: 1, assignment: [[2]], createdMs: 0 },
  ]);
  const before = partitionStateOf(image.topics.get('orders')!, 0);
  const again = applyRecords(image, [reg(2, 'a2')]);
  t.same(partitionStateOf(again.topics.get('orders')!, 0), before, 'the same incarnation registering again (a retried proposal) changes no ISR');
  t.equal(again.brokers.get(2)!.epoch, 1, 'nor its broker epoch');
  image = applyRecords(image, [reg(2, 'b2')]);
  t.equal(image.brokers.get(2)!.epoch, 2, 'a restarted node: its broker epoch rises');
  t.same(partitionStateOf(image.topics.get('orders')!, 0), { leader: 1, leaderEpoch: 0, partitionEpoch: 1, isr: [1, 3] }, 'a follower leaves the ISR (partition epoch + 1, leader epoch kept)');
  t.same(partitionStateOf(image.topics.get('orders')!, 1), { leader: NO_LEADER, leaderEpoch: 1, partitionEpoch: 1, isr: [3, 1] }, 'a partition it led: leaderless, epoch + 1, for the controller to elect from the rest');
  t.same(partitionStateOf(image.topics.get('lone')!, 0), { leader: 2, leaderEpoch: 1, partitionEpoch: 1, isr: [2] }, 'the last in-sync replica stays (no unclean election); its leadership is a new epoch');
  t.same(elections(image, new Set()).map((r) => [r.partition, r.leader, r.leaderEpoch]), [[1, 3, 2]], 'the controller elects the next in-sync replica (its own epoch bump)');
  const old = applyRecords(cluster(), [reg(2)]);
  t.same(partitionStateOf(old.topics.get('orders')!, 0).isr, [1, 2, 3], 'a registration without an incarnation (older entries) changes no ISR');
  const upgraded = applyRecords(cluster(), [reg(2, 'c2')]);
  t.same(partitionStateOf(upgraded.topics.get('orders')!, 0).isr, [1, 3], 'the first registration with one over an older one is a restart like any other');
});

t.test('controller: a fenced leader is replaced from the ISR, epoch bumped; never from outside the ISR', async (t) => {
  let image = cluster();
  const first = elections(image, new Set([1]));
  t.same(first.map((r) => [r.partition, r.leader, r.leaderEpoch, r.isr]), [[0, 2, 1, [2, 3]], [1, 2, 0, [2, 3]]], 'p0: leader 2 (next in assignment), epoch 1; p1: keeps leader 2, node 1 leaves its ISR');
  image = applyRecords(image, first);
  t.same(elections(image, new Set([1])), [], 'nothing more to decide');
  // Node 2 and 3 fenced next: 3 leaves, 2 is the last in sync and stays named; no leader.
  const second = elections(image, new Set([1, 2, 3]));
  t.same(second.map((r) => [r.partition, r.leader, r.leaderEpoch, r.isr]), [[0, NO_LEADER, 2, [2, 3]], [1, NO_LEADER, 1, [2, 3]]], 'every ISR member fenced: no leader, the ISR kept');
  image = applyRecords(image, second);
  // Node 1 comes back: not in the ISR, so it is not elected (no unclean election).
  t.same(elections(image, new Set([2, 3])), [], 'node 1 alone is alive but out of sync: still no leader');
  const back = elections(image, new Set([3]));
  t.same(back.map((r) => [r.partition, r.leader, r.isr]), [[0, 2, [2]], [1, 2, [2]]], 'node 2 (in the ISR) back: it leads again');
});

t.test('topic admin: the default replication factor is min(3, live brokers)', async (t) => {
  const ctx = (image: MetadataImage) => ({ image, limits: { defaultPartitions: 1, maxPartitionsPerTopic: 10, maxPartitionsTotal: 100, maxTopics: 10, maxMessageBytesMax: 1 << 20 }, refused: () => undefined, newTopicId: () => 'id', nowMs: () => 0 });
  t.equal(decideCreateTopic({ name: 'a' }, ctx(cluster())).replicationFactor, 3);
  t.equal(decideCreateTopic({ name: 'a' }, ctx(applyRecords(cluster(), [{ type: 'brokerFence', nodeId: 3, fenced: true }]))).replicationFactor, 2);
  t.equal(decideCreateTopic({ name: 'a' }, ctx(node1)).replicationFactor, 1, 'one node: 1');
  t.equal(decideCreateTopic({ name: '__internal_x' }, { ...ctx(cluster()), internal: true }).replicationFactor, 1, 'internal topics stay on their node');
  t.equal(decideCreateTopic({ name: '__mqtt_outgoing' }, { ...ctx(cluster()), internal: true }).replicationFactor, 1, 'an MQTT offline queue stays on its node');
  t.equal(decideCreateTopic({ name: '__mqtt_sessions' }, { ...ctx(cluster()), internal: true }).replicationFactor, 3, 'the MQTT session table is replicated (a session follows its device)');
  t.equal(decideCreateTopic({ name: '__consumer_offsets' }, { ...ctx(cluster()), internal: true }).replicationFactor, 3, '__consumer_offsets is replicated like a user topic (the coordinator fails over)');
  t.equal(decideCreateTopic({ name: '__consumer_offsets' }, { ...ctx(node1), internal: true }).replicationFactor, 1, '__consumer_offsets on one node: 1');
});

t.test('partition: replicated HW is the lowest log end of the ISR; acks=all waits for it', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('r', 1);
  const tp = { topic: 'r', partition: 0 };
  const p = broker.partitionObject(tp);
  p.replicated(1);
  p.becomeLeader(1, [1, 2, 3], [1, 2, 3], Date.now());
  const info = await p.log.appendAsLeader(encodeBatch([{ key: null, value: bytes('a') }, { key: null, value: bytes('b') }]), { leaderEpoch: 1, durable: true });
  t.equal(info.lastOffset, 1);
  t.equal(p.highWatermark, 0, 'no follower has fetched: HW stays');
  const acked = p.awaitHighWatermark(2, 5000);
  p.followerFetched(2, 2, Date.now());
  t.equal(p.highWatermark, 0, 'one of two followers caught up: HW stays (3 is in the ISR)');
  p.followerFetched(3, 1, Date.now());
  t.equal(p.highWatermark, 1, 'HW = the lowest log end in the ISR');
  p.followerFetched(3, 2, Date.now());
  t.equal(p.highWatermark, 2);
  await acked;
  t.pass('the acks=all waiter resolved when HW passed its batch');
  const late = p.awaitHighWatermark(3, 30);
  t.equal(await codeOf(late), 'REQUEST_TIMED_OUT', 'no confirmation within the timeout: REQUEST_TIMED_OUT');
  const moved = p.awaitHighWatermark(3, 5000);
  p.becomeFollower(2, 2, [2, 3], [1, 2, 3]);
  t.equal(await codeOf(moved), 'NOT_LEADER_OR_FOLLOWER', 'leadership lost: NOT_LEADER_OR_FOLLOWER');
  t.throws(() => broker.replicaFetched(tp, 3, 0, 2), /not the leader/, 'a follower does not serve replica fetches');
  t.equal(await codeOf(() => broker.checkLeaderEpoch(tp, 1)), 'FENCED_LEADER_EPOCH');
  t.equal(await codeOf(() => broker.checkLeaderEpoch(tp, 3)), 'UNKNOWN_LEADER_EPOCH');
  t.equal(await codeOf(broker.append(tp, encodeBatch([{ key: null, value: bytes('c') }]), { acks: 1 })), 'NOT_LEADER_OR_FOLLOWER', 'a follower refuses appends');
});

t.test('leader: a follower joins the ISR only while unfenced and by a fetch made after it was last seen fenced (KIP-841, KIP-903)', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('j', 1);
  const p = broker.partitionObject({ topic: 'j', partition: 0 });
  p.replicated(1);
  const now = Date.now();
  p.becomeLeader(1, [1, 2], [1, 2, 3], now);
  p.followerFetched(2, 0, now);
  p.followerFetched(3, 0, now);
  const o = { nodeId: 1, replicaLagTimeMaxMs: 10_000 } as ReplicationOptions;
  t.same(nextIsr(p, [1, 2], o, now, () => true), [1, 2, 3], 'caught up and eligible: joins');
  t.equal(nextIsr(p, [1, 2], o, now, (id) => id !== 3), null, 'fenced: stays out however recent its fetch');
  const lastFencedMs = now + 1;
  const eligible = (_id: number, fetchMs: number) => fetchMs > lastFencedMs;
  t.equal(nextIsr(p, [1, 2], o, now + 2, eligible), null, 'its last fetch came before it was fenced (it stopped, maybe lost data since): stays out');
  p.followerFetched(3, 0, now + 3);
  t.same(nextIsr(p, [1, 2], o, now + 3, eligible), [1, 2, 3], 'a fetch after the fencing, at the HW: joins');
});

t.test('partition: a follower fetch parked at the log end wakes when the HW moves (so the follower learns it at once)', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('hw', 1);
  const tp = { topic: 'hw', partition: 0 };
  const p = broker.partitionObject(tp);
  p.replicated(1);
  p.becomeLeader(1, [1, 2, 3], [1, 2, 3], Date.now());
  await p.log.appendAsLeader(encodeBatch([{ key: null, value: bytes('a') }]), { leaderEpoch: 1, durable: true });
  p.followerFetched(2, 1, Date.now());
  t.equal(p.highWatermark, 0, 'follower 3 has not fetched: HW stays');
  // Follower 2 has everything and long-polls at the log end (logEnd isolation), as fetch.ts does.
  const started = Date.now();
  const parked = broker.waitForData([{ ...tp, afterOffset: 1 }], 5000, undefined, 'logEnd');
  setTimeout(() => p.followerFetched(3, 1, Date.now()), 30);
  await parked;
  t.equal(p.highWatermark, 1, 'follower 3 caught up: HW 1');
  t.ok(Date.now() - started < 2000, `the parked follower fetch answered ${Date.now() - started} ms after it parked, not after its 5 s wait`);
});

t.test('broker: a follower hands an append to the installed forwarder; the Kafka door (leaderOnly) is refused instead', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('fw', 1);
  const tp = { topic: 'fw', partition: 0 };
  const p = broker.partitionObject(tp);
  p.replicated(1);
  p.becomeFollower(2, 1, [1, 2], [1, 2]);
  const seen: Array<{ tp: typeof tp; bytes: number; acks: number }> = [];
  broker.setAppendForwarder({
    forward: async (to, batches, options) => (seen.push({ tp: to, bytes: batches.byteLength, acks: options.acks }), { baseOffset: 41, lastOffset: 41, logAppendTimeMs: -1, logStartOffset: 0 }),
  });
  const produced = await broker.produce('fw', [{ key: bytes('k'), value: bytes('v') }], { acks: -1 });
  t.same(produced, [{ topic: 'fw', partition: 0, offset: 41 }], 'produce answers with the offset the leader gave');
  t.equal(seen.length, 1);
  t.same([seen[0]!.tp, seen[0]!.acks], [tp, -1], 'the partition chosen here and the door\'s acks travel');
  t.equal(p.log.logEndOffset, 0, 'nothing was written on the follower');
  t.equal(await codeOf(broker.append(tp, encodeBatch([{ key: null, value: bytes('c') }]), { acks: -1, leaderOnly: true })), 'NOT_LEADER_OR_FOLLOWER', 'leaderOnly (the Kafka door): refused, never forwarded');
  broker.setAppendForwarder(undefined);
  t.equal(await codeOf(broker.append(tp, encodeBatch([{ key: null, value: bytes('c') }]), { acks: -1 })), 'NOT_LEADER_OR_FOLLOWER', 'no forwarder (one node): refused as before');
});
