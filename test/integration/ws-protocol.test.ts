// Purpose: the WebSocket protocol end to end over real sockets to a real broker on disk: subscribe from every start position, JSON and CBOR, produce with ack, key filters, unsubscribe, ping, and every request error answered with its id.
import t from 'tap';
import { Client, openGateway } from '../unit/ws/harness.js';
import { sleep } from '../helpers/index.js';

const enc = (s: string) => Buffer.from(s);

t.test('ws: subscribe from earliest gets history then live records, in order, per partition', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('hist', 2);
  await g.broker.produce('hist', [0, 1, 2].map((i) => ({ key: null, value: enc(`old-${i}`) })), { acks: -1, partition: 0 });
  const c = await Client.open(t, g.wsUrl);
  const sub = await c.request({ type: 'subscribe', topic: 'hist', start: 'earliest' });
  t.equal(sub.type, 'subscribed');
  t.same(sub.partitions.map((p: { partition: number; offset: number }) => [p.partition, p.offset]), [[0, 0], [1, 0]]);
  await c.waitForRecords(3);
  const ack = await c.request({ type: 'produce', topic: 'hist', partition: 0, key: 'k', value: 'new', headers: { source: 'test' } });
  t.same(ack, { type: 'ack', id: ack.id, topic: 'hist', offsets: [{ partition: 0, offset: 3 }] });
  const recs = await c.waitForRecords(4);
  t.same(recs.map((r) => r.value), ['old-0', 'old-1', 'old-2', 'new']);
  t.same(recs.map((r) => r.offset), [0, 1, 2, 3]);
  t.same(recs[3].headers, [['source', 'test']]);
  t.equal(recs[3].key, 'k');
  t.ok(recs[3].timestamp > Date.now() - 60_000);
});

t.test('ws: subscribe from latest skips history', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('lat', 1);
  await g.broker.produce('lat', [{ key: null, value: enc('before') }], { acks: -1 });
  const c = await Client.open(t, g.wsUrl);
  const sub = await c.request({ type: 'subscribe', topic: 'lat' });
  t.equal(sub.partitions[0].offset, 1);
  await g.broker.produce('lat', [{ key: null, value: enc('after') }], { acks: -1 });
  const recs = await c.waitForRecords(1);
  await sleep(100);
  t.same(c.records().map((r) => r.value), ['after']);
  t.equal(recs[0].offset, 1);
});

t.test('ws: subscribe from an offset and from a timestamp', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('pos', 1);
  const base = Date.now() - 10_000;
  await g.broker.produce('pos', [0, 1, 2, 3, 4].map((i) => ({ key: null, value: enc(`v${i}`), timestampMs: base + i * 1000 })), { acks: -1 });
  const a = await Client.open(t, g.wsUrl);
  const subA = await a.request({ type: 'subscribe', topic: 'pos', start: 'offset', offset: 3 });
  t.equal(subA.partitions[0].offset, 3);
  t.same((await a.waitForRecords(2)).map((r) => r.value), ['v3', 'v4']);
  const b = await Client.open(t, g.wsUrl);
  const subB = await b.request({ type: 'subscribe', topic: 'pos', start: 'timestamp', timestamp: base + 1500 });
  t.equal(subB.partitions[0].offset, 2, 'first record at or after the timestamp');
  t.same((await b.waitForRecords(3)).map((r) => r.value), ['v2', 'v3', 'v4']);
  const c = await Client.open(t, g.wsUrl);
  const subC = await c.request({ type: 'subscribe', topic: 'pos', start: 'offset', offset: 99 });
  t.equal(subC.partitions[0].offset, 5, 'an offset past the end is clamped to the high watermark');
  const d = await Client.open(t, g.wsUrl);
  const subD = await d.request({ type: 'subscribe', topic: 'pos', start: 'timestamp', timestamp: Date.now() + 60_000 });
  t.equal(subD.partitions[0].offset, 5, 'a timestamp after every record starts at the end');
});

t.test('ws: CBOR subscribers get byte strings; JSON base64 subscribers get base64; both from one tail', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('bin', 1);
  const c = await Client.open(t, g.wsUrl, 'cbor');
  const j = await Client.open(t, g.wsUrl, 'json');
  t.equal(c.ws.protocol, 'tributary.cbor.v1');
  await c.request({ type: 'subscribe', topic: 'bin', partitions: [0] });
  await j.request({ type: 'subscribe', topic: 'bin', encoding: 'base64' });
  const ack = await c.request({ type: 'produce', topic: 'bin', key: new Uint8Array([1]), value: new Uint8Array([0, 255, 128]) });
  t.equal(ack.type, 'ack');
  const [rc] = await c.waitForRecords(1);
  t.ok(rc.value instanceof Uint8Array);
  t.same([...rc.value], [0, 255, 128]);
  t.same([...rc.key], [1]);
  const [rj] = await j.waitForRecords(1);
  t.equal(rj.value, Buffer.from([0, 255, 128]).toString('base64'));
  t.equal(g.metrics.get('tributary_ws_frames_sent_total')!.value({ topic: 'bin' }), 2);
});

t.test('ws: a key filter with wildcards delivers only matching keys', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('keys', 1);
  const c = await Client.open(t, g.wsUrl);
  await c.request({ type: 'subscribe', topic: 'keys', filter: 'site/+/temp' });
  const keys = ['site/a/temp', 'site/a/hum', 'site/b/temp', 'site/temp', 'other/a/temp'];
  await g.broker.produce('keys', keys.map((k) => ({ key: enc(k), value: enc(k) })), { acks: -1 });
  await c.waitForRecords(2);
  await sleep(100);
  t.same(c.records().map((r) => r.key), ['site/a/temp', 'site/b/temp']);
});

