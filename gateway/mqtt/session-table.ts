// A cluster's MQTT session table as every node sees it (docs/cluster.md "MQTT sessions in a
// cluster"): the committed records of the replicated `__mqtt_sessions`, folded per client id.
// The owner node serves the session; another node that takes it over waits (bounded) for the
// old owner's release before loading it.
//
// Records this module reads besides the single node's `s` (subscriptions) and `e` (expiry), all
// with key = kind 0x00 clientId and a JSON value (a record that does not decode is skipped by the
// caller, as on replay):
//   o  owner      {"node": 2, "clean": false}       written by the node that takes the session;
//                                                  `clean` true: a clean start (nothing to hand over)
//   p  positions  {"node": 1, "released": true, "positions": {"fleet": {"0": 41}}}
//                 the session's delivery positions per stream partition: every record below
//                 the position that the session's subscriptions match at QoS ≥ 1 was
//                 acknowledged by the device (or is not owed); written by the owner when the
//                 device subscribes and when its connection ends, and once more, `released`,
//                 when another node took the session over (the old owner's last write for it).
// Wills of a cluster node are kept under `W` 0x00 nodeId 0x00 clientId (each node's own: a will
// belongs to one connection) and are not part of the view.
//
// Bounds: one entry per session in the cluster (each node bounds its own sessions by
// persistentSessionsMax); a position map per session holds the partitions its filters name
// (bounded by tailTopicsMax topics for a wildcard filter).
/** A persisted subscription as aedes-persistence keeps it (persistence.ts re-exports it). */
export interface Sub {
  topic: string;
  qos: number;
  rh?: number;
  rap?: boolean | number;
  nl?: boolean | number;
  clientId?: string;
}

/** Stream topic → partition → offset. */
export type Positions = Record<string, Record<string, number>>;

export interface SessionEntry {
  owner?: { node: number; clean: boolean; offset: number };
  /** The owner before the current owner record (whom a takeover waits for). */
  previous?: { node: number; clean: boolean; offset: number };
  subs?: Sub[];
  expiry?: number;
  positions?: { node: number; released: boolean; positions: Positions; offset: number };
}

/** How often a takeover waiting for a release asks whether the old owner was fenced. */
const GONE_CHECK_MS = 100;

interface ReleaseWaiter {
  from: number;
  after: number;
  resolve: (released: boolean) => void;
}

const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

function objectOf(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text(bytes));
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function nodeOf(v: unknown, what: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw new Error(`${what}: node ${JSON.stringify(v)} is not a node id`);
  return v as number;
}

/** Checks a positions map's shape (topic → partition → offset ≥ 0). */
export function positionsOf(v: unknown): Positions {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('positions: not a JSON object');
  for (const parts of Object.values(v as object)) {
    if (parts === null || typeof parts !== 'object' || Array.isArray(parts)) throw new Error('positions: a topic without a partition map');
    for (const [p, o] of Object.entries(parts as object)) {
      if (!/^\d+$/.test(p) || !Number.isSafeInteger(o) || (o as number) < 0) throw new Error(`positions: partition ${JSON.stringify(p)} at ${JSON.stringify(o)}`);
    }
  }
  return v as Positions;
}

export class SessionTable {
  private readonly entries = new Map<string, SessionEntry>();
  private readonly waiters = new Map<string, ReleaseWaiter[]>();
  /** Offset after the last record folded in (replay, then the follower). */
  private appliedEnd = 0;
  private readonly appliedWaiters = new Set<{ offset: number; resolve: (ok: boolean) => void }>();

  /** The record at `offset` was folded in (or skipped): waiters for it are told. */
  applied(offset: number): void {
    if (offset + 1 <= this.appliedEnd) return;
    this.appliedEnd = offset + 1;
    for (const w of [...this.appliedWaiters]) if (w.offset < this.appliedEnd) w.resolve(true);
  }

