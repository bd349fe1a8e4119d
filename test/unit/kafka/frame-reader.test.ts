// Purpose: the client's frame cutter (host/kafka/client/frame-reader.ts) yields exactly the
// frames that were sent, in order, however the stream is split into reads — size fields split
// across reads, many frames in one read, a frame spread over many reads, one byte at a time —
// and refuses a size outside its bounds before keeping any of its bytes.
import t from 'tap';
import { FrameReader } from '../../../host/kafka/client/frame-reader.js';
import { seededRandom } from '../../helpers/seeded-random.js';

function stream(bodies: Buffer[]): Buffer {
  return Buffer.concat(bodies.flatMap((b) => {
    const size = Buffer.alloc(4);
    size.writeInt32BE(b.length, 0);
    return [size, b];
  }));
}

function cut(bytes: Buffer, random: () => number, maxRead: number): Buffer[] {
  const reads: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = 1 + Math.floor(random() * maxRead);
    // Each read its own buffer (as from a socket), not a view of the whole stream.
    reads.push(Buffer.from(bytes.subarray(at, at + n)));
    at += n;
  }
  return reads;
}

t.test('every split of the stream yields the same frames, in order', async (t) => {
  for (let seed = 1; seed <= 300; seed++) {
    const random = seededRandom(seed);
    const bodies = Array.from({ length: 1 + Math.floor(random() * 12) }, (_, i) => {
      const len = 4 + Math.floor(random() * (random() < 0.2 ? 70_000 : 60));
      return Buffer.alloc(len, (seed * 31 + i) & 0xff).fill(i & 0xff, 0, 4);
    });
    const bytes = stream(bodies);
    const maxRead = [1, 3, 7, 64, 1500, 65_536, bytes.length][seed % 7];
    const got: Buffer[] = [];
    const reader = new FrameReader({ minBytes: 4, maxBytes: 1 << 20 }, (f) => got.push(Buffer.from(f)), (size) => t.fail(`bad size ${size}`));
    for (const read of cut(bytes, random, maxRead)) reader.push(read);
    if (got.length !== bodies.length || got.some((g, i) => !g.equals(bodies[i]))) {
      t.fail(`seed ${seed} (reads ≤ ${maxRead} bytes): ${got.length} of ${bodies.length} frames, or a frame differs`);
      return;
    }
    t.equal(reader.heldBytes, 0, `seed ${seed}: nothing held once the stream ends on a frame boundary`);
  }
});

t.test('a frame inside one read is a view of it; a frame over several reads is gathered into its own buffer', async (t) => {
  const got: Buffer[] = [];
  const reader = new FrameReader({ minBytes: 4, maxBytes: 1000 }, (f) => got.push(f), () => t.fail('bad size'));
  const one = stream([Buffer.from('abcdefgh')]);
  reader.push(one);
  one[4] = 0x41; // the read's memory changed under the frame: a view sees it
  t.equal(got[0].toString(), 'Abcdefgh', 'whole in one read: a view, no copy');
  const two = stream([Buffer.from('0123456789')]);
  reader.push(two.subarray(0, 7));
  t.equal(reader.heldBytes, 3, 'three bytes of the second frame held');
  reader.push(two.subarray(7));
  t.equal(got[1].toString(), '0123456789');
  two.fill(0x41);
  t.equal(got[1].toString(), '0123456789', 'spread over two reads: its own buffer (the reads may be reused)');
});

t.test('a size outside the bounds is refused once, and nothing after it is read', async (t) => {
  for (const [size, label] of [[3, 'below minBytes'], [1001, 'above maxBytes'], [-1, 'negative']] as const) {
    const frames: Buffer[] = [];
    const refused: number[] = [];
    const reader = new FrameReader({ minBytes: 4, maxBytes: 1000 }, (f) => frames.push(f), (s) => refused.push(s));
    const head = Buffer.alloc(4);
    head.writeInt32BE(size, 0);
    const good = stream([Buffer.from('okay')]);
    // A good frame, then the bad size split over two reads, then more good frames.
    reader.push(Buffer.concat([good, head.subarray(0, 2)]));
    reader.push(Buffer.concat([head.subarray(2), Buffer.alloc(8), good]));
    reader.push(good);
    t.same(refused, [size], `${label}: refused with its size`);
    t.equal(frames.length, 1, `${label}: the frame before it was delivered, none after`);
  }
  // At the bounds: exactly maxBytes and exactly minBytes are frames.
  const frames: Buffer[] = [];
  const reader = new FrameReader({ minBytes: 4, maxBytes: 1000 }, (f) => frames.push(f), (s) => t.fail(`refused ${s}`));
  reader.push(stream([Buffer.alloc(1000, 1), Buffer.alloc(4, 2)]));
  t.same(frames.map((f) => f.length), [1000, 4], 'maxBytes and minBytes both accepted');
});

t.test('stop() from inside a frame handler ends reading at once', async (t) => {
  const frames: string[] = [];
  const reader: FrameReader = new FrameReader({ minBytes: 4, maxBytes: 100 }, (f) => {
    frames.push(f.toString());
    if (frames.length === 2) reader.stop();
  }, () => t.fail('bad size'));
  reader.push(stream(['aaaa', 'bbbb', 'cccc'].map((s) => Buffer.from(s))));
  t.same(frames, ['aaaa', 'bbbb'], 'the third frame, in the same read, is not delivered');
});
