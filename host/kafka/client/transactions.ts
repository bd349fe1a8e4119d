// A transactional producer on the project's own codec, for one transactional id (the uplink: one
// per source partition), its state explicit: producer id, epoch, per-partition sequences.
//
//   init       FindCoordinator (key type 1) names the transaction coordinator; InitProducerId with
//              the transactional id there. When a producer id and epoch are known (this process's,
//              or a previous process's persisted by the caller) they are sent with it (KIP-360,
//              InitProducerId v3+): the coordinator bumps that epoch of that producer id, which
//              fences the old epoch and aborts a transaction it left open. That is how a transaction
//              in an unknown state (an indefinite error mid-transaction) is settled: re-initialised,
//              never aborted blindly by a guess. Answers:
//                - UNKNOWN_PRODUCER_ID / INVALID_PRODUCER_ID_MAPPING (the coordinator forgot the id,
//                  e.g. expired after a long outage): a fresh init (no id) follows.
//                - INVALID_PRODUCER_EPOCH / PRODUCER_FENCED: someone else took a newer epoch. For
//                  the first init of this object (the id came from a previous process's state, which
//                  may lag by one epoch if it died mid-init) a fresh init follows: the newest process
//                  takes over. After this object has written under an epoch, it is **fenced**: it
//                  throws ProducerFencedError now and at every later call, and never writes again.
//              Below InitProducerId v3 the id cannot be sent: every init is fresh (the coordinator
//              still bumps the epoch of the transactional id's producer, which fences the old one).
//              CONCURRENT_TRANSACTIONS and COORDINATOR_LOAD_IN_PROGRESS (the previous transaction is
//              still completing) are retried after a short wait.
//   commit     one transaction: AddPartitionsToTxn (every partition written, once), one Produce per
//              batch, pipelined in order (transactional attribute set, the transactional id in the
//              request, sequences from 0 per partition for each new epoch), then the `after` writes
//              (the checkpoint) once those are acknowledged, then EndTxn(commit). Every step
//              is checked; any failure throws and the caller calls `init` again before it reads the
//              target back (read_committed) to learn what was committed. INVALID_PRODUCER_EPOCH or
//              PRODUCER_FENCED on any step is not decided here: the next `init` (KIP-360) tells a
//              coordinator's own epoch bump (a transaction timed out) from a newer producer.
//   protocol   Transactions V2 (KIP-890 part 2: the coordinator adds data partitions itself, Produce
//              v12, EndTxn v5 bumps the epoch at every commit; Kafka gates it by the finalized
//              feature transaction.version ≥ 2) is not spoken: no target here advertises it, so no
//              V2 path could be verified. `protocol()` reports whether the coordinator advertises
//              EndTxn v5 (the V2 sign this client can see) and the versions used (V1:
//              AddPartitionsToTxn ≤ 3, EndTxn ≤ 3), for the log.
import { ERRORS } from '../../errors/index.js';
import { ATTRIBUTES, TRANSACTIONAL_MASK, resealBatch } from '../../core/index.js';
import { CLIENT_APIS, negotiate } from './apis.js';
import type { KafkaClient, ProduceResult } from './client.js';
import { checkCode, KafkaClientError, KafkaResponseError } from './errors.js';
import { advance, sleep, type OutgoingBatch } from './producer.js';

const TRANSACTION_KEY_TYPE = 1;
/** InitProducerId / AddPartitionsToTxn attempts while the coordinator says the last transaction is still completing. */
const BUSY_ATTEMPTS_MAX = 20;
const BUSY_WAIT_MS = 100;
const BUSY = new Set(['CONCURRENT_TRANSACTIONS', 'COORDINATOR_LOAD_IN_PROGRESS', 'COORDINATOR_NOT_AVAILABLE', 'NOT_COORDINATOR']);

export interface TransactionalOptions {
  transactionalId: string;
  /** A previous process's producer id and epoch for this transactional id (KIP-360: its epoch is bumped, fencing it). */
  resume?: { producerId: number; producerEpoch: number };
  /** How long the coordinator lets a transaction stay open before it aborts it (a killed producer's). */
  transactionTimeoutMs: number;
  produceTimeoutMs: number;
}

export interface TxnWrite {
  topic: string;
  partition: number;
  batch: OutgoingBatch;
}

/** Another producer with this transactional id took a newer epoch: this one never writes again. */
export class ProducerFencedError extends KafkaClientError {
  override name = 'ProducerFencedError';
}

/** How the last `init` went: the epoch of a known producer id bumped (KIP-360), or a fresh id. */
export type InitOutcome = { kind: 'bumped'; from: { producerId: number; producerEpoch: number } } | { kind: 'fresh'; why: string };

