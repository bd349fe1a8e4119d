// `node dist/host/config-doc.js > docs/configuration.md` (`npm run docs:config`): the doc for this
// build's configuration. It lives beside node.ts, not in host/config/, because the sections come
// from node.ts (which wires every layer) and config sits below all of them.
import { fileURLToPath } from 'node:url';
import { renderConfigDoc, SECTION_DOCS } from './config/describe.js';

/** The doc for this build's configuration (what docs/configuration.md must say). */
export async function currentConfigDoc(): Promise<string> {
  // Loaded on demand: importing this module alone stays cheap (no gateways, no wasm).
  const { configSections, configSchemas } = await import('./node.js');
  return renderConfigDoc(configSections(), SECTION_DOCS, configSchemas());
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  currentConfigDoc().then((doc) => process.stdout.write(doc));
}
