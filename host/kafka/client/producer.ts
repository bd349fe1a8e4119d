// An idempotent producer whose state is explicit and persisted, so a restart continues the same
// producer instead of guessing:
//
//   producerId, producerEpoch    from InitProducerId (no transactional id)
//   per partition                nextSequence (the next sequence to give out; Kafka's per-partition
//                                sequence, wrapping at 2^31 - 1 to 0) and the batches in flight, in
//                                order: each with the producer id it was sent under, its base
//                                sequence, record count and the caller's marker (first/last
//                                source offsets)
//
// A pipeline per partition: up to the caller's window (Kafka allows five with idempotence) of
// batches written and unanswered. `start` gives a batch its sequence, saves the state (the batch
// is in flight durably before its bytes leave), and writes the request; its answer comes later.
// Requests of one connection are written in order and answered in order, and a target that checks
// sequences (Kafka, Redpanda, Tributary) refuses a batch whose predecessor it did not take
// (OUT_OF_ORDER_SEQUENCE_NUMBER), so what lands is always a prefix of what was started.
//
// Outcomes of an answer:
//   acknowledged (or DUPLICATE_SEQUENCE_NUMBER: the target already has it)  → the batch leaves
//       the in-flight list (saved by the caller's next save)
//   anything else  → `fail`: the pipeline stops (the caller waits for every answer still due),
//       the batches still in flight become unresolved and the caller reads the target back and
//       calls `recover` with the highest source offset the target holds. What the failure means:
//       indefinite (timeout, socket lost after the write) → every connection is dropped first,
//           so no copy of ours is still queued toward the target while the read-back looks;
//           never aborted blindly, never assumed
//       the target forgot or refused the producer (UNKNOWN_PRODUCER_ID after a long outage,
//           OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH) → a new producer id
//           (InitProducerId, sequences from 0) before the next batch
//       retriable refusal (NOT_LEADER, REQUEST_TIMED_OUT, ...) → read back and go on
//       any other refusal (MESSAGE_TOO_LARGE, authorization, ...) → `fail` reports it fatal
// `recover` settles the list: batches up to that offset landed (their sequences are used), the
// rest are absent, and the first absent batch sent under the current producer id gives its base
// sequence back, so the batch sent next in its place (the same source records) reuses it — a copy
// of the absent one still on its way is then refused as a duplicate by a target that checks.
// After a restart the same `recover` settles what the previous run left in flight.
import { BASE_SEQUENCE, encodeBatch, PRODUCER_EPOCH, PRODUCER_ID, resealBatch, writeInt64, type RecordInput } from '../../core/index.js';
import type { KafkaClient, ProduceResult } from './client.js';
import { ERRORS } from '../../errors/index.js';
import { KafkaClientError, KafkaResponseError } from './errors.js';

export interface InFlightBatch {
  /** The producer id the batch was sent under (-1 in files written before pipelining: the current one). */
  producerId?: number;
  baseSequence: number;
  recordCount: number;
  /** The caller's marker of what the batch holds (the uplink: source offsets). */
  firstSourceOffset: number;
  lastSourceOffset: number;
}

