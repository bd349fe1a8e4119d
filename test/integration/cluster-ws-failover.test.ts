// Purpose: a WebSocket dashboard across a leader kill (issue 11: "MQTT QoS 1 publishers and a
// WebSocket dashboard stay connected across a leader kill ... with every PUBACKed message present
// once"). Three real `tributary start` processes on loopback, one partition at replication
// factor 3. Two MQTT QoS 1 publishers (mqtt.js, MQTT 5) write through a node that does not lead
// the partition (their appends are forwarded, host/cluster/forward.ts); a dashboard (the `ws`
// package, the tributary.json.v1 protocol of docs/websocket.md) reads the topic from the third
// node's own replica, committed data only. The leader is killed with kill -9 mid-stream. What
// was acknowledged: every PUBACKed payload. It must reach the dashboard exactly once and in
// publish order, the dashboard's socket staying open (were it closed, it reconnects to another
// live node and resumes after its last offset: counted and reported), and nothing the dashboard
// saw may disagree with what the surviving replicas hold at that offset (it read nothing that was
// later truncated) — the queue checker over the dashboard's read and both survivors' files.
import t from 'tap';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { eventually, haveCommand, sleep } from '../helpers/index.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { createTopic, readReplica, waitForIsr } from '../helpers/replicas.js';
import { checkQueue, describeVerdict, type ReadRecord } from '../helpers/queue-checker.js';

const FAST = ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100'];
/** PUBACKs each publisher collects before the kill and after it. */
const ACKS_EACH_SIDE = 40;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function kcatPresent(t: any): boolean {
  if (haveCommand('kcat')) return true;
  if (process.env.CI === 'true') t.fail('required in CI: kcat (Debian kcat), which reads leaders and ISRs');
  else t.skip('kcat not installed');
  return false;
}

/** Publishes `<tag>-0`, `<tag>-1`, ... at QoS 1 until stopped, at most `windowMax` unacknowledged; PUBACKed values in ack order. */
function publishStream(client: mqtt.MqttClient, topic: string, tag: string, windowMax: number) {
  const acked: string[] = [];
  const ackedAtMs: number[] = [];
  const refused: string[] = [];
  let sent = 0;
  let outstanding = 0;
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      if (outstanding >= windowMax) {
        await sleep(2);
        continue;
      }
      const value = `${tag}-${sent++}`;
      outstanding++;
      client.publish(topic, value, { qos: 1 }, (err) => {
        outstanding--;
        if (err) refused.push(`${value}: ${(err as { code?: number }).code ?? ''} ${err.message}`);
        else (acked.push(value), ackedAtMs.push(Date.now()));
      });
      await sleep(4);
    }
    await eventually(() => outstanding === 0, 30_000, 20);
  })();
  return { acked, ackedAtMs, refused, sentValues: () => Array.from({ length: sent }, (_, i) => `${tag}-${i}`), stop: () => ((stopped = true), done) };
}

/**
 * A dashboard: subscribes to `topic` from the earliest offset on one node and records every
 * delivered record. If its socket closes it reconnects to the next node of `nodes` and resumes
 * after the last offset it received (start: offset), as a dashboard script would.
 */
class Dashboard {
  readonly records: ReadRecord[] = [];
  readonly errors: string[] = [];
  reconnects = 0;
  private ws: WebSocket | null = null;
  private closing = false;
  private next = 0;

  constructor(
    private readonly c: Cluster,
    private readonly topic: string,
    private nodes: number[],
  ) {}

  get node(): number {
    return this.nodes[0]!;
  }

  async open(): Promise<void> {
    const ws = new WebSocket(`ws://127.0.0.1:${this.c.node(this.node).proc!.port('http')}/ws`, 'tributary.json.v1');
    this.ws = ws;
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const subscribed = new Promise<Record<string, unknown>>((resolve) => {
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as { type: string; partition?: number; records?: Array<{ offset: number; value: string }> };
        if (f.type === 'records') for (const r of f.records!) (this.records.push({ partition: f.partition!, offset: r.offset, value: r.value }), (this.next = r.offset + 1));
        else if (f.type === 'subscribed' || f.type === 'error') resolve(f);
        if (f.type === 'error') this.errors.push(JSON.stringify(f));
      });
    });
    ws.once('close', (code) => {
      if (this.closing) return;
      this.errors.push(`socket to node ${this.node} closed (${code})`);
      this.reconnects++;
      this.nodes = [...this.nodes.slice(1), this.nodes[0]!];
      void this.open().catch((err: Error) => this.errors.push(`reconnect: ${err.message}`));
    });
    const start = this.next === 0 ? { start: 'earliest' } : { start: 'offset', offset: this.next };
    ws.send(JSON.stringify({ type: 'subscribe', id: 1, topic: this.topic, partitions: [0], ...start }));
    const answer = await subscribed;
    if (answer.type !== 'subscribed') throw new Error(`subscribe refused: ${JSON.stringify(answer)}`);
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  close(): void {
    this.closing = true;
    this.ws?.terminate();
  }
}

