// Purpose: the retention budget (docs/broker.md, "Disk contract"): all topics together stay
// within retentionBudgetBytes, the topic furthest over its share gives up its oldest segments
// first (a chatty topic cannot push out a quiet topic's history), every deletion is counted,
// and with -1 the budget is sized from the real disk (statfs of the data dir).
import t from 'tap';
import { openBroker, bytes } from './broker-fixture.js';

const SEGMENT_BYTES = 1024;

async function fillTopic(broker: Awaited<ReturnType<typeof openBroker>>['broker'], topic: string, records: number): Promise<void> {
  for (let i = 0; i < records; i++) await broker.produce(topic, [{ key: null, value: bytes(`${topic}-${i}-`.padEnd(200, 'x')) }], { acks: -1, partition: 0 });
}

const sizeOf = (broker: Awaited<ReturnType<typeof openBroker>>['broker'], topic: string) =>
  (broker.partitionObject({ topic, partition: 0 }).log as unknown as { sizeBytes: number }).sizeBytes;

t.test('retention budget: over budget, the topic furthest over its equal share loses its oldest segments; the quiet topic keeps its history', async (t) => {
  const budget = 12 * SEGMENT_BYTES;
  const { broker, metrics } = await openBroker(t, { retentionBudgetBytes: budget, topicDefaults: { 'segment.bytes': SEGMENT_BYTES } });
  await broker.createTopic('chatty', 1);
  await broker.createTopic('quiet', 1);
  await fillTopic(broker, 'quiet', 10);
  await fillTopic(broker, 'chatty', 120);
  const before = { chatty: sizeOf(broker, 'chatty'), quiet: sizeOf(broker, 'quiet') };
  t.ok(before.chatty + before.quiet > budget, `over budget before: ${before.chatty + before.quiet} > ${budget}`);
  await broker.runMaintenance();
  const after = { chatty: sizeOf(broker, 'chatty'), quiet: sizeOf(broker, 'quiet') };
  t.ok(after.chatty + after.quiet <= budget, `within budget after: ${after.chatty + after.quiet} ≤ ${budget}`);
  t.equal(after.quiet, before.quiet, 'the quiet topic (under its share) kept everything');
  t.equal(broker.offsets({ topic: 'quiet', partition: 0 }).logStartOffset, 0);
  const start = broker.offsets({ topic: 'chatty', partition: 0 }).logStartOffset;
  t.ok(start > 0, `the chatty topic lost its oldest records (log start ${start})`);
  const read = await broker.read({ topic: 'chatty', partition: 0 }, start, { maxBytes: 1 << 20 });
  t.ok(read.records.byteLength > 0, 'the newest chatty records are still readable');
  const text = metrics.render();
  const deleted = Number(/^tributary_broker_retention_budget_segments_deleted_total\{reason="budget",topic="chatty"\} (\d+)/m.exec(text)?.[1] ?? 0);
  t.ok(deleted > 0, `deletions counted: ${deleted}`);
  t.match(text, /^tributary_log_retention_segments_deleted_total\{partition="chatty-0"\} \d+/m, 'and per partition by the log');
  t.match(text, new RegExp(`^tributary_broker_retention_budget_bytes ${budget}$`, 'm'));
});

t.test('retention budget: retentionTopicSharePercent trims a topic over its share even while the total is under budget', async (t) => {
  const budget = 100 * SEGMENT_BYTES;
  const { broker } = await openBroker(t, { retentionBudgetBytes: budget, retentionTopicSharePercent: 10, topicDefaults: { 'segment.bytes': SEGMENT_BYTES } });
  await broker.createTopic('one', 1);
  await fillTopic(broker, 'one', 80);
  t.ok(sizeOf(broker, 'one') > budget / 10);
  await broker.runMaintenance();
  t.ok(sizeOf(broker, 'one') <= budget / 10, `within its 10 % share: ${sizeOf(broker, 'one')} ≤ ${budget / 10}`);
});

t.test('retention budget: -1 sizes it from the data dir filesystem (statfs), and nothing is deleted under it', async (t) => {
  const { broker } = await openBroker(t, { topicDefaults: { 'segment.bytes': SEGMENT_BYTES } });
  await broker.createTopic('small', 1);
  await fillTopic(broker, 'small', 30);
  const before = sizeOf(broker, 'small');
  await broker.runMaintenance();
  const budget = broker.retentionBudget();
  const disk = broker.health().disk;
  t.ok(disk.totalBytes > 0 && disk.freeBytes >= 0, 'statfs measured the data dir');
  t.ok(budget >= 0 && budget <= disk.totalBytes, `budget ${budget} sized from a ${disk.totalBytes}-byte filesystem`);
  if (disk.freeBytes > disk.floorBytes + before * 2) t.equal(sizeOf(broker, 'small'), before, 'under the budget: nothing deleted');
});
