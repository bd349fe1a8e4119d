// The __consumer_offsets record layouts: round trips, Kafka's byte layout for a known record,
// refusal of truncated or unknown records, and the group → partition hash (Java's hashCode).
import t from 'tap';
import {
  decodeGroupValue,
  decodeKey,
  decodeOffsetValue,
  encodeGroupKey,
  encodeGroupValue,
  encodeOffsetKey,
  encodeOffsetValue,
  javaStringHash,
  partitionForGroup,
} from '../../../host/broker/groups/records.js';

t.test('offset key and value: Kafka layout, round trip', async (t) => {
  const key = encodeOffsetKey('g', 'ab', 7);
  t.same([...key], [0, 1, 0, 1, 0x67, 0, 2, 0x61, 0x62, 0, 0, 0, 7], 'int16 version 1, string group, string topic, int32 partition');
  t.same(decodeKey(key), { kind: 'offset', group: 'g', topic: 'ab', partition: 7 });
  const value = { offset: 2 ** 40 + 5, leaderEpoch: 3, metadata: 'µ', commitTimestampMs: 1_700_000_000_000 };
  const bytes = encodeOffsetValue(value);
  t.equal(bytes[1], 3, 'value version 3');
  t.same(decodeOffsetValue(bytes), value);
});

t.test('group key and value round trip, nullable fields and bytes kept', async (t) => {
  t.same(decodeKey(encodeGroupKey('grüppe')), { kind: 'group', group: 'grüppe' });
  const value = {
    protocolType: 'consumer',
    generationId: 12,
    protocolName: 'range',
    leaderId: 'm-1',
    stateTimestampMs: 123456789,
    members: [
      { memberId: 'm-1', groupInstanceId: null, clientId: 'c', clientHost: '/10.0.0.1', rebalanceTimeoutMs: 300000, sessionTimeoutMs: 45000, subscription: new Uint8Array([1, 2]), assignment: new Uint8Array([]) },
      { memberId: 'm-2', groupInstanceId: 'pi-1', clientId: '', clientHost: '', rebalanceTimeoutMs: 1, sessionTimeoutMs: 2, subscription: new Uint8Array([]), assignment: new Uint8Array([9]) },
    ],
  };
  t.same(decodeGroupValue(encodeGroupValue(value)), value);
  const empty = { ...value, protocolName: null, leaderId: null, members: [] };
  t.same(decodeGroupValue(encodeGroupValue(empty)), empty);
});

t.test('truncated, trailing or unknown records are refused, not guessed', async (t) => {
  const key = encodeOffsetKey('g', 't', 0);
  t.throws(() => decodeKey(key.subarray(0, key.length - 1)), /truncated/);
  t.throws(() => decodeKey(new Uint8Array([...key, 0])), /trailing/);
  t.throws(() => decodeKey(new Uint8Array([0, 9, 0, 0])), /unknown key version 9/);
  const v = encodeOffsetValue({ offset: 1, leaderEpoch: -1, metadata: '', commitTimestampMs: 0 });
  v[1] = 1;
  t.throws(() => decodeOffsetValue(v), /unsupported offset value version 1/);
  t.throws(() => decodeKey(new Uint8Array([0, 2, 0xff, 0xfe])), /negative string length/);
});

t.test("group placement uses Java's String.hashCode, as Kafka", async (t) => {
  t.equal(javaStringHash('hello'), 99162322);
  t.equal(javaStringHash(''), 0);
  t.equal(javaStringHash('polygenelubricants'), -2147483648, 'the one hash whose abs overflows');
  t.equal(partitionForGroup('polygenelubricants', 4), 0, "Kafka's Utils.abs maps MIN_VALUE to 0");
  t.equal(partitionForGroup('hello', 50), 99162322 % 50);
  for (const g of ['a', 'console-consumer-1', 'dashboards', 'Ω']) {
    const p = partitionForGroup(g, 4);
    t.ok(p >= 0 && p < 4, `${g} → ${p}`);
  }
});
