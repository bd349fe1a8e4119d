// Renders docs/configuration.md from the configuration schema itself: every section's defaults
// (the values) and the reason comments written beside them in the source (`key: value, // why`).
// host/config-doc.ts feeds it this build's sections (`npm run docs:config`); a test checks the doc is current.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envName, FLAG_KEYS, topLevelDefaults, type Sections } from './loader.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Reason comments for `key:` lines in a source file (the first `defaultXxx = {` block wins). */
function reasons(sourceFiles: string[], block: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const rel of sourceFiles) {
    const file = join(root, rel);
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const start = text.indexOf(block);
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
          const trailing = /\/\/\s?(.*)$/.exec(trimmed.replace(/'[^']*'|"[^"]*"|`[^`]*`/g, "''"));
          const why = [...pending, trailing?.[1] ?? ''].filter(Boolean).join(' ');
          if (why && !out.has(m[1])) out.set(m[1], why);
        }
        if (trimmed) pending = [];
      }
      for (const ch of trimmed.replace(/\/\/.*$/, '').replace(/'[^']*'|"[^"]*"|`[^`]*`/g, '')) {
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

export function renderConfigDoc(sections: Sections, docs: Record<string, SectionDoc>): string {
  const flagFor = new Map(Object.entries(FLAG_KEYS).map(([f, k]) => [k, f]));
  const out: string[] = [
    '# Configuration',
    '',
    'Generated from the code by `node dist/host/config-doc.js` (a test keeps it current).',
    '',
    'Every key has an embedded default. Override it in a YAML or JSON file (`tributary start --config FILE`,',
    'or `TRIBUTARY_CONFIG=FILE`), with a `TRIBUTARY_*` environment variable, or with a command-line flag',
    '(a named flag, or `--set section.key=value` for any key) — later wins: defaults < file < environment < flags.',
    'Lists and mappings in the environment or `--set` are JSON. Unknown keys, unknown `TRIBUTARY_*`',
    'variables and values of the wrong type stop the broker with a message naming the key, the value,',
    'where it came from and what is allowed.',
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
    '## Top level',
    '',
    '| key | default | environment | flag | meaning |',
    '|---|---|---|---|---|',
  ];
  const topWhy: Record<string, string> = {
    dataDir: 'where partition logs, topic metadata and checkpoints live',
    host: 'address every listener binds (a gateway serves its LAN; use 127.0.0.1 to stay local)',
    logLevel: 'fatal, error, warn, info, debug, trace or silent; one JSON line per event on stdout',
  };
  for (const [k, v] of Object.entries(topLevelDefaults)) {
    out.push(`| \`${k}\` | ${show(v)} | \`${envName(k)}\` | ${flagFor.has(k) ? '`' + flagFor.get(k) + '`' : ''} | ${topWhy[k] ?? ''} |`);
  }
  for (const [name, section] of Object.entries(sections)) {
    const d = docs[name];
    const why = d ? reasons(d.sources, d.block) : new Map<string, string>();
    out.push('', `## \`${name}\` — ${d?.title ?? name}`, '', d?.what ?? '', '', '| key | default | environment | meaning |', '|---|---|---|---|');
    for (const [k, v] of Object.entries(section)) {
      const flag = flagFor.get(`${name}.${k}`);
      out.push(`| \`${name}.${k}\` | ${show(v)} | \`${envName(`${name}.${k}`)}\`${flag ? ` (flag \`${flag}\`)` : ''} | ${(why.get(k) ?? '').replace(/\|/g, '\\|')} |`);
    }
  }
  return out.join('\n') + '\n';
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
    sources: ['host/kafka/options.ts'],
    block: 'export const defaultKafkaServerOptions',
  },
  mqtt: {
    title: 'the MQTT gateway (TCP and WebSocket)',
    what: 'Routes, headers, sessions and auth are described in [mqtt.md](mqtt.md).',
    sources: ['gateway/mqtt/options.ts'],
    block: 'export const defaultMqttGatewayOptions',
  },
  http: {
    title: 'HTTP API, WebSocket protocol and console',
    what: 'See [websocket.md](websocket.md) and [http.md](http.md).',
    sources: ['gateway/ws/options.ts'],
    block: 'export const defaultWsGatewayOptions',
  },
  schemas: {
    title: 'the schema registry and ingest validation',
    what: 'A Confluent-compatible registry on its own listener (`port: -1` turns the listener off; validation still runs). Per-topic validation is the topic config `schema.validation` / `schema.subject`. See [schemas.md](schemas.md).',
    sources: ['host/schemas/options.ts'],
    block: 'export const defaultSchemaRegistryOptions',
  },
};
