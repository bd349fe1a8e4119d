// Purpose: the HTTP API, the WebSocket protocol and every WebSocket limit behave the same when the door runs on the node engine (node:http + ws) as on native uWebSockets.js: the same test files, run here with http.engine = node (TRIBUTARY_HTTP_ENGINE, which in-process gateways and broker processes both read).
//
// The suites are imported after the variable is set (dynamic imports: static ones would run
// first). A first test proves the engine really is node, so this file cannot pass on uWS.
import t from 'tap';

process.env.TRIBUTARY_HTTP_ENGINE = 'node';
const { openGateway } = await import('../unit/ws/harness.js');

t.test('http engine node: the in-process gateway is served by node:http + ws', async (t) => {
  const g = await openGateway(t);
  const health = (await (await fetch(`${g.http}/healthz`)).json()) as { http: { engine: string; build: string } };
  t.equal(health.http.engine, 'node');
  t.match(health.http.build, /^node:http \+ ws \d/);
});

await import('./http-api.test.js');
await import('./ws-protocol.test.js');
await import('./ws-limits.test.js');
await import('../unit/ws/consumer-protocol.test.js');
