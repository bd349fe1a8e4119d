// An idempotent producer whose state is explicit and persisted, so a restart continues the same
// producer instead of guessing:
//
//   producerId, producerEpoch    from InitProducerId (no transactional id)
//   per partition                nextSequence (Kafka's per-partition sequence, wrapping at
//                                2^31 - 1 to 0) and the batch in flight: its base sequence, record
//                                count and the caller's marker (first/last source offsets)
//
// One batch in flight per partition (the caller sends a partition's batches one after another):
// order per partition holds whatever is retried, and the in-flight record is one entry.
//
// The state is saved (through the caller's store, durably) before a batch is written and after
// it is acknowledged. Outcomes:
//   acknowledged (or DUPLICATE_SEQUENCE_NUMBER: the target already has it)  → sequence advances
//   retriable refusal (NOT_LEADER, REQUEST_TIMED_OUT, ...)  → the same bytes again after a backoff
//                                                             (same sequence: the target dedups)
//   indefinite (timeout, socket lost after the write)  → never aborted blindly and never assumed:
//       every connection is dropped (so no copy is still queued on our side), then the caller's
//       resolver reads the target back. Landed → done. Absent → the same bytes again, same sequence.
//   the target forgot or refused the producer (UNKNOWN_PRODUCER_ID after a long outage,
//   OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH) → resolve by read-back; absent →
//       InitProducerId again (a new id, sequences from 0) and send.
//   any other refusal (MESSAGE_TOO_LARGE, authorization, ...) → thrown to the caller.
//
// After a restart the caller reads the target back once per partition and calls `recover` with
// what it found, which settles the batch that was in flight when the process stopped.
import { BASE_SEQUENCE, encodeBatch, PRODUCER_EPOCH, PRODUCER_ID, resealBatch, writeInt64, type RecordInput } from '../../core/index.js';
import type { KafkaClient } from './client.js';
import { ERRORS } from '../../errors/index.js';
import { KafkaClientError, KafkaResponseError } from './errors.js';

export interface InFlightBatch {
  baseSequence: number;
  recordCount: number;
  /** The caller's marker of what the batch holds (the uplink: source offsets). */
  firstSourceOffset: number;
  lastSourceOffset: number;
}

export interface ProducerPartitionState {
  nextSequence: number;
  inFlight: InFlightBatch | null;
}

export interface ProducerState {
  producerId: number;
  producerEpoch: number;
  /** Keyed by `topic/partition` of the target. */
  partitions: Record<string, ProducerPartitionState>;
}

export interface ProducerStateStore {
  /** Persists `state` durably (resolves once it would survive a power cut). */
  save(state: ProducerState): Promise<void>;
}

export type Outcome = 'landed' | 'absent';

/**
 * What one produce carries: its record count (the sequences it takes) and its bytes for a
 * producer id, epoch and base sequence (asked again per attempt: a new producer id re-stamps it).
 */
export interface OutgoingBatch {
  recordCount: number;
  bytes(producerId: number, producerEpoch: number, baseSequence: number): Uint8Array;
}

/** Records encoded into one uncompressed batch per attempt. */
export function recordsOutgoing(records: RecordInput[]): OutgoingBatch {
  return {
    recordCount: records.length,
    bytes: (producerId, producerEpoch, baseSequence) => encodeBatch(records, { producerId, producerEpoch, baseSequence }),
  };
}

/**
 * A ready RecordBatch (its records untouched): the producer fields are written into it in place
 * and the CRC recomputed (they are inside it), per attempt. The caller gives the batch up.
 */
export function rawOutgoing(batch: Uint8Array, recordCount: number): OutgoingBatch {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  return {
    recordCount,
    bytes: (producerId, producerEpoch, baseSequence) => {
      writeInt64(view, PRODUCER_ID, producerId);
      view.setInt16(PRODUCER_EPOCH, producerEpoch);
      view.setInt32(BASE_SEQUENCE, baseSequence);
      resealBatch(batch, 0);
      return batch;
    },
  };
}

