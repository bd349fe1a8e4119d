// Purpose: damage a log's files by hand, the way a power cut or a bad card does, and check what
// recovery does: a batch cut mid-way, garbage after the last batch, flipped bits in the last
// batch, a bad length in the middle of the active segment, missing or garbage index files, and
// damage in the middle of an old segment (reported; its readable prefix served; reads past it
// continue at the next segment). Each case checks the data kept, the log line, and that
// appends continue.
import t from 'tap';
import { appendFile, readdir, readFile, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeBatches, readBatchHeader } from '../../host/core/index.js';
import { durable, makeBatch, openLog, readAll, type Opened } from '../unit/log/fixture.js';

const SEG0 = '00000000000000000000';

async function writeBatches(o: Opened, n: number, count = 3): Promise<number[]> {
  const sizes: number[] = [];
  for (let i = 0; i < n; i++) {
    const b = makeBatch(count, { valueBytes: 40, fill: i });
    sizes.push(b.byteLength);
    await o.log.appendAsLeader(b, durable);
  }
  return sizes;
}

async function flipByte(path: string, position: number): Promise<void> {
  const buf = await readFile(path);
  buf[position] ^= 0x5a;
  await writeFile(path, buf);
}

async function activeLogPath(o: Opened): Promise<string> {
  const base = o.log.segmentBaseOffsets[o.log.segmentCount - 1];
  return join(o.dir, String(base).padStart(20, '0') + '.log');
}

t.test('a batch cut mid-way at the tail is truncated, logged with bytes and offsets, and appends continue', async (t) => {
  const o = await openLog(t);
  const sizes = await writeBatches(o, 10);
  const path = await activeLogPath(o);
  await o.log.abandon();
  const full = (await stat(path)).size;
  await truncate(path, full - 25);
  const log = await o.reopen();
  t.equal(log.recovery.clean, false);
  t.equal(log.logEndOffset, 27, 'the torn 10th batch (offsets 27..29) is gone');
  const line = o.cap.find('truncated the log');
  t.ok(line, 'recovery logged the truncation');
  t.match(line, { truncatedBytes: sizes[9] - 25, defect: 'short-batch', lastValidOffset: 26, firstLostOffset: 27 });
  t.equal((await stat(path)).size, full - sizes[9], 'file cut at the last valid batch');
  t.equal((await log.appendAsLeader(makeBatch(1), durable)).baseOffset, 27);
  t.same((await readAll(log)).map((r) => r.offset), Array.from({ length: 28 }, (_, i) => i));
});

t.test('garbage appended after the last batch is cut away', async (t) => {
  const o = await openLog(t);
  await writeBatches(o, 5);
  const path = await activeLogPath(o);
  await o.log.abandon();
  const size = (await stat(path)).size;
  const garbage = Buffer.from('this is not a record batch, it is garbage that a torn write left behind!!'.repeat(3));
  await appendFile(path, garbage);
  const log = await o.reopen();
  t.equal(log.logEndOffset, 15);
  t.equal((await stat(path)).size, size);
  t.match(o.cap.find('truncated the log'), { truncatedBytes: garbage.byteLength });
  t.equal((await log.appendAsLeader(makeBatch(2), durable)).baseOffset, 15);
});

t.test('flipped bits in the last batch fail its CRC: that batch is dropped, nothing after it is served', async (t) => {
  const o = await openLog(t);
  const sizes = await writeBatches(o, 6);
  const path = await activeLogPath(o);
  await o.log.abandon();
  const size = (await stat(path)).size;
  await flipByte(path, size - 10);
  const log = await o.reopen();
  t.equal(log.logEndOffset, 15);
  t.match(o.cap.find('truncated the log'), { defect: 'crc-mismatch', truncatedBytes: sizes[5] });
  const r = await log.read(0, 1 << 20);
  t.equal(decodeBatches(r.records).length, 5);
});

t.test('a bad length in the middle of the active segment truncates there (later batches cannot be trusted)', async (t) => {
  const o = await openLog(t);
  const sizes = await writeBatches(o, 8);
  const path = await activeLogPath(o);
  await o.log.abandon();
  const at = sizes[0] + sizes[1] + sizes[2]; // 4th batch
  const buf = await readFile(path);
  buf.writeInt32BE(0x7fff0000, at + 8);
  await writeFile(path, buf);
  const log = await o.reopen();
  t.equal(log.logEndOffset, 9);
  t.match(o.cap.find('truncated the log'), { defect: 'bad-length', at });
});

