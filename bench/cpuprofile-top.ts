// Summarises V8 CPU profiles (`node --cpu-prof`, e.g. from TRIBUTARY_MQTT_BENCH_PROFILE=cpu):
// self and inclusive time per function, and self time per area (a package under
// node_modules, a folder of dist/, node's internals, GC, idle).
//
//   node dist/bench/cpuprofile-top.js FILE.cpuprofile [more…] [--top N] [--skip-ms N]
// --skip-ms leaves out the first N ms of each profile (the process's start-up).
//
// A .cpuprofile is JSON: `nodes` (id, callFrame {functionName, url, lineNumber}, children),
// `samples` (node id per sample) and `timeDeltas` (µs before each sample).
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function short(url: string): string {
  if (!url) return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const d = url.indexOf('/dist/');
  if (d >= 0) return url.slice(d + '/dist/'.length);
  return url.replace(/^file:\/\//, '');
}

function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)' || fn === '(program)' || fn === '(root)') return fn;
  if (!url) return '(native / V8)';
  if (url.startsWith('node:')) return 'node:internal';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const d = url.indexOf('/dist/');
  if (d >= 0) return url.slice(d + '/dist/'.length).split('/').slice(0, 2).join('/');
  return url;
}

export async function summarise(files: string[], top: number, skipMs = 0): Promise<string> {
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const areas = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const f of files) {
    const p = JSON.parse(await readFile(f, 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const selfUs = new Map<number, number>();
    let atUs = 0;
    for (let i = 0; i < p.samples.length; i++) {
      atUs += p.timeDeltas[i] ?? 0;
      if (atUs < skipMs * 1000) continue; // start-up (module loading, recovery) is not the steady state
      selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
    }
    for (const [id, us] of selfUs) {
      const n = byId.get(id)!;
      const key = (x: ProfileNode) => `${x.callFrame.functionName || '(anonymous)'} ${short(x.callFrame.url)}:${x.callFrame.lineNumber + 1}`;
      totalUs += us;
      if (n.callFrame.functionName === '(idle)') idleUs += us;
      self.set(key(n), (self.get(key(n)) ?? 0) + us);
      const a = area(n.callFrame.url, n.callFrame.functionName);
      areas.set(a, (areas.get(a) ?? 0) + us);
      // inclusive: every distinct function on the stack gets the sample once
      const seen = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const k = key(byId.get(cur)!);
        if (seen.has(k)) continue;
        seen.add(k);
        incl.set(k, (incl.get(k) ?? 0) + us);
      }
    }
  }
  const busy = totalUs - idleUs;
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const list = (m: Map<string, number>, n: number) =>
    [...m]
      .filter(([k]) => !k.startsWith('(idle)') && !k.startsWith('(root)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `${pct(us)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`)
      .join('\n');
  return [
    `profiles: ${files.length}; sampled ${(totalUs / 1e6).toFixed(2)} s, busy (not idle) ${(busy / 1e6).toFixed(2)} s; percentages of busy time`,
    '',
    'by area (self):',
    list(areas, 25),
    '',
    `top ${top} functions by self time:`,
    list(self, top),
    '',
    `top ${top} functions by inclusive time:`,
    list(incl, top),
  ].join('\n');
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, '/dist/'));
if (isMain) {
  const args = process.argv.slice(2);
  const t = args.indexOf('--top');
  const top = t >= 0 ? Number(args[t + 1]) : 40;
  const k = args.indexOf('--skip-ms');
  const skipMs = k >= 0 ? Number(args[k + 1]) : 0;
  const files = args.filter((a, i) => !a.startsWith('--') && (t < 0 || i !== t + 1) && (k < 0 || i !== k + 1));
  summarise(files, top, skipMs).then(
    (s) => console.log(s),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
