// docs/configuration.md is generated from the code; this fails when a key is added, removed or
// changes its default without the doc being regenerated (`npm run docs:config`).
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { currentConfigDoc } from '../../../host/config-doc.js';
import { projectRoot } from '../../helpers/index.js';

t.test('config docs: docs/configuration.md matches the configuration schema', async (t) => {
  const committed = await readFile(join(projectRoot, 'docs/configuration.md'), 'utf8');
  const current = await currentConfigDoc();
  t.equal(committed, current, 'run `npm run docs:config` to regenerate docs/configuration.md');
});

t.test('config docs: every key of every section appears with its environment variable', async (t) => {
  const doc = await currentConfigDoc();
  const { configSections } = await import('../../../host/node.js');
  const { envName } = await import('../../../host/config/loader.js');
  for (const [name, section] of Object.entries(configSections())) {
    for (const key of Object.keys(section)) {
      t.ok(doc.includes(`\`${name}.${key}\``) && doc.includes(envName(`${name}.${key}`)), `${name}.${key} documented`);
    }
  }
});
