// Child process of the compaction crash test (not a test itself): opens a compacted partition
// log (flush=always, small segments) and appends records over a small key space from 8
// concurrent appenders while compaction runs every 20 ms, until it is killed. For every
// acknowledged append it prints (stdout is a pipe: synchronous on Linux, so a printed line was
// acknowledged before any kill):
//   {"r":[[<offset>,"<key>","<sha1 of value>"],...]}
//
// usage: node log-compact-child.js <dir> <seed>
import { createHash } from 'node:crypto';
import { PartitionLog } from '../../host/log/partition-log.js';
import { encodeBatch } from '../../host/core/index.js';
import { silentLogger } from '../../host/logging.js';

const [dir, seedArg] = process.argv.slice(2);
let seed = Number(seedArg) >>> 0 || 1;
const rand = (): number => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 4294967296;
};
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

const OPTIONS = { flush: 'always', segmentBytes: 24 * 1024, cleanupPolicy: 'compact', minCompactionLagMs: 0, deleteRetentionMs: 3_600_000 };
const log = await PartitionLog.open(dir, OPTIONS as never, { logger: silentLogger });
out({ ready: true });
setInterval(() => void log.compact(Date.now()).catch((err) => out({ error: `compaction: ${err}` })), 20);

async function appender(): Promise<void> {
  for (;;) {
    const count = 1 + Math.floor(rand() * 6);
    const records = Array.from({ length: count }, () => ({
      key: Buffer.from(`key-${Math.floor(rand() * 40)}`),
      value: Buffer.alloc(50 + Math.floor(rand() * 400), Math.floor(rand() * 256)),
      timestampMs: Date.now(),
    }));
    const info = await log.appendAsLeader(encodeBatch(records), { leaderEpoch: 0, durable: true });
    out({ r: records.map((r, i) => [info.baseOffset + i, r.key.toString(), sha1(r.value)]) });
  }
}

await Promise.all(Array.from({ length: 8 }, () => appender()));
