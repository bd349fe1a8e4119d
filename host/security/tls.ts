// TLS for every door: PEM files named in a listener's `tls` block (host/config/listener.ts) become
// one secure context, checked before anything binds and reloaded on SIGHUP.
//
// Files (read whole, never written): `keyFile` one PEM private key (PKCS#1, PKCS#8 or SEC1, not
// encrypted); `certFile` the server certificate first, then any intermediates; `caFile` one or
// more PEM CA certificates that client certificates must chain to (mutual TLS), and for a client
// (uplink, inter-node) the CAs the server's certificate must chain to; `crlFile` one or more
// PEM certificate revocation lists (-----BEGIN X509 CRL-----, as `openssl ca -gencrl` writes
// them), checked against every client certificate when `requestCert` is on.
//
// CRLs: OpenSSL checks the whole client chain (node sets CRL_CHECK and CRL_CHECK_ALL), so the
// file must hold a CRL from every CA that issues a certificate in it (for a one-level CA, that
// CA's own), and a CRL past its nextUpdate fails every client ("CRL has expired"): the start and
// each reload warn about that, and about a CRL no CA in caFile issued. The file is re-read with
// the certificates on SIGHUP: revoking a certificate = `openssl ca -revoke`, `-gencrl`, SIGHUP.
// A connection already open is not re-checked (TLS verifies once, at the handshake).
//
// Start-up checks, each an error naming the config key and the file: missing, unreadable, not
// PEM, a key that does not belong to the certificate, a CA file with no certificate. An expired
// (or not yet valid) certificate starts with a warning: the operator may be replacing it, and a
// node that refuses to start cannot be told to reload.
//
// Reload (SIGHUP): the same checks run on the new files; only when all pass does each server get
// `setSecureContext` — connections already open keep the session they negotiated, new handshakes
// use the new files. A failed reload keeps the old context and says why (the files may be half
// copied: better the old certificate than a listener that refuses everyone).
//
// Bounds: a handshake that has not finished within `handshakeTimeoutMs` is dropped (node's
// `handshakeTimeout`; its default of 120 s would let a slow-loris client hold sockets for two
// minutes each). Sockets in handshake count towards the listener's `connectionsMax`.
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as tls from 'node:tls';
import type * as https from 'node:https';
import type { TlsOptions } from '../config/listener.js';
import { principalFromCertificateSubject, type Principal } from './principal.js';

export type { TlsOptions } from '../config/listener.js';

// node:tls and node:https are required when a door has TLS configured (issue 14's footprint: a
// node without TLS never loads them, ~0.8 MiB of RSS). Built-ins: a synchronous require cannot fail.
const requireBuiltin = createRequire(import.meta.url);
let tlsModule: typeof tls | undefined;
let httpsModule: typeof https | undefined;
const nodeTls = (): typeof tls => (tlsModule ??= requireBuiltin('node:tls') as typeof tls);
const nodeHttps = (): typeof https => (httpsModule ??= requireBuiltin('node:https') as typeof https);

/** A handshake longer than this is dropped: a LAN client on a Pi finishes in tens of ms; 10 s leaves room for a slow link without letting idle sockets pile up. */
export const TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT = 10_000;
/** Warn at start and reload when the certificate ends within this many days (time to renew). */
const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;

/** A problem with the TLS files, naming the config key (`kafka.tls.certFile`) and the path. */
export class TlsFileError extends Error {
  constructor(
    readonly key: string,
    readonly file: string,
    readonly why: string,
  ) {
    super(`${key}: ${file}: ${why}`);
    this.name = 'TlsFileError';
  }
}

/** The checked contents of a `tls` block's files. */
export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  ca: Buffer | null;
  /** One PEM block per CRL (node's `crl` option reads one CRL per entry); empty = no CRL checking. */
  crls: Buffer[];
  /** Revoked serials across the CRLs, for the log line. */
  revokedCount: number;
  /** The leaf certificate's subject and end of validity (for logs and the expiry warning). */
  subject: string;
  validTo: Date;
  /** Non-fatal findings (expired, expiring soon, not yet valid). */
  warnings: string[];
}