t.test('websocket dashboard: stays connected across a leader kill -9 and receives every PUBACKed MQTT QoS 1 message once, in order, committed only', { timeout: 120_000 }, async (t) => {
  if (!kcatPresent(t)) return;
  const c = await startCluster(t, 3, { set: FAST });
  await createTopic(c, 1, 'sensors', 1);
  const meta = (await waitForIsr(c, 1, 'sensors', [1, 2, 3]))[0]!;
  const leader = meta.leader;
  const [door, watch] = [1, 2, 3].filter((id) => id !== leader) as [number, number];
  t.comment(`sensors-0 leader: node ${leader}; MQTT publishers on node ${door}; WebSocket dashboard on node ${watch}`);

  const dashboard = new Dashboard(c, 'sensors', [watch, door]);
  t.teardown(() => dashboard.close());
  await dashboard.open();

  const url = `mqtt://127.0.0.1:${c.node(door).proc!.port('mqtt')}`;
  const pubs = await Promise.all(['pi-a', 'pi-b'].map((clientId) => mqtt.connectAsync(url, { protocolVersion: 5, clientId, reconnectPeriod: 0 })));
  t.teardown(() => pubs.forEach((p) => p.end(true)));
  const streams = pubs.map((p, i) => publishStream(p, `sensors/${i === 0 ? 'a' : 'b'}`, i === 0 ? 'a' : 'b', 8));
  await eventually(() => streams.every((s) => s.acked.length >= ACKS_EACH_SIDE), 30_000, 20);

  await c.kill9(leader);
  const killedAtMs = Date.now();
  await eventually(() => streams.every((s) => s.ackedAtMs.filter((at) => at > killedAtMs).length >= ACKS_EACH_SIDE), 40_000, 50);
  await Promise.all(streams.map((s) => s.stop()));
  const newLeader = (await waitForIsr(c, door, 'sensors', [door, watch], 20_000))[0]!.leader;
  for (const [i, s] of streams.entries()) {
    const after = s.ackedAtMs.filter((at) => at > killedAtMs);
    t.ok(pubs[i]!.connected, `publisher ${i === 0 ? 'a' : 'b'} stayed connected to node ${door}: ${s.acked.length} PUBACKed, ${after.length} after the kill (first ${after[0]! - killedAtMs} ms after it); refused: ${s.refused.join('; ') || 'none'}`);
  }
  t.comment(`node ${newLeader} leads sensors-0 after the kill of node ${leader}`);

  const acked = streams.flatMap((s) => s.acked);
  const delivered = () => new Set(dashboard.records.map((r) => r.value));
  await eventually(() => acked.every((v) => delivered().has(v)), 20_000, 50).catch(() => null);
  t.ok(dashboard.connected && dashboard.reconnects === 0, `the dashboard on node ${watch} stayed connected (${dashboard.reconnects} reconnects; errors: ${dashboard.errors.join('; ') || 'none'}); ${dashboard.records.length} records delivered`);
  const missing = acked.filter((v) => !delivered().has(v));
  t.same(missing, [], `every one of ${acked.length} PUBACKed messages reached the dashboard`);

  // Exactly once and in publish order, per publisher, as delivered.
  const counts = new Map<string, number>();
  for (const r of dashboard.records) counts.set(r.value, (counts.get(r.value) ?? 0) + 1);
  t.same([...counts].filter(([, n]) => n > 1).map(([v, n]) => `${v} ×${n}`), [], 'no message delivered twice');
  for (const [i, s] of streams.entries()) {
    const tag = i === 0 ? 'a' : 'b';
    const order = dashboard.records.filter((r) => r.value.startsWith(`${tag}-`)).map((r) => Number(r.value.slice(2)));
    const backwards = order.filter((n, k) => k > 0 && n <= order[k - 1]!).length;
    t.equal(backwards, 0, `publisher ${tag}: its ${s.acked.length} PUBACKed messages arrived in publish order`);
  }

  dashboard.close();
  await Promise.all(pubs.map((p) => p.endAsync()));
  await c.stopAll();
  // What the dashboard saw against the survivors' files: the same record at every offset (it read
  // nothing later truncated), every PUBACKed message once, offsets increasing.
  const reads = [{ source: `WebSocket dashboard on node ${watch}`, records: dashboard.records }];
  for (const id of [door, watch]) reads.push({ source: `node ${id}'s files`, records: [...(await readReplica(c.node(id).dataDir, 'sensors', 0))].map(([offset, value]) => ({ partition: 0, offset, value })) });
  const verdict = checkQueue({ sent: streams.flatMap((s) => s.sentValues()), acked: acked.map((value) => ({ value, partition: 0 })), reads });
  t.comment(describeVerdict(verdict));
  t.ok(verdict.valid, 'queue checker: nothing lost, duplicated, reordered or inconsistent between the dashboard and the surviving replicas');
});
