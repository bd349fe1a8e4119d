// The on-disk PartitionLog as seen by the conformance suite (also loaded by the kill -9 child,
// so parent and child open the log with the same options). Small segments so the suite's
// appends roll segments and cross index entries.
import type { LogOptions, PartitionLogApi } from '../../../host/log/api.js';
import { PartitionLog } from '../../../host/log/partition-log.js';
import { silentLogger } from '../../../host/logging.js';

export const conformanceOptions: Partial<LogOptions> = { flush: 'always', segmentBytes: 16 * 1024, indexIntervalBytes: 512 };

export function open(dir: string): Promise<PartitionLogApi> {
  return PartitionLog.open(dir, conformanceOptions as LogOptions, { logger: silentLogger, topicPartition: 'conformance-0' });
}

export async function abandon(log: PartitionLogApi): Promise<void> {
  await (log as PartitionLog).abandon();
}
