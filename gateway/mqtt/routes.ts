// Routes between MQTT topics and stream topics.
//
// Forward (MQTT publish → record): the first route whose `match` filter matches the MQTT
// topic wins; its `topic` and `key` templates are filled from the MQTT topic's levels.
// Default route (when enabled and nothing matched): first MQTT level → stream topic,
// sanitised to Kafka's legal characters; full MQTT topic → key, so one device's readings
// stay ordered in one partition.
//
// Sanitising: every character outside [a-zA-Z0-9._-] becomes '_', an empty name becomes
// '_', "." and ".." become "_" and "__", names are cut at 249 characters. A result starting
// with "__" would name an internal topic (the gateway's own `__mqtt_*` state): such
// publishes are unroutable, never stored there.
//
// Reverse (record → MQTT topic): a reverse route for the stream topic fills its template;
// otherwise the record's `mqtt.topic` header, else the record key when it is a valid MQTT
// topic name.
import type { MqttReverseRoute, MqttRoute } from './options.js';

const TOPIC_NAME_LENGTH_MAX = 249;
const DEFAULT_TOPICS_CACHED_MAX = 1_024; // first levels remembered (cleared when full: a cache, not state)

export function sanitiseTopicName(raw: string): string {
  let s = raw.replace(/[^a-zA-Z0-9._-]/g, '_');
  if (s.length === 0) s = '_';
  if (s === '.') s = '_';
  if (s === '..') s = '__';
  return s.length > TOPIC_NAME_LENGTH_MAX ? s.slice(0, TOPIC_NAME_LENGTH_MAX) : s;
}

/** MQTT topic filter matching (MQTT-4.7): `+` one level, `#` the rest (including the parent). */
export function filterMatches(filter: string, topic: string): boolean {
  // MQTT-4.7.2-1: wildcards at the first level never match topics starting with '$'.
  if (topic.charCodeAt(0) === 36 && (filter.charCodeAt(0) === 43 || filter.charCodeAt(0) === 35)) return false;
  // Walks both strings level by level without splitting them: this runs for every delivery
  // and every matching subscription (outbound.ts), so it allocates nothing.
  const fl = filter.length;
  const tl = topic.length;
  let f = 0; // start of the current filter level
  let t = 0; // start of the current topic level (tl + 1: the topic has no more levels)
  for (;;) {
    let fe = filter.indexOf('/', f);
    if (fe < 0) fe = fl;
    // `#` (valid filters have it alone and last) matches the rest, the parent level included
    if (fe - f === 1 && filter.charCodeAt(f) === 35) return true;
    if (t > tl) return false;
    let te = topic.indexOf('/', t);
    if (te < 0) te = tl;
    const plus = fe - f === 1 && filter.charCodeAt(f) === 43;
    if (!plus) {
      if (fe - f !== te - t) return false;
      for (let k = 0; k < fe - f; k++) if (filter.charCodeAt(f + k) !== topic.charCodeAt(t + k)) return false;
    }
    f = fe + 1;
    t = te + 1;
    if (f > fl) return t > tl;
  }
}

/** True when some topic matches both filters. */
export function filtersIntersect(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; ; i++) {
    const p = x[i];
    const q = y[i];
    if (p === '#' || q === '#') return true;
    if (p === undefined || q === undefined) return p === q;
    if (p !== '+' && q !== '+' && p !== q) return false;
  }
}

/** A valid MQTT topic name for PUBLISH (no wildcards, no U+0000, non-empty, ≤ 65535 bytes). */
export function isValidTopicName(topic: string): boolean {
  if (topic.length === 0 || Buffer.byteLength(topic) > 65535) return false;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0 || c === 35 || c === 43) return false;
    if (c >= 0xd800 && c <= 0xdfff) {
      // a surrogate must be a proper pair
      if (c > 0xdbff || i + 1 >= topic.length) return false;
      const d = topic.charCodeAt(i + 1);
      if (d < 0xdc00 || d > 0xdfff) return false;
      i++;
    }
  }
  return true;
}

type Part = { literal: string } | { level: number } | { name: 'clientId' | 'topic' };

function compileTemplate(template: string, where: string): Part[] {
  const parts: Part[] = [];
  const re = /\{([^}]*)\}/g;
  let last = 0;
  for (let m = re.exec(template); m; m = re.exec(template)) {
    if (m.index > last) parts.push({ literal: template.slice(last, m.index) });
    const name = m[1];
    if (/^[1-9]$/.test(name)) parts.push({ level: Number(name) });
    else if (name === 'clientId' || name === 'topic') parts.push({ name });
    else throw new Error(`${where}: unknown placeholder {${name}} in "${template}" (use {1}..{9}, {topic}, {clientId})`);
    last = re.lastIndex;
  }
  if (last < template.length) parts.push({ literal: template.slice(last) });
  return parts;
}

function fill(parts: Part[], levels: string[], mqttTopic: string, clientId: string): string {
  let out = '';
  for (const p of parts) {
    if ('literal' in p) out += p.literal;
    else if ('level' in p) out += levels[p.level - 1] ?? '';
    else out += p.name === 'topic' ? mqttTopic : clientId;
  }
  return out;
}

export interface RouteTarget {
  topic: string;
  key: string;
  partition?: number;
}

interface CompiledRoute {
  match: string;
  topic: Part[];
  /** The stream topic when the template has no placeholders (known without a publish). */
  staticTopic?: string;
  key: Part[];
  partition?: number;
}