export interface ProducerPartitionState {
  /** The next sequence to give out. */
  nextSequence: number;
  /** Started and not yet acknowledged, in order (older state files: null or one batch). */
  inFlight: InFlightBatch[];
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

/**
 * What one produce carries: its record count (the sequences it takes) and its bytes for a
 * producer id, epoch and base sequence (asked again per attempt: a new producer id re-stamps it).
 */
export interface OutgoingBatch {
  recordCount: number;
  /** Bytes of the batch as it goes out (what a bandwidth cap counts). */
  sizeBytes: number;
  bytes(producerId: number, producerEpoch: number, baseSequence: number): Uint8Array;
}

/** Records encoded once into one uncompressed batch; each attempt stamps its producer fields into it. */
export function recordsOutgoing(records: RecordInput[]): OutgoingBatch {
  return rawOutgoing(encodeBatch(records), records.length);
}

/**
 * A ready RecordBatch (its records untouched): the producer fields are written into it in place
 * and the CRC recomputed (they are inside it), per attempt. The caller gives the batch up.
 */
export function rawOutgoing(batch: Uint8Array, recordCount: number): OutgoingBatch {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  return {
    recordCount,
    sizeBytes: batch.byteLength,
    bytes: (producerId, producerEpoch, baseSequence) => {
      writeInt64(view, PRODUCER_ID, producerId);
      view.setInt16(PRODUCER_EPOCH, producerEpoch);
      view.setInt32(BASE_SEQUENCE, baseSequence);
      resealBatch(batch, 0);
      return batch;
    },
  };
}

export interface ProducerOptions {
  /** The broker's wait for acks=-1 (Produce timeout_ms). */
  produceTimeoutMs: number;
}

/** The answer to one started batch: acknowledged, or the failure to pass to `fail`. */
export type Answer = { ok: true; baseOffset: number; batch: InFlightBatch } | { ok: false; error: Error; batch: InFlightBatch };

/** What the caller does after a failed pipeline. */
export type FailureAction = 'read back' | 'read back, then a new producer id' | 'fatal';

const SEQUENCE_MAX = 0x7fffffff;
const PRODUCER_LOST = new Set(['UNKNOWN_PRODUCER_ID', 'OUT_OF_ORDER_SEQUENCE_NUMBER', 'INVALID_PRODUCER_EPOCH']);

export const emptyProducerState = (): ProducerState => ({ producerId: -1, producerEpoch: -1, partitions: {} });

export const partitionKey = (topic: string, partition: number) => `${topic}/${partition}`;

/** A partition's in-flight field as stored by any version (null, one batch, or a list). */
function inFlightList(v: InFlightBatch[] | InFlightBatch | null | undefined): InFlightBatch[] {
  if (!v) return [];
  return Array.isArray(v) ? v : [v];
}

export class IdempotentProducer {
  /** Partitions whose batches in flight must be settled (`recover`) before anything is started. */
  private readonly unresolved = new Set<string>();
  private initializing: Promise<void> | null = null;

  constructor(
    readonly client: KafkaClient,
    readonly state: ProducerState,
    private readonly store: ProducerStateStore,
    private readonly options: ProducerOptions,
  ) {
    // Batches left in flight by a previous run are settled by reading back before anything else is sent.
    for (const [key, st] of Object.entries(state.partitions)) {
      st.inFlight = inFlightList(st.inFlight);
      if (st.inFlight.length > 0) this.unresolved.add(key);
    }
  }

  private partitionState(topic: string, partition: number): ProducerPartitionState {
    const key = partitionKey(topic, partition);
    return (this.state.partitions[key] ??= { nextSequence: 0, inFlight: [] });
  }

  /** The batches in flight for a partition (after a restart: what the previous run left). */
  inFlight(topic: string, partition: number): InFlightBatch[] {
    return this.state.partitions[partitionKey(topic, partition)]?.inFlight ?? [];
  }

  /** True when `recover` must run before the partition's next `start`. */
  needsRecovery(topic: string, partition: number): boolean {
    return this.unresolved.has(partitionKey(topic, partition));
  }

  /**
   * Settles the batches in flight from what reading the target found: `lastSourceOffset` is the
   * highest source offset the target holds (-1: none). Batches up to it landed; the first absent
   * one sent under the current producer id gives its base sequence back. Saved before returning.
   */
  async recover(topic: string, partition: number, lastSourceOffset: number): Promise<{ landed: InFlightBatch[]; absent: InFlightBatch[] }> {
    const st = this.partitionState(topic, partition);
    const list = inFlightList(st.inFlight);
    const absent = list.filter((b) => b.lastSourceOffset > lastSourceOffset);
    const current = absent.find((b) => (b.producerId ?? this.state.producerId) === this.state.producerId);
    if (current) st.nextSequence = current.baseSequence;
    st.inFlight = [];
    this.unresolved.delete(partitionKey(topic, partition));
    await this.store.save(this.state);
    return { landed: list.filter((b) => b.lastSourceOffset <= lastSourceOffset), absent };
  }

