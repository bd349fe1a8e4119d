// Purpose: gateways on every node (issue 11). Three real `tributary start` processes on loopback,
// a topic at replication factor 3; the clients are mqtt.js (MQTT 5), Node's fetch and the `ws`
// package, which nobody here wrote. The MQTT publisher, the HTTP and WebSocket producers talk to a node that does NOT lead
// the partition: their appends are forwarded to the leader (host/cluster/forward.ts) and a
// PUBACK / 200 comes only once the leader answered under acks=all and min.insync.replicas. An
// MQTT subscriber on the third node receives the records from its own replica, committed data
// only. Then the leader is killed (kill -9) mid-stream: the publisher stays connected to its
// node, whose forwards follow the new leader. What was acknowledged: every PUBACKed payload
// every HTTP 200's and WebSocket ack's records; proved present after the failover on every replica (read from
// the files after a clean stop), in publish order, and delivered to the subscriber.
// A second topic with min.insync.replicas=3 proves that a PUBACK waits for the leader's acks=all
// rule: with one replica down, a forwarded QoS 1 publish gets an error reason, never success.
import t from 'tap';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { eventually, haveCommand, sleep } from '../helpers/index.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { createTopic, readReplica, waitForIsr } from '../helpers/replicas.js';

const FAST = ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100'];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function kcat(t: any): boolean {
  if (haveCommand('kcat')) return true;
  if (process.env.CI === 'true') t.fail('required in CI: kcat (Debian kcat), which reads leaders and ISRs');
  else t.skip('kcat not installed');
  return false;
}

function mqttUrl(c: Cluster, id: number): string {
  return `mqtt://127.0.0.1:${c.node(id).proc!.port('mqtt')}`;
}

interface PublishRun {
  acked: string[];
  refused: Array<{ value: string; err: string }>;
  ackedAtMs: Map<string, number>;
}

/** Publishes `<tag>-0`, `<tag>-1`, ... at QoS 1 to `topic` until `stop()` says so, at most `windowMax` unacknowledged. */
function publishStream(client: mqtt.MqttClient, topic: string, tag: string, windowMax: number) {
  const run: PublishRun = { acked: [], refused: [], ackedAtMs: new Map() };
  let stopped = false;
  let outstanding = 0;
  let i = 0;
  const done = (async () => {
    while (!stopped) {
      if (outstanding >= windowMax) {
        await sleep(2);
        continue;
      }
      const value = `${tag}-${i++}`;
      outstanding++;
      client.publish(topic, value, { qos: 1 }, (err) => {
        outstanding--;
        if (err) run.refused.push({ value, err: `${(err as { code?: number }).code ?? ''} ${err.message}` });
        else (run.acked.push(value), run.ackedAtMs.set(value, Date.now()));
      });
      await sleep(3);
    }
    await eventually(() => outstanding === 0, 30_000, 20);
  })();
  return { run, stop: () => ((stopped = true), done) };
}

