// A follower's fetcher for one leader node (issue 11), Kafka's ReplicaFetcherThread shape: every
// partition this node follows from that leader is fetched by one loop, over one connection, with
// one multi-partition Fetch in flight at a time.
//
//   joining     a partition joins once the fetcher that held it before (another leader's, or
//               this one in an older epoch) has finished its append or truncation on the log
//               (`after`); a new leader or epoch is a new entry, never an update of the old one
//   truncate    first, per partition: a damaged replica (replica-repair.ts) is cut at its first
//               bad batch, then OffsetForLeaderEpoch (KIP-101/279, never to the high watermark),
//               one request for every partition that needs it
//   fetch       Fetch with our node id as replica id, each partition in its own leader epoch,
//               bounded per partition (replicaFetchBytesMax) and for the whole answer
//               (replicaFetchResponseBytesMax); the leader long-polls replicaFetchWaitMs with
//               minBytes 1, so the answer comes as soon as any partition has data (or its high
//               watermark moved); the leader serves what it has written, before its own fsync
//               returns (isolation `written`), so our write and fsync overlap its fsync.
//               Partitions are appended side by side, each batch as sent.
//   pipelining  with a leader that counts a reported durable end (its answers say so: Fetch's
//               tag 10000, host/kafka/apis/fetch.ts), on the connection it said so on: each
//               partition is fetched from the end we have *written* and reports the end our
//               fsync covers (the log end: under flush=always what the fsync covers, under
//               interval/never what is written, exactly what the fetch offset reported before);
//               an answer's records are appended without waiting for their fsync, so the next
//               fetch goes out while it runs, and when the fsync returns while that fetch is
//               parked at the leader, a report (a Fetch of no bytes, maxWaitMs 0) tells the leader
//               the new durable end at once. The leader's high watermark counts only the durable
//               end, so it still never counts a byte we have not fsynced. Without that leader
//               (first fetch on a connection, an older leader), each append waits for its fsync
//               before the next fetch reports the new log end as its fetch offset.
//   errors      per partition, never stalling the others: OFFSET_OUT_OF_RANGE below the leader's
//               log start resets the log there (Kafka's truncateFullyAndStartAt), above its end
//               sends the partition back to truncation; any other error (FENCED_LEADER_EPOCH,
//               NOT_LEADER_OR_FOLLOWER, CORRUPT_MESSAGE, ...) leaves the partition out of the
//               fetches for a backoff (50 ms per failure in a row, at most 1 s) while this node's
//               metadata catches up (which replaces the entry) or the leader heals. A failed
//               request (connection lost, timeout) backs off the whole fetcher the same way.
//   rotation    a partition whose records came back moves to the end of the request, so one busy
//               partition filling the answer's bound does not starve those after it.
//   stop        closing the fetcher's own client ends a fetch parked at the leader at once.
//
// Bounds: one connection and one fetch in flight per leader node followed; each fetch reserves its
// largest answer (replicaFetchResponseBytesMax + 1 MiB, options.ts) from the node-wide budget
// (fetch-budget.ts) before it is sent and gives it back once every partition's records are
// appended. Concurrency: the loop is the only writer of a partition's log while its entry is
// current; `work` is the log operation in progress, which a successor awaits.
import type { Logger } from '../logging.js';
import type { Broker } from '../broker/broker.js';
import type { Partition } from '../broker/partition.js';
import { ERRORS, errorNameForKafkaCode } from '../errors/index.js';
import type { KafkaClient } from '../kafka/client/client.js';
import type { KafkaConnection } from '../kafka/client/connection.js';
import { CLIENT_APIS } from '../kafka/client/apis.js';
import type { QuorumMetadataStore } from './quorum-metadata-store.js';
import type { Repairs } from './replica-repair.js';
import type { FetchBudget } from './fetch-budget.js';
import { replicaFetchAnswerBytesMax } from './options.js';

export interface ReplicaFetcherOptions {
  nodeId: number;
  replicaFetchWaitMs: number;
  replicaFetchBytesMax: number;
  replicaFetchResponseBytesMax: number;
}

