// The partition-log conformance suite (not a test file itself): every implementation of
// PartitionLogApi runs it, the way aedes-persistence's abstract suite runs against every MQTT
// persistence. It talks to the interface only; an implementation supplies how to open a log
// in a directory, how to lose it without a clean close, and a module a child process can load
// to write it until killed with SIGKILL (conformance-child.ts).
//
// What it pins down: leader and follower append (offsets, leader epochs, stored bytes),
// contiguity checks on the follower path, read with `upTo`, truncateTo, the leader-epoch
// cache and endOffsetForEpoch (KIP-101/279), clean reopen, and reopen after kill -9.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { PartitionLogApi } from '../../../host/log/api.js';
import { decodeBatches, encodeBatch, readBatchHeader } from '../../../host/core/index.js';
import { projectRoot, tempDir } from '../../helpers/index.js';

import type { Test } from 'tap';

type Tap = Test;

export interface LogImplementation {
  name: string;
  /** Opens (creating if needed) a log in `dir`. */
  open(dir: string): Promise<PartitionLogApi>;
  /** Drops the log without any of close()'s writes (what a crash leaves), releasing its files. */
  abandon(log: PartitionLogApi): Promise<void>;
  /** Absolute path of a module exporting `open(dir)` for the kill -9 child (conformance-child.ts). */
  childModule: string;
}

/** A batch of `count` records whose values name the batch (so reads can be checked). */
export function batchOf(count: number, tag: string, o: { baseOffset?: number; epoch?: number; timestampMs?: number } = {}): Uint8Array {
  const records = Array.from({ length: count }, (_, i) => ({
    key: Buffer.from(`${tag}-k${i}`),
    value: Buffer.from(`${tag}-v${i}`),
    timestampMs: (o.timestampMs ?? 1_700_000_000_000) + i,
  }));
  return encodeBatch(records, { baseOffset: o.baseOffset ?? 0, partitionLeaderEpoch: o.epoch ?? -1 });
}

/** Every record from `from` to `upTo` as [offset, value], reading in small pieces. */
async function readValues(log: PartitionLogApi, from: number, upTo = log.logEndOffset): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  let offset = from;
  for (;;) {
    const r = await log.read(offset, 200, upTo);
    if (r.records.byteLength === 0) break;
    for (const b of decodeBatches(r.records)) for (const rec of b.records) if (rec.offset >= from) out.push([rec.offset, Buffer.from(rec.value!).toString()]);
    offset = r.nextOffset;
  }
  return out;
}

const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

export function logConformance(tap: Tap, impl: LogImplementation): void {
  const fresh = async (t: Test) => {
    const dir = await tempDir(t, 'tributary-conformance-');
    const log = await impl.open(dir);
    let current = log;
    t.teardown(() => impl.abandon(current));
    return {
      dir,
      log,
      async reopen(clean: boolean) {
        if (clean) await current.close();
        else await impl.abandon(current);
        current = await impl.open(dir);
        return current;
      },
    };
  };
  const test = (name: string, fn: (t: Test) => Promise<void>) => tap.test(`${impl.name} conformance: ${name}`, fn as never);

  leaderTests(test, fresh);
  followerTests(test, fresh);
  readTests(test, fresh);
  truncateAndEpochTests(test, fresh);
  crashTests(test, impl);
}

type Fresh = (t: Test) => Promise<{ dir: string; log: PartitionLogApi; reopen(clean: boolean): Promise<PartitionLogApi> }>;
type TestFn = (name: string, fn: (t: Test) => Promise<void>) => void;

