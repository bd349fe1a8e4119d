// One listener model for every door (Kafka, MQTT over TCP and WebSocket, HTTP/WebSocket): the
// same names for the same things — `host`, `port` (-1 off, 0 any free port), `connectionsMax`,
// and `tls` — and one handle for a bound listener. The TLS files are loaded and checked by
// host/security/tls.ts; here only their shape.
import { boolean, object, orNull, port, integer, string, type KeySchema } from './schema.js';

/** A bound listener: its name in the ready line, the address it got, and how to close it. */
export interface Listener {
  name: string;
  address: string;
  /** False once the listening socket has closed outside a stop (GET /healthz reports it). */
  listening?: () => boolean;
  /** What serves it, where a door has more than one engine (HTTP: uWS or node:http); the ready line names it. */
  engine?: string;
  close(): Promise<void>;
  /** Re-reads this listener's TLS files (SIGHUP); absent for a plain-TCP listener. Each result is logged by the listener itself. */
  reloadTls?(): Array<{ listener: string; ok: boolean }>;
}

/** Paths of the PEM files a TLS listener uses (host/security/tls.ts loads and checks them). */
export interface TlsOptions {
  keyFile: string;
  certFile: string;
  /** CA bundle for client certificates; null = the system's. */
  caFile: string | null;
  /** Ask clients for a certificate (mutual TLS): one signed by caFile is required, and its subject is the principal. */
  requestCert: boolean;
  /** A handshake not finished by then is dropped; absent = TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT (10 s, host/security/tls.ts). */
  handshakeTimeoutMs?: number;
  /** PEM certificate revocation list(s) checked against client certificates (needs requestCert); null/absent = none. Re-read on SIGHUP with the certificates. */
  crlFile?: string | null;
}

/** What every door's options share. */
export interface ListenerOptions {
  host: string;
  /** -1 = this listener is off; 0 = any free port (the ready line names the one bound). */
  port: number;
  /** Connections open at once; the next one is refused in the door's own way (logged and counted). */
  connectionsMax: number;
  /** null = plain TCP; else TLS with these files (docs/security.md#tls). */
  tls: TlsOptions | null;
}

/** The listener keys of a config section: `host` there may be null (= the top-level host). */
export const listenerConfigDefaults = {
  host: null as string | null, // null = the top-level host, so one setting moves every listener
  tls: null as TlsOptions | null, // plain TCP until certificate files are named: a node cannot make up a certificate clients would trust
};

export const tlsSchema: KeySchema = {
  anyOf: [
    { type: 'null' },
    // The handshake bound: 100 ms is below any real handshake over a LAN; 5 minutes is longer than any client waits.
    object({ keyFile: string(1), certFile: string(1), caFile: orNull(string(1)), requestCert: boolean(), handshakeTimeoutMs: integer(100, 300_000), crlFile: orNull(string(1)) }, ['keyFile', 'certFile']),
  ],
  'x-allowed': 'null (plain TCP) or { keyFile, certFile, caFile (null), requestCert (false), handshakeTimeoutMs (10000, 100..300000), crlFile (null) }: PEM paths, see docs/security.md#tls',
};

/** Schemas of the listener keys (host may be null in a config section). */
export function listenerSchemas(): Record<string, KeySchema> {
  return {
    host: orNull(string(1)),
    port: port(),
    // A million sockets is beyond any edge box's descriptors; the ceiling only catches typos.
    connectionsMax: integer(1, 1_000_000),
    tls: tlsSchema,
  };
}

/** Old key names still accepted (with a warning naming the new one), per section. */
export const DEPRECATED_KEYS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  kafka: { maxConnections: 'connectionsMax' },
  http: { maxSockets: 'connectionsMax' },
};

/**
 * Moves a deprecated key of an options object to its new name (in place), for callers that pass
 * options in code. Returns the old name used, if any, so a message can name what was written.
 */
export function renameDeprecated(sectionName: string, options: Record<string, unknown>): string | undefined {
  let used: string | undefined;
  for (const [old, now] of Object.entries(DEPRECATED_KEYS[sectionName] ?? {})) {
    if (!(old in options)) continue;
    if (options[old] !== undefined) options[now] = options[old];
    delete options[old];
    used = old;
  }
  return used;
}

/** What is wrong with a `tls` block's combination of keys (the files are checked by host/security/tls.ts), or null. */
export function tlsRefusal(tls: unknown): string | null {
  if (tls === null || tls === undefined) return null;
  const o = tls as Partial<TlsOptions>;
  if (typeof o.keyFile !== 'string' || typeof o.certFile !== 'string' || o.keyFile === '' || o.certFile === '') return 'keyFile and certFile (PEM paths) are both required';
  // Mutual TLS against the system's CAs would let anyone with a public certificate in.
  if (o.requestCert === true && !o.caFile) return 'requestCert: true needs caFile (the CA that signs client certificates)';
  // A CRL is checked against the certificates clients present: without requestCert nobody presents one,
  // and a CRL the operator believes in would silently check nothing.
  if (o.crlFile && o.requestCert !== true) return 'crlFile needs requestCert: true (a revocation list is checked against client certificates)';
  return null;
}
