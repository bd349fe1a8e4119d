// `tributary start`: one broker node. Loads the configuration, opens the broker (which
// recovers every partition log), the group coordinator, then every listener; logs one `ready`
// line naming every bound address; on SIGTERM/SIGINT stops accepting, flushes, fsyncs, writes
// the clean-shutdown markers and exits 0.
import { resolve } from 'node:path';
import { Broker, defaultBrokerOptions, type BrokerOptions } from './broker/broker.js';
import { GroupCoordinator, defaultGroupOptions, type GroupOptions } from './broker/groups/index.js';
import { startKafkaServer, defaultKafkaServerOptions, type KafkaServerOptions } from './kafka/server.js';
import { startMqttGateway, defaultMqttGatewayOptions, type MqttGatewayOptions } from '../gateway/mqtt/index.js';
import { startWsGateway, defaultWsGatewayOptions, type WsGatewayOptions } from '../gateway/ws/index.js';
import { startSchemas, decodeWireValue, defaultSchemaRegistryOptions, type RunningSchemas, type SchemaRegistryOptions } from './schemas/index.js';
import { loadConfig, type LoadedConfig } from './config/loader.js';
import { createLogger, type Logger } from './logging.js';
import { MetricsRegistry } from './metrics/registry.js';

export interface Listener {
  name: string;
  address: string;
  close(): Promise<void>;
}

/** Drops keys that are not the user's to set in that section (derived from elsewhere). */
function omit(section: object, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(section).filter(([k]) => !keys.includes(k)));
}

/**
 * The configuration sections and their embedded defaults (the schema of the config file).
 * Derived keys are left out: every listener binds the top-level `host`; data lives in the
 * top-level `dataDir`; Kafka's CreateTopics default partition count is the broker's.
 * `injectedFlushDelayMs` is a bench-only knob, never a user setting.
 */
export function configSections() {
  return {
    broker: omit(defaultBrokerOptions, ['dataDir', 'injectedFlushDelayMs']),
    groups: omit(defaultGroupOptions, []),
    kafka: omit(defaultKafkaServerOptions, ['host', 'dataDir', 'defaultPartitions']),
    mqtt: omit(defaultMqttGatewayOptions, ['host']),
    http: omit(defaultWsGatewayOptions, ['host']),
    schemas: omit(defaultSchemaRegistryOptions, ['host']),
  };
}

export type NodeConfig = LoadedConfig<ReturnType<typeof configSections>>;

export function loadNodeConfig(argv: string[], env: NodeJS.ProcessEnv): NodeConfig {
  return loadConfig({ argv, env, sections: configSections() });
}

export interface RunningNode {
  listeners: Listener[];
  broker: Broker;
  groups: GroupCoordinator;
  schemas: RunningSchemas;
  logger: Logger;
  stop(): Promise<void>;
}

/** Dashboards' `decode: confluent`: the wire format's value through the registry. */
function decoderOf(schemas: RunningSchemas) {
  return (value: Uint8Array) => {
    const d = decodeWireValue(schemas.registry, value);
    return d ? { schemaId: d.id, value: d.value } : undefined;
  };
}

export async function startNode(config: NodeConfig): Promise<RunningNode> {
  const logger = createLogger(config.top.logLevel);
  const metrics = new MetricsRegistry();
  const dataDir = resolve(config.top.dataDir);
  const started = performance.now();
  logger.info({ dataDir, configFile: config.configFile ?? null }, 'starting tributary');

  // Each module names itself in its log lines (a `component` field); the HTTP gateway does not.
  const broker = await Broker.open({ ...(config.sections.broker as unknown as BrokerOptions), dataDir }, { logger, metrics });
  const groups = await GroupCoordinator.open(broker, config.sections.groups as unknown as GroupOptions, { logger, metrics });

  const listeners: Listener[] = [];
  let ready = false;
  const host = config.top.host;
  let schemas: RunningSchemas | undefined;
  try {
    schemas = await startSchemas(broker, { ...config.sections.schemas, host } as unknown as SchemaRegistryOptions, { logger, metrics });
    if (schemas.listener) listeners.push(schemas.listener);
    listeners.push(
      await startKafkaServer({ broker, groups, logger, metrics }, { ...config.sections.kafka, host, dataDir, defaultPartitions: broker.options.defaultPartitions } as unknown as KafkaServerOptions),
    );
    listeners.push(
      ...(await startMqttGateway({ broker, groups, logger, metrics }, { ...config.sections.mqtt, host } as unknown as MqttGatewayOptions)),
    );
    try {
      listeners.push(
        await startWsGateway(
          { broker, groups, logger: logger.child({ component: 'http' }), metrics, health: () => ready, decodeValue: decoderOf(schemas) },
          { ...config.sections.http, host } as unknown as WsGatewayOptions,
        ),
      );
    } catch (err) {
      // Without a native uWebSockets.js build there is no HTTP/WebSocket listener; the other
      // doors still serve. The gateway's error says which Node/glibc/arch combination works.
      if ((err as Error).name !== 'UwsUnavailableError') throw err;
      logger.error({ err: (err as Error).message }, 'HTTP and WebSocket listener disabled');
    }
  } catch (err) {
    await Promise.allSettled(listeners.map((l) => l.close()));
    await schemas?.close();
    await groups.close();
    await broker.close();
    throw err;
  }

  ready = true;
  const addresses = Object.fromEntries(listeners.map((l) => [l.name, l.address]));
  // The ready line is the user's contract (scripts wait for it), so it is written whatever
  // the configured level.
  const readyLogger = logger.isLevelEnabled('info') ? logger : createLogger('info');
  readyLogger.info({ listeners: addresses, startupMs: Math.round(performance.now() - started) }, `ready: ${listeners.map((l) => `${l.name} ${l.address}`).join(', ')}`);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      ready = false;
      logger.info('stopping: closing listeners');
      await Promise.allSettled(listeners.map((l) => l.close()));
      await schemas!.close();
      await groups.close();
      await broker.close(); // flush, fsync, clean-shutdown markers
      logger.info('stopped cleanly');
    })());
  return { listeners, broker, groups, schemas: schemas!, logger, stop };
}

/** Runs a node until SIGTERM/SIGINT; exit code 0 after a clean stop. */
export async function runNode(argv: string[]): Promise<void> {
  let config: NodeConfig;
  try {
    config = loadNodeConfig(argv, process.env);
  } catch (err) {
    process.stderr.write(`tributary: ${(err as Error).message}\n`);
    process.exit(2);
  }
  let node: RunningNode;
  try {
    node = await startNode(config);
  } catch (err) {
    process.stderr.write(`tributary: failed to start: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  }
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
}
