// Thin promise wrappers over raw file descriptors (node:fs callbacks): positional reads and
// writes, fdatasync, and the two durability helpers every stateful file here relies on:
// fsync of a directory (so a create/rename/unlink survives a power cut) and an atomic small-
// file replace (write `name.tmp`, fsync it, rename over `name`, fsync the directory).
//
// Raw fds instead of FileHandle: the segment file cache counts users per fd and closes it
// itself, and FileHandle's GC-close warnings would only get in the way.
import fs from 'node:fs';
import { dirname } from 'node:path';

export function openFd(path: string, flags: string | number, mode = 0o644): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

export function fstatSize(fd: number): Promise<number> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st.size))));
}

/** Reads exactly `length` bytes at `position` into `buf[offset..]` unless the file ends first; returns bytes read. */
export async function preadFull(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const n = await new Promise<number>((resolve, reject) =>
      fs.read(fd, buf, offset + done, length - done, position + done, (err, bytes) => (err ? reject(err) : resolve(bytes))),
    );
    if (n === 0) break;
    done += n;
  }
  return done;
}

// libuv writes at most IOV_MAX buffers per writev; stay well under it.
const IOV_CHUNK = 512;

/** Writes every buffer, in order, starting at `position` (short writes are continued). */
export async function pwritevAll(fd: number, buffers: Uint8Array[], position: number): Promise<number> {
  let pos = position;
  for (let i = 0; i < buffers.length; i += IOV_CHUNK) {
    let chunk = buffers.slice(i, i + IOV_CHUNK);
    let want = 0;
    for (const b of chunk) want += b.byteLength;
    while (want > 0) {
      const n = await new Promise<number>((resolve, reject) =>
        fs.writev(fd, chunk as NodeJS.ArrayBufferView[], pos, (err, bytes) => (err ? reject(err) : resolve(bytes))),
      );
      pos += n;
      want -= n;
      if (want > 0) chunk = dropPrefix(chunk, n);
    }
  }
  return pos - position;
}

function dropPrefix(buffers: Uint8Array[], bytes: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = bytes;
  for (const b of buffers) {
    if (skip >= b.byteLength) {
      skip -= b.byteLength;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

export function ftruncate(fd: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, length, (err) => (err ? reject(err) : resolve())));
}

/** fsync a directory so entries created, renamed or removed in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await openFd(dir, fs.constants.O_RDONLY);
  try {
    await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
}

// One atomic replace at a time per path: two concurrent writers of one checkpoint would share
// its `.tmp` file (and the later rename would fail or install the older content). Calls are
// chained per path in call order, so the last call's content is what stays.
const writesInFlight = new Map<string, Promise<void>>();

/** Replaces `path` atomically and durably with `data` (calls for one path run in call order). */
export function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const before = writesInFlight.get(path) ?? Promise.resolve();
  const run = before.then(
    () => replaceFile(path, data),
    () => replaceFile(path, data),
  );
  const tail = run.catch(() => undefined);
  writesInFlight.set(path, tail);
  void tail.then(() => {
    if (writesInFlight.get(path) === tail) writesInFlight.delete(path);
  });
  return run;
}

async function replaceFile(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fd = await openFd(tmp, 'w');
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    await pwritevAll(fd, [bytes], 0);
    await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
  await fs.promises.rename(tmp, path);
  await fsyncDir(dirname(path));
}

/** Reads a whole small file, or null when it does not exist. */
export async function readFileOrNull(path: string): Promise<Buffer | null> {
  try {
    return await fs.promises.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export async function unlinkIfExists(path: string): Promise<boolean> {
  try {
    await fs.promises.unlink(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
