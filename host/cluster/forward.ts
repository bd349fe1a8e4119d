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
//                 yet, REQUEST_TIMED_OUT (the leader's wait for its in-sync replicas), and a lost,
//                 refused or silent connection (no answer within `requestTimeoutMs`) are retried
//                 against the leader this node's metadata names by then, with a doubling backoff,
//                 at most `retriesMax` times and within `timeoutMs` of the call; then the last
//                 error goes to the door (its own code from host/errors/codes.ts: MQTT 5 PUBACK
//                 reason, HTTP 503/504, WebSocket close). Any other answer (NOT_ENOUGH_REPLICAS,
//                 INVALID_RECORD, ...) is the door's at once.
//   identity      every forward connection authenticates as this node (SASL TRIBUTARY-NODE,
//                 host/security/node-identity.ts): the leader then takes internal appends from it (an MQTT
//                 session or retained message written on a node that does not lead its partition)
//                 and does not authorize forwarded client appends again (their door did). A client
//                 principal is refused an internal topic whatever it holds.
//   exactly once  a retry resends a batch the leader may already hold (the connection broke after
//                 the request was written). So the forwarder is an idempotent producer (KIP-98):
//                 one producer id of its own, reserved from the cluster's producer-id blocks under
//                 owner -nodeId (never the Kafka door's allocator: one allocator per owner), and
//                 per partition an epoch and the next sequence. Each forward is stamped once, when
//                 it gets its turn (id, epoch, consecutive sequences, CRC recomputed), and every
//                 retry sends those same bytes: the leader — or a new leader, which replicated the
//                 producer state with the batch — answers a duplicate with the original offsets
//                 and writes nothing. After a forward that failed to the door (its outcome
//                 unknown) the partition's next forward starts a new epoch at sequence 0, which a
//                 leader accepts whatever it holds; an epoch past 32767 takes a new producer id.
//                 OUT_OF_ORDER_SEQUENCE_NUMBER on a forward never written before (a leader that
//                 lost our previous batch: acks=1 across a failover) restamps it in a new epoch;
//                 on a resend it goes to the door, since the batch may be stored. Limits
//                 (docs/cluster.md): a batch a door built as idempotent already is sent as it
//                 is; a forwarder's state lives in memory, so a node restart starts a new
//                 producer id and what its clients resend after that may be stored twice (MQTT
//                 QoS 1 is at-least-once end to end); a leader that forgot the id (more than
//                 broker.log.maxProducerIds producers on the partition, or broker.log.producerIdExpirationMs) accepts
//                 a resend again; with inFlightMax > 1 a forward that failed to the door fences
//                 the others still in flight (INVALID_PRODUCER_EPOCH to their doors).
//   ordering      per partition at most `inFlightMax` forwards at a time (default 1: the next
//                 waits until the previous was answered, retries included, so one producer's
//                 appends land in the order it made them); up to `queuedMax` more wait in call
//                 order, past that LIMIT_EXCEEDED. Forwards travel on their own connections
//                 (a client of their own), never behind a follower's long-polling fetch.
//   self          if this node becomes the leader while a forward waits, it appends locally
//                 (the stamped batch: a copy this node replicated is answered as a duplicate).
import type { Logger } from '../logging.js';
import type { Broker } from '../broker/broker.js';
import type { AppendForwarder, AppendOptions, AppendResult, TopicPartition } from '../broker/api.js';
import { NO_LEADER } from '../broker/metadata/records.js';
import { BrokerError, ERRORS, errorNameForKafkaCode, type ErrorName } from '../errors/index.js';
import { KafkaClient } from '../kafka/client/client.js';
import { CLIENT_APIS } from '../kafka/client/apis.js';
import { KafkaClientError } from '../kafka/client/errors.js';
import { metadataBlocks, ProducerIds } from '../broker/producer-ids.js';
import { BATCH_LENGTH, CRC, LAST_OFFSET_DELTA, LOG_OVERHEAD, PRODUCER_EPOCH, PRODUCER_ID, BASE_SEQUENCE, ATTRIBUTES, readInt64, writeInt64 } from '../core/batch-layout.js';
import { crc32cRange } from '../core/crc32c.js';
import type { QuorumMetadataStore } from './quorum-metadata-store.js';
import { NODE_SASL_MECHANISM, nodeIdentity } from '../security/node-identity.js';