function readPem(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'file not readable (permission denied)' : code === 'EISDIR' ? 'is a directory, not a PEM file' : `cannot read (${code ?? (err as Error).message})`;
    throw new TlsFileError(key, file, why);
  }
}

/** The PEM certificates in `pem`, in order; a TlsFileError when there is none or one does not parse. */
function certificatesOf(key: string, file: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new TlsFileError(key, file, 'no PEM certificate (-----BEGIN CERTIFICATE-----) in the file');
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new TlsFileError(key, file, `certificate ${i + 1} does not parse (${(err as Error).message})`);
    }
  });
}

function validityWarnings(certKey: string, file: string, cert: X509Certificate, nowMs: number): string[] {
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  if (to <= nowMs) return [`${certKey}: ${file}: certificate expired on ${new Date(to).toISOString()}: clients will refuse it; replace the file and send SIGHUP`];
  if (from > nowMs) return [`${certKey}: ${file}: certificate is not valid before ${new Date(from).toISOString()}`];
  if (to - nowMs < EXPIRY_WARNING_DAYS * DAY_MS) return [`${certKey}: ${file}: certificate expires on ${new Date(to).toISOString()} (less than ${EXPIRY_WARNING_DAYS} days)`];
  return [];
}

/**
 * Reads and checks a `tls` block's files. `configKey` is the block's key (`kafka.tls`), so every
 * error names the exact key and file. Never logs key material.
 */
export function loadTlsMaterial(configKey: string, o: TlsOptions, nowMs = Date.now()): TlsMaterial {
  const keyKey = `${configKey}.keyFile`;
  const certKey = `${configKey}.certFile`;
  const keyPem = readPem(keyKey, o.keyFile);
  const certPem = readPem(certKey, o.certFile);
  const caPem = o.caFile ? readPem(`${configKey}.caFile`, o.caFile) : null;
  let privateKey;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch (err) {
    const encrypted = /ENCRYPTED/.test(keyPem.toString('latin1'));
    throw new TlsFileError(keyKey, o.keyFile, encrypted ? 'the private key is encrypted (a passphrase is not supported: store it unencrypted, mode 0600)' : `not a PEM private key (${(err as Error).message})`);
  }
  const [leaf] = certificatesOf(certKey, o.certFile, certPem);
  if (!leaf.checkPrivateKey(privateKey)) throw new TlsFileError(keyKey, o.keyFile, `the private key does not match the certificate in ${o.certFile} (${certKey})`);
  const cas = caPem && o.caFile ? certificatesOf(`${configKey}.caFile`, o.caFile, caPem) : [];
  const crl = o.crlFile ? loadCrls(`${configKey}.crlFile`, o.crlFile, cas, nowMs) : { blocks: [], revoked: 0, warnings: [] };
  const material = {
    key: keyPem,
    cert: certPem,
    ca: caPem,
    crls: crl.blocks,
    revokedCount: crl.revoked,
    subject: leaf.subject.replace(/\n/g, ', '),
    validTo: new Date(leaf.validTo),
    warnings: [...validityWarnings(certKey, o.certFile, leaf, nowMs), ...crl.warnings],
  };
  try {
    nodeTls().createSecureContext(secureContextOptions({ ...material, crls: [] }));
  } catch (err) {
    throw new TlsFileError(configKey, o.certFile, `OpenSSL refused the files (${(err as Error).message})`);
  }
  if (o.crlFile && material.crls.length > 0) {
    try {
      nodeTls().createSecureContext(secureContextOptions(material));
    } catch (err) {
      throw new TlsFileError(`${configKey}.crlFile`, o.crlFile, `OpenSSL refused the revocation list (${(err as Error).message})`);
    }
  }
  return material;
}

