// Purpose: the wills of devices connected to a node that dies are published by the cluster
// (issue 11; docs/cluster.md "Wills of a node that died"). Three real `tributary start` processes
// on loopback; the devices and the subscriber are mqtt.js (MQTT 3.1.1 and 5). One node (the
// controller) holds three devices with wills and is killed with kill -9, so none of them sends
// DISCONNECT; the leader of
// `__mqtt_sessions` publishes their committed wills once the next controller fenced the victim (silent for
// cluster.sessionTimeoutMs = 1 s here). What is checked, on a subscriber connected to a survivor:
//   - the MQTT 3.1.1 will (QoS 1, retained) comes once, within sessionTimeoutMs + a bound, and is
//     retained on the other survivor;
//   - the MQTT 5 will with a 3 s Will Delay Interval comes once, not before its delay, with its
//     will properties (user property, content type);
//   - the MQTT 5 device that resumes its session on the subscriber's node within its 5 s will
//     delay gets no will published;
//   - the killed node restarted on its data dir publishes none of them a second time;
//   - that node frozen (SIGSTOP) past the session timeout, cut off rather than dead, with a device
//     still connected: a survivor publishes the device's will once; back (SIGCONT), the node
//     closes the device's connection without publishing the will again;
//   - tributary_mqtt_fenced_wills_total on the survivors counts 2 published and 1 resumed.
import t from 'tap';
import mqtt from 'mqtt';
import { eventually, sleep } from '../helpers/index.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { createTopic, waitForIsr } from '../helpers/replicas.js';

