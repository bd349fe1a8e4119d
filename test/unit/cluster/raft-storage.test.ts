// Purpose: the Raft storage file (host/cluster/raft-storage.ts) gives back exactly what was
// saved; a file cut at ANY byte offset reopens to a prefix of the saved Readies (never a commit
// naming missing entries, never a half record); a child process killed with SIGKILL while saving
// loses nothing it reported as saved; compaction rewrites keep the state; a bad header is refused;
// and RaftNodes driven through it (await save, then advance) restart from their files alone.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BrokerError } from '../../../host/errors/broker-error.js';
import { RaftNode, type RaftInitialState } from '../../../host/cluster/raft.js';
import { decodeMessage, encodeMessage } from '../../../host/cluster/raft-codec.js';
import { ManualTimers, MemoryHub, type Transport } from '../../../host/cluster/transport.js';
import {
  DurableState,
  FileRaftStorage,
  RAFT_LOG_FILE,
  STORAGE_HEADER_BYTES,
  encodeRecord,
  replayImage,
  type StorageRecord,
} from '../../../host/cluster/raft-storage.js';
import type { Entry } from '../../../host/cluster/raft-types.js';
import { tempDir } from '../../helpers/index.js';
import { prng } from '../../helpers/codec-inputs.js';

const OPTS = { recordBytesMax: 1 << 20, rewriteBytes: 1 << 20 };
const enc = new TextEncoder();
const entry = (index: number, term: number, text = `e${index}`): Entry => ({ index, term, data: enc.encode(text) });

/** A history of saves shaped like real Readies: entries, term changes, a conflict truncation, a snapshot. */
function history(): StorageRecord[][] {
  return [
    [{ kind: 'hardState', hardState: { term: 1, vote: 1, commit: 0 } }],
    [{ kind: 'entries', entries: [entry(1, 1), entry(2, 1), entry(3, 1)] }, { kind: 'hardState', hardState: { term: 1, vote: 1, commit: 2 } }],
    [{ kind: 'hardState', hardState: { term: 2, vote: 3, commit: 2 } }],
    // a new leader's entries overwrite index 3
    [{ kind: 'entries', entries: [entry(3, 2, 'x3'), entry(4, 2)] }, { kind: 'hardState', hardState: { term: 2, vote: 3, commit: 4 } }],
    [{ kind: 'compact', snapshot: { index: 2, term: 1, voters: [1, 2, 3], data: enc.encode('sm@2') } }],
    [{ kind: 'snapshot', snapshot: { index: 6, term: 2, voters: [1, 2, 3], data: enc.encode('sm@6') } }],
    [{ kind: 'entries', entries: [entry(7, 3)] }, { kind: 'hardState', hardState: { term: 3, vote: 0, commit: 7 } }],
  ];
}

const stateAfter = (saves: StorageRecord[][]): DurableState => {
  const s = new DurableState();
  for (const save of saves) for (const r of save) s.apply(r);
  return s;
};

t.test('raft storage: what was saved reopens whole', async (t) => {
  const dir = await tempDir(t, 'raft-storage-');
  const { storage } = await FileRaftStorage.open(dir, OPTS);
  for (const save of history()) await storage.save(save);
  await storage.close();
  const { initial, truncatedBytes } = await FileRaftStorage.open(dir, OPTS).then(async (o) => (await o.storage.close(), o));
  t.equal(truncatedBytes, 0);
  t.same(initial, stateAfter(history()).initial());
  t.same(initial.snapshot?.index, 6);
  t.same(initial.entries.map((e) => e.index), [7]);
  t.same(initial.hardState, { term: 3, vote: 0, commit: 7 });
});

