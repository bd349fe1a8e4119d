// Power cut after PUBACK: a publisher sends QoS 1 messages and records each one PUBACKed; the
// broker process is killed with SIGKILL at random moments, many times; after the last kill
// every PUBACKed message must be in the log. The broker is the real process (dist/host/main.js). Duplicates can only come from MQTT's own
// retransmission (none here: each connection is fresh, clean session), and are counted.
import t from 'tap';
import mqtt from 'mqtt';
import { Broker } from '../../host/broker/broker.js';
import { silentLogger } from '../../host/logging.js';
import { MetricsRegistry } from '../../host/metrics/registry.js';
import { readTopic } from '../unit/mqtt/fixture.js';
import { startBroker, tempDir } from '../helpers/index.js';

// How long kills continue; raise it on slow hardware for as many kills (MQTT_CRASH_BUDGET_MS).
const BUDGET_MS = Number(process.env.MQTT_CRASH_BUDGET_MS ?? 30_000);

t.test('every PUBACKed QoS 1 message survives kill -9 of the broker', async (t) => {
  const dataDir = await tempDir(t, 'tributary-mqtt-crash-');
  const acked = new Set<string>();
  let sent = 0;
  let rounds = 0;
  const started = Date.now();
  while (Date.now() - started < BUDGET_MS) {
    rounds++;
    const server = await startBroker(t, { dataDir, env: { TRIBUTARY_LOG_LEVEL: 'warn' } });
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.port('mqtt')}`, { clientId: `crash-pub-${rounds}`, reconnectPeriod: 0, connectTimeout: 5_000 });
    client.on('error', () => undefined);
    let stop = false;
    // a window of 16 publishes in flight, so kills land between append, fsync and PUBACK
    const worker = async (lane: number) => {
      for (let i = 0; !stop; i++) {
        const id = `r${rounds}-l${lane}-${i}`;
        sent++;
        try {
          await client.publishAsync(`crash/dev${lane}`, id, { qos: 1 });
          acked.add(id);
        } catch {
          return;
        }
      }
    };
    const workers = Array.from({ length: 16 }, (_, lane) => worker(lane));
    await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 700)));
    await server.kill();
    stop = true;
    client.end(true);
    await Promise.all(workers);
  }

  const metrics = new MetricsRegistry();
  const broker = await Broker.open({ dataDir }, { logger: silentLogger, metrics });
  t.teardown(() => broker.close());
  const stored = await readTopic(broker, 'crash');
  const counts = new Map<string, number>();
  for (const r of stored) counts.set(r.value!, (counts.get(r.value!) ?? 0) + 1);
  const missing = [...acked].filter((id) => !counts.has(id));
  const duplicates = [...counts.values()].filter((n) => n > 1).length;
  t.comment(`${rounds} kills, ${sent} publishes sent, ${acked.size} PUBACKed, ${stored.length} records stored, ${duplicates} duplicated ids`);
  t.ok(rounds >= 5, `${rounds} kill rounds`);
  t.ok(acked.size > 0, 'publishes were acknowledged');
  t.same(missing.slice(0, 10), [], `no PUBACKed message lost (${missing.length} missing)`);
  t.equal(duplicates, 0, 'no duplicates (no retransmission across fresh clean sessions)');
  for (const r of stored) {
    t.equal(r.key, `crash/${r.value!.split('-')[1].replace('l', 'dev')}`, 'key is the MQTT topic');
    break;
  }
});
