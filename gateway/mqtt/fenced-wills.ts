// Wills of a node the cluster took for dead (docs/cluster.md "Wills of a node that died").
//
// In a cluster each node keeps the wills of the devices connected to it in the replicated
// `__mqtt_sessions`, under `W 0x00 nodeId 0x00 clientId`; every node follows those committed
// records into this table. When the controller fences a node (silent for
// cluster.sessionTimeoutMs: dead, or cut off from the quorum), its devices lost their connection
// without DISCONNECT as far as the cluster can tell, so their wills are due (MQTT-3.1.2-8): one
// surviving node publishes them, through the gateway's one write path, and then tombstones each
// `W` record it published.
//
// One writer: the node that leads `__mqtt_sessions`'s partition. The controller names exactly
// one leader per leader epoch, never a fenced node, and the tombstones are written to that very
// partition, so the publisher is the node whose writes to the table are not forwarded. Two nodes
// can both believe they lead only across a leadership change; a will published by both then is
// the duplicate the at-least-once order below allows anyway.
//
// Order: publish (acknowledged by the stream topic's ISR), then tombstone (acks=all). A crash
// or a lost leadership between the two publishes the will again from the next leader: at least
// once, never lost while the record is committed.
//
// Timing (MQTT 5 §3.1.2.5): a will waits `delayMs` = min(Will Delay Interval, Session Expiry
// Interval) as the owning node recorded it (0 for MQTT 3.1.1), counted from the moment this node
// first saw the owner fenced — later than the real loss of the connection, never earlier. A will
// whose session has a newer owner record on another node (the device resumed its session there,
// MQTT-3.1.3-9) and a delay is not published, only tombstoned; a newer owner record of a clean
// start ended the old session, so its will is due at once. A will without a delay is published
// whatever happened since: the connection it belonged to is gone.
//
// Crash policy: nothing of this table is stored; it is rebuilt from the committed records by the
// replay and the follower. Bounds: one entry per will-carrying connection in the cluster (each
// node bounds its connections by mqtt.connectionsMax; a will message by mqtt.packetBytesMax);
// this node's own are held too (its restart publishes those of its previous run).
import type { Logger } from '../../host/logging.js';
import type { Counter } from '../../host/metrics/registry.js';
import type { AedesPacket } from './aedes-packet.js';


/** How often the table looks for fenced owners and wills that became due. */
export const FENCED_WILLS_CHECK_MS = 200;
/** A restart's barrier write refused (no leader yet, no quorum): asked again after this long. */
const ORPHAN_RETRY_MS = 500;

/** A committed will of another node, as its `W` record says. */
export interface CommittedWill {
  packet: AedesPacket;
  /** Offset of its `W` record in `__mqtt_sessions`. */
  offset: number;
  /** How long after the connection was lost the will is due (MQTT 5 will delay, capped by the session expiry). */
  delayMs: number;
  /** Published already (or not to be: the session resumed elsewhere); only the tombstone is left. */
  published?: boolean;
  /** The tombstone being written. */
  tombstoning?: Promise<void>;
}

export interface FencedWillsDeps {
  /** This node's id (cluster.nodeId): its own wills are never published from here. */
  nodeId: number;
  /** True while the controller has `nodeId` fenced (registered and fenced in the metadata image). */
  fenced(nodeId: number): boolean;
  /** True while this node leads `__mqtt_sessions`'s partition (the one publisher). */
  leads(): boolean;
  /** The session's current owner record in the committed view. */
  owner(clientId: string): { node: number; clean: boolean; offset: number } | undefined;
  /**
   * Publishes a will through the gateway's one write path: resolves true once stored and handed
   * to subscribers, false when refused for good (logged and counted by the gateway); rejects on
   * a transient failure (tried again at the next check). Undefined until the gateway is wired.
   */
  publish(): ((will: AedesPacket) => Promise<boolean>) | undefined;
  /** This process's broker id (aedes'): a will record of this node with another one is its previous run's. */
  currentBrokerId(): string | undefined;
  /** Tombstones `W 0x00 nodeId 0x00 clientId` (acks=all). */
  tombstone(nodeId: number, clientId: string): Promise<void>;
  logger: Logger;
  /** tributary_mqtt_fenced_wills_total{outcome}: published, resumed (not published), refused. */
  outcomes: Counter | undefined;
  /** Logs a repeated failure at most now and then. */
  rareLog(msg: string, fields: Record<string, unknown>): void;
}

