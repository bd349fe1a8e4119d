// The shared-subscription module on its own seam: a real Broker and group coordinator over a
// temp dir, members as the gateway's adapter would build them. Checks what the MQTT 3.1.1
// gateway cannot show yet: MQTT 5 reason codes of refused SUBSCRIBEs, and exactly when an
// offset is committed (QoS 0 once written, QoS 1/2 only once acknowledged).
import t from 'tap';
import { Broker } from '../../../host/broker/broker.js';
import { GroupCoordinator } from '../../../host/broker/groups/index.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { Router } from '../../../gateway/mqtt/routes.js';
import { encodeSubscription } from '../../../gateway/ws/group-session.js';
import { parseSharedFilter, SharedSubscriptions, type SharedDelivery, type SharedMember, type SharedSubscriptionOptions } from '../../../gateway/mqtt/shared-subscriptions.js';
import { eventually, tempDir } from '../../helpers/index.js';

const OPTIONS: SharedSubscriptionOptions = {
  membersMax: 3,
  inflightMax: 8,
  commitIntervalMs: 50,
  sessionTimeoutMs: 1000,
  ackWaitMs: 200,
  readBytesMax: 64 * 1024,
  topicsMax: 16,
  rescanMs: 100,
  reverseQos: 1,
};

interface Tap {
  teardown(fn: () => unknown): void;
}

async function open(t: Tap, options: Partial<SharedSubscriptionOptions> = {}) {
  const dir = await tempDir(t, 'tributary-shared-unit-');
  const metrics = new MetricsRegistry();
  const broker = await Broker.open({ dataDir: dir }, { logger: silentLogger, metrics });
  const groups = await GroupCoordinator.open(broker, { initialRebalanceDelayMs: 0, minSessionTimeoutMs: 100, groupMaxSize: 1, groupIdMaxBytes: 16 }, { logger: silentLogger, metrics });
  const shared = new SharedSubscriptions({ broker, groups, router: new Router([], true), logger: silentLogger, metrics }, { ...OPTIONS, ...options });
  t.teardown(async () => {
    await shared.close();
    await groups.close();
    await broker.close();
  });
  return { broker, groups, shared };
}

class TestMember implements SharedMember {
  readonly clientHost = '127.0.0.1:1';
  readonly got: Array<{ d: SharedDelivery; ack: (err?: Error | null) => void }> = [];
  constructor(
    readonly clientId: string,
    readonly protocolVersion: number,
    private readonly autoAck = false,
  ) {}
  deliver(d: SharedDelivery, acked: (err?: Error | null) => void): void {
    this.got.push({ d, ack: acked });
    if (this.autoAck || d.qos === 0) setImmediate(() => acked(null));
  }
}

const committed = async (groups: GroupCoordinator, group: string, topic: string, partition: number) =>
  (await groups.fetchOffsets({ groupId: group, partitions: [{ topic, partition }] }))[0].offset;

t.test('share names: what parses, and why the rest does not', async (t) => {
  t.same(parseSharedFilter('$share/g/sensors/#'), { group: 'g', filter: 'sensors/#' });
  t.same(parseSharedFilter('$share/g/+/x/+'), { group: 'g', filter: '+/x/+' });
  t.same(parseSharedFilter('$share/g//'), { group: 'g', filter: '/' }, 'an empty level is a valid filter');
  for (const bad of ['$share/g', '$share/g/', '$share//x', '$share/a+b/x', '$share/+/x', '$share/#', '$share/a#/x', '$share/g/a+b', '$share/g/#/x']) {
    t.ok('problem' in parseSharedFilter(bad), `${bad} is refused`);
  }
});

