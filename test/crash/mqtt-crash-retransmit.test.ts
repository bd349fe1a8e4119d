// Power cut with MQTT's own retransmission: one persistent-session publisher (clean session 0)
// keeps publishing QoS 1 while the broker is killed with SIGKILL and restarted on the same
// port, again and again (the real process, dist/host/main.js); mqtt.js reconnects and resends what was not acknowledged. At the end
// every PUBACKed message is in the log, and the only duplicates are messages the client resent
// because the PUBACK never came (at most the publishes in flight at each kill) — counted.
import t from 'tap';
import { createServer } from 'node:net';
import mqtt from 'mqtt';
import { Broker } from '../../host/broker/broker.js';
import { silentLogger } from '../../host/logging.js';
import { MetricsRegistry } from '../../host/metrics/registry.js';
import { readTopic } from '../unit/mqtt/fixture.js';
import { startBroker, tempDir, sleep, slowMachineBoundMs } from '../helpers/index.js';

// How long kills continue; raise it on slow hardware for as many kills (MQTT_CRASH_BUDGET_MS).
const BUDGET_MS = Number(process.env.MQTT_CRASH_BUDGET_MS ?? 25_000);
/** Kills made whatever the budget: on a loaded machine each restart takes longer, and the count is what the test promises. */
const KILLS_MIN = 5;
const LANES = 8;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

type Teardown = Parameters<typeof startBroker>[0];

/** The real broker process on a fixed MQTT port (the killed one may hold it for a moment). */
async function startServer(t: Teardown, dataDir: string, port: number): Promise<() => Promise<void>> {
  for (let attempt = 0; ; attempt++) {
    try {
      const b = await startBroker(t, { dataDir, args: ['--mqtt-port', String(port)], env: { TRIBUTARY_LOG_LEVEL: 'warn' } });
      return () => b.kill();
    } catch (err) {
      if (attempt >= 20) throw err;
      await sleep(100);
    }
  }
}

t.test('QoS 1 with retransmission across kill -9: nothing acknowledged is lost, duplicates only from resends', async (t) => {
  const dataDir = await tempDir(t, 'tributary-mqtt-crash-rt-');
  const port = await freePort();
  let kill = await startServer(t, dataDir, port);
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'resender', clean: false, reconnectPeriod: 100, connectTimeout: 2_000 });
  client.on('error', () => undefined);
  t.teardown(() => client.end(true));
  const acked = new Set<string>();
  let stop = false;
  let sent = 0;
  const lanes = Array.from({ length: LANES }, async (_, lane) => {
    for (let i = 0; !stop; i++) {
      const id = `l${lane}-${i}`;
      sent++;
      await client.publishAsync(`rt/dev${lane}`, id, { qos: 1 }).then(
        () => acked.add(id),
        () => undefined,
      );
    }
  });
  let kills = 0;
  const started = Date.now();
  while (kills < KILLS_MIN || Date.now() - started < BUDGET_MS) {
    await sleep(300 + Math.floor(Math.random() * 1_200));
    await kill();
    kills++;
    kill = await startServer(t, dataDir, port);
  }
  stop = true;
  // the client reconnects to the last server and resends what is still unacknowledged
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(lanes), new Promise((r) => (timer = setTimeout(r, slowMachineBoundMs(15_000))))]);
  clearTimeout(timer);
  client.end(true);
  await kill();

  const broker = await Broker.open({ dataDir }, { logger: silentLogger, metrics: new MetricsRegistry() });
  t.teardown(() => broker.close());
  const stored = await readTopic(broker, 'rt');
  const counts = new Map<string, number>();
  for (const r of stored) counts.set(r.value!, (counts.get(r.value!) ?? 0) + 1);
  const missing = [...acked].filter((id) => !counts.has(id));
  const duplicated = [...counts.values()].filter((n) => n > 1).length;
  t.comment(`${kills} kills, ${sent} publishes, ${acked.size} PUBACKed, ${stored.length} records, ${duplicated} ids stored twice (resent after a kill)`);
  t.ok(kills >= KILLS_MIN, `${kills} kills`);
  t.ok(acked.size > 100, 'publishes were acknowledged across restarts');
  t.same(missing.slice(0, 10), [], `no PUBACKed message lost (${missing.length} missing)`);
  t.ok(duplicated <= kills * LANES, `duplicates (${duplicated}) at most the publishes in flight at the kills (${kills} × ${LANES})`);
  // per lane, the stored order is the publish order apart from resends
  for (let lane = 0; lane < LANES; lane++) {
    const seq = stored.filter((r) => r.key === `rt/dev${lane}`).map((r) => Number(r.value!.split('-')[1]));
    const firstSeen = seq.filter((n, i) => seq.indexOf(n) === i);
    t.same(firstSeen, [...firstSeen].sort((a, b) => a - b), `lane ${lane}: first copies in publish order`);
  }
});
