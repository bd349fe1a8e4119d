// Opening a partition log (Kafka's LogLoader): from the directory on disk to a loaded-log value
// the log is built from: its segments (the last one active, fd open), the log start and end
// offsets, the leader-epoch cache and the producer state, and a report of what recovery did.
//
//  1. finish or discard interrupted work: `.swap` files are renamed into place (a compaction
//     that had fsynced its result), `.cleaned`, `.deleted` and `.tmp` files are removed, index
//     files without a log are removed (a deletion interrupted by a crash);
//  2. segments wholly below the log-start checkpoint are deleted (retention that crashed
//     between checkpoint and unlink);
//  3. with the clean-shutdown marker: indexes are trusted, the active segment's tail is walked
//     from its last index entry, producer state comes from the snapshot at the log end;
//  4. without it: every segment from the one holding the recovery point is walked with CRC
//     checks; the first short, mis-sized, bad-magic or CRC-failing batch is the end of the
//     log: the file is cut there and later segments are deleted (each logged with bytes and
//     offsets); indexes of walked segments are rebuilt; producer state = newest snapshot +
//     replay; the leader-epoch cache is cut to the log end;
//  5. the marker is removed (durably) before the log takes its first append.
//
// On a full disk (ENOSPC/EDQUOT) the log still opens, so the broker can start read-only: the
// checkpoints written here (log start, leader epochs) only restate what the segments already
// say and are skipped with a warning (the old files stay valid: the next open computes the same
// values), and rebuilt indexes of closed segments are kept in memory while their stale files are
// removed (unlinking needs no space), so no later open trusts them; they are rebuilt on next use.
import { mkdir, readdir, rename } from 'node:fs/promises';
import type { Logger } from '../logging.js';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  CLEAN_SHUTDOWN_FILE,
  LOG_START_FILE,
  RECOVERY_POINT_FILE,
  LeaderEpochCache,
  readOffsetCheckpoint,
  writeOffsetCheckpoint,
} from './checkpoints.js';
import { closeFd, fdatasync, fstatSize, fsyncDir, ftruncate, openFd, preadFull, unlinkIfExists, writeFileAtomic } from './io.js';
import { MAX_BATCH_BYTES_ON_DISK, MAX_RELATIVE_OFFSET } from './options.js';
import { ProducerStore } from './producer-store.js';
import { scanBatches, type ScanResult } from './scan.js';
import {
  CLEANED_SUFFIX,
  DELETED_SUFFIX,
  INDEX_SUFFIX,
  LOG_SUFFIX,
  SNAPSHOT_SUFFIX,
  SWAP_SUFFIX,
  Segment,
  TIME_INDEX_SUFFIX,
  adoptStats,
  batchStartsAt,
  createSegment,
  deleteSegmentFiles,
  fileNameFor,
  parseBaseOffset,
  rebuildTwin,
} from './segment.js';
import { SegmentSet, type SegmentSetDeps } from './segment-set.js';
import { OffsetIndex, TimeIndex } from './sparse-index.js';

export interface RecoveryReport {
  clean: boolean;
  /** True when the partition had no segment yet (a new log): nothing was recovered. */
  created?: boolean;
  durationMs: number;
  scannedBytes: number;
  truncatedBytes: number;
  segmentsScanned: number;
  segmentsDeleted: number;
}

/** What the log is built from. */
export interface LoadedLog {
  segments: SegmentSet;
  producers: ProducerStore;
  leaderEpochs: LeaderEpochCache;
  logStartOffset: number;
  /** Offset after the last valid batch: next = written = durable = visible on open. */
  endOffset: number;
  recovery: RecoveryReport;
}

/** Opens (creating if needed) the log in `deps.dir`, recovering it if it was not closed cleanly. */
export function loadLog(deps: SegmentSetDeps): Promise<LoadedLog> {
  return new LogLoader(deps).load();
}

