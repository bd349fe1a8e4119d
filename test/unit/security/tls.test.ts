// Purpose: host/security/tls.ts on real PEM files made with openssl: each start-up check names the
// key and the file; the certificate subject becomes Kafka's default principal text; a reload that
// fails keeps the served certificate (checked over a real TLS socket), one that passes swaps it;
// a CRL file is read whole, counted, warned about when expired or foreign, and a revoked client
// certificate fails the handshake until a reload brings a CRL that does not list it.
import t from 'tap';
import { copyFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { loadTlsMaterial, ServerTls, TlsFileError, clientTlsOptions, TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT } from '../../../host/security/tls.js';
import { principalFromCertificateSubject } from '../../../host/security/principal.js';
import { execFileSync } from 'node:child_process';
import { makeCerts, OPENSSL } from '../../helpers/certs.js';
import { eventually, tempDir } from '../../helpers/index.js';
import { tlsRefusal } from '../../../host/config/listener.js';

const quiet = { info() {}, warn() {}, debug() {} };

t.test('tls: the certificate subject is the principal, most specific attribute first (Kafka DEFAULT rule)', async (t) => {
  t.same(principalFromCertificateSubject('O=acme\nOU=plant\nCN=sensor-1'), { type: 'User', name: 'CN=sensor-1,OU=plant,O=acme' });
  t.same(principalFromCertificateSubject('CN=solo'), { type: 'User', name: 'CN=solo' });
  // node prints values RFC 2253-escaped already (a comma inside a value is `\,`): the join stays unambiguous
  t.same(principalFromCertificateSubject('O=acme\\, inc\nCN=x'), { type: 'User', name: 'CN=x,O=acme\\, inc' });
});

t.test('tls: start-up checks name the key and the file', async (t) => {
  const c = await makeCerts(t);
  const dir = await tempDir(t);
  const ok = loadTlsMaterial('kafka.tls', { keyFile: c.serverKey, certFile: c.serverCert, caFile: c.caCert, requestCert: true });
  t.same(ok.warnings, []);
  t.match(ok.subject, /CN=localhost/);
  const err = (o: Parameters<typeof loadTlsMaterial>[1]) => t.throws(() => loadTlsMaterial('mqtt.tls', o));
  const caught = (o: Parameters<typeof loadTlsMaterial>[1]): TlsFileError => {
    try {
      loadTlsMaterial('mqtt.tls', o);
    } catch (e) {
      return e as TlsFileError;
    }
    throw new Error('no error');
  };
  err({ keyFile: join(dir, 'none'), certFile: c.serverCert, caFile: null, requestCert: false });
  t.match(caught({ keyFile: join(dir, 'none'), certFile: c.serverCert, caFile: null, requestCert: false }), { key: 'mqtt.tls.keyFile', why: 'file not found' });
  t.match(caught({ keyFile: c.serverKey, certFile: c.serverCert, caFile: join(dir, 'none'), requestCert: false }), { key: 'mqtt.tls.caFile' });
  t.match(caught({ keyFile: c.clientKey, certFile: c.serverCert, caFile: null, requestCert: false }), { key: 'mqtt.tls.keyFile', why: /does not match the certificate/ });
  await writeFile(join(dir, 'garbage.pem'), 'hello\n');
  t.match(caught({ keyFile: c.serverKey, certFile: join(dir, 'garbage.pem'), caFile: null, requestCert: false }), { key: 'mqtt.tls.certFile', why: /no PEM certificate/ });
  t.match(caught({ keyFile: c.serverKey, certFile: c.serverCert, caFile: join(dir, 'garbage.pem'), requestCert: false }), { key: 'mqtt.tls.caFile', why: /no PEM certificate/ });
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked.key');
    await copyFile(c.serverKey, locked);
    await chmod(locked, 0o000);
    t.match(caught({ keyFile: locked, certFile: c.serverCert, caFile: null, requestCert: false }), { key: 'mqtt.tls.keyFile', why: /not readable/ });
  }
  const expired = loadTlsMaterial('kafka.tls', { keyFile: c.expiredKey, certFile: c.expiredCert, caFile: null, requestCert: false });
  t.match(expired.warnings[0], /kafka\.tls\.certFile: .*expired\.crt: certificate expired on/);
  t.throws(() => clientTlsOptions('uplink.tls', { caFile: null, certFile: c.clientCert, keyFile: null, serverName: null }), /needs both certFile and keyFile/);
  t.equal(TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT, 10_000);
});

function servedOrg(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(String(s.getPeerCertificate().subject.O));
      s.end();
    });
    s.on('error', reject);
  });
}

t.test('tls: a failed reload keeps the served certificate; a good one swaps it for new handshakes', async (t) => {
  const c = await makeCerts(t);
  const dir = await tempDir(t);
  const key = join(dir, 'k.pem');
  const cert = join(dir, 'c.pem');
  await copyFile(c.serverKey, key);
  await copyFile(c.serverCert, cert);
  const warnings: string[] = [];
  const st = new ServerTls('test', 'kafka.tls', { keyFile: key, certFile: cert, caFile: null, requestCert: false }, { ...quiet, warn: (_o: object, m: string) => void warnings.push(m) });
  const server = st.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const ca = readFileSync(c.caCert);
  t.equal(await servedOrg(port, ca), 'tributary-test');
  await copyFile(c.server2Cert, cert); // the key still belongs to the old certificate: a half-copied renewal
  const failed = st.reload();
  t.equal(failed.ok, false);
  t.match(warnings.at(-1), /TLS reload failed, keeping the previous certificate: kafka\.tls\.keyFile: .* does not match/);
  t.equal(await servedOrg(port, ca), 'tributary-test', 'still the old certificate');
  await copyFile(c.server2Key, key);
  t.equal(st.reload().ok, true);
  t.equal(await servedOrg(port, ca), 'tributary-test-reloaded', 'new handshakes get the new certificate');
});

