// MQTT state that must survive a broker restart: retained messages, persistent sessions with
// the QoS 1 messages queued while the device was offline, and will messages.
import t from 'tap';
import mqtt from 'mqtt';
import { openStack } from '../unit/mqtt/fixture.js';
import { eventually } from '../helpers/index.js';

function collect(c: mqtt.MqttClient): Array<{ topic: string; payload: string; retain: boolean }> {
  const got: Array<{ topic: string; payload: string; retain: boolean }> = [];
  c.on('message', (topic, p, packet) => got.push({ topic, payload: p.toString(), retain: packet.retain }));
  return got;
}

t.test('a retained message survives a restart and is sent to a new subscriber', async (t) => {
  const s1 = await openStack(t);
  const pub = await mqtt.connectAsync(s1.url, { clientId: 'status-pub' });
  await pub.publishAsync('status/gw1', 'online', { qos: 1, retain: true });
  await pub.publishAsync('status/gw2', 'online', { qos: 1, retain: true });
  await pub.publishAsync('status/gw2', '', { qos: 1, retain: true }); // empty payload clears it (MQTT-3.3.1-10)
  await pub.endAsync(true);
  await s1.close();

  const s2 = await openStack(t, { dataDir: s1.dataDir });
  const sub = await mqtt.connectAsync(s2.url, { clientId: 'status-sub' });
  t.teardown(() => sub.endAsync(true));
  const got = collect(sub);
  await sub.subscribeAsync('status/#', { qos: 1 });
  await eventually(() => got.length >= 1);
  await new Promise((r) => setTimeout(r, 200));
  t.same(got, [{ topic: 'status/gw1', payload: 'online', retain: true }], 'only the retained message still set');
});

t.test('a persistent session gets the messages queued while it was offline, across a restart', async (t) => {
  const s1 = await openStack(t);
  const dev = await mqtt.connectAsync(s1.url, { clientId: 'sleepy', clean: false });
  await dev.subscribeAsync('cmd/sleepy/#', { qos: 1 });
  await dev.endAsync();

  // while it is offline: one command over MQTT, one produced through the broker (Kafka side)
  const queued = () =>
    new Promise<number>((resolve) => {
      let count = 0;
      const st = s1.gateway.persistence.outgoingStream({ id: 'sleepy' });
      st.on('data', () => count++);
      st.on('end', () => resolve(count));
    });
  const pub = await mqtt.connectAsync(s1.url, { clientId: 'cloud' });
  await pub.publishAsync('cmd/sleepy/a', 'one', { qos: 1 });
  t.equal(await queued(), 1, 'queued for the offline session before the PUBACK');
  await pub.endAsync(true);
  await s1.broker.produce('cmd', [{ key: Buffer.from('cmd/sleepy/b'), value: Buffer.from('two') }], { acks: -1 });
  await eventually(async () => (await queued()) === 2);
  await s1.close();

  const s2 = await openStack(t, { dataDir: s1.dataDir });
  const back = mqtt.connect(s2.url, { clientId: 'sleepy', clean: false, reconnectPeriod: 0 });
  t.teardown(() => back.endAsync(true));
  const got = collect(back);
  const connack = await new Promise<mqtt.IConnackPacket>((resolve) => back.once('connect', resolve));
  t.equal(connack.sessionPresent, true, 'session present after restart');
  await eventually(() => got.length === 2);
  t.same(got.map((g) => `${g.topic}=${g.payload}`).sort(), ['cmd/sleepy/a=one', 'cmd/sleepy/b=two']);

  // and a command produced after the restart still reaches it (the subscription was restored)
  await s2.broker.produce('cmd', [{ key: Buffer.from('cmd/sleepy/c'), value: Buffer.from('three') }], { acks: -1 });
  await eventually(() => got.length === 3);
  t.equal(got[2].payload, 'three');
});

t.test('a will message is published when a client drops without DISCONNECT', async (t) => {
  const s = await openStack(t);
  const watcher = await mqtt.connectAsync(s.url, { clientId: 'watcher' });
  t.teardown(() => watcher.endAsync(true));
  const got = collect(watcher);
  await watcher.subscribeAsync('lwt/#', { qos: 1 });
  const dev = await mqtt.connectAsync(s.url, { clientId: 'fragile', will: { topic: 'lwt/fragile', payload: Buffer.from('gone'), qos: 1, retain: false } });
  (dev.stream as unknown as { destroy(): void }).destroy(); // abrupt: no DISCONNECT
  await eventually(() => got.length === 1);
  t.same(got[0], { topic: 'lwt/fragile', payload: 'gone', retain: false });
  dev.end(true);
});

t.test('a clean DISCONNECT discards the will', async (t) => {
  const s = await openStack(t);
  const watcher = await mqtt.connectAsync(s.url, { clientId: 'watcher2' });
  t.teardown(() => watcher.endAsync(true));
  const got = collect(watcher);
  await watcher.subscribeAsync('lwt/#', { qos: 1 });
  const dev = await mqtt.connectAsync(s.url, { clientId: 'polite', will: { topic: 'lwt/polite', payload: Buffer.from('gone'), qos: 1, retain: false } });
  await dev.endAsync();
  await watcher.publishAsync('lwt/marker', 'm', { qos: 1 });
  await eventually(() => got.length === 1);
  t.same(got.map((g) => g.topic), ['lwt/marker']);
});

t.test('the will of a session cut by a restart is published when the broker comes back', async (t) => {
  const s1 = await openStack(t);
  const dev = await mqtt.connectAsync(s1.url, { clientId: 'cut', reconnectPeriod: 0, will: { topic: 'lwt/cut', payload: Buffer.from('lost'), qos: 1, retain: true } });
  t.teardown(() => dev.end(true));
  // simulate a crash of the gateway: drop the client's state without running aedes' close
  // path (which would publish the will now); the will record is in __mqtt_sessions
  await s1.gateway.batcher.close();
  await s1.broker.close();
  const s2 = await openStack(t, { dataDir: s1.dataDir });
  const watcher = await mqtt.connectAsync(s2.url, { clientId: 'w3' });
  t.teardown(() => watcher.endAsync(true));
  const got = collect(watcher);
  await watcher.subscribeAsync('lwt/#', { qos: 1 });
  await eventually(() => got.length === 1);
  t.same(got[0], { topic: 'lwt/cut', payload: 'lost', retain: true }, 'will published (retained) at restart');
});