/** Decides by reading the target whether `batch` is in `topic`/`partition`. */
export type OutcomeResolver = (topic: string, partition: number, batch: InFlightBatch) => Promise<Outcome>;

export interface ProducerOptions {
  /** The broker's wait for acks=-1 (Produce timeout_ms). */
  produceTimeoutMs: number;
  /** First retry waits this long; doubled per failure up to retryBackoffMaxMs. */
  retryBackoffMs: number;
  retryBackoffMaxMs: number;
  /** Told of each failure before a retry (logs, link state). */
  onRetry?: (topic: string, partition: number, err: Error, action: string) => void;
}

export interface SendResult {
  /** Target offset of the first record; -1 when the read-back found the batch already there. */
  baseOffset: number;
  resolvedByReadBack: boolean;
}

const SEQUENCE_MAX = 0x7fffffff;
const PRODUCER_LOST = new Set(['UNKNOWN_PRODUCER_ID', 'OUT_OF_ORDER_SEQUENCE_NUMBER', 'INVALID_PRODUCER_EPOCH']);

export const emptyProducerState = (): ProducerState => ({ producerId: -1, producerEpoch: -1, partitions: {} });

export const partitionKey = (topic: string, partition: number) => `${topic}/${partition}`;

export class IdempotentProducer {
  /** Partitions whose batch in flight must be read back before anything is sent again. */
  private readonly unresolved = new Set<string>();
  private initializing: Promise<void> | null = null;

  constructor(
    readonly client: KafkaClient,
    readonly state: ProducerState,
    private readonly store: ProducerStateStore,
    private readonly resolve: OutcomeResolver,
    private readonly options: ProducerOptions,
  ) {
    // Batches left in flight by a previous run are read back before anything else is sent.
    for (const [key, st] of Object.entries(state.partitions)) if (st.inFlight) this.unresolved.add(key);
  }

  private partitionState(topic: string, partition: number): ProducerPartitionState {
    const key = partitionKey(topic, partition);
    return (this.state.partitions[key] ??= { nextSequence: 0, inFlight: null });
  }

  /** The batch that was in flight for a partition when the state was last saved (after a restart). */
  inFlight(topic: string, partition: number): InFlightBatch | null {
    return this.state.partitions[partitionKey(topic, partition)]?.inFlight ?? null;
  }

  /**
   * Settles a batch left in flight by a previous run, from what reading the target found:
   * landed → its sequences are used; absent → its base sequence is reused by the next batch (the
   * target saw nothing after the previous one). Saved before returning.
   */
  async recover(topic: string, partition: number, outcome: Outcome): Promise<void> {
    const st = this.partitionState(topic, partition);
    if (!st.inFlight) return;
    st.nextSequence = outcome === 'landed' ? advance(st.inFlight.baseSequence, st.inFlight.recordCount) : st.inFlight.baseSequence;
    st.inFlight = null;
    this.unresolved.delete(partitionKey(topic, partition));
    await this.store.save(this.state);
  }

  private ensureProducerId(): Promise<void> {
    if (this.state.producerId >= 0) return Promise.resolve();
    // One InitProducerId for every partition that finds the id missing at once.
    return (this.initializing ??= (async () => {
      try {
        const { producerId, producerEpoch } = await this.client.initProducerId();
        this.state.producerId = producerId;
        this.state.producerEpoch = producerEpoch;
        // A new producer id starts every partition's sequence at 0, the batches in flight too
        // (they are re-encoded with the new id when sent again).
        for (const st of Object.values(this.state.partitions)) {
          st.nextSequence = 0;
          if (st.inFlight) st.inFlight = { ...st.inFlight, baseSequence: 0 };
        }
        await this.store.save(this.state);
      } finally {
        this.initializing = null;
      }
    })());
  }

