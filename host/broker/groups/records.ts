// Records of the internal topic `__consumer_offsets`: what the coordinator writes through the
// broker's one append path and replays on open. The layout is Kafka's own (so Kafka tools that
// know it can read our topic), all big-endian, strings as int16 length + UTF-8 (-1 = null),
// bytes as int32 length + raw bytes:
//
//   OffsetCommitKey (key version 1)        GroupMetadataKey (key version 2)
//     int16  version = 1                      int16  version = 2
//     string group                            string group
//     string topic
//     int32  partition
//
//   OffsetCommitValue (value version 3)    GroupMetadataValue (value version 3)
//     int16  version = 3                      int16   version = 3
//     int64  offset                           string  protocolType   ("" when none)
//     int32  leaderEpoch (-1 = none)          int32   generationId
//     string metadata                         string? protocolName
//     int64  commitTimestampMs                string? leaderId
//                                             int64   stateTimestampMs (when the group entered its state)
//                                             int32   member count, then per member:
//                                               string  memberId
//                                               string? groupInstanceId
//                                               string  clientId
//                                               string  clientHost
//                                               int32   rebalanceTimeoutMs
//                                               int32   sessionTimeoutMs
//                                               bytes   subscription (metadata of the chosen protocol)
//                                               bytes   assignment
//
// A null value is a tombstone: the offset was deleted/expired, or the group was deleted.
// Compaction keeps the last value per key. Records for one group all go to one partition
// (Java's String.hashCode of the group id, as Kafka), so replay order is commit order.
//
// Crash policy: a record is applied in memory only after the broker acknowledged it under the
// topic's flush policy (always), so what a client was told is on disk. Replay trusts the log:
// a record whose bytes do not parse is skipped with a warning, never guessed at.

const OFFSET_KEY_VERSION = 1;
const GROUP_KEY_VERSION = 2;
const OFFSET_VALUE_VERSION = 3;
const GROUP_VALUE_VERSION = 3;

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

export interface OffsetKey {
  kind: 'offset';
  group: string;
  topic: string;
  partition: number;
}
export interface GroupKey {
  kind: 'group';
  group: string;
}
export type RecordKey = OffsetKey | GroupKey;

export interface OffsetValue {
  offset: number;
  leaderEpoch: number;
  metadata: string;
  commitTimestampMs: number;
}

export interface StoredMember {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  rebalanceTimeoutMs: number;
  sessionTimeoutMs: number;
  subscription: Uint8Array;
  assignment: Uint8Array;
}

export interface GroupValue {
  protocolType: string;
  generationId: number;
  protocolName: string | null;
  leaderId: string | null;
  stateTimestampMs: number;
  members: StoredMember[];
}

