// Purpose: the uplink's cluster rules (host/sync/cluster-gate.ts, docs/uplink.md "In a cluster").
// The start-up checks of uplink.* together with cluster.*, each at its boundary and each error
// naming its keys; and the gate's decisions over an injected cluster view (the seam the node fills
// from its broker and metadata quorum): a partition starts only after its handover delay of
// uninterrupted leadership and lease, stops at once when leadership moves, and stops when the
// controller has not been heard from within the lease.
import t from 'tap';
import { loadNodeConfig, prepareNode } from '../../../host/node.js';
import { LeadershipGate, type GatedLink, type UplinkClusterView } from '../../../host/sync/cluster-gate.js';
import { createLogger } from '../../../host/logging.js';
import { freePort } from '../../helpers/cluster.js';
import { eventually, sleep, tempDir } from '../../helpers/index.js';

const base = ['--kafka-port', '0', '--mqtt-port', '-1', '--mqtt-ws-port', '-1', '--http-port', '-1', '--set', 'schemas.port=-1'];

async function prepare(t: Parameters<typeof tempDir>[0], sets: string[], clustered = true) {
  const dir = await tempDir(t);
  const port = await freePort();
  const cluster = clustered ? [`cluster.nodeId=1`, `cluster.listen=127.0.0.1:${port}`, `cluster.voters=1@127.0.0.1:${port}`] : [];
  const all = ['uplink.site=s', 'uplink.bootstrap=h:1', 'uplink.topics=t', ...cluster, ...sets];
  return prepareNode(loadNodeConfig([...base, '--data-dir', dir, ...all.flatMap((s) => ['--set', s])], {}));
}

t.test('uplink with cluster.*: the lease must end before the controller fences the node (boundary, keys named)', { timeout: 30_000 }, async (t) => {
  // Defaults: 500 + electionTicks·tickMs 1000 + two 100 ms checks = 1700 < sessionTimeoutMs 2000.
  t.equal((await prepare(t, [])).uplink?.clusterLeaseMs, 500, 'the defaults pass');
  t.equal((await prepare(t, ['uplink.clusterLeaseMs=799'])).uplink?.clusterLeaseMs, 799, '799 + 1000 + 200 = 1999 < 2000 passes');
  await t.rejects(prepare(t, ['uplink.clusterLeaseMs=800']), /uplink\.clusterLeaseMs \(800\).*cluster\.electionTicks·cluster\.tickMs \(1000\).*cluster\.sessionTimeoutMs \(2000\)/, '800 + 1000 + 200 = 2000 is refused, naming the keys');
  t.ok(await prepare(t, ['uplink.clusterLeaseMs=800', 'cluster.sessionTimeoutMs=2001']), 'a longer session admits it');
  t.ok(await prepare(t, ['uplink.clusterLeaseMs=100000'], false), 'a single node does not check it');
});

t.test('uplink with cluster.*: the handover outlasts a written request (boundary, keys named)', { timeout: 30_000 }, async (t) => {
  t.ok(await prepare(t, ['uplink.clusterHandoverMs=30000']), 'clusterHandoverMs = requestTimeoutMs (30000) passes');
  await t.rejects(prepare(t, ['uplink.clusterHandoverMs=29999']), /uplink\.clusterHandoverMs \(29999\) must be at least uplink\.requestTimeoutMs \(30000\)/, 'one below is refused');
  t.ok(await prepare(t, ['uplink.clusterHandoverMs=1000', 'uplink.requestTimeoutMs=1000', 'uplink.produceTimeoutMs=500']), 'a shorter request timeout admits a shorter handover');
  await t.rejects(prepare(t, ['uplink.clusterHandoverMs=-1']), /uplink\.clusterHandoverMs/, 'a negative handover is refused by the schema');
});

t.test('uplink with cluster.*: newest-first drain and the downlink are refused, naming both sections', { timeout: 30_000 }, async (t) => {
  await t.rejects(prepare(t, ['uplink.drainOrderTopics=t=newest-first']), /uplink\.drainOrderTopics \(t=newest-first\) cannot be used with cluster\.\*/);
  t.ok(await prepare(t, ['uplink.drainOrderTopics=t=oldest-first']), 'oldest-first is fine');
  t.ok(await prepare(t, ['uplink.drainOrderTopics=t=newest-first'], false), 'newest-first on a single node is unchanged');
  await t.rejects(prepare(t, ['uplink.downlink=cmd.s=cmd']), /uplink\.downlink cannot be used with cluster\.\*/);
});

/** A cluster view whose leader and controller contact the test sets. */
function view(nodeId: number) {
  const state = { leader: nodeId as number | null, heardMs: Date.now(), controller: false };
  const listeners = new Set<() => void>();
  const v: UplinkClusterView = {
    nodeId,
    leaderOf: () => state.leader,
    isController: () => state.controller,
    controller: () => (state.controller ? null : { id: 9, lastHeardMs: state.heardMs }),
    onLeadershipChange: (l) => (listeners.add(l), () => void listeners.delete(l)),
  };
  return { v, state, changed: () => listeners.forEach((l) => l()) };
}

