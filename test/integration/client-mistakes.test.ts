// Purpose: client mistakes are answered as client mistakes naming the field, over real sockets
// (issue 14, finding 5): a deeply nested JSON value is a 400 / WebSocket error (not a 500
// "Maximum call stack size exceeded"), a CBOR map with non-text keys in a value and a header
// map with byte-string keys are refused naming the field (never stored as `{}` or dropped), a
// timestamp above 2^53 gets a message that says so, and the valueDepthMax boundary holds.
import t from 'tap';
import { createRequire } from 'node:module';
import { Client, openGateway } from '../unit/ws/harness.js';

const require = createRequire(import.meta.url);
const { Encoder } = require('cbor-x') as typeof import('cbor-x');
// Maps encoded as maps, whatever their keys (what a device's CBOR library sends).
const cborOut = new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: false });

async function post(url: string, body: string) {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string }; offsets?: unknown[] } };
}

const nested = (depth: number) => '['.repeat(depth) + '1' + ']'.repeat(depth);

t.test('HTTP produce: a deeply nested JSON value is 400 naming the field; valueDepthMax is the boundary', async (t) => {
  const g = await openGateway(t, { valueDepthMax: 8 });
  await g.broker.createTopic('deep', 1);
  const deep = await post(`${g.http}/topics/deep/records`, `[{"value":${nested(100_000)}}]`);
  t.equal(deep.status, 400, 'not 500');
  t.equal(deep.body.error?.code, 'INVALID_REQUEST');
  t.match(deep.body.error?.message, /^records\[0\]\.value(\[0\])+: nested deeper than 8 levels \(valueDepthMax\)/);
  t.equal((await post(`${g.http}/topics/deep/records`, `[{"value":${nested(9)}}]`)).status, 400, '9 nested arrays: refused');
  const ok = await post(`${g.http}/topics/deep/records`, `[{"value":${nested(8)}}]`);
  t.equal(ok.status, 200, '8 nested arrays (valueDepthMax): stored');
  const stored = await g.broker.read({ topic: 'deep', partition: 0 }, 0, { maxBytes: 1 << 20 });
  t.ok(Buffer.from(stored.records).includes(Buffer.from(nested(8))), 'stored as its JSON text, unchanged');
});

t.test('HTTP produce: a timestamp above 2^53 says so', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('ts', 1);
  const r = await post(`${g.http}/topics/ts/records`, '[{"value":"x","timestamp":18014398509481984}]');
  t.equal(r.status, 400);
  t.match(r.body.error?.message, /records\[0\]\.timestamp: 18014398509481984 is above 2\^53 − 1 \(9007199254740991\)/);
  t.notMatch(r.body.error?.message, /must be a non-negative integer/, 'not the misleading message');
  t.equal((await post(`${g.http}/topics/ts/records`, '[{"value":"x","timestamp":9007199254740991}]')).status, 200, '2^53 − 1 itself is accepted');
});

t.test('WebSocket JSON produce: a deeply nested value is an error frame, the socket stays open', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('wsdeep', 1);
  const c = await Client.open(t, g.wsUrl, 'json');
  c.ws.send(`{"type":"produce","id":"d1","topic":"wsdeep","value":${nested(50_000)}}`);
  const err = await c.waitFor((f) => f.id === 'd1');
  t.equal(err.type, 'error');
  t.equal(err.code, 'INVALID_REQUEST');
  t.match(err.message, /^value(\[0\])+: nested deeper than 64 levels/);
  const ok = await c.request({ type: 'produce', topic: 'wsdeep', value: { t: 21.5 } });
  t.equal(ok.type, 'ack', 'the same socket still produces');
});

t.test('WebSocket CBOR produce: non-text map keys in a value, byte-string header keys, 2^60 timestamps: refused naming the field', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('cb', 1);
  const c = await Client.open(t, g.wsUrl, 'cbor');
  const send = (frame: Map<unknown, unknown>) => c.ws.send(cborOut.encode(frame));
  const frame = (id: string, extra: Array<[string, unknown]>) => new Map<unknown, unknown>([['type', 'produce'], ['id', id], ['topic', 'cb'], ...extra]);

  send(frame('k1', [['value', new Map<unknown, unknown>([['temp', new Map([[1, 'a']])]])]]));
  const intKey = await c.waitFor((f) => f.id === 'k1');
  t.equal(intKey.type, 'error');
  t.match(intKey.message, /^value\.temp: a map with a number key cannot be stored as JSON text/);

  send(frame('k2', [['value', 'v'], ['headers', new Map([[Buffer.from('k'), Buffer.from('v')]])]]));
  const byteKey = await c.waitFor((f) => f.id === 'k2');
  t.equal(byteKey.type, 'error');
  t.match(byteKey.message, /^headers: header keys must be text strings; found a byte string key/);

  send(frame('k3', [['value', new Map([['raw', Buffer.from([1, 2])]])]]));
  const bytesInside = await c.waitFor((f) => f.id === 'k3');
  t.match(bytesInside.message, /^value\.raw: a byte string inside a structured value/);

  send(frame('k4', [['value', 'v'], ['timestamp', 2n ** 60n]]));
  const ts = await c.waitFor((f) => f.id === 'k4');
  t.match(ts.message, /^timestamp: 1152921504606846976 is above 2\^53 − 1/);

  const end = await g.broker.offsets({ topic: 'cb', partition: 0 });
  t.equal(end.logEndOffset, 0, 'nothing was stored from the refused frames');
  send(frame('k5', [['value', new Map([['temp', 21.5]])], ['headers', new Map([['unit', Buffer.from('C')]])]]));
  const ok = await c.waitFor((f) => f.id === 'k5');
  t.equal(ok.type, 'ack', 'text keys: stored');
  const stored = await g.broker.read({ topic: 'cb', partition: 0 }, 0, { maxBytes: 1 << 20 });
  t.ok(Buffer.from(stored.records).includes(Buffer.from('{"temp":21.5}')), 'the value as JSON text');
});
