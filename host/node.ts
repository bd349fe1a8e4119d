// `tributary start`: one broker node. Loads the configuration and checks all of it — every key
// against its section's schema, the data dir, the bind addresses, the MQTT routes, the limits
// across sections and the memory budget — before anything opens or binds; then opens the broker
// (which recovers every partition log), the group coordinator, then every listener; logs one
// `ready` line naming every bound address; on SIGTERM/SIGINT stops accepting, flushes, fsyncs,
// writes the clean-shutdown markers and exits 0.
import { resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Broker, defaultBrokerOptions, validateBrokerOptions, type BrokerOptions } from './broker/broker.js';
import { ProducerIds } from './broker/producer-ids.js';
import { defaultTopicConfig } from './broker/topic-config.js';
import { defaultLogOptions } from './log/options.js';
import { GroupCoordinator, defaultGroupOptions, resolveGroupOptions, type GroupOptions } from './broker/groups/index.js';
import { defaultKafkaServerOptions, kafkaSchema, validateKafkaOptions, type KafkaServerOptions } from './kafka/options.js';
import { defaultMqttGatewayOptions, mqttSchema, resolveMqttOptions, type MqttGatewayOptions } from '../gateway/mqtt/options.js';
import { Router } from '../gateway/mqtt/routes.js';
import { defaultWsGatewayOptions, validateWsGatewayOptions, wsSchema, type WsGatewayOptions } from '../gateway/ws/options.js';
import { defaultSchemaRegistryOptions, schemasSchema, validateSchemaRegistryOptions, type SchemaRegistryOptions } from './schemas/options.js';
import type { RunningSchemas } from './schemas/index.js';
import { ConfigError, loadConfig, type LoadedConfig, type Schemas } from './config/loader.js';
import { listenerConfigDefaults, tlsRefusal, type Listener } from './config/listener.js';
import { integer, releaseValidation, section } from './config/schema.js';
import { brokerSchema, groupsSchema } from './config/core-schemas.js';
import { codecReport } from './core/index.js';
import { startIdleHeapTrim } from './metrics/heap-trim.js';
import { checkBindHost, checkBindPort, checkDataDir } from './config/startup.js';
import { checkCrossSection } from './config/cross-checks.js';
import { checkBudget, memoryBudget, mib, type Budget } from './config/budget.js';
import { createLogger, type Logger } from './logging.js';
import { checkUplinkInCluster, defaultUplinkOptions, resolveUplinkOptions, uplinkSchema, type ResolvedUplink } from './sync/options.js';
import type { Uplink, UplinkStatus } from './sync/index.js';
import { MetricsRegistry } from './metrics/registry.js';
import { registerProcessMetrics } from './metrics/process.js';
import { clusterSchema, defaultClusterOptions, resolveClusterOptions, type ResolvedCluster } from './cluster/options.js';
import type { Replication } from './cluster/replication.js';
import type { ClusterGroups } from './cluster/group-proxy.js';
import type { ClusterView } from './kafka/apis/types.js';
import type { QuorumMetadataStore } from './cluster/quorum-metadata-store.js';
import { checkExposure, clusterListener, doorSecurity, type DoorSecurity, defaultSecurityOptions, securitySchema, validateSecurityOptions, type ExposedListener, type SecurityOptions, plainTokenWarnings, type TokenConfig } from './security/index.js';
import { kafkaSecurity } from './kafka/security.js';
import { loadTlsMaterial, TlsFileError } from './security/tls.js';
import type { TcpTransport } from './cluster/tcp-transport.js';

export type { Listener } from './config/listener.js';

const MiB = 1024 * 1024;

/** Node-wide settings (the `node` section). */
export interface NodeOptions {
  memoryBudgetBytes: number;
  idleHeapTrimIntervalMs: number;
}

export const defaultNodeOptions: NodeOptions = {
  // 800 MiB: a 1 GB Pi keeps the rest for the kernel, Node's own heap (~60-80 MiB) and the page
  // cache. The doors' default limits come to ~768 MiB (the start-up log line lists them); the
  // rest is room for the uplink's 8 MiB in flight and a 3-voter quorum's two 8 MiB send queues,
  // so a default node may turn either on. A raised limit needs a raised budget, on a device that
  // has the memory.
  memoryBudgetBytes: 800 * MiB,
  // 10 s: after two quiet intervals (20 s of an event loop under 2 % busy) one low-memory garbage
  // collection (compacting) returns what the last burst left committed (V8's young generation
  // 8 → 1 MiB, emptied old-space pages: 10-14 MiB of an idle node's RSS), once per quiet spell,
  // never while busy (host/metrics/heap-trim.ts, docs/performance.md#footprint). 0 turns it off.
  idleHeapTrimIntervalMs: 10_000,
};

