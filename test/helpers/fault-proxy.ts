// A TCP fault proxy for link tests: listens on a random port and forwards each connection to
// `upstream`, in one of these modes (switchable at any time, applied to open connections too):
//   pass            bytes flow both ways
//   blackhole       bytes in either direction are dropped, nothing is closed (a dead cellular
//                   link: no RST, no FIN; new connections are accepted and then hear nothing)
//   blackhole-down  requests reach the upstream, its answers are dropped (the worst case for a
//                   producer: the write landed and the acknowledgement is lost)
//   reset           every open connection is reset (RST) and new ones are reset on arrival
// Counts what it dropped, so a test can prove the fault really hit traffic.
// `throttle` (bytes per second, 0 = off) caps what passes in each direction of each connection,
// in order, so a transfer takes a known time and a fault can land in its middle whatever the
// machine's speed; what waits is held in memory (a test moves a few MB).
// Options: where to listen (a fixed address, e.g. a second loopback address standing in for a
// node's advertised one) and `affects`, which sees each connection's first bytes from the client
// and decides whether the faults apply to it; a connection it spares always passes (so one
// client's link can fail while others to the same upstream do not).
import net from 'node:net';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { endianness } from 'node:os';

export type ProxyMode = 'pass' | 'blackhole' | 'blackhole-down' | 'reset';

export interface FaultProxy {
  /** Where new connections go (settable: start the proxy first, then the broker that advertises it). */
  upstream: { host: string; port: number };
  port: number;
  address: string;
  mode: ProxyMode;
  setMode(mode: ProxyMode): void;
  /** Bytes per second per direction per connection in `pass`; 0 = unlimited. */
  throttle: number;
  /** Bytes dropped client→upstream and upstream→client since start. */
  dropped: { up: number; down: number };
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  listenHost?: string;
  listenPort?: number;
  affects?: (firstBytes: Buffer) => boolean;
}

