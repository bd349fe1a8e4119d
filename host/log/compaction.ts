// Log compaction (cleanup.policy=compact): keep the latest record of every key in the closed
// segments, as Kafka's log cleaner does.
//
// Which segments: closed ones, oldest first, up to the first whose largest timestamp is newer
// than now − min.compaction.lag.ms (the active segment is never cleaned). Each run maps the keys
// of the "dirty" segments (not mapped by an earlier run in this process, Kafka's first dirty
// offset) and rewrites every cleanable segment up to the last one mapped. Memory is bounded:
// the key map holds about `compactionMapBytes`; past that, the segments not yet mapped wait for
// the next run.
//
// What stays, per record (offsets never change: records keep their original offsets):
//   - a record whose key has no later record in the log (the map's offset == its offset);
//   - a tombstone (null value) likewise, until it is older than delete.retention.ms by its
//     timestamp, then it goes too;
//   - records without a key (a compacted topic should not get them; they are kept, never lost).
// Per batch: if every record stays, the batch's bytes are copied unchanged. If some stay, the
// batch is rebuilt with the same header (baseOffset, lastOffsetDelta, baseTimestamp, producer
// id/epoch/base sequence, attributes) and the kept records' bytes copied verbatim (so their
// offset and timestamp deltas still hold); recordCount, batchLength and maxTimestamp are
// updated and the CRC recomputed; a compressed batch is decompressed and recompressed with the
// same codec. If none stay, the batch is dropped, except when it is the last batch of an
// idempotent producer: then it stays as an empty batch (header only, recordCount 0), because
// the producer's sequence state must survive a restart (Kafka keeps it for the same reason).
//
// Crash safety: the cleaned segment is written to `<base>.log.cleaned` and fsynced, renamed to
// `<base>.log.swap` (directory fsynced), the old segment's indexes are removed, and the swap is
// renamed over `<base>.log` (atomic replace, directory fsynced); then new indexes are written.
// A crash before the `.swap` rename leaves the old segment untouched (recovery deletes the
// `.cleaned` file); a crash after it leaves a complete, fsynced `.swap` that recovery renames
// into place (deleting that segment's indexes, which are rebuilt on first use). Readers that
// hold the old file keep reading it (POSIX unlink semantics) until they release it.
import { rename } from 'node:fs/promises';
import type { Logger } from '../logging.js';
import { ATTRIBUTES, BATCH_LENGTH, COMPRESSION_MASK, CRC, MAX_TIMESTAMP, RECORDS, RECORDS_COUNT, writeInt64 } from '../core/batch-layout.js';
import { compress, decompress, decodeBatch, type BatchHeader } from '../core/index.js';
import { crc32cRange } from '../core/crc32c.js';
import type { LogOptions } from './api.js';
import { closeFd, fdatasync, fsyncDir, openFd, pwritevAll, unlinkIfExists, writeFileAtomic } from './io.js';
import { scanBatches } from './scan.js';
import { CLEANED_SUFFIX, SWAP_SUFFIX, Segment } from './segment.js';

export interface CompactionContext {
  dir: string;
  segments: Segment[];
  nowMs: number;
  /** Segments from this offset on have not been mapped by an earlier run (Kafka's first dirty offset). */
  mapFrom: number;
  options: Required<LogOptions>;
  logger: Logger;
  /** Base offset of each idempotent producer's last batch in the log. */
  lastBatchOfProducer: Map<number, number>;
  acquire(seg: Segment): Promise<number>;
  release(seg: Segment): void;
  replace(old: Segment, fresh: Segment): void;
}

export interface CompactionStats {
  /** Offset after the last segment this run covered (the next run can skip if nothing new closed). */
  coveredEnd: number;
  /** Earliest time a tombstone kept by this run may be removed (Infinity when none was kept). */
  nextTombstoneExpiryMs: number;
  segmentsCleaned: number;
  recordsRemoved: number;
  bytesBefore: number;
  bytesAfter: number;
}

