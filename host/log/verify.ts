// Verifying a partition log's stored batches by their CRCs (a replica's scrub, issue 11).
//
// Recovery after a clean shutdown trusts the segments (only an unclean one walks them with CRCs,
// and only from the recovery point), and a client read serves the readable prefix of a damaged segment
// and goes on at the next one. For a replicated partition that is not enough: a replica whose
// bytes rotted in the middle of a segment would rejoin the ISR by its log end, could be elected,
// and would then serve (or hand its followers) a log with a hole. So the cluster verifies every
// replicated partition at start with this walk before the node registers, and cuts a damaged
// replica at its first bad batch, to refetch the rest from the leader.
//
// What it reads: every `<base offset>.log` file of the partition directory, oldest first, each
// batch's header and CRC-32C (the batch format's own checksum over attributes..end). It writes
// nothing and takes no lock: a segment deleted meanwhile (retention) is skipped; a batch being
// appended at the end of the newest segment reads as short and is not damage (recovery has
// already cut torn tails; the appender owns that end).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BatchDefect } from './batch.js';
import { closeFd, fstatSize, openFd } from './io.js';
import { MAX_BATCH_BYTES_ON_DISK } from './options.js';
import { scanBatches } from './scan.js';
import { LOG_SUFFIX, fileNameFor, parseBaseOffset } from './segment.js';

/** Where a log's first damaged batch is. */
export interface Damage {
  /** The first offset not covered by the sound batches before the damage: cut the log here. */
  offset: number;
  /** The segment (its base offset) and the byte position of the damaged batch in it. */
  segment: number;
  position: number;
  defect: BatchDefect;
}

export interface VerifyReport {
  damage: Damage | null;
  segments: number;
  bytes: number;
  batches: number;
}

/** Walks every segment of the log in `dir` with CRC checks; stops at the first damaged batch. */
export async function verifyLog(dir: string): Promise<VerifyReport> {
  const bases = (await readdir(dir))
    .map((name) => parseBaseOffset(name, LOG_SUFFIX))
    .filter((b): b is number => b !== null)
    .sort((a, b) => a - b);
  const report: VerifyReport = { damage: null, segments: 0, bytes: 0, batches: 0 };
  for (let i = 0; i < bases.length; i++) {
    const base = bases[i]!;
    const fd = await openFd(join(dir, fileNameFor(base, LOG_SUFFIX)), 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return -1; // deleted by retention since the listing
      throw err;
    });
    if (fd < 0) continue;
    try {
      const size = await fstatSize(fd);
      let next = base;
      const r = await scanBatches(fd, 0, size, { checkCrc: true, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK }, (h) => {
        next = h.lastOffset + 1;
      });
      report.segments++;
      report.bytes += r.validEnd;
      report.batches += r.batches;
      const last = i === bases.length - 1;
      const torn = r.defect !== undefined && (r.defect.kind === 'short-header' || r.defect.kind === 'short-batch');
      if (r.defect && !(last && torn)) {
        report.damage = { offset: next, segment: base, position: r.defect.position, defect: r.defect.kind };
        return report;
      }
    } finally {
      await closeFd(fd);
    }
  }
  return report;
}
