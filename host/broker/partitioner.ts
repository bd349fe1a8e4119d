// The one partitioner: whichever door a keyed record comes through (Kafka, MQTT, WebSocket,
// HTTP), the same key lands in the same partition, and it is the partition a Kafka client's
// default partitioner would choose (Java's DefaultPartitioner / BuiltInPartitioner, kafkajs's
// DefaultPartitioner): murmur2 of the key bytes with seed 0x9747b28c, made positive by
// `& 0x7fffffff` (not Math.abs), modulo the partition count.
//
// Unkeyed records are sticky (KIP-480): they all go to one partition until that partition's
// batch fills (`stickyBatchBytes`) or a new produce call starts, then the sticky partition
// moves to another one, so unkeyed load spreads without making many tiny batches.

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

/**
 * Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) over 32-bit signed ints:
 * Math.imul is Java's int multiply, `>>>` Java's unsigned shift, `| 0` keeps values int32.
 */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i << 2;
    let k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  // The last 1-3 bytes (Java's switch with fall-through, written out).
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2] << 16;
  if (rest >= 2) h ^= data[tail + 1] << 8;
  if (rest >= 1) {
    h ^= data[tail];
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's Utils.toPositive: clears the sign bit (so -2^31 maps to 0, not to an overflow). */
export function toPositive(n: number): number {
  return n & 0x7fffffff;
}

/** Partition for a keyed record: Kafka's default partitioner. */
export function partitionForKeyBytes(key: Uint8Array, partitionCount: number): number {
  if (!Number.isInteger(partitionCount) || partitionCount < 1) throw new Error(`partition count must be ≥ 1, got ${partitionCount}`);
  return toPositive(murmur2(key)) % partitionCount;
}

/**
 * Sticky choice for unkeyed records of one topic. `beginCall()` marks the start of a produce
 * call: its first unkeyed record starts a new batch on a different partition (when there is
 * more than one). `pick(bytes)` returns the current sticky partition, moving on first when
 * adding `bytes` would pass `stickyBatchBytes` (the batch is full).
 */
export class StickyPartitioner {
  private current = -1;
  private bytesInBatch = 0;
  private switchPending = true;

  constructor(
    private readonly stickyBatchBytes: number,
    private readonly random: () => number = Math.random,
  ) {}

  beginCall(): void {
    this.switchPending = true;
  }

  /** The sticky partition for a record of about `recordBytes`. */
  pick(partitionCount: number, recordBytes: number): number {
    const full = this.bytesInBatch > 0 && this.bytesInBatch + recordBytes > this.stickyBatchBytes;
    if (this.switchPending || full || this.current < 0 || this.current >= partitionCount) this.move(partitionCount);
    this.bytesInBatch += recordBytes;
    return this.current;
  }

  private move(partitionCount: number): void {
    if (partitionCount <= 1) this.current = 0;
    else if (this.current < 0 || this.current >= partitionCount) this.current = Math.floor(this.random() * partitionCount);
    else {
      // A partition other than the current one, uniformly (as Kafka's sticky partitioner).
      const step = 1 + Math.floor(this.random() * (partitionCount - 1));
      this.current = (this.current + step) % partitionCount;
    }
    this.bytesInBatch = 0;
    this.switchPending = false;
  }
}
