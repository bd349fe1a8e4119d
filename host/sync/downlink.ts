// The downlink: commands from the centre to this site's devices. Per configured pair
// (uplink.downlink `central=local`, `{site}` filled in) and per central partition, one loop copies
// the central partition into the local partition of the same number, exactly once, through the
// broker's one write path (BrokerApi.produce → append). MQTT devices get the records by the MQTT
// reverse routes (docs/mqtt.md), like any other record of a local topic.
//
// Per central partition, in named steps:
//   local      the local topic exists with at least the central partition count (created with
//              that count when missing), else `blocked` with the reason, re-checked every
//              topicScanIntervalMs
//   resume     the local partition's tail is read back (host/sync/origin.ts scanBack) for the last
//              record stamped with origin (downlinkOriginSite, central topic, partition): the
//              central partition resumes right after its origin offset. The origin travels in
//              the same batch as the record itself, so "appended locally" and "position stored"
//              are one atomic fact: no window in which one holds and the other does not. Found
//              nothing (a new site, or readBackRecordsMax scanned) → the local checkpoint in the
//              link's state file, else the central log start (every command queued for the site)
//   follow     fetch (long poll downlinkWaitMs, at most downlinkFetchBytes), decode, skip records
//              whose origin is this site (they went up from here: loop prevention), stamp the
//              origin headers, append locally (acks -1) in batches of at most batchRecordsMax /
//              batchBytesMax, move the checkpoint. Central records removed by retention before
//              they were copied (OFFSET_OUT_OF_RANGE) are a gap: logged with offsets and counted
// Any failure goes back to `local` after a backoff; nothing is retried blindly: the read-back
// decides again where to resume.
//
// Memory: per central partition one fetch (downlinkFetchBytes) and its decoded records.
import type { BrokerApi, TopicPartition } from '../broker/api.js';
import type { DecodedRecord } from '../core/index.js';
import type { Logger } from '../logging.js';
import type { Counter, Gauge, MetricsRegistry } from '../metrics/registry.js';
import { ERRORS } from '../errors/index.js';
import type { KafkaClient } from '../kafka/client/client.js';
import { KafkaResponseError } from '../kafka/client/errors.js';
import { sleep } from '../kafka/client/producer.js';
import { carriesOrigin, localTail, scanBack, withOrigin, type Origin } from './origin.js';
import type { ResolvedUplink } from './options.js';
import { splitBatches } from './batches.js';

export type DownlinkState = 'starting' | 'resolving' | 'following' | 'blocked' | 'retrying' | 'stopped';

export interface DownlinkPartitionStatus {
  central: TopicPartition;
  local: TopicPartition;
  state: DownlinkState;
  /** Next central offset to copy. */
  position: number;
  /** Central high watermark − position, as the last fetch saw it. */
  lagRecords: number;
  recordsCopied: number;
  reason: string | null;
}

export interface DownlinkDeps {
  broker: BrokerApi;
  logger: Logger;
  metrics: MetricsRegistry;
  client: KafkaClient;
  options: ResolvedUplink;
  /** The link's checkpoints (state file), keyed `downlink:<central topic>/<partition>`. */
  checkpoints: Record<string, number>;
  saveState: () => Promise<void>;
  signal: AbortSignal;
}

class BlockedError extends Error {}

export class Downlink {
  private readonly parts = new Map<string, DownlinkPartition>();
  private readonly loops = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  readonly records: Counter;
  readonly gaps: Counter;
  readonly lag: Gauge;

  constructor(readonly deps: DownlinkDeps) {
    const r = deps.metrics;
    this.records = r.counter('tributary_downlink_records_total', 'Records the downlink copied from the central cluster into local topics');
    this.gaps = r.counter('tributary_downlink_gap_records_total', 'Central records removed by retention before the downlink copied them');
    this.lag = r.gauge('tributary_downlink_lag_records', 'Records in a central partition not yet copied by the downlink');
    this.lag.collect(() => {
      for (const p of this.parts.values()) this.lag.set(p.lagRecords(), { site: deps.options.site, topic: p.central.topic, partition: String(p.central.partition) });
    });
  }

