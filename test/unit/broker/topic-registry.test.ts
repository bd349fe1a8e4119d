// Purpose: the topic registry survives reopen, writes atomically (temp + rename), ignores a
// torn temp file, and refuses to start on a corrupt registry instead of forgetting topics.
import t from 'tap';
import { readFile, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TopicRegistry, TOPICS_FILE } from '../../../host/broker/topic-registry.js';
import { tempDir } from '../../helpers/index.js';

t.test('topic registry: changes persist across reload', async (t) => {
  const dir = await tempDir(t);
  const reg = await TopicRegistry.load(dir);
  t.equal(reg.size, 0);
  await reg.update((d) => {
    d.topics.set('a', { name: 'a', topicId: 'id-a', partitions: 3, createdMs: 1, overrides: { 'retention.ms': 1000 } });
    d.topics.set('b', { name: 'b', topicId: 'id-b', partitions: 1, createdMs: 2, overrides: {} });
    d.pendingDeletes.push({ name: 'old', topicId: 'id-old', partitions: 2 });
  });
  const again = await TopicRegistry.load(dir);
  t.same(again.get('a'), { name: 'a', topicId: 'id-a', partitions: 3, createdMs: 1, overrides: { 'retention.ms': 1000 } });
  t.equal(again.get('b')?.partitions, 1);
  t.same(again.pendingDeletes(), [{ name: 'old', topicId: 'id-old', partitions: 2 }]);
  t.same(await readdir(dir), [TOPICS_FILE], 'no temp file left');
});

t.test('topic registry: a failed change leaves memory unchanged', async (t) => {
  const dir = await tempDir(t);
  const reg = await TopicRegistry.load(dir);
  await t.rejects(
    reg.update((d) => {
      d.topics.set('x', { name: 'x', topicId: 'i', partitions: 1, createdMs: 0, overrides: {} });
      throw new Error('boom');
    }),
  );
  t.equal(reg.get('x'), undefined);
});

t.test('topic registry: a torn temp file from a crash is ignored', async (t) => {
  const dir = await tempDir(t);
  const reg = await TopicRegistry.load(dir);
  await reg.update((d) => void d.topics.set('kept', { name: 'kept', topicId: 'k', partitions: 2, createdMs: 0, overrides: {} }));
  await writeFile(join(dir, `${TOPICS_FILE}.tmp`), '{"format":"tributary-topics","topics":[{"na');
  const again = await TopicRegistry.load(dir);
  t.equal(again.get('kept')?.partitions, 2);
  await again.update((d) => void d.topics.delete('kept'));
  t.notOk((await readFile(join(dir, TOPICS_FILE), 'utf8')).includes('"kept"'));
});

t.test('topic registry: a corrupt registry stops the load with its path', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, TOPICS_FILE), '{"format":"tributary-topics","version":1,"topics":[{"name":"a/b","partitions":1,"topicId":"x"}]}');
  await t.rejects(TopicRegistry.load(dir), /topics\.json is not a valid topic registry.*a\/b/);
  await writeFile(join(dir, TOPICS_FILE), 'not json');
  await t.rejects(TopicRegistry.load(dir), /not JSON/);
  await writeFile(join(dir, TOPICS_FILE), '{"format":"tributary-topics","version":1,"topics":[{"name":"a","partitions":0,"topicId":"x"}]}');
  await t.rejects(TopicRegistry.load(dir), /partitions=0/);
  await writeFile(join(dir, TOPICS_FILE), '{"format":"tributary-topics","version":1,"topics":[{"name":"a","partitions":1,"topicId":"x","overrides":{"flush":"maybe"}}]}');
  await t.rejects(TopicRegistry.load(dir), /"flush"/);
});
