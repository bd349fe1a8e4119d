// The one generic reader/writer for Kafka message schemas (schema.ts).
//
// Wire grammar (https://kafka.apache.org/protocol#protocol_types), big-endian throughout:
//   int8/16/32/64, uint16/32, float64   fixed width
//   bool                                int8, 0 = false
//   uuid                                16 bytes
//   string     classic: int16 length (-1 = null) + UTF-8   compact: uvarint(length + 1) (0 = null) + UTF-8
//   bytes      classic: int32 length (-1 = null) + bytes   compact: uvarint(length + 1) (0 = null) + bytes
//   records    as bytes (RecordBatch v2 bytes, never decoded here)
//   array      classic: int32 count (-1 = null) + items    compact: uvarint(count + 1) (0 = null) + items
//   struct     its fields in order; in flexible versions followed by a tagged-field section
//   tagged fields: uvarint count, then per field uvarint tag, uvarint size, value (ascending tags)
//
// Reading never allocates from a length it has not checked against the bytes that remain: a
// string, bytes or array length past the end of the frame is a ProtocolError naming the field,
// and so is a negative length other than -1 where null is allowed. `bytes`/`records` are read as
// views into the frame (no copy). Writing produces a list of chunks: `records` values are
// appended as their own chunks (socket.cork + write each), so a fetch response never copies the
// stored batches.
import { inVersions, type Field, type ScalarType, type Schema } from './schema.js';

/** Malformed input: a length past the end, a negative count, an unparseable value. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

// ---------------------------------------------------------------------------------------------
// Compiled plans: which fields exist in one version, in order, and which are tagged.

interface Op {
  name: string;
  type: Field['type'];
  items?: ScalarType;
  sub?: Plan;
  nullable: boolean;
  def: unknown;
  tag: number;
}

interface Plan {
  flexible: boolean;
  regular: Op[];
  tagged: Op[]; // ascending tag order
  byTag: Map<number, Op>;
  /** Fields absent in this version, filled with defaults when reading. */
  absent: Op[];
}

const plans = new WeakMap<Schema, Map<number, Plan>>();

function defaultFor(field: Field, nullable: boolean): unknown {
  if (field.default !== undefined) {
    if (field.default === 'null') return null;
    return field.default;
  }
  switch (field.type) {
    case 'bool':
      return false;
    case 'string':
      return nullable ? null : '';
    case 'bytes':
    case 'records':
      return nullable ? null : new Uint8Array(0);
    case 'uuid':
      return ZERO_UUID;
    case 'array':
      return nullable ? null : [];
    case 'struct':
      return undefined;
    default:
      return 0;
  }
}

export const ZERO_UUID = new Uint8Array(16);

