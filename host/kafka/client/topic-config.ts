// One topic config of a target topic, read and set through the project's own client:
// DescribeConfigs (resource type 2 = topic, one key) and IncrementalAlterConfigs (operation SET).
// Used for the uplink's checkpoint topic, which must be compacted (host/sync/checkpoint-topic.ts).
// A target that does not speak an API (librdkafka's mock speaks neither) gives a KafkaClientError
// with fault 'unsupported'; a refusal gives a KafkaResponseError naming the code.
import { CLIENT_APIS } from './apis.js';
import type { KafkaClient } from './client.js';
import { checkCode } from './errors.js';

const RESOURCE_TOPIC = 2;
const OPERATION_SET = 0;

/** The value of config `name` of `topic` on the target (null: not reported). */
export async function describeTopicConfig(client: KafkaClient, topic: string, name: string): Promise<string | null> {
  const conn = await client.anyConnection();
  const res = await conn.request(CLIENT_APIS.describeConfigs, { resources: [{ resourceType: RESOURCE_TOPIC, resourceName: topic, configurationKeys: [name] }], includeSynonyms: false, includeDocumentation: false });
  const r = (res.results as Array<{ errorCode: number; configs: Array<{ name: string; value: string | null }> }>)[0];
  checkCode(r?.errorCode ?? 0, `describe config ${name} of topic ${topic}`);
  return r?.configs.find((c) => c.name === name)?.value ?? null;
}

/** Sets config `name` of `topic` to `value` on the target. */
export async function setTopicConfig(client: KafkaClient, topic: string, name: string, value: string): Promise<void> {
  const conn = await client.anyConnection();
  const res = await conn.request(CLIENT_APIS.incrementalAlterConfigs, { resources: [{ resourceType: RESOURCE_TOPIC, resourceName: topic, configs: [{ name, configOperation: OPERATION_SET, value }] }], validateOnly: false });
  const r = (res.responses as Array<{ errorCode: number; errorMessage: string | null }>)[0];
  checkCode(r?.errorCode ?? 0, `set ${name}=${value} on topic ${topic}${r?.errorMessage ? ` (${r.errorMessage})` : ''}`);
}
