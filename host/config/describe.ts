// Renders docs/configuration.md from the configuration schema: every section's defaults (the
// values), what each key allows (its JSON Schema, host/config/schema.ts) and the reason comments
// written beside the defaults in the source (`key: value, // why`).
// host/config-doc.ts feeds it this build's sections (`npm run docs:config`); a test checks the doc is current.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envName, FLAG_KEYS, keySchema, topLevelDefaults, topLevelSchema, type Schemas, type Sections, CLI_ENV_VARIABLES } from './loader.js';
import { DEPRECATED_KEYS } from './listener.js';
import { allowed } from './schema.js';
import { CROSS_SECTION_RULES } from './cross-checks.js';
import { BUDGET_TERMS } from './budget.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Reason comments for `key:` lines in a source file (the first `defaultXxx = {` block wins). */
function reasons(sourceFiles: string[], block: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const source of sourceFiles) {
    // `file#block` reads its own block (e.g. the listener keys' shared defaults); `file` reads `block`.
    const [rel, ownBlock] = source.split('#');
    const file = join(root, rel);
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const start = text.indexOf(ownBlock ?? block);
    if (start < 0) continue;
    const lines = text.slice(start).split('\n');
    let depth = 0;
    let pending: string[] = [];
    for (const line of lines) {
      const trimmed = line.trim();
      if (trimmed.startsWith('//') || trimmed.startsWith('*') || trimmed.startsWith('/*')) {
        const c = trimmed.replace(/^(\/\/+|\/\*+|\*+\/?)\s?/, '').replace(/\*\/$/, '').trim();
        if (c) pending.push(c);
      } else {
        const m = /^['"]?([\w.]+)['"]?\??\s*:/.exec(trimmed);
        if (m && depth === 1) {
          const trailing = /\/\/\s?(.*)$/.exec(trimmed.replace(/(?<![A-Za-z])'[^']*'|"[^"]*"|`[^`]*`/g, "''"));
          const why = [...pending, trailing?.[1] ?? ''].filter(Boolean).join(' ');
          if (why && !out.has(m[1])) out.set(m[1], why);
        }
        if (trimmed) pending = [];
      }
      for (const ch of trimmed.replace(/\/\/.*$/, '').replace(/(?<![A-Za-z])'[^']*'|"[^"]*"|`[^`]*`/g, '')) {
        if (ch === '{' || ch === '[') depth++;
        else if (ch === '}' || ch === ']') depth--;
      }
      if (depth <= 0 && line.includes('}') && out.size + pending.length >= 0 && line.trim().startsWith('}')) break;
    }
  }
  return out;
}

function show(v: unknown): string {
  if (typeof v === 'string') return v === '' ? '`""`' : '`' + v + '`';
  if (v === null || v === undefined) return '(none)';
  const s = JSON.stringify(v);
  return '`' + (s.length > 60 ? s.slice(0, 57) + '…' : s) + '`';
}

export interface SectionDoc {
  title: string;
  what: string;
  sources: string[];
  block: string;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

export function renderConfigDoc(sections: Sections, docs: Record<string, SectionDoc>, schemas: Schemas = {}): string {
  const flagFor = new Map(Object.entries(FLAG_KEYS).map(([f, k]) => [k, f]));
  const out: string[] = [
    ...introLines(),
    ...listenerLines(),
    ...memoryBudgetLines(),
    ...crossSectionLines(),
    ...topLevelLines(flagFor),
  ];
  for (const [name, section] of Object.entries(sections)) out.push(...sectionLines(name, section, docs[name], schemas, flagFor));
  return out.join('\n') + '\n';
}

/** The doc's opening: where it comes from, the override order, what stops the broker, an example. */
function introLines(): string[] {
  return [
    '# Configuration',
    '',
    'Generated from the code by `node dist/host/config-doc.js` (a test keeps it current).',
    '',
    'Every key has an embedded default. Override it in a YAML or JSON file (`tributary start --config FILE`,',
    'or `TRIBUTARY_CONFIG=FILE`), with a `TRIBUTARY_*` environment variable, or with a command-line flag',
    '(a named flag, or `--set section.key=value` for any key) — later wins: defaults < file < environment < flags.',
    'Lists and mappings in the environment or `--set` are JSON. Each section has a JSON Schema (checked with',
    'ajv) that the *allowed* column prints. Unknown keys, unknown `TRIBUTARY_*` variables, values the schema',
    'refuses, limits that disagree across sections, a data directory that cannot be written, a bind address',
    'that is not this machine\'s, a listener port another process holds and MQTT routes that do not compile',
    'all stop the broker before anything binds, with one line naming the key, the value, where it came from',
    'and what is allowed (exit code 2). The admin CLI\'s own variables (' + CLI_ENV_VARIABLES.map((v) => '`' + v + '`').join(', ') + ')',
    'are not broker configuration: a broker started from a shell that sets them ignores them.',
    '',
    '```yaml',
    '# tributary.yaml',
    'dataDir: /var/lib/tributary',
    'kafka:',
    '  port: 9092',
    'mqtt:',
    '  port: 1883',
    '```',
    '',
  ];
}

/** The listener keys every door shares, and the renamed keys still accepted. */
function listenerLines(): string[] {
  return [
    '## Listeners',
    '',
    'Every door has the same listener keys: `host` (null = the top-level `host`), `port` (`0` picks a free',
    'port and the ready line names it, `-1` turns the listener off), `connectionsMax` (connections open at',
    'once; the next is refused in the door\'s own way, logged and counted) and `tls` (reserved: TLS arrives',
    'with the security issue; until then any value other than null stops the broker with "TLS is not',
    'supported yet"). MQTT has a second port, `mqtt.wsPort` (MQTT over WebSocket), sharing the others.',
    '',
    'Renamed keys: the old names are still accepted and log a warning naming the new key at start.',
    '',
    '| old key | new key |',
    '|---|---|',
    ...Object.entries(DEPRECATED_KEYS).flatMap(([name, m]) => Object.entries(m).map(([old, now]) => `| \`${name}.${old}\` (\`${envName(`${name}.${old}`)}\`) | \`${name}.${now}\` |`)),
    '',
  ];
}

/** What the start-up memory budget counts. */
function memoryBudgetLines(): string[] {
  return [
    '## Memory budget',
    '',
    'At start the broker logs one line with the most memory its bounded queues, buffers and caches may hold',
    '(`memory budget: … MiB of … MiB (…)`, item by item, from the limits below) and refuses to start when',
    'the total passes `node.memoryBudgetBytes`, naming the biggest items. Bounds per connection or per',
    'partition without a node-wide total (Kafka in-flight bytes, MQTT outgoing bytes, index caches) are',
    'listed in the same line (`perConnection`, `perPartition`) but not added. Not counted either: Node\'s own',
    'heap and code (~70 MiB RSS idle, docs/performance.md#footprint) and the wasm core\'s fixed 128 MiB memory, whose untouched pages cost no RAM.',
    '',
    '| item | counted |',
    '|---|---|',
    ...BUDGET_TERMS.map((b) => `| ${b.of.map((f) => (typeof f === 'number' ? `${f} bytes` : `\`${f}\``)).join(' × ')} | ${b.apart ? `listed apart (${b.apart})` : 'added'} |`),
    '',
  ];
}

/** The limits checked against each other across sections. */
function crossSectionLines(): string[] {
  return [
    '## Limits that must agree across sections',
    '',
    'Checked at start, after each key on its own; a broken rule names both keys, both values and where each came from.',
    '',
    '| this | at most | why |',
    '|---|---|---|',
    ...CROSS_SECTION_RULES.map((r) => `| \`${r.smaller}\` | \`${r.larger}\` | ${r.why} |`),
    '',
  ];
}

