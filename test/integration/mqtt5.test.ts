// MQTT 5 over real sockets: mqtt.js v5 (and raw packets where a well-behaved client cannot
// send or observe the case) against the real gateway. One test per line of the conformance
// checklist in docs/mqtt.md.
import t from 'tap';
import mqtt from 'mqtt';
import { connect as netConnect, type Socket } from 'node:net';
import { openStack, readTopic } from '../unit/mqtt/fixture.js';
import { eventually, sleep } from '../helpers/index.js';
import { packet, str, u16 } from '../helpers/mqtt-packets.js';

type V5Options = mqtt.IClientOptions;
const v5 = (clientId: string, more: V5Options = {}): V5Options => ({ clientId, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5_000, ...more });

interface Got {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  properties?: Record<string, unknown>;
}

function collect(c: mqtt.MqttClient): Got[] {
  const got: Got[] = [];
  c.on('message', (topic, payload, p) => got.push({ topic, payload: payload.toString(), qos: p.qos, retain: p.retain, properties: p.properties as Record<string, unknown> | undefined }));
  return got;
}

function rawConnect(port: number): Promise<Socket & { bytes(): Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = netConnect(port, '127.0.0.1', () => resolve(Object.assign(sock, { bytes: () => Buffer.concat(chunks) })));
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', reject);
  });
}

const connect5 = (clientId: string, props: Buffer = Buffer.from([0])) => packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([5, 0x02]), u16(30), props, str(clientId)]));

/** Packets of a byte stream: [first byte, body]. */
function packets(buf: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  let pos = 0;
  while (pos < buf.length) {
    let len = 0;
    let mul = 1;
    let i = 1;
    for (; ; i++) {
      const d = buf[pos + i];
      len += (d & 0x7f) * mul;
      mul *= 128;
      if ((d & 0x80) === 0) break;
    }
    out.push([buf[pos], buf.subarray(pos + i + 1, pos + i + 1 + len)]);
    pos += i + 1 + len;
  }
  return out;
}

t.test('CONNACK properties: receive maximum, topic alias maximum, maximum packet size, assigned client id', async (t) => {
  const s = await openStack(t, { mqtt: { inflightMax: 50, topicAliasMax: 7 } });
  const c = mqtt.connect(s.url, v5(''));
  t.teardown(() => c.endAsync(true));
  const connack = await new Promise<mqtt.IConnackPacket>((r) => c.once('connect', r));
  t.equal(connack.reasonCode, 0);
  t.equal(connack.properties?.receiveMaximum, 50, 'Receive Maximum = inflightMax');
  t.equal(connack.properties?.topicAliasMaximum, 7, 'Topic Alias Maximum = topicAliasMax');
  t.ok((connack.properties?.maximumPacketSize ?? 0) > 256 * 1024, 'Maximum Packet Size from packetBytesMax');
  t.match(connack.properties?.assignedClientIdentifier, /^aedes_/, 'an empty client id gets one');
});

t.test('session expiry: a session is kept for its interval, then dropped', async (t) => {
  const s = await openStack(t);
  const opts = v5('expiring', { clean: false, properties: { sessionExpiryInterval: 1 } });
  const a = await mqtt.connectAsync(s.url, opts);
  await a.subscribeAsync('exp/#', { qos: 1 });
  a.stream.destroy();
  await eventually(() => s.gateway.guardOf('expiring') === undefined);
  const b = mqtt.connect(s.url, opts);
  const ack1 = await new Promise<mqtt.IConnackPacket>((r) => b.once('connect', r));
  t.equal(ack1.sessionPresent, true, 'within the interval: session present');
  b.stream.destroy();
  await eventually(() => s.gateway.guardOf('expiring') === undefined);
  await sleep(1_600);
  const c = mqtt.connect(s.url, opts);
  t.teardown(() => c.endAsync(true));
  const ack2 = await new Promise<mqtt.IConnackPacket>((r) => c.once('connect', r));
  t.equal(ack2.sessionPresent, false, 'after the interval: session gone');
});

