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
import type { MetadataStore } from './metadata/store.js';
import { ProducerIdsFile } from './metadata/producer-ids-file.js';

const MAX_PRODUCER_ID = Number.MAX_SAFE_INTEGER;

export interface ProducerIdsOptions {
  /** Ids reserved per durable write. */
  blockSize: number;
}

/** Where reserved blocks are recorded. */
export interface ProducerIdBlocks {
  /** Every id below this may have been handed out. */
  reservedUpTo(): number;
  /** Durably records that ids below `upTo` may be handed out. */
  reserve(upTo: number): Promise<void>;
}

/** Blocks recorded as ProducerIdsBlock records in a metadata store. */
export function metadataBlocks(store: MetadataStore): ProducerIdBlocks {
  return {
    reservedUpTo: () => store.image().producerIdsReservedUpTo,
    reserve: async (upTo) => void (await store.propose([{ type: 'producerIds', reservedUpTo: upTo }])),
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
  ) {
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
    if (typeof source !== 'string') return new ProducerIds(metadataBlocks(source), options.blockSize);
    const file = await ProducerIdsFile.open(source);
    return new ProducerIds({ reservedUpTo: () => file.reservedUpTo, reserve: (upTo) => file.write(upTo) }, options.blockSize);
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
   * Reserves the block after the current mark and takes it. The block starts at the mark read
   * just before the write, so ids another allocator reserved on the same store are never ours.
   */
  private async reserveBlock(): Promise<void> {
    const start = this.blocks.reservedUpTo();
    const upTo = start + this.blockSize;
    if (upTo > MAX_PRODUCER_ID) throw new Error('producer ids exhausted');
    await this.blocks.reserve(upTo);
    this.next = start;
    this.blockEnd = upTo;
  }
}
