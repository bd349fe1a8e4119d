// How nodes of a cluster reach each other, as one narrow interface (NATS's habit: the Raft code
// and the tests meet at a transport, not at sockets), and the in-memory hub behind it that tests
// use to build `cluster(n)` (issue 10): named nodes, per-link loss, delay and duplication,
// partitions between sets of nodes, and heal. TcpTransport (tcp-transport.ts) implements the
// same interface between processes, with raft-codec.ts frames.
//
// The hub is deterministic given its RNG and its timer: tests inject a seeded RNG and, for a
// simulation, a manual timer (ManualTimers below), so a schedule of losses replays exactly.
// Bounded: each link holds at most `inFlightMax` undelivered messages; past it send() refuses
// (returns false and counts a drop), it never queues more.

export type NodeName = string;

export interface Transport<T = Uint8Array> {
  readonly name: NodeName;
  /** Queues a message for `to`; false when refused (closed, unknown node, link full). Loss in the network still returns true. */
  send(to: NodeName, message: T): boolean;
  /** One handler per endpoint; messages arriving before it is set are dropped (a node not yet listening). */
  onMessage(handler: (from: NodeName, message: T) => void): void;
  close(): void;
}

export interface LinkFaults {
  /** Probability in [0, 1] that a message is lost. */
  readonly dropProbability: number;
  /** Probability in [0, 1] that a delivered message arrives twice. */
  readonly duplicateProbability: number;
  /** Fixed delay before delivery. */
  readonly delayMs: number;
  /** Extra delay, uniform in [0, jitterMs): messages on one link may overtake each other. */
  readonly jitterMs: number;
}

export const RELIABLE: LinkFaults = { dropProbability: 0, duplicateProbability: 0, delayMs: 0, jitterMs: 0 };

export interface Timers {
  now(): number;
  after(ms: number, fn: () => void): void;
}

/** Real time (setTimeout); the default. */
export const realTimers: Timers = {
  now: () => Date.now(),
  after: (ms, fn) => void setTimeout(fn, ms),
};

/** Timers driven by the test: advance(ms) runs what is due, in due-time order, ties in scheduling order. */
export class ManualTimers implements Timers {
  private time = 0;
  private seq = 0;
  private queue: Array<{ at: number; seq: number; fn: () => void }> = [];

  now(): number {
    return this.time;
  }

  after(ms: number, fn: () => void): void {
    this.queue.push({ at: this.time + ms, seq: this.seq++, fn });
    this.queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
  }

  advance(ms: number): void {
    const until = this.time + ms;
    while (this.queue.length && this.queue[0]!.at <= until) {
      const job = this.queue.shift()!;
      this.time = job.at;
      job.fn();
    }
    this.time = until;
  }

  get pending(): number {
    return this.queue.length;
  }
}

export interface HubOptions {
  /** Uniform in [0, 1); seeded in tests. */
  readonly random: () => number;
  readonly timers?: Timers;
  /** Undelivered messages one link may hold: a slow or dead peer costs bounded memory. */
  readonly inFlightMax?: number;
  readonly faults?: Partial<LinkFaults>;
}

export interface HubStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  refused: number;
  partitioned: number;
}

const linkKey = (from: NodeName, to: NodeName): string => `${from}\u0000${to}`;

