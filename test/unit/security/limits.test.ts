// Purpose: the failed-login limiter refuses at exactly loginFailuresMax within the window and
// lets the address in again when the window ends, forgets the oldest address at
// loginFailureAddressesMax; the loopback rule (Mosquitto 2.0) refuses an anonymous non-loopback
// listener naming the keys, and warns when allowAnonymous: true opens it; the security options
// refuse authorization without a super-user.
import t from 'tap';
import { addressOf, checkExposure, defaultSecurityOptions, LoginLimiter, validateSecurityOptions } from '../../../host/security/index.js';

t.test('login limiter: at loginFailuresMax the address is refused until the window ends', async (t) => {
  let now = 1000;
  const l = new LoginLimiter({ failuresMax: 3, windowMs: 60_000, addressesMax: 100, nowMs: () => now });
  for (let i = 1; i <= 2; i++) {
    t.ok(l.allowed('10.0.0.1'));
    t.equal(l.failed('10.0.0.1'), i);
  }
  t.ok(l.allowed('10.0.0.1'), 'below the limit (2 of 3)');
  l.failed('10.0.0.1');
  t.notOk(l.allowed('10.0.0.1'), 'at the limit (3 of 3)');
  t.ok(l.allowed('10.0.0.2'), 'another address is not affected');
  now += 59_999;
  t.notOk(l.allowed('10.0.0.1'), 'still inside the window');
  now += 1;
  t.ok(l.allowed('10.0.0.1'), 'the window ended');
});

t.test('login limiter: at most loginFailureAddressesMax addresses, the oldest forgotten', async (t) => {
  const l = new LoginLimiter({ failuresMax: 1, windowMs: 60_000, addressesMax: 2 });
  l.failed('a');
  l.failed('b');
  t.equal(l.trackedAddresses, 2);
  l.failed('c');
  t.equal(l.trackedAddresses, 2, 'bounded');
  t.ok(l.allowed('a'), 'the oldest was forgotten');
  t.notOk(l.allowed('c'));
  t.equal(addressOf('127.0.0.1:5555'), '127.0.0.1');
  t.equal(addressOf('[::1]:5555'), '::1');
  t.equal(addressOf('::ffff:10.1.2.3:80'), '10.1.2.3');
});

t.test('loopback rule: anonymous beyond loopback needs allowAnonymous: true (logged), or the door authenticates', async (t) => {
  const kafka = { name: 'kafka', hostKey: 'host', host: '0.0.0.0', authenticated: false };
  const mqtt = { name: 'mqtt', hostKey: 'mqtt.host', host: '127.0.0.1', authenticated: false };
  const refused = checkExposure([kafka, mqtt], null);
  t.equal(refused.problems.length, 1);
  t.match(refused.problems[0], /kafka listener on 0\.0\.0\.0 \(host\).*security\.allowAnonymous: true/);
  const open = checkExposure([kafka, mqtt], true);
  t.same(open.problems, []);
  t.match(open.warnings[0], /accepts anonymous clients \(security\.allowAnonymous: true\)/);
  t.same(checkExposure([{ ...kafka, authenticated: true }], null).problems, [], 'SASL required: fine anywhere');
  t.ok(checkExposure([mqtt, { ...kafka, host: '127.0.0.2' }], null).loopbackOnly);
});

t.test('security options: authorization needs a super-user; super-users are User:<name>', async (t) => {
  t.throws(() => validateSecurityOptions({ ...defaultSecurityOptions, authorization: true }), /at least one entry in superUsers/);
  t.ok(validateSecurityOptions({ ...defaultSecurityOptions, authorization: true, superUsers: ['User:admin'] }));
  t.throws(() => validateSecurityOptions({ ...defaultSecurityOptions, superUsers: ['Admin:x'] }), /User:<name>/);
  t.throws(() => validateSecurityOptions({ ...defaultSecurityOptions, scramIterations: 4095 }), /scramIterations/);
  t.throws(() => validateSecurityOptions({ ...defaultSecurityOptions, loginFailuresMax: 0 }), /loginFailuresMax/);
});
