// Purpose: a persistent MQTT session follows its device to another node of a cluster (issue 11;
// docs/cluster.md "MQTT sessions in a cluster"). Three real `tributary start` processes on
// loopback; the devices are mqtt.js (MQTT 3.1.1, clean session 0) and, where installed,
// mosquitto_sub/mosquitto_pub, which nobody here wrote. `__mqtt_sessions` is replicated on every
// node; one node owns a session at a time, a node that takes it over waits for the old owner's
// release (or, the old owner dead, loads what is committed) and queues what the device missed
// from its committed delivery positions.
// What was acknowledged, and proved delivered: QoS 1 publishes PUBACKed on a third node while the
// device was away — delivered on the node it came back to, each once, and nothing it had already
// acknowledged on the old node; the same after a kill -9 of the old owner. The old node closes the
// device's connection when another node takes the session (one owner, as a same-node takeover),
// and a clean start of the client id on a third node discards the session.
import t from 'tap';
import mqtt from 'mqtt';
import { spawn } from 'node:child_process';
import { eventually, haveCommand, sleep } from '../helpers/index.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { createTopic, waitForIsr } from '../helpers/replicas.js';

const FAST = ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100', 'mqtt.sessionCheckpointMs=300'];

function mqttPort(c: Cluster, id: number): number {
  return c.node(id).proc!.port('mqtt');
}

function mqttUrl(c: Cluster, id: number): string {
  return `mqtt://127.0.0.1:${mqttPort(c, id)}`;
}

interface Device {
  client: mqtt.MqttClient;
  sessionPresent: boolean;
  got: string[];
  closed: () => boolean;
}

/** Connects `clientId` with clean session 0; resolves with the client, its CONNACK's session-present flag and what it receives. */
async function device(c: Cluster, id: number, clientId: string): Promise<Device> {
  const got: string[] = [];
  const client = mqtt.connect(mqttUrl(c, id), { clientId, clean: false, reconnectPeriod: 0, connectTimeout: 20_000 });
  client.on('message', (_topic, payload) => got.push(payload.toString()));
  let closed = false;
  client.on('close', () => (closed = true));
  client.on('error', () => undefined);
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent));
    client.once('error', reject);
  });
  return { client, sessionPresent, got, closed: () => closed };
}

