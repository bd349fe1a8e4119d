// Append forwarding (issue 11, "gateways on every node"): an MQTT publish, an HTTP or WebSocket
// produce may arrive at any node, but only a partition's leader appends. The broker's one write
// path hands an append for a partition this node does not lead to this forwarder
// (BrokerApi's AppendForwarder), which sends the already-encoded batch to the leader's Kafka
// listener as a Produce for that exact partition and answers with the leader's result.
//
//   one decision  the partition was chosen once, on the node the client reached (the
//                 partitioner ran there, over the count that node's metadata has); the leader is
//                 asked for that partition, never re-hashes.
//   acks          the door's own: acks=-1 (an MQTT QoS 1/2 publish, HTTP and WebSocket produce)
//                 is answered by the leader only once the topic's min.insync.replicas hold it, so
//                 a PUBACK given here means what it means on the leader. acks=0 travels as acks=1:
//                 a Kafka broker never answers acks=0, and an answer is what frees the slot.
//   retries       NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, FENCED/UNKNOWN_LEADER_EPOCH,
//                 UNKNOWN_TOPIC_OR_PARTITION (the leader's metadata is behind ours), no leader
//                 yet, and a lost or refused connection are retried against the leader this
//                 node's metadata names by then, with a doubling backoff, at most `retriesMax`
//                 times and within `timeoutMs` of the call; then the last error goes to the door
//                 (its own code from host/errors/codes.ts: MQTT 5 PUBACK reason, HTTP 503/504,
//                 WebSocket close). Any other answer (NOT_ENOUGH_REPLICAS, INVALID_RECORD, ...)
//                 is the door's at once.
//   duplicates    a request whose connection broke after it was written may have been appended:
//                 it is sent again (at-least-once, as an MQTT QoS 1 publisher's own resend).
//   ordering      per partition at most `inFlightMax` forwards at a time (default 1: the next
//                 waits until the previous was answered, retries included, so one producer's
//                 appends land in the order it made them); up to `queuedMax` more wait in call
//                 order, past that LIMIT_EXCEEDED. Forwards travel on their own connections
//                 (a client of their own), never behind a follower's long-polling fetch.
//   self          if this node becomes the leader while a forward waits, it appends locally.
import type { Logger } from '../logging.js';
import type { Broker } from '../broker/broker.js';
import type { AppendForwarder, AppendOptions, AppendResult, TopicPartition } from '../broker/api.js';
import { NO_LEADER } from '../broker/metadata/records.js';
import { BrokerError, ERRORS, errorNameForKafkaCode, type ErrorName } from '../errors/index.js';
import { KafkaClient } from '../kafka/client/client.js';
import { CLIENT_APIS } from '../kafka/client/apis.js';
import { KafkaClientError } from '../kafka/client/errors.js';
import type { QuorumMetadataStore } from './quorum-metadata-store.js';

export interface ForwardOptions {
  nodeId: number;
  /** A forward not answered by then (retries included) fails with its last error. */
  timeoutMs: number;
  retriesMax: number;
  retryBackoffMs: number;
  inFlightMax: number;
  queuedMax: number;
}