t.test('MQTT 5 members get the specific reason code, 3.1.1 members 0x80', async (t) => {
  const { shared, groups } = await open(t);
  const v5 = new TestMember('v5', 5);
  const v4 = new TestMember('v4', 4);
  t.equal(shared.subscribeTopic(v5, '$share/g', 1), 0x8f, 'no filter: Topic Filter invalid');
  t.equal(shared.subscribeTopic(v5, '$share/a+b/x', 1), 0x8f, 'wildcard in the share name');
  t.equal(shared.subscribeTopic(v4, '$share/a+b/x', 1), 0x80, '3.1.1: Failure');
  t.equal(shared.subscribeTopic(v5, '$share/a-share-name-too-long/x', 1), 0x8f, 'share name above groupIdMaxBytes');

  t.equal(shared.subscribeTopic(v5, '$share/g/sensors/#', 2), 2, 'granted QoS 2');
  t.equal(shared.subscribeTopic(v5, '$share/g/sensors/#', 1), 1, 'a repeated SUBSCRIBE replaces the QoS');
  t.equal(shared.size, 1);
  t.equal(shared.subscribeTopic(new TestMember('other', 5), '$share/g/alarms/#', 1), 0x83, 'another filter under the same share name: implementation specific');

  // a group of another protocol type (a Kafka Connect-like group) cannot take MQTT members
  await groups.joinGroup({ groupId: 'connectish', memberId: '', sessionTimeoutMs: 1000, protocolType: 'connect', protocols: [{ name: 'default', metadata: new Uint8Array(0) }] });
  t.equal(shared.subscribeTopic(v5, '$share/connectish/x/#', 1), 0x83, 'INCONSISTENT_GROUP_PROTOCOL has no SUBACK code of its own: 0x83');

  // a full group (groupMaxSize 1): GROUP_MAX_SIZE_REACHED → 0x97 from the error table
  await groups.joinGroup({ groupId: 'full', memberId: '', sessionTimeoutMs: 1000, protocolType: 'consumer', protocols: [{ name: 'range', metadata: encodeSubscription(['x']) }] });
  t.equal(shared.subscribeTopic(v5, '$share/full/x/#', 1), 0x97, 'group full: Quota exceeded');

  // sharedMembersMax 3 (one held by v5 in g)
  t.equal(shared.subscribeTopic(new TestMember('m2', 5), '$share/h/x', 0), 0);
  t.equal(shared.subscribeTopic(new TestMember('m3', 5), '$share/i/x', 0), 0, 'at membersMax: admitted');
  t.equal(shared.subscribeTopic(new TestMember('m4', 5), '$share/j/x', 0), 0x97, 'past membersMax: Quota exceeded');
  t.equal(shared.subscribeTopic(new TestMember('m4', 4), '$share/j/x', 0), 0x80, 'past membersMax, 3.1.1: Failure');
});

t.test('QoS 1: the committed offset never passes a delivery that was not acknowledged', async (t) => {
  const { broker, groups, shared } = await open(t);
  await broker.createTopic('sensors', 1);
  const m = new TestMember('dev', 4);
  t.equal(shared.subscribeTopic(m, '$share/q/sensors/#', 1), 1);
  await eventually(async () => (await groups.describeGroups(['q']))[0].state === 'Stable', 5_000);
  await broker.produce('sensors', Array.from({ length: 4 }, (_, i) => ({ key: Buffer.from(`sensors/d${i}`), value: Buffer.from(`v${i}`) })), { acks: -1 });
  await eventually(() => m.got.length === 4, 5_000);
  t.same(m.got.map((g) => [g.d.topic, g.d.qos, g.d.offset]), [['sensors/d0', 1, 0], ['sensors/d1', 1, 1], ['sensors/d2', 1, 2], ['sensors/d3', 1, 3]], 'records without mqtt.qos are delivered at reverseQos, capped by the subscription');
  await eventually(async () => (await committed(groups, 'q', 'sensors', 0)) === 0, 5_000);
  m.got[1].ack(null);
  m.got[2].ack(null);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await committed(groups, 'q', 'sensors', 0), 0, 'offset 0 unacknowledged: the commit stays at 0');
  m.got[0].ack(null);
  await eventually(async () => (await committed(groups, 'q', 'sensors', 0)) === 3, 5_000);
  t.pass('acknowledging 0 moves the commit to the next unacknowledged (3)');
  m.got[3].ack(new Error('connection closed'));
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await committed(groups, 'q', 'sensors', 0), 3, 'a delivery that failed is never committed');
  await shared.disconnected(m);
  t.equal(await committed(groups, 'q', 'sensors', 0), 3, 'after the disconnect: the next member starts at 3');

  // the next member gets it again
  const next = new TestMember('dev2', 4, true);
  shared.subscribeTopic(next, '$share/q/sensors/#', 1);
  await eventually(() => next.got.length >= 1, 5_000);
  t.same(next.got.map((g) => g.d.payload.toString()), ['v3'], 'only the unacknowledged record is delivered again');
});

