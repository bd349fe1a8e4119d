// Purpose: the metadata file store applies records all or none, keeps topics.json and
// producer-ids in their existing formats (a topics.json written before this store loads as is),
// comes back identical after a restart, ignores torn temp files from a crash, and the deciding
// half (topic-admin.ts) refuses bad requests with the field named.
import t from 'tap';
import { readFile, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FileMetadataStore } from '../../../host/broker/metadata/file-store.js';
import { applyRecords, EMPTY_IMAGE, type MetadataImage, type MetadataRecord } from '../../../host/broker/metadata/records.js';
import { decideCreateTopic, decideCreatePartitions, decideDeleteTopic, decideAlterConfig, type AdminContext } from '../../../host/broker/topic-admin.js';
import { ProducerIds } from '../../../host/broker/producer-ids.js';
import { TOPICS_FILE } from '../../../host/broker/topic-registry.js';
import { BrokerError } from '../../../host/errors/index.js';
import { tempDir } from '../../helpers/index.js';

const topic = (name: string, partitions: number, id = `id-${name}`): MetadataRecord => ({
  type: 'topic',
  name,
  topicId: id,
  partitions,
  replicationFactor: 1,
  assignment: Array.from({ length: partitions }, () => [0]),
  createdMs: 1000,
});

t.test('metadata store: records apply to the image, reach topics.json in its old format, and listeners hear them', async (t) => {
  const dir = await tempDir(t);
  const store = await FileMetadataStore.open(dir);
  const heard: string[][] = [];
  store.onChange((_image, records) => heard.push(records.map((r) => r.type)));
  const image = await store.propose([topic('a', 2), { type: 'config', topic: 'a', key: 'retention.ms', value: 5000 }]);
  t.equal(image.topics.get('a')?.partitions, 2);
  t.same(image.topics.get('a')?.overrides, { 'retention.ms': 5000 });
  t.equal(store.image(), image, 'the image is what the proposal produced');
  t.same(heard, [['topic', 'config']]);
  const doc = JSON.parse(await readFile(join(dir, TOPICS_FILE), 'utf8'));
  t.same(doc, {
    format: 'tributary-topics',
    version: 1,
    topics: [{ name: 'a', topicId: 'id-a', partitions: 2, createdMs: 1000, overrides: { 'retention.ms': 5000 } }],
    pendingDeletes: [],
  }, 'topics.json keeps its format: no replication or assignment fields');

  await store.propose([{ type: 'partitionCount', topic: 'a', partitions: 3, assignment: [[0]] }, { type: 'config', topic: 'a', key: 'retention.ms', value: null }]);
  t.equal(store.image().topics.get('a')?.partitions, 3);
  t.same(store.image().topics.get('a')?.overrides, {}, 'a null config value removes the override');
  await store.propose([{ type: 'removeTopic', name: 'a', topicId: 'id-a' }]);
  t.notOk(store.image().topics.has('a'));
  t.same(store.pendingDeletions(), [{ name: 'a', topicId: 'id-a', partitions: 3 }], 'a removed topic stays pending until its directories are gone');
  await store.deletionDone('a', 'id-a');
  t.same(store.pendingDeletions(), []);
  t.same(await readdir(dir), [TOPICS_FILE], 'no temp file left');
});

