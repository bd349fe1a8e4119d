// A bundle of what `npm start` and the `tributary` bin load, built with esbuild from the compiled
// dist/, to measure what bundling does to an idle node's footprint (issue 14; docs/performance.md,
// Footprint, "Seventh pass"). Not part of `npm run build`, and esbuild is not a dependency: the
// seventh pass measured −1.0 MiB idle at best (our code bundled, dependencies left to
// node_modules), short of what a build step and a second start path would need to earn, and the
// `node` binary's resident pages did not move with the module count. To rerun the measurement:
//
//   npm install --no-save esbuild@0.28.2   # the version measured
//   npm run build && node scripts/bundle.mjs [--with-dependencies] [--no-splitting] [--minify]
//   node --max-semi-space-size=4 --heap-growing-percent=50 --v8-pool-size=1 dist/bundle/main.js start
//
// Default: our modules (dist/host, dist/gateway) bundled, every npm dependency imported from
// node_modules as before, one chunk per lazily loaded part (the Kafka API handlers, the admin
// commands, each door, the cluster, the uplink: each `import()` still loads its part at first
// use). --with-dependencies bundles the statically imported dependencies too (aedes, pino,
// mqtt-packet…), --no-splitting makes one file, --minify minifies (names kept).
//
// What stays outside the bundle, and why:
// - Node's built-ins.
// - Everything a module loads through createRequire (uWebSockets.js and zstd-napi: native
//   addons; ajv, yaml, avsc, cbor-x, fzstd, aedes-persistence: optional or released after use;
//   the generated config validators): esbuild does not follow those calls, so they load from
//   node_modules and dist/ at run time as before.
// - ws (and bufferutil, utf-8-validate, whose native addons are found beside their files): loaded
//   at the first MQTT-over-WebSocket upgrade or by the node HTTP engine, so nothing to gain at start.
// - Files found by path: `import.meta.url` in each of our bundled modules is rewritten to the URL
//   its unbundled file has (computed from the bundle's own URL, so the package can live
//   anywhere), so build/core.wasm, the console's assets, package.json and every createRequire
//   resolve exactly as from dist/.
//
// Output: dist/bundle/main.js (the entry, with the shebang of dist/host/cli.js) and its chunks;
// generated, never committed. It fails, and removes what it wrote, when the bundle would break at
// run time: a dynamic import() esbuild could not read (it would resolve against dist/bundle/), an
// import of a package that is neither bundled nor meant to stay outside, or a bundled dependency
// file that finds files by its own path (__dirname, __filename, import.meta.url) and is not known
// to do so only where it never runs.
import { build } from 'esbuild';
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinModules } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const OPTIONS = ['--with-dependencies', '--no-splitting', '--minify'];
const options = process.argv.slice(2);
for (const o of options) if (!OPTIONS.includes(o)) throw new Error(`bundle: unknown option ${o} (${OPTIONS.join(', ')})`);
const withDependencies = options.includes('--with-dependencies');
const outdir = join(root, 'dist', 'bundle');
const entry = join(root, 'dist', 'host', 'main.js');

// The bin's node flags live in one place: the shebang tsc copied from host/cli.ts (the footprint
// test checks that `npm start` passes the same).
const shebang = readFileSync(join(root, 'dist', 'host', 'cli.js'), 'utf8').split('\n')[0];
if (!shebang.startsWith('#!')) throw new Error(`bundle: dist/host/cli.js has no shebang (${shebang})`);

/**
 * Our own modules (dist/host, dist/gateway): `import.meta.url` becomes the URL the unbundled
 * file has, relative to the bundle's own URL (the package's layout is fixed, wherever it is
 * installed). A dependency's files are left alone: where an installed package puts them
 * relative to ours differs between a checkout and an install, so a dependency that finds files
 * beside itself stays outside the bundle (EXTERNAL) and anything else that would look is refused
 * below unless it is on PATH_RELATIVE_UNUSED.
 */
const distDir = join(root, 'dist') + sep;
const pathRelative = [];
const originalModuleUrls = {
  name: 'original-module-urls',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!args.path.startsWith(distDir)) {
        if (/\b(__dirname|__filename|import\.meta\.url)\b/.test(source)) pathRelative.push(args.path);
        return undefined;
      }
      if (!/\bimport\.meta\.url\b/.test(source)) return undefined;
      const fromBundle = JSON.stringify(relative(outdir, args.path).split(sep).join('/'));
      return { contents: source.replaceAll('import.meta.url', `new URL(${fromBundle}, import.meta.url).href`), loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

/** Left to node_modules with --with-dependencies too (see the header). */
const EXTERNAL = ['ws', 'bufferutil', 'utf-8-validate'];
/**
 * Dependencies' files that name their own path only where it never runs: pino's transports
 * (worker threads; our logger writes to stdout) and an example in a comment of qlobber's.
 */
const PATH_RELATIVE_UNUSED = [/node_modules\/thread-stream\//, /node_modules\/pino\/lib\/transport(-stream)?\.js$/, /node_modules\/qlobber\/lib\/qlobber\.js$/];

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: { main: entry },
  outdir,
  bundle: true,
  splitting: !options.includes('--no-splitting'),
  ...(options.includes('--minify') ? { minify: true, keepNames: true } : {}),
  ...(withDependencies ? {} : { packages: 'external' }),
  format: 'esm',
  platform: 'node',
  target: 'node20', // package.json engines
  // CommonJS dependencies inside the bundle call require() for built-ins and for each other;
  // an ES module has no `require`, so each chunk gets one rooted at its own URL.
  banner: { js: `${shebang}\nimport { createRequire as __bundleCreateRequire } from 'node:module';\nconst require = __bundleCreateRequire(import.meta.url);` },
  external: EXTERNAL,
  plugins: [originalModuleUrls],
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});

/** Why the bundle would break at run time, or null. */
function brokenBundle() {
  const refused = pathRelative.filter((file) => !PATH_RELATIVE_UNUSED.some((re) => re.test(file.split(sep).join('/'))));
  if (refused.length) return `these dependency files find files by their own path; add their package to EXTERNAL: ${refused.join(', ')}`;
  for (const [file, info] of Object.entries(result.metafile.outputs)) {
    for (const imp of info.imports) {
      const dependency = !imp.path.startsWith('.') && !imp.path.startsWith('/');
      if (imp.external && !imp.path.startsWith('node:') && !builtinModules.includes(imp.path) && !EXTERNAL.includes(imp.path) && (withDependencies || !dependency)) return `${file} imports ${imp.path} at run time`;
    }
    // An import() of a variable is not in the metafile: it would resolve against dist/bundle/.
    const text = readFileSync(join(root, file), 'utf8');
    const unread = /\bimport\((?!["'])/.exec(text);
    if (unread) return `${file} has an import() esbuild could not read: ${text.slice(unread.index, unread.index + 60)}`;
  }
  return null;
}

const broken = brokenBundle();
if (broken) {
  rmSync(outdir, { recursive: true, force: true });
  throw new Error(`bundle: ${broken}`);
}
const outputs = Object.values(result.metafile.outputs);
const bytes = outputs.reduce((sum, o) => sum + o.bytes, 0);
chmodSync(join(outdir, 'main.js'), 0o755);
process.stdout.write(`bundle: ${Object.keys(result.metafile.inputs).length} modules → dist/bundle/ (${outputs.length} files, ${(bytes / 1024).toFixed(0)} KiB; ${withDependencies ? 'dependencies bundled' : 'dependencies from node_modules'})\n`);
