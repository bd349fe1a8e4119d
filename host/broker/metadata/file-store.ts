// The one-node MetadataStore: records are made durable in the files the data dir has always
// had, and applied to an in-memory image.
//
// Files (formats and crash policies in their own modules, unchanged by this store):
//   <dataDir>/topics.json    topics, partition counts, ids, config overrides, pending deletions
//                            (host/broker/topic-registry.ts: tmp + fsync + rename + dir fsync)
//   <dataDir>/producer-ids   the producer-id reservation mark (producer-ids-file.ts, same policy)
//   <dataDir>/security.json  ACL bindings and SCRAM credentials (security-file.ts, same policy)
//
// What is not written, and why: replication factor and assignment are always 1 and [this node]
// on one node (topic-admin.ts refuses anything else), so they are rebuilt at open instead of
// being added to topics.json; node identity comes from the configuration at open (applied as a
// NodeIdentity record), which is its durable source on one node.
//
// A proposal becomes durable in one file write (topics.json for topic and config records,
// producer-ids for a ProducerIdsBlock, security.json for ACL and SCRAM records), so it is all or
// none after a power cut; the image moves
// only after the write returned. A proposal mixing files is refused (nothing proposes
// one). Proposals run one at a time in call order.
import { join } from 'node:path';
import { TopicRegistry, type RegistryTopic } from '../topic-registry.js';
import { applyRecords, EMPTY_IMAGE, isSecurityRecord, type MetadataImage, type MetadataRecord, type TopicImage } from './records.js';
import { readSecurityFile, writeSecurityFile } from './security-file.js';
import type { MetadataListener, MetadataStore, PendingDeletion } from './store.js';
import { ProducerIdsFile, PRODUCER_IDS_FILE } from './producer-ids-file.js';

export interface FileMetadataStoreOptions {
  /** This node's id and cluster id (configuration). Default node 0 of cluster "tributary". */
  identity?: { nodeId: number; clusterId: string };
}

export class FileMetadataStore implements MetadataStore {
  private current: MetadataImage;
  private readonly listeners = new Set<MetadataListener>();
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly registry: TopicRegistry,
    private readonly producerIds: ProducerIdsFile,
    image: MetadataImage,
    private readonly dataDir: string,
  ) {
    this.current = image;
  }

  /** Reads topics.json and producer-ids under `dataDir` (creating the dir; missing files = empty). */
  static async open(dataDir: string, options: FileMetadataStoreOptions = {}): Promise<FileMetadataStore> {
    const registry = await TopicRegistry.load(dataDir);
    const producerIds = await ProducerIdsFile.open(join(dataDir, PRODUCER_IDS_FILE));
    const identity = options.identity ?? EMPTY_IMAGE.node;
    if (!Number.isInteger(identity.nodeId) || identity.nodeId < 0) throw new Error(`metadata: node id must be a non-negative integer, got ${identity.nodeId}`);
    if (typeof identity.clusterId !== 'string' || identity.clusterId === '') throw new Error('metadata: cluster id must be a non-empty string');
    const records: MetadataRecord[] = [{ type: 'nodeIdentity', nodeId: identity.nodeId, clusterId: identity.clusterId }];
    for (const t of registry.topics()) {
      records.push({ type: 'topic', name: t.name, topicId: t.topicId, partitions: t.partitions, replicationFactor: 1, assignment: Array.from({ length: t.partitions }, () => [identity.nodeId]), createdMs: t.createdMs });
      for (const [key, value] of Object.entries(t.overrides)) records.push({ type: 'config', topic: t.name, key: key as keyof typeof t.overrides, value: value as never });
    }
    records.push({ type: 'producerIds', reservedUpTo: producerIds.reservedUpTo });
    records.push(...(await readSecurityFile(dataDir)));
    return new FileMetadataStore(registry, producerIds, applyRecords(EMPTY_IMAGE, records), dataDir);
  }

  image(): MetadataImage {
    return this.current;
  }

  propose(records: readonly MetadataRecord[]): Promise<MetadataImage> {
    const run = this.tail.then(() => this.apply([...records]));
    this.tail = run.catch(() => undefined);
    return run;
  }

  onChange(listener: MetadataListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  pendingDeletions(): PendingDeletion[] {
    return this.registry.pendingDeletes();
  }

  async deletionDone(name: string, topicId?: string): Promise<void> {
    const matches = (p: PendingDeletion) => p.name === name && (topicId === undefined || p.topicId === topicId);
    if (!this.registry.pendingDeletes().some(matches)) return;
    await this.registry.update((d) => {
      d.pendingDeletes = d.pendingDeletes.filter((p) => !matches(p));
    });
  }

  private async apply(records: MetadataRecord[]): Promise<MetadataImage> {
    const before = this.current;
    const next = applyRecords(before, records);
    const ids = records.some((r) => r.type === 'producerIds');
    const topics = records.some((r) => r.type === 'topic' || r.type === 'config' || r.type === 'removeTopic' || r.type === 'partitionCount');
    if (records.some((r) => r.type === 'nodeIdentity')) throw new Error('metadata: the file store takes node identity from the configuration at open');
    const security = records.some(isSecurityRecord);
    const files = [topics && 'topics.json', ids && 'producer-ids', security && 'security.json'].filter(Boolean);
    if (files.length > 1) throw new Error(`metadata: one proposal cannot change both ${files.join(' and ')}`);
    if (ids) await this.producerIds.write(next.producerIdsReservedUpTo);
    if (security) await writeSecurityFile(this.dataDir, next);
    if (topics) {
      await this.registry.update((d) => {
        for (const r of records) {
          // Removed topics stay pending until this node's directories are gone (deletionDone).
          if (r.type === 'removeTopic') d.pendingDeletes.push({ name: r.name, topicId: r.topicId, partitions: before.topics.get(r.name)?.partitions ?? 0 });
        }
        d.topics = new Map([...next.topics.values()].map((t) => [t.name, registryTopic(t)]));
      });
    }
    this.current = next;
    for (const l of this.listeners) {
      // A listener's fault is its own: the records are durable and applied either way.
      try {
        l(next, records);
      } catch {
        // ignored by design (see above)
      }
    }
    return next;
  }
}

function registryTopic(t: TopicImage): RegistryTopic {
  return { name: t.name, topicId: t.topicId, partitions: t.partitions, createdMs: t.createdMs, overrides: { ...t.overrides } };
}
