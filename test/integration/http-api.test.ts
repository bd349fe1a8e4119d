// Purpose: every HTTP route answers correctly over a real socket to a real broker, and every client mistake gets its own 4xx (never a 500): bad JSON, unknown topic, oversize body (refused while streaming), bad query, auth.
import t from 'tap';
import { request as httpRequest } from 'node:http';
import { closeSync } from 'node:fs';
import { openGateway } from '../unit/ws/harness.js';

async function post(url: string, body: string, contentType = 'application/json', headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': contentType, ...headers } });
  return { status: res.status, body: await res.json() };
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body: body as Record<string, any>, type: res.headers.get('content-type') }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

t.test('http: POST records as a JSON array and as NDJSON returns offsets in record order', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('dev', 2);
  const a = await post(`${g.http}/topics/dev/records`, JSON.stringify([{ key: 'k1', value: 'one', headers: { h: 'v' } }, { value: { temp: 21.5 }, partition: 1 }, { value: 'three', partition: 1 }]));
  t.equal(a.status, 200);
  const keyed = g.broker.partitionForKey('dev', Buffer.from('k1'));
  t.same(a.body.offsets[0], { partition: keyed, offset: 0 }, 'a keyed record goes where the partitioner says');
  const base = keyed === 1 ? 1 : 0;
  t.same(a.body.offsets.slice(1), [{ partition: 1, offset: base }, { partition: 1, offset: base + 1 }]);
  const n = await post(`${g.http}/topics/dev/records`, '{"value":"x","partition":0}\n\n{"value":"y","partition":0}\n', 'application/x-ndjson');
  t.equal(n.status, 200);
  t.equal(n.body.offsets.length, 2);
  t.equal(n.body.offsets[1].offset - n.body.offsets[0].offset, 1);
  const single = await post(`${g.http}/topics/dev/records?encoding=base64`, JSON.stringify({ value: Buffer.from([0, 1, 2]).toString('base64'), partition: 0 }));
  t.equal(single.status, 200, 'a single object is one record');
  const read = await get(`${g.http}/topics/dev/records?partition=0&offset=${single.body.offsets[0].offset}&encoding=base64`);
  t.equal(read.body.records[0].value, 'AAEC');
});

t.test('http: GET /topics, /topics/{topic} and snapshot reads with partition, offset, limit', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('snap', 2, { 'retention.ms': 3_600_000 });
  await g.broker.produce('snap', [0, 1, 2, 3, 4].map((i) => ({ key: null, value: Buffer.from(`v${i}`) })), { acks: -1, partition: 1 });
  const list = await get(`${g.http}/topics`);
  t.equal(list.status, 200);
  t.same(list.body.topics.find((x: { name: string }) => x.name === 'snap'), { name: 'snap', partitions: 2, internal: false, records: 5, endOffsets: 5 });
  const one = await get(`${g.http}/topics/snap`);
  t.equal(one.status, 200);
  t.same(one.body.partitions, [
    { partition: 0, logStartOffset: 0, highWatermark: 0, logEndOffset: 0 },
    { partition: 1, logStartOffset: 0, highWatermark: 5, logEndOffset: 5 },
  ]);
  t.equal(one.body.config['retention.ms'], 3_600_000);
  const page = await get(`${g.http}/topics/snap/records?partition=1&offset=1&limit=2`);
  t.equal(page.status, 200);
  t.same(page.body.records.map((r: { offset: number; value: string }) => [r.offset, r.value]), [[1, 'v1'], [2, 'v2']]);
  t.equal(page.body.nextOffset, 3);
  t.equal(page.body.highWatermark, 5);
  const rest = await get(`${g.http}/topics/snap/records?partition=1&offset=3`);
  t.same(rest.body.records.map((r: { value: string }) => r.value), ['v3', 'v4']);
  const end = await get(`${g.http}/topics/snap/records?partition=1&offset=5`);
  t.same(end.body.records, [], 'reading at the end is an empty page, not an error');
});