t.test('tls: crlFile is read whole (every CRL block), counted, and checked for expiry and issuer; a file with no CRL is refused naming the key', async (t) => {
  const c = await makeCerts(t);
  const dir = await tempDir(t);
  const base = { keyFile: c.serverKey, certFile: c.serverCert, caFile: c.caCert, requestCert: true };
  const after = loadTlsMaterial('kafka.tls', { ...base, crlFile: c.crlAfter });
  t.equal(after.revokedCount, 1, 'the revoked client certificate is listed');
  t.equal(after.crls.length, 1);
  t.same(after.warnings, []);
  t.equal(loadTlsMaterial('kafka.tls', { ...base, crlFile: c.crlBefore }).revokedCount, 0);
  // Two CRLs in one file: node's `crl` option reads one per entry, so both must be passed.
  const both = join(dir, 'both.crl');
  await writeFile(both, Buffer.concat([readFileSync(c.crlBefore), readFileSync(c.crlAfter)]));
  t.equal(loadTlsMaterial('kafka.tls', { ...base, crlFile: both }).crls.length, 2);
  // A CRL whose nextUpdate has passed: OpenSSL would refuse every client ("CRL has expired").
  const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
  const expired = join(dir, 'expired.crl');
  execFileSync(OPENSSL, ['ca', '-batch', '-config', 'ca.cnf', '-cert', c.caCert, '-keyfile', c.caKey, '-gencrl', '-crl_lastupdate', day(-3), '-crl_nextupdate', day(-1), '-out', expired], { cwd: c.dir, stdio: 'ignore' });
  t.match(loadTlsMaterial('kafka.tls', { ...base, crlFile: expired }).warnings, [/^kafka\.tls\.crlFile: .*expired\.crl: revocation list expired on .* \(nextUpdate\): every client certificate it covers is refused/]);
  // A CRL from a CA the listener does not trust covers none of its clients.
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'o.cnf'), '[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ndefault_md = sha256\n');
  const foreign = join(dir, 'foreign.crl');
  execFileSync(OPENSSL, ['ca', '-batch', '-config', 'o.cnf', '-cert', c.otherCaCert, '-keyfile', c.otherCaCert.replace(/\.crt$/, '.key'), '-gencrl', '-crldays', '1', '-out', foreign], { cwd: dir, stdio: 'ignore' });
  t.match(loadTlsMaterial('kafka.tls', { ...base, crlFile: foreign }).warnings, [/is not issued by a CA in caFile/]);
  const notCrl = (() => {
    try {
      loadTlsMaterial('kafka.tls', { ...base, crlFile: c.caCert });
    } catch (e) {
      return e as TlsFileError;
    }
    return null;
  })();
  t.match(notCrl, { key: 'kafka.tls.crlFile', why: /no PEM revocation list/ });
  t.equal(tlsRefusal({ ...base, requestCert: false, crlFile: c.crlAfter }), 'crlFile needs requestCert: true (a revocation list is checked against client certificates)');
  t.equal(tlsRefusal({ ...base, crlFile: c.crlAfter }), null);
});

t.test('tls: a revoked client certificate fails the handshake; a reload with the older CRL lets it in again; the refusal names the code', async (t) => {
  const c = await makeCerts(t);
  const dir = await tempDir(t);
  const crl = join(dir, 'served.crl');
  await copyFile(c.crlAfter, crl);
  const refusals: string[] = [];
  const log = { info() {}, warn() {}, debug: (o: { clientCertificate?: string }) => void (o.clientCertificate && refusals.push(o.clientCertificate)) };
  const tls = new ServerTls('kafka', 'kafka.tls', { keyFile: c.serverKey, certFile: c.serverCert, caFile: c.caCert, requestCert: true, crlFile: crl }, log);
  const server = tls.createServer((s) => s.end('hello\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const hello = (cert: string, key: string) =>
    new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(c.caCert), cert: readFileSync(cert), key: readFileSync(key) });
      let got = '';
      s.on('data', (d) => (got += d));
      s.on('end', () => resolve(got || 'closed'));
      s.on('error', (e: Error & { code?: string }) => resolve(`error ${e.code}`));
    });
  t.equal(await hello(c.clientCert, c.clientKey), 'hello\n');
  t.not(await hello(c.revokedCert, c.revokedKey), 'hello\n', 'the revoked certificate gets nothing');
  await eventually(() => refusals.length > 0, 2000);
  t.equal(refusals[0], 'client certificate refused: revoked (listed in kafka.tls.crlFile) (CERT_REVOKED)');
  await copyFile(c.crlBefore, crl);
  t.match(tls.reload(), { ok: true });
  t.equal(await hello(c.revokedCert, c.revokedKey), 'hello\n', 'after a reload with a CRL that does not list it, it is served');
});
