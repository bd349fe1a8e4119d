// Binary encoding of Raft messages between voters (and of entries and snapshots, which
// raft-storage.ts reuses for its records). All integers big-endian. Terms and indexes are
// uint64 on the wire and JS safe integers inside (≤ 2^53 − 1, checked on decode).
//
//   frame       := length:uint32 (bytes after this field) version:uint8 (=1) type:uint8
//                  from:uint32 to:uint32 term:uint64 body
//   PreVote, Vote         body := lastIndex:uint64 lastTerm:uint64
//   PreVoteResp, VoteResp body := reject:uint8 (0|1)
//   Append                body := prevIndex:uint64 prevTerm:uint64 commit:uint64 count:uint32 entry{count}
//   AppendResp            body := reject:uint8 index:uint64 hintIndex:uint64 hintTerm:uint64
//   Snapshot              body := snapshot
//   entry       := index:uint64 term:uint64 dataLength:uint32 data
//   snapshot    := index:uint64 term:uint64 voterCount:uint16 voter:uint32{voterCount} dataLength:uint32 data
//
// Why a version byte: a rolling upgrade meets old and new frames on one link; a node refuses a
// version it does not speak (UNSUPPORTED_VERSION) instead of misreading it. Why a length prefix:
// a stream transport (TCP) finds frame boundaries without parsing bodies, and refuses an
// oversized frame from its first four bytes, before buffering it.
//
// Hostile input gets a specific error from the one error table: a frame longer than the
// caller's limit MESSAGE_TOO_LARGE; a frame shorter than its fields, a count larger than the
// bytes that follow, trailing bytes or a value out of range CORRUPT_MESSAGE; another version
// UNSUPPORTED_VERSION; an unknown type INVALID_REQUEST. Each message names the field.
import { BrokerError } from '../errors/broker-error.js';
import type { Entry, Message, MessageType, Snapshot } from './raft-types.js';

export const RAFT_WIRE_VERSION = 1;
/** length(4) version(1) type(1) from(4) to(4) term(8). */
export const FRAME_HEADER_BYTES = 22;
const ENTRY_HEADER_BYTES = 20;

const TYPE_CODES: Record<MessageType, number> = {
  PreVote: 1,
  PreVoteResp: 2,
  Vote: 3,
  VoteResp: 4,
  Append: 5,
  AppendResp: 6,
  Snapshot: 7,
};
const TYPE_BY_CODE = new Map(Object.entries(TYPE_CODES).map(([k, v]) => [v, k as MessageType]));