t.test('QoS 0: committed once written; the record QoS caps the delivery', async (t) => {
  const { broker, groups, shared } = await open(t);
  await broker.createTopic('sensors', 1);
  const m = new TestMember('dev', 4);
  t.equal(shared.subscribeTopic(m, '$share/z/sensors/#', 2), 2);
  await eventually(async () => (await groups.describeGroups(['z']))[0].state === 'Stable', 5_000);
  const qosHeader = (q: string) => [{ key: 'mqtt.topic', value: Buffer.from('sensors/a') }, { key: 'mqtt.qos', value: Buffer.from(q) }];
  await broker.produce('sensors', [{ key: Buffer.from('x'), value: Buffer.from('q0'), headers: qosHeader('0') }, { key: Buffer.from('x'), value: Buffer.from('q2'), headers: qosHeader('2') }], { acks: -1 });
  await eventually(() => m.got.length === 2, 5_000);
  t.same(m.got.map((g) => [g.d.topic, g.d.qos]), [['sensors/a', 0], ['sensors/a', 2]], 'topic from the mqtt.topic header, QoS from mqtt.qos');
  await eventually(async () => (await committed(groups, 'z', 'sensors', 0)) === 1, 5_000);
  t.pass('the QoS 0 record is committed without any acknowledgement; the QoS 2 one is not');
});

t.test('sharedSessionTimeoutMs outside the coordinator range is refused at start, naming the option', async (t) => {
  const dir = await tempDir(t, 'tributary-shared-unit-');
  const metrics = new MetricsRegistry();
  const broker = await Broker.open({ dataDir: dir }, { logger: silentLogger, metrics });
  const groups = await GroupCoordinator.open(broker, { minSessionTimeoutMs: 1000, maxSessionTimeoutMs: 5000 }, { logger: silentLogger, metrics });
  t.teardown(async () => {
    await groups.close();
    await broker.close();
  });
  const make = (sessionTimeoutMs: number) => new SharedSubscriptions({ broker, groups, router: new Router([], true), logger: silentLogger }, { ...OPTIONS, sessionTimeoutMs });
  t.throws(() => make(999), /mqtt\.sharedSessionTimeoutMs 999 is outside/);
  t.throws(() => make(5001), /mqtt\.sharedSessionTimeoutMs 5001 is outside/);
  for (const ok of [1000, 5000]) {
    const s = make(ok);
    await s.close();
    t.pass(`${ok} ms (a bound) is accepted`);
  }
});

t.test('sharedReadBytesMax: a record larger than one read is still delivered whole (the first batch of a read is whole)', async (t) => {
  const { broker, groups, shared } = await open(t, { readBytesMax: 1024 });
  await broker.createTopic('big', 1);
  const m = new TestMember('dev', 4, true);
  shared.subscribeTopic(m, '$share/b/big/#', 1);
  await eventually(async () => (await groups.describeGroups(['b']))[0].state === 'Stable', 5_000);
  const value = Buffer.alloc(4096, 7);
  await broker.produce('big', [{ key: Buffer.from('big/a'), value }, { key: Buffer.from('big/b'), value: Buffer.from('small') }], { acks: -1, partition: 0 });
  await broker.produce('big', [{ key: Buffer.from('big/c'), value }], { acks: -1, partition: 0 });
  await eventually(() => m.got.length === 3, 5_000);
  t.same(m.got.map((g) => [g.d.topic, g.d.payload.length]), [['big/a', 4096], ['big/b', 5], ['big/c', 4096]], 'every record, in order, whole');
});
