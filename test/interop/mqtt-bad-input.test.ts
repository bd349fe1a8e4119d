// Hostile and malformed MQTT over raw TCP: each broken rule closes the offender's connection
// with a log line naming the rule, nothing is stored, and a well-behaved client connected all
// along keeps publishing. Cases aedes 1.2 alone lets through are all here.
import t from 'tap';
import { connect as tcpConnect, type Socket } from 'node:net';
import mqtt from 'mqtt';
import { openStack, readTopic, type Stack } from '../unit/mqtt/fixture.js';
import { eventually } from '../helpers/index.js';
import { u16, str, varint, packet } from '../helpers/mqtt-packets.js';


interface ConnectSpec {
  name?: string;
  level?: number;
  flags?: number;
  keepalive?: number;
  clientId?: string | Buffer;
  tail?: Buffer[];
}
function connectPacket(c: ConnectSpec = {}): Buffer {
  const body = Buffer.concat([str(c.name ?? 'MQTT'), Buffer.from([c.level ?? 4, c.flags ?? 0x02]), u16(c.keepalive ?? 30), str(c.clientId ?? 'raw'), ...(c.tail ?? [])]);
  return packet(0x10, body);
}
function publishPacket(topic: string | Buffer, payload: string, qos = 0, id = 1, extraFlags = 0): Buffer {
  const parts = [str(topic)];
  if (qos > 0) parts.push(u16(id));
  parts.push(Buffer.from(payload));
  return packet(0x30 | (qos << 1) | extraFlags, Buffer.concat(parts));
}

/** Sends bytes on a fresh connection; resolves with what came back once the server closed it. */
function sendAndWaitClose(port: number, bytes: Buffer[], timeoutMs = 5_000): Promise<{ closed: boolean; received: Buffer }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock: Socket = tcpConnect(port, '127.0.0.1', () => {
      for (const b of bytes) sock.write(b);
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => undefined);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ closed: false, received: Buffer.concat(chunks) });
    }, timeoutMs);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, received: Buffer.concat(chunks) });
    });
  });
}

const CONNACK_OK = Buffer.from([0x20, 0x02, 0x00, 0x00]);

