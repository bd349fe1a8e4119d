// `npm run bench [-- subject ...]`: runs every bench subject (or the named ones) in one
// process run and prints one table per subject. Each subject is a module in bench/ that
// exports `subject` (its name) and `run()` returning its tables.
import { readdir, writeFile, mkdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import os from 'node:os';
import { renderTable, type Table } from './table.js';

export interface BenchModule {
  subject: string;
  /** Position in the run (lower first). */
  order?: number;
  run(): Promise<Table[]>;
}

const here = fileURLToPath(new URL('.', import.meta.url));

async function main(): Promise<void> {
  // `--quick` (or TRIBUTARY_BENCH_QUICK=1): a short smoke run of each selected subject
  const args = process.argv.slice(2);
  if (args.includes('--quick')) process.env.TRIBUTARY_BENCH_QUICK = '1';
  const wanted = args.filter((a) => !a.startsWith('--'));
  const files = (await readdir(here)).filter((f) => f.endsWith('.bench.js')).sort();
  const modules: BenchModule[] = [];
  for (const f of files) modules.push((await import(pathToFileURL(join(here, f)).href)) as BenchModule);
  modules.sort((a, b) => (a.order ?? 50) - (b.order ?? 50));
  const selected = wanted.length ? modules.filter((m) => wanted.includes(m.subject)) : modules;
  if (wanted.length && selected.length === 0) {
    console.error(`no bench subject named ${wanted.join(', ')}; have: ${modules.map((m) => m.subject).join(', ')}`);
    process.exit(2);
  }
  const header = `Tributary bench — ${new Date().toISOString()} — node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB — load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}${process.env.TRIBUTARY_BENCH_QUICK === '1' ? ' — QUICK smoke run' : ''}`;
  console.log(header + '\n');
  const rendered: string[] = [header, ''];
  for (const m of selected) {
    const tables = await m.run();
    for (const t of tables) {
      const text = renderTable(t);
      console.log(text + '\n');
      rendered.push(text, '');
    }
  }
  const outDir = join(here, '../../bench-results');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, `latest${wanted.length ? '-' + wanted.join('-') : ''}.md`), rendered.join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
