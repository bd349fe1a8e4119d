// A TCP fault proxy for link tests: listens on a random port and forwards each connection to
// `upstream`, in one of these modes (switchable at any time, applied to open connections too):
//   pass            bytes flow both ways
//   blackhole       bytes in either direction are dropped, nothing is closed (a dead cellular
//                   link: no RST, no FIN; new connections are accepted and then hear nothing)
//   blackhole-down  requests reach the upstream, its answers are dropped (the worst case for a
//                   producer: the write landed and the acknowledgement is lost)
//   reset           every open connection is reset (RST) and new ones are reset on arrival
// Counts what it dropped, so a test can prove the fault really hit traffic.
// Options: where to listen (a fixed address, e.g. a second loopback address standing in for a
// node's advertised one) and `affects`, which sees each connection's first bytes from the client
// and decides whether the faults apply to it; a connection it spares always passes (so one
// client's link can fail while others to the same upstream do not).
import net from 'node:net';

export type ProxyMode = 'pass' | 'blackhole' | 'blackhole-down' | 'reset';

export interface FaultProxy {
  /** Where new connections go (settable: start the proxy first, then the broker that advertises it). */
  upstream: { host: string; port: number };
  port: number;
  address: string;
  mode: ProxyMode;
  setMode(mode: ProxyMode): void;
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
    client.on('data', (d) => {
      if (pair.spared === undefined && options.affects) pair.spared = !options.affects(d);
      if (mode() === 'reset') return reset(pair);
      if (mode() === 'pass' || mode() === 'blackhole-down') upstreamSocket.write(d);
      else proxy.dropped.up += d.length;
    });
    upstreamSocket.on('data', (d) => {
      if (mode() === 'pass') client.write(d);
      else proxy.dropped.down += d.length;
    });
    const end = () => {
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