const FORGOTTEN = new Set(['UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_ID_MAPPING']);
const FENCING = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED']);
/** The first version of InitProducerId that carries the current producer id and epoch (KIP-360). */
const INIT_WITH_ID_VERSION = 3;
/** Transactions V2 (KIP-890): EndTxn v5, the epoch bumped at every commit. */
const V2_END_TXN_VERSION = 5;

export interface TxnProtocol {
  /** Always 'v1' (classic): V2 is not spoken. */
  spoken: 'v1';
  /** The coordinator advertises EndTxn v5 (Transactions V2; still not used: see the file header). */
  coordinatorAdvertisesV2: boolean;
  addPartitionsVersion: number;
  endTxnVersion: number;
  initProducerIdVersion: number;
  /** Whether InitProducerId can carry the current id and epoch (KIP-360). */
  kip360: boolean;
}

export class TransactionalProducer {
  producerId = -1;
  producerEpoch = -1;
  /** Set once fenced: the reason, thrown by every later call. */
  fenced: string | null = null;
  lastInit: InitOutcome | null = null;
  /** Whether this object has initialised once (after that a fencing answer means fenced). */
  private initialised = false;
  private readonly sequences = new Map<string, number>();
  private readonly signal = new AbortController().signal;

  constructor(
    readonly client: KafkaClient,
    readonly options: TransactionalOptions,
  ) {
    if (options.resume && options.resume.producerId >= 0) {
      this.producerId = options.resume.producerId;
      this.producerEpoch = options.resume.producerEpoch;
    }
  }

  /** The transaction protocol spoken with the coordinator, from its ApiVersions answer. */
  async protocol(): Promise<TxnProtocol> {
    const versions = (await this.coordinator()).versions;
    const end = versions.get(CLIENT_APIS.endTxn.key);
    const initVersion = negotiate(CLIENT_APIS.initProducerId, versions);
    return {
      spoken: 'v1',
      coordinatorAdvertisesV2: (end?.maxVersion ?? -1) >= V2_END_TXN_VERSION,
      addPartitionsVersion: negotiate(CLIENT_APIS.addPartitionsToTxn, versions),
      endTxnVersion: negotiate(CLIENT_APIS.endTxn, versions),
      initProducerIdVersion: initVersion,
      kip360: initVersion >= INIT_WITH_ID_VERSION,
    };
  }

  private throwIfFenced(): void {
    if (this.fenced) throw new ProducerFencedError('closed', this.fenced);
  }

  private async coordinator() {
    const conn = await this.client.anyConnection();
    const res = await conn.request(CLIENT_APIS.findCoordinator, { key: this.options.transactionalId, keyType: TRANSACTION_KEY_TYPE });
    checkCode(res.errorCode, `find the transaction coordinator of ${this.options.transactionalId}`);
    return this.client.connection(`${res.host}:${res.port}`);
  }

