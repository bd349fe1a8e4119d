// Purpose: key filters follow MQTT wildcard rules (+ one level, # the rest including the parent) and reject malformed filters.
import t from 'tap';
import { compileKeyFilter } from '../../../gateway/ws/filter.js';
import { BrokerError } from '../../../host/errors/index.js';

t.test('key filter: exact filter matches only that key', async (t) => {
  const m = compileKeyFilter('sensors/1/temp');
  t.ok(m('sensors/1/temp'));
  t.notOk(m('sensors/1/temp/x'));
  t.notOk(m('sensors/2/temp'));
  t.notOk(m(null));
});

t.test('key filter: + matches exactly one level, empty levels included', async (t) => {
  const m = compileKeyFilter('sensors/+/temp');
  t.ok(m('sensors/1/temp'));
  t.ok(m('sensors//temp'), 'an empty level is a level');
  t.notOk(m('sensors/1/2/temp'));
  t.notOk(m('sensors/temp'));
});

t.test('key filter: # matches the parent and everything below', async (t) => {
  const m = compileKeyFilter('sensors/#');
  t.ok(m('sensors'));
  t.ok(m('sensors/1'));
  t.ok(m('sensors/1/temp'));
  t.notOk(m('actuators/1'));
  t.notOk(m(null));
  t.ok(compileKeyFilter('#')(null), '# alone matches records without a key');
  t.ok(compileKeyFilter('#')('anything/at/all'));
});

t.test('key filter: malformed filters are refused with INVALID_REQUEST naming the rule', async (t) => {
  for (const bad of ['a/#/b', 'a/b#', 'a+/b', '', 'x'.repeat(1025)]) {
    const err = t.throws(() => compileKeyFilter(bad)) as unknown as BrokerError;
    t.equal(err.code, 'INVALID_REQUEST', bad.slice(0, 20));
  }
});