function leaderTests(test: TestFn, fresh: Fresh): void {
  test('appendAsLeader assigns dense offsets from the log end and stamps the leader epoch', async (t) => {
    const { log } = await fresh(t);
    const a = await log.appendAsLeader(batchOf(3, 'a', { baseOffset: 77, epoch: 9 }), { leaderEpoch: 2, durable: true });
    const b = await log.appendAsLeader(batchOf(2, 'b'), { leaderEpoch: 2, durable: true });
    t.match(a, { baseOffset: 0, lastOffset: 2, recordCount: 3, duplicate: false });
    t.match(b, { baseOffset: 3, lastOffset: 4, recordCount: 2 });
    t.equal(log.logEndOffset, 5);
    const r = await log.read(0, 1 << 20, log.logEndOffset);
    t.same(decodeBatches(r.records).map((x) => [x.header.baseOffset, x.header.partitionLeaderEpoch]), [[0, 2], [3, 2]], 'offsets and epoch rewritten');
    t.same(await readValues(log, 0), [[0, 'a-v0'], [1, 'a-v1'], [2, 'a-v2'], [3, 'b-v0'], [4, 'b-v1']]);
    t.same(log.leaderEpochEntries(), [{ epoch: 2, startOffset: 0 }], 'one entry per epoch');
  });

  test('a new leader epoch starts a new leader-epoch entry at the log end', async (t) => {
    const { log } = await fresh(t);
    await log.appendAsLeader(batchOf(2, 'a'), { leaderEpoch: 1, durable: true });
    await log.appendAsLeader(batchOf(2, 'b'), { leaderEpoch: 1, durable: true });
    await log.appendAsLeader(batchOf(2, 'c'), { leaderEpoch: 4, durable: true });
    t.same(log.leaderEpochEntries(), [{ epoch: 1, startOffset: 0 }, { epoch: 4, startOffset: 4 }]);
  });

  test('a refused leader append (corrupt batch) consumes no offset', async (t) => {
    const { log } = await fresh(t);
    const bad = batchOf(2, 'x');
    bad[bad.byteLength - 1] ^= 0xff;
    await t.rejects(log.appendAsLeader(bad, { leaderEpoch: 0, durable: true }), { code: 'CORRUPT_MESSAGE' });
    t.equal((await log.appendAsLeader(batchOf(1, 'ok'), { leaderEpoch: 0, durable: true })).baseOffset, 0);
  });
}

