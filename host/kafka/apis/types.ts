// The contract between the Kafka listener and each API's handler. One handler per API key: a
// declared version range (ApiVersions is derived from these), the first flexible version, the
// request and response schemas as data, and `handle`, which receives the decoded request and
// returns the response object (encoded by the generic codec at the request's version).
//
// Handlers report per-partition / per-resource failures inside the response (Kafka error codes
// from host/errors via `kafkaCode(err)`). A handler that throws closes the connection (logged),
// as Kafka does for a request it cannot answer; so catch what you can answer.
import type { BrokerApi } from '../../broker/api.js';
import type { Logger } from '../../logging.js';
import type { MetricsRegistry } from '../../metrics/registry.js';
import { asBrokerError } from '../../errors/index.js';
import type { Schema } from '../protocol/schema.js';
import type { KafkaServerOptions } from '../options.js';
import type { GroupCoordinator } from '../../broker/groups/index.js';
import type { Principal } from '../../security/index.js';
import type { KafkaSecurity, SaslSession } from '../security.js';

/** The consumer-group coordinator (host/broker/groups/); absent in listeners started without one. */
export type GroupCoordinatorRef = GroupCoordinator | undefined;

/** What the server knows about itself (from KafkaServerOptions and the bound socket). */
export interface NodeInfo {
  nodeId: number;
  clusterId: string;
  /** Host and port clients should connect to (advertised, else the address this client used). */
  host: string;
  port: number;
  /** Topics are auto-created on Metadata/Produce when the broker allows it (broker.ensureTopic). */
  autoCreateTopics: boolean;
  /** A cluster's view (host/cluster): every live broker and the controller; absent on one node. */
  cluster?: ClusterView;
}

/** What Metadata and DescribeCluster list in a cluster. */
export interface ClusterView {
  /** Registered, unfenced brokers with their Kafka listeners. */
  brokers(): Array<{ nodeId: number; host: string; port: number }>;
  /** The controller's node id (the metadata quorum's leader), -1 when none is known. */
  controllerId(): number;
}

export interface RequestContext {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string | null;
  /** Unique per connection for this process (logs, group member ids). */
  connectionId: number;
  remoteAddress: string;
  broker: BrokerApi;
  groups: GroupCoordinatorRef;
  logger: Logger;
  metrics: MetricsRegistry;
  node: NodeInfo;
  /** Aborted when the connection closes (long polls stop waiting). */
  signal: AbortSignal;
  /** Every registered API, loaded or not (ApiVersions lists them). */
  handlers: ReadonlyMap<number, ApiEntry>;
  /** Durable producer-id allocation (InitProducerId). */
  producerIds: ProducerIdAllocator;
  /**
   * Requests on one connection take effect in order (Kafka processes a connection's requests
   * one at a time): the next request's `handle` starts only when this one resolves, or earlier
   * when it calls `release()` because its effects are already ordered (Produce, once its appends
   * are issued) or it has none that later requests could observe (Fetch's long poll).
   */
  release(): void;
  /** The listener's options (limits a handler applies, broker settings DescribeConfigs shows). */
  options: Readonly<KafkaServerOptions>;
  /** Who is asking: the SASL principal, else User:ANONYMOUS. */
  principal: Principal;
  /** `User:name`, for messages and logs. */
  principalText: string;
  /** The one seam: may this connection's principal perform `operation` on (resourceType, name)? */
  authorize(operation: number, resourceType: number, name: string): boolean;
  /** This connection's SASL session (SaslHandshake/SaslAuthenticate move it). */
  session: SaslSession;
  security: KafkaSecurity;
  /** Close the connection once this request's response is written (a failed SASL exchange). */
  closeAfterResponse(): void;
}

export interface ProducerIdAllocator {
  /** A producer id never handed out before, by this data dir, across restarts. */
  allocate(): Promise<number>;
}

/** Returned by `handle` when the request gets no response at all (Produce with acks=0). */
export const NO_RESPONSE: unique symbol = Symbol('no response');

/**
 * Returned by `handle` for a request that gets no response and whose failure the client must
 * still notice: the connection is closed once every earlier response is written (Kafka's rule
 * for a failed acks=0 produce).
 */
export const NO_RESPONSE_CLOSE: unique symbol = Symbol('no response, close the connection');

/** What ApiVersions advertises of an API, and what the listener checks before loading its handler. */
export interface ApiDeclaration {
  apiKey: number;
  name: string;
  minVersion: number;
  maxVersion: number;
}

/**
 * An API whose handler module is imported at its first request (host/kafka/apis/registry.ts):
 * a node nobody speaks Kafka to never holds the code and schemas of ~30 APIs.
 */
export interface LazyApi extends ApiDeclaration {
  /** The module that holds the handler, for the log when it fails to load. */
  module: string;
  load(): Promise<ApiHandler>;
}

/** A registry entry: a handler, or an API whose handler loads at its first request. */
export type ApiEntry = ApiHandler | LazyApi;

export function isLazyApi(entry: ApiEntry): entry is LazyApi {
  return 'load' in entry;
}

export interface ApiHandler extends ApiDeclaration {
  /** First flexible version (compact types, tagged fields, request header v2, response header v1); 99 when none. */
  flexibleFrom: number;
  request: Schema;
  response: Schema;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  handle(req: any, ctx: RequestContext): Promise<any | typeof NO_RESPONSE | typeof NO_RESPONSE_CLOSE>;
}

/** The Kafka error code for anything thrown (BrokerError's table entry, else UNKNOWN_SERVER_ERROR = -1). */
export function kafkaCode(err: unknown): number {
  return asBrokerError(err).kafkaCode;
}

/** Error message for responses that carry one (null when there is no error). */
export function kafkaMessage(err: unknown): string {
  return asBrokerError(err).message;
}
