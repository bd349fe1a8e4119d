// One segment of a partition log: `<base>.log` plus its `.index` and `.timeindex`.
//
// `.log` layout: RecordBatch v2 batches back to back, exactly as appended (offsets assigned),
// the first batch's baseOffset being the segment's base offset (the file name, 20 digits,
// zero padded). Nothing else: no header, no footer.
//
// Crash policy: the log file is the truth. Bytes past the last fsync may be missing or torn
// after a power cut; recovery finds the end by walking batches and checking each CRC, and cuts
// the file there. Indexes are derived data (see sparse-index.ts).
//
// File descriptors: the active segment keeps one read-write fd for its whole life. A closed
// segment opens a read-only fd on demand through the log's bounded fd cache; `users` counts
// reads in flight so the cache never closes an fd under a reader. A deleted segment's files
// are unlinked at once; a reader still holding its fd keeps reading the unlinked inode
// (POSIX semantics) and the fd is closed when the last user releases it.
import { join } from 'node:path';
import { OffsetIndex, TimeIndex } from './sparse-index.js';
import { RECORDS } from '../core/batch-layout.js';
import { probeBatch, viewOf, type BatchHeader } from './batch.js';
import { fsyncDir, openFd, preadFull, unlinkIfExists } from './io.js';
import { MAX_BATCH_BYTES_ON_DISK } from './options.js';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
export const TIME_INDEX_SUFFIX = '.timeindex';
export const CLEANED_SUFFIX = '.cleaned';
export const SWAP_SUFFIX = '.swap';
export const DELETED_SUFFIX = '.deleted';
export const SNAPSHOT_SUFFIX = '.snapshot';

export function fileNameFor(offset: number, suffix: string): string {
  return String(offset).padStart(20, '0') + suffix;
}

export function parseBaseOffset(name: string, suffix: string): number | null {
  if (!name.endsWith(suffix)) return null;
  const stem = name.slice(0, -suffix.length);
  if (!/^\d{20}$/.test(stem)) return null;
  const n = Number(stem);
  return Number.isSafeInteger(n) ? n : null;
}

export class Segment {
  readonly logPath: string;
  readonly offsetIndex: OffsetIndex;
  readonly timeIndex: TimeIndex;
  /** Bytes of batches written (the file may be longer only transiently, before recovery). */
  sizeBytes = 0;
  /** Offset after the last batch (== baseOffset when empty). */
  nextOffset: number;
  maxTimestampMs = -1;
  offsetOfMaxTimestamp = -1;
  /** Wall-clock ms when the segment got its first batch (segment.ms rolls from it). */
  rollBaseMs = -1;
  bytesSinceIndexEntry = 0;
  /** True once the indexes are known to agree with the log (built here or validated). */
  indexesTrusted = false;
  /**
   * Batches below this file position were not CRC-checked by this process (neither appended
   * nor walked by recovery): reads check them. Infinity for an old segment, 0 once verified.
   */
  uncheckedBelow = Infinity;
  /** Readable prefix when damage was found mid-segment (reads stop here); -1 = none. */
  corruptAt = -1;
  fd: number | null = null;
  fdOpening: Promise<number> | null = null;
  users = 0;
  deleted = false;
  active = false;

  constructor(
    readonly dir: string,
    readonly baseOffset: number,
    indexBytesMax: number,
  ) {
    this.logPath = join(dir, fileNameFor(baseOffset, LOG_SUFFIX));
    this.offsetIndex = new OffsetIndex(join(dir, fileNameFor(baseOffset, INDEX_SUFFIX)), indexBytesMax);
    this.timeIndex = new TimeIndex(join(dir, fileNameFor(baseOffset, TIME_INDEX_SUFFIX)), indexBytesMax);
    this.nextOffset = baseOffset;
  }

  /** End of what may be served: the whole segment unless damage was found in it. */
  get readableBytes(): number {
    return this.corruptAt >= 0 ? this.corruptAt : this.sizeBytes;
  }

  /**
   * Accounts a batch placed at `position` (append, rebuild or recovery): stats, and index
   * entries every `indexIntervalBytes`. Entries are added before the batch's bytes count, so
   * an entry always points at the start of a batch.
   */
  track(h: BatchHeader, position: number, indexIntervalBytes: number, nowMs: number): void {
    const lastOffset = h.baseOffset + h.lastOffsetDelta;
    const ts = h.maxTimestamp;
    if (ts > this.maxTimestampMs) {
      this.maxTimestampMs = ts;
      this.offsetOfMaxTimestamp = lastOffset;
    }
    if (this.rollBaseMs < 0) this.rollBaseMs = nowMs;
    if (position > 0 && this.bytesSinceIndexEntry >= indexIntervalBytes) this.addIndexEntries(h.baseOffset, position);
    this.bytesSinceIndexEntry += h.totalBytes;
    this.sizeBytes = position + h.totalBytes;
    this.nextOffset = lastOffset + 1;
  }