/** What the fetcher shares with the node: the broker, the metadata image (leader addresses), the start-up repairs and the answer budget. */
export interface ReplicaFetcherContext {
  broker: Broker;
  store: QuorumMetadataStore;
  repairs: Repairs;
  budget: FetchBudget;
  log: Logger;
  options: ReplicaFetcherOptions;
}

/** A fetch's long poll while other fetches wait for the fetch budget (fetch-budget.ts). */
const CONTENDED_FETCH_WAIT_MS = 50;
/** Backoff per failure in a row, and its ceiling: a partition's and the fetcher's. */
const BACKOFF_STEP_MS = 50;
const BACKOFF_MAX_MS = 1000;

const backoffMs = (failures: number) => Math.min(BACKOFF_MAX_MS, BACKOFF_STEP_MS * failures);

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => (clearTimeout(timer), signal.removeEventListener('abort', done), resolve());
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

/** One followed partition in one leader epoch. */
interface Followed {
  /** The durable end last reported to the leader (a fetch's or a report's). */
  reportedDurableEnd: number;
  /** Stops listening to the log's end (the fsync returning: a report may be due). */
  unlisten: () => void;
  readonly p: Partition;
  readonly epoch: number;
  phase: 'truncate' | 'fetch';
  /** False until the previous holder's log operation has finished. */
  joined: boolean;
  failures: number;
  retryAtMs: number;
  /** The log operation in progress (append, truncation, cut); a successor starts after it. */
  work: Promise<void>;
  left: boolean;
}

interface PartitionAnswer {
  partitionIndex: number;
  errorCode: number;
  highWatermark: number;
  logStartOffset: number;
  records: Uint8Array | null;
}

const key = (topic: string, partition: number) => `${topic}\0${partition}`;

/** Where one partition is fetched from and what durable end goes with it (-1: none reported). */
interface Position {
  f: Followed;
  fetchOffset: number;
  durableEnd: number;
}

export class LeaderFetcher {
  /** Insertion order is the request's partition order (rotation moves an entry to the end). */
  private readonly followed = new Map<Partition, Followed>();
  private readonly abort = new AbortController();
  private running: Promise<void> = Promise.resolve();
  /** Wakes the loop from an idle wait (a partition joined or became ready). */
  private nudge: (() => void) | null = null;
  /** The connection whose leader said it counts a reported durable end; null: not pipelining. */
  private pipelinedOn: KafkaConnection | null = null;
  /** A fetch is out (parked at the leader, perhaps): a durable end moving now needs a report. */
  private fetchOut = false;
  private reportWanted = false;
  private reporting = false;

  constructor(
    readonly leaderId: number,
    private readonly client: KafkaClient,
    private readonly ctx: ReplicaFetcherContext,
  ) {}

  start(): void {
    this.running = this.run().catch((err: unknown) => this.ctx.log.warn({ err: (err as Error).message, leader: this.leaderId }, 'replica fetcher stopped'));
  }

  /** Partitions followed now. */
  get size(): number {
    return this.followed.size;
  }

  /** The leader epoch `p` is followed in here, if it is. */
  epochOf(p: Partition): number | undefined {
    return this.followed.get(p)?.epoch;
  }

  /** Follows `p` in its current leader epoch once `after` (the previous holder's last log operation) has settled. */
  add(p: Partition, after: Promise<void>): void {
    const f: Followed = { p, epoch: p.leaderEpoch, phase: 'truncate', joined: false, failures: 0, retryAtMs: 0, work: Promise.resolve(), left: false, reportedDurableEnd: -1, unlisten: () => undefined };
    f.unlisten = p.log.onEndOffsetAdvance(() => this.durableEndMoved(f));
    this.followed.set(p, f);
    f.work = after.catch(() => undefined).then(() => {
      f.joined = true;
      this.wake();
    });
  }

