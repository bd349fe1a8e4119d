// Purpose: kill -9 a process that appends with flush=always at random moments, many times over,
// and check after each crash that every acknowledged record is present and byte-exact, that
// nothing past a valid batch is served, and that appends work again. (kill -9 loses the
// process, not the page cache: torn writes on the disk itself are covered by log-torn-tail.)
import t from 'tap';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { decodeBatches, readBatchHeader } from '../../host/core/index.js';
import { PartitionLog } from '../../host/log/partition-log.js';
import { silentLogger } from '../../host/logging.js';
import { projectRoot, tempDir } from '../helpers/index.js';

const child = join(projectRoot, 'dist/test/crash/log-writer-child.js');
const BUDGET_MS = Number(process.env.LOG_CRASH_BUDGET_MS ?? 38_000);
const MAX_TRIALS = 300;

interface Ack {
  b: number;
  l: number;
  h: string;
}

function runChild(dir: string, seed: number, trial: number, killAfterMs: number): Promise<{ acks: Ack[]; errors: string[]; killedAt: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir, String(seed), String(trial)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acks: Ack[] = [];
    const errors: string[] = [];
    let stderr = '';
    let timer: NodeJS.Timeout | null = null;
    let killedAt = -1;
    p.stderr.on('data', (d) => (stderr += d));
    createInterface({ input: p.stdout }).on('line', (line) => {
      const o = JSON.parse(line);
      if (o.ready) {
        timer = setTimeout(() => {
          killedAt = acks.length;
          p.kill('SIGKILL');
        }, killAfterMs);
      } else if (o.error) errors.push(o.error);
      else acks.push(o);
    });
    const guard = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child exited on its own (${code}): ${stderr}`));
      else resolve({ acks, errors, killedAt });
    });
  });
}

t.test('kill -9 at random moments never loses an acknowledged append', async (t) => {
  const dir = await tempDir(t, 'tributary-crash-');
  const acked = new Map<number, Ack>();
  let retained = 0;
  const started = Date.now();
  let trials = 0;
  let totalAcks = 0;
  let truncatedTrials = 0;
  const seed0 = Number(process.env.LOG_CRASH_SEED ?? Date.now() % 1_000_000);
  t.comment(`seed ${seed0}`);
  while (Date.now() - started < BUDGET_MS && trials < MAX_TRIALS) {
    const seed = seed0 + trials * 7919;
    const killAfterMs = 20 + ((seed * 2654435761) >>> 0) % 300;
    const run = await runChild(dir, seed, trials + 1, killAfterMs);
    trials++;
    totalAcks += run.acks.length;
    t.same(run.errors, [], `trial ${trials}: idempotent retries answered with the original offsets`);
    for (const a of run.acks) acked.set(a.b, a);

    const log = await PartitionLog.open(dir, { flush: 'always', segmentBytes: 96 * 1024, indexIntervalBytes: 1024, retentionBytes: 2 * 1024 * 1024, retentionMs: -1 } as never, { logger: silentLogger });
    try {
      if (log.recovery.truncatedBytes > 0) truncatedTrials++;
      const maxAcked = Math.max(-1, ...[...acked.values()].map((a) => a.l));
      if (log.logEndOffset <= maxAcked) {
        t.fail(`trial ${trials}: log end ${log.logEndOffset} lost acknowledged offset ${maxAcked}`);
        break;
      }
      // Every acknowledged batch not yet removed by retention: present at its offset, byte-exact.
      // Retention removes whole segments from the front only: the log start is a segment base.
      if (log.logStartOffset !== log.segmentBaseOffsets[0]) t.fail(`trial ${trials}: log start ${log.logStartOffset} is not the first segment's base`);
      for (const [b, a] of acked) {
        if (a.l < log.logStartOffset) {
          acked.delete(b);
          retained++;
        }
      }
      let bad = 0;
      for (const a of acked.values()) {
        const r = await log.read(a.b, 1);
        const h = readBatchHeader(r.records, 0);
        const bytes = r.records.subarray(0, h.totalBytes);
        if (h.baseOffset !== a.b || h.lastOffset !== a.l || createHash('sha1').update(bytes).digest('hex') !== a.h) bad++;
      }
      if (bad) {
        t.fail(`trial ${trials}: ${bad} acknowledged batches differ`);
        break;
      }
      // Everything served is whole, CRC-valid batches with dense offsets up to the log end.
      let offset = log.logStartOffset;
      let batches = 0;
      while (offset < log.logEndOffset) {
        const r = await log.read(offset, 1 << 20);
        for (const b of decodeBatches(r.records)) {
          if (b.header.baseOffset !== offset) throw new Error(`trial ${trials}: gap at ${offset}`);
          offset = b.header.lastOffset + 1;
          batches++;
        }
      }
      if (offset !== log.logEndOffset) t.fail(`trial ${trials}: served up to ${offset}, log end ${log.logEndOffset}`);
      void batches;
      // Appends work after recovery (and are then part of the log the next child extends).
      const probe = await log.appendAsLeader(
        (await import('../../host/core/index.js')).encodeBatch([{ key: null, value: Buffer.from('probe') }]),
        { leaderEpoch: trials, durable: true },
      );
      if (probe.baseOffset !== offset) t.fail(`trial ${trials}: append after recovery at ${probe.baseOffset}, expected ${offset}`);
    } finally {
      await log.close();
    }
  }
  t.ok(trials >= 5, `${trials} kill -9 trials, ${totalAcks} acknowledged appends checked (${acked.size} still in the log, ${retained} removed by size retention), ${truncatedTrials} recoveries cut a torn tail`);
  t.comment(`log crash test: ${trials} kill -9 trials in ${Math.round((Date.now() - started) / 1000)} s; ${totalAcks} acknowledged appends; after every crash each one above the log start was present and byte-exact (${acked.size} at the end, ${retained} since removed by size retention)`);
});