/** Drops keys that are not the user's to set in that section (derived from elsewhere). */
function omit<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Omit<T, K> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k as K))) as Omit<T, K>;
}

/**
 * The configuration sections and their embedded defaults. Derived keys are left out: data lives
 * in the top-level `dataDir`; Kafka's CreateTopics default partition count is the broker's.
 * Each listener's `host` is null here: null = the top-level `host`.
 */
export function configSections() {
  return {
    broker: omit(defaultBrokerOptions, ['dataDir']),
    groups: omit(defaultGroupOptions, []),
    kafka: { ...omit(defaultKafkaServerOptions, ['dataDir', 'defaultPartitions']), host: listenerConfigDefaults.host },
    mqtt: { ...defaultMqttGatewayOptions, host: listenerConfigDefaults.host },
    http: { ...defaultWsGatewayOptions, host: listenerConfigDefaults.host },
    schemas: { ...defaultSchemaRegistryOptions, host: listenerConfigDefaults.host },
    node: { ...defaultNodeOptions },
    cluster: { ...defaultClusterOptions },
    security: { ...defaultSecurityOptions },
    uplink: { ...defaultUplinkOptions },
  };
}

/** What each section's keys allow (host/config/schema.ts). */
export function configSchemas(): Schemas {
  return {
    broker: brokerSchema,
    groups: groupsSchema,
    kafka: kafkaSchema,
    mqtt: mqttSchema,
    http: wsSchema,
    schemas: schemasSchema,
    node: section({ memoryBudgetBytes: integer(16 * MiB), idleHeapTrimIntervalMs: integer(0, 3_600_000) }),
    cluster: clusterSchema,
    security: securitySchema,
    uplink: uplinkSchema,
  };
}

export type NodeConfig = LoadedConfig<ReturnType<typeof configSections>>;

export function loadNodeConfig(argv: string[], env: NodeJS.ProcessEnv): NodeConfig {
  return loadConfig({ argv, env, sections: configSections(), schemas: configSchemas() });
}

/** Every door's options, resolved and checked; null = that listener is off (port -1). */
export interface PreparedNode {
  dataDir: string;
  broker: BrokerOptions;
  groups: GroupOptions;
  kafka: KafkaServerOptions | null;
  mqtt: MqttGatewayOptions;
  http: WsGatewayOptions | null;
  /** The registry's listener may be off (port -1): ingest validation runs either way. */
  schemas: SchemaRegistryOptions;
  /** The metadata quorum this node votes in; null = a single node (no `cluster.*`). */
  cluster: ResolvedCluster | null;
  security: SecurityOptions;
  /** Listeners open to anonymous clients beyond loopback, by choice (logged at start). */
  exposureWarnings: string[];
  /** null = no uplink configured. */
  uplink: ResolvedUplink | null;
  budget: Budget;
}

/**
 * Runs a module's own validator (the rules that tie keys of one section together); its message
 * names the option and the value, and gains where the keys it names were set.
 */
function owned<T>(config: NodeConfig, section: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const message = (err as Error).message;
    const named = Object.entries(config.sources).filter(([k]) => k.startsWith(`${section}.`) && message.includes(k.slice(section.length + 1)));
    const where = named.length > 0 ? named.map(([k, src]) => `${k} from ${src}`).join(', ') : `section ${section}: defaults`;
    throw new ConfigError(section, undefined, where, message, `config: ${message} (${where})`);
  }
}

function sourceOf(config: NodeConfig, key: string): string {
  return config.sources[key] ?? 'default';
}

/** The MQTT routes compile (topic filters, templates, placeholders), or a ConfigError names the route. */
function checkRoutes(config: NodeConfig, o: MqttGatewayOptions): void {
  try {
    new Router(o.routes, o.defaultRoute, o.reverseRoutes);
  } catch (err) {
    const message = (err as Error).message;
    const at = /^mqtt\.(routes|reverseRoutes)\[(\d+)\]/.exec(message);
    const list = at?.[1] === 'reverseRoutes' ? o.reverseRoutes : o.routes;
    const key = at ? `mqtt.${at[1]}` : 'mqtt.routes';
    throw new ConfigError(at ? at[0] : key, at ? list[Number(at[2])] : list, sourceOf(config, key), message.slice(at?.[0].length ?? 0).replace(/^[.:\s]+/, '') || message);
  }
}

/**
 * Each `tls` block is coherent and its files load (missing, unreadable, a key that is not the
 * certificate's): a ConfigError naming the key and the file, before anything binds. Warnings (an
 * expired certificate) are logged again when the listener opens them.
 */