  /** Resolves true once the record at `offset` was folded in; false after `waitMs`. */
  waitApplied(offset: number, waitMs: number): Promise<boolean> {
    if (offset < this.appliedEnd) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = { offset, resolve: (ok: boolean) => undefined as unknown as void };
      const timer = setTimeout(() => w.resolve(false), waitMs);
      w.resolve = (ok: boolean) => {
        clearTimeout(timer);
        this.appliedWaiters.delete(w);
        resolve(ok);
      };
      this.appliedWaiters.add(w);
    });
  }

  get(clientId: string): SessionEntry | undefined {
    return this.entries.get(clientId);
  }

  private entry(clientId: string): SessionEntry {
    let e = this.entries.get(clientId);
    if (!e) this.entries.set(clientId, (e = {}));
    return e;
  }

  /**
   * Folds one committed record in; throws on a record that does not decode. Returns the owner
   * record when the record was one (the caller releases a session another node took).
   */
  apply(kind: string, clientId: string, value: Uint8Array | null, offset: number, subsOf: (v: Uint8Array) => Sub[]): SessionEntry['owner'] | undefined {
    if (kind === 's') {
      const e = this.entry(clientId);
      if (value === null) delete e.subs;
      else e.subs = subsOf(value);
    } else if (kind === 'e') {
      const e = this.entry(clientId);
      if (value === null) delete e.expiry;
      else {
        const n = Number(text(value));
        if (!Number.isSafeInteger(n) || n < 0) throw new Error(`session expiry ${JSON.stringify(text(value))} is not a time in ms`);
        e.expiry = n;
      }
    } else if (kind === 'o') {
      const e = this.entry(clientId);
      // a tombstone falls through to the cleanup below: an entry left empty is forgotten
      if (value === null) delete e.owner;
      else {
        const o = objectOf(value, 'owner');
        e.previous = e.owner;
        e.owner = { node: nodeOf(o.node, 'owner'), clean: o.clean === true, offset };
        return e.owner;
      }
    } else if (kind === 'p') {
      const e = this.entry(clientId);
      if (value === null) delete e.positions;
      else {
        const o = objectOf(value, 'positions');
        e.positions = { node: nodeOf(o.node, 'positions'), released: o.released === true, positions: positionsOf(o.positions), offset };
        if (e.positions.released) this.wake(clientId, e.positions.node, offset);
      }
    } else throw new Error(`kind ${JSON.stringify(kind)} is not s, e, o or p`);
    const e = this.entries.get(clientId);
    if (e && !e.owner && !e.previous && !e.subs && e.expiry === undefined && !e.positions) this.entries.delete(clientId);
    return undefined;
  }

  /**
   * Resolves true once `from` releases `clientId` with a record after offset `after` (this
   * node's takeover), false after `waitMs` or as soon as `gone()` says the old owner is dead
   * (checked every GONE_CHECK_MS): what is committed then is what the session is.
   */
  waitRelease(clientId: string, from: number, after: number, waitMs: number, gone?: () => boolean): Promise<boolean> {
    const p = this.entries.get(clientId)?.positions;
    if (p && p.released && p.node === from && p.offset > after) return Promise.resolve(true);
    if (gone?.()) return Promise.resolve(false);
    return new Promise((resolve) => {
      const list = this.waiters.get(clientId) ?? [];
      this.waiters.set(clientId, list);
      const waiter: ReleaseWaiter = { from, after, resolve: () => undefined };
      const timer = setTimeout(() => settle(false), waitMs);
      const check = gone && setInterval(() => gone() && settle(false), GONE_CHECK_MS);
      const settle = (released: boolean) => {
        clearTimeout(timer);
        if (check) clearInterval(check);
        const rest = (this.waiters.get(clientId) ?? []).filter((w) => w !== waiter);
        if (rest.length === 0) this.waiters.delete(clientId);
        else this.waiters.set(clientId, rest);
        resolve(released);
      };
      waiter.resolve = settle;
      list.push(waiter);
    });
  }

  private wake(clientId: string, node: number, offset: number): void {
    for (const w of [...(this.waiters.get(clientId) ?? [])]) if (w.from === node && offset > w.after) w.resolve(true);
  }

  /** Sessions this view says `node` owns. */
  ownedBy(node: number): string[] {
    const out: string[] = [];
    for (const [id, e] of this.entries) if (e.owner?.node === node && !e.owner.clean) out.push(id);
    return out;
  }
}
