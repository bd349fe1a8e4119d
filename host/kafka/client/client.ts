// The cluster side of the client: a bootstrap list, the cluster's metadata, and each request
// routed to the broker that leads the partition it is about.
//
//   bootstrap   tried in order (then the brokers metadata named) until one connects; its
//               Metadata answer names every broker and each partition's leader
//   routing     produce, fetch and list-offsets go to the partition's leader; NOT_LEADER,
//               LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION and a lost connection drop the
//               cached leader so the next call asks for metadata again
//   reconnect   one connection per broker address, reopened on demand after a failure, never
//               sooner than the backoff: reconnectBackoffMs doubled per consecutive failure up to
//               reconnectBackoffMaxMs (a dead link is not hammered; a healed one is found again)
//
// Nothing here retries a request: the caller decides (a produce whose outcome is indefinite must
// be resolved by the producer, not resent blindly). All calls are bounded by the connection's
// request timeout and window.
import { decodeBatches, type DecodedBatch } from '../../core/index.js';
import { ERRORS } from '../../errors/index.js';
import { KafkaConnection, type ConnectionOptions } from './connection.js';
import { CLIENT_APIS } from './apis.js';
import { checkCode, KafkaClientError, KafkaResponseError } from './errors.js';

export interface KafkaClientOptions {
  /** host:port entries tried in order. */
  bootstrap: string[];
  clientId: string;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  inFlightMax: number;
  queuedMax: number;
  responseBytesMax: number;
  reconnectBackoffMs: number;
  reconnectBackoffMaxMs: number;
  /** TLS toward every broker (tls.connect options: ca, cert, key); null/absent = plain TCP. */
  tls?: import('node:tls').ConnectionOptions | null;
  /** SASL toward every broker (PLAIN, SCRAM-SHA-256/512); null/absent = none. */
  sasl?: import('./connection.js').SaslOptions | null;
}

export interface PartitionMetadata {
  partition: number;
  leaderId: number;
  leaderEpoch: number;
  errorCode: number;
}

export interface TopicMetadata {
  name: string;
  errorCode: number;
  partitions: PartitionMetadata[];
}

export interface ProduceResult {
  errorCode: number;
  baseOffset: number;
  logStartOffset: number;
  errorMessage: string | null;
}

export interface FetchResult {
  errorCode: number;
  highWatermark: number;
  logStartOffset: number;
  records: Uint8Array | null;
}

