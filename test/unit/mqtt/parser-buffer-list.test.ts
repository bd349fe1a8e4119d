// gateway/mqtt/parser-buffer-list.ts: once it has run (the gateway imports it before aedes),
// mqtt-packet's parser keeps its bytes in bl's plain BufferList, readable-stream is never loaded,
// and the parser still parses packets cut at every byte; if `bl` was loaded before, nothing is
// changed. Each case is a fresh node process (the change is to the module cache of the process
// it runs in).
import t from 'tap';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const parserBufferList = fileURLToPath(new URL('../../../gateway/mqtt/parser-buffer-list.js', import.meta.url));

// Optionally loads bl first; then the module, then mqtt-packet's parser. Feeds it a QoS 1 PUBLISH
// with properties (MQTT 5), a SUBSCRIBE and a PINGREQ, written once whole and then cut at every
// byte boundary, and prints the packets parsed, what the parser's list is, and whether any
// readable-stream module was loaded.
const probe = (loadBlFirst: boolean) => `
const { createRequire } = require('node:module');
if (${loadBlFirst}) createRequire(require.resolve('mqtt-packet'))('bl');
import(${JSON.stringify(parserBufferList)}).then((m) => {
  const mqtt = require('mqtt-packet');
  const opts = { protocolVersion: 5 };
  const bytes = Buffer.concat([
    mqtt.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('reading'), qos: 1, messageId: 7, properties: { userProperties: { k: 'v' } } }, opts),
    mqtt.generate({ cmd: 'subscribe', messageId: 8, subscriptions: [{ topic: 's/#', qos: 1 }] }, opts),
    mqtt.generate({ cmd: 'pingreq' }, opts),
  ]);
  const runs = [];
  for (let cut = 0; cut < bytes.length; cut++) {
    const parser = mqtt.parser(opts);
    const got = [];
    parser.on('packet', (p) => got.push(p.cmd + ':' + (p.topic ?? p.subscriptions?.[0].topic ?? '') + ':' + (p.payload ? p.payload.toString() : '') + ':' + (p.messageId ?? '') + ':' + JSON.stringify(p.properties?.userProperties ?? {})));
    parser.on('error', (e) => got.push('error ' + e.message));
    if (cut > 0) parser.parse(bytes.subarray(0, cut));
    parser.parse(bytes.subarray(cut));
    runs.push(got.join(' | '));
  }
  const list = mqtt.parser(opts)._list;
  console.log(JSON.stringify({
    status: m.parserBufferList,
    distinct: [...new Set(runs)],
    runs: runs.length,
    bytes: bytes.length,
    listIsStream: typeof list.pipe === 'function',
    listConstructor: list.constructor.name,
    readableStreamLoaded: Object.keys(require.cache).some((p) => p.includes('/readable-stream/')),
  }));
});
`;

function run(loadBlFirst: boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', probe(loadBlFirst)], { cwd: fileURLToPath(new URL('../../../', import.meta.url)) }, (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout.trim()) as Record<string, unknown>)));
  });
}

const EXPECTED = 'publish:a/b:reading:7:{"k":"v"} | subscribe:s/#::8:{} | pingreq::::{}';

t.test('the parser keeps its bytes in a plain BufferList, readable-stream is not loaded, packets cut anywhere parse', { timeout: 30_000 }, async (t) => {
  const r = await run(false);
  t.equal(r.status, 'installed');
  t.equal(r.listIsStream, false, 'the parser list is not a stream');
  t.equal(r.listConstructor, 'BufferList');
  t.equal(r.readableStreamLoaded, false, 'no readable-stream module loaded');
  t.equal(r.runs, r.bytes, `cut at each of the ${r.bytes} bytes`);
  t.same(r.distinct, [EXPECTED], 'the same three packets whatever the cut');
});

t.test('with bl already loaded nothing is changed (its stream may have a user)', { timeout: 30_000 }, async (t) => {
  const r = await run(true);
  t.equal(r.status, 'already loaded');
  t.equal(r.listIsStream, true, 'the parser keeps the BufferListStream');
  t.same(r.distinct, [EXPECTED]);
});
