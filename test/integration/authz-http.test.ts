// Purpose: the HTTP API, the WebSocket door and the schema registry on the one authorizer (issue
// 13 findings 4, 5 and 7), against a real broker process: bearer tokens map to principals whose
// Kafka ACLs decide, narrowed by the token's scope; the docs' read-only dashboard token cannot
// delete, create or produce (finding 5); internal topics need an ACL naming them even for a token
// allowed to read `*` (finding 7); no or unknown token is 401, an ACL refusal 403 with the table's
// code; state-changing requests with a text/plain, form or untyped body are 415 (CSRF); WebSocket
// subscribes answer the error frame; `Origin` from another site is refused before the upgrade on
// /ws and on MQTT over WebSocket. After every refusal the broker keeps serving the others.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import mqtt from 'mqtt';
import { Client } from '../unit/ws/harness.js';
import { cliJs, startBroker, tempDir } from '../helpers/index.js';
import { spawnSync } from 'node:child_process';
import confluent from '@kafkajs/confluent-schema-registry';

const { SchemaRegistry, SchemaType } = confluent;

const TOKENS = [
  // the docs' read-only dashboard token: reads everything its ACLs give it, nothing else
  { token: 'dash-token-1', principal: 'User:dash', read: ['*'], write: [] },
  { token: 'ops-token-1', principal: 'User:admin', admin: true },
  { token: 'dev-token-1', principal: 'User:alice' },
];

interface Answer {
  status: number;
  code?: string;
}

async function call(url: string, method: string, token: string | undefined, body?: string, type = 'application/json'): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined && type !== '') headers['content-type'] = type;
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : type === '' ? new Blob([body]) : body });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = JSON.parse(text).error?.code;
  } catch {
    code = undefined;
  }
  return { status: res.status, code };
}

/** The upgrade's HTTP status (101 = opened) for a WebSocket with these headers. */
function upgradeStatus(url: string, protocol: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, [protocol], { headers });
    ws.on('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? -1);
      ws.terminate();
    });
    ws.on('error', () => resolve(-1));
  });
}

