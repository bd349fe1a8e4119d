// Internal topics (`__consumer_offsets`, `__mqtt_*`) take writes only from the broker's own
// components: a client that tries is refused with INVALID_TOPIC_EXCEPTION (Kafka's answer), so
// it cannot forge committed offsets or MQTT sessions, and no internal topic is auto-created.
import t from 'tap';
import { encodeBatch } from '../../../host/core/index.js';
import { openBroker, bytes } from './broker-fixture.js';

t.test('broker: clients cannot append or produce to internal topics', async (t) => {
  const { broker } = await openBroker(t);
  await broker.createTopic('__consumer_offsets', 1, { 'cleanup.policy': 'compact' });
  const batch = encodeBatch([{ key: bytes('k'), value: bytes('forged') }]);

  await t.rejects(broker.append({ topic: '__consumer_offsets', partition: 0 }, batch, { acks: -1 }), { name: 'BrokerError', code: 'INVALID_TOPIC_EXCEPTION', message: /internal to the broker/ });
  await t.rejects(broker.produce('__consumer_offsets', [{ key: bytes('k'), value: bytes('forged') }], { acks: 1 }), { code: 'INVALID_TOPIC_EXCEPTION' });
  t.equal(broker.offsets({ topic: '__consumer_offsets', partition: 0 }).logEndOffset, 0, 'nothing was written');

  await t.rejects(broker.produce('__invented', [{ key: null, value: bytes('x') }], { acks: 1 }), { code: 'INVALID_TOPIC_EXCEPTION' });
  t.equal(broker.describeTopic('__invented'), undefined, 'a client write does not auto-create an internal topic');
});

t.test('broker: the broker\'s own components write internal topics with internal: true', async (t) => {
  const { broker } = await openBroker(t);
  const out = await broker.produce('__mqtt_sessions', [{ key: bytes('client-1'), value: bytes('{}') }], { acks: -1, internal: true });
  t.equal(out[0].offset, 0);
  const batch = encodeBatch([{ key: bytes('k'), value: bytes('v') }]);
  const r = await broker.append({ topic: '__mqtt_sessions', partition: 0 }, batch, { acks: -1, internal: true });
  t.equal(r.baseOffset, 1);
  t.ok(broker.describeTopic('__mqtt_sessions')?.internal, 'marked internal');
});

t.test('broker: ordinary topics are unaffected by the internal flag rule', async (t) => {
  const { broker } = await openBroker(t);
  const out = await broker.produce('_single_underscore', [{ key: null, value: bytes('ok') }], { acks: 1 });
  t.equal(out[0].offset, 0, 'one leading underscore is an ordinary topic');
});