export class FencedWills {
  /** Node id → client id → its committed will. */
  private readonly byNode = new Map<number, Map<string, CommittedWill>>();
  /** Node id → when this node first saw it fenced (ms since the epoch); dropped once it is not. */
  private readonly fencedSince = new Map<number, number>();
  /**
   * This node's wills written by its previous run (another broker id), client id → will, until a
   * tombstone of the key is applied (the leader published it while this node was fenced, or this
   * node did). A record of this run for the same client leaves the entry: the old connection's
   * will is still owed.
   */
  private readonly orphansByClient = new Map<string, CommittedWill>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;

  constructor(private readonly deps: FencedWillsDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), FENCED_WILLS_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** A committed `W` record (replay or follower): a will, or with null its tombstone. */
  apply(nodeId: number, clientId: string, will: { packet: AedesPacket; delayMs: number } | null, offset: number): void {
    if (clientId === '') return; // the restart barrier's tombstone (persistence.ts): no will
    if (nodeId === this.deps.nodeId) {
      if (will === null) this.orphansByClient.delete(clientId);
      else if (will.packet.brokerId !== this.deps.currentBrokerId()) this.orphansByClient.set(clientId, { packet: will.packet, offset, delayMs: will.delayMs });
    }
    let wills = this.byNode.get(nodeId);
    if (will === null) {
      wills?.delete(clientId);
      if (wills?.size === 0) this.byNode.delete(nodeId);
      return;
    }
    if (!wills) this.byNode.set(nodeId, (wills = new Map()));
    wills.set(clientId, { packet: will.packet, offset, delayMs: will.delayMs });
  }

  /** Wills of this node's previous run still committed (and not published yet by this node). */
  orphans(): number {
    return this.orphansByClient.size;
  }

  /**
   * A restart: this node's wills of its previous run (records with another broker id) still
   * committed are published by this node, through the one write path, and tombstoned — not
   * before the listeners bind, as on one node: replication (forwarding, this replica's fetching)
   * starts only after them, and a restarted replica's high watermark starts at its log start, so
   * the replay cannot tell what is committed, nor which of them the leader of `__mqtt_sessions`
   * published while this node was fenced. So `barrier` first (persistence.ts: a record written
   * through the leader, resolved once the follower applied it; asked again every
   * ORPHAN_RETRY_MS until it is taken): every record committed before it is then in the view,
   * and the previous run's wills still there are the ones nobody published.
   */
  async publishOrphansWhenCaughtUp(barrier: () => Promise<void>, signal: AbortSignal): Promise<void> {
    const startedMs = Date.now();
    let attempts = 0;
    while (!signal.aborted) {
      try {
        attempts++;
        await barrier();
        break;
      } catch (err) {
        // just restarted: no leader known yet, forwarding not started, no quorum
        if (attempts === 1 || attempts % 20 === 0) this.deps.logger.info({ attempts, err: (err as Error).message }, 'mqtt: waiting for the session table before publishing the wills of the previous run');
        await new Promise((resolve) => setTimeout(resolve, ORPHAN_RETRY_MS));
      }
    }
    if (signal.aborted) return;
    this.deps.logger.info({ wills: this.orphansByClient.size, waitedMs: Date.now() - startedMs }, 'mqtt: session table caught up after the restart; wills of the previous run that no other node published are published now');
    if (this.orphansByClient.size > 0) await this.publishOrphans(signal);
  }

  /**
   * Once the view caught up (publishOrphansWhenCaughtUp): publishes the previous run's wills at
   * once, as a single node does after a restart (the delay is not waited for: the connection was
   * cut at the crash, which lies further back than anyone can tell), each then tombstoned; a
   * transient failure is tried again until `signal` ends it.
   */
  async publishOrphans(signal: AbortSignal): Promise<void> {
    let published = 0;
    for (const [clientId, w] of [...this.orphansByClient]) {
      while (!signal.aborted && this.orphansByClient.get(clientId) === w) {
        const publish = this.deps.publish();
        try {
          if (!publish) throw new Error('the gateway is not wired yet');
          if (!w.published) {
            const stored = await publish(willToPublish(w.packet));
            w.published = true;
            if (stored) published++;
          }
          // the key's record may be this run's by now (the device reconnected here): that one stays
          if (this.byNode.get(this.deps.nodeId)?.get(clientId)?.offset === w.offset) await this.deps.tombstone(this.deps.nodeId, clientId);
          if (this.orphansByClient.get(clientId) === w) this.orphansByClient.delete(clientId);
        } catch (err) {
          this.deps.rareLog('mqtt: publishing a will of the previous run failed; trying again', { clientId, err: (err as Error).message });
          await new Promise((resolve) => setTimeout(resolve, FENCED_WILLS_CHECK_MS));
        }
      }
    }
    if (published > 0) this.deps.logger.info({ wills: published }, 'mqtt: wills of sessions cut by the previous shutdown published');
  }