function followerTests(test: TestFn, fresh: Fresh): void {
  test('appendAsFollower keeps offsets, leader epochs and bytes as sent', async (t) => {
    const { log } = await fresh(t);
    const a = batchOf(3, 'a', { baseOffset: 0, epoch: 1 });
    const b = batchOf(2, 'b', { baseOffset: 3, epoch: 3 });
    const sent = Buffer.concat([a, b]);
    const info = await log.appendAsFollower(Buffer.from(sent), { durable: true });
    t.match(info, { baseOffset: 0, lastOffset: 4, recordCount: 5, duplicate: false });
    t.equal(log.logEndOffset, 5);
    const r = await log.read(0, 1 << 20, log.logEndOffset);
    t.equal(sha1(r.records), sha1(sent), 'stored bytes are the leader bytes, unchanged');
    t.same(log.leaderEpochEntries(), [{ epoch: 1, startOffset: 0 }, { epoch: 3, startOffset: 3 }], 'epochs from the batches');
  });

  test('appendAsFollower accepts a gap (a compacted leader) and refuses overlap and reordering', async (t) => {
    const { log } = await fresh(t);
    await log.appendAsFollower(batchOf(2, 'a', { baseOffset: 0, epoch: 0 }), { durable: true });
    await t.rejects(log.appendAsFollower(batchOf(2, 'x', { baseOffset: 1, epoch: 0 }), { durable: true }), { code: 'OFFSET_OUT_OF_RANGE' }, 'overlaps the log end');
    const reordered = Buffer.concat([batchOf(2, 'y', { baseOffset: 10, epoch: 0 }), batchOf(2, 'z', { baseOffset: 5, epoch: 0 })]);
    await t.rejects(log.appendAsFollower(reordered, { durable: true }), { code: 'OFFSET_OUT_OF_RANGE' }, 'second batch goes backwards');
    t.equal(log.logEndOffset, 2, 'refused appends wrote nothing');
    const info = await log.appendAsFollower(batchOf(2, 'g', { baseOffset: 7, epoch: 2 }), { durable: true });
    t.match(info, { baseOffset: 7, lastOffset: 8 });
    t.equal(log.logEndOffset, 9);
    t.same(await readValues(log, 0), [[0, 'a-v0'], [1, 'a-v1'], [7, 'g-v0'], [8, 'g-v1']]);
    t.same(await readValues(log, 3), [[7, 'g-v0'], [8, 'g-v1']], 'a read inside the gap starts at the next batch');
  });

  test('a follower stores a compacted leader log unchanged (offset gaps, rebuilt and empty batches)', async (t) => {
    const leader = (await fresh(t)).log;
    const follower = (await fresh(t)).log;
    leader.updateOptions({ cleanupPolicy: 'compact', minCompactionLagMs: 0, segmentBytes: 4096 });
    let sequence = 0; // one idempotent producer writes every third batch: compaction keeps its last batch even when emptied
    const keyed = (n: number, round: number, idempotent: boolean) => {
      const records = Array.from({ length: n }, (_, i) => ({ key: Buffer.from(`k${(round * n + i) % 11}`), value: Buffer.from(`r${round}-${i}`), timestampMs: 1_700_000_000_000 + round }));
      const b = encodeBatch(records, idempotent ? { producerId: 7, producerEpoch: 0, baseSequence: sequence } : {});
      if (idempotent) sequence += n;
      return b;
    };
    for (let round = 0; round < 40; round++) await leader.appendAsLeader(keyed(4, round, round % 3 === 0 && round <= 30), { leaderEpoch: 1 + (round >> 4), durable: true });
    await leader.compact(Date.now());
    const leaderBytes: Buffer[] = [];
    let offset = leader.logStartOffset;
    while (offset < leader.logEndOffset) {
      const r = await leader.read(offset, 1500, leader.logEndOffset);
      if (r.records.byteLength === 0) break;
      leaderBytes.push(Buffer.from(r.records));
      await follower.appendAsFollower(Buffer.from(r.records), { durable: true });
      offset = r.nextOffset;
    }
    const all = Buffer.concat(leaderBytes);
    const headers = decodeBatches(all).map((b) => b.header);
    t.ok(headers.some((h, i) => i > 0 && h.baseOffset > headers[i - 1].lastOffset + 1), 'compaction left gaps between batches');
    t.ok(headers.some((h) => h.recordCount === 0), 'an emptied batch kept for its producer');
    t.ok(headers.some((h) => h.recordCount > 0 && h.recordCount < h.lastOffsetDelta + 1), 'a rebuilt batch with gaps in its offset deltas');
    t.equal(follower.logEndOffset, leader.logEndOffset);
    const copy = await follower.read(0, 1 << 24, follower.logEndOffset);
    t.equal(sha1(copy.records), sha1(all), 'the follower log is the leader log, byte for byte');
    const epochsOfBatches: Array<{ epoch: number; startOffset: number }> = [];
    for (const h of headers) {
      if (!epochsOfBatches.length || h.partitionLeaderEpoch > epochsOfBatches[epochsOfBatches.length - 1].epoch) epochsOfBatches.push({ epoch: h.partitionLeaderEpoch, startOffset: h.baseOffset });
    }
    t.same(follower.leaderEpochEntries(), epochsOfBatches, 'the follower epochs come from the batches it holds');
  });

  test('a follower can take over as leader: appendAsLeader continues at the follower log end', async (t) => {
    const { log } = await fresh(t);
    await log.appendAsFollower(batchOf(4, 'f', { baseOffset: 0, epoch: 5 }), { durable: true });
    const info = await log.appendAsLeader(batchOf(1, 'l'), { leaderEpoch: 6, durable: true });
    t.equal(info.baseOffset, 4);
    t.same(log.leaderEpochEntries(), [{ epoch: 5, startOffset: 0 }, { epoch: 6, startOffset: 4 }]);
  });
}

