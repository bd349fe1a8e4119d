// Purpose: verifyLog (host/log/verify.ts), the CRC walk a replica's start-up verification makes:
// a sound log has no damage; a flipped byte in a middle batch (or in an older segment) names the
// first offset to cut at; a torn tail of the newest segment is not damage (an append in flight).
// And the read policy at a damaged batch: a replica read fails (no gap), a client read goes on.
import t from 'tap';
import { readdir, readFile, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { verifyLog } from '../../../host/log/verify.js';
import { decodeBatches } from '../../../host/core/index.js';
import { durable, makeBatch, openLog } from './fixture.js';

async function segments(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.log')).sort();
}

/** Flips one byte in the first record value filled with `fill` in `file`. */
async function flip(file: string, fill: number): Promise<void> {
  const bytes = await readFile(file);
  const at = bytes.indexOf(Buffer.alloc(50, fill));
  if (at < 0) throw new Error(`no value filled with ${fill} in ${file}`);
  bytes[at + 25] ^= 0x01;
  await writeFile(file, bytes);
}

t.test('verifyLog: a sound log has no damage and every batch is counted', async (t) => {
  const { log, dir } = await openLog(t, { flush: 'always' });
  for (let i = 0; i < 3; i++) await log.appendAsLeader(makeBatch(4, { fill: 10 + i }), durable);
  await log.close();
  const r = await verifyLog(dir);
  t.equal(r.damage, null);
  t.equal(r.batches, 3);
  t.equal(r.segments, 1);
});

t.test('verifyLog: a value byte flipped in a middle batch names that batch\'s first offset', async (t) => {
  const { log, dir } = await openLog(t, { flush: 'always' });
  for (let i = 0; i < 3; i++) await log.appendAsLeader(makeBatch(4, { fill: 20 + i, keys: 0 }), durable); // 0..3, 4..7, 8..11
  await log.close();
  const file = join(dir, (await segments(dir))[0]!);
  // Every value of batch i is filled with 20 + i: the second batch (offsets 4..7) with 21.
  await flip(file, 21);
  const r = await verifyLog(dir);
  t.same(r.damage && { offset: r.damage.offset, defect: r.damage.defect, segment: r.damage.segment }, { offset: 4, defect: 'crc-mismatch', segment: 0 });
});

t.test('verifyLog: damage in an older segment stops the walk there; a torn tail of the newest is not damage', async (t) => {
  const { log, dir } = await openLog(t, { flush: 'always', segmentBytes: 1024 });
  for (let i = 0; i < 12; i++) await log.appendAsLeader(makeBatch(2, { fill: 40 + 2 * i, keys: 0, valueBytes: 100 }), durable);
  await log.close();
  const files = await segments(dir);
  t.ok(files.length >= 3, `${files.length} segments`);
  await appendFile(join(dir, files.at(-1)!), Buffer.alloc(30, 7)); // a header cut short: an append in flight
  t.equal((await verifyLog(dir)).damage, null, 'the torn tail of the newest segment is not damage');
  const second = files[1]!;
  const base = Number(second.slice(0, 20));
  const bytes = await readFile(join(dir, second));
  bytes[bytes.length - 10] ^= 0x01; // inside the last batch of the second segment
  await writeFile(join(dir, second), bytes);
  const r = await verifyLog(dir);
  t.equal(r.damage?.segment, base, 'the damaged segment is named');
  t.ok(r.damage!.offset > base, `the cut is after the sound batches of that segment (offset ${r.damage!.offset})`);
  t.equal(r.damage!.defect, 'crc-mismatch');
});

t.test('read: past a damaged batch a replica read (failOnDamage) fails with CORRUPT_MESSAGE; a client read goes on at the next segment', async (t) => {
  const o = await openLog(t, { flush: 'always', segmentBytes: 1024 });
  for (let i = 0; i < 12; i++) await o.log.appendAsLeader(makeBatch(2, { fill: 40 + 2 * i, keys: 0, valueBytes: 100 }), durable);
  await o.log.close();
  const files = await segments(o.dir);
  const next = Number(files[1]!.slice(0, 20));
  const first = join(o.dir, files[0]!);
  const bytes = await readFile(first);
  bytes[bytes.length - 10] ^= 0x01; // inside the first segment's last batch
  await writeFile(first, bytes);
  const log = await o.reopen(); // a clean open: batches written before it are CRC-checked when read
  const prefix = await log.read(0, 1 << 20, log.logEndOffset);
  const damagedAt = prefix.nextOffset;
  t.ok(damagedAt > 0 && damagedAt < next, `the readable prefix ends at ${damagedAt}, before the next segment (${next})`);
  const skipped = await log.read(damagedAt, 1 << 20, log.logEndOffset);
  t.equal(decodeBatches(skipped.records)[0]?.records[0]?.offset, next, 'a client read goes on at the next segment (the prefix policy)');
  const code = await log.read(damagedAt, 1 << 20, log.logEndOffset, { failOnDamage: true }).then(() => 'none', (err: { code?: string }) => err.code);
  t.equal(code, 'CORRUPT_MESSAGE', 'a replica read fails there instead of storing a gap');
});
