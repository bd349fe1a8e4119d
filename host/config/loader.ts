// One typed loader for the broker's configuration: embedded defaults < config file (YAML or
// JSON) < TRIBUTARY_* environment variables < command-line flags.
//
// Each section (kafka, mqtt, http, broker, ...) is a plain object of defaults owned by the module
// it configures, plus a declarative JSON Schema (host/config/schema.ts) saying what each key
// allows. A key that is not in the defaults is an error; a value the schema refuses is an error;
// both name the key, the value, where it came from and what is allowed. A section without a
// schema falls back to the type of each default. Deprecated key names (host/config/listener.ts)
// are accepted under their new name, with a warning the node logs at start.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname } from 'node:path';
import type YAMLModule from 'yaml';
import { check, coerceText, oneOf, port, type KeySchema, type SectionSchema } from './schema.js';
import { DEPRECATED_KEYS } from './listener.js';

/** Variables the admin CLI reads (docs/cli.md); never broker config, so never refused by it. */
export const CLI_ENV_VARIABLES: readonly string[] = ['TRIBUTARY_BROKER', 'TRIBUTARY_TOKEN', 'TRIBUTARY_KAFKA', 'TRIBUTARY_SASL_USER', 'TRIBUTARY_SASL_PASSWORD', 'TRIBUTARY_SCRAM_ITERATIONS'];

export type Source = 'file' | 'env' | 'flag';

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly value: unknown,
    readonly source: string,
    readonly allowed: string,
    /** A whole message, for errors a module's own validator worded (it names the key and value itself). */
    message?: string,
  ) {
    super(message ?? `config: ${key} = ${JSON.stringify(redactSecrets(key, value))} (${source}): ${allowed}`);
    this.name = 'ConfigError';
  }
}

/** Keys whose values are secrets: a config error names them but never prints them (issue 13: no secret in any log). */
const SECRET_KEY = /(^|\.|[a-z])(token|tokens|hash|password|passphrase|secret)$/i; // also clientSecret, apiToken …

/**
 * The value as an error may show it: a secret (a key named token, hash, password, passphrase or
 * secret, at any depth) is replaced by its length, so a typo in an `http.tokens` entry does not
 * print every token of the list to the terminal and the journal.
 */
export function redactSecrets(key: string, value: unknown): unknown {
  const bare = key.replace(/\[\d+\]/g, '');
  if (SECRET_KEY.test(bare) && typeof value === 'string') return `<secret, ${value.length} characters>`;
  if (Array.isArray(value)) return value.map((v) => redactSecrets(key, v));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_KEY.test(k) && typeof v === 'string' ? `<secret, ${v.length} characters>` : redactSecrets(`${key}.${k}`, v)]));
  }
  return value;
}

export type Section = Record<string, unknown>;
export type Sections = Record<string, Section>;
export type Schemas = Record<string, SectionSchema>;

