// The segments of one partition log and everything that caches them: the ordered list (oldest
// first, the last one active), read file descriptors of closed segments (an LRU bounded by
// maxOpenSegmentFiles), closed segments' index entries in memory (an LRU bounded by
// indexCacheBytes), and the byte total. It finds batches (sparse index, then a forward walk),
// serves reads up to a bound the log gives it, and adds, replaces, cuts and removes segments.
// It knows nothing of offsets beyond its files: what is readable is the caller's to say.
//
// Concurrency: a segment removed (retention, truncation) or replaced (compaction) while a
// reader holds its fd stays readable (POSIX unlink) until released; a reader that finds it
// gone before opening gets SegmentGone and looks again (`read`, `offsetForTimestamp`).
import { decodeBatch, LOG_OVERHEAD, RECORDS, readInt64, type BatchHeader } from '../core/index.js';
import { crc32cRange } from '../core/crc32c.js';
import type { Logger } from '../logging.js';
import { BrokerError } from '../errors/index.js';
import type { LogOptions, LogReadResult } from './api.js';
import { probeBatch, viewOf, type BatchDefect } from './batch.js';
import { closeFd, fdatasync, ftruncate, openFd, preadFull, writeFileAtomic } from './io.js';
import type { LogLabel, LogMetrics } from './metrics.js';
import { MAX_BATCH_BYTES_ON_DISK, MAX_RELATIVE_OFFSET } from './options.js';
import { scanBatches } from './scan.js';
import { adoptStats, batchStartsAt, createSegment, deleteSegmentFiles, rebuildTwin, Segment } from './segment.js';
import { OffsetIndex, TimeIndex } from './sparse-index.js';

const EMPTY = new Uint8Array(0);
/** Looks again this many times when segments keep going away under a reader. */
const GONE_RETRIES = 5;

/** A segment went away (retention, compaction, truncation) while a reader was about to open it. */
export class SegmentGone extends Error {}

/** How far a read may go: below `offset`, and in `segment` not past `position` (the readable end). */
export interface ReadBound {
  offset: number;
  segment: Segment;
  position: number;
  /**
   * A batch failing its CRC is skipped (an empty read whose nextOffset is past it) instead of
   * ending the segment's readable prefix, when its length still leads to a sound batch or the
   * segment's end. The broker asks it for its internal topics only (a damaged commit or session
   * must never keep a node down); a client reading its own data sees the prefix policy.
   */
  skipDamaged?: boolean;
  /** Nothing readable at `offset` in a damaged segment: CORRUPT_MESSAGE, not a read from the next segment (a follower's fetch). */
  failOnDamage?: boolean;
}

export interface SegmentSetDeps {
  dir: string;
  options: () => Required<LogOptions>;
  logger: Logger;
  metrics: LogMetrics | null;
  label: LogLabel;
}

export class SegmentSet {
  private list: Segment[] = [];
  private activeSegment!: Segment;
  /** Bytes on disk over all segments. */
  totalBytes = 0;
  /** Set on close: released fds are closed instead of cached. */
  closed = false;
  private readonly fdCache = new Set<Segment>();
  private readonly indexCache = new Set<Segment>();
  private readonly indexLoading = new Map<Segment, Promise<void>>();

  constructor(private readonly deps: SegmentSetDeps) {}

  /** Installs what the loader found (the last segment active). */
  install(segments: Segment[], closedWithIndexes: Segment[]): void {
    this.list = segments;
    this.activeSegment = segments[segments.length - 1];
    for (const s of segments) s.active = s === this.activeSegment;
    for (const s of closedWithIndexes) this.indexCache.add(s);
    this.totalBytes = segments.reduce((n, s) => n + s.sizeBytes, 0);
    this.deps.metrics?.segments.set(segments.length, this.deps.label);
  }