function secureContextOptions(m: TlsMaterial): tls.SecureContextOptions {
  return { key: m.key, cert: m.cert, ...(m.ca ? { ca: m.ca } : {}), ...(m.crls.length > 0 ? { crl: m.crls } : {}), minVersion: 'TLSv1.2' };
}

/**
 * Reads a CRL file: every `X509 CRL` PEM block, each walked far enough (DER, RFC 5280 §5.1) to
 * know its issuer, its nextUpdate and how many serials it revokes. OpenSSL parses and checks
 * the signature when the context is built; this is for the checks OpenSSL would only report at
 * a client's handshake (expired, issued by a CA the listener does not know).
 */
function loadCrls(key: string, file: string, cas: X509Certificate[], nowMs: number): { blocks: Buffer[]; revoked: number; warnings: string[] } {
  const pem = readPem(key, file).toString('latin1');
  const blocks = pem.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? [];
  if (blocks.length === 0) throw new TlsFileError(key, file, 'no PEM revocation list (-----BEGIN X509 CRL-----) in the file');
  const caSubjects = new Set(cas.map((c) => subjectDer(c).toString('hex')));
  const warnings: string[] = [];
  let revoked = 0;
  blocks.forEach((block, i) => {
    let crl: CrlFacts;
    try {
      crl = crlFacts(Buffer.from(block.replace(/-----[A-Z0-9 ]+-----|\s/g, ''), 'base64'));
    } catch (err) {
      throw new TlsFileError(key, file, `revocation list ${i + 1} does not parse (${(err as Error).message})`);
    }
    revoked += crl.revoked;
    const which = blocks.length > 1 ? `revocation list ${i + 1}` : 'revocation list';
    if (crl.nextUpdate !== null && crl.nextUpdate.getTime() <= nowMs) warnings.push(`${key}: ${file}: ${which} expired on ${crl.nextUpdate.toISOString()} (nextUpdate): every client certificate it covers is refused until a fresh one is in place (openssl ca -gencrl, then SIGHUP)`);
    if (cas.length > 0 && !caSubjects.has(crl.issuer.toString('hex'))) warnings.push(`${key}: ${file}: ${which} is not issued by a CA in caFile: clients whose chain it does not cover are refused ("unable to get certificate CRL")`);
  });
  return { blocks: blocks.map((b) => Buffer.from(b, 'latin1')), revoked, warnings };
}

interface CrlFacts {
  /** The issuer Name, DER (compared byte for byte with CA subjects, as OpenSSL matches them). */
  issuer: Buffer;
  nextUpdate: Date | null;
  revoked: number;
}

/** One DER element: tag, where its contents start and end (short and long length forms; no indefinite length in DER). */
function derAt(der: Buffer, offset: number): { tag: number; start: number; end: number } {
  if (offset + 2 > der.length) throw new Error('truncated DER');
  const tag = der[offset];
  let length = der[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || start + n > der.length) throw new Error('bad DER length');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + der[start + i];
    start += n;
  }
  if (start + length > der.length) throw new Error('truncated DER');
  return { tag, start, end: start + length };
}

/** The children of a constructed element. */
function derChildren(der: Buffer, el: { start: number; end: number }): Array<{ tag: number; start: number; end: number; whole: Buffer }> {
  const out = [];
  for (let at = el.start; at < el.end; ) {
    const c = derAt(der, at);
    out.push({ ...c, whole: der.subarray(at, c.end) });
    at = c.end;
  }
  return out;
}

const DER_SEQUENCE = 0x30;
const DER_INTEGER = 0x02;
const DER_UTC_TIME = 0x17;
const DER_GENERALIZED_TIME = 0x18;

