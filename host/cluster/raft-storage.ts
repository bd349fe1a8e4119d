// Durable Raft state: hard state (term, vote, commit), log entries and the snapshot, in one
// append-only file per node, `<dir>/raft.log`. All integers big-endian; entry and snapshot
// bodies are the wire encodings of raft-codec.ts.
//
//   file     := header record*
//   header   := magic:uint32 (0x52414654, "RAFT") version:uint8 (=1) reserved:uint8[3] (=0)
//   record   := length:uint32 (bytes of type+body) crc:uint32 (CRC-32C of type+body) type:uint8 body
//   type 1 HardState  body := term:uint64 vote:uint32 commit:uint64
//   type 2 Entries    body := count:uint32 entry{count}      the stored log is cut before
//                                                           entries[0].index, then they are appended
//   type 3 Snapshot   body := snapshot                       one received from the leader: it
//                                                           replaces the whole stored log
//   type 4 Compact    body := snapshot                       the application's own snapshot:
//                                                           entries up to its index are dropped
//
// Crash policy. save() appends the records of one Ready (snapshot, entries, then hard state,
// so a torn write never leaves a commit index naming entries that are not there) and fdatasyncs
// before it resolves; the driver calls RaftNode.advance() — which hands out the messages — only
// after that. So whatever a crash cuts off was never acknowledged to anyone. On open, records
// are replayed in order and the first one that is short, announces more than recordBytesMax,
// fails its CRC or does not decode ends the log: the file is truncated there and fsynced (the
// torn tail of a crash mid-write). A bad header is not a torn tail: open refuses with
// KAFKA_STORAGE_ERROR rather than start a voter with no memory of its votes.
//
// The file is rewritten when it grows past rewriteBytes after a compaction: the live state goes
// to raft.log.tmp (header, snapshot, entries, hard state), which is fsynced, renamed over
// raft.log, and the directory fsynced. A crash before the rename leaves the old file whole; a
// stale .tmp is removed at open.
import { constants } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '../core/crc32c.js';
import { BrokerError } from '../errors/broker-error.js';
import { closeFd, fdatasync, fstatSize, fsyncDir, ftruncate, openFd, preadFull, pwritevAll, unlinkIfExists } from '../log/io.js';
import { ByteReader, ByteWriter, readEntry, readSnapshot, writeEntry, writeSnapshot } from './raft-codec.js';
import type { RaftInitialState, Ready } from './raft.js';
import type { Entry, HardState, Snapshot } from './raft-types.js';

export const RAFT_LOG_FILE = 'raft.log';
const MAGIC = 0x52414654;
const FORMAT_VERSION = 1;
export const STORAGE_HEADER_BYTES = 8;
const RECORD_HEADER_BYTES = 8;
// Not O_APPEND: Linux ignores the position of a pwrite on an O_APPEND descriptor, and writes go
// at `size`, which the truncation on open has made the end of the valid records.
const READ_WRITE_CREATE = constants.O_RDWR | constants.O_CREAT;

export type StorageRecord =
  | { kind: 'hardState'; hardState: HardState }
  | { kind: 'entries'; entries: readonly Entry[] }
  | { kind: 'snapshot'; snapshot: Snapshot }
  | { kind: 'compact'; snapshot: Snapshot };

const KIND_CODES = { hardState: 1, entries: 2, snapshot: 3, compact: 4 } as const;

/** The records that persist one Ready, in the order the crash policy needs. */
export function recordsForReady(rd: Ready): StorageRecord[] {
  const out: StorageRecord[] = [];
  if (rd.snapshot) out.push({ kind: 'snapshot', snapshot: rd.snapshot });
  if (rd.entries.length) out.push({ kind: 'entries', entries: rd.entries });
  if (rd.hardState) out.push({ kind: 'hardState', hardState: rd.hardState });
  return out;
}

/**
 * What the records add up to: the state a restarted node is built from. Pure, so the simulator
 * keeps its nodes' "disks" in it and a crash loses exactly what was not applied here.
 */
