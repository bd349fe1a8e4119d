// The log's metrics: one set per registry, labelled by partition.
import { LATENCY_BUCKETS_MS, type Counter, type Gauge, type Histogram, type MetricsRegistry } from '../metrics/registry.js';

export interface LogMetrics {
  appendedBytes: Counter;
  appendedRecords: Counter;
  fsyncs: Counter;
  fsyncMs: Histogram;
  segments: Gauge;
  recoverySeconds: Gauge;
  truncatedBytes: Counter;
  corruptions: Counter;
  diskFullRewinds: Counter;
  segmentsDeleted: Counter;
  damagedSkipped: Counter;
}

// A type alias (not an interface) so it fits the registry's label record.
export type LogLabel = {
  partition: string;
};

export function createMetrics(r: MetricsRegistry): LogMetrics {
  return {
    appendedBytes: r.counter('tributary_log_appended_bytes_total', 'Bytes of record batches written to partition logs'),
    appendedRecords: r.counter('tributary_log_appended_records_total', 'Records written to partition logs'),
    fsyncs: r.counter('tributary_log_fsyncs_total', 'fdatasync calls made by partition logs (group commit)'),
    fsyncMs: r.histogram('tributary_log_fsync_ms', 'Latency of one partition-log fdatasync (ms)', LATENCY_BUCKETS_MS),
    segments: r.gauge('tributary_log_segments', 'Segments of a partition log'),
    recoverySeconds: r.gauge('tributary_log_recovery_seconds', 'Time the last open of a partition log took (recovery included)'),
    truncatedBytes: r.counter('tributary_log_recovery_truncated_bytes_total', 'Bytes cut from partition logs by recovery'),
    corruptions: r.counter('tributary_log_corrupt_batches_total', 'Damaged batches found in old segments while reading'),
    diskFullRewinds: r.counter('tributary_log_disk_full_rewinds_total', 'Writes that met a full disk (ENOSPC/EDQUOT): queued appends refused, log cut back, appends resumed'),
    damagedSkipped: r.counter('tributary_log_damaged_batches_skipped_total', 'Damaged batches (CRC mismatch) of internal topics skipped by reads, so a damaged commit or session never keeps the node down'),
    segmentsDeleted: r.counter('tributary_log_retention_segments_deleted_total', 'Segments deleted by retention (time, size, budget or share)'),
  };
}
