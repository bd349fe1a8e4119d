// The queue checker for fault tests (Jepsen's queue taxonomy, applied to a partitioned log):
// given what producers sent, what was acknowledged (partition, and offset when the client says),
// and one or more reads of the log (a consumer pass, or one replica's files), it classifies every
// value and returns a verdict a test asserts on and prints.
//
//   ok            acknowledged and present, once, in every read
//   lost          acknowledged, absent from at least one read (each read is meant to be complete)
//   unseen        sent, never acknowledged, absent from every read: allowed (the client gave up
//                 or timed out), but counted
//   recovered     sent, never acknowledged, yet present: allowed (an acknowledgement lost on the
//                 way back), counted
//   duplicate     one read holds the value at more than one offset (a retry appended twice)
//   inconsistent  two reads disagree on what one partition/offset holds, or a value is read at
//                 an offset other than the one it was acknowledged with
//   nonMonotonic  within one read, a partition's offsets do not strictly increase in read order
//   unexpected    a read holds a value nobody sent (corruption, or a mixed-up test)
//
// Values are the identity: every value a test produces must be unique (a tag and a counter).
// Bounds: memory grows with sent + read records (the tests produce thousands, not millions);
// each class keeps at most EXAMPLES_MAX examples for the printed verdict.

import { spawn } from 'node:child_process';

export interface SentRecord {
  value: string;
}

export interface AckedRecord {
  value: string;
  partition: number;
  /** The offset the acknowledgement named; absent when the client does not report one. */
  offset?: number;
}

export interface ReadRecord {
  value: string;
  partition: number;
  offset: number;
}

/** One complete read of the log: a consumer from the start to the end, or one replica's files. */
export interface QueueRead {
  /** Names the read in examples (e.g. "kcat via node 2", "replica on node 3"). */
  source: string;
  records: ReadRecord[];
}

export type AnomalyClass = 'lost' | 'duplicate' | 'inconsistent' | 'nonMonotonic' | 'unexpected';

export interface QueueVerdict {
  /** True when no anomaly of any class was found (unseen and recovered are allowed). */
  valid: boolean;
  counts: {
    sent: number;
    acked: number;
    reads: number;
    ok: number;
    lost: number;
    unseen: number;
    recovered: number;
    duplicate: number;
    inconsistent: number;
    nonMonotonic: number;
    unexpected: number;
  };
  /** Up to EXAMPLES_MAX described cases per anomaly class. */
  examples: Record<AnomalyClass, string[]>;
}

export const EXAMPLES_MAX = 10;

const at = (partition: number, offset: number) => `${partition}/${offset}`;

