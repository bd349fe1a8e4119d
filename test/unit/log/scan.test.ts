// Purpose: the chunked, double-buffered batch walker finds every batch whatever the chunk size
// (batches cut by chunk boundaries, batches larger than a chunk) and stops at the exact
// position of a defect (torn tail, garbage length, CRC mismatch).
import t from 'tap';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scanBatches } from '../../../host/log/scan.js';
import { tempDir } from '../../helpers/index.js';
import { makeBatch } from './fixture.js';

async function fileOf(t: Parameters<typeof tempDir>[0], bytes: Uint8Array) {
  const dir = await tempDir(t);
  const path = join(dir, 'seg.log');
  await writeFile(path, bytes);
  const fh = await open(path, 'r');
  t.teardown(() => fh.close());
  return fh.fd;
}

const batches = [1, 7, 2, 30, 1, 3, 12, 1].map((n, i) => makeBatch(n, { valueBytes: 10 + i * 7 }));
const all = Buffer.concat(batches);
const positions: number[] = [];
batches.reduce((p, b) => (positions.push(p), p + b.byteLength), 0);

t.test('every chunk size finds every batch at its position', async (t) => {
  const fd = await fileOf(t, all);
  for (const chunkBytes of [64, 100, 333, 1000, 4096, 1 << 20]) {
    const seen: number[] = [];
    const r = await scanBatches(fd, 0, all.byteLength, { checkCrc: true, maxBatchBytes: 1 << 20, chunkBytes }, (h, pos, chunk, at) => {
      seen.push(pos);
      t.equal(Buffer.compare(Buffer.from(chunk.subarray(at, at + h.totalBytes)), Buffer.from(all.subarray(pos, pos + h.totalBytes))), 0);
    });
    t.same(seen, positions, `chunk ${chunkBytes}`);
    t.same(r, { validEnd: all.byteLength, batches: batches.length });
  }
});

t.test('defects are reported at their exact position for every chunk size', async (t) => {
  const torn = all.subarray(0, all.byteLength - 5);
  const garbage = Buffer.concat([all, Buffer.alloc(100, 0xee)]);
  const shortGarbage = Buffer.concat([all, Buffer.alloc(30, 0xee)]);
  const flipped = Buffer.from(all);
  flipped[positions[5] + 70] ^= 1;
  const badLen = Buffer.from(all);
  badLen.writeInt32BE(5, positions[3] + 8);
  const cases: Array<[string, Uint8Array, number, string]> = [
    ['torn tail', torn, positions[7], 'short-batch'],
    ['garbage tail', garbage, all.byteLength, 'bad-length'],
    ['garbage shorter than a header', shortGarbage, all.byteLength, 'short-header'],
    ['crc', flipped, positions[5], 'crc-mismatch'],
    ['bad length', badLen, positions[3], 'bad-length'],
  ];
  for (const [name, bytes, at, kind] of cases) {
    const fd = await fileOf(t, bytes);
    for (const chunkBytes of [64, 257, 1 << 20]) {
      const r = await scanBatches(fd, 0, bytes.byteLength, { checkCrc: true, maxBatchBytes: 1 << 20, chunkBytes }, () => undefined);
      t.same({ validEnd: r.validEnd, kind: r.defect?.kind }, { validEnd: at, kind }, `${name}, chunk ${chunkBytes}`);
    }
  }
});

t.test('a walk can start mid-file at a batch boundary', async (t) => {
  const fd = await fileOf(t, all);
  const seen: number[] = [];
  await scanBatches(fd, positions[4], all.byteLength, { checkCrc: false, maxBatchBytes: 1 << 20, chunkBytes: 128 }, (_h, pos) => {
    seen.push(pos);
  });
  t.same(seen, positions.slice(4));
});

t.test('onBatch returning true stops the walk after that batch', async (t) => {
  const fd = await fileOf(t, all);
  const seen: number[] = [];
  const r = await scanBatches(fd, 0, all.byteLength, { checkCrc: true, maxBatchBytes: 1 << 20, chunkBytes: 100 }, (_h, pos) => {
    seen.push(pos);
    return seen.length === 3;
  });
  t.same(seen, positions.slice(0, 3));
  t.equal(r.validEnd, positions[3]);
});
