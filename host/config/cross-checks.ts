// Limits that must agree across sections: a publish the MQTT door accepts must fit in a batch a
// topic accepts, a batch a topic accepts must fit in a Kafka request, and so on. Each rule says
// `smaller ≤ larger` with the reason; a broken rule names both keys, both values and where each
// came from. The node supplies the values (some are derived, e.g. a topic default that falls back
// to the built-in one), so this file knows key names and nothing of the modules behind them.
import { ConfigError } from './loader.js';

export interface OrderRule {
  smaller: string;
  larger: string;
  why: string;
}

export const CROSS_SECTION_RULES: readonly OrderRule[] = [
  {
    smaller: 'mqtt.packetBytesMax',
    larger: 'broker.topicDefaults.max.message.bytes',
    why: 'a publish the MQTT door reads must fit in one batch of a topic with default configs, or every such publish is read and then refused',
  },
  {
    smaller: 'mqtt.batchBytesMax',
    larger: 'broker.topicDefaults.max.message.bytes',
    why: 'the MQTT door appends batches of up to this size; a larger one is refused by the topic',
  },
  {
    smaller: 'http.maxPayloadBytes',
    larger: 'broker.maxMessageBytesMax',
    why: 'a WebSocket frame larger than any batch a topic may hold could never be stored, only buffered',
  },
  {
    smaller: 'broker.topicDefaults.max.message.bytes',
    larger: 'kafka.maxRequestBytes',
    why: 'a Kafka producer must be able to send the largest batch a topic accepts by default in one request',
  },
  {
    smaller: 'kafka.maxRequestBytes',
    larger: 'kafka.maxInFlightBytesPerConnection',
    why: 'one request of the largest size must fit in a connection\'s in-flight bytes',
  },
  {
    smaller: 'groups.minSessionTimeoutMs',
    larger: 'mqtt.sharedSessionTimeoutMs',
    why: 'MQTT shared subscriptions join consumer groups with this session timeout; below the coordinator\'s minimum every join is refused',
  },
  {
    smaller: 'mqtt.sharedSessionTimeoutMs',
    larger: 'groups.maxSessionTimeoutMs',
    why: 'MQTT shared subscriptions join consumer groups with this session timeout; above the coordinator\'s maximum every join is refused',
  },
  {
    smaller: 'groups.minSessionTimeoutMs',
    larger: 'http.groupSessionTimeoutMs',
    why: 'WebSocket group subscriptions join consumer groups with this session timeout; below the coordinator\'s minimum every join is refused',
  },
  {
    smaller: 'http.groupSessionTimeoutMs',
    larger: 'groups.maxSessionTimeoutMs',
    why: 'WebSocket group subscriptions join consumer groups with this session timeout; above the coordinator\'s maximum every join is refused',
  },
];

/** Throws a ConfigError naming both keys for the first rule the values break. */
export function checkCrossSection(values: Readonly<Record<string, number>>, sources: Readonly<Record<string, string>>, rules: readonly OrderRule[] = CROSS_SECTION_RULES): void {
  const from = (k: string) => sources[k] ?? 'default';
  for (const r of rules) {
    const a = values[r.smaller];
    const b = values[r.larger];
    if (a === undefined || b === undefined || a <= b) continue;
    throw new ConfigError(r.smaller, a, from(r.smaller), `must be at most ${r.larger} = ${b} (${from(r.larger)}): ${r.why}`);
  }
}
