// The idempotent-producer state of one partition and its snapshot files (format and crash
// policy: producer-state.ts). The table answers sequence checks on the leader path; the store
// writes a snapshot at each roll and at close, and rebuilds the table after recovery or
// truncation: the newest readable snapshot at or below the log end, then a replay of the
// batch headers after it.
import { join } from 'node:path';
import type { Logger } from '../logging.js';
import type { LogOptions } from './api.js';
import { readFileOrNull, unlinkIfExists, writeFileAtomic } from './io.js';
import { MAX_BATCH_BYTES_ON_DISK, MAX_RELATIVE_OFFSET } from './options.js';
import { ProducerStateTable, type ProducerEntry } from './producer-state.js';
import { scanBatches } from './scan.js';
import { SNAPSHOT_SUFFIX, fileNameFor } from './segment.js';
import type { SegmentSet } from './segment-set.js';

export class ProducerStore {
  readonly table: ProducerStateTable;
  /** Offsets of the snapshot files on disk, ascending. */
  private snapshotOffsets: number[];

  constructor(
    private readonly dir: string,
    private readonly options: () => Required<LogOptions>,
    private readonly logger: Logger,
    snapshotOffsets: number[],
  ) {
    this.table = new ProducerStateTable(options().maxProducerIds);
    this.snapshotOffsets = [...snapshotOffsets].sort((a, b) => a - b);
  }

  private pathOf(offset: number): string {
    return join(this.dir, fileNameFor(offset, SNAPSHOT_SUFFIX));
  }

  /** A copy of one producer's state (tests, admin). */
  get(producerId: number): ProducerEntry | undefined {
    const e = this.table.get(producerId);
    return e ? { ...e, batches: e.batches.map((b) => ({ ...b })) } : undefined;
  }

  /** Base offset of each idempotent producer's last batch (compaction keeps those batches). */
  lastBatchOfEachProducer(): Map<number, number> {
    const out = new Map<number, number>();
    for (const [id, e] of this.table.entries()) if (e.batches.length) out.set(id, e.batches[e.batches.length - 1].firstOffset);
    return out;
  }

  /** Writes the state as of `offset` (every batch below it applied); keeps producerSnapshotsKept files. */
  async writeSnapshot(offset: number): Promise<void> {
    const o = this.options();
    this.table.expire(Date.now() - o.producerIdExpirationMs);
    await writeFileAtomic(this.pathOf(offset), this.table.snapshot(offset));
    if (!this.snapshotOffsets.includes(offset)) this.snapshotOffsets.push(offset);
    this.snapshotOffsets.sort((a, b) => a - b);
    while (this.snapshotOffsets.length > o.producerSnapshotsKept) await unlinkIfExists(this.pathOf(this.snapshotOffsets.shift()!));
  }

  /** After a clean shutdown: the snapshot written at close, when it is there and readable. */
  async loadExact(endOffset: number): Promise<boolean> {
    if (!this.snapshotOffsets.includes(endOffset)) return false;
    const bytes = await readFileOrNull(this.pathOf(endOffset));
    return bytes !== null && this.table.load(bytes);
  }

  /** Loads the newest usable snapshot at or below `endOffset` and replays the batches after it. */
  async rebuild(endOffset: number, segments: SegmentSet): Promise<void> {
    for (const off of this.snapshotOffsets.filter((o) => o > endOffset)) await unlinkIfExists(this.pathOf(off));
    this.snapshotOffsets = this.snapshotOffsets.filter((o) => o <= endOffset);
    this.table.clear();
    const from = (await this.loadNewest()) ?? segments.segments[0].baseOffset;
    if (from >= endOffset) return;
    for (const seg of segments.segments) {
      if (seg.nextOffset <= from && seg !== segments.active) continue;
      const fd = await segments.acquire(seg);
      try {
        await segments.ensureIndexes(seg);
        const hint = from > seg.baseOffset ? seg.offsetIndex.lookup(Math.min(from - seg.baseOffset, MAX_RELATIVE_OFFSET)).position : 0;
        await scanBatches(fd, hint, seg.readableBytes, { checkCrc: false, maxBatchBytes: MAX_BATCH_BYTES_ON_DISK }, (h) => {
          if (h.baseOffset >= from && h.lastOffset < endOffset) this.table.apply(h, h.maxTimestamp > 0 ? h.maxTimestamp : Date.now());
        });
      } finally {
        segments.release(seg);
      }
    }
  }

  /** The newest readable snapshot's offset (its state loaded), or null when none is. */
  private async loadNewest(): Promise<number | null> {
    for (let i = this.snapshotOffsets.length - 1; i >= 0; i--) {
      const off = this.snapshotOffsets[i];
      const bytes = await readFileOrNull(this.pathOf(off));
      if (bytes && this.table.load(bytes)) return off;
      this.logger.warn({ snapshot: off }, 'producer-state snapshot unreadable; trying an older one');
    }
    return null;
  }
}
