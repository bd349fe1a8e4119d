// The uplink's figures beyond records and link state (docs/uplink.md, "Observability"): per link
// and per source partition the lag in bytes and in seconds, what was given up (drops by the
// on-full policy, gaps left by retention) in records and bytes, and the bandwidth in use — for
// /metrics, /stats, the console and `tributary uplink status`.
//
// Definitions, and what each costs:
//   lag bytes     bytes stored from the partition's first unforwarded offset (its position, raised
//                 by a drop) to the high watermark: BrokerApi.bytesBetween (segment sizes and the
//                 sparse index, no file read), computed when asked
//   lag seconds   now − the timestamp of that first unforwarded record (CreateTime as the producer
//                 set it, or the append time under LogAppendTime; when retention removed it, the
//                 oldest one still stored); 0 when nothing is unforwarded.
//                 The record is read through the broker's one read path (its batch only: maxBytes
//                 1 returns the first batch whole) when the first unforwarded offset moved, at most
//                 once per sample tick and one partition at a time, so at most one batch is held;
//                 between reads the cached timestamp stands, so during an outage the age grows with
//                 the clock and costs no read at all
//   bandwidth     bytes over the last uplink.bandwidthWindowMs: per link the request bytes written
//                 to the target (every produce, read-back fetch and metadata request), per partition
//                 the bytes of its batches the target acknowledged. Sampled every tenth of the
//                 window into a ring of 11 samples (bounded); the rate is (now − the oldest sample)
//   drop bytes    bytesBetween over the dropped range when the uplink skips it (a drop deletes
//                 nothing, so the bytes are still on disk and measured like the lag)
//   gap bytes     retention has already deleted the range, so it is taken from the partition's
//                 last sample (its first unforwarded offset, the log end and the bytes between):
//                 exact (to bytesBetween's precision) when the uplink had not moved since that
//                 sample — the outage case gaps come from; prorated by records when it had; and,
//                 with no sample of the range (deleted before this process sampled it), estimated
//                 from the average record size of what the partition still holds. The log line of
//                 the gap says which of the three it was.
import type { BrokerApi, TopicPartition } from '../broker/api.js';
import { decodeBatch, readBatchHeader, RECORDS, TIMESTAMP_LOG_APPEND_TIME } from '../core/index.js';
import type { Counter, Gauge, MetricsRegistry } from '../metrics/registry.js';

/** Samples in the bandwidth ring: the window is split into ten intervals, so eleven bounds. */
const SAMPLES = 11;

/** What the observer needs of one source partition of the link. */
export interface ObservedPartition {
  readonly source: TopicPartition;
  /** The first source offset the uplink has not forwarded and not dropped. */
  unforwardedFrom(): number;
}

/** Per partition: what is reported beside the records (the PartitionStatus fields added here). */
export interface PartitionFigures {
  lagBytes: number;
  /** Age of the first unforwarded record; 0 when caught up. */
  lagSeconds: number;
  /** Bytes of this partition's batches the target acknowledged, since start. */
  bytesSent: number;
  bandwidthBytesPerSec: number;
  droppedBytes: number;
  /** Source records removed by retention before they were forwarded, and their bytes (see the header on how those are known). */
  gapRecords: number;
  gapBytes: number;
}

/** Per link: totals over every partition (not only the rows shown) and the bandwidth. */
export interface LinkFigures {
  lagRecords: number;
  lagBytes: number;
  /** The oldest first-unforwarded record over the link. */
  lagSecondsMax: number;
  droppedRecords: number;
  droppedBytes: number;
  gapRecords: number;
  gapBytes: number;
  bandwidthBytesPerSec: number;
  /** uplink.bandwidthBytesPerSec (0 = no cap). */
  bandwidthCapBytesPerSec: number;
  bandwidthWindowMs: number;
}

/** A rate over a bounded ring of (time, cumulative bytes) samples. */
class RateRing {
  private readonly atMs: number[] = [];
  private readonly bytes: number[] = [];

  sample(nowMs: number, total: number): void {
    this.atMs.push(nowMs);
    this.bytes.push(total);
    if (this.atMs.length > SAMPLES) {
      this.atMs.shift();
      this.bytes.shift();
    }
  }

