// Purpose: the leader-epoch checkpoint file and the offset checkpoints on their own
// (checkpoints.ts): Kafka's text format, atomic replace, what a damaged file loads as, and the
// cache's rules (only newer epochs, truncation from either end, KIP-101/279 end offsets).
import t from 'tap';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  LEADER_EPOCH_FILE,
  LeaderEpochCache,
  readOffsetCheckpoint,
  writeOffsetCheckpoint,
} from '../../../host/log/checkpoints.js';
import { tempDir } from '../../helpers/index.js';

t.test('leader-epoch checkpoint: Kafka text format, written only when changed, loaded back', async (t) => {
  const dir = await tempDir(t);
  const cache = new LeaderEpochCache(dir);
  t.equal(await cache.load(), false, 'no file yet');
  cache.assign(0, 0);
  cache.assign(2, 10);
  cache.assign(2, 15); // same epoch: no new entry
  cache.assign(1, 20); // older epoch: ignored
  t.equal(cache.isDirty, true);
  await cache.persistIfDirty();
  t.equal(cache.isDirty, false);
  t.equal(await readFile(join(dir, LEADER_EPOCH_FILE), 'utf8'), '0\n2\n0 0\n2 10\n');
  t.notOk((await readdir(dir)).some((n) => n.endsWith('.tmp')), 'no temp file left');
  const again = new LeaderEpochCache(dir);
  t.equal(await again.load(), true);
  t.same(again.entries, [{ epoch: 0, startOffset: 0 }, { epoch: 2, startOffset: 10 }]);
  t.equal(again.latestEpoch, 2);
});

t.test('leader-epoch checkpoint: a damaged file loads as empty (rebuilt from the batches by recovery)', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, LEADER_EPOCH_FILE);
  for (const text of ['1\n1\n0 0\n', '0\n2\n0 0\n', '0\n1\nx 0\n', '0\nmany\n', '']) {
    await writeFile(path, text);
    const cache = new LeaderEpochCache(dir);
    t.equal(await cache.load(), false, JSON.stringify(text));
    t.same(cache.entries, []);
  }
});

t.test('leader-epoch cache: truncation from the end and from the start', async (t) => {
  const cache = new LeaderEpochCache(await tempDir(t));
  cache.assign(1, 0);
  cache.assign(3, 10);
  cache.assign(5, 20);
  cache.truncateFromStart(12);
  t.same(cache.entries, [{ epoch: 3, startOffset: 12 }, { epoch: 5, startOffset: 20 }], 'the entry spanning the new start begins there');
  cache.truncateFromEnd(20);
  t.same(cache.entries, [{ epoch: 3, startOffset: 12 }], 'epochs starting at or after the new end go');
  cache.truncateFromEnd(5);
  t.same(cache.entries, []);
});

t.test('leader-epoch cache: endOffsetFor follows KIP-101/279', async (t) => {
  const cache = new LeaderEpochCache(await tempDir(t));
  t.same(cache.endOffsetFor(3, 50), { epoch: -1, endOffset: -1 }, 'empty');
  cache.assign(2, 5);
  cache.assign(4, 30);
  t.same(cache.endOffsetFor(-1, 50), { epoch: -1, endOffset: -1 }, 'undefined epoch');
  t.same(cache.endOffsetFor(1, 50), { epoch: 1, endOffset: 5 }, 'older than all: the first start');
  t.same(cache.endOffsetFor(2, 50), { epoch: 2, endOffset: 30 });
  t.same(cache.endOffsetFor(3, 50), { epoch: 2, endOffset: 30 }, 'unknown epoch: largest below, its end');
  t.same(cache.endOffsetFor(4, 50), { epoch: 4, endOffset: 50 }, 'latest: the log end');
  t.same(cache.endOffsetFor(9, 50), { epoch: -1, endOffset: -1 }, 'newer than the latest');
});

t.test('offset checkpoints: "0\\n<offset>\\n"; missing or damaged read as null', async (t) => {
  const dir = await tempDir(t);
  t.equal(await readOffsetCheckpoint(dir, 'recovery-point'), null);
  await writeOffsetCheckpoint(dir, 'recovery-point', 1234);
  t.equal(await readFile(join(dir, 'recovery-point'), 'utf8'), '0\n1234\n');
  t.equal(await readOffsetCheckpoint(dir, 'recovery-point'), 1234);
  for (const text of ['1\n5\n', '0\n-3\n', '0\nabc\n', '0\n']) {
    await writeFile(join(dir, 'recovery-point'), text);
    t.equal(await readOffsetCheckpoint(dir, 'recovery-point'), null, JSON.stringify(text));
  }
});
