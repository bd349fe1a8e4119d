// Purpose: the uplink's figures beyond records (host/sync/observe.ts) at a real broker's read path,
// in one process with an injected clock: lag in bytes is bytesBetween from the first unforwarded
// offset to the high watermark; lag in seconds is the age of exactly that record (at a batch start
// from the header, inside a batch from the record itself), 0 when caught up; drop bytes are the
// dropped range's; the bandwidth is bytes over the window; and the status rows are capped with the
// blocked and retrying ones first; the bytes of a retention gap come from the sample taken
// before the deletion, and lag seconds from the oldest record retention left.
import t from 'tap';
import { Broker } from '../../../host/broker/broker.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { rowsShown, UplinkObserver, type ObservedPartition } from '../../../host/sync/observe.js';
import { tempDir } from '../../helpers/index.js';

const T0 = 1_700_000_000_000;

t.test('observer: lag in bytes and seconds follow the first unforwarded record; drops in bytes; bandwidth over the window', async (t) => {
  const broker = await Broker.open({ dataDir: await tempDir(t) }, { logger: silentLogger, metrics: new MetricsRegistry() });
  t.teardown(() => broker.close());
  await broker.createTopic('telemetry', 1);
  const tp = { topic: 'telemetry', partition: 0 };
  // One batch of 10 records a second apart (T0 .. T0 + 9 s), then a second batch at T0 + 20 s.
  const value = Buffer.alloc(200, 7);
  await broker.produce('telemetry', Array.from({ length: 10 }, (_, i) => ({ key: null, value, timestampMs: T0 + i * 1000 })), { acks: -1, partition: 0 });
  await broker.produce('telemetry', [{ key: null, value, timestampMs: T0 + 20_000 }], { acks: -1, partition: 0 });
  let floor = 0;
  const p: ObservedPartition = {
    source: tp,
    unforwardedFrom: () => floor,
  };
  let now = T0 + 60_000;
  let linkBytes = 0;
  const registry = new MetricsRegistry();
  const obs = new UplinkObserver(broker, 'edge1', { bandwidthWindowMs: 10_000, bandwidthBytesPerSec: 5000 }, () => linkBytes, registry, () => now);
  obs.add(p);
  await obs.sample();

  t.equal(obs.lagBytes(p), broker.bytesBetween(tp, 0, 11), `lag bytes from offset 0 to the high watermark: ${obs.lagBytes(p)}`);
  t.equal(obs.lagSeconds(p), 60, 'lag seconds: now − the first record\'s timestamp (T0), at a batch start');
  floor = 3;
  await obs.sample();
  t.equal(obs.lagSeconds(p), 57, 'inside a batch: the age of the record at the first unforwarded offset itself (T0 + 3 s)');
  now += 5000;
  t.equal(obs.lagSeconds(p), 62, 'between reads the age grows with the clock, no read needed');
  floor = 10;
  await obs.sample();
  t.equal(obs.lagSeconds(p), 45, 'the second batch: T0 + 20 s');
  t.equal(obs.lagBytes(p), broker.bytesBetween(tp, 10, 11), 'lag bytes: only the last batch');
  floor = 11;
  await obs.sample();
  t.equal(obs.lagSeconds(p), 0, 'caught up: 0');
  t.equal(obs.lagBytes(p), 0, 'caught up: 0 bytes');

  const dropped = obs.dropped(p, 0, 10, 'drop-oldest');
  t.equal(dropped, broker.bytesBetween(tp, 0, 10), `a drop of [0, 10) counts its stored bytes (${dropped})`);
  t.equal(obs.partition(p).droppedBytes, dropped, 'and shows them in the status row');

  // Bandwidth: 1000 bytes acknowledged per second for ten seconds, over a 10 s window.
  const start = now;
  for (let i = 1; i <= 10; i++) {
    now = start + i * 1000;
    obs.sent(p, 1000);
    linkBytes += 1200;
    await obs.sample();
  }
  t.equal(obs.partition(p).bandwidthBytesPerSec, 1000, 'partition: 1000 bytes/s acknowledged');
  const link = obs.link([{ ...obs.partition(p), lagRecords: 0, droppedRecords: 10 }]);
  t.equal(link.bandwidthBytesPerSec, 1200, 'link: 1200 bytes/s written');
  t.equal(link.bandwidthCapBytesPerSec, 5000, 'the cap is reported with it');
  for (let i = 1; i <= 5; i++) {
    now += 1000;
    await obs.sample();
  }
  t.equal(obs.partition(p).bandwidthBytesPerSec, 500, 'idle for half the window: half the rate (the ring holds the last 10 s)');
  for (let i = 1; i <= 5; i++) {
    now += 1000;
    await obs.sample();
  }
  t.equal(obs.partition(p).bandwidthBytesPerSec, 0, 'idle for the whole window: 0');
  const text = registry.render();
  t.match(text, new RegExp(`tributary_uplink_dropped_bytes_total\\{partition="0",policy="drop-oldest",site="edge1",topic="telemetry"\\} ${dropped}\n`), 'dropped bytes in /metrics');
  t.match(text, /tributary_uplink_bandwidth_cap_bytes_per_second\{site="edge1"\} 5000/, 'the cap in /metrics');
  t.match(text, /tributary_uplink_lag_seconds\{partition="0",site="edge1",topic="telemetry"\} 0\n/, 'lag seconds in /metrics');
});

