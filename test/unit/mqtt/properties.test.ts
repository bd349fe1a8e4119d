// MQTT 5 property sections read from raw bytes: what each packet may carry, a repeated
// single-valued property, value ranges, truncation, and User Properties kept in wire order.
import t from 'tap';
import { parseProperties, isPropProblem } from '../../../gateway/mqtt/properties.js';
import { checkPacket } from '../../../gateway/mqtt/guard.js';
import { str, u16 } from '../../helpers/mqtt-packets.js';

const section = (...props: Buffer[]) => {
  const body = Buffer.concat(props);
  return Buffer.concat([Buffer.from([body.length]), body]);
};
const user = (k: string, v: string) => Buffer.concat([Buffer.from([0x26]), str(k), str(v)]);
const parse = (b: Buffer, kind: Parameters<typeof parseProperties>[3]) => parseProperties(b, 0, b.length, kind);

t.test('user properties come back in wire order, repeats kept', async (t) => {
  const r = parse(section(user('z', '1'), user('a', '2'), user('z', '3')), 'publish');
  t.notOk(isPropProblem(r));
  if (!isPropProblem(r)) t.same(r.user, [['z', '1'], ['a', '2'], ['z', '3']]);
});

t.test('a single-valued property twice is a Protocol Error (0x82); User Property may repeat', async (t) => {
  const ct = Buffer.concat([Buffer.from([0x03]), str('a')]);
  t.match(parse(section(ct, ct), 'publish'), { reason: 0x82, rule: 'MQTT-2.2.2-2' });
  const sei = Buffer.from([0x11, 0, 0, 0, 5]);
  t.match(parse(section(sei, sei), 'connect'), { reason: 0x82 });
});

t.test('properties only where the spec allows them', async (t) => {
  // Subscription Identifier from a client in PUBLISH: MQTT-3.3.4-6
  t.match(parse(section(Buffer.from([0x0b, 0x01])), 'publish'), { reason: 0x82, rule: 'MQTT-3.3.4-6' });
  // Topic Alias in CONNECT, Receive Maximum in PUBLISH
  t.match(parse(section(Buffer.from([0x23, 0, 1])), 'connect'), { reason: 0x82 });
  t.match(parse(section(Buffer.from([0x21, 0, 1])), 'publish'), { reason: 0x82 });
  // unknown identifier: malformed
  t.match(parse(section(Buffer.from([0x7f, 0])), 'publish'), { reason: 0x81 });
});

t.test('value ranges and truncation', async (t) => {
  t.match(parse(section(Buffer.from([0x21, 0, 0])), 'connect'), { rule: 'MQTT-3.1.2-22' }, 'Receive Maximum 0');
  t.match(parse(section(Buffer.from([0x23, 0, 0])), 'publish'), { rule: 'MQTT-3.3.2-8' }, 'Topic Alias 0');
  t.match(parse(section(Buffer.from([0x01, 2])), 'publish'), { reason: 0x82 }, 'Payload Format Indicator 2');
  t.match(parse(Buffer.from([0x05, 0x02, 0, 0]), 'publish'), { reason: 0x81 }, 'section longer than the packet');
  t.match(parse(section(Buffer.from([0x02, 0, 0])), 'publish'), { reason: 0x81 }, 'four-byte value cut short');
});

t.test('checkPacket in MQTT 5: ack with reason and properties, SUBSCRIBE options, AUTH', async (t) => {
  const ctx = { v5: true, topicLevelsMax: 100 };
  const puback = Buffer.concat([u16(1), Buffer.from([0x10]), section(user('a', 'b'))]);
  t.equal(checkPacket(4, 0, puback, 0, puback.length, ctx), undefined, 'PUBACK with reason and user property');
  const sub = (opts: number) => Buffer.concat([u16(1), Buffer.from([0]), str('a/#'), Buffer.from([opts])]);
  t.equal(checkPacket(8, 2, sub(0x2e), 0, sub(0x2e).length, ctx), undefined, 'QoS 2 + NL + RAP + RH 2');
  t.match(checkPacket(8, 2, sub(0x30), 0, sub(0x30).length, ctx), { rule: 'MQTT-3.8.3-5', reason: 0x82 }, 'Retain Handling 3');
  t.match(checkPacket(8, 2, sub(0x40), 0, sub(0x40).length, ctx), { rule: 'MQTT-3.8.3-5' }, 'reserved bit');
  t.match(checkPacket(15, 0, Buffer.alloc(0), 0, 0, ctx), { reason: 0x82 }, 'AUTH outside an exchange');
  t.match(checkPacket(15, 0, Buffer.alloc(0), 0, 0, { v5: false, topicLevelsMax: 100 }), { rule: 'MQTT-2.2.1' }, 'AUTH in 3.1.1');
  const aliased = Buffer.concat([str(''), Buffer.from([0x03, 0x23, 0, 1]), Buffer.from('p')]);
  t.match(checkPacket(3, 0, aliased, 0, aliased.length, ctx), { qos: 0 }, 'empty topic with a Topic Alias');
  const empty = Buffer.concat([str(''), Buffer.from([0]), Buffer.from('p')]);
  t.match(checkPacket(3, 0, empty, 0, empty.length, ctx), { rule: 'MQTT-4.7.3-1' }, 'empty topic without one');
  const deep = Buffer.concat([str('a/b/c'), Buffer.from([0]), Buffer.from('p')]);
  t.match(checkPacket(3, 0, deep, 0, deep.length, { v5: true, topicLevelsMax: 2 }), { refusal: { rule: 'topic-levels-max', error: 'INVALID_TOPIC_EXCEPTION' } }, 'levels above the limit: refused, not a violation');
  t.notOk((checkPacket(3, 0, deep, 0, deep.length, { v5: true, topicLevelsMax: 3 }) as { refusal?: unknown }).refusal, 'at the limit: accepted');
});
