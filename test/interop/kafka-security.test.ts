// Purpose: Kafka security over real sockets against a real broker process, with clients nobody
// here wrote (kcat/librdkafka, /usr/bin/python3 confluent_kafka, kafkajs): users created with the
// CLI on a fresh loopback node (the documented bootstrap), then a restart with SASL required and
// ACLs on. SCRAM-SHA-512 (kcat) and SCRAM-SHA-256 (confluent_kafka, kafkajs) produce and consume;
// a wrong password is SASL_AUTHENTICATION_FAILED while others keep being served; an anonymous
// client is refused; ACL denials on produce, fetch, group and admin answer the exact codes;
// CreateAcls/DescribeAcls/DeleteAcls through kafkajs's admin; KIP-368 re-authentication keeps a
// kafkajs connection working past the session lifetime. Missing tools skip locally, fail in CI.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { cliJs, eventually, haveCommand, sh, sleep, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { ERRORS } from '../../host/errors/index.js';

const { Kafka, logLevel } = kafkajs;
const PYTHON = '/usr/bin/python3';

const run = (cmd: string, args: string[], input = '', timeoutMs = 30_000) => sh(cmd, args, input, timeoutMs);

const cli = (kafka: string, ...args: string[]) => run(process.execPath, [cliJs, ...args, '--kafka', kafka]);

function sasl(mechanism: 'scram-sha-256' | 'scram-sha-512' | 'plain', username: string, password: string) {
  return { mechanism, username, password } as never;
}

function client(bootstrap: string, user?: { mechanism: 'scram-sha-256' | 'scram-sha-512' | 'plain'; username: string; password: string }) {
  return new Kafka({
    brokers: [bootstrap],
    clientId: 'security-test',
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 3000,
    ...(user ? { sasl: sasl(user.mechanism, user.username, user.password) } : {}),
  });
}

const haveKcat = haveCommand('kcat');
const havePython = spawnSync(PYTHON, ['-c', 'import confluent_kafka'], { stdio: 'ignore' }).status === 0;
if (process.env.CI) {
  if (!haveKcat) t.fail('kcat is needed (Debian package kcat)');
  if (!havePython) t.fail(`${PYTHON} with confluent_kafka is needed (Debian package python3-confluent-kafka)`);
}

