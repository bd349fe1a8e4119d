// TLS for every door: PEM files named in a listener's `tls` block (host/config/listener.ts) become
// one secure context, checked before anything binds and reloaded on SIGHUP.
//
// Files (read whole, never written): `keyFile` one PEM private key (PKCS#1, PKCS#8 or SEC1, not
// encrypted); `certFile` the server certificate first, then any intermediates; `caFile` one or
// more PEM CA certificates that client certificates must chain to (mutual TLS), and for a client
// (uplink, inter-node) the CAs the server's certificate must chain to.
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
import tls from 'node:tls';
import type { TlsOptions } from '../config/listener.js';
import { principalFromCertificateSubject, type Principal } from './principal.js';

export type { TlsOptions } from '../config/listener.js';

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
  if (caPem && o.caFile) certificatesOf(`${configKey}.caFile`, o.caFile, caPem);
  const material = { key: keyPem, cert: certPem, ca: caPem, subject: leaf.subject.replace(/\n/g, ', '), validTo: new Date(leaf.validTo), warnings: validityWarnings(certKey, o.certFile, leaf, nowMs) };
  try {
    tls.createSecureContext(secureContextOptions(material));
  } catch (err) {
    throw new TlsFileError(configKey, o.certFile, `OpenSSL refused the files (${(err as Error).message})`);
  }
  return material;
}

function secureContextOptions(m: TlsMaterial): tls.SecureContextOptions {
  return { key: m.key, cert: m.cert, ...(m.ca ? { ca: m.ca } : {}), minVersion: 'TLSv1.2' };
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
  }

  get handshakeTimeoutMs(): number {
    return this.options.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT;
  }

  /** Options for `tls.createServer` / `https.createServer`: the context, client certificates when asked, the handshake bound. */
  serverOptions(): tls.TlsOptions {
    return {
      ...secureContextOptions(this.material),
      requestCert: this.options.requestCert === true,
      // With requestCert, a client without a certificate (or with one from another CA) fails the
      // handshake: mutual TLS is all-or-nothing per listener, as Kafka's ssl.client.auth=required.
      rejectUnauthorized: this.options.requestCert === true,
      handshakeTimeout: this.handshakeTimeoutMs,
    };
  }

  /** Registers a server for reloads and logs (at debug) and counts failed handshakes: a plain-text client on a TLS port ends here. */
  track<S extends tls.Server>(server: S): S {
    this.servers.add(server);
    server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      this.handshakeFailures++;
      this.log.debug({ listener: this.listener, remote: `${socket.remoteAddress}:${socket.remotePort}`, err: err.code ?? err.message }, 'TLS handshake failed');
      // With a listener on this event node leaves the socket open (a timed-out handshake too): close it.
      socket.destroy();
    });
    server.once('close', () => this.servers.delete(server));
    return server;
  }

  /** A `tls.Server` for a door that reads plain sockets: `onSecure` gets each connection once its handshake is done. */
  createServer(onSecure: (socket: tls.TLSSocket) => void): tls.Server {
    return this.track(tls.createServer({ ...this.serverOptions(), noDelay: true }, onSecure));
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
    this.log.info({ listener: this.listener, subject: next.subject, validTo: next.validTo.toISOString() }, 'TLS certificate reloaded');
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
  const own = o.certFile && o.keyFile ? loadTlsMaterial(configKey, { certFile: o.certFile, keyFile: o.keyFile, caFile: null, requestCert: false }) : null;
  return { ...(ca ? { ca } : {}), ...(own ? { key: own.key, cert: own.cert } : {}), ...(o.serverName ? { servername: o.serverName } : {}), rejectUnauthorized: true, minVersion: 'TLSv1.2' };
}