t.test('observer: status rows are capped, blocked and retrying first, then the largest lag in bytes', async (t) => {
  const row = (topic: string, state: string, lagBytes: number) => ({ source: { topic, partition: 0 }, state, lagBytes });
  const rows = [row('a', 'idle', 10), row('b', 'forwarding', 500), row('c', 'blocked', 0), row('d', 'forwarding', 50), row('e', 'retrying', 1)];
  t.same(rowsShown(rows, 5).map((r) => r.source.topic), ['e', 'c', 'b', 'd', 'a'], 'at the cap every row, trouble first (by lag), then by lag');
  t.same(rowsShown(rows, 4).map((r) => r.source.topic), ['e', 'c', 'b', 'd'], 'one over the cap: the smallest lag is left out');
  t.same(rowsShown(rows, 1).map((r) => r.source.topic), ['e'], 'a cap of 1');
});

t.test('observer: the bytes of a retention gap come from the sample taken before the deletion (sampled), else an estimate; lag seconds from the oldest record left', async (t) => {
  const broker = await Broker.open({ dataDir: await tempDir(t) }, { logger: silentLogger, metrics: new MetricsRegistry() });
  t.teardown(() => broker.close());
  await broker.createTopic('telemetry', 1, { 'segment.bytes': 1024, 'retention.ms': 1000 });
  const tp = { topic: 'telemetry', partition: 0 };
  const value = Buffer.alloc(300, 3);
  // 20 old batches, then 6 stamped ten days later (retention keeps the segments holding them).
  for (let i = 0; i < 26; i++) await broker.produce('telemetry', [{ key: null, value, timestampMs: i < 20 ? T0 : T0 + 10 * 86_400_000 }], { acks: -1, partition: 0 });
  const batchBytes = broker.bytesBetween(tp, 0, 26) / 26;
  t.ok(Number.isInteger(batchBytes), `26 stored batches of ${batchBytes} bytes`);
  let floor = 0;
  const p: ObservedPartition = { source: tp, unforwardedFrom: () => floor };
  let now = T0;
  const obs = new UplinkObserver(broker, 'edge1', { bandwidthWindowMs: 10_000, bandwidthBytesPerSec: 0 }, () => 0, new MetricsRegistry(), () => now);
  obs.add(p);
  await obs.sample();
  // Retention deletes every closed segment (their records are far past retention.ms at this clock).
  await broker.runMaintenance(T0 + 86_400_000);
  const start = broker.offsets(tp).logStartOffset;
  t.ok(start > 0 && start <= 20, `retention moved the log start to ${start}: [0, ${start}) deleted before the uplink forwarded it`);
  now = T0 + 11 * 86_400_000;
  await obs.sample(); // a sample after the deletion keeps the one taken before it
  t.equal(obs.lagSeconds(p), 86_400, 'lag seconds: the oldest record still stored (stamped T0 + 10 d), not the deleted first unforwarded one (T0)');
  const m = obs.gap(p, 0, start);
  t.same(m, { bytes: start * batchBytes, how: 'sampled' }, `the gap's bytes: ${start} batches of ${batchBytes}, from the sample before the deletion`);
  t.same([obs.partition(p).gapRecords, obs.partition(p).gapBytes], [start, start * batchBytes], 'counted in the status row');

  // No sample of the range (a partition this process never sampled before the deletion): estimated from what is left.
  const q: ObservedPartition = { source: tp, unforwardedFrom: () => 0 };
  obs.add(q);
  const e = obs.gap(q, 0, start);
  t.equal(e.how, 'estimated', 'never sampled: estimated');
  t.equal(e.bytes, start * batchBytes, 'from the average stored record size (equal batches here: exact)');
  floor = start;
});