export function planFor(schema: Schema, version: number, flexible: boolean): Plan {
  let byVersion = plans.get(schema);
  if (!byVersion) plans.set(schema, (byVersion = new Map()));
  const key = version * 2 + (flexible ? 1 : 0);
  let plan = byVersion.get(key);
  if (plan) return plan;
  plan = { flexible, regular: [], tagged: [], byTag: new Map(), absent: [] };
  for (const field of schema) {
    const nullable = inVersions(field.nullableVersions, version);
    const op: Op = {
      name: field.name,
      type: field.type,
      items: field.items,
      nullable,
      def: defaultFor(field, nullable),
      tag: field.tag ?? -1,
      sub: field.fields ? planFor(field.fields, version, flexible) : undefined,
    };
    if (!inVersions(field.versions, version)) plan.absent.push(op);
    else if (flexible && inVersions(field.taggedVersions, version)) {
      plan.tagged.push(op);
      plan.byTag.set(op.tag, op);
    } else plan.regular.push(op);
  }
  plan.tagged.sort((a, b) => a.tag - b.tag);
  byVersion.set(key, plan);
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Reading

const TWO_32 = 2 ** 32;
const utf8 = new TextDecoder('utf-8', { fatal: false });

export class Reader {
  pos: number;
  end: number;
  constructor(
    readonly buf: Buffer,
    pos = 0,
    end = buf.length,
  ) {
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number, what: string): void {
    if (n > this.end - this.pos) throw new ProtocolError(`${what}: needs ${n} bytes but only ${this.end - this.pos} remain`);
  }

  int8(what = 'int8'): number {
    this.need(1, what);
    return this.buf.readInt8(this.pos++);
  }
  int16(what = 'int16'): number {
    this.need(2, what);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  uint16(what = 'uint16'): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(what = 'int32'): number {
    this.need(4, what);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  uint32(what = 'uint32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  int64(what = 'int64'): number {
    this.need(8, what);
    const hi = this.buf.readInt32BE(this.pos);
    const lo = this.buf.readUInt32BE(this.pos + 4);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }
  float64(what = 'float64'): number {
    this.need(8, what);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }
  /** Unsigned varint of at most 32 bits (lengths, counts, tags). */
  uvarint(what = 'uvarint'): number {
    let value = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      this.need(1, what);
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (value > 0xffffffff) throw new ProtocolError(`${what}: varint overflows 32 bits`);
        return value;
      }
      shift += 7;
    }
    throw new ProtocolError(`${what}: varint longer than 5 bytes`);
  }

  /** Length of a string/bytes/array; -1 for null. */
  private length(flexible: boolean, wide: boolean, nullable: boolean, what: string): number {
    let n: number;
    if (flexible) n = this.uvarint(what) - 1;
    else n = wide ? this.int32(what) : this.int16(what);
    if (n < -1 || (n === -1 && !nullable)) throw new ProtocolError(`${what}: invalid length ${n}${n === -1 ? ' (null not allowed)' : ''}`);
    return n;
  }

  string(flexible: boolean, nullable: boolean, what = 'string'): string | null {
    const n = this.length(flexible, false, nullable, what);
    if (n < 0) return null;
    this.need(n, what);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  bytes(flexible: boolean, nullable: boolean, what = 'bytes'): Buffer | null {
    const n = this.length(flexible, true, nullable, what);
    if (n < 0) return null;
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** Array element count; -1 for null. Bounded by the bytes left (every element takes ≥ 1 byte). */
  count(flexible: boolean, nullable: boolean, what: string): number {
    const n = this.length(flexible, true, nullable, what);
    if (n > this.end - this.pos) throw new ProtocolError(`${what}: array count ${n} exceeds the ${this.end - this.pos} bytes left`);
    return n;
  }

  uuid(what = 'uuid'): Uint8Array {
    this.need(16, what);
    const b = this.buf.subarray(this.pos, this.pos + 16);
    this.pos += 16;
    return b;
  }

  skip(n: number, what: string): void {
    this.need(n, what);
    this.pos += n;
  }
}

function readScalar(r: Reader, type: ScalarType, flexible: boolean, nullable: boolean, what: string): unknown {
  switch (type) {
    case 'bool':
      return r.int8(what) !== 0;
    case 'int8':
      return r.int8(what);
    case 'int16':
      return r.int16(what);
    case 'uint16':
      return r.uint16(what);
    case 'int32':
      return r.int32(what);
    case 'uint32':
      return r.uint32(what);
    case 'int64':
      return r.int64(what);
    case 'float64':
      return r.float64(what);
    case 'uuid':
      return r.uuid(what);
    case 'string':
      return r.string(flexible, nullable, what);
    case 'bytes':
    case 'records':
      return r.bytes(flexible, nullable, what);
  }
}

function readOp(r: Reader, op: Op, plan: Plan, path: string): unknown {
  const what = path ? `${path}.${op.name}` : op.name;
  if (op.type === 'array') {
    const n = r.count(plan.flexible, op.nullable, what);
    if (n < 0) return null;
    const out = new Array(n);
    for (let i = 0; i < n; i++) {
      out[i] = op.sub ? readPlan(r, op.sub, `${what}[${i}]`) : readScalar(r, op.items!, plan.flexible, false, `${what}[${i}]`);
    }
    return out;
  }
  if (op.type === 'struct') {
    if (op.nullable) {
      const marker = r.int8(what);
      if (marker < 0) return null;
    }
    return readPlan(r, op.sub!, what);
  }
  return readScalar(r, op.type, plan.flexible, op.nullable, what);
}

function readPlan(r: Reader, plan: Plan, path: string): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  for (const op of plan.absent) obj[op.name] = op.def;
  for (const op of plan.tagged) obj[op.name] = op.def;
  for (const op of plan.regular) obj[op.name] = readOp(r, op, plan, path);
  if (plan.flexible) readTaggedFields(r, plan, obj, path);
  return obj;
}

/** Reads a tagged-field section: known tags are decoded, unknown ones skipped. */
export function readTaggedFields(r: Reader, plan: Plan | undefined, obj: Record<string, unknown> | undefined, path: string): void {
  const what = path ? `${path}.<tagged fields>` : '<tagged fields>';
  const n = r.uvarint(what);
  if (n > r.remaining) throw new ProtocolError(`${what}: count ${n} exceeds the bytes left`);
  let lastTag = -1;
  for (let i = 0; i < n; i++) {
    const tag = r.uvarint(what);
    if (tag <= lastTag) throw new ProtocolError(`${what}: tags not in ascending order`);
    lastTag = tag;
    const size = r.uvarint(what);
    r.need(size, what);
    const op = plan?.byTag.get(tag);
    if (op && obj) {
      const sub = new Reader(r.buf, r.pos, r.pos + size);
      obj[op.name] = readOp(sub, op, plan!, path);
    }
    r.pos += size;
  }
}

/** Decodes one message body of `schema` at `version`. */
export function decode<T = any>(schema: Schema, r: Reader, version: number, flexible: boolean): T {
  return readPlan(r, planFor(schema, version, flexible), '') as T;
}

// ---------------------------------------------------------------------------------------------
// Writing

const INITIAL_BYTES = 512;

export class Writer {
  private buf: Buffer;
  private start = 0; // first byte of `buf` not yet handed to `chunks`
  pos = 0;
  private readonly chunks: Uint8Array[] = [];
  private flushedBytes = 0;
  readonly head: Buffer;

  constructor(initialBytes = INITIAL_BYTES) {
    this.buf = Buffer.allocUnsafe(initialBytes);
    this.head = this.buf;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.flushedBytes + (this.pos - this.start);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos > this.start) {
      this.chunks.push(this.buf.subarray(this.start, this.pos));
      this.flushedBytes += this.pos - this.start;
    }
    this.buf = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2, INITIAL_BYTES));
    this.start = this.pos = 0;
  }

  int8(v: number): void {
    this.ensure(1);
    this.buf.writeInt8(v, this.pos++);
  }
  int16(v: number): void {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
  }
  uint16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }
  int32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32BE(v | 0, this.pos);
    this.pos += 4;
  }
  uint32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
  }
  int64(v: number | bigint): void {
    this.ensure(8);
    if (typeof v === 'bigint') this.buf.writeBigInt64BE(v, this.pos);
    else {
      const hi = Math.floor(v / TWO_32);
      this.buf.writeInt32BE(hi, this.pos);
      this.buf.writeUInt32BE(v - hi * TWO_32, this.pos + 4);
    }
    this.pos += 8;
  }
  float64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
  }
  uvarint(v: number): void {
    this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  /** Appends `bytes` as its own chunk (no copy) when large, else copies it in. */
  chunk(bytes: Uint8Array): void {
    if (bytes.length < 1024) return this.raw(bytes);
    if (this.pos > this.start) {
      this.chunks.push(this.buf.subarray(this.start, this.pos));
      this.flushedBytes += this.pos - this.start;
      this.start = this.pos;
    }
    this.chunks.push(bytes);
    this.flushedBytes += bytes.length;
  }

  length16or32(n: number, flexible: boolean, wide: boolean): void {
    if (flexible) this.uvarint(n + 1);
    else if (wide) this.int32(n);
    else this.int16(n);
  }

  string(s: string | null, flexible: boolean): void {
    if (s === null) return this.length16or32(-1, flexible, false);
    const n = Buffer.byteLength(s, 'utf8');
    if (!flexible && n > 0x7fff) throw new Error(`string of ${n} bytes does not fit int16 length`);
    this.length16or32(n, flexible, false);
    this.ensure(n);
    this.buf.write(s, this.pos, n, 'utf8');
    this.pos += n;
  }

  bytes(b: Uint8Array | Uint8Array[] | null, flexible: boolean): void {
    if (b === null) return this.length16or32(-1, flexible, true);
    if (Array.isArray(b)) {
      let n = 0;
      for (const part of b) n += part.length;
      this.length16or32(n, flexible, true);
      for (const part of b) this.chunk(part);
      return;
    }
    this.length16or32(b.length, flexible, true);
    this.chunk(b);
  }

  /** The output as chunks; the first chunk is `head` from offset 0 (so a size prefix can be patched). */
  finish(): Uint8Array[] {
    if (this.pos > this.start) {
      this.chunks.push(this.buf.subarray(this.start, this.pos));
      this.flushedBytes += this.pos - this.start;
      this.start = this.pos;
    }
    return this.chunks;
  }
}

