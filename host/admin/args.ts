// The admin commands' one argv parser: positional words and `--name value` / `--name=value`
// flags (a flag given twice keeps every value, last one wins where one is read); flags named in
// `booleans` take no value.

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string[]>;
}

/** Parses `argv`; a value-taking flag at the end throws what `usage(message)` returns. */
export function parseArgs(argv: string[], booleans: ReadonlySet<string>, usage: (message: string) => Error): ParsedArgs {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    let value: string;
    if (booleans.has(name)) value = 'true';
    else if (eq > 0) value = a.slice(eq + 1);
    else if (i + 1 < argv.length) value = argv[++i];
    else throw usage(`${name} needs a value`);
    flags.set(name, [...(flags.get(name) ?? []), value]);
  }
  return { positional, flags };
}
