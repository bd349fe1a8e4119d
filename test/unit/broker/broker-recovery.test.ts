// Purpose: topic changes interrupted by a crash finish or roll forward at the next start, the
// data dir is locked against a second live broker, and broker-wide defaults reach topics.
import t from 'tap';
import { readFile, writeFile, readdir, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { eventually } from '../../helpers/index.js';
import { Broker } from '../../../host/broker/broker.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { silentLogger } from '../../../host/logging.js';
import { openBroker, bytes, readAll } from './broker-fixture.js';

const deps = () => ({ logger: silentLogger, metrics: new MetricsRegistry() });

t.test('recovery: a deletion recorded as pending (crash before the files went) is finished at start', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  await broker.createTopic('doomed', 2);
  await broker.createTopic('kept', 1);
  await broker.produce('doomed', [{ key: bytes('k'), value: bytes('v') }], { acks: 1 });
  await broker.close();
  // The state deleteTopic leaves after its first durable step.
  const path = join(dataDir, 'topics.json');
  const doc = JSON.parse(await readFile(path, 'utf8'));
  const doomed = doc.topics.find((x: { name: string }) => x.name === 'doomed');
  doc.topics = doc.topics.filter((x: { name: string }) => x.name !== 'doomed');
  doc.pendingDeletes = [{ name: 'doomed', topicId: doomed.topicId, partitions: 2 }];
  await writeFile(path, JSON.stringify(doc));
  t.ok((await readdir(dataDir)).includes('doomed-1'), 'files still there before restart');

  const { broker: again } = await openBroker(t, { dataDir });
  const dirs = await readdir(dataDir);
  t.notOk(dirs.some((d) => d.startsWith('doomed-')), dirs.join(','));
  t.same(again.listTopics().map((x) => x.name), ['kept']);
  t.same(JSON.parse(await readFile(path, 'utf8')).pendingDeletes, [], 'nothing pending any more');
});

t.test('recovery: a topic recorded before its directories were made opens with empty partitions', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  await broker.close();
  const path = join(dataDir, 'topics.json');
  await writeFile(
    path,
    JSON.stringify({ format: 'tributary-topics', version: 1, topics: [{ name: 'half', topicId: 'x', partitions: 2, createdMs: 0, overrides: {} }], pendingDeletes: [] }),
  );
  const { broker: again } = await openBroker(t, { dataDir });
  t.same(again.offsets({ topic: 'half', partition: 1 }), { logStartOffset: 0, highWatermark: 0, logEndOffset: 0 });
  await again.produce('half', [{ key: null, value: bytes('now') }], { acks: 1, partition: 1 });
  t.same((await readAll(again, { topic: 'half', partition: 1 })).map((r) => r.value), ['now']);
});

t.test('recovery: a new topic never adopts a leftover directory of the same name', async (t) => {
  const { broker: first, dataDir } = await openBroker(t);
  await first.createTopic('reuse', 1);
  await first.produce('reuse', [{ key: null, value: bytes('old data') }], { acks: 1 });
  await first.close();
  // Forget the topic but leave its directory (as a hand-edited or foreign data dir might).
  const path = join(dataDir, 'topics.json');
  const doc = JSON.parse(await readFile(path, 'utf8'));
  doc.topics = [];
  await writeFile(path, JSON.stringify(doc));
  const { broker } = await openBroker(t, { dataDir });
  await broker.createTopic('reuse', 1);
  t.same(broker.offsets({ topic: 'reuse', partition: 0 }).logEndOffset, 0, 'starts empty');
});

t.test('lock: a kernel lock, not a pid: a pid in the file never blocks; a held lock does; close releases it', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  await broker.close();
  await mkdir(dataDir, { recursive: true });
  // A live pid that is not ours (our parent) left in the file: not a holder (the old pid-file bug).
  await writeFile(join(dataDir, 'broker.lock'), `${process.ppid}\n`);
  const { broker: again } = await openBroker(t, { dataDir });
  t.equal((await readFile(join(dataDir, 'broker.lock'), 'utf8')).trim(), String(process.pid), 'the holder writes its pid');
  // Another process holding the flock (util-linux `flock` on the same file) is a holder.
  await again.close();
  const holder = spawn('flock', ['-o', '-x', join(dataDir, 'broker.lock'), 'sleep', '30'], { stdio: 'ignore' });
  t.teardown(() => void holder.kill('SIGKILL'));
  await eventually(() => spawnSync('flock', ['-xn', join(dataDir, 'broker.lock'), 'true']).status !== 0);
  await t.rejects(Broker.open({ dataDir }, deps()), /is in use by another broker/);
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  const { broker: third } = await openBroker(t, { dataDir });
  await third.close();
  t.equal(spawnSync('flock', ['-xn', join(dataDir, 'broker.lock'), 'true']).status, 0, 'released on close');
  t.ok((await readdir(dataDir)).includes('broker.lock'), 'the file stays (unlinking a locked file would race)');
});

t.test('defaults: broker-wide topicDefaults reach topics that did not override the key', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  await broker.createTopic('plain', 1);
  await broker.createTopic('own', 1, { 'retention.ms': 1234 });
  await broker.close();
  const { broker: again } = await openBroker(t, { dataDir, topicDefaults: { 'retention.ms': 999_000, flush: 'never' } });
  t.equal(again.describeTopic('plain')!.config['retention.ms'], 999_000);
  t.equal(again.describeTopic('plain')!.config.flush, 'never');
  t.equal(again.describeTopic('own')!.config['retention.ms'], 1234, 'an override wins');
  t.equal((await again.ensureTopic('fresh')).config.flush, 'never', 'auto-created topics use them');
});
