// Purpose: TLS on the HTTP/WebSocket door (node:http + ws under http.engine auto; uWS SSLApp with
// http.engine uws, below) and on the schema registry,
// against a real broker process: Chromium (Debian, driven by playwright-core) loads the web
// console over https and a page script opens a dashboard socket over wss; node's https client
// checks /healthz against the test CA; a plain-HTTP request on the TLS port gets no answer and the
// door keeps serving; the schema registry answers over https; with http.engine uws, SSLApp serves
// too, and http.tls.requestCert is refused at start (uWS cannot require a client certificate).
//
// Chromium has no way to take a CA file on its command line, and this machine has no certutil to
// build an NSS database, so the browser trusts the server's public key through
// --ignore-certificate-errors-spki-list (a pin of that one key, not --ignore-certificate-errors):
// any other certificate still fails. Node's clients verify against the CA.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createHash, X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { eventually, mainJs, startBroker, tempDir } from '../helpers/index.js';
import { loadUws } from '../../gateway/ws/uws-loader.js';
import { makeCerts } from '../helpers/certs.js';

const CHROMIUM = '/usr/bin/chromium';
if (process.env.CI && !existsSync(CHROMIUM)) t.fail(`chromium is needed at ${CHROMIUM} (Debian package chromium)`);

function get(url: string, ca?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https') ? httpsRequest : httpRequest)(url, { ca, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function spkiPin(certFile: string): string {
  const der = new X509Certificate(readFileSync(certFile)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

t.test('https/wss: Chromium loads the console over https and opens a wss socket; node verifies against the CA; plain HTTP gets nothing; the registry over https', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const config = join(dir, 'c.json');
  const tls = { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: null };
  await writeFile(config, JSON.stringify({ http: { tls }, schemas: { tls } }));
  const b = await startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', config] });
  const ca = readFileSync(certs.caCert);
  const health = await get(`https://${b.listeners.http}/healthz`, ca);
  t.equal(health.status, 200, 'GET /healthz over https, verified against the CA');
  const plain = await get(`http://${b.listeners.http}/healthz`).then(
    (r) => r,
    (e: Error) => e,
  );
  t.ok(plain instanceof Error, `plain HTTP on the TLS port gets no answer (${(plain as Error).message})`);
  t.equal((await get(`https://${b.listeners.http}/healthz`, ca)).status, 200, 'still serving');
  const wrongCa = await get(`https://${b.listeners.http}/healthz`, readFileSync(certs.otherCaCert)).then(
    () => null,
    (e: Error) => e,
  );
  t.ok(wrongCa, `a client trusting another CA refuses the door (${wrongCa?.message})`);
  const subjects = await get(`https://${b.listeners.schemas}/subjects`, ca);
  t.equal(subjects.status, 200, 'schema registry GET /subjects over https');
  t.equal(subjects.body, '[]');

  await t.test('Chromium: the console over https, a dashboard socket over wss', { skip: existsSync(CHROMIUM) ? false : `chromium not found at ${CHROMIUM}` }, async (t) => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run', `--ignore-certificate-errors-spki-list=${spkiPin(certs.serverCert)}`],
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage();
    const sockets: string[] = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`https://localhost:${b.port('http')}/`);
    await page.waitForSelector('#health.ok', { timeout: 15_000 });
    t.pass('the console loaded over https and reads /healthz');
    const evaluated = await page.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url, 'tributary.json.v1');
          ws.onopen = () => (ws.close(), resolve('open'));
          ws.onerror = () => resolve('error');
        }),
      `wss://localhost:${b.port('http')}/ws`,
    );
    t.equal(evaluated, 'open', 'a page script opens a wss dashboard socket');
    t.ok(sockets.some((u) => u.startsWith(`wss://localhost:${b.port('http')}/`)), `the browser's socket is wss: ${sockets.join(', ')}`);
  });
  t.equal(await b.stop(), 0);
});

t.test('http.engine uws with http.tls: SSLApp serves https; SIGHUP checks the files and says they apply at the next start', { skip: uwsLoads() ? false : 'no native uWebSockets.js build loads here' }, async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const config = join(dir, 'c.json');
  await writeFile(config, JSON.stringify({ http: { engine: 'uws', tls: { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: null } } }));
  const b = await startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', config] });
  const health = await get(`https://${b.listeners.http}/healthz`, readFileSync(certs.caCert));
  t.equal(health.status, 200);
  t.match(JSON.parse(health.body).http, { engine: 'uws' });
  b.child.kill('SIGHUP');
  await eventually(() => b.logs.some((l) => /uWebSockets\.js applies them at the next start/.test(String(l.msg))), 5000);
  t.pass('SIGHUP: the files are checked, and the log says they apply at the next start');
  t.equal(await b.stop(), 0);
});

function uwsLoads(): boolean {
  try {
    loadUws();
    return true;
  } catch {
    return false;
  }
}

t.test('http.engine uws with http.tls.requestCert is refused at start: uWebSockets.js cannot require a client certificate', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const config = join(dir, 'c.json');
  await writeFile(config, JSON.stringify({ http: { engine: 'uws', tls: { keyFile: certs.serverKey, certFile: certs.serverCert, caFile: certs.caCert, requestCert: true } } }));
  const child = spawn(process.execPath, [mainJs, 'start', '--data-dir', join(dir, 'data'), '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.equal(code, 2);
  t.match(stderr, /tls\.requestCert: http\.engine uws cannot require a client certificate \(uWebSockets\.js admits clients that send none\)/);
});