export class Router {
  private readonly routes: CompiledRoute[];
  private readonly reverseByTopic = new Map<string, Array<{ literal: string } | { name: 'key' | 'topic' | 'partition' }>>();

  constructor(
    routes: MqttRoute[],
    private readonly defaultRoute: boolean,
    reverseRoutes: MqttReverseRoute[] = [],
  ) {
    this.routes = routes.map((r, i) => {
      const where = `mqtt.routes[${i}]`;
      if (typeof r.match !== 'string' || !isValidFilter(r.match)) throw new Error(`${where}.match is not a valid MQTT topic filter: ${JSON.stringify(r.match)}`);
      if (typeof r.topic !== 'string' || r.topic.length === 0) throw new Error(`${where}.topic must be a non-empty template`);
      if (r.partition !== undefined && (!Number.isInteger(r.partition) || r.partition < 0)) throw new Error(`${where}.partition must be a non-negative integer`);
      const topic = compileTemplate(r.topic, `${where}.topic`);
      const staticTopic = topic.every((p) => 'literal' in p) ? sanitiseTopicName(r.topic) : undefined;
      if (staticTopic?.startsWith('__')) throw new Error(`${where}.topic "${r.topic}" names an internal topic`);
      return { match: r.match, topic, staticTopic, key: compileTemplate(r.key ?? '{topic}', `${where}.key`), partition: r.partition };
    });
    reverseRoutes.forEach((r, i) => {
      const parts: Array<{ literal: string } | { name: 'key' | 'topic' | 'partition' }> = [];
      const re = /\{([^}]*)\}/g;
      let last = 0;
      for (let m = re.exec(r.mqttTopic); m; m = re.exec(r.mqttTopic)) {
        if (m.index > last) parts.push({ literal: r.mqttTopic.slice(last, m.index) });
        if (m[1] !== 'key' && m[1] !== 'topic' && m[1] !== 'partition') throw new Error(`mqtt.reverseRoutes[${i}].mqttTopic: unknown placeholder {${m[1]}} (use {key}, {topic}, {partition})`);
        parts.push({ name: m[1] });
        last = re.lastIndex;
      }
      if (last < r.mqttTopic.length) parts.push({ literal: r.mqttTopic.slice(last) });
      this.reverseByTopic.set(r.topic, parts);
    });
  }

  /** Where a publish goes, or undefined when no route (and no default) takes it. */
  forward(mqttTopic: string, clientId: string): RouteTarget | undefined {
    for (const r of this.routes) {
      if (!filterMatches(r.match, mqttTopic)) continue;
      const levels = mqttTopic.split('/');
      const topic = r.staticTopic ?? sanitiseTopicName(fill(r.topic, levels, mqttTopic, clientId));
      if (topic.startsWith('__')) return undefined;
      return { topic, key: fill(r.key, levels, mqttTopic, clientId), partition: r.partition };
    }
    if (!this.defaultRoute) return undefined;
    const slash = mqttTopic.indexOf('/');
    const topic = this.defaultTopicOf(slash < 0 ? mqttTopic : mqttTopic.slice(0, slash));
    if (topic.startsWith('__')) return undefined;
    return { topic, key: mqttTopic };
  }

  /** First MQTT levels already sanitised by the default route (every publish asks; devices reuse a few). */
  private readonly defaultTopics = new Map<string, string>();

  private defaultTopicOf(firstLevel: string): string {
    let topic = this.defaultTopics.get(firstLevel);
    if (topic === undefined) {
      topic = sanitiseTopicName(firstLevel);
      if (this.defaultTopics.size >= DEFAULT_TOPICS_CACHED_MAX) this.defaultTopics.clear();
      this.defaultTopics.set(firstLevel, topic);
    }
    return topic;
  }

  /**
   * Stream topics whose records could reach a subscriber of `filter`, or 'all' when any
   * topic could (a wildcard first level, a route with a templated topic).
   */
  streamTopicsFor(filter: string): Set<string> | 'all' {
    const out = new Set<string>(this.reverseByTopic.keys());
    for (const r of this.routes) {
      if (!filtersIntersect(r.match, filter)) continue;
      if (r.staticTopic === undefined) return 'all';
      out.add(r.staticTopic);
    }
    if (this.defaultRoute || this.routes.length === 0) {
      const first = filter.split('/')[0];
      if (first === '+' || first === '#') return 'all';
      const t = sanitiseTopicName(first);
      if (!t.startsWith('__')) out.add(t);
    }
    return out;
  }

  /** The MQTT topic a record is delivered under, or undefined when it has none. */
  reverse(streamTopic: string, partition: number, key: Uint8Array | null, headerTopic: string | undefined): string | undefined {
    const parts = this.reverseByTopic.get(streamTopic);
    let out: string | undefined;
    if (parts) {
      const keyText = key ? Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('utf8') : '';
      out = '';
      for (const p of parts) out += 'literal' in p ? p.literal : p.name === 'key' ? keyText : p.name === 'topic' ? streamTopic : String(partition);
    } else if (headerTopic !== undefined) {
      out = headerTopic;
    } else if (key && key.length > 0) {
      out = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('utf8');
    }
    if (out === undefined || !isValidTopicName(out) || out.charCodeAt(0) === 36) return undefined;
    return out;
  }
}

/** A valid MQTT topic filter (MQTT-4.7.1-2/3): `#` alone and last, `+` alone in its level. */
export function isValidFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i];
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return false;
    if (l.includes('+') && l !== '+') return false;
  }
  return true;
}