const MAX_BATCH_BYTES_ON_DISK = 1 << 30;
const MAP_ENTRY_OVERHEAD_BYTES = 64; // a Map slot, a string header, a number
const WRITE_CHUNK_BYTES = 1 << 20;

const keyOf = (key: Uint8Array): string => Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');

export async function compactSegments(ctx: CompactionContext): Promise<CompactionStats> {
  const stats: CompactionStats = { coveredEnd: ctx.mapFrom, nextTombstoneExpiryMs: Infinity, segmentsCleaned: 0, recordsRemoved: 0, bytesBefore: 0, bytesAfter: 0 };
  const { options } = ctx;
  const decodeOptions = { maxDecompressedBytes: options.maxDecompressedBytes, verifyCrc: false };

  // Pass 1: the latest offset of every key in the dirty segments (those not mapped by an earlier
  // run, from `mapFrom` on), as many as the map's bound allows (at least one).
  const latest = new Map<string, number>();
  let mapBytes = 0;
  let lastMapped = -1;
  for (let i = 0; i < ctx.segments.length; i++) {
    const seg = ctx.segments[i];
    if (seg.baseOffset < ctx.mapFrom) continue;
    if (lastMapped >= 0 && mapBytes >= options.compactionMapBytes) break;
    const fd = await ctx.acquire(seg);
    try {
      await scanBatches(fd, 0, seg.readableBytes, { checkCrc: true, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK }, (_h, _pos, chunk, at) => {
        const batch = decodeBatch(chunk, at, decodeOptions);
        for (const r of batch.records) {
          if (!r.key) continue;
          const k = keyOf(r.key);
          if (!latest.has(k)) mapBytes += k.length + MAP_ENTRY_OVERHEAD_BYTES;
          latest.set(k, r.offset);
        }
      });
    } finally {
      ctx.release(seg);
    }
    lastMapped = i;
    stats.coveredEnd = seg.nextOffset;
  }

  // Pass 2: rewrite the segments from the log start through the last mapped one (a record is
  // removed only when the map knows a later record of its key, or it is an expired tombstone).
  // With nothing new to map, a run only removes tombstones that have expired since.
  const cleanThrough = lastMapped >= 0 ? lastMapped : ctx.segments.length - 1;
  for (const seg of ctx.segments.slice(0, cleanThrough + 1)) {
    const r = await cleanSegment(ctx, seg, latest, stats);
    if (r) {
      stats.segmentsCleaned++;
      stats.recordsRemoved += r.recordsRemoved;
      stats.bytesBefore += r.bytesBefore;
      stats.bytesAfter += r.bytesAfter;
    }
  }
  if (stats.segmentsCleaned > 0) ctx.logger.info({ ...stats, keys: latest.size }, 'compaction cleaned segments');
  return stats;
}

async function cleanSegment(
  ctx: CompactionContext,
  seg: Segment,
  latest: Map<string, number>,
  stats: CompactionStats,
): Promise<{ recordsRemoved: number; bytesBefore: number; bytesAfter: number } | null> {
  const fresh = new Segment(ctx.dir, seg.baseOffset, ctx.options.segmentIndexBytes);
  fresh.offsetIndex.startInMemory();
  fresh.timeIndex.startInMemory();
  const recordsRemoved = await writeCleaned(ctx, seg, fresh, latest, stats);
  if (recordsRemoved === 0) return null;
  await swapIn(ctx, seg, fresh);
  const bytesBefore = seg.sizeBytes;
  ctx.replace(seg, fresh);
  return { recordsRemoved, bytesBefore, bytesAfter: fresh.sizeBytes };
}

/**
 * Writes the kept batches of `seg` to `<base>.log.cleaned` (fsynced), tracking them in `fresh`.
 * Returns the records removed; with none removed the cleaned file is dropped (nothing to swap).
 */
