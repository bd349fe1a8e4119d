// Purpose: every WebSocket limit and access rule holds at its boundary with its close code or error: bearer tokens (1008), per-topic permissions, max sockets (4429), max frame (1009), max subscriptions, in-flight produces, idle timeout, subprotocol.
import t from 'tap';
import WebSocket from 'ws';
import { Client, openGateway } from '../unit/ws/harness.js';
import { eventually } from '../helpers/index.js';

const TOKENS = [
  { token: 'reader-token-1', read: ['metrics*'], write: [] },
  { token: 'writer-token-1', read: ['*'], write: ['metrics.a'] },
];

t.test('ws auth: no token or an unknown token is closed with 1008; a token in the header or the query opens', async (t) => {
  const g = await openGateway(t, { tokens: TOKENS });
  const none = new Client(g.wsUrl);
  t.teardown(() => none.ws.terminate());
  t.match(await none.closed, { code: 1008, reason: /unauthorized/ });
  const wrong = new Client(g.wsUrl, 'json', { headers: { authorization: 'Bearer nope-nope-nope' } });
  t.teardown(() => wrong.ws.terminate());
  t.equal((await wrong.closed).code, 1008);
  const header = await Client.open(t, g.wsUrl, 'json', { headers: { authorization: 'Bearer reader-token-1' } });
  t.equal((await header.request({ type: 'ping' })).type, 'pong');
  const query = await Client.open(t, `${g.wsUrl}?access_token=writer-token-1`);
  t.equal((await query.request({ type: 'ping' })).type, 'pong');
  t.equal(g.metrics.get('tributary_ws_refused_total')!.value({ code: '1008' }), 2);
});

t.test('ws auth: per-topic read and write permissions', async (t) => {
  const g = await openGateway(t, { tokens: TOKENS });
  await g.broker.createTopic('metrics.a', 1);
  await g.broker.createTopic('secret', 1);
  const reader = await Client.open(t, g.wsUrl, 'json', { headers: { authorization: 'Bearer reader-token-1' } });
  t.equal((await reader.request({ type: 'subscribe', topic: 'metrics.a' })).type, 'subscribed');
  t.match(await reader.request({ type: 'subscribe', topic: 'secret' }), { type: 'error', code: 'TOPIC_AUTHORIZATION_FAILED', kafkaCode: 29 });
  t.match(await reader.request({ type: 'produce', topic: 'metrics.a', value: 'x' }), { type: 'error', code: 'TOPIC_AUTHORIZATION_FAILED' });
  const writer = await Client.open(t, g.wsUrl, 'json', { headers: { authorization: 'Bearer writer-token-1' } });
  t.equal((await writer.request({ type: 'produce', topic: 'metrics.a', value: 'x' })).type, 'ack');
  t.match(await writer.request({ type: 'produce', topic: 'metrics.b', value: 'x' }), { type: 'error', code: 'TOPIC_AUTHORIZATION_FAILED' });
  t.notOk(g.broker.describeTopic('metrics.b'), 'a refused produce does not auto-create the topic');
});

t.test('ws limits: connectionsMax sockets open, the next is closed with 4429, and a freed slot is reusable', async (t) => {
  const g = await openGateway(t, { connectionsMax: 3 });
  const open = await Promise.all([1, 2, 3].map(() => Client.open(t, g.wsUrl)));
  const fourth = new Client(g.wsUrl);
  t.teardown(() => fourth.ws.terminate());
  t.match(await fourth.closed, { code: 4429, reason: /connectionsMax=3/ });
  open[0].ws.close();
  await open[0].closed;
  await eventually(async () => {
    const c = new Client(g.wsUrl);
    t.teardown(() => c.ws.terminate());
    await c.opened;
    const pong = await Promise.race([c.request({ type: 'ping' }, 2000), c.closed.then(() => undefined)]);
    return pong?.type === 'pong';
  });
});

