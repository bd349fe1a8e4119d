// Purpose: a partition log on a REAL full filesystem (a 4 MiB tmpfs mounted for the test): a
// write that meets ENOSPC refuses the queued appends with STORAGE_FULL but does not fail the log;
// the segment is cut back to the last complete write (no partial batch left for recovery); the
// idempotent producer's sequence is taken back, so a retry of a refused batch is accepted once
// space returns, at the next offset (no gap); everything acknowledged is still there after a
// close and reopen. Needs root (mount); skipped with the reason otherwise, failed under CI=true.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PartitionLog, defaultLogOptions } from '../../../host/log/partition-log.js';
import { encodeBatch } from '../../../host/core/index.js';
import { tempDir } from '../../helpers/index.js';
import { captureLogger } from './fixture.js';

const PRODUCER = { producerId: 7, producerEpoch: 0 };
const batch = (seq: number, bytes = 16 * 1024) => encodeBatch([{ key: null, value: Buffer.alloc(bytes, 0x41 + (seq % 26)) }], { ...PRODUCER, baseSequence: seq });

function fillDisk(path: string): void {
  const fd = openSync(path, 'a');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

t.test('log on a full tmpfs: ENOSPC refuses, cuts back, takes the sequence back; appends resume when space returns', async (t) => {
  const root = await tempDir(t, 'tributary-log-enospc-');
  const mnt = join(root, 'mnt');
  mkdirSync(mnt);
  const why = process.getuid?.() !== 0 ? 'not root: mount -t tmpfs needs CAP_SYS_ADMIN' : spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { encoding: 'utf8' }).stderr.trim() || null;
  if (why) {
    if (process.env.CI === 'true') t.fail(`cannot mount a tmpfs in CI: ${why}`);
    else t.pass(`skipped: ${why}`);
    return;
  }
  t.teardown(() => void spawnSync('umount', ['-l', mnt]));
  const dir = join(mnt, 'p-0');
  const cap = captureLogger();
  let log = await PartitionLog.open(dir, { ...defaultLogOptions }, { logger: cap.logger });
  const acked: number[] = [];
  for (let seq = 0; seq < 10; seq++) acked.push((await log.appendAsLeader(batch(seq), { leaderEpoch: 0, durable: true })).baseOffset);
  t.same(acked, [...Array(10).keys()]);
  const filler = join(mnt, 'filler');
  fillDisk(filler);
  // Several appends at once: the first meets ENOSPC, the ones queued behind it are refused too.
  const results = await Promise.allSettled([10, 11, 12, 13].map((seq) => log.appendAsLeader(batch(seq), { leaderEpoch: 0, durable: true })));
  for (const r of results) t.match(r, { status: 'rejected', reason: { code: 'STORAGE_FULL' } }, 'refused: STORAGE_FULL');
  t.equal(log.failed, null, 'the log has not failed');
  t.equal(log.logEndOffset, 10, 'log end: the acknowledged appends only');
  const segBytes = statSync(join(dir, '00000000000000000000.log')).size;
  t.equal(segBytes, log.sizeBytes, `the segment file is cut back to its last complete write (${segBytes} bytes)`);
  t.ok(cap.find('disk full: queued appends refused'), 'logged');

  unlinkSync(filler);
  const retried = await log.appendAsLeader(batch(10), { leaderEpoch: 0, durable: true });
  t.equal(retried.baseOffset, 10, 'the retried batch (sequence 10) is accepted at the next offset: no gap, no OUT_OF_ORDER');
  t.equal(retried.duplicate, false);
  t.equal((await log.appendAsLeader(batch(11), { leaderEpoch: 0, durable: true })).baseOffset, 11);
  await log.close();
  log = await PartitionLog.open(dir, { ...defaultLogOptions }, { logger: cap.logger });
  t.equal(log.logEndOffset, 12, 'after reopen: every acknowledged batch');
  const read = await log.read(0, 1 << 22, log.logEndOffset);
  t.equal(read.nextOffset, 12);
  await log.close();
});