function derTime(der: Buffer, el: { tag: number; start: number; end: number }): Date {
  const text = der.toString('latin1', el.start, el.end);
  // UTCTime YYMMDDHHMMSSZ (years 50..99 are 19xx, RFC 5280 §4.1.2.5.1); GeneralizedTime YYYYMMDDHHMMSSZ.
  const m = el.tag === DER_UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) throw new Error(`bad time ${text}`);
  const year = el.tag === DER_UTC_TIME ? (Number(m[1]) >= 50 ? 1900 : 2000) + Number(m[1]) : Number(m[1]);
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/** CertificateList ::= SEQUENCE { tbsCertList SEQUENCE { version?, signature, issuer, thisUpdate, nextUpdate?, revokedCertificates?, [0] extensions? }, ... } */
function crlFacts(der: Buffer): CrlFacts {
  const outer = derAt(der, 0);
  if (outer.tag !== DER_SEQUENCE) throw new Error('not a DER SEQUENCE');
  const tbs = derChildren(der, outer)[0];
  if (!tbs || tbs.tag !== DER_SEQUENCE) throw new Error('no tbsCertList');
  const fields = derChildren(der, tbs);
  let i = fields[0]?.tag === DER_INTEGER ? 1 : 0; // version (v2) is optional
  i++; // signature algorithm
  const issuer = fields[i++];
  if (!issuer || issuer.tag !== DER_SEQUENCE) throw new Error('no issuer');
  i++; // thisUpdate
  let nextUpdate: Date | null = null;
  if (fields[i] && (fields[i].tag === DER_UTC_TIME || fields[i].tag === DER_GENERALIZED_TIME)) nextUpdate = derTime(der, fields[i++]);
  const revoked = fields[i]?.tag === DER_SEQUENCE ? derChildren(der, fields[i]).length : 0;
  return { issuer: Buffer.from(issuer.whole), nextUpdate, revoked };
}

/** A certificate's subject Name, DER: TBSCertificate ::= SEQUENCE { [0] version?, serial, signature, issuer, validity, subject, ... }. */
function subjectDer(cert: X509Certificate): Buffer {
  const der = cert.raw;
  const tbs = derChildren(der, derAt(der, 0))[0];
  const fields = derChildren(der, tbs);
  const first = fields[0].tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version
  return Buffer.from(fields[first + 4].whole);
}

/** What a reload did, for the log line. */
export type TlsReloadResult = { listener: string; ok: true; subject: string; validTo: string; warnings: string[] } | { listener: string; ok: false; reason: string };

/** Where a reload result goes (the node's logger at warn/info). */
export interface TlsLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/**
 * One listener's TLS: the checked files, the node `tls.Server`s that use them (a door may have
 * several), and the reload. Built once at start (throws TlsFileError), before the bind.
 */
export class ServerTls {
  private material: TlsMaterial;
  private readonly servers = new Set<tls.Server>();
  handshakeFailures = 0;

  constructor(
    readonly listener: string,
    readonly configKey: string,
    readonly options: TlsOptions,
    private readonly log: TlsLog,
  ) {
    this.material = loadTlsMaterial(configKey, options);
    for (const w of this.material.warnings) log.warn({ listener, setting: configKey }, w);
    if (options.crlFile) log.info({ listener, setting: `${configKey}.crlFile`, file: options.crlFile, revoked: this.material.revokedCount }, 'client certificates are checked against the revocation list');
  }

  get handshakeTimeoutMs(): number {
    return this.options.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT;
  }

  /**
   * Options for `tls.createServer` / `https.createServer`: the context, client certificates when
   * asked, the handshake bound. `refuse`: where a client certificate the CA does not verify is
   * refused — 'handshake' (Kafka, MQTT: the connection ends, the client sees the handshake fail)
   * or 'door' (HTTP: the handshake completes and the door answers every request 401 naming why,
   * certificateRefusal below, as nginx's ssl_verify_client does; a browser shows the reason).
   */
  serverOptions(refuse: 'handshake' | 'door' = 'handshake'): tls.TlsOptions {
    return {
      ...secureContextOptions(this.material),
      requestCert: this.options.requestCert === true,
      // With requestCert, a client without a certificate (or with one from another CA) fails the
      // handshake: mutual TLS is all-or-nothing per listener, as Kafka's ssl.client.auth=required.
      rejectUnauthorized: this.options.requestCert === true && refuse === 'handshake',
      handshakeTimeout: this.handshakeTimeoutMs,
    };
  }