async function writeCleaned(ctx: CompactionContext, seg: Segment, fresh: Segment, latest: Map<string, number>, stats: CompactionStats): Promise<number> {
  const cleanedPath = seg.logPath + CLEANED_SUFFIX;
  let recordsRemoved = 0;
  let outPos = 0;
  let pendingOut: Uint8Array[] = [];
  let pendingBytes = 0;
  const outFd = await openFd(cleanedPath, 'w');
  let closed = false;
  const flushChunk = async (): Promise<void> => {
    if (pendingBytes < WRITE_CHUNK_BYTES) return;
    const bufs = pendingOut;
    pendingOut = [];
    const n = pendingBytes;
    pendingBytes = 0;
    await pwritevAll(outFd, bufs, outPos - n);
  };
  try {
    const fd = await ctx.acquire(seg);
    try {
      const scan = { checkCrc: true, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK, onChunkEnd: flushChunk };
      await scanBatches(fd, 0, seg.readableBytes, scan, (h, _pos, chunk, at) => {
        const kept = cleanBatch(ctx, chunk.subarray(at, at + h.totalBytes), h, latest, stats);
        recordsRemoved += kept.removed;
        if (!kept.out) return;
        const out = kept.out;
        const header = { ...h, batchLength: out.byteLength - 12, totalBytes: out.byteLength, maxTimestamp: readMaxTimestamp(out) };
        fresh.track(header, outPos, ctx.options.indexIntervalBytes, header.maxTimestamp);
        pendingOut.push(out);
        pendingBytes += out.byteLength;
        outPos += out.byteLength;
      });
    } finally {
      ctx.release(seg);
    }
    if (recordsRemoved > 0) {
      if (pendingBytes > 0) await pwritevAll(outFd, pendingOut, outPos - pendingBytes);
      await fdatasync(outFd);
    }
    closed = true;
    await closeFd(outFd);
    if (recordsRemoved === 0) await unlinkIfExists(cleanedPath);
    return recordsRemoved;
  } catch (err) {
    if (!closed) await closeFd(outFd).catch(() => undefined);
    await unlinkIfExists(cleanedPath);
    throw err;
  }
}

/** What stays of one batch: the bytes to write (null: drop it) and how many records went. */
function cleanBatch(
  ctx: CompactionContext,
  src: Uint8Array,
  h: BatchHeader,
  latest: Map<string, number>,
  stats: CompactionStats,
): { out: Uint8Array | null; removed: number } {
  const { options, nowMs } = ctx;
  const tombstoneHorizonMs = nowMs - options.deleteRetentionMs;
  const batch = decodeBatch(src, 0, { maxDecompressedBytes: options.maxDecompressedBytes, verifyCrc: false });
  const keep = batch.records.map((r) => {
    if (!r.key) return true;
    const newest = latest.get(keyOf(r.key));
    if (newest !== undefined && newest > r.offset) return false;
    if (r.value !== null) return true;
    if (r.timestampMs < tombstoneHorizonMs) return false;
    stats.nextTombstoneExpiryMs = Math.min(stats.nextTombstoneExpiryMs, r.timestampMs + options.deleteRetentionMs);
    return true;
  });
  const kept = keep.filter(Boolean).length;
  const removed = keep.length - kept;
  if (kept === keep.length) return { out: Buffer.from(src), removed };
  if (kept > 0) return { out: rebuildBatch(src, h, keep, batch.records.map((r) => r.timestampMs), options.maxDecompressedBytes), removed };
  if (h.producerId >= 0 && ctx.lastBatchOfProducer.get(h.producerId) === h.baseOffset) return { out: emptyBatch(src), removed };
  return { out: null, removed };
}

