// Purpose: mutual TLS, CRLs and live certificate reload on the HTTP/WebSocket door, against a real
// broker process, with clients nobody here wrote: curl (--cacert --cert --key), the `ws` package's
// client over wss with a client certificate, Chromium (playwright-core's clientCertificates) and
// the admin CLI's --cacert/--cert/--cert-key. The certificate's subject is the principal
// (`User:CN=sensor-1,OU=plant,O=acme`) under the same ACLs as Kafka (authorization on: it may
// write `plant`, gets 403 TOPIC_AUTHORIZATION_FAILED on `orders`); no certificate, another CA's,
// and a certificate revoked in crlFile get 401 CLIENT_CERTIFICATE_REFUSED naming why (a wss
// upgrade: close 1008 with the reason); the CRL and the server certificate are swapped by SIGHUP
// while a wss connection stays open and keeps receiving; every refusal leaves the door serving.
// `http.engine: uws` with requestCert or handshakeTimeoutMs is refused at start naming the key; a
// non-loopback HTTP listener with mutual TLS counts as authenticated (TLS alone does not).
// Certificates are made per run (test/helpers/certs.ts). Missing tools skip locally, fail in CI.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, writeFile } from 'node:fs/promises';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { join } from 'node:path';
import WebSocket from 'ws';
import { chromium } from 'playwright-core';
import { cliJs, eventually, haveCommand, mainJs, sh, startBroker, tempDir } from '../helpers/index.js';
import { makeCerts, type CertFiles } from '../helpers/certs.js';

const CHROMIUM = '/usr/bin/chromium';
const haveCurl = haveCommand('curl');
if (process.env.CI) {
  if (!haveCurl) t.fail('curl is needed (Debian package curl)');
  if (!existsSync(CHROMIUM)) t.fail(`chromium is needed at ${CHROMIUM} (Debian package chromium)`);
}

const PROTOCOL = 'tributary.json.v1';

/** curl's answer: the HTTP status and body (status 0 = no HTTP answer; stderr says why). */
async function curl(url: string, args: string[]): Promise<{ status: number; body: string; stderr: string }> {
  const r = await sh('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code}', ...args, url], undefined, 20_000);
  const at = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(at + 1)) || 0, body: r.stdout.slice(0, at), stderr: r.stderr };
}

function servedCertificate(port: number, ca: string, cert: string, key: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(ca), cert: readFileSync(cert), key: readFileSync(key) }, () => {
      const c = s.getPeerCertificate();
      s.end();
      resolve(c);
    });
    s.on('error', reject);
  });
}

interface Dashboard {
  ws: WebSocket;
  frames: Array<Record<string, unknown>>;
  closed: Promise<{ code: number; reason: string }>;
}

/** A wss dashboard socket with a client certificate; resolves once open (or closed first). */
function dashboard(port: number, certs: CertFiles, cert: string, key: string): Promise<Dashboard> {
  const ws = new WebSocket(`wss://localhost:${port}/ws`, PROTOCOL, { ca: readFileSync(certs.caCert), cert: readFileSync(cert), key: readFileSync(key) });
  const frames: Array<Record<string, unknown>> = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('message', (data) => frames.push(JSON.parse(data.toString())));
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ ws, frames, closed }));
    void closed.then(() => resolve({ ws, frames, closed }));
  });
}

const valuesOf = (frames: Array<Record<string, unknown>>) => frames.filter((f) => f.type === 'records').flatMap((f) => (f.records as Array<{ value: string }>).map((r) => r.value));

async function bootstrapAcls(t: { equal: typeof import('tap').default.equal; teardown: typeof import('tap').default.teardown }, dataDir: string, certs: CertFiles): Promise<void> {
  const b = await startBroker(t, { dataDir });
  // ALL on `plant` includes CREATE (its first produce creates it), WRITE and READ; nothing on `orders`.
  const r = await sh(process.execPath, [cliJs, 'acls', 'add', '--principal', certs.clientPrincipal, '--operation', 'all', '--topic', 'plant', '--kafka', b.listeners.kafka!]);
  t.equal(r.code, 0, r.stderr);
  t.equal(await b.stop(), 0);
}

