// Every MQTT limit at its boundary: publish rate, in-flight publishes, pending bytes under a
// QoS 0 flood (memory stays flat), a subscriber that never reads, keep-alive, retained and
// offline-queue bounds, persistent sessions, and authentication with per-topic ACLs.
import t from 'tap';
import { connect as tcpConnect } from 'node:net';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import mqtt from 'mqtt';
import { openStack, readTopic } from '../unit/mqtt/fixture.js';
import { eventually, sleep } from '../helpers/index.js';
import { hashPasswordSync } from '../../gateway/mqtt/index.js';
import { u16, str, packet } from '../helpers/mqtt-packets.js';

type AedesView = { clients: Record<string, { conn: { writableLength: number }; subscriptions: Record<string, unknown> } | undefined> };
const clientsOf = (s: { gateway: { aedes: unknown } }) => (s.gateway.aedes as AedesView).clients;
const connectPacket = (clientId: string, keepalive = 30, will?: { topic: string; payload: string }) =>
  packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, will ? 0x02 | 0x04 | 0x08 : 0x02]), u16(keepalive), str(clientId), ...(will ? [str(will.topic), str(will.payload)] : [])]));

t.test('publishRatePerSecond: a burst passes at once, the rest is paced to the rate', async (t) => {
  const s = await openStack(t, { mqtt: { publishRatePerSecond: 20, publishBurst: 5 } });
  const c = await mqtt.connectAsync(s.url, { clientId: 'rated' });
  t.teardown(() => c.endAsync(true));
  let start = Date.now();
  await Promise.all(Array.from({ length: 5 }, (_, i) => c.publishAsync('rate/x', String(i), { qos: 1 })));
  t.ok(Date.now() - start < 400, `the burst of 5 took ${Date.now() - start} ms`);
  await sleep(300); // refill ~5 tokens
  start = Date.now();
  await Promise.all(Array.from({ length: 25 }, (_, i) => c.publishAsync('rate/x', String(i), { qos: 1 })));
  const tookMs = Date.now() - start;
  // 25 publishes, ~5 tokens in the bucket, 20 more at 20/s → about 1 s
  t.ok(tookMs >= 850, `25 publishes at 20/s took ${tookMs} ms`);
  t.ok(tookMs < 4000, 'and were not stalled');
  t.equal((await readTopic(s.broker, 'rate')).length, 30, 'every publish stored: delayed, not dropped');
  t.ok(s.metrics.get('tributary_mqtt_read_holds_total')!.value({ reason: 'rate' }) > 0, 'the socket was held');
});

t.test('inflightMax: no more than N QoS 1 publishes of one connection await their append', async (t) => {
  const s = await openStack(t, { mqtt: { inflightMax: 2 } });
  let maxInflight = 0;
  // the batcher sees every record; count those of this connection awaiting their append
  const origAppend = s.gateway.batcher.append.bind(s.gateway.batcher);
  let inflight = 0;
  s.gateway.batcher.append = (topic, partition, record, bytes, durable, cb) => {
    if (topic === 'infl') {
      inflight++;
      maxInflight = Math.max(maxInflight, inflight);
    }
    origAppend(topic, partition, record, bytes, durable, (err) => {
      if (topic === 'infl') inflight--;
      cb(err);
    });
  };
  const c = await mqtt.connectAsync(s.url, { clientId: 'infl' });
  t.teardown(() => c.endAsync(true));
  await Promise.all(Array.from({ length: 20 }, (_, i) => c.publishAsync('infl/x', String(i), { qos: 1 })));
  t.ok(maxInflight <= 2, `at most 2 in flight (saw ${maxInflight})`);
  t.equal(maxInflight, 2, 'and the window was used');
  t.same((await readTopic(s.broker, 'infl')).map((r) => Number(r.value)), [...Array(20).keys()], 'all stored, in order');
});