function writeScalar(w: Writer, type: ScalarType, value: unknown, flexible: boolean): void {
  switch (type) {
    case 'bool':
      return w.int8(value ? 1 : 0);
    case 'int8':
      return w.int8(value as number);
    case 'int16':
      return w.int16(value as number);
    case 'uint16':
      return w.uint16(value as number);
    case 'int32':
      return w.int32(value as number);
    case 'uint32':
      return w.uint32(value as number);
    case 'int64':
      return w.int64(value as number);
    case 'float64':
      return w.float64(value as number);
    case 'uuid':
      return w.raw((value as Uint8Array) ?? ZERO_UUID);
    case 'string':
      return w.string(value as string | null, flexible);
    case 'bytes':
    case 'records':
      return w.bytes(value as Uint8Array | null, flexible);
  }
}

function writeOp(w: Writer, op: Op, value: unknown, plan: Plan): void {
  if (value === undefined) value = op.def;
  if (value === null && !op.nullable) value = op.type === 'string' ? '' : op.type === 'array' ? [] : op.def;
  if (op.type === 'array') {
    const items = value as unknown[] | null;
    if (items === null) return w.length16or32(-1, plan.flexible, true);
    w.length16or32(items.length, plan.flexible, true);
    for (const item of items) {
      if (op.sub) writePlan(w, op.sub, item as Record<string, unknown>);
      else writeScalar(w, op.items!, item, plan.flexible);
    }
    return;
  }
  if (op.type === 'struct') {
    if (op.nullable) {
      if (value === null || value === undefined) return w.int8(-1);
      w.int8(1);
    }
    return writePlan(w, op.sub!, (value ?? {}) as Record<string, unknown>);
  }
  writeScalar(w, op.type, value, plan.flexible);
}

