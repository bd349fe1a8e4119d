// Purpose: the broker's one partitioner puts every key where a Kafka client (kafkajs's
// DefaultPartitioner, Java-compatible murmur2) would, and unkeyed records stick per batch.
import t from 'tap';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import kafkajs from 'kafkajs';
import { murmur2, partitionForKeyBytes, toPositive, StickyPartitioner } from '../../../host/broker/partitioner.js';

const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number;

type KafkajsPartitioner = (args: { topic: string; partitionMetadata: Array<{ partitionId: number; leader: number }>; message: { key?: Buffer | null; partition?: number } }) => number;
const makeKafkajsPartitioner = kafkajs.Partitioners.DefaultPartitioner as unknown as () => KafkajsPartitioner;

function metadata(n: number) {
  return Array.from({ length: n }, (_, i) => ({ partitionId: i, leader: 0 }));
}

t.test('partitioner: murmur2 equals kafkajs murmur2 for 2,000 random keys of every tail length', async (t) => {
  let mismatches = 0;
  for (let i = 0; i < 2000; i++) {
    const key = randomBytes(i % 67);
    if (murmur2(key) !== kafkajsMurmur2(key)) mismatches++;
  }
  t.equal(mismatches, 0);
});

t.test('partitioner: 1,000+ random keys land where kafkajs DefaultPartitioner puts them, for several partition counts', async (t) => {
  const kafkajsPartition = makeKafkajsPartitioner();
  for (const n of [1, 2, 3, 7, 12, 64, 1000]) {
    let mismatches = 0;
    const seen = new Set<number>();
    for (let i = 0; i < 1200; i++) {
      const key = randomBytes(1 + (i % 40));
      const ours = partitionForKeyBytes(key, n);
      const theirs = kafkajsPartition({ topic: 't', partitionMetadata: metadata(n), message: { key } });
      if (ours !== theirs) mismatches++;
      seen.add(ours);
    }
    t.equal(mismatches, 0, `${n} partitions`);
    if (n <= 12) t.equal(seen.size, n, `keys spread over all ${n} partitions`);
  }
});

t.test('partitioner: special keys (empty, one byte, high bytes, text, negative hash) match kafkajs', async (t) => {
  const kafkajsPartition = makeKafkajsPartitioner();
  const keys = [
    Buffer.alloc(0),
    Buffer.from([0]),
    Buffer.from([0xff]),
    Buffer.from([0xff, 0xff, 0xff, 0xff]),
    Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80]),
    Buffer.from('sensors/kitchen/temperature'),
    Buffer.from('héllo wörld ✓'),
    Buffer.alloc(1024, 0xab),
  ];
  // Find a key whose hash is negative, so `& 0x7fffffff` (not Math.abs) is exercised.
  for (let i = 0; ; i++) {
    const k = Buffer.from(`neg-${i}`);
    if (kafkajsMurmur2(k) < 0) {
      keys.push(k);
      break;
    }
  }
  for (const key of keys) {
    for (const n of [1, 3, 10, 32]) {
      t.equal(partitionForKeyBytes(key, n), kafkajsPartition({ topic: 't', partitionMetadata: metadata(n), message: { key } }), `key ${key.toString('hex').slice(0, 16)} n=${n}`);
    }
  }
  // Known value from Kafka's own test suite (UtilsTest: murmur2 of "21" is -973932308).
  t.equal(murmur2(Buffer.from('21')), -973932308);
  t.equal(toPositive(-2147483648), 0);
});

t.test('partitioner: the same key always gets the same partition', async (t) => {
  const key = Buffer.from('device-42');
  const first = partitionForKeyBytes(key, 16);
  for (let i = 0; i < 100; i++) t.equal(partitionForKeyBytes(Buffer.from('device-42'), 16), first);
  t.throws(() => partitionForKeyBytes(key, 0));
});

t.test('sticky partitioner: one partition per call; a new call or a full batch moves to another', async (t) => {
  const sticky = new StickyPartitioner(1000);
  sticky.beginCall();
  const first = sticky.pick(5, 100);
  for (let i = 0; i < 8; i++) t.equal(sticky.pick(5, 100), first, 'same batch stays');
  // 900 bytes in the batch: the next 200-byte record would pass 1000 → moves.
  const afterFull = sticky.pick(5, 200);
  t.not(afterFull, first, 'full batch moves to another partition');
  sticky.beginCall();
  const nextCall = sticky.pick(5, 10);
  t.not(nextCall, afterFull, 'a new call moves to another partition');
  // Over many calls every partition gets used.
  const used = new Set<number>();
  for (let i = 0; i < 200; i++) {
    sticky.beginCall();
    used.add(sticky.pick(5, 10));
  }
  t.equal(used.size, 5);
  // One partition: always 0.
  const single = new StickyPartitioner(10);
  for (let i = 0; i < 5; i++) {
    single.beginCall();
    t.equal(single.pick(1, 100), 0);
  }
  // Partition count shrinking under it (never happens for a topic, but stays in range).
  t.ok(sticky.pick(2, 1) < 2);
});