t.test('a QoS 0 flood is held at the socket: pending bytes stay bounded and memory flat', async (t) => {
  const totalMax = 256 * 1024;
  const s = await openStack(t, { mqtt: { pendingBytesPerConnectionMax: 64 * 1024, pendingBytesTotalMax: totalMax } });
  const payload = Buffer.alloc(1000, 0x61);
  const pub = Buffer.concat([str('flood/x'), payload]);
  const one = packet(0x30, pub);
  const chunk = Buffer.concat(Array.from({ length: 256 }, () => one)); // ~256 KB per write
  let maxPending = 0;
  // live memory (after a full GC) at 1 s and at 3 s of flood
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const live = () => {
    gc();
    return process.memoryUsage();
  };
  const before = live();
  let heapAt1s = 0;
  let externalPeak = 0;
  const timers = [1_000, 1_500, 2_000, 2_500].map((ms) =>
    setTimeout(() => {
      const m = live();
      if (ms === 1_000) heapAt1s = m.heapUsed;
      externalPeak = Math.max(externalPeak, m.external);
    }, ms),
  );
  t.teardown(() => timers.forEach(clearTimeout));
  const sampler = setInterval(() => (maxPending = Math.max(maxPending, s.gateway.batcher.pendingBytes)), 1);
  const floods = await Promise.all(
    [0, 1, 2, 3].map(
      (i) =>
        new Promise<{ written: number; close: () => void }>((resolve) => {
          const sock = tcpConnect(s.port, '127.0.0.1', () => {
            sock.write(connectPacket(`flood-${i}`));
            let written = 0;
            const deadline = Date.now() + 3_000;
            const pump = () => {
              while (Date.now() < deadline) {
                written += chunk.length;
                if (!sock.write(chunk)) return void sock.once('drain', pump);
              }
              resolve({ written, close: () => sock.destroy() });
            };
            pump();
          });
          sock.on('error', () => undefined);
        }),
    ),
  );
  clearInterval(sampler);
  const end = live();
  const heapGrowthMiB = (end.heapUsed - heapAt1s) / 1048576;
  const externalMiB = (Math.max(externalPeak, end.external) - before.external) / 1048576;
  for (const f of floods) f.close();
  const writtenMiB = floods.reduce((a, f) => a + f.written, 0) / 1048576;
  t.ok(maxPending <= totalMax + 4 * 300 * 1024, `pending bytes peaked at ${maxPending} (bound ${totalMax} + one chunk per connection)`);
  // flat: from the first second to the third the flood keeps coming, memory does not follow
  t.ok(heapGrowthMiB < 8, `live heap grew ${heapGrowthMiB.toFixed(1)} MiB between 1 s and 3 s while clients pushed ${writtenMiB.toFixed(0)} MiB in all`);
  t.ok(externalMiB < 64, `buffers in flight peaked ${externalMiB.toFixed(1)} MiB above the start (bounded, not growing with the flood)`);
  const holds = s.metrics.get('tributary_mqtt_read_holds_total')!;
  t.ok(holds.value({ reason: 'pending' }) + holds.value({ reason: 'total' }) > 0, 'sockets were held');
});