t.test('http and websocket on the one authorizer: tokens are principals, least privilege, 401/403/415, Origin', async (t) => {
  const dir = await tempDir(t, 'tributary-authz-http-');
  const dataDir = join(dir, 'data');
  const first = await startBroker(t, { dataDir });
  const k0 = first.listeners.kafka!;
  const acls = [
    ['--principal', 'User:dash', '--operation', 'read', '--topic', '*'],
    ['--principal', 'User:alice', '--operation', 'write', '--topic', 'telemetry'],
    ['--principal', 'User:alice', '--operation', 'read', '--topic', 'telemetry'],
    // the registry: subjects are checked as topics of the same name; a prefixed grant covers telemetry-value
    ['--principal', 'User:alice', '--operation', 'write', '--topic', 'telemetry-', '--prefixed'],
    // @kafkajs/confluent-schema-registry sets the subject's compatibility after its first registration
    ['--principal', 'User:alice', '--operation', 'alter_configs', '--topic', 'telemetry-', '--prefixed'],
  ];
  t.equal(spawnSync(process.execPath, [cliJs, 'users', 'add', 'alice', '--password', 'alice-secret', '--kafka', k0]).status, 0, 'users add alice');
  for (const a of acls) t.equal(spawnSync(process.execPath, [cliJs, 'acls', 'add', ...a, '--kafka', k0]).status, 0, `acls add ${a.join(' ')}`);
  t.equal(await first.stop(), 0);
  const config = join(dir, 'tributary.json');
  await writeFile(config, JSON.stringify({ security: { authorization: true, superUsers: ['User:admin'], allowedOrigins: ['http://dashboard.example'] }, http: { tokens: TOKENS } }));
  const b = await startBroker(t, { dataDir, args: ['--config', config] });
  const http = `http://${b.listeners.http}`;
  const topic = (name: string) => `${http}/topics/${encodeURIComponent(name)}`;

  t.same(await call(`${http}/topics`, 'POST', 'ops-token-1', JSON.stringify({ name: 'telemetry' })), { status: 200, code: undefined }, 'the admin token creates a topic');
  t.same(await call(`${http}/topics`, 'POST', 'ops-token-1', JSON.stringify({ name: 'cmd' })), { status: 200, code: undefined });

  await t.test('401: no token, an unknown token', async (t) => {
    t.same(await call(`${topic('telemetry')}/records`, 'GET', undefined), { status: 401, code: 'NOT_AUTHORIZED' });
    t.same(await call(`${topic('telemetry')}/records`, 'GET', 'not-a-token-x'), { status: 401, code: 'NOT_AUTHORIZED' });
    t.same(await call(`${topic('telemetry')}/records`, 'POST', undefined, '[{"value":"x"}]'), { status: 401, code: 'NOT_AUTHORIZED' });
  });

  await t.test('finding 5: the read-only dashboard token reads, and cannot delete, create, produce or scrape', async (t) => {
    t.equal((await call(`${topic('telemetry')}/records`, 'GET', 'dash-token-1')).status, 200, 'READ via its ACL');
    t.same(await call(topic('telemetry'), 'DELETE', 'dash-token-1'), { status: 403, code: 'TOPIC_AUTHORIZATION_FAILED' }, 'DELETE refused');
    t.same(await call(`${http}/topics`, 'POST', 'dash-token-1', JSON.stringify({ name: 'made-by-dash' })), { status: 403, code: 'TOPIC_AUTHORIZATION_FAILED' }, 'CREATE refused');
    t.same(await call(`${topic('telemetry')}/records`, 'POST', 'dash-token-1', '[{"value":"x"}]'), { status: 403, code: 'TOPIC_AUTHORIZATION_FAILED' }, 'WRITE refused');
    t.same(await call(`${http}/metrics`, 'GET', 'dash-token-1'), { status: 403, code: 'CLUSTER_AUTHORIZATION_FAILED' }, '/metrics refused');
    t.equal((await call(`${http}/metrics`, 'GET', 'ops-token-1')).status, 200, 'the admin token scrapes');
  });

  await t.test('ACLs decide for a principal token: alice writes telemetry, not cmd; a topic she may not create is not auto-created', async (t) => {
    t.equal((await call(`${topic('telemetry')}/records`, 'POST', 'dev-token-1', '[{"value":"reading"}]')).status, 200);
    t.same(await call(`${topic('cmd')}/records`, 'POST', 'dev-token-1', '[{"value":"reboot"}]'), { status: 403, code: 'TOPIC_AUTHORIZATION_FAILED' });
    t.same(await call(`${topic('fresh')}/records`, 'POST', 'dev-token-1', '[{"value":"x"}]'), { status: 403, code: 'TOPIC_AUTHORIZATION_FAILED' });
    t.equal((await call(topic('fresh'), 'GET', 'ops-token-1')).status, 404, 'the refused produce created nothing');
    t.same(await call(topic('telemetry'), 'DELETE', 'dev-token-1'), { status: 403, code: 'TOPIC_AUTHORIZATION_FAILED' }, 'a token is not admin by default');
  });

  await t.test('finding 7: internal topics need an ACL naming them, even for READ on *', async (t) => {
    t.same(await call(`${topic('_schemas')}/records`, 'GET', 'dash-token-1'), { status: 403, code: 'TOPIC_AUTHORIZATION_FAILED' });
    const su = await call(`${topic('_schemas')}/records`, 'GET', 'ops-token-1');
    t.not(su.code, 'TOPIC_AUTHORIZATION_FAILED', `a super-user is not refused (${su.status} ${su.code ?? ''}: the registry creates _schemas on its first write)`);
    const ws = await Client.open(t, `ws://${b.listeners.http}/ws`, 'json', { headers: { authorization: 'Bearer dash-token-1' } });
    t.match(await ws.request({ type: 'subscribe', topic: '_schemas' }), { type: 'error', code: 'TOPIC_AUTHORIZATION_FAILED' });
  });

  await t.test('CSRF: state-changing requests need a JSON body (415), even with an admin token', async (t) => {
    t.same(await call(`${http}/topics`, 'POST', 'ops-token-1', JSON.stringify({ name: 'csrf1' }), 'text/plain'), { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' }, 'text/plain');
    t.same(await call(`${http}/topics`, 'POST', 'ops-token-1', 'name=csrf2', 'application/x-www-form-urlencoded'), { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' }, 'form');
    t.same(await call(`${http}/topics`, 'POST', 'ops-token-1', '--x\r\n', 'multipart/form-data; boundary=x'), { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' }, 'multipart');
    t.same(await call(`${topic('telemetry')}/records`, 'POST', 'dev-token-1', '[{"value":"x"}]', ''), { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' }, 'no content-type');
    t.equal((await call(topic('csrf1'), 'GET', 'ops-token-1')).status, 404, 'nothing was created');
    t.equal((await call(`${topic('telemetry')}/records`, 'POST', 'dev-token-1', '{"value":"nd"}\n', 'application/x-ndjson')).status, 200, 'NDJSON is JSON');
  });

  await t.test('websocket: the upgrade token is the principal of every subscribe and produce', async (t) => {
    const none = new Client(`ws://${b.listeners.http}/ws`);
    t.teardown(() => none.ws.terminate());
    t.equal((await none.closed).code, 1008, 'no token: closed 1008 (the table\'s NOT_AUTHORIZED close code)');
    const alice = await Client.open(t, `ws://${b.listeners.http}/ws`, 'json', { headers: { authorization: 'Bearer dev-token-1' } });
    t.equal((await alice.request({ type: 'subscribe', topic: 'telemetry' })).type, 'subscribed');
    t.match(await alice.request({ type: 'subscribe', topic: 'cmd' }), { type: 'error', code: 'TOPIC_AUTHORIZATION_FAILED' });
    t.match(await alice.request({ type: 'produce', topic: 'cmd', value: 'reboot' }), { type: 'error', code: 'TOPIC_AUTHORIZATION_FAILED' });
    t.match(await alice.request({ type: 'subscribe', topic: 'cmd', group: 'g1' }), { type: 'error', code: 'TOPIC_AUTHORIZATION_FAILED' });
    const dash = await Client.open(t, `ws://${b.listeners.http}/ws`, 'json', { headers: { authorization: 'Bearer dash-token-1' } });
    t.match(await dash.request({ type: 'subscribe', topic: 'cmd', group: 'dash-group' }), { type: 'error', code: 'GROUP_AUTHORIZATION_FAILED' }, 'READ on the group is needed too');
    t.equal((await alice.request({ type: 'produce', topic: 'telemetry', value: 'ok' })).type, 'ack', 'the socket keeps being served');
  });

  await t.test('finding 4: Origin is checked before the upgrade on /ws and on MQTT over WebSocket', async (t) => {
    const ws = `ws://${b.listeners.http}/ws`;
    const auth = { authorization: 'Bearer dash-token-1' };
    t.equal(await upgradeStatus(ws, 'tributary.json.v1', { ...auth, origin: 'http://evil.example' }), 403, '/ws from another site: 403');
    t.equal(await upgradeStatus(ws, 'tributary.json.v1', { ...auth, origin: `http://${b.listeners.http}` }), 101, '/ws same origin: opens');
    t.equal(await upgradeStatus(ws, 'tributary.json.v1', { ...auth, origin: 'http://dashboard.example' }), 101, '/ws from an allowed origin: opens');
    t.equal(await upgradeStatus(ws, 'tributary.json.v1', auth), 101, '/ws without Origin (not a browser): opens');
    const mq = `ws://${b.listeners.mqttWs}/mqtt`;
    t.equal(await upgradeStatus(mq, 'mqtt', { origin: 'http://evil.example' }), 403, '/mqtt from another site: 403');
    t.equal(await upgradeStatus(mq, 'mqtt', { origin: `http://${b.listeners.mqttWs}` }), 101, '/mqtt same origin: opens');
    const c = await mqtt.connectAsync(mq, { reconnectPeriod: 0, clientId: 'ws-node' });
    t.ok(c.connected, 'mqtt.js over WebSocket (no Origin) connects');
    await c.endAsync(true);
  });

  await t.test('schema registry: Basic (the SCRAM users) and bearer tokens, subjects checked as topics, 401 40101 / 403 40301', async (t) => {
    const reg = `http://${b.listeners.schemas}`;
    const schema = JSON.stringify({ type: 'record', name: 'Reading', fields: [{ name: 'c', type: 'double' }] });
    const asAlice = new SchemaRegistry({ host: reg, auth: { username: 'alice', password: 'alice-secret' } });
    const { id } = await asAlice.register({ type: SchemaType.AVRO, schema }, { subject: 'telemetry-value' });
    t.ok(id > 0, 'alice registers telemetry-value through @kafkajs/confluent-schema-registry with Basic auth (WRITE via the prefixed ACL)');
    const wrong = new SchemaRegistry({ host: reg, auth: { username: 'alice', password: 'nope' } });
    const failed = await wrong.getLatestSchemaId('telemetry-value').then(
      () => undefined,
      (e: { status?: number; message?: string }) => e,
    );
    t.equal(failed?.status, 401, `wrong password: 401 (${failed?.message})`);
    const raw = async (method: string, path: string, headers: Record<string, string> = {}, body?: string) => {
      const res = await fetch(`${reg}${path}`, { method, headers: { 'content-type': 'application/vnd.schemaregistry.v1+json', ...headers }, body });
      return { status: res.status, body: (await res.json()) as { error_code?: number } & Record<string, unknown> };
    };
    const dash = { authorization: 'Bearer dash-token-1' };
    t.equal((await raw('GET', '/subjects/telemetry-value/versions/latest', dash)).status, 200, 'the dashboard token reads the subject (READ on *)');
    const denied = await raw('POST', '/subjects/telemetry-value/versions', dash, JSON.stringify({ schema }));
    t.same([denied.status, denied.body.error_code], [403, 40301], 'the dashboard token may not register');
    const anon = await raw('POST', '/subjects/cmd-value/versions', {}, JSON.stringify({ schema }));
    t.same([anon.status, anon.body.error_code], [403, 40301], 'anonymous (on loopback) gets what its ACLs give: nothing');
    t.same((await raw('GET', '/subjects')).body, [], 'the anonymous subject list shows only what it may describe');
    const cfg = await raw('PUT', '/config', dash, JSON.stringify({ compatibility: 'NONE' }));
    t.same([cfg.status, cfg.body.error_code], [403, 40301], 'global config needs ALTER_CONFIGS on the cluster');
    t.equal((await raw('PUT', '/config', { authorization: 'Bearer ops-token-1' }, JSON.stringify({ compatibility: 'FULL' }))).status, 200, 'the admin token may');
    const bad = await raw('GET', '/subjects', { authorization: 'Bearer not-a-token-x' });
    t.same([bad.status, bad.body.error_code], [401, 40101]);
  });

  t.equal(await b.stop(), 0);
});
