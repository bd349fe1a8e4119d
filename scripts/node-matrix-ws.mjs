// The node matrix's WebSocket check (scripts/node-matrix.sh), run by the Node binary under test:
// subscribe to TOPIC from the earliest offset over the dashboard protocol (tributary.json.v1)
// and print the first N records as "key=value" lines, then close with 1000. Exit 1 with the
// reason after TIMEOUT_MS or on an error frame, so the matrix line can say what broke.
//
//   node scripts/node-matrix-ws.mjs HOST:PORT TOPIC N [TIMEOUT_MS]
import WebSocket from 'ws';

const [address, topic, count, timeoutMs = '20000'] = process.argv.slice(2);
const want = Number(count);
const got = [];
const ws = new WebSocket(`ws://${address}/ws`, ['tributary.json.v1']);
const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms with ${got.length} of ${want} records`), Number(timeoutMs));

function fail(why) {
  console.error(`ws-smoke: ${why}`);
  process.exit(1);
}

ws.on('error', (err) => fail(err.message));
ws.on('unexpected-response', (_req, res) => fail(`HTTP ${res.statusCode} instead of an upgrade`));
ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', id: 's', topic, start: 'earliest' })));
ws.on('message', (data) => {
  const frame = JSON.parse(String(data));
  if (frame.type === 'error') fail(`error frame ${frame.code}: ${frame.message}`);
  if (frame.type !== 'records') return;
  for (const r of frame.records) got.push(`${r.key}=${r.value}`);
  if (got.length >= want) {
    clearTimeout(timer);
    console.log(got.slice(0, want).join('\n'));
    ws.close(1000);
  }
});
ws.on('close', (code) => {
  if (got.length < want) fail(`closed with ${code} after ${got.length} of ${want} records`);
});