async function publish(c: Cluster, id: number, topic: string, payloads: string[]): Promise<void> {
  const pub = await mqtt.connectAsync(mqttUrl(c, id), { clientId: `dispatcher-${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: 0, connectTimeout: 20_000 });
  try {
    for (const p of payloads) await pub.publishAsync(topic, p, { qos: 1 });
  } finally {
    await pub.endAsync(true);
  }
}

/** Waits for `want` (in order) and then `settleMs` more, so a duplicate would show. */
async function expectExactly(t: Tap, d: Device, want: string[], what: string, settleMs = 1500): Promise<void> {
  try {
    await eventually(() => d.got.length >= want.length || null, 20_000, 50);
  } catch {
    /* compared below */
  }
  await sleep(settleMs);
  t.same(d.got, want, what);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Tap = any;

t.test('persistent sessions follow their device across three nodes: handover, takeover, mosquitto, kill -9 of the owner', { timeout: 150_000 }, async (t) => {
  const c = await startCluster(t, 3, { set: FAST });
  await createTopic(c, 1, 'fleet', 1);
  await waitForIsr(c, 1, 'fleet', [1, 2, 3]);

  // --- a clean handover: the old owner alive -----------------------------------------------------
  const first = await device(c, 1, 'truck-7');
  t.notOk(first.sessionPresent, 'node 1: a new session');
  await first.client.subscribeAsync('fleet/truck-7/#', { qos: 1 });
  await publish(c, 3, 'fleet/truck-7/cmd', ['before-move']);
  await expectExactly(t, first, ['before-move'], 'node 1 delivers a publish of node 3 while the device is connected (acknowledged by mqtt.js)', 300);
  await first.client.endAsync();
  // truck-8 leaves a session on node 1 too (for the kill -9 below)
  const other = await device(c, 1, 'truck-8');
  await other.client.subscribeAsync('fleet/truck-8', { qos: 1 });
  await other.client.endAsync();

  // Published on node 3 while the device is away: PUBACKed, so committed in `fleet`.
  await publish(c, 3, 'fleet/truck-7/cmd', ['go-to-dock-4', 'go-to-dock-5']);
  t.pass('two QoS 1 publishes on node 3 were PUBACKed while the device was away');

  const moved = await device(c, 2, 'truck-7');
  t.ok(moved.sessionPresent, 'node 2: CONNACK session present 1 — the session came from node 1');
  await expectExactly(t, moved, ['go-to-dock-4', 'go-to-dock-5'], 'node 2 delivers what was published while the device was away, once each, and not what it had acknowledged on node 1');
  await publish(c, 1, 'fleet/truck-7/cmd', ['live-on-2']);
  await expectExactly(t, moved, ['go-to-dock-4', 'go-to-dock-5', 'live-on-2'], 'a publish on node 1 reaches the device on node 2 (the session there has its subscription)', 500);

  // --- one client id on two nodes: the new owner takes the session, the old one closes its connection
  const back = await device(c, 1, 'truck-7');
  t.ok(back.sessionPresent, 'back on node 1: session present 1');
  await eventually(() => moved.closed() || null, 10_000, 50).catch(() => undefined);
  t.ok(moved.closed(), 'node 2 closed the device\'s connection when node 1 took the session over');
  await publish(c, 3, 'fleet/truck-7/cmd', ['after-takeover']);
  await expectExactly(t, back, ['after-takeover'], 'node 1 delivers the next publish once; nothing acknowledged on node 2 comes again', 1000);
  t.same(moved.got, ['go-to-dock-4', 'go-to-dock-5', 'live-on-2'], 'node 2 delivered nothing after the takeover');

  // --- mosquitto_sub -c: a session made on node 3 resumed on node 2 --------------------------------
  if (haveCommand('mosquitto_sub') && haveCommand('mosquitto_pub')) {
    const sub = (node: number, count: number) => {
      const child = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(mqttPort(c, node)), '-i', 'truck-9', '-c', '-q', '1', '-t', 'fleet/truck-9', '-C', String(count), '-W', '20']);
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      return new Promise<string[]>((resolve) => child.on('close', () => resolve(out.split('\n').filter((l) => l.length > 0))));
    };
    const pub = (node: number, message: string) =>
      new Promise<number | null>((resolve) => spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqttPort(c, node)), '-q', '1', '-t', 'fleet/truck-9', '-m', message]).on('close', resolve));
    const firstSub = sub(3, 1);
    await sleep(1000);
    t.equal(await pub(1, 'first'), 0, 'mosquitto_pub on node 1 (QoS 1, PUBACKed)');
    t.same(await firstSub, ['first'], 'mosquitto_sub -c on node 3 received it and left');
    t.equal(await pub(1, 'while-away'), 0, 'mosquitto_pub on node 1 while the device is away');
    t.same(await sub(2, 1), ['while-away'], 'mosquitto_sub -c on node 2 resumes the session and gets only what it missed');
  } else t.comment('mosquitto_sub/mosquitto_pub not installed: the mosquitto part was skipped');

  // --- kill -9 of the owner: truck-7 connected to it, truck-8 away --------------------------------
  await publish(c, 3, 'fleet/truck-8', ['load-pallets']);
  t.pass('a QoS 1 publish for truck-8 on node 3 was PUBACKed while it was away');
  await c.kill9(1);
  await publish(c, 2, 'fleet/truck-7/cmd', ['during-outage']);
  t.pass('a QoS 1 publish for truck-7 on node 2 was PUBACKed after node 1 died');
  // By now node 1 is fenced (the publish waited out its partitions' failover): the takeovers do
  // not wait the whole 2 × sessionTimeoutMs + 1 s (3 s here) for a release that cannot come.
  await c.waitForBrokers([2, 3]);
  const connecting = Date.now();
  const [again, resumed] = await Promise.all([device(c, 3, 'truck-7'), device(c, 2, 'truck-8')]);
  const tookMs = Date.now() - connecting;
  t.ok(again.sessionPresent && resumed.sessionPresent, 'nodes 3 and 2: session present 1 although node 1, the owner, is dead');
  t.ok(tookMs < 2500, `both CONNACKs in ${tookMs} ms: the old owner was fenced, so no wait for its release (the fallback wait is 3,000 ms)`);
  // node 1 checkpointed truck-7's positions (mqtt.sessionCheckpointMs=300) after 'after-takeover'
  // was acknowledged, seconds before it died: that message does not come again
  await expectExactly(t, again, ['during-outage'], 'truck-7 on node 3: what it missed while moving, once; nothing it acknowledged on the dead node before its last checkpoint');
  t.same(resumed.got, ['load-pallets'], 'truck-8 on node 2: what was published while it was away, once');

  // the killed node, restarted, does not serve the sessions any more
  await c.start(1);
  await c.waitForBrokers([1, 2, 3]);
  await publish(c, 1, 'fleet/truck-8', ['after-restart']);
  await expectExactly(t, resumed, ['load-pallets', 'after-restart'], 'node 2 keeps delivering to truck-8 after node 1 restarted', 500);
  t.notOk(resumed.closed() || again.closed(), 'both connections stay (the restarted node 1 took nothing)');

  // --- a clean start elsewhere discards the session: the owner closes its connection ----------------
  const cleanStart = await mqtt.connectAsync(mqttUrl(c, 3), { clientId: 'truck-8', clean: true, reconnectPeriod: 0, connectTimeout: 20_000 });
  await eventually(() => resumed.closed() || null, 10_000, 50).catch(() => undefined);
  t.ok(resumed.closed(), 'a clean start of truck-8 on node 3 closed its connection on node 2');
  await cleanStart.endAsync(true);
  const fresh = await device(c, 1, 'truck-8');
  t.notOk(fresh.sessionPresent, 'then a persistent connect on node 1: session present 0 (the clean start discarded the session)');
  t.notOk(again.closed(), 'truck-7 on node 3 is not touched');

  await fresh.client.endAsync(true);
  await again.client.endAsync(true);
  await resumed.client.endAsync(true);
  await c.stopAll();
});