function checkTls(config: NodeConfig): void {
  for (const name of ['kafka', 'mqtt', 'http', 'schemas', 'cluster'] as const) {
    const tls = config.sections[name].tls;
    const why = tlsRefusal(tls);
    if (why) throw new ConfigError(`${name}.tls`, tls, sourceOf(config, `${name}.tls`), why);
    if (!tls) continue;
    try {
      loadTlsMaterial(`${name}.tls`, tls);
    } catch (err) {
      if (!(err instanceof TlsFileError)) throw err;
      throw new ConfigError(err.key, err.file, sourceOf(config, `${name}.tls`), err.why, `config: ${err.message} (${name}.tls from ${sourceOf(config, `${name}.tls`)})`);
    }
  }
}

/**
 * Each enabled listener's bind address must be this machine's, and each fixed port free: probed
 * on an ephemeral port, then on the port itself, and released.
 */
async function checkBinds(config: NodeConfig, cluster: ResolvedCluster | null): Promise<void> {
  const s = config.sections;
  const ports: Array<[string, string | null, number]> = [
    ['kafka.port', s.kafka.host, s.kafka.port],
    ['mqtt.port', s.mqtt.host, s.mqtt.port],
    ['mqtt.wsPort', s.mqtt.host, s.mqtt.wsPort],
    ['http.port', s.http.host, s.http.port],
    ['schemas.port', s.schemas.host, s.schemas.port],
  ];
  const hostsSeen = new Set<string>();
  for (const [portKey, host, port] of ports) {
    if (port < 0) continue;
    const hostKey = host === null ? 'host' : `${portKey.split('.')[0]}.host`;
    const h = host ?? config.top.host;
    if (!hostsSeen.has(h)) await checkBindHost(hostKey, h, sourceOf(config, hostKey));
    hostsSeen.add(h);
    if (port > 0) await checkBindPort(portKey, h, port, sourceOf(config, portKey));
  }
  if (cluster) await checkBindPort('cluster.listen', cluster.listen.host, cluster.listen.port, sourceOf(config, 'cluster.listen'));
}

/** The values the cross-section rules and the memory budget read, by dotted key. */
function limitValues(p: Omit<PreparedNode, 'budget' | 'security' | 'exposureWarnings'>, config: NodeConfig): Record<string, number> {
  const s = config.sections;
  const values: Record<string, number> = {
    'broker.topicDefaults.max.message.bytes': p.broker.topicDefaults['max.message.bytes'] ?? defaultTopicConfig['max.message.bytes'],
    'broker.log.compactionMapBytes': p.broker.log.compactionMapBytes ?? defaultLogOptions.compactionMapBytes,
    'broker.log.indexCacheBytes': p.broker.log.indexCacheBytes ?? defaultLogOptions.indexCacheBytes,
    '(http.sendBufferPauseBytes + http.frameBytesMax)': s.http.sendBufferPauseBytes + s.http.frameBytesMax,
    // No uplink configured: it holds nothing.
    'uplink.inFlightBytesMax': p.uplink ? p.uplink.inFlightBytesMax : 0,
    '(uplink.readBytesMax + uplink.batchBytesMax + uplink.downlinkFetchBytes)': p.uplink ? p.uplink.readBytesMax + p.uplink.batchBytesMax + (p.uplink.downlink.length > 0 ? p.uplink.downlinkFetchBytes : 0) : 0,
    // A single node has no peers and follows nothing: the cluster's buffers hold nothing.
    '(cluster.voters - 1)': p.cluster ? p.cluster.voters.length - 1 : 0,
    'cluster.sendQueueBytesMax': p.cluster ? p.cluster.options.sendQueueBytesMax : 0,
    'cluster.replicaFetchBytesTotalMax': p.cluster ? p.cluster.options.replicaFetchBytesTotalMax : 0,
    'cluster.connectionsMax': p.cluster ? p.cluster.options.connectionsMax : 0,
    'cluster.frameBytesMax': p.cluster ? p.cluster.options.frameBytesMax : 0,
  };
  for (const name of ['broker', 'groups', 'kafka', 'mqtt', 'http', 'schemas'] as const) {
    for (const [k, v] of Object.entries(s[name])) if (typeof v === 'number') values[`${name}.${k}`] = v;
  }
  return values;
}

/**
 * Resolves and checks the whole configuration before anything opens or binds, so a mistake is
 * one line naming the key, never a half-started node. Order: what needs no machine first.
 */
