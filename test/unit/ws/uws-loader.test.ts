// Purpose: the uWS loader picks a native build, never the trufflesuite ws fallback, and says exactly why when none loads.
import t from 'tap';
import { createRequire } from 'node:module';
import { isNativeUws, loadUws, platformFacts, sendStatus, SendStatus, UwsUnavailableError } from '../../../gateway/ws/uws-loader.js';

const require = createRequire(import.meta.url);

t.test('uws loader: loads a native build on this machine and names it', async (t) => {
  const { uws, build } = loadUws();
  t.ok(isNativeUws(uws), 'the loaded module is the C++ addon');
  t.match(build, /native uws_/);
  t.equal(typeof uws.App, 'function');
});

t.test('uws loader: the trufflesuite ws fallback is recognised as not native', async (t) => {
  const fallback: unknown = require('uWebSockets.js/dist/index.js');
  t.notOk(isNativeUws(fallback), 'the JS fallback exports App but is refused');
});

t.test('uws loader: UWS_USE_FALLBACK does not push us onto the fallback', async (t) => {
  const saved = process.env.UWS_USE_FALLBACK;
  process.env.UWS_USE_FALLBACK = '1';
  t.teardown(() => {
    if (saved === undefined) delete process.env.UWS_USE_FALLBACK;
    else process.env.UWS_USE_FALLBACK = saved;
  });
  t.ok(isNativeUws(loadUws(['trufflesuite']).uws));
});

t.test('uws loader: when no build loads, the error names Node ABI, glibc, arch and the combination to use', async (t) => {
  const facts = platformFacts();
  const glibcMajorMinor = facts.glibc ? facts.glibc.split('.').map(Number) : [0, 0];
  const btcLoads = glibcMajorMinor[0] > 2 || (glibcMajorMinor[0] === 2 && glibcMajorMinor[1] >= 38);
  if (btcLoads) {
    t.ok(isNativeUws(loadUws(['btc-vision']).uws), 'glibc ≥ 2.38 here: the btc-vision build loads');
    return;
  }
  const err = t.throws(() => loadUws(['btc-vision'])) as unknown as UwsUnavailableError;
  t.type(err, UwsUnavailableError);
  t.equal(err.name, 'UwsUnavailableError');
  t.match(err.message, `ABI ${process.versions.modules}`);
  t.match(err.message, `glibc ${facts.glibc}`);
  t.match(err.message, process.arch);
  t.match(err.message, /GLIBC_2\.38/, 'the loader error from the dynamic linker is kept');
  t.match(err.message, /Node 20 \(ABI 115\)/, 'says which combination works');
  t.equal(err.attempts.length, 1);
});

t.test('uws loader: send results of every uWS version map to one type', async (t) => {
  t.equal(sendStatus(1), SendStatus.Sent);
  t.equal(sendStatus(true), SendStatus.Sent);
  t.equal(sendStatus(0), SendStatus.Backpressure);
  t.equal(sendStatus(false), SendStatus.Backpressure);
  t.equal(sendStatus(2), SendStatus.Dropped);
});