function isDefault(op: Op, value: unknown): boolean {
  if (value === undefined) return true;
  if (op.type === 'array') return Array.isArray(value) ? value.length === 0 && op.def !== null : value === op.def;
  if (op.type === 'uuid') return value === ZERO_UUID;
  return value === op.def;
}

function writePlan(w: Writer, plan: Plan, obj: Record<string, unknown>): void {
  for (const op of plan.regular) writeOp(w, op, obj[op.name], plan);
  if (!plan.flexible) return;
  const present = plan.tagged.filter((op) => !isDefault(op, obj[op.name]));
  w.uvarint(present.length);
  for (const op of present) {
    const sub = new Writer(64);
    writeOp(sub, op, obj[op.name], plan);
    const parts = sub.finish();
    w.uvarint(op.tag);
    w.uvarint(parts.reduce((n, p) => n + p.length, 0));
    for (const p of parts) w.raw(p);
  }
}

/** Encodes one message body of `schema` at `version` into `w`. */
export function encode(schema: Schema, value: object, version: number, flexible: boolean, w: Writer): void {
  writePlan(w, planFor(schema, version, flexible), value as Record<string, unknown>);
}

/** Convenience for tests and small messages: encode into one Buffer. */
export function encodeToBuffer(schema: Schema, value: object, version: number, flexible: boolean): Buffer {
  const w = new Writer();
  encode(schema, value, version, flexible, w);
  return Buffer.concat(w.finish());
}
