// mqtt-packet (aedes' parser and packet writer) logs through the `debug` package: ~15 calls per
// packet, and a call whose namespace is disabled still gathers its arguments into an array (the
// logger takes rest parameters) before it looks. That was ~3 KiB of young-generation garbage per
// QoS 1 message through the gateway, 14 % of all it allocated (docs/performance.md, issue 9
// "per-commit cost"). Imported by the gateway before aedes and mqtt-packet are loaded: the
// `debug` factory mqtt-packet resolves is wrapped so that a namespace DEBUG does not enable at
// that moment gets a function that does nothing; an enabled one gets the real logger. (Enabling a
// namespace later through the package's `enable()` no longer reaches loggers made before;
// `DEBUG=mqtt-packet:*` at start does.) If the package cannot be found or is shaped otherwise,
// nothing is changed.
import { createRequire } from 'node:module';

type DebugFactory = ((namespace: string) => unknown) & { enabled?: (namespace: string) => boolean };

function quietDisabledLoggers(): void {
  const require = createRequire(import.meta.url);
  let path: string;
  try {
    path = createRequire(require.resolve('mqtt-packet')).resolve('debug');
  } catch {
    return;
  }
  const real = require(path) as DebugFactory;
  const cached = require.cache[path];
  if (typeof real !== 'function' || typeof real.enabled !== 'function' || !cached || (real as { quiet?: boolean }).quiet) return;
  const isEnabled = real.enabled;
  const quiet = Object.assign(
    (namespace: string) => (isEnabled(namespace) ? real(namespace) : Object.assign(() => undefined, { enabled: false, namespace })),
    { quiet: true },
  );
  // the package's own properties (enable, disable, formatters…) stay reachable through the real factory
  Object.setPrototypeOf(quiet, real);
  cached.exports = quiet;
}

quietDisabledLoggers();