t.test('HTTP mutual TLS: certificate principals under the ACLs, CRL and certificate swapped by SIGHUP, refusals named; curl, ws, Chromium, the CLI', { skip: haveCurl ? false : 'curl not installed' }, async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const dataDir = join(dir, 'data');
  await bootstrapAcls(t, dataDir, certs);
  // The served files are copies, so SIGHUP tests can replace them.
  const served = { key: join(dir, 'served.key'), cert: join(dir, 'served.crt'), crl: join(dir, 'served.crl') };
  await copyFile(certs.serverKey, served.key);
  await copyFile(certs.serverCert, served.cert);
  await copyFile(certs.crlBefore, served.crl);
  const config = join(dir, 'c.json');
  await writeFile(config, JSON.stringify({
    http: { tls: { keyFile: served.key, certFile: served.cert, caFile: certs.caCert, requestCert: true, crlFile: served.crl } },
    security: { authorization: true, superUsers: ['User:admin'] },
  }));
  const b = await startBroker(t, { dataDir, args: ['--config', config] });
  const port = b.port('http');
  const base = `https://localhost:${port}`;
  t.ok(b.logs.some((l) => /http\.tls is set: the HTTP\/WebSocket door runs on node:http \+ ws/.test(String(l.msg))), 'the start log says why the node engine serves TLS');
  const health = await curl(`${base}/healthz`, ['--cacert', certs.caCert, '--cert', certs.clientCert, '--key', certs.clientKey]);
  t.equal(health.status, 200, health.stderr);
  t.match(JSON.parse(health.body).http, { engine: 'node' }, '/healthz names the engine');

  const sensor1 = ['--cacert', certs.caCert, '--cert', certs.clientCert, '--key', certs.clientKey];
  const post = (who: string[], topic: string, value: string) => curl(`${base}/topics/${topic}/records`, [...who, '-X', 'POST', '-H', 'content-type: application/json', '-d', JSON.stringify([{ value }])]);

  await t.test('curl: the certificate principal writes where its ACL allows, 403 where not', async (t) => {
    const ok = await post(sensor1, 'plant', 'from-sensor-1');
    t.equal(ok.status, 200, `produce to plant: ${ok.body} ${ok.stderr}`);
    const denied = await post(sensor1, 'orders', 'x');
    t.equal(denied.status, 403);
    t.match(JSON.parse(denied.body).error, { code: 'TOPIC_AUTHORIZATION_FAILED', message: /User:CN=sensor-1,OU=plant,O=acme is not allowed to write topic orders/ });
  });

  await t.test('curl: no certificate, another CA, and a certificate with no ACL are refused with their reasons', async (t) => {
    const none = await curl(`${base}/topics`, ['--cacert', certs.caCert]);
    t.equal(none.status, 401);
    t.match(JSON.parse(none.body).error, { code: 'CLIENT_CERTIFICATE_REFUSED', message: /no client certificate was sent \(http\.tls\.requestCert/ });
    const other = await curl(`${base}/healthz`, ['--cacert', certs.caCert, '--cert', certs.otherClientCert, '--key', certs.otherClientKey]);
    t.equal(other.status, 401, 'even /healthz: the check runs before any route');
    t.match(JSON.parse(other.body).error.message, /refused: not signed by a CA in http\.tls\.caFile \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    // sensor-2 is not revoked yet (crlBefore): verified, but its principal has no ACL.
    const noAcl = await curl(`${base}/topics/plant/records?partition=0&offset=0`, ['--cacert', certs.caCert, '--cert', certs.revokedCert, '--key', certs.revokedKey]);
    t.equal(noAcl.status, 403, noAcl.body);
    t.match(noAcl.body, /User:CN=sensor-2,OU=plant,O=acme is not allowed to read topic plant/);
  });

  const before = await dashboard(port, certs, certs.clientCert, certs.clientKey);
  t.equal(before.ws.readyState, WebSocket.OPEN, 'a wss dashboard with the client certificate opens');
  before.ws.send(JSON.stringify({ type: 'subscribe', id: 1, topic: 'plant', start: 'earliest' }));
  await eventually(() => valuesOf(before.frames).includes('from-sensor-1'), 10_000);
  t.pass('and reads plant with the certificate principal');

  await t.test('SIGHUP: the CRL now revokes sensor-2 (401 CERT_REVOKED, wss close 1008) and the server certificate is swapped; the open wss survives', async (t) => {
    await copyFile(certs.crlAfter, served.crl);
    await copyFile(certs.server2Key, served.key);
    await copyFile(certs.server2Cert, served.cert);
    const reloads = b.logs.filter((l) => l.msg === 'TLS certificate reloaded').length;
    b.child.kill('SIGHUP');
    await eventually(() => b.logs.filter((l) => l.msg === 'TLS certificate reloaded').length > reloads, 5000);
    t.match(b.logs.filter((l) => l.msg === 'TLS certificate reloaded').at(-1), { listener: 'http', crlRevoked: 1 });
    t.equal((await servedCertificate(port, certs.caCert, certs.clientCert, certs.clientKey)).subject.O, 'tributary-test-reloaded', 'a new connection sees the new certificate');
    const revoked = await curl(`${base}/topics`, ['--cacert', certs.caCert, '--cert', certs.revokedCert, '--key', certs.revokedKey]);
    t.equal(revoked.status, 401);
    t.match(JSON.parse(revoked.body).error, { code: 'CLIENT_CERTIFICATE_REFUSED', message: /client certificate CN=sensor-2,OU=plant,O=acme refused: revoked \(listed in http\.tls\.crlFile\) \(CERT_REVOKED\)/ });
    const revokedWs = await dashboard(port, certs, certs.revokedCert, certs.revokedKey);
    const close = await revokedWs.closed;
    t.equal(close.code, 1008, 'a revoked certificate on wss: close 1008');
    t.match(close.reason, /CERT_REVOKED/);
    t.equal(before.ws.readyState, WebSocket.OPEN, 'the wss opened before the reload is still open');
    const ok = await post(sensor1, 'plant', 'after-reload');
    t.equal(ok.status, 200, 'the door keeps serving a good certificate');
    await eventually(() => valuesOf(before.frames).includes('after-reload'), 10_000);
    t.pass('and the old wss connection receives the record produced after the reload');
    const fresh = await dashboard(port, certs, certs.clientCert, certs.clientKey);
    t.equal(fresh.ws.readyState, WebSocket.OPEN, 'a new wss connection opens against the new certificate');
    fresh.ws.close();
  });

  await t.test('the admin CLI over https: --cacert, --cert, --cert-key; each missing piece named', async (t) => {
    const cli = (args: string[]) => sh(process.execPath, [cliJs, 'topics', 'list', '--broker', base, ...args], undefined, 20_000);
    const ok = await cli(['--cacert', certs.caCert, '--cert', certs.clientCert, '--cert-key', certs.clientKey]);
    t.equal(ok.code, 0, ok.stderr);
    t.match(ok.stdout, /^plant\t/m, 'lists the topics the certificate principal may describe');
    const noCa = await cli(['--cert', certs.clientCert, '--cert-key', certs.clientKey]);
    t.equal(noCa.code, 3);
    t.match(noCa.stderr, /not signed by a CA we trust \(SELF_SIGNED_CERT_IN_CHAIN\): pass that CA with --cacert FILE/);
    const noCert = await cli(['--cacert', certs.caCert]);
    t.equal(noCert.code, 1);
    t.match(noCert.stderr, /401 CLIENT_CERTIFICATE_REFUSED: no client certificate was sent .*--cert FILE --cert-key FILE/);
    const env = await sh('env', [`TRIBUTARY_CACERT=${certs.caCert}`, `TRIBUTARY_CERT=${certs.clientCert}`, `TRIBUTARY_CERT_KEY=${certs.clientKey}`, process.execPath, cliJs, 'topics', 'list', '--broker', base], undefined, 20_000);
    t.equal(env.code, 0, `the same from TRIBUTARY_CACERT/_CERT/_KEY: ${env.stderr}`);
    const plain = await sh(process.execPath, [cliJs, 'topics', 'list', '--broker', `http://localhost:${port}`], undefined, 20_000);
    t.equal(plain.code, 3);
    t.match(plain.stderr, /if the listener uses TLS, add --tls \(for --broker: an https:\/\/ URL\) and --cacert FILE/);
  });

  await t.test('Chromium with a client certificate: the console over https, a wss dashboard socket', { skip: existsSync(CHROMIUM) ? false : `chromium not found at ${CHROMIUM}` }, async (t) => {
    // Chromium takes client certificates only from an NSS database (no certutil here); playwright's
    // clientCertificates presents the certificate for the browser (its TLS proxy does the handshake
    // with the broker), so the broker sees a real client certificate from a real browser session.
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'] });
    t.teardown(() => browser.close());
    const context = await browser.newContext({ ignoreHTTPSErrors: true, clientCertificates: [{ origin: base, certPath: certs.clientCert, keyPath: certs.clientKey }] });
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await page.waitForSelector('#health.ok', { timeout: 15_000 });
    t.pass('the console loaded with the client certificate and reads /healthz');
    const opened = await page.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url, 'tributary.json.v1');
          ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe', id: 1, topic: 'plant', start: 'earliest' }));
          ws.onmessage = (m) => {
            if (String(m.data).includes('from-sensor-1')) (ws.close(), resolve('records'));
          };
          ws.onerror = () => resolve('error');
        }),
      `wss://localhost:${port}/ws`,
    );
    t.equal(opened, 'records', 'a page script reads plant over wss as the certificate principal');
  });

  before.ws.close();
  t.equal(await b.stop(), 0);
});

