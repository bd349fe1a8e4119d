// Purpose: a damaged batch in an internal topic (`__consumer_offsets`) never keeps the broker
// down (issue 14, finding 6). Offsets are committed through kafkajs (a client nobody here
// wrote), the broker is stopped cleanly, bytes inside one committed batch of the real segment
// file are flipped, and the broker started again: it must start, serve, log and count the
// skipped batch, and still hold every commit that was not in the damaged batch.
import t from 'tap';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { startBroker, tempDir } from '../helpers/index.js';

const require = createRequire(import.meta.url);
const { Kafka, logLevel } = require('kafkajs') as typeof import('kafkajs');

/** Batch boundaries of a segment file: [position, length] per batch (Kafka's v2 layout: baseOffset 8, batchLength 4). */
function batchesOf(bytes: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let pos = 0;
  while (pos + 12 <= bytes.length) {
    const len = bytes.readInt32BE(pos + 8) + 12;
    out.push([pos, len]);
    pos += len;
  }
  return out;
}

t.test('a corrupt batch in __consumer_offsets: the broker starts, skips it (logged, counted), keeps the other commits', async (t) => {
  const dataDir = await tempDir(t);
  let b = await startBroker(t, { dataDir });
  const kafka = () => new Kafka({ clientId: 'corrupt-test', brokers: [`127.0.0.1:${b.port('kafka')}`], logLevel: logLevel.NOTHING });
  let admin = kafka().admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'readings', numPartitions: 1 }] });
  // One commit per group: each lands in __consumer_offsets as its own batch.
  const groups = ['g-damaged', 'g-kept-1', 'g-kept-2'];
  for (const [i, groupId] of groups.entries()) await admin.setOffsets({ groupId, topic: 'readings', partitions: [{ partition: 0, offset: String(10 + i) }] });
  for (const [i, groupId] of groups.entries()) {
    const got = await admin.fetchOffsets({ groupId, topics: ['readings'] });
    t.equal(got[0].partitions[0].offset, String(10 + i), `${groupId} committed before the damage`);
  }
  await admin.disconnect();
  t.equal(await b.stop(), 0, 'clean stop');

  // Find the batch holding g-damaged's commit in the real segment file and flip bytes inside it
  // (its length stays intact, so the batches after it are still where they were).
  const dirs = readdirSync(dataDir).filter((d) => d.startsWith('__consumer_offsets-'));
  let damaged = false;
  for (const d of dirs) {
    const file = join(dataDir, d, '00000000000000000000.log');
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch {
      continue;
    }
    for (const [pos, len] of batchesOf(bytes)) {
      if (!bytes.subarray(pos, pos + len).includes(Buffer.from('g-damaged'))) continue;
      for (let i = pos + 61; i < pos + len; i += 3) bytes[i] ^= 0xff;
      writeFileSync(file, bytes);
      damaged = true;
      t.comment(`flipped bytes in ${d} at [${pos}, ${pos + len})`);
    }
  }
  t.ok(damaged, 'found and damaged the batch with g-damaged');

  b = await startBroker(t, { dataDir });
  const skippedLine = b.logs.find((l) => String(l.msg).includes('skipped a damaged batch'));
  t.ok(skippedLine, `the skip is logged: ${JSON.stringify(skippedLine)}`);
  const metrics = await (await fetch(`http://127.0.0.1:${b.port('http')}/metrics`)).text();
  t.match(metrics, /^tributary_log_damaged_batches_skipped_total\{partition="__consumer_offsets-\d+"\} [1-9]/m, 'the skip is counted');
  admin = kafka().admin();
  await admin.connect();
  for (const [i, groupId] of groups.entries()) {
    if (groupId === 'g-damaged') continue;
    const got = await admin.fetchOffsets({ groupId, topics: ['readings'] });
    t.equal(got[0].partitions[0].offset, String(10 + i), `${groupId}: its commit survives the damaged neighbour`);
  }
  // And it serves: new commits work.
  await admin.setOffsets({ groupId: 'g-damaged', topic: 'readings', partitions: [{ partition: 0, offset: '42' }] });
  t.equal((await admin.fetchOffsets({ groupId: 'g-damaged', topics: ['readings'] }))[0].partitions[0].offset, '42', 'the damaged group commits again');
  await admin.disconnect();
  t.equal(await b.stop(), 0);
});