/** The top-level keys' table (they have flags of their own and no section). */
function topLevelLines(flagFor: Map<string, string>): string[] {
  const out: string[] = [
    '## Top level',
    '',
    '| key | default | allowed | environment | flag | meaning |',
    '|---|---|---|---|---|---|',
  ];
  const topWhy: Record<string, string> = {
    dataDir: 'where partition logs, topic metadata and checkpoints live; created if missing',
    host: 'address every listener binds unless its section sets `host` (127.0.0.1 by default: this machine only; 0.0.0.0 serves the LAN and needs authentication or `security.allowAnonymous: true`, see [security.md](security.md))',
    logLevel: 'one JSON line per event on stdout',
  };
  for (const [k, v] of Object.entries(topLevelDefaults)) {
    const allowedText = allowed(topLevelSchema[k as keyof typeof topLevelSchema]);
    out.push(`| \`${k}\` | ${show(v)} | ${cell(allowedText)} | \`${envName(k)}\` | ${flagFor.has(k) ? '`' + flagFor.get(k) + '`' : ''} | ${topWhy[k] ?? ''} |`);
  }
  return out;
}

/** One section's heading, description and key table, each key's meaning read from its reason comment. */
function sectionLines(name: string, section: Sections[string], d: SectionDoc | undefined, schemas: Schemas, flagFor: Map<string, string>): string[] {
  const why = d ? reasons(d.sources, d.block) : new Map<string, string>();
  const out = ['', `## \`${name}\` — ${d?.title ?? name}`, '', d?.what ?? '', '', '| key | default | allowed | environment | meaning |', '|---|---|---|---|---|'];
  for (const [k, v] of Object.entries(section)) {
    const flag = flagFor.get(`${name}.${k}`);
    const allowedText = allowed(keySchema(schemas, name, k, v));
    out.push(`| \`${name}.${k}\` | ${show(v)} | ${cell(allowedText)} | \`${envName(`${name}.${k}`)}\`${flag ? ` (flag \`${flag}\`)` : ''} | ${cell(why.get(k) ?? '')} |`);
  }
  return out;
}

/** Where each section's defaults (and their reason comments) live. */
export const SECTION_DOCS: Record<string, SectionDoc> = {
  broker: {
    title: 'topics, partitions and broker-wide limits',
    what: 'Topic defaults (`broker.topicDefaults`, Kafka-named keys such as `retention.ms`) are described in [broker.md](broker.md).',
    sources: ['host/broker/limits.ts'],
    block: 'export const defaultBrokerOptions',
  },
  groups: {
    title: 'consumer groups and committed offsets',
    what: 'See [groups.md](groups.md).',
    sources: ['host/broker/groups/options.ts'],
    block: 'export const defaultGroupOptions',
  },
  kafka: {
    title: 'the Kafka listener',
    what: 'See [kafka.md](kafka.md).',
    sources: ['host/config/listener.ts#export const listenerConfigDefaults', 'host/kafka/options.ts'],
    block: 'export const defaultKafkaServerOptions',
  },
  mqtt: {
    title: 'the MQTT gateway (TCP and WebSocket)',
    what: 'Routes, headers, sessions and auth are described in [mqtt.md](mqtt.md).',
    sources: ['host/config/listener.ts#export const listenerConfigDefaults', 'gateway/mqtt/options.ts'],
    block: 'export const defaultMqttGatewayOptions',
  },
  http: {
    title: 'HTTP API, WebSocket protocol and console',
    what: 'See [websocket.md](websocket.md) and [http.md](http.md).',
    sources: ['host/config/listener.ts#export const listenerConfigDefaults', 'gateway/ws/options.ts'],
    block: 'export const defaultWsGatewayOptions',
  },
  schemas: {
    title: 'the schema registry and ingest validation',
    what: 'A Confluent-compatible registry on its own listener (`port: -1` turns the listener off; validation still runs). Per-topic validation is the topic config `schema.validation` / `schema.subject`. See [schemas.md](schemas.md).',
    sources: ['host/config/listener.ts#export const listenerConfigDefaults', 'host/schemas/options.ts'],
    block: 'export const defaultSchemaRegistryOptions',
  },
  cluster: {
    title: 'cluster (metadata quorum)',
    what: 'Unset (`nodeId: null`, no voters) = a single node, as before. Set on every voter: its own `nodeId` and `listen`, and the same `voters` list; the handshake checks `kafka.clusterId`. Topic metadata is replicated by Raft; partition data is not yet. See [cluster.md](cluster.md).',
    sources: ['host/cluster/options.ts'],
    block: 'export const defaultClusterOptions',
  },
  security: {
    title: 'authentication, authorization and who may connect',
    what: 'Kafka SASL (PLAIN, SCRAM-SHA-256/512), ACLs, super-users and the loopback rule. See [security.md](security.md).',
    sources: ['host/security/options.ts'],
    block: 'export const defaultSecurityOptions',
  },
  uplink: {
    title: 'store-and-forward to a central Kafka-protocol cluster',
    what: 'Off while `uplink.site` is empty. Exactly-once by read-back of origin headers; setup, guarantees and what is not done yet are in [uplink.md](uplink.md).',
    sources: ['host/sync/options.ts'],
    block: 'export const defaultUplinkOptions',
  },
  node: {
    title: 'node-wide settings',
    what: 'See *Memory budget* above.',
    sources: ['host/node.ts'],
    block: 'export const defaultNodeOptions',
  },
};
