// Purpose: the bounds and decisions of append forwarding (host/cluster/forward.ts) without a
// cluster: the per-partition lane (inFlightMax, queuedMax → LIMIT_EXCEEDED, call order kept),
// the bounded retries while no leader is known (retriesMax, timeoutMs), the local append when
// this node became the leader, a leader that never answers, and the offsets a forwarded
// append spans. The leader's state comes from a stand-in for the broker's partitionState and
// the store's image; the leader's listener is a real TCP socket.
import t from 'tap';
import { createServer, type Server, type Socket } from 'node:net';
import { AppendForwarding, offsetsSpanned, type ForwardOptions } from '../../../host/cluster/forward.js';
import { BrokerError } from '../../../host/errors/index.js';
import { encodeBatch } from '../../../host/core/index.js';
import { silentLogger } from '../../../host/logging.js';
import type { AppendResult } from '../../../host/broker/api.js';

const tp = { topic: 'sensors', partition: 0 };
const batch = encodeBatch([{ key: null, value: new Uint8Array([1]) }], { compression: 0 });
const RESULT: AppendResult = { baseOffset: 7, lastOffset: 7, logAppendTimeMs: -1, logStartOffset: 0 };

interface Stand {
  role: 'leader' | 'follower';
  leaderId: number;
  asked: number;
}

function forwarding(stand: Stand, o: Partial<ForwardOptions>, leaderPort = 1) {
  const opts: ForwardOptions = { nodeId: 1, timeoutMs: 2000, requestTimeoutMs: 2000, retriesMax: 3, retryBackoffMs: 1, inFlightMax: 1, queuedMax: 4, ...o };
  const broker = { partitionState: () => (stand.asked++, { role: stand.role, leaderId: stand.leaderId, leaderEpoch: 1 }) };
  // The forwarder reserves its producer id as a compare-and-set block (producer-ids.ts): one store, no rivals.
  let mark = 0;
  let lastBlock: { start: number; upTo: number; nodeId: number } | undefined;
  const image = () => ({ brokers: new Map([[2, { nodeId: 2, host: '127.0.0.1', port: leaderPort, fenced: false }]]), producerIdsReservedUpTo: mark, producerIdsLastBlock: lastBlock });
  const store = {
    image,
    onChange: () => () => undefined,
    propose: async (records: Array<{ start: number; reservedUpTo: number; nodeId: number }>) => {
      for (const r of records) if (r.start === mark) ((mark = r.reservedUpTo), (lastBlock = { start: r.start, upTo: r.reservedUpTo, nodeId: r.nodeId }));
      return image();
    },
  };
  const client = AppendForwarding.client(opts, '127.0.0.1:1', () => 2);
  const f = new AppendForwarding(broker as never, store as never, client, opts, silentLogger);
  return { f, client };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return err instanceof BrokerError ? err.code : String(err);
  }
}

/** A "leader" that accepts connections and never answers. */
async function silentServer(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => sockets.push(s.on('error', () => undefined)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => (sockets.forEach((s) => s.destroy()), new Promise((r) => server.close(r))));
  return (server.address() as { port: number }).port;
}

t.test('forward: offsets spanned by a forwarded append are the sum over its batches', async (t) => {
  const three = encodeBatch([1, 2, 3].map((v) => ({ key: null, value: new Uint8Array([v]) })), { compression: 0 });
  const two = encodeBatch([1, 2].map((v) => ({ key: null, value: new Uint8Array([v]) })), { compression: 0 });
  t.equal(offsetsSpanned(three), 3);
  t.equal(offsetsSpanned(Buffer.concat([three, two])), 5, 'two batches back to back: 3 + 2 offsets');
});

