// Start-up checks that need the machine, run before anything opens or binds: the data directory
// must be (or become) a writable directory, and every bind address must belong to this machine.
// Each failure is a ConfigError naming the key, the value, its source and what is allowed, so the
// node prints one line and exits instead of failing half-started with a stack trace.
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { ConfigError } from './loader.js';

/** Creates the data directory if needed and checks it is a writable directory; returns its absolute path. */
export function checkDataDir(dataDir: string, source: string): string {
  if (dataDir.trim() === '') throw new ConfigError('dataDir', dataDir, source, 'must be a non-empty directory path');
  const dir = resolve(dataDir);
  let isDir: boolean | undefined;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError('dataDir', dataDir, source, `${dir} cannot be used (${(err as NodeJS.ErrnoException).code}): must be a writable directory`);
  }
  if (isDir === false) throw new ConfigError('dataDir', dataDir, source, `${dir} is a file: must be a writable directory`);
  if (isDir === undefined) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new ConfigError('dataDir', dataDir, source, `cannot create ${dir} (${(err as NodeJS.ErrnoException).code}): must be a writable directory or one that can be created`);
    }
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new ConfigError('dataDir', dataDir, source, `${dir} is not writable (${(err as NodeJS.ErrnoException).code}): must be a writable directory`);
  }
  return dir;
}

/**
 * Binds a throwaway socket on an ephemeral port of `host` and closes it: an address that is not
 * this machine's (EADDRNOTAVAIL) or a name that does not resolve (ENOTFOUND) is refused here,
 * before the first real listener binds.
 */
export function checkBindHost(key: string, host: string, source: string): Promise<void> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      fail(new ConfigError(key, host, source, `cannot bind it (${err.code ?? err.message}): must be an address of this machine, 0.0.0.0 (every interface) or 127.0.0.1 (loopback only)`)),
    );
    probe.listen(0, host, () => probe.close(() => done()));
  });
}

/**
 * Binds and releases `host:port` (port > 0): a port another process holds (EADDRINUSE) or one
 * this user may not bind (EACCES, below 1024) is refused before the first listener binds, so a
 * node never starts half its doors. (Another process may still take the port in between; the
 * listener's own error then names it.)
 */
export function checkBindPort(key: string, host: string, port: number, source: string): Promise<void> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      fail(new ConfigError(key, port, source, `cannot bind ${host}:${port} (${err.code ?? err.message}): must be a free port this user may bind, 0 (any free port) or -1 (listener off)`)),
    );
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => done()));
  });
}