t.test('ws: many subscribers at the same position share one tail and one encoding', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('shared', 1);
  const clients = await Promise.all([...Array(10)].map(() => Client.open(t, g.wsUrl)));
  await Promise.all(clients.map((c) => c.request({ type: 'subscribe', topic: 'shared' })));
  await g.broker.produce('shared', [{ key: null, value: enc('x') }], { acks: -1 });
  for (const c of clients) await c.waitForRecords(1);
  const stats = await (await fetch(`${g.http}/stats`)).json();
  t.equal(stats.ws.tails, 1, 'one tail reader for the partition');
  t.equal(stats.ws.subscriptions, 10);
});

t.test('ws: unsubscribe stops delivery; ping answers pong; errors name the request id', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('u', 1);
  const c = await Client.open(t, g.wsUrl);
  await c.request({ type: 'subscribe', topic: 'u' });
  const dup = await c.request({ type: 'subscribe', topic: 'u' });
  t.match(dup, { type: 'error', code: 'INVALID_REQUEST', kafkaCode: 42, message: /already subscribed/ });
  const un = await c.request({ type: 'unsubscribe', topic: 'u' });
  t.same(un, { type: 'unsubscribed', id: un.id, topic: 'u' });
  await g.broker.produce('u', [{ key: null, value: enc('x') }], { acks: -1 });
  const pong = await c.request({ type: 'ping' });
  t.equal(pong.type, 'pong');
  t.ok(pong.time > 0);
  await sleep(100);
  t.equal(c.records().length, 0);
  t.match(await c.request({ type: 'unsubscribe', topic: 'u' }), { type: 'error', code: 'INVALID_REQUEST', message: /not subscribed/ });
  t.match(await c.request({ type: 'subscribe', topic: 'nope' }), { type: 'error', code: 'UNKNOWN_TOPIC_OR_PARTITION', kafkaCode: 3 });
  t.match(await c.request({ type: 'subscribe', topic: 'u', partitions: [1] }), { type: 'error', code: 'UNKNOWN_TOPIC_OR_PARTITION', message: /partitions/ });
  t.match(await c.request({ type: 'subscribe', topic: 'u', filter: 'a/#/b' }), { type: 'error', code: 'INVALID_REQUEST', message: /filter/ });
  t.match(await c.request({ type: 'subscribe', topic: 'u', group: 'g' }), { type: 'error', code: 'COORDINATOR_NOT_AVAILABLE' });
  t.match(await c.request({ type: 'commit', topic: 'u' }), { type: 'error', code: 'INVALID_REQUEST', message: /group subscription/ });
  t.match(await c.request({ type: 'produce', topic: 'u', partition: 5, value: 'x' }), { type: 'error', code: 'UNKNOWN_TOPIC_OR_PARTITION', message: /partition/ });
  t.match(await c.request({ type: 'produce', topic: 'bad topic!', value: 'x' }), { type: 'error', code: 'INVALID_TOPIC_EXCEPTION' });
  t.match(await c.request({ type: 'launch' }), { type: 'error', code: 'INVALID_REQUEST', message: /^type:/ });
  c.ws.send('{not json');
  const e = await c.waitFor((f) => f.type === 'error' && f.id === null);
  t.match(e.message, /not valid JSON/);
  c.ws.send(Buffer.from([1, 2]), { binary: true });
  await c.waitFor((f) => f.type === 'error' && /binary frame/.test(f.message));
  // The socket survived every mistake.
  t.equal((await c.request({ type: 'ping' })).type, 'pong');
});

t.test('ws: produce auto-creates a topic (broker default) and values may be structured JSON', async (t) => {
  const g = await openGateway(t);
  const c = await Client.open(t, g.wsUrl);
  const ack = await c.request({ type: 'produce', topic: 'auto', records: [{ key: 'a', value: { t: 21.5 } }, { value: 'plain' }] });
  t.equal(ack.type, 'ack');
  t.equal(ack.offsets.length, 2);
  t.ok(g.broker.describeTopic('auto'));
  const read = await g.broker.read({ topic: 'auto', partition: 0 }, 0, { maxBytes: 1 << 20 });
  t.ok(Buffer.from(read.records).includes(Buffer.from('{"t":21.5}')));
});

t.test('ws: heartbeat frames report position and lag', async (t) => {
  const g = await openGateway(t, { heartbeatIntervalMs: 200 });
  await g.broker.createTopic('hb', 1);
  await g.broker.produce('hb', [{ key: null, value: enc('x') }], { acks: -1 });
  const c = await Client.open(t, g.wsUrl);
  await c.request({ type: 'subscribe', topic: 'hb', start: 'earliest' });
  await c.waitForRecords(1);
  const hb = await c.waitFor((f) => f.type === 'heartbeat' && f.subscriptions[0]?.offset === 1);
  t.match(hb.subscriptions[0], { topic: 'hb', partition: 0, offset: 1, highWatermark: 1, lag: 0, state: 'live' });
});

t.test('ws: deleting a topic under a live subscription answers UNKNOWN_TOPIC_OR_PARTITION with the subscribe id; the socket keeps serving', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('gone', 1);
  const c = await Client.open(t, g.wsUrl);
  const sub = await c.request({ type: 'subscribe', id: 'sub-gone', topic: 'gone' });
  t.equal(sub.type, 'subscribed');
  await g.broker.deleteTopic('gone');
  const err = await c.waitFor((f) => f.type === 'error' && f.id === 'sub-gone');
  t.match(err, { code: 'UNKNOWN_TOPIC_OR_PARTITION', topic: 'gone', partition: 0 });
  t.equal((await c.request({ type: 'ping' })).type, 'pong');
  await g.broker.createTopic('other', 1);
  t.equal((await c.request({ type: 'subscribe', topic: 'other' })).type, 'subscribed');
});