t.test('forward: no leader known — retried at most retriesMax times, then LEADER_NOT_AVAILABLE', async (t) => {
  const stand: Stand = { role: 'follower', leaderId: -1, asked: 0 };
  const { f, client } = forwarding(stand, { retriesMax: 3 });
  t.teardown(() => client.close());
  t.equal(await codeOf(f.forward(tp, batch, { acks: -1 }, async () => RESULT)), 'LEADER_NOT_AVAILABLE');
  t.equal(stand.asked, 4, 'the first attempt and 3 retries (retriesMax=3), no more');
  stand.asked = 0;
  const zero = forwarding(stand, { retriesMax: 0 });
  t.teardown(() => zero.client.close());
  t.equal(await codeOf(zero.f.forward(tp, batch, { acks: -1 }, async () => RESULT)), 'LEADER_NOT_AVAILABLE');
  t.equal(stand.asked, 1, 'retriesMax=0: one attempt');
});

t.test('forward: the timeout bounds the retries however many are allowed', async (t) => {
  const stand: Stand = { role: 'follower', leaderId: -1, asked: 0 };
  const { f, client } = forwarding(stand, { retriesMax: 10_000, retryBackoffMs: 10, timeoutMs: 300 });
  t.teardown(() => client.close());
  const started = Date.now();
  const err = await f.forward(tp, batch, { acks: -1 }, async () => RESULT).catch((e: BrokerError) => e);
  const tookMs = Date.now() - started;
  t.equal((err as BrokerError).code, 'LEADER_NOT_AVAILABLE');
  t.match((err as BrokerError).message, /cluster\.forwardTimeoutMs=300/, 'the message names the key that gave up');
  t.ok(tookMs >= 250 && tookMs < 2000, `gave up after ${tookMs} ms (timeoutMs 300)`);
});

t.test('forward: this node became the leader — appended locally, in call order, one at a time', async (t) => {
  const stand: Stand = { role: 'leader', leaderId: 1, asked: 0 };
  const { f, client } = forwarding(stand, { inFlightMax: 1 });
  t.teardown(() => client.close());
  const order: string[] = [];
  let releaseA!: () => void;
  const a = f.forward(tp, batch, { acks: -1 }, () => (order.push('A starts'), new Promise<AppendResult>((r) => (releaseA = () => r(RESULT)))));
  const b = f.forward(tp, batch, { acks: -1 }, async () => (order.push('B starts'), { ...RESULT, baseOffset: 8 }));
  await new Promise((r) => setTimeout(r, 20));
  t.same(order, ['A starts'], 'B waits while A is out (inFlightMax=1)');
  releaseA();
  t.same([(await a).baseOffset, (await b).baseOffset], [7, 8]);
  t.same(order, ['A starts', 'B starts']);
});

t.test('forward: queuedMax waiting forwards per partition, the next one is LIMIT_EXCEEDED', async (t) => {
  const port = await silentServer(t);
  const stand: Stand = { role: 'follower', leaderId: 2, asked: 0 };
  const { f, client } = forwarding(stand, { inFlightMax: 1, queuedMax: 2, timeoutMs: 1500 }, port);
  const out = f.forward(tp, batch, { acks: -1 }, async () => RESULT).catch((e: BrokerError) => e.code); // out, unanswered
  const waiting = [1, 2].map(() => f.forward(tp, batch, { acks: -1 }, async () => RESULT).catch((e: BrokerError) => e.code));
  t.equal(await codeOf(f.forward(tp, batch, { acks: -1 }, async () => RESULT)), 'LIMIT_EXCEEDED', 'one out, queuedMax=2 waiting: the fourth is refused');
  let other = 'pending';
  const otherDone = f.forward({ topic: 'sensors', partition: 1 }, batch, { acks: -1 }, async () => RESULT).catch((e: BrokerError) => (other = e.code));
  await new Promise((r) => setTimeout(r, 30));
  t.equal(other, 'pending', 'another partition has a lane of its own: sent, not refused');
  // The silent leader never answers: the one out gives up at timeoutMs, then closing frees the waiting ones.
  f.close();
  await client.close();
  const codes: unknown[] = await Promise.all([out, ...waiting, otherDone]);
  t.ok(codes.every((c) => typeof c === 'string' && c !== 'resolved'), `closed: every pending forward failed (${codes.join(', ')})`);
});