t.test('http: 4xx for every client mistake, with the error code and a message naming the problem', async (t) => {
  const g = await openGateway(t, { httpReadLimitMax: 10 });
  await g.broker.createTopic('e', 1);
  const cases: Array<[string, Promise<{ status: number; body: Record<string, any> }>, number, string, RegExp]> = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ['bad JSON', post(`${g.http}/topics/e/records`, '[{"value":'), 400, 'INVALID_REQUEST', /not valid JSON/],
    ['bad NDJSON line', post(`${g.http}/topics/e/records`, '{"value":"a"}\n{oops}\n', 'application/x-ndjson'), 400, 'INVALID_REQUEST', /line 2/],
    ['empty array', post(`${g.http}/topics/e/records`, '[]'), 400, 'INVALID_REQUEST', /no records/],
    ['record not an object', post(`${g.http}/topics/e/records`, '[5]'), 400, 'INVALID_REQUEST', /record/],
    ['bad base64', post(`${g.http}/topics/e/records?encoding=base64`, '[{"value":"$$"}]'), 400, 'INVALID_REQUEST', /records\[0\]\.value/],
    ['bad encoding', post(`${g.http}/topics/e/records?encoding=hex`, '[{"value":"a"}]'), 400, 'INVALID_REQUEST', /encoding/],
    // a form body is refused as a CSRF vector (issue 13 finding 4): 415, no longer 400
    ['bad content type', post(`${g.http}/topics/e/records`, 'value=1', 'application/x-www-form-urlencoded'), 415, 'UNSUPPORTED_MEDIA_TYPE', /content-type/],
    ['unknown partition', post(`${g.http}/topics/e/records`, '[{"value":"a","partition":3}]'), 404, 'UNKNOWN_TOPIC_OR_PARTITION', /partition/],
    ['invalid topic name', post(`${g.http}/topics/${encodeURIComponent('bad name')}/records`, '[{"value":"a"}]'), 400, 'INVALID_TOPIC_EXCEPTION', /./],
    ['unknown topic', get(`${g.http}/topics/missing`), 404, 'UNKNOWN_TOPIC_OR_PARTITION', /missing/],
    ['unknown topic read', get(`${g.http}/topics/missing/records`), 404, 'UNKNOWN_TOPIC_OR_PARTITION', /missing/],
    ['bad partition query', get(`${g.http}/topics/e/records?partition=x`), 400, 'INVALID_REQUEST', /partition/],
    ['partition out of range', get(`${g.http}/topics/e/records?partition=7`), 404, 'UNKNOWN_TOPIC_OR_PARTITION', /partition/],
    ['offset past end', get(`${g.http}/topics/e/records?offset=99`), 416, 'OFFSET_OUT_OF_RANGE', /offset/],
    ['limit 0', get(`${g.http}/topics/e/records?limit=0`), 400, 'INVALID_REQUEST', /limit/],
    ['limit too large', get(`${g.http}/topics/e/records?limit=11`), 400, 'INVALID_REQUEST', /limit: must be 1\.\.10/],
    ['groups not available', get(`${g.http}/groups`), 503, 'COORDINATOR_NOT_AVAILABLE', /groups/],
    ['no route', get(`${g.http}/nothing/here`), 404, 'NOT_FOUND', /no route/],
    ['wrong method', post(`${g.http}/healthz`, '{}'), 405, 'METHOD_NOT_ALLOWED', /POST/],
  ];
  for (const [name, p, status, code, message] of cases) {
    const r = await p;
    t.equal(r.status, status, `${name}: status`);
    t.equal(r.body?.error?.code, code, `${name}: code`);
    t.match(r.body?.error?.message, message, `${name}: message`);
  }
  t.equal(g.broker.offsets({ topic: 'e', partition: 0 }).highWatermark, 0, 'nothing was stored by a refused request');
});

t.test('http: a body over httpBodyBytesMax is refused with 413, by content-length or while streaming', async (t) => {
  const max = 1024;
  const g = await openGateway(t, { httpBodyBytesMax: max, httpRecordsMax: 3 });
  await g.broker.createTopic('big', 1);
  const exact = JSON.stringify([{ value: 'x'.repeat(max - 14) }]);
  t.equal(Buffer.byteLength(exact), max);
  t.equal((await post(`${g.http}/topics/big/records`, exact)).status, 200, 'exactly the limit passes');
  const over = await post(`${g.http}/topics/big/records`, JSON.stringify([{ value: 'x'.repeat(max - 13) }]));
  t.equal(over.status, 413);
  t.equal(over.body.error.code, 'MESSAGE_TOO_LARGE');
  // Chunked upload without content-length: refused as soon as the count passes the limit.
  const [port] = [Number(g.address.split(':')[1])];
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/topics/big/records', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.write('[' + '{"value":"aaaaaaaaaa"},'.repeat(40));
    req.write('{"value":"tail"}]'.repeat(200));
    req.end();
  });
  t.equal(chunked.status, 413);
  t.match(JSON.parse(chunked.body).error.message, /httpBodyBytesMax=1024/);
  const tooMany = await post(`${g.http}/topics/big/records`, JSON.stringify([{ value: 'a' }, { value: 'b' }, { value: 'c' }, { value: 'd' }]));
  t.equal(tooMany.status, 413);
  t.equal(tooMany.body.error.code, 'RECORD_LIST_TOO_LARGE');
  t.equal(g.broker.offsets({ topic: 'big', partition: 0 }).highWatermark, 1, 'only the request at the limit was stored');
  t.equal((await get(`${g.http}/healthz`)).status, 200, 'the gateway keeps serving');
});