  /** Wills of other nodes held (tests, diagnostics). */
  heldOf(nodeId: number): number {
    return this.byNode.get(nodeId)?.size ?? 0;
  }

  /** One pass: notes fenced owners; the leader publishes what became due. Never two passes at once. */
  async check(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      const now = Date.now();
      for (const [node, wills] of this.byNode) {
        if (node === this.deps.nodeId || wills.size === 0) continue;
        if (!this.deps.fenced(node)) {
          this.fencedSince.delete(node);
          continue;
        }
        if (!this.fencedSince.has(node)) {
          this.fencedSince.set(node, now);
          this.deps.logger.info({ node, wills: wills.size, publisher: this.deps.leads() }, 'mqtt: a node holding wills was fenced (taken for dead); the leader of __mqtt_sessions publishes them when due');
        }
        if (this.deps.leads()) await this.publishDue(node, wills, this.fencedSince.get(node)!);
      }
    } finally {
      this.running = false;
    }
  }

  private async publishDue(node: number, wills: Map<string, CommittedWill>, fencedAtMs: number): Promise<void> {
    const publish = this.deps.publish();
    if (!publish) return;
    for (const [clientId, w] of [...wills]) {
      // asked again before each will: the node may have come back, this node lost the lead
      if (this.stopped || !this.deps.fenced(node) || !this.deps.leads()) return;
      if (wills.get(clientId) !== w || w.tombstoning) continue; // replaced, tombstoned or being tombstoned meanwhile
      if (!w.published) {
        const owner = this.deps.owner(clientId);
        const resumedElsewhere = owner !== undefined && owner.node !== node && owner.offset > w.offset;
        if (w.delayMs > 0 && resumedElsewhere && !owner.clean) {
          // MQTT-3.1.3-9: the session was resumed within the delay, on another node
          this.deps.outcomes?.inc({ outcome: 'resumed' });
          this.deps.logger.info({ clientId, node, resumedOn: owner.node, topic: w.packet.topic }, 'mqtt: will of a fenced node not published: the device resumed its session on another node within the will delay');
          w.published = true; // nothing to publish; the tombstone below ends it
        } else {
          const due = w.delayMs === 0 || (resumedElsewhere && owner.clean) || Date.now() >= fencedAtMs + w.delayMs;
          if (!due) continue;
          let stored: boolean;
          try {
            stored = await publish(willToPublish(w.packet));
          } catch (err) {
            this.deps.rareLog('mqtt: publishing a will of a fenced node failed; trying again', { clientId, node, err: (err as Error).message });
            return;
          }
          w.published = true;
          this.deps.outcomes?.inc({ outcome: stored ? 'published' : 'refused' });
          if (stored) this.deps.logger.info({ clientId, node, topic: w.packet.topic, qos: w.packet.qos, retain: w.packet.retain, delayMs: w.delayMs }, 'mqtt: will of a device connected to a fenced node published');
        }
      }
      // not awaited: a slow tombstone (a leader change of the table) holds up no other will's
      // publish; one per will at a time, tried again at a later pass when it fails
      w.tombstoning = this.deps.tombstone(node, clientId).then(
        () => {
          if (wills.get(clientId) === w) wills.delete(clientId);
          if (wills.size === 0 && this.byNode.get(node) === wills) this.byNode.delete(node);
        },
        (err: Error) => {
          w.tombstoning = undefined;
          this.deps.rareLog('mqtt: tombstoning a published will of a fenced node failed; trying again', { clientId, node, err: err.message });
        },
      );
    }
  }
}

/**
 * The publish a will becomes: a fresh packet, so it gets this node's broker id and counter (the
 * dead node's id with this node's counter could be taken for a duplicate by aedes' dedupe), and
 * without the Will Delay Interval, which is no PUBLISH property (MQTT 5 §3.3.2.3).
 */
export function willToPublish(w: AedesPacket): AedesPacket {
  const p: AedesPacket = { cmd: 'publish', topic: w.topic, payload: w.payload, qos: w.qos, retain: w.retain, dup: false, clientId: w.clientId };
  const props = w.properties as Record<string, unknown> | undefined;
  if (props) {
    const { willDelayInterval: _delay, ...rest } = props;
    if (Object.keys(rest).length > 0) p.properties = rest;
  }
  return p;
}