class Writer {
  private buf: Uint8Array;
  private view: DataView;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  int16(v: number) {
    this.view.setInt16(this.pos, v);
    this.pos += 2;
  }
  int32(v: number) {
    this.view.setInt32(this.pos, v);
    this.pos += 4;
  }
  int64(v: number) {
    this.view.setBigInt64(this.pos, BigInt(v));
    this.pos += 8;
  }
  string(s: Uint8Array | null) {
    if (s === null) return this.int16(-1);
    this.int16(s.length);
    this.buf.set(s, this.pos);
    this.pos += s.length;
  }
  bytes(b: Uint8Array) {
    this.int32(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  done(): Uint8Array {
    if (this.pos !== this.buf.length) throw new Error(`record size mismatch: wrote ${this.pos} of ${this.buf.length}`);
    return this.buf;
  }
}

class Reader {
  private view: DataView;
  pos = 0;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number) {
    if (this.pos + n > this.buf.length) throw new Error(`truncated at byte ${this.pos} (need ${n})`);
  }
  int16(): number {
    this.need(2);
    const v = this.view.getInt16(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos);
    this.pos += 4;
    return v;
  }
  int64(): number {
    this.need(8);
    const v = this.view.getBigInt64(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error(`int64 ${v} is not a safe integer`);
    return Number(v);
  }
  nullableString(): string | null {
    const len = this.int16();
    if (len === -1) return null;
    if (len < 0) throw new Error(`negative string length ${len}`);
    this.need(len);
    const s = utf8d.decode(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }
  string(): string {
    const s = this.nullableString();
    if (s === null) throw new Error('null where a string is required');
    return s;
  }
  bytes(): Uint8Array {
    const len = this.int32();
    if (len < 0) throw new Error(`negative bytes length ${len}`);
    this.need(len);
    const b = this.buf.slice(this.pos, this.pos + len); // copied: the read buffer is transient
    this.pos += len;
    return b;
  }
  end() {
    if (this.pos !== this.buf.length) throw new Error(`${this.buf.length - this.pos} trailing bytes`);
  }
}

const strLen = (b: Uint8Array | null) => 2 + (b ? b.length : 0);

export function encodeOffsetKey(group: string, topic: string, partition: number): Uint8Array {
  const g = utf8.encode(group);
  const t = utf8.encode(topic);
  const w = new Writer(2 + strLen(g) + strLen(t) + 4);
  w.int16(OFFSET_KEY_VERSION);
  w.string(g);
  w.string(t);
  w.int32(partition);
  return w.done();
}

export function encodeGroupKey(group: string): Uint8Array {
  const g = utf8.encode(group);
  const w = new Writer(2 + strLen(g));
  w.int16(GROUP_KEY_VERSION);
  w.string(g);
  return w.done();
}

export function encodeOffsetValue(v: OffsetValue): Uint8Array {
  const m = utf8.encode(v.metadata);
  const w = new Writer(2 + 8 + 4 + strLen(m) + 8);
  w.int16(OFFSET_VALUE_VERSION);
  w.int64(v.offset);
  w.int32(v.leaderEpoch);
  w.string(m);
  w.int64(v.commitTimestampMs);
  return w.done();
}

export function encodeGroupValue(v: GroupValue): Uint8Array {
  const pt = utf8.encode(v.protocolType);
  const pn = v.protocolName === null ? null : utf8.encode(v.protocolName);
  const leader = v.leaderId === null ? null : utf8.encode(v.leaderId);
  const members = v.members.map((m) => ({
    id: utf8.encode(m.memberId),
    instance: m.groupInstanceId === null ? null : utf8.encode(m.groupInstanceId),
    client: utf8.encode(m.clientId),
    host: utf8.encode(m.clientHost),
    m,
  }));
  let size = 2 + strLen(pt) + 4 + strLen(pn) + strLen(leader) + 8 + 4;
  for (const e of members) {
    size += strLen(e.id) + strLen(e.instance) + strLen(e.client) + strLen(e.host) + 4 + 4 + 4 + e.m.subscription.length + 4 + e.m.assignment.length;
  }
  const w = new Writer(size);
  w.int16(GROUP_VALUE_VERSION);
  w.string(pt);
  w.int32(v.generationId);
  w.string(pn);
  w.string(leader);
  w.int64(v.stateTimestampMs);
  w.int32(members.length);
  for (const e of members) {
    w.string(e.id);
    w.string(e.instance);
    w.string(e.client);
    w.string(e.host);
    w.int32(e.m.rebalanceTimeoutMs);
    w.int32(e.m.sessionTimeoutMs);
    w.bytes(e.m.subscription);
    w.bytes(e.m.assignment);
  }
  return w.done();
}

/** Parses a key; throws on a layout we do not know (the caller skips the record). */
export function decodeKey(bytes: Uint8Array): RecordKey {
  const r = new Reader(bytes);
  const version = r.int16();
  if (version === 0 || version === 1) {
    const key: OffsetKey = { kind: 'offset', group: r.string(), topic: r.string(), partition: r.int32() };
    r.end();
    return key;
  }
  if (version === GROUP_KEY_VERSION) {
    const key: GroupKey = { kind: 'group', group: r.string() };
    r.end();
    return key;
  }
  throw new Error(`unknown key version ${version}`);
}

export function decodeOffsetValue(bytes: Uint8Array): OffsetValue {
  const r = new Reader(bytes);
  const version = r.int16();
  if (version !== OFFSET_VALUE_VERSION) throw new Error(`unsupported offset value version ${version}`);
  const v: OffsetValue = { offset: r.int64(), leaderEpoch: r.int32(), metadata: r.string(), commitTimestampMs: r.int64() };
  r.end();
  return v;
}

export function decodeGroupValue(bytes: Uint8Array): GroupValue {
  const r = new Reader(bytes);
  const version = r.int16();
  if (version !== GROUP_VALUE_VERSION) throw new Error(`unsupported group value version ${version}`);
  const protocolType = r.string();
  const generationId = r.int32();
  const protocolName = r.nullableString();
  const leaderId = r.nullableString();
  const stateTimestampMs = r.int64();
  const count = r.int32();
  if (count < 0 || count > 100_000) throw new Error(`bad member count ${count}`);
  const members: StoredMember[] = [];
  for (let i = 0; i < count; i++) {
    members.push({
      memberId: r.string(),
      groupInstanceId: r.nullableString(),
      clientId: r.string(),
      clientHost: r.string(),
      rebalanceTimeoutMs: r.int32(),
      sessionTimeoutMs: r.int32(),
      subscription: r.bytes(),
      assignment: r.bytes(),
    });
  }
  r.end();
  return { protocolType, generationId, protocolName, leaderId, stateTimestampMs, members };
}

/** Java's String.hashCode (UTF-16 code units), as Kafka uses to place a group in a partition. */
export function javaStringHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

/** The `__consumer_offsets` partition holding a group's records. */
export function partitionForGroup(group: string, partitions: number): number {
  const h = javaStringHash(group);
  // Kafka's Utils.abs: Integer.MIN_VALUE maps to 0 rather than staying negative.
  return (h === -2147483648 ? 0 : Math.abs(h)) % partitions;
}