t.test('session expiry above sessionExpiryMaxSeconds is lowered and the CONNACK says so (boundary)', async (t) => {
  const s = await openStack(t, { mqtt: { sessionExpiryMaxSeconds: 60 } });
  const at = mqtt.connect(s.url, v5('cap-at', { properties: { sessionExpiryInterval: 60 } }));
  t.teardown(() => at.endAsync(true));
  const a1 = await new Promise<mqtt.IConnackPacket>((r) => at.once('connect', r));
  t.equal(a1.properties?.sessionExpiryInterval, undefined, 'at the cap: granted as asked');
  const over = mqtt.connect(s.url, v5('cap-over', { properties: { sessionExpiryInterval: 61 } }));
  t.teardown(() => over.endAsync(true));
  const a2 = await new Promise<mqtt.IConnackPacket>((r) => over.once('connect', r));
  t.equal(a2.properties?.sessionExpiryInterval, 60, 'one above: lowered to the cap');
});

t.test('refused publishes get a reason code, the connection stays: 0x87 $SYS, 0x99 payload format, 0x90 topic levels and colliding stream topic, 0x97 retained quota', async (t) => {
  const s = await openStack(t, { mqtt: { retainedMessagesMax: 1, topicLevelsMax: 3 } });
  await s.broker.createTopic('a_b', 1);
  const c = await mqtt.connectAsync(s.url, v5('refused'));
  t.teardown(() => c.endAsync(true));
  const reasons: Record<string, number> = {};
  c.on('packetreceive', (p) => {
    if (p.cmd === 'puback' || p.cmd === 'pubrec') reasons[String(p.messageId)] = p.reasonCode ?? 0;
  });
  const pub = async (topic: string, payload: Buffer | string, opts: mqtt.IClientPublishOptions) => {
    const r = await c.publishAsync(topic, payload, opts).then(
      (p) => (p as mqtt.IPublishPacket | undefined)?.messageId,
      (e: Error & { code?: number }) => e.code,
    );
    return r;
  };
  t.equal(await pub('$SYS/x', 'x', { qos: 1 }), 0x87, '$SYS: not authorized');
  t.equal(await pub('fmt/x', Buffer.from([0xff, 0xfe]), { qos: 1, properties: { payloadFormatIndicator: true } }), 0x99, 'payload format invalid');
  t.ok(typeof (await pub('fmt/x', 'ünïcode', { qos: 1, properties: { payloadFormatIndicator: true } })) === 'number', 'valid UTF-8 accepted');
  t.equal(await pub('a/b/c/d', 'x', { qos: 1 }), 0x90, 'one level above topicLevelsMax: topic name invalid');
  t.ok((await pub('a/b/c', 'x', { qos: 2 })) !== 0x90, 'exactly topicLevelsMax levels: accepted');
  t.equal(await pub('a.b/x', 'x', { qos: 2 }), 0x90, 'stream topic colliding with a_b: topic name invalid (PUBREC)');
  await pub('keep/1', 'x', { qos: 1, retain: true });
  t.equal(await pub('keep/2', 'x', { qos: 1, retain: true }), 0x97, 'retainedMessagesMax reached: quota exceeded');
  t.ok(c.connected, 'still connected after every refusal');
  const m = s.metrics.get('tributary_mqtt_refused_total');
  for (const rule of ['sys-topic-reserved', 'payload-format-invalid', 'topic-levels-max', 'stream-topic-invalid', 'retained-messages-max']) t.equal(m?.value({ rule }), 1, `${rule} counted`);
  t.ok(s.logs.some((l) => l.rule === 'topic-levels-max' && l.reason === 0x90), 'log line names the rule and reason');
});

t.test('QoS 0 refused publish: DISCONNECT with the reason code', async (t) => {
  const s = await openStack(t);
  const c = await mqtt.connectAsync(s.url, v5('q0refused'));
  const disconnect = new Promise<mqtt.IDisconnectPacket>((r) => c.once('disconnect', r));
  c.publish('$SYS/x', 'x', { qos: 0 });
  t.equal((await disconnect).reasonCode, 0x87);
  c.end(true);
});

