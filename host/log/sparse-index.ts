// Sparse indexes of one segment: `.index` (offset → file position) and `.timeindex`
// (timestamp → offset). Both are fixed-size entries, big-endian, sorted by their key:
//
//   .index      8 bytes per entry:  relativeOffset u32 | position u32
//   .timeindex 12 bytes per entry:  timestampMs i64   | relativeOffset u32
//
// relativeOffset = offset − segment base offset (a segment never spans 2^32 offsets: rolled
// before). One offset-index entry is added per `index.interval.bytes` of log; a time-index
// entry is added at the same moments when the largest timestamp so far has grown (so the
// time index is monotonic even when producers' clocks are not; Kafka's rule).
//
// Crash policy: rebuilt after a crash, never checksummed. The active segment's files are
// preallocated (sparse) to `segment.index.bytes`; the active segment's entries are kept in
// memory and written when the segment rolls or the log closes, when the files are truncated to
// their used size and fsynced. After an unclean shutdown the indexes of every segment recovery scans are
// rebuilt from the log; an older segment's index is checked when first loaded (size a
// multiple of the entry size, keys strictly increasing, positions inside the log, the last
// offset entry pointing at its batch) and rebuilt from the log if it fails or is missing.
//
// Memory: the active segment keeps its entries in memory (bounded by segment.index.bytes);
// a closed segment's entries are loaded on first lookup and dropped by the log's index cache
// (an LRU bounded in bytes), so a log with thousands of segments holds only a few indexes.
import { closeFd, ftruncate, fsyncFd, openFd, preadFull, pwritevAll, fstatSize } from './io.js';

export const OFFSET_ENTRY_BYTES = 8;
export const TIME_ENTRY_BYTES = 12;

abstract class SparseIndex {
  /** Entries in memory (null when not loaded). */
  protected buf: Buffer | null = null;
  /** Valid entries. */
  count = 0;
  /** Entries already written to the file. */
  private persisted = 0;
  private fd: number | null = null;

  constructor(
    readonly path: string,
    readonly entryBytes: number,
    /** Most bytes the file may hold (segment.index.bytes rounded down to whole entries). */
    readonly maxBytes: number,
  ) {}

  get loaded(): boolean {
    return this.buf !== null;
  }
  get isFull(): boolean {
    return (this.count + 1) * this.entryBytes > this.maxBytes;
  }
  get bytesInMemory(): number {
    return this.buf?.byteLength ?? 0;
  }

  /** Starts an empty index for a new (active) segment: creates and preallocates the file. */
  async create(): Promise<void> {
    this.fd = await openFd(this.path, 'w+');
    await ftruncate(this.fd, this.maxBytes);
    this.buf = Buffer.alloc(Math.min(this.maxBytes, 64 * this.entryBytes));
    this.count = 0;
    this.persisted = 0;
  }

  /** Reopens an existing index as active (entries from `entries`, already validated), preallocating again. */
  async reopenActive(entries: Buffer, count: number): Promise<void> {
    this.fd = await openFd(this.path, 'w+');
    await ftruncate(this.fd, this.maxBytes);
    this.buf = Buffer.alloc(Math.max(Math.min(this.maxBytes, 64 * this.entryBytes), count * this.entryBytes));
    entries.copy(this.buf, 0, 0, count * this.entryBytes);
    this.count = count;
    this.persisted = 0;
    await this.persist();
  }

  /** Reads the file's entries (closed segment). Returns null when the file is missing. */
  async readFile(): Promise<Buffer | null> {
    let fd: number;
    try {
      fd = await openFd(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      const size = await fstatSize(fd);
      const out = Buffer.allocUnsafe(size);
      const n = await preadFull(fd, out, 0, size, 0);
      return out.subarray(0, n);
    } finally {
      await closeFd(fd);
    }
  }

  /** Starts an empty in-memory index with no file (rebuilds: written out afterwards). */
  startInMemory(): void {
    this.buf = Buffer.alloc(Math.min(this.maxBytes, 64 * this.entryBytes));
    this.count = 0;
    this.persisted = 0;
  }

  /** The valid entries (a view; copy before the index changes). */
  entries(): Buffer {
    return this.buf ? this.buf.subarray(0, this.count * this.entryBytes) : Buffer.alloc(0);
  }

  /** Installs entries read or rebuilt for a closed segment. */
  install(entries: Buffer, count: number): void {
    this.buf = entries;
    this.count = count;
    this.persisted = count;
  }

  /** Forgets the entries (index cache eviction of a closed segment). */
  unload(): void {
    if (this.fd === null) this.buf = null;
  }

  protected appendRaw(write: (buf: Buffer, at: number) => void): void {
    const at = this.count * this.entryBytes;
    if (at + this.entryBytes > this.buf!.byteLength) {
      const grown = Buffer.alloc(Math.min(this.maxBytes, Math.max(this.buf!.byteLength * 2, at + this.entryBytes)));
      this.buf!.copy(grown, 0, 0, at);
      this.buf = grown;
    }
    write(this.buf!, at);
    this.count++;
  }

  /** Writes entries added since the last call to the file (no fsync). */
  async persist(): Promise<void> {
    if (this.fd === null || this.persisted === this.count) return;
    const from = this.persisted;
    const to = this.count;
    await pwritevAll(this.fd, [this.buf!.subarray(from * this.entryBytes, to * this.entryBytes)], from * this.entryBytes);
    if (this.persisted === from) this.persisted = to;
  }

  /** Segment closes: write the rest, cut the file to its used size, fsync, close the fd. */
  async seal(): Promise<void> {
    if (this.fd === null) return;
    await this.persist();
    await ftruncate(this.fd, this.count * this.entryBytes);
    await fsyncFd(this.fd);
    await closeFd(this.fd);
    this.fd = null;
    if (this.buf && this.buf.byteLength > this.count * this.entryBytes) {
      this.buf = Buffer.from(this.buf.subarray(0, this.count * this.entryBytes));
    }
  }

  /** Closes without sealing (crash-like close or destroy). */
  async closeQuietly(): Promise<void> {
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      await closeFd(fd).catch(() => undefined);
    }
  }


