// The seam between deciding a metadata change and making it true. The broker decides (checks a
// request against the image, host/broker/topic-admin.ts) and proposes records; the store makes
// them durable, applies them to its image (records.ts) and tells its listeners. On one node the
// store is a file (file-store.ts); in a cluster it is a Raft log among the voters, where a
// proposal resolves once a quorum has it and every node's image moves when the entry commits —
// so `propose` is asynchronous and the image may also move without a local proposal (listeners).
//
// Concurrency: proposals are applied in the order `propose` was called; a proposal that fails
// (durable write refused, or a record that does not fit the image) changes nothing and rejects.
import type { MetadataImage, MetadataRecord } from './records.js';

/** A topic whose removal is applied but whose partition directories on this node may remain. */
export interface PendingDeletion {
  name: string;
  topicId: string;
  partitions: number;
}

export type MetadataListener = (image: MetadataImage, records: readonly MetadataRecord[]) => void;

export interface MetadataStore {
  /** The image as of the last applied proposal. Read-only; a new object after each change. */
  image(): MetadataImage;
  /** Makes `records` durable and applies them, all or none; resolves with the image they produced. */
  propose(records: readonly MetadataRecord[]): Promise<MetadataImage>;
  /** Called after each applied proposal (local or, in a cluster, from the leader); returns the unsubscribe. */
  onChange(listener: MetadataListener): () => void;

  // --- node-local bookkeeping (not metadata: each node deletes its own files) --------------
  /** Removed topics whose directories this node has not finished deleting (a crash interrupted it). */
  pendingDeletions(): PendingDeletion[];
  /** This node has deleted the directories of `name` (every pending entry with that name, or only `topicId`'s). */
  deletionDone(name: string, topicId?: string): Promise<void>;
}
