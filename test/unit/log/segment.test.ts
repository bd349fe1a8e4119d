// Purpose: one segment on its own (segment.ts): file names, the stats and index entries `track`
// keeps as batches are placed, creating and deleting a segment's three files, and the check
// that an index entry points at the start of its batch.
import t from 'tap';
import { readdir } from 'node:fs/promises';
import { encodeBatch, readBatchHeader } from '../../../host/core/index.js';
import { closeFd, openFd, pwritevAll } from '../../../host/log/io.js';
import {
  LOG_SUFFIX,
  Segment,
  batchStartsAt,
  createSegment,
  deleteSegmentFiles,
  fileNameFor,
  parseBaseOffset,
} from '../../../host/log/segment.js';
import { tempDir } from '../../helpers/index.js';

const batchAt = (baseOffset: number, count: number, timestampMs: number) =>
  encodeBatch(
    Array.from({ length: count }, (_, i) => ({ key: null, value: Buffer.alloc(100, i), timestampMs: timestampMs + i })),
    { baseOffset },
  );

t.test('segment: file names are the base offset in 20 digits; parse refuses anything else', async (t) => {
  t.equal(fileNameFor(42, LOG_SUFFIX), '00000000000000000042.log');
  t.equal(parseBaseOffset('00000000000000000042.log', LOG_SUFFIX), 42);
  t.equal(parseBaseOffset('00000000000000000042.index', LOG_SUFFIX), null);
  t.equal(parseBaseOffset('42.log', LOG_SUFFIX), null);
  t.equal(parseBaseOffset('0000000000000000004x.log', LOG_SUFFIX), null);
});

t.test('segment: track keeps size, next offset, max timestamp, and adds index entries every indexIntervalBytes', async (t) => {
  const dir = await tempDir(t);
  const seg = new Segment(dir, 100, 4096);
  seg.offsetIndex.startInMemory();
  seg.timeIndex.startInMemory();
  let pos = 0;
  const positions: number[] = [];
  const stamps = [5000, 9000, 7000, 12000];
  for (let i = 0; i < 4; i++) {
    const b = batchAt(100 + i * 3, 3, stamps[i]);
    const h = readBatchHeader(b, 0);
    positions.push(pos);
    seg.track(h, pos, h.totalBytes, 1);
    pos += h.totalBytes;
  }
  t.equal(seg.sizeBytes, pos);
  t.equal(seg.nextOffset, 112);
  t.equal(seg.maxTimestampMs, 12002);
  t.equal(seg.offsetOfMaxTimestamp, 111);
  t.equal(seg.rollBaseMs, 1, 'roll clock starts at the first batch');
  // One entry per batch after the first (interval = one batch), each at a batch start.
  t.same([1, 2, 3].map((i) => seg.offsetIndex.lookup(i * 3)), [1, 2, 3].map((i) => ({ relativeOffset: i * 3, position: positions[i] })));
  // Time entries only when the max timestamp grew, pointing at the offset holding it.
  t.same(seg.timeIndex.lookupBelow(Number.MAX_SAFE_INTEGER), { timestampMs: 9002, relativeOffset: 5 });
  seg.finalTimeIndexEntry();
  t.same(seg.timeIndex.lookupBelow(Number.MAX_SAFE_INTEGER), { timestampMs: 12002, relativeOffset: 11 }, 'the last entry is the segment max');
  seg.resetStats();
  t.equal(seg.sizeBytes, 0);
  t.equal(seg.nextOffset, 100);
});

t.test('segment: create makes the log and both indexes; delete removes all three', async (t) => {
  const dir = await tempDir(t);
  const seg = await createSegment(dir, 7, 1024);
  t.equal(seg.active, true);
  t.equal(seg.uncheckedBelow, 0, 'a new segment is verified by this process');
  t.same((await readdir(dir)).sort(), ['00000000000000000007.index', '00000000000000000007.log', '00000000000000000007.timeindex']);
  await seg.offsetIndex.closeQuietly();
  await seg.timeIndex.closeQuietly();
  await closeFd(seg.fd!);
  await deleteSegmentFiles(dir, 7);
  await deleteSegmentFiles(dir, 7); // a second delete (crash in between) is fine
  t.same(await readdir(dir), []);
});

t.test('segment: batchStartsAt is true only at a batch start with the expected offset', async (t) => {
  const dir = await tempDir(t);
  const seg = await createSegment(dir, 0, 1024);
  t.teardown(async () => {
    await seg.offsetIndex.closeQuietly();
    await seg.timeIndex.closeQuietly();
  });
  const a = batchAt(0, 2, 1);
  const b = batchAt(2, 2, 1);
  await pwritevAll(seg.fd!, [a, b], 0);
  const fd = await openFd(seg.logPath, 'r');
  t.teardown(() => closeFd(fd));
  t.equal(await batchStartsAt(fd, a.byteLength, 2), true);
  t.equal(await batchStartsAt(fd, a.byteLength, 3), false, 'wrong offset');
  t.equal(await batchStartsAt(fd, a.byteLength + 1, 2), false, 'not a batch start');
  t.equal(await batchStartsAt(fd, a.byteLength + b.byteLength, 4), false, 'past the end');
  await closeFd(seg.fd!);
});
