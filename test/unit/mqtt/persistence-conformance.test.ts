// aedes-persistence's own conformance suite (abstract.js: the tests every aedes storage
// backend must pass) run against the log-backed persistence, each instance on a real Broker
// in a fresh temp dir. The suite is written for node:test; its TAP output is read by tap.
import { test } from 'node:test';
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker } from '../../../host/broker/broker.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { AppendBatcher } from '../../../gateway/mqtt/append.js';
import { LogPersistence } from '../../../gateway/mqtt/persistence.js';

const require = createRequire(import.meta.url);
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: { test: typeof test; testAsync: boolean; persistence: () => Promise<unknown> }) => void;

abstractPersistence({
  test,
  testAsync: true,
  async persistence() {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-mqtt-conformance-'));
    const metrics = new MetricsRegistry();
    const broker = await Broker.open({ dataDir: dir }, { logger: silentLogger, metrics });
    const batcher = new AppendBatcher(broker, silentLogger, { lingerMs: 0, appendsInFlightMax: 2, batchBytesMax: 1 << 20, batchRecordsMax: 1000 });
    const limits = { retainedMessagesMax: 10_000, persistentSessionsMax: 10_000, offlineMessagesPerClientMax: 10_000, qos2InflightInboundMax: 1_000 };
    return new (class extends LogPersistence {
      // The suite predates MQTT-3.3.1-1's DUP flag on a resend: its "pump" test replays the
      // queue through outgoingUpdate as aedes does and expects each packet back unchanged. The
      // mark alone is switched off here so every other assertion runs; the flag itself is
      // tested over a real socket (test/integration/mqtt-defects.test.ts, "DUP").
      protected override markResend(): void {}
      override async destroy(): Promise<void> {
        await super.destroy();
        await batcher.close();
        await broker.close();
        await rm(dir, { recursive: true, force: true });
      }
    })(broker, batcher, silentLogger, limits);
  },
});