export class MemoryHub<T = Uint8Array> {
  private readonly endpoints = new Map<NodeName, MemoryEndpoint<T>>();
  private readonly linkFaults = new Map<string, LinkFaults>();
  private readonly blocked = new Set<string>();
  private readonly inFlight = new Map<string, number>();
  private defaults: LinkFaults;
  private readonly timers: Timers;
  private readonly inFlightMax: number;
  readonly stats: HubStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, refused: 0, partitioned: 0 };

  constructor(private readonly opts: HubOptions) {
    this.timers = opts.timers ?? realTimers;
    this.inFlightMax = opts.inFlightMax ?? 1024;
    this.defaults = { ...RELIABLE, ...opts.faults };
  }

  /** A new endpoint; one per name at a time (a restarted node reconnects after closing its old one). */
  connect(name: NodeName): Transport<T> {
    if (this.endpoints.has(name)) throw new Error(`hub: ${name} is already connected`);
    const ep = new MemoryEndpoint<T>(name, this);
    this.endpoints.set(name, ep);
    return ep;
  }

  /** Faults for every link without its own setting. */
  setDefaultFaults(faults: Partial<LinkFaults>): void {
    this.defaults = { ...this.defaults, ...faults };
  }

  /** Faults for the one direction from → to. */
  setLinkFaults(from: NodeName, to: NodeName, faults: Partial<LinkFaults>): void {
    this.linkFaults.set(linkKey(from, to), { ...this.faultsOf(from, to), ...faults });
  }

  /** Cuts every link between a node of `a` and a node of `b`, both directions; messages in flight on them are lost too. */
  partition(a: readonly NodeName[], b: readonly NodeName[]): void {
    for (const x of a) {
      for (const y of b) {
        if (x === y) throw new Error(`hub: ${x} is on both sides of a partition`);
        this.blocked.add(linkKey(x, y));
        this.blocked.add(linkKey(y, x));
      }
    }
  }

  /** Cuts `name` off from every other connected node. */
  isolate(name: NodeName): void {
    this.partition([name], [...this.endpoints.keys()].filter((n) => n !== name));
  }

  /** Removes every partition and every per-link fault setting. */
  heal(): void {
    this.blocked.clear();
    this.linkFaults.clear();
  }

  canReach(from: NodeName, to: NodeName): boolean {
    return !this.blocked.has(linkKey(from, to));
  }

  /** @internal called by an endpoint */
  route(from: NodeName, to: NodeName, message: T): boolean {
    const key = linkKey(from, to);
    if (!this.endpoints.has(to) || (this.inFlight.get(key) ?? 0) >= this.inFlightMax) {
      this.stats.refused++;
      return false;
    }
    this.stats.sent++;
    if (this.blocked.has(key)) {
      this.stats.partitioned++;
      return true;
    }
    const f = this.faultsOf(from, to);
    if (f.dropProbability > 0 && this.opts.random() < f.dropProbability) {
      this.stats.dropped++;
      return true;
    }
    const copies = f.duplicateProbability > 0 && this.opts.random() < f.duplicateProbability ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      // Copied: the sender may reuse its buffer, and a receiver must not see the sender's later writes.
      const payload = message instanceof Uint8Array ? (message.slice() as T) : message;
      const delay = f.delayMs + (f.jitterMs > 0 ? Math.floor(this.opts.random() * f.jitterMs) : 0);
      this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
      this.timers.after(delay, () => this.deliver(from, to, key, payload));
    }
    return true;
  }

  /** @internal */
  disconnect(name: NodeName, ep: MemoryEndpoint<T>): void {
    if (this.endpoints.get(name) === ep) this.endpoints.delete(name);
  }

  private deliver(from: NodeName, to: NodeName, key: string, message: T): void {
    this.inFlight.set(key, (this.inFlight.get(key) ?? 1) - 1);
    if (this.blocked.has(key)) {
      this.stats.partitioned++;
      return;
    }
    const ep = this.endpoints.get(to);
    if (!ep || !ep.receive(from, message)) {
      this.stats.dropped++;
      return;
    }
    this.stats.delivered++;
  }

  private faultsOf(from: NodeName, to: NodeName): LinkFaults {
    return this.linkFaults.get(linkKey(from, to)) ?? this.defaults;
  }
}

class MemoryEndpoint<T> implements Transport<T> {
  private handler: ((from: NodeName, message: T) => void) | null = null;
  private closed = false;

  constructor(
    readonly name: NodeName,
    private readonly hub: MemoryHub<T>,
  ) {}

  send(to: NodeName, message: T): boolean {
    if (this.closed) return false;
    return this.hub.route(this.name, to, message);
  }

  onMessage(handler: (from: NodeName, message: T) => void): void {
    this.handler = handler;
  }

  /** @internal false when nobody is listening. */
  receive(from: NodeName, message: T): boolean {
    if (this.closed || !this.handler) return false;
    this.handler(from, message);
    return true;
  }

  close(): void {
    this.closed = true;
    this.hub.disconnect(this.name, this);
  }
}