export async function prepareNode(config: NodeConfig): Promise<PreparedNode> {
  const s = config.sections;
  checkTls(config);
  const dataDir = resolve(config.top.dataDir); // non-empty: the schema says so
  const broker = owned(config, 'broker', () => validateBrokerOptions({ ...s.broker, dataDir }));
  const groups = owned(config, 'groups', () => resolveGroupOptions(s.groups));
  const hostOf = (h: string | null) => h ?? config.top.host;
  const kafka = s.kafka.port < 0 ? null : { ...s.kafka, host: hostOf(s.kafka.host), dataDir, defaultPartitions: broker.defaultPartitions };
  if (kafka) owned(config, 'kafka', () => validateKafkaOptions(kafka));
  const mqtt = owned(config, 'mqtt', () => resolveMqttOptions({ ...s.mqtt, host: hostOf(s.mqtt.host) }));
  checkRoutes(config, mqtt);
  const http = s.http.port < 0 ? null : { ...s.http, host: hostOf(s.http.host) };
  if (http) owned(config, 'http', () => validateWsGatewayOptions(http));
  const schemas = owned(config, 'schemas', () => validateSchemaRegistryOptions({ ...s.schemas, host: hostOf(s.schemas.host) }));
  const cluster = owned(config, 'cluster', () => resolveClusterOptions(s.cluster));
  // In a cluster each node is a distinct Kafka broker: its id is its voter id.
  if (cluster && kafka) kafka.nodeId = cluster.nodeId;
  const uplink = owned(config, 'uplink', () => resolveUplinkOptions(s.uplink));
  // In a cluster the uplink forwards where each partition's leader is (docs/uplink.md, "In a cluster").
  if (uplink && cluster) owned(config, 'uplink', () => checkUplinkInCluster(uplink, cluster.options));
  const values = limitValues({ dataDir, broker, groups, kafka, mqtt, http, schemas, cluster, uplink }, config);
  const sources: Record<string, string> = { ...config.sources, 'broker.topicDefaults.max.message.bytes': config.sources['broker.topicDefaults'] ?? 'built-in topic default' };
  checkCrossSection(values, sources);
  const budget = memoryBudget(values);
  checkBudget(budget, s.node.memoryBudgetBytes, sourceOf(config, 'node.memoryBudgetBytes'));
  // Then what needs the machine: the data dir is created if missing, each bind address probed.
  checkDataDir(config.top.dataDir, sourceOf(config, 'dataDir'));
  await checkBinds(config, cluster);
  const security = owned(config, 'security', () => validateSecurityOptions({ ...(s.security as SecurityOptions) }));
  const exposure = checkExposure([...exposedListeners({ kafka, mqtt, http, schemas }, security, config), ...(cluster ? [clusterListener(cluster.listen, cluster.options.tls)] : [])], security.allowAnonymous);
  if (exposure.problems.length > 0) throw new ConfigError('security.allowAnonymous', security.allowAnonymous, sourceOf(config, 'security.allowAnonymous'), exposure.problems.join('; '));
  return { dataDir, broker, groups, kafka, mqtt, http, schemas, cluster, uplink, security, exposureWarnings: exposure.warnings, budget };
}

/** Each enabled listener's address and whether its door checks credentials (the loopback rule, host/security/exposure.ts). */
function exposedListeners(p: Pick<PreparedNode, 'kafka' | 'mqtt' | 'http' | 'schemas'>, security: SecurityOptions, config: NodeConfig): ExposedListener[] {
  const hostKey = (name: string) => (config.sections[name as 'kafka'].host === null ? 'host' : `${name}.host`);
  const out: ExposedListener[] = [];
  // Mutual TLS (tls.requestCert) authenticates every connection by its certificate.
  const mtls = (o: { tls: { requestCert?: boolean } | null } | null) => o?.tls?.requestCert === true;
  if (p.kafka) out.push({ name: 'kafka', hostKey: hostKey('kafka'), host: p.kafka.host, authenticated: security.allowAnonymous === false || mtls(p.kafka) });
  if (p.mqtt.port >= 0 || p.mqtt.wsPort >= 0) out.push({ name: 'mqtt', hostKey: hostKey('mqtt'), host: p.mqtt.host, authenticated: p.mqtt.auth.enabled || mtls(p.mqtt) });
  if (p.http) out.push({ name: 'http', hostKey: hostKey('http'), host: p.http.host, authenticated: p.http.tokens.length > 0 || mtls(p.http) });
  if (p.schemas.port >= 0) out.push({ name: 'schemas', hostKey: hostKey('schemas'), host: p.schemas.host, authenticated: security.allowAnonymous === false });
  return out;
}

export interface RunningNode {
  listeners: Listener[];
  broker: Broker;
  groups: GroupCoordinator;
  schemas: RunningSchemas;
  uplink: Uplink | null;
  logger: Logger;
  stop(): Promise<void>;
  /** SIGHUP: every TLS listener re-reads its files (each logs its result); a failed one keeps its old certificate. */
  reloadTls(): Array<{ listener: string; ok: boolean }>;
}