  get log(): Logger {
    return this.deps.logger;
  }

  /** Looks up every central topic of the pairs; starts a loop per partition not yet followed; again every topicScanIntervalMs. */
  async scan(): Promise<void> {
    const { client, options, signal } = this.deps;
    if (signal.aborted) return;
    try {
      const md = await client.metadata(options.downlink.map((d) => d.central));
      for (const pair of options.downlink) {
        const t = md.get(pair.central);
        if (!t || t.errorCode !== ERRORS.NONE.kafka) continue; // not there (yet): looked for again next scan
        for (const p of t.partitions) {
          const key = `${pair.central}/${p.partition}`;
          if (this.parts.has(key)) continue;
          const part = new DownlinkPartition(this, { topic: pair.central, partition: p.partition }, { topic: pair.local, partition: p.partition }, t.partitions.length);
          this.parts.set(key, part);
          const loop = part.run().finally(() => this.loops.delete(loop));
          this.loops.add(loop);
        }
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'downlink: central topics not looked up (retried)');
    }
    if (!signal.aborted) this.timer = setTimeout(() => void this.scan(), options.topicScanIntervalMs);
  }

  status(): DownlinkPartitionStatus[] {
    return [...this.parts.values()].map((p) => p.status());
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.loops]);
  }
}

class DownlinkPartition {
  state: DownlinkState = 'starting';
  reason: string | null = null;
  position = -1;
  highWatermark = -1;
  recordsCopied = 0;
  readonly origin: Origin;

  constructor(
    private readonly down: Downlink,
    readonly central: TopicPartition,
    readonly local: TopicPartition,
    private readonly centralPartitions: number,
  ) {
    this.origin = { site: down.deps.options.downlinkOriginSite, topic: central.topic, partition: central.partition };
  }

  private get checkpointKey(): string {
    return `downlink:${this.central.topic}/${this.central.partition}`;
  }

  private get name(): string {
    return `${this.central.topic}-${this.central.partition} → ${this.local.topic}-${this.local.partition}`;
  }

  lagRecords(): number {
    return this.position < 0 || this.highWatermark < 0 ? 0 : Math.max(0, this.highWatermark - this.position);
  }

  status(): DownlinkPartitionStatus {
    return { central: this.central, local: this.local, state: this.state, position: this.position, lagRecords: this.lagRecords(), recordsCopied: this.recordsCopied, reason: this.reason };
  }

  async run(): Promise<void> {
    const { signal, options: o } = this.down.deps;
    for (let failures = 0; !signal.aborted; ) {
      try {
        await this.ensureLocal();
        await this.resume();
        failures = 0;
        await this.follow();
      } catch (err) {
        if (signal.aborted) break;
        failures++;
        const blocked = err instanceof BlockedError;
        this.state = blocked ? 'blocked' : 'retrying';
        this.reason = (err as Error).message;
        this.down.log.warn({ downlink: this.name, err: this.reason, state: this.state }, blocked ? 'downlink partition blocked' : 'downlink partition retrying');
        await sleep(blocked ? o.topicScanIntervalMs : Math.min(o.reconnectBackoffMaxMs, o.reconnectBackoffMs * 2 ** Math.min(failures, 20)), signal);
      }
    }
    this.state = 'stopped';
  }

  /** The local topic exists with enough partitions (created with the central count when missing). */
  private async ensureLocal(): Promise<void> {
    const broker = this.down.deps.broker;
    let info = broker.describeTopic(this.local.topic);
    if (!info) {
      info = await broker.createTopic(this.local.topic, this.centralPartitions, undefined, { internal: false });
      this.down.log.info({ local: this.local.topic, partitions: this.centralPartitions }, 'downlink created the local topic');
    }
    if (info.partitions <= this.local.partition) {
      throw new BlockedError(`local topic ${this.local.topic} has ${info.partitions} partitions but central partition ${this.central.partition} maps to partition ${this.local.partition} (kept 1:1): add partitions here`);
    }
  }

