// Purpose: kill -9 a process whose compacted log is being cleaned every 20 ms while it appends
// with flush=always, many times over, and check after each crash that for every key the latest
// acknowledged value is still the log's latest value of that key (or a later one exists),
// that everything served is whole CRC-valid batches in offset order, and that no interrupted
// clean leaves a `.cleaned` or `.swap` file behind.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { decodeBatches } from '../../host/core/index.js';
import { PartitionLog } from '../../host/log/partition-log.js';
import { silentLogger } from '../../host/logging.js';
import { projectRoot, tempDir } from '../helpers/index.js';

const child = join(projectRoot, 'dist/test/crash/log-compact-child.js');
const BUDGET_MS = Number(process.env.LOG_COMPACTION_CRASH_BUDGET_MS ?? 15_000);
const OPTIONS = { flush: 'always', segmentBytes: 24 * 1024, cleanupPolicy: 'compact', minCompactionLagMs: 0, deleteRetentionMs: 3_600_000 };

function runChild(dir: string, seed: number, killAfterMs: number): Promise<{ records: Array<[number, string, string]>; errors: string[] }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const records: Array<[number, string, string]> = [];
    const errors: string[] = [];
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    let timer: NodeJS.Timeout | null = null;
    createInterface({ input: p.stdout }).on('line', (line) => {
      const o = JSON.parse(line);
      if (o.ready) timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
      else if (o.error) errors.push(o.error);
      else records.push(...o.r);
    });
    const guard = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child exited on its own (${code}): ${stderr}`));
      else resolve({ records, errors });
    });
  });
}

t.test('kill -9 during compaction never loses the latest acknowledged value of a key', async (t) => {
  const dir = await tempDir(t, 'tributary-compact-crash-');
  const latestAcked = new Map<string, { offset: number; hash: string }>();
  const started = Date.now();
  const seed0 = Number(process.env.LOG_CRASH_SEED ?? Date.now() % 1_000_000);
  t.comment(`seed ${seed0}`);
  let trials = 0;
  let acks = 0;
  let cleanedRuns = 0;
  while (Date.now() - started < BUDGET_MS && trials < 200) {
    const seed = seed0 + trials * 104729;
    const run = await runChild(dir, seed, 50 + (((seed * 2654435761) >>> 0) % 400));
    trials++;
    acks += run.records.length;
    t.same(run.errors, [], `trial ${trials}: compaction ran without errors`);
    for (const [offset, key, hash] of run.records) {
      const prev = latestAcked.get(key);
      if (!prev || prev.offset < offset) latestAcked.set(key, { offset, hash });
    }
    const names = await readdir(dir);
    const log = await PartitionLog.open(dir, OPTIONS as never, { logger: silentLogger });
    try {
      if (names.some((n) => n.endsWith('.cleaned') || n.endsWith('.swap'))) cleanedRuns++;
      const after = await readdir(dir);
      if (after.some((n) => n.endsWith('.cleaned') || n.endsWith('.swap'))) t.fail(`trial ${trials}: leftover compaction files after open`);
      const inLog = new Map<string, { offset: number; hash: string }>();
      let offset = log.logStartOffset;
      let last = -1;
      while (offset < log.logEndOffset) {
        const r = await log.read(offset, 1 << 20);
        if (r.records.byteLength === 0) break;
        for (const b of decodeBatches(r.records)) {
          for (const rec of b.records) {
            if (rec.offset <= last) throw new Error(`trial ${trials}: offset ${rec.offset} after ${last}`);
            last = rec.offset;
            inLog.set(Buffer.from(rec.key!).toString(), { offset: rec.offset, hash: createHash('sha1').update(rec.value!).digest('hex') });
          }
        }
        offset = r.nextOffset;
      }
      let lost = 0;
      for (const [key, acked] of latestAcked) {
        const have = inLog.get(key);
        if (!have || have.offset < acked.offset || (have.offset === acked.offset && have.hash !== acked.hash)) lost++;
      }
      if (lost) {
        t.fail(`trial ${trials}: ${lost} keys lost their latest acknowledged value`);
        break;
      }
    } finally {
      await log.close();
    }
  }
  t.ok(trials >= 3, `${trials} kill -9 trials during compaction, ${acks} acknowledged records, ${latestAcked.size} keys all holding their latest acknowledged value; ${cleanedRuns} crashes left an interrupted clean to finish or discard`);
  t.comment(`compaction crash test: ${trials} trials, ${acks} acknowledged records, latest value of all ${latestAcked.size} keys intact`);
});