interface Inventory {
  clean: boolean;
  bases: number[];
  snapshotOffsets: number[];
}

class LogLoader {
  private readonly dir: string;
  private readonly report: RecoveryReport = { clean: true, durationMs: 0, scannedBytes: 0, truncatedBytes: 0, segmentsScanned: 0, segmentsDeleted: 0 };
  private readonly leaderEpochs: LeaderEpochCache;
  private readonly segmentSet: SegmentSet;
  private segments: Segment[] = [];
  /** Closed segments whose indexes recovery rebuilt (they start in the index cache). */
  private readonly indexed: Segment[] = [];

  constructor(private readonly deps: SegmentSetDeps) {
    this.dir = deps.dir;
    this.leaderEpochs = new LeaderEpochCache(deps.dir);
    this.segmentSet = new SegmentSet(deps);
  }

  async load(): Promise<LoadedLog> {
    const t0 = performance.now();
    await mkdir(this.dir, { recursive: true });
    await this.finishInterruptedWork();
    const inv = await this.inventory();
    this.report.clean = inv.clean;
    const logStartCk = await readOffsetCheckpoint(this.dir, LOG_START_FILE);
    const recoveryPoint = inv.clean ? null : await readOffsetCheckpoint(this.dir, RECOVERY_POINT_FILE);
    await this.leaderEpochs.load();
    const producers = new ProducerStore(this.dir, this.deps.options, this.deps.logger, inv.snapshotOffsets);
    let logStart: number;
    let end: number;
    if (inv.bases.length === 0) {
      // No segment on disk: a new partition (or one whose files were all removed), nothing to
      // recover, so no "unclean shutdown" to report.
      this.report.clean = true;
      this.report.created = true;
      logStart = end = logStartCk ?? 0;
      this.segments = [await createSegment(this.dir, logStart, this.deps.options().segmentIndexBytes)];
    } else {
      logStart = Math.max(logStartCk ?? inv.bases[0], inv.bases[0]);
      await this.openSegments(await this.deleteBelowStart(inv.bases, logStart));
      end = await this.recoverSegments(inv.clean, recoveryPoint);
      logStart = Math.min(logStart, end);
    }
    this.segmentSet.install(this.segments, this.indexed);
    await this.settleState(inv.clean, logStart, end, producers);
    this.report.durationMs = performance.now() - t0;
    return { segments: this.segmentSet, producers, leaderEpochs: this.leaderEpochs, logStartOffset: logStart, endOffset: end, recovery: this.report };
  }

  /** Step 1: `.swap` renamed into place; `.cleaned`, `.deleted`, `.tmp` removed. */
  private async finishInterruptedWork(): Promise<void> {
    for (const name of await readdir(this.dir)) {
      if (name.endsWith(SWAP_SUFFIX)) {
        const target = name.slice(0, -SWAP_SUFFIX.length);
        const base = parseBaseOffset(target, LOG_SUFFIX);
        if (base !== null) {
          // The old segment's indexes describe the old file: drop them (rebuilt on first use).
          await unlinkIfExists(join(this.dir, fileNameFor(base, INDEX_SUFFIX)));
          await unlinkIfExists(join(this.dir, fileNameFor(base, TIME_INDEX_SUFFIX)));
        }
        await rename(join(this.dir, name), join(this.dir, target));
        await fsyncDir(this.dir);
        this.deps.logger.warn({ file: target }, 'completed an interrupted compaction swap');
      } else if (name.endsWith(CLEANED_SUFFIX) || name.endsWith(DELETED_SUFFIX) || name.endsWith('.tmp')) {
        await unlinkIfExists(join(this.dir, name));
      }
    }
  }