  /** Stops following `p`; resolves once its log operation in progress (if any) has finished. */
  remove(p: Partition): Promise<void> {
    const f = this.followed.get(p);
    if (!f) return Promise.resolve();
    f.left = true;
    f.unlisten();
    this.followed.delete(p);
    return f.work;
  }

  /** Stops the loop; closing its own client ends a fetch parked at the leader at once. */
  stop(): Promise<void> {
    for (const f of this.followed.values()) (f.left = true), f.unlisten();
    this.abort.abort();
    this.wake();
    const running = this.running;
    return this.client.close().then(() => running);
  }

  private wake(): void {
    const nudge = this.nudge;
    this.nudge = null;
    nudge?.();
  }

  /** An entry whose partition moved on (new epoch, retired, led here now): skipped until it is replaced. */
  private stale(f: Followed): boolean {
    return f.left || f.p.retired || f.p.leaderEpoch !== f.epoch || f.p.role !== 'follower';
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      const now = Date.now();
      const due = [...this.followed.values()].filter((f) => f.joined && f.retryAtMs <= now && !this.stale(f));
      const truncating = due.filter((f) => f.phase === 'truncate');
      if (due.length === 0) {
        await this.idle();
        continue;
      }
      try {
        if (truncating.length > 0) await this.truncate(truncating);
        else await this.fetch(due);
        failures = 0;
      } catch (err) {
        // Whoever answers next on a new connection says again whether it counts durable ends.
        this.pipelinedOn = null;
        if (signal.aborted) break;
        failures++;
        if (failures === 1 || failures % 50 === 0) this.ctx.log.warn({ err: (err as Error).message, leader: this.leaderId, partitions: due.length }, 'replica fetch failed; retrying');
        await sleep(backoffMs(failures), signal);
      }
    }
  }

  /** Nothing to send: wait for a partition to join or come out of its backoff (at most one long poll). */
  private idle(): Promise<void> {
    const now = Date.now();
    // At least one backoff step: with replicaFetchWaitMs 0 an idle fetcher must not spin.
    let waitMs = Math.max(BACKOFF_STEP_MS, this.ctx.options.replicaFetchWaitMs);
    for (const f of this.followed.values()) if (f.joined && !this.stale(f) && f.retryAtMs > now) waitMs = Math.min(waitMs, f.retryAtMs - now);
    return new Promise<void>((resolve) => {
      const done = () => (clearTimeout(timer), (this.nudge = null), resolve());
      const timer = setTimeout(done, waitMs);
      this.nudge = done;
      if (this.abort.signal.aborted) done();
    });
  }

  private async leaderConnection() {
    this.abort.signal.throwIfAborted();
    const b = this.ctx.store.image().brokers.get(this.leaderId);
    if (!b) throw new Error(`leader ${this.leaderId} is not registered yet`);
    const conn = await this.client.connection(`${b.host}:${b.port}`);
    // Stopped while it opened: the client's close may have missed this connection; nothing may park on it.
    if (this.abort.signal.aborted) conn.close();
    this.abort.signal.throwIfAborted();
    return conn;
  }

  /** Runs a log operation on `f` unless it is stale; a successor's `after` waits for it. */
  private onLog(f: Followed, op: () => Promise<void>): Promise<void> {
    if (this.stale(f)) return Promise.resolve();
    const work = op().catch((err: unknown) => this.partitionFailed(f, err));
    f.work = work;
    return work;
  }

  /** One partition's failure: left out of the fetches for its backoff; the others go on. */
  private partitionFailed(f: Followed, err: unknown): void {
    f.failures++;
    f.retryAtMs = Date.now() + backoffMs(f.failures);
    if (f.failures === 1 || f.failures % 50 === 0) {
      this.ctx.log.warn({ err: (err as Error).message, tp: nameOf(f.p), leader: this.leaderId, epoch: f.epoch }, 'replica fetch failed for a partition; retrying it');
    }
  }

  // --- truncation (KIP-101/279) -------------------------------------------------------------

  /** Cuts damage, then asks the leader where each partition's latest epoch ends and cuts there. */
  private async truncate(due: Followed[]): Promise<void> {
    await Promise.all(due.map((f) => this.onLog(f, () => this.cutDamage(f))));
    const asking: Array<{ f: Followed; latest: number }> = [];
    for (const f of due) {
      if (this.stale(f) || f.retryAtMs > Date.now()) continue;
      const latest = f.p.log.leaderEpochEntries().at(-1)?.epoch ?? -1;
      if (latest < 0) f.phase = 'fetch'; // an empty log has nothing to disagree about
      else asking.push({ f, latest });
    }
    if (asking.length === 0) return;
    const conn = await this.leaderConnection();
    const res = await conn.request(CLIENT_APIS.offsetForLeaderEpoch, {
      replicaId: this.ctx.options.nodeId,
      topics: byTopic(asking, ({ f, latest }) => ({ partition: f.p.tp.partition, currentLeaderEpoch: f.epoch, leaderEpoch: latest })),
    });
    const answers = new Map<string, { errorCode: number; leaderEpoch: number; endOffset: number }>();
    for (const t of res.topics ?? []) for (const r of t.partitions ?? []) answers.set(key(t.topic, r.partition), r);
    await Promise.all(
      asking.map(({ f, latest }) => {
        const r = answers.get(key(f.p.tp.topic, f.p.tp.partition));
        if (!r) return this.partitionFailed(f, new Error('OffsetForLeaderEpoch answer names no such partition'));
        if (r.errorCode !== ERRORS.NONE.kafka) return this.partitionFailed(f, new Error(`OffsetForLeaderEpoch: ${errorNameForKafkaCode(r.errorCode)}`));
        return this.onLog(f, () => this.truncateTo(f, latest, r));
      }),
    );
  }

  /** A replica found damaged at start (replica-repair.ts): cut at its first bad batch, once, before fetching the rest. */
  private async cutDamage(f: Followed): Promise<void> {
    const at = this.ctx.repairs.get(f.p);
    if (at === undefined) return;
    const before = f.p.log.logEndOffset;
    if (at < before) await this.ctx.broker.truncateReplica(f.p.tp, at, 'damaged');
    this.ctx.repairs.delete(f.p);
    this.ctx.log.warn({ tp: nameOf(f.p), from: before, to: f.p.log.logEndOffset, leader: this.leaderId, epoch: f.epoch }, 'damaged replica cut at its first bad batch; refetching the rest from the leader');
  }

  private async truncateTo(f: Followed, latest: number, r: { leaderEpoch: number; endOffset: number }): Promise<void> {
    const log = f.p.log;
    // The leader knows no epoch ≤ ours: nothing of ours was ever in its log from then on.
    let target = r.leaderEpoch < 0 ? log.logStartOffset : r.endOffset;
    // KIP-279: the leader's last epoch ≤ ours is older than ours: end where we ended that epoch too.
    if (r.leaderEpoch >= 0 && r.leaderEpoch < latest) target = Math.min(target, log.endOffsetForEpoch(r.leaderEpoch).endOffset);
    if (target < log.logEndOffset) {
      const before = log.logEndOffset;
      await this.ctx.broker.truncateReplica(f.p.tp, target);
      this.ctx.log.warn({ tp: nameOf(f.p), from: before, to: target, leader: this.leaderId, epoch: f.epoch }, 'replica truncated to where it agrees with the leader (leader epoch)');
    }
    f.phase = 'fetch';
    f.failures = 0;
  }

  // --- fetch ----------------------------------------------------------------------------------

  /** One multi-partition fetch and every partition's append; the answer's room is held until then. */
  private async fetch(due: Followed[]): Promise<void> {
    const o = this.ctx.options;
    const release = await this.ctx.budget.reserve(replicaFetchAnswerBytesMax(o.replicaFetchResponseBytesMax), this.abort.signal);
    try {
      const conn = await this.leaderConnection();
      const pipelined = this.pipelinedOn === conn;
      // Not pipelining (a new connection): what an earlier pipelined fetch wrote is fsynced first,
      // since the fetch offset alone then tells the leader our log end.
      if (!pipelined) await Promise.all(due.map((f) => (!this.stale(f) && f.p.log.writtenEndOffset > f.p.log.logEndOffset ? this.onLog(f, () => f.p.log.flush()) : undefined)));
      const asked = due.filter((f) => !this.stale(f)).map((f) => this.position(f, pipelined));
      if (asked.length === 0) return;
      let res;
      this.fetchOut = true;
      try {
        res = await conn.request(CLIENT_APIS.fetch, {
          replicaId: o.nodeId,
          // Others wait for the budget: park briefly, so an idle leader does not hold their room.
          maxWaitMs: this.ctx.budget.contended ? Math.min(o.replicaFetchWaitMs, CONTENDED_FETCH_WAIT_MS) : o.replicaFetchWaitMs,
          minBytes: 1,
          maxBytes: o.replicaFetchResponseBytesMax,
          isolationLevel: 0,
          sessionId: 0,
          sessionEpoch: -1,
          topics: byTopic(asked, (a) => ({ ...partitionEntry(a), partitionMaxBytes: o.replicaFetchBytesMax })),
          forgottenTopicsData: [],
          rackId: '',
        });
      } finally {
        this.fetchOut = false;
      }
      const supported = res.replicaDurableEndSupported === true;
      // Once per connection (a new one starts unpipelined): tests and operators see the mode.
      if (supported && !pipelined) this.ctx.log.info({ leader: this.leaderId }, 'leader counts reported durable ends: follower fetches pipelined with the fsync');
      this.pipelinedOn = supported ? conn : null;
      const answers = new Map<string, PartitionAnswer>();
      for (const t of res.responses ?? []) for (const r of t.partitions ?? []) answers.set(key(t.topic, r.partitionIndex), r);
      await Promise.all(asked.map(({ f, fetchOffset }) => this.settle(f, fetchOffset, answers.get(key(f.p.tp.topic, f.p.tp.partition)), pipelined)));
    } finally {
      release();
    }
  }

  /**
   * Where `f` is fetched from: pipelining, the end written (the fetcher is the log's only writer
   * and has awaited its write) with the end the fsync covers reported apart; otherwise the log end
   * for both.
   */
  private position(f: Followed, pipelined: boolean): Position {
    const log = f.p.log;
    const durableEnd = log.logEndOffset;
    f.reportedDurableEnd = durableEnd;
    return { f, fetchOffset: pipelined ? log.writtenEndOffset : durableEnd, durableEnd: pipelined ? durableEnd : -1 };
  }

  /** A followed log's end moved (its fsync returned): with a pipelined fetch parked at the leader, report it now. */
  private durableEndMoved(f: Followed): void {
    if (!this.fetchOut || this.pipelinedOn === null || this.stale(f) || f.p.log.logEndOffset <= f.reportedDurableEnd) return;
    this.reportWanted = true;
    if (this.reporting) return;
    this.reporting = true;
    // Called from the log's listener: nothing may throw back into it.
    void this.report()
      .catch((err: unknown) => this.ctx.log.debug({ err: (err as Error).message, leader: this.leaderId }, 'durable end report failed; the next fetch carries it'))
      .finally(() => (this.reporting = false));
  }

  /**
   * Reports moved durable ends while a fetch is out: a Fetch that reads nothing (maxBytes 0) and
   * waits for nothing (maxWaitMs 0). The leader records it on arrival (its Fetch handler lets the
   * next request on the connection start at once), so the HW moves even while our fetch is parked;
   * the answer itself is ignored (it comes after the parked fetch's). A failed report is not
   * retried: the next fetch carries the same durable end.
   */
  private async report(): Promise<void> {
    while (this.reportWanted && this.fetchOut && !this.abort.signal.aborted) {
      this.reportWanted = false;
      const conn = this.pipelinedOn;
      if (!conn) return;
      const moved = [...this.followed.values()].filter((f) => f.joined && f.phase === 'fetch' && !this.stale(f) && f.p.log.logEndOffset > f.reportedDurableEnd);
      if (moved.length === 0) return;
      const asked = moved.map((f) => this.position(f, true));
      try {
        await conn.request(CLIENT_APIS.fetch, {
          replicaId: this.ctx.options.nodeId,
          maxWaitMs: 0,
          minBytes: 0,
          maxBytes: 0,
          isolationLevel: 0,
          sessionId: 0,
          sessionEpoch: -1,
          topics: byTopic(asked, (a) => ({ ...partitionEntry(a), partitionMaxBytes: 0 })),
          forgottenTopicsData: [],
          rackId: '',
        });
      } catch {
        return;
      }
    }
  }

  /** One partition's part of the answer: append it (pipelined: without waiting for its fsync), or handle its error. */
  private settle(f: Followed, fetchOffset: number, r: PartitionAnswer | undefined, pipelined: boolean): Promise<void> | void {
    if (this.stale(f)) return;
    if (!r) return this.partitionFailed(f, new Error('Fetch answer names no such partition'));
    if (r.errorCode === ERRORS.OFFSET_OUT_OF_RANGE.kafka) {
      if (fetchOffset < r.logStartOffset) return this.onLog(f, () => this.resetToLeaderStart(f, fetchOffset, r.logStartOffset));
      // Our log ends past the leader's: truncate again before the next fetch.
      f.phase = 'truncate';
      return;
    }
    if (r.errorCode !== ERRORS.NONE.kafka) return this.partitionFailed(f, new Error(`Fetch: ${errorNameForKafkaCode(r.errorCode)}`));
    const records = r.records ?? new Uint8Array(0);
    if (records.byteLength > 0 && this.followed.get(f.p) === f) {
      this.followed.delete(f.p);
      this.followed.set(f.p, f);
    }
    return this.onLog(f, async () => {
      await this.ctx.broker.appendAsFollower(f.p.tp, records, r.highWatermark, f.epoch, { waitForFlush: !pipelined });
      f.failures = 0;
    });
  }

  /**
   * Our log ends below the leader's log start: retention deleted on the leader what we never
   * fetched. Kafka's truncateFullyAndStartAt: everything we hold goes (it is all below the
   * leader's log start, so no one reads it from us any more) and the log restarts empty at the
   * leader's log start; the next fetch asks from there and we rejoin the ISR once caught up.
   */
  private async resetToLeaderStart(f: Followed, logEndOffset: number, leaderLogStartOffset: number): Promise<void> {
    const ours = f.p.log.logStartOffset;
    await this.ctx.broker.truncateReplica(f.p.tp, leaderLogStartOffset, 'log-start');
    this.ctx.log.warn(
      { tp: nameOf(f.p), logStartOffset: ours, logEndOffset, leaderLogStartOffset, leader: this.leaderId, epoch: f.epoch },
      "replica behind the leader's log start: its log was reset to start at the leader's log start",
    );
  }
}

/** A position as a Fetch request's partition entry (without its byte bound). */
function partitionEntry({ f, fetchOffset, durableEnd }: Position) {
  return { partition: f.p.tp.partition, currentLeaderEpoch: f.epoch, fetchOffset, lastFetchedEpoch: -1, logStartOffset: -1, replicaDurableEndOffset: durableEnd };
}

function nameOf(p: Partition): string {
  return `${p.tp.topic}-${p.tp.partition}`;
}

/** Groups per-partition request entries by topic, in first-seen order. */
function byTopic<T extends { f: Followed }, P>(items: T[], part: (item: T) => P): Array<{ topic: string; partitions: P[] }> {
  const topics = new Map<string, P[]>();
  for (const item of items) {
    const topic = item.f.p.tp.topic;
    let list = topics.get(topic);
    if (!list) topics.set(topic, (list = []));
    list.push(part(item));
  }
  return [...topics].map(([topic, partitions]) => ({ topic, partitions }));
}
