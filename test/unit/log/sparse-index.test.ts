// Purpose: the sparse index files on their own (.index: relativeOffset u32 | position u32;
// .timeindex: timestampMs i64 | relativeOffset u32): lookups, the full bound, the file written
// on seal (trimmed, byte layout), reopen as active, unload, and validation of damaged files.
import t from 'tap';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OffsetIndex, TimeIndex, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES } from '../../../host/log/sparse-index.js';
import { tempDir } from '../../helpers/index.js';

t.test('offset index: lookup returns the last entry at or below the offset, the segment start below the first', async (t) => {
  const dir = await tempDir(t);
  const idx = new OffsetIndex(join(dir, 'a.index'), 1024);
  await idx.create();
  t.teardown(() => idx.closeQuietly());
  idx.add(10, 4096);
  idx.add(20, 8192);
  idx.add(35, 12288);
  t.same(idx.lookup(5), { relativeOffset: 0, position: 0 }, 'below the first entry: the segment base');
  t.same(idx.lookup(10), { relativeOffset: 10, position: 4096 });
  t.same(idx.lookup(34), { relativeOffset: 20, position: 8192 });
  t.same(idx.lookup(1_000_000), { relativeOffset: 35, position: 12288 });
  t.equal(idx.lastRelativeOffset, 35);
  t.equal(idx.count, 3);
});

t.test('offset index: preallocated while active, sealed to its used size with the big-endian layout', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'b.index');
  const idx = new OffsetIndex(path, 800);
  await idx.create();
  t.equal((await stat(path)).size, 800, 'preallocated to segment.index.bytes');
  idx.add(1, 100);
  idx.add(2, 200);
  await idx.seal();
  const bytes = await readFile(path);
  t.equal(bytes.byteLength, 2 * OFFSET_ENTRY_BYTES, 'trimmed to the entries');
  t.same([...bytes], [0, 0, 0, 1, 0, 0, 0, 100, 0, 0, 0, 2, 0, 0, 0, 200]);
  t.same(OffsetIndex.validate(bytes, 1000), { count: 2, ok: true });
});

t.test('offset index: isFull at segment.index.bytes (rounded down to whole entries)', async (t) => {
  const dir = await tempDir(t);
  const idx = new OffsetIndex(join(dir, 'c.index'), 8 * 3 + 5);
  t.equal(idx.maxBytes, 24);
  idx.startInMemory();
  idx.add(1, 10);
  idx.add(2, 20);
  t.equal(idx.isFull, false);
  idx.add(3, 30);
  t.equal(idx.isFull, true, 'no room for a fourth entry');
});

t.test('offset index: validate finds the valid prefix of a damaged file', async (t) => {
  const entries = (pairs: Array<[number, number]>) => {
    const b = Buffer.alloc(pairs.length * 8);
    pairs.forEach(([r, p], i) => {
      b.writeUInt32BE(r, i * 8);
      b.writeUInt32BE(p, i * 8 + 4);
    });
    return b;
  };
  t.same(OffsetIndex.validate(entries([[1, 10], [2, 20]]), 100), { count: 2, ok: true });
  t.same(OffsetIndex.validate(entries([[1, 10], [1, 20]]), 100), { count: 1, ok: false }, 'offsets must increase');
  t.same(OffsetIndex.validate(entries([[1, 10], [2, 5]]), 100), { count: 1, ok: false }, 'positions must increase');
  t.same(OffsetIndex.validate(entries([[1, 10], [2, 200]]), 100), { count: 1, ok: false }, 'positions inside the log');
  t.same(OffsetIndex.validate(Buffer.concat([entries([[1, 10]]), Buffer.alloc(3)]), 100), { count: 1, ok: false }, 'a torn last entry');
});

t.test('offset index: reopenActive keeps the given entries and persists them; unload drops a closed index only', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'd.index');
  const src = new OffsetIndex(path, 800);
  src.startInMemory();
  src.add(4, 40);
  src.add(9, 90);
  const active = new OffsetIndex(path, 800);
  await active.reopenActive(Buffer.from(src.entries()), src.count);
  t.same(active.lookup(9), { relativeOffset: 9, position: 90 });
  const onDisk = await readFile(path);
  t.same(OffsetIndex.validate(onDisk.subarray(0, 16), 1000), { count: 2, ok: true }, 'entries written to the file');
  active.unload();
  t.equal(active.loaded, true, 'an open (active) index is never unloaded');
  await active.seal();
  active.unload();
  t.equal(active.loaded, false);
  t.same(active.lookup(9), { relativeOffset: 0, position: 0 }, 'unloaded: walk from the segment start');
  const again = await active.readFile();
  t.equal(again?.byteLength, 16);
  t.equal(await new OffsetIndex(join(dir, 'missing.index'), 800).readFile(), null, 'missing file: null');
});

t.test('time index: lookupBelow finds the last entry strictly older than the target; layout and validation', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'e.timeindex');
  const idx = new TimeIndex(path, 1200);
  await idx.create();
  idx.add(1000, 0);
  idx.add(2000, 5);
  idx.add(3000, 9);
  t.equal(idx.lookupBelow(1000), null, 'nothing older than the first');
  t.same(idx.lookupBelow(2000), { timestampMs: 1000, relativeOffset: 0 });
  t.same(idx.lookupBelow(2500), { timestampMs: 2000, relativeOffset: 5 });
  t.same(idx.lookupBelow(9999), { timestampMs: 3000, relativeOffset: 9 });
  t.equal(idx.lastTimestamp, 3000);
  await idx.seal();
  const bytes = await readFile(path);
  t.equal(bytes.byteLength, 3 * TIME_ENTRY_BYTES);
  t.equal(Number(bytes.readBigInt64BE(12)), 2000);
  t.equal(bytes.readUInt32BE(20), 5);
  t.same(TimeIndex.validate(bytes, 100), { count: 3, ok: true });
  const bad = Buffer.from(bytes);
  bad.writeBigInt64BE(500n, 24); // third timestamp goes backwards
  t.same(TimeIndex.validate(bad, 100), { count: 2, ok: false });
  t.same(TimeIndex.validate(bytes, 8), { count: 2, ok: false }, 'relative offset past the bound');
  await writeFile(path, Buffer.alloc(0));
  t.same(TimeIndex.validate((await new TimeIndex(path, 1200).readFile())!, 100), { count: 0, ok: true }, 'empty file: valid, no entries');
});