t.test('deliveriesQueuedMax: publishes wait at the socket while aedes\' delivery queue is full, none lost', async (t) => {
  const max = 50;
  const s = await openStack(t, { mqtt: { deliveriesQueuedMax: max } });
  const sub = await mqtt.connectAsync(s.url, { clientId: 'dq-sub' });
  t.teardown(() => sub.endAsync(true));
  let got = 0;
  sub.on('message', () => got++);
  await sub.subscribeAsync('dq/#', { qos: 0 });
  // every emit of aedes' mqemitter: how many messages were parked in its queue
  const mq = (s.gateway.aedes as unknown as { mq: { length: number; emit: (...a: unknown[]) => unknown } }).mq;
  const emit = mq.emit.bind(mq);
  let maxQueued = 0;
  mq.emit = (...a: unknown[]) => {
    const r = emit(...a);
    maxQueued = Math.max(maxQueued, mq.length);
    return r;
  };
  const one = packet(0x30, Buffer.concat([str('dq/x'), Buffer.alloc(20, 0x61)]));
  const perChunk = 300;
  const chunk = Buffer.concat(Array.from({ length: perChunk }, () => one));
  [0, 1, 2, 3].forEach((i) => {
    const sock = tcpConnect(s.port, '127.0.0.1', () => {
      sock.write(connectPacket(`dq-${i}`));
      // three socket reads' worth each, written at once: 3,600 publishes in all
      for (let k = 0; k < 3; k++) sock.write(chunk);
    });
    sock.on('error', () => undefined);
    t.teardown(() => sock.destroy());
  });
  await eventually(() => got === 4 * 3 * perChunk, 20_000);
  t.equal(got, 4 * 3 * perChunk, 'every publish delivered');
  // the guard looks again every 64 publishes it hands over: the bound plus one slice per connection
  t.ok(maxQueued <= max + 4 * 64, `aedes' delivery queue peaked at ${maxQueued} (bound ${max} + one slice of 64 per connection; ${4 * 3 * perChunk} publishes sent)`);
  t.ok(s.metrics.get('tributary_mqtt_read_holds_total')!.value({ reason: 'deliveries' }) > 0, 'connections were held for it, counted');
});

t.test('deliveryBytesQueuedMax: QoS 0 to a subscriber that stopped reading is dropped past the bound and counted; publishers are not stalled', async (t) => {
  const bound = 16 * 1024;
  const s = await openStack(t, { mqtt: { deliveryBytesQueuedMax: bound, drainTimeoutMs: 60_000 } });
  const sub = await mqtt.connectAsync(s.url, { clientId: 'sq-sub', keepalive: 0 });
  t.teardown(() => sub.endAsync(true));
  let got = 0;
  sub.on('message', () => got++);
  await sub.subscribeAsync('sq/#', { qos: 0 });
  const stream = (sub as unknown as { stream: { pause(): void; resume(): void } }).stream;
  stream.pause(); // reads nothing until resumed
  const pub = await mqtt.connectAsync(s.url, { clientId: 'sq-pub' });
  t.teardown(() => pub.endAsync(true));
  const big = Buffer.alloc(4 * 1024, 0x63);
  const sent = 1_000; // 4 MiB: more than the kernel's loopback buffers hold
  let maxQueued = 0;
  for (let i = 0; i < sent; i++) {
    await pub.publishAsync('sq/x', big, { qos: 0 });
    maxQueued = Math.max(maxQueued, clientsOf(s)['sq-sub']?.conn.writableLength ?? 0);
  }
  const start = Date.now();
  await pub.publishAsync('other/x', 'fast', { qos: 1 });
  t.ok(Date.now() - start < 5_000, `a QoS 1 publish elsewhere is acknowledged in ${Date.now() - start} ms`);
  const dropped = s.metrics.get('tributary_mqtt_deliveries_dropped_total')!.value({ reason: 'slow-client-qos0' });
  t.ok(dropped > 0, `${dropped} QoS 0 deliveries dropped, counted`);
  // the check runs before aedes' write of the same turn: the bound plus one turn's deliveries
  t.ok(maxQueued <= bound + 64 * big.length, `at most ${maxQueued} bytes waited toward the subscriber (bound ${bound})`);
  stream.resume();
  await eventually(() => got + dropped >= sent, 15_000).catch(() => undefined);
  t.equal(got + dropped, sent, `received ${got} + dropped ${dropped} = sent ${sent}: nothing lost uncounted`);
  t.ok(clientsOf(s)['sq-sub'], 'the subscriber stays connected (paused, not dropped, within drainTimeoutMs)');
});