function readTests(test: TestFn, fresh: Fresh): void {
  test('read(offset, maxBytes, upTo) serves whole batches below upTo only', async (t) => {
    const { log } = await fresh(t);
    for (let i = 0; i < 5; i++) await log.appendAsLeader(batchOf(4, `b${i}`), { leaderEpoch: 0, durable: true }); // batches at 0,4,8,12,16
    const below = await log.read(0, 1 << 20, 12);
    t.same(decodeBatches(below.records).map((b) => b.header.baseOffset), [0, 4, 8]);
    t.equal(below.nextOffset, 12);
    const midBatch = await log.read(0, 1 << 20, 10);
    t.same(decodeBatches(midBatch.records).map((b) => b.header.baseOffset), [0, 4], 'a batch reaching upTo is not served');
    const atBound = await log.read(8, 1 << 20, 10);
    t.equal(atBound.records.byteLength, 0, 'the batch holding the offset reaches upTo: nothing');
    t.equal(atBound.nextOffset, 8);
    const beyond = await log.read(14, 1 << 20, 1_000_000);
    t.same(decodeBatches(beyond.records).map((b) => b.header.baseOffset), [12, 16], 'upTo past the log end: the log end bounds');
    const tiny = await log.read(4, 1, 12);
    t.equal(readBatchHeader(tiny.records, 0).baseOffset, 4, 'KIP-74: the first batch whole, even over maxBytes');
    t.equal(tiny.nextOffset, 8);
    t.equal((await log.read(20, 100, 20)).records.byteLength, 0, 'at the log end: empty');
  });

  test('read below the log start is OFFSET_OUT_OF_RANGE', async (t) => {
    const { log } = await fresh(t);
    await log.appendAsLeader(batchOf(2, 'a'), { leaderEpoch: 0, durable: true });
    await t.rejects(log.read(-1, 100, log.logEndOffset), { code: 'OFFSET_OUT_OF_RANGE' });
  });

  test('onEndOffsetAdvance reports the new log end after appends', async (t) => {
    const { log } = await fresh(t);
    const seen: number[] = [];
    const off = log.onEndOffsetAdvance((end) => seen.push(end));
    await log.appendAsLeader(batchOf(2, 'a'), { leaderEpoch: 0, durable: true });
    await log.appendAsFollower(batchOf(1, 'b', { baseOffset: 2, epoch: 0 }), { durable: true });
    off();
    await log.appendAsLeader(batchOf(1, 'c'), { leaderEpoch: 0, durable: true });
    t.same(seen, [2, 3]);
  });
}

