// Purpose: the one authorize() seam decides as Kafka's StandardAuthorizer does (deny wins,
// literal/prefixed/wildcard patterns, User:* and hosts, implied DESCRIBE, super-users), that
// authorization off allows everything but reading internal topics, that an internal topic opens
// only to an ACL naming it, and the ACL model's checks, filters and parsing.
import t from 'tap';
import { ANONYMOUS, Authorizer, bindingProblem, codeOf, filterMatches, Operation, parsePrincipal, PatternType, Permission, ResourceType, userPrincipal, type AclBinding } from '../../../host/security/index.js';

const acl = (p: Partial<AclBinding>): AclBinding => ({ resourceType: ResourceType.TOPIC, resourceName: 'orders', patternType: PatternType.LITERAL, principal: 'User:alice', host: '*', operation: Operation.READ, permission: Permission.ALLOW, ...p });
const alice = userPrincipal('alice');
const bob = userPrincipal('bob');
const topic = (name: string) => ({ type: ResourceType.TOPIC, name });

t.test('authorizer on: no ACL refuses; an ALLOW grants its operation only', async (t) => {
  const list: AclBinding[] = [];
  const a = new Authorizer({ authorization: true, superUsers: ['User:admin'] }, () => list);
  t.notOk(a.authorize(alice, Operation.READ, topic('orders')), 'nothing granted');
  list.push(acl({}));
  t.ok(a.authorize(alice, Operation.READ, topic('orders')));
  t.notOk(a.authorize(alice, Operation.WRITE, topic('orders')), 'READ does not grant WRITE');
  t.ok(a.authorize(alice, Operation.DESCRIBE, topic('orders')), 'READ implies DESCRIBE');
  t.notOk(a.authorize(bob, Operation.READ, topic('orders')), 'another principal');
  t.notOk(a.authorize(alice, Operation.READ, topic('orders2')), 'a literal names one topic');
  t.ok(a.authorize(userPrincipal('admin'), Operation.ALTER, { type: ResourceType.CLUSTER, name: 'kafka-cluster' }), 'a super-user may do anything');
  t.notOk(a.authorize(ANONYMOUS, Operation.READ, topic('orders')));
});

t.test('authorizer: deny wins over allow, wildcard and prefixed patterns, User:* and hosts', async (t) => {
  const list = [
    acl({ resourceName: '*', operation: Operation.ALL, principal: 'User:*' }),
    acl({ resourceName: 'secret.', patternType: PatternType.PREFIXED, permission: Permission.DENY }),
    acl({ resourceName: 'lab', operation: Operation.WRITE, principal: 'User:bob', host: '10.0.0.5' }),
  ];
  const a = new Authorizer({ authorization: true, superUsers: [] }, () => list);
  t.ok(a.authorize(alice, Operation.WRITE, topic('anything')), 'ALL on * for User:*');
  t.notOk(a.authorize(alice, Operation.READ, topic('secret.plans')), 'the prefixed DENY wins');
  t.ok(a.authorize(alice, Operation.WRITE, topic('secret.plans')), 'a deny of READ does not refuse WRITE');
  t.ok(a.authorize(bob, Operation.READ, topic('secret.plans')), 'the deny names alice only');
  t.ok(a.authorize(bob, Operation.WRITE, topic('lab'), '10.0.0.5'));
  const strict = new Authorizer({ authorization: true, superUsers: [] }, () => [list[2]]);
  t.notOk(strict.authorize(bob, Operation.WRITE, topic('lab'), '10.0.0.6'), 'host must match');
});

t.test('authorizer off: everything allowed, except reading internal topics without an ACL naming them', async (t) => {
  const list: AclBinding[] = [acl({ resourceName: '*', principal: 'User:*' })];
  const a = new Authorizer({ authorization: false, superUsers: ['User:admin'] }, () => list);
  t.ok(a.authorize(ANONYMOUS, Operation.DELETE, topic('orders')));
  t.ok(a.authorize(ANONYMOUS, Operation.DESCRIBE, topic('__consumer_offsets')), 'describing an internal topic is not reading it');
  t.notOk(a.authorize(ANONYMOUS, Operation.READ, topic('__consumer_offsets')), 'finding 7: no anonymous read of internal topics');
  t.notOk(a.authorize(alice, Operation.READ, topic('__consumer_offsets')), 'a * grant does not open internal topics');
  t.notOk(a.authorize(alice, Operation.READ, topic('_schemas')));
  t.ok(a.authorize(userPrincipal('admin'), Operation.READ, topic('__consumer_offsets')), 'super-users read them');
  list.push(acl({ resourceName: '__mqtt_', patternType: PatternType.PREFIXED, principal: 'User:alice' }));
  t.ok(a.authorize(alice, Operation.READ, topic('__mqtt_sessions')), 'a prefixed ACL naming the internal prefix grants');
  t.notOk(a.authorize(alice, Operation.READ, topic('__consumer_offsets')));
  list.push(acl({ resourceName: '__consumer_offsets', principal: 'User:ANONYMOUS' }));
  t.ok(a.authorize(ANONYMOUS, Operation.READ, topic('__consumer_offsets')), 'an explicit grant to anonymous');
});

t.test('authorizer: authorizeAny (InitProducerId) finds a WRITE on some topic', async (t) => {
  const list = [acl({ operation: Operation.WRITE })];
  const a = new Authorizer({ authorization: true, superUsers: [] }, () => list);
  t.ok(a.authorizeAny(alice, Operation.WRITE, ResourceType.TOPIC));
  t.notOk(a.authorizeAny(bob, Operation.WRITE, ResourceType.TOPIC));
});

t.test('acl model: bindings checked field by field; filters; names', async (t) => {
  t.equal(bindingProblem(acl({})), undefined);
  t.match(bindingProblem(acl({ resourceType: 9 })), /resource type 9/);
  t.match(bindingProblem(acl({ patternType: PatternType.ANY })), /pattern type/);
  t.match(bindingProblem(acl({ principal: 'alice' })), /User:<name>/);
  t.match(bindingProblem(acl({ operation: Operation.ANY })), /operation/);
  t.match(bindingProblem(acl({ permission: Permission.ANY })), /permission/);
  t.match(bindingProblem(acl({ resourceType: ResourceType.CLUSTER, resourceName: 'c' })), /kafka-cluster/);
  t.match(bindingProblem(acl({ resourceName: '*', patternType: PatternType.PREFIXED })), /prefixed/);
  const any = { resourceType: ResourceType.ANY, resourceName: null, patternType: PatternType.ANY, principal: null, host: null, operation: Operation.ANY, permission: Permission.ANY };
  t.ok(filterMatches(any, acl({})));
  t.ok(filterMatches({ ...any, resourceName: 'orders.eu', patternType: PatternType.MATCH }, acl({ resourceName: 'orders.', patternType: PatternType.PREFIXED })), 'MATCH finds the prefixed ACL that applies');
  t.notOk(filterMatches({ ...any, principal: 'User:bob' }, acl({})));
  t.equal(codeOf('operation', 'describe_configs'), Operation.DESCRIBE_CONFIGS);
  t.equal(codeOf('resource', 'transactional-id'), ResourceType.TRANSACTIONAL_ID);
  t.same(parsePrincipal('User:x:y'), { type: 'User', name: 'x:y' });
  t.equal(parsePrincipal('Group:x'), undefined);
});