t.test('raft storage: a file cut at every byte offset reopens to a prefix of the saves', async (t) => {
  const saves = history();
  const boundaries: number[] = [STORAGE_HEADER_BYTES];
  const parts: Uint8Array[] = [];
  for (const save of saves) {
    for (const r of save) parts.push(encodeRecord(r));
    boundaries.push(boundaries[boundaries.length - 1]! + save.reduce((n, r) => n + encodeRecord(r).length, 0));
  }
  const dir = await tempDir(t, 'raft-storage-');
  const { storage } = await FileRaftStorage.open(dir, OPTS);
  for (const save of saves) await storage.save(save);
  await storage.close();
  const image = new Uint8Array(await readFile(join(dir, RAFT_LOG_FILE)));
  t.equal(image.length, boundaries[boundaries.length - 1]);
  let checked = 0;
  for (let cut = 0; cut <= image.length; cut++) {
    const { state, validBytes } = replayImage(image.subarray(0, cut), OPTS.recordBytesMax);
    // Records of one save may survive partially (the crash policy orders them so that is safe);
    // whole records only, and the state is that of the records before the cut.
    const records = saves.flat();
    let pos = STORAGE_HEADER_BYTES;
    const expected = new DurableState();
    for (const r of records) {
      const len = encodeRecord(r).length;
      if (pos + len > cut) break;
      expected.apply(r);
      pos += len;
    }
    if (cut < STORAGE_HEADER_BYTES) {
      if (validBytes !== 0) t.fail(`cut ${cut}: a torn header must read as an empty file`);
    } else if (validBytes !== pos) t.fail(`cut ${cut}: valid bytes ${validBytes}, expected ${pos}`);
    const got = state.initial();
    if (JSON.stringify(got) !== JSON.stringify(expected.initial())) t.fail(`cut ${cut}: state differs from the records before it`);
    if (got.hardState.commit > (got.snapshot?.index ?? 0) + got.entries.length) t.fail(`cut ${cut}: commit ${got.hardState.commit} names missing entries`);
    checked++;
  }
  t.equal(checked, image.length + 1, `every offset 0..${image.length} checked`);
  // And through the file API: open truncates the torn tail on disk, once.
  const cut = boundaries[3]! + 5;
  await truncate(join(dir, RAFT_LOG_FILE), cut);
  const reopened = await FileRaftStorage.open(dir, OPTS);
  t.equal(reopened.truncatedBytes, 5, 'the 5 bytes of a torn record are cut off');
  t.same(reopened.initial, stateAfter(saves.slice(0, 3)).initial());
  await reopened.storage.save([{ kind: 'hardState', hardState: { term: 9, vote: 2, commit: 2 } }]);
  await reopened.storage.close();
  const again = await FileRaftStorage.open(dir, OPTS);
  t.equal(again.truncatedBytes, 0, 'a write after the truncation lands on the valid end');
  t.same(again.initial.hardState, { term: 9, vote: 2, commit: 2 });
  await again.storage.close();
});

t.test('raft storage: a flipped bit ends the log at that record', async (t) => {
  const dir = await tempDir(t, 'raft-storage-');
  const { storage } = await FileRaftStorage.open(dir, OPTS);
  for (const save of history()) await storage.save(save);
  await storage.close();
  const path = join(dir, RAFT_LOG_FILE);
  const image = await readFile(path);
  const firstRecord = encodeRecord(history()[0]![0]!).length;
  image[STORAGE_HEADER_BYTES + firstRecord + 12] ^= 0x01; // inside the second record's body
  await writeFile(path, image);
  const { initial, truncatedBytes } = await FileRaftStorage.open(dir, OPTS);
  t.same(initial, stateAfter([history()[0]!]).initial(), 'only the record before the damage survives');
  t.equal(truncatedBytes, image.length - STORAGE_HEADER_BYTES - firstRecord);
});

t.test('raft storage: a bad header is refused, not truncated', async (t) => {
  const dir = await tempDir(t, 'raft-storage-');
  await writeFile(join(dir, RAFT_LOG_FILE), Buffer.from('NOTRAFT!and more bytes'));
  const err = await FileRaftStorage.open(dir, OPTS).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof BrokerError && err.code === 'KAFKA_STORAGE_ERROR', `refused with KAFKA_STORAGE_ERROR (${(err as Error)?.message})`);
  t.equal((await readFile(join(dir, RAFT_LOG_FILE))).length, 22, 'the file is left as found');
});