/** Answers after which the leader this node knows is wrong or not ready: ask again. */
const STALE_LEADER = new Set<ErrorName>(['NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'FENCED_LEADER_EPOCH', 'UNKNOWN_LEADER_EPOCH', 'UNKNOWN_TOPIC_OR_PARTITION']);
const RETRY_BACKOFF_MS_MAX = 1000;
/** RecordBatch v2: batchLength (int32) at 8 counts the bytes after it; lastOffsetDelta (int32) at 23. */
const BATCH_LENGTH_AT = 8;
const BATCH_HEADER_BYTES = 12;
const LAST_OFFSET_DELTA_AT = 23;

/** Offsets the batches span (sum of lastOffsetDelta + 1), for the last offset of a forwarded append. */
export function offsetsSpanned(batches: Uint8Array): number {
  const view = new DataView(batches.buffer, batches.byteOffset, batches.byteLength);
  let span = 0;
  for (let at = 0; at + LAST_OFFSET_DELTA_AT + 4 <= batches.byteLength; ) {
    span += view.getInt32(at + LAST_OFFSET_DELTA_AT) + 1;
    at += BATCH_HEADER_BYTES + view.getInt32(at + BATCH_LENGTH_AT);
  }
  return span;
}

/** One partition's forwards: how many are out, and the ones waiting their turn (FIFO). */
interface Lane {
  inFlight: number;
  waiting: Array<() => void>;
}

export class AppendForwarding implements AppendForwarder {
  private readonly lanes = new Map<string, Lane>();
  private closed = false;

  constructor(
    private readonly broker: Broker,
    private readonly store: QuorumMetadataStore,
    private readonly client: KafkaClient,
    private readonly o: ForwardOptions,
    private readonly log: Logger,
  ) {}

  /** A client of its own for forwards: requests bounded by the forward timeout, one window per leader. */
  static client(o: ForwardOptions, self: string): KafkaClient {
    return new KafkaClient({
      bootstrap: [self], // never asked: forwards go to the leader this node's metadata names
      clientId: `tributary-forward-${o.nodeId}`,
      connectTimeoutMs: Math.min(3000, o.timeoutMs),
      requestTimeoutMs: o.timeoutMs,
      inFlightMax: 64,
      queuedMax: 1024,
      responseBytesMax: 1024 * 1024,
      reconnectBackoffMs: 50,
      reconnectBackoffMaxMs: 1000,
    });
  }

  close(): void {
    this.closed = true;
    for (const lane of this.lanes.values()) for (const go of lane.waiting.splice(0)) go();
  }

  async forward(tp: TopicPartition, batches: Uint8Array, options: AppendOptions, local: () => Promise<AppendResult>): Promise<AppendResult> {
    const key = `${tp.topic}\u0000${tp.partition}`;
    await this.enter(key, tp);
    try {
      return await this.send(tp, batches, options, local);
    } finally {
      this.leave(key);
    }
  }

  private async enter(key: string, tp: TopicPartition): Promise<void> {
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = { inFlight: 0, waiting: [] }));
    if (lane.inFlight < this.o.inFlightMax && lane.waiting.length === 0) {
      lane.inFlight++;
      return;
    }
    if (lane.waiting.length >= this.o.queuedMax) {
      throw new BrokerError('LIMIT_EXCEEDED', `${tp.topic}-${tp.partition}: ${lane.waiting.length} appends already wait to be forwarded to the leader (cluster.forwardQueuedMax=${this.o.queuedMax}); retry`);
    }
    // The slot is handed over by leave(), so no later call can overtake one that waits.
    await new Promise<void>((resolve) => lane.waiting.push(resolve));
  }

  private leave(key: string): void {
    const lane = this.lanes.get(key);
    if (!lane) return;
    const next = lane.waiting.shift();
    if (next) return next(); // the slot passes on: inFlight unchanged
    lane.inFlight--;
    if (lane.inFlight === 0) this.lanes.delete(key);
  }

  private async send(tp: TopicPartition, batches: Uint8Array, options: AppendOptions, local: () => Promise<AppendResult>): Promise<AppendResult> {
    const deadline = Date.now() + Math.min(this.o.timeoutMs, options.timeoutMs ?? this.o.timeoutMs);
    let backoffMs = this.o.retryBackoffMs;
    let last: BrokerError & { retryForward?: boolean } = new BrokerError('LEADER_NOT_AVAILABLE', `${tp.topic}-${tp.partition} has no leader yet`);
    for (let attempt = 0; attempt <= this.o.retriesMax && !this.closed; attempt++) {
      if (attempt > 0) {
        const waitMs = Math.min(backoffMs, deadline - Date.now());
        if (waitMs <= 0) break;
        await new Promise((resolve) => setTimeout(resolve, waitMs));
        backoffMs = Math.min(backoffMs * 2, RETRY_BACKOFF_MS_MAX);
      }
      const state = this.broker.partitionState(tp);
      if (state.role === 'leader') return local();
      const leader = state.leaderId === NO_LEADER ? undefined : this.store.image().brokers.get(state.leaderId);
      if (!leader || leader.fenced) {
        last = new BrokerError('LEADER_NOT_AVAILABLE', `${tp.topic}-${tp.partition}: no live leader known (leader ${state.leaderId}, epoch ${state.leaderEpoch}); forwarding waits for an election`);
        continue;
      }
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) break;
      try {
        return await this.produce(tp, batches, options, `${leader.host}:${leader.port}`, remainingMs);
      } catch (err) {
        last = this.asRetry(err, tp, state.leaderId);
        if (!last.retryForward) throw last;
        this.log.debug({ tp: `${tp.topic}-${tp.partition}`, leader: state.leaderId, attempt, err: last.message }, 'forward to the leader failed; retrying');
      }
    }
    if (Date.now() >= deadline) last = new BrokerError(last.code === 'LEADER_NOT_AVAILABLE' || last.code === 'NOT_LEADER_OR_FOLLOWER' ? last.code : 'REQUEST_TIMED_OUT', `forwarding to ${tp.topic}-${tp.partition}'s leader gave up after cluster.forwardTimeoutMs=${this.o.timeoutMs}: ${last.message}`);
    throw last;
  }

  private async produce(tp: TopicPartition, batches: Uint8Array, options: AppendOptions, address: string, remainingMs: number): Promise<AppendResult> {
    const conn = await this.client.connection(address);
    const res = await conn.request(CLIENT_APIS.produce, {
      transactionalId: null,
      acks: options.acks === -1 ? -1 : 1,
      timeoutMs: remainingMs,
      topicData: [{ name: tp.topic, partitionData: [{ index: tp.partition, records: batches }] }],
    });
    const p = res.responses?.[0]?.partitionResponses?.[0] as { errorCode: number; baseOffset: number; logAppendTimeMs: number; logStartOffset: number; errorMessage: string | null } | undefined;
    if (!p) throw new BrokerError('UNKNOWN_SERVER_ERROR', `forward to ${address}: the Produce answer names no partition`);
    if (p.errorCode !== ERRORS.NONE.kafka) {
      const name = errorNameForKafkaCode(p.errorCode);
      throw new BrokerError(name, `leader at ${address}: ${p.errorMessage ?? name}`);
    }
    return { baseOffset: p.baseOffset, lastOffset: p.baseOffset + offsetsSpanned(batches) - 1, logAppendTimeMs: p.logAppendTimeMs, logStartOffset: p.logStartOffset };
  }

  /** The error as the door will see it, marked when another attempt may succeed. */
  private asRetry(err: unknown, tp: TopicPartition, leaderId: number): BrokerError & { retryForward?: boolean } {
    if (err instanceof KafkaClientError) {
      if (err.fault === 'limit') return new BrokerError('LIMIT_EXCEEDED', `forwarding to node ${leaderId}: ${err.message}`);
      const e: BrokerError & { retryForward?: boolean } = new BrokerError('NOT_LEADER_OR_FOLLOWER', `${tp.topic}-${tp.partition}: leader node ${leaderId} not reachable (${err.message})`);
      e.retryForward = err.fault === 'connect' || err.fault === 'disconnected' || err.fault === 'timeout' || err.fault === 'closed';
      return e;
    }
    const e: BrokerError & { retryForward?: boolean } = err instanceof BrokerError ? err : new BrokerError('UNKNOWN_SERVER_ERROR', (err as Error).message);
    e.retryForward = STALE_LEADER.has(e.code);
    return e;
  }
}
