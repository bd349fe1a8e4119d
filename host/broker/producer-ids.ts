// Producer ids for idempotent producers (InitProducerId), never reused across restarts.
//
// Ids are reserved in blocks written ahead: before handing out id N the allocator durably
// records a ProducerIdsBlock ending at N + blockSize (host/broker/metadata/records.ts), so a
// crash at any point leaves a reservation covering every id already given to a client. After a
// restart allocation resumes at the reserved mark; the unused rest of the last block is skipped
// (ids are plentiful: 2^53). Where the mark lives is the block source's business: the metadata
// store (the node's path: a file on one node, the Raft log in a cluster) or, for a listener
// started on its own, the same file directly (host/broker/metadata/producer-ids-file.ts, which
// holds the byte format and crash policy).
//
// In a cluster every node allocates against one mark in the Raft log, and two nodes can read
// the same mark at once. A block is therefore a compare-and-set (records.ts, ProducerIdsBlock
// with `start`): it applies only if the mark is still its start, and the image remembers the
// last block taken. The allocator hands out ids of a block only after its proposal is applied
// and the image's last block is its own (start, end, owner); otherwise it re-reads the mark and
// tries again, at most `reserveAttempts` times. The image is read as of our entry (a store
// listener); where that is not seen, a block that was ours but already followed by another is
// given up (ids are plentiful): uniqueness never depends on timing.
// One allocator per owner id: two allocators with one owner could both claim one block.
import type { MetadataStore } from './metadata/store.js';
import type { ProducerIdsBlockImage } from './metadata/records.js';
import { ProducerIdsFile } from './metadata/producer-ids-file.js';
import { BrokerError } from '../errors/broker-error.js';

const MAX_PRODUCER_ID = Number.MAX_SAFE_INTEGER;

export interface ProducerIdsOptions {
  /** Ids reserved per durable write. */
  blockSize: number;
  /** Compare-and-set attempts per block before InitProducerId fails (contention between nodes). */
  reserveAttempts?: number;
}

/** Enough for a handful of nodes reserving at the same moment; past it something is wrong, and the client retries. */
export const DEFAULT_RESERVE_ATTEMPTS = 16;

/** Where reserved blocks are recorded. */
export interface ProducerIdBlocks {
  /** Every id below this may have been handed out. */
  reservedUpTo(): number;
  /**
   * Durably records that ids in [start, upTo) may be handed out by this allocator; resolves true
   * when the block is ours, false when another took ids from `start` first (nothing was reserved
   * for us: read the mark again).
   */
  reserve(start: number, upTo: number): Promise<boolean>;
}

/**
 * Blocks recorded as compare-and-set ProducerIdsBlock records in a metadata store, owned by
 * `owner` (default: this node's id).
 */
export function metadataBlocks(store: MetadataStore, owner = store.image().node.nodeId): ProducerIdBlocks {
  const ours = (last: ProducerIdsBlockImage | undefined, start: number, upTo: number) => last !== undefined && last.start === start && last.upTo === upTo && last.nodeId === owner;
  return {
    reservedUpTo: () => store.image().producerIdsReservedUpTo,
    reserve: async (start, upTo) => {
      // The image right after our entry tells for sure (a listener sees each applied entry); the
      // image propose returns may already hold a later block, so it can only say "ours" when the
      // last block still is, else the block is given up (never handed out on a guess).
      let verdict: boolean | undefined;
      const off = store.onChange((image, records) => {
        if (verdict === undefined && records.some((r) => r.type === 'producerIds' && r.start === start && r.reservedUpTo === upTo && r.nodeId === owner)) {
          verdict = ours(image.producerIdsLastBlock, start, upTo);
        }
      });
      try {
        const image = await store.propose([{ type: 'producerIds', reservedUpTo: upTo, start, nodeId: owner }]);
        return verdict ?? ours(image.producerIdsLastBlock, start, upTo);
      } finally {
        off();
      }
    },
  };
}

export class ProducerIds {
  /** The block this allocator owns: ids in [next, blockEnd) are reserved and unused. */
  private next: number;
  private blockEnd: number;
  private reserving: Promise<void> | null = null;

  constructor(
    private readonly blocks: ProducerIdBlocks,
    private readonly blockSize: number,
    private readonly reserveAttempts = DEFAULT_RESERVE_ATTEMPTS,
  ) {
    if (!Number.isInteger(reserveAttempts) || reserveAttempts < 1) throw new Error(`producer id reserveAttempts must be a positive integer`);
    if (!Number.isInteger(blockSize) || blockSize <= 0) throw new Error(`producer id blockSize must be a positive integer`);
    // Nothing owned yet: ids below the mark may have been handed out before a restart.
    this.next = this.blockEnd = blocks.reservedUpTo();
  }

  /**
   * An allocator over a metadata store, or over the producer-id file at a path (a Kafka
   * listener started without a node around it).
   */
  static async open(source: string | MetadataStore, options: ProducerIdsOptions): Promise<ProducerIds> {
    if (!Number.isInteger(options.blockSize) || options.blockSize <= 0) throw new Error(`producer id blockSize must be a positive integer`);
    const attempts = options.reserveAttempts ?? DEFAULT_RESERVE_ATTEMPTS;
    if (typeof source !== 'string') return new ProducerIds(metadataBlocks(source), options.blockSize, attempts);
    // The file has one writer (this listener), so every block written is ours.
    const file = await ProducerIdsFile.open(source);
    return new ProducerIds({ reservedUpTo: () => file.reservedUpTo, reserve: async (_start, upTo) => (await file.write(upTo), true) }, options.blockSize, attempts);
  }

  /** Next never-used producer id (durably reserved before it is returned). */
  async allocate(): Promise<number> {
    while (this.next >= this.blockEnd) {
      this.reserving ??= this.reserveBlock().finally(() => (this.reserving = null));
      await this.reserving;
    }
    // No await between the check above and the increment: two callers never get one id.
    return this.next++;
  }

  /**
   * Reserves the block after the current mark and takes it once the store says it is ours; a
   * block another allocator took first (same mark read) is retried from the new mark.
   */
  private async reserveBlock(): Promise<void> {
    for (let attempt = 0; attempt < this.reserveAttempts; attempt++) {
      const start = this.blocks.reservedUpTo();
      const upTo = start + this.blockSize;
      if (upTo > MAX_PRODUCER_ID) throw new Error('producer ids exhausted');
      if (!(await this.blocks.reserve(start, upTo))) continue;
      this.next = start;
      this.blockEnd = upTo;
      return;
    }
    // Retriable: the other nodes' blocks are taken, the next attempt finds a quieter moment.
    throw new BrokerError('REQUEST_TIMED_OUT', `producer ids: no block reserved after ${this.reserveAttempts} attempts (other nodes took every block this node proposed)`);
  }
}