  /** Retries `fn` while the coordinator is busy finishing the previous transaction. */
  private async whileBusy<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof KafkaResponseError && BUSY.has(err.code)) || attempt >= BUSY_ATTEMPTS_MAX) throw err;
        await sleep(BUSY_WAIT_MS, this.signal);
      }
    }
  }

  /**
   * InitProducerId with the transactional id: the known producer id's epoch bumped (KIP-360), else
   * a fresh id; fenced → ProducerFencedError (see the file header).
   */
  async init(): Promise<InitOutcome> {
    this.throwIfFenced();
    const known = this.producerId >= 0 ? { producerId: this.producerId, producerEpoch: this.producerEpoch } : null;
    let outcome: InitOutcome;
    if (known && (await this.protocol()).kip360) {
      try {
        await this.initWith(known.producerId, known.producerEpoch);
        outcome = { kind: 'bumped', from: known };
      } catch (err) {
        if (!(err instanceof KafkaResponseError)) throw err;
        if (FENCING.has(err.code) && this.initialised) {
          this.fenced = `${this.options.transactionalId}: fenced by a newer producer (re-initialising producer id ${known.producerId} epoch ${known.producerEpoch} was refused: ${err.code}); this producer stops and never writes again`;
          throw new ProducerFencedError('closed', this.fenced, false, { cause: err });
        }
        if (!FORGOTTEN.has(err.code) && !FENCING.has(err.code)) throw err;
        await this.initWith(-1, -1);
        outcome = { kind: 'fresh', why: `the coordinator refused producer id ${known.producerId} epoch ${known.producerEpoch} (${err.code}${FENCING.has(err.code) ? ': the saved epoch is stale; this process takes over' : ': it forgot the id'})` };
      }
    } else {
      await this.initWith(-1, -1);
      outcome = { kind: 'fresh', why: known ? 'InitProducerId below v3 cannot carry the producer id (KIP-360)' : 'no producer id known' };
    }
    this.initialised = true;
    this.lastInit = outcome;
    this.sequences.clear();
    return outcome;
  }

  private async initWith(producerId: number, producerEpoch: number): Promise<void> {
    await this.whileBusy('init', async () => {
      const conn = await this.coordinator();
      const res = await conn.request(CLIENT_APIS.initProducerId, { transactionalId: this.options.transactionalId, transactionTimeoutMs: this.options.transactionTimeoutMs, producerId, producerEpoch });
      checkCode(res.errorCode, `init transactional producer ${this.options.transactionalId}`);
      this.producerId = res.producerId;
      this.producerEpoch = res.producerEpoch;
    });
  }

  /**
   * One transaction holding `writes` (pipelined) and then `after` (e.g. the checkpoint, sent once
   * every write is acknowledged), committed; throws on any failure (then `init` before anything else).
   */
  async commit(writes: TxnWrite[], after: TxnWrite[] = []): Promise<Array<{ baseOffset: number }>> {
    this.throwIfFenced();
    if (!this.initialised) throw new KafkaClientError('closed', `${this.options.transactionalId}: not initialised`);
    const { transactionalId } = this.options;
    const topics = new Map<string, number[]>();
    for (const w of [...writes, ...after]) topics.set(w.topic, [...new Set([...(topics.get(w.topic) ?? []), w.partition])]);
    await this.whileBusy('add partitions', async () => {
      const conn = await this.coordinator();
      const res = await conn.request(CLIENT_APIS.addPartitionsToTxn, { transactionalId, producerId: this.producerId, producerEpoch: this.producerEpoch, topics: [...topics].map(([name, partitions]) => ({ name, partitions })) });
      for (const t of res.results as Array<{ name: string; results: Array<{ partitionIndex: number; errorCode: number }> }>) {
        for (const p of t.results) checkCode(p.errorCode, `add ${t.name}-${p.partitionIndex} to transaction ${transactionalId}`);
      }
    });
    const out = await this.produceAll(writes);
    // Written only once every write before it is acknowledged: a target that writes no transaction
    // markers (librdkafka's mock) shows what an unfinished transaction wrote, and a checkpoint
    // there must never claim data the target does not hold.
    out.push(...(await this.produceAll(after)));
    const conn = await this.coordinator();
    const end = await conn.request(CLIENT_APIS.endTxn, { transactionalId, producerId: this.producerId, producerEpoch: this.producerEpoch, committed: true });
    checkCode(end.errorCode, `commit transaction ${transactionalId}`);
    return out;
  }

  /**
   * The writes pipelined: each is written (or queued) on its leader's connection in order before
   * the next is built, and the answers are awaited together. A target that checks sequences takes
   * a prefix; any refusal throws (the caller re-initialises).
   */
  private async produceAll(writes: TxnWrite[]): Promise<Array<{ baseOffset: number }>> {
    const transactionalId = this.options.transactionalId;
    const answers: Array<Promise<ProduceResult>> = [];
    for (const w of writes) {
      const key = `${w.topic}/${w.partition}`;
      const sequence = this.sequences.get(key) ?? 0;
      const bytes = w.batch.bytes(this.producerId, this.producerEpoch, sequence);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      view.setInt16(ATTRIBUTES, view.getInt16(ATTRIBUTES) | TRANSACTIONAL_MASK);
      resealBatch(bytes, 0);
      const queued = await this.client.produceQueued(w.topic, w.partition, bytes, { acks: -1, timeoutMs: this.options.produceTimeoutMs, transactionalId }).catch((err: unknown) => err as Error);
      if (queued instanceof Error) {
        answers.push(Promise.reject(queued));
        break; // nothing after a batch that could not be sent
      }
      queued.answer.catch(() => undefined); // handled below (allSettled); not an unhandled rejection while the next batch is queued
      answers.push(queued.answer);
      this.sequences.set(key, advance(sequence, w.batch.recordCount));
    }
    const settled = await Promise.allSettled(answers);
    const out: Array<{ baseOffset: number }> = [];
    for (const [i, a] of settled.entries()) {
      if (a.status === 'rejected') throw a.reason;
      if (a.value.errorCode !== ERRORS.NONE.kafka) throw new KafkaResponseError(a.value.errorCode, `transactional produce to ${writes[i].topic}-${writes[i].partition}`);
      out.push({ baseOffset: a.value.baseOffset });
    }
    return out;
  }
}
