// Purpose: the registry limits not reached through its REST test, each at its boundary:
// references per schema, parsed schemas cached, requests in flight, the replay's read size
// (a replay in reads far smaller than the topic still sees every record), request body bytes.
import t from 'tap';
import net from 'node:net';
import { silentLogger } from '../../../host/logging.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { SchemaRegistry } from '../../../host/schemas/registry.js';
import { startRegistryServer } from '../../../host/schemas/http.js';
import { validateSchemaRegistryOptions, defaultSchemaRegistryOptions } from '../../../host/schemas/options.js';
import { referencesOf } from '../../../host/schemas/schema-types.js';
import { openBroker } from '../broker/broker-fixture.js';

const avroRec = (name: string) => JSON.stringify({ type: 'record', name, fields: [] });

t.test('referencesMax: at the limit accepted, one more refused', async (t) => {
  const limits = { ...defaultSchemaRegistryOptions, referencesMax: 3 };
  const refs = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `r${i}`, subject: 's', version: 1 }));
  t.equal(referencesOf(refs(3), limits).length, 3);
  t.throws(() => referencesOf(refs(4), limits), { code: 'LIMIT_EXCEEDED', message: /referencesMax 3/ });
});

t.test('parsedSchemasCachedMax: the cache never holds more', async (t) => {
  const { broker } = await openBroker(t);
  const r = await SchemaRegistry.open(broker, validateSchemaRegistryOptions({ port: -1, parsedSchemasCachedMax: 2 }), silentLogger);
  await r.setConfig(null, 'NONE');
  const ids = [];
  for (const n of ['A', 'B', 'C', 'D']) ids.push((await r.register('s', { schema: avroRec(n) })).id);
  for (const id of ids) t.ok(r.parsed(id), `schema ${id} parsed`);
  t.equal(r.parsedCached, 2, 'two cached, at the limit');
  t.ok(r.parsed(ids[0]), 'an evicted schema is parsed again on demand');
  t.equal(r.parsedCached, 2);
});

t.test('replayReadBytes: a replay in 1 KiB reads sees every record', async (t) => {
  const { broker } = await openBroker(t);
  const o = validateSchemaRegistryOptions({ port: -1, replayReadBytes: 1024 });
  const r = await SchemaRegistry.open(broker, o, silentLogger);
  await r.setConfig(null, 'NONE');
  for (let i = 0; i < 60; i++) await r.register(`s${i % 3}`, { schema: avroRec(`N${i}`) });
  t.ok(broker.offsets({ topic: '_schemas', partition: 0 }).logEndOffset > 60, 'the topic is many reads long');
  const again = await SchemaRegistry.open(broker, o, silentLogger);
  t.same(again.listSubjects(), ['s0', 's1', 's2']);
  t.equal(again.listVersions('s2').length, 20);
  t.equal(again.getVersion('s2', 'latest').id, 60, 'the last id replayed');
});

t.test('requestsInFlightMax and requestBytesMax at the listener', async (t) => {
  const { broker } = await openBroker(t);
  const o = validateSchemaRegistryOptions({ port: 0, host: '127.0.0.1', requestsInFlightMax: 1, requestBytesMax: 256 });
  const r = await SchemaRegistry.open(broker, o, silentLogger);
  const l = await startRegistryServer(r, silentLogger, new MetricsRegistry());
  t.teardown(() => l.close());
  const base = `http://127.0.0.1:${l.port}`;
  // one request held open: headers sent, body not finished
  const held = net.connect(l.port, '127.0.0.1');
  await new Promise((resolve) => held.once('connect', resolve));
  held.write('POST /subjects/x/versions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{');
  await new Promise((resolve) => setTimeout(resolve, 100));
  let answered = false;
  const waiting = fetch(`${base}/subjects`).then((r) => ((answered = true), r));
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.notOk(answered, 'a second request while one is in flight waits its turn (not refused, not served)');
  held.destroy();
  const served = await waiting;
  t.equal(served.status, 200, 'and is served once the first is gone');
  t.same(await served.json(), []);
  t.equal((await fetch(`${base}/subjects`)).status, 200, 'later requests are served at once');
  // a body of exactly requestBytesMax is read; one byte more is refused
  const body = (n: number) => {
    const base = JSON.stringify({ schema: '' });
    return JSON.stringify({ schema: 'x'.repeat(n - base.length) });
  };
  t.equal(Buffer.byteLength(body(256)), 256);
  const at = await fetch(`${base}/subjects/x/versions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(256) });
  t.equal((await at.json()).error_code, 42201, 'exactly requestBytesMax: read (and refused as not a schema)');
  const over = await fetch(`${base}/subjects/x/versions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(257) });
  t.equal(over.status, 413, 'one byte more: 413');
});

t.test('connectionsMax at the listener: the connection past it is closed, counted, and the others still served', async (t) => {
  const { broker } = await openBroker(t);
  const o = validateSchemaRegistryOptions({ port: 0, host: '127.0.0.1', connectionsMax: 2 });
  const r = await SchemaRegistry.open(broker, o, silentLogger);
  const metrics = new MetricsRegistry();
  const l = await startRegistryServer(r, silentLogger, metrics);
  t.teardown(() => l.close());
  const open = async () => {
    const s = net.connect(l.port, '127.0.0.1');
    await new Promise((resolve) => s.once('connect', resolve));
    return s;
  };
  // two connections (exactly connectionsMax) are served on keep-alive
  const ask = (s: net.Socket) =>
    new Promise<string>((resolve) => {
      let got = '';
      const onData = (d: Buffer) => {
        got += d.toString();
        if (got.includes('\r\n\r\n') && got.endsWith(']')) {
          s.off('data', onData);
          resolve(got);
        }
      };
      s.on('data', onData);
      s.once('close', () => resolve(got));
      s.write('GET /subjects HTTP/1.1\r\nhost: x\r\n\r\n');
    });
  const a = await open();
  const b = await open();
  t.match(await ask(a), /^HTTP\/1.1 200/, 'first connection served');
  t.match(await ask(b), /^HTTP\/1.1 200/, 'second connection (= connectionsMax) served');
  const c = await open();
  const closed = await new Promise<boolean>((resolve) => {
    c.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 2000);
  });
  t.ok(closed, 'the third connection is closed by the server');
  t.match(metrics.render(), /tributary_schemas_refused_connections_total 1\b/, 'and counted');
  t.match(await ask(a), /^HTTP\/1.1 200/, 'the open connections are still served');
  a.destroy();
  b.destroy();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const d = await fetch(`http://127.0.0.1:${l.port}/subjects`);
  t.equal(d.status, 200, 'a new connection is served once others have closed');
});