function logBudget(logger: Logger, budget: Budget, limitBytes: number): void {
  const byItem = (items: Budget['items']) => Object.fromEntries(items.map((i) => [i.key, i.bytes]));
  logger.info(
    { memoryBudget: { totalBytes: budget.totalBytes, limitBytes, items: byItem(budget.items), perConnection: byItem(budget.perConnection), perPartition: byItem(budget.perPartition) } },
    `memory budget: ${mib(budget.totalBytes)} of ${mib(limitBytes)} (${budget.items.map((i) => `${i.key} ${mib(i.bytes)}`).join(', ')})`,
  );
}

/** Dashboards' `decode: confluent`: the wire format's value through the registry. */
async function decoderOf(schemas: RunningSchemas) {
  const { decodeWireValue } = await import('./schemas/validate.js');
  return (value: Uint8Array) => {
    const d = decodeWireValue(schemas.registry, value);
    return d ? { schemaId: d.id, value: d.value } : undefined;
  };
}

/**
 * A cluster node's data replication (host/cluster/replication.ts), once its Kafka listener is
 * bound: the address it registers is the advertised host, else the listener's host, else (a
 * wildcard bind) the host of its inter-node listener, which the other nodes reach already; and
 * the advertised port, else the listener's (a port mapping in front of it is what peers reach).
 */
/** Partitions a node lists with their followers' lag in its status (the rest are counted). */
const REPLICA_LAG_STATUS_MAX = 1000;

async function startReplication(broker: Broker, store: QuorumMetadataStore, cluster: ResolvedCluster, listeners: Listener[], advertised: { host: string | null; port: number | null }, incarnation: string, logger: Logger): Promise<Replication> {
  const kafka = listeners.find((l) => l.name === 'kafka');
  if (!kafka) throw new Error('a cluster node needs its Kafka listener (kafka.port must not be -1): followers fetch through it');
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(kafka.address);
  const bound = m?.[1] ?? '';
  const host = advertised.host ?? (bound === '0.0.0.0' || bound === '::' || bound === '' ? cluster.listen.host : bound);
  const o = cluster.options;
  const { Replication } = await import('./cluster/replication.js');
  const replication = new Replication(broker, store, {
    nodeId: cluster.nodeId,
    kafkaHost: host,
    kafkaPort: advertised.port ?? Number(m?.[2]),
    sessionTimeoutMs: o.sessionTimeoutMs,
    replicaLagTimeMaxMs: o.replicaLagTimeMaxMs,
    replicaFetchWaitMs: o.replicaFetchWaitMs,
    replicaFetchBytesMax: o.replicaFetchBytesMax,
    replicaFetchResponseBytesMax: o.replicaFetchResponseBytesMax,
    replicaFetchBytesTotalMax: o.replicaFetchBytesTotalMax,
    checkIntervalMs: o.replicationCheckIntervalMs,
    incarnation,
    leaderRebalanceIntervalMs: o.leaderRebalanceIntervalMs,
    verifyOnStart: o.replicaVerifyOnStart,
    forward: { timeoutMs: o.forwardTimeoutMs, requestTimeoutMs: o.forwardRequestTimeoutMs, retriesMax: o.forwardRetriesMax, retryBackoffMs: o.forwardRetryBackoffMs, inFlightMax: o.forwardInFlightMax, queuedMax: o.forwardQueuedMax },
  }, logger.child({ component: 'replication' }));
  await replication.start();
  const { replicaLagOf } = await import('./cluster/replica-lag.js');
  store.replicaStatus = () => ({ replicaLag: replicaLagOf(broker, Date.now(), REPLICA_LAG_STATUS_MAX) });
  return replication;
}

/**
 * The metadata quorum's store, then this process's new broker epoch registered before any
 * partition opens (host/cluster/early-registration.ts: a restarted node leaves its ISRs at once).
 */
async function openClusterStore(cluster: ResolvedCluster, deps: Parameters<typeof import('./cluster/start.js').openClusterMetadata>[1], incarnation: string): Promise<QuorumMetadataStore> {
  const store = await (await import('./cluster/start.js')).openClusterMetadata(cluster, deps);
  await (await import('./cluster/early-registration.js')).registerNewIncarnation(store, cluster.nodeId, incarnation, deps.logger.child({ component: 'replication' }));
  return store;
}