/** Error codes after which the cached leader is wrong or unknown. */
const STALE_LEADER = new Set(['NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'UNKNOWN_TOPIC_OR_PARTITION']);
const READ_UNCOMMITTED = 0;
const READ_COMMITTED = 1;
/** API keys of the transaction APIs (Kafka protocol), looked for in a peer's ApiVersions. */
const FIND_COORDINATOR_KEY = 10;
const TXN_ADD_PARTITIONS_KEY = 24;
const TXN_END_KEY = 26;
/** Our replica id in Fetch and ListOffsets: a consumer, not a follower. */
const CONSUMER_REPLICA_ID = -1;

/** Splits "host:port" (an IPv6 host in brackets). */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address.trim());
  if (!m) throw new Error(`"${address}" is not host:port`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new Error(`"${address}": port ${port} is not 1-65535`);
  return { host: m[1], port };
}

export class KafkaClient {
  private readonly brokers = new Map<number, string>();
  private readonly connections = new Map<string, Promise<KafkaConnection>>();
  private readonly failures = new Map<string, { count: number; retryAtMs: number }>();
  private readonly topics = new Map<string, TopicMetadata>();
  private closed = false;
  /** Request bytes written over every connection this client opened. */
  bytesSent = 0;

  constructor(readonly options: KafkaClientOptions) {
    if (options.bootstrap.length === 0) throw new Error('the bootstrap list is empty');
    for (const a of options.bootstrap) parseAddress(a);
  }

  /** An open connection to `address`, reusing the live one; waits out the backoff after failures. */
  async connection(address: string): Promise<KafkaConnection> {
    if (this.closed) throw new KafkaClientError('closed', 'the client is closed');
    const existing = this.connections.get(address);
    if (existing) {
      const conn = await existing.catch(() => null);
      if (conn && !conn.closed) return conn;
      if (this.connections.get(address) === existing) this.connections.delete(address);
      return this.connection(address);
    }
    const opening = this.open(address);
    this.connections.set(address, opening);
    opening.catch(() => {
      if (this.connections.get(address) === opening) this.connections.delete(address);
    });
    return opening;
  }

  private async open(address: string): Promise<KafkaConnection> {
    const failed = this.failures.get(address);
    const waitMs = failed ? failed.retryAtMs - Date.now() : 0;
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    const { host, port } = parseAddress(address);
    const o = this.options;
    const options: ConnectionOptions = { host, port, clientId: o.clientId, connectTimeoutMs: o.connectTimeoutMs, requestTimeoutMs: o.requestTimeoutMs, inFlightMax: o.inFlightMax, queuedMax: o.queuedMax, responseBytesMax: o.responseBytesMax, onBytesSent: (n) => (this.bytesSent += n), tls: o.tls ?? null, sasl: o.sasl ?? null };
    try {
      const conn = await KafkaConnection.connect(options);
      this.failures.delete(address);
      // A connection that died is followed by metadata from scratch: the leader may have moved.
      void conn.closedPromise.then(() => this.topics.clear());
      return conn;
    } catch (err) {
      const count = (failed?.count ?? 0) + 1;
      const backoffMs = Math.min(o.reconnectBackoffMaxMs, o.reconnectBackoffMs * 2 ** Math.min(count - 1, 20));
      this.failures.set(address, { count, retryAtMs: Date.now() + backoffMs });
      throw err;
    }
  }

  /** Any broker: those metadata named, then the bootstrap list, first that connects. */
  async anyConnection(): Promise<KafkaConnection> {
    const addresses = [...new Set([...this.brokers.values(), ...this.options.bootstrap])];
    let last: unknown;
    for (const address of addresses) {
      try {
        return await this.connection(address);
      } catch (err) {
        last = err;
      }
    }
    throw new KafkaClientError('connect', `no broker of ${addresses.join(', ')} could be reached: ${(last as Error)?.message}`, false, { cause: last });
  }

  /** Metadata for `topics` (never auto-creating them); refreshes the broker list and leader cache. */
  async metadata(topics: string[]): Promise<Map<string, TopicMetadata>> {
    const conn = await this.anyConnection();
    const res = await conn.request(CLIENT_APIS.metadata, { topics: topics.map((name) => ({ name })), allowAutoTopicCreation: false });
    for (const b of res.brokers as Array<{ nodeId: number; host: string; port: number }>) this.brokers.set(b.nodeId, `${b.host}:${b.port}`);
    const out = new Map<string, TopicMetadata>();
    for (const t of res.topics as Array<{ name: string; errorCode: number; partitions: Array<{ partitionIndex: number; leaderId: number; leaderEpoch: number; errorCode: number }> }>) {
      const md: TopicMetadata = {
        name: t.name,
        errorCode: t.errorCode,
        partitions: t.partitions.map((p) => ({ partition: p.partitionIndex, leaderId: p.leaderId, leaderEpoch: p.leaderEpoch, errorCode: p.errorCode })).sort((a, b) => a.partition - b.partition),
      };
      out.set(t.name, md);
      if (t.errorCode === ERRORS.NONE.kafka) this.topics.set(t.name, md);
      else this.topics.delete(t.name);
    }
    return out;
  }

  /** The connection to the leader of `topic`/`partition` (metadata fetched when not cached). */
  async leader(topic: string, partition: number): Promise<KafkaConnection> {
    let md = this.topics.get(topic);
    if (!md) md = (await this.metadata([topic])).get(topic);
    if (!md || md.errorCode !== ERRORS.NONE.kafka) throw new KafkaResponseError(md?.errorCode ?? ERRORS.UNKNOWN_TOPIC_OR_PARTITION.kafka, `metadata for ${topic}`);
    const p = md.partitions.find((x) => x.partition === partition);
    if (!p) throw new KafkaResponseError(ERRORS.UNKNOWN_TOPIC_OR_PARTITION.kafka, `${topic} has no partition ${partition}`);
    if (p.leaderId < 0 || p.errorCode !== ERRORS.NONE.kafka) {
      this.topics.delete(topic);
      throw new KafkaResponseError(p.errorCode || ERRORS.LEADER_NOT_AVAILABLE.kafka, `${topic}-${partition} has no leader`);
    }
    const address = this.brokers.get(p.leaderId);
    if (!address) {
      this.topics.delete(topic);
      throw new KafkaResponseError(ERRORS.LEADER_NOT_AVAILABLE.kafka, `${topic}-${partition}: leader ${p.leaderId} is not among the brokers metadata named`);
    }
    return this.connection(address);
  }

  /**
   * Whether the leader of `topic`/`partition` advertises the transaction APIs in its ApiVersions
   * (AddPartitionsToTxn = 24, EndTxn = 26, FindCoordinator = 10): what a transactions mode would
   * need. Decided per connection at connect time.
   */
  async advertisesTransactions(topic: string, partition: number): Promise<boolean> {
    const conn = await this.leader(topic, partition);
    return [TXN_ADD_PARTITIONS_KEY, TXN_END_KEY, FIND_COORDINATOR_KEY].every((key) => conn.versions.has(key));
  }

  /** Forgets the cached leaders of `topic` after an answer saying they moved. */
  private noteCode(topic: string, code: number): void {
    if (code !== ERRORS.NONE.kafka && STALE_LEADER.has(new KafkaResponseError(code, '').code)) this.topics.delete(topic);
  }

  /** Produce one partition's batches (acks -1 unless told); the partition's answer, error code included. */
  async produce(topic: string, partition: number, records: Uint8Array, options: { acks?: -1 | 1; timeoutMs: number; transactionalId?: string }): Promise<ProduceResult> {
    return (await this.produceQueued(topic, partition, records, options)).answer;
  }

  /**
   * Like `produce`, but resolves as soon as the request is written to (or queued on) the leader's
   * connection, with its answer still to come. Requests of one connection are written in call
   * order and a broker answers them in order, so a caller that awaits each call before the next
   * keeps its batches in order while several are in flight (the idempotent producer's pipeline).
   * `urgent` (the uplink's reserved lane) queues it ahead of the connection's queued requests
   * that are not urgent.
   */
  async produceQueued(topic: string, partition: number, records: Uint8Array, options: { acks?: -1 | 1; timeoutMs: number; transactionalId?: string; urgent?: boolean }): Promise<{ answer: Promise<ProduceResult> }> {
    const conn = await this.leader(topic, partition);
    const request = conn.request(
      CLIENT_APIS.produce,
      {
        transactionalId: options.transactionalId ?? null,
        acks: options.acks ?? -1,
        timeoutMs: options.timeoutMs,
        topicData: [{ name: topic, partitionData: [{ index: partition, records }] }],
      },
      options.urgent ?? false,
    );
    const answer = request.then((res) => {
      const p = res.responses?.[0]?.partitionResponses?.[0];
      if (!p) throw new KafkaClientError('protocol', `produce to ${topic}-${partition}: the answer names no partition`, true);
      this.noteCode(topic, p.errorCode);
      return { errorCode: p.errorCode, baseOffset: p.baseOffset, logStartOffset: p.logStartOffset, errorMessage: p.errorMessage ?? null };
    });
    return { answer };
  }

  /** One partition's fetch (committed records only). */
  async fetch(topic: string, partition: number, offset: number, options: { maxBytes: number; maxWaitMs: number }): Promise<FetchResult> {
    const conn = await this.leader(topic, partition);
    const res = await conn.request(CLIENT_APIS.fetch, {
      replicaId: CONSUMER_REPLICA_ID,
      maxWaitMs: options.maxWaitMs,
      minBytes: 1,
      maxBytes: options.maxBytes,
      isolationLevel: READ_COMMITTED,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [{ topic, partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: options.maxBytes, currentLeaderEpoch: -1, logStartOffset: -1, lastFetchedEpoch: -1 }] }],
      forgottenTopicsData: [],
      rackId: '',
    });
    checkCode(res.errorCode ?? 0, `fetch ${topic}-${partition}`);
    const p = res.responses?.[0]?.partitions?.[0];
    if (!p) throw new KafkaClientError('protocol', `fetch ${topic}-${partition}: the answer names no partition`);
    this.noteCode(topic, p.errorCode);
    return { errorCode: p.errorCode, highWatermark: p.highWatermark, logStartOffset: p.logStartOffset, records: p.records };
  }

  /** Whole batches of one fetch, decoded (a partial batch at the end is dropped: KIP-74). */
  async fetchBatches(topic: string, partition: number, offset: number, options: { maxBytes: number; maxWaitMs: number }): Promise<FetchResult & { batches: DecodedBatch[] }> {
    const r = await this.fetch(topic, partition, offset, options);
    checkCode(r.errorCode, `fetch ${topic}-${partition} at ${offset}`);
    const batches = r.records && r.records.length > 0 ? decodeBatches(r.records, { partialTail: 'ignore' }) : [];
    return { ...r, batches };
  }

  /** ListOffsets for one partition: -1 latest, -2 earliest, else the first offset at/after a timestamp. */
  async listOffset(topic: string, partition: number, timestampMs: number): Promise<number> {
    const conn = await this.leader(topic, partition);
    const res = await conn.request(CLIENT_APIS.listOffsets, {
      replicaId: CONSUMER_REPLICA_ID,
      isolationLevel: READ_UNCOMMITTED,
      topics: [{ name: topic, partitions: [{ partitionIndex: partition, currentLeaderEpoch: -1, timestamp: timestampMs, maxNumOffsets: 1 }] }],
      timeoutMs: this.options.requestTimeoutMs,
    });
    const p = res.topics?.[0]?.partitions?.[0];
    if (!p) throw new KafkaClientError('protocol', `list offsets ${topic}-${partition}: the answer names no partition`);
    this.noteCode(topic, p.errorCode);
    checkCode(p.errorCode, `list offsets ${topic}-${partition}`);
    return p.offset;
  }

  /** CreateTopics for one topic (replication factor -1 = the target's default; `configs` its topic configs); the topic's error code and message. */
  async createTopic(name: string, partitions: number, replicationFactor = -1, configs: Record<string, string> = {}): Promise<{ errorCode: number; errorMessage: string | null }> {
    const conn = await this.anyConnection();
    const res = await conn.request(CLIENT_APIS.createTopics, {
      topics: [{ name, numPartitions: partitions, replicationFactor, assignments: [], configs: Object.entries(configs).map(([n, value]) => ({ name: n, value })) }],
      timeoutMs: this.options.requestTimeoutMs,
      validateOnly: false,
    });
    const t = res.topics?.[0];
    if (!t) throw new KafkaClientError('protocol', `create topic ${name}: the answer names no topic`);
    return { errorCode: t.errorCode, errorMessage: t.errorMessage ?? null };
  }

  /** A producer id for an idempotent (non-transactional) producer. */
  async initProducerId(): Promise<{ producerId: number; producerEpoch: number }> {
    const conn = await this.anyConnection();
    const res = await conn.request(CLIENT_APIS.initProducerId, { transactionalId: null, transactionTimeoutMs: -1, producerId: -1, producerEpoch: -1 });
    checkCode(res.errorCode, 'init producer id');
    return { producerId: res.producerId, producerEpoch: res.producerEpoch };
  }

  /** Drops every connection (e.g. after an indefinite failure, before reading back); `abort`: with RST, unsent bytes discarded (KafkaConnection.reset). */
  async reset(how: { abort?: boolean } = {}): Promise<void> {
    const all = [...this.connections.values()];
    this.connections.clear();
    this.topics.clear();
    for (const p of all) {
      const conn = await p.catch(() => null);
      if (conn) {
        if (how.abort) conn.reset();
        else conn.close();
        await conn.closedPromise;
      }
    }
  }

  async close(): Promise<void> {
    await this.reset();
    this.closed = true;
  }
}