/** A fresh node with the defaults (anonymous on loopback): users and ACLs made through the CLI, then stopped. */
async function bootstrap(tt: { equal: typeof t.equal; match: typeof t.match; notMatch: typeof t.notMatch; teardown: typeof t.teardown }, dataDir: string): Promise<void> {
  const b = await startBroker(tt, { dataDir });
  const k = b.listeners.kafka!;
  for (const [user, pw] of [['admin', 'admin-secret'], ['alice', 'alice-secret'], ['bob', 'bob-secret']]) {
    const r = await cli(k, 'users', 'add', user, '--password', pw);
    tt.equal(r.code, 0, `users add ${user}: ${r.stderr}`);
  }
  const acls: string[][] = [
    ['--principal', 'User:alice', '--operation', 'write', '--topic', 'orders'],
    ['--principal', 'User:alice', '--operation', 'read', '--topic', 'orders'],
    ['--principal', 'User:alice', '--operation', 'read', '--group', 'g-', '--prefixed'],
    ['--principal', 'User:alice', '--operation', 'read', '--topic', 'secret'],
    ['--principal', 'User:alice', '--operation', 'read', '--topic', 'secret', '--deny'],
    ['--principal', 'User:alice', '--operation', 'describe', '--group', 'watch'],
  ];
  for (const a of acls) tt.equal((await cli(k, 'acls', 'add', ...a)).code, 0, `acls add ${a.join(' ')}`);
  const admin = client(k).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 1 }, { topic: 'secret', numPartitions: 1 }] });
  await admin.disconnect();
  const listed = await cli(k, 'acls', 'list');
  tt.match(listed.stdout, /DENY User:alice READ topic:secret from \*/);
  // The rest of the CLI: a password from standard input, users list/remove, acls remove.
  const dave = await run(process.execPath, [cliJs, 'users', 'add', 'dave', '--password', '-', '--mechanism', 'SCRAM-SHA-256', '--kafka', k], 'dave-secret\n');
  tt.equal(dave.code, 0, dave.stderr);
  tt.match((await cli(k, 'users', 'list')).stdout, /^alice\tSCRAM-SHA-256\(8192\) SCRAM-SHA-512\(8192\)$/m);
  tt.match((await cli(k, 'users', 'list')).stdout, /^dave\tSCRAM-SHA-256\(8192\)$/m);
  tt.equal((await cli(k, 'users', 'remove', 'dave')).code, 0);
  tt.notMatch((await cli(k, 'users', 'list')).stdout, /dave/);
  tt.equal((await cli(k, 'acls', 'add', '--principal', 'User:x', '--operation', 'read', '--topic', 'tmp')).code, 0);
  tt.equal((await cli(k, 'acls', 'remove', '--principal', 'User:x', '--operation', 'read', '--topic', 'tmp')).code, 0);
  const gone = await cli(k, 'acls', 'remove', '--principal', 'User:x', '--operation', 'read', '--topic', 'tmp');
  tt.equal(gone.code, 1, 'removing it again: the broker had nothing to remove');
  tt.match(gone.stderr, /RESOURCE_NOT_FOUND/);
  const badOp = await cli(k, 'acls', 'add', '--principal', 'User:x', '--operation', 'fly', '--topic', 'tmp');
  tt.equal(badOp.code, 2);
  tt.match(badOp.stderr, /--operation "fly" is not one of/);
  tt.equal(await b.stop(), 0);
}

interface KafkaJsError {
  type?: string;
  name?: string;
  message?: string;
}

/** kafkajs wraps a broker's code in retry and coordinator errors: the innermost with a type. */
function unwrap(err: KafkaJsError): KafkaJsError {
  let e = err as KafkaJsError & { cause?: KafkaJsError; errors?: KafkaJsError[]; originalError?: KafkaJsError };
  for (let i = 0; i < 5 && !e.type; i++) {
    const next = e.cause ?? e.originalError ?? e.errors?.[0];
    if (!next) break;
    e = next as typeof e;
  }
  return e;
}

async function failureOf(p: Promise<unknown>): Promise<KafkaJsError> {
  try {
    await p;
  } catch (err) {
    return unwrap(err as KafkaJsError);
  }
  return { type: 'NONE' };
}

