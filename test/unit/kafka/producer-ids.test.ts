// Producer ids (host/broker/producer-ids.ts): unique under concurrency, never reused after a
// restart (the reservation is written ahead), and an unreadable file stops the broker rather
// than risk handing an id out twice.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../../helpers/index.js';
import { ProducerIds } from '../../../host/broker/producer-ids.js';

t.test('producer ids: concurrent allocations are unique and the block is reserved on disk first', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'producer-ids');
  const ids = await ProducerIds.open(file, { blockSize: 10 });
  const got = await Promise.all(Array.from({ length: 25 }, () => ids.allocate()));
  t.equal(new Set(got).size, 25, 'no id handed out twice');
  t.same([...got].sort((a, b) => a - b), [...Array(25).keys()]);
  const onDisk = JSON.parse(await readFile(file, 'utf8'));
  t.equal(onDisk.reservedUpTo, 30, 'three blocks of 10 reserved');
});

t.test('producer ids: after a restart allocation resumes past every reserved id', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'producer-ids');
  const first = await ProducerIds.open(file, { blockSize: 100 });
  const before = [await first.allocate(), await first.allocate()];
  // No close: a power cut loses nothing that was handed out.
  const second = await ProducerIds.open(file, { blockSize: 100 });
  const after = await second.allocate();
  t.ok(after > Math.max(...before), `resumes at ${after}, past ${before}`);
  t.equal(after, 100, 'the unused rest of the previous block is skipped');
});

t.test('producer ids: a corrupt file is refused with its name', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'producer-ids');
  await writeFile(file, '{not json');
  await t.rejects(ProducerIds.open(file, { blockSize: 10 }), { message: /producer-ids is unreadable/ });
  await writeFile(file, JSON.stringify({ format: 1, reservedUpTo: -5 }));
  await t.rejects(ProducerIds.open(file, { blockSize: 10 }), { message: /unexpected content/ });
});
