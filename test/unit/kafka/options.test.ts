// Listener options: each is validated at start with a message naming it, the idle timeout
// closes a silent connection, and the defaults carry every key.
import t from 'tap';
import net from 'node:net';
import { startInProcess } from './harness.js';
import { defaultKafkaServerOptions, startKafkaServer } from '../../../host/kafka/server.js';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { decode, Reader, Writer } from '../../../host/kafka/protocol/codec.js';
import { handlers } from '../../../host/kafka/apis/index.js';
import type { BrokerApi } from '../../../host/broker/api.js';

t.test('kafka options: bad values are refused at start, naming the option', async (t) => {
  const deps = { broker: {} as BrokerApi, groups: undefined, logger: silentLogger, metrics: new MetricsRegistry(), producerIds: { allocate: async () => 0 } as never };
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ maxRequestBytes: 0 }, /maxRequestBytes must be a positive integer/],
    [{ maxConnections: -1 }, /maxConnections/],
    [{ maxInFlightRequestsPerConnection: 1.5 }, /maxInFlightRequestsPerConnection/],
    [{ port: 70000 }, /port must be 0\.\.65535/],
    [{ advertisedPort: 'x' }, /advertisedPort must be null or a port/],
    [{ advertisedHost: '' }, /advertisedHost/],
    [{ nodeId: -2 }, /nodeId/],
    [{ idleTimeoutMs: 0 }, /idleTimeoutMs/],
  ];
  for (const [bad, message] of cases) {
    await t.rejects(startKafkaServer(deps, { ...bad, port: (bad.port as number) ?? 0, host: '127.0.0.1' } as never), { message }, JSON.stringify(bad));
  }
  t.ok(Object.keys(defaultKafkaServerOptions).length >= 17, 'every option has a default');
});

t.test('kafka options: an idle connection is closed after idleTimeoutMs; an advertised port given as text is what Metadata names', async (t) => {
  const k = await startInProcess(t, { idleTimeoutMs: 300, advertisedPort: '19999' as unknown as number });
  const closedAfter = await new Promise<number>((resolve, reject) => {
    const started = Date.now();
    const s = net.connect(k.port, '127.0.0.1');
    s.on('close', () => resolve(Date.now() - started));
    s.on('error', reject);
  });
  t.ok(closedAfter >= 250 && closedAfter < 5000, `closed after ${closedAfter} ms of silence`);

  // Metadata v1 names the advertised port, not the bound one.
  const w = new Writer();
  w.int32(0);
  w.int16(3);
  w.int16(1);
  w.int32(7);
  w.string('opts', false);
  w.int32(0); // no topics
  const req = Buffer.concat(w.finish());
  req.writeInt32BE(req.length - 4, 0);
  const resp = await new Promise<Buffer>((resolve, reject) => {
    const s = net.connect(k.port, '127.0.0.1', () => s.write(req));
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        s.destroy();
        resolve(buf.subarray(8, 4 + buf.readInt32BE(0)));
      }
    });
    s.on('error', reject);
  });
  const meta = decode(handlers.get(3)!.response, new Reader(resp), 1, false);
  t.same(meta.brokers, [{ nodeId: 0, host: '127.0.0.1', port: 19999, rack: null }]);
});
