// A transactional producer on the project's own codec, for one transactional id (the uplink: one
// per source partition), its state explicit: producer id, epoch, per-partition sequences.
//
//   init       FindCoordinator (key type 1) names the transaction coordinator; InitProducerId with
//              the transactional id there. A coordinator that already knows the id bumps its epoch
//              (Kafka fences the old epoch and aborts a transaction it left open), so `init` after a
//              failure is how a transaction in an unknown state is settled: re-initialised, never
//              aborted blindly by a guess. CONCURRENT_TRANSACTIONS and COORDINATOR_LOAD_IN_PROGRESS
//              (the previous transaction is still completing) are retried after a short wait.
//   commit     one transaction: AddPartitionsToTxn (every partition written), one Produce per
//              partition (transactional attribute set, the transactional id in the request,
//              sequences from 0 per partition for each new epoch), then EndTxn(commit). Every step
//              is checked; any failure throws and the caller calls `init` again before it reads the
//              target back (read_committed) to learn what was committed.
// Transactions V2 (KIP-890: AddPartitionsToTxn v4+, EndTxn v5) is not spoken; the highest classic
// versions both sides support are used.
import { ERRORS } from '../../errors/index.js';
import { ATTRIBUTES, TRANSACTIONAL_MASK, resealBatch } from '../../core/index.js';
import { CLIENT_APIS } from './apis.js';
import type { KafkaClient } from './client.js';
import { checkCode, KafkaClientError, KafkaResponseError } from './errors.js';
import { advance, sleep, type OutgoingBatch } from './producer.js';

const TRANSACTION_KEY_TYPE = 1;
/** InitProducerId / AddPartitionsToTxn attempts while the coordinator says the last transaction is still completing. */
const BUSY_ATTEMPTS_MAX = 20;
const BUSY_WAIT_MS = 100;
const BUSY = new Set(['CONCURRENT_TRANSACTIONS', 'COORDINATOR_LOAD_IN_PROGRESS', 'COORDINATOR_NOT_AVAILABLE', 'NOT_COORDINATOR']);

export interface TransactionalOptions {
  transactionalId: string;
  /** How long the coordinator lets a transaction stay open before it aborts it (a killed producer's). */
  transactionTimeoutMs: number;
  produceTimeoutMs: number;
}

export interface TxnWrite {
  topic: string;
  partition: number;
  batch: OutgoingBatch;
}

export class TransactionalProducer {
  producerId = -1;
  producerEpoch = -1;
  private readonly sequences = new Map<string, number>();
  private readonly signal = new AbortController().signal;

  constructor(
    readonly client: KafkaClient,
    readonly options: TransactionalOptions,
  ) {}

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

  /** InitProducerId with the transactional id (a new epoch: the previous one is fenced). */
  async init(): Promise<void> {
    await this.whileBusy('init', async () => {
      const conn = await this.coordinator();
      const res = await conn.request(CLIENT_APIS.initProducerId, { transactionalId: this.options.transactionalId, transactionTimeoutMs: this.options.transactionTimeoutMs, producerId: this.producerId, producerEpoch: this.producerEpoch });
      checkCode(res.errorCode, `init transactional producer ${this.options.transactionalId}`);
      this.producerId = res.producerId;
      this.producerEpoch = res.producerEpoch;
    });
    this.sequences.clear();
  }

  /** One transaction holding `writes`, committed; throws on any failure (then `init` before anything else). */
  async commit(writes: TxnWrite[]): Promise<Array<{ baseOffset: number }>> {
    if (this.producerId < 0) throw new KafkaClientError('closed', `${this.options.transactionalId}: not initialised`);
    const { transactionalId } = this.options;
    const topics = new Map<string, number[]>();
    for (const w of writes) topics.set(w.topic, [...(topics.get(w.topic) ?? []), w.partition]);
    await this.whileBusy('add partitions', async () => {
      const conn = await this.coordinator();
      const res = await conn.request(CLIENT_APIS.addPartitionsToTxn, { transactionalId, producerId: this.producerId, producerEpoch: this.producerEpoch, topics: [...topics].map(([name, partitions]) => ({ name, partitions })) });
      for (const t of res.results as Array<{ name: string; results: Array<{ partitionIndex: number; errorCode: number }> }>) {
        for (const p of t.results) checkCode(p.errorCode, `add ${t.name}-${p.partitionIndex} to transaction ${transactionalId}`);
      }
    });
    const out: Array<{ baseOffset: number }> = [];
    for (const w of writes) {
      const key = `${w.topic}/${w.partition}`;
      const sequence = this.sequences.get(key) ?? 0;
      const bytes = w.batch.bytes(this.producerId, this.producerEpoch, sequence);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      view.setInt16(ATTRIBUTES, view.getInt16(ATTRIBUTES) | TRANSACTIONAL_MASK);
      resealBatch(bytes, 0);
      const r = await this.client.produce(w.topic, w.partition, bytes, { acks: -1, timeoutMs: this.options.produceTimeoutMs, transactionalId });
      if (r.errorCode !== ERRORS.NONE.kafka) throw new KafkaResponseError(r.errorCode, `transactional produce to ${w.topic}-${w.partition}`);
      this.sequences.set(key, advance(sequence, w.batch.recordCount));
      out.push({ baseOffset: r.baseOffset });
    }
    const conn = await this.coordinator();
    const end = await conn.request(CLIENT_APIS.endTxn, { transactionalId, producerId: this.producerId, producerEpoch: this.producerEpoch, committed: true });
    checkCode(end.errorCode, `commit transaction ${transactionalId}`);
    return out;
  }
}
