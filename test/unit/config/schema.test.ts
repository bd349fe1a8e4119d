// Purpose: the declarative config schema (issue 10) — every key of every section has a schema and
// its default passes it; values are checked with messages naming key, value, source and what is
// allowed; old key names are accepted with a warning; limits are checked across sections; the
// memory budget adds node-wide bounds and refuses above its limit, naming the biggest items.
import t from 'tap';
import { ConfigError, loadConfig } from '../../../host/config/loader.js';
import { allowed, check, coerceText, integer, port } from '../../../host/config/schema.js';
import { checkCrossSection, CROSS_SECTION_RULES } from '../../../host/config/cross-checks.js';
import { checkBudget, memoryBudget, type BudgetTerm } from '../../../host/config/budget.js';
import { tlsRefusal } from '../../../host/config/listener.js';
import { configSchemas, configSections, defaultNodeOptions, loadNodeConfig, prepareNode } from '../../../host/node.js';
import { tempDir } from '../../helpers/index.js';

// Port 0 everywhere: prepareNode probes fixed ports, and a shared machine may hold the defaults.
const anyPorts = ['--host', '127.0.0.1', '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0'];

t.test('config schema: every key of every section has a schema, and every default passes it', async (t) => {
  const sections = configSections() as unknown as Record<string, Record<string, unknown>>;
  const schemas = configSchemas();
  t.same(Object.keys(schemas).sort(), Object.keys(sections).sort(), 'one schema per section');
  for (const [name, section] of Object.entries(sections)) {
    for (const [key, value] of Object.entries(section)) {
      const s = schemas[name].properties[key];
      t.ok(s, `${name}.${key} has a schema`);
      if (s) t.equal(check(s, value), null, `${name}.${key}'s default ${JSON.stringify(value)} is allowed`);
    }
  }
});

t.test('config schema: allowed sentences and nested errors', async (t) => {
  t.equal(allowed(integer(1, 16)), 'an integer from 1 to 16');
  t.equal(allowed(integer(0)), 'an integer ≥ 0');
  t.equal(check(integer(1, 16), 17), 'must be an integer from 1 to 16');
  t.equal(check(integer(1, 16), 16), null, 'the upper bound itself is allowed');
  t.equal(check(port(), -1), null, '-1 (off) is a port value');
  t.match(check(port(), -2), /^must be a port number from -1 to 65535/);
  t.match(check(port(), 'x'), /^must be an integer/);
  const routes = configSchemas().mqtt.properties.routes;
  t.match(check(routes, [{ match: 'a/#', topic: 't' }, { match: 'b', topic: 't', colour: 'red' }]), /^at 1: must NOT have additional properties "colour"/);
  t.same(coerceText(port(), '1883'), { ok: true, value: 1883 });
  t.same(coerceText(configSchemas().kafka.properties.advertisedPort, 'null'), { ok: true, value: null }, 'null from text where null is allowed');
  t.match(coerceText(routes, '[{'), { ok: false, why: /must be JSON/ });
});