/** Binds every enabled listener in turn (Kafka, MQTT, HTTP/WebSocket); the registry's is bound by startSchemas. */
async function openListeners(
  p: PreparedNode,
  deps: { broker: Broker; groups: GroupCoordinator; doorGroups?: ClusterGroups; schemas: RunningSchemas; logger: Logger; metrics: MetricsRegistry; security?: DoorSecurity; cluster?: ClusterView; uplink?: () => UplinkStatus | null; clusterStatus?: () => unknown },
  health: () => boolean,
  off: Record<string, string>,
): Promise<Listener[]> {
  const { broker, groups, schemas, logger, metrics } = deps;
  // The MQTT and WebSocket doors' groups: in a cluster each goes to its coordinator's node.
  const doorGroups = deps.doorGroups ?? groups;
  const listeners: Listener[] = schemas.listener ? [schemas.listener] : [];
  // one authorizer, login limiter and user store for every door (host/security/doors.ts)
  const security = deps.security ?? doorSecurity(p.security, () => broker.metadata.image());
  try {
    // Each door's modules load only when the door is on (docs/performance.md#footprint): a node
    // pays in memory for the protocols it serves, not for every protocol it could.
    if (p.kafka) {
      const { startKafkaServer } = await import('./kafka/server.js');
      const producerIds = await ProducerIds.open(broker.metadata, { blockSize: p.kafka.producerIdBlockSize });
      listeners.push(await startKafkaServer({ broker, groups, logger, metrics, producerIds, security: kafkaSecurity(p.security, broker.metadata, security), cluster: deps.cluster }, p.kafka));
    }
    // MQTT with both listeners off serves no one: aedes is not opened (wills and expired sessions
    // are handled when the door opens again, before its listeners bind).
    if (p.mqtt.port < 0 && p.mqtt.wsPort < 0) off.mqtt = 'off (mqtt.port and mqtt.wsPort: -1)';
    else {
      const { startMqttGateway } = await import('../gateway/mqtt/index.js');
      listeners.push(...(await startMqttGateway({ broker, groups: doorGroups, logger, metrics, security, cluster: p.cluster ? { voters: p.cluster.voters.length, tableCreateWaitMs: p.cluster.options.joinTimeoutMs, nodeId: p.cluster.nodeId, handoverWaitMs: 2 * p.cluster.options.sessionTimeoutMs + 1_000, nodeLive: (id) => deps.cluster?.brokers().some((b) => b.nodeId === id) ?? true, nodeFenced: (id) => broker.metadata.image().brokers?.get(id)?.fenced === true } : undefined }, p.mqtt)));
    }
    if (!p.http) off.http = 'off (http.port: -1)';
    if (p.http) {
      try {
        const { startWsGateway } = await import('../gateway/ws/index.js');
        listeners.push(await startWsGateway({ broker, groups: doorGroups, logger: logger.child({ component: 'http' }), metrics, security, health, decodeValue: await decoderOf(schemas), uplink: deps.uplink, cluster: deps.clusterStatus, listeners: () => listeners.map((l) => ({ name: l.name, up: l.listening?.() ?? true })) }, p.http));
      } catch (err) {
        // Without a native uWebSockets.js build there is no HTTP/WebSocket listener; the other
        // doors still serve. The gateway's error says which Node/glibc/arch combination works.
        // (http.engine: uws only; `auto` falls back to node:http + ws.)
        if ((err as Error).name !== 'UwsUnavailableError') throw err;
        off.http = 'DISABLED: no native uWebSockets.js build loads and http.engine is uws (auto or node would serve it on node:http + ws)';
        logger.error({ err: (err as Error).message }, 'HTTP and WebSocket listener disabled');
      }
    }
  } catch (err) {
    await Promise.allSettled(listeners.map((l) => l.close()));
    throw err;
  }
  return listeners;
}

/**
 * The ready line: every bound address, the engine where a door has more than one, every door
 * that is not serving with the reason (`http off (http.port: -1)`), and the batch codecs — loaded,
 * loaded at first use, or unavailable and why (host/core/compression.ts): never silent.
 */
function readyLine(listeners: Listener[], off: Record<string, string>) {
  const addresses = Object.fromEntries(listeners.map((l) => [l.name, l.address]));
  const engines = Object.fromEntries(listeners.filter((l) => l.engine).map((l) => [l.name, l.engine]));
  const named = listeners.map((l) => `${l.name} ${l.address}${l.engine ? ` (${l.engine})` : ''}`);
  const text = [...named, ...Object.entries(off).map(([name, why]) => `${name} ${why}`)].join(', ');
  const codecs = Object.fromEntries(Object.entries(codecReport()).map(([name, c]) => [name, `${c.state === 'lazy' ? 'on first use' : c.state}: ${c.by}${c.reason ? ` (${c.reason})` : ''}`]));
  const codecText = Object.entries(codecs).map(([name, c]) => `${name} ${c}`).join(', ');
  return { fields: { listeners: addresses, engines, off, codecs }, text: `ready: ${text}; codecs: ${codecText}` };
}

