// One typed loader for the broker's configuration: embedded defaults < config file (YAML or
// JSON) < TRIBUTARY_* environment variables < command-line flags.
//
// The schema is the defaults themselves: every section (kafka, mqtt, http, broker, ...) is a
// plain object of defaults owned by the module it configures. A key that is not in the
// defaults is an error; a value whose type differs from the default's is an error; both name
// the key, the value, where it came from and what is allowed. Nothing unknown slips through.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import YAML from 'yaml';

export type Source = 'file' | 'env' | 'flag';

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly value: unknown,
    readonly source: string,
    readonly allowed: string,
  ) {
    super(`config: ${key} = ${JSON.stringify(value)} (${source}): ${allowed}`);
    this.name = 'ConfigError';
  }
}

export type Section = Record<string, unknown>;
export type Sections = Record<string, Section>;

/** Top-level keys that are not in a section. */
export interface TopLevel {
  dataDir: string;
  host: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export const topLevelDefaults: TopLevel = {
  dataDir: './data', // the README's promise: `npm start` keeps data in ./data
  host: '0.0.0.0', // a gateway serves its LAN; bind to 127.0.0.1 to keep it local
  logLevel: 'info',
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Command-line flags of `tributary start` and the key each sets. */
export const FLAG_KEYS: Record<string, string> = {
  '--data-dir': 'dataDir',
  '--host': 'host',
  '--log-level': 'logLevel',
  '--kafka-port': 'kafka.port',
  '--mqtt-port': 'mqtt.port',
  '--mqtt-ws-port': 'mqtt.wsPort',
  '--http-port': 'http.port',
};

export interface LoadInput {
  argv: string[]; // flags after `start`
  env: NodeJS.ProcessEnv;
  sections: Sections; // defaults per section
}

export interface LoadedConfig<S extends Sections = Sections> {
  top: TopLevel;
  sections: S;
  /** Where the file came from, if any. */
  configFile?: string;
}

/** `maxInFlightBytes` → `MAX_IN_FLIGHT_BYTES`. */
export function envName(path: string): string {
  return (
    'TRIBUTARY_' +
    path
      .split('.')
      .map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())
      .join('_')
  );
}

function describeType(def: unknown): string {
  if (Array.isArray(def)) return 'a list';
  if (def === null) return 'a value';
  if (typeof def === 'number') return Number.isInteger(def) ? 'an integer' : 'a number';
  if (typeof def === 'object') return 'a mapping';
  return `a ${typeof def}`;
}

/** Coerces a raw value (string from env/flags, anything from a file) to the default's type. */
function coerce(key: string, def: unknown, raw: unknown, source: string): unknown {
  const fromText = typeof raw === 'string' && source !== 'file';
  if (typeof def === 'number') {
    let n: number;
    if (typeof raw === 'number') n = raw;
    else if (fromText && /^-?\d+(\.\d+)?$/.test((raw as string).trim())) n = Number(raw);
    else throw new ConfigError(key, raw, source, `must be ${describeType(def)}`);
    if (!Number.isFinite(n) || (Number.isInteger(def) && !Number.isInteger(n))) {
      throw new ConfigError(key, raw, source, `must be ${describeType(def)}`);
    }
    if (/(^|\.)(port|[a-zA-Z]*Port)$/.test(key) && (n < 0 || n > 65535)) {
      throw new ConfigError(key, raw, source, 'must be a port number from 0 to 65535 (0 picks a free port)');
    }
    return n;
  }
  if (typeof def === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    if (fromText && /^(true|false|1|0|yes|no)$/i.test(raw as string)) return /^(true|1|yes)$/i.test(raw as string);
    throw new ConfigError(key, raw, source, 'must be true or false');
  }
  if (typeof def === 'string') {
    if (typeof raw === 'string') return raw;
    throw new ConfigError(key, raw, source, 'must be a string');
  }
  if (Array.isArray(def) || (def !== null && typeof def === 'object')) {
    let v = raw;
    if (fromText) {
      try {
        v = JSON.parse(raw as string);
      } catch {
        throw new ConfigError(key, raw, source, `must be JSON (${describeType(def)})`);
      }
    }
    if (Array.isArray(def) !== Array.isArray(v) || v === null || typeof v !== 'object') {
      throw new ConfigError(key, raw, source, `must be ${describeType(def)}`);
    }
    return v; // structure inside is validated by the module that owns it
  }
  // default null or undefined: optional value of the module's own choosing (validated there)
  return raw;
}

function setKey(top: TopLevel, sections: Sections, path: string, raw: unknown, source: string): void {
  const dot = path.indexOf('.');
  if (dot < 0) {
    if (!(path in topLevelDefaults)) throw new ConfigError(path, raw, source, `unknown key; top-level keys are ${Object.keys(topLevelDefaults).join(', ')} and the sections ${Object.keys(sections).join(', ')}`);
    const v = coerce(path, topLevelDefaults[path as keyof TopLevel], raw, source);
    if (path === 'logLevel' && !LOG_LEVELS.includes(v as string)) throw new ConfigError(path, raw, source, `must be one of ${LOG_LEVELS.join(', ')}`);
    (top as unknown as Record<string, unknown>)[path] = v;
    return;
  }
  const name = path.slice(0, dot);
  const key = path.slice(dot + 1);
  const section = sections[name];
  if (!section) throw new ConfigError(path, raw, source, `unknown section "${name}"; sections are ${Object.keys(sections).join(', ')}`);
  if (!(key in section)) throw new ConfigError(path, raw, source, `unknown key in "${name}"; keys are ${Object.keys(section).join(', ')}`);
  section[key] = coerce(path, section[key], raw, source);
}

function cloneSections(sections: Sections): Sections {
  return Object.fromEntries(Object.entries(sections).map(([k, v]) => [k, structuredClone(v)]));
}

export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', file, 'flag', `cannot read the file: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new ConfigError('--config', file, 'flag', `not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError('--config', file, 'flag', 'must contain a mapping of keys');
  return parsed as Record<string, unknown>;
}