const SESSION_TIMEOUT_MS = 1000;
const FAST = ['cluster.tickMs=50', `cluster.sessionTimeoutMs=${SESSION_TIMEOUT_MS}`, 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100'];
/** What a loaded CI machine may add to fencing + publishing + reverse delivery (measured: ~1–2 s at load 3). */
const BOUND_MS = 8000;
const DELAYED_S = 3;
const RESUMED_DELAY_S = 5;

function mqttUrl(c: Cluster, id: number): string {
  return `mqtt://127.0.0.1:${c.node(id).proc!.port('mqtt')}`;
}

interface Received {
  topic: string;
  payload: string;
  atMs: number;
  retain: boolean;
  properties?: Record<string, unknown>;
}

async function metricSum(c: Cluster, ids: number[], series: string): Promise<number> {
  let sum = 0;
  for (const id of ids) {
    const res = await fetch(`http://127.0.0.1:${c.node(id).proc!.port('http')}/metrics`);
    for (const line of (await res.text()).split('\n')) if (line.startsWith(series + ' ')) sum += Number(line.slice(series.length + 1));
  }
  return sum;
}

t.test('a dead node\'s wills: published once by a survivor, after their delay, not for a resumed session, not again after its restart', { timeout: 60_000 }, async (t) => {
  const startedMs = Date.now();
  const c = await startCluster(t, 3, { set: FAST });
  t.comment(`cluster up in ${Date.now() - startedMs} ms`);
  t.teardown(() => {
    if (process.env.WILLS_DEBUG) for (const n of c.nodes) console.error(`node ${n.id}:\n` + (n.proc?.logs ?? []).filter((l) => /mqtt|fenced|leader/.test(String(l.msg))).map((l) => JSON.stringify(l)).join('\n'));
  });
  await createTopic(c, 1, 'status', 1);
  await waitForIsr(c, 1, 'status', [1, 2, 3]);
  // The victim is the controller too (the harder case): a survivor's first forwarded append then
  // needs a producer id from the next controller, reserved through the election
  // (host/cluster/forward.ts), and the fencing waits for that election.
  const { leader: controller } = await c.waitForLeader();
  const victim = controller;
  const watcherNode = [1, 2, 3].find((id) => id !== victim)!;
  const third = [1, 2, 3].find((id) => id !== victim && id !== watcherNode)!;
  t.comment(`controller and victim ${victim}, watcher on ${watcherNode}, third node ${third}`);

  // the watcher on node 2 (MQTT 5: it sees the will properties)
  const got: Received[] = [];
  const watcher = await mqtt.connectAsync(mqttUrl(c, watcherNode), { clientId: 'watcher', protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 20_000 });
  watcher.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), atMs: Date.now(), retain: packet.retain, properties: packet.properties as Record<string, unknown> | undefined }));
  await watcher.subscribeAsync('status/#', { qos: 1 });

  // three devices on node 1, each with a will
  const common = { reconnectPeriod: 0, connectTimeout: 20_000 };
  const dev311 = await mqtt.connectAsync(mqttUrl(c, victim), { ...common, clientId: 'dev-311', protocolVersion: 4, clean: true, will: { topic: 'status/dev-311', payload: Buffer.from('dev-311 gone'), qos: 1, retain: true } });
  /** A persistent MQTT 5 device whose will (QoS 1, not retained) carries `willProperties`. */
  const v5Device = (clientId: string, willProperties: Record<string, unknown>) =>
    mqtt.connectAsync(mqttUrl(c, victim), {
      ...common,
      clientId,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: `status/${clientId}`, payload: Buffer.from(`${clientId} gone`), qos: 1, retain: false, properties: willProperties },
    });
  const delayed = await v5Device('dev-5-delayed', { willDelayInterval: DELAYED_S, contentType: 'text/plain', userProperties: { cause: 'power' } });
  const resumer = await v5Device('dev-5-resumer', { willDelayInterval: RESUMED_DELAY_S });
  for (const d of [dev311, delayed, resumer]) d.on('error', () => undefined);
  await resumer.subscribeAsync('cmd/dev-5-resumer', { qos: 1 });
  // the will records are committed and followed by the other nodes before the kill
  await sleep(500);
  t.same(got, [], 'no will while the devices are connected');

  const killedAtMs = Date.now();
  await c.kill9(victim);
  t.pass(`node ${victim} killed with kill -9: its three devices lost their connection without DISCONNECT`);

  // the resumer comes back on node 2 at once (its will waits 6 s)
  const back = await mqtt.connectAsync(mqttUrl(c, watcherNode), { ...common, clientId: 'dev-5-resumer', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
  const resumedAfterMs = Date.now() - killedAtMs;
  t.ok(resumedAfterMs < RESUMED_DELAY_S * 1000, `dev-5-resumer resumed its session on node ${watcherNode} ${resumedAfterMs} ms after the kill, within its ${RESUMED_DELAY_S} s will delay`);

  const willsOf = (topic: string) => got.filter((m) => m.topic === topic);
  await eventually(() => willsOf('status/dev-311').length > 0 || null, SESSION_TIMEOUT_MS + BOUND_MS, 50).catch(() => undefined);
  const w311 = willsOf('status/dev-311');
  t.equal(w311.length, 1, `the MQTT 3.1.1 will reached the watcher on node ${watcherNode}`);
  if (w311[0]) t.ok(w311[0].atMs - killedAtMs <= SESSION_TIMEOUT_MS + BOUND_MS, `… ${w311[0].atMs - killedAtMs} ms after the kill (sessionTimeoutMs ${SESSION_TIMEOUT_MS} + bound ${BOUND_MS})`);
  t.equal(w311[0]?.payload, 'dev-311 gone', '… with its payload');

  await eventually(() => willsOf('status/dev-5-delayed').length > 0 || null, SESSION_TIMEOUT_MS + DELAYED_S * 1000 + BOUND_MS, 50).catch(() => undefined);
  const w5 = willsOf('status/dev-5-delayed');
  t.equal(w5.length, 1, 'the MQTT 5 will with a delay reached the watcher');
  if (w5[0]) {
    const afterMs = w5[0].atMs - killedAtMs;
    t.ok(afterMs >= DELAYED_S * 1000, `… ${afterMs} ms after the kill: not before its ${DELAYED_S} s Will Delay Interval`);
    t.ok(afterMs <= SESSION_TIMEOUT_MS + DELAYED_S * 1000 + BOUND_MS, '… and within sessionTimeoutMs + the delay + the bound');
    t.same(w5[0].properties?.userProperties, { cause: 'power' }, '… with its will user property');
    t.equal(w5[0].properties?.contentType, 'text/plain', '… and its content type');
    t.notOk(w5[0].properties && 'willDelayInterval' in w5[0].properties, '… and no will delay among the PUBLISH properties');
  }

  // past the resumer's delay (counted from the fence, later than the kill) and then some
  await sleep(Math.max(0, killedAtMs + SESSION_TIMEOUT_MS + RESUMED_DELAY_S * 1000 + 1500 - Date.now()));
  t.same(willsOf('status/dev-5-resumer'), [], `no will for the device that resumed its session on node ${watcherNode} within its will delay (MQTT-3.1.3-9)`);

  // the retained will is served by a third node
  const probe = await mqtt.connectAsync(mqttUrl(c, third), { ...common, clientId: 'probe' });
  const retained: string[] = [];
  probe.on('message', (topic, payload, packet) => packet.retain && retained.push(`${topic}=${payload.toString()}`));
  await probe.subscribeAsync('status/#', { qos: 1 });
  await eventually(() => retained.length > 0 || null, 5000, 50).catch(() => undefined);
  t.same(retained, ['status/dev-311=dev-311 gone'], `node ${third} serves the retained will (retain flag kept)`);
  await probe.endAsync(true);

  t.equal(await metricSum(c, [third, watcherNode], 'tributary_mqtt_fenced_wills_total{outcome="published"}'), 2, 'survivors count 2 published wills');
  t.equal(await metricSum(c, [third, watcherNode], 'tributary_mqtt_fenced_wills_total{outcome="resumed"}'), 1, 'and 1 not published (session resumed)');

  // the victim comes back on its data dir: its will records were tombstoned by the publisher
  const before = got.length;
  const restarted = await c.start(victim);
  await c.waitForBrokers([1, 2, 3]);
  const caughtUpLine = () => restarted.logs.find((l) => String(l.msg).startsWith('mqtt: session table caught up after the restart'));
  await eventually(() => caughtUpLine() ?? null, 10_000, 50).catch(() => undefined);
  t.equal(caughtUpLine()?.wills, 0, `node ${victim} caught up with the session table after its restart and found none of its wills left to publish`);
  await sleep(1000);
  t.equal(got.length, before, `node ${victim} restarted: no will published a second time`);

  // cut off, not dead: the node frozen past the session timeout while its device stays connected
  const frozen = await mqtt.connectAsync(mqttUrl(c, victim), { ...common, clientId: 'dev-frozen', protocolVersion: 4, clean: true, keepalive: 60, will: { topic: 'status/dev-frozen', payload: Buffer.from('dev-frozen gone'), qos: 1, retain: false } });
  let frozenClosed = false;
  frozen.on('close', () => (frozenClosed = true));
  frozen.on('error', () => undefined);
  await sleep(500);
  c.pause(victim);
  await eventually(() => willsOf('status/dev-frozen').length > 0 || null, SESSION_TIMEOUT_MS + BOUND_MS, 50).catch(() => undefined);
  t.equal(willsOf('status/dev-frozen').length, 1, `node ${victim} frozen (SIGSTOP) past the session timeout: a survivor published the will of the device still connected to it`);
  t.notOk(frozenClosed, '… whose TCP connection stays open meanwhile');
  c.resume(victim);
  await eventually(() => frozenClosed || null, 10_000, 50).catch(() => undefined);
  t.ok(frozenClosed, `node ${victim}, back (SIGCONT), closed that connection: its will was published while the node was fenced`);
  await sleep(1500);
  t.equal(willsOf('status/dev-frozen').length, 1, '… without publishing the will a second time');

  await back.endAsync();
  await watcher.endAsync(true);
  for (const d of [dev311, delayed, resumer]) d.end(true);
  await c.stopAll();
});