t.test('raft storage: compaction past rewriteBytes rewrites the file to the live state', async (t) => {
  const dir = await tempDir(t, 'raft-storage-');
  const opts = { recordBytesMax: 1 << 20, rewriteBytes: 2000 };
  const { storage } = await FileRaftStorage.open(dir, opts);
  for (let i = 1; i <= 100; i++) await storage.save([{ kind: 'entries', entries: [entry(i, 1, 'x'.repeat(40))] }, { kind: 'hardState', hardState: { term: 1, vote: 1, commit: i } }]);
  const before = storage.bytes;
  await storage.compact({ index: 95, term: 1, voters: [1], data: enc.encode('sm') });
  t.ok(storage.bytes < before / 5, `rewritten: ${before} → ${storage.bytes} bytes`);
  await storage.save([{ kind: 'entries', entries: [entry(101, 2)] }]);
  await storage.close();
  const { initial } = await FileRaftStorage.open(dir, opts);
  t.equal(initial.snapshot?.index, 95);
  t.same(initial.entries.map((e) => e.index), [96, 97, 98, 99, 100, 101]);
  t.same(initial.hardState, { term: 1, vote: 1, commit: 100 });
});

t.test('raft storage: SIGKILL during saves loses nothing that was reported saved', async (t) => {
  const dir = await tempDir(t, 'raft-storage-');
  const writer = fileURLToPath(new URL('./raft-storage-writer.js', import.meta.url));
  for (let trial = 0; trial < 5; trial++) {
    const child = spawn(process.execPath, [writer, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let acked = 0;
    const lines = createInterface({ input: child.stdout! });
    const killAt = 20 + trial * 37;
    await new Promise<void>((resolve) => {
      lines.on('line', (line) => {
        acked = Number(line); // the writer prints an index after save() resolved (after fdatasync)
        if (acked >= killAt && child.exitCode === null) child.kill('SIGKILL');
      });
      child.on('exit', () => resolve());
    });
    const opened = await FileRaftStorage.open(dir, OPTS);
    const last = opened.initial.entries.at(-1)?.index ?? 0;
    t.ok(last >= acked, `trial ${trial}: saved up to ${acked}, reopened up to ${last} (torn ${opened.truncatedBytes} bytes)`);
    t.ok(opened.initial.hardState.commit <= last, 'commit never names a missing entry');
    const indexes = opened.initial.entries.map((e) => e.index);
    t.ok(indexes.every((x, i) => x === (indexes[0] ?? 0) + i), 'entries contiguous');
    await opened.storage.close();
  }
});

t.test('raft storage: three Raft nodes on real files elect, commit, restart one from its file alone, commit again', async (t) => {
  const timers = new ManualTimers();
  const rnd = prng(11);
  const hub = new MemoryHub({ random: rnd, timers, faults: { delayMs: 1 } });
  const ids = [1, 2, 3];
  const dirs = new Map<number, string>();
  for (const id of ids) dirs.set(id, await tempDir(t, `raft-node${id}-`));
  const applied = new Map<number, string[]>(ids.map((id) => [id, []]));

  interface FileNode {
    raft: RaftNode;
    storage: FileRaftStorage;
    draining: Promise<void> | null;
  }
  const nodes = new Map<number, FileNode>();
  const eps = new Map<number, Transport>();
  // One drain at a time per node; a step() during the fsync is picked up by the running loop.
  const kick = (id: number): void => {
    const n = nodes.get(id);
    if (!n || n.draining || !n.raft.hasReady()) return;
    n.draining = (async () => {
      await null; // so `draining` is assigned before the loop can end and clear it
      while (n.raft.hasReady()) {
        const rd = n.raft.ready();
        await n.storage.saveReady(rd);
        if (rd.snapshot) applied.set(id, []);
        for (const e of rd.committedEntries) if (e.data.length) applied.get(id)!.push(new TextDecoder().decode(e.data));
        for (const m of n.raft.advance(rd)) eps.get(id)!.send(String(m.to), encodeMessage(m));
      }
      n.draining = null;
    })();
  };
  const start = async (id: number): Promise<RaftInitialState> => {
    const { storage, initial } = await FileRaftStorage.open(dirs.get(id)!, OPTS);
    // A restart re-applies committed entries from the snapshot (none here) onwards.
    applied.set(id, []);
    nodes.set(id, { raft: new RaftNode({ id, voters: ids, electionTicks: 10, heartbeatTicks: 2, random: rnd }, initial), storage, draining: null });
    const ep = hub.connect(String(id));
    ep.onMessage((_from, frame) => {
      const n = nodes.get(id);
      if (!n) return;
      n.raft.step(decodeMessage(frame, 1 << 20));
      kick(id);
    });
    eps.set(id, ep);
    return initial;
  };
  const settle = async () => {
    for (let i = 0; i < 50; i++) {
      timers.advance(5);
      const busy = [...nodes.values()].map((n) => n.draining).filter(Boolean);
      if (busy.length === 0 && timers.pending === 0) return;
      await Promise.all(busy);
    }
  };
  const runTicks = async (count: number) => {
    for (let i = 0; i < count; i++) {
      for (const [id, n] of nodes) {
        n.raft.tick();
        kick(id);
      }
      await settle();
    }
  };
  const leader = () => [...nodes.values()].find((n) => n.raft.role === 'leader')?.raft;

  for (const id of ids) await start(id);
  await runTicks(60);
  t.ok(leader(), 'a leader on real files');
  leader()!.propose(enc.encode('one'));
  kick(leader()!.id);
  await runTicks(10);
  t.same(ids.map((id) => applied.get(id)), [['one'], ['one'], ['one']]);

  // Node 3 stops (its object and memory gone); it comes back from its file alone.
  const victim = ids.find((id) => id !== leader()!.id)!;
  const before = nodes.get(victim)!.raft.hardState();
  await nodes.get(victim)!.draining;
  await nodes.get(victim)!.storage.close();
  nodes.delete(victim);
  eps.get(victim)!.close();
  const initial = await start(victim);
  t.same(initial.hardState, before, 'term, vote and commit come back from the file');
  t.same(initial.entries.filter((e) => e.data.length).map((e) => new TextDecoder().decode(e.data)), ['one'], 'the committed entry is on its disk');

  leader()!.propose(enc.encode('two'));
  kick(leader()!.id);
  await runTicks(20);
  t.same(ids.map((id) => applied.get(id)), [['one', 'two'], ['one', 'two'], ['one', 'two']], 'the restarted node re-applied and follows');
  for (const n of nodes.values()) {
    await n.draining;
    await n.storage.close();
  }
});

t.test('raft storage: recordBytesMax at its boundary', (t) => {
  const rec: StorageRecord = { kind: 'entries', entries: [entry(1, 1, 'x'.repeat(100))] };
  const body = encodeRecord(rec).length - 8; // type + body, what the length field counts
  const image = new Uint8Array(STORAGE_HEADER_BYTES + body + 8);
  image.set([0x52, 0x41, 0x46, 0x54, 1], 0);
  image.set(encodeRecord(rec), STORAGE_HEADER_BYTES);
  t.equal(replayImage(image, body).state.entries.length, 1, `a record of exactly recordBytesMax (${body}) loads`);
  const cut = replayImage(image, body - 1);
  t.equal(cut.state.entries.length, 0, 'one byte over reads as a torn tail');
  t.equal(cut.validBytes, STORAGE_HEADER_BYTES);
  t.end();
});
