// Purpose: WebSocket backpressure (slow subscribers bounded, resumed ones complete), consumer groups over WebSocket, the Kafka+WebSocket shared group and the web console in Chromium behave the same on the node engine (node:http + ws) as on native uWebSockets.js: the same test files, run here with http.engine = node in the broker processes they start.
//
// The suites are imported after TRIBUTARY_HTTP_ENGINE is set; a first test proves a broker
// process started this way names the node engine in its ready line and in /healthz.
import t from 'tap';
import { startBroker, tempDir } from '../helpers/index.js';

process.env.TRIBUTARY_HTTP_ENGINE = 'node';

t.test('http engine node: a broker process with TRIBUTARY_HTTP_ENGINE=node serves the door on node:http + ws and says so', async (t) => {
  const broker = await startBroker(t, { dataDir: await tempDir(t, 'tributary-engine-') });
  const ready = broker.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:'))!;
  t.match(ready.msg, /http 127\.0\.0\.1:\d+ \(node: node:http \+ ws /, 'the ready line names the engine');
  t.match(ready.engines, { http: /^node: / });
  const health = (await (await fetch(`http://${broker.listeners.http}/healthz`)).json()) as { http: { engine: string } };
  t.equal(health.http.engine, 'node');
  t.equal(await broker.stop(), 0);
});

await import('./ws-backpressure.test.js');
await import('./ws-groups.test.js');
await import('../interop/kafka-groups-ws.test.js');
await import('../interop/browser-console.test.js');