t.test('an unclean open with damage in a segment before the last deletes the later segments too', async (t) => {
  const o = await openLog(t, { segmentBytes: 800 });
  await writeBatches(o, 20);
  const bases = o.log.segmentBaseOffsets;
  t.ok(bases.length >= 4);
  await o.log.abandon();
  // Pretend the last roll never checkpointed: recovery starts at segment 1.
  await writeFile(join(o.dir, 'recovery-point'), `0\n${bases[1]}\n`);
  const p1 = join(o.dir, String(bases[1]).padStart(20, '0') + '.log');
  await flipByte(p1, (await stat(p1)).size - 5);
  const log = await o.reopen({ segmentBytes: 800 });
  t.same(log.segmentBaseOffsets, bases.slice(0, 2));
  t.ok(o.cap.lines.filter((l) => String(l.msg).includes('deleted a segment that follows')).length === bases.length - 2);
  const all = await readAll(log);
  t.equal(all[all.length - 1].offset, log.logEndOffset - 1);
  t.ok(log.logEndOffset < bases[2]);
  t.equal((await log.appendAsLeader(makeBatch(1), durable)).baseOffset, log.logEndOffset - 1);
});

t.test('missing index files are rebuilt from the log (clean and unclean opens)', async (t) => {
  const o = await openLog(t, { segmentBytes: 1000, indexIntervalBytes: 150 });
  await writeBatches(o, 30);
  const expected = (await readAll(o.log)).map((r) => r.offset);
  await o.log.close();
  for (const n of await readdir(o.dir)) if (n.endsWith('.index') || n.endsWith('.timeindex')) await unlink(join(o.dir, n));
  let log = await o.reopen();
  t.same((await readAll(log, 0, 200)).map((r) => r.offset), expected);
  for (let off = 0; off < expected.length; off += 11) t.equal(readBatchHeader((await log.read(off, 1)).records, 0).baseOffset, off - (off % 3));
  t.ok(o.cap.find('rebuilt segment indexes'), 'rebuild logged');
  t.ok(await stat(join(o.dir, SEG0 + '.index')), 'index file written again');
  await log.abandon();
  for (const n of await readdir(o.dir)) if (n.endsWith('.index')) await unlink(join(o.dir, n));
  log = await o.reopen();
  t.same((await readAll(log, 0, 200)).map((r) => r.offset), expected, 'after an unclean open too');
});

t.test('a garbage index file of an old segment is detected and rebuilt', async (t) => {
  const o = await openLog(t, { segmentBytes: 1000, indexIntervalBytes: 150 });
  await writeBatches(o, 30);
  await o.log.close();
  await writeFile(join(o.dir, SEG0 + '.index'), Buffer.from([0, 0, 0, 9, 0, 0, 0, 200, 0, 0, 0, 3, 0, 0, 1, 0]));
  await writeFile(join(o.dir, SEG0 + '.timeindex'), Buffer.alloc(7, 1));
  const log = await o.reopen();
  const r = await log.read(4, 1);
  t.equal(readBatchHeader(r.records, 0).baseOffset, 3);
  t.ok(o.cap.find('rebuilt segment indexes'));
  t.same((await readAll(log)).length, 90);
});

t.test('damage in the middle of an old segment: reported, its readable prefix served, reads past it continue at the next segment', async (t) => {
  const o = await openLog(t, { segmentBytes: 1500 });
  const sizes = await writeBatches(o, 30);
  const bases = o.log.segmentBaseOffsets;
  t.ok(bases.length >= 3);
  await o.log.close();
  // Flip a payload byte inside the 3rd batch of segment 0 (offsets 6..8): its CRC fails.
  const at = sizes[0] + sizes[1] + 70;
  await flipByte(join(o.dir, SEG0 + '.log'), at);
  const log = await o.reopen();
  t.equal(log.recovery.clean, true, 'an old segment is not scanned at open');
  const r0 = await log.read(0, 1 << 20);
  t.same(decodeBatches(r0.records).map((b) => b.header.baseOffset), [0, 3], 'the prefix before the damage is served');
  t.equal(r0.nextOffset, 6);
  const line = o.cap.find('damaged batch');
  t.ok(line, 'damage reported');
  t.match(line, { segment: 0, position: sizes[0] + sizes[1], defect: 'crc-mismatch' });
  const r6 = await log.read(6, 1);
  t.equal(readBatchHeader(r6.records, 0).baseOffset, bases[1], 'a read at the damaged offset continues at the next segment');
  const all = await readAll(log);
  t.equal(all.length, 90 - (bases[1] - 6), 'everything but the damaged part of segment 0');
  t.equal((await log.appendAsLeader(makeBatch(1), durable)).baseOffset, 90, 'appends unaffected');
});
