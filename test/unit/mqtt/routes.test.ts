// Routes, topic filters and sanitising: pure functions, checked case by case.
import t from 'tap';
import { Router, filterMatches, filtersIntersect, isValidFilter, isValidTopicName, sanitiseTopicName } from '../../../gateway/mqtt/routes.js';
import { filterCovers } from '../../../gateway/mqtt/auth.js';

t.test('sanitising maps every illegal character to _ and keeps names legal', async (t) => {
  t.equal(sanitiseTopicName('sensors'), 'sensors');
  t.equal(sanitiseTopicName('home assistant'), 'home_assistant');
  t.equal(sanitiseTopicName('température'), 'temp_rature');
  t.equal(sanitiseTopicName(''), '_');
  t.equal(sanitiseTopicName('.'), '_');
  t.equal(sanitiseTopicName('..'), '__');
  t.equal(sanitiseTopicName('x'.repeat(300)).length, 249);
});

t.test('filter matching follows MQTT-4.7', async (t) => {
  t.ok(filterMatches('a/+/c', 'a/b/c'));
  t.notOk(filterMatches('a/+/c', 'a/b/d'));
  t.ok(filterMatches('a/#', 'a'), '# matches the parent level');
  t.ok(filterMatches('a/#', 'a/b/c'));
  t.ok(filterMatches('+', 'a'));
  t.notOk(filterMatches('+', 'a/b'));
  t.notOk(filterMatches('#', '$SYS/x'), 'MQTT-4.7.2-1');
  t.ok(filterMatches('a//b', 'a//b'), 'empty levels');
  t.ok(filtersIntersect('a/+', 'a/b'));
  t.ok(filtersIntersect('+/b', 'a/#'));
  t.notOk(filtersIntersect('a/b', 'a/c'));
  t.notOk(filtersIntersect('a/b', 'a/b/c'));
  t.ok(isValidFilter('a/+/#'));
  t.notOk(isValidFilter('a/#/b'));
  t.notOk(isValidFilter('a/b+'));
  t.ok(isValidTopicName('a/b'));
  t.notOk(isValidTopicName('a/+'));
  t.notOk(isValidTopicName('a\u0000'));
  t.notOk(isValidTopicName('a\ud800'), 'lone surrogate');
  t.ok(isValidTopicName('a\ud83d\ude00'), 'surrogate pair');
});

t.test('ACL coverage: a subscription must lie inside the rule', async (t) => {
  t.ok(filterCovers('cmd/#', 'cmd/a/b'));
  t.ok(filterCovers('cmd/+/x', 'cmd/+/x'));
  t.notOk(filterCovers('cmd/+/x', 'cmd/#'));
  t.notOk(filterCovers('cmd/a', 'cmd/+'));
  t.ok(filterCovers('#', '#'));
});

t.test('router: first match wins, templates, default route, reserved topics, reverse', async (t) => {
  const r = new Router(
    [
      { match: 'site/+/alarm/#', topic: 'alarms', key: '{2}', partition: 1 },
      { match: 'site/#', topic: 'site-{2}' },
      { match: 'internal/#', topic: '{1}' },
    ],
    true,
    [{ topic: 'cmds', mqttTopic: 'dev/{key}/cmd' }],
  );
  t.same(r.forward('site/b1/alarm/fire', 'c'), { topic: 'alarms', key: 'b1', partition: 1 });
  t.same(r.forward('site/b 1/temp', 'c'), { topic: 'site-b_1', key: 'site/b 1/temp', partition: undefined });
  t.same(r.forward('sensors/x', 'c'), { topic: 'sensors', key: 'sensors/x' });
  t.equal(r.forward('__mqtt_retained/x', 'c'), undefined, 'an internal topic is never a target');
  t.same(r.streamTopicsFor('site/b1/alarm/+'), 'all', 'a templated route could feed any topic');
  t.same([...(r.streamTopicsFor('sensors/#') as Set<string>)].sort(), ['cmds', 'sensors']);
  t.equal(r.streamTopicsFor('#'), 'all');
  t.equal(r.reverse('cmds', 0, Buffer.from('d1'), undefined), 'dev/d1/cmd');
  t.equal(r.reverse('other', 0, Buffer.from('a/b'), undefined), 'a/b', 'default: the key');
  t.equal(r.reverse('other', 0, Buffer.from('x'), 'h/t'), 'h/t', 'the mqtt.topic header wins over the key');
  t.equal(r.reverse('other', 0, Buffer.from('a/+'), undefined), undefined, 'a key that is no topic name is not delivered');
  t.equal(r.reverse('other', 0, null, undefined), undefined);
  t.throws(() => new Router([{ match: 'a/#/b', topic: 'x' }], true), /not a valid MQTT topic filter/);
  t.throws(() => new Router([{ match: 'a', topic: '{foo}' }], true), /unknown placeholder/);
  t.throws(() => new Router([{ match: 'a', topic: '__mqtt_sessions' }], true), /internal topic/);
  const noDefault = new Router([], false);
  t.equal(noDefault.forward('a/b', 'c'), undefined);
});
