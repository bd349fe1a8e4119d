// The node flags a broker runs with under `npm start` (package.json's start script), for benches
// that start brokers themselves: a bench measures the node users run, not node's defaults (the
// young generation's size alone moves a replicated produce's GC time by a third). An environment
// variable may name other flags (space-separated; '' = none) to weigh one.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function startNodeFlags(override: string | undefined): string[] {
  if (override !== undefined) return override.split(' ').filter(Boolean);
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { scripts: { start: string } };
  return (/^node((?: --[^ ]+)*) /.exec(pkg.scripts.start)?.[1] ?? '').split(' ').filter(Boolean);
}