  /**
   * Sends `records` to one partition exactly once as far as the target shows: resolves when the
   * target holds them (acknowledged, or found by read-back). Retries until it does, `signal`
   * aborts, or a refusal that no retry can fix is thrown.
   */
  async send(topic: string, partition: number, batch: OutgoingBatch, marker: { firstSourceOffset: number; lastSourceOffset: number }, signal: AbortSignal): Promise<SendResult> {
    const key = partitionKey(topic, partition);
    for (let failures = 0; ; failures++) {
      if (signal.aborted) throw new KafkaClientError('closed', 'the producer is stopping');
      let usedProducerId = this.state.producerId;
      try {
        if (this.unresolved.has(key)) {
          const batch = this.inFlight(topic, partition);
          const outcome = batch ? await this.resolve(topic, partition, batch) : 'absent';
          this.unresolved.delete(key);
          if (outcome === 'landed') return await this.settle(topic, partition, -1, true);
        }
        await this.ensureProducerId();
        usedProducerId = this.state.producerId;
        return await this.attempt(topic, partition, batch, marker);
      } catch (err) {
        const action = await this.afterFailure(key, err as Error, usedProducerId);
        this.options.onRetry?.(topic, partition, err as Error, action);
        await sleep(Math.min(this.options.retryBackoffMaxMs, this.options.retryBackoffMs * 2 ** Math.min(failures, 20)), signal);
      }
    }
  }

  private async attempt(topic: string, partition: number, batch: OutgoingBatch, marker: { firstSourceOffset: number; lastSourceOffset: number }): Promise<SendResult> {
    const st = this.partitionState(topic, partition);
    if (!st.inFlight) {
      st.inFlight = { baseSequence: st.nextSequence, recordCount: batch.recordCount, ...marker };
      await this.store.save(this.state); // durable before the bytes leave
    }
    const bytes = batch.bytes(this.state.producerId, this.state.producerEpoch, st.inFlight.baseSequence);
    const r = await this.client.produce(topic, partition, bytes, { acks: -1, timeoutMs: this.options.produceTimeoutMs });
    const code = r.errorCode === ERRORS.NONE.kafka ? 'NONE' : new KafkaResponseError(r.errorCode, '').code;
    if (code === 'NONE' || code === 'DUPLICATE_SEQUENCE_NUMBER') return this.settle(topic, partition, r.baseOffset, false);
    throw new KafkaResponseError(r.errorCode, `produce to ${topic}-${partition}${r.errorMessage ? ` (${r.errorMessage})` : ''}`);
  }

  private async settle(topic: string, partition: number, baseOffset: number, resolvedByReadBack: boolean): Promise<SendResult> {
    const st = this.partitionState(topic, partition);
    if (st.inFlight) st.nextSequence = advance(st.inFlight.baseSequence, st.inFlight.recordCount);
    st.inFlight = null;
    await this.store.save(this.state);
    return { baseOffset, resolvedByReadBack };
  }

  /** What a failure means for the partition's batch in flight (the retry it needs, named for logs); throws what no retry fixes. */
  private async afterFailure(key: string, err: Error, usedProducerId: number): Promise<string> {
    if (err instanceof KafkaClientError && err.indefinite) {
      // Drop every connection first, so nothing of ours is still queued toward the target
      // while the read-back looks; then resolve before anything is sent again.
      this.unresolved.add(key);
      await this.client.reset();
      return 'read back, then resend if absent';
    }
    if (err instanceof KafkaResponseError && PRODUCER_LOST.has(err.code)) {
      this.unresolved.add(key);
      // The target no longer knows our sequences: a new producer id, once (not once per partition).
      if (this.state.producerId === usedProducerId) this.state.producerId = -1;
      return 'read back, then re-initialise the producer id';
    }
    if (err instanceof KafkaResponseError && !err.retriable) throw err;
    if (err instanceof KafkaClientError && (err.fault === 'unsupported' || err.fault === 'limit')) throw err;
    return 'retry';
  }
}

/** Kafka's sequence arithmetic: wraps from 2^31 - 1 to 0. */
export function advance(sequence: number, count: number): number {
  const next = sequence + count;
  return next > SEQUENCE_MAX ? next - SEQUENCE_MAX - 1 : next;
}

/** Waits `ms`, or less when `signal` aborts (resolves either way: a stop is not an error). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
