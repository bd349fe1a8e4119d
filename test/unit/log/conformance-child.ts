// Child process of the log conformance suite (not a test itself): opens a log through an
// implementation module (its `open(dir)`) and appends until killed with SIGKILL, as leader
// (eight concurrent appenders) or as follower (offsets and epochs chosen here, as a leader's
// fetch response would carry them, sometimes with a gap). Each run writes under a new leader
// epoch (latest + 1) and moves to the next epoch every 30 batches. For every acknowledged
// (fsynced) batch it prints one line to stdout (a pipe: written before any kill):
//   {"b":<baseOffset>,"l":<lastOffset>,"e":<leaderEpoch>,"h":"<sha1 of the stored batch>"}
//
// usage: node conformance-child.js <implementation module> <dir> <leader|follower>
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { PartitionLogApi } from '../../../host/log/api.js';
import { batchOf } from './conformance.js';

const [modulePath, dir, mode] = process.argv.slice(2);
const impl = (await import(pathToFileURL(modulePath).href)) as { open(dir: string): Promise<PartitionLogApi> };
const log = await impl.open(dir);
const entries = log.leaderEpochEntries();
let epoch = (entries.length ? entries[entries.length - 1].epoch : -1) + 1;
let batches = 0;
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const ack = (b: number, l: number, e: number, bytes: Uint8Array) => {
  out({ b, l, e, h: createHash('sha1').update(bytes).digest('hex') });
  if (++batches % 30 === 0) epoch++;
};
out({ ready: true, end: log.logEndOffset });

async function leader(id: number): Promise<void> {
  for (let n = 0; ; n++) {
    const batch = batchOf(1 + ((id + n) % 7), `l${id}-${n}`);
    const e = epoch;
    const info = await log.appendAsLeader(batch, { leaderEpoch: e, durable: true });
    ack(info.baseOffset, info.lastOffset, e, batch);
  }
}

async function follower(): Promise<void> {
  let next = log.logEndOffset;
  const inFlight = new Set<Promise<void>>();
  for (let n = 0; ; n++) {
    const count = 1 + (n % 5);
    const base = next + (n % 11 === 0 ? 3 : 0); // now and then a gap, as a compacted leader sends
    const e = epoch;
    const batch = batchOf(count, `f${n}`, { baseOffset: base, epoch: e });
    next = base + count;
    const p = log.appendAsFollower(batch, { durable: true }).then(() => {
      ack(base, base + count - 1, e, batch);
      inFlight.delete(p);
    });
    inFlight.add(p);
    if (inFlight.size >= 4) await Promise.race(inFlight);
  }
}

if (mode === 'leader') await Promise.all(Array.from({ length: 8 }, (_, i) => leader(i)));
else await follower();