  /** The marker, segment base offsets and snapshot offsets on disk; orphan index files removed. */
  private async inventory(): Promise<Inventory> {
    const names = await readdir(this.dir);
    const offsetsOf = (suffix: string) =>
      names
        .map((n) => parseBaseOffset(n, suffix))
        .filter((n): n is number => n !== null)
        .sort((a, b) => a - b);
    const bases = offsetsOf(LOG_SUFFIX);
    for (const n of names) {
      const b = parseBaseOffset(n, INDEX_SUFFIX) ?? parseBaseOffset(n, TIME_INDEX_SUFFIX);
      if (b !== null && !bases.includes(b)) await unlinkIfExists(join(this.dir, n));
    }
    return { clean: names.includes(CLEAN_SHUTDOWN_FILE), bases, snapshotOffsets: offsetsOf(SNAPSHOT_SUFFIX) };
  }

  /** Step 2: segments wholly below the log start go. Returns the bases left. */
  private async deleteBelowStart(bases: number[], logStart: number): Promise<number[]> {
    const left = [...bases];
    while (left.length > 1 && left[1] <= logStart) {
      const b = left.shift()!;
      await deleteSegmentFiles(this.dir, b);
      this.report.segmentsDeleted++;
      this.deps.logger.info({ segment: b, logStartOffset: logStart }, 'deleted segment below the log start offset');
    }
    return left;
  }

  private async openSegments(bases: number[]): Promise<void> {
    const indexBytes = this.deps.options().segmentIndexBytes;
    this.segments = bases.map((b) => new Segment(this.dir, b, indexBytes));
    for (let i = 0; i < this.segments.length; i++) {
      const seg = this.segments[i];
      const fd = await openFd(seg.logPath, 'r');
      try {
        seg.sizeBytes = await fstatSize(fd);
      } finally {
        await closeFd(fd);
      }
      seg.nextOffset = i + 1 < this.segments.length ? this.segments[i + 1].baseOffset : seg.baseOffset;
    }
  }

  /** Steps 3 and 4 over the segments; returns the log end offset. */
  private async recoverSegments(clean: boolean, recoveryPoint: number | null): Promise<number> {
    // Which segments get the walk: the last one after a clean shutdown, else from the recovery point.
    let firstScanned = this.segments.length - 1;
    if (!clean) firstScanned = recoveryPoint === null ? 0 : this.lastSegmentAtOrBelow(recoveryPoint);
    for (let i = 0; i < firstScanned; i++) await readLastTimeEntry(this.segments[i]);
    for (let i = firstScanned; i < this.segments.length; i++) {
      if (await this.recoverSegment(i, clean)) break;
    }
    return this.segments[this.segments.length - 1].nextOffset;
  }

  private lastSegmentAtOrBelow(offset: number): number {
    let found = 0;
    for (let i = 0; i < this.segments.length; i++) if (this.segments[i].baseOffset <= offset) found = i;
    return found;
  }

  /** Walks one segment (cutting a damaged tail). Returns true when it is the active one (the last). */
  private async recoverSegment(i: number, clean: boolean): Promise<boolean> {
    const seg = this.segments[i];
    const fresh = rebuildTwin(seg, this.deps.options().segmentIndexBytes);
    const scanFrom = clean ? await this.resumeFromIndex(seg, fresh) : 0;
    const fd = await openFd(seg.logPath, 'r+');
    let truncated: boolean;
    try {
      truncated = await this.walk(seg, fresh, fd, scanFrom, clean);
    } catch (err) {
      await closeFd(fd).catch(() => undefined);
      throw err;
    }
    adoptStats(seg, fresh, Date.now());
    // CRC-checked by this process when walked with CRCs (unclean recovery); after a clean
    // shutdown only what gets appended from now on is.
    seg.uncheckedBelow = clean ? seg.sizeBytes : 0;
    if (truncated && i < this.segments.length - 1) await this.deleteAfter(i);
    if (i === this.segments.length - 1) {
      seg.fd = fd;
      seg.active = true;
      await seg.offsetIndex.reopenActive(fresh.offsetIndex.entries(), fresh.offsetIndex.count);
      await seg.timeIndex.reopenActive(fresh.timeIndex.entries(), fresh.timeIndex.count);
      seg.indexesTrusted = true;
      return true;
    }
    await closeFd(fd);
    await installRebuiltIndexes(seg, fresh, this.deps.logger);
    this.indexed.push(seg);
    return false;
  }