t.test('ws limits: a frame of maxPayloadBytes passes, one byte more closes the socket with 1009', async (t) => {
  const max = 4096;
  const g = await openGateway(t, { maxPayloadBytes: max });
  const c = await Client.open(t, g.wsUrl);
  const frame = (size: number) => {
    const base = JSON.stringify({ type: 'ping', id: 'p', pad: '' });
    return JSON.stringify({ type: 'ping', id: 'p', pad: 'x'.repeat(size - base.length) });
  };
  t.equal(Buffer.byteLength(frame(max)), max);
  c.ws.send(frame(max));
  await c.waitFor((f) => f.type === 'pong');
  c.ws.send(frame(max + 1));
  t.match(await c.closed, { code: 1009, reason: /maxPayloadBytes=4096/ });
  // Far past the limit uWS drops the connection without reading the frame (no close frame).
  const d = await Client.open(t, g.wsUrl);
  d.ws.send(frame(max + 70_000));
  t.equal((await d.closed).code, 1006);
  t.equal(g.metrics.get('tributary_ws_refused_total')!.value({ code: '1009' }), 1);
});

t.test('ws limits: maxSubscriptionsPerSocket subscriptions, the next answered LIMIT_EXCEEDED', async (t) => {
  const g = await openGateway(t, { maxSubscriptionsPerSocket: 2 });
  for (const name of ['s1', 's2', 's3']) await g.broker.createTopic(name, 1);
  const c = await Client.open(t, g.wsUrl);
  t.equal((await c.request({ type: 'subscribe', topic: 's1' })).type, 'subscribed');
  t.equal((await c.request({ type: 'subscribe', topic: 's2' })).type, 'subscribed');
  t.match(await c.request({ type: 'subscribe', topic: 's3' }), { type: 'error', code: 'LIMIT_EXCEEDED', message: /maxSubscriptionsPerSocket=2/ });
  await c.request({ type: 'unsubscribe', topic: 's1' });
  t.equal((await c.request({ type: 'subscribe', topic: 's3' })).type, 'subscribed', 'a freed slot is reusable');
});

t.test('ws limits: produces waiting for their ack are bounded per socket', async (t) => {
  const g = await openGateway(t, { maxInFlightProducesPerSocket: 2 });
  await g.broker.createTopic('inflight', 1);
  const c = await Client.open(t, g.wsUrl);
  // Five produces in one burst: the first two are in flight (fsync pending) when the rest arrive.
  for (let i = 0; i < 5; i++) c.sendRaw({ type: 'produce', id: `p${i}`, topic: 'inflight', value: `v${i}` });
  await eventually(() => c.frames.filter((f) => /^p\d$/.test(String(f.id))).length === 5);
  const acks = c.frames.filter((f) => f.type === 'ack');
  const limited = c.frames.filter((f) => f.type === 'error' && f.code === 'LIMIT_EXCEEDED');
  t.ok(acks.length >= 2, `at least the first two acked (${acks.length})`);
  t.ok(limited.length >= 1, `the burst past the limit is refused (${limited.length})`);
  t.equal(acks.length + limited.length, 5);
  t.match(limited[0].message, /maxInFlightProducesPerSocket=2/);
});

t.test('ws limits: an offered but unknown subprotocol is refused with HTTP 400 naming ours; none offered means JSON', async (t) => {
  const g = await openGateway(t);
  const ws = new WebSocket(g.wsUrl, ['mqtt']);
  ws.on('error', () => undefined);
  const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
  t.equal(status, 400);
  ws.terminate();
  const plain = await Client.open(t, g.wsUrl, 'json', { protocols: [] });
  t.equal(plain.ws.protocol, '');
  t.equal((await plain.request({ type: 'ping' })).type, 'pong');
});

t.test('ws limits: a socket idle for idleTimeoutSec is dropped by the server', async (t) => {
  const g = await openGateway(t, { idleTimeoutSec: 8 });
  const connections = () => g.metrics.get('tributary_ws_connections')!.value();
  const c = await Client.open(t, g.wsUrl);
  await eventually(() => connections() === 1);
  // Stop reading: the client neither answers pings nor sends anything.
  const started = Date.now();
  (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  await eventually(() => connections() === 0, 25_000, 100);
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 4_000 && elapsed < 25_000, `dropped after ${elapsed} ms (idleTimeoutSec=8, uWS granularity 4 s)`);
});
