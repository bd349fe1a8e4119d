// Idempotent-producer state of one partition: per producer id, its epoch and the metadata of
// its last five batches (first/last sequence, first/last offset, max timestamp), as Kafka's
// ProducerStateManager keeps (KIP-98). Five because a producer has at most five requests in
// flight (max.in.flight.requests.per.connection <= 5 with idempotence).
//
// Rules applied to an appended batch with producerId >= 0 (Kafka 2.5+, KIP-360):
//   - epoch older than the producer's current epoch        → INVALID_PRODUCER_EPOCH
//   - same epoch, (firstSeq, lastSeq) equal to one of the last five batches
//                                                          → duplicate: the original offsets
//   - epoch newer than the current one: firstSeq must be 0  → else OUT_OF_ORDER_SEQUENCE_NUMBER
//   - same epoch: firstSeq must be lastSeq + 1 (wrapping at 2^31−1 → 0)
//                                                          → else OUT_OF_ORDER_SEQUENCE_NUMBER
//   - unknown producer id: any sequence is accepted. Kafka returned UNKNOWN_PRODUCER_ID here
//     before KIP-360; since 2.5 a broker accepts it, because the producer's state may have been
//     removed by retention or expiry and the client cannot tell. We follow the current rule.
//
// Persistence (crash policy): a snapshot file `<offset>.snapshot` holds the state of every
// producer as of log offset `offset` (only batches below it). It is written at each segment
// roll and at close; on open the newest snapshot at or below the log end is loaded and the
// batches from its offset to the log end are replayed. A snapshot is written to `.tmp`,
// fsynced and renamed, and carries a CRC-32C: a damaged snapshot is ignored (an older one, or
// a replay from the log start, takes its place).
//
// Snapshot layout (big-endian):
//   magic "TRPS" | version u16 (1) | crc32c u32 (of everything after it) | producerCount u32
//   per producer: producerId i64 | epoch i16 | lastAppendMs i64 | batchCount u8
//     per batch:  firstSeq i32 | lastSeq i32 | firstOffset i64 | lastOffset i64 | maxTimestampMs i64
//
// Bounds: at most `maxProducers` ids are tracked; past it the id appended to least recently
// is forgotten (it then counts as unknown: its next batch is accepted, as after expiry).
// Ids idle longer than `producerIdExpirationMs` are dropped when a snapshot is taken.
import { BrokerError } from '../errors/index.js';
import { crc32c } from '../core/crc32c.js';
import type { BatchHeader } from './batch.js';

export const PRODUCER_BATCHES_KEPT = 5;
const SNAPSHOT_MAGIC = 0x54525053; // "TRPS"
const SNAPSHOT_VERSION = 1;
const MAX_SEQUENCE = 2147483647;

export interface BatchMetadata {
  firstSeq: number;
  lastSeq: number;
  firstOffset: number;
  lastOffset: number;
  maxTimestampMs: number;
}

export interface ProducerEntry {
  producerId: number;
  epoch: number;
  lastAppendMs: number;
  /** Oldest first; every batch of one entry has the entry's epoch. */
  batches: BatchMetadata[];
}

export type SequenceCheck = { kind: 'none' } | { kind: 'ok' } | { kind: 'duplicate'; batch: BatchMetadata };

export const lastSeqOf = (h: BatchHeader): number => {
  const s = h.baseSequence + h.lastOffsetDelta;
  return s > MAX_SEQUENCE ? s - MAX_SEQUENCE - 1 : s;
};

export class ProducerStateTable {
  private readonly producers = new Map<number, ProducerEntry>();

  constructor(private maxProducers: number) {}

  get size(): number {
    return this.producers.size;
  }

  get(producerId: number): ProducerEntry | undefined {
    return this.producers.get(producerId);
  }

  entries(): IterableIterator<[number, ProducerEntry]> {
    return this.producers.entries();
  }

  setMaxProducers(n: number): void {
    this.maxProducers = n;
  }

  /** Checks a batch about to be appended. Throws the Kafka error for a bad epoch or sequence. */
  check(h: BatchHeader, pending: Map<number, { epoch: number; lastSeq: number }> | null): SequenceCheck {
    if (h.producerId < 0) return { kind: 'none' };
    const entry = this.producers.get(h.producerId);
    // Batches earlier in the same append call count as if already applied.
    const earlier = pending?.get(h.producerId);
    const epoch = earlier?.epoch ?? entry?.epoch;
    if (epoch === undefined) return { kind: 'ok' };
    if (h.producerEpoch < epoch) {
      throw new BrokerError(
        'INVALID_PRODUCER_EPOCH',
        `producer ${h.producerId}: epoch ${h.producerEpoch} is older than the current epoch ${epoch}`,
      );
    }
    if (!earlier && entry && h.producerEpoch === entry.epoch) {
      const lastSeq = lastSeqOf(h);
      for (const b of entry.batches) {
        if (b.firstSeq === h.baseSequence && b.lastSeq === lastSeq) return { kind: 'duplicate', batch: b };
      }
    }
    if (h.producerEpoch > epoch) {
      if (h.baseSequence !== 0) {
        throw new BrokerError(
          'OUT_OF_ORDER_SEQUENCE_NUMBER',
          `producer ${h.producerId}: first batch of new epoch ${h.producerEpoch} has sequence ${h.baseSequence}, expected 0`,
        );
      }
      return { kind: 'ok' };
    }
    const currentLast = earlier?.lastSeq ?? (entry!.batches.length ? entry!.batches[entry!.batches.length - 1].lastSeq : -1);
    if (currentLast === -1) return { kind: 'ok' }; // no batch known for this epoch (removed by retention): accept
    const expected = currentLast === MAX_SEQUENCE ? 0 : currentLast + 1;
    if (h.baseSequence !== expected) {
      throw new BrokerError(
        'OUT_OF_ORDER_SEQUENCE_NUMBER',
        `producer ${h.producerId} epoch ${h.producerEpoch}: sequence ${h.baseSequence}, expected ${expected}`,
      );
    }
    return { kind: 'ok' };
  }

