// Purpose: the Kafka door's SASL state machine and its authorization of the APIs the interop
// tests do not reach, over a real socket to an in-process listener with SASL required and ACLs
// on: ILLEGAL_SASL_STATE, UNSUPPORTED_SASL_MECHANISM and handshake v0 answered then closed; an
// anonymous request closed; KIP-368 expiry closes, re-authentication before it keeps the
// connection, and re-authenticating as someone else fails; each group, config, producer-id and
// credential API answers its own authorization code for a principal without grants, and the
// credential APIs' own errors (RESOURCE_NOT_FOUND, UNACCEPTABLE_CREDENTIAL) for the super-user.
import t from 'tap';
import { Broker } from '../../../host/broker/broker.js';
import { GroupCoordinator } from '../../../host/broker/groups/index.js';
import { startKafkaServer } from '../../../host/kafka/server.js';
import { kafkaSecurity } from '../../../host/kafka/security.js';
import { handlers } from '../../../host/kafka/apis/index.js';
import { KafkaAdminConnection } from '../../../host/admin/kafka-admin.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { ERRORS } from '../../../host/errors/index.js';
import { makeCredential } from '../../../host/security/index.js';
import { sleep, tempDir } from '../../helpers/index.js';

const api = (key: number) => handlers.get(key)!;
const HANDSHAKE = api(17);
const AUTHENTICATE = api(36);
const METADATA = api(3);

async function stack(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t);
  const metrics = new MetricsRegistry();
  const broker = await Broker.open({ dataDir: dir }, { logger: silentLogger, metrics });
  const groups = await GroupCoordinator.open(broker, {}, { logger: silentLogger, metrics });
  const security = kafkaSecurity({ allowAnonymous: false, authorization: true, superUsers: ['User:admin'], reauthMs: 1500, loginFailuresMax: 1000 }, broker.metadata);
  const listener = await startKafkaServer({ broker, groups, logger: silentLogger, metrics, security }, { host: '127.0.0.1', port: 0, dataDir: dir });
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
  for (const user of ['admin', 'alice']) {
    const c = makeCredential('SCRAM-SHA-512', `${user}-pw`, 4096);
    await broker.metadata.propose([{ type: 'scramCredential', user, mechanism: 'SCRAM-SHA-512', iterations: 4096, salt: b64(c.salt), storedKey: b64(c.storedKey), serverKey: b64(c.serverKey) }]);
  }
  await broker.createTopic('t', 1, undefined, { internal: false });
  await groups.commitOffsets({ groupId: 'gx', generationId: -1, memberId: '', groupInstanceId: null, offsets: [{ topic: 't', partition: 0, offset: 0, leaderEpoch: -1, metadata: '' }] });
  t.teardown(async () => {
    await listener.close();
    await groups.close();
    await broker.close();
  });
  const connect = async (user?: string) => {
    const c = await KafkaAdminConnection.open(listener.address);
    t.teardown(() => c.close());
    if (user) await c.authenticate(HANDSHAKE, AUTHENTICATE, user, `${user}-pw`);
    return c;
  };
  return { connect };
}

const closed = (p: Promise<unknown>) => p.then(() => 'answered', (e: Error) => (/closed|ECONNRESET|EPIPE/.test(e.message) ? 'closed' : e.message));

