// A broker process for the MQTT crash test (until host/main.ts starts the MQTT gateway): opens
// the Broker on a data dir and the MQTT gateway on a random loopback port, prints one JSON
// line {"msg":"ready","listeners":{"mqtt":"127.0.0.1:port"}}, and runs until killed.
import { Broker } from '../../../host/broker/broker.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { openMqttGateway } from '../../../gateway/mqtt/index.js';

const dataDir = process.argv[2];
const port = Number(process.argv[3] ?? 0);
if (!dataDir) throw new Error('usage: crash-server.js DATA_DIR [PORT]');
const metrics = new MetricsRegistry();
const broker = await Broker.open({ dataDir }, { logger: silentLogger, metrics });
const gateway = await openMqttGateway({ broker, logger: silentLogger, metrics }, { host: '127.0.0.1', port, wsPort: -1 });
process.stdout.write(JSON.stringify({ msg: 'ready', listeners: { mqtt: gateway.listeners[0].address } }) + '\n');
process.on('SIGTERM', () => {
  void gateway.close().then(() => broker.close()).then(() => process.exit(0));
});
