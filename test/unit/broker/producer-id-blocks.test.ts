// Purpose: producer-id blocks are a compare-and-set in the metadata log (records.ts,
// ProducerIdsBlock with `start`; producer-ids.ts). Two allocators that read the same mark before
// either proposal is applied never hand out one id twice: the block applied second is stale and
// changes nothing, and its proposer re-reads the mark. Checked with a store that applies queued
// proposals in the worst order (the later proposal first), and with three real Raft metadata
// stores (host/cluster/quorum-metadata-store.ts) allocating at once. Also: a record without
// `start` (written before) still moves the mark as before; a malformed block is refused; a node
// that loses every race gives up after its attempts with a retriable error.
import t, { type Test } from 'tap';
import { applyRecords, EMPTY_IMAGE, type MetadataImage, type MetadataRecord } from '../../../host/broker/metadata/records.js';
import type { MetadataListener, MetadataStore } from '../../../host/broker/metadata/store.js';
import { metadataBlocks, ProducerIds } from '../../../host/broker/producer-ids.js';
import { BrokerError } from '../../../host/errors/index.js';
import { silentLogger } from '../../../host/logging.js';
import { MemoryHub } from '../../../host/cluster/transport.js';
import { QuorumMetadataStore } from '../../../host/cluster/quorum-metadata-store.js';
import { prng } from '../../helpers/codec-inputs.js';
import { eventually, tempDir } from '../../helpers/index.js';

/**
 * A metadata store (the real applyRecords) whose proposals wait in a queue until `hold` of them
 * are pending (or a lone one waited 5 ms), then are applied newest first: every allocator has
 * read the mark before any block lands, and the first proposer always loses the race.
 */
class InterleavingStore implements MetadataStore {
  current: MetadataImage = EMPTY_IMAGE;
  queue: { records: readonly MetadataRecord[]; done: (image: MetadataImage) => void }[] = [];
  stale = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<MetadataListener>();
  /** `tell`: fire listeners per applied proposal (as the file and Raft stores do), or never (the allocator falls back to the image propose returns). */
  /** `order`: absent = newest first; a seeded random source = a shuffled order (no node always wins). */
  constructor(
    private readonly hold: number,
    private readonly tell = true,
    private readonly order?: () => number,
  ) {}
  image(): MetadataImage {
    return this.current;
  }
  propose(records: readonly MetadataRecord[]): Promise<MetadataImage> {
    return new Promise((done) => {
      this.queue.push({ records, done });
      if (this.queue.length >= this.hold) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), 5);
    });
  }
  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.queue.splice(0).reverse();
    const r = this.order;
    if (r) for (let i = batch.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [batch[i], batch[j]] = [batch[j]!, batch[i]!];
    }
    // Every proposer is answered after the whole batch is applied (a Raft node may apply several
    // entries before a proposer looks): the image it sees may already hold a later block.
    for (const p of batch) {
      const before = this.current.producerIdsReservedUpTo;
      this.current = applyRecords(this.current, p.records);
      if (this.current.producerIdsReservedUpTo === before) this.stale++;
      if (this.tell) for (const l of this.listeners) l(this.current, p.records);
    }
    for (const p of batch) p.done(this.current);
  }
  onChange(l: MetadataListener): () => void {
    this.listeners.add(l);
    return () => void this.listeners.delete(l);
  }
  pendingDeletions() {
    return [];
  }
  async deletionDone(): Promise<void> {}
}

function assertUnique(t: Test, ids: number[], what: string): void {
  const seen = new Map<number, number>();
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  t.same(twice, [], `${what}: ${ids.length} ids, none handed out twice`);
}

t.test('producer-id blocks: two allocators reading the same mark before either block applies never share an id', async (t) => {
  const store = new InterleavingStore(2, false);
  const a = new ProducerIds(metadataBlocks(store, 1), 10);
  const b = new ProducerIds(metadataBlocks(store, 2), 10);
  const got: number[] = [];
  for (let round = 0; round < 20; round++) {
    // Both start a block at once: both read the same mark, both propose it as their start.
    const batch = await Promise.all([...Array.from({ length: 7 }, () => a.allocate()), ...Array.from({ length: 7 }, () => b.allocate())]);
    got.push(...batch);
  }
  assertUnique(t, got, 'two allocators');
  t.ok(store.stale > 0, `the interleaving really raced: ${store.stale} stale blocks changed nothing`);
  t.ok(Math.max(...got) < store.image().producerIdsReservedUpTo, 'every id handed out is below the reserved mark');
});

t.test('producer-id blocks: three allocators racing every block in a shuffled order stay unique', async (t) => {
  // Newest-first here would starve the two older proposers forever (the bounded attempts are
  // tested below); a shuffled order still has every block raced by all three.
  const store = new InterleavingStore(3, true, prng(5));
  const owners = [1, 2, 3].map((n) => new ProducerIds(metadataBlocks(store, n), 3, 64));
  const got = (await Promise.all(owners.flatMap((o) => Array.from({ length: 40 }, () => o.allocate())))).flat();
  assertUnique(t, got, 'three allocators');
  t.ok(store.stale > 0, `${store.stale} stale blocks`);
});

