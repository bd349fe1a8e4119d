// Seeded MQTT session scripts for the differential test against Mosquitto: a script is a list of
// steps by a few clients (connect clean/persistent, subscribe and unsubscribe with overlapping
// filters, pipelined publishes at mixed QoS, retained or not, DISCONNECT, abrupt close, wills).
// The same seed always gives the same script; the shrinker drops steps while a difference
// persists. Payloads name the step that produced them, so a delivery says who published it.

import { prng } from './codec-inputs.js'; // mulberry32, as the codec tests use it

export { prng };

/** The few topic names every script draws from, so that filters overlap. */
export const TOPICS = ['a', 'a/x', 'b/x', 'a/b/c', '$q/x'] as const;
/** Filters overlapping those topics: multi-level, single-level, exact, and a `$` hierarchy. */
export const FILTERS = ['#', '+/x', '+/+', 'a', 'a/#', 'a/x', 'b/x', 'a/b/c', '$q/#', '$q/x'] as const;

export type QoS = 0 | 1 | 2;

export interface Will {
  topic: string;
  qos: QoS;
  retain: boolean;
}

export type Step =
  /** CONNECT; `ack: false` makes the client never acknowledge QoS 1/2 deliveries (MQTT-4.4.0-1 resend on reconnect). */
  | { id: number; op: 'connect'; client: number; clean: boolean; ack: boolean; will?: Will }
  | { id: number; op: 'subscribe'; client: number; subs: Array<{ filter: string; qos: QoS }> }
  | { id: number; op: 'unsubscribe'; client: number; filters: string[] }
  /** Written without waiting for the acknowledgement: consecutive publishes are pipelined. `empty` sends a zero-byte payload. */
  | { id: number; op: 'publish'; client: number; topic: string; qos: QoS; retain: boolean; empty: boolean }
  /** DISCONNECT packet, then close: no will (MQTT-3.1.2-10). */
  | { id: number; op: 'disconnect'; client: number }
  /** Socket destroyed without DISCONNECT: the will is published (MQTT-3.1.2-8). */
  | { id: number; op: 'close'; client: number };

export interface Script {
  seed: number;
  protocolVersion: 4 | 5;
  clients: number;
  steps: Step[];
}


export interface GenerateOptions {
  protocolVersion: 4 | 5;
  stepsMin?: number;
  stepsMax?: number;
}

/** The payload a publish step sends: seed and step id, or nothing for an empty (retained-clear) publish. */
export function payloadOf(seed: number, step: Extract<Step, { op: 'publish' }>): string {
  return step.empty ? '' : `${seed}.p${step.id}`;
}

/** The will payload of a connect step. */
export function willPayloadOf(seed: number, step: Extract<Step, { op: 'connect' }>): string {
  return `${seed}.w${step.id}`;
}

/** A script from a seed: 3–5 clients, 12–32 steps (and reconnects at the end), every step valid in the state it runs in. */
export function generate(seed: number, options: GenerateOptions): Script {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const chance = (p: number) => rnd() < p;
  const qos = (): QoS => pick([0, 1, 2] as const);
  const clients = 3 + Math.floor(rnd() * 3);
  const stepsMin = options.stepsMin ?? 12;
  const stepsMax = options.stepsMax ?? 32;
  const target = stepsMin + Math.floor(rnd() * (stepsMax - stepsMin + 1));
  const connected = new Array<boolean>(clients).fill(false);
  const subscribed: string[][] = Array.from({ length: clients }, () => []);
  const steps: Step[] = [];
  let id = 0;
  const connect = (client: number) => {
    const will = chance(0.35) ? { topic: pick(TOPICS.filter((t) => !t.startsWith('$'))), qos: qos(), retain: chance(0.25) } : undefined;
    steps.push({ id: id++, op: 'connect', client, clean: chance(0.5), ack: chance(0.8), ...(will ? { will } : {}) });
    connected[client] = true;
  };
  for (let c = 0; c < clients; c++) if (c < 2 || chance(0.6)) connect(c);

  while (steps.length < target) {
    const live = connected.flatMap((on, c) => (on ? [c] : []));
    const offline = connected.flatMap((on, c) => (on ? [] : [c]));
    const r = rnd();
    if (live.length === 0 || (offline.length > 0 && r < 0.1)) {
      connect(pick(offline.length ? offline : live));
    } else if (r < 0.28) {
      const client = pick(live);
      const n = 1 + Math.floor(rnd() * 2);
      const subs = Array.from({ length: n }, () => ({ filter: pick(FILTERS), qos: qos() }));
      steps.push({ id: id++, op: 'subscribe', client, subs });
      subscribed[client].push(...subs.map((s) => s.filter));
    } else if (r < 0.36) {
      const client = pick(live);
      // mostly filters the client holds (overlapping ones stay), sometimes one it never had
      const filters = [subscribed[client].length && chance(0.85) ? pick(subscribed[client]) : pick(FILTERS)];
      steps.push({ id: id++, op: 'unsubscribe', client, filters });
      subscribed[client] = subscribed[client].filter((f) => f !== filters[0]);
    } else if (r < 0.8) {
      // a burst of publishes, pipelined: none waits for the previous one's acknowledgement
      const burst = 1 + Math.floor(rnd() * 5);
      for (let i = 0; i < burst; i++) {
        const retain = chance(0.25);
        steps.push({
          id: id++,
          op: 'publish',
          client: pick(live),
          topic: chance(0.06) ? '$q/x' : pick(TOPICS.filter((t) => !t.startsWith('$'))),
          qos: qos(),
          retain,
          empty: retain && chance(0.3),
        });
      }
    } else if (r < 0.9) {
      const client = pick(live);
      steps.push({ id: id++, op: 'disconnect', client });
      connected[client] = false;
      if (chance(0.5)) subscribed[client] = [];
    } else {
      const client = pick(live);
      steps.push({ id: id++, op: 'close', client });
      connected[client] = false;
    }
  }
  // bring every persistent client back once at the end, so queued messages are delivered
  const last = new Map<number, Extract<Step, { op: 'connect' }>>();
  for (const s of steps) if (s.op === 'connect') last.set(s.client, s);
  for (const [client, s] of last) if (!connected[client] && !s.clean) steps.push({ id: id++, op: 'connect', client, clean: false, ack: true });
  return { seed, protocolVersion: options.protocolVersion, clients, steps };
}