t.test('bad input closes only the offender, with a log line naming the rule', async (t) => {
  const s: Stack = await openStack(t, { mqtt: { packetBytesMax: 4096 } });
  const good = await mqtt.connectAsync(s.url, { clientId: 'good-citizen' });
  t.teardown(() => good.endAsync(true));
  let goodCount = 0;

  const cases: Array<{ name: string; rule: string; bytes: Buffer[]; storedTopic?: string }> = [
    { name: 'PUBLISH topic with invalid UTF-8', rule: 'MQTT-1.5.3-1', bytes: [connectPacket(), publishPacket(Buffer.from([0x62, 0x61, 0x64, 0x2f, 0xff, 0xfe]), 'x')] },
    { name: 'PUBLISH topic containing U+0000', rule: 'MQTT-1.5.3-2', bytes: [connectPacket(), publishPacket('nul/a\u0000b', 'x')], storedTopic: 'nul' },
    { name: 'PUBLISH topic with a lone surrogate (UTF-8 ED A0 80)', rule: 'MQTT-1.5.3-1', bytes: [connectPacket(), publishPacket(Buffer.from([0x73, 0x75, 0x72, 0x2f, 0xed, 0xa0, 0x80]), 'x')], storedTopic: 'sur' },
    { name: 'PUBLISH topic with +', rule: 'MQTT-3.3.2-2', bytes: [connectPacket(), publishPacket('wild/+/x', 'x', 1)], storedTopic: 'wild' },
    { name: 'PUBLISH topic with #', rule: 'MQTT-3.3.2-2', bytes: [connectPacket(), publishPacket('wild2/#', 'x')], storedTopic: 'wild2' },
    { name: 'PUBLISH QoS 3', rule: 'MQTT-3.3.1-4', bytes: [connectPacket(), publishPacket('q3/x', 'x', 3)], storedTopic: 'q3' },
    { name: 'PUBLISH QoS 1 with packet id 0', rule: 'MQTT-2.3.1-1', bytes: [connectPacket(), publishPacket('pid0/x', 'x', 1, 0)], storedTopic: 'pid0' },
    { name: 'PUBLISH QoS 0 with DUP', rule: 'MQTT-3.3.1-2', bytes: [connectPacket(), publishPacket('dup0/x', 'x', 0, 0, 0x08)], storedTopic: 'dup0' },
    { name: 'CONNECT with will QoS 3', rule: 'MQTT-3.1.2-14', bytes: [connectPacket({ flags: 0x02 | 0x04 | 0x18, tail: [str('will/t'), str('bye')] })] },
    { name: 'CONNECT with a password but no user name', rule: 'MQTT-3.1.2-22', bytes: [connectPacket({ flags: 0x02 | 0x40, tail: [str('secret')] })] },
    { name: 'CONNECT with an invalid UTF-8 client id', rule: 'MQTT-3.1.3-4', bytes: [connectPacket({ clientId: Buffer.from([0x63, 0xc3, 0x28]) })] },
    { name: 'CONNECT reserved flag set', rule: 'MQTT-3.1.2-3', bytes: [connectPacket({ flags: 0x03 })] },
    { name: 'first packet is not CONNECT', rule: 'MQTT-3.1.0-1', bytes: [publishPacket('early/x', 'x')], storedTopic: 'early' },
    { name: 'second CONNECT', rule: 'MQTT-3.1.0-2', bytes: [connectPacket(), connectPacket()] },
    { name: 'remaining length above packetBytesMax (announced, never sent)', rule: 'packetBytesMax', bytes: [connectPacket(), Buffer.concat([Buffer.from([0x30]), varint(10_000_000)])] },
    { name: 'remaining length with a fifth byte', rule: 'MQTT-2.2.3', bytes: [connectPacket(), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])] },
    { name: 'SUBSCRIBE with QoS 3', rule: 'MQTT-3.8.3-4', bytes: [connectPacket(), packet(0x82, Buffer.concat([u16(1), str('a/b'), Buffer.from([3])]))] },
    { name: 'SUBSCRIBE with wrong fixed-header flags', rule: 'MQTT-3.8.1-1', bytes: [connectPacket(), packet(0x80, Buffer.concat([u16(1), str('a/b'), Buffer.from([0])]))] },
    { name: 'SUBSCRIBE filter with # not last', rule: 'MQTT-4.7.1-2', bytes: [connectPacket(), packet(0x82, Buffer.concat([u16(1), str('a/#/b'), Buffer.from([0])]))] },
    { name: 'PUBREL with wrong flags', rule: 'MQTT-3.6.1-1', bytes: [connectPacket(), packet(0x60, u16(5))] },
    { name: 'CONNACK sent by a client', rule: 'MQTT-2.2.1', bytes: [connectPacket(), Buffer.from([0x20, 0x02, 0x00, 0x00])] },
    { name: 'CONNECT with trailing garbage', rule: 'MQTT-3.1.3', bytes: [connectPacket({ tail: [Buffer.from([1, 2, 3])] })] },
  ];

  for (const c of cases) {
    const before = s.logs.length;
    const res = await sendAndWaitClose(s.port, c.bytes);
    t.ok(res.closed, `${c.name}: connection closed`);
    await eventually(() => s.logs.slice(before).some((l) => l.rule === c.rule), 3_000).then(
      () => t.pass(`${c.name}: log names ${c.rule}`),
      () => t.fail(`${c.name}: no log line naming ${c.rule}: ${JSON.stringify(s.logs.slice(before).map((l) => l.msg))}`),
    );
    if (c.storedTopic) t.equal(s.broker.describeTopic(c.storedTopic), undefined, `${c.name}: nothing stored`);
    await good.publishAsync('good/x', String(++goodCount), { qos: 1 });
  }
  t.equal((await readTopic(s.broker, 'good')).length, goodCount, 'the good client kept publishing throughout');
});

t.test('valid packets before the bad one in the same chunk are still handled', async (t) => {
  const s = await openStack(t);
  const res = await sendAndWaitClose(s.port, [Buffer.concat([connectPacket({ clientId: 'mixed' }), publishPacket('mixed/ok', 'first', 1, 7), publishPacket('mixed/+', 'bad', 1, 8)])]);
  t.ok(res.closed);
  t.same(res.received.subarray(0, 4), CONNACK_OK, 'CONNACK 0 first');
  const recs = await eventually(async () => {
    const r = await readTopic(s.broker, 'mixed');
    return r.length === 1 ? r : undefined;
  });
  t.equal(recs![0].value, 'first');
});

