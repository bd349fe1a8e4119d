// Every request/response version that both kafkajs and this listener speak, byte for byte:
// requests encoded by kafkajs's own per-version encoders decode with our tables and consume
// exactly the frame; responses encoded from our tables decode with kafkajs's per-version
// decoders to the values we wrote. Older versions (which real clients other than kafkajs
// may use) are covered here without a client to drive them.
import t from 'tap';
import { createRequire } from 'node:module';
import { decode, encodeToBuffer, Reader } from '../../../host/kafka/protocol/codec.js';
import { handlers } from '../../../host/kafka/apis/index.js';

const require = createRequire(import.meta.url);
const kjs = (p: string) => require(`kafkajs/src/protocol/requests/${p}`);
const Long = require('kafkajs/src/utils/long');

interface Case {
  dir: string;
  key: number;
  versions: number[];
  request: Record<string, unknown>;
  checkRequest: (decoded: any, t: any) => void;
  response: Record<string, unknown>;
  checkResponse: (decoded: any, t: any) => void;
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

const cases: Case[] = [
  {
    dir: 'produce',
    key: 0,
    versions: range(3, 7),
    request: { acks: -1, timeout: 1000, compression: 0, topicData: [{ topic: 't', partitions: [{ partition: 2, messages: [{ key: 'k', value: 'v' }] }] }] },
    checkRequest: (d, t) => {
      t.equal(d.acks, -1);
      t.equal(d.topicData[0].partitionData[0].index, 2);
      t.equal(d.topicData[0].partitionData[0].records[16], 2, 'a RecordBatch v2');
    },
    response: { responses: [{ name: 't', partitionResponses: [{ index: 2, errorCode: 0, baseOffset: 41, logAppendTimeMs: -1, logStartOffset: 3 }] }], throttleTimeMs: 0 },
    checkResponse: (d, t) => t.equal(String(d.topics[0].partitions[0].baseOffset), '41'),
  },
  {
    dir: 'fetch',
    key: 1,
    versions: range(4, 11),
    request: { replicaId: -1, maxWaitTime: 100, minBytes: 1, maxBytes: 1000, isolationLevel: 0, topics: [{ topic: 't', partitions: [{ partition: 1, fetchOffset: '7', maxBytes: 500 }] }] },
    checkRequest: (d, t) => {
      t.equal(d.topics[0].partitions[0].fetchOffset, 7);
      t.equal(d.topics[0].partitions[0].partitionMaxBytes, 500);
    },
    response: { errorCode: 0, sessionId: 0, responses: [{ topic: 't', partitions: [{ partitionIndex: 1, errorCode: 0, highWatermark: 9, lastStableOffset: 9, logStartOffset: 0, abortedTransactions: null, records: new Uint8Array(0) }] }] },
    checkResponse: (d, t) => t.equal(String(d.responses[0].partitions[0].highWatermark), '9'),
  },
  {
    dir: 'listOffsets',
    key: 2,
    versions: range(1, 3),
    request: { replicaId: -1, isolationLevel: 1, topics: [{ topic: 't', partitions: [{ partition: 0, timestamp: -2 }] }] },
    checkRequest: (d, t) => t.equal(d.topics[0].partitions[0].timestamp, -2),
    response: { topics: [{ name: 't', partitions: [{ partitionIndex: 0, errorCode: 0, timestamp: -1, offset: 12 }] }] },
    checkResponse: (d, t) => t.equal(String(d.responses[0].partitions[0].offset), '12'),
  },
  {
    dir: 'metadata',
    key: 3,
    versions: range(0, 6),
    request: { topics: ['a', 'b'], allowAutoTopicCreation: true },
    checkRequest: (d, t) => t.same(d.topics.map((x: { name: string }) => x.name), ['a', 'b']),
    response: {
      brokers: [{ nodeId: 0, host: 'h', port: 9092, rack: null }],
      clusterId: 'c',
      controllerId: 0,
      topics: [{ errorCode: 0, name: 'a', isInternal: false, partitions: [{ errorCode: 0, partitionIndex: 0, leaderId: 0, leaderEpoch: 0, replicaNodes: [0], isrNodes: [0], offlineReplicas: [] }] }],
    },
    checkResponse: (d, t) => t.equal(d.topicMetadata[0].partitionMetadata[0].leader, 0),
  },
  {
    dir: 'apiVersions',
    key: 18,
    versions: range(0, 2),
    request: {},
    checkRequest: () => {},
    response: { errorCode: 0, apiKeys: [{ apiKey: 3, minVersion: 0, maxVersion: 12 }] },
    checkResponse: (d, t) => t.same(d.apiVersions, [{ apiKey: 3, minVersion: 0, maxVersion: 12 }]),
  },
  {
    dir: 'createTopics',
    key: 19,
    versions: range(2, 3),
    request: { topics: [{ topic: 'n', numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '5' }] }], timeout: 100, validateOnly: true },
    checkRequest: (d, t) => {
      t.equal(d.topics[0].numPartitions, 3);
      t.same(d.topics[0].configs, [{ name: 'retention.ms', value: '5' }]);
      t.equal(d.validateOnly, true);
    },
    response: { topics: [{ name: 'n', errorCode: 0, errorMessage: null }] },
    checkResponse: (d, t) => t.equal(d.topicErrors[0].topic, 'n'),
  },
  {
    dir: 'deleteTopics',
    key: 20,
    versions: [1],
    request: { topics: ['x', 'y'], timeout: 100 },
    checkRequest: (d, t) => t.same(d.topicNames, ['x', 'y']),
    response: { responses: [{ name: 'x', errorCode: 0 }] },
    checkResponse: (d, t) => t.equal(d.topicErrors[0].topic, 'x'),
  },
  {
    dir: 'initProducerId',
    key: 22,
    versions: [0, 1],
    request: { transactionalId: null, transactionTimeout: 1000 },
    checkRequest: (d, t) => t.equal(d.transactionalId, null),
    response: { errorCode: 0, producerId: 123456789012, producerEpoch: 0 },
    checkResponse: (d, t) => t.equal(String(d.producerId), '123456789012'),
  },
  {
    dir: 'describeConfigs',
    key: 32,
    versions: [1, 2],
    request: { resources: [{ type: 2, name: 't', configNames: ['retention.ms'] }], includeSynonyms: false },
    checkRequest: (d, t) => t.same(d.resources[0].configurationKeys, ['retention.ms']),
    response: { results: [{ errorCode: 0, errorMessage: null, resourceType: 2, resourceName: 't', configs: [{ name: 'retention.ms', value: '5', readOnly: false, configSource: 1, isSensitive: false, synonyms: [] }] }] },
    checkResponse: (d, t) => t.equal(d.resources[0].configEntries[0].configValue, '5'),
  },
  {
    dir: 'alterConfigs',
    key: 33,
    versions: [0, 1],
    request: { resources: [{ type: 2, name: 't', configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }], validateOnly: false },
    checkRequest: (d, t) => t.same(d.resources[0].configs, [{ name: 'cleanup.policy', value: 'compact' }]),
    response: { responses: [{ errorCode: 0, errorMessage: null, resourceType: 2, resourceName: 't' }] },
    checkResponse: (d, t) => t.equal(d.resources[0].resourceName, 't'),
  },
  {
    dir: 'createPartitions',
    key: 37,
    versions: [0, 1],
    request: { topicPartitions: [{ topic: 't', count: 4 }], validateOnly: false, timeout: 100 },
    checkRequest: (d, t) => t.equal(d.topics[0].count, 4),
    response: { results: [{ name: 't', errorCode: 0, errorMessage: null }] },
    checkResponse: (d, t) => t.equal(d.topicErrors[0].topic, 't'),
  },
];

for (const c of cases) {
  t.test(`kafkajs ${c.dir}: every shared version, both directions`, async (t) => {
    const h = handlers.get(c.key)!;
    for (const v of c.versions) {
      const request = kjs(`${c.dir}/v${v}/request.js`)({ ...c.request, ...(c.dir === 'fetch' ? { topics: (c.request.topics as any[]).map((x) => ({ ...x, partitions: x.partitions.map((p: any) => ({ ...p, fetchOffset: Long.fromString(p.fetchOffset) })) })) } : {}) });
      const body: Buffer = (await request.encode()).buffer;
      const r = new Reader(body);
      const decoded = decode(h.request, r, v, v >= h.flexibleFrom);
      t.equal(r.remaining, 0, `${c.dir} v${v} request: every byte consumed`);
      c.checkRequest(decoded, t);
      const bytes = encodeToBuffer(h.response, c.response, v, v >= h.flexibleFrom);
      const parsed = await kjs(`${c.dir}/v${v}/response.js`).decode(bytes);
      c.checkResponse(parsed, t);
    }
  });
}
