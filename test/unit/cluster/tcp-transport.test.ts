// Purpose: the TCP transport between voters (host/cluster/tcp-transport.ts) over real loopback
// sockets: frames arrive whole and in order from the named peer; a hello of another cluster id
// (or a stranger's node id) is refused with the reason on both sides; a frame past frameBytesMax
// is refused from its length prefix and closes the connection (and send() refuses one at the
// limit + 1 while one at the limit passes); a peer that goes away is redialled and frames flow
// again after it returns; while it is away the send queue holds at most sendQueueMax frames
// (and sendQueueBytesMax bytes), dropping the oldest and counting each drop.
import t, { type Test } from 'tap';
import { createConnection } from 'node:net';
import { pino } from 'pino';
import { silentLogger } from '../../../host/logging.js';
import { encodeHello, FrameReader, HELLO_PEER, readStatus, TcpTransport, type TcpTransportOptions } from '../../../host/cluster/tcp-transport.js';
import { encodeMessage } from '../../../host/cluster/raft-codec.js';
import { eventually } from '../../helpers/index.js';
import { freePort } from '../../helpers/cluster.js';

function capture(): { logger: typeof silentLogger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

async function pair(t: Test, over: Partial<TcpTransportOptions> = {}, overB: Partial<TcpTransportOptions> = {}) {
  const [pa, pb] = [await freePort(), await freePort()];
  const peers = new Map([
    [1, { host: '127.0.0.1', port: pa }],
    [2, { host: '127.0.0.1', port: pb }],
  ]);
  const base = { clusterId: 'c1', frameBytesMax: 1024, sendQueueMax: 16, sendQueueBytesMax: 4096, reconnectBackoffMsMin: 20, reconnectBackoffMsMax: 100, connectionsMax: 8, handshakeTimeoutMs: 5000, logger: silentLogger, peers };
  const a = await TcpTransport.start({ ...base, nodeId: 1, listen: peers.get(1)!, ...over });
  const b = await TcpTransport.start({ ...base, nodeId: 2, listen: peers.get(2)!, ...over, ...overB });
  t.teardown(() => {
    a.close();
    b.close();
  });
  return { a, b, peers, base };
}

const frame = (n: number, fill = 0): Uint8Array => {
  const f = new Uint8Array(n).fill(fill);
  new DataView(f.buffer).setUint32(0, n - 4);
  return f;
};

t.test('tcp transport: raft frames arrive whole, in order, from the named peer', async (t) => {
  const { a, b } = await pair(t);
  const got: Array<[string, Uint8Array]> = [];
  b.onMessage((from, m) => got.push([from, m]));
  await eventually(() => a.connected(2));
  const sent = [1, 2, 3].map((term) => encodeMessage({ type: 'VoteResp', from: 1, to: 2, term, reject: false }));
  for (const m of sent) t.ok(a.send('2', m));
  await eventually(() => got.length === 3);
  t.same(got.map(([from]) => from), ['1', '1', '1']);
  t.same(got.map(([, m]) => Buffer.from(m).toString('hex')), sent.map((m) => Buffer.from(m).toString('hex')));
  t.notOk(a.send('9', sent[0]!), 'an unknown peer is refused');
});

t.test('tcp transport: a hello of another cluster id or from a stranger is refused, with the reason logged on both sides', async (t) => {
  const logA = capture();
  const logB = capture();
  const { a } = await pair(t, { logger: logA.logger }, { clusterId: 'other', logger: logB.logger });
  await eventually(() => logB.lines.some((l) => l.msg === 'cluster handshake refused' && /cluster id mismatch: this node is in cluster "other", the peer says "c1"/.test(String(l.reason))));
  t.pass('the listener logs the cluster id mismatch');
  await eventually(() => logA.lines.some((l) => l.msg === 'cluster peer refused our handshake' && /cluster id mismatch/.test(String(l.reason))));
  t.pass('the dialer logs the refusal and its reason');
  t.notOk(a.connected(2), 'no connection is established');
  const logC = capture();
  // A stranger (node 7) dialling node 1 with the right cluster id.
  const [port] = [await freePort()];
  const lonely = await TcpTransport.start({ clusterId: 'c1', nodeId: 1, listen: { host: '127.0.0.1', port }, peers: new Map(), frameBytesMax: 1024, sendQueueMax: 4, sendQueueBytesMax: 4096, reconnectBackoffMsMin: 20, reconnectBackoffMsMax: 100, connectionsMax: 8, handshakeTimeoutMs: 5000, logger: logC.logger });
  t.teardown(() => lonely.close());
  const answer = await new Promise<Buffer>((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => s.write(encodeHello(HELLO_PEER, 7, 1, 'c1')));
    const r = new FrameReader(1024);
    s.on('data', (d) => {
      const f = r.push(d);
      if (f.length) resolve(f[0]!);
    });
  });
  t.equal(answer[5], 0, 'refused');
  t.match(answer.toString('utf8', 8), /node 7 is not a voter of this cluster/);
  t.ok(logC.lines.some((l) => l.msg === 'cluster handshake refused'));
});