export async function startFaultProxy(upstream: { host: string; port: number } = { host: '127.0.0.1', port: 1 }, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const pairs = new Set<{ client: net.Socket; server: net.Socket; spared?: boolean }>();
  const proxy: FaultProxy = {
    upstream,
    port: 0,
    address: '',
    mode: 'pass',
    throttle: 0,
    dropped: { up: 0, down: 0 },
    setMode(mode) {
      proxy.mode = mode;
      if (mode === 'reset') for (const p of pairs) if (!p.spared) reset(p);
    },
    close: async () => {
      for (const p of pairs) reset(p);
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const reset = (p: { client: net.Socket; server: net.Socket }) => {
    p.client.resetAndDestroy();
    p.server.destroy();
    pairs.delete(p);
  };
  const server = net.createServer((client) => {
    const upstreamSocket = net.connect(proxy.upstream.port, proxy.upstream.host);
    const pair: { client: net.Socket; server: net.Socket; spared?: boolean } = { client, server: upstreamSocket };
    pairs.add(pair);
    if (proxy.mode === 'reset' && !options.affects) return reset(pair);
    const mode = () => (pair.spared ? 'pass' : proxy.mode);
    const up = paced(upstreamSocket, () => (pair.spared ? 0 : proxy.throttle));
    const down = paced(client, () => (pair.spared ? 0 : proxy.throttle));
    client.on('data', (d) => {
      if (pair.spared === undefined && options.affects) pair.spared = !options.affects(d);
      if (mode() === 'reset') return reset(pair);
      if (mode() === 'pass' || mode() === 'blackhole-down') up.write(d);
      else proxy.dropped.up += d.length;
    });
    upstreamSocket.on('data', (d) => {
      if (mode() === 'pass') down.write(d);
      else proxy.dropped.down += d.length;
    });
    const end = () => {
      up.stop();
      down.stop();
      pairs.delete(pair);
      client.destroy();
      upstreamSocket.destroy();
    };
    client.on('close', end);
    upstreamSocket.on('close', end);
    client.on('error', () => {});
    upstreamSocket.on('error', () => {});
  });
  const host = options.listenHost ?? '127.0.0.1';
  await new Promise<void>((r) => server.listen(options.listenPort ?? 0, host, r));
  proxy.port = (server.address() as net.AddressInfo).port;
  proxy.address = `${host}:${proxy.port}`;
  return proxy;
}

/** Writes to `socket` at most rate() bytes per second, in order; rate() 0 passes at once. */
function paced(socket: net.Socket, rate: () => number): { write(d: Buffer): void; stop(): void } {
  const queue: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const tickMs = 10;
  const release = () => {
    const r = rate();
    let budget = r === 0 ? Infinity : Math.max(1, Math.floor((r * tickMs) / 1000));
    while (queue.length > 0 && budget > 0) {
      const head = queue[0];
      if (head.length <= budget) {
        queue.shift();
        budget -= head.length;
        socket.write(head);
      } else {
        socket.write(head.subarray(0, budget));
        queue[0] = head.subarray(budget);
        budget = 0;
      }
    }
    timer = queue.length > 0 ? setTimeout(release, tickMs) : undefined;
  };
  return {
    write(d) {
      if (rate() === 0 && queue.length === 0) return void socket.write(d);
      queue.push(d);
      if (!timer) timer = setTimeout(release, tickMs);
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      queue.length = 0;
    },
  };
}

// --- link gates: faults per link between processes on one loopback ------------------------
//
// A link gate stands in front of one node's listener on an address of its own (another
// loopback address, e.g. 127.0.0.12, same port: the node advertises that host) and forwards to
// the node. Each connection it accepts is attributed to the process that opened it — the socket's
// inode, found in /proc/net/tcp by the connection's ports, looked up among the known processes'
// open files (/proc/<pid>/fd) — so one gate in front of node 2 can cut node 1 → node 2 while
// node 3 → node 2 and every client still pass. Linux only (/proc); an unattributed connection
// (a client, a process that went away) is `client`.
//
// Modes, per source, read at every chunk (so a change applies to open connections too):
//   pass       bytes flow both ways
//   blackhole  bytes in both directions are dropped, nothing is closed (silent loss). A
//              connection that lost bytes is reset when its link passes again: resuming it would
//              hand the node a stream with a hole in it, which TCP never does; after a real
//              partition the peer's retransmissions time out and it redials the same way.
//   hold       bytes in both directions wait in the gate, delivered in order once the link
//              passes (a partition TCP rides out: old messages arrive late, all at once)
//   reset      open connections are reset (RST) by `apply()`, new ones on arrival
// Bounds: `hold` keeps what it holds in memory (a test's partition lasts seconds).

export type LinkMode = 'pass' | 'blackhole' | 'hold' | 'reset';

export interface LinkGate {
  /** host:port nodes and clients dial (the advertised address). */
  address: string;
  /**
   * Attributes again the open connections that were `client` when accepted (a node dials its
   * peers before the test knows its pid), then re-reads every open connection's mode: resets
   * `reset` ones, flushes `hold` ones that pass, resets blackholed ones that pass.
   */
  apply(): Promise<void>;
  /** Bytes dropped per source since start (to the node and from it). */
  dropped: Map<string, { up: number; down: number }>;
  /** Connections accepted per source since start. */
  accepted: Map<string, number>;
  close(): Promise<void>;
}

export interface LinkGateOptions {
  /** Where the gate listens (a loopback address the node does not bind, and any free port). */
  host: string;
  port: number;
  upstream: { host: string; port: number };
  /** The processes connections may come from, by name (read at each new connection: pids change on restart). */
  processes: () => Array<{ name: string; pid: number | undefined }>;
  /** The mode for a source (a process name, or 'client'). */
  modeFor: (source: string) => LinkMode;
}

/** /proc/net/tcp's form of an IPv4 address and port (the address as the kernel's u32 prints it). */
function procAddress(ip: string, port: number): string {
  const octets = ip.replace(/^::ffff:/, '').split('.').map((x) => Number(x).toString(16).padStart(2, '0'));
  const word = endianness() === 'LE' ? octets.reverse() : octets;
  return `${word.join('')}:${port.toString(16).padStart(4, '0')}`.toUpperCase();
}

/** The name of the process holding the client end of an accepted connection, or 'client'. */
async function sourceOf(socket: net.Socket, processes: Array<{ name: string; pid: number | undefined }>): Promise<string> {
  const local = procAddress(socket.remoteAddress ?? '', socket.remotePort ?? 0);
  const remote = procAddress(socket.localAddress ?? '', socket.localPort ?? 0);
  const table = await readFile('/proc/net/tcp', 'utf8').catch(() => '');
  let inode = '';
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[2] === remote) inode = f[9] ?? '';
  }
  if (!inode || inode === '0') return 'client';
  const wanted = `socket:[${inode}]`;
  for (const p of processes) {
    if (p.pid === undefined) continue;
    const fds = await readdir(`/proc/${p.pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/${p.pid}/fd/${fd}`).catch(() => '')) === wanted) return p.name;
    }
  }
  return 'client';
}

