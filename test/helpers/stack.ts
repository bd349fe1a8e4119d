// The one in-process stack builder of the test suites: a real Broker on real files (a fresh
// temp dir unless one is given) and, on request, the group coordinator, the Kafka listener, the
// MQTT gateway and the HTTP/WebSocket gateway over it, each on a random loopback port — wired
// the way host/node.ts wires a node. Every fixture (broker, groups, Kafka, MQTT, WebSocket)
// builds on it, so a change in how a node is put together is made here once.
//
// Opened in order broker → groups → Kafka → MQTT → WebSocket; closed in the reverse order,
// once, at the test's teardown (or earlier through close()). A part that fails to open closes
// the parts already open before the error is thrown.
import { Broker, type BrokerOptions } from '../../host/broker/broker.js';
import { GroupCoordinator, type GroupOptions } from '../../host/broker/groups/index.js';
import type { Clock } from '../../host/broker/groups/clock.js';
import { startKafkaServer, type KafkaServerOptions } from '../../host/kafka/server.js';
import type { Listener } from '../../host/config/listener.js';
import { openMqttGateway, type MqttGateway, type MqttGatewayOptions } from '../../gateway/mqtt/index.js';
import { defaultWsGatewayOptions, startWsGateway, type WsGatewayDeps, type WsGatewayOptions } from '../../gateway/ws/index.js';
import { silentLogger, type Logger } from '../../host/logging.js';
import { MetricsRegistry } from '../../host/metrics/registry.js';
import { registerProcessMetrics } from '../../host/metrics/process.js';
import { tempDir } from './index.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface StackOptions {
  /** The data dir; default a fresh temp dir removed after the test. */
  dataDir?: string;
  /** Prefix of the temp dir's name (what the test is about). */
  dirPrefix?: string;
  broker?: Partial<BrokerOptions>;
  /** Logger of the broker, the coordinator and the Kafka listener (default silent). */
  logger?: Logger;
  metrics?: MetricsRegistry;
  /** The coordinator's options, or omitted for no coordinator. */
  groups?: Partial<GroupOptions>;
  /** A manual clock for the coordinator (group unit tests). */
  clock?: Clock;
  /** The Kafka listener's options, or omitted for none. */
  kafka?: Partial<KafkaServerOptions>;
  /** The MQTT gateway's options (TCP and WebSocket on random ports), or omitted for none. */
  mqtt?: Partial<MqttGatewayOptions>;
  /** The MQTT gateway's own logger (tests that read its log lines). */
  mqttLogger?: Logger;
  /** The HTTP/WebSocket gateway's options, or omitted for none. */
  ws?: Partial<WsGatewayOptions>;
  /** What the node would hand the WebSocket gateway besides the broker (health, listeners, decodeValue). */
  wsDeps?: Partial<Omit<WsGatewayDeps, 'broker' | 'groups' | 'logger' | 'metrics'>>;
}

export interface TestStack {
  dataDir: string;
  metrics: MetricsRegistry;
  broker: Broker;
  groups?: GroupCoordinator;
  kafka?: Listener;
  mqtt?: MqttGateway;
  ws?: Listener;
  /** The port a listener got (-1 when that part is not open). */
  portOf(name: 'kafka' | 'mqtt' | 'mqttWs' | 'http'): number;
  /** Closes every part, last opened first; once. */
  close(): Promise<void>;
}

const portOfAddress = (address: string | undefined) => (address === undefined ? -1 : Number(address.slice(address.lastIndexOf(':') + 1)));

export async function openTestStack(t: Teardown, o: StackOptions = {}): Promise<TestStack> {
  const dataDir = o.dataDir ?? (await tempDir(t, o.dirPrefix ?? 'tributary-stack-'));
  const metrics = o.metrics ?? new MetricsRegistry();
  if (!o.metrics) registerProcessMetrics(metrics); // as startNode does
  const logger = o.logger ?? silentLogger;
  const closers: Array<() => Promise<unknown>> = [];
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      for (const c of closers.reverse()) await c().catch(() => undefined);
    })());
  try {
    const broker = await Broker.open({ ...o.broker, dataDir }, { logger, metrics });
    closers.push(() => broker.close());
    const stack: TestStack = { dataDir, metrics, broker, portOf: () => -1, close };
    if (o.groups) {
      const groups = await GroupCoordinator.open(broker, o.groups, { logger, metrics, ...(o.clock ? { clock: o.clock } : {}) });
      closers.push(() => groups.close());
      stack.groups = groups;
    }
    if (o.kafka) {
      const kafka = await startKafkaServer({ broker, groups: stack.groups, logger, metrics }, { host: '127.0.0.1', port: 0, ...o.kafka } as KafkaServerOptions);
      closers.push(() => kafka.close());
      stack.kafka = kafka;
    }
    if (o.mqtt) {
      const mqtt = await openMqttGateway({ broker, groups: stack.groups, logger: o.mqttLogger ?? logger, metrics }, { host: '127.0.0.1', port: 0, wsPort: 0, ...o.mqtt });
      closers.push(() => mqtt.close());
      stack.mqtt = mqtt;
    }
    if (o.ws) {
      const ws = await startWsGateway({ broker, groups: stack.groups, logger, metrics, health: () => true, ...o.wsDeps }, { ...defaultWsGatewayOptions, host: '127.0.0.1', port: 0, ...httpEngineFromEnv(), ...o.ws });
      closers.push(() => ws.close());
      stack.ws = ws;
    }
    stack.portOf = (name) =>
      portOfAddress(name === 'kafka' ? stack.kafka?.address : name === 'http' ? stack.ws?.address : stack.mqtt?.listeners.find((l) => l.name === name)?.address);
    t.teardown(close);
    return stack;
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * TRIBUTARY_HTTP_ENGINE (the `http.engine` key's variable, which a broker process reads itself)
 * applies to in-process gateways too, so one test file runs against either engine.
 */
export function httpEngineFromEnv(): Partial<WsGatewayOptions> {
  const engine = process.env.TRIBUTARY_HTTP_ENGINE;
  if (engine === undefined) return {};
  if (engine !== 'auto' && engine !== 'uws' && engine !== 'node') throw new Error(`TRIBUTARY_HTTP_ENGINE must be auto, uws or node, got ${engine}`);
  return { engine };
}
