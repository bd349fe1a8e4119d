// Picks a native uWebSockets.js build at start, or says exactly why none loads.
//
// Two builds are installed, both pinned exactly in package.json:
//   - `uWebSockets.js` = npm alias of @trufflesuite/uws-js-unofficial 20.30.0: Node 16/18/20
//     (ABI 93/108/115) on glibc ≥ 2.31 — Debian 12 / Pi OS Bookworm (glibc 2.36);
//   - `@btc-vision/uwebsockets.js` 20.57.0: Node 20/22/24/25 (ABI 115/127/137/141) on
//     glibc ≥ 2.38 — Debian 13 / Pi OS Trixie.
//
// The trufflesuite package's entry point (src/uws.js) silently falls back to a pure-JS
// implementation built on `ws` when the native binary does not load (or when
// UWS_USE_FALLBACK is set). That fallback has no `publish`, no backpressure and exact-path
// routes only, so we never go through that entry point: we require the native binary file
// itself (binaries/uws_<platform>_<arch>_<abi>.node), which either loads or throws. The
// btc-vision entry point throws instead of falling back, so it is required normally.
import { createRequire } from 'node:module';
import type * as UwsTypes from 'uWebSockets.js';

export type Uws = typeof UwsTypes;
export type { UwsTypes };

/** No native uWebSockets.js build loads here: the door needs the node engine (gateway/ws/engine.ts). */
export class UwsUnavailableError extends Error {
  readonly attempts: Array<{ build: string; error: string }>;
  readonly platform: { node: string; abi: string; glibc: string | null; platform: string; arch: string };
  constructor(attempts: Array<{ build: string; error: string }>, platform: UwsUnavailableError['platform']) {
    const lines = attempts.map((a) => `  - ${a.build}: ${a.error.split('\n').filter(Boolean).slice(-1)[0] ?? a.error}`);
    super(
      `no native uWebSockets.js build loads on Node ${platform.node} (ABI ${platform.abi}), ` +
        `glibc ${platform.glibc ?? 'none (not glibc)'}, ${platform.platform}-${platform.arch}:\n${lines.join('\n')}\n` +
        `Use Node 20 (ABI 115) on glibc ≥ 2.31 (Debian 12 / Pi OS Bookworm) for uWebSockets.js 20.30 (trufflesuite), ` +
        `or Node 20/22/24 on glibc ≥ 2.38 (Debian 13 / Pi OS Trixie) for @btc-vision/uwebsockets.js 20.57; ` +
        `linux x64/arm64 (arm 32-bit: trufflesuite build only). With http.engine auto the door runs on node:http + ws instead; with http.engine uws it is off.`,
    );
    this.name = 'UwsUnavailableError';
    this.attempts = attempts;
    this.platform = platform;
  }
}

export interface LoadedUws {
  uws: Uws;
  /** Which build loaded, e.g. "uWebSockets.js 20.30 (trufflesuite, native uws_linux_x64_115.node)". */
  build: string;
}

export function platformFacts(): UwsUnavailableError['platform'] {
  let glibc: string | null = null;
  try {
    const report = process.report?.getReport() as unknown as { header?: { glibcVersionRuntime?: string } } | undefined;
    glibc = report?.header?.glibcVersionRuntime ?? null;
  } catch {
    glibc = null;
  }
  return { node: process.versions.node, abi: process.versions.modules, glibc, platform: process.platform, arch: process.arch };
}

/**
 * True for the C++ addon: its functions print as "[native code]". The ws-based fallback
 * exports the same names (App, us_listen_socket_close, ...) as JavaScript functions.
 */
export function isNativeUws(mod: unknown): mod is Uws {
  const m = mod as Partial<Uws> | null;
  if (!m || typeof m.App !== 'function' || typeof m.us_listen_socket_close !== 'function') return false;
  return /\[native code\]/.test(Function.prototype.toString.call(m.App)) && /\[native code\]/.test(Function.prototype.toString.call(m.us_listen_socket_close));
}

export type UwsBuild = 'trufflesuite' | 'btc-vision';

/**
 * Loads the first native build that works, in `preference` order (default: the one meant for
 * this Node ABI first). Throws UwsUnavailableError naming every attempt's failure.
 */
export function loadUws(preference?: UwsBuild[]): LoadedUws {
  const require = createRequire(import.meta.url);
  // The glibc version (a whole diagnostic report, ~1.4 MiB of RSS) only for the error below.
  const abi = process.versions.modules;
  const binary = `uws_${process.platform}_${process.arch}_${abi}.node`;
  const order: UwsBuild[] = preference ?? (Number(abi) <= 115 ? ['trufflesuite', 'btc-vision'] : ['btc-vision', 'trufflesuite']);
  const attempts: Array<{ build: string; error: string }> = [];
  for (const build of order) {
    try {
      if (build === 'trufflesuite') {
        const mod: unknown = require(`uWebSockets.js/binaries/${binary}`);
        if (!isNativeUws(mod)) throw new Error(`${binary} loaded but is not the native module`);
        return { uws: mod, build: `uWebSockets.js 20.30 (trufflesuite, native ${binary})` };
      }
      const mod: unknown = require('@btc-vision/uwebsockets.js');
      if (!isNativeUws(mod)) throw new Error('loaded but is not the native module');
      return { uws: mod, build: `@btc-vision/uwebsockets.js 20.57 (native ${binary})` };
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      attempts.push({
        build: build === 'trufflesuite' ? 'uWebSockets.js 20.30 (trufflesuite)' : '@btc-vision/uwebsockets.js 20.57',
        error: /Cannot find module/.test(message) ? `not installed or no binary ${binary} (${message.split('\n')[0]})` : message,
      });
    }
  }
  throw new UwsUnavailableError(attempts, platformFacts());
}

/** What happened to one `send`: uWS returned a boolean before v20 and a number (0/1/2) since. */
export const enum SendStatus {
  /** Written to the socket (or its buffer) with no backpressure left over. */
  Sent = 1,
  /** Accepted, but the socket now has buffered bytes waiting for drain. */
  Backpressure = 0,
  /** Dropped: the socket was past maxBackpressure (and may be closing). */
  Dropped = 2,
}

export function sendStatus(result: unknown): SendStatus {
  if (result === true || result === 1) return SendStatus.Sent;
  if (result === 0 || result === false) return SendStatus.Backpressure;
  return SendStatus.Dropped;
}
