// Purpose: slow WebSocket subscribers (one that never reads, and several that stop reading) under load do not grow the broker process's memory beyond a bound, fast subscribers keep receiving everything, and a slow one that resumes gets every record in order from its own cursor.
//
// The broker is the real process (dist/host/main.js start, every door up); its RSS comes from
// its own GET /stats, apart from the test's clients.
import t from 'tap';
import { Client, type Frame } from '../unit/ws/harness.js';
import { eventually, startBroker, tempDir } from '../helpers/index.js';

{
  t.test('ws backpressure: slow subscribers do not grow broker memory; fast ones get everything; a resumed one catches up in order', async (t) => {
    const dir = await tempDir(t, 'tributary-ws-bp-');
    const broker = await startBroker(t, { dataDir: dir });
    const address = broker.listeners.http!;
    const http = `http://${address}`;
    const wsUrl = `ws://${address}/ws`;
    const stats = async () => (await (await fetch(`${http}/stats`)).json()) as Frame;
    const created = await fetch(`${http}/topics`, { method: 'POST', body: JSON.stringify({ name: 'load', partitions: 1 }), headers: { 'content-type': 'application/json' } });
    t.equal(created.status, 200);

    const SLOW = 40;
    const fast = await Client.open(t, wsUrl, 'cbor');
    await fast.request({ type: 'subscribe', topic: 'load', start: 'earliest' });
    const slow: Client[] = [];
    for (let i = 0; i < SLOW; i++) {
      const c = await Client.open(t, wsUrl, i % 2 ? 'json' : 'cbor');
      await c.request({ type: 'subscribe', topic: 'load', start: 'earliest' });
      // Stop reading at once: the socket's kernel buffers fill, then uWS's, then we pause it.
      (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      slow.push(c);
    }
    // A warm-up round so the baseline includes the code paths and buffers in steady use.
    const value = 'x'.repeat(1000);
    const batch = JSON.stringify([...Array(250)].map((_, i) => ({ key: `k${i % 10}`, value })));
    const postBatch = async () => {
      const res = await fetch(`${http}/topics/load/records`, { method: 'POST', body: batch, headers: { 'content-type': 'application/json' } });
      if (res.status !== 200) throw new Error(`POST ${res.status}: ${await res.text()}`);
    };
    for (let i = 0; i < 4; i++) await postBatch();
    await eventually(() => fast.records().length === 1000, 20_000);
    const before = (await stats()).process.rssBytes;

    const ROUNDS = 80; // 80 × 250 records × ~1 KB = 20 MB more; 40 slow sockets × 20 MB = 800 MB if it were buffered
    for (let i = 0; i < ROUNDS; i++) await postBatch();
    const total = (ROUNDS + 4) * 250;
    await eventually(() => fast.records().length === total, 30_000, 20);
    const after = await stats();
    const growthMiB = (after.process.rssBytes - before) / 1048576;
    // Bound: V8 heap headroom under this allocation rate (tens of MiB) + 40 × (64 KiB pause + one
    // frame) in uWS. Buffering what the slow sockets did not read would take 800 MiB.
    t.ok(growthMiB < 96, `broker RSS grew ${growthMiB.toFixed(1)} MiB (${(before / 1048576).toFixed(0)} → ${(after.process.rssBytes / 1048576).toFixed(0)} MiB) while ${SLOW} sockets stopped reading ${((ROUNDS * 250 * 1000) / 1048576).toFixed(0)} MiB each`);
    const buffered = after.ws.peers.map((p: Frame) => p.bufferedBytes as number);
    t.ok(Math.max(...buffered) <= 65_536 + 70_000, `no socket holds more than the pause bound + one frame in uWS (max ${Math.max(...buffered)} bytes)`);
    const fastOffsets = fast.records().map((r) => r.offset);
    t.same(fastOffsets, [...Array(total).keys()], 'the fast subscriber got every offset once, in order');
    const metrics = await (await fetch(`${http}/metrics`)).text();
    t.match(metrics, /tributary_ws_subscriber_pauses_total\{topic="load"\} [1-9]/, 'slow subscribers were paused');

    // One slow subscriber starts reading again: it drains, resumes from its cursor and gets everything.
    const resumed = slow[1];
    (resumed.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await eventually(() => resumed.records().length >= total, 30_000, 20);
    t.same(resumed.records().map((r) => r.offset), [...Array(total).keys()], 'the resumed subscriber got every offset once, in order');
    t.equal(resumed.records()[total - 1].value, value);

    t.equal(await broker.stop(), 0, 'the broker stops cleanly with slow sockets still open');
  });
}
