// Purpose: topic names follow Kafka's rule and a bad one is refused with a message naming the problem.
import t from 'tap';
import { assertTopicName, topicNameProblem, isInternalTopic, TOPIC_NAME_LENGTH_MAX } from '../../../host/broker/topic-name.js';
import { BrokerError } from '../../../host/errors/index.js';

t.test('topic name: legal names pass', async (t) => {
  for (const name of ['a', 'sensors', 'Sensors.Temp_1-x', '__consumer_offsets', 'a'.repeat(TOPIC_NAME_LENGTH_MAX), '...', '-']) {
    t.equal(topicNameProblem(name), undefined, name.slice(0, 20));
  }
});

t.test('topic name: illegal names are refused with INVALID_TOPIC_EXCEPTION naming why', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['', /empty/],
    ['.', /cannot be "\."/],
    ['..', /cannot be "\.\."/],
    ['a'.repeat(TOPIC_NAME_LENGTH_MAX + 1), /250 characters/],
    ['sensors/kitchen', /"\/"/],
    ['with space', /" "/],
    ['tab\there', /"\\t"/],
    ['ünïcode', /allowed are/],
    [42, /string/],
  ];
  for (const [name, why] of cases) {
    let caught: unknown;
    try {
      assertTopicName(name);
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof BrokerError, String(name).slice(0, 20));
    t.equal((caught as BrokerError).code, 'INVALID_TOPIC_EXCEPTION');
    t.match((caught as BrokerError).message, why);
  }
});

t.test('topic name: "__" marks internal topics', async (t) => {
  t.ok(isInternalTopic('__consumer_offsets'));
  t.notOk(isInternalTopic('_single'));
  t.notOk(isInternalTopic('sensors'));
});
