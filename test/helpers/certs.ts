// Test certificates made fresh per test run with /usr/bin/openssl into a temp dir (no key material
// is ever committed): a CA, a server certificate for 127.0.0.1/localhost signed by it, a client
// certificate (CN=sensor-1,OU=plant,O=acme), a second CA with a server and a client certificate
// of its own (the "wrong CA" cases), an expired server certificate, a second server certificate
// from the same CA (for reload tests), and a client certificate (CN=sensor-2) that the CA then
// revokes with `openssl ca -revoke`, with the CA's revocation lists from before and after
// (`openssl ca -gencrl`).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './index.js';

export const OPENSSL = '/usr/bin/openssl';

export interface CertFiles {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** Another server certificate from the same CA (different serial and subject O), for reloads. */
  server2Cert: string;
  server2Key: string;
  clientCert: string;
  clientKey: string;
  /** For inter-node TLS: server and client use, SAN 127.0.0.1/localhost, signed by the CA. */
  nodeCert: string;
  nodeKey: string;
  /** The subject of clientCert in Kafka's principal form (RFC 2253, most specific first). */
  clientPrincipal: string;
  otherCaCert: string;
  /** Signed by the other CA. */
  otherClientCert: string;
  otherClientKey: string;
  otherServerCert: string;
  otherServerKey: string;
  /** Signed by the CA, validity ended yesterday. */
  expiredCert: string;
  expiredKey: string;
  /** Signed by the CA (CN=sensor-2,OU=plant,O=acme), then revoked. */
  revokedCert: string;
  revokedKey: string;
  revokedPrincipal: string;
  /** The CA's CRL made before the revocation (lists nothing) and after it (lists revokedCert). */
  crlBefore: string;
  crlAfter: string;
}

function ossl(dir: string, args: string[]): void {
  execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A key and a certificate signed by `ca` (paths in dir), with extensions from an ext file. */
function issue(dir: string, name: string, subject: string, ca: { cert: string; key: string }, ext: string, validity: string[] = ['-days', '30']): void {
  ossl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  ossl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', `${name}.crt`, '-extfile', `${name}.ext`, ...validity]);
}

/** `openssl x509 -req` (3.0) cannot back-date a certificate; `openssl ca` with -startdate/-enddate can. */
function issueExpired(dir: string, ca: { cert: string; key: string }): void {
  const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  ossl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'expired.key', '-out', 'expired.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'expired.ext'), SERVER_EXT);
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  writeFileSync(join(dir, 'ca.cnf'), '[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n');
  ossl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-cert', ca.cert, '-keyfile', ca.key, '-in', 'expired.csr', '-out', 'expired.crt', '-notext', '-extfile', 'expired.ext', '-startdate', day(-3), '-enddate', day(-1)]);
}

/** A client certificate issued through `openssl ca` (so the CA's database knows it), revoked, with the CRLs from before and after. */
function issueRevoked(dir: string, ca: { cert: string; key: string }): void {
  const caArgs = ['-batch', '-config', 'ca.cnf', '-cert', ca.cert, '-keyfile', ca.key];
  ossl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'revoked.key', '-out', 'revoked.csr', '-subj', '/O=acme/OU=plant/CN=sensor-2']);
  writeFileSync(join(dir, 'revoked.ext'), CLIENT_EXT);
  ossl(dir, ['ca', ...caArgs, '-preserveDN', '-in', 'revoked.csr', '-out', 'revoked.crt', '-notext', '-extfile', 'revoked.ext', '-days', '30']);
  ossl(dir, ['ca', ...caArgs, '-gencrl', '-crldays', '7', '-out', 'before.crl']);
  ossl(dir, ['ca', ...caArgs, '-revoke', 'revoked.crt', '-crl_reason', 'keyCompromise']);
  ossl(dir, ['ca', ...caArgs, '-gencrl', '-crldays', '7', '-out', 'after.crl']);
}

function makeCa(dir: string, name: string, cn: string): { cert: string; key: string } {
  ossl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '30', '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { cert: `${name}.crt`, key: `${name}.key` };
}

const SERVER_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n';
const CLIENT_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n';

/** Makes every certificate above in a fresh temp dir (removed when the test ends). P-256 keys: fast to make, what a Pi would use. */
export async function makeCerts(t: { teardown(fn: () => unknown): void }): Promise<CertFiles> {
  const dir = await tempDir(t, 'tributary-certs-');
  const ca = makeCa(dir, 'ca', 'Tributary Test CA');
  issue(dir, 'server', '/O=tributary-test/CN=localhost', ca, SERVER_EXT);
  issue(dir, 'server2', '/O=tributary-test-reloaded/CN=localhost', ca, SERVER_EXT);
  issue(dir, 'client', '/O=acme/OU=plant/CN=sensor-1', ca, CLIENT_EXT);
  issue(dir, 'node', '/O=tributary-test/CN=node', ca, SERVER_EXT.replace('extendedKeyUsage=serverAuth', 'extendedKeyUsage=serverAuth,clientAuth'));
  const other = makeCa(dir, 'other-ca', 'Someone Else CA');
  issue(dir, 'other-client', '/O=acme/OU=plant/CN=sensor-1', other, CLIENT_EXT);
  issue(dir, 'other-server', '/CN=localhost', other, SERVER_EXT);
  issueExpired(dir, ca);
  issueRevoked(dir, ca);
  const p = (f: string) => join(dir, f);
  return {
    dir,
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    server2Cert: p('server2.crt'),
    server2Key: p('server2.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    clientPrincipal: 'User:CN=sensor-1,OU=plant,O=acme',
    nodeCert: p('node.crt'),
    nodeKey: p('node.key'),
    otherCaCert: p('other-ca.crt'),
    otherClientCert: p('other-client.crt'),
    otherClientKey: p('other-client.key'),
    otherServerCert: p('other-server.crt'),
    otherServerKey: p('other-server.key'),
    expiredCert: p('expired.crt'),
    expiredKey: p('expired.key'),
    revokedCert: p('revoked.crt'),
    revokedKey: p('revoked.key'),
    revokedPrincipal: 'User:CN=sensor-2,OU=plant,O=acme',
    crlBefore: p('before.crl'),
    crlAfter: p('after.crl'),
  };
}
