// Purpose: every client frame is parsed into a typed request or refused naming the field; server frames encode the same in JSON and CBOR.
import t from 'tap';
import { cbor, decodeFrame, encodeRecords, errorFrame, idOf, parseRecordFields, parseRequest } from '../../../gateway/ws/protocol.js';
import { BrokerError } from '../../../host/errors/index.js';

const enc = new TextEncoder();
const json = (v: unknown) => decodeFrame('json', enc.encode(JSON.stringify(v)), false);

function refused(t: { throws: (fn: () => unknown) => unknown; equal: (a: unknown, b: unknown) => void; match: (a: unknown, b: RegExp) => void }, frame: unknown, field: RegExp) {
  const err = t.throws(() => parseRequest(frame)) as unknown as BrokerError;
  t.equal(err.code, 'INVALID_REQUEST');
  t.match(err.message, field);
}

t.test('protocol: subscribe defaults to all partitions from latest', async (t) => {
  const r = parseRequest(json({ type: 'subscribe', id: 1, topic: 'a' }));
  t.same(r, { type: 'subscribe', id: 1, topic: 'a', partitions: 'all', start: { kind: 'latest' }, group: undefined, filter: undefined, encoding: 'utf8' });
});

t.test('protocol: subscribe start forms', async (t) => {
  t.same((parseRequest({ type: 'subscribe', id: 'x', topic: 'a', start: 'earliest' }) as { start: unknown }).start, { kind: 'earliest' });
  t.same((parseRequest({ type: 'subscribe', id: 'x', topic: 'a', start: 'offset', offset: 7 }) as { start: unknown }).start, { kind: 'offset', offset: 7 });
  t.same((parseRequest({ type: 'subscribe', id: 'x', topic: 'a', start: 'timestamp', timestamp: 1700000000000 }) as { start: unknown }).start, { kind: 'timestamp', timestampMs: 1700000000000 });
  t.same((parseRequest({ type: 'subscribe', id: 'x', topic: 'a', partitions: [1, 0, 1] }) as { partitions: unknown }).partitions, [1, 0]);
});

t.test('protocol: bad requests name the field', async (t) => {
  refused(t, [], /frame must be/);
  refused(t, { type: 'subscribe', topic: 'a' }, /^id:/);
  refused(t, { type: 'subscribe', id: 'x'.repeat(200), topic: 'a' }, /^id:/);
  refused(t, { type: 'subscribe', id: 1 }, /^topic:/);
  refused(t, { type: 'subscribe', id: 1, topic: 'a'.repeat(250) }, /^topic:/);
  refused(t, { type: 'subscribe', id: 1, topic: 'a', start: 'offset' }, /^offset:/);
  refused(t, { type: 'subscribe', id: 1, topic: 'a', start: 'yesterday' }, /^start:/);
  refused(t, { type: 'subscribe', id: 1, topic: 'a', partitions: [-1] }, /partitions\[0\]/);
  refused(t, { type: 'subscribe', id: 1, topic: 'a', partitions: [] }, /^partitions:/);
  refused(t, { type: 'subscribe', id: 1, topic: 'a', group: 'g', partitions: [0] }, /^partitions:/);
  refused(t, { type: 'subscribe', id: 1, topic: 'a', encoding: 'hex' }, /^encoding:/);
  refused(t, { type: 'produce', id: 1, topic: 'a' }, /^value:/);
  refused(t, { type: 'produce', id: 1, topic: 'a', encoding: 'base64', value: '!!' }, /^value: not valid base64/);
  refused(t, { type: 'produce', id: 1, topic: 'a', records: [{ value: 'x', partition: 1 }] }, /records\[0\]\.partition/);
  refused(t, { type: 'produce', id: 1, topic: 'a', value: 'x', headers: 5 }, /^headers:/);
  refused(t, { type: 'commit', id: 1, topic: 'a', offsets: [{ partition: 0 }] }, /offsets\[0\]\.offset/);
  refused(t, { type: 'fly', id: 1 }, /^type:/);
});

t.test('protocol: produce values in utf8, base64, bytes (CBOR) and structured JSON', async (t) => {
  const r = parseRequest({ type: 'produce', id: 1, topic: 'a', key: 'k', value: 'héllo', headers: { h: 'v' } });
  if (r.type !== 'produce') throw new Error('type');
  t.equal(Buffer.from(r.records[0].value!).toString(), 'héllo');
  t.equal(Buffer.from(r.records[0].key!).toString(), 'k');
  t.equal(r.records[0].headers![0].key, 'h');
  const b = parseRequest({ type: 'produce', id: 1, topic: 'a', encoding: 'base64', records: [{ value: Buffer.from([0, 255]).toString('base64') }] });
  if (b.type !== 'produce') throw new Error('type');
  t.same([...b.records[0].value!], [0, 255]);
  const c = parseRequest(decodeFrame('cbor', cbor.encode({ type: 'produce', id: 2, topic: 'a', value: new Uint8Array([1, 2, 3]), key: null }), true));
  if (c.type !== 'produce') throw new Error('type');
  t.same([...c.records[0].value!], [1, 2, 3]);
  t.equal(c.records[0].key, null);
  const s = parseRecordFields({ value: { t: 21.5 } }, '', 'utf8', true);
  t.equal(Buffer.from(s.record.value!).toString(), '{"t":21.5}');
});

t.test('protocol: wrong frame kind for the encoding is refused', async (t) => {
  t.throws(() => decodeFrame('json', enc.encode('{}'), true), { code: 'INVALID_REQUEST' });
  t.throws(() => decodeFrame('cbor', new Uint8Array([0xa0]), false), { code: 'INVALID_REQUEST' });
  t.throws(() => decodeFrame('json', enc.encode('{"type":'), false), { message: /not valid JSON/ });
  t.throws(() => decodeFrame('cbor', new Uint8Array([0xff, 0xff]), true), { message: /not valid CBOR/ });
  t.equal(idOf({ id: 'a' }), 'a');
  t.equal(idOf({ id: {} }), null);
});

t.test('protocol: records frames carry the same fields in JSON and CBOR', async (t) => {
  const recs = [{ offset: 5, timestampMs: 1000, key: Buffer.from('k'), value: Buffer.from([0xc3, 0xa9]), headers: [{ key: 'h', value: null }] }];
  const j = JSON.parse(encodeRecords('json', 'utf8', 't', 2, recs) as string);
  t.same(j, { type: 'records', topic: 't', partition: 2, records: [{ offset: 5, timestamp: 1000, key: 'k', value: 'é', headers: [['h', null]] }] });
  const j64 = JSON.parse(encodeRecords('json', 'base64', 't', 2, recs) as string);
  t.equal(j64.records[0].value, 'w6k=');
  const c = cbor.decode(encodeRecords('cbor', 'utf8', 't', 2, recs) as Uint8Array);
  t.equal(c.records[0].offset, 5);
  t.same([...c.records[0].value], [0xc3, 0xa9]);
  t.same(errorFrame(3, new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', 'nope')), { type: 'error', id: 3, code: 'UNKNOWN_TOPIC_OR_PARTITION', kafkaCode: 3, message: 'nope' });
});
