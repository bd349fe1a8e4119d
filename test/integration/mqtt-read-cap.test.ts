// mqtt.readBytesMax: how many bytes of a connection's stream one read hands aedes' parser.
// A flood of small publishes is parsed a capped read at a time; packets that span reads
// (one byte of header, a packet larger than the cap, a packet at packetBytesMax) arrive
// whole; one byte above packetBytesMax is still refused; the key is validated at its bound.
// And the pending limits count a waiting publish's heap (RECORD_HEAP_BYTES), not only its bytes.
import t from 'tap';
import { connect as tcpConnect, type Socket } from 'node:net';
import { once } from 'node:events';
import { openStack, readTopic, type Stack } from '../unit/mqtt/fixture.js';
import { eventually } from '../helpers/index.js';
import { resolveMqttOptions } from '../../gateway/mqtt/index.js';
import { RECORD_HEAP_BYTES } from '../../gateway/mqtt/append.js';
import { u16, str, packet } from '../helpers/mqtt-packets.js';

const CAP = 1024;
const connectPacket = (clientId: string) => packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0x02]), u16(30), str(clientId)]));
const publish0 = (topic: string, payload: Buffer | string) => packet(0x30, Buffer.concat([str(topic), Buffer.from(payload)]));
const publish1 = (topic: string, payload: Buffer | string, id: number) => packet(0x32, Buffer.concat([str(topic), u16(id), Buffer.from(payload)]));

type AedesView = { clients: Record<string, { conn: { read(size?: number | null): Buffer | null } } | undefined> };

/** Sizes of every chunk aedes' own `read(null)` calls got from the guard's stream, for one client. */
async function watchReads(s: Stack, clientId: string): Promise<number[]> {
  const sizes: number[] = [];
  await eventually(() => (s.gateway.aedes as unknown as AedesView).clients[clientId] !== undefined);
  const conn = (s.gateway.aedes as unknown as AedesView).clients[clientId]!.conn;
  const read = conn.read.bind(conn);
  conn.read = (size?: number | null) => {
    const chunk = read(size);
    if (chunk) sizes.push(chunk.length);
    return chunk;
  };
  return sizes;
}

async function rawClient(s: Stack, clientId: string): Promise<{ sock: Socket; received: Buffer[] }> {
  const sock = tcpConnect(s.port, '127.0.0.1');
  await once(sock, 'connect');
  const received: Buffer[] = [];
  sock.on('data', (d: Buffer) => received.push(d));
  sock.on('error', () => {}); // a refused connection is reset while bytes are still on their way
  sock.write(connectPacket(clientId));
  await eventually(() => Buffer.concat(received).length >= 4);
  return { sock, received };
}

/** Writes `bytes` in pieces of `step` bytes, each in its own event-loop turn. */
async function dribble(sock: Socket, bytes: Buffer, step: number): Promise<void> {
  for (let i = 0; i < bytes.length; i += step) {
    sock.write(bytes.subarray(i, i + step));
    await new Promise((r) => setImmediate(r));
  }
}

t.test('readBytesMax is validated: below 1024 refused, naming the key', { timeout: 10_000 }, async (t) => {
  t.throws(() => resolveMqttOptions({ readBytesMax: CAP - 1 }), /mqtt\.readBytesMax/);
  t.equal(resolveMqttOptions({ readBytesMax: CAP }).readBytesMax, CAP, 'the bound itself is accepted');
  t.ok(resolveMqttOptions({}).readBytesMax >= 4096, 'the default reads several KiB at once');
});

t.test('a flood of small publishes in one write is handed to aedes a capped read at a time, all stored in order', { timeout: 60_000 }, async (t) => {
  const s = await openStack(t, { mqtt: { readBytesMax: CAP } });
  const { sock } = await rawClient(s, 'flood');
  t.teardown(() => sock.destroy());
  const sizes = await watchReads(s, 'flood');
  const count = 3_000;
  // ~120 B each, no size dividing the cap: reads end inside packets and inside fixed headers
  const all = Buffer.concat(Array.from({ length: count }, (_, i) => publish0('cap/flood', `{"seq":${i},"pad":"${'x'.repeat(80 + (i % 7))}"}`)));
  t.ok(all.length > 300 * 1024, `${all.length} bytes sent in one write`);
  sock.write(all);
  sock.write(publish1('cap/flood', 'end', 1));
  await eventually(async () => (await readTopic(s.broker, 'cap')).length === count + 1, 30_000);
  const stored = await readTopic(s.broker, 'cap');
  t.same(
    stored.slice(0, count).map((r) => (JSON.parse(r.value!) as { seq: number }).seq),
    [...Array(count).keys()],
    'every publish stored once, in order',
  );
  t.ok(sizes.length > 0, `aedes read ${sizes.length} times`);
  t.ok(Math.max(...sizes) <= CAP, `no read above the cap (largest ${Math.max(...sizes)} B)`);
  t.ok(sizes.filter((n) => n === CAP).length > 10, 'the cap is what bounded the reads');
});

