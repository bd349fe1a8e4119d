// One broker per data dir: a kernel lock on an open descriptor of `<dataDir>/broker.lock`.
//
// File: `broker.lock`, text, the holder's pid and a newline (for the refusal message only: the
// lock is the flock, never the content). Crash policy: nothing to recover. The kernel drops a
// flock when the last descriptor of its open file description closes, which happens when the
// process dies in any way (exit, crash, kill -9, power cut: a fresh boot has no locks), so a
// stale pid in the file, a zombie or a pid reused after a reboot never blocks a start. The file
// is never unlinked: removing a locked file would let a newcomer lock a fresh inode of the same
// name while the old holder still runs.
//
// Why a `flock` child process: Node has no flock(2) or fcntl(F_SETLK) binding, and the brief
// forbids a new native module. flock(2) locks belong to the open file description, and a child
// given our descriptor as its fd 3 shares that description: `flock -xn 3` (util-linux, or
// BusyBox's, on every Linux a Pi runs) takes the lock on *our* description and exits; the lock
// stays held by our descriptor until this process closes it or dies. Cost: one short-lived
// process at start (a few ms), no process left running. (`open(O_EXCL)`, the old pid file, is
// no lock: a dead holder's file stays, and the read-then-overwrite takeover races.)
// Where no `flock` command exists (macOS developer machines) the broker falls back to that pid
// file checked with kill(pid, 0) and says so in a warning.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const LOCK_FILE = 'broker.lock';
/** flock's exit status when -n finds the lock taken (-E): distinct from its usage errors. */
const FLOCK_CONFLICT_EXIT = 75;

/** Data dirs this process holds, with the descriptor holding the lock (-1: pid-file fallback). */
const held = new Map<string, number>();

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
}

/** Takes the data dir's lock or throws an Error naming the dir and the holder. */
export async function lockDataDir(dataDir: string, warn: (msg: string) => void = () => undefined): Promise<void> {
  if (held.has(dataDir)) throw new DataDirLockedError(`data dir ${dataDir} is already open in this process`);
  const path = join(dataDir, LOCK_FILE);
  // Create if missing, never truncate before we hold the lock (the holder's pid is in it).
  // libuv opens with O_CLOEXEC: only the flock child is handed the descriptor (as its fd 3).
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  let status: number | 'missing';
  try {
    status = await runFlock(fd);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  if (status === 'missing') {
    fs.closeSync(fd);
    warn('no `flock` command (util-linux) on this system: the data dir is guarded by a pid file only');
    await pidFileLock(dataDir, path);
    held.set(dataDir, -1);
    return;
  }
  if (status !== 0) {
    fs.closeSync(fd);
    const holder = (await readFile(path, 'utf8').catch(() => '')).trim();
    if (status === FLOCK_CONFLICT_EXIT) {
      throw new DataDirLockedError(`data dir ${dataDir} is in use by another broker (process ${holder || 'unknown'}, lock ${path}); stop it first`);
    }
    throw new Error(`cannot lock data dir ${dataDir}: flock exited with status ${status}`);
  }
  // Ours now: the pid for the next one's message. A full disk may refuse the write; the lock holds anyway.
  try {
    fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, `${process.pid}\n`, 0);
  } catch {
    /* informational only */
  }
  held.set(dataDir, fd);
}

/** Releases the lock (closing the descriptor drops the flock). */
export async function unlockDataDir(dataDir: string): Promise<void> {
  const fd = held.get(dataDir);
  if (fd === undefined) return;
  held.delete(dataDir);
  if (fd >= 0) fs.closeSync(fd);
  else await fs.promises.unlink(join(dataDir, LOCK_FILE)).catch(() => undefined);
}

/** Exit status of `flock -xn 3` run on our descriptor, or 'missing' when there is no such command. */
function runFlock(fd: number): Promise<number | 'missing'> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['-xn', '-E', String(FLOCK_CONFLICT_EXIT), '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => {
      if (stderr.length < 1000) stderr += b.toString();
    });
    child.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? resolve('missing') : reject(err)));
    child.on('close', (code) => {
      if (code === 0 || code === FLOCK_CONFLICT_EXIT) resolve(code);
      else reject(new Error(`cannot lock the data dir: flock exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/** The fallback without flock: the pid file, taken over when its pid is not running. */
async function pidFileLock(dataDir: string, path: string): Promise<void> {
  const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
  if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
    throw new DataDirLockedError(`data dir ${dataDir} is in use by process ${pid} (${path}); stop it first`);
  }
  await writeFile(path, `${process.pid}\n`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
