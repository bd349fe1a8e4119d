// One listener model for every door (Kafka, MQTT over TCP and WebSocket, HTTP/WebSocket): the
// same names for the same things — `host`, `port` (-1 off, 0 any free port), `connectionsMax`,
// and `tls` — and one handle for a bound listener. TLS is declared here so the security issue
// fills it in without renaming anything; until then a `tls` value is refused at start.
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
}

/** Paths of the PEM files a TLS listener will use (the security issue implements it). */
export interface TlsOptions {
  keyFile: string;
  certFile: string;
  /** CA bundle for client certificates; null = the system's. */
  caFile: string | null;
  /** Ask clients for a certificate (mutual TLS). */
  requestCert: boolean;
}

/** What every door's options share. */
export interface ListenerOptions {
  host: string;
  /** -1 = this listener is off; 0 = any free port (the ready line names the one bound). */
  port: number;
  /** Connections open at once; the next one is refused in the door's own way (logged and counted). */
  connectionsMax: number;
  /** null = plain TCP. Declared, not implemented yet: any other value is refused at start. */
  tls: TlsOptions | null;
}

/** The listener keys of a config section: `host` there may be null (= the top-level host). */
export const listenerConfigDefaults = {
  host: null as string | null, // null = the top-level host, so one setting moves every listener
  tls: null as TlsOptions | null, // TLS arrives with the security issue; until then only null is accepted
};

export const tlsSchema: KeySchema = {
  anyOf: [{ type: 'null' }, object({ keyFile: string(1), certFile: string(1), caFile: orNull(string(1)), requestCert: boolean() }, ['keyFile', 'certFile'])],
  'x-allowed': 'null (TLS is not supported yet; keyFile, certFile, caFile, requestCert are reserved for it)',
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

/** The message for a configured TLS block, or null when there is none. */
export function tlsRefusal(tls: unknown): string | null {
  if (tls === null || tls === undefined) return null;
  return 'TLS is not supported yet (the security issue adds it); remove the key to listen in plain TCP';
}
