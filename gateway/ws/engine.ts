// Which engine serves the HTTP/WebSocket door (`http.engine`), decided once at start:
//
//   uws    the native uWebSockets.js build (uws-loader.ts); fails start-up when none loads here
//   node   node:http + ws (node-engine.ts), the same API subset, on every platform Node runs on
//   auto   node when `http.tls` is set (below); else uws when a native build loads, else node,
//          with the load failure logged once
//
// TLS under auto goes to the node engine, measured (2026-12, uWebSockets.js 20.30): uWS builds
// its SSL context once, from files, at SSLApp(); `addServerName` / `removeServerName` swap the
// certificate served to clients that send that name in SNI, but a client that connects by IP
// address sends no SNI (RFC 6066 §3) and keeps getting the start-up certificate — so SIGHUP
// cannot renew the certificate for every client. uWS also admits a client that sends no
// certificate when a CA file is given (it cannot require one) and takes no revocation list.
// node:https does all three (setSecureContext, requestCert + rejectUnauthorized, crl). An
// explicit `uws` keeps uWS for plain TLS, with the renewed certificate applied at the next start;
// with requestCert, crlFile or handshakeTimeoutMs it is a config error (options.ts).
//
// The door creates its app from what this returns (`engine.uws.App()`; with TLS on the node
// engine, an https server whose context host/security/tls.ts swaps on SIGHUP), so every route
// works the same whichever engine it is.
//
// The node engine (and with it `ws`, ~1-2 MiB of heap) is imported only when it is chosen: a node
// served by uWS never loads it (docs/performance.md#footprint, test/integration/footprint.test.ts).
import type { Logger } from '../../host/logging.js';
import type { NodeEngine } from './node-engine.js';
import type { HttpEngineChoice } from './options.js';
import type { TlsOptions } from '../../host/config/listener.js';
import { loadUws, UwsUnavailableError, type Uws } from './uws-loader.js';


export interface HttpEngine {
  name: 'uws' | 'node';
  /** Which build serves, e.g. "uWebSockets.js 20.30 (trufflesuite, native uws_linux_x64_115.node)". */
  build: string;
  /** The uWS module, or the node engine behind the same subset of its API. */
  uws: Uws;
  /** Why uWS was not used under `auto` (the loader's message), else undefined. */
  uwsUnavailable?: string;
  /** The node engine's module when it serves (its SecureApp is not in uWS's API), else undefined. */
  node?: NodeEngine;
}

let fallbackLogged = false;

/** Why `auto` serves TLS on the node engine (logged once at start, docs/security.md#tls). */
export const TLS_ON_NODE_ENGINE =
  'http.tls is set: the HTTP/WebSocket door runs on node:http + ws (http.engine auto), which reloads the certificate on SIGHUP for every client and can require client certificates and check a CRL; uWebSockets.js can do none of the three (http.engine: uws keeps it, certificate renewed at the next start)';

export async function selectHttpEngine(choice: HttpEngineChoice, logger: Logger, tls: TlsOptions | null = null): Promise<HttpEngine> {
  // The node engine implements the subset of Uws the door calls (listed in node-engine.ts);
  // the same test files run against both engines to keep it that way.
  const node = async (uwsUnavailable?: string): Promise<HttpEngine> => {
    const { NODE_ENGINE_BUILD, nodeEngine } = await import('./node-engine.js');
    return { name: 'node', build: NODE_ENGINE_BUILD, uws: nodeEngine as unknown as Uws, uwsUnavailable, node: nodeEngine };
  };
  if (choice === 'node') return node();
  if (choice === 'auto' && tls) {
    logger.info({ engine: 'node', setting: 'http.engine', reason: 'tls' }, TLS_ON_NODE_ENGINE);
    return node();
  }
  try {
    const { uws, build } = loadUws();
    return { name: 'uws', build, uws };
  } catch (err) {
    if (choice === 'uws' || !(err instanceof UwsUnavailableError)) throw err;
    const engine = await node(err.message);
    if (!fallbackLogged) {
      fallbackLogged = true;
      logger.warn({ reason: err.message, engine: 'node' }, `uWebSockets.js does not load here; the HTTP/WebSocket door runs on ${engine.build}`);
    }
    return engine;
  }
}