  /** Index of the last entry whose key is <= key (or < key when `strict`); -1 if none. */
  protected floorEntry(key: number, keyAt: (i: number) => number, strict: boolean): number {
    let lo = 0;
    let hi = this.count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const k = keyAt(mid);
      if (k < key || (!strict && k === key)) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }
}

export class OffsetIndex extends SparseIndex {
  constructor(path: string, maxBytes: number) {
    super(path, OFFSET_ENTRY_BYTES, maxBytes - (maxBytes % OFFSET_ENTRY_BYTES));
  }
  relativeOffsetAt(i: number): number {
    return this.buf!.readUInt32BE(i * 8);
  }
  positionAt(i: number): number {
    return this.buf!.readUInt32BE(i * 8 + 4);
  }
  get lastRelativeOffset(): number {
    return this.count === 0 ? -1 : this.relativeOffsetAt(this.count - 1);
  }
  add(relativeOffset: number, position: number): void {
    this.appendRaw((b, at) => {
      b.writeUInt32BE(relativeOffset, at);
      b.writeUInt32BE(position, at + 4);
    });
  }
  /** Position of the last entry at or below `relativeOffset` (0 when none: the segment start). */
  lookup(relativeOffset: number): { relativeOffset: number; position: number } {
    if (!this.buf) return { relativeOffset: 0, position: 0 }; // not loaded: walk from the segment start (correct, slower)
    const i = this.floorEntry(relativeOffset, (j) => this.relativeOffsetAt(j), false);
    return i < 0 ? { relativeOffset: 0, position: 0 } : { relativeOffset: this.relativeOffsetAt(i), position: this.positionAt(i) };
  }
  /** Validates entries against a log of `logBytes`: count of the valid prefix and whether all were valid. */
  static validate(entries: Buffer, logBytes: number): { count: number; ok: boolean } {
    const ok = entries.byteLength % OFFSET_ENTRY_BYTES === 0;
    const n = Math.floor(entries.byteLength / OFFSET_ENTRY_BYTES);
    let prevRel = -1;
    let prevPos = -1;
    for (let i = 0; i < n; i++) {
      const rel = entries.readUInt32BE(i * 8);
      const pos = entries.readUInt32BE(i * 8 + 4);
      if (rel <= prevRel || pos <= prevPos || pos >= logBytes) return { count: i, ok: false };
      prevRel = rel;
      prevPos = pos;
    }
    return { count: n, ok };
  }
}

export class TimeIndex extends SparseIndex {
  constructor(path: string, maxBytes: number) {
    super(path, TIME_ENTRY_BYTES, maxBytes - (maxBytes % TIME_ENTRY_BYTES));
  }
  timestampAt(i: number): number {
    return Number(this.buf!.readBigInt64BE(i * 12));
  }
  relativeOffsetAt(i: number): number {
    return this.buf!.readUInt32BE(i * 12 + 8);
  }
  get lastTimestamp(): number {
    return this.count === 0 ? -1 : this.timestampAt(this.count - 1);
  }
  add(timestampMs: number, relativeOffset: number): void {
    this.appendRaw((b, at) => {
      b.writeBigInt64BE(BigInt(timestampMs), at);
      b.writeUInt32BE(relativeOffset, at + 8);
    });
  }
  /** The last entry with timestamp < timestampMs: every batch before its offset is older than the target. */
  lookupBelow(timestampMs: number): { timestampMs: number; relativeOffset: number } | null {
    if (!this.buf) return null;
    const i = this.floorEntry(timestampMs, (j) => this.timestampAt(j), true);
    return i < 0 ? null : { timestampMs: this.timestampAt(i), relativeOffset: this.relativeOffsetAt(i) };
  }
  static validate(entries: Buffer, maxRelativeOffset: number): { count: number; ok: boolean } {
    const ok = entries.byteLength % TIME_ENTRY_BYTES === 0;
    const n = Math.floor(entries.byteLength / TIME_ENTRY_BYTES);
    let prevTs = -Infinity;
    let prevRel = -1;
    for (let i = 0; i < n; i++) {
      const ts = Number(entries.readBigInt64BE(i * 12));
      const rel = entries.readUInt32BE(i * 12 + 8);
      if (ts <= prevTs || rel < prevRel || rel > maxRelativeOffset) return { count: i, ok: false };
      prevTs = ts;
      prevRel = rel;
    }
    return { count: n, ok };
  }
}