function truncateAndEpochTests(test: TestFn, fresh: Fresh): void {
  test('truncateTo drops the batch containing the offset and everything after; appends continue there', async (t) => {
    const { log } = await fresh(t);
    await log.appendAsLeader(batchOf(3, 'a'), { leaderEpoch: 1, durable: true }); // 0..2
    await log.appendAsLeader(batchOf(3, 'b'), { leaderEpoch: 2, durable: true }); // 3..5
    await log.appendAsLeader(batchOf(3, 'c'), { leaderEpoch: 3, durable: true }); // 6..8
    t.equal(await log.truncateTo(100), 9, 'past the end: nothing changes');
    t.equal(await log.truncateTo(4), 3);
    t.equal(log.logEndOffset, 3);
    t.same(log.leaderEpochEntries(), [{ epoch: 1, startOffset: 0 }], 'epochs starting at or after the new end go');
    t.same(await readValues(log, 0), [[0, 'a-v0'], [1, 'a-v1'], [2, 'a-v2']]);
    await log.appendAsFollower(batchOf(2, 'f', { baseOffset: 3, epoch: 4 }), { durable: true });
    t.same(log.leaderEpochEntries(), [{ epoch: 1, startOffset: 0 }, { epoch: 4, startOffset: 3 }]);
    t.equal(await log.truncateTo(0), 0);
    t.equal(log.logEndOffset, 0);
    t.same(log.leaderEpochEntries(), []);
    t.equal((await log.appendAsLeader(batchOf(1, 'n'), { leaderEpoch: 5, durable: true })).baseOffset, 0);
  });

  test("truncateTo full (Kafka's truncateFullyAndStartAt): the log restarts empty at the offset, past its end too", async (t) => {
    const { log } = await fresh(t);
    await log.appendAsLeader(batchOf(3, 'a'), { leaderEpoch: 1, durable: true }); // 0..2
    t.equal(await log.truncateTo(50, { full: true }), 50, 'past the end: a follower behind its leader\'s log start');
    t.equal(log.logStartOffset, 50);
    t.equal(log.logEndOffset, 50);
    t.same(log.leaderEpochEntries(), [], 'no epoch of the old log is kept');
    t.same(await readValues(log, 50), []);
    await log.appendAsFollower(batchOf(2, 'f', { baseOffset: 50, epoch: 4 }), { durable: true });
    t.same(log.leaderEpochEntries(), [{ epoch: 4, startOffset: 50 }], 'the leader\'s batches bring their epochs');
    t.same(await readValues(log, 50), [[50, 'f-v0'], [51, 'f-v1']]);
    t.equal(await log.truncateTo(51, { full: true }), 51, 'inside the log: everything goes as well');
    t.equal(log.logStartOffset, 51);
    t.same(await readValues(log, 51), []);
  });

  test('endOffsetForEpoch answers as KIP-101/279 (Kafka LeaderEpochFileCache.endOffsetFor)', async (t) => {
    const { log } = await fresh(t);
    t.same(log.endOffsetForEpoch(0), { epoch: -1, endOffset: -1 }, 'empty cache: undefined');
    await log.appendAsFollower(batchOf(10, 'e1', { baseOffset: 0, epoch: 1 }), { durable: true });
    await log.appendAsFollower(batchOf(10, 'e3', { baseOffset: 10, epoch: 3 }), { durable: true });
    await log.appendAsFollower(batchOf(10, 'e5', { baseOffset: 20, epoch: 5 }), { durable: true });
    t.same(log.endOffsetForEpoch(-1), { epoch: -1, endOffset: -1 }, 'undefined epoch');
    t.same(log.endOffsetForEpoch(0), { epoch: 0, endOffset: 0 }, 'older than every entry: the first entry start');
    t.same(log.endOffsetForEpoch(1), { epoch: 1, endOffset: 10 }, 'a known epoch ends where the next starts');
    t.same(log.endOffsetForEpoch(2), { epoch: 1, endOffset: 10 }, 'KIP-279: an unknown epoch answers the largest epoch below it');
    t.same(log.endOffsetForEpoch(3), { epoch: 3, endOffset: 20 });
    t.same(log.endOffsetForEpoch(4), { epoch: 3, endOffset: 20 });
    t.same(log.endOffsetForEpoch(5), { epoch: 5, endOffset: 30 }, 'the latest epoch ends at the log end');
    t.same(log.endOffsetForEpoch(6), { epoch: -1, endOffset: -1 }, 'newer than the latest: undefined');
    // A follower that diverged in epoch 3 truncates to the end the leader gives for its epoch.
    const { endOffset } = log.endOffsetForEpoch(3);
    t.equal(await log.truncateTo(endOffset), 20);
    t.same(log.endOffsetForEpoch(3), { epoch: 3, endOffset: 20 }, 'after truncation epoch 3 is the latest');
  });

  test('a clean reopen keeps offsets, epochs and bytes', async (t) => {
    const o = await fresh(t);
    await o.log.appendAsLeader(batchOf(2, 'a'), { leaderEpoch: 1, durable: true });
    await o.log.appendAsFollower(batchOf(2, 'b', { baseOffset: 5, epoch: 2 }), { durable: true });
    const before = await readValues(o.log, 0);
    const log = await o.reopen(true);
    t.equal(log.logEndOffset, 7);
    t.same(await readValues(log, 0), before);
    t.same(log.leaderEpochEntries(), [{ epoch: 1, startOffset: 0 }, { epoch: 2, startOffset: 5 }]);
    t.same(log.endOffsetForEpoch(1), { epoch: 1, endOffset: 5 });
  });
}

