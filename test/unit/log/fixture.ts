// Shared pieces of the log tests: a log in a temp dir, batches from the core's encoder, and a
// logger that keeps its lines so a test can check what recovery said.
import { pino } from 'pino';
import { PartitionLog } from '../../../host/log/partition-log.js';
import type { LogOptions } from '../../../host/log/api.js';
import { encodeBatch, decodeBatches, type EncodeOptions } from '../../../host/core/index.js';
import type { Logger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { tempDir } from '../../helpers/index.js';

export interface CapturedLogger {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  find(msgPart: string): Record<string, unknown> | undefined;
}

export function captureLogger(): CapturedLogger {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(s: string) {
        lines.push(JSON.parse(s));
        if (lines.length > 2000) lines.splice(0, 1000);
      },
    },
  );
  return { logger, lines, find: (part) => lines.find((l) => typeof l.msg === 'string' && l.msg.includes(part)) };
}

export interface Opened {
  dir: string;
  log: PartitionLog;
  cap: CapturedLogger;
  metrics: MetricsRegistry;
  reopen(options?: Partial<LogOptions>): Promise<PartitionLog>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function openLog(t: Teardown, options: Partial<LogOptions> = {}, dir?: string): Promise<Opened> {
  const d = dir ?? (await tempDir(t, 'tributary-log-'));
  const cap = captureLogger();
  const metrics = new MetricsRegistry();
  const log = await PartitionLog.open(d, options as LogOptions, { logger: cap.logger, metrics, topicPartition: 't-0' });
  const opened: Opened = {
    dir: d,
    log,
    cap,
    metrics,
    async reopen(more = {}) {
      opened.cap = captureLogger();
      opened.metrics = new MetricsRegistry();
      opened.log = await PartitionLog.open(d, { ...options, ...more } as LogOptions, { logger: opened.cap.logger, metrics: opened.metrics, topicPartition: 't-0' });
      return opened.log;
    },
  };
  t.teardown(() => opened.log.abandon());
  return opened;
}

/** A batch of `count` records: key `k<i % keys>` (or null), value of `valueBytes` bytes, timestamps from `timestampMs`. */
export function makeBatch(
  count: number,
  o: { valueBytes?: number; timestampMs?: number; keys?: number; keyPrefix?: string; fill?: number; nullValue?: boolean } & EncodeOptions = {},
): Uint8Array {
  const records = Array.from({ length: count }, (_, i) => ({
    key: o.keys === 0 ? null : Buffer.from(`${o.keyPrefix ?? 'k'}${i % (o.keys ?? 1_000_000)}`),
    value: o.nullValue ? null : Buffer.alloc(o.valueBytes ?? 50, (o.fill ?? i) & 0xff),
    timestampMs: (o.timestampMs ?? 1_700_000_000_000) + i,
  }));
  return encodeBatch(records, o);
}

/** Every record served from `from` to the log end, read in pieces of `maxBytes`. */
export async function readAll(log: PartitionLog, from = log.logStartOffset, maxBytes = 64 * 1024) {
  const out: Array<{ offset: number; key: string | null; value: Buffer | null; timestampMs: number }> = [];
  let offset = from;
  while (offset < log.logEndOffset) {
    const r = await log.read(offset, maxBytes);
    if (r.records.byteLength === 0) break;
    for (const b of decodeBatches(r.records)) {
      for (const rec of b.records) {
        if (rec.offset < from) continue;
        out.push({
          offset: rec.offset,
          key: rec.key ? Buffer.from(rec.key).toString() : null,
          value: rec.value ? Buffer.from(rec.value) : null,
          timestampMs: rec.timestampMs,
        });
      }
    }
    offset = r.nextOffset;
  }
  return out;
}

export const durable = { leaderEpoch: 0, durable: true };
