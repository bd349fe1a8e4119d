// Purpose: a record of the MQTT gateway's own state topics (`__mqtt_retained`,
// `__mqtt_sessions`, `__mqtt_outgoing`) that does not decode never keeps the gateway down
// (issue 14, finding 6, for the MQTT tables): it is skipped, logged with its topic and offset,
// and counted in tributary_table_skipped_records_total{topic}, and every good record around it
// is restored. Damaged batches (CRC) are skipped by the broker's read of internal topics; this
// covers records whose batch is sound but whose contents are not (a bug of an older version,
// bytes written by hand). Real MQTT clients check what was restored.
import t from 'tap';
import mqtt from 'mqtt';
import { openStack } from '../unit/mqtt/fixture.js';
import { eventually } from '../helpers/index.js';

const enc = (s: string) => Buffer.from(s, 'utf8');

t.test('undecodable state records are skipped, logged and counted; the rest is restored', async (t) => {
  const first = await openStack(t);
  const dataDir = first.dataDir;
  // Good state made by real clients: a retained message and a persistent session with a queued message.
  const pub = await mqtt.connectAsync(first.url, { clientId: 'pub', reconnectPeriod: 0 });
  await pub.publishAsync('room/temp', '21.5', { qos: 1, retain: true });
  const sub = await mqtt.connectAsync(first.url, { clientId: 'keeper', clean: false, reconnectPeriod: 0 });
  await sub.subscribeAsync('alerts/#', { qos: 1 });
  await sub.endAsync();
  await pub.publishAsync('alerts/door', 'open', { qos: 1 });
  await pub.endAsync();
  // Bad records, appended as the gateway itself would (internal writer), between good ones.
  const bad = async (topic: string, key: string, value: string | null, headers: Array<{ key: string; value: Uint8Array }> = []) =>
    first.broker.produce(topic, [{ key: enc(key), value: value === null ? null : enc(value), headers }], { acks: -1, partition: 0, internal: true });
  await bad('__mqtt_sessions', 's\u0000broken-json', '[{"topic": "a/#", "qos": 1');
  await bad('__mqtt_sessions', 's\u0000not-a-list', '{"topic": "a/#"}');
  await bad('__mqtt_sessions', 'w\u0000no-meta', 'will payload');
  await bad('__mqtt_sessions', 'x\u0000unknown-kind', 'whatever');
  await bad('__mqtt_outgoing', 'keeper\u0000b1\u00007', 'queued', [{ key: 'msg', value: enc('{not json') }]);
  await bad('__mqtt_outgoing', 'no-separators', 'queued', [{ key: 'msg', value: enc(JSON.stringify({ topic: 'alerts/x', qos: 1, retain: false })) }]);
  await bad('__mqtt_retained', 'room/bad', 'x', [{ key: 'props', value: enc('{oops') }]);
  await bad('__mqtt_retained', 'room/qos9', 'x', [{ key: 'qos', value: enc('9') }]);
  await first.close();

  const logs: Array<Record<string, unknown>> = [];
  const second = await openStack(t, { dataDir, logs });
  const skipped = (topic: string) => Number(new RegExp(`^tributary_table_skipped_records_total\\{topic="${topic}"\\} (\\d+)$`, 'm').exec(second.metrics.render())?.[1] ?? 0);
  t.equal(skipped('__mqtt_sessions'), 4, 'four session records skipped');
  t.equal(skipped('__mqtt_outgoing'), 2, 'two queued-message records skipped');
  t.equal(skipped('__mqtt_retained'), 2, 'two retained records skipped');
  const warned = logs.filter((l) => l.msg === 'mqtt: skipping a state record that does not decode');
  t.equal(warned.length, 8, 'each skipped record logged');
  t.ok(warned.every((l) => typeof l.topic === 'string' && typeof l.offset === 'number' && typeof l.err === 'string'), 'with its topic, offset and reason');

  // The good state is all there.
  const reader = await mqtt.connectAsync(second.url, { clientId: 'reader', reconnectPeriod: 0 });
  const retained: string[] = [];
  reader.on('message', (topic, payload) => retained.push(`${topic}=${payload}`));
  await reader.subscribeAsync('room/#', { qos: 1 });
  await eventually(() => retained.length >= 1);
  t.same(retained, ['room/temp=21.5'], 'the good retained message is restored, the bad ones are not');
  await reader.endAsync();
  const got: string[] = [];
  const keeper = mqtt.connect(second.url, { clientId: 'keeper', clean: false, reconnectPeriod: 0 });
  keeper.on('message', (topic, payload) => got.push(`${topic}=${payload}`));
  await eventually(() => got.length >= 1);
  t.same(got, ['alerts/door=open'], 'the queued message of the good session is delivered');
  await keeper.endAsync();
});
