// Compares what the clients of one script received from Mosquitto and from Tributary.
//
// Compared per connection: CONNACK (return/reason code, session present), SUBACK codes,
// UNSUBACK, whether each own QoS 1/2 publish was acknowledged, how the connection ended, and the
// deliveries: topic, payload, QoS and retain flag, and their order per (publisher, topic, published
// QoS, retain) — MQTT orders messages only per topic and QoS (MQTT 3.1.1 §4.6), and Mosquitto itself
// may deliver a QoS 1 message before an earlier QoS 2 one.
//
// Every way Tributary is meant to differ is one row of INTENDED_DIFFERENCES, with the spec rule
// or document behind it. Nothing else is tolerated: a difference not named there fails the test.
import type { Script, Step } from './mqtt-script.js';
import { clientName } from './mqtt-script.js';
import type { ConnectionLog, Observation, StepAction } from './mqtt-script-runner.js';

export interface IntendedDifference {
  id: string;
  /** The MQTT spec rule or document that makes this difference intended. */
  rule: string;
  what: string;
  /** How Mosquitto's run is made to follow Tributary's intended behaviour for one step (undefined: not this rule's step). */
  onMosquitto?: (step: Step, script: Script) => StepAction | undefined;
}

export const INTENDED_DIFFERENCES: IntendedDifference[] = [
  {
    id: 'overlapping-subscriptions-one-copy',
    rule: 'MQTT-3.3.5-1 (3.1.1 §3.3.5; 5.0 §3.3.4: deliver respecting the maximum QoS of all matching subscriptions, MAY send further copies)',
    what:
      'With overlapping subscriptions Mosquitto 2.0 sends one copy per matching subscription; aedes one copy at the maximum QoS. Compared: the copies of one message on one connection count once, at their maximum QoS.',
  },
  {
    id: 'overlapping-subscriptions-maximum-qos',
    rule: 'MQTT-3.3.5-1 (3.1.1 §3.3.5: "the Server MUST deliver the message to the Client respecting the maximum QoS of all the matching subscriptions"; 5.0 §3.3.4)',
    what:
      'Mosquitto 2.0.11 sends a live or queued message once to a client with overlapping subscriptions, at the QoS of the most specific one (a/x before +/x before +/+ before #: "a/x" q0 with "+/+" q1 gives q0). Tributary sends it at min(published QoS, maximum granted QoS of the matching subscriptions). Compared: a delivery at another QoS is this row when Tributary\'s QoS is exactly that maximum (the client\'s subscriptions replayed from the script) and Mosquitto\'s is lower. A consequence compared too: a QoS 1/2 copy the client did not acknowledge is sent again to its resumed session (MQTT-4.4.0-1), where Mosquitto\'s QoS 0 copy is not — an extra delivery to a resumed session is this row when an earlier connection of the same client got that message from Tributary at a QoS of this row and from Mosquitto at QoS 0 (seed 409404).',
  },
  {
    id: 'puback-no-matching-subscribers',
    rule: 'MQTT 5.0 §3.4.2.1 (reason 0x10 "No matching subscribers": the server MAY use it instead of 0x00)',
    what: 'Mosquitto answers a QoS 1/2 publish nobody subscribes to with 0x10, Tributary with 0x00 (the message is stored). Compared: any reason code below 0x80 is "acked".',
  },
  {
    id: 'no-sys-hierarchy',
    rule: 'MQTT-4.7.2-1 ($SYS is server-specific, not part of the spec); mosquitto.conf(5) sys_interval',
    what: 'Mosquitto publishes broker statistics under $SYS/; Tributary publishes none (its metrics are on /metrics). The harness starts Mosquitto with sys_interval 0.',
  },
];

/** Step actions for Mosquitto's side, from the table. */
export function mosquittoActions(step: Step, script: Script): StepAction {
  for (const d of INTENDED_DIFFERENCES) {
    const a = d.onMosquitto?.(step, script);
    if (a) return a;
  }
  return 'run';
}

/** Who sent a payload: the publish step's client, a will, or an empty (retained-clear) publish. */
function publisherOf(script: Script, payload: string): string {
  const m = /^(\d+)\.([pw])(\d+)$/.exec(payload);
  if (!m) return payload === '' ? 'empty payload' : `foreign payload ${JSON.stringify(payload)}`;
  if (Number(m[1]) !== script.seed) return `payload of another script ${payload}`;
  const step = script.steps.find((s) => s.id === Number(m[3]));
  const who = step ? clientName(step.client) : '?';
  return m[2] === 'w' ? `will of ${who}` : who;
}

/** The QoS a payload was published with: its publish step's, or its will's. */
function publishedQoS(script: Script, payload: string): number | undefined {
  const m = /^(\d+)\.([pw])(\d+)$/.exec(payload);
  if (!m || Number(m[1]) !== script.seed) return undefined;
  const step = script.steps.find((s) => s.id === Number(m[3]));
  if (step?.op === 'publish') return step.qos;
  if (step?.op === 'connect') return step.will?.qos;
  return undefined;
}

