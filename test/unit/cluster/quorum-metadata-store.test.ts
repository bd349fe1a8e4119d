// Purpose: the Raft-backed MetadataStore (host/cluster/quorum-metadata-store.ts) and its driver
// (quorum.ts), three voters in one process over the in-memory hub with real files: a proposal
// made on a follower commits through the controller and moves every node's image and fires every
// node's listeners; a proposal with no controller fails with NOT_CONTROLLER; proposalsPendingMax
// is a hard bound (the one past it is refused, the ones at it commit); a record that does not fit
// the image fails the same way everywhere and changes nothing; a restarted node restores its
// image from its snapshot (the raft log compacted every snapshotEntries) plus the entries after
// it; an entry of another format is refused; a proposal forwarded to a controller that is
// replaced fails when this node learns it (not after proposalTimeoutMs), and a retry commits.
import t, { type Test } from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../../host/logging.js';
import { MemoryHub } from '../../../host/cluster/transport.js';
import { decodeEntry, decodeImage, encodeEntry, encodeImage, QuorumMetadataStore } from '../../../host/cluster/quorum-metadata-store.js';
import { applyRecords, EMPTY_IMAGE, type MetadataRecord } from '../../../host/broker/metadata/records.js';
import { BrokerError } from '../../../host/errors/broker-error.js';
import { prng } from '../../helpers/codec-inputs.js';
import { eventually, tempDir } from '../../helpers/index.js';

const topic = (name: string): MetadataRecord => ({ type: 'topic', name, topicId: `id-${name}`, partitions: 1, replicationFactor: 1, assignment: [[1]], createdMs: 1 });

const QUORUM = {
  voters: [1, 2, 3],
  electionTicks: 10,
  heartbeatTicks: 1,
  tickMs: 10,
  proposalsPendingMax: 64,
  proposalTimeoutMs: 5000,
  snapshotEntries: 1000,
  frameBytesMax: 1 << 20,
  recordBytesMax: 1 << 20,
  storageRewriteBytes: 1 << 20,
  logger: silentLogger,
};

async function openNode(t: Test, hub: MemoryHub, dir: string, id: number, over: Partial<typeof QUORUM> = {}) {
  const store = await QuorumMetadataStore.open({ dataDir: dir, identity: { nodeId: id, clusterId: 'c' }, transport: hub.connect(String(id)), logger: silentLogger, quorum: { ...QUORUM, random: prng(id), ...over } });
  t.teardown(() => store.close());
  return store;
}

async function cluster(t: Test, over: Partial<typeof QUORUM> = {}) {
  const hub = new MemoryHub({ random: prng(7) });
  const dirs = [await tempDir(t), await tempDir(t), await tempDir(t)];
  const stores = await Promise.all([1, 2, 3].map((id) => openNode(t, hub, dirs[id - 1]!, id, over)));
  const leader = await eventually(() => stores.find((s) => s.quorum.isLeader && stores.every((o) => o.quorum.leader === s.quorum.status().nodeId)), 10_000);
  return { hub, dirs, stores, leader: leader!, followers: stores.filter((s) => s !== leader) };
}

t.test('quorum store: a proposal on a follower commits through the controller and reaches every node and listener', async (t) => {
  const { stores, followers } = await cluster(t);
  const heard = stores.map(() => [] as string[]);
  stores.forEach((s, i) => s.onChange((_img, records) => heard[i]!.push(...records.map((r) => (r.type === 'topic' ? r.name : r.type)))));
  const image = await followers[0]!.propose([topic('a')]);
  t.ok(image.topics.has('a'), 'the proposer reads its own write');
  t.equal(image.node.nodeId, followers[0]!.image().node.nodeId, 'the image carries this node\'s own identity');
  await eventually(() => stores.every((s) => s.image().topics.has('a')));
  await eventually(() => heard.every((h) => h.includes('a')));
  t.pass('every image and every listener');
  await t.rejects(followers[1]!.propose([{ type: 'nodeIdentity', nodeId: 9, clusterId: 'x' }]), /not replicated/, 'node identity is not a replicated record');
});

t.test('quorum store: a record that does not fit fails everywhere alike and changes nothing', async (t) => {
  const { stores, leader, followers } = await cluster(t);
  await leader.propose([topic('x')]);
  await t.rejects(followers[0]!.propose([topic('y'), topic('x')]), { code: 'TOPIC_ALREADY_EXISTS' });
  await leader.propose([topic('z')]);
  await eventually(() => stores.every((s) => s.image().topics.has('z')));
  t.ok(stores.every((s) => !s.image().topics.has('y')), 'the failed proposal changed nothing on any node');
});

t.test('quorum store: no controller → NOT_CONTROLLER, retriable', async (t) => {
  const hub = new MemoryHub({ random: prng(3) });
  const alone = await openNode(t, hub, await tempDir(t), 1);
  const err = await alone.propose([topic('a')]).catch((e: unknown) => e);
  t.ok(err instanceof BrokerError && err.code === 'NOT_CONTROLLER', String(err));
  t.match((err as Error).message, /none is elected yet|no controller/);
});

t.test('quorum store: proposalsPendingMax refuses the proposal past it, not the ones at it', async (t) => {
  const { leader } = await cluster(t, { proposalsPendingMax: 2 });
  const results = await Promise.allSettled([leader.propose([topic('p1')]), leader.propose([topic('p2')]), leader.propose([topic('p3')])]);
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected']);
  t.equal(((results[2] as PromiseRejectedResult).reason as BrokerError).code, 'LIMIT_EXCEEDED');
  t.match(((results[2] as PromiseRejectedResult).reason as Error).message, /cluster\.proposalsPendingMax/);
});