t.test('http: /healthz and /readyz follow deps.health(); /metrics is Prometheus text with process metrics; /stats is JSON', async (t) => {
  const g = await openGateway(t);
  g.setHealthy(false);
  const starting = await get(`${g.http}/healthz`);
  t.equal(starting.status, 503, 'not ready: unhealthy');
  t.match(starting.body, { status: 'unhealthy', problems: ['not ready: starting or stopping'], failedPartitions: [], disk: { belowFloor: false } });
  t.same([(await get(`${g.http}/readyz`)).status, (await get(`${g.http}/readyz`)).body], [503, { status: 'not ready' }]);
  g.setHealthy(true);
  const ready = await get(`${g.http}/healthz`);
  t.equal(ready.status, 200);
  t.match(ready.body, { status: 'ok', problems: [], failedPartitions: [] });
  t.match(ready.body, { http: { engine: process.env.TRIBUTARY_HTTP_ENGINE === 'node' ? 'node' : 'uws', build: String } }, '/healthz names the engine serving the door');
  t.same([(await get(`${g.http}/readyz`)).status, (await get(`${g.http}/readyz`)).body], [200, { status: 'ready' }]);
  const metrics = await get(`${g.http}/metrics`);
  t.equal(metrics.status, 200);
  t.match(metrics.type, /text\/plain; version=0\.0\.4/);
  const text = String(metrics.body);
  t.match(text, /^process_resident_memory_bytes \d+$/m);
  t.match(text, /^process_cpu_seconds_total [\d.]+$/m);
  t.match(text, /^nodejs_eventloop_lag_seconds\{quantile="0\.99"\} [\d.e-]+$/m);
  t.match(text, /^tributary_ws_connections 0$/m);
  t.match(text, /^# TYPE tributary_http_requests_total counter$/m);
  const stats = await get(`${g.http}/stats`);
  t.equal(stats.status, 200);
  t.match(stats.body, { process: { rssBytes: Number, eventLoopDelayP99Ms: Number }, connections: { ws: 0 }, ws: { sockets: 0, ...(process.env.TRIBUTARY_HTTP_ENGINE === 'node' ? { engine: 'node', build: /^node:http \+ ws / } : { engine: 'uws', build: /native/ }) }, topics: Array });
  t.equal((stats.body as { uplink?: unknown }).uplink, null, '/stats: uplink is null without an uplink');
});

t.test('http: the console is served at / with its scripts', async (t) => {
  const g = await openGateway(t);
  const page = await get(`${g.http}/`);
  t.equal(page.status, 200);
  t.match(page.type, /text\/html/);
  t.match(String(page.body), /<canvas id="rate-chart"/);
  const js = await get(`${g.http}/console/app.js`);
  t.match(js.type, /javascript/);
  t.match(String(js.body), /tributary\.json\.v1/);
  t.equal((await get(`${g.http}/console/missing.js`)).status, 404);
  const off = await openGateway(t, { console: false });
  t.equal((await get(`${off.http}/`)).status, 404);
});

t.test('http: /healthz is 503 naming a failed partition and a listener that went down; /readyz stays 200', async (t) => {
  const g = await openGateway(t);
  await g.broker.createTopic('fails', 1);
  g.setListener('kafka', true);
  t.equal((await get(`${g.http}/healthz`)).status, 200, 'healthy with its listener up');
  g.setListener('kafka', false);
  const down = await get(`${g.http}/healthz`);
  t.equal(down.status, 503);
  t.match(down.body, { status: 'unhealthy', problems: ['listener kafka is down'], listeners: { kafka: 'down' } });
  g.setListener('kafka', true);
  // Break the partition's active segment descriptor (not a full disk): its log fails for good.
  const log = g.broker.partitionObject({ topic: 'fails', partition: 0 }).log as unknown as { active: { fd: number } };
  closeSync(log.active.fd);
  await t.rejects(g.broker.produce('fails', [{ key: null, value: Buffer.from('x') }], { acks: -1 }), { code: 'KAFKA_STORAGE_ERROR' });
  log.active.fd = -1; // closed here; keep teardown from closing a reused descriptor number
  const failed = await get(`${g.http}/healthz`);
  t.equal(failed.status, 503, 'a failed partition: 503');
  t.match(failed.body.problems[0], /^partition fails-0: log storage failed: EBADF/);
  t.same(failed.body.failedPartitions.length, 1);
  t.equal((await get(`${g.http}/readyz`)).status, 200, '/readyz: still serving');
});

t.test('http auth: 401 without a token, per-topic 403, healthz stays open', async (t) => {
  const g = await openGateway(t, { tokens: [{ token: 'device-token-1', read: ['telemetry'], write: ['telemetry'], admin: false }, { token: 'admin-token-1', read: ['*'], write: [], admin: true }] });
  await g.broker.createTopic('telemetry', 1);
  await g.broker.createTopic('private', 1);
  const anon = await post(`${g.http}/topics/telemetry/records`, '[{"value":"a"}]');
  t.equal(anon.status, 401);
  t.equal(anon.body.error.code, 'NOT_AUTHORIZED');
  t.equal((await get(`${g.http}/metrics`)).status, 401);
  const auth = { authorization: 'Bearer device-token-1' };
  t.equal((await post(`${g.http}/topics/telemetry/records`, '[{"value":"a"}]', 'application/json', auth)).status, 200);
  const denied = await post(`${g.http}/topics/private/records`, '[{"value":"a"}]', 'application/json', auth);
  t.equal(denied.status, 403);
  t.equal(denied.body.error.code, 'TOPIC_AUTHORIZATION_FAILED');
  t.equal((await get(`${g.http}/topics/private`, auth)).status, 403);
  const topics = await get(`${g.http}/topics?access_token=device-token-1`);
  t.same(topics.body.topics.map((x: { name: string }) => x.name), ['telemetry'], 'listing shows only readable topics');
  t.equal((await get(`${g.http}/healthz`)).status, 200);
  const notAdmin = await get(`${g.http}/metrics`, auth);
  t.same([notAdmin.status, notAdmin.body.error.code], [403, 'CLUSTER_AUTHORIZATION_FAILED'], 'a device token cannot scrape metrics');
  t.equal((await get(`${g.http}/stats`, { authorization: 'Bearer admin-token-1' })).status, 200);
});

t.test('http: POST /topics creates a topic with partitions and config; DELETE /topics/{topic} deletes it; mistakes are 4xx', async (t) => {
  const g = await openGateway(t);
  const created = await post(`${g.http}/topics`, JSON.stringify({ name: 'made', partitions: 3, config: { 'retention.ms': '60000', flush: 'interval' } }));
  t.equal(created.status, 200);
  t.match(created.body, { name: 'made', partitions: 3, internal: false, config: { 'retention.ms': 60000, flush: 'interval' } });
  t.equal(g.broker.describeTopic('made')?.partitions, 3);
  const again = await post(`${g.http}/topics`, JSON.stringify({ name: 'made' }));
  t.same([again.status, again.body.error.code], [409, 'TOPIC_ALREADY_EXISTS']);
  const badConfig = await post(`${g.http}/topics`, JSON.stringify({ name: 'x1', config: { 'retention.ms': 'soon' } }));
  t.same([badConfig.status, badConfig.body.error.code], [400, 'INVALID_CONFIG']);
  t.match(badConfig.body.error.message, /retention\.ms/);
  const badParts = await post(`${g.http}/topics`, JSON.stringify({ name: 'x2', partitions: 0 }));
  t.same([badParts.status, badParts.body.error.code], [400, 'INVALID_PARTITIONS']);
  const noName = await post(`${g.http}/topics`, JSON.stringify({ partitions: 1 }));
  t.same([noName.status, noName.body.error.code], [400, 'INVALID_REQUEST']);
  const deleted = await fetch(`${g.http}/topics/made`, { method: 'DELETE' });
  t.same([deleted.status, await deleted.json()], [200, { deleted: 'made' }]);
  t.notOk(g.broker.describeTopic('made'));
  const missing = await fetch(`${g.http}/topics/made`, { method: 'DELETE' });
  t.same([missing.status, (await missing.json()).error.code], [404, 'UNKNOWN_TOPIC_OR_PARTITION']);
  const wrong = await fetch(`${g.http}/topics/made/records`, { method: 'DELETE' });
  t.equal(wrong.status, 405);
});
