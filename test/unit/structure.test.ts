// Purpose: keep the tree's shape (issue 10) across host/ and gateway/: no import cycle anywhere
// (type-only and dynamic imports count: a cycle is a cycle), every import points down or sideways
// in one layer table (the same table as docs/architecture.md#layers), host/log's composer stays
// small, and no function in host/ or gateway/ is longer than 80 lines (a few exempt, each with
// its reason; every long function is listed in the output).
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import ts from 'typescript';
import { projectRoot } from '../helpers/index.js';

/**
 * The layers, lowest first. A file may import files of its own layer or of a lower one, never of
 * a higher one. Each entry is a path prefix relative to the project root (a folder ends in `/`);
 * a source file matching no prefix fails the test, so a new folder must be given its place here.
 */
const LAYERS: ReadonlyArray<{ layer: string; paths: readonly string[] }> = [
  { layer: 'base', paths: ['host/errors/', 'host/logging.ts', 'host/metrics/', 'host/config/'] },
  { layer: 'security', paths: ['host/security/'] },
  { layer: 'core', paths: ['host/core/'] },
  { layer: 'log', paths: ['host/log/'] },
  { layer: 'broker', paths: ['host/broker/'] },
  { layer: 'protocols', paths: ['host/kafka/', 'host/cluster/', 'host/sync/', 'host/schemas/'] },
  { layer: 'gateways', paths: ['gateway/'] },
  { layer: 'node', paths: ['host/node.ts', 'host/config-doc.ts', 'host/main.ts', 'host/cli.ts', 'host/admin/'] },
];

/** host/log imports these and nothing else from outside itself (stricter than its layer). */
const LOG_ALLOWED_OUTSIDE = ['host/core/', 'host/errors/', 'host/logging.ts', 'host/metrics/'];

const COMPOSER_FILE = 'host/log/partition-log.ts';
const COMPOSER_LINES_MAX = 500;
const FUNCTION_LINES_MAX = 80;
/**
 * Where a function over FUNCTION_LINES_MAX fails the test. Everywhere else the long functions are
 * only listed (t.comment). To turn the check on for a folder, add it here and shorten or exempt
 * what the list shows.
 */
const FUNCTION_LENGTH_ENFORCED: readonly string[] = ['host/', 'gateway/'];
/**
 * Long functions allowed even inside an enforced folder, as `file:name` or a folder prefix, each
 * with the reason. Listed in the report like every other long function.
 */
const FUNCTION_LENGTH_EXEMPT: Readonly<Record<string, string>> = {
};

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(projectRoot, dir))) {
      const rel = `${dir}/${name}`;
      if (statSync(join(projectRoot, rel)).isDirectory()) walk(rel);
      else if (rel.endsWith('.ts') && !rel.endsWith('.d.ts')) out.push(rel);
    }
  };
  walk('host');
  walk('gateway');
  return out.sort();
}

const files = sourceFiles();
const sources = new Map(files.map((f) => [f, ts.createSourceFile(f, readFileSync(join(projectRoot, f), 'utf8'), ts.ScriptTarget.Latest, true)]));

/** Project files a file imports: `import`, `import type`, `export … from` and `import('…')`. */
function importsOf(file: string, sf: ts.SourceFile): string[] {
  const specs: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      specs.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteralLike(node.arguments[0])) {
      specs.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return specs.filter((s) => s.startsWith('.')).map((s) => normalize(join(dirname(file), s)).replace(/\.js$/, '.ts'));
}

const graph = new Map([...sources].map(([f, sf]) => [f, importsOf(f, sf)]));

function layerOf(file: string): number {
  return LAYERS.findIndex((l) => l.paths.some((p) => (p.endsWith('/') ? file.startsWith(p) : file === p)));
}

/** Strongly connected components of more than one file, or a file importing itself (Tarjan). */
function cycles(): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) connect(v);
  return out;
}

/** A readable name for a function: its own, else the variable, property or call it sits in. */
function functionName(node: ts.FunctionLikeDeclaration, sf: ts.SourceFile): string {
  if (node.name) return node.name.getText(sf);
  const parent = node.parent;
  if ((ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) && parent.name) return parent.name.getText(sf);
  if (ts.isCallExpression(parent)) {
    const callee = parent.expression.getText(sf).replace(/\s+/g, '');
    const first = parent.arguments[0];
    const label = first && first !== node && ts.isStringLiteralLike(first) ? `'${first.text}'` : '…';
    return `${callee}(${label})`;
  }
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  return `<anonymous at line ${sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1}>`;
}