interface ChildAck {
  b: number;
  l: number;
  e: number;
  h: string;
}

/** Runs the writer child until `killAfterAcks` acknowledgements, then SIGKILL. */
function runChild(impl: LogImplementation, dir: string, mode: 'leader' | 'follower', killAfterAcks: number): Promise<ChildAck[]> {
  const child = join(projectRoot, 'dist/test/unit/log/conformance-child.js');
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, impl.childModule, dir, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acks: ChildAck[] = [];
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    createInterface({ input: p.stdout }).on('line', (line) => {
      const o = JSON.parse(line);
      if (o.b === undefined) return;
      acks.push(o);
      if (acks.length === killAfterAcks) p.kill('SIGKILL');
    });
    const guard = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (signal !== 'SIGKILL') reject(new Error(`child exited on its own (${code}): ${stderr}`));
      else resolve(acks);
    });
  });
}

function crashTests(test: TestFn, impl: LogImplementation): void {
  for (const mode of ['leader', 'follower'] as const) {
    test(`reopen after kill -9 of a process appending as ${mode}: every acknowledged batch is there, byte-exact, with its epoch`, async (t) => {
      const dir = await tempDir(t, 'tributary-conformance-crash-');
      const acked: ChildAck[] = [];
      for (let round = 0; round < 3; round++) acked.push(...(await runChild(impl, dir, mode, 40 + round * 25)));
      const log = await impl.open(dir);
      t.teardown(() => impl.abandon(log));
      const maxAcked = Math.max(...acked.map((a) => a.l));
      t.ok(log.logEndOffset > maxAcked, `log end ${log.logEndOffset} covers acknowledged offset ${maxAcked}`);
      let bad = 0;
      for (const a of acked) {
        const r = await log.read(a.b, 1, log.logEndOffset);
        const h = readBatchHeader(r.records, 0);
        if (h.baseOffset !== a.b || h.lastOffset !== a.l || h.partitionLeaderEpoch !== a.e || sha1(r.records.subarray(0, h.totalBytes)) !== a.h) bad++;
      }
      t.equal(bad, 0, `${acked.length} acknowledged batches over 3 kills present at their offsets, byte-exact`);
      // The epoch cache agrees with the batches: each entry starts at a batch of that epoch, epochs increase.
      const entries = log.leaderEpochEntries();
      t.ok(entries.length >= 3, `${entries.length} epochs (each child run adds at least one)`);
      for (let i = 0; i < entries.length; i++) {
        if (i > 0) t.ok(entries[i].epoch > entries[i - 1].epoch && entries[i].startOffset > entries[i - 1].startOffset, 'epochs and starts increase');
        const r = await log.read(entries[i].startOffset, 1, log.logEndOffset);
        t.equal(readBatchHeader(r.records, 0).partitionLeaderEpoch, entries[i].epoch, `entry ${i} starts at a batch of its epoch`);
      }
      t.same(log.endOffsetForEpoch(entries[entries.length - 1].epoch).endOffset, log.logEndOffset, 'the latest epoch ends at the log end');
      const next = await log.appendAsLeader(batchOf(1, 'after'), { leaderEpoch: entries[entries.length - 1].epoch + 1, durable: true });
      t.equal(next.baseOffset, log.logEndOffset - 1, 'appends continue at the recovered end');
    });
  }
}