t.test('producer-id blocks: the record layout — old records move the mark, stale blocks change nothing, bad ones are refused', async (t) => {
  let image = applyRecords(EMPTY_IMAGE, [{ type: 'producerIds', reservedUpTo: 100 }]);
  t.equal(image.producerIdsReservedUpTo, 100, 'a record without start (older data) moves the mark as before');
  t.equal(image.producerIdsLastBlock, undefined);
  t.throws(() => applyRecords(image, [{ type: 'producerIds', reservedUpTo: 50 }]), /cannot end at 50/, 'old records still never go backwards');
  image = applyRecords(image, [{ type: 'producerIds', start: 100, reservedUpTo: 110, nodeId: 2 }]);
  t.same(image.producerIdsLastBlock, { start: 100, upTo: 110, nodeId: 2 });
  t.equal(image.producerIdsReservedUpTo, 110);
  const after = applyRecords(image, [{ type: 'producerIds', start: 100, reservedUpTo: 110, nodeId: 3 }]);
  t.equal(after.producerIdsReservedUpTo, 110, 'a block whose start is not the mark is stale');
  t.same(after.producerIdsLastBlock, { start: 100, upTo: 110, nodeId: 2 }, 'and the last block stays the winner\'s');
  t.throws(() => applyRecords(image, [{ type: 'producerIds', start: 110, reservedUpTo: 110, nodeId: 1 }]), /malformed/, 'an empty block');
  t.throws(() => applyRecords(image, [{ type: 'producerIds', start: 110, reservedUpTo: 120 }]), /malformed/, 'a block without its owner');
  const roundTrip = JSON.parse(JSON.stringify({ type: 'producerIds', reservedUpTo: 7 })) as MetadataRecord;
  t.equal(applyRecords(EMPTY_IMAGE, [roundTrip]).producerIdsReservedUpTo, 7, 'an old record decoded from JSON applies');
});

t.test('producer-id blocks: an allocator that loses every race gives up after its attempts, retriably', async (t) => {
  const store = new InterleavingStore(1);
  const real = store.propose.bind(store);
  // Another node's block at the same mark always lands first.
  store.propose = async (records) => {
    const mark = store.current.producerIdsReservedUpTo;
    store.current = applyRecords(store.current, [{ type: 'producerIds', start: mark, reservedUpTo: mark + 5, nodeId: 9 }]);
    return real(records);
  };
  const ids = await ProducerIds.open(store, { blockSize: 5, reserveAttempts: 3 });
  const err = await ids.allocate().then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof BrokerError && err.code === 'REQUEST_TIMED_OUT', 'a retriable error');
  t.match((err as Error).message, /no block reserved after 3 attempts/);
  t.equal(store.current.producerIdsReservedUpTo, 15, 'three attempts, each lost to the other node (its three blocks of 5 reserved, none of ours)');
  t.throws(() => new ProducerIds(metadataBlocks(store), 5, 0), /reserveAttempts/, 'attempts below one are refused');
});

const QUORUM = {
  voters: [1, 2, 3],
  electionTicks: 10,
  heartbeatTicks: 1,
  tickMs: 10,
  proposalsPendingMax: 256,
  proposalTimeoutMs: 5000,
  snapshotEntries: 1000,
  frameBytesMax: 1 << 20,
  recordBytesMax: 1 << 20,
  storageRewriteBytes: 1 << 20,
  logger: silentLogger,
};

t.test('producer-id blocks: three Raft metadata stores allocating at once never share an id', async (t) => {
  const hub = new MemoryHub({ random: prng(11) });
  const stores: QuorumMetadataStore[] = [];
  for (const id of [1, 2, 3]) {
    const dir = await tempDir(t);
    const store = await QuorumMetadataStore.open({ dataDir: dir, identity: { nodeId: id, clusterId: 'c' }, transport: hub.connect(String(id)), logger: silentLogger, quorum: { ...QUORUM, random: prng(id) } });
    t.teardown(() => store.close());
    stores.push(store);
  }
  await eventually(() => stores.find((s) => s.quorum.isLeader && stores.every((o) => o.quorum.leader === s.quorum.status().nodeId)), 10_000);
  const allocators = await Promise.all(stores.map((s) => ProducerIds.open(s, { blockSize: 2 })));
  const got: number[] = [];
  for (let round = 0; round < 10; round++) {
    got.push(...(await Promise.all(allocators.flatMap((a) => Array.from({ length: 5 }, () => a.allocate())))));
  }
  assertUnique(t, got, 'three nodes');
  const last = stores[0]!.image().producerIdsLastBlock;
  t.ok(last && [1, 2, 3].includes(last.nodeId), 'the image names the node owning the last block');
  await eventually(() => stores.every((s) => s.image().producerIdsReservedUpTo === stores[0]!.image().producerIdsReservedUpTo));
  t.ok(Math.max(...got) < stores[0]!.image().producerIdsReservedUpTo, 'every id is below the replicated mark');
});