  /** Records an appended (or replayed) batch whose baseOffset is final. */
  apply(h: BatchHeader, nowMs: number): void {
    if (h.producerId < 0) return;
    let entry = this.producers.get(h.producerId);
    if (entry && h.producerEpoch !== entry.epoch) {
      entry.epoch = h.producerEpoch;
      entry.batches = [];
    }
    if (!entry) {
      if (this.producers.size >= this.maxProducers) this.evictOldest();
      entry = { producerId: h.producerId, epoch: h.producerEpoch, lastAppendMs: nowMs, batches: [] };
      this.producers.set(h.producerId, entry);
    } else {
      // Map order = least recently appended first (for eviction).
      this.producers.delete(h.producerId);
      this.producers.set(h.producerId, entry);
    }
    entry.lastAppendMs = nowMs;
    if (h.recordCount === 0 && h.baseSequence < 0) return;
    entry.batches.push({
      firstSeq: h.baseSequence,
      lastSeq: lastSeqOf(h),
      firstOffset: h.baseOffset,
      lastOffset: h.baseOffset + h.lastOffsetDelta,
      maxTimestampMs: h.maxTimestamp,
    });
    if (entry.batches.length > PRODUCER_BATCHES_KEPT) entry.batches.shift();
  }

  private evictOldest(): void {
    const first = this.producers.keys().next();
    if (!first.done) this.producers.delete(first.value);
  }

  clear(): void {
    this.producers.clear();
  }

  /** Drops producers idle since before `horizonMs`. */
  expire(horizonMs: number): void {
    for (const [id, e] of this.producers) if (e.lastAppendMs < horizonMs) this.producers.delete(id);
  }

  /** Serialises the state as of `offset`: batches at or past it are left out (they are replayed from the log). */
  snapshot(offset: number): Buffer {
    const kept: ProducerEntry[] = [];
    for (const e of this.producers.values()) {
      const batches = e.batches.filter((b) => b.lastOffset < offset);
      if (batches.length === 0 && e.batches.length > 0) continue; // all of it is past `offset`: replay rebuilds it
      kept.push({ ...e, batches });
    }
    let size = 4 + 2 + 4 + 4;
    for (const e of kept) size += 8 + 2 + 8 + 1 + e.batches.length * 32;
    const out = Buffer.alloc(size);
    out.writeUInt32BE(SNAPSHOT_MAGIC, 0);
    out.writeUInt16BE(SNAPSHOT_VERSION, 4);
    out.writeUInt32BE(kept.length, 10);
    let at = 14;
    for (const e of kept) {
      out.writeBigInt64BE(BigInt(e.producerId), at);
      out.writeInt16BE(e.epoch, at + 8);
      out.writeBigInt64BE(BigInt(e.lastAppendMs), at + 10);
      out.writeUInt8(e.batches.length, at + 18);
      at += 19;
      for (const b of e.batches) {
        out.writeInt32BE(b.firstSeq, at);
        out.writeInt32BE(b.lastSeq, at + 4);
        out.writeBigInt64BE(BigInt(b.firstOffset), at + 8);
        out.writeBigInt64BE(BigInt(b.lastOffset), at + 16);
        out.writeBigInt64BE(BigInt(b.maxTimestampMs), at + 24);
        at += 32;
      }
    }
    out.writeUInt32BE(crc32c(out.subarray(10)), 6);
    return out;
  }

  /** Replaces the state with a snapshot; returns false (state cleared) when the bytes are damaged. */
  load(bytes: Buffer): boolean {
    this.producers.clear();
    try {
      if (bytes.byteLength < 14 || bytes.readUInt32BE(0) !== SNAPSHOT_MAGIC || bytes.readUInt16BE(4) !== SNAPSHOT_VERSION) return false;
      if (crc32c(bytes.subarray(10)) !== bytes.readUInt32BE(6)) return false;
      const n = bytes.readUInt32BE(10);
      let at = 14;
      for (let i = 0; i < n; i++) {
        const producerId = Number(bytes.readBigInt64BE(at));
        const epoch = bytes.readInt16BE(at + 8);
        const lastAppendMs = Number(bytes.readBigInt64BE(at + 10));
        const count = bytes.readUInt8(at + 18);
        at += 19;
        const batches: BatchMetadata[] = [];
        for (let j = 0; j < count; j++) {
          batches.push({
            firstSeq: bytes.readInt32BE(at),
            lastSeq: bytes.readInt32BE(at + 4),
            firstOffset: Number(bytes.readBigInt64BE(at + 8)),
            lastOffset: Number(bytes.readBigInt64BE(at + 16)),
            maxTimestampMs: Number(bytes.readBigInt64BE(at + 24)),
          });
          at += 32;
        }
        this.producers.set(producerId, { producerId, epoch, lastAppendMs, batches });
      }
      return true;
    } catch {
      this.producers.clear();
      return false;
    }
  }
}
