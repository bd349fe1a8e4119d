// gateway/mqtt/quiet-debug.ts: once it has run (the gateway imports it before aedes), the
// mqtt-packet parser's debug loggers are no-ops unless DEBUG enabled their namespace at start,
// and an enabled one still writes. Each case is a fresh node process (the `debug` package reads
// DEBUG once, and the wrapper changes the module cache of the process it runs in).
import t from 'tap';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const quietDebug = fileURLToPath(new URL('../../../gateway/mqtt/quiet-debug.js', import.meta.url));

// Loads the wrapper, then mqtt-packet's parser, parses one QoS 1 PUBLISH and prints what the
// factory gave the parser's namespace (a no-op or the real logger) and the packet's topic.
const probe = `
import(${JSON.stringify(quietDebug)}).then(() => {
  const { createRequire } = require('node:module');
  const fromPacket = createRequire(require.resolve('mqtt-packet'));
  const logger = fromPacket('debug')('mqtt-packet:parser');
  const parser = require('mqtt-packet').parser({ protocolVersion: 4 });
  let topic = '';
  parser.on('packet', (p) => (topic = p.topic));
  const t = Buffer.from('a/b');
  parser.parse(Buffer.concat([Buffer.from([0x32, 2 + t.length + 2 + 2, 0, t.length]), t, Buffer.from([0, 1]), Buffer.from('hi')]));
  console.log(JSON.stringify({ quiet: logger.enabled === false && logger.toString().length < 20, topic }));
});
`;

function run(env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  const { DEBUG: _ignored, ...inherited } = process.env;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', probe], { env: { ...inherited, ...env }, cwd: fileURLToPath(new URL('../../../', import.meta.url)) }, (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr })));
  });
}

t.test('without DEBUG the parser logs through a no-op and still parses', { timeout: 30_000 }, async (t) => {
  const { stdout, stderr } = await run({});
  t.same(JSON.parse(stdout.trim()), { quiet: true, topic: 'a/b' });
  t.notMatch(stderr, /mqtt-packet:parser/, 'nothing logged');
});

t.test('DEBUG=mqtt-packet:* at start keeps the real logger, which writes', { timeout: 30_000 }, async (t) => {
  const { stdout, stderr } = await run({ DEBUG: 'mqtt-packet:*' });
  t.same(JSON.parse(stdout.trim()), { quiet: false, topic: 'a/b' });
  t.match(stderr, /mqtt-packet:parser/, 'the parser logged');
});