t.test('config schema: a node config refuses wrong values naming key, value, source and the allowed range', async (t) => {
  const dataDir = await tempDir(t);
  const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadNodeConfig(['--data-dir', dataDir, ...argv], env);
  t.throws(() => load(['--set', 'mqtt.appendsInFlightMax=17']), { message: 'config: mqtt.appendsInFlightMax = "17" (flag): must be an integer from 1 to 16' });
  t.throws(() => load([], { TRIBUTARY_MQTT_UNROUTED: 'drop' }), { message: 'config: mqtt.unrouted = "drop" (env TRIBUTARY_MQTT_UNROUTED): must be one of mqtt-only, disconnect' });
  t.throws(() => load(['--set', 'http.idleTimeoutSec=4']), /http\.idleTimeoutSec = "4" \(flag\): must be 0 or at least 8 \(0 = never/);
  t.throws(() => load(['--set', 'broker.log={"indexCacheBytes":-1}']), /broker\.log = .*: at indexCacheBytes: must be >= 0/);
  t.throws(() => load(['--set', 'groups.groupMaxSize=0']), /groups\.groupMaxSize = "0" \(flag\): must be an integer from 1 to 2147483647/);
  t.throws(() => load(['--data-dir', '']), { message: 'config: dataDir = "" (flag): must be a non-empty directory path' });
  const ok = load(['--set', 'mqtt.appendsInFlightMax=16', '--set', 'kafka.port=-1']);
  t.equal(ok.sections.mqtt.appendsInFlightMax, 16, 'the boundary value is accepted');
  t.equal(ok.sections.kafka.port, -1);
  // a cluster's session checkpoint period (gateway/mqtt/persistence.ts): 100 ms at least
  t.throws(() => load(['--set', 'mqtt.sessionCheckpointMs=99']), /mqtt\.sessionCheckpointMs = "99" \(flag\): must be an integer from 100 to 2147483647/);
  t.equal(load(['--set', 'mqtt.sessionCheckpointMs=100']).sections.mqtt.sessionCheckpointMs, 100, 'mqtt.sessionCheckpointMs at its boundary is accepted');
});

t.test('config: old key names are accepted under the new name with a warning, from every source', async (t) => {
  const sections = () => ({ kafka: { connectionsMax: 1024 }, http: { connectionsMax: 2000 } });
  const c = loadConfig({ argv: ['--set', 'kafka.maxConnections=5'], env: { TRIBUTARY_HTTP_MAX_SOCKETS: '9' }, sections: sections() });
  t.equal(c.sections.kafka.connectionsMax, 5);
  t.equal(c.sections.http.connectionsMax, 9);
  t.same(c.warnings, ['http.maxSockets (env TRIBUTARY_HTTP_MAX_SOCKETS) is deprecated: use http.connectionsMax', 'kafka.maxConnections (flag) is deprecated: use kafka.connectionsMax']);
  t.equal(c.sources['kafka.connectionsMax'], 'flag', 'the source is recorded under the new key');
  t.same(loadConfig({ argv: [], env: {}, sections: sections() }).warnings, [], 'no warning without an old name');
  t.throws(() => loadConfig({ argv: ['--set', 'kafka.maxConnections=lots'], env: {}, sections: sections() }), /kafka\.maxConnections = "lots" \(flag\): must be an integer/, 'an error names the key as written');
});

t.test('config: TLS keys are declared, their shape checked, their files loaded before any bind', async (t) => {
  t.equal(tlsRefusal(null), null);
  t.equal(tlsRefusal({ keyFile: 'k', certFile: 'c' }), null);
  t.match(tlsRefusal({ keyFile: 'k', certFile: 'c', requestCert: true, caFile: null }), /requestCert: true needs caFile/);
  const tls = configSchemas().kafka.properties.tls;
  t.equal(check(tls, { keyFile: 'k.pem', certFile: 'c.pem', caFile: null, requestCert: true }), null, 'the declared shape is valid');
  t.match(check(tls, { keyFile: 'k.pem', certFile: 'c.pem', cipher: 'x' }), /must be null \(plain TCP\) or \{ keyFile/);
  t.match(check(tls, { keyFile: 'k.pem', certFile: 'c.pem', handshakeTimeoutMs: 99 }), /must be null/, 'handshakeTimeoutMs below 100');
  t.equal(check(tls, { keyFile: 'k.pem', certFile: 'c.pem', handshakeTimeoutMs: 100 }), null, 'handshakeTimeoutMs at its minimum');
  t.equal(check(tls, { keyFile: 'k.pem', certFile: 'c.pem', handshakeTimeoutMs: 300_000 }), null, 'handshakeTimeoutMs at its maximum');
  t.match(check(tls, { keyFile: 'k.pem', certFile: 'c.pem', handshakeTimeoutMs: 300_001 }), /must be null/, 'handshakeTimeoutMs above 300000');
  const dataDir = await tempDir(t);
  const config = loadNodeConfig(['--data-dir', dataDir, '--set', 'http.tls={"keyFile":"k.pem","certFile":"c.pem"}'], {});
  await t.rejects(prepareNode(config), { name: 'ConfigError', key: 'http.tls.keyFile', source: 'flag', message: /http\.tls\.keyFile: k\.pem: file not found/ });
});

t.test('config: cross-section rules pass at the defaults and name both keys when broken', async (t) => {
  const dataDir = await tempDir(t);
  await t.resolves(prepareNode(loadNodeConfig(['--data-dir', dataDir, ...anyPorts], {})), 'the defaults agree');
  for (const r of CROSS_SECTION_RULES) t.ok(r.why.length > 20, `${r.smaller} ≤ ${r.larger} has a reason`);
  const values = { 'mqtt.packetBytesMax': 100, 'broker.topicDefaults.max.message.bytes': 100 };
  const rules = [{ smaller: 'mqtt.packetBytesMax', larger: 'broker.topicDefaults.max.message.bytes', why: 'a publish must fit a batch' }];
  t.doesNotThrow(() => checkCrossSection(values, {}, rules), 'equal is allowed');
  const e = t.throws(() => checkCrossSection({ ...values, 'mqtt.packetBytesMax': 101 }, { 'mqtt.packetBytesMax': 'flag' }, rules)) as unknown as ConfigError;
  t.equal(e.message, 'config: mqtt.packetBytesMax = 101 (flag): must be at most broker.topicDefaults.max.message.bytes = 100 (default): a publish must fit a batch');
  const config = loadNodeConfig(['--data-dir', dataDir, '--set', 'http.maxPayloadBytes=8388609'], {});
  await t.rejects(prepareNode(config), { message: /http\.maxPayloadBytes = 8388609 \(flag\): must be at most broker\.maxMessageBytesMax = 8388608/ });
});

t.test('memory budget: node-wide items are added, per-connection ones listed apart; the limit is inclusive', async (t) => {
  const terms: BudgetTerm[] = [{ of: ['a.total'] }, { of: ['b.count', 'b.each'] }, { of: ['c.conns', 'c.each'], apart: 'perConnection' }, { of: ['d.n', 3] }];
  const budget = memoryBudget({ 'a.total': 100, 'b.count': 10, 'b.each': 50, 'c.conns': 1000, 'c.each': 1000, 'd.n': 2 }, terms);
  t.equal(budget.totalBytes, 100 + 500 + 6);
  t.same(budget.items.map((i) => i.key), ['b.count × b.each', 'a.total', 'd.n × 3'], 'biggest first');
  t.same(budget.perConnection, [{ key: 'c.conns × c.each', bytes: 1_000_000 }]);
  t.doesNotThrow(() => checkBudget(budget, 606, 'default'), 'a budget equal to the total passes');
  t.throws(() => checkBudget(budget, 605, 'flag'), /node\.memoryBudgetBytes = 605 \(flag\): the configured limits may hold .* biggest: b\.count × b\.each = 0\.0 MiB, a\.total/);
  t.throws(() => memoryBudget({}, terms), /no value for a\.total/, 'a missing value is a programming error, not a zero');
});

t.test('memory budget: the defaults fit the default budget (sized for a 1 GB Pi)', async (t) => {
  const dataDir = await tempDir(t);
  const p = await prepareNode(loadNodeConfig(['--data-dir', dataDir, ...anyPorts], {}));
  t.ok(p.budget.totalBytes <= defaultNodeOptions.memoryBudgetBytes, `${p.budget.totalBytes} ≤ ${defaultNodeOptions.memoryBudgetBytes}`);
  t.ok(defaultNodeOptions.memoryBudgetBytes < 1024 ** 3, 'leaves part of 1 GB to the system');
  t.ok(p.budget.items.length >= 8, 'every node-wide bound is an item');
  const raised = loadNodeConfig(['--data-dir', dataDir, '--set', 'broker.maxPendingAppendBytes=134217728'], {});
  await t.rejects(prepareNode(raised), { key: 'node.memoryBudgetBytes', message: /biggest: .*broker\.maxPendingAppendBytes = 128\.0 MiB/ }, 'raising one limit past the budget is refused');
});

t.test('config: the replication keys (cluster.*, broker.ackTimeoutMs) at their boundaries', async (t) => {
  const dataDir = await tempDir(t);
  const load = (...sets: string[]) => loadNodeConfig(['--data-dir', dataDir, ...sets.flatMap((s) => ['--set', s])], {});
  t.throws(() => load('cluster.sessionTimeoutMs=0'), /cluster\.sessionTimeoutMs = "0" \(flag\): must be an integer from 1/);
  t.throws(() => load('cluster.replicaLagTimeMaxMs=0'), /cluster\.replicaLagTimeMaxMs/);
  t.throws(() => load('cluster.replicaFetchWaitMs=60001'), /cluster\.replicaFetchWaitMs = "60001" \(flag\): must be an integer from 0 to 60000/);
  t.throws(() => load('cluster.replicaFetchBytesMax=1023'), /cluster\.replicaFetchBytesMax/);
  t.throws(() => load('cluster.replicationCheckIntervalMs=9'), /cluster\.replicationCheckIntervalMs/);
  const ok = load('cluster.sessionTimeoutMs=1', 'cluster.replicaLagTimeMaxMs=1', 'cluster.replicaFetchWaitMs=60000', 'cluster.replicaFetchBytesMax=1024', 'cluster.replicationCheckIntervalMs=10');
  const c = ok.sections.cluster as Record<string, unknown>;
  t.same([c.sessionTimeoutMs, c.replicaLagTimeMaxMs, c.replicaFetchWaitMs, c.replicaFetchBytesMax, c.replicationCheckIntervalMs], [1, 1, 60000, 1024, 10], 'each boundary value is accepted');
});