/** Client name as printed and used in client ids. */
export const clientName = (c: number) => `c${c + 1}`;

/** One line per step, readable in a failure message and pasteable into a bug report. */
export function formatStep(s: Step): string {
  const c = clientName(s.client);
  switch (s.op) {
    case 'connect':
      return `#${s.id} ${c} connect ${s.clean ? 'clean' : 'persistent'}${s.ack ? '' : ' (never acks deliveries)'}${s.will ? ` will=${s.will.topic} q${s.will.qos}${s.will.retain ? ' retained' : ''}` : ''}`;
    case 'subscribe':
      return `#${s.id} ${c} subscribe ${s.subs.map((x) => `${x.filter} q${x.qos}`).join(', ')}`;
    case 'unsubscribe':
      return `#${s.id} ${c} unsubscribe ${s.filters.join(', ')}`;
    case 'publish':
      return `#${s.id} ${c} publish ${s.topic} q${s.qos}${s.retain ? ' retained' : ''}${s.empty ? ' (empty payload)' : ''}`;
    case 'disconnect':
      return `#${s.id} ${c} DISCONNECT`;
    case 'close':
      return `#${s.id} ${c} closes the socket (no DISCONNECT)`;
  }
}

export function formatScript(script: Script): string {
  return [`seed ${script.seed}, MQTT ${script.protocolVersion === 5 ? '5' : '3.1.1'}, ${script.clients} clients`, ...script.steps.map((s) => '  ' + formatStep(s))].join('\n');
}

/**
 * Drops the steps a runner would skip: anything by a client that is not connected at that point,
 * and a connect of a client already connected. Keeps step ids (payloads stay the same).
 */
export function normalise(script: Script): Script {
  const connected = new Set<number>();
  const steps: Step[] = [];
  for (const s of script.steps) {
    if (s.op === 'connect') {
      if (connected.has(s.client)) continue;
      connected.add(s.client);
    } else {
      if (!connected.has(s.client)) continue;
      if (s.op === 'disconnect' || s.op === 'close') connected.delete(s.client);
    }
    steps.push(s);
  }
  return { ...script, steps };
}

/**
 * Shrinks a failing script: tries dropping chunks of steps (halves, quarters, … single steps) and
 * keeps a smaller script whenever `stillFails` says the difference persists, until no single
 * step can go or the deadline (epoch ms) passes.
 */
export async function shrink(script: Script, stillFails: (s: Script) => Promise<boolean>, deadlineMs = Infinity): Promise<{ script: Script; attempts: number; complete: boolean }> {
  let best = normalise(script);
  let attempts = 0;
  const more = () => Date.now() < deadlineMs;
  let chunk = Math.max(1, Math.floor(best.steps.length / 2));
  while (chunk >= 1 && more()) {
    let progressed = false;
    for (let start = 0; start < best.steps.length && more(); ) {
      const candidate = normalise({ ...best, steps: [...best.steps.slice(0, start), ...best.steps.slice(start + chunk)] });
      if (candidate.steps.length === best.steps.length) {
        start += chunk;
        continue;
      }
      attempts++;
      if (await stillFails(candidate)) {
        best = candidate;
        progressed = true;
      } else {
        start += chunk;
      }
    }
    if (!progressed) chunk = Math.floor(chunk / 2);
  }
  return { script: best, attempts, complete: chunk < 1 };
}

/**
 * Hand-written scripts that always run besides the seeded ones: the sessions of issue 9's defect
 * reports, and each difference the seeded scripts first found, reduced to a few steps.
 */
