// The strict MQTT 3.1.1 checks of the connection guard, byte by byte, and the password hash
// format of the auth module.
import t from 'tap';
import { checkConnect, checkPacket, readFixedHeader } from '../../../gateway/mqtt/guard.js';
import { hashPasswordSync, parsePasswordHash, verifyPassword, Authorizer } from '../../../gateway/mqtt/auth.js';
import { resolveMqttOptions, defaultMqttGatewayOptions } from '../../../gateway/mqtt/options.js';

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([u16(b.length), b]);
};
const limits = { packetBytesMax: 1000, clientIdBytesMax: 23, keepaliveMaxSeconds: 0 };
const connectBody = (flags: number, ...tail: Buffer[]) => Buffer.concat([str('MQTT'), Buffer.from([4, flags]), u16(60), ...tail]);
const rule = (x: unknown) => (x as { rule?: string }).rule;

t.test('fixed header: remaining length limits', async (t) => {
  t.same(readFixedHeader(Buffer.from([0x30, 0x05]), 0, 1000), [3, 0, 5, 2]);
  t.equal(readFixedHeader(Buffer.from([0x30, 0x80]), 0, 1000), undefined, 'incomplete');
  t.equal(rule(readFixedHeader(Buffer.from([0x30, 0xe9, 0x07]), 0, 1000)), 'packetBytesMax', '1001 > 1000');
  t.same(readFixedHeader(Buffer.from([0x30, 0xe8, 0x07]), 0, 1000), [3, 0, 1000, 3], '1000 accepted');
  t.equal(rule(readFixedHeader(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]), 0, 1e9)), 'MQTT-2.2.3');
});

t.test('CONNECT rules', async (t) => {
  const check = (body: Buffer) => checkConnect(body, 0, body.length, limits);
  t.match(check(connectBody(0x02, str('dev'))), { clientId: 'dev', protocolLevel: 4, clean: true });
  t.equal(rule(check(connectBody(0x02 | 0x04 | 0x18, str('d'), str('w/t'), str('x')))), 'MQTT-3.1.2-14');
  t.equal(rule(check(connectBody(0x02 | 0x08, str('d')))), 'MQTT-3.1.2-13');
  t.equal(rule(check(connectBody(0x02 | 0x20, str('d')))), 'MQTT-3.1.2-15');
  t.equal(rule(check(connectBody(0x02 | 0x40, str('d'), str('pw')))), 'MQTT-3.1.2-22');
  t.equal(rule(check(connectBody(0x02, str(Buffer.from([0xff]))))), 'MQTT-3.1.3-4');
  t.equal(rule(check(connectBody(0x02, str('a\u0000b')))), 'MQTT-3.1.3-4');
  t.equal(rule(check(connectBody(0x02 | 0x04, str('d'), str('w/+'), str('x')))), 'MQTT-3.3.2-2', 'wildcard will topic');
  t.equal(rule(check(connectBody(0x02 | 0x80, str('d'), str(Buffer.from([0xc0, 0x80]))))), 'MQTT-3.1.3-11', 'overlong user name');
  t.match(check(connectBody(0x00, str(''))), { returnCode: 2 }, 'MQTT-3.1.3-8');
  t.match(check(connectBody(0x02, str('x'.repeat(24)))), { returnCode: 2 }, 'above clientIdBytesMax');
  const v5 = Buffer.concat([str('MQTT'), Buffer.from([5, 0x02]), u16(60), Buffer.from([0]), str('d')]);
  t.match(check(v5), { protocolLevel: 5, clientId: 'd' });
  const v31 = Buffer.concat([str('MQIsdp'), Buffer.from([3, 0x02]), u16(60), str('old')]);
  t.match(check(v31), { protocolLevel: 3 });
  t.equal(rule(check(Buffer.concat([str('HTTP'), Buffer.from([4, 2]), u16(1), str('d')]))), 'MQTT-3.1.2-1');
});

