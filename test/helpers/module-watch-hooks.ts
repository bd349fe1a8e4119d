// Loader-thread half of module-watch.ts: every resolved ES module URL, appended to TEST_MODULE_LIST.
import { appendFileSync } from 'node:fs';

type Resolved = { url: string };
type NextResolve = (specifier: string, context: unknown) => Promise<Resolved>;

export async function resolve(specifier: string, context: unknown, next: NextResolve): Promise<Resolved> {
  const r = await next(specifier, context);
  if (process.env.TEST_MODULE_LIST) appendFileSync(process.env.TEST_MODULE_LIST, `${r.url}\n`);
  return r;
}