  get active(): Segment {
    return this.activeSegment;
  }
  get segments(): readonly Segment[] {
    return this.list;
  }
  get count(): number {
    return this.list.length;
  }
  get openFiles(): number {
    return this.fdCache.size;
  }
  get cachedIndexBytes(): number {
    let n = 0;
    for (const s of this.indexCache) n += s.offsetIndex.bytesInMemory + s.timeIndex.bytesInMemory;
    return n;
  }

  /** Index of the last segment whose base offset is <= offset (0 when below all). */
  indexFor(offset: number): number {
    let lo = 0;
    let hi = this.list.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.list[mid].baseOffset <= offset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /**
   * Bytes stored from the batch holding `offset` to the log's end, from the segment sizes and the
   * sparse offset index: no file is read, so it is cheap enough for every append (the uplink's
   * admission check). An estimate from above by less than index.interval.bytes plus one batch:
   * the index entry at or below `offset` is a batch start at or before the batch holding it. A
   * closed segment whose index is not in memory is interpolated by offset between its base and
   * its end (an estimate, said so in docs/uplink.md). Below the first segment: every byte; at or
   * past the end: 0.
   */
  bytesFrom(offset: number): number {
    const list = this.list;
    if (list.length === 0 || offset >= list[list.length - 1].nextOffset) return 0;
    if (offset <= list[0].baseOffset) return this.totalBytes;
    const i = this.indexFor(offset);
    const seg = list[i];
    let after = 0;
    for (let j = i + 1; j < list.length; j++) after += list[j].sizeBytes;
    if (offset >= seg.nextOffset) return after;
    let position: number;
    if (seg.offsetIndex.loaded) position = seg.offsetIndex.lookup(Math.min(offset - seg.baseOffset, MAX_RELATIVE_OFFSET)).position;
    else position = Math.floor((seg.sizeBytes * (offset - seg.baseOffset)) / Math.max(1, seg.nextOffset - seg.baseOffset));
    return after + Math.max(0, seg.sizeBytes - position);
  }

  // --- file descriptors -------------------------------------------------------------------------

  /** A read fd for `seg`, counted as in use until `release`. */
  async acquire(seg: Segment): Promise<number> {
    if (seg.deleted && seg.fd === null) throw new SegmentGone();
    seg.users++;
    if (seg.fd !== null) {
      if (!seg.active) {
        this.fdCache.delete(seg);
        this.fdCache.add(seg);
      }
      return seg.fd;
    }
    try {
      seg.fdOpening ??= this.openForRead(seg);
      return await seg.fdOpening;
    } catch (err) {
      seg.users--;
      if (seg.deleted && (err as NodeJS.ErrnoException).code === 'ENOENT') throw new SegmentGone();
      throw err;
    }
  }

  private openForRead(seg: Segment): Promise<number> {
    const opening = openFd(seg.logPath, 'r').then((fd) => {
      seg.fdOpening = null;
      if (seg.deleted) {
        // Replaced or removed while opening: this fd may be a different file now.
        void closeFd(fd).catch(() => undefined);
        throw new SegmentGone();
      }
      seg.fd = fd;
      this.fdCache.add(seg);
      this.evictFds();
      return fd;
    });
    opening.catch(() => (seg.fdOpening = null));
    return opening;
  }

  release(seg: Segment): void {
    seg.users--;
    if (seg.users === 0 && seg.fd !== null && (seg.deleted || this.closed)) this.closeFdOf(seg);
    else if (this.fdCache.size > this.deps.options().maxOpenSegmentFiles) this.evictFds();
  }

  private closeFdOf(seg: Segment): void {
    const fd = seg.fd!;
    seg.fd = null;
    this.fdCache.delete(seg);
    void closeFd(fd).catch(() => undefined);
  }

  private evictFds(): void {
    const max = this.deps.options().maxOpenSegmentFiles;
    for (const seg of this.fdCache) {
      if (this.fdCache.size <= max) break;
      if (seg.users > 0 || seg.active || seg.fd === null) continue;
      this.closeFdOf(seg);
    }
  }

  // --- indexes ----------------------------------------------------------------------------------

  private evictIndexes(): void {
    let bytes = this.cachedIndexBytes;
    for (const seg of this.indexCache) {
      if (bytes <= this.deps.options().indexCacheBytes) break;
      if (seg.active || seg.users > 0 || this.indexLoading.has(seg)) continue;
      bytes -= seg.offsetIndex.bytesInMemory + seg.timeIndex.bytesInMemory;
      seg.offsetIndex.unload();
      seg.timeIndex.unload();
      this.indexCache.delete(seg);
    }
  }

  /** Loads a closed segment's indexes (validating them; rebuilding them from the log when they disagree). */
  async ensureIndexes(seg: Segment): Promise<void> {
    if (seg.active) return;
    if (seg.offsetIndex.loaded && seg.timeIndex.loaded) {
      this.indexCache.delete(seg);
      this.indexCache.add(seg);
      return;
    }
    let loading = this.indexLoading.get(seg);
    if (!loading) {
      loading = this.loadIndexes(seg).finally(() => this.indexLoading.delete(seg));
      this.indexLoading.set(seg, loading);
    }
    await loading;
  }

  private async loadIndexes(seg: Segment): Promise<void> {
    const reason = await this.installIndexFiles(seg);
    if (reason) await this.rebuildIndexes(seg, reason);
    seg.indexesTrusted = true;
    this.indexCache.add(seg);
    this.evictIndexes();
  }

  /** Installs the index files when they agree with the log; otherwise says why not. */
  private async installIndexFiles(seg: Segment): Promise<string | null> {
    const [oi, ti] = await Promise.all([seg.offsetIndex.readFile(), seg.timeIndex.readFile()]);
    if (!oi || !ti) return `${!oi ? 'offset' : 'time'} index missing`;
    const vo = OffsetIndex.validate(oi, seg.sizeBytes);
    const vt = TimeIndex.validate(ti, MAX_RELATIVE_OFFSET);
    if (!vo.ok) return `offset index invalid after entry ${vo.count}`;
    if (!vt.ok) return `time index invalid after entry ${vt.count}`;
    if (vo.count > 0) {
      const last = (vo.count - 1) * 8;
      const fd = await this.acquire(seg);
      try {
        if (!(await batchStartsAt(fd, oi.readUInt32BE(last + 4), seg.baseOffset + oi.readUInt32BE(last)))) {
          return 'last offset-index entry does not point at its batch';
        }
      } finally {
        this.release(seg);
      }
    }
    seg.offsetIndex.install(oi, vo.count);
    seg.timeIndex.install(ti, vt.count);
    if (vt.count > 0 && seg.maxTimestampMs < 0) {
      seg.maxTimestampMs = seg.timeIndex.timestampAt(vt.count - 1);
      seg.offsetOfMaxTimestamp = seg.baseOffset + seg.timeIndex.relativeOffsetAt(vt.count - 1);
    }
    return null;
  }

  /** Rebuilds a closed segment's indexes by walking its batch headers, and writes them atomically. */
  private async rebuildIndexes(seg: Segment, reason: string): Promise<void> {
    const o = this.deps.options();
    const fresh = rebuildTwin(seg, o.segmentIndexBytes);
    const fd = await this.acquire(seg);
    let result;
    try {
      result = await scanBatches(fd, 0, seg.sizeBytes, { checkCrc: false, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK }, (h, pos) =>
        fresh.track(h, pos, o.indexIntervalBytes, h.maxTimestamp),
      );
    } finally {
      this.release(seg);
    }
    if (result.defect) this.markCorrupt(seg, result.defect.position, result.defect.kind);
    fresh.finalTimeIndexEntry();
    const oi = fresh.offsetIndex.entries();
    const ti = fresh.timeIndex.entries();
    await writeFileAtomic(seg.offsetIndex.path, oi);
    await writeFileAtomic(seg.timeIndex.path, ti);
    seg.offsetIndex.install(oi, fresh.offsetIndex.count);
    seg.timeIndex.install(ti, fresh.timeIndex.count);
    seg.maxTimestampMs = fresh.maxTimestampMs;
    seg.offsetOfMaxTimestamp = fresh.offsetOfMaxTimestamp;
    this.deps.logger.warn({ segment: seg.baseOffset, reason, entries: fresh.offsetIndex.count }, 'rebuilt segment indexes from the log');
  }

  // --- reads ------------------------------------------------------------------------------------

  /** Runs `fn` again when a segment it needed went away under it. */
  async retryGone<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof SegmentGone) || attempt >= GONE_RETRIES) throw err;
      }
    }
  }

  /** Whole batches from the one containing `offset`, none reaching `bound.offset` or past the bound's position. */
  read(offset: number, maxBytes: number, bound: ReadBound): Promise<LogReadResult> {
    return this.retryGone(() => this.readOnce(offset, maxBytes, bound));
  }

  private async readOnce(offset: number, maxBytes: number, bound: ReadBound): Promise<LogReadResult> {
    if (offset >= bound.offset) return { records: EMPTY, nextOffset: offset };
    let seg: Segment | undefined = this.list[this.indexFor(offset)];
    while (seg) {
      const limit = seg === bound.segment ? bound.position : seg.readableBytes;
      const found = await this.readFromSegment(seg, offset, maxBytes, limit, bound.offset, bound.skipDamaged === true);
      if (found) return found;
      // The offset may lie in the damaged bytes: a replica must get an error here, never a gap.
      if (bound.failOnDamage && seg.corruptAt >= 0) throw new BrokerError('CORRUPT_MESSAGE', `offset ${offset} is in or after a damaged batch of segment ${seg.baseOffset} (byte ${seg.corruptAt})`);
      if (seg === bound.segment || seg.baseOffset >= bound.offset) break;
      // Nothing readable at or after `offset` in this segment (damage, or emptied by compaction): go on to the next.
      const i = this.list.indexOf(seg);
      seg = i >= 0 ? this.list[i + 1] : this.list[this.indexFor(offset) + 1];
    }
    return { records: EMPTY, nextOffset: offset };
  }

  /** null: nothing readable at or after `offset` in this segment (the caller tries the next one). */
  private async readFromSegment(seg: Segment, offset: number, maxBytes: number, limit: number, endOffset: number, skipDamaged: boolean): Promise<LogReadResult | null> {
    if (limit <= 0) return null;
    const fd = await this.acquire(seg); // held while the index is used: the index cache skips segments in use
    try {
      await this.ensureIndexes(seg);
      const start = await this.locate(seg, fd, offset, limit);
      if (!start) return null;
      if (start.header.lastOffset >= endOffset) return { records: EMPTY, nextOffset: offset };
      const want = Math.max(start.header.totalBytes, Math.min(maxBytes, limit - start.position));
      const out = Buffer.allocUnsafe(want);
      const got = await preadFull(fd, out, 0, want, start.position);
      const checkCrc = start.position < seg.uncheckedBelow && this.deps.options().verifyOldSegmentReads;
      const { end, lastOffset, damagedAt } = this.wholeBatches(seg, out, got, start.position, endOffset, checkCrc || skipDamaged, skipDamaged);
      if (end === 0) {
        if (damagedAt) {
          const skipTo = await this.soundAfter(seg, fd, start.position + start.header.totalBytes, limit, start.header.lastOffset);
          if (skipTo === null) this.markCorrupt(seg, start.position, 'crc-mismatch');
          else {
            this.deps.metrics?.damagedSkipped.inc(this.deps.label);
            this.deps.logger.error({ segment: seg.baseOffset, position: start.position, offsets: [start.header.baseOffset, start.header.lastOffset] }, 'skipped a damaged batch (CRC mismatch) of an internal topic; reading on after it');
            return { records: EMPTY, nextOffset: skipTo };
          }
        }
        if (got < want) this.markCorrupt(seg, start.position, 'short-batch');
        return null;
      }
      return { records: end === want ? out : out.subarray(0, end), nextOffset: lastOffset + 1 };
    } finally {
      this.release(seg);
    }
  }

  /** The prefix of `out` (read from `position`) made of whole batches below `endOffset` (CRC-checked if asked). */
  private wholeBatches(seg: Segment, out: Buffer, got: number, position: number, endOffset: number, checkCrc: boolean, skipDamaged = false) {
    const view = viewOf(out);
    let end = 0;
    let lastOffset = -1;
    let damagedAt = false;
    while (end + RECORDS <= got) {
      const total = view.getInt32(end + 8) + LOG_OVERHEAD;
      if (total < RECORDS || end + total > got) break;
      const batchLastOffset = readInt64(view, end) + view.getInt32(end + 23);
      if (batchLastOffset >= endOffset) break;
      if (checkCrc && crc32cRange(out, end + 21, end + total) !== view.getUint32(end + 17)) {
        // A first batch to skip is the caller's to judge (soundAfter); otherwise the prefix ends here.
        damagedAt = end === 0 && skipDamaged;
        if (!damagedAt) this.markCorrupt(seg, position + end, 'crc-mismatch');
        break;
      }
      lastOffset = batchLastOffset;
      end += total;
    }
    return { end, lastOffset, damagedAt };
  }

  /**
   * Where reading may go on after a damaged batch ending at `position` whose header claims
   * `lastOffset`: the next batch's base offset when a plausible batch header (magic, length within
   * the segment, offsets going up) starts exactly there, `lastOffset + 1` at the segment's end,
   * else null (the damaged length cannot be trusted). The next batch's own CRC is checked when
   * it is read (and it is skipped in turn if damaged too).
   */
  private async soundAfter(seg: Segment, fd: number, position: number, limit: number, lastOffset: number): Promise<number | null> {
    if (position === limit) return lastOffset + 1;
    if (position > limit) return null;
    const head = Buffer.allocUnsafe(RECORDS);
    if ((await preadFull(fd, head, 0, RECORDS, position)) < RECORDS) return null;
    const probe = probeBatch(viewOf(head), head, 0, MAX_BATCH_BYTES_ON_DISK, false);
    if (probe.defect && probe.defect !== 'short-batch') return null;
    const h = probe.header!;
    if (position + h.totalBytes > limit || h.baseOffset <= lastOffset) return null;
    return h.baseOffset;
  }

  /**
   * Finds the batch containing `offset` (or the first after it) in a segment: sparse index
   * lookup, then a forward walk over batch headers read in chunks.
   */
  async locate(seg: Segment, fd: number, offset: number, limit: number): Promise<{ position: number; header: BatchHeader } | null> {
    const hint = offset > seg.baseOffset ? seg.offsetIndex.lookup(Math.min(offset - seg.baseOffset, MAX_RELATIVE_OFFSET)).position : 0;
    let pos = Math.min(hint, limit);
    const chunkBytes = Math.max(16 * 1024, 2 * this.deps.options().indexIntervalBytes + RECORDS);
    const chunk = Buffer.allocUnsafe(chunkBytes);
    while (pos < limit) {
      const got = await preadFull(fd, chunk, 0, Math.min(chunkBytes, limit - pos), pos);
      const buf = chunk.subarray(0, got);
      const view = viewOf(buf);
      let at = 0;
      while (at < got) {
        const probe = probeBatch(view, buf, at, MAX_BATCH_BYTES_ON_DISK, false);
        if (probe.defect === 'short-header' && pos + got < limit) break; // header continues in the next chunk
        if (probe.defect && probe.defect !== 'short-batch') {
          this.markCorrupt(seg, pos + at, probe.defect);
          return null;
        }
        const h = probe.header!;
        if (pos + at + h.totalBytes > limit) {
          this.markCorrupt(seg, pos + at, 'short-batch');
          return null;
        }
        if (h.lastOffset >= offset) return { position: pos + at, header: h };
        at += h.totalBytes;
      }
      if (at === 0 && got === 0) break;
      pos += at;
    }
    return null;
  }

  markCorrupt(seg: Segment, position: number, defect: BatchDefect): void {
    if (seg.corruptAt >= 0 && seg.corruptAt <= position) return;
    seg.corruptAt = position;
    this.deps.metrics?.corruptions.inc(this.deps.label);
    this.deps.logger.error(
      { segment: seg.baseOffset, position, defect, segmentBytes: seg.sizeBytes, unreadableBytes: seg.sizeBytes - position },
      'damaged batch in a segment: serving its readable prefix; reads past it continue at the next segment',
    );
  }

  // --- timestamps -------------------------------------------------------------------------------

  /** The first record at or after `timestampMs` at or above `logStart`, within `bound`. */
  offsetForTimestamp(timestampMs: number, logStart: number, bound: ReadBound): Promise<{ offset: number; timestampMs: number } | null> {
    return this.retryGone(async () => {
      for (const seg of [...this.list]) {
        if (seg.deleted) continue;
        if (!seg.active && seg.maxTimestampMs < 0 && !seg.indexesTrusted) await this.ensureIndexes(seg);
        if (seg.maxTimestampMs < timestampMs) continue;
        const found = await this.findTimestampIn(seg, timestampMs, logStart, bound);
        if (found) return found;
      }
      return null;
    });
  }

  private async findTimestampIn(seg: Segment, timestampMs: number, logStart: number, bound: ReadBound) {
    const fd = await this.acquire(seg);
    try {
      await this.ensureIndexes(seg);
      const entry = seg.timeIndex.lookupBelow(timestampMs);
      const fromOffset = Math.max(entry ? seg.baseOffset + entry.relativeOffset : seg.baseOffset, logStart);
      const limit = seg === bound.segment ? bound.position : seg.readableBytes;
      const start = await this.locate(seg, fd, fromOffset, limit);
      if (!start) return null;
      let found: { position: number; header: BatchHeader } | null = null;
      const scan = { checkCrc: false, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK, chunkBytes: 64 * 1024 };
      await scanBatches(fd, start.position, limit, scan, (h, position) => {
        if (h.maxTimestamp < timestampMs) return false;
        found = { position, header: h };
        return true;
      });
      if (!found) return null;
      const { position, header } = found as { position: number; header: BatchHeader };
      const bytes = Buffer.allocUnsafe(header.totalBytes);
      await preadFull(fd, bytes, 0, header.totalBytes, position);
      const batch = decodeBatch(bytes, 0, { maxDecompressedBytes: this.deps.options().maxDecompressedBytes });
      for (const rec of batch.records) {
        if (rec.timestampMs >= timestampMs && rec.offset >= logStart) return { offset: rec.offset, timestampMs: rec.timestampMs };
      }
      return null;
    } finally {
      this.release(seg);
    }
  }

  /** Largest timestamp of a record below `endOffset`, and its offset. */
  maxTimestamp(endOffset: number): { offset: number; timestampMs: number } | null {
    let best: { offset: number; timestampMs: number } | null = null;
    for (const seg of this.list) {
      if (seg.maxTimestampMs < 0 || seg.offsetOfMaxTimestamp >= endOffset) continue;
      if (!best || seg.maxTimestampMs > best.timestampMs) best = { offset: seg.offsetOfMaxTimestamp, timestampMs: seg.maxTimestampMs };
    }
    return best;
  }

  // --- changes ----------------------------------------------------------------------------------

  /** Roll: `seg` (new, active) follows the previous active segment, which closes into the caches. */
  addActive(seg: Segment): void {
    const old = this.activeSegment;
    old.active = false;
    this.list.push(seg);
    this.activeSegment = seg;
    this.fdCache.add(old);
    this.indexCache.add(old);
    this.evictFds();
    this.evictIndexes();
    this.deps.metrics?.segments.set(this.list.length, this.deps.label);
  }

  /** Deletes `seg` and its files; a reader holding its fd keeps it until release. Returns its bytes. */
  async remove(seg: Segment): Promise<number> {
    if (seg.active) {
      await seg.offsetIndex.closeQuietly();
      await seg.timeIndex.closeQuietly();
      seg.active = false;
    }
    const i = this.list.indexOf(seg);
    if (i >= 0) this.list.splice(i, 1);
    seg.deleted = true;
    this.totalBytes -= seg.sizeBytes;
    this.fdCache.delete(seg);
    this.indexCache.delete(seg);
    seg.offsetIndex.unload();
    seg.timeIndex.unload();
    await deleteSegmentFiles(this.deps.dir, seg.baseOffset);
    if (seg.users === 0 && seg.fd !== null) this.closeFdOf(seg);
    this.deps.metrics?.segments.set(this.list.length, this.deps.label);
    return seg.sizeBytes;
  }

  /** Compaction swapped `fresh`'s file in place of `old`'s. */
  replace(old: Segment, fresh: Segment): void {
    const i = this.list.indexOf(old);
    if (i < 0) return;
    this.list[i] = fresh;
    this.totalBytes += fresh.sizeBytes - old.sizeBytes;
    old.deleted = true;
    this.fdCache.delete(old);
    this.indexCache.delete(old);
    if (old.users === 0 && old.fd !== null) this.closeFdOf(old);
    this.indexCache.add(fresh);
    this.evictIndexes();
  }

  /** Every segment goes; one new empty active segment starts at `offset`. */
  async resetTo(offset: number): Promise<void> {
    for (const seg of [...this.list]) await this.remove(seg);
    const seg = await createSegment(this.deps.dir, offset, this.deps.options().segmentIndexBytes);
    this.list = [seg];
    this.activeSegment = seg;
    this.totalBytes = 0;
    this.deps.metrics?.segments.set(1, this.deps.label);
  }

  /**
   * Cuts the log before the first batch ending at or after `offset` (offset above the first
   * segment's base): later segments go, the last one left becomes active. Returns the new end.
   */
  async truncateTo(offset: number): Promise<number> {
    while (this.list.length > 1 && this.list[this.list.length - 1].baseOffset >= offset) await this.remove(this.list[this.list.length - 1]);
    const seg = this.list[this.list.length - 1];
    if (!seg.active) await this.reactivate(seg);
    const o = this.deps.options();
    const fresh = rebuildTwin(seg, o.segmentIndexBytes);
    let cut = -1;
    await scanBatches(seg.fd!, 0, seg.sizeBytes, { checkCrc: false, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK }, (h, pos) => {
      if (h.lastOffset >= offset) {
        cut = pos;
        return true;
      }
      fresh.track(h, pos, o.indexIntervalBytes, h.maxTimestamp);
    });
    if (cut < 0) cut = fresh.sizeBytes;
    this.totalBytes -= seg.sizeBytes - cut;
    await ftruncate(seg.fd!, cut);
    await fdatasync(seg.fd!);
    seg.resetStats();
    adoptStats(seg, fresh, Date.now());
    await seg.offsetIndex.reopenActive(fresh.offsetIndex.entries(), fresh.offsetIndex.count);
    await seg.timeIndex.reopenActive(fresh.timeIndex.entries(), fresh.timeIndex.count);
    this.deps.metrics?.segments.set(this.list.length, this.deps.label);
    return seg.nextOffset;
  }

  /** A closed segment becomes the active one again (truncation removed everything after it). */
  private async reactivate(seg: Segment): Promise<void> {
    await this.ensureIndexes(seg);
    if (seg.fd !== null && seg.users === 0) await closeFd(seg.fd);
    seg.fd = await openFd(seg.logPath, 'r+');
    this.fdCache.delete(seg);
    this.indexCache.delete(seg);
    seg.active = true;
    this.activeSegment = seg;
  }

  /** Closes every fd and index file (close, abandon). */
  async closeAll(): Promise<void> {
    this.closed = true;
    for (const seg of this.list) {
      await seg.offsetIndex.closeQuietly();
      await seg.timeIndex.closeQuietly();
      if (seg.fd !== null && seg.users === 0) {
        const fd = seg.fd;
        seg.fd = null;
        await closeFd(fd).catch(() => undefined);
      }
    }
    this.fdCache.clear();
  }
}
