// Purpose: `broker.injectedFlushDelayMs` (benchmarks and tests only: an SD card's slow fsync
// imitated on a fast disk) is settable on `tributary start` like every key, validated at its
// boundaries with an error naming the key (bench/replication.bench.ts runs its 5 ms rows so).
import t, { type Test } from 'tap';
import { loadNodeConfig, prepareNode } from '../../../host/node.js';
import { validateBrokerOptions, defaultBrokerOptions } from '../../../host/broker/limits.js';
import { tempDir } from '../../helpers/index.js';

const KEY = 'broker.injectedFlushDelayMs';
const start = async (t: Test, value: string) => prepareNode(loadNodeConfig(['--data-dir', await tempDir(t), '--set', `${KEY}=${value}`], {}));

t.test('injectedFlushDelayMs: off by default, settable with --set and the environment', { timeout: 30_000 }, async (t) => {
  t.equal(defaultBrokerOptions.injectedFlushDelayMs, 0, 'no delay unless a bench or test asks');
  t.equal((await start(t, '5')).broker.injectedFlushDelayMs, 5, '--set reaches the broker options');
  const env = await prepareNode(loadNodeConfig(['--data-dir', await tempDir(t)], { TRIBUTARY_BROKER_INJECTED_FLUSH_DELAY_MS: '7' }));
  t.equal(env.broker.injectedFlushDelayMs, 7, 'and so does its environment variable');
});

t.test('injectedFlushDelayMs: boundaries 0 and 10000; past them the error names the key', { timeout: 30_000 }, async (t) => {
  t.equal((await start(t, '0')).broker.injectedFlushDelayMs, 0, '0 (off) is the lower bound');
  t.equal((await start(t, '10000')).broker.injectedFlushDelayMs, 10_000, '10 s is the upper bound');
  await t.rejects(start(t, '-1'), /broker\.injectedFlushDelayMs/, '-1 is refused');
  await t.rejects(start(t, '10001'), /broker\.injectedFlushDelayMs/, '10001 is refused');
  await t.rejects(start(t, '2.5'), /broker\.injectedFlushDelayMs/, 'a fraction is refused');
  t.throws(() => validateBrokerOptions({ injectedFlushDelayMs: 10_001 }), /injectedFlushDelayMs=10001/, 'the broker checks it too (embedders)');
  t.equal(validateBrokerOptions({ injectedFlushDelayMs: 10_000 }).injectedFlushDelayMs, 10_000);
});