/** A link that records what the gate did to it. */
function link() {
  const events: string[] = [];
  const l: GatedLink & { events: string[]; state: string; reason: string } = {
    source: { topic: 't', partition: 0 },
    running: false,
    events,
    state: '',
    reason: '',
    start() {
      (this as { running: boolean }).running = true;
      events.push('start');
    },
    async stop(state, reason) {
      (this as { running: boolean }).running = false;
      events.push(`stop ${state}`);
      this.state = state;
      this.reason = reason;
    },
    idleAs(state, reason) {
      this.state = state;
      this.reason = reason;
    },
  };
  return l;
}

t.test('leadership gate: start after the handover, stop at once on a leadership change, stop when the lease runs out', { timeout: 30_000 }, async (t) => {
  const { v, state, changed } = view(1);
  const l = link();
  const heartbeat = setInterval(() => (state.heardMs = Date.now()), 20);
  t.teardown(() => clearInterval(heartbeat));
  const gate = new LeadershipGate(v, { leaseMs: 200, handoverMs: 400 }, () => [l], createLogger('silent'));
  t.teardown(() => gate.close());
  const startedAt = Date.now();
  gate.start();
  await sleep(150);
  t.same({ running: l.running, state: l.state }, { running: false, state: 'handover' }, 'led here and heard: waiting out the handover');
  await eventually(() => l.running, 5000, 10);
  t.ok(Date.now() - startedAt >= 400, `started after ${Date.now() - startedAt} ms (handover 400 ms)`);

  state.leader = 2;
  changed();
  await eventually(() => !l.running, 1000, 5);
  t.same({ state: l.state, reason: l.reason }, { state: 'led-elsewhere', reason: 'led by node 2' }, 'leadership moved: stopped, led elsewhere');

  state.leader = 1;
  changed();
  const back = Date.now();
  await eventually(() => l.running, 5000, 10);
  t.ok(Date.now() - back >= 400, 'led again: a new handover before it starts');

  clearInterval(heartbeat); // the controller goes silent
  const silentAt = Date.now();
  await eventually(() => !l.running, 5000, 10);
  const stoppedAfterMs = Date.now() - silentAt;
  t.ok(stoppedAfterMs >= 150 && stoppedAfterMs <= 200 + 2 * gate.checkIntervalMs + 500, `no contact: stopped ${stoppedAfterMs} ms after the last frame (lease 200 ms, checks every ${gate.checkIntervalMs} ms; loaded-machine slack 500 ms)`);
  t.equal(l.state, 'no-lease');
  await sleep(600);
  t.equal(l.running, false, 'no restart without contact, however long it leads');
  t.same(l.events, ['start', 'stop led-elsewhere', 'start', 'stop no-lease'], 'the gate’s actions in order');
});

t.test('leadership gate: the controller itself holds the lease while it is the controller', { timeout: 30_000 }, async (t) => {
  const { v, state } = view(1);
  state.controller = true;
  state.heardMs = 0; // it hears no one as a follower: being the controller is its contact
  const l = link();
  const gate = new LeadershipGate(v, { leaseMs: 100, handoverMs: 0 }, () => [l], createLogger('silent'));
  t.teardown(() => gate.close());
  gate.start();
  await eventually(() => l.running, 2000, 10);
  t.pass('started as the controller');
  state.controller = false; // stepped down, no controller known
  await eventually(() => !l.running, 2000, 10);
  t.equal(l.state, 'no-lease', 'stopped once the lease ran out after stepping down');
});

t.test('leadership gate: a pause of this process longer than the lease is a lapse, even when a frame arrived during it', { timeout: 30_000 }, async (t) => {
  const { v, state } = view(1);
  const l = link();
  const heartbeat = setInterval(() => (state.heardMs = Date.now()), 20);
  t.teardown(() => clearInterval(heartbeat));
  const gate = new LeadershipGate(v, { leaseMs: 200, handoverMs: 100 }, () => [l], createLogger('silent'));
  t.teardown(() => gate.close());
  gate.start();
  await eventually(() => l.running, 5000, 10);
  // The event loop held for 400 ms (a GC pause, SIGSTOP); the controller's frame "arrives" at its end.
  const until = Date.now() + 400;
  while (Date.now() < until) {
    // busy: no timer of this process runs
  }
  state.heardMs = Date.now();
  t.equal(gate.allows({ topic: 't', partition: 0 }), false, 'the write-time check refuses: the process was paused past the lease');
  await eventually(() => !l.running, 2000, 5);
  t.equal(l.state, 'no-lease', 'the gate stopped the link');
  await eventually(() => l.running, 5000, 10);
  t.same(l.events, ['start', 'stop no-lease', 'start'], 'and started it again after a handover, contact being fresh');
});