t.test('properties become record headers and come back on delivery, user properties in order', async (t) => {
  const s = await openStack(t);
  const sub = await mqtt.connectAsync(s.url, v5('props-sub'));
  t.teardown(() => sub.endAsync(true));
  const got = collect(sub);
  await sub.subscribeAsync('props/#', { qos: 1 });
  const pub = await mqtt.connectAsync(s.url, v5('props-pub'));
  t.teardown(() => pub.endAsync(true));
  const properties = {
    userProperties: { site: 'north', unit: ['c', 'f'] },
    contentType: 'application/json',
    responseTopic: 'reply/here',
    correlationData: Buffer.from([1, 2, 3]),
    payloadFormatIndicator: true,
    messageExpiryInterval: 3600,
  };
  await pub.publishAsync('props/a', '{"t":21}', { qos: 1, properties });
  const [rec] = await readTopic(s.broker, 'props');
  t.equal(rec.headers['mqtt.contentType'], 'application/json');
  t.equal(rec.headers['mqtt.responseTopic'], 'reply/here');
  t.equal(rec.headers['mqtt.correlationData'], '\u0001\u0002\u0003');
  t.equal(rec.headers['mqtt.payloadFormat'], 'utf8');
  t.equal(rec.headers['mqtt.user.site'], 'north');
  t.ok(Number(rec.headers['mqtt.expiresAtMs']) > Date.now() + 3_500_000, 'absolute expiry');
  await eventually(() => got.length === 1);
  const p = got[0].properties!;
  t.same(p.userProperties, { site: 'north', unit: ['c', 'f'] });
  t.equal(p.contentType, 'application/json');
  t.equal(p.responseTopic, 'reply/here');
  t.same(p.correlationData, Buffer.from([1, 2, 3]));
  t.equal(p.payloadFormatIndicator, true);
  t.ok((p.messageExpiryInterval as number) <= 3600 && (p.messageExpiryInterval as number) > 3590, 'remaining expiry');
  // a record produced through the broker with those headers reaches a v5 subscriber with them
  await s.broker.produce('props', [{ key: Buffer.from('props/kafka'), value: Buffer.from('k'), headers: [{ key: 'mqtt.user.from', value: Buffer.from('kafka') }, { key: 'mqtt.contentType', value: Buffer.from('text/plain') }] }], { acks: -1 });
  await eventually(() => got.length === 2);
  t.same(got[1].properties?.userProperties, { from: 'kafka' });
  t.equal(got[1].properties?.contentType, 'text/plain');
});

