// Purpose: the deciding half of preferred-leader rebalancing (host/cluster/leader-rebalance.ts)
// without processes: which partitions a rebalance hands back to their preferred replica (only to
// a live, unfenced replica in the ISR, never one a restart took out of it), that the records it
// decides apply to the image (leader epoch + 1, ISR unchanged), when the controller looks, and the
// interval key's bounds.
import t from 'tap';
import { applyRecords, EMPTY_IMAGE, partitionStateOf, type MetadataImage, type MetadataRecord } from '../../../host/broker/metadata/records.js';
import { preferredLeaderMoves, RebalanceSchedule } from '../../../host/cluster/leader-rebalance.js';
import { elections } from '../../../host/cluster/replication.js';
import { clusterSchema, defaultClusterOptions } from '../../../host/cluster/options.js';
import { loadConfig } from '../../../host/config/loader.js';

const reg = (nodeId: number, incarnation: string): MetadataRecord => ({ type: 'brokerRegistration', nodeId, host: '127.0.0.1', port: 9000 + nodeId, incarnation });

/** Three brokers, `orders` with preferred leaders 1, 2, 3; then node 1 restarted (its leadership elected away). */
function afterRestartOfNode1(): MetadataImage {
  let image = applyRecords({ ...EMPTY_IMAGE, node: { nodeId: 2, clusterId: 'c' } }, [reg(1, 'a1'), reg(2, 'a2'), reg(3, 'a3')]);
  image = applyRecords(image, [{ type: 'topic', name: 'orders', topicId: 'x', partitions: 3, replicationFactor: 3, assignment: [[1, 2, 3], [2, 3, 1], [3, 1, 2]], createdMs: 0 }]);
  image = applyRecords(image, [reg(1, 'b1')]); // a new process: out of every ISR, partition 0 leaderless
  image = applyRecords(image, elections(image, new Set()));
  return image;
}

const all = () => true;

t.test('rebalance: a restarted preferred replica gets its leadership back only once it is in the ISR again', async (t) => {
  let image = afterRestartOfNode1();
  const p0 = partitionStateOf(image.topics.get('orders')!, 0);
  t.same({ leader: p0.leader, isr: p0.isr }, { leader: 2, isr: [2, 3] }, 'after the restart node 2 leads partition 0, node 1 out of the ISR');
  t.same(preferredLeaderMoves(image, all), [], 'out of the ISR (not caught up since its restart): no move');
  // Its leader saw it catch up and added it back.
  image = applyRecords(image, [{ type: 'partitionChange', topic: 'orders', partition: 0, basedOn: p0.partitionEpoch, leader: 2, leaderEpoch: p0.leaderEpoch, isr: [2, 3, 1] }]);
  const moves = preferredLeaderMoves(image, all);
  const back = partitionStateOf(image.topics.get('orders')!, 0);
  t.same(moves, [{ type: 'partitionChange', topic: 'orders', partition: 0, basedOn: back.partitionEpoch, leader: 1, leaderEpoch: back.leaderEpoch + 1, isr: [2, 3, 1] }], 'in the ISR again: partition 0 back to node 1, a new leader epoch, the ISR unchanged');
  const next = applyRecords(image, moves);
  t.same(partitionStateOf(next.topics.get('orders')!, 0), { leader: 1, leaderEpoch: back.leaderEpoch + 1, partitionEpoch: back.partitionEpoch + 1, isr: [2, 3, 1] }, 'the move applies');
  t.same(preferredLeaderMoves(next, all), [], 'balanced: nothing more to move');
  t.throws(() => applyRecords(next, moves), /stale partition change/, 'the same move decided on the older image fails (a raced change is decided again)');
});

t.test('rebalance: never to a fenced, silent or unregistered replica, never for a leaderless partition', async (t) => {
  let image = afterRestartOfNode1();
  const p0 = partitionStateOf(image.topics.get('orders')!, 0);
  image = applyRecords(image, [{ type: 'partitionChange', topic: 'orders', partition: 0, basedOn: p0.partitionEpoch, leader: 2, leaderEpoch: p0.leaderEpoch, isr: [1, 2, 3] }]);
  t.equal(preferredLeaderMoves(image, all).length, 1, 'eligible: one move');
  t.same(preferredLeaderMoves(image, (id) => id !== 1), [], 'not heard within the session by the controller: no move');
  t.same(preferredLeaderMoves(applyRecords(image, [{ type: 'brokerFence', nodeId: 1, fenced: true }]), all), [], 'fenced: no move');
  const unregistered = { ...image, brokers: new Map([...image.brokers].filter(([id]) => id !== 1)) };
  t.same(preferredLeaderMoves(unregistered, all), [], 'not registered: no move');
  const s = partitionStateOf(image.topics.get('orders')!, 0);
  const leaderless = applyRecords(image, [{ type: 'partitionChange', topic: 'orders', partition: 0, basedOn: s.partitionEpoch, leader: -1, leaderEpoch: s.leaderEpoch + 1, isr: [1, 2, 3] }]);
  t.same(preferredLeaderMoves(leaderless, all), [], "leaderless: the elections' job, not the rebalance's");
});

t.test('rebalance schedule: off at 0; the first look one interval after becoming controller; then one interval after each look', async (t) => {
  const off = new RebalanceSchedule(0);
  t.notOk(off.enabled);
  t.notOk(off.due(1e12, 0), '0 = never');
  const s = new RebalanceSchedule(1000);
  t.notOk(s.due(10_999, 10_000), 'not before one interval as controller');
  t.ok(s.due(11_000, 10_000), 'due at controllerSince + interval');
  t.ok(s.due(11_100, 10_000), 'still due until a look is done (a raced proposal is decided again at the next pass)');
  s.done(11_100);
  t.notOk(s.due(12_099, 10_000), 'rate-limited: not again within the interval');
  t.ok(s.due(12_100, 10_000), 'one interval after the last look');
  s.reset();
  t.notOk(s.due(12_100, 12_000), 'a new controller term starts over');
  t.ok(s.due(13_000, 12_000));
});

t.test('cluster.leaderRebalanceIntervalMs: 0 (off) to one day accepted, outside refused naming the key', async (t) => {
  const load = (value: string) => loadConfig({ argv: ['--set', `cluster.leaderRebalanceIntervalMs=${value}`], env: {}, sections: { cluster: { ...defaultClusterOptions } }, schemas: { cluster: clusterSchema } });
  t.equal(defaultClusterOptions.leaderRebalanceIntervalMs, 30_000, 'default: 30 s');
  t.equal(load('0').sections.cluster.leaderRebalanceIntervalMs, 0, '0 = off: accepted');
  t.equal(load('86400000').sections.cluster.leaderRebalanceIntervalMs, 86_400_000, 'one day: accepted');
  t.throws(() => load('-1'), /cluster\.leaderRebalanceIntervalMs/, 'below 0: refused, naming the key');
  t.throws(() => load('86400001'), /cluster\.leaderRebalanceIntervalMs/, 'above one day: refused, naming the key');
  t.throws(() => load('1.5'), /cluster\.leaderRebalanceIntervalMs/, 'not an integer: refused');
});