export function checkQueue(input: { sent: Iterable<SentRecord | string>; acked: AckedRecord[]; reads: QueueRead[] }): QueueVerdict {
  const sent = new Set<string>();
  for (const s of input.sent) sent.add(typeof s === 'string' ? s : s.value);
  // An acknowledged value was sent, whatever the caller listed.
  for (const a of input.acked) sent.add(a.value);
  const acked = new Map<string, AckedRecord>();
  for (const a of input.acked) acked.set(a.value, a);

  const examples: Record<AnomalyClass, string[]> = { lost: [], duplicate: [], inconsistent: [], nonMonotonic: [], unexpected: [] };
  const anomalies: Record<AnomalyClass, Set<string>> = { lost: new Set(), duplicate: new Set(), inconsistent: new Set(), nonMonotonic: new Set(), unexpected: new Set() };
  const flag = (kind: AnomalyClass, key: string, text: string) => {
    if (anomalies[kind].has(key)) return;
    anomalies[kind].add(key);
    if (examples[kind].length < EXAMPLES_MAX) examples[kind].push(text);
  };

  // What each partition/offset holds, by the first read that showed it.
  const firstAt = new Map<string, { value: string; source: string }>();
  const presentAnywhere = new Set<string>();
  const presence: Array<Set<string>> = [];

  for (const read of input.reads) {
    const here = new Map<string, string[]>();
    const lastOffset = new Map<number, number>();
    for (const r of read.records) {
      const where = at(r.partition, r.offset);
      const prev = lastOffset.get(r.partition);
      if (prev !== undefined && r.offset <= prev) flag('nonMonotonic', `${read.source} ${where}`, `${read.source}: partition ${r.partition} offset ${r.offset} read after ${prev}`);
      lastOffset.set(r.partition, r.offset);

      const seen = firstAt.get(where);
      if (!seen) firstAt.set(where, { value: r.value, source: read.source });
      else if (seen.value !== r.value) flag('inconsistent', where, `${where}: ${seen.source} holds ${seen.value}, ${read.source} holds ${r.value}`);

      const a = acked.get(r.value);
      if (a && (a.partition !== r.partition || (a.offset !== undefined && a.offset !== r.offset))) {
        flag('inconsistent', `ack ${r.value}`, `${r.value}: acknowledged at ${at(a.partition, a.offset ?? -1)}, ${read.source} holds it at ${where}`);
      }
      if (!sent.has(r.value)) flag('unexpected', r.value, `${read.source}: ${where} holds ${r.value}, never sent`);

      const places = here.get(r.value) ?? [];
      places.push(where);
      here.set(r.value, places);
      presentAnywhere.add(r.value);
    }
    for (const [value, places] of here) {
      if (places.length > 1) flag('duplicate', value, `${read.source}: ${value} ×${places.length} at ${places.join(', ')}`);
    }
    presence.push(new Set(here.keys()));
  }

  let ok = 0;
  for (const value of acked.keys()) {
    const missingFrom = input.reads.filter((_, i) => !presence[i]!.has(value)).map((r) => r.source);
    if (missingFrom.length > 0 || input.reads.length === 0) flag('lost', value, `${value} (acknowledged at ${at(acked.get(value)!.partition, acked.get(value)!.offset ?? -1)}) absent from ${missingFrom.join(', ') || 'every read (no reads given)'}`);
    else if (!anomalies.duplicate.has(value) && !anomalies.inconsistent.has(`ack ${value}`)) ok++;
  }
  let unseen = 0;
  let recovered = 0;
  for (const value of sent) {
    if (acked.has(value)) continue;
    if (presentAnywhere.has(value)) recovered++;
    else unseen++;
  }

  const counts = {
    sent: sent.size,
    acked: acked.size,
    reads: input.reads.length,
    ok,
    lost: anomalies.lost.size,
    unseen,
    recovered,
    duplicate: anomalies.duplicate.size,
    inconsistent: anomalies.inconsistent.size,
    nonMonotonic: anomalies.nonMonotonic.size,
    unexpected: anomalies.unexpected.size,
  };
  const valid = counts.lost + counts.duplicate + counts.inconsistent + counts.nonMonotonic + counts.unexpected === 0;
  return { valid, counts, examples };
}

/** One line of counts, then the examples of each anomaly class found (for t.comment). */
export function describeVerdict(v: QueueVerdict): string {
  const c = v.counts;
  const head = `queue checker: ${v.valid ? 'valid' : 'INVALID'} — sent ${c.sent}, acknowledged ${c.acked}, reads ${c.reads}; ok ${c.ok}, lost ${c.lost}, duplicate ${c.duplicate}, inconsistent ${c.inconsistent}, non-monotonic ${c.nonMonotonic}, unexpected ${c.unexpected}; unseen ${c.unseen}, recovered ${c.recovered} (allowed)`;
  const lines = (Object.keys(v.examples) as AnomalyClass[]).flatMap((k) => v.examples[k].map((e) => `  ${k}: ${e}`));
  return [head, ...lines].join('\n');
}

/**
 * Every record of `topic` as kcat reads it through the cluster from the beginning to the end
 * (`partition offset value` lines). Asynchronous on purpose: tests whose fault gates or proxies
 * live in their own process would block them with a synchronous spawn.
 */
export async function kcatReadQueue(bootstrapServers: string, topic: string): Promise<QueueRead> {
  const child = spawn('kcat', ['-C', '-q', '-e', '-b', bootstrapServers, '-t', topic, '-o', 'beginning', '-f', '%p %o %s\\n'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill(), 30_000);
  const code = await new Promise((resolve) => child.on('exit', resolve));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`kcat exited ${code}: ${err}`);
  const records = out.split('\n').filter(Boolean).map((line) => {
    const [p, o, v] = line.split(' ');
    return { partition: Number(p), offset: Number(o), value: v! };
  });
  return { source: 'kcat through the cluster', records };
}