/** Grows by doubling up to the size of one message; the caller's frame limit bounds it on decode. */
export class ByteWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.view.setUint8(this.length++, v);
  }

  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.length, v);
    this.length += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, v);
    this.length += 4;
  }

  u64(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`raft codec: ${v} is not a uint64 we can hold`);
    this.u32(Math.floor(v / 2 ** 32));
    this.u32(v >>> 0);
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  setU32(at: number, v: number): void {
    this.view.setUint32(at, v);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

export class ByteReader {
  private readonly view: DataView;
  pos: number;

  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
    private readonly what = 'raft frame',
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  need(n: number, field: string): void {
    if (this.pos + n > this.end) {
      throw new BrokerError('CORRUPT_MESSAGE', `${this.what} truncated: ${field} needs ${n} bytes at offset ${this.pos}, ${this.end - this.pos} left`);
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.view.getUint8(this.pos++);
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  u64(field: string): number {
    this.need(8, field);
    const hi = this.view.getUint32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    if (hi >= 2 ** 21) throw new BrokerError('CORRUPT_MESSAGE', `${this.what}: ${field} does not fit a safe integer`);
    return hi * 2 ** 32 + lo;
  }

  bool(field: string): boolean {
    const v = this.u8(field);
    if (v > 1) throw new BrokerError('CORRUPT_MESSAGE', `${this.what}: ${field} must be 0 or 1, got ${v}`);
    return v === 1;
  }

  bytes(n: number, field: string): Uint8Array {
    this.need(n, field);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

export function writeEntry(w: ByteWriter, e: Entry): void {
  w.u64(e.index);
  w.u64(e.term);
  w.u32(e.data.length);
  w.bytes(e.data);
}

export function readEntry(r: ByteReader): Entry {
  const index = r.u64('entry.index');
  const term = r.u64('entry.term');
  const length = r.u32('entry.dataLength');
  return { index, term, data: r.bytes(length, 'entry.data') };
}

export function writeSnapshot(w: ByteWriter, s: Snapshot): void {
  w.u64(s.index);
  w.u64(s.term);
  w.u16(s.voters.length);
  for (const v of s.voters) w.u32(v);
  w.u32(s.data.length);
  w.bytes(s.data);
}

export function readSnapshot(r: ByteReader): Snapshot {
  const index = r.u64('snapshot.index');
  const term = r.u64('snapshot.term');
  const count = r.u16('snapshot.voterCount');
  r.need(count * 4, 'snapshot.voters');
  const voters: number[] = [];
  for (let i = 0; i < count; i++) voters.push(r.u32('snapshot.voter'));
  const length = r.u32('snapshot.dataLength');
  return { index, term, voters, data: r.bytes(length, 'snapshot.data') };
}

/** One framed message, length prefix included. */
export function encodeMessage(m: Message): Uint8Array {
  const w = new ByteWriter();
  w.u32(0); // length, patched below
  w.u8(RAFT_WIRE_VERSION);
  w.u8(TYPE_CODES[m.type]);
  w.u32(m.from);
  w.u32(m.to);
  w.u64(m.term);
  switch (m.type) {
    case 'PreVote':
    case 'Vote':
      w.u64(m.lastIndex);
      w.u64(m.lastTerm);
      break;
    case 'PreVoteResp':
    case 'VoteResp':
      w.u8(m.reject ? 1 : 0);
      break;
    case 'Append':
      w.u64(m.prevIndex);
      w.u64(m.prevTerm);
      w.u64(m.commit);
      w.u32(m.entries.length);
      for (const e of m.entries) writeEntry(w, e);
      break;
    case 'AppendResp':
      w.u8(m.reject ? 1 : 0);
      w.u64(m.index);
      w.u64(m.hintIndex);
      w.u64(m.hintTerm);
      break;
    case 'Snapshot':
      writeSnapshot(w, m.snapshot);
      break;
  }
  w.setU32(0, w.length - 4);
  return w.finish();
}

/**
 * The total length of the frame starting at `offset`, or null when fewer than 4 bytes are there.
 * Throws MESSAGE_TOO_LARGE as soon as the prefix announces more than `frameBytesMax`.
 */
export function frameLength(buf: Uint8Array, offset: number, frameBytesMax: number): number | null {
  if (buf.length - offset < 4) return null;
  const body = new DataView(buf.buffer, buf.byteOffset + offset, 4).getUint32(0);
  if (body + 4 > frameBytesMax) throw new BrokerError('MESSAGE_TOO_LARGE', `raft frame of ${body + 4} bytes exceeds frameBytesMax ${frameBytesMax}`);
  return body + 4;
}

/** Decodes exactly one frame (length prefix included) filling `frame`. */
export function decodeMessage(frame: Uint8Array, frameBytesMax: number): Message {
  const total = frameLength(frame, 0, frameBytesMax);
  if (total === null) throw new BrokerError('CORRUPT_MESSAGE', `raft frame truncated: length needs 4 bytes, ${frame.length} given`);
  if (total > frame.length) throw new BrokerError('CORRUPT_MESSAGE', `raft frame truncated: length says ${total} bytes, ${frame.length} given`);
  if (total < frame.length) throw new BrokerError('CORRUPT_MESSAGE', `raft frame: ${frame.length - total} trailing bytes after a ${total}-byte frame`);
  const r = new ByteReader(frame, 4, total);
  const version = r.u8('version');
  if (version !== RAFT_WIRE_VERSION) throw new BrokerError('UNSUPPORTED_VERSION', `raft frame version ${version}, this node speaks ${RAFT_WIRE_VERSION}`);
  const code = r.u8('type');
  const type = TYPE_BY_CODE.get(code);
  if (!type) throw new BrokerError('INVALID_REQUEST', `raft frame: unknown message type ${code}`);
  const head = { from: r.u32('from'), to: r.u32('to'), term: r.u64('term') };
  const m = decodeBody(r, type, head);
  if (r.remaining() !== 0) throw new BrokerError('CORRUPT_MESSAGE', `raft frame: ${r.remaining()} bytes after the ${type} body`);
  return m;
}

function decodeBody(r: ByteReader, type: MessageType, head: { from: number; to: number; term: number }): Message {
  switch (type) {
    case 'PreVote':
    case 'Vote':
      return { type, ...head, lastIndex: r.u64('lastIndex'), lastTerm: r.u64('lastTerm') };
    case 'PreVoteResp':
    case 'VoteResp':
      return { type, ...head, reject: r.bool('reject') };
    case 'Append': {
      const prevIndex = r.u64('prevIndex');
      const prevTerm = r.u64('prevTerm');
      const commit = r.u64('commit');
      const count = r.u32('entryCount');
      // A hostile count is refused before anything is allocated for it.
      r.need(count * ENTRY_HEADER_BYTES, `${count} entries`);
      const entries: Entry[] = [];
      for (let i = 0; i < count; i++) entries.push(readEntry(r));
      return { type, ...head, prevIndex, prevTerm, commit, entries };
    }
    case 'AppendResp':
      return { type, ...head, reject: r.bool('reject'), index: r.u64('index'), hintIndex: r.u64('hintIndex'), hintTerm: r.u64('hintTerm') };
    case 'Snapshot':
      return { type, ...head, snapshot: readSnapshot(r) };
  }
}