t.test('message expiry: an expired message is not delivered from the offline queue nor as retained', async (t) => {
  const s = await openStack(t);
  const opts = v5('exp-sub', { clean: false, properties: { sessionExpiryInterval: 300 } });
  const a = await mqtt.connectAsync(s.url, opts);
  await a.subscribeAsync('ttl/#', { qos: 1 });
  a.stream.destroy();
  await eventually(() => s.gateway.guardOf('exp-sub') === undefined);
  const pub = await mqtt.connectAsync(s.url, v5('exp-pub'));
  t.teardown(() => pub.endAsync(true));
  await pub.publishAsync('ttl/short', 'gone', { qos: 1, properties: { messageExpiryInterval: 1 } });
  await pub.publishAsync('ttl/long', 'kept', { qos: 1, properties: { messageExpiryInterval: 600 } });
  await pub.publishAsync('ttl/retained', 'gone-too', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
  await sleep(1_500);
  const b = mqtt.connect(s.url, opts);
  const got = collect(b);
  t.teardown(() => b.endAsync(true));
  await eventually(() => got.length >= 1);
  await sleep(300);
  t.same(got.map((g) => g.payload), ['kept'], 'only the unexpired queued message');
  const late = await mqtt.connectAsync(s.url, v5('late'));
  t.teardown(() => late.endAsync(true));
  const lateGot = collect(late);
  await late.subscribeAsync('ttl/retained', { qos: 1 });
  await sleep(300);
  t.same(lateGot, [], 'expired retained message not sent');
});

t.test('topic aliases: inbound (client → server) up to topicAliasMax, outbound up to the client\'s maximum', async (t) => {
  const s = await openStack(t, { mqtt: { topicAliasMax: 2 } });
  const sub = await mqtt.connectAsync(s.url, v5('alias-sub', { properties: { topicAliasMaximum: 5 } }));
  t.teardown(() => sub.endAsync(true));
  const wire: Array<{ topic: string; alias?: number }> = [];
  sub.on('packetreceive', (p) => {
    if (p.cmd === 'publish') wire.push({ topic: String(p.topic), alias: p.properties?.topicAlias });
  });
  const got = collect(sub);
  await sub.subscribeAsync('al/#', { qos: 0 });
  const pub = await mqtt.connectAsync(s.url, v5('alias-pub'));
  t.teardown(() => pub.endAsync(true));
  await pub.publishAsync('al/x', '1', { qos: 1, properties: { topicAlias: 2 } });
  await pub.publishAsync('', '2', { qos: 1, properties: { topicAlias: 2 } });
  await eventually(() => got.length === 2);
  t.same(got.map((g) => `${g.topic}=${g.payload}`), ['al/x=1', 'al/x=2'], 'inbound alias resolved, outbound alias resolved by mqtt.js');
  t.same(wire, [{ topic: 'al/x', alias: 1 }, { topic: '', alias: 1 }], 'second delivery sent with the alias only');
  // boundary: alias topicAliasMax + 1 (mqtt.js will not send it, so raw bytes) is answered with 0x94
  const sock = await rawConnect(s.port);
  t.teardown(() => sock.destroy());
  sock.on('error', () => undefined);
  sock.write(connect5('alias-raw'));
  await eventually(() => packets(sock.bytes()).some(([b]) => b === 0x20));
  sock.write(packet(0x30, Buffer.concat([str('al/y'), Buffer.from([0x03, 0x23, 0x00, 0x03]), Buffer.from('3')])));
  await new Promise<void>((r) => sock.once('close', () => r()));
  t.equal(packets(sock.bytes()).find(([b]) => b === 0xe0)?.[1][0], 0x94, 'DISCONNECT Topic Alias invalid');
});

t.test('Receive Maximum: never more unacknowledged QoS 1 deliveries than the client allows', async (t) => {
  const s = await openStack(t);
  const sock = await rawConnect(s.port);
  t.teardown(() => sock.destroy());
  // CONNECT with Receive Maximum (0x21) = 2
  sock.write(connect5('slow', Buffer.from([0x03, 0x21, 0x00, 0x02])));
  sock.write(packet(0x82, Buffer.concat([u16(1), Buffer.from([0]), str('rm/#'), Buffer.from([1])])));
  await eventually(() => packets(sock.bytes()).some(([b]) => b === 0x90));
  const pub = await mqtt.connectAsync(s.url, v5('rm-pub'));
  t.teardown(() => pub.endAsync(true));
  for (let i = 0; i < 5; i++) await pub.publishAsync('rm/x', String(i), { qos: 1 });
  await sleep(300);
  const publishes = () => packets(sock.bytes()).filter(([b]) => b >> 4 === 3);
  t.equal(publishes().length, 2, 'two in flight, three held');
  const [, body] = publishes()[0];
  const id = body.readUInt16BE(2 + body.readUInt16BE(0));
  sock.write(packet(0x40, u16(id)));
  await eventually(() => publishes().length === 3);
  await sleep(200);
  t.equal(publishes().length, 3, 'one PUBACK lets exactly one more through');
});

t.test('Maximum Packet Size: a delivery larger than the client accepts is dropped for it (MQTT-3.1.2-25)', async (t) => {
  const s = await openStack(t);
  const small = await mqtt.connectAsync(s.url, v5('small', { properties: { maximumPacketSize: 100 } }));
  t.teardown(() => small.endAsync(true));
  const got = collect(small);
  await small.subscribeAsync('size/#', { qos: 1 });
  const pub = await mqtt.connectAsync(s.url, v5('size-pub'));
  t.teardown(() => pub.endAsync(true));
  await pub.publishAsync('size/big', 'x'.repeat(200), { qos: 1 });
  await pub.publishAsync('size/ok', 'y'.repeat(50), { qos: 1 });
  await eventually(() => got.length >= 1);
  await sleep(200);
  t.same(got.map((g) => g.topic), ['size/ok']);
  t.equal(s.metrics.get('tributary_mqtt_deliveries_dropped_total')?.value({ reason: 'packet-too-large' }), 1, 'counted');
});

t.test('subscription identifiers: every matching identifier on one delivery of overlapping subscriptions', async (t) => {
  const s = await openStack(t);
  const c = await mqtt.connectAsync(s.url, v5('sids'));
  t.teardown(() => c.endAsync(true));
  const got = collect(c);
  await c.subscribeAsync('sid/#', { qos: 1, properties: { subscriptionIdentifier: 1 } });
  await c.subscribeAsync('sid/+', { qos: 1, properties: { subscriptionIdentifier: 2 } });
  await c.publishAsync('sid/a', 'x', { qos: 1 });
  await eventually(() => got.length >= 1);
  await sleep(200);
  t.equal(got.length, 1, 'one copy');
  t.same([...(got[0].properties?.subscriptionIdentifier as number[])].sort(), [1, 2]);
});

t.test('no local, retain as published, retain handling', async (t) => {
  const s = await openStack(t);
  const c = await mqtt.connectAsync(s.url, v5('opts'));
  t.teardown(() => c.endAsync(true));
  const got = collect(c);
  await c.publishAsync('ret/a', 'kept', { qos: 1, retain: true });
  await c.subscribeAsync('nl/#', { qos: 1, nl: true });
  await c.subscribeAsync('rap/#', { qos: 1, rap: true });
  await c.subscribeAsync('ret/#', { qos: 1, rh: 2 });
  await c.publishAsync('nl/x', 'mine', { qos: 1 });
  await c.publishAsync('rap/x', 'flag', { qos: 1, retain: true });
  await eventually(() => got.length >= 1);
  await sleep(300);
  t.same(got.map((g) => `${g.topic}:${g.retain}`), ['rap/x:true'], 'no own message on nl, retain flag kept on rap, no retained on rh=2');
});

t.test('will delay and will properties: the will comes after its delay, with its properties', async (t) => {
  const s = await openStack(t);
  const w = await mqtt.connectAsync(s.url, v5('will-watch'));
  t.teardown(() => w.endAsync(true));
  const got = collect(w);
  await w.subscribeAsync('wills/#', { qos: 1 });
  const dev = await mqtt.connectAsync(s.url, v5('will-dev', {
    properties: { sessionExpiryInterval: 10 },
    will: { topic: 'wills/dev', payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 1, contentType: 'text/plain', userProperties: { why: 'cut' } } },
  }));
  const cutAt = Date.now();
  dev.stream.destroy();
  await sleep(500);
  t.same(got, [], 'not before the delay');
  await eventually(() => got.length === 1, 5_000);
  t.ok(Date.now() - cutAt >= 1_000, 'after the delay');
  t.equal(got[0].properties?.contentType, 'text/plain');
  t.same(got[0].properties?.userProperties, { why: 'cut' });
});