/** The ready line is the user's contract (scripts wait for it), so it is written whatever the configured level. */
function logReady(logger: Logger, line: ReturnType<typeof readyLine>, started: number): void {
  const readyLogger = logger.isLevelEnabled('info') ? logger : createLogger('info');
  readyLogger.info({ ...line.fields, startupMs: Math.round(performance.now() - started) }, line.text);
}

export async function startNode(config: NodeConfig): Promise<RunningNode> {
  const prepared = await prepareNode(config);
  const logger = createLogger(config.top.logLevel);
  const metrics = new MetricsRegistry();
  registerProcessMetrics(metrics);
  const started = performance.now();
  logger.info({ dataDir: prepared.dataDir, configFile: config.configFile ?? null }, 'starting tributary');
  for (const w of config.warnings) logger.warn(w);
  logBudget(logger, prepared.budget, config.sections.node.memoryBudgetBytes);
  for (const w of prepared.exposureWarnings) logger.warn({ setting: 'security.allowAnonymous' }, w);
  for (const w of plainTokenWarnings(config.sections.http.tokens as TokenConfig[])) logger.warn({ setting: 'http.tokens' }, w);
  if (config.top.host === '127.0.0.1' && prepared.exposureWarnings.length === 0) {
    logger.info({ host: config.top.host }, 'listeners on loopback only (host: 127.0.0.1); to serve the network set host: 0.0.0.0 with security.allowAnonymous: false (Kafka SASL users) or true (anyone), see docs/security.md');
  }

  // Each module names itself in its log lines (a `component` field); the HTTP gateway does not.
  // Node identity, producer-id blocks: metadata records; the identity is the kafka section's even with its listener off.
  const kafka = config.sections.kafka as unknown as KafkaServerOptions;
  // With `cluster.*` the metadata store is the quorum's (host/cluster/); its cluster id is kafka.clusterId.
  const cluster = prepared.cluster;
  let quorumStore: QuorumMetadataStore | undefined;
  let clusterTransport: TcpTransport | null = null; // its TLS files reload on SIGHUP; its status feeds GET /stats
  const incarnation = randomUUID(); // this process, as its broker registrations name it (a new broker epoch per start)
  const openMetadata = cluster
    ? async (dataDir: string) => (quorumStore = await openClusterStore(cluster, { dataDir, clusterId: kafka.clusterId, logger, onTransport: (t) => (clusterTransport = t) }, incarnation))
    : undefined;
  let broker: Broker;
  try {
    broker = await Broker.open(prepared.broker, { logger, metrics, identity: { nodeId: cluster?.nodeId ?? kafka.nodeId, clusterId: kafka.clusterId }, openMetadata, replicated: cluster !== null });
  } catch (err) {
    await quorumStore?.close();
    throw err;
  }
  let groups: GroupCoordinator;
  try {
    groups = await GroupCoordinator.open(broker, prepared.groups, { logger, metrics, leadership: leadershipOf(broker, cluster !== null) });
  } catch (err) {
    await broker.close();
    await quorumStore?.close();
    throw err;
  }

  let ready = false;
  let listeners: Listener[];
  const off: Record<string, string> = {}; // doors not serving and why: the ready line says so
  let schemas: RunningSchemas | undefined;
  let uplink: Uplink | null = null;
  let replication: Replication | undefined;
  let doorGroups: ClusterGroups | undefined; // a cluster: the MQTT and WebSocket doors' groups go to each group's coordinator
  try {
    // Replays `_schemas`, installs the validation hook, binds the registry (unless port -1).
    const security = doorSecurity(prepared.security, () => broker.metadata.image());
    const { startSchemas } = await import('./schemas/index.js');
    schemas = await startSchemas(broker, prepared.schemas, { logger, metrics, security, tokens: prepared.http?.tokens ?? [] });
    const clusterView = quorumStore && (await import('./cluster/replication.js')).clusterView(quorumStore);
    listeners = await openListeners(prepared, { broker, groups, doorGroups: (doorGroups = await doorGroupsOf(groups, clusterView, cluster)), schemas, logger, metrics, security, cluster: clusterView, uplink: () => uplink?.status() ?? null, clusterStatus: () => clusterTransport?.status() ?? null }, () => ready, off);
    if (cluster && quorumStore) replication = await startReplication(broker, quorumStore, cluster, listeners, { host: prepared.kafka?.advertisedHost ?? null, port: prepared.kafka?.advertisedPort ?? null }, incarnation, logger);
    const uplinkCluster = prepared.uplink && cluster && quorumStore ? (await import('./sync/cluster-gate.js')).clusterViewOf(broker, quorumStore, cluster.nodeId) : undefined;
    if (prepared.uplink) uplink = await (await import('./sync/index.js')).startUplink({ broker, logger, metrics, dataDir: prepared.dataDir, cluster: uplinkCluster }, prepared.uplink);
  } catch (err) {
    await closeParts({ listeners: listeners! ?? [], replication, schemas, groups, doorGroups, broker, quorumStore });
    throw err;
  }

  ready = true;
  releaseValidation((why) => logger.warn(why)); // every key is checked (the doors re-check theirs as they open): the validators can go; warns if ajv had to compile
  logReady(logger, readyLine(listeners, off), started);
  const heapTrim = startIdleHeapTrim(config.sections.node.idleHeapTrimIntervalMs, { logger, metrics });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      ready = false;
      heapTrim.stop();
      logger.info('stopping: closing listeners');
      await closeParts({ listeners, uplink, replication, schemas, groups, doorGroups, broker, quorumStore });
      logger.info('stopped cleanly');
    })());
  return { listeners, broker, groups, schemas, uplink, logger, stop, reloadTls: () => [...listeners.flatMap((l) => l.reloadTls?.() ?? []), ...(clusterTransport?.serverTls ? [clusterTransport.serverTls.reload()] : [])] };
}