  /**
   * After a clean shutdown the active segment's indexes are trusted: the walk continues from
   * the last offset-index entry (when it points at its batch). Returns the position to walk from.
   */
  private async resumeFromIndex(seg: Segment, fresh: Segment): Promise<number> {
    const oi = await seg.offsetIndex.readFile();
    const ti = await seg.timeIndex.readFile();
    const vo = oi ? OffsetIndex.validate(oi, seg.sizeBytes) : { ok: false, count: 0 };
    const vt = ti ? TimeIndex.validate(ti, MAX_RELATIVE_OFFSET) : { ok: false, count: 0 };
    if (!(oi && ti && vo.ok && vt.ok)) {
      this.deps.logger.warn({ segment: seg.baseOffset }, 'active segment indexes invalid after a clean shutdown: rebuilding');
      return 0;
    }
    const installTime = () => {
      fresh.timeIndex.install(Buffer.from(ti.subarray(0, vt.count * 12)), vt.count);
      if (vt.count > 0) {
        fresh.maxTimestampMs = fresh.timeIndex.timestampAt(vt.count - 1);
        fresh.offsetOfMaxTimestamp = seg.baseOffset + fresh.timeIndex.relativeOffsetAt(vt.count - 1);
      }
    };
    if (vo.count === 0) {
      fresh.offsetIndex.install(Buffer.alloc(0), 0);
      installTime();
      return 0;
    }
    const rel = oi.readUInt32BE((vo.count - 1) * 8);
    const position = oi.readUInt32BE((vo.count - 1) * 8 + 4);
    const fd = await openFd(seg.logPath, 'r');
    const matches = await batchStartsAt(fd, position, seg.baseOffset + rel).finally(() => closeFd(fd));
    if (!matches) return 0;
    fresh.offsetIndex.install(Buffer.from(oi.subarray(0, vo.count * 8)), vo.count);
    installTime();
    fresh.sizeBytes = position;
    fresh.nextOffset = seg.baseOffset + rel;
    return position;
  }

  /** Walks [scanFrom, end) into `fresh`, cutting the file at the first invalid batch. Returns true when it cut. */
  private async walk(seg: Segment, fresh: Segment, fd: number, scanFrom: number, clean: boolean): Promise<boolean> {
    const sizeOnDisk = seg.sizeBytes;
    const indexIntervalBytes = this.deps.options().indexIntervalBytes;
    const result = await scanBatches(fd, scanFrom, sizeOnDisk, { checkCrc: !clean, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK }, (h, pos) => {
      fresh.track(h, pos, indexIntervalBytes, h.maxTimestamp);
      if (!clean) this.leaderEpochs.assign(h.partitionLeaderEpoch, h.baseOffset);
    });
    this.report.scannedBytes += sizeOnDisk - scanFrom;
    this.report.segmentsScanned++;
    if (result.validEnd >= sizeOnDisk) return false;
    await this.cut(seg, fresh, fd, result);
    return true;
  }

  private async cut(seg: Segment, fresh: Segment, fd: number, result: ScanResult): Promise<void> {
    const cut = seg.sizeBytes - result.validEnd;
    this.deps.logger.warn(
      {
        segment: seg.baseOffset,
        truncatedBytes: cut,
        at: result.validEnd,
        defect: result.defect?.kind ?? 'short-header',
        lastValidOffset: fresh.nextOffset - 1,
        firstLostOffset: fresh.nextOffset,
      },
      'recovery: truncated the log at the first invalid batch',
    );
    await ftruncate(fd, result.validEnd);
    await fdatasync(fd);
    this.report.truncatedBytes += cut;
    this.deps.metrics?.truncatedBytes.inc(this.deps.label, cut);
    seg.sizeBytes = result.validEnd;
  }