t.test('a subscriber that never reads: bounded buffer toward it, dropped after drainTimeoutMs; publishers go on', async (t) => {
  const s = await openStack(t, { mqtt: { drainTimeoutMs: 500 } });
  const slow = tcpConnect(s.port, '127.0.0.1');
  slow.on('error', () => undefined);
  t.teardown(() => slow.destroy());
  slow.write(connectPacket('slow'));
  slow.write(packet(0x82, Buffer.concat([u16(1), str('big/#'), Buffer.from([0])])));
  await eventually(() => clientsOf(s).slow?.subscriptions['big/#']);
  slow.pause(); // never reads again (a paused socket also never sees the server's FIN)
  const pub = await mqtt.connectAsync(s.url, { clientId: 'fast' });
  t.teardown(() => pub.endAsync(true));
  const big = Buffer.alloc(64 * 1024, 0x62);
  let maxBuffered = 0;
  const deadline = Date.now() + 20_000;
  let sent = 0;
  while (clientsOf(s).slow && Date.now() < deadline) {
    await pub.publishAsync('big/x', big, { qos: 0 });
    sent++;
    maxBuffered = Math.max(maxBuffered, clientsOf(s).slow?.conn.writableLength ?? 0);
  }
  t.notOk(clientsOf(s).slow, `the slow subscriber was dropped (after ${sent} messages of 64 KiB filled the kernel buffers)`);
  t.ok(maxBuffered <= 16 * big.length, `the broker buffered at most ${maxBuffered} bytes toward it (${sent} messages sent)`);
  await pub.publishAsync('big/done', 'ok', { qos: 1 });
  t.equal((await readTopic(s.broker, 'big')).at(-1)?.value, 'ok', 'publisher still served');
});

t.test('keep-alive: a silent client is closed after 1.5 × its interval and its will is published', async (t) => {
  const s = await openStack(t);
  const watcher = await mqtt.connectAsync(s.url, { clientId: 'ka-watch' });
  t.teardown(() => watcher.endAsync(true));
  const wills: string[] = [];
  watcher.on('message', (topic) => wills.push(topic));
  await watcher.subscribeAsync('ka/#', { qos: 1 });
  const sock = tcpConnect(s.port, '127.0.0.1');
  sock.on('error', () => undefined);
  sock.resume(); // a paused socket never sees the server's FIN
  sock.write(connectPacket('silent', 1, { topic: 'ka/silent', payload: 'timeout' }));
  const start = Date.now();
  await new Promise<void>((resolve) => sock.once('close', () => resolve()));
  const ms = Date.now() - start;
  t.ok(ms >= 1_400 && ms < 4_000, `closed after ${ms} ms (keep-alive 1 s)`);
  await eventually(() => wills.includes('ka/silent'));
  t.pass('will published');
});

t.test('retainedMessagesMax and offlineMessagesPerClientMax at their boundary', async (t) => {
  const s = await openStack(t, { mqtt: { retainedMessagesMax: 2, offlineMessagesPerClientMax: 3 } });
  const pub = await mqtt.connectAsync(s.url, { clientId: 'bounds-pub' });
  t.teardown(() => pub.endAsync(true));
  for (const k of ['a', 'b', 'c']) await pub.publishAsync(`ret/${k}`, k, { qos: 1, retain: true });
  await pub.publishAsync('ret/a', 'a2', { qos: 1, retain: true }); // replacing one is always allowed
  const sub = await mqtt.connectAsync(s.url, { clientId: 'bounds-sub' });
  const got: string[] = [];
  sub.on('message', (_t, p) => got.push(p.toString()));
  await sub.subscribeAsync('ret/#', { qos: 1 });
  await eventually(() => got.length === 2);
  await sleep(200);
  t.same(got.sort(), ['a2', 'b'], 'two retained kept, the third refused');
  t.ok(s.logs.some((l) => String(l.msg).includes('retainedMessagesMax')), 'logged');
  await sub.endAsync(true);

  const dev = await mqtt.connectAsync(s.url, { clientId: 'offline-dev', clean: false });
  await dev.subscribeAsync('q/#', { qos: 1 });
  await dev.endAsync();
  for (let i = 0; i < 5; i++) await pub.publishAsync('q/x', String(i), { qos: 1 });
  const back = mqtt.connect(s.url, { clientId: 'offline-dev', clean: false });
  t.teardown(() => back.endAsync(true));
  const queued: string[] = [];
  back.on('message', (_t, p) => queued.push(p.toString()));
  await eventually(() => queued.length === 3);
  await sleep(200);
  t.same(queued, ['0', '1', '2'], 'three queued, later ones not (they stay in the stream topic)');
  t.equal((await readTopic(s.broker, 'q')).length, 5);
});