t.test('metadata store: a record that does not fit changes nothing, in memory or on disk', async (t) => {
  const dir = await tempDir(t);
  const store = await FileMetadataStore.open(dir);
  await store.propose([topic('a', 1)]);
  const before = await readFile(join(dir, TOPICS_FILE), 'utf8');
  const image = store.image();
  await t.rejects(store.propose([topic('b', 1), topic('a', 1)]), /topic a exists already/);
  await t.rejects(store.propose([{ type: 'config', topic: 'nope', key: 'flush', value: 'always' }]), /no topic nope/);
  await t.rejects(store.propose([{ type: 'removeTopic', name: 'a', topicId: 'other' }]), /has id id-a/);
  await t.rejects(store.propose([{ type: 'producerIds', reservedUpTo: 10 }, topic('c', 1)]), /cannot change both/);
  t.equal(store.image(), image);
  t.notOk(store.image().topics.has('b'), 'the first record of a refused proposal is not applied either');
  t.equal(await readFile(join(dir, TOPICS_FILE), 'utf8'), before);
  await store.propose([{ type: 'producerIds', reservedUpTo: 10 }]);
  await t.rejects(store.propose([{ type: 'producerIds', reservedUpTo: 5 }]), /cannot end at 5/, 'producer-id blocks never go backwards');
});

t.test('metadata store: reopening gives the same image (topics, configs, producer ids, pending deletions, identity)', async (t) => {
  const dir = await tempDir(t);
  const identity = { nodeId: 3, clusterId: 'site-a' };
  const first = await FileMetadataStore.open(dir, { identity });
  await first.propose([topic('a', 2), { type: 'config', topic: 'a', key: 'cleanup.policy', value: 'compact' }]);
  await first.propose([topic('gone', 1)]);
  await first.propose([{ type: 'removeTopic', name: 'gone', topicId: 'id-gone' }]);
  await first.propose([{ type: 'producerIds', reservedUpTo: 2000 }]);
  const again = await FileMetadataStore.open(dir, { identity });
  const a = again.image().topics.get('a')!;
  t.same([a.partitions, a.topicId, a.createdMs, a.overrides], [2, 'id-a', 1000, { 'cleanup.policy': 'compact' }]);
  t.same([a.replicationFactor, a.assignment], [1, [[3], [3]]], 'one node: factor 1, every partition on this node');
  t.same(again.image().node, identity);
  t.equal(again.image().producerIdsReservedUpTo, 2000);
  t.same(again.pendingDeletions(), [{ name: 'gone', topicId: 'id-gone', partitions: 1 }]);
});

t.test('metadata store: a topics.json written by an earlier version loads as is', async (t) => {
  const dir = await tempDir(t);
  const old = {
    format: 'tributary-topics',
    version: 1,
    topics: [{ name: 'sensors', topicId: '2f0c0b8e-6f1e-4c55-9d4b-0d7f7c1c2a10', partitions: 4, createdMs: 1700000000000, overrides: { 'retention.ms': 60000, flush: 'interval' } }],
    pendingDeletes: [],
  };
  await writeFile(join(dir, TOPICS_FILE), JSON.stringify(old, null, 2) + '\n');
  await writeFile(join(dir, 'producer-ids'), '{"format":1,"reservedUpTo":3000}\n');
  const store = await FileMetadataStore.open(dir);
  const s = store.image().topics.get('sensors')!;
  t.same([s.partitions, s.topicId, s.overrides], [4, old.topics[0].topicId, { 'retention.ms': 60000, flush: 'interval' }]);
  t.equal(store.image().producerIdsReservedUpTo, 3000);
  await store.propose([{ type: 'config', topic: 'sensors', key: 'flush', value: null }]);
  const rewritten = JSON.parse(await readFile(join(dir, TOPICS_FILE), 'utf8'));
  t.same(rewritten.topics[0], { ...old.topics[0], overrides: { 'retention.ms': 60000 } }, 'rewritten in the same format');
});