/** Top-level keys that are not in a section. */
export interface TopLevel {
  dataDir: string;
  host: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export const topLevelDefaults: TopLevel = {
  dataDir: './data', // the README's promise: `npm start` keeps data in ./data
  // loopback only until the operator opens it (Mosquitto 2.0's rule): 0.0.0.0 serves the LAN, and
  // then needs authentication or security.allowAnonymous: true (docs/security.md)
  host: '127.0.0.1',
  logLevel: 'info',
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const topLevelSchema: Record<keyof TopLevel, KeySchema> = {
  // An empty path would resolve to the working directory and scatter topic folders there.
  dataDir: { type: 'string', minLength: 1, 'x-allowed': 'a non-empty directory path' },
  host: { type: 'string', minLength: 1, 'x-allowed': 'a non-empty address or host name of this machine (0.0.0.0 = every interface)' },
  logLevel: oneOf(...LOG_LEVELS),
};

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
  /** What each section's keys allow; a section without one is checked against its defaults' types. */
  schemas?: Schemas;
}

export interface LoadedConfig<S extends Sections = Sections> {
  top: TopLevel;
  sections: S;
  /** Where the file came from, if any. */
  configFile?: string;
  /** Where each key that is not a default came from (`kafka.port` → `flag`), for later checks' messages. */
  sources: Record<string, string>;
  /** Deprecated names used, one sentence each (the node logs them once it has a logger). */
  warnings: string[];
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

/** The schema of a key with none declared: the type of its default. */
export function inferSchema(key: string, def: unknown): KeySchema {
  if (typeof def === 'number') {
    if (/(^|\.)(port|[a-zA-Z]*Port)$/.test(key)) return port();
    return Number.isInteger(def) ? { type: 'integer' } : { type: 'number' };
  }
  if (typeof def === 'boolean') return { type: 'boolean' };
  if (typeof def === 'string') return { type: 'string' };
  if (Array.isArray(def)) return { type: 'array' };
  if (def !== null && typeof def === 'object') return { type: 'object' };
  return {}; // default null or undefined: any value, checked by the module that owns it
}

export function keySchema(schemas: Schemas | undefined, name: string, key: string, def: unknown): KeySchema {
  return schemas?.[name]?.properties[key] ?? inferSchema(`${name}.${key}`, def);
}

/** Coerces text from env/flags to the schema's type and checks the value; throws a ConfigError naming all four. */
function accept(path: string, schema: KeySchema, raw: unknown, source: string): unknown {
  let value = raw;
  if (typeof raw === 'string' && source !== 'file') {
    const c = coerceText(schema, raw);
    if (!c.ok) throw new ConfigError(path, raw, source, c.why);
    value = c.value;
  }
  const why = check(schema, value);
  if (why) throw new ConfigError(path, raw, source, why);
  return value;
}

interface LoadState {
  top: TopLevel;
  sections: Sections;
  schemas?: Schemas;
  sources: Record<string, string>;
  warnings: string[];
}

function setKey(st: LoadState, path: string, raw: unknown, source: string): void {
  const { top, sections } = st;
  const dot = path.indexOf('.');
  if (dot < 0) {
    if (!(path in topLevelDefaults)) throw new ConfigError(path, raw, source, `unknown key; top-level keys are ${Object.keys(topLevelDefaults).join(', ')} and the sections ${Object.keys(sections).join(', ')}`);
    (top as unknown as Record<string, unknown>)[path] = accept(path, topLevelSchema[path as keyof TopLevel], raw, source);
    st.sources[path] = source;
    return;
  }
  const name = path.slice(0, dot);
  let key = path.slice(dot + 1);
  const section = sections[name];
  if (!section) throw new ConfigError(path, raw, source, `unknown section "${name}"; sections are ${Object.keys(sections).join(', ')}`);
  const renamed = DEPRECATED_KEYS[name]?.[key];
  if (renamed && !(key in section) && renamed in section) {
    st.warnings.push(`${name}.${key} (${source}) is deprecated: use ${name}.${renamed}`);
    key = renamed;
  }
  if (!(key in section)) throw new ConfigError(path, raw, source, `unknown key in "${name}"; keys are ${Object.keys(section).join(', ')}`);
  // The message names the key as written (an old name stays recognisable to its author).
  section[key] = accept(path, keySchema(st.schemas, name, key, section[key]), raw, source);
  st.sources[`${name}.${key}`] = source;
}

function cloneSections(sections: Sections): Sections {
  return Object.fromEntries(Object.entries(sections).map(([k, v]) => [k, structuredClone(v)]));
}

/**
 * The `yaml` parser, loaded when a YAML config file is read: a node configured by flags, the
 * environment or a JSON file never holds its code (~0.3 MB of source; issue 14's footprint).
 * Required synchronously (yaml ships CommonJS for node), so loading stays synchronous.
 */
function yamlParser(): typeof YAMLModule {
  return createRequire(import.meta.url)('yaml') as typeof YAMLModule;
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
    parsed = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : yamlParser().parse(text);
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
  const st: LoadState = { top: { ...topLevelDefaults }, sections: cloneSections(input.sections), schemas: input.schemas, sources: {}, warnings: [] };
  const { sections } = st;
  const { configFile: fileFlag, assignments } = parseFlags(input.argv);
  const configFile = fileFlag ?? input.env.TRIBUTARY_CONFIG;

  if (configFile) {
    const file = readConfigFile(configFile);
    for (const [k, v] of Object.entries(file)) {
      if (k in sections && v !== null && typeof v === 'object' && !Array.isArray(v)) {
        for (const [sk, sv] of Object.entries(v as Record<string, unknown>)) setKey(st, `${k}.${sk}`, sv, `file ${configFile}`);
      } else if (k in sections) {
        throw new ConfigError(k, v, `file ${configFile}`, 'must be a mapping of keys');
      } else {
        setKey(st, k, v, `file ${configFile}`);
      }
    }
  }

  // Environment: every known key has a TRIBUTARY_* name; unknown TRIBUTARY_* names are errors
  // too, so a typo does not silently fall back to a default.
  const known = new Map<string, string>();
  for (const k of Object.keys(topLevelDefaults)) known.set(envName(k), k);
  for (const [name, section] of Object.entries(sections)) {
    for (const k of Object.keys(section)) known.set(envName(`${name}.${k}`), `${name}.${k}`);
    for (const old of Object.keys(DEPRECATED_KEYS[name] ?? {})) if (!(old in section)) known.set(envName(`${name}.${old}`), `${name}.${old}`);
  }
  known.set('TRIBUTARY_CONFIG', '');
  // The admin CLI's own variables are the user's shell settings, not broker config: a broker
  // started from that shell ignores them rather than refusing to start.
  for (const v of CLI_ENV_VARIABLES) known.set(v, '');
  for (const [envKey, value] of Object.entries(input.env)) {
    if (!envKey.startsWith('TRIBUTARY_') || value === undefined) continue;
    const path = known.get(envKey);
    if (path === undefined) throw new ConfigError(envKey, value, 'env', 'unknown TRIBUTARY_* variable; see docs/configuration.md');
    if (path) setKey(st, path, value, `env ${envKey}`);
  }

  for (const [path, value] of assignments) setKey(st, path, value, 'flag');
  return { top: st.top, sections: sections as S, configFile, sources: st.sources, warnings: st.warnings };
}
