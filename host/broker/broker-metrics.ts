// The broker core's metrics, all named tributary_broker_*. "In" is what append/produce
// stored; "out" is what read() returned. The log reports its own (fsyncs, segments,
// recovery) under tributary_log_* through the same registry.
import { BATCH_LENGTH, LOG_OVERHEAD, MIN_BATCH_LENGTH, RECORDS, RECORDS_COUNT } from '../core/batch-layout.js';
import { readFileSync } from 'node:fs';
import { LATENCY_BUCKETS_MS, type Counter, type Gauge, type Histogram, type MetricsRegistry } from '../metrics/registry.js';

/**
 * Bytes this process has caused to be written to storage (`write_bytes` of /proc/self/io: counted
 * when a page is dirtied, so a page rewritten after each fsync counts again — what flash pays),
 * or undefined where the kernel does not account it (no procfs, no task I/O accounting).
 */
export function processDiskWriteBytes(ioFile = '/proc/self/io'): number | undefined {
  try {
    const m = /^write_bytes:\s*(\d+)$/m.exec(readFileSync(ioFile, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export class BrokerMetrics {
  readonly bytesIn: Counter;
  readonly recordsIn: Counter;
  readonly bytesOut: Counter;
  readonly recordsOut: Counter;
  readonly appends: Counter;
  readonly appendErrors: Counter;
  readonly appendLatencyMs: Histogram;
  readonly reads: Counter;
  readonly limitRefusals: Counter;
  readonly topics: Gauge;
  readonly partitions: Gauge;
  readonly pendingAppendBytes: Gauge;
  readonly waitingReaders: Gauge;
  readonly openMs: Gauge;
  readonly retentionRuns: Counter;
  readonly retentionBytesFreed: Counter;
  readonly maintenanceErrors: Counter;
  readonly replicaTruncations: Counter;
  readonly budgetDeletions: Counter;
  readonly budgetBytes: Gauge;
  readonly diskWriteBytes: Gauge;
  readonly writeAmplification: Gauge;
  /** Record batch bytes appended since this broker opened, every topic (internal ones too). */
  private appendedBytes = 0;
  private readonly writeBytesAtOpen: number | undefined;

  constructor(registry: MetricsRegistry, ioFile = '/proc/self/io') {
    this.bytesIn = registry.counter('tributary_broker_bytes_in_total', 'Record batch bytes appended, per topic');
    this.recordsIn = registry.counter('tributary_broker_records_in_total', 'Records appended, per topic');
    this.bytesOut = registry.counter('tributary_broker_bytes_out_total', 'Record batch bytes returned by reads, per topic');
    this.recordsOut = registry.counter('tributary_broker_records_out_total', 'Records returned by reads, per topic');
    this.appends = registry.counter('tributary_broker_appends_total', 'Successful appends (one per append or per partition of a produce), per topic');
    this.appendErrors = registry.counter('tributary_broker_append_errors_total', 'Refused or failed appends, per error code');
    this.appendLatencyMs = registry.histogram('tributary_broker_append_latency_ms', 'Time from append call to acknowledgement (flush policy met), ms', LATENCY_BUCKETS_MS);
    this.reads = registry.counter('tributary_broker_reads_total', 'Reads served, per topic');
    this.limitRefusals = registry.counter('tributary_broker_limit_refusals_total', 'Calls refused by a broker limit, per limit');
    this.topics = registry.gauge('tributary_broker_topics', 'Topics (internal ones included)');
    this.partitions = registry.gauge('tributary_broker_partitions', 'Open partitions over all topics');
    this.pendingAppendBytes = registry.gauge('tributary_broker_pending_append_bytes', 'Bytes of appends waiting for their flush');
    this.waitingReaders = registry.gauge('tributary_broker_waiting_readers', 'Readers parked in waitForData');
    this.openMs = registry.gauge('tributary_broker_open_ms', 'Time the last start took to open (and recover) every partition, ms');
    this.retentionRuns = registry.counter('tributary_broker_retention_runs_total', 'Passes of the retention/compaction scheduler');
    this.retentionBytesFreed = registry.counter('tributary_broker_retention_bytes_freed_total', 'Bytes deleted by retention, per topic');
    this.budgetDeletions = registry.counter('tributary_broker_retention_budget_segments_deleted_total', 'Segments deleted by the retention budget, per topic and reason (share: the topic held more than its share; budget: all topics together held more than the budget)');
    this.budgetBytes = registry.gauge('tributary_broker_retention_budget_bytes', 'Bytes all topic logs together may hold (retentionBudgetBytes, or sized from the disk)');
    this.replicaTruncations = registry.counter('tributary_broker_replica_truncations_total', 'Follower logs cut back, per topic and reason (leader-epoch: where it diverged from the leader; log-start: wholly reset to the leader\'s log start, retention ran while it was away; damaged: at a batch failing its CRC, refetched from the leader)');
    this.maintenanceErrors = registry.counter('tributary_broker_maintenance_errors_total', 'Retention or compaction failures, per topic');
    // Write amplification, node-wide: the page-granular, fsync-sensitive bytes the kernel
    // accounts to this process over the batch bytes appended. Small fsynced appends on flash
    // show here (each rewrites a whole page); large batches approach 1 plus the indexes.
    this.writeBytesAtOpen = processDiskWriteBytes(ioFile);
    this.diskWriteBytes = registry.gauge('tributary_process_disk_write_bytes', 'Bytes this process caused to be written to storage since it started (write_bytes of /proc/self/io; monotonic); absent where the kernel does not account it');
    this.writeAmplification = registry.gauge('tributary_broker_write_amplification', 'Bytes written to storage per record batch byte appended since the broker opened, every topic (disk write bytes / tributary_broker_bytes_in_total); absent until something was appended or where /proc/self/io is missing');
    this.diskWriteBytes.collect(() => {
      const now = processDiskWriteBytes(ioFile);
      if (now === undefined) return;
      this.diskWriteBytes.set(now);
      if (this.writeBytesAtOpen !== undefined && this.appendedBytes > 0) {
        this.writeAmplification.set((now - this.writeBytesAtOpen) / this.appendedBytes);
      }
    });
  }

  /** Counts an append's batch bytes for the write amplification (bytesIn keeps them per topic). */
  noteAppended(bytes: number): void {
    this.appendedBytes += bytes;
  }
}

/** Records in a buffer of whole batches (sum of the headers' recordCount), walking batch lengths. */
export function countRecords(buf: Uint8Array): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let records = 0;
  let pos = 0;
  while (pos + RECORDS <= buf.byteLength) {
    const batchLength = view.getInt32(pos + BATCH_LENGTH);
    if (batchLength < MIN_BATCH_LENGTH) break;
    records += view.getInt32(pos + RECORDS_COUNT);
    pos += LOG_OVERHEAD + batchLength;
  }
  return records;
}