  private ensureProducerId(): Promise<void> {
    if (this.state.producerId >= 0) return Promise.resolve();
    // One InitProducerId for every partition that finds the id missing at once.
    return (this.initializing ??= (async () => {
      try {
        const { producerId, producerEpoch } = await this.client.initProducerId();
        this.state.producerId = producerId;
        this.state.producerEpoch = producerEpoch;
        // A new producer id starts every partition's sequence at 0 (batches still in flight under
        // the old id keep it: their answers, or a read-back, settle them).
        for (const st of Object.values(this.state.partitions)) st.nextSequence = 0;
        await this.store.save(this.state);
      } finally {
        this.initializing = null;
      }
    })());
  }

  /**
   * Starts one batch: a sequence, the state saved, the request written (or queued on the
   * connection). Resolves once written, with its answer to come; the caller awaits each `start`
   * before the next so the partition's batches go out in order. Throws (nothing in flight was
   * added) when the request could not be written; then `fail` decides, as for a failed answer.
   */
  async start(topic: string, partition: number, batch: OutgoingBatch, marker: { firstSourceOffset: number; lastSourceOffset: number }, urgent = false): Promise<{ answer: Promise<Answer> }> {
    if (this.unresolved.has(partitionKey(topic, partition))) throw new KafkaClientError('closed', `${topic}-${partition}: batches in flight are not settled yet (read back first)`);
    await this.ensureProducerId();
    const st = this.partitionState(topic, partition);
    const inFlight: InFlightBatch = { producerId: this.state.producerId, baseSequence: st.nextSequence, recordCount: batch.recordCount, ...marker };
    st.nextSequence = advance(st.nextSequence, batch.recordCount);
    st.inFlight.push(inFlight);
    await this.store.save(this.state); // durable before the bytes leave
    const bytes = batch.bytes(this.state.producerId, this.state.producerEpoch, inFlight.baseSequence);
    // When this throws the batch was never written (it cannot land): the caller's read-back settles it as absent.
    const queued = await this.client.produceQueued(topic, partition, bytes, { acks: -1, timeoutMs: this.options.produceTimeoutMs, urgent });
    const answer = queued.answer.then(
      (r): Answer => {
        const code = r.errorCode === ERRORS.NONE.kafka ? 'NONE' : new KafkaResponseError(r.errorCode, '').code;
        if (code !== 'NONE' && code !== 'DUPLICATE_SEQUENCE_NUMBER') return { ok: false, error: new KafkaResponseError(r.errorCode, `produce to ${topic}-${partition}${r.errorMessage ? ` (${r.errorMessage})` : ''}`), batch: inFlight };
        const i = st.inFlight.indexOf(inFlight);
        if (i >= 0) st.inFlight.splice(i, 1);
        return { ok: true, baseOffset: r.baseOffset, batch: inFlight };
      },
      (error: Error): Answer => ({ ok: false, error, batch: inFlight }),
    );
    return { answer };
  }

  /**
   * After a failed start or answer, once every answer of the partition's pipeline is in: the
   * partition is unresolved until `recover`; the connections are dropped after an indefinite
   * failure; the producer id is given up after a refusal that means the target lost it.
   */
  async fail(topic: string, partition: number, err: Error, usedProducerId: number): Promise<FailureAction> {
    const key = partitionKey(topic, partition);
    this.unresolved.add(key);
    if (err instanceof KafkaClientError && err.indefinite) {
      await this.client.reset();
      return 'read back';
    }
    if (err instanceof KafkaResponseError && PRODUCER_LOST.has(err.code)) {
      // The target no longer knows our sequences: a new producer id, once (not once per partition).
      if (this.state.producerId === usedProducerId) this.state.producerId = -1;
      return 'read back, then a new producer id';
    }
    if (err instanceof KafkaResponseError && !err.retriable) return 'fatal';
    if (err instanceof KafkaClientError && (err.fault === 'unsupported' || err.fault === 'limit')) return 'fatal';
    return 'read back';
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
