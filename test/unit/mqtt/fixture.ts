// Shared setup for the MQTT gateway's tests: a real Broker on a temp dir with the gateway on
// random ports (in process), and readers that decode what the log holds with the core.
import { Broker } from '../../../host/broker/broker.js';
import type { BrokerOptions } from '../../../host/broker/limits.js';
import { decodeBatches } from '../../../host/core/index.js';
import { pino } from 'pino';
import type { Logger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import type { MqttGateway, MqttGatewayOptions } from '../../../gateway/mqtt/index.js';
import { openTestStack } from '../../helpers/stack.js';

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
  const logs = opts.logs ?? [];
  const s = await openTestStack(t, { dataDir: opts.dataDir, dirPrefix: 'tributary-mqtt-', broker: opts.broker, mqtt: opts.mqtt ?? {}, mqttLogger: capturingLogger(logs) });
  const gateway = s.mqtt!;
  return {
    broker: s.broker,
    gateway,
    dataDir: s.dataDir,
    metrics: s.metrics,
    logs,
    port: s.portOf('mqtt'),
    wsPort: s.portOf('mqttWs'),
    url: `mqtt://127.0.0.1:${s.portOf('mqtt')}`,
    wsUrl: `ws://127.0.0.1:${s.portOf('mqttWs')}/mqtt`,
    close: s.close,
  };
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