  /** Bytes per second from the oldest sample to now (0 before the first sample or within the same millisecond). */
  rate(nowMs: number, total: number): number {
    if (this.atMs.length === 0 || nowMs <= this.atMs[0]) return 0;
    return Math.max(0, ((total - this.bytes[0]) * 1000) / (nowMs - this.atMs[0]));
  }
}

class Figures {
  bytesSent = 0;
  droppedBytes = 0;
  gapRecords = 0;
  gapBytes = 0;
  readonly ring = new RateRing();
  /** The last sample of the unforwarded range: what a later gap's bytes are measured from. */
  snapshot: { from: number; end: number; bytes: number } | null = null;
  /** The first unforwarded record's offset and timestamp, as last read. */
  oldest: { offset: number; timestampMs: number } | null = null;
}

export interface GapMeasure {
  bytes: number;
  /** `sampled` exact; `prorated` by records from a sample; `estimated` from the average record size. */
  how: 'sampled' | 'prorated' | 'estimated';
}

export class UplinkObserver {
  private readonly figures = new Map<ObservedPartition, Figures>();
  private readonly linkRing = new RateRing();
  private timer: NodeJS.Timeout | null = null;
  /** A refresh of lag timestamps is running (one at a time: at most one batch held). */
  private refreshing = false;
  private readonly metrics: { lagBytes: Gauge; lagSeconds: Gauge; bandwidth: Gauge; partBandwidth: Gauge; cap: Gauge; droppedBytes: Counter; gapBytes: Counter };

  constructor(
    private readonly broker: BrokerApi,
    private readonly site: string,
    readonly options: { bandwidthWindowMs: number; bandwidthBytesPerSec: number },
    private readonly linkBytesSent: () => number,
    registry: MetricsRegistry,
    private readonly nowMs: () => number = Date.now,
  ) {
    this.metrics = {
      lagBytes: registry.gauge('tributary_uplink_lag_bytes', 'Bytes stored in a source partition from the first record not yet forwarded to the high watermark'),
      lagSeconds: registry.gauge('tributary_uplink_lag_seconds', 'Age (now − its timestamp) of the first source record not yet forwarded; 0 when caught up'),
      bandwidth: registry.gauge('tributary_uplink_bandwidth_bytes_per_second', 'Request bytes per second the uplink wrote to its target over the last uplink.bandwidthWindowMs'),
      partBandwidth: registry.gauge('tributary_uplink_partition_bandwidth_bytes_per_second', 'Bytes per second of a source partition\'s batches the target acknowledged, over the last uplink.bandwidthWindowMs'),
      cap: registry.gauge('tributary_uplink_bandwidth_cap_bytes_per_second', 'uplink.bandwidthBytesPerSec: the link\'s bandwidth cap (0 = none)'),
      droppedBytes: registry.counter('tributary_uplink_dropped_bytes_total', 'Bytes of the source records the on-full policy gave up (not forwarded)'),
      gapBytes: registry.counter('tributary_uplink_gap_bytes_total', 'Bytes of the source records retention removed before the uplink forwarded them (see docs/uplink.md on how they are measured)'),
    };
    const labels = (p: ObservedPartition) => ({ site, topic: p.source.topic, partition: String(p.source.partition) });
    this.metrics.lagBytes.collect(() => {
      for (const p of this.figures.keys()) this.metrics.lagBytes.set(this.lagBytes(p), labels(p));
    });
    this.metrics.lagSeconds.collect(() => {
      const now = this.nowMs();
      for (const p of this.figures.keys()) this.metrics.lagSeconds.set(this.lagSeconds(p, now), labels(p));
    });
    this.metrics.partBandwidth.collect(() => {
      const now = this.nowMs();
      for (const [p, f] of this.figures) this.metrics.partBandwidth.set(f.ring.rate(now, f.bytesSent), labels(p));
    });
    this.metrics.bandwidth.collect(() => this.metrics.bandwidth.set(this.linkRing.rate(this.nowMs(), this.linkBytesSent()), { site }));
    this.metrics.cap.collect(() => this.metrics.cap.set(options.bandwidthBytesPerSec, { site }));
  }

