// Purpose: the node engine keeps the uWebSockets.js rules the door relies on, checked on the engine alone over real sockets: route precedence (literal before parameter before wildcard, a method's routes before `any`), a response unusable after its answer and after abort (onAborted fires once when the client leaves), send results and drain (a reader that stops: 0 = backpressure, then drain once it reads again; past maxBackpressure: 2 = dropped and the socket closed), and SSLApp serving over TLS with PEM files named as uWS names them.
import t from 'tap';
import { connect } from 'node:net';
import { spawnSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import WebSocket from 'ws';
import { nodeEngine, type NodeApp, type NodeListenSocket } from '../../../gateway/ws/node-engine.js';
import { DISCARDED_RESPONSE, type NodeHttpResponse } from '../../../gateway/ws/node-engine-http.js';
import { CLOSED_SOCKET, type NodeWebSocket } from '../../../gateway/ws/node-engine-ws.js';
import { eventually, haveCommand, tempDir } from '../../helpers/index.js';

async function listen(t: { teardown(fn: () => unknown): void }, app: NodeApp): Promise<number> {
  const socket = await new Promise<NodeListenSocket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  t.teardown(() => nodeEngine.us_listen_socket_close(socket));
  return nodeEngine.us_socket_local_port(socket);
}

t.test('node engine routes: literal before :param before *, method routes before any, empty segments never match a parameter', async (t) => {
  const app = nodeEngine.App();
  const answer = (name: string) => (res: NodeHttpResponse, req: { getParameter(i: number): string | undefined }) => void res.end(`${name}:${req.getParameter(0) ?? ''}`);
  app.any('/*', answer('any'));
  app.get('/a/*', answer('wild'));
  app.get('/a/:x', answer('param'));
  app.get('/a/fixed', answer('literal'));
  app.any('/a/fixed', answer('any-literal'));
  const port = await listen(t, app);
  const get = async (path: string, method = 'GET') => (await fetch(`http://127.0.0.1:${port}${path}`, { method })).text();
  t.equal(await get('/a/fixed'), 'literal:');
  t.equal(await get('/a/other'), 'param:other');
  t.equal(await get('/a/b/c'), 'wild:');
  t.equal(await get('/a/'), 'wild:', 'an empty segment is not a parameter');
  t.equal(await get('/a/fixed', 'POST'), 'any-literal:', 'no POST route: the any route at the same path');
  t.equal(await get('/zzz'), 'any:');
});

t.test('node engine responses: unusable after end and after abort; onAborted fires once when the client leaves', async (t) => {
  const app = nodeEngine.App();
  let afterEnd = '';
  let aborted = 0;
  let afterAbort = '';
  app.get('/end', (res) => {
    res.end('ok');
    try {
      res.writeStatus('500 Internal Server Error');
    } catch (err) {
      afterEnd = (err as Error).message;
    }
  });
  app.get('/hang', (res) => {
    res.onAborted(() => {
      aborted++;
      try {
        res.end('late');
      } catch (err) {
        afterAbort = (err as Error).message;
      }
    });
  });
  const port = await listen(t, app);
  t.equal(await (await fetch(`http://127.0.0.1:${port}/end`)).text(), 'ok');
  t.equal(afterEnd, DISCARDED_RESPONSE);
  const c = connect(port, '127.0.0.1', () => c.write('GET /hang HTTP/1.1\r\nHost: h\r\n\r\n'));
  await new Promise((r) => setTimeout(r, 100));
  c.destroy();
  await eventually(() => aborted === 1);
  t.equal(afterAbort, DISCARDED_RESPONSE);
});

t.test('node engine sockets: backpressure returns 0, drain comes once the reader reads; past maxBackpressure a send is dropped (2) and the socket closed', async (t) => {
  const app = nodeEngine.App();
  let server: NodeWebSocket | undefined;
  let lenient: NodeWebSocket | undefined;
  let drains = 0;
  const closes: number[] = [];
  app.ws('/lenient', { maxBackpressure: 262_144, closeOnBackpressureLimit: false, open: (ws) => void (lenient = ws) });
  app.ws('/ws', {
    maxBackpressure: 262_144,
    closeOnBackpressureLimit: true,
    open: (ws) => void (server = ws),
    drain: () => void drains++,
    close: (_ws, code) => void closes.push(code),
  });
  const port = await listen(t, app);
  const client = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  t.teardown(() => client.terminate());
  await new Promise((r) => client.once('open', r));
  await eventually(() => server);
  (client as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
  const frame = Buffer.alloc(64 * 1024, 1);
  const statuses: number[] = [];
  for (let i = 0; i < 2_000 && closes.length === 0; i++) {
    statuses.push(server!.send(frame, true));
    await new Promise((r) => setImmediate(r));
  }
  t.ok(statuses.includes(0), `backpressure reported once the kernel buffers filled (${statuses.filter((x) => x !== 1).join('')} after ${statuses.filter((x) => x === 1).length} sent)`);
  t.same(closes, [1006], 'the send that passed maxBackpressure closed the socket at once, without a close frame, as uWS does');
  t.throws(() => server!.send(frame, true), { message: CLOSED_SOCKET }, 'and the socket is unusable after');

  // A second socket: fill past the pause point but not the limit, then read: drain arrives.
  server = undefined;
  const client2 = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  t.teardown(() => client2.terminate());
  let received = 0;
  client2.on('message', (d: Buffer) => void (received += d.byteLength));
  await new Promise((r) => client2.once('open', r));
  await eventually(() => server);
  (client2 as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
  let status = 1;
  for (let i = 0; i < 2_000 && status === 1; i++) {
    status = server!.send(frame, true);
    await new Promise((r) => setImmediate(r));
  }
  t.equal(status, 0, 'backpressure');
  t.ok(server!.getBufferedAmount() > 0);
  t.equal(drains, 0, 'no drain while nothing is read');
  (client2 as unknown as { _socket: { resume(): void } })._socket.resume();
  await eventually(() => drains >= 1);
  t.equal(server!.getBufferedAmount(), 0, 'drain means the buffer is written out');
  t.ok(received > 0, 'the reader got the frames');

  // Without closeOnBackpressureLimit a send past maxBackpressure is dropped (2) and the socket stays.
  const client3 = new WebSocket(`ws://127.0.0.1:${port}/lenient`);
  t.teardown(() => client3.terminate());
  await new Promise((r) => client3.once('open', r));
  await eventually(() => lenient);
  (client3 as unknown as { _socket: { pause(): void } })._socket.pause();
  let last = 1;
  for (let i = 0; i < 2_000 && last !== 2; i++) {
    last = lenient!.send(frame, true);
    await new Promise((r) => setImmediate(r));
  }
  t.equal(last, 2, 'dropped');
  t.ok(lenient!.getBufferedAmount() > 262_144, 'the socket is still open, past its limit');
});

t.test('node engine SSLApp: serves HTTPS with the PEM files named as uWS names them', { skip: haveCommand('openssl') ? false : 'openssl not installed (Debian package openssl)' }, async (t) => {
  const dir = await tempDir(t, 'tributary-engine-tls-');
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const app = nodeEngine.SSLApp({ key_file_name: key, cert_file_name: cert });
  app.get('/x', (res) => void res.end('over tls'));
  const port = await listen(t, app);
  const body = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/x', rejectUnauthorized: false }, (res) => {
      let s = '';
      res.on('data', (d) => (s += d));
      res.on('end', () => resolve(s));
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(body, 'over tls', 'an HTTPS client got the answer: the listener speaks TLS');
});