t.test('without a low cap the same flood reaches aedes in larger reads (the previous check can fail)', { timeout: 60_000 }, async (t) => {
  const s = await openStack(t, { mqtt: { readBytesMax: 1 << 20 } });
  const { sock } = await rawClient(s, 'uncapped');
  t.teardown(() => sock.destroy());
  const sizes = await watchReads(s, 'uncapped');
  const all = Buffer.concat(Array.from({ length: 3_000 }, (_, i) => publish0('uncap/flood', `{"seq":${i},"pad":"${'x'.repeat(80)}"}`)));
  sock.write(all);
  sock.write(publish1('uncap/flood', 'end', 1));
  await eventually(async () => (await readTopic(s.broker, 'uncap')).length === 3_001, 30_000);
  t.ok(Math.max(...sizes) > CAP, `largest read ${Math.max(...sizes)} B`);
});

t.test('packets larger than the cap, and one at packetBytesMax, arrive whole; one byte more is refused as before', { timeout: 60_000 }, async (t) => {
  const max = 64 * 1024;
  const s = await openStack(t, { mqtt: { readBytesMax: CAP, packetBytesMax: max } });
  const { sock, received } = await rawClient(s, 'big');
  t.teardown(() => sock.destroy());
  const sizes = await watchReads(s, 'big');
  const topic = 'capbig/x';
  const fixed = 2 + topic.length + 2; // topic length prefix + topic + packet id
  // remaining length exactly packetBytesMax; the payload's bytes differ so a misplaced piece shows
  const atMaxPayload = Buffer.from(Array.from({ length: max - fixed }, (_, i) => 97 + ((i * 7 + (i >> 10)) % 26)));
  const mid = Buffer.alloc(CAP * 3 + 17, 0x62);
  const stream = Buffer.concat([publish1(topic, mid, 1), publish1(topic, atMaxPayload, 2), publish0(topic, 'small'), publish1(topic, mid, 3)]);
  // once in one write, once a few bytes at a time (headers split across reads)
  sock.write(stream);
  await eventually(async () => (await readTopic(s.broker, 'capbig')).length === 4, 20_000);
  await dribble(sock, stream, 700);
  await eventually(async () => (await readTopic(s.broker, 'capbig')).length === 8, 20_000);
  const stored = await readTopic(s.broker, 'capbig');
  for (const half of [0, 4]) {
    t.equal(stored[half].value, mid.toString(), `3 KiB packet intact (${half ? 'dribbled' : 'one write'})`);
    t.equal(stored[half + 1].value, atMaxPayload.toString(), 'the packet at packetBytesMax intact');
    t.equal(stored[half + 2].value, 'small');
    t.equal(stored[half + 3].value, mid.toString());
  }
  t.equal(stored.length, 8);
  t.ok(Math.max(...sizes) > CAP, `a packet's missing bytes were read whole (largest read ${Math.max(...sizes)} B)`);
  // 0x40 = PUBACK: ids 1, 2, 3 twice
  const acks = Buffer.concat(received).subarray(4);
  t.equal(acks.length, 6 * 4, 'six PUBACKs');

  // one byte above packetBytesMax: the connection is closed with the rule named, nothing stored
  const over = await rawClient(s, 'big-over');
  const closed = new Promise((resolve) => over.sock.once('close', resolve)); // events.once would reject on the reset
  over.sock.write(publish1(topic, Buffer.concat([atMaxPayload, Buffer.from('z')]), 1));
  await closed;
  await eventually(() => s.logs.some((l) => l.rule === 'packetBytesMax'));
  t.equal((await readTopic(s.broker, 'capbig')).length, 8, 'the oversized publish was not stored');
});

t.test('pendingBytesPerConnectionMax counts each waiting publish its heap, not only its bytes', { timeout: 60_000 }, async (t) => {
  const perConnectionMax = 64 * 1024;
  const s = await openStack(t, { mqtt: { readBytesMax: CAP, pendingBytesPerConnectionMax: perConnectionMax } });
  // the appends wait until released, as behind a slow disk
  const batcher = s.gateway.batcher as unknown as { produce: (...a: unknown[]) => Promise<void>; pendingRecords: number };
  const produce = batcher.produce.bind(batcher);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  batcher.produce = async (...a: unknown[]) => {
    await released;
    return produce(...a);
  };
  t.teardown(() => release());
  const { sock } = await rawClient(s, 'charged');
  t.teardown(() => sock.destroy());
  const count = 2_000;
  // ~20 B on the wire, counted payload + 2 × topic + 96 ≈ 120 B: bytes alone would let ~540 wait
  sock.write(Buffer.concat(Array.from({ length: count }, (_, i) => publish0('charge/x', `{"i":${i}}`))));
  await eventually(() => (s.metrics.get('tributary_mqtt_read_holds_total')?.value({ reason: 'pending' }) ?? 0) > 0, 20_000);
  const waiting = batcher.pendingRecords;
  t.ok(waiting <= perConnectionMax / RECORD_HEAP_BYTES, `held with ${waiting} publishes waiting (the heap charge: ≤ ${Math.floor(perConnectionMax / RECORD_HEAP_BYTES)})`);
  t.ok(waiting >= 10, 'and some were accepted');
  release();
  await eventually(async () => (await readTopic(s.broker, 'charge')).length === count, 30_000);
  t.pass('every publish stored once the appends went on');
});
