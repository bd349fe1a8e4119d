// The uplink in a cluster (docs/uplink.md, "In a cluster"): a node forwards a source partition
// only while it leads it and the controller still hears it, and starts forwarding one only after
// a handover delay, so two nodes never forward the same partition at the same time.
//
//   leads       the partition's leader in this node's metadata image is this node
//   lease       this node had contact with the controller within uplink.clusterLeaseMs: it is the
//               controller (Raft leader: check-quorum makes it step down after losing the
//               quorum), or it received a frame from the controller. A node cut off stops on its
//               own, before the controller fences it (cluster.sessionTimeoutMs) and elects
//               another leader: clusterLeaseMs + electionTicks·tickMs + 2 checks < sessionTimeoutMs
//               (checked at start: checkUplinkInCluster in options.ts)
//   handover    a partition that becomes eligible (leads and lease) waits uplink.clusterHandoverMs
//               of uninterrupted eligibility before its link starts, so what the previous
//               forwarder wrote has landed or been refused before this node reads the target
//               back: clusterHandoverMs ≥ uplink.requestTimeoutMs
//   stop        losing either condition stops the link at the next check (or at once on a
//               leadership change): the link's connection to the target is dropped first, so a
//               request not yet written never is, and what was written is settled by the next
//               read-back (of whichever node forwards next)
//
// The check runs every `checkIntervalMs` (a fifth of the lease, at most 100 ms) and on every
// leadership change the broker reports. Nothing here is persisted: after a restart every
// partition waits its handover again.
import type { TopicPartition } from '../broker/api.js';
import type { Broker } from '../broker/broker.js';
import { NO_LEADER, partitionStateOf } from '../broker/metadata/records.js';
import type { QuorumMetadataStore } from '../cluster/quorum-metadata-store.js';
import type { Logger } from '../logging.js';
import { checkIntervalMsOf } from './options.js';

/** What the uplink needs of the cluster: who leads a partition, and when the controller was last in touch. */
export interface UplinkClusterView {
  nodeId: number;
  /** The partition's leader in this node's metadata image; null when it has none (or the topic is unknown). */
  leaderOf(tp: TopicPartition): number | null;
  /** This node is the controller now. */
  isController(): boolean;
  /** The controller this node follows (null: none known) and when (ms) that node last sent this node a frame. */
  controller(): { id: number; lastHeardMs: number } | null;
  /** Calls `listener` whenever partition leadership changes on this node; returns the unsubscribe. */
  onLeadershipChange(listener: () => void): () => void;
}

/** The view over a running node's broker and metadata quorum (read-only accessors that exist there). */
export function clusterViewOf(broker: Broker, store: QuorumMetadataStore, nodeId: number): UplinkClusterView {
  return {
    nodeId,
    leaderOf: (tp) => {
      const t = store.image().topics.get(tp.topic);
      if (!t || tp.partition >= t.partitions) return null;
      const leader = partitionStateOf(t, tp.partition).leader;
      return leader === NO_LEADER ? null : leader;
    },
    isController: () => store.quorum.isLeader,
    controller: () => {
      const id = store.quorum.leader;
      return id === null || id === nodeId ? null : { id, lastHeardMs: store.quorum.lastHeardMs(id) };
    },
    onLeadershipChange: (listener) => broker.onLeadershipChange(() => listener()),
  };
}

/** A partition link as the gate drives it. */
export interface GatedLink {
  readonly source: TopicPartition;
  readonly running: boolean;
  start(): void;
  /** Stops the loop (the connection dropped first); `state` and `reason` say why in the status. */
  stop(state: 'led-elsewhere' | 'no-lease', reason: string): Promise<void>;
  /** Not running: shown as led elsewhere, waiting for its lease, or in its handover. */
  idleAs(state: 'led-elsewhere' | 'no-lease' | 'handover', reason: string): void;
}

export class LeadershipGate {
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: () => void = () => undefined;
  /** The last time the controller was known to be in touch (sampled each check while this node is the controller). */
  private contactMs = 0;
  /** When the lease was last looked at; a longer pause than the lease between two looks is a lapse. */
  private lookedAtMs = 0;
  /** A lapse seen and not yet acted on by a pass (every running link stops): sticky until then. */
  private lapsed = false;
  /** Per partition key: since when it has been eligible without a break (its handover runs from there). */
  private readonly eligibleSinceMs = new Map<GatedLink, number>();
  private checking = false;
  private again = false;
  private closed = false;
  readonly checkIntervalMs: number;