t.test('server keep-alive and response information in the CONNACK', async (t) => {
  const s = await openStack(t, { mqtt: { keepaliveMaxSeconds: 10, responseInformation: 'replies/{clientId}' } });
  const c = mqtt.connect(s.url, v5('ka', { keepalive: 60, properties: { requestResponseInformation: true } }));
  t.teardown(() => c.endAsync(true));
  const ack = await new Promise<mqtt.IConnackPacket>((r) => c.once('connect', r));
  t.equal(ack.properties?.serverKeepAlive, 10);
  t.equal(ack.properties?.responseInformation, 'replies/ka');
});

t.test('a single-valued property given twice is a Protocol Error: DISCONNECT 0x82', async (t) => {
  const logs: Array<Record<string, unknown>> = [];
  const s = await openStack(t, { logs });
  const sock = await rawConnect(s.port);
  t.teardown(() => sock.destroy());
  sock.on('error', () => undefined);
  sock.write(connect5('twice'));
  await eventually(() => packets(sock.bytes()).some(([b]) => b === 0x20));
  // PUBLISH QoS 0 with Content Type (0x03) twice
  const props = Buffer.concat([Buffer.from([0x03]), str('a'), Buffer.from([0x03]), str('b')]);
  sock.write(packet(0x30, Buffer.concat([str('dup/x'), Buffer.from([props.length]), props, Buffer.from('p')])));
  await new Promise<void>((r) => sock.once('close', () => r()));
  const disc = packets(sock.bytes()).find(([b]) => b === 0xe0);
  t.ok(disc, 'DISCONNECT sent');
  t.equal(disc?.[1][0], 0x82, 'reason Protocol Error');
  t.ok(logs.some((l) => l.rule === 'MQTT-2.2.2-2'), 'log line names the rule');
});