/** Parses `--flag value` / `--flag=value` pairs; `--set section.key=value` sets any key. */
export function parseFlags(argv: string[]): { configFile?: string; assignments: Array<[string, string]> } {
  const assignments: Array<[string, string]> = [];
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const flag = eq > 0 && arg.startsWith('--') ? arg.slice(0, eq) : arg;
    const inline = eq > 0 && arg.startsWith('--') ? arg.slice(eq + 1) : undefined;
    const take = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new ConfigError(flag, null, 'flag', 'needs a value');
      return v;
    };
    if (flag === '--config') configFile = take();
    else if (flag === '--set') {
      const a = take();
      const k = a.indexOf('=');
      if (k <= 0) throw new ConfigError('--set', a, 'flag', 'must look like section.key=value');
      assignments.push([a.slice(0, k), a.slice(k + 1)]);
    } else if (FLAG_KEYS[flag]) assignments.push([FLAG_KEYS[flag], take()]);
    else throw new ConfigError(flag, arg, 'flag', `unknown flag; flags are --config, --set, ${Object.keys(FLAG_KEYS).join(', ')}`);
  }
  return { configFile, assignments };
}

export function loadConfig<S extends Sections>(input: LoadInput & { sections: S }): LoadedConfig<S> {
  const top: TopLevel = { ...topLevelDefaults };
  const sections = cloneSections(input.sections);
  const { configFile: fileFlag, assignments } = parseFlags(input.argv);
  const configFile = fileFlag ?? input.env.TRIBUTARY_CONFIG;

  if (configFile) {
    const file = readConfigFile(configFile);
    for (const [k, v] of Object.entries(file)) {
      if (k in sections && v !== null && typeof v === 'object' && !Array.isArray(v)) {
        for (const [sk, sv] of Object.entries(v as Record<string, unknown>)) setKey(top, sections, `${k}.${sk}`, sv, `file ${configFile}`);
      } else if (k in sections) {
        throw new ConfigError(k, v, `file ${configFile}`, 'must be a mapping of keys');
      } else {
        setKey(top, sections, k, v, `file ${configFile}`);
      }
    }
  }

  // Environment: every known key has a TRIBUTARY_* name; unknown TRIBUTARY_* names are errors
  // too, so a typo does not silently fall back to a default.
  const known = new Map<string, string>();
  for (const k of Object.keys(topLevelDefaults)) known.set(envName(k), k);
  for (const [name, section] of Object.entries(sections)) for (const k of Object.keys(section)) known.set(envName(`${name}.${k}`), `${name}.${k}`);
  known.set('TRIBUTARY_CONFIG', '');
  for (const [envKey, value] of Object.entries(input.env)) {
    if (!envKey.startsWith('TRIBUTARY_') || value === undefined) continue;
    const path = known.get(envKey);
    if (path === undefined) throw new ConfigError(envKey, value, 'env', 'unknown TRIBUTARY_* variable; see docs/configuration.md');
    if (path) setKey(top, sections, path, value, `env ${envKey}`);
  }

  for (const [path, value] of assignments) setKey(top, sections, path, value, 'flag');
  return { top, sections: sections as S, configFile };
}
