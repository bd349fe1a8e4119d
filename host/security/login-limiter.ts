// Failed logins per source address (issue 13: counted and rate-limited). A fixed window per
// address: past `failuresMax` failures within `windowMs`, attempts from that address are refused
// without checking the password until the window ends. The table holds at most `addressesMax`
// addresses (a Map in insertion order: the oldest is forgotten first), so a spray of source
// addresses cannot grow it without bound. No password or user name is stored here.

export interface LoginLimiterOptions {
  failuresMax: number;
  windowMs: number;
  addressesMax: number;
  nowMs?: () => number;
}

export class LoginLimiter {
  private readonly windows = new Map<string, { startMs: number; failures: number }>();
  private readonly now: () => number;

  constructor(private readonly o: LoginLimiterOptions) {
    this.now = o.nowMs ?? Date.now;
  }

  /** May `address` try to log in now? */
  allowed(address: string): boolean {
    const w = this.windows.get(address);
    if (!w) return true;
    if (this.now() - w.startMs >= this.o.windowMs) {
      this.windows.delete(address);
      return true;
    }
    return w.failures < this.o.failuresMax;
  }

  /** Counts a failed login; returns the failures in the current window. */
  failed(address: string): number {
    const now = this.now();
    let w = this.windows.get(address);
    if (!w || now - w.startMs >= this.o.windowMs) {
      this.windows.delete(address);
      w = { startMs: now, failures: 0 };
      if (this.windows.size >= this.o.addressesMax) this.windows.delete(this.windows.keys().next().value!);
      this.windows.set(address, w);
    }
    return ++w.failures;
  }

  get trackedAddresses(): number {
    return this.windows.size;
  }
}

/** The address part of `host:port` / `[v6]:port` (failures count per machine, not per connection). */
export function addressOf(remote: string): string {
  const v6 = /^\[(.*)\]:\d+$/.exec(remote);
  if (v6) return v6[1];
  const at = remote.lastIndexOf(':');
  const host = at > 0 && remote.indexOf(':') === at ? remote.slice(0, at) : remote.replace(/:\d+$/, '');
  return host.startsWith('::ffff:') ? host.slice(7) : host;
}
