// Which engine serves the HTTP/WebSocket door (`http.engine`), decided once at start:
//
//   uws    the native uWebSockets.js build (uws-loader.ts); fails start-up when none loads here
//   node   node:http + ws (node-engine.ts), the same API subset, on every platform Node runs on
//   auto   uws when a native build loads, else node, with the load failure logged once
//
// The door creates its app from what this returns (`engine.uws.App()`), so TLS (SSLApp) and
// every route work the same whichever engine it is.
import type { Logger } from '../../host/logging.js';
import { NODE_ENGINE_BUILD, nodeEngine } from './node-engine.js';
import type { HttpEngineChoice } from './options.js';
import { loadUws, UwsUnavailableError, type Uws } from './uws-loader.js';


export interface HttpEngine {
  name: 'uws' | 'node';
  /** Which build serves, e.g. "uWebSockets.js 20.30 (trufflesuite, native uws_linux_x64_115.node)". */
  build: string;
  /** The uWS module, or the node engine behind the same subset of its API. */
  uws: Uws;
  /** Why uWS was not used under `auto` (the loader's message), else undefined. */
  uwsUnavailable?: string;
}

let fallbackLogged = false;

export function selectHttpEngine(choice: HttpEngineChoice, logger: Logger): HttpEngine {
  // The node engine implements the subset of Uws the door calls (listed in node-engine.ts);
  // the same test files run against both engines to keep it that way.
  const node = (uwsUnavailable?: string): HttpEngine => ({ name: 'node', build: NODE_ENGINE_BUILD, uws: nodeEngine as unknown as Uws, uwsUnavailable });
  if (choice === 'node') return node();
  try {
    const { uws, build } = loadUws();
    return { name: 'uws', build, uws };
  } catch (err) {
    if (choice === 'uws' || !(err instanceof UwsUnavailableError)) throw err;
    if (!fallbackLogged) {
      fallbackLogged = true;
      logger.warn({ reason: err.message, engine: 'node' }, `uWebSockets.js does not load here; the HTTP/WebSocket door runs on ${NODE_ENGINE_BUILD}`);
    }
    return node(err.message);
  }
}
