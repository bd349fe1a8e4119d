// Child process for raft-storage.test.ts: appends entries (with a commit in the hard state) to
// the Raft storage in argv[2], one save per entry, and prints each entry's index once save() has
// resolved (after fdatasync) — the parent kills it with SIGKILL mid-stream and checks that every
// printed index survived. Bounded: stops by itself after ENTRIES_MAX saves.
import { FileRaftStorage } from '../../../host/cluster/raft-storage.js';

const ENTRIES_MAX = 100_000;
const dir = process.argv[2]!;
const { storage, initial } = await FileRaftStorage.open(dir, { recordBytesMax: 1 << 20, rewriteBytes: 1 << 30 });
let next = (initial.snapshot?.index ?? 0) + initial.entries.length + 1;
const payload = new Uint8Array(300).fill(0x61);
for (let i = 0; i < ENTRIES_MAX; i++, next++) {
  await storage.save([
    { kind: 'entries', entries: [{ index: next, term: 1, data: payload }] },
    { kind: 'hardState', hardState: { term: 1, vote: 1, commit: next } },
  ]);
  process.stdout.write(`${next}\n`);
}
await storage.close();