interface Delivered {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

/** overlapping-subscriptions-one-copy: the copies of a message on one connection collapse to the first, at the maximum QoS. */
function deliveries(log: ConnectionLog): Map<string, Delivered> {
  const out = new Map<string, Delivered>();
  for (const r of log.received) {
    const k = `${r.topic}\0${r.payload}\0${r.retain}`;
    const seen = out.get(k);
    if (!seen) out.set(k, { topic: r.topic, payload: r.payload, qos: r.qos, retain: r.retain });
    else seen.qos = Math.max(seen.qos, r.qos);
  }
  return out;
}

/** The comparable fields of one connection other than deliveries. */
function fields(log: ConnectionLog): Map<string, string> {
  const out = new Map<string, string>();
  out.set('CONNACK', log.connack);
  for (const [id, v] of Object.entries(log.subacks)) out.set(`SUBACK of #${id}`, v);
  for (const [id, v] of Object.entries(log.unsubacks)) out.set(`UNSUBACK of #${id}`, v);
  // puback-no-matching-subscribers: every reason code below 0x80 is a success
  for (const [id, v] of Object.entries(log.publishAcks)) out.set(`acknowledgement of publish #${id}`, v.startsWith('refused') ? 'refused' : v);
  out.set('connection end', log.end);
  return out;
}

/** MQTT-4.7.2-1 aside, a filter matches a topic level by level (`+` one level, `#` the rest, the parent included). */
function matches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/**
 * overlapping-subscriptions-maximum-qos: the QoS MQTT-3.3.5-1 asks for a delivery of a message
 * published by a script step (or a will) to connection `key` (`c2@#7`): min(published QoS, the
 * highest QoS among the client's subscriptions matching the topic when it was published), the
 * subscriptions replayed from the script's steps (a clean session starts empty and ends with its
 * connection). Undefined when the message is not the script's.
 */
function maximumQoSes(script: Script, key: string, d: Delivered): number[] {
  // an empty payload (a retained message cleared) does not name its step: any empty publish to the topic may be it
  const origins = d.payload === '' ? script.steps.flatMap((s) => (s.op === 'publish' && s.empty && s.topic === d.topic ? [`${script.seed}.p${s.id}`] : [])) : [d.payload];
  return origins.flatMap((payload) => maximumQoS(script, key, { ...d, payload }) ?? []);
}

function maximumQoS(script: Script, key: string, d: Delivered): number | undefined {
  const m = /^(\d+)\.([pw])(\d+)$/.exec(d.payload);
  const client = Number(/^c(\d+)@/.exec(key)?.[1]) - 1;
  if (!m || Number(m[1]) !== script.seed || !(client >= 0)) return undefined;
  const origin = script.steps.findIndex((s) => s.id === Number(m[3]));
  if (origin < 0) return undefined;
  const from = script.steps[origin];
  let published: number;
  let until = origin;
  if (m[2] === 'p' && from.op === 'publish') published = from.qos;
  else if (m[2] === 'w' && from.op === 'connect' && from.will) {
    published = from.will.qos;
    // a will is published when its connection ends without DISCONNECT
    const end = script.steps.findIndex((s, i) => i > origin && s.client === from.client && (s.op === 'close' || s.op === 'disconnect'));
    until = end < 0 ? script.steps.length - 1 : end;
  } else return undefined;
  let subs = new Map<string, number>();
  let clean = true;
  for (let i = 0; i <= until; i++) {
    const s = script.steps[i];
    if (s.client !== client) continue;
    if (s.op === 'connect') {
      if (s.clean || clean) subs = new Map();
      clean = s.clean;
    } else if (s.op === 'subscribe') for (const x of s.subs) subs.set(x.filter, x.qos);
    else if (s.op === 'unsubscribe') for (const f of s.filters) subs.delete(f);
  }
  let max = -1;
  for (const [f, q] of subs) if (q > max && matches(f, d.topic)) max = q;
  return max < 0 ? undefined : Math.min(published, max);
}

/**
 * overlapping-subscriptions-maximum-qos, its consequence on a resumed session: `d`, delivered by
 * Tributary only, was delivered to an earlier connection of the same client by Tributary at QoS 1/2
 * (the maximum of the matching subscriptions, so the session keeps it until acknowledged and sends
 * it again, MQTT-4.4.0-1) and by Mosquitto at QoS 0 (nothing to send again).
 */
function resentAfterMaximumQoS(script: Script, key: string, d: Delivered, m: Map<string, ConnectionLog>, t: Map<string, ConnectionLog>): boolean {
  const [client, at] = key.split('@#');
  for (const [earlier, tc] of t) {
    const [c, id] = earlier.split('@#');
    if (c !== client || Number(id) >= Number(at)) continue;
    const mc = m.get(earlier);
    if (!mc) continue;
    const tq = tc.received.filter((r) => r.topic === d.topic && r.payload === d.payload).map((r) => r.qos);
    const mq = mc.received.filter((r) => r.topic === d.topic && r.payload === d.payload).map((r) => r.qos);
    if (tq.length === 0 || mq.length === 0 || Math.max(...mq) !== 0) continue;
    const q = Math.max(...tq);
    if (q > 0 && maximumQoSes(script, earlier, { ...d, qos: q }).includes(q)) return true;
  }
  return false;
}

export interface Difference {
  /** What kind of difference, for grouping and for the shrinker: it keeps a script only while this kind persists. */
  kind: string;
  connection: string;
  what: string;
  mosquitto: string;
  tributary: string;
}

const describe = (script: Script, d: Delivered | undefined) =>
  d ? `${d.topic} q${d.qos}${d.retain ? ' retained' : ''} from ${publisherOf(script, d.payload)} (${d.payload === '' ? 'empty' : d.payload.slice(d.payload.indexOf('.') + 1)})` : 'not delivered';

/** Every difference between the two observations of one script. */
export function compare(script: Script, mosquitto: Observation, tributary: Observation): Difference[] {
  const diffs: Difference[] = [];
  const byKey = (o: Observation) => new Map(o.connections.map((c) => [c.key, c]));
  const m = byKey(mosquitto);
  const t = byKey(tributary);
  for (const key of [...new Set([...m.keys(), ...t.keys()])]) {
    const mc = m.get(key);
    const tc = t.get(key);
    if (!mc || !tc) {
      diffs.push({ kind: 'connection made on one side only', connection: key, what: 'connection', mosquitto: mc ? 'made' : 'not made', tributary: tc ? 'made' : 'not made' });
      continue;
    }
    const a = fields(mc);
    const b = fields(tc);
    for (const what of [...new Set([...a.keys(), ...b.keys()])]) {
      const x = a.get(what) ?? '(none)';
      const y = b.get(what) ?? '(none)';
      if (x !== y) diffs.push({ kind: what.replace(/ of (publish )?#\d+$/, ''), connection: key, what, mosquitto: x, tributary: y });
    }
    const resumed = / sessionPresent 1$/.test(mc.connack) ? ' to a resumed session' : '';
    const dm = deliveries(mc);
    const dt = deliveries(tc);
    for (const k of new Set([...dm.keys(), ...dt.keys()])) {
      const x = dm.get(k);
      const y = dt.get(k);
      const live = (x ?? y)!.retain ? 'retained' : 'live';
      let kind: string | undefined;
      if (x && !y) kind = `${live} delivery${resumed} missing`;
      else if (!x && y) kind = resumed && resentAfterMaximumQoS(script, key, y, m, t) ? undefined : `${live} delivery${resumed} extra`;
      else if (x!.qos !== y!.qos && !(x!.qos < y!.qos && maximumQoSes(script, key, y!).includes(y!.qos))) kind = `${live} delivery${resumed} at another QoS`;
      if (kind) diffs.push({ kind, connection: key, what: 'delivery', mosquitto: describe(script, x), tributary: describe(script, y) });
    }
    // order per (publisher, topic, published QoS, retain) among the messages both delivered at the
    // same QoS: MQTT orders the messages of one publisher per topic and QoS as published (3.1.1
    // §4.6) — a QoS 2 one downgraded to 0 for a subscriber may follow later QoS 0 ones
    const order = (d: Map<string, Delivered>, other: Map<string, Delivered>) => {
      const groups = new Map<string, string[]>();
      for (const [k, v] of d) {
        if (other.get(k)?.qos !== v.qos) continue;
        const g = `${v.topic} published q${publishedQoS(script, v.payload) ?? '?'}${v.retain ? ' retained' : ''} from ${publisherOf(script, v.payload)}`;
        groups.set(g, [...(groups.get(g) ?? []), v.payload === '' ? '(empty)' : v.payload.slice(v.payload.indexOf('.') + 1)]);
      }
      return groups;
    };
    const om = order(dm, dt);
    const ot = order(dt, dm);
    for (const [g, seq] of om) {
      const other = ot.get(g) ?? [];
      if (seq.join(' ') !== other.join(' ')) diffs.push({ kind: 'order', connection: key, what: `order of ${g}`, mosquitto: seq.join(' '), tributary: other.join(' ') });
    }
  }
  return diffs;
}

/** The kinds of a difference list, so the shrinker keeps the same failure rather than any failure. */
export function signature(diffs: Difference[]): string {
  return [...new Set(diffs.map((d) => d.kind))].sort()[0] ?? '';
}

export function formatDifferences(diffs: Difference[], max = 20): string {
  const lines = diffs.slice(0, max).map((d) => `  ${d.connection} ${d.what} [${d.kind}]:\n      mosquitto: ${d.mosquitto}\n      tributary: ${d.tributary}`);
  if (diffs.length > max) lines.push(`  … and ${diffs.length - max} more`);
  return lines.join('\n');
}

export function formatIntendedDifferences(): string {
  return INTENDED_DIFFERENCES.map((d) => `- ${d.id} (${d.rule}): ${d.what}`).join('\n');
}
