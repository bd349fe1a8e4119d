// The cluster's table of committed wills (gateway/mqtt/fenced-wills.ts): who publishes a fenced
// node's wills (the leader of __mqtt_sessions only), when (at once, or after the MQTT 5 delay
// counted from the fence), not for a session resumed elsewhere within the delay, publish before
// tombstone with each step tried again on failure, and a restart's wills of the previous run.
// Pure logic, driven by `check()`; the same over real processes is cluster-mqtt-wills.test.ts.
import t from 'tap';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { FencedWills } from '../../../gateway/mqtt/fenced-wills.js';
import type { AedesPacket } from '../../../gateway/mqtt/persistence.js';

const ME = 2;
const DEAD = 1;

function will(topic: string, brokerId = 'old-run', properties?: Record<string, unknown>): AedesPacket {
  const p: AedesPacket = { cmd: 'publish', topic, payload: Buffer.from(`${topic} gone`), qos: 1, retain: false, brokerId, clientId: topic.split('/')[1] };
  if (properties) p.properties = properties;
  return p;
}

interface World {
  wills: FencedWills;
  fenced: Set<number>;
  leading: { now: boolean };
  owners: Map<string, { node: number; clean: boolean; offset: number }>;
  published: AedesPacket[];
  tombstones: string[];
  failPublish: { next: number };
  failTombstone: { next: number };
  outcome(name: string): number;
}