  /** Starts sampling every tenth of the bandwidth window. */
  start(): void {
    this.tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private tick(): void {
    void this.sample();
    this.timer = setTimeout(() => this.tick(), Math.max(10, Math.floor(this.options.bandwidthWindowMs / (SAMPLES - 1))));
    this.timer.unref();
  }

  /** One sample: the bandwidth rings, the unforwarded ranges, and (resolved when done) the first unforwarded records' timestamps. */
  sample(): Promise<void> {
    const now = this.nowMs();
    this.linkRing.sample(now, this.linkBytesSent());
    for (const [p, f] of this.figures) {
      f.ring.sample(now, f.bytesSent);
      this.takeSnapshot(p, f);
    }
    return this.refreshOldest();
  }

  /** A new source partition of the link: sampled from now on. */
  add(p: ObservedPartition): void {
    const f = new Figures();
    this.figures.set(p, f);
    this.takeSnapshot(p, f);
  }

  /** Bytes of a batch of `p` the target acknowledged. */
  sent(p: ObservedPartition, bytes: number): void {
    const f = this.figures.get(p);
    if (f) f.bytesSent += bytes;
  }

  /** The on-full policy's range [from, to) of `p` is skipped: its bytes are counted (still on disk). Returns them. */
  dropped(p: ObservedPartition, from: number, to: number, policy: string): number {
    const f = this.figures.get(p);
    let bytes = 0;
    try {
      bytes = this.broker.bytesBetween(p.source, from, to);
    } catch {
      bytes = 0; // the partition went away: nothing left to measure
    }
    if (f) f.droppedBytes += bytes;
    this.metrics.droppedBytes.inc({ site: this.site, topic: p.source.topic, partition: String(p.source.partition), policy }, bytes);
    return bytes;
  }

  /** Retention removed [from, to) of `p` before it was forwarded: its bytes, measured as the header says. */
  gap(p: ObservedPartition, from: number, to: number): GapMeasure {
    const f = this.figures.get(p);
    const m = this.measureGap(p, f?.snapshot ?? null, from, to);
    if (f) {
      f.gapRecords += to - from;
      f.gapBytes += m.bytes;
      f.snapshot = null; // the sampled range is gone; the next tick samples what is left
    }
    this.metrics.gapBytes.inc({ site: this.site, topic: p.source.topic, partition: String(p.source.partition) }, m.bytes);
    return m;
  }

  private measureGap(p: ObservedPartition, s: { from: number; end: number; bytes: number } | null, from: number, to: number): GapMeasure {
    try {
      if (s && to > s.from && s.bytes > 0) {
        // What the sample covered and is now gone: its bytes minus those of [to, end) still stored.
        const gone = to >= s.end ? s.bytes : Math.max(0, s.bytes - this.broker.bytesBetween(p.source, to, s.end));
        if (from <= s.from) return { bytes: gone, how: 'sampled' };
        return { bytes: Math.round((gone * (to - from)) / (to - s.from)), how: 'prorated' };
      }
      const o = this.broker.offsets(p.source);
      const held = o.logEndOffset - o.logStartOffset;
      const perRecord = held > 0 ? this.broker.bytesBetween(p.source, o.logStartOffset, o.logEndOffset) / held : 0;
      return { bytes: Math.round(perRecord * (to - from)), how: 'estimated' };
    } catch {
      return { bytes: 0, how: 'estimated' };
    }
  }

  private takeSnapshot(p: ObservedPartition, f: Figures): void {
    try {
      const from = p.unforwardedFrom();
      const o = this.broker.offsets(p.source);
      // A first unforwarded offset below the log start is already gone (retention): the last
      // sample, taken before the deletion, is kept for the gap the uplink will note.
      if (from >= o.logStartOffset) f.snapshot = { from, end: o.logEndOffset, bytes: this.broker.bytesBetween(p.source, from, o.logEndOffset) };
    } catch {
      // the partition went away: nothing to sample
    }
  }

  lagBytes(p: ObservedPartition): number {
    try {
      const from = p.unforwardedFrom();
      const hw = this.broker.offsets(p.source).highWatermark;
      return from < hw ? this.broker.bytesBetween(p.source, from, hw) : 0;
    } catch {
      return 0;
    }
  }

  lagSeconds(p: ObservedPartition, nowMs = this.nowMs()): number {
    const f = this.figures.get(p);
    if (!f?.oldest) return 0;
    try {
      // Caught up since the last read: 0 now, not the age of a record already forwarded.
      if (p.unforwardedFrom() >= this.broker.offsets(p.source).highWatermark) return 0;
    } catch {
      return 0;
    }
    return Math.max(0, (nowMs - f.oldest.timestampMs) / 1000);
  }

  /**
   * Reads the first unforwarded record's timestamp of every partition whose first unforwarded
   * offset moved since the last read: one partition at a time, one batch each.
   */
  private async refreshOldest(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      for (const [p, f] of this.figures) {
        let at: number;
        let hw: number;
        try {
          const o = this.broker.offsets(p.source);
          // Retention may have removed the first unforwarded records (a gap the uplink notes when
          // it reads next): the oldest one still stored is the next to go.
          at = Math.max(p.unforwardedFrom(), o.logStartOffset);
          hw = o.highWatermark;
        } catch {
          continue;
        }
        if (at >= hw) f.oldest = null;
        else if (f.oldest?.offset !== at) f.oldest = await this.timestampAt(p.source, at);
      }
    } finally {
      this.refreshing = false;
    }
  }