  /** Everything after the first invalid batch is gone, including later segments. */
  private async deleteAfter(i: number): Promise<void> {
    for (const later of this.segments.splice(i + 1)) {
      this.report.truncatedBytes += later.sizeBytes;
      this.deps.logger.warn({ segment: later.baseOffset, bytes: later.sizeBytes }, 'recovery: deleted a segment that follows the truncation point');
      await deleteSegmentFiles(this.dir, later.baseOffset);
      this.report.segmentsDeleted++;
    }
  }

  /** Step 5 and the state beside the segments: epochs, producers, checkpoints, the marker. */
  private async settleState(clean: boolean, logStart: number, end: number, producers: ProducerStore): Promise<void> {
    if (!clean || this.report.created) this.leaderEpochs.truncateFromEnd(end);
    if (!this.report.created) this.leaderEpochs.truncateFromStart(logStart);
    await unlessDiskFull(this.deps.logger, 'leader-epoch checkpoint', () => this.leaderEpochs.persistIfDirty(), () => this.leaderEpochs.markDirty());
    if (!(clean && (await producers.loadExact(end)))) await producers.rebuild(end, this.segmentSet);
    await unlessDiskFull(this.deps.logger, 'log-start checkpoint', () => writeOffsetCheckpoint(this.dir, LOG_START_FILE, logStart));
    if (await unlinkIfExists(join(this.dir, CLEAN_SHUTDOWN_FILE))) await fsyncDir(this.dir);
  }
}

/** Writes and installs the indexes a walk rebuilt for a closed segment. */
async function installRebuiltIndexes(seg: Segment, fresh: Segment, logger: Logger): Promise<void> {
  fresh.finalTimeIndexEntry();
  seg.maxTimestampMs = fresh.maxTimestampMs;
  seg.offsetOfMaxTimestamp = fresh.offsetOfMaxTimestamp;
  const written = await unlessDiskFull(logger, `rebuilt indexes of segment ${seg.baseOffset}`, async () => {
    await writeFileAtomic(seg.offsetIndex.path, fresh.offsetIndex.entries());
    await writeFileAtomic(seg.timeIndex.path, fresh.timeIndex.entries());
  });
  if (!written) {
    // Stale files must not be trusted after a later clean shutdown: gone, rebuilt on next use.
    await unlinkIfExists(seg.offsetIndex.path);
    await unlinkIfExists(seg.timeIndex.path);
  }
  seg.offsetIndex.install(fresh.offsetIndex.entries(), fresh.offsetIndex.count);
  seg.timeIndex.install(fresh.timeIndex.entries(), fresh.timeIndex.count);
  seg.indexesTrusted = true;
}

/** Runs a write that may be skipped on a full disk; false when it was (logged), other errors thrown. */
async function unlessDiskFull(logger: Logger, what: string, write: () => Promise<void>, skipped?: () => void): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') throw err;
    skipped?.();
    logger.warn({ code }, `disk full: ${what} not written at open (derived state; the log opens read-only until space returns)`);
    return false;
  }
}

/** A closed segment's max timestamp from the last entry of its time index (12 bytes read). */
async function readLastTimeEntry(seg: Segment): Promise<void> {
  let fd: number;
  try {
    fd = await openFd(seg.timeIndex.path, 'r');
  } catch {
    return; // missing: rebuilt on first use
  }
  try {
    const size = await fstatSize(fd);
    if (size < 12 || size % 12 !== 0) return;
    const b = Buffer.alloc(12);
    await preadFull(fd, b, 0, 12, size - 12);
    seg.maxTimestampMs = Number(b.readBigInt64BE(0));
    seg.offsetOfMaxTimestamp = seg.baseOffset + b.readUInt32BE(8);
  } finally {
    await closeFd(fd);
  }
}
