// Purpose: keep host/log's shape (issue 10): the composer stays small, no function grows past
// ~80 lines, the parts import each other without cycles, and the log imports nothing from the
// layers above it (broker, kafka, gateways): only core, errors, logging and metrics.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { projectRoot } from '../../helpers/index.js';

const LOG_DIR = join(projectRoot, 'host/log');
const COMPOSER_LINES_MAX = 500;
const FUNCTION_LINES_MAX = 80;
const ALLOWED_OUTSIDE = ['../core/', '../errors/', '../logging.js', '../metrics/'];

const files = readdirSync(LOG_DIR).filter((f) => f.endsWith('.ts'));
const sources = new Map(files.map((f) => [f, ts.createSourceFile(f, readFileSync(join(LOG_DIR, f), 'utf8'), ts.ScriptTarget.Latest, true)]));

/** Every function-like node with its line count, named `file:name`. */
function functionLengths(): Array<{ name: string; lines: number }> {
  const out: Array<{ name: string; lines: number }> = [];
  for (const [file, sf] of sources) {
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body) {
        const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
        const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
        const named = (node as ts.FunctionLikeDeclaration).name;
        out.push({ name: `${file}:${named ? named.getText(sf) : `<anonymous at line ${start + 1}>`}`, lines: end - start + 1 });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out;
}

function importsOf(sf: ts.SourceFile): string[] {
  const out: string[] = [];
  for (const st of sf.statements) {
    if ((ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier)) {
      out.push(st.moduleSpecifier.text);
    }
  }
  return out;
}

t.test('structure: the composer partition-log.ts stays under 500 lines', async (t) => {
  const lines = readFileSync(join(LOG_DIR, 'partition-log.ts'), 'utf8').split('\n').length;
  t.ok(lines <= COMPOSER_LINES_MAX, `partition-log.ts has ${lines} lines`);
});

t.test('structure: no function in host/log is longer than 80 lines', async (t) => {
  const all = functionLengths();
  t.ok(all.length > 100, `${all.length} functions measured`);
  const long = all.filter((f) => f.lines > FUNCTION_LINES_MAX);
  t.same(long, [], 'functions over the limit');
});

t.test('structure: host/log imports only core, errors, logging and metrics, and has no import cycle', async (t) => {
  const graph = new Map<string, string[]>();
  for (const [file, sf] of sources) {
    const local: string[] = [];
    for (const spec of importsOf(sf)) {
      if (spec.startsWith('./')) local.push(spec.slice(2).replace(/\.js$/, '.ts'));
      else if (spec.startsWith('../')) t.ok(ALLOWED_OUTSIDE.some((p) => spec.startsWith(p)), `${file} imports ${spec}`);
    }
    graph.set(file, local);
  }
  // Depth-first search for a back edge (type-only imports count too: a cycle is a cycle).
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].join(' → '));
      return;
    }
    state.set(f, 'open');
    for (const g of graph.get(f) ?? []) visit(g, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
  t.same(cycles, [], 'import cycles inside host/log');
});