export function namedScripts(protocolVersion: 4 | 5): Array<{ name: string; script: Script }> {
  let id = 0;
  const connect = (client: number, clean = true, ack = true): Step => ({ id: id++, op: 'connect', client, clean, ack });
  const subscribe = (client: number, ...subs: Array<[string, QoS]>): Step => ({ id: id++, op: 'subscribe', client, subs: subs.map(([filter, qos]) => ({ filter, qos })) });
  const unsubscribe = (client: number, ...filters: string[]): Step => ({ id: id++, op: 'unsubscribe', client, filters });
  const publish = (client: number, topic: string, qos: QoS, retain = false): Step => ({ id: id++, op: 'publish', client, topic, qos, retain, empty: false });
  const disconnect = (client: number): Step => ({ id: id++, op: 'disconnect', client });
  const named: Array<[string, Step[]]> = [
    ['issue 9 defect 1: QoS 1 then QoS 0 to a subscriber of a/# at QoS 2', [connect(0), connect(1), subscribe(0, ['a/#', 2]), publish(1, 'a/x', 1), publish(1, 'a/x', 0)]],
    ['issue 9 defect 1: QoS 2 then QoS 1', [connect(0), connect(1), subscribe(0, ['a/#', 2]), publish(1, 'a/x', 2), publish(1, 'a/x', 1)]],
    ['issue 9 defect 1: QoS 1 then QoS 2', [connect(0), connect(1), subscribe(0, ['a/#', 2]), publish(1, 'a/x', 1), publish(1, 'a/x', 2)]],
    ['issue 9 defect 1: one client subscribed to a at QoS 2 publishes QoS 0, 1, 2 to it', [connect(0), subscribe(0, ['a', 2]), publish(0, 'a', 0), publish(0, 'a', 1), publish(0, 'a', 2)]],
    ['issue 9 defect 2: unsubscribing a keeps a/x and b/x', [connect(0), connect(1), subscribe(0, ['a', 1]), subscribe(0, ['a/x', 1]), subscribe(0, ['b/x', 1]), unsubscribe(0, 'a'), publish(1, 'a', 1), publish(1, 'a/x', 1), publish(1, 'b/x', 1)]],
    ['issue 9 defect 3: a persistent session resends both unacknowledged deliveries on reconnect (MQTT-4.4.0-1)', [connect(0, false, false), subscribe(0, ['+/+', 2]), publish(0, 'a/x', 1), publish(0, 'b/x', 2), disconnect(0), connect(0, false, true)]],
    ['issue 9 defect 4: a QoS 1 publish to a $ topic is acknowledged, delivered to $q/# and not to # (MQTT-4.7.2-1)', [connect(0), connect(1), subscribe(0, ['#', 1]), subscribe(1, ['$q/#', 1]), publish(0, '$q/x', 1)]],
    ['a persistent session subscribed to # and +/+ at QoS 2 gets two QoS 1 messages and stays connected', [connect(0, false), connect(1, false), subscribe(1, ['#', 2], ['+/+', 2]), publish(0, 'a/x', 1), publish(0, 'b/x', 1)]],
    ['overlapping # at QoS 0 and +/+ at QoS 1: delivered at QoS 1 (MQTT-3.3.5-1)', [connect(0), connect(1), subscribe(0, ['#', 0], ['+/+', 1]), publish(1, 'a/x', 1)]],
    ['one SUBSCRIBE naming a filter twice gets a return code per filter (MQTT-3.8.4-5, MQTT-3.9.3-1)', [connect(0), subscribe(0, ['a', 0], ['a', 2])]],
    ['a retained QoS 1 message reaches a subscriber of a/# at QoS 0 at QoS 0 (MQTT-3.8.4-6)', [connect(1), publish(1, 'a', 1, true), connect(0), subscribe(0, ['a/#', 0], ['a/x', 0])]],
    ['a new overlapping subscription gets the retained message at its own QoS (MQTT-3.3.1-6, MQTT-3.8.4-6)', [connect(1), publish(1, 'a/x', 2, true), connect(0), subscribe(0, ['a/x', 0]), subscribe(0, ['+/+', 1])]],
    ['a persistent session that does not acknowledge a retained QoS 1 message sent on SUBSCRIBE gets it again on reconnect (MQTT-4.4.0-1)', [connect(1), publish(1, 'a', 1, true), connect(0, false, false), subscribe(0, ['a', 1]), disconnect(0), connect(0, false, true)]],
    ['a $ topic message is not queued for an offline session subscribed to # (MQTT-4.7.2-1)', [connect(0, false), subscribe(0, ['#', 1]), disconnect(0), connect(1), publish(1, '$q/x', 1), publish(1, 'a', 1), connect(0, false)]],
  ];
  return named.map(([name, steps]) => ({ name, script: { seed: 1, protocolVersion, clients: 2, steps } }));
}
