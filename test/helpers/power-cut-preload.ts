// A storage shim for power-cut tests, loaded into a broker process with `node --import` (no
// LD_PRELOAD: Node's own fs calls are wrapped). It records, for every file under POWER_CUT_ROOT,
// what a power cut would leave of it: the length at the last successful fsync/fdatasync, the
// length it had when this process first opened it, renames and truncations. The test kills the
// process (kill -9) and replays the ledger with `cutToSynced` (power-cut.ts), which truncates each
// file to that length: the page cache a kill -9 leaves behind is what a power cut takes away.
//
// Ledger format (POWER_CUT_LEDGER, appended, one JSON object per line, written synchronously
// before the wrapped call reports success, so a line is there for every sync the process saw):
//   {"op":"base","path":P,"bytes":N}      first open of P by this process: N bytes were there
//                                          (0 when the open truncates or creates it)
//   {"op":"sync","path":P,"bytes":N}      an fsync/fdatasync of P returned: N bytes are durable
//   {"op":"truncate","path":P,"bytes":N}  P was cut to N (durable or not: the shorter counts)
//   {"op":"rename","from":A,"to":B}       A's durable state is B's now (the code fsyncs the dir)
//   {"op":"unlink","path":P}              P is gone
// Crash policy: the ledger is the test's own record, written with the process; a torn last line
// is ignored by the reader. What it does not model (a conservative-enough simplification for
// append-only logs): bytes inside the synced length that a later write overwrote without a sync,
// directory entries created without a directory fsync, files written without any open we wrap
// (fs.writeFile on a path): those keep what the kill -9 left.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { resolve, sep } from 'node:path';

const ledgerPath = process.env.POWER_CUT_LEDGER;
const root = process.env.POWER_CUT_ROOT ? resolve(process.env.POWER_CUT_ROOT) + sep : undefined;

// Originals first: the shim's own I/O must not go through its wrappers.
const original = {
  open: fs.open,
  openSync: fs.openSync,
  close: fs.close,
  closeSync: fs.closeSync,
  fsync: fs.fsync,
  fdatasync: fs.fdatasync,
  fsyncSync: fs.fsyncSync,
  fdatasyncSync: fs.fdatasyncSync,
  ftruncate: fs.ftruncate,
  rename: fs.rename,
  renameSync: fs.renameSync,
  unlink: fs.unlink,
  unlinkSync: fs.unlinkSync,
  promisesOpen: fs.promises.open,
  promisesRename: fs.promises.rename,
  promisesUnlink: fs.promises.unlink,
};

type Cb = (err: NodeJS.ErrnoException | null, ...rest: unknown[]) => void;

