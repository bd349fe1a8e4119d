// Shared setup for the MQTT gateway's tests: a real Broker on a temp dir with the gateway on
// random ports (in process), and readers that decode what the log holds with the core.
import { Broker } from '../../../host/broker/broker.js';
import type { BrokerOptions } from '../../../host/broker/limits.js';
import { decodeBatches } from '../../../host/core/index.js';
import { pino } from 'pino';
import { silentLogger, type Logger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { openMqttGateway, type MqttGateway, type MqttGatewayOptions } from '../../../gateway/mqtt/index.js';
import { tempDir } from '../../helpers/index.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface Stack {
  broker: Broker;
  gateway: MqttGateway;
  dataDir: string;
  port: number;
  wsPort: number;
  url: string;
  wsUrl: string;
  metrics: MetricsRegistry;
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** A logger whose lines are kept (tests assert the log line naming a rule). */
export function capturingLogger(lines: Array<Record<string, unknown>>): Logger {
  return pino(
    { level: 'debug' },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
        if (lines.length > 4000) lines.splice(0, 1000);
        if (process.env.MQTT_TEST_LOG) process.stderr.write(line);
      },
    },
  );
}

export async function openStack(
  t: Teardown,
  opts: { dataDir?: string; mqtt?: Partial<MqttGatewayOptions>; broker?: Partial<BrokerOptions>; logs?: Array<Record<string, unknown>> } = {},
): Promise<Stack> {
  const dataDir = opts.dataDir ?? (await tempDir(t, 'tributary-mqtt-'));
  const logs = opts.logs ?? [];
  const logger = capturingLogger(logs);
  const metrics = new MetricsRegistry();
  const broker = await Broker.open({ dataDir, ...opts.broker }, { logger: silentLogger, metrics });
  let gateway: MqttGateway;
  try {
    gateway = await openMqttGateway({ broker, logger, metrics }, { host: '127.0.0.1', port: 0, wsPort: 0, ...opts.mqtt });
  } catch (err) {
    await broker.close();
    throw err;
  }
  const portOf = (name: string) => Number(gateway.listeners.find((l) => l.name === name)?.address.split(':').pop() ?? -1);
  let closed = false;
  const stack: Stack = {
    broker,
    gateway,
    dataDir,
    metrics,
    logs,
    port: portOf('mqtt'),
    wsPort: portOf('mqttWs'),
    url: `mqtt://127.0.0.1:${portOf('mqtt')}`,
    wsUrl: `ws://127.0.0.1:${portOf('mqttWs')}/mqtt`,
    async close() {
      if (closed) return;
      closed = true;
      await gateway.close();
      await broker.close();
    },
  };
  t.teardown(() => stack.close());
  return stack;
}

export interface StoredRecord {
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string | null>;
}

/** Every record of a topic, all partitions, decoded with the core. */
export async function readTopic(broker: Broker, topic: string): Promise<StoredRecord[]> {
  const info = broker.describeTopic(topic);
  if (!info) return [];
  const out: StoredRecord[] = [];
  for (let partition = 0; partition < info.partitions; partition++) {
    const tp = { topic, partition };
    let offset = broker.offsets(tp).logStartOffset;
    while (offset < broker.offsets(tp).logEndOffset) {
      const res = await broker.read(tp, offset, { maxBytes: 1 << 20 });
      if (res.records.byteLength === 0) break;
      for (const b of decodeBatches(res.records, { partialTail: 'ignore' })) {
        for (const r of b.records) {
          if (r.offset < offset) continue;
          const headers: Record<string, string | null> = {};
          for (const h of r.headers) headers[h.key] = h.value === null ? null : Buffer.from(h.value).toString('utf8');
          out.push({
            partition,
            offset: r.offset,
            key: r.key === null ? null : Buffer.from(r.key).toString('utf8'),
            value: r.value === null ? null : Buffer.from(r.value).toString('utf8'),
            headers,
          });
        }
        offset = Math.max(offset, b.header.lastOffset + 1);
      }
    }
  }
  return out;
}