  private addIndexEntries(offset: number, position: number): void {
    const rel = offset - this.baseOffset;
    if (rel > this.offsetIndex.lastRelativeOffset && !this.offsetIndex.isFull) {
      this.offsetIndex.add(rel, position);
      this.bytesSinceIndexEntry = 0;
    }
    // Time index: largest timestamp so far, if it grew since the last entry (before this batch).
    if (this.maxTimestampMs > this.timeIndex.lastTimestamp && this.offsetOfMaxTimestamp < offset && !this.timeIndex.isFull) {
      this.timeIndex.add(this.maxTimestampMs, this.offsetOfMaxTimestamp - this.baseOffset);
    }
  }

  /** Segment becomes inactive: a final time-index entry so the file's last entry is the segment's max timestamp. */
  finalTimeIndexEntry(): void {
    if (this.maxTimestampMs > this.timeIndex.lastTimestamp && this.offsetOfMaxTimestamp >= this.baseOffset && !this.timeIndex.isFull) {
      this.timeIndex.add(this.maxTimestampMs, this.offsetOfMaxTimestamp - this.baseOffset);
    }
  }

  get indexFull(): boolean {
    return this.offsetIndex.isFull || this.timeIndex.isFull;
  }

  /** Clears derived state before a rebuild from the log. */
  resetStats(): void {
    this.sizeBytes = 0;
    this.nextOffset = this.baseOffset;
    this.maxTimestampMs = -1;
    this.offsetOfMaxTimestamp = -1;
    this.bytesSinceIndexEntry = 0;
    this.rollBaseMs = -1;
  }
}

/** A new, empty active segment at `baseOffset`: log file and preallocated indexes created, directory fsynced. */
export async function createSegment(dir: string, baseOffset: number, indexBytesMax: number): Promise<Segment> {
  const seg = new Segment(dir, baseOffset, indexBytesMax);
  seg.fd = await openFd(seg.logPath, 'w+');
  await seg.offsetIndex.create();
  await seg.timeIndex.create();
  await fsyncDir(dir);
  seg.active = true;
  seg.uncheckedBelow = 0;
  seg.indexesTrusted = true;
  return seg;
}

/** Removes a segment's three files (missing ones are fine: a deletion interrupted by a crash). */
export async function deleteSegmentFiles(dir: string, baseOffset: number): Promise<void> {
  for (const suffix of [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]) await unlinkIfExists(join(dir, fileNameFor(baseOffset, suffix)));
}

/** True when a batch starting with offset `offset` begins at `position` of the log file `fd` (an index entry's check). */
export async function batchStartsAt(fd: number, position: number, offset: number): Promise<boolean> {
  const b = Buffer.alloc(RECORDS);
  const got = await preadFull(fd, b, 0, RECORDS, position);
  if (got < RECORDS) return false;
  const probe = probeBatch(viewOf(b), b, 0, MAX_BATCH_BYTES_ON_DISK, false);
  return (probe.defect === undefined || probe.defect === 'short-batch') && probe.header!.baseOffset === offset;
}

/** Copies the derived state of `fresh` (a rebuild from the log) onto `seg`. */
export function adoptStats(seg: Segment, fresh: Segment, nowMs: number): void {
  seg.sizeBytes = fresh.sizeBytes;
  seg.nextOffset = fresh.nextOffset;
  seg.maxTimestampMs = fresh.maxTimestampMs;
  seg.offsetOfMaxTimestamp = fresh.offsetOfMaxTimestamp;
  seg.bytesSinceIndexEntry = fresh.bytesSinceIndexEntry;
  seg.rollBaseMs = fresh.sizeBytes > 0 ? nowMs : -1;
}

/** An empty in-memory twin of `seg` that a walk of its batches fills (recovery, truncation, index rebuilds). */
export function rebuildTwin(seg: Segment, indexBytesMax: number): Segment {
  const fresh = new Segment(seg.dir, seg.baseOffset, indexBytesMax);
  fresh.offsetIndex.startInMemory();
  fresh.timeIndex.startInMemory();
  return fresh;
}