t.test('PUBLISH and other packet rules', async (t) => {
  const pub = (flags: number, topic: Buffer | string, id?: number) => {
    const body = Buffer.concat([str(topic), id === undefined ? Buffer.alloc(0) : u16(id), Buffer.from('p')]);
    return checkPacket(3, flags, body, 0, body.length);
  };
  t.match(pub(0, 'a/b'), { qos: 0 });
  t.match(pub(2, 'a/b', 1), { qos: 1 });
  t.equal(rule(pub(6, 'a/b', 1)), 'MQTT-3.3.1-4');
  t.equal(rule(pub(2, 'a/b', 0)), 'MQTT-2.3.1-1');
  t.equal(rule(pub(8, 'a/b')), 'MQTT-3.3.1-2');
  t.equal(rule(pub(0, 'a/#')), 'MQTT-3.3.2-2');
  t.equal(rule(pub(0, '')), 'MQTT-4.7.3-1');
  t.equal(rule(pub(0, Buffer.from([0xed, 0xa0, 0x80]))), 'MQTT-1.5.3-1');
  t.equal(rule(pub(0, 'a\u0000')), 'MQTT-1.5.3-2');
  t.match(pub(0, 'température/é'), { qos: 0 }, 'valid UTF-8 passes');
  t.equal(checkPacket(4, 0, u16(1), 0, 2), undefined, 'PUBACK');
  t.equal(rule(checkPacket(6, 0, u16(1), 0, 2)), 'MQTT-3.6.1-1');
  t.equal(rule(checkPacket(12, 0, Buffer.from([1]), 0, 1)), 'MQTT-2.2.2-2');
  t.equal(rule(checkPacket(13, 0, Buffer.alloc(0), 0, 0)), 'MQTT-2.2.1');
  const sub = Buffer.concat([u16(1), str('a/+'), Buffer.from([1])]);
  t.equal(checkPacket(8, 2, sub, 0, sub.length), undefined);
  t.equal(rule(checkPacket(8, 2, u16(1), 0, 2)), 'MQTT-3.8.3-3');
  const unsub = Buffer.concat([u16(1), str('a/b+')]);
  t.equal(rule(checkPacket(10, 2, unsub, 0, unsub.length)), 'MQTT-4.7.1-3');
});

t.test('password hashes: format, verification, bad formats named', async (t) => {
  const h = hashPasswordSync('pw', { N: 1024, r: 8, p: 1 });
  t.match(h, /^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  t.equal(await verifyPassword('pw', h), true);
  t.equal(await verifyPassword('pW', h), false);
  t.throws(() => parsePasswordHash('bcrypt$x'), /scrypt\$N\$r\$p\$salt\$key/);
  t.throws(() => new Authorizer([{ username: 'a', passwordHash: 'nope', publish: [], subscribe: [] }]), /users\[0\]\.passwordHash/);
  const a = new Authorizer([{ username: 'u', passwordHash: h, publish: ['t/{clientId}/#'], subscribe: ['c/{username}/+'] }]);
  t.equal(await a.authenticate('u', Buffer.from('pw')), true);
  t.equal(await a.authenticate('u', Buffer.from('pw')), true, 'cached');
  t.equal(await a.authenticate('u', Buffer.from('x')), false);
  t.equal(a.canPublish('u', 'd1', 't/d1/x'), true);
  t.equal(a.canPublish('u', 'd1', 't/d2/x'), false);
  t.equal(a.canPublish('u', 'd/+', 't/d/x/y'), false, 'a client id with wildcards cannot widen the rule');
  t.equal(a.canSubscribe('u', 'd1', 'c/u/+'), true);
  t.equal(a.canSubscribe('u', 'd1', 'c/#'), false);
});

t.test('options: defaults are valid, bad values are named', async (t) => {
  t.doesNotThrow(() => resolveMqttOptions({}));
  t.equal(resolveMqttOptions({ headers: { topic: false } as never }).headers.qos, true, 'nested headers merged');
  t.throws(() => resolveMqttOptions({ packetBytesMax: 10 }), /mqtt\.packetBytesMax/);
  t.throws(() => resolveMqttOptions({ unrouted: 'drop' as never }), /mqtt\.unrouted/);
  t.throws(() => resolveMqttOptions({ batchBytesMax: 2048, packetBytesMax: 4096 }), /batchBytesMax/);
  t.ok(Object.keys(defaultMqttGatewayOptions).length > 30);
});
