// Topic configs as Kafka's config APIs show them: entries with a value, a source and a type.
import type { TopicConfig, TopicInfo } from '../../broker/api.js';
import { defaultTopicConfig, topicConfigSpecs } from '../../broker/topic-config.js';
import { ZERO_UUID } from '../protocol/codec.js';

/** DescribeConfigs config_source values. */
export const CONFIG_SOURCE = { DYNAMIC_TOPIC_CONFIG: 1, STATIC_BROKER_CONFIG: 4, DEFAULT_CONFIG: 5 } as const;
/** DescribeConfigs config_type values (v3+). */
export const CONFIG_TYPE = { UNKNOWN: 0, BOOLEAN: 1, STRING: 2, INT: 3, SHORT: 4, LONG: 5, DOUBLE: 6, LIST: 7 } as const;

export const topicConfigKeyList = Object.keys(topicConfigSpecs) as Array<keyof TopicConfig>;

export function isTopicConfigKey(key: string): key is keyof TopicConfig {
  return Object.prototype.hasOwnProperty.call(topicConfigSpecs, key);
}

export interface ConfigEntry {
  name: string;
  value: string | null;
  readOnly: boolean;
  isDefault: boolean;
  configSource: number;
  isSensitive: boolean;
  synonyms: [];
  configType: number;
  documentation: string | null;
}

export function topicConfigEntries(info: TopicInfo, keys: string[] | null, withDocs: boolean): ConfigEntry[] {
  const out: ConfigEntry[] = [];
  for (const key of topicConfigKeyList) {
    if (keys && !keys.includes(key)) continue;
    const value = info.config[key];
    // The broker says which keys the topic overrides; without that, compare with the defaults.
    const isDefault = info.overrides ? !Object.prototype.hasOwnProperty.call(info.overrides, key) : value === defaultTopicConfig[key];
    const spec = topicConfigSpecs[key];
    out.push({
      name: key,
      value: String(value),
      readOnly: false,
      isDefault,
      configSource: isDefault ? CONFIG_SOURCE.DEFAULT_CONFIG : CONFIG_SOURCE.DYNAMIC_TOPIC_CONFIG,
      isSensitive: false,
      synonyms: [],
      configType: spec.kind === 'int' ? CONFIG_TYPE.LONG : key === 'cleanup.policy' ? CONFIG_TYPE.LIST : CONFIG_TYPE.STRING,
      documentation: withDocs ? spec.doc : null,
    });
  }
  return out;
}

/** A topic's id as 16 bytes (the broker keeps it as a UUID string); the zero uuid when absent. */
export function topicIdBytes(info: TopicInfo | undefined): Uint8Array {
  const hex = info?.topicId?.replace(/-/g, '');
  if (!hex || !/^[0-9a-fA-F]{32}$/.test(hex)) return ZERO_UUID;
  return Buffer.from(hex, 'hex');
}