  /** Registers a server for reloads and logs (at debug) and counts failed handshakes: a plain-text client on a TLS port ends here. */
  track<S extends tls.Server>(server: S): S {
    this.servers.add(server);
    server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      this.handshakeFailures++;
      // A refused client certificate ends here too (node checks the chain and the CRL after the
      // handshake and closes the socket: err is then only ECONNRESET); say which and why.
      const refused = socket.authorizationError ? certificateRefusal(socket, this.configKey) : null;
      this.log.debug({ listener: this.listener, remote: `${socket.remoteAddress}:${socket.remotePort}`, err: err.code ?? err.message, ...(refused ? { clientCertificate: refused } : {}) }, 'TLS handshake failed');
      // With a listener on this event node leaves the socket open (a timed-out handshake too): close it.
      socket.destroy();
    });
    server.once('close', () => this.servers.delete(server));
    return server;
  }

  /** An HTTPS server for a door that speaks HTTP (the registry, MQTT over secure WebSocket), tracked like `createServer`'s. */
  createHttpsServer(handler: Parameters<typeof https.createServer>[1]): https.Server {
    return this.track(nodeHttps().createServer(this.serverOptions(), handler));
  }

  /** A `tls.Server` for a door that reads plain sockets: `onSecure` gets each connection once its handshake is done. */
  createServer(onSecure: (socket: tls.TLSSocket) => void): tls.Server {
    return this.track(nodeTls().createServer({ ...this.serverOptions(), noDelay: true }, onSecure));
  }

  /** Re-reads the files; on success new handshakes use them, on failure nothing changes and the reason is returned. */
  reload(): TlsReloadResult {
    let next: TlsMaterial;
    try {
      next = loadTlsMaterial(this.configKey, this.options);
      for (const s of this.servers) s.setSecureContext(this.contextOptionsFor(next));
    } catch (err) {
      const reason = (err as Error).message;
      this.log.warn({ listener: this.listener, setting: this.configKey }, `TLS reload failed, keeping the previous certificate: ${reason}`);
      return { listener: this.listener, ok: false, reason };
    }
    this.material = next;
    for (const w of next.warnings) this.log.warn({ listener: this.listener, setting: this.configKey }, w);
    this.log.info({ listener: this.listener, subject: next.subject, validTo: next.validTo.toISOString(), ...(this.options.crlFile ? { crlRevoked: next.revokedCount } : {}) }, 'TLS certificate reloaded');
    return { listener: this.listener, ok: true, subject: next.subject, validTo: next.validTo.toISOString(), warnings: next.warnings };
  }

  private contextOptionsFor(m: TlsMaterial): tls.SecureContextOptions {
    return secureContextOptions(m);
  }

  /** The current files (for a door that builds its context elsewhere, e.g. uWS's SSLApp). */
  current(): TlsMaterial {
    return this.material;
  }
}

/**
 * Writes made in one tick leave as one TLS record and one syscall: a door that writes many small
 * packets (MQTT's 4-byte PUBACKs, one `write` each in aedes) would otherwise pay a record, an
 * encryption call and a syscall per packet. Backpressure is unchanged: `write` still returns false
 * past the high-water mark; the data waits in the stream's own buffer until the uncork.
 */
export function coalesceWrites(socket: tls.TLSSocket): void {
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as typeof socket.write;
}

