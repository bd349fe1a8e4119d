// Purpose: who an HTTP request or WebSocket is on a mutual-TLS door (gateway/ws/auth.ts): the
// verified certificate's principal when no token is presented (tokens configured or not), a
// presented token replacing it (and an unknown token refused, certificate or not), anonymous
// only without either; every answer decided by the one authorizer's ACLs on that principal.
import t from 'tap';
import { Authenticator } from '../../../gateway/ws/auth.js';
import { doorSecurity, Operation, ResourceType, PatternType, Permission, type AclBinding } from '../../../host/security/index.js';

const cert = { type: 'User' as const, name: 'CN=sensor-1,OU=plant,O=acme' };
const acls: AclBinding[] = [
  { resourceType: ResourceType.TOPIC, resourceName: 'plant', patternType: PatternType.LITERAL, principal: 'User:CN=sensor-1,OU=plant,O=acme', host: '*', operation: Operation.ALL, permission: Permission.ALLOW },
];
const security = doorSecurity({ authorization: true, superUsers: ['User:admin'] }, () => ({ acls, scram: new Map() }));

t.test('mutual TLS on HTTP: the certificate is the principal unless a token is presented', async (t) => {
  const open = new Authenticator([], security);
  const a = open.authenticate('', '', '127.0.0.1', cert)!;
  t.equal(a.principal, 'User:CN=sensor-1,OU=plant,O=acme');
  t.equal(a.canWrite('plant'), true, 'its ACL allows plant');
  t.equal(a.canWrite('orders'), false, 'and nothing else');
  t.throws(() => a.check(Operation.WRITE, ResourceType.TOPIC, 'orders'), { code: 'TOPIC_AUTHORIZATION_FAILED' });
  t.equal(open.authenticate('', '', '127.0.0.1', null)!.principal, 'User:ANONYMOUS', 'no certificate, no tokens: anonymous');
  t.equal(open.authenticate('Bearer whatever-token', '', '127.0.0.1', cert)!.principal, 'User:CN=sensor-1,OU=plant,O=acme', 'a token means nothing when none are configured: the certificate stays');

  const withTokens = new Authenticator([{ token: 'dashboard-token-0123456789', principal: 'User:dash', read: ['*'] }], security);
  t.equal(withTokens.authenticate('', '', '127.0.0.1', cert)!.principal, 'User:CN=sensor-1,OU=plant,O=acme', 'tokens configured, none presented: the certificate authenticates');
  t.equal(withTokens.authenticate('Bearer dashboard-token-0123456789', '', '127.0.0.1', cert)!.principal, 'User:dash', 'a presented token replaces the certificate (as SASL on Kafka)');
  t.equal(withTokens.authenticate('Bearer unknown-token-0123456789', '', '127.0.0.1', cert), undefined, 'an unknown token is refused, certificate or not');
  t.equal(withTokens.authenticate('', '', '127.0.0.1', null), undefined, 'neither: refused (401 / close 1008)');
});
