// The MetadataStore (host/broker/metadata/store.ts) of a cluster: records are proposed to the
// metadata quorum (quorum.ts), and every node applies each committed entry with the same pure
// applyRecords, so every node's image moves the same way and its listeners fire (the broker
// opens and closes partitions from them). propose() on a follower goes through the controller
// (the Raft leader); with no controller known it fails with NOT_CONTROLLER, retriable.
//
// Entry format (raft entry data), versioned JSON so a record type added elsewhere needs no
// codec change here:   {"v":1,"records":[MetadataRecord, ...]}
// Snapshot format (raft snapshot data):  {"v":1,"topics":[TopicImage, ...],"producerIdsReservedUpTo":N,
//                                          "security":[acl and scramCredential records],
//                                          "brokers":[BrokerImage, ...]}   (brokers: absent = none)
// An entry or snapshot of another version stops this node (it cannot apply what a newer node
// wrote; applying it wrongly would make its image differ from the others'). A record that does
// not fit the image (a topic created twice by two nodes at once) changes nothing on every node,
// and the proposer gets the error (TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION, ...).
//
// Node identity is not replicated: each node's image carries its own id and the cluster id from
// its configuration. The raft log and its snapshots live in `<dataDir>/cluster/raft.log`
// (raft-storage.ts), so a restart restores the last snapshot and replays only the entries after it.
//
// Node-local bookkeeping: `<dataDir>/cluster/pending-deletes.json`, {"format":1,"pending":[{name,
// topicId,partitions}]}: topics removed by an applied entry whose directories this node has not
// deleted yet. Written atomically (tmp + fsync + rename + dir fsync, host/log/io.ts) before the
// removal is handed to listeners; a crash before that write replays the entry (it is after the
// last snapshot, which is taken only after the write), so a removal is never forgotten.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BrokerError } from '../errors/broker-error.js';
import { readFileOrNull, writeFileAtomic } from '../log/io.js';
import type { Logger } from '../logging.js';
import { applyRecords, EMPTY_IMAGE, STALE_PARTITION_CHANGE, type BrokerImage, type MetadataImage, type MetadataRecord, type TopicImage } from '../broker/metadata/records.js';
import type { MetadataListener, MetadataStore, PendingDeletion } from '../broker/metadata/store.js';
import { Quorum, type QuorumOptions, type StateMachine } from './quorum.js';
import type { Transport } from './transport.js';

export const ENTRY_FORMAT = 1;
export const PENDING_DELETES_FILE = 'pending-deletes.json';

export interface QuorumMetadataStoreOptions {
  dataDir: string;
  identity: { nodeId: number; clusterId: string };
  quorum: Omit<QuorumOptions, 'nodeId'>;
  transport: Transport<Uint8Array>;
  logger: Logger;
}

export function encodeEntry(records: readonly MetadataRecord[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ v: ENTRY_FORMAT, records }));
}

export function decodeEntry(data: Uint8Array): MetadataRecord[] {
  const parsed = JSON.parse(new TextDecoder().decode(data)) as { v?: unknown; records?: unknown };
  if (parsed.v !== ENTRY_FORMAT || !Array.isArray(parsed.records)) throw new Error(`metadata entry of format ${String(parsed.v)}; this node reads format ${ENTRY_FORMAT}`);
  return parsed.records as MetadataRecord[];
}

/** The security part of an image as the records that rebuild it (SCRAM keys base64, as in their records). */
function securityRecords(image: MetadataImage): MetadataRecord[] {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
  const out: MetadataRecord[] = image.acls.map((binding) => ({ type: 'acl', binding }));
  for (const [user, creds] of image.scram) {
    for (const c of creds.values()) out.push({ type: 'scramCredential', user, mechanism: c.mechanism, iterations: c.iterations, salt: b64(c.salt), storedKey: b64(c.storedKey), serverKey: b64(c.serverKey) });
  }
  return out;
}

export function encodeImage(image: MetadataImage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ v: ENTRY_FORMAT, topics: [...image.topics.values()], producerIdsReservedUpTo: image.producerIdsReservedUpTo, security: securityRecords(image), brokers: [...image.brokers.values()] }));
}

export function decodeImage(data: Uint8Array, node: MetadataImage['node']): MetadataImage {
  if (data.length === 0) return { ...EMPTY_IMAGE, node };
  const parsed = JSON.parse(new TextDecoder().decode(data)) as { v?: unknown; topics?: TopicImage[]; producerIdsReservedUpTo?: number; security?: MetadataRecord[]; brokers?: BrokerImage[] };
  if (parsed.v !== ENTRY_FORMAT || !Array.isArray(parsed.topics)) throw new Error(`metadata snapshot of format ${String(parsed.v)}; this node reads format ${ENTRY_FORMAT}`);
  const base: MetadataImage = { ...EMPTY_IMAGE, node, topics: new Map(parsed.topics.map((t) => [t.name, t])), producerIdsReservedUpTo: parsed.producerIdsReservedUpTo ?? 0, brokers: new Map((parsed.brokers ?? []).map((b) => [b.nodeId, b])) };
  return applyRecords(base, parsed.security ?? []);
}

