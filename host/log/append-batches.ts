// What an append does before anything is queued (Kafka's LogValidator): verify the batches,
// check producer sequences, and place them at their offsets. Synchronous, so the log can assign
// offsets and queue the write with no await in between (queue order = offset order).
//
// Leader: verifies deep (core), refuses transactional/control batches and empty ones, checks
// idempotent sequences (a retried batch is answered with its original offsets), assigns
// offsets from the log end by rewriting baseOffset in the caller's buffer (outside the CRC),
// stamps the leader epoch, restamps for LogAppendTime.
// Follower: verifies the same way but keeps every byte as the leader sent it; checks only that
// the offsets go forward from the log end (gaps allowed: compaction leaves them).
import {
  restampLogAppendTime,
  setBaseOffset,
  setPartitionLeaderEpoch,
  verifyBatches,
  type BatchHeader,
} from '../core/index.js';
import { BrokerError } from '../errors/index.js';
import type { AppendInfo, EpochEntry, LogOptions } from './api.js';
import { lastSeqOf, type BatchMetadata, type ProducerStateTable } from './producer-state.js';

export interface AppendContext {
  options: Required<LogOptions>;
  producers: ProducerStateTable;
  /** Next offset to assign (the leader) or the least one accepted (a follower). */
  nextOffset: number;
  /** Bytes already waiting for the disk. */
  pendingBytes: number;
  partition: string;
  nowMs: number;
}

export type PreparedAppend =
  | { kind: 'write'; headers: BatchHeader[]; info: AppendInfo; epochs: EpochEntry[] }
  | { kind: 'duplicate'; batch: BatchMetadata };

export function prepareLeaderAppend(batches: Uint8Array, leaderEpoch: number, ctx: AppendContext): PreparedAppend {
  const o = ctx.options;
  const headers = verify(batches, o, true);
  let pending: Map<number, { epoch: number; lastSeq: number }> | null = null;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i];
    refuseTransactional(h, i);
    if (h.recordCount === 0) throw new BrokerError('INVALID_RECORD', 'a produced batch must hold at least one record');
    const check = ctx.producers.check(h, pending);
    if (check.kind === 'duplicate') return { kind: 'duplicate', batch: check.batch };
    if (h.producerId >= 0) (pending ??= new Map()).set(h.producerId, { epoch: h.producerEpoch, lastSeq: lastSeqOf(h) });
  }
  checkRoom(batches, ctx);
  const firstOffset = ctx.nextOffset;
  if (firstOffset + batches.byteLength > Number.MAX_SAFE_INTEGER) throw new BrokerError('KAFKA_STORAGE_ERROR', 'offset space exhausted');
  let offset = firstOffset;
  let pos = 0;
  const placed: BatchHeader[] = new Array(headers.length);
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i];
    setBaseOffset(batches, pos, offset);
    setPartitionLeaderEpoch(batches, pos, leaderEpoch);
    let maxTimestamp = h.maxTimestamp;
    if (o.logAppendTime) {
      restampLogAppendTime(batches, pos, ctx.nowMs);
      maxTimestamp = ctx.nowMs;
    }
    placed[i] = { ...h, baseOffset: offset, lastOffset: offset + h.lastOffsetDelta, partitionLeaderEpoch: leaderEpoch, maxTimestamp };
    offset += h.lastOffsetDelta + 1;
    pos += h.totalBytes;
  }
  applyProducers(placed, ctx);
  const info = infoOf(placed, o.logAppendTime ? ctx.nowMs : -1);
  return { kind: 'write', headers: placed, info, epochs: [{ epoch: leaderEpoch, startOffset: firstOffset }] };
}

export function prepareFollowerAppend(batches: Uint8Array, ctx: AppendContext): PreparedAppend {
  const headers = verify(batches, ctx.options, false);
  let least = ctx.nextOffset;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i];
    refuseTransactional(h, i);
    if (h.baseOffset < least) {
      const why = i === 0 ? `the log end is ${least}` : `batch ${i - 1} ends at ${least - 1}`;
      throw new BrokerError('OFFSET_OUT_OF_RANGE', `follower append: batch ${i} starts at offset ${h.baseOffset} but ${why}`);
    }
    least = h.lastOffset + 1;
  }
  checkRoom(batches, ctx);
  applyProducers(headers, ctx);
  // Every batch's epoch, oldest first; the cache keeps only those newer than its latest.
  const epochs = headers.map((h) => ({ epoch: h.partitionLeaderEpoch, startOffset: h.baseOffset }));
  return { kind: 'write', headers, info: infoOf(headers, -1), epochs };
}

/** Deep checks; a follower also accepts compacted batches (gaps in offset deltas, no records). */
function verify(batches: Uint8Array, o: Required<LogOptions>, asLeader: boolean): BatchHeader[] {
  return verifyBatches(batches, {
    maxBatchBytes: o.maxMessageBytes,
    maxDecompressedBytes: o.maxDecompressedBytes,
    deep: true,
    strictOffsets: asLeader,
  });
}

function refuseTransactional(h: BatchHeader, i: number): void {
  if (h.isTransactional || h.isControl) {
    throw new BrokerError('INVALID_RECORD', `batch ${i}: transactional and control batches are not supported (no transaction coordinator)`);
  }
}

/** The bound on bytes waiting for the disk (one append alone always fits, so a large batch is never refused forever). */
function checkRoom(batches: Uint8Array, ctx: AppendContext): void {
  const max = ctx.options.maxPendingAppendBytes;
  if (ctx.pendingBytes + batches.byteLength > max && ctx.pendingBytes > 0) {
    throw new BrokerError(
      'LIMIT_EXCEEDED',
      `partition ${ctx.partition}: ${ctx.pendingBytes} bytes already wait for the disk (maxPendingAppendBytes ${max})`,
    );
  }
}

function applyProducers(headers: BatchHeader[], ctx: AppendContext): void {
  for (const h of headers) ctx.producers.apply(h, ctx.nowMs);
}

function infoOf(headers: BatchHeader[], logAppendTimeMs: number): AppendInfo {
  let maxTimestampMs = -1;
  let recordCount = 0;
  for (const h of headers) {
    if (h.maxTimestamp > maxTimestampMs) maxTimestampMs = h.maxTimestamp;
    recordCount += h.recordCount;
  }
  const last = headers[headers.length - 1];
  return { baseOffset: headers[0].baseOffset, lastOffset: last.lastOffset, maxTimestampMs, logAppendTimeMs, recordCount, duplicate: false };
}