  constructor(
    private readonly view: UplinkClusterView,
    private readonly o: { leaseMs: number; handoverMs: number },
    private readonly links: () => Iterable<GatedLink>,
    private readonly log: Logger,
  ) {
    this.checkIntervalMs = checkIntervalMsOf(o.leaseMs);
  }

  start(): void {
    this.unsubscribe = this.view.onLeadershipChange(() => void this.check());
    this.timer = setInterval(() => void this.check(), this.checkIntervalMs);
    void this.check();
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    if (this.timer) clearInterval(this.timer);
  }

  /** Whether the controller was in touch within the lease at `nowMs`. */
  leaseHeld(nowMs: number): boolean {
    // This process itself did not run for longer than the lease (a long GC pause, SIGSTOP, a
    // suspended VM): the controller may have replaced it meanwhile, even if a frame that arrived
    // during the pause makes the contact look fresh now. A lapse, until a pass has stopped every link.
    const pausedMs = this.lookedAtMs > 0 ? nowMs - this.lookedAtMs : 0;
    this.lookedAtMs = Math.max(this.lookedAtMs, nowMs);
    const before = this.contactMs;
    if (this.view.isController()) this.contactMs = nowMs;
    else {
      const c = this.view.controller();
      if (c) this.contactMs = Math.max(this.contactMs, c.lastHeardMs);
    }
    if (pausedMs > this.o.leaseMs || (before > 0 && nowMs - before > this.o.leaseMs)) this.lapsed = true;
    return !this.lapsed && nowMs - this.contactMs <= this.o.leaseMs;
  }

  /** Whether this node may write `tp` at this moment: it leads it and holds the lease (the handover is the gate's, at start). */
  allows(tp: TopicPartition): boolean {
    return this.view.leaderOf(tp) === this.view.nodeId && this.leaseHeld(Date.now());
  }

  /** Why `tp` may not be forwarded here (for the status): led elsewhere, or no lease. */
  whyNot(tp: TopicPartition, nowMs: number, leader = this.view.leaderOf(tp)): { state: 'led-elsewhere' | 'no-lease'; reason: string } {
    if (leader !== this.view.nodeId) return { state: 'led-elsewhere', reason: leader === null ? 'no leader elected' : `led by node ${leader}` };
    return { state: 'no-lease', reason: `no contact with the controller for more than uplink.clusterLeaseMs (${this.o.leaseMs} ms; last ${nowMs - this.contactMs} ms ago)` };
  }

  /** One look at every link: stop what may no longer forward, start what has waited out its handover. */
  async check(): Promise<void> {
    if (this.closed) return;
    if (this.checking) {
      this.again = true;
      return;
    }
    this.checking = true;
    try {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.closed);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'uplink cluster check failed; the next one retries');
    } finally {
      this.checking = false;
    }
  }

  private async pass(): Promise<void> {
    const now = Date.now();
    const lease = this.leaseHeld(now);
    // Every link whose lease lapsed stops below; from then on a fresh contact counts again.
    this.lapsed = false;
    const stops: Array<Promise<void>> = [];
    for (const link of this.links()) {
      const leader = this.view.leaderOf(link.source);
      const leads = leader === this.view.nodeId;
      const name = `${link.source.topic}-${link.source.partition}`;
      if (!leads || !lease) {
        this.eligibleSinceMs.delete(link);
        const { state, reason } = this.whyNot(link.source, now, leader);
        if (link.running) {
          this.log.info({ source: name, leader, lease }, `uplink ${name}: stopping (${reason})`);
          stops.push(link.stop(state, reason));
        } else link.idleAs(state, reason);
        continue;
      }
      if (link.running) continue;
      const since = this.eligibleSinceMs.get(link) ?? now;
      this.eligibleSinceMs.set(link, since);
      const waitedMs = now - since;
      if (waitedMs < this.o.handoverMs) {
        link.idleAs('handover', `led here; forwarding starts after uplink.clusterHandoverMs (${this.o.handoverMs - waitedMs} ms left)`);
        continue;
      }
      this.eligibleSinceMs.delete(link);
      this.log.info({ source: name, handoverMs: this.o.handoverMs }, `uplink ${name}: led by this node (${this.view.nodeId}) past the handover delay; forwarding starts`);
      link.start();
    }
    await Promise.all(stops);
  }
}
