// Child process of the log crash tests (not a test itself): opens a partition log with
// flush=always and appends random batches from many concurrent appenders until it is killed.
// For every acknowledged append it prints one line to stdout (a pipe: synchronous on Linux,
// so a printed line was acknowledged before any kill):
//   {"b":<baseOffset>,"l":<lastOffset>,"h":"<sha1 of the stored batch bytes>"}
// Some appenders are idempotent producers; now and then one retries an acknowledged batch and
// checks that the log answers with the original offsets (prints {"error": ...} otherwise).
// Size retention (2 MiB) runs every 25 ms, so kills also land in the middle of retention.
//
// usage: node log-writer-child.js <dir> <seed> <trial>
import { createHash } from 'node:crypto';
import { PartitionLog } from '../../host/log/partition-log.js';
import { encodeBatch } from '../../host/core/index.js';
import { silentLogger } from '../../host/logging.js';

const [dir, seedArg, trialArg] = process.argv.slice(2);
let seed = Number(seedArg) >>> 0 || 1;
const trial = Number(trialArg) || 0;
const rand = (): number => {
  // xorshift32: reproducible from the seed printed by the test
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 4294967296;
};
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

// Retention by size runs all the time too, so kills also land between its checkpoint and its unlinks.
const CHILD_LOG_OPTIONS = { flush: 'always', segmentBytes: 96 * 1024, indexIntervalBytes: 1024, retentionBytes: 2 * 1024 * 1024, retentionMs: -1 };
const log = await PartitionLog.open(dir, CHILD_LOG_OPTIONS as never, { logger: silentLogger });
out({ ready: true, end: log.logEndOffset });
const retention = setInterval(() => void log.applyRetention(Date.now()).catch((err) => out({ error: `retention: ${err}` })), 25);
void retention;

async function appender(id: number): Promise<void> {
  const idempotent = id % 2 === 0;
  const producerId = trial * 1000 + id;
  let sequence = 0;
  for (;;) {
    const count = 1 + Math.floor(rand() * 12);
    const records = Array.from({ length: count }, (_, i) => ({
      key: Buffer.from(`a${id}-${i}`),
      value: Buffer.alloc(Math.floor(rand() * 1500), Math.floor(rand() * 256)),
      timestampMs: Date.now(),
    }));
    const batch = encodeBatch(records, idempotent ? { producerId, producerEpoch: 0, baseSequence: sequence } : {});
    const pristine = Buffer.from(batch);
    const info = await log.appendAsLeader(batch, { leaderEpoch: trial, durable: true });
    out({ b: info.baseOffset, l: info.lastOffset, h: createHash('sha1').update(batch).digest('hex') });
    if (idempotent) {
      sequence += count;
      if (rand() < 0.1) {
        const again = await log.appendAsLeader(pristine, { leaderEpoch: trial, durable: true });
        if (!again.duplicate || again.baseOffset !== info.baseOffset) out({ error: `retry answered ${JSON.stringify(again)} for ${info.baseOffset}` });
      }
    }
  }
}

await Promise.all(Array.from({ length: 16 }, (_, i) => appender(i)));