/** Every function-like node with a body, as `file:name` with its line count. */
function functionLengths(): Array<{ name: string; file: string; lines: number }> {
  const out: Array<{ name: string; file: string; lines: number }> = [];
  for (const [file, sf] of sources) {
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body) {
        const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
        const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
        out.push({ name: `${file}:${functionName(node as ts.FunctionLikeDeclaration, sf)}`, file, lines: end - start + 1 });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out;
}

const exemptKey = (name: string): string | undefined => Object.keys(FUNCTION_LENGTH_EXEMPT).find((e) => (e.endsWith('/') ? name.startsWith(e) : name === e));
const exempt = (name: string): boolean => exemptKey(name) !== undefined;
const exemptReason = (name: string): string => FUNCTION_LENGTH_EXEMPT[exemptKey(name)!];

t.test('structure: every source file in host/ and gateway/ has a place in the layer table', async (t) => {
  t.ok(files.length > 80, `${files.length} files`);
  t.same(files.filter((f) => layerOf(f) < 0), [], 'files in no layer (add their folder to LAYERS)');
});

t.test('structure: no import cycle in host/ or gateway/ (type-only and dynamic imports count)', async (t) => {
  t.ok([...graph.values()].reduce((n, g) => n + g.length, 0) > 200, 'the import graph was read');
  t.same(cycles(), [], 'import cycles (each a set of files importing each other)');
});

t.test('structure: imports point to the same or a lower layer', async (t) => {
  const upward: string[] = [];
  for (const [file, targets] of graph) {
    for (const target of targets) {
      if (!target.startsWith('host/') && !target.startsWith('gateway/')) continue;
      if (layerOf(target) > layerOf(file)) upward.push(`${file} (${LAYERS[layerOf(file)]?.layer}) → ${target} (${LAYERS[layerOf(target)]?.layer})`);
    }
  }
  t.same(upward, [], 'upward imports');
});

t.test('structure: host/log imports only core, errors, logging and metrics from outside itself', async (t) => {
  const outside: string[] = [];
  for (const [file, targets] of graph) {
    if (!file.startsWith('host/log/')) continue;
    for (const target of targets) {
      if (!target.startsWith('host/log/') && !LOG_ALLOWED_OUTSIDE.some((p) => (p.endsWith('/') ? target.startsWith(p) : target === p))) outside.push(`${file} → ${target}`);
    }
  }
  t.same(outside, [], 'host/log imports outside its allowed list');
});

t.test('structure: the composer partition-log.ts stays under 500 lines', async (t) => {
  const lines = readFileSync(join(projectRoot, COMPOSER_FILE), 'utf8').split('\n').length;
  t.ok(lines <= COMPOSER_LINES_MAX, `partition-log.ts has ${lines} lines`);
});

t.test(`structure: no function in ${FUNCTION_LENGTH_ENFORCED.join(', ')} is longer than ${FUNCTION_LINES_MAX} lines; the rest are listed`, async (t) => {
  const all = functionLengths();
  t.ok(all.filter((f) => f.file.startsWith('host/log/')).length > 100, `${all.length} functions measured`);
  const long = all.filter((f) => f.lines > FUNCTION_LINES_MAX);
  const enforced = long.filter((f) => FUNCTION_LENGTH_ENFORCED.some((p) => f.file.startsWith(p)) && !exempt(f.name));
  t.same(enforced.map(({ name, lines }) => ({ name, lines })), [], 'functions over the limit where it is enforced');
  const listed = long.filter((f) => !enforced.includes(f)).sort((a, b) => b.lines - a.lines);
  t.comment(`${listed.length} functions over ${FUNCTION_LINES_MAX} lines that do not fail (exempt with a reason, or outside the enforced folders):`);
  for (const f of listed) t.comment(`  ${String(f.lines).padStart(4)}  ${f.name}${exempt(f.name) ? `  (exempt: ${exemptReason(f.name)})` : ''}`);
});
