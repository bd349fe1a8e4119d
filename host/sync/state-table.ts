// The uplink's state table on a compacted internal topic, `__uplink_state` (host/broker/
// compacted-table.ts): one key per link, so the state is replicated and replayed like every other
// piece of broker state (group offsets, MQTT sessions) instead of living in a file beside the log.
//
// Record layout:
//   key      the link's site name, UTF-8
//   value    the state exactly as the state file held it (host/sync/state-file.ts: the line
//            "TRIBUTARY-UPLINK-STATE 1 <crc32c> <length>\n" and the JSON body), so the same
//            header, length and CRC checks apply; a value that fails them is skipped on replay
//            (CompactedTable logs and counts it) and the link starts as with no state
//
// Crash policy: every save is a produce with acks=all on a topic with flush=always, so a save
// that resolved survives a power cut; a save cut short leaves the previous value. Saves are
// coalesced: one requested while one is being written is folded into the next write. Exactly-
// once never rests on this table (the read-back of the target decides); it keeps the producer id
// and spares restarts long scans.
//
// Migration: when the table holds no entry for the site and the old state file
// `<dataDir>/__uplink/<site>.state` exists and passes its checks, its state is written to the
// table and the file is renamed `<site>.state.migrated` (kept for inspection; never read again).
// A file that fails its checks is left where it is and the link starts without state (logged).
import { join } from 'node:path';
import { rename } from 'node:fs/promises';
import type { BrokerApi } from '../broker/api.js';
import { CompactedTable, type TableCodec } from '../broker/compacted-table.js';
import type { Logger } from '../logging.js';
import type { MetricsRegistry } from '../metrics/registry.js';
import { readFileOrNull } from '../log/io.js';
import { emptyProducerState } from '../kafka/client/producer.js';
import { decodeLinkState, encodeLinkState, type LinkState } from './state-file.js';

export const UPLINK_STATE_TOPIC = '__uplink_state';
/** Links per node the table holds at most (one per configured site: today one). */
const LINKS_MAX = 16;
/** Bytes per replay read: a link's state is a few KB per partition. */
const REPLAY_READ_BYTES = 1024 * 1024;

const codec: TableCodec<string, LinkState> = {
  encodeKey: (site) => Buffer.from(site, 'utf8'),
  decodeKey: (bytes) => Buffer.from(bytes).toString('utf8'),
  encodeValue: (state) => encodeLinkState(state),
  decodeValue: (bytes) => {
    const decoded = decodeLinkState(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    if (typeof decoded === 'string') throw new Error(decoded);
    return decoded;
  },
};

/** Where a link keeps its state: the object the uplink mutates, and a durable save. */
export interface LinkStateStore {
  readonly state: LinkState;
  save(): Promise<void>;
}

export class LinkStateTable implements LinkStateStore {
  private writing: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  saves = 0;

  private constructor(
    private readonly table: CompactedTable<string, LinkState>,
    readonly site: string,
    readonly state: LinkState,
  ) {}

  /** The link's state from the table, migrated from the old state file the first time. */
  static async open(broker: BrokerApi, dataDir: string, site: string, deps: { logger: Logger; metrics?: MetricsRegistry }, onDistrust: (why: string) => void): Promise<LinkStateTable> {
    const table = await CompactedTable.open(broker, codec, { topic: UPLINK_STATE_TOPIC, partitions: 1, maxEntries: LINKS_MAX, maxEntriesSetting: 'one entry per uplink site', readBytes: REPLAY_READ_BYTES, clientId: 'tributary-uplink' }, deps);
    const entry = table.get(site);
    if (entry) return new LinkStateTable(table, site, entry.value);
    const path = join(dataDir, '__uplink', `${site}.state`);
    const bytes = await readFileOrNull(path);
    let state: LinkState = { producer: emptyProducerState(), checkpoints: {} };
    if (bytes) {
      const decoded = decodeLinkState(bytes);
      if (typeof decoded === 'string') onDistrust(`${path}: ${decoded}`);
      else {
        state = decoded;
        await table.write(0, [{ key: site, value: state }]);
        await rename(path, `${path}.migrated`);
        deps.logger.info({ from: path, to: UPLINK_STATE_TOPIC }, 'uplink state migrated from its file to the internal table (the file is kept as .migrated)');
      }
    }
    return new LinkStateTable(table, site, state);
  }

  /** Persists the current state durably (coalesced with saves requested meanwhile). */
  save(): Promise<void> {
    if (!this.writing) return (this.writing = this.write());
    return (this.next ??= this.writing.then(
      () => this.afterCurrent(),
      () => this.afterCurrent(),
    ));
  }

  private afterCurrent(): Promise<void> {
    this.next = null;
    return (this.writing = this.write());
  }

  private async write(): Promise<void> {
    try {
      // The value is encoded inside write() before its first await: a snapshot of this moment.
      await this.table.write(0, [{ key: this.site, value: this.state }]);
      this.saves++;
    } finally {
      if (!this.next) this.writing = null;
    }
  }
}