/** Renames the cleaned file over the segment (via `.swap`, see the header) and installs its new indexes in `fresh`. */
async function swapIn(ctx: CompactionContext, seg: Segment, fresh: Segment): Promise<void> {
  const cleanedPath = seg.logPath + CLEANED_SUFFIX;
  const swapPath = seg.logPath + SWAP_SUFFIX;
  await rename(cleanedPath, swapPath);
  await fsyncDir(ctx.dir);
  await unlinkIfExists(seg.offsetIndex.path);
  await unlinkIfExists(seg.timeIndex.path);
  await rename(swapPath, seg.logPath);
  await fsyncDir(ctx.dir);

  fresh.finalTimeIndexEntry();
  const oi = Buffer.from(fresh.offsetIndex.entries());
  const ti = Buffer.from(fresh.timeIndex.entries());
  await writeFileAtomic(fresh.offsetIndex.path, oi);
  await writeFileAtomic(fresh.timeIndex.path, ti);
  fresh.offsetIndex.install(oi, fresh.offsetIndex.count);
  fresh.timeIndex.install(ti, fresh.timeIndex.count);
  fresh.nextOffset = seg.nextOffset;
  if (fresh.maxTimestampMs < 0) {
    // Emptied completely: keep the old largest timestamp so time retention still sees its age.
    fresh.maxTimestampMs = seg.maxTimestampMs;
    fresh.offsetOfMaxTimestamp = seg.offsetOfMaxTimestamp;
  }
  fresh.indexesTrusted = true;
  fresh.uncheckedBelow = 0;
  fresh.rollBaseMs = seg.rollBaseMs;
}

function readMaxTimestamp(batch: Uint8Array): number {
  return Number(Buffer.from(batch.buffer, batch.byteOffset, batch.byteLength).readBigInt64BE(MAX_TIMESTAMP));
}

/** Reads one zigzag varint (a record's length prefix); returns [value, bytes]. */
function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let raw = 0;
  let shift = 0;
  let i = pos;
  for (;;) {
    if (i >= buf.byteLength || shift > 28) throw new Error(`record length varint at ${pos} is malformed`);
    const b = buf[i++];
    raw |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  return [(raw >>> 1) ^ -(raw & 1), i - pos];
}

/** A batch with only the kept records (their bytes copied verbatim), same header, new CRC. */
function rebuildBatch(src: Uint8Array, h: BatchHeader, keep: boolean[], timestamps: number[], maxDecompressedBytes: number): Uint8Array {
  const section = h.compression === 0 ? src.subarray(RECORDS) : decompress(h.compression, src.subarray(RECORDS), maxDecompressedBytes);
  const parts: Uint8Array[] = [];
  let keptBytes = 0;
  let pos = 0;
  let maxTs = -1;
  for (let i = 0; i < keep.length; i++) {
    const [len, n] = readVarint(section, pos);
    const end = pos + n + len;
    if (keep[i]) {
      parts.push(section.subarray(pos, end));
      keptBytes += end - pos;
      if (timestamps[i] > maxTs) maxTs = timestamps[i];
    }
    pos = end;
  }
  let records: Uint8Array = Buffer.concat(parts, keptBytes);
  if (h.compression !== 0) records = compress(h.compression, records);
  const out = Buffer.alloc(RECORDS + records.byteLength);
  out.set(src.subarray(0, RECORDS), 0);
  out.set(records, RECORDS);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setInt32(BATCH_LENGTH, out.byteLength - 12);
  view.setInt32(RECORDS_COUNT, parts.length);
  if (h.timestampType === 0) writeInt64(view, MAX_TIMESTAMP, maxTs);
  view.setUint32(CRC, crc32cRange(out, ATTRIBUTES, out.byteLength));
  return out;
}

/** Header only: keeps baseOffset, lastOffsetDelta and the producer fields (sequence state), no records. */
function emptyBatch(src: Uint8Array): Uint8Array {
  const out = Buffer.alloc(RECORDS);
  out.set(src.subarray(0, RECORDS), 0);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setInt32(BATCH_LENGTH, RECORDS - 12);
  view.setInt16(ATTRIBUTES, view.getInt16(ATTRIBUTES) & ~COMPRESSION_MASK);
  view.setInt32(RECORDS_COUNT, 0);
  view.setUint32(CRC, crc32cRange(out, ATTRIBUTES, RECORDS));
  return out;
}
