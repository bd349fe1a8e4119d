// Metadata quorum commit latency on loopback: three Quorum drivers (host/cluster/quorum.ts) in
// this process, each with its own raft.log in a temp dir (real fdatasync) and a TcpTransport on
// 127.0.0.1, proposing one small metadata entry at a time and waiting until it is committed and
// applied: on the controller (append + fsync here, one follower's fsync, the commit round trip)
// and on a follower (plus the forward round trip and its own apply). All three share one event
// loop, so the figures are an upper bound for three separate processes.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { silentLogger } from '../host/logging.js';
import { Quorum, type StateMachine } from '../host/cluster/quorum.js';
import { TcpTransport } from '../host/cluster/tcp-transport.js';
import { median, type Table } from './table.js';

export const subject = 'cluster';
export const order = 90;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const counting = (): StateMachine & { applied: number } => ({
  applied: 0,
  async apply() {
    this.applied++;
    return undefined;
  },
  async restore() {},
  snapshot: () => new Uint8Array(0),
});

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))]!;

export async function run(): Promise<Table[]> {
  const n = process.env.TRIBUTARY_BENCH_QUICK === '1' ? 50 : 500;
  const root = await mkdtemp(join(tmpdir(), 'tributary-bench-cluster-'));
  const ports = [await freePort(), await freePort(), await freePort()];
  const peers = new Map(ports.map((p, i) => [i + 1, { host: '127.0.0.1', port: p }]));
  const quorums: Quorum[] = [];
  try {
    for (const id of [1, 2, 3]) {
      const transport = await TcpTransport.start({ clusterId: 'bench', nodeId: id, listen: peers.get(id)!, peers, frameBytesMax: 1 << 20, sendQueueMax: 1024, sendQueueBytesMax: 8 << 20, reconnectBackoffMsMin: 20, reconnectBackoffMsMax: 500, connectionsMax: 16, handshakeTimeoutMs: 5000, logger: silentLogger });
      const opts = { nodeId: id, voters: [1, 2, 3], electionTicks: 10, heartbeatTicks: 1, tickMs: 50, proposalsPendingMax: 256, proposalTimeoutMs: 10_000, snapshotEntries: 1000, frameBytesMax: 1 << 20, recordBytesMax: 1 << 20, storageRewriteBytes: 16 << 20, logger: silentLogger };
      quorums.push(await Quorum.open(join(root, String(id)), opts, counting(), transport));
    }
    const started = Date.now();
    while (!quorums.some((q) => q.isLeader) || quorums.some((q) => q.leader === null)) {
      if (Date.now() - started > 15_000) throw new Error('no controller within 15 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    const electedMs = Date.now() - started;
    const leader = quorums.find((q) => q.isLeader)!;
    const follower = quorums.find((q) => !q.isLeader)!;
    const entry = new TextEncoder().encode(JSON.stringify({ v: 1, records: [{ type: 'producerIds', reservedUpTo: 1000 }] }));
    const rows: Array<Array<string | number>> = [];
    for (const [name, q] of [['on the controller', leader], ['through a follower', follower]] as const) {
      const ms: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await q.propose(entry);
        ms.push(performance.now() - t0);
      }
      rows.push([name, n, median(ms), p99(ms), Math.round(1000 / median(ms))]);
    }
    return [
      {
        title: 'Metadata quorum: one proposal committed and applied (3 voters, loopback TCP, fdatasync per Ready)',
        columns: ['proposed', 'proposals', 'median ms', 'p99 ms', 'sequential/s'],
        rows,
        notes: [`First election after start (tickMs 50, electionTicks 10): ${electedMs} ms. Entry ${entry.length} bytes.`],
      },
    ];
  } finally {
    await Promise.all(quorums.map((q) => q.close()));
    await rm(root, { recursive: true, force: true });
  }
}
