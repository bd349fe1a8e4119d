// Purpose: the pieces every door shares (host/security): the Origin rule for WebSocket upgrades
// (same origin, the allow-list, no Origin = not a browser), token scopes (least privilege: admin
// off unless given; read/write patterns narrow), the token table's start-up error naming the key,
// and the password check against the SCRAM store (right, wrong, unknown, changed password).
import t from 'tap';
import { doorSecurity, makeCredential, Operation, originAllowed, ResourceType, scopeAllows, TokenTable, UNLIMITED_SCOPE, type ScramCredential, type ScramMechanism } from '../../../host/security/index.js';

t.test('origin: same origin, allow-list, absent; everything else refused', async (t) => {
  t.ok(originAllowed('', '127.0.0.1:8080', []), 'no Origin: not a browser');
  t.ok(originAllowed('http://127.0.0.1:8080', '127.0.0.1:8080', []), 'same origin');
  t.ok(originAllowed('https://Gateway.local', 'gateway.local', []), 'same host, case-insensitive, default port');
  t.notOk(originAllowed('http://127.0.0.1:9999', '127.0.0.1:8080', []), 'another port is another origin');
  t.notOk(originAllowed('http://evil.example', '127.0.0.1:8080', []), 'another site');
  t.notOk(originAllowed('null', '127.0.0.1:8080', []), 'a sandboxed frame or file:// page');
  t.notOk(originAllowed('ftp://127.0.0.1:8080', '127.0.0.1:8080', []), 'not http(s)');
  t.notOk(originAllowed('http://127.0.0.1:8080', '', []), 'no Host to compare with');
  t.ok(originAllowed('http://dash.example', '127.0.0.1:8080', ['http://dash.example']), 'listed exactly');
  t.notOk(originAllowed('https://dash.example', '127.0.0.1:8080', ['http://dash.example']), 'the scheme is part of the origin');
  t.ok(originAllowed('http://anything.example', '127.0.0.1:8080', ['*']), '`*` allows every origin');
});

t.test('token scope: least privilege by default, patterns narrow, CREATE follows write', async (t) => {
  const table = new TokenTable([
    { token: 'dashboard-1', principal: 'User:dash', read: ['*'], write: [] },
    { token: 'device-1', read: ['cmd*'], write: ['telemetry'] },
    { token: 'ops-token-1', principal: 'User:ops', admin: true },
  ]);
  const dash = table.get('dashboard-1')!;
  t.same(dash.principal, { type: 'User', name: 'dash' });
  t.ok(scopeAllows(dash.scope, Operation.READ, ResourceType.TOPIC, 'anything'));
  t.notOk(scopeAllows(dash.scope, Operation.WRITE, ResourceType.TOPIC, 'anything'), 'write: [] writes nothing');
  t.notOk(scopeAllows(dash.scope, Operation.DELETE, ResourceType.TOPIC, 'anything'), 'finding 5: no delete without admin');
  t.notOk(scopeAllows(dash.scope, Operation.CREATE, ResourceType.TOPIC, 'anything'));
  t.notOk(scopeAllows(dash.scope, Operation.DESCRIBE, ResourceType.CLUSTER, 'kafka-cluster'), 'no /metrics without admin');
  t.ok(scopeAllows(dash.scope, Operation.READ, ResourceType.GROUP, 'g'), 'group READ: the topic decides');
  const device = table.get('device-1')!;
  t.equal(device.principal.name, 'ANONYMOUS', 'no principal: anonymous');
  t.ok(scopeAllows(device.scope, Operation.READ, ResourceType.TOPIC, 'cmd-dev1'));
  t.notOk(scopeAllows(device.scope, Operation.READ, ResourceType.TOPIC, 'telemetry'));
  t.ok(scopeAllows(device.scope, Operation.CREATE, ResourceType.TOPIC, 'telemetry'), 'may auto-create what it may write');
  t.notOk(scopeAllows(device.scope, Operation.CREATE, ResourceType.TOPIC, 'other'));
  const ops = table.get('ops-token-1')!;
  t.ok(scopeAllows(ops.scope, Operation.DELETE, ResourceType.TOPIC, 'x'));
  t.ok(scopeAllows(UNLIMITED_SCOPE, Operation.ALTER, ResourceType.CLUSTER, 'kafka-cluster'), 'no tokens configured: the ACLs alone decide');
  t.throws(() => new TokenTable([{ token: 'bad-principal', principal: 'alice' }]), /http\.tokens\[0\]\.principal: "alice" is not User:<name>/);
});

t.test('checkPassword: the SCRAM store, off the event loop, remembering successes until the password changes', async (t) => {
  const scram = new Map<string, Map<ScramMechanism, ScramCredential>>();
  scram.set('alice', new Map([['SCRAM-SHA-512', makeCredential('SCRAM-SHA-512', 'first', 4096)]]));
  const doors = doorSecurity(undefined, () => ({ acls: [], scram }));
  t.ok(await doors.checkPassword('alice', 'first'));
  t.ok(await doors.checkPassword('alice', Buffer.from('first')), 'as MQTT hands it: bytes');
  t.notOk(await doors.checkPassword('alice', 'wrong'));
  t.notOk(await doors.checkPassword('nobody', 'first'), 'unknown user');
  scram.set('alice', new Map([['SCRAM-SHA-256', makeCredential('SCRAM-SHA-256', 'second', 4096)]]));
  t.notOk(await doors.checkPassword('alice', 'first'), 'a remembered success does not outlive a password change');
  t.ok(await doors.checkPassword('alice', 'second'));
});