t.test('sasl: out-of-order, unknown mechanism, v0 handshake and anonymous requests are answered (or not) and closed', async (t) => {
  const { connect } = await stack(t);
  let c = await connect();
  const early = await c.request<{ errorCode: number }>(AUTHENTICATE, 1, { authBytes: Buffer.from('n,,n=alice,r=abc') });
  t.equal(early.errorCode, ERRORS.ILLEGAL_SASL_STATE.kafka, 'SaslAuthenticate before SaslHandshake');
  t.equal(await closed(c.request(METADATA, 1, { topics: null })), 'closed');
  c = await connect();
  const gss = await c.request<{ errorCode: number; mechanisms: string[] }>(HANDSHAKE, 1, { mechanism: 'GSSAPI' });
  t.equal(gss.errorCode, ERRORS.UNSUPPORTED_SASL_MECHANISM.kafka);
  t.same(gss.mechanisms, ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'], 'the enabled mechanisms are listed');
  t.equal(await closed(c.request(METADATA, 1, { topics: null })), 'closed');
  // The cluster's own mechanism (host/security/node-identity.ts): not on a single node's listener.
  c = await connect();
  const node = await c.request<{ errorCode: number; mechanisms: string[] }>(HANDSHAKE, 1, { mechanism: 'TRIBUTARY-NODE' });
  t.equal(node.errorCode, ERRORS.UNSUPPORTED_SASL_MECHANISM.kafka, 'TRIBUTARY-NODE is refused on a listener that is not a cluster node');
  t.notOk(node.mechanisms.includes('TRIBUTARY-NODE'), 'and never listed');
  c = await connect();
  t.equal((await c.request<{ errorCode: number }>(HANDSHAKE, 0, { mechanism: 'PLAIN' })).errorCode, ERRORS.UNSUPPORTED_VERSION.kafka, 'handshake v0');
  c = await connect();
  t.equal(await closed(c.request(METADATA, 1, { topics: null })), 'closed', 'anonymous Metadata on a SASL-required listener');
  c = await connect('alice');
  const handshakeTwice = await c.request<{ errorCode: number }>(HANDSHAKE, 1, { mechanism: 'SCRAM-SHA-512' });
  t.equal(handshakeTwice.errorCode, ERRORS.NONE.kafka, 'a new handshake after login starts re-authentication');
  t.equal((await c.request<{ errorCode: number }>(HANDSHAKE, 1, { mechanism: 'SCRAM-SHA-512' })).errorCode, ERRORS.ILLEGAL_SASL_STATE.kafka, 'a handshake in the middle of an exchange');
});

t.test('sasl: KIP-368 session lifetime: expiry closes, re-authentication keeps the connection, the principal may not change', async (t) => {
  const { connect } = await stack(t);
  const expiring = await connect('alice');
  t.equal(await closed(expiring.request(METADATA, 1, { topics: null })), 'answered');
  await sleep(1700);
  t.equal(await closed(expiring.request(METADATA, 1, { topics: null })), 'closed', 'past security.reauthMs without re-authenticating');
  const renewed = await connect('alice');
  await sleep(900);
  await renewed.authenticate(HANDSHAKE, AUTHENTICATE, 'alice', 'alice-pw');
  await sleep(900);
  t.equal(await closed(renewed.request(METADATA, 1, { topics: null })), 'answered', '1.8 s after the first login, 0.9 s after the second');
  const other = await connect('alice');
  await t.rejects(other.authenticate(HANDSHAKE, AUTHENTICATE, 'admin', 'admin-pw'), /re-authentication as admin on a connection of User:alice/);
});

t.test('acls: group, config, producer-id and credential APIs refuse a principal without grants with their own codes', async (t) => {
  const { connect } = await stack(t);
  const alice = await connect('alice');
  type Groups = { groups: Array<{ errorCode: number; groupId: string }> };
  t.equal((await alice.request<Groups>(api(15), 5, { groups: ['gx'] })).groups[0].errorCode, ERRORS.GROUP_AUTHORIZATION_FAILED.kafka, 'DescribeGroups');
  t.same((await alice.request<Groups>(api(16), 4, { statesFilter: [] })).groups, [], 'ListGroups shows alice nothing');
  t.equal((await alice.request<{ errorCode: number }>(api(9), 7, { groupId: 'gx', topics: null })).errorCode, ERRORS.GROUP_AUTHORIZATION_FAILED.kafka, 'OffsetFetch');
  t.equal((await alice.request<{ results: Array<{ errorCode: number }> }>(api(42), 2, { groupsNames: ['gx'] })).results[0].errorCode, ERRORS.GROUP_AUTHORIZATION_FAILED.kafka, 'DeleteGroups');
  t.equal((await alice.request<{ results: Array<{ errorCode: number }> }>(api(37), 3, { topics: [{ name: 't', count: 2, assignments: null }], timeoutMs: 1000, validateOnly: false })).results[0].errorCode, ERRORS.TOPIC_AUTHORIZATION_FAILED.kafka, 'CreatePartitions');
  const configs = await alice.request<{ results: Array<{ errorCode: number }> }>(api(32), 4, { resources: [{ resourceType: 2, resourceName: 't', configurationKeys: null }, { resourceType: 4, resourceName: '0', configurationKeys: null }], includeSynonyms: false, includeDocumentation: false });
  t.same(configs.results.map((r) => r.errorCode), [ERRORS.TOPIC_AUTHORIZATION_FAILED.kafka, ERRORS.CLUSTER_AUTHORIZATION_FAILED.kafka], 'DescribeConfigs topic and broker');
  t.equal((await alice.request<{ errorCode: number }>(api(22), 4, { transactionalId: null, transactionTimeoutMs: 1000 })).errorCode, ERRORS.CLUSTER_AUTHORIZATION_FAILED.kafka, 'InitProducerId');
  t.equal((await alice.request<{ errorCode: number }>(api(50), 0, { users: null })).errorCode, ERRORS.CLUSTER_AUTHORIZATION_FAILED.kafka, 'DescribeUserScramCredentials');
  const alter = await alice.request<{ results: Array<{ errorCode: number }> }>(api(51), 0, { deletions: [{ name: 'admin', mechanism: 2 }], upsertions: [] });
  t.equal(alter.results[0].errorCode, ERRORS.CLUSTER_AUTHORIZATION_FAILED.kafka, 'AlterUserScramCredentials');
  const meta = await alice.request<{ topics: Array<{ name: string; errorCode: number }> }>(METADATA, 4, { topics: [{ name: 't' }, { name: 'new-one' }], allowAutoTopicCreation: true });
  t.same(meta.topics.map((x) => x.errorCode), [ERRORS.TOPIC_AUTHORIZATION_FAILED.kafka, ERRORS.TOPIC_AUTHORIZATION_FAILED.kafka], 'Metadata: neither described nor auto-created');

  const admin = await connect('admin');
  t.same((await admin.request<Groups>(api(16), 4, { statesFilter: [] })).groups.map((g) => g.groupId), ['gx'], 'the super-user lists the group');
  const users = await admin.request<{ results: Array<{ user: string; errorCode: number; credentialInfos: Array<{ mechanism: number; iterations: number }> }> }>(api(50), 0, { users: [{ name: 'alice' }, { name: 'ghost' }] });
  t.same(users.results.map((u) => [u.user, u.errorCode, u.credentialInfos]), [['alice', 0, [{ mechanism: 2, iterations: 4096 }]], ['ghost', ERRORS.RESOURCE_NOT_FOUND.kafka, []]]);
  const bad = await admin.request<{ results: Array<{ user: string; errorCode: number }> }>(api(51), 0, {
    deletions: [{ name: 'ghost', mechanism: 1 }],
    upsertions: [{ name: 'weak', mechanism: 1, iterations: 4095, salt: Buffer.from('salt'), saltedPassword: Buffer.alloc(32, 1) }],
  });
  t.same(bad.results.map((r) => [r.user, r.errorCode]), [['ghost', ERRORS.RESOURCE_NOT_FOUND.kafka], ['weak', ERRORS.UNACCEPTABLE_CREDENTIAL.kafka]]);
  const acl = await admin.request<{ results: Array<{ errorCode: number; errorMessage: string }> }>(api(30), 3, { creations: [{ resourceType: 2, resourceName: 't', resourcePatternType: 3, principal: 'alice', host: '*', operation: 3, permissionType: 3 }] });
  t.equal(acl.results[0].errorCode, ERRORS.INVALID_REQUEST.kafka);
  t.match(acl.results[0].errorMessage, /principal "alice" is not User:<name>/);
});
