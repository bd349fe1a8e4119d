// Shared setup for the broker tests: a real Broker on a temp data dir, closed at teardown,
// and helpers to build batches of an exact size and decode what a read returns.
import { Broker, type BrokerOptions } from '../../../host/broker/broker.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { encodeBatch, decodeBatches } from '../../../host/core/index.js';
import { openTestStack } from '../../helpers/stack.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface Opened {
  broker: Broker;
  metrics: MetricsRegistry;
  dataDir: string;
}

/** Opens a broker (in a fresh temp dir unless one is given); closes it when the test ends. */
export async function openBroker(t: Teardown, options: Partial<BrokerOptions> = {}): Promise<Opened> {
  const { broker, metrics, dataDir } = await openTestStack(t, { dataDir: options.dataDir, dirPrefix: 'tributary-broker-', broker: { retentionCheckIntervalMs: 3_600_000, ...options } });
  return { broker, metrics, dataDir };
}

export const bytes = (s: string) => new TextEncoder().encode(s);
export const text = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

/** One uncompressed batch of one record whose total size is exactly `size` bytes. */
export function batchOfSize(size: number): Uint8Array {
  let valueBytes = Math.max(0, size - 80);
  for (let i = 0; i < 8; i++) {
    const b = encodeBatch([{ key: null, value: new Uint8Array(valueBytes).fill(0x61) }]);
    if (b.byteLength === size) return b;
    valueBytes += size - b.byteLength;
    if (valueBytes < 0) break;
  }
  throw new Error(`cannot build a batch of exactly ${size} bytes`);
}

/** Every record in a read result: offset, key, value as text. */
export function decodeAll(records: Uint8Array): Array<{ offset: number; key: string | null; value: string | null; timestampMs: number }> {
  return decodeBatches(records).flatMap((b) => b.records.map((r) => ({ offset: r.offset, key: text(r.key), value: text(r.value), timestampMs: r.timestampMs })));
}

/** Reads a partition from its start to its end as a consumer would (a read may stop at a segment end). */
export async function readAll(broker: Broker, tp: { topic: string; partition: number }): Promise<ReturnType<typeof decodeAll>> {
  const out: ReturnType<typeof decodeAll> = [];
  for (let at = broker.offsets(tp).logStartOffset; at < broker.offsets(tp).logEndOffset; ) {
    const records = decodeAll((await broker.read(tp, at, { maxBytes: 1 << 20 })).records);
    if (records.length === 0) break;
    out.push(...records.filter((r) => r.offset >= at));
    at = records[records.length - 1].offset + 1;
  }
  return out;
}