export class DurableState {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];

  get snapshotIndex(): number {
    return this.snapshot?.index ?? 0;
  }

  lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  apply(rec: StorageRecord): void {
    switch (rec.kind) {
      case 'hardState':
        this.hardState = rec.hardState;
        return;
      case 'snapshot':
        this.snapshot = rec.snapshot;
        this.entries = [];
        return;
      case 'compact': {
        const s = rec.snapshot;
        if (s.index <= this.snapshotIndex) return;
        const at = this.entries[s.index - this.snapshotIndex - 1];
        this.entries = at && at.term === s.term ? this.entries.slice(s.index - this.snapshotIndex) : [];
        this.snapshot = s;
        return;
      }
      case 'entries': {
        const first = rec.entries[0]!.index;
        if (first <= this.snapshotIndex || first > this.lastIndex() + 1) {
          throw new Error(`raft storage: entries from ${first} do not follow the stored log (snapshot ${this.snapshotIndex}, last ${this.lastIndex()})`);
        }
        this.entries.length = first - this.snapshotIndex - 1;
        for (const e of rec.entries) this.entries.push(e);
        return;
      }
    }
  }

  initial(): RaftInitialState {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: this.entries.slice() };
  }

  /** The records that rebuild this state from nothing (a rewrite of the file). */
  records(): StorageRecord[] {
    const out: StorageRecord[] = [];
    if (this.snapshot) out.push({ kind: 'snapshot', snapshot: this.snapshot });
    if (this.entries.length) out.push({ kind: 'entries', entries: this.entries });
    out.push({ kind: 'hardState', hardState: this.hardState });
    return out;
  }
}

export function encodeRecord(rec: StorageRecord): Uint8Array {
  const w = new ByteWriter();
  w.u32(0);
  w.u32(0);
  w.u8(KIND_CODES[rec.kind]);
  switch (rec.kind) {
    case 'hardState':
      w.u64(rec.hardState.term);
      w.u32(rec.hardState.vote);
      w.u64(rec.hardState.commit);
      break;
    case 'entries':
      w.u32(rec.entries.length);
      for (const e of rec.entries) writeEntry(w, e);
      break;
    case 'snapshot':
    case 'compact':
      writeSnapshot(w, rec.snapshot);
      break;
  }
  const out = w.finish();
  const view = new DataView(out.buffer);
  view.setUint32(0, out.length - RECORD_HEADER_BYTES);
  view.setUint32(4, crc32c(out.subarray(RECORD_HEADER_BYTES)));
  return out;
}

/** Decodes the record at `pos`, or returns null when it is torn (short, oversized, bad CRC, undecodable). */
export function decodeRecordAt(buf: Uint8Array, pos: number, recordBytesMax: number): { record: StorageRecord; next: number } | null {
  if (buf.length - pos < RECORD_HEADER_BYTES) return null;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const length = view.getUint32(pos);
  if (length < 1 || length > recordBytesMax || pos + RECORD_HEADER_BYTES + length > buf.length) return null;
  const start = pos + RECORD_HEADER_BYTES;
  if (crc32c(buf.subarray(start, start + length)) !== view.getUint32(pos + 4)) return null;
  try {
    const r = new ByteReader(buf, start, start + length, 'raft storage record');
    const record = decodeRecordBody(r);
    if (r.remaining() !== 0) return null;
    return { record, next: start + length };
  } catch {
    return null;
  }
}

function decodeRecordBody(r: ByteReader): StorageRecord {
  const code = r.u8('type');
  switch (code) {
    case KIND_CODES.hardState:
      return { kind: 'hardState', hardState: { term: r.u64('term'), vote: r.u32('vote'), commit: r.u64('commit') } };
    case KIND_CODES.entries: {
      const count = r.u32('count');
      if (count === 0) throw new Error('empty entries record');
      const entries: Entry[] = [];
      for (let i = 0; i < count; i++) entries.push(readEntry(r));
      return { kind: 'entries', entries };
    }
    case KIND_CODES.snapshot:
      return { kind: 'snapshot', snapshot: readSnapshot(r) };
    case KIND_CODES.compact:
      return { kind: 'compact', snapshot: readSnapshot(r) };
    default:
      throw new Error(`unknown record type ${code}`);
  }
}

function header(): Uint8Array {
  const h = new Uint8Array(STORAGE_HEADER_BYTES);
  new DataView(h.buffer).setUint32(0, MAGIC);
  h[4] = FORMAT_VERSION;
  return h;
}

export interface RaftStorageOptions {
  /** Largest record accepted on load; anything announcing more is a torn length field. */
  readonly recordBytesMax: number;
  /** Rewrite the file after a compaction once it is larger than this. */
  readonly rewriteBytes: number;
}

