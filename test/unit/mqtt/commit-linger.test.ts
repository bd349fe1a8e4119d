// The MQTT append batcher's commit linger (mqtt.commitLingerMs): a stream topic's next append
// starts no sooner than the linger after its previous one started, never later than that (plus
// timer resolution), and at once when the batch is full; every callback still comes after its
// record is durable in the log (read back here). On a real Broker in a temp dir.
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Broker } from '../../../host/broker/broker.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { AppendBatcher, type BatcherOptions } from '../../../gateway/mqtt/append.js';
import { resolveMqttOptions, validateMqttOptions } from '../../../gateway/mqtt/options.js';
import { loadNodeConfig } from '../../../host/node.js';
import { tempDir } from '../../helpers/index.js';

const TIMER_SLACK_MS = 250; // a loaded CI machine fires timers late; the bound checked is "not much later"

async function openBatcher(t: Test, options: Partial<BatcherOptions>): Promise<{ broker: Broker; batcher: AppendBatcher; starts: number[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-commit-linger-'));
  const broker = await Broker.open({ dataDir: dir }, { logger: silentLogger, metrics: new MetricsRegistry() });
  const starts: number[] = [];
  // the batcher's produces, timed where they start (the broker itself is untouched)
  const timed = new Proxy(broker, {
    get(target, prop, receiver) {
      if (prop === 'produce') return (...args: Parameters<Broker['produce']>) => (starts.push(performance.now()), target.produce(...args));
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const batcher = new AppendBatcher(timed, silentLogger, { lingerMs: 0, appendsInFlightMax: 1, batchBytesMax: 1 << 20, batchRecordsMax: 1000, ...options });
  t.teardown(async () => {
    await batcher.close();
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  });
  await broker.ensureTopic('linger');
  return { broker, batcher, starts };
}

function append(batcher: AppendBatcher, value: string): Promise<number> {
  return new Promise((resolve, reject) => batcher.append('linger', 0, { key: null, value: Buffer.from(value) }, 64, true, (err, offset) => (err ? reject(err) : resolve(offset!))));
}

t.test('the next commit waits for the linger after the previous one started, and no longer', { timeout: 30_000 }, async (t) => {
  const lingerMs = 200; // longer than an fsync of a loaded CI disk, so without the linger the gap would be shorter
  const { broker, batcher, starts } = await openBatcher(t, { commitLingerMs: lingerMs });
  await append(batcher, 'first');
  // queued right after the first commit: it may start only `lingerMs` after the first one did
  const queuedAt = performance.now();
  const [a, b] = await Promise.all([append(batcher, 'second'), append(batcher, 'third')]);
  t.equal(starts.length, 2, 'the two records queued during the linger went in one commit');
  const gap = starts[1] - starts[0];
  t.ok(gap >= lingerMs - 1, `second commit ${gap.toFixed(1)} ms after the first (linger ${lingerMs} ms)`);
  t.ok(starts[1] - queuedAt <= lingerMs + TIMER_SLACK_MS, `waited ${(starts[1] - queuedAt).toFixed(1)} ms, bounded by the linger`);
  // acknowledged only once durable: every acknowledged record is readable below the high watermark
  const offsets = broker.offsets({ topic: 'linger', partition: 0 });
  t.ok(offsets.highWatermark > Math.max(a, b), 'both records durable when their callbacks ran');
});

t.test('a full batch goes at once, linger or not', { timeout: 30_000 }, async (t) => {
  const { batcher, starts } = await openBatcher(t, { commitLingerMs: 100, batchRecordsMax: 2 });
  await append(batcher, 'first');
  const t0 = performance.now();
  await Promise.all([append(batcher, 'a'), append(batcher, 'b')]);
  t.equal(starts.length, 2);
  t.ok(starts[1] - t0 < 100, `a full batch did not wait for the linger (${(starts[1] - t0).toFixed(1)} ms)`);
});

t.test('commitLingerMs 0 commits as soon as the previous commit settled', { timeout: 30_000 }, async (t) => {
  const { batcher, starts } = await openBatcher(t, { commitLingerMs: 0 });
  await append(batcher, 'first');
  const t0 = performance.now();
  await append(batcher, 'second');
  t.equal(starts.length, 2);
  t.ok(starts[1] - t0 < TIMER_SLACK_MS, 'no linger');
});

t.test('mqtt.commitLingerMs is validated at its bounds, naming the key', async (t) => {
  t.doesNotThrow(() => validateMqttOptions(resolveMqttOptions({ commitLingerMs: 0 })));
  t.doesNotThrow(() => validateMqttOptions(resolveMqttOptions({ commitLingerMs: 100 })));
  t.throws(() => validateMqttOptions(resolveMqttOptions({ commitLingerMs: 101 })), /mqtt\.commitLingerMs/);
  t.throws(() => validateMqttOptions(resolveMqttOptions({ commitLingerMs: -1 })), /mqtt\.commitLingerMs/);
  const dataDir = await tempDir(t);
  t.throws(() => loadNodeConfig(['--data-dir', dataDir, '--set', 'mqtt.commitLingerMs=101'], {}), { message: 'config: mqtt.commitLingerMs = "101" (flag): must be an integer from 0 to 100' });
  t.throws(() => loadNodeConfig(['--data-dir', dataDir], { TRIBUTARY_MQTT_COMMIT_LINGER_MS: '-1' }), /mqtt\.commitLingerMs = "-1" \(env TRIBUTARY_MQTT_COMMIT_LINGER_MS\)/);
  t.doesNotThrow(() => loadNodeConfig(['--data-dir', dataDir, '--set', 'mqtt.commitLingerMs=100'], {}));
});