t.test('metadata store: torn temp files from a crash are ignored (the last complete write wins)', async (t) => {
  const dir = await tempDir(t);
  const store = await FileMetadataStore.open(dir);
  await store.propose([topic('kept', 2)]);
  await store.propose([{ type: 'producerIds', reservedUpTo: 1000 }]);
  // A crash in the middle of the next writes: the temp files hold half a document each.
  await writeFile(join(dir, `${TOPICS_FILE}.tmp`), '{"format":"tributary-topics","version":1,"topics":[{"name":"hal');
  await writeFile(join(dir, 'producer-ids.tmp'), '{"format":1,"reserv');
  const again = await FileMetadataStore.open(dir);
  t.equal(again.image().topics.get('kept')?.partitions, 2);
  t.notOk(again.image().topics.has('hal'));
  t.equal(again.image().producerIdsReservedUpTo, 1000);
  await again.propose([topic('next', 1)]);
  await again.propose([{ type: 'producerIds', reservedUpTo: 2000 }]);
  t.same((await readdir(dir)).sort(), ['producer-ids', TOPICS_FILE].sort(), 'the next writes replaced the torn temp files');
});

t.test('metadata store: producer ids allocated through ProducerIdsBlock records are never reused after a restart', async (t) => {
  const dir = await tempDir(t);
  const first = await FileMetadataStore.open(dir);
  const ids = await ProducerIds.open(first, { blockSize: 5 });
  const handed = await Promise.all(Array.from({ length: 12 }, () => ids.allocate()));
  t.same([...handed].sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i), 'unique and dense within blocks');
  t.equal(first.image().producerIdsReservedUpTo, 15, 'three blocks reserved ahead of use');
  const reopened = await ProducerIds.open(await FileMetadataStore.open(dir), { blockSize: 5 });
  t.equal(await reopened.allocate(), 15, 'resumes past every reserved id');
});

/** A context over an image: limits as the broker's defaults would set them, ids and time fixed. */
function context(image: MetadataImage, limits: Partial<AdminContext['limits']> = {}): AdminContext & { refusals: string[] } {
  const refusals: string[] = [];
  return {
    image,
    limits: { defaultPartitions: 1, maxPartitionsPerTopic: 16, maxPartitionsTotal: 32, maxTopics: 8, maxMessageBytesMax: 1 << 20, ...limits },
    refused: (limit) => refusals.push(limit),
    newTopicId: () => 'new-id',
    nowMs: () => 42,
    refusals,
  };
}

function refusal(fn: () => unknown): { code: string; message: string } | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof BrokerError) return { code: err.code, message: err.message };
    throw err;
  }
  return undefined;
}

t.test('topic admin: a create becomes a topic record plus one config record per override', async (t) => {
  const ctx = context(applyRecords(EMPTY_IMAGE, []));
  const d = decideCreateTopic({ name: 'made', partitions: 2, config: { 'retention.ms': '1000', flush: null } }, ctx);
  t.same(d.records, [
    { type: 'topic', name: 'made', topicId: 'new-id', partitions: 2, replicationFactor: 1, assignment: [[0], [0]], createdMs: 42 },
    { type: 'config', topic: 'made', key: 'retention.ms', value: 1000 },
  ]);
  const defaults = decideCreateTopic({ name: 'dflt', partitions: -1, replicationFactor: -1 }, context(EMPTY_IMAGE, { defaultPartitions: 3 }));
  t.same([defaults.partitions, defaults.replicationFactor], [3, 1], '-1 = the defaults');
  const manual = decideCreateTopic({ name: 'man', assignment: [[0], [0], [0]] }, ctx);
  t.equal(manual.partitions, 3, 'a manual assignment gives the partition count');
});