function world(): World {
  const fenced = new Set<number>();
  const leading = { now: true };
  const owners = new Map<string, { node: number; clean: boolean; offset: number }>();
  const published: AedesPacket[] = [];
  const tombstones: string[] = [];
  const failPublish = { next: 0 };
  const failTombstone = { next: 0 };
  const metrics = new MetricsRegistry();
  const outcomes = metrics.counter('tributary_mqtt_fenced_wills_total', 'test');
  const wills = new FencedWills({
    nodeId: ME,
    fenced: (id) => fenced.has(id),
    leads: () => leading.now,
    owner: (clientId) => owners.get(clientId),
    publish: () => async (w) => {
      if (failPublish.next > 0) {
        failPublish.next--;
        throw new Error('no quorum');
      }
      published.push(w);
      return true;
    },
    currentBrokerId: () => 'this-run',
    tombstone: async (node, clientId) => {
      if (failTombstone.next > 0) {
        failTombstone.next--;
        throw new Error('no leader');
      }
      tombstones.push(`${node}/${clientId}`);
    },
    logger: silentLogger,
    outcomes,
    rareLog: () => undefined,
  });
  return { wills, fenced, leading, owners, published, tombstones, failPublish, failTombstone, outcome: (name) => outcomes.value({ outcome: name }) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

t.test('a fenced node\'s will without a delay: published once by the leader, then tombstoned; nothing while the node is live', { timeout: 5_000 }, async (t) => {
  const w = world();
  w.wills.apply(DEAD, 'd1', { packet: will('status/d1'), delayMs: 0 }, 10);
  w.wills.apply(ME, 'mine', { packet: will('status/mine', 'this-run'), delayMs: 0 }, 11);
  await w.wills.check();
  t.same(w.published, [], 'node 1 live: nothing published');
  w.fenced.add(DEAD);
  w.fenced.add(ME); // never this node's own, whatever the image says
  w.leading.now = false;
  await w.wills.check();
  t.same(w.published, [], 'not the leader of __mqtt_sessions: nothing published');
  w.leading.now = true;
  await w.wills.check();
  await settle();
  t.same(w.published.map((p) => p.topic), ['status/d1'], 'the leader published the fenced node\'s will, not its own');
  t.same(w.tombstones, ['1/d1'], 'then tombstoned it');
  t.equal(w.wills.heldOf(DEAD), 0, 'and dropped it');
  await w.wills.check();
  t.equal(w.published.length, 1, 'a later check publishes nothing again');
  t.equal(w.outcome('published'), 1);
});

t.test('an MQTT 5 will delay counts from the fence; a node back before it ends stops it', { timeout: 5_000 }, async (t) => {
  const w = world();
  w.wills.apply(DEAD, 'd2', { packet: will('status/d2', 'old-run', { willDelayInterval: 1, contentType: 'text/plain' }), delayMs: 300 }, 5);
  w.fenced.add(DEAD);
  await w.wills.check();
  t.same(w.published, [], 'not due right after the fence');
  w.fenced.delete(DEAD);
  await w.wills.check();
  await new Promise((resolve) => setTimeout(resolve, 350));
  w.fenced.add(DEAD); // fenced again: the delay starts over
  await w.wills.check();
  t.same(w.published, [], 'the node was back meanwhile: the delay counts from the new fence');
  await new Promise((resolve) => setTimeout(resolve, 350));
  await w.wills.check();
  await settle();
  t.equal(w.published.length, 1, 'published once the delay passed');
  t.same(w.published[0].properties, { contentType: 'text/plain' }, 'with the will properties, without the Will Delay Interval');
  t.not(w.published[0].brokerId, 'old-run', 'a fresh packet: not the dead node\'s broker id');
});

t.test('a session resumed on another node within the delay: not published; a clean start elsewhere: at once; no delay: published anyway', { timeout: 5_000 }, async (t) => {
  const w = world();
  w.wills.apply(DEAD, 'resumed', { packet: will('status/resumed'), delayMs: 60_000 }, 20);
  w.wills.apply(DEAD, 'cleaned', { packet: will('status/cleaned'), delayMs: 60_000 }, 21);
  w.wills.apply(DEAD, 'plain', { packet: will('status/plain'), delayMs: 0 }, 22);
  w.wills.apply(DEAD, 'older', { packet: will('status/older'), delayMs: 60_000 }, 23);
  w.owners.set('resumed', { node: 3, clean: false, offset: 30 });
  w.owners.set('cleaned', { node: 3, clean: true, offset: 31 });
  w.owners.set('plain', { node: 3, clean: false, offset: 32 });
  w.owners.set('older', { node: 3, clean: false, offset: 4 }); // before the will: not a resumption
  w.fenced.add(DEAD);
  await w.wills.check();
  await settle();
  t.same(w.published.map((p) => p.topic).sort(), ['status/cleaned', 'status/plain'], 'the clean start ended the session; a will without delay is owed whatever happened since');
  t.same(w.tombstones.sort(), ['1/cleaned', '1/plain', '1/resumed'], 'the resumed session\'s will is tombstoned unpublished; the older owner\'s waits for its delay');
  t.equal(w.outcome('resumed'), 1);
  t.equal(w.wills.heldOf(DEAD), 1);
});

t.test('publish before tombstone: a failed publish is tried again; a failed tombstone is written again without a second publish', { timeout: 5_000 }, async (t) => {
  const w = world();
  w.wills.apply(DEAD, 'd3', { packet: will('status/d3'), delayMs: 0 }, 7);
  w.fenced.add(DEAD);
  w.failPublish.next = 1;
  await w.wills.check();
  await settle();
  t.same([w.published.length, w.tombstones.length], [0, 0], 'the publish failed: nothing tombstoned');
  w.failTombstone.next = 1;
  await w.wills.check();
  await settle();
  t.same([w.published.length, w.tombstones.length], [1, 0], 'published; the tombstone failed');
  await w.wills.check();
  await settle();
  t.same([w.published.length, w.tombstones], [1, ['1/d3']], 'the tombstone written at the next check, the will not published again');
  // the follower applies the tombstone: the entry is gone either way
  w.wills.apply(DEAD, 'd3', null, 8);
  t.equal(w.wills.heldOf(DEAD), 0);
});

t.test('a restart: the previous run\'s wills still committed are published; one a survivor tombstoned is not; this run\'s record of the same client stays', { timeout: 5_000 }, async (t) => {
  const w = world();
  w.wills.apply(ME, 'gone', { packet: will('status/gone'), delayMs: 0 }, 1);
  w.wills.apply(ME, 'owed', { packet: will('status/owed'), delayMs: 5_000 }, 2);
  w.wills.apply(ME, 'back', { packet: will('status/back'), delayMs: 0 }, 3);
  w.wills.apply(ME, 'gone', null, 4); // the leader published it while this node was fenced
  w.wills.apply(ME, 'back', { packet: will('status/back', 'this-run'), delayMs: 0 }, 5); // reconnected here
  t.equal(w.wills.orphans(), 2, 'two wills of the previous run are still owed');
  let barriers = 0;
  await w.wills.publishOrphansWhenCaughtUp(async () => {
    if (++barriers === 1) throw new Error('this node is not the leader of __mqtt_sessions-0');
    t.same(w.published, [], 'nothing published before the barrier was taken');
  }, new AbortController().signal);
  t.equal(barriers, 2, 'a refused barrier is written again');
  t.same(w.published.map((p) => p.topic).sort(), ['status/back', 'status/owed'], 'published at once, delay or not; the one a survivor published is not');
  t.same(w.tombstones, ['2/owed'], 'tombstoned, but for the key that holds this run\'s will now');
  t.equal(w.wills.orphans(), 0);
});