t.test('quorum store: a restart restores the snapshot and replays only what follows it', async (t) => {
  const { hub, dirs, stores, leader } = await cluster(t, { snapshotEntries: 5 });
  for (let i = 0; i < 12; i++) await leader.propose([topic(`t${i}`)]);
  const third = stores[2]!;
  await eventually(() => third.image().topics.size === 12);
  const before = third.quorum.status();
  t.ok(before.snapshotIndex >= 5, `node 3 compacted its raft log (snapshot at ${before.snapshotIndex}, applied ${before.appliedIndex})`);
  await third.close();
  // Cut off from the others: what it shows after open comes from its own disk alone.
  const hub2 = new MemoryHub({ random: prng(9) });
  const reopened = await openNode(t, hub2, dirs[2]!, 3, { snapshotEntries: 5 });
  t.equal(reopened.image().topics.size, 12, 'all 12 topics back from snapshot + replay, without any peer');
  t.equal(reopened.quorum.status().snapshotIndex, before.snapshotIndex);
  const raw = await readFile(join(dirs[2]!, 'cluster', 'raft.log'));
  t.ok(raw.length > 0);
  void hub;
});

t.test('quorum store: an entry of another format is refused', async (t) => {
  t.same(decodeEntry(encodeEntry([topic('a')])), [topic('a')]);
  t.throws(() => decodeEntry(new TextEncoder().encode('{"v":2,"records":[]}')), /format 2/);
});

t.test('quorum store: a proposal on a controller cut off from the others is rejected NOT_CONTROLLER when its entry is replaced, and never applied', async (t) => {
  const { hub, stores, leader, followers } = await cluster(t);
  const oldId = leader.quorum.status().nodeId;
  hub.isolate(String(oldId));
  const lost = leader.propose([topic('lost')]).then(
    () => 'resolved',
    (err: BrokerError) => err.code,
  );
  const next = await eventually(() => followers.find((s) => s.quorum.isLeader && followers.every((o) => o.quorum.leader === s.quorum.status().nodeId)), 10_000);
  await next!.propose([topic('won')]);
  hub.heal();
  t.equal(await lost, 'NOT_CONTROLLER', 'the cut-off controller answers NOT_CONTROLLER once its entry is replaced');
  await eventually(() => stores.every((s) => s.image().topics.has('won')), 10_000);
  t.ok(stores.every((s) => !s.image().topics.has('lost')), 'the lost proposal is applied nowhere');
  t.ok(leader.quorum.status().term > 1 && !leader.quorum.isLeader, 'the old controller follows the new term');
});

t.test('quorum store: a proposal forwarded to a controller that is replaced fails at the election, not after proposalTimeoutMs, and a retry commits', async (t) => {
  const { hub, stores, leader, followers } = await cluster(t);
  const oldId = leader.quorum.status().nodeId;
  // Cut off the controller: a follower's forward to it is dropped on the way, as to a dead node.
  hub.isolate(String(oldId));
  const started = Date.now();
  const outcome = await followers[0]!.propose([topic('stranded')]).then(
    () => ({ code: 'resolved', message: '', ms: Date.now() - started }),
    (err: BrokerError) => ({ code: err.code, message: err.message, ms: Date.now() - started }),
  );
  t.equal(outcome.code, 'REQUEST_TIMED_OUT', "the forward fails with the timeout's code (its entry may still commit)");
  t.match(outcome.message, new RegExp(`controller ${oldId} was replaced \\((now node \\d+|no controller known yet)\\)`), `its message names the old controller and what replaced it: ${outcome.message}`);
  t.ok(outcome.ms < QUORUM.proposalTimeoutMs / 2, `it failed ${outcome.ms} ms after the proposal, well before cluster.proposalTimeoutMs (${QUORUM.proposalTimeoutMs} ms)`);
  // Retried as the append forwarder's producer-id reservation does, while the election runs.
  await eventually(() => followers[0]!.propose([topic('retried')]).then(() => true, (err: BrokerError) => (err.code === 'NOT_CONTROLLER' ? null : Promise.reject(err))), 10_000, 20);
  t.ok(followers[0]!.image().topics.has('retried'), 'the retry commits through the new controller (applied on the proposer when it resolves)');
  hub.heal();
  await eventually(() => stores.every((s) => s.image().topics.has('retried')), 10_000);
});

t.test('a snapshot keeps topics, producer ids, ACLs and SCRAM credentials', async (t) => {
  const records: MetadataRecord[] = [
    { type: 'topic', name: 'a', topicId: 'id-a', partitions: 2, replicationFactor: 1, assignment: [[1], [1]], createdMs: 1 },
    { type: 'producerIds', reservedUpTo: 5000 },
    { type: 'acl', binding: { resourceType: 2, resourceName: 'a', patternType: 3, principal: 'User:alice', host: '*', operation: 3, permission: 3 } },
    { type: 'scramCredential', user: 'alice', mechanism: 'SCRAM-SHA-256', iterations: 4096, salt: Buffer.from('salt').toString('base64'), storedKey: Buffer.from('stored').toString('base64'), serverKey: Buffer.from('server').toString('base64') },
  ];
  const node = { nodeId: 1, clusterId: 'c' };
  const image = applyRecords({ ...EMPTY_IMAGE, node }, records);
  const back = decodeImage(encodeImage(image), node);
  t.same([...back.topics.keys()], ['a']);
  t.equal(back.producerIdsReservedUpTo, 5000);
  t.same(back.acls, image.acls, 'ACLs survive the snapshot');
  t.same(Buffer.from(back.scram.get('alice')!.get('SCRAM-SHA-256')!.storedKey).toString(), 'stored', 'SCRAM credentials survive the snapshot');
});