/** Stops a node's parts in order: doors first, the broker (flush, fsync, clean-shutdown markers) and the quorum last. */
/** A cluster replicates `__consumer_offsets`: the coordinator serves the groups of the partitions this node leads. */
function leadershipOf(broker: Broker, clustered: boolean): ((onChange: () => void) => () => void) | undefined {
  return clustered ? (onChange) => broker.onLeadershipChange(() => onChange()) : undefined;
}

/** A cluster: the other doors' groups, each sent to its coordinator's node (host/cluster/group-proxy.ts). */
async function doorGroupsOf(groups: GroupCoordinator, view: ClusterView | undefined, cluster: PreparedNode['cluster']): Promise<ClusterGroups | undefined> {
  if (!cluster || !view) return undefined;
  const { ClusterGroups, defaultGroupProxyOptions } = await import('./cluster/group-proxy.js');
  return new ClusterGroups(groups, view, cluster.nodeId, { ...defaultGroupProxyOptions, membersMax: cluster.options.groupProxyMembersMax });
}

async function closeParts(p: { listeners: Listener[]; uplink?: Uplink | null; replication?: Replication; schemas?: RunningSchemas; groups: GroupCoordinator; doorGroups?: ClusterGroups; broker: Broker; quorumStore?: QuorumMetadataStore }): Promise<void> {
  await Promise.allSettled(p.listeners.map((l) => l.close()));
  p.doorGroups?.close();
  await p.uplink?.stop();
  await p.replication?.close();
  await p.schemas?.close();
  await p.groups.close();
  await p.broker.close();
  await p.quorumStore?.close();
}

/**
 * One line on stderr for a start-up failure: the message (which names the key, the value and
 * what is allowed for a config error). The stack only at log level debug or trace.
 */
function startupFailure(err: unknown, logLevel: string): string {
  const e = err as Error;
  const line = e instanceof ConfigError ? e.message : `failed to start: ${(e?.message ?? String(err)).replace(/\s*\n\s*/g, ' ')}`;
  const stack = (logLevel === 'debug' || logLevel === 'trace') && e?.stack ? `\n${e.stack}` : '';
  return `tributary: ${line}${stack}\n`;
}

/** Runs a node until SIGTERM/SIGINT; exit code 0 after a clean stop, 2 for a config error, 1 for another start-up failure. */
export async function runNode(argv: string[]): Promise<void> {
  let config: NodeConfig;
  try {
    config = loadNodeConfig(argv, process.env);
  } catch (err) {
    process.stderr.write(startupFailure(err, 'info'));
    process.exit(2);
  }
  let node: RunningNode;
  try {
    node = await startNode(config);
  } catch (err) {
    process.stderr.write(startupFailure(err, config.top.logLevel));
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
  // A node with every listener off (an uplink-only or replica-only node) has no socket keeping the
  // event loop alive; it runs until a signal all the same.
  setInterval(() => {}, 2 ** 30);
  let signalled = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signalled > 1) {
      node.logger.warn({ signal }, 'second signal: exiting without a clean stop');
      process.exit(130);
    }
    node.logger.info({ signal }, 'signal received');
    node.stop().then(
      () => process.exit(0),
      (err) => {
        node.logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // SIGHUP re-reads certificates (a daemon's convention); without a handler it would kill the node.
  process.on('SIGHUP', () => {
    const results = node.reloadTls();
    node.logger.info({ signal: 'SIGHUP', reloaded: results.filter((r) => r.ok).map((r) => r.listener), failed: results.filter((r) => !r.ok).map((r) => r.listener) }, `SIGHUP: TLS reload done (${results.length} listener${results.length === 1 ? '' : 's'})`);
  });
}
