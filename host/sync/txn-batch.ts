// The batches gathered for one transaction in transactions mode (uplink.transactionBatchesMax):
// at most `batchesMax` of them, their bytes held in the link's in-flight bound
// (uplink.inFlightBytesMax) from the moment each is added until the transaction ends.
//
// `fits` says whether the next batch can be added without waiting on the bound while this
// transaction holds bytes of it: if not, the caller commits first. So a partition never waits for
// bytes while holding some, and partitions gathering transactions at once cannot wait on each other
// forever (the bound's rule: an acquire with nothing held by the link always passes).
import type { ByteBound } from './flow.js';

export class TxnBatch<T> {
  private items: T[] = [];
  private held = 0;

  constructor(
    readonly batchesMax: number,
    private readonly bound: ByteBound,
  ) {}

  /** True when `bytes` more can be taken now without waiting while this transaction holds bytes. */
  fits(bytes: number): boolean {
    return this.held === 0 || this.bound.held + bytes <= this.bound.bytesMax;
  }

  async add(item: T, bytes: number, signal: AbortSignal): Promise<void> {
    await this.bound.acquire(bytes, signal);
    this.held += bytes;
    this.items.push(item);
  }

  empty(): boolean {
    return this.items.length === 0;
  }

  full(): boolean {
    return this.items.length >= this.batchesMax;
  }

  /** The gathered items, in order; the transaction is now empty (its bytes still held until `release`). */
  take(): T[] {
    const out = this.items;
    this.items = [];
    return out;
  }

  /** Gives the held bytes back to the bound. */
  release(): void {
    if (this.held > 0) this.bound.release(this.held);
    this.held = 0;
  }
}