/** What OpenSSL's verify codes mean for a client certificate, in the operator's words. */
const REFUSAL_REASONS: Record<string, string> = {
  CERT_REVOKED: 'revoked (listed in crlFile)',
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not yet valid',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'not signed by a CA in caFile',
  UNABLE_TO_GET_ISSUER_CERT: 'not signed by a CA in caFile',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'not signed by a CA in caFile',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed, not signed by a CA in caFile',
  SELF_SIGNED_CERT_IN_CHAIN: 'chains to a CA that is not in caFile',
  UNABLE_TO_GET_CRL: 'no revocation list from its issuer in crlFile',
  CRL_HAS_EXPIRED: 'the revocation list in crlFile has expired (nextUpdate passed)',
  CRL_NOT_YET_VALID: 'the revocation list in crlFile is not yet valid',
  CRL_SIGNATURE_FAILURE: 'the revocation list in crlFile has a bad signature',
  INVALID_PURPOSE: 'not issued for client authentication (extendedKeyUsage)',
};

/**
 * Why a mutual-TLS connection's client certificate is not accepted, naming the setting
 * (`http.tls.crlFile`), or null when it was verified. For the log and the HTTP door's 401.
 */
export function certificateRefusal(socket: tls.TLSSocket, configKey: string): string | null {
  if (socket.authorized) return null;
  // A socket node has already closed (Kafka, MQTT: refused in the handshake) has no peer
  // certificate left to read, only the verify code; a live one without a certificate sent none.
  const cert = socket.destroyed ? undefined : socket.getPeerX509Certificate?.();
  // node sets the verify code as a string; its typings say Error.
  const raw = socket.authorizationError as unknown;
  const code = typeof raw === 'string' ? raw : ((raw as { code?: string } | null)?.code ?? (raw ? String(raw) : ''));
  if (!cert && (!socket.destroyed || !code)) return `no client certificate was sent (${configKey}.requestCert: one signed by ${configKey}.caFile is required)`;
  const why = (REFUSAL_REASONS[code] ?? 'not verified').replace(/\b(crlFile|caFile)\b/, `${configKey}.$1`);
  return `client certificate${cert ? ` ${principalFromCertificateSubject(cert.subject).name}` : ''} refused: ${why} (${code})`;
}

/**
 * The principal of a mutual-TLS connection, or null when the client sent no verified certificate
 * (then the door's other authentication, or ANONYMOUS, applies).
 */
export function peerPrincipal(socket: tls.TLSSocket): Principal | null {
  if (!socket.authorized) return null;
  const cert = socket.getPeerX509Certificate?.();
  if (!cert) return null;
  return principalFromCertificateSubject(cert.subject);
}

/** Client-side TLS (uplink, inter-node): the server's certificate is verified against `caFile` (else the system's CAs), and the host name checked. */
export interface ClientTlsOptions {
  /** PEM CA bundle the server must chain to; null = the system's CAs. */
  caFile: string | null;
  /** Client certificate and key for mutual TLS; both or neither. */
  certFile: string | null;
  keyFile: string | null;
  /** Name checked against the server certificate (SNI too); null = the host connected to. */
  serverName: string | null;
}

/** Reads and checks a client's TLS files (errors name `configKey.<field>` and the file) into `tls.connect` options. */
export function clientTlsOptions(configKey: string, o: ClientTlsOptions): tls.ConnectionOptions {
  const ca = o.caFile ? readPem(`${configKey}.caFile`, o.caFile) : undefined;
  if (ca && o.caFile) certificatesOf(`${configKey}.caFile`, o.caFile, ca);
  if ((o.certFile === null) !== (o.keyFile === null)) throw new TlsFileError(`${configKey}.${o.certFile ? 'keyFile' : 'certFile'}`, '(unset)', 'a client certificate needs both certFile and keyFile');
  const own = o.certFile && o.keyFile ? loadTlsMaterial(configKey, { certFile: o.certFile, keyFile: o.keyFile, caFile: null, requestCert: false, crlFile: null }) : null;
  return { ...(ca ? { ca } : {}), ...(own ? { key: own.key, cert: own.cert } : {}), ...(o.serverName ? { servername: o.serverName } : {}), rejectUnauthorized: true, minVersion: 'TLSv1.2' };
}