interface GatedConnection {
  source: string;
  client: net.Socket;
  server: net.Socket;
  /** Bytes dropped on this connection (blackhole): it is reset when its link passes again. */
  holed: boolean;
  held: { up: Buffer[]; down: Buffer[] };
}

export async function startLinkGate(o: LinkGateOptions): Promise<LinkGate> {
  const open = new Set<GatedConnection>();
  const dropped = new Map<string, { up: number; down: number }>();
  const accepted = new Map<string, number>();
  const kill = (c: GatedConnection) => {
    open.delete(c);
    c.client.resetAndDestroy();
    c.server.destroy();
  };
  /** Moves bytes one way under the source's current mode. */
  const carry = (c: GatedConnection, way: 'up' | 'down', chunk: Buffer | null) => {
    const mode = o.modeFor(c.source);
    const to = way === 'up' ? c.server : c.client;
    if (mode === 'reset') return kill(c);
    if (mode === 'hold') {
      if (chunk) c.held[way].push(chunk);
      return;
    }
    if (mode === 'blackhole') {
      if (chunk) {
        const d = dropped.get(c.source) ?? { up: 0, down: 0 };
        d[way] += chunk.length;
        dropped.set(c.source, d);
        c.holed = true;
      }
      return;
    }
    if (c.holed) return kill(c);
    for (const b of c.held[way].splice(0)) to.write(b);
    if (chunk) to.write(chunk);
  };
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    void (async () => {
      const source = await sourceOf(client, o.processes());
      accepted.set(source, (accepted.get(source) ?? 0) + 1);
      const upstream = net.connect(o.upstream.port, o.upstream.host);
      const c: GatedConnection = { source, client, server: upstream, holed: false, held: { up: [], down: [] } };
      open.add(c);
      client.on('error', () => {});
      upstream.on('error', () => {});
      if (o.modeFor(source) === 'reset') return kill(c);
      client.on('data', (d: Buffer) => carry(c, 'up', d));
      upstream.on('data', (d: Buffer) => carry(c, 'down', d));
      const end = () => {
        open.delete(c);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end);
      upstream.on('close', end);
      client.resume();
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `${o.host}:${port}`,
    dropped,
    accepted,
    async apply() {
      const processes = o.processes();
      for (const c of [...open]) {
        if (c.source !== 'client') continue;
        const source = await sourceOf(c.client, processes);
        if (source === 'client') continue;
        accepted.set('client', (accepted.get('client') ?? 1) - 1);
        accepted.set(source, (accepted.get(source) ?? 0) + 1);
        c.source = source;
      }
      for (const c of [...open]) {
        carry(c, 'up', null);
        if (open.has(c)) carry(c, 'down', null);
      }
    },
    close: async () => {
      for (const c of [...open]) kill(c);
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
