// Purpose: the engine serving the HTTP/WebSocket door is named in the ready line (text and fields) and in /healthz, and a door that is off says so in the ready line instead of vanishing from it; http.engine chooses the engine (auto: uWS where a native build loads, else node with the reason logged once).
import t from 'tap';
import { startBroker, tempDir } from '../helpers/index.js';
import { selectHttpEngine } from '../../gateway/ws/engine.js';
import { loadUws } from '../../gateway/ws/uws-loader.js';
import { uwsTlsRefusal } from '../../gateway/ws/options.js';
import type { Logger } from '../../host/logging.js';

let uwsLoads = true;
try {
  loadUws();
} catch {
  uwsLoads = false;
}

function readyOf(logs: Array<Record<string, unknown>>) {
  return logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:')) as { msg: string; engines: Record<string, string>; off: Record<string, string>; listeners: Record<string, string> };
}

t.test('ready line: http.port -1 is written as "http off (http.port: -1)", not left out', async (t) => {
  const env = { ...process.env };
  delete env.TRIBUTARY_HTTP_ENGINE;
  const broker = await startBroker(t, { dataDir: await tempDir(t, 'tributary-ready-'), args: ['--http-port', '-1'], env: env as Record<string, string> });
  const ready = readyOf(broker.logs);
  t.match(ready.msg, /, http off \(http\.port: -1\); codecs: /);
  t.same(ready.off, { http: 'off (http.port: -1)' });
  t.notOk(ready.listeners.http, 'no address for a door that is off');
  t.equal(await broker.stop(), 0);
});

t.test('ready line and /healthz: http.engine=node and the default name what serves', async (t) => {
  for (const [engine, expected] of [['node', /^node: node:http \+ ws /], ['auto', uwsLoads ? /^uws: .*native uws_/ : /^node: /]] as const) {
    const broker = await startBroker(t, { dataDir: await tempDir(t, 'tributary-ready-'), args: ['--set', `http.engine=${engine}`] });
    const ready = readyOf(broker.logs);
    t.match(ready.engines.http, expected, `${engine}: the ready line's engines field`);
    t.ok(ready.msg.includes(`http ${ready.listeners.http} (${ready.engines.http})`), `${engine}: the ready text names it next to the address`);
    t.same(ready.off, {});
    const health = (await (await fetch(`http://${ready.listeners.http}/healthz`)).json()) as { http: { engine: string; build: string } };
    t.equal(`${health.http.engine}: ${health.http.build}`, ready.engines.http, `${engine}: /healthz says the same`);
    t.ok(broker.logs.some((l) => l.msg === `HTTP and WebSocket listener up on ${health.http.engine === 'uws' ? 'uWebSockets.js' : 'node:http + ws'}`), `${engine}: the start-up log line`);
    t.equal(await broker.stop(), 0);
  }
});

t.test('engine selection: node is node; auto and uws are the native build where it loads, and uws fails where it does not', async (t) => {
  const warnings: unknown[] = [];
  const logger = { warn: (...args: unknown[]) => warnings.push(args) } as unknown as Logger;
  t.equal((await selectHttpEngine('node', logger)).name, 'node');
  if (uwsLoads) {
    t.equal((await selectHttpEngine('auto', logger)).name, 'uws');
    t.equal((await selectHttpEngine('uws', logger)).name, 'uws');
    t.equal(warnings.length, 0, 'nothing to warn about');
  } else {
    t.equal((await selectHttpEngine('auto', logger)).uwsUnavailable !== undefined, true);
    await selectHttpEngine('auto', logger);
    t.equal(warnings.length, 1, 'the uWS load failure is logged once');
    await t.rejects(selectHttpEngine('uws', logger), { name: 'UwsUnavailableError' });
  }
});

t.test('engine selection: auto with http.tls is the node engine (live reload, client certificates, CRL), logged with the reason; uws stays uws', async (t) => {
  const infos: unknown[][] = [];
  const logger = { info: (...args: unknown[]) => infos.push(args), warn: () => undefined } as unknown as Logger;
  const tls = { keyFile: '/k', certFile: '/c', caFile: null, requestCert: false };
  t.equal((await selectHttpEngine('auto', logger, tls)).name, 'node');
  t.match(infos[0], [{ engine: 'node', setting: 'http.engine', reason: 'tls' }, /http\.tls is set: the HTTP\/WebSocket door runs on node:http \+ ws/]);
  if (uwsLoads) t.equal((await selectHttpEngine('uws', logger, tls)).name, 'uws', 'an explicit uws is kept (plain TLS, reload at the next start)');
  t.equal(uwsTlsRefusal({ engine: 'uws', tls: { ...tls, caFile: '/ca', requestCert: true } })?.startsWith('tls.requestCert: http.engine uws cannot require a client certificate'), true);
  t.equal(uwsTlsRefusal({ engine: 'uws', tls: { ...tls, crlFile: '/crl' } })?.startsWith('tls.crlFile: http.engine uws cannot check a revocation list'), true);
  t.equal(uwsTlsRefusal({ engine: 'uws', tls: { ...tls, handshakeTimeoutMs: 5000 } })?.startsWith('tls.handshakeTimeoutMs'), true);
  t.equal(uwsTlsRefusal({ engine: 'uws', tls }), null, 'plain TLS on uws is allowed');
  t.equal(uwsTlsRefusal({ engine: 'auto', tls: { ...tls, caFile: '/ca', requestCert: true, crlFile: '/crl', handshakeTimeoutMs: 5000 } }), null, 'auto and node take all three');
});

t.test('engine selection: an unknown http.engine is refused at start naming the key', async (t) => {
  const r = await startBroker(t, { dataDir: await tempDir(t, 'tributary-ready-'), args: ['--set', 'http.engine=fast'] }).then(
    () => 'started',
    (err: Error) => err.message,
  );
  t.match(r, /http\.engine/);
  t.match(r, /auto, uws, node/);
});