t.test('persistentSessionsMax: a session past the limit is refused, clean sessions unaffected', async (t) => {
  const s = await openStack(t, { mqtt: { persistentSessionsMax: 1 } });
  const a = await mqtt.connectAsync(s.url, { clientId: 'p1', clean: false });
  t.teardown(() => a.endAsync(true));
  await a.subscribeAsync('p/#', { qos: 1 });
  const b = await mqtt.connectAsync(s.url, { clientId: 'p2', clean: false, reconnectPeriod: 0 });
  const closed = new Promise<void>((resolve) => b.once('close', () => resolve()));
  b.subscribe('p/#', { qos: 1 });
  await closed;
  t.pass('second persistent session closed when it tried to store its subscription');
  b.end(true);
  const c = await mqtt.connectAsync(s.url, { clientId: 'p3', clean: true });
  await c.subscribeAsync('p/#', { qos: 1 });
  await c.endAsync(true);
  t.pass('clean sessions unaffected');
});

t.test('auth: scrypt-hashed passwords and per-topic ACLs with {clientId}', async (t) => {
  const s = await openStack(t, {
    mqtt: {
      auth: {
        enabled: true,
        users: [{ username: 'sensor', passwordHash: hashPasswordSync('s3cret', { N: 1024, r: 8, p: 1 }), publish: ['telemetry/{clientId}/#'], subscribe: ['cmd/{clientId}/+'] }],
      },
    },
  });
  const wrong = await mqtt.connectAsync(s.url, { clientId: 'dev1', username: 'sensor', password: 'nope', reconnectPeriod: 0 }).then(
    () => undefined,
    (e: Error & { code?: number }) => e,
  );
  t.equal(wrong?.code, 5, 'wrong password: CONNACK 5 (not authorised), as Mosquitto 2.0 answers a 3.1.1 client');
  const anon = await mqtt.connectAsync(s.url, { clientId: 'dev1', reconnectPeriod: 0 }).then(
    () => undefined,
    (e: Error & { code?: number }) => e,
  );
  t.equal(anon?.code, 5, 'no credentials: CONNACK 5 (not authorised), as Mosquitto 2.0');

  const dev = await mqtt.connectAsync(s.url, { clientId: 'dev1', username: 'sensor', password: 's3cret', reconnectPeriod: 0 });
  await dev.publishAsync('telemetry/dev1/temp', '20', { qos: 1 });
  t.equal((await readTopic(s.broker, 'telemetry')).length, 1, 'allowed publish stored');
  // mqtt.js rejects a SUBACK carrying 0x80 and attaches the packet
  const suback = await dev.subscribeAsync({ 'cmd/dev1/+': { qos: 1 }, 'cmd/#': { qos: 1 } }).then(
    () => undefined,
    (e: { packet?: { granted?: number[] } }) => e.packet,
  );
  t.same(suback?.granted, [1, 128], 'subscription inside the ACL granted, wider one refused (0x80)');
  const closed = new Promise<void>((resolve) => dev.once('close', () => resolve()));
  dev.publish('telemetry/dev2/temp', 'spoof', { qos: 1 });
  await closed;
  t.equal((await readTopic(s.broker, 'telemetry')).length, 1, 'publish outside the ACL not stored, connection closed');
  dev.end(true);
});