  /** The timestamp of the record at `offset` (or the first one after it), read through the one read path; null when absent. */
  private async timestampAt(tp: TopicPartition, offset: number): Promise<{ offset: number; timestampMs: number } | null> {
    try {
      const r = await this.broker.read(tp, offset, { maxBytes: 1, isolation: 'committed' });
      if (r.records.byteLength < RECORDS) return null;
      const h = readBatchHeader(r.records, 0);
      if (h.timestampType === TIMESTAMP_LOG_APPEND_TIME) return { offset, timestampMs: h.maxTimestamp };
      if (h.baseOffset >= offset) return { offset, timestampMs: h.baseTimestamp };
      // The offset is inside the batch (a re-encoded split, a drop floor): its own record's time.
      const rec = decodeBatch(r.records, 0).records.find((x) => x.offset >= offset);
      return rec ? { offset, timestampMs: rec.timestampMs } : null;
    } catch {
      return null; // gone (retention) or the partition went away: the next tick tries again
    }
  }

  /** The figures of one partition for its status row. */
  partition(p: ObservedPartition, nowMs = this.nowMs()): PartitionFigures {
    const f = this.figures.get(p) ?? new Figures();
    return {
      lagBytes: this.lagBytes(p),
      lagSeconds: round3(this.lagSeconds(p, nowMs)),
      bytesSent: f.bytesSent,
      bandwidthBytesPerSec: Math.round(f.ring.rate(nowMs, f.bytesSent)),
      droppedBytes: f.droppedBytes,
      gapRecords: f.gapRecords,
      gapBytes: f.gapBytes,
    };
  }

  /** Totals over every partition of the link (rows may be capped; the totals never are). */
  link(rows: ReadonlyArray<PartitionFigures & { lagRecords: number; droppedRecords: number }>, nowMs = this.nowMs()): LinkFigures {
    const sum = (k: 'lagRecords' | 'lagBytes' | 'droppedRecords' | 'droppedBytes' | 'gapRecords' | 'gapBytes') => rows.reduce((n, r) => n + r[k], 0);
    return {
      lagRecords: sum('lagRecords'),
      lagBytes: sum('lagBytes'),
      lagSecondsMax: rows.reduce((m, r) => Math.max(m, r.lagSeconds), 0),
      droppedRecords: sum('droppedRecords'),
      droppedBytes: sum('droppedBytes'),
      gapRecords: sum('gapRecords'),
      gapBytes: sum('gapBytes'),
      bandwidthBytesPerSec: Math.round(this.linkRing.rate(nowMs, this.linkBytesSent())),
      bandwidthCapBytesPerSec: this.options.bandwidthBytesPerSec,
      bandwidthWindowMs: this.options.bandwidthWindowMs,
    };
  }
}

/**
 * The rows a status view shows, at most `max`: partitions that are blocked or retrying first
 * (what an operator acts on), then the largest lag in bytes, then by name. The totals are
 * computed over every partition before this cut.
 */
export function rowsShown<T extends { state: string; lagBytes: number; source: TopicPartition }>(rows: T[], max: number): T[] {
  const trouble = (s: string) => (s === 'blocked' || s === 'retrying' ? 0 : 1);
  return [...rows]
    .sort((a, b) => trouble(a.state) - trouble(b.state) || b.lagBytes - a.lagBytes || a.source.topic.localeCompare(b.source.topic) || a.source.partition - b.source.partition)
    .slice(0, max);
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