t.test('kafka security: SASL required and ACLs on, over real clients', async (t) => {
  const dir = await tempDir(t);
  const dataDir = join(dir, 'data');
  await bootstrap(t, dataDir);
  const config = join(dir, 'tributary.json');
  await writeFile(config, JSON.stringify({ security: { allowAnonymous: false, authorization: true, superUsers: ['User:admin'], reauthMs: 3000, loginFailuresMax: 1000 } }));
  const b: BrokerProcess = await startBroker(t, { dataDir, args: ['--config', config] });
  const k = b.listeners.kafka!;
  const alice = { mechanism: 'scram-sha-256' as const, username: 'alice', password: 'alice-secret' };

  await t.test('kcat: SCRAM-SHA-512 produce and consume', { skip: haveKcat ? false : 'kcat not installed' }, async (t) => {
    const auth = ['-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=SCRAM-SHA-512', '-X', 'sasl.username=alice', '-X', 'sasl.password=alice-secret'];
    const p = await run('kcat', ['-P', '-b', k, '-t', 'orders', ...auth], 'from-kcat\n');
    t.equal(p.code, 0, `kcat produce: ${p.stderr}`);
    const c = await run('kcat', ['-C', '-b', k, '-t', 'orders', '-e', '-o', 'beginning', ...auth]);
    t.equal(c.code, 0, c.stderr);
    t.match(c.stdout, /from-kcat/);
    const denied = await run('kcat', ['-C', '-b', k, '-t', 'secret', '-e', '-o', 'beginning', ...auth]);
    t.not(denied.code, 0, 'fetch of a denied topic fails');
    t.match(denied.stderr, /[Tt]opic authorization failed/, 'librdkafka names TOPIC_AUTHORIZATION_FAILED');
    const wrong = await run('kcat', ['-P', '-b', k, '-t', 'orders', ...auth.slice(0, -1), 'sasl.password=wrong'], 'x\n');
    t.not(wrong.code, 0);
    t.match(wrong.stderr, /Authentication failed/);
  });

  await t.test('confluent_kafka (librdkafka via /usr/bin/python3): SCRAM-SHA-256 produce, consume in group g-py, commit', { skip: havePython ? false : 'confluent_kafka not installed' }, async (t) => {
    const script = `
import sys, json
from confluent_kafka import Producer, Consumer
conf = {'bootstrap.servers': sys.argv[1], 'security.protocol': 'SASL_PLAINTEXT', 'sasl.mechanisms': 'SCRAM-SHA-256', 'sasl.username': 'alice', 'sasl.password': 'alice-secret'}
p = Producer(conf)
errs = []
p.produce('orders', b'from-python', callback=lambda e, m: errs.append(str(e)) if e else None)
p.flush(10)
c = Consumer({**conf, 'group.id': 'g-py', 'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
c.subscribe(['orders'])
seen = []
for _ in range(40):
    m = c.poll(0.5)
    if m is None or m.error():
        if seen: break
        continue
    seen.append(m.value().decode())
c.commit(asynchronous=False)
c.close()
# A commit for a topic alice may not read, in a group she may: the partition's own error.
from confluent_kafka import TopicPartition, KafkaException
c2 = Consumer({**conf, 'group.id': 'g-commit', 'enable.auto.commit': False})
denied = None
try:
    r = c2.commit(offsets=[TopicPartition('secret', 0, 1)], asynchronous=False)
    denied = [tp.error.name() if tp.error else None for tp in r]
except KafkaException as e:
    denied = [e.args[0].name()]
c2.close()
print(json.dumps({'errors': errs, 'seen': seen, 'denied': denied}))
`;
    const r = await run(PYTHON, ['-c', script, k], '', 60_000);
    t.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    t.same(out.errors, []);
    t.ok(out.seen.includes('from-python'), `consumed ${JSON.stringify(out.seen)}`);
    t.same(out.denied, ['TOPIC_AUTHORIZATION_FAILED'], 'OffsetCommit for a denied topic');
  });

  await t.test('kafkajs: SCRAM-SHA-256 and -512 produce and consume in group g-js; offsets committed', async (t) => {
    for (const mechanism of ['scram-sha-256', 'scram-sha-512'] as const) {
      const producer = client(k, { ...alice, mechanism }).producer();
      await producer.connect();
      await producer.send({ topic: 'orders', messages: [{ value: `from-kafkajs-${mechanism}` }] });
      await producer.disconnect();
    }
    const consumer = client(k, alice).consumer({ groupId: 'g-js' });
    await consumer.connect();
    await consumer.subscribe({ topic: 'orders', fromBeginning: true });
    const seen: string[] = [];
    await consumer.run({ eachMessage: async ({ message }) => void seen.push(String(message.value)) });
    await eventually(() => seen.includes('from-kafkajs-scram-sha-512'), 20_000);
    await consumer.disconnect();
    const admin = client(k, { mechanism: 'scram-sha-512', username: 'admin', password: 'admin-secret' }).admin();
    await admin.connect();
    await admin.fetchTopicMetadata({ topics: ['orders'] }); // kafkajs's admin finds coordinators only once it has metadata
    const offsets = await admin.fetchOffsets({ groupId: 'g-js', topics: ['orders'] });
    t.ok(Number(offsets[0].partitions[0].offset) >= 2, 'the group committed its position');
    await admin.disconnect();
  });

  await t.test('a wrong password or unknown user is SASL_AUTHENTICATION_FAILED; an anonymous client is refused; others keep working', async (t) => {
    for (const user of [{ ...alice, password: 'nope' }, { ...alice, username: 'mallory' }]) {
      const e = await failureOf(client(k, user).producer().connect());
      t.match(`${e.type ?? ''} ${e.name ?? ''} ${e.message ?? ''}`, /SASL_AUTHENTICATION_FAILED|SASLAuthenticationError|Authentication failed/, `${user.username}: ${e.message}`);
    }
    const anon = client(k).admin();
    const e = await failureOf(anon.listTopics());
    t.not(e.type, 'NONE', `anonymous refused (${e.name}: ${e.message})`);
    await anon.disconnect().catch(() => undefined);
    await eventually(() => b.logs.some((l) => String(l.msg).includes('authentication required (SASL)')), 5000).then(
      () => t.pass('the broker logged why it closed'),
      () => t.fail('the broker logged why it closed', { logs: b.logs.slice(-8) }),
    );
    const producer = client(k, alice).producer();
    await producer.connect();
    await producer.send({ topic: 'orders', messages: [{ value: 'still-served' }] });
    await producer.disconnect();
    t.notOk(b.logs.some((l) => JSON.stringify(l).includes('alice-secret') || JSON.stringify(l).includes('"nope"')), 'no password in any log line');
  });

  await t.test('ACL denials answer the exact codes: produce, group, admin', async (t) => {
    const producer = client(k, alice).producer();
    await producer.connect();
    const produce = await failureOf(producer.send({ topic: 'secret', messages: [{ value: 'x' }] }));
    t.equal(produce.type, 'TOPIC_AUTHORIZATION_FAILED', 'produce without WRITE');
    await producer.disconnect();
    // DESCRIBE on group `watch` finds its coordinator; joining needs READ (Kafka's rule).
    const consumer = client(k, alice).consumer({ groupId: 'watch' });
    await consumer.connect();
    await consumer.subscribe({ topic: 'orders', fromBeginning: true });
    const crashed = new Promise<KafkaJsError>((resolve) => consumer.on(consumer.events.CRASH, (e) => resolve(unwrap(e.payload.error as KafkaJsError))));
    await consumer.run({ eachMessage: async () => undefined }).catch(() => undefined);
    const crash = await crashed;
    t.equal(crash.type, 'GROUP_AUTHORIZATION_FAILED', `a group without READ (${crash.name}: ${crash.message})`);
    await consumer.disconnect().catch(() => undefined);
    const admin = client(k, alice).admin();
    await admin.connect();
    const create = await failureOf(admin.createTopics({ topics: [{ topic: 'hers' }] }));
    t.equal(create.type, 'TOPIC_AUTHORIZATION_FAILED', 'create without CREATE');
    const del = await failureOf(admin.deleteTopics({ topics: ['orders'], timeout: 2000 }));
    t.equal(del.type, 'TOPIC_AUTHORIZATION_FAILED', 'delete without DELETE');
    const acls = await failureOf(admin.describeAcls({ resourceType: 1, resourcePatternType: 1, operation: 1, permissionType: 1 } as never));
    t.equal(acls.type, 'CLUSTER_AUTHORIZATION_FAILED', 'DescribeAcls without DESCRIBE on the cluster');
    const topics = await admin.listTopics();
    t.same(topics.sort(), ['orders', 'secret'], 'Metadata lists what alice may describe (READ implies DESCRIBE)');
    await admin.disconnect();
  });

  await t.test('CreateAcls, DescribeAcls and DeleteAcls through kafkajs admin as the super-user; the new grant takes effect', async (t) => {
    const admin = client(k, { mechanism: 'scram-sha-512', username: 'admin', password: 'admin-secret' }).admin();
    await admin.connect();
    const acl = { resourceType: 2, resourceName: 'bobs', resourcePatternType: 3, principal: 'User:bob', host: '*', operation: 4, permissionType: 3 };
    await admin.createTopics({ topics: [{ topic: 'bobs' }] });
    const bob = client(k, { mechanism: 'scram-sha-256', username: 'bob', password: 'bob-secret' }).producer();
    await bob.connect();
    t.equal((await failureOf(bob.send({ topic: 'bobs', messages: [{ value: 'before' }] }))).type, 'TOPIC_AUTHORIZATION_FAILED', 'no grant yet');
    await admin.createAcls({ acl: [acl] } as never);
    const described = await admin.describeAcls({ resourceType: 2, resourceName: 'bobs', resourcePatternType: 1, operation: 1, permissionType: 1 } as never);
    t.same((described as { resources: Array<{ resourceName: string; acls: Array<{ principal: string; operation: number }> }> }).resources.map((r) => [r.resourceName, r.acls.map((a) => `${a.principal}:${a.operation}`)]), [['bobs', ['User:bob:4']]]);
    await bob.send({ topic: 'bobs', messages: [{ value: 'after' }] });
    t.pass('the grant applied to the next request');
    const deleted = await admin.deleteAcls({ filters: [acl] } as never);
    t.equal((deleted as { filterResponses: Array<{ matchingAcls: unknown[] }> }).filterResponses[0].matchingAcls.length, 1);
    t.equal((await failureOf(bob.send({ topic: 'bobs', messages: [{ value: 'revoked' }] }))).type, 'TOPIC_AUTHORIZATION_FAILED', 'revoked at once');
    await bob.disconnect();
    await admin.disconnect();
  });

  await t.test('KIP-368: a kafkajs producer re-authenticates on its connection past security.reauthMs and keeps producing', async (t) => {
    const producer = client(k, alice).producer();
    await producer.connect();
    await producer.send({ topic: 'orders', messages: [{ value: 'before-expiry' }] });
    await sleep(3500);
    await producer.send({ topic: 'orders', messages: [{ value: 'after-expiry' }] });
    await producer.disconnect();
    const logins = b.logs.filter((l) => l.msg === 'SASL authenticated' && l.user === 'alice');
    const perConnection = new Map<unknown, number>();
    for (const l of logins) perConnection.set(l.conn, (perConnection.get(l.conn) ?? 0) + 1);
    t.ok([...perConnection.values()].some((n) => n >= 2), 'one connection authenticated twice (re-authentication, not a reconnect)');
  });

  t.equal(await b.stop(), 0);
});

t.test('kafka security: past loginFailuresMax, an address is refused unchecked, even with the right password', async (t) => {
  const dir = await tempDir(t);
  const dataDir = join(dir, 'data');
  const first = await startBroker(t, { dataDir });
  t.equal((await cli(first.listeners.kafka!, 'users', 'add', 'alice', '--password', 'alice-secret')).code, 0);
  await first.stop();
  const b = await startBroker(t, { dataDir, args: ['--set', 'security.allowAnonymous=false', '--set', 'security.loginFailuresMax=2'] });
  const k = b.listeners.kafka!;
  for (let i = 0; i < 2; i++) await failureOf(client(k, { mechanism: 'scram-sha-256', username: 'alice', password: 'wrong' }).producer().connect());
  const e = await failureOf(client(k, { mechanism: 'scram-sha-256', username: 'alice', password: 'alice-secret' }).producer().connect());
  t.match(`${e.type} ${e.message}`, /SASL_AUTHENTICATION_FAILED|too many failed logins/, 'the third attempt is refused');
  t.ok(await eventually(() => b.logs.some((l) => String(l.msg).includes('too many failed logins')), 5000), 'logged');
  t.equal(ERRORS.SASL_AUTHENTICATION_FAILED.kafka, 58);
});