export interface ForwardOptions {
  nodeId: number;
  /** A forward not answered by then (retries included) fails with its last error. */
  timeoutMs: number;
  /** One attempt unanswered this long is given up (its connection closed) and sent again. */
  requestTimeoutMs: number;
  retriesMax: number;
  retryBackoffMs: number;
  inFlightMax: number;
  queuedMax: number;
}

/** Answers after which the leader this node knows is wrong or not ready: ask again. */
/** REQUEST_TIMED_OUT too: the leader appended and its in-sync replicas were slow; a resend is a duplicate, answered once they hold it. */
const RETRIABLE = new Set<ErrorName>(['NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'FENCED_LEADER_EPOCH', 'UNKNOWN_LEADER_EPOCH', 'UNKNOWN_TOPIC_OR_PARTITION', 'REQUEST_TIMED_OUT']);
const RETRY_BACKOFF_MS_MAX = 1000;
/** Ids reserved per metadata write for forwarders: one per node start, more only when a partition's epochs run out. */
const FORWARD_PRODUCER_ID_BLOCK = 4;
const PRODUCER_EPOCH_MAX = 32767;
const SEQUENCE_MODULUS = 2 ** 31;

/** Offsets the batches span (sum of lastOffsetDelta + 1), for the last offset of a forwarded append. */
export function offsetsSpanned(batches: Uint8Array): number {
  const view = new DataView(batches.buffer, batches.byteOffset, batches.byteLength);
  let span = 0;
  for (let at = 0; at + LAST_OFFSET_DELTA + 4 <= batches.byteLength; ) {
    span += view.getInt32(at + LAST_OFFSET_DELTA) + 1;
    at += LOG_OVERHEAD + view.getInt32(at + BATCH_LENGTH);
  }
  return span;
}

/** True when some batch already carries a producer id (a door's own idempotent batch: sent as it is). */
export function carriesProducerId(batches: Uint8Array): boolean {
  const view = new DataView(batches.buffer, batches.byteOffset, batches.byteLength);
  for (let at = 0; at + BASE_SEQUENCE + 4 <= batches.byteLength; at += LOG_OVERHEAD + view.getInt32(at + BATCH_LENGTH)) {
    if (readInt64(view, at + PRODUCER_ID) >= 0) return true;
  }
  return false;
}

/**
 * Writes a producer id, epoch and consecutive sequences (from `firstSeq`, wrapping at 2^31) into
 * every batch, in place, and recomputes each batch's CRC (the fields lie inside it). Returns the
 * sequence after the last record.
 */
export function stampProducer(batches: Uint8Array, producerId: number, epoch: number, firstSeq: number): number {
  const view = new DataView(batches.buffer, batches.byteOffset, batches.byteLength);
  let seq = firstSeq;
  for (let at = 0; at + BASE_SEQUENCE + 4 <= batches.byteLength; ) {
    const end = at + LOG_OVERHEAD + view.getInt32(at + BATCH_LENGTH);
    writeInt64(view, at + PRODUCER_ID, producerId);
    view.setInt16(at + PRODUCER_EPOCH, epoch);
    view.setInt32(at + BASE_SEQUENCE, seq);
    view.setUint32(at + CRC, crc32cRange(batches, at + ATTRIBUTES, end));
    seq = (seq + view.getInt32(at + LAST_OFFSET_DELTA) + 1) % SEQUENCE_MODULUS;
    at = end;
  }
  return seq;
}

/** This forwarder's idempotent identity toward one partition's leader. */
interface PartitionProducer {
  producerId: number;
  epoch: number;
  nextSeq: number;
  /** A forward failed to its door (it may or may not be stored): the next one opens a new epoch. */
  uncertain: boolean;
}

type ForwardError = BrokerError & { retryForward?: boolean };

/** One partition's forwards: how many are out, and the ones waiting their turn (FIFO). */
interface Lane {
  inFlight: number;
  waiting: Array<() => void>;
}

export class AppendForwarding implements AppendForwarder {
  private readonly lanes = new Map<string, Lane>();
  /** Per partition forwarded to (bounded by the partitions this node knows: broker.maxPartitionsTotal). */
  private readonly producers = new Map<string, PartitionProducer>();
  private readonly producerIds: ProducerIds;
  /** The id new partitions start with (one reservation at a time); replaced only when a partition's epochs run out. */
  private producerId: Promise<number> | undefined;
  private closed = false;

  constructor(
    private readonly broker: Broker,
    private readonly store: QuorumMetadataStore,
    private readonly client: KafkaClient,
    private readonly o: ForwardOptions,
    private readonly log: Logger,
  ) {
    // Owner -nodeId: the Kafka door's allocator owns +nodeId's blocks, and two allocators under
    // one owner could both take one block (producer-ids.ts).
    this.producerIds = new ProducerIds(metadataBlocks(store, -o.nodeId), FORWARD_PRODUCER_ID_BLOCK);
  }

  /**
   * A client of its own for forwards: requests bounded by the forward timeout, one window per
   * leader. Every connection authenticates as this node (TRIBUTARY-NODE, host/security/node-identity.ts), so
   * the leader takes its internal appends and does not authorize forwarded ones again; `nodeAt`
   * names the node registered at an address (the proof is bound to it).
   */
  static client(o: ForwardOptions, self: string, nodeAt: (address: string) => number | undefined): KafkaClient {
    const identity = nodeIdentity();
    return new KafkaClient({
      sasl: {
        mechanism: NODE_SASL_MECHANISM,
        user: String(o.nodeId),
        password: '',
        prove: (challenge, address) => {
          const to = nodeAt(address);
          if (to === undefined) throw new Error(`no registered node at ${address}`);
          return identity.prove(o.nodeId, to, Buffer.from(challenge, 'base64'));
        },
      },
      bootstrap: [self], // never asked: forwards go to the leader this node's metadata names
      clientId: `tributary-forward-${o.nodeId}`,
      connectTimeoutMs: Math.min(3000, o.requestTimeoutMs),
      requestTimeoutMs: o.requestTimeoutMs,
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
    let producer: PartitionProducer | undefined;
    try {
      // Stamped once, in turn order: every retry below resends these exact bytes.
      producer = carriesProducerId(batches) ? undefined : await this.stamp(key, batches);
      return await this.send(tp, batches, options, local, producer);
    } catch (err) {
      if (producer) producer.uncertain = true;
      throw err;
    } finally {
      this.leave(key);
    }
  }

  /** The partition's identity, in a new epoch after an uncertain outcome; stamps the batches with the next sequences. */
  private async stamp(key: string, batches: Uint8Array): Promise<PartitionProducer> {
    let p = this.producers.get(key);
    if (!p) {
      const producerId = await (this.producerId ??= this.reserveProducerId());
      // Another forward to this partition (inFlightMax > 1) may have set it up meanwhile.
      p = this.producers.get(key);
      if (!p) this.producers.set(key, (p = { producerId, epoch: 0, nextSeq: 0, uncertain: false }));
    } else if (p.uncertain) await this.newEpoch(p);
    p.nextSeq = stampProducer(batches, p.producerId, p.epoch, p.nextSeq);
    return p;
  }

  /** Sequence 0 of the next epoch: a leader accepts it whatever it holds of the last one. */
  private async newEpoch(p: PartitionProducer): Promise<void> {
    if (p.epoch >= PRODUCER_EPOCH_MAX) {
      p.producerId = await (this.producerId = this.reserveProducerId());
      p.epoch = 0;
    } else p.epoch++;
    p.nextSeq = 0;
    p.uncertain = false;
  }

  /** A new id for partitions that start (or run out of epochs) from now on; a failed reservation is asked again next time. */
  private reserveProducerId(): Promise<number> {
    return this.allocateProducerId().catch((err: unknown) => {
      this.producerId = undefined;
      throw err;
    });
  }

  /**
   * Reserves through the controller. Right after a controller failover the quorum answers
   * NOT_CONTROLLER (none elected yet) or REQUEST_TIMED_OUT (the proposal went to the old one):
   * asked again with the forward's backoff until cluster.forwardTimeoutMs, so the first forward
   * after a failover waits for the election, not for the door's client to retry.
   */
  private async allocateProducerId(): Promise<number> {
    const deadline = Date.now() + this.o.timeoutMs;
    let backoffMs = this.o.retryBackoffMs;
    for (;;) {
      try {
        const id = await this.producerIds.allocate();
        this.log.info({ producerId: id }, 'forwarding: producer id reserved (retried forwards are deduplicated by the leader)');
        return id;
      } catch (err) {
        const retriable = err instanceof BrokerError && (err.code === 'NOT_CONTROLLER' || err.code === 'REQUEST_TIMED_OUT');
        const waitMs = Math.min(backoffMs, deadline - Date.now());
        if (!retriable || waitMs <= 0 || this.closed) {
          // Retriable for the door: the metadata quorum has no controller right now.
          throw new BrokerError('LEADER_NOT_AVAILABLE', `forwarding: no producer id reserved yet (${(err as Error).message})`);
        }
        await new Promise((resolve) => setTimeout(resolve, waitMs));
        backoffMs = Math.min(backoffMs * 2, RETRY_BACKOFF_MS_MAX);
      }
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

  private async send(tp: TopicPartition, batches: Uint8Array, options: AppendOptions, local: () => Promise<AppendResult>, producer: PartitionProducer | undefined): Promise<AppendResult> {
    const deadline = Date.now() + Math.min(this.o.timeoutMs, options.timeoutMs ?? this.o.timeoutMs);
    let backoffMs = this.o.retryBackoffMs;
    let last: ForwardError = new BrokerError('LEADER_NOT_AVAILABLE', `${tp.topic}-${tp.partition} has no leader yet`);
    /** Whether some earlier attempt may have reached a leader (then a sequence error cannot tell whether the batch is stored). */
    let written = false;
    let restamped = false;
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
      const writtenBefore = written;
      try {
        const conn = await this.client.connection(`${leader.host}:${leader.port}`);
        written = true;
        return await this.produce(conn, tp, batches, options, `${leader.host}:${leader.port}`, remainingMs);
      } catch (err) {
        last = this.asRetry(err, tp, state.leaderId);
        if (last.code === 'OUT_OF_ORDER_SEQUENCE_NUMBER' && producer && !restamped && !writtenBefore) {
          // Refused before any append, and no earlier attempt reached a leader: these bytes are
          // stored nowhere, the leader lost our previous batch (acks=1 across a failover). A new
          // epoch starts at sequence 0, which it accepts. Once only: a second refusal is the door's.
          await this.newEpoch(producer);
          producer.nextSeq = stampProducer(batches, producer.producerId, producer.epoch, 0);
          this.log.warn({ tp: `${tp.topic}-${tp.partition}`, leader: state.leaderId, producerId: producer.producerId, epoch: producer.epoch }, 'forward: the leader holds no batch before ours (lost in a failover); sent again in a new producer epoch');
          last.retryForward = true;
          restamped = true;
          written = false;
        }
        if (!last.retryForward) throw last;
        this.log.debug({ tp: `${tp.topic}-${tp.partition}`, leader: state.leaderId, attempt, err: last.message }, 'forward to the leader failed; retrying');
      }
    }
    if (Date.now() >= deadline) last = new BrokerError(last.code === 'LEADER_NOT_AVAILABLE' || last.code === 'NOT_LEADER_OR_FOLLOWER' ? last.code : 'REQUEST_TIMED_OUT', `forwarding to ${tp.topic}-${tp.partition}'s leader gave up after cluster.forwardTimeoutMs=${this.o.timeoutMs}: ${last.message}`);
    throw last;
  }

  private async produce(conn: Awaited<ReturnType<KafkaClient['connection']>>, tp: TopicPartition, batches: Uint8Array, options: AppendOptions, address: string, remainingMs: number): Promise<AppendResult> {
    const res = await conn.request(CLIENT_APIS.produce, {
      transactionalId: null,
      acks: options.acks === -1 ? -1 : 1,
      // The leader's wait for its in-sync replicas ends well inside the attempt, so its answer
      // (REQUEST_TIMED_OUT: retried, then a duplicate) arrives before this side gives up on it.
      timeoutMs: Math.max(1, Math.min(remainingMs, Math.floor(this.o.requestTimeoutMs / 2))),
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
  private asRetry(err: unknown, tp: TopicPartition, leaderId: number): ForwardError {
    if (err instanceof KafkaClientError) {
      if (err.fault === 'limit') return new BrokerError('LIMIT_EXCEEDED', `forwarding to node ${leaderId}: ${err.message}`);
      const e: ForwardError = new BrokerError('NOT_LEADER_OR_FOLLOWER', `${tp.topic}-${tp.partition}: leader node ${leaderId} not reachable (${err.message})`);
      // auth: the leader has not applied this process's registration (its key) yet, after a restart
      e.retryForward = err.fault === 'connect' || err.fault === 'disconnected' || err.fault === 'timeout' || err.fault === 'closed' || err.fault === 'auth';
      return e;
    }
    const e: ForwardError = err instanceof BrokerError ? err : new BrokerError('UNKNOWN_SERVER_ERROR', (err as Error).message);
    e.retryForward = RETRIABLE.has(e.code);
    return e;
  }
}