t.test('http.engine uws with http.tls.requestCert or handshakeTimeoutMs is refused at start, naming the key', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  for (const [key, extra, message] of [
    ['requestCert', { caFile: certs.caCert, requestCert: true, crlFile: certs.crlAfter }, /tls\.requestCert: http\.engine uws cannot require a client certificate .*set http\.engine to auto or node/],
    ['handshakeTimeoutMs', { handshakeTimeoutMs: 5000 }, /tls\.handshakeTimeoutMs: http\.engine uws has its own handshake timeout/],
  ] as const) {
    const config = join(dir, `${key}.json`);
    await writeFile(config, JSON.stringify({ http: { engine: 'uws', tls: { keyFile: certs.serverKey, certFile: certs.serverCert, ...extra } } }));
    const child = spawn(process.execPath, [mainJs, 'start', '--data-dir', join(dir, 'data'), '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    t.equal(code, 2, `${key}: exit 2`);
    t.match(stderr, message, stderr);
  }
});

t.test('HTTP mutual TLS and the exposure rule: a non-loopback HTTP listener with requestCert counts as authenticated; TLS alone does not', async (t) => {
  const certs = await makeCerts(t);
  const dir = await tempDir(t);
  const others = ['--host', '127.0.0.1', '--set', 'http.host=0.0.0.0'];
  const start = async (tls: object) => {
    const config = join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(config, JSON.stringify({ http: { tls } }));
    return config;
  };
  const tlsOnly = await start({ keyFile: certs.serverKey, certFile: certs.serverCert });
  const refused = await sh(process.execPath, [mainJs, 'start', '--data-dir', join(dir, 'data'), '--kafka-port', '0', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--http-port', '0', '--set', 'schemas.port=0', ...others, '--config', tlsOnly], undefined, 30_000);
  t.equal(refused.code, 2, 'TLS without authentication on 0.0.0.0 is refused');
  t.match(refused.stderr, /http listener on 0\.0\.0\.0 \(http\.host\) would accept anonymous clients/);
  const mtls = await start({ keyFile: certs.serverKey, certFile: certs.serverCert, caFile: certs.caCert, requestCert: true });
  const b = await startBroker(t, { dataDir: join(dir, 'data'), args: [...others, '--config', mtls] });
  t.match(b.listeners.http!, /^0\.0\.0\.0:/, 'mutual TLS opens the HTTP door to the network');
  t.notOk(b.logs.some((l) => /accepts anonymous clients/.test(String(l.msg))), 'without an anonymous warning');
  t.equal(await b.stop(), 0);
});