t.test('forwarding: MQTT QoS 1, HTTP and WebSocket produce on a follower reach the leader; PUBACKed records survive a leader kill -9', { timeout: 120_000 }, async (t) => {
  if (!kcat(t)) return;
  const c = await startCluster(t, 3, { set: FAST });
  await createTopic(c, 1, 'sensors', 1);
  await createTopic(c, 1, 'strict', 1, { 'min.insync.replicas': 3 });
  const meta = await waitForIsr(c, 1, 'sensors', [1, 2, 3]);
  await waitForIsr(c, 1, 'strict', [1, 2, 3]);
  const leader = meta[0]!.leader;
  // The door is the follower elected last (the controller takes the ISR in assignment order), so
  // after the kill it still forwards, now to the new leader, the subscriber's node.
  const followers = meta[0]!.replicas.filter((id) => id !== leader);
  const [third, door] = followers.length === 2 ? (followers as [number, number]) : ([1, 2, 3].filter((id) => id !== leader) as [number, number]);
  t.comment(`sensors-0 replicas [${meta[0]!.replicas.join(', ')}], leader: node ${leader}; MQTT, HTTP and WebSocket door: node ${door}; subscriber: node ${third}`);

  // The subscriber on the third node: reverse delivery from its own replica.
  const received: string[] = [];
  const sub = await mqtt.connectAsync(mqttUrl(c, third), { protocolVersion: 5, clientId: 'dashboard', reconnectPeriod: 0 });
  t.teardown(() => sub.end(true));
  sub.on('message', (_topic, payload) => received.push(payload.toString()));
  await sub.subscribeAsync('sensors/#', { qos: 1 });

  // HTTP produce on a follower: forwarded, 200 with the leader's offsets.
  const res = await fetch(`${c.httpUrl(door)}/topics/sensors/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ key: 'sensors/http', value: 'http-0' }, { key: 'sensors/http', value: 'http-1' }]) });
  const body = (await res.json()) as { offsets?: Array<{ partition: number; offset: number }> };
  t.equal(res.status, 200, `HTTP produce on follower node ${door} answered 200: ${JSON.stringify(body)}`);
  t.same(body.offsets?.map((o) => o.offset), [0, 1], 'with the offsets the leader assigned');
  const httpAcked = res.status === 200 ? ['http-0', 'http-1'] : [];

  // WebSocket produce on the same follower: the same forwarded write path, acknowledged by `ack`.
  const ws = new WebSocket(`ws://127.0.0.1:${c.node(door).proc!.port('http')}/ws`, 'tributary.json.v1');
  t.teardown(() => ws.terminate());
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const answer = new Promise<{ type: string }>((resolve) => ws.once('message', (data) => resolve(JSON.parse(String(data)) as { type: string })));
  ws.send(JSON.stringify({ type: 'produce', id: 1, topic: 'sensors', key: 'sensors/ws', value: 'ws-0' }));
  const wsAnswer = await answer;
  t.equal(wsAnswer.type, 'ack', `WebSocket produce on follower node ${door}: ${JSON.stringify(wsAnswer)}`);
  ws.close();
  if (wsAnswer.type === 'ack') httpAcked.push('ws-0');

  // The publisher on the follower, with a leader kill in the middle of its stream.
  const pub = await mqtt.connectAsync(mqttUrl(c, door), { protocolVersion: 5, clientId: 'pi-sensor', reconnectPeriod: 0 });
  t.teardown(() => pub.end(true));
  const stream = publishStream(pub, 'sensors/pi', 'm', 10);
  await eventually(() => stream.run.acked.length >= 50, 20_000, 20);
  const firstAcks = [...stream.run.ackedAtMs.values()].slice(0, 50);
  t.comment(`before the kill: 50 PUBACKs through the forward in ${firstAcks.at(-1)! - firstAcks[0]!} ms (window of 10 QoS 1 publishes, acks=all at RF 3)`);
  await c.kill9(leader);
  const killedAtMs = Date.now();
  await eventually(() => [...stream.run.ackedAtMs.values()].filter((at) => at > killedAtMs).length >= 50, 30_000, 50);
  const { run } = stream;
  await stream.stop();
  const afterKill = [...run.ackedAtMs.values()].filter((at) => at > killedAtMs).sort((a, b) => a - b);
  t.ok(pub.connected, `the publisher stayed connected to node ${door} across the leader's death`);
  t.ok(afterKill.length >= 50, `${run.acked.length} PUBACKed in all, ${afterKill.length} after the kill (first ${afterKill[0]! - killedAtMs} ms after it); ${run.refused.length} refused: ${[...new Set(run.refused.map((r) => r.err))].join('; ') || 'none'}`);

  const newLeader = (await waitForIsr(c, door, 'sensors', [door, third]))[0]!.leader;
  t.not(newLeader, leader, `sensors-0 moved to node ${newLeader}${newLeader === third ? ': the door kept forwarding, to the new leader' : ' (the door itself: it appends locally now)'}`);

  // acks=all with min.insync.replicas=3 and one replica dead: the forwarded publish is refused.
  const strict = await pub.publishAsync('strict/pi', 'never-acked', { qos: 1 }).then(
    () => 'acknowledged',
    (err: Error & { code?: number }) => `refused (reason 0x${(err.code ?? 0).toString(16)})`,
  );
  t.match(strict, /^refused \(reason 0x80\)/, `QoS 1 to a topic needing 3 in-sync replicas with 2 alive (NOT_ENOUGH_REPLICAS; 0x88 is no PUBACK code, so 0x80): ${strict}`);
  t.ok(pub.connected, 'the refused publisher keeps its connection');

  // The subscriber on the third node got every acknowledged record from its own replica.
  const expected = [...httpAcked, ...run.acked];
  await eventually(() => expected.every((v) => received.includes(v)), 15_000, 50);
  const missed = expected.filter((v) => !received.includes(v));
  t.same(missed, [], `the subscriber on node ${third} received all ${expected.length} acknowledged records (${received.length} deliveries)`);

  await sub.endAsync();
  await pub.endAsync();
  await c.stopAll();
  // The survivors' replicas, from their files: every acknowledged record present, in order.
  const copies = await Promise.all([door, third].map((id) => readReplica(c.node(id).dataDir, 'sensors', 0)));
  for (const [k, copy] of copies.entries()) {
    const id = [door, third][k];
    const values = [...copy.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
    const firstAt = new Map<string, number>();
    values.forEach((v, i) => firstAt.has(v) || firstAt.set(v, i));
    const lost = expected.filter((v) => !firstAt.has(v));
    t.same(lost, [], `node ${id}: all ${expected.length} acknowledged records present (${values.length} records stored, ${values.length - firstAt.size} duplicates from resends: allowed by QoS 1)`);
    const byIndex = [...run.acked].sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)));
    const order = byIndex.map((v) => firstAt.get(v) ?? -1);
    const reordered = order.filter((at, i) => i > 0 && at < order[i - 1]!).length;
    t.equal(reordered, 0, `node ${id}: the PUBACKed records are stored in publish order`);
    const strictCopy = await readReplica(c.node(id).dataDir, 'strict', 0);
    t.comment(`node ${id}: strict-0 holds ${strictCopy.size} record(s) (the refused publish may be stored unacknowledged: an indefinite outcome)`);
  }
  t.same([...copies[0]!.entries()], [...copies[1]!.entries()], 'the two surviving replicas are identical');
});