t.test('CONNECT refusals: empty client id with clean session false, client id above clientIdBytesMax, keep-alive above keepaliveMaxSeconds, unknown level', async (t) => {
  const s = await openStack(t, { mqtt: { clientIdBytesMax: 32, keepaliveMaxSeconds: 60 } });
  const refused = async (spec: ConnectSpec, rc: number, label: string) => {
    const res = await sendAndWaitClose(s.port, [connectPacket(spec)]);
    t.ok(res.closed, `${label}: closed`);
    t.same([...res.received], [0x20, 0x02, 0x00, rc], `${label}: CONNACK return code ${rc}`);
  };
  await refused({ clientId: '', flags: 0x00 }, 2, 'empty client id, clean session 0 (MQTT-3.1.3-8)');
  await refused({ clientId: 'x'.repeat(33) }, 2, 'client id of 33 bytes');
  await refused({ keepalive: 61 }, 2, 'keep-alive 61 s');
  await refused({ level: 6 }, 1, 'protocol level 6');
  // at the boundary: accepted
  const ok = await sendAndWaitClose(s.port, [connectPacket({ clientId: 'y'.repeat(32), keepalive: 60 })], 300);
  t.same(ok.received.subarray(0, 4), CONNACK_OK, '32-byte client id and keep-alive 60 accepted');
});

t.test('a publish of exactly packetBytesMax is accepted; one byte more closes the connection', async (t) => {
  const s = await openStack(t, { mqtt: { packetBytesMax: 2048 } });
  const topic = 'size/x';
  const fixed = 2 + topic.length + 2; // topic length prefix + topic + packet id
  const atLimit = publishPacket(topic, 'a'.repeat(2048 - fixed), 1, 1);
  const res = await sendAndWaitClose(s.port, [connectPacket({ clientId: 'sz' }), atLimit], 500);
  t.notOk(res.closed, 'still open');
  t.same([...res.received.subarray(4, 8)], [0x40, 0x02, 0x00, 0x01], 'PUBACK for the packet at the limit');
  const over = publishPacket(topic, 'a'.repeat(2049 - fixed), 1, 2);
  const res2 = await sendAndWaitClose(s.port, [connectPacket({ clientId: 'sz2' }), over]);
  t.ok(res2.closed, 'closed above the limit');
  t.equal((await readTopic(s.broker, 'size')).length, 1);
});

t.test('connectionsMax: the connection past the limit gets CONNACK 3 and the others keep working', async (t) => {
  const s = await openStack(t, { mqtt: { connectionsMax: 3 } });
  const clients = await Promise.all([0, 1, 2].map((i) => mqtt.connectAsync(s.url, { clientId: `c${i}` })));
  t.teardown(() => Promise.all(clients.map((c) => c.endAsync(true))));
  const res = await sendAndWaitClose(s.port, [connectPacket({ clientId: 'fourth' })]);
  t.ok(res.closed);
  t.same([...res.received], [0x20, 0x02, 0x00, 0x03], 'CONNACK 3 (server unavailable)');
  await clients[0].publishAsync('conn/x', 'still here', { qos: 1 });
  t.equal((await readTopic(s.broker, 'conn')).length, 1);
  await clients[2].endAsync();
  await eventually(async () => {
    const r = await sendAndWaitClose(s.port, [connectPacket({ clientId: 'fourth-again' })], 300);
    return r.received.subarray(0, 4).equals(CONNACK_OK);
  });
  t.pass('a freed slot is usable again');
});

t.test('over WebSocket too: a bad packet closes only that connection', async (t) => {
  const { default: WebSocket } = await import('ws');
  const s = await openStack(t);
  const ws = new WebSocket(s.wsUrl, 'mqtt');
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.send(connectPacket({ clientId: 'ws-bad' }));
  ws.send(publishPacket('ws/+/x', 'x', 1));
  await closed;
  await eventually(() => s.logs.some((l) => l.rule === 'MQTT-3.3.2-2'));
  t.equal(s.broker.describeTopic('ws'), undefined, 'nothing stored');
  const good = await mqtt.connectAsync(s.wsUrl, { clientId: 'ws-good' });
  await good.publishAsync('ws/ok', 'fine', { qos: 1 });
  t.equal((await readTopic(s.broker, 'ws')).length, 1, 'another WebSocket client is served');
  await good.endAsync(true);
});