/** The table's name for an apply failure, so a door answers it like the one-node check would. */
function applyError(err: Error): BrokerError {
  // A leadership change decided on an older image: the proposer looks again (retriable).
  if (err.message.includes(STALE_PARTITION_CHANGE)) return new BrokerError('NOT_CONTROLLER', err.message);
  if (/exists already/.test(err.message)) return new BrokerError('TOPIC_ALREADY_EXISTS', err.message);
  if (/no topic|has id/.test(err.message)) return new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', err.message);
  return new BrokerError('INVALID_REQUEST', err.message);
}

export class QuorumMetadataStore implements MetadataStore, StateMachine {
  private current: MetadataImage;
  private readonly listeners = new Set<MetadataListener>();
  private pending: PendingDeletion[] = [];
  private quorumRef: Quorum | null = null;
  /**
   * What replication adds to this node's status (host/cluster/replica-lag.ts: the follower lag
   * of the partitions it leads); set once replication runs, which starts after the store.
   */
  replicaStatus: (() => Record<string, unknown>) | null = null;

  private constructor(
    private readonly dir: string,
    private readonly node: MetadataImage['node'],
    private readonly logger: Logger,
  ) {
    this.current = { ...EMPTY_IMAGE, node };
  }

  /** Opens the quorum under `<dataDir>/cluster`, restored and caught up to what this node had applied. */
  static async open(o: QuorumMetadataStoreOptions): Promise<QuorumMetadataStore> {
    const dir = join(o.dataDir, 'cluster');
    await mkdir(dir, { recursive: true });
    const store = new QuorumMetadataStore(dir, { nodeId: o.identity.nodeId, clusterId: o.identity.clusterId }, o.logger);
    const text = await readFileOrNull(join(dir, PENDING_DELETES_FILE));
    if (text) store.pending = (JSON.parse(text.toString('utf8')) as { pending: PendingDeletion[] }).pending;
    store.quorumRef = await Quorum.open(dir, { ...o.quorum, nodeId: o.identity.nodeId }, store, o.transport);
    return store;
  }

  get quorum(): Quorum {
    return this.quorumRef!;
  }

  image(): MetadataImage {
    return this.current;
  }

  async propose(records: readonly MetadataRecord[]): Promise<MetadataImage> {
    if (records.some((r) => r.type === 'nodeIdentity')) throw new Error('metadata: node identity comes from each node\'s configuration, it is not replicated');
    await this.quorum.propose(encodeEntry(records));
    return this.current;
  }

  /**
   * A linearizable read barrier: resolves once this node has applied everything committed before
   * the call (an empty entry through the controller). Retries NOT_CONTROLLER until `timeoutMs`.
   */
  async catchUp(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.quorum.propose(encodeEntry([]));
        return;
      } catch (err) {
        const retriable = err instanceof BrokerError && (err.code === 'NOT_CONTROLLER' || err.code === 'REQUEST_TIMED_OUT');
        if (!retriable || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  onChange(listener: MetadataListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  pendingDeletions(): PendingDeletion[] {
    return this.pending.map((p) => ({ ...p }));
  }

  async deletionDone(name: string, topicId?: string): Promise<void> {
    const keep = this.pending.filter((p) => !(p.name === name && (topicId === undefined || p.topicId === topicId)));
    if (keep.length === this.pending.length) return;
    await this.writePending(keep);
  }

  async close(): Promise<void> {
    await this.quorumRef?.close();
  }

  // ---- StateMachine (called by the quorum's drain, one at a time) ----

  async apply(data: Uint8Array): Promise<Error | undefined> {
    const records = decodeEntry(data); // another format throws: the node stops (see the header)
    if (records.length === 0) return undefined;
    const before = this.current;
    let next: MetadataImage;
    try {
      next = applyRecords(before, records);
    } catch (err) {
      return applyError(err as Error);
    }
    const removed = records.filter((r) => r.type === 'removeTopic');
    if (removed.length) await this.writePending([...this.pending, ...removed.map((r) => ({ name: r.name, topicId: r.topicId, partitions: before.topics.get(r.name)?.partitions ?? 0 }))]);
    this.current = { ...next, node: this.node };
    for (const l of this.listeners) {
      try {
        l(this.current, records);
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'a metadata listener failed');
      }
    }
    return undefined;
  }

  async restore(data: Uint8Array): Promise<void> {
    const before = this.current;
    this.current = decodeImage(data, this.node);
    // Topics the snapshot no longer has were removed while this node was away.
    const gone = [...before.topics.values()].filter((t) => this.current.topics.get(t.name)?.topicId !== t.topicId);
    if (gone.length) await this.writePending([...this.pending, ...gone.map((t) => ({ name: t.name, topicId: t.topicId, partitions: t.partitions }))]);
    for (const l of this.listeners) {
      try {
        l(this.current, []);
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'a metadata listener failed');
      }
    }
  }

  snapshot(): Uint8Array {
    return encodeImage(this.current);
  }

  private async writePending(pending: PendingDeletion[]): Promise<void> {
    await writeFileAtomic(join(this.dir, PENDING_DELETES_FILE), JSON.stringify({ format: 1, pending }) + '\n');
    this.pending = pending;
  }
}