t.test('tcp transport: frameBytesMax is enforced on send and, from the length prefix, on receive', async (t) => {
  const { a, b, peers } = await pair(t);
  const got: Uint8Array[] = [];
  b.onMessage((_f, m) => got.push(m));
  await eventually(() => a.connected(2));
  t.ok(a.send('2', frame(1024, 1)), 'a frame of exactly frameBytesMax is sent');
  t.notOk(a.send('2', frame(1025)), 'one byte more is refused');
  await eventually(() => got.length === 1);
  t.equal(got[0]!.length, 1024);
  // A hostile peer announcing 1025 bytes after a valid hello: the listener closes the connection.
  const closed = await new Promise<boolean>((resolve) => {
    const s = createConnection(peers.get(2)!, () => s.write(encodeHello(HELLO_PEER, 1, 2, 'c1')));
    let answered = false;
    s.on('data', () => {
      if (answered) return;
      answered = true;
      const head = Buffer.alloc(4);
      head.writeUInt32BE(1021);
      s.write(head);
    });
    s.on('close', () => resolve(true));
  });
  t.ok(closed, 'the connection is closed');
  t.equal(b.stats.oversizedFrames, 1, 'and counted');
});

t.test('tcp transport: a peer that goes away is redialled; meanwhile its queue keeps the newest sendQueueMax frames', async (t) => {
  const { a, b, base, peers } = await pair(t, { sendQueueMax: 4 });
  await eventually(() => a.connected(2));
  b.close();
  await eventually(() => !a.connected(2));
  for (let i = 0; i < 10; i++) a.send('2', frame(8, i));
  t.equal(a.queued(2), 4, 'queue bound: sendQueueMax frames');
  t.equal(a.stats.queueDrops, 6, 'the six oldest dropped and counted');
  const b2 = await TcpTransport.start({ ...base, sendQueueMax: 4, nodeId: 2, listen: peers.get(2)! });
  t.teardown(() => b2.close());
  const got: number[] = [];
  b2.onMessage((_f, m) => got.push(m[7]!));
  await eventually(() => got.length === 4, 5000);
  t.same(got, [6, 7, 8, 9], 'after the redial the newest four arrive, in order');
  t.ok(a.stats.reconnects >= 1, 'redials counted');
});

t.test('tcp transport: sendQueueBytesMax bounds the queued bytes the same way', async (t) => {
  const { a, b } = await pair(t, { sendQueueMax: 100, sendQueueBytesMax: 2048 });
  b.close();
  await eventually(() => !a.connected(2));
  for (let i = 0; i < 5; i++) a.send('2', frame(1000, i));
  t.equal(a.queued(2), 2, 'two 1000-byte frames fit in 2048 bytes');
  t.equal(a.stats.queueDrops, 3);
});

t.test('tcp transport: a status connection gets the status document', async (t) => {
  const port = await freePort();
  const tr = await TcpTransport.start({ clusterId: 'c1', nodeId: 1, listen: { host: '127.0.0.1', port }, peers: new Map(), frameBytesMax: 1024, sendQueueMax: 4, sendQueueBytesMax: 4096, reconnectBackoffMsMin: 20, reconnectBackoffMsMax: 100, connectionsMax: 8, handshakeTimeoutMs: 5000, logger: silentLogger, status: () => ({ hello: 'world' }) });
  t.teardown(() => tr.close());
  t.same(await readStatus({ host: '127.0.0.1', port }, 2000), { hello: 'world' });
  await t.rejects(readStatus({ host: '127.0.0.1', port: await freePort() }, 2000), { code: 'NETWORK_EXCEPTION' });
});

t.test('tcp transport: connectionsMax inbound connections are held, the next is closed; a silent connection is closed after handshakeTimeoutMs', async (t) => {
  const port = await freePort();
  const tr = await TcpTransport.start({ clusterId: 'c1', nodeId: 1, listen: { host: '127.0.0.1', port }, peers: new Map(), frameBytesMax: 1024, sendQueueMax: 4, sendQueueBytesMax: 4096, reconnectBackoffMsMin: 20, reconnectBackoffMsMax: 100, connectionsMax: 2, handshakeTimeoutMs: 300, logger: silentLogger });
  t.teardown(() => tr.close());
  const open = () =>
    new Promise<{ closedAt: Promise<number> }>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => resolve({ closedAt: new Promise((r) => s.on('close', () => r(Date.now()))) }));
      s.on('error', () => undefined);
    });
  const started = Date.now();
  const first = await open();
  const second = await open();
  const third = await open();
  const thirdClosed = await third.closedAt;
  t.ok(thirdClosed - started < 250, 'the third (past connectionsMax 2) is closed at once');
  const [c1, c2] = await Promise.all([first.closedAt, second.closedAt]);
  t.ok(c1 - started >= 250 && c2 - started >= 250, `the two silent ones are closed after the hello timeout (${c1 - started} ms, ${c2 - started} ms)`);
  t.equal(tr.stats.connectionsRefused, 3);
});

t.test('tcp transport: something else at a peer\'s address (an HTTP server) is a refused handshake and a failed status read, never a crash', async (t) => {
  const { createServer } = await import('node:net');
  const port = await freePort();
  const other = createServer((s) => {
    s.on('data', () => s.write('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n'));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => other.listen(port, '127.0.0.1', r));
  t.teardown(() => other.close());
  await t.rejects(readStatus({ host: '127.0.0.1', port }, 2000), { code: /CORRUPT_MESSAGE|MESSAGE_TOO_LARGE/ });
  const log = capture();
  const mine = await freePort();
  const tr = await TcpTransport.start({ clusterId: 'c1', nodeId: 1, listen: { host: '127.0.0.1', port: mine }, peers: new Map([[2, { host: '127.0.0.1', port }]]), frameBytesMax: 1024, sendQueueMax: 4, sendQueueBytesMax: 4096, reconnectBackoffMsMin: 20, reconnectBackoffMsMax: 100, connectionsMax: 8, handshakeTimeoutMs: 5000, logger: log.logger });
  t.teardown(() => tr.close());
  await eventually(() => tr.stats.reconnects >= 2, 5000);
  t.notOk(tr.connected(2), 'never connected');
});
