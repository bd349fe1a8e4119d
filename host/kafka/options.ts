// The Kafka listener's options, with the reason for each default. Kept apart from server.ts so
// the API handlers (host/kafka/apis/) read them without importing the server that imports them.
export interface KafkaServerOptions {
  host: string;
  port: number;
  advertisedHost: string | null;
  advertisedPort: number | null;
  nodeId: number;
  clusterId: string;
  maxRequestBytes: number;
  maxConnections: number;
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
  maxConnections: 1024, // a gateway serves tens of clients; 1024 bounds file descriptors and memory
  maxInFlightRequestsPerConnection: 64, // enough to pipeline (librdkafka sends many), small enough to bound memory
  maxInFlightBytesPerConnection: 8 * 1024 * 1024, // one max-size request, or eight of librdkafka's 1 MiB batches: keeps a fast producer's memory on a Pi small
  idleTimeoutMs: 10 * 60_000, // Kafka's connections.max.idle.ms (10 minutes)
  maxFetchWaitMs: 30_000, // caps a client's max_wait_ms so a dead client's long poll cannot pin memory for long
  maxFetchResponseBytes: 8 * 1024 * 1024, // caps a fetch's max_bytes (kafkajs asks 10 MiB, librdkafka 50 MiB): one response buffer ≤ 8 MiB
  autoCreateTopicsOnMetadata: true, // Kafka's behaviour when allow_auto_topic_creation is set (broker config still decides)
  defaultPartitions: null, // CreateTopics with num_partitions -1 (KIP-464); null = the broker's defaultPartitions, else 1
  dataDir: null, // where producer ids persist; null = the broker's own data dir (Broker.options.dataDir), else ./data
  producerIdBlockSize: 1000, // ids reserved per durable write: one fsync per 1000 InitProducerId calls
};
