// A restarted node's new broker epoch, registered as soon as it has caught up with the metadata
// (issue 11, KIP-841/903). A node restarted faster than `cluster.sessionTimeoutMs` is never
// fenced: the controller hears its quorum traffic again within the session, so until a
// registration of the new process (a new incarnation) commits, the image still names the node in
// every ISR its old process was in. Its full registration (replication.ts) waits for its
// partitions to open, their CRC verification (seconds per GB on an SD card) and its Kafka
// listener; in that window an election (its leader dying) or a preferred-leader rebalance
// (leader-rebalance.ts) could make it leader with a log cut by a power cut or damage.
//
// So right after catching up, before the broker opens a single partition, the node proposes a
// registration of its new incarnation at the address it registered last (still where clients
// find it until the full registration names the new listener): applying it raises its broker
// epoch and takes it out of its ISRs (records.ts), exactly as the full registration would. The
// full registration, later, is then the same incarnation registering again: it changes only the
// address. A node never registered before is in no ISR and proposes nothing here.
//
// What is left of the window: the catch-up itself (an election plus applying what was committed
// while the node was down; tens of milliseconds on a LAN), until this proposal commits.
import type { Logger } from '../logging.js';
import type { MetadataRecord } from '../broker/metadata/records.js';
import type { QuorumMetadataStore } from './quorum-metadata-store.js';

/** Attempts while no controller is elected (an election in progress); the full registration retries longer. */
const ATTEMPTS_MAX = 20;
const RETRY_MS = 100;

/** Proposes `incarnation` as node `nodeId`'s new broker epoch if the image knows an older one; resolves either way. */
export async function registerNewIncarnation(store: QuorumMetadataStore, nodeId: number, incarnation: string, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const before = store.image().brokers.get(nodeId);
    if (!before || before.incarnation === incarnation) return;
    const record: MetadataRecord = { type: 'brokerRegistration', nodeId, host: before.host, port: before.port, incarnation };
    try {
      await store.propose([record]);
      log.info({ brokerEpoch: store.image().brokers.get(nodeId)?.epoch, incarnation }, 'new broker epoch registered before opening partitions: this node left the ISRs of its previous process');
      return;
    } catch (err) {
      if (attempt >= ATTEMPTS_MAX) {
        log.warn({ err: (err as Error).message }, 'could not register the new broker epoch early; the full registration will');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}