  /** Where the central partition resumes: after the last origin the local log holds. */
  private async resume(): Promise<void> {
    this.state = 'resolving';
    const { broker, options: o, client, checkpoints } = this.down.deps;
    const r = await scanBack(localTail(broker, this.local, o.readBackBytes), this.origin, o.readBackRecordsMax);
    let why: string;
    if (r.lastOriginOffset >= 0) {
      this.position = r.lastOriginOffset + 1;
      why = 'after the last origin offset found in the local log';
    } else if (checkpoints[this.checkpointKey] !== undefined) {
      this.position = checkpoints[this.checkpointKey];
      why = r.complete ? 'no origin of this partition in the local log: the local checkpoint' : `no origin within ${r.scanned} local records (readBackRecordsMax): the local checkpoint`;
    } else {
      this.position = await client.listOffset(this.central.topic, this.central.partition, -2);
      why = 'nothing copied before: from the central log start';
    }
    this.down.log.info({ downlink: this.name, resumeAt: this.position, why, lastOriginOffset: r.lastOriginOffset, scanned: r.scanned }, `downlink ${this.name}: exactly-once by local read-back, resuming at ${this.position}`);
  }

  private noteGap(from: number, to: number): void {
    const o = this.down.deps.options;
    this.down.gaps.inc({ site: o.site, topic: this.central.topic, partition: String(this.central.partition) }, to - from);
    this.down.log.warn({ downlink: this.name, fromOffset: from, toOffset: to, records: to - from }, 'downlink gap: central records removed by retention before they were copied');
  }

  /** Fetches, filters, stamps and appends locally until stopped or a failure. */
  private async follow(): Promise<void> {
    const { client, options: o, signal } = this.down.deps;
    while (!signal.aborted) {
      this.state = 'following';
      let r;
      try {
        r = await client.fetchBatches(this.central.topic, this.central.partition, this.position, { maxBytes: o.downlinkFetchBytes, maxWaitMs: o.downlinkWaitMs });
      } catch (err) {
        if (!(err instanceof KafkaResponseError) || err.code !== 'OFFSET_OUT_OF_RANGE') throw err;
        const start = await client.listOffset(this.central.topic, this.central.partition, -2);
        if (start <= this.position) throw err;
        this.noteGap(this.position, start);
        this.position = start;
        continue;
      }
      this.highWatermark = r.highWatermark;
      let next = this.position;
      const records: DecodedRecord[] = [];
      for (const b of r.batches) {
        next = Math.max(next, b.header.baseOffset + b.header.lastOffsetDelta + 1);
        if (b.header.isControl) continue;
        for (const rec of b.records) if (rec.offset >= this.position && !carriesOrigin(rec, o.site)) records.push(rec);
      }
      if (signal.aborted) break;
      await this.append(records);
      if (next > this.position) {
        this.position = next;
        this.down.deps.checkpoints[this.checkpointKey] = next;
        await this.down.deps.saveState();
      }
    }
  }

  /** Appends through the broker's one write path, origin stamped, in bounded batches. */
  private async append(records: DecodedRecord[]): Promise<void> {
    if (records.length === 0) return;
    const { broker, options: o } = this.down.deps;
    const stamped = records.map((rec) => withOrigin(rec, this.origin));
    for (const part of splitBatches(stamped, o.batchRecordsMax, o.batchBytesMax)) {
      await broker.produce(this.local.topic, part.records, { acks: -1, partition: this.local.partition });
      this.recordsCopied += part.records.length;
      this.down.records.inc({ site: o.site, topic: this.central.topic, partition: String(this.central.partition) }, part.records.length);
    }
  }
}