if (ledgerPath && root) {
  const out = original.openSync(ledgerPath, 'a');
  const write = (entry: Record<string, unknown>) => fs.writeSync(out, JSON.stringify(entry) + '\n');
  const under = (p: unknown) => (typeof p === 'string' || p instanceof URL || Buffer.isBuffer(p) ? resolve(String(p instanceof URL ? p.pathname : p)) : '');
  const watched = (abs: string) => abs.startsWith(root);
  const pathOfFd = new Map<number, string>();
  const seen = new Set<string>();
  const truncates = (flags: unknown) => (typeof flags === 'string' ? flags.startsWith('w') : typeof flags === 'number' && (flags & fs.constants.O_TRUNC) !== 0);

  /** Before an open: the bytes there now (the base a power cut keeps), written once per path. */
  const beforeOpen = (abs: string, flags: unknown) => {
    if (!watched(abs) || seen.has(abs)) return;
    let bytes = 0;
    try {
      const st = fs.statSync(abs);
      if (!st.isFile()) return;
      bytes = truncates(flags) ? 0 : st.size;
    } catch {
      bytes = 0; // created by this open
    }
    seen.add(abs);
    write({ op: 'base', path: abs, bytes });
  };
  const synced = (fd: number) => {
    const abs = pathOfFd.get(fd);
    if (!abs) return;
    const st = fs.fstatSync(fd);
    if (st.isFile()) write({ op: 'sync', path: abs, bytes: st.size });
  };

  const w = fs as unknown as Record<string, unknown>;
  w.open = function (path: fs.PathLike, ...args: unknown[]) {
    const abs = under(path);
    const cb = args.pop() as Cb;
    beforeOpen(abs, args[0]);
    return (original.open as unknown as (...a: unknown[]) => void)(path, ...args, (err: NodeJS.ErrnoException | null, fd: number) => {
      if (!err && watched(abs)) pathOfFd.set(fd, abs);
      cb(err, fd);
    });
  };
  w.openSync = function (path: fs.PathLike, ...args: unknown[]) {
    const abs = under(path);
    beforeOpen(abs, args[0]);
    const fd = (original.openSync as unknown as (...a: unknown[]) => number)(path, ...args);
    if (watched(abs)) pathOfFd.set(fd, abs);
    return fd;
  };
  w.close = function (fd: number, cb: Cb) {
    pathOfFd.delete(fd);
    return original.close(fd, cb);
  };
  w.closeSync = function (fd: number) {
    pathOfFd.delete(fd);
    return original.closeSync(fd);
  };
  for (const name of ['fsync', 'fdatasync'] as const) {
    w[name] = function (fd: number, cb: Cb) {
      return original[name](fd, (err) => {
        if (!err) synced(fd);
        cb(err);
      });
    };
    w[`${name}Sync`] = function (fd: number) {
      original[`${name}Sync`](fd);
      synced(fd);
    };
  }
  w.ftruncate = function (fd: number, ...args: unknown[]) {
    const cb = args.pop() as Cb;
    const len = typeof args[0] === 'number' ? args[0] : 0;
    return original.ftruncate(fd, len, (err) => {
      const abs = pathOfFd.get(fd);
      if (!err && abs) write({ op: 'truncate', path: abs, bytes: len });
      cb(err);
    });
  };
  const renamed = (from: fs.PathLike, to: fs.PathLike) => {
    const a = under(from);
    const b = under(to);
    if (watched(a) || watched(b)) write({ op: 'rename', from: a, to: b });
    seen.add(b);
  };
  w.rename = function (from: fs.PathLike, to: fs.PathLike, cb: Cb) {
    return original.rename(from, to, (err) => {
      if (!err) renamed(from, to);
      cb(err);
    });
  };
  w.renameSync = function (from: fs.PathLike, to: fs.PathLike) {
    original.renameSync(from, to);
    renamed(from, to);
  };
  const unlinked = (path: fs.PathLike) => {
    const abs = under(path);
    if (watched(abs)) write({ op: 'unlink', path: abs });
    seen.delete(abs);
  };
  w.unlink = function (path: fs.PathLike, cb: Cb) {
    return original.unlink(path, (err) => {
      if (!err) unlinked(path);
      cb(err);
    });
  };
  w.unlinkSync = function (path: fs.PathLike) {
    original.unlinkSync(path);
    unlinked(path);
  };

  // fs/promises: FileHandle's sync/datasync/truncate, and open/rename/unlink by path.
  const probe = await original.promisesOpen(process.execPath, 'r');
  const handleProto = Object.getPrototypeOf(probe) as Record<string, (...a: unknown[]) => Promise<unknown>>;
  await probe.close();
  const handlePath = new WeakMap<object, string>();
  const p = fs.promises as unknown as Record<string, unknown>;
  p.open = async function (path: fs.PathLike, ...args: unknown[]) {
    const abs = under(path);
    beforeOpen(abs, args[0]);
    const h = await (original.promisesOpen as unknown as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(path, ...args);
    if (watched(abs)) handlePath.set(h, abs);
    return h;
  };
  for (const name of ['sync', 'datasync'] as const) {
    const base = handleProto[name]!;
    handleProto[name] = async function (this: fs.promises.FileHandle) {
      await base.call(this);
      const abs = handlePath.get(this);
      if (abs) {
        const st = await this.stat();
        if (st.isFile()) write({ op: 'sync', path: abs, bytes: st.size });
      }
    };
  }
  const baseTruncate = handleProto.truncate!;
  handleProto.truncate = async function (this: fs.promises.FileHandle, len = 0) {
    await baseTruncate.call(this, len);
    const abs = handlePath.get(this);
    if (abs) write({ op: 'truncate', path: abs, bytes: len });
  };
  p.rename = async function (from: fs.PathLike, to: fs.PathLike) {
    await original.promisesRename(from, to);
    renamed(from, to);
  };
  p.unlink = async function (path: fs.PathLike) {
    await original.promisesUnlink(path);
    unlinked(path);
  };
  // ESM named imports of node:fs and node:fs/promises see the wrappers too.
  syncBuiltinESMExports();
}
