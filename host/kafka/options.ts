// The Kafka listener's options, with the reason for each default, and the schema of the `kafka`
// config section. Kept apart from server.ts so the API handlers (host/kafka/apis/) read them
// without importing the server that imports them.
import { renameDeprecated, tlsRefusal, listenerSchemas, type ListenerOptions } from '../config/listener.js';
import { boolean, checkOptions, int32, integer, orNull, section, string, type SectionSchema } from '../config/schema.js';

export interface KafkaServerOptions extends ListenerOptions {
  /** @deprecated the old name of `connectionsMax` (still accepted; validateKafkaOptions moves it). */
  maxConnections?: number;
  advertisedHost: string | null;
  advertisedPort: number | null;
  nodeId: number;
  clusterId: string;
  maxRequestBytes: number;
  maxInFlightRequestsPerConnection: number;
  maxInFlightBytesPerConnection: number;
  idleTimeoutMs: number;
  maxFetchWaitMs: number;
  maxFetchResponseBytes: number;
  autoCreateTopicsOnMetadata: boolean;
  defaultPartitions: number | null;
  dataDir: string | null;
  producerIdBlockSize: number;
}

export const defaultKafkaServerOptions: KafkaServerOptions = {
  host: '0.0.0.0', // every interface: gateways are reached from the plant network
  port: 9092, // Kafka's well-known port, so clients work unconfigured
  advertisedHost: null, // null = the address the client connected to (works behind port 0 and NAT-less LANs)
  advertisedPort: null, // null = the port the client connected to
  nodeId: 0, // single node until the cluster issue; Metadata names this node as every leader
  clusterId: 'tributary', // shown by Metadata v2+ and DescribeCluster
  maxRequestBytes: 8 * 1024 * 1024, // 8 MiB: an edge box with 1 GB RAM cannot take Kafka's 100 MiB socket.request.max.bytes
  connectionsMax: 1024, // a gateway serves tens of clients; 1024 bounds file descriptors and memory
  maxInFlightRequestsPerConnection: 64, // enough to pipeline (librdkafka sends many), small enough to bound memory
  maxInFlightBytesPerConnection: 8 * 1024 * 1024, // one max-size request, or eight of librdkafka's 1 MiB batches: keeps a fast producer's memory on a Pi small
  idleTimeoutMs: 10 * 60_000, // Kafka's connections.max.idle.ms (10 minutes)
  maxFetchWaitMs: 30_000, // caps a client's max_wait_ms so a dead client's long poll cannot pin memory for long
  maxFetchResponseBytes: 8 * 1024 * 1024, // caps a fetch's max_bytes (kafkajs asks 10 MiB, librdkafka 50 MiB): one response buffer ≤ 8 MiB
  autoCreateTopicsOnMetadata: true, // Kafka's behaviour when allow_auto_topic_creation is set (broker config still decides)
  defaultPartitions: null, // CreateTopics with num_partitions -1 (KIP-464); null = the broker's defaultPartitions, else 1
  dataDir: null, // where producer ids persist; null = the broker's own data dir (Broker.options.dataDir), else ./data
  producerIdBlockSize: 1000, // ids reserved per durable write: one fsync per 1000 InitProducerId calls
  tls: null, // plain TCP until certificate files are named (SSL / SASL_SSL with them: docs/security.md#tls)
};

/** What each key of the `kafka` config section allows (host/config/schema.ts). */
export const kafkaSchema: SectionSchema = section({
  ...listenerSchemas(),
  advertisedHost: orNull(string(1)),
  advertisedPort: orNull(integer(1, 65535)),
  nodeId: int32(0),
  clusterId: string(1),
  // A request's size travels as an int32.
  maxRequestBytes: int32(1),
  maxInFlightRequestsPerConnection: int32(1),
  maxInFlightBytesPerConnection: int32(1),
  idleTimeoutMs: int32(1),
  maxFetchWaitMs: int32(1),
  maxFetchResponseBytes: int32(1),
  autoCreateTopicsOnMetadata: boolean(),
  defaultPartitions: orNull(int32(1)),
  dataDir: orNull(string(1)),
  producerIdBlockSize: int32(1),
});

/** Checks options passed in code (the config loader has checked a node's already); throws naming the option. */
export function validateKafkaOptions(o: KafkaServerOptions): void {
  const old = renameDeprecated('kafka', o as unknown as Record<string, unknown>);
  const positive = ['maxRequestBytes', 'connectionsMax', 'maxInFlightRequestsPerConnection', 'maxInFlightBytesPerConnection', 'idleTimeoutMs', 'maxFetchWaitMs', 'maxFetchResponseBytes', 'producerIdBlockSize'] as const;
  for (const k of positive) {
    const name = k === 'connectionsMax' && old ? `connectionsMax (formerly ${old})` : k;
    if (!Number.isInteger(o[k]) || o[k] <= 0) throw new Error(`kafka option ${name} must be a positive integer, got ${o[k]}`);
  }
  // -1 (off) is a node's choice: the node does not start this listener at all.
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error(`kafka option port must be 0..65535, got ${o.port}`);
  // Optional values (null defaults) may arrive as text from code: accept numeric text.
  if (o.advertisedPort !== null) {
    const n = Number(o.advertisedPort);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`kafka option advertisedPort must be null or a port 1..65535, got ${o.advertisedPort}`);
    o.advertisedPort = n;
  }
  if (o.defaultPartitions !== null && typeof o.defaultPartitions === 'string') o.defaultPartitions = Number(o.defaultPartitions);
  // The checks above keep their long-standing wording; the schema covers every key (nodeId,
  // clusterId, advertisedHost, dataDir, ...).
  checkOptions(kafkaSchema, o as unknown as Record<string, unknown>, 'kafka option ');
  const tls = tlsRefusal(o.tls);
  if (tls) throw new Error(`kafka option tls: ${tls}`);
}