export interface OpenedRaftStorage {
  readonly storage: FileRaftStorage;
  readonly initial: RaftInitialState;
  /** Bytes cut off the end as a torn tail (0 after a clean run). */
  readonly truncatedBytes: number;
}

/** Replays a whole file image; pure, so a test can check every truncation offset without disk I/O. */
export function replayImage(buf: Uint8Array, recordBytesMax: number): { state: DurableState; validBytes: number } {
  if (buf.length < STORAGE_HEADER_BYTES) return { state: new DurableState(), validBytes: 0 };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(0) !== MAGIC || buf[4] !== FORMAT_VERSION) {
    throw new BrokerError('KAFKA_STORAGE_ERROR', `raft storage: bad header (magic ${view.getUint32(0).toString(16)}, version ${buf[4]})`);
  }
  const state = new DurableState();
  let pos = STORAGE_HEADER_BYTES;
  for (;;) {
    const got = decodeRecordAt(buf, pos, recordBytesMax);
    if (!got) break;
    try {
      state.apply(got.record);
    } catch {
      break; // a record that does not fit what precedes it is as good as torn
    }
    pos = got.next;
  }
  return { state, validBytes: pos };
}

export class FileRaftStorage {
  private saving = false;

  private constructor(
    private readonly dir: string,
    private fd: number,
    private size: number,
    private readonly state: DurableState,
    private readonly opts: RaftStorageOptions,
  ) {}

  static async open(dir: string, opts: RaftStorageOptions): Promise<OpenedRaftStorage> {
    await unlinkIfExists(join(dir, `${RAFT_LOG_FILE}.tmp`));
    const path = join(dir, RAFT_LOG_FILE);
    const fd = await openFd(path, READ_WRITE_CREATE);
    const fileBytes = await fstatSize(fd);
    const buf = new Uint8Array(fileBytes);
    await preadFull(fd, buf, 0, fileBytes, 0);
    let state: DurableState;
    let validBytes: number;
    try {
      ({ state, validBytes } = replayImage(buf, opts.recordBytesMax));
    } catch (err) {
      await closeFd(fd);
      throw err;
    }
    if (validBytes < STORAGE_HEADER_BYTES) {
      // New file, or a crash tore the header of a new file: nothing after it was ever fsynced.
      await ftruncate(fd, 0);
      await pwritevAll(fd, [header()], 0);
      validBytes = STORAGE_HEADER_BYTES;
      await fdatasync(fd);
      await fsyncDir(dir);
    } else if (validBytes < fileBytes) {
      await ftruncate(fd, validBytes);
      await fdatasync(fd);
    }
    const storage = new FileRaftStorage(dir, fd, validBytes, state, opts);
    return { storage, initial: state.initial(), truncatedBytes: fileBytes - Math.min(fileBytes, validBytes) };
  }

  /** Persists one Ready; resolves after fdatasync. Only then may the driver call advance(). */
  saveReady(rd: Ready): Promise<void> {
    return this.save(recordsForReady(rd));
  }

  /** The application took `snapshot` at or below its applied index: drop the entries it covers. */
  async compact(snapshot: Snapshot): Promise<void> {
    await this.save([{ kind: 'compact', snapshot }]);
    if (this.size > this.opts.rewriteBytes) await this.rewrite();
  }

  async save(records: StorageRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (this.saving) throw new Error('raft storage: save while another save is in flight (the driver must await each Ready)');
    this.saving = true;
    try {
      const encoded = records.map(encodeRecord);
      this.size += await pwritevAll(this.fd, encoded, this.size);
      await fdatasync(this.fd);
      for (const r of records) this.state.apply(r);
    } finally {
      this.saving = false;
    }
  }

  get bytes(): number {
    return this.size;
  }

  private async rewrite(): Promise<void> {
    const tmp = join(this.dir, `${RAFT_LOG_FILE}.tmp`);
    const fd = await openFd(tmp, 'w');
    const parts = [header(), ...this.state.records().map(encodeRecord)];
    const size = await pwritevAll(fd, parts, 0);
    await fdatasync(fd);
    await closeFd(fd);
    await rename(tmp, join(this.dir, RAFT_LOG_FILE));
    await fsyncDir(this.dir);
    await closeFd(this.fd);
    this.fd = await openFd(join(this.dir, RAFT_LOG_FILE), READ_WRITE_CREATE);
    this.size = size;
  }

  async close(): Promise<void> {
    await closeFd(this.fd);
  }
}