t.test('topic admin: bad creates are refused with the field named', async (t) => {
  const image = applyRecords(EMPTY_IMAGE, [topic('taken', 1), topic('a.b', 1)]);
  const ctx = context(image);
  const cases: Array<[string, Parameters<typeof decideCreateTopic>[0], string, RegExp]> = [
    ['bad name', { name: 'bad name!', partitions: 1 }, 'INVALID_TOPIC_EXCEPTION', /bad name!/],
    ['zero partitions', { name: 'x', partitions: 0 }, 'INVALID_PARTITIONS', /partitions/],
    ['too many partitions', { name: 'x', partitions: 17 }, 'INVALID_PARTITIONS', /maxPartitionsPerTopic=16/],
    ['replication factor 3 on one node', { name: 'x', partitions: 1, replicationFactor: 3 }, 'INVALID_REPLICATION_FACTOR', /replicationFactor: replication factor 3/],
    ['replication factor 0', { name: 'x', partitions: 1, replicationFactor: 0 }, 'INVALID_REPLICATION_FACTOR', /replication factor 0/],
    ['assignment to another node', { name: 'x', assignment: [[0], [7]] }, 'INVALID_REPLICATION_FACTOR', /assignment: partition 1 must be on live nodes \[0\]/],
    ['assignment naming a node twice', { name: 'x', assignment: [[0, 0]] }, 'INVALID_REQUEST', /names a node twice/],
    ['assignment and a count', { name: 'x', partitions: 2, assignment: [[0], [0]] }, 'INVALID_REQUEST', /either assignment or partitions/],
    ['unknown config', { name: 'x', partitions: 1, config: { 'retention.mss': '1' } }, 'INVALID_CONFIG', /retention\.mss/],
    ['bad config value', { name: 'x', partitions: 1, config: { 'retention.ms': 'soon' } }, 'INVALID_CONFIG', /retention\.ms/],
    ['existing', { name: 'taken', partitions: 1 }, 'TOPIC_ALREADY_EXISTS', /taken/],
    ['collision', { name: 'a_b', partitions: 1 }, 'INVALID_TOPIC_EXCEPTION', /collides/],
  ];
  for (const [what, spec, code, message] of cases) {
    const r = refusal(() => decideCreateTopic(spec, ctx));
    t.equal(r?.code, code, what);
    t.match(r?.message, message, `${what}: the message names it`);
  }
  const full = context(image, { maxTopics: 2 });
  t.equal(refusal(() => decideCreateTopic({ name: 'x', partitions: 1 }, full))?.code, 'POLICY_VIOLATION', 'maxTopics');
  t.same(full.refusals, ['maxTopics'], 'the refusal is counted against its limit');
});

t.test('topic admin: delete, grow and alter decide records or refuse', async (t) => {
  const image = applyRecords(EMPTY_IMAGE, [topic('t', 2), topic('__consumer_offsets', 1)]);
  const ctx = context(image);
  t.same(decideDeleteTopic('t', ctx), { type: 'removeTopic', name: 't', topicId: 'id-t' });
  t.equal(refusal(() => decideDeleteTopic('none', ctx))?.code, 'UNKNOWN_TOPIC_OR_PARTITION');
  t.equal(refusal(() => decideDeleteTopic('__consumer_offsets', ctx))?.code, 'POLICY_VIOLATION');
  t.same(decideCreatePartitions('t', 4, undefined, ctx), { type: 'partitionCount', topic: 't', partitions: 4, assignment: [[0], [0]] });
  t.equal(refusal(() => decideCreatePartitions('t', 2, undefined, ctx))?.code, 'INVALID_PARTITIONS', 'only growth');
  t.equal(refusal(() => decideCreatePartitions('t', 3, [[5]], ctx))?.code, 'INVALID_REPLICATION_FACTOR', 'new partitions on live nodes only');
  t.equal(refusal(() => decideCreatePartitions('t', 3, [[0], [0]], ctx))?.code, 'INVALID_REQUEST', 'one assignment per new partition');
  t.equal(refusal(() => decideCreatePartitions('t', 40, undefined, context(image, { maxPartitionsPerTopic: 64 })))?.code, 'POLICY_VIOLATION', 'maxPartitionsTotal');
  t.same(decideAlterConfig('t', { 'retention.ms': '10', flush: null }, ctx), [
    { type: 'config', topic: 't', key: 'retention.ms', value: 10 },
    { type: 'config', topic: 't', key: 'flush', value: null },
  ]);
  t.match(refusal(() => decideAlterConfig('t', { 'segment.byte': '1' } as never, ctx))?.message, /segment\.byte/);
});