t.test('deliveryQueueMax: a client that lets its Receive Maximum queue fill is disconnected (0x97) and counted (boundary)', async (t) => {
  const s = await openStack(t, { mqtt: { deliveryQueueMax: 2 } });
  const sock = await rawConnect(s.port);
  t.teardown(() => sock.destroy());
  sock.on('error', () => undefined);
  sock.write(connect5('stuck', Buffer.from([0x03, 0x21, 0x00, 0x01])));
  sock.write(packet(0x82, Buffer.concat([u16(1), Buffer.from([0]), str('dq/#'), Buffer.from([1])])));
  await eventually(() => packets(sock.bytes()).some(([b]) => b === 0x90));
  const pub = await mqtt.connectAsync(s.url, v5('dq-pub'));
  t.teardown(() => pub.endAsync(true));
  // one in flight + deliveryQueueMax queued: still connected
  for (let i = 0; i < 3; i++) await pub.publishAsync('dq/x', String(i), { qos: 1 });
  await sleep(300);
  t.ok(s.gateway.guardOf('stuck'), 'at the bound: connected');
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await pub.publishAsync('dq/x', '3', { qos: 1 });
  await closed;
  t.equal(packets(sock.bytes()).find(([b]) => b === 0xe0)?.[1][0], 0x97, 'one above: DISCONNECT quota exceeded');
  t.ok((s.metrics.get('tributary_mqtt_deliveries_dropped_total')?.value({ reason: 'slow-client' }) ?? 0) >= 1, 'counted');
});

t.test('session expiry survives a restart: kept before its deadline, dropped after it', async (t) => {
  const s1 = await openStack(t);
  const opts = v5('restart-exp', { clean: false, properties: { sessionExpiryInterval: 2 } });
  const a = await mqtt.connectAsync(s1.url, opts);
  await a.subscribeAsync('rx/#', { qos: 1 });
  a.stream.destroy();
  await eventually(() => s1.gateway.guardOf('restart-exp') === undefined);
  await s1.close();
  // restarted within the interval: the session is there
  const s2 = await openStack(t, { dataDir: s1.dataDir });
  const b = mqtt.connect(s2.url, opts);
  const ack1 = await new Promise<mqtt.IConnackPacket>((r) => b.once('connect', r));
  t.equal(ack1.sessionPresent, true, 'before the deadline: present after a restart');
  b.stream.destroy();
  await eventually(() => s2.gateway.guardOf('restart-exp') === undefined);
  await sleep(100);
  await s2.close();
  // down past the deadline: the restarted broker drops it
  await sleep(2_300);
  const s3 = await openStack(t, { dataDir: s1.dataDir });
  const c = mqtt.connect(s3.url, opts);
  t.teardown(() => c.endAsync(true));
  const ack2 = await new Promise<mqtt.IConnackPacket>((r) => c.once('connect', r));
  t.equal(ack2.sessionPresent, false, 'after the deadline: dropped');
});
