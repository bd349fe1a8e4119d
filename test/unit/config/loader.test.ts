// The config loader: precedence (defaults < file < env < flags) and errors that name the key,
// the value, where it came from and what is allowed.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig, ConfigError, envName } from '../../../host/config/loader.js';
import { tempDir } from '../../helpers/index.js';

const sections = () => ({
  kafka: { port: 9092, maxRequestBytes: 8 << 20, host: '' as string },
  mqtt: { port: 1883, wsPort: 8083, routes: [] as unknown[], requireAuth: false },
  http: { port: 8080 },
});

t.test('config: env names are upper snake case of the dotted path', async (t) => {
  t.equal(envName('kafka.maxRequestBytes'), 'TRIBUTARY_KAFKA_MAX_REQUEST_BYTES');
  t.equal(envName('dataDir'), 'TRIBUTARY_DATA_DIR');
});

t.test('config: defaults apply when nothing is given', async (t) => {
  const c = loadConfig({ argv: [], env: {}, sections: sections() });
  t.equal(c.top.dataDir, './data');
  t.equal(c.sections.kafka.port, 9092);
  t.equal(c.sections.mqtt.requireAuth, false);
});

t.test('config: file < env < flags', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'c.yaml');
  await writeFile(file, 'dataDir: /from/file\nkafka:\n  port: 1000\n  maxRequestBytes: 1024\nmqtt:\n  port: 2000\n  routes:\n    - { match: "a/#", topic: a }\n');
  const c = loadConfig({
    argv: ['--config', file, '--kafka-port', '3000', '--set', 'http.port=4000'],
    env: { TRIBUTARY_KAFKA_PORT: '2500', TRIBUTARY_MQTT_PORT: '2600', TRIBUTARY_MQTT_REQUIRE_AUTH: 'true' },
    sections: sections(),
  });
  t.equal(c.top.dataDir, '/from/file');
  t.equal(c.sections.kafka.port, 3000, 'flag beats env and file');
  t.equal(c.sections.mqtt.port, 2600, 'env beats file');
  t.equal(c.sections.kafka.maxRequestBytes, 1024, 'file beats default');
  t.equal(c.sections.http.port, 4000);
  t.equal(c.sections.mqtt.requireAuth, true);
  t.same(c.sections.mqtt.routes, [{ match: 'a/#', topic: 'a' }]);
});

t.test('config: JSON files work too', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'c.json');
  await writeFile(file, JSON.stringify({ http: { port: 1 } }));
  t.equal(loadConfig({ argv: ['--config', file], env: {}, sections: sections() }).sections.http.port, 1);
});

t.test('config: wrong types name the key, value, source and what is allowed', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'bad.yaml');
  await writeFile(file, 'kafka:\n  port: "ninety"\n');
  const e1 = t.throws(() => loadConfig({ argv: ['--config', file], env: {}, sections: sections() })) as unknown as ConfigError;
  t.type(e1, ConfigError);
  t.match(e1.message, /kafka\.port = "ninety" \(file .*bad\.yaml\): must be an integer/);

  t.throws(() => loadConfig({ argv: [], env: { TRIBUTARY_KAFKA_MAX_REQUEST_BYTES: '1.5' }, sections: sections() }), /kafka\.maxRequestBytes = "1\.5" \(env TRIBUTARY_KAFKA_MAX_REQUEST_BYTES\): must be an integer/);
  t.throws(() => loadConfig({ argv: ['--http-port', '70000'], env: {}, sections: sections() }), /http\.port = "70000" \(flag\): must be a port number/);
  t.throws(() => loadConfig({ argv: [], env: { TRIBUTARY_MQTT_REQUIRE_AUTH: 'maybe' }, sections: sections() }), /must be true or false/);
  t.throws(() => loadConfig({ argv: [], env: { TRIBUTARY_MQTT_ROUTES: '{not json' }, sections: sections() }), /must be JSON/);
  t.throws(() => loadConfig({ argv: ['--log-level', 'loud'], env: {}, sections: sections() }), /logLevel = "loud" \(flag\): must be one of/);
});

t.test('config: unknown keys, sections, env variables and flags are refused', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'u.yaml');
  await writeFile(file, 'kafka:\n  prot: 1\n');
  t.throws(() => loadConfig({ argv: ['--config', file], env: {}, sections: sections() }), /kafka\.prot .* unknown key in "kafka"; keys are port, maxRequestBytes, host/);
  await writeFile(file, 'kafak:\n  port: 1\n');
  t.throws(() => loadConfig({ argv: ['--config', file], env: {}, sections: sections() }), /unknown key; top-level keys are/);
  t.throws(() => loadConfig({ argv: [], env: { TRIBUTARY_KAFKA_PROT: '1' }, sections: sections() }), /TRIBUTARY_KAFKA_PROT .* unknown TRIBUTARY_\* variable/);
  // the admin CLI's variables (a shell that sets them can still start a broker); a typo of one is still refused
  const cliEnv = { TRIBUTARY_BROKER: 'http://127.0.0.1:8080', TRIBUTARY_TOKEN: 'abcdefgh1', TRIBUTARY_KAFKA: '127.0.0.1:9092', TRIBUTARY_SASL_USER: 'a', TRIBUTARY_SASL_PASSWORD: 'b', TRIBUTARY_SCRAM_ITERATIONS: '4096' };
  t.equal(loadConfig({ argv: [], env: cliEnv, sections: sections() }).sections.kafka.port, 9092, "the admin CLI's variables are ignored");
  t.throws(() => loadConfig({ argv: [], env: { TRIBUTARY_BROKR: 'x' }, sections: sections() }), /TRIBUTARY_BROKR .* unknown TRIBUTARY_\* variable/);
  t.throws(() => loadConfig({ argv: ['--kafka-prot', '1'], env: {}, sections: sections() }), /--kafka-prot .* unknown flag/);
  t.throws(() => loadConfig({ argv: ['--kafka-port'], env: {}, sections: sections() }), /--kafka-port .* needs a value/);
});

t.test('config: an unreadable or malformed file is a clear error', async (t) => {
  const dir = await tempDir(t);
  t.throws(() => loadConfig({ argv: ['--config', join(dir, 'missing.yaml')], env: {}, sections: sections() }), /--config .* cannot read the file/);
  const file = join(dir, 'm.yaml');
  await writeFile(file, 'kafka: [1, 2\n');
  t.throws(() => loadConfig({ argv: ['--config', file], env: {}, sections: sections() }), /not valid YAML/);
});

t.test('config: an error never prints a secret (token, hash, password), at any depth', async (t) => {
  const { redactSecrets } = await import('../../../host/config/loader.js');
  t.same(redactSecrets('http.tokens', [{ token: 'abcdefgh-1234', principal: 'User:dash' }]), [{ token: '<secret, 13 characters>', principal: 'User:dash' }]);
  t.same(redactSecrets('http.tokens[0].hash', 'sha256:00'), '<secret, 9 characters>');
  t.same(redactSecrets('mqtt.auth.users', [{ username: 'dev1', password: 'p4ss' }]), [{ username: 'dev1', password: '<secret, 4 characters>' }]);
  t.same(redactSecrets('kafka.port', 9092), 9092);
  // Through the node's own loader: a token entry refused for another key (its principal) is shown without its token.
  const { loadNodeConfig } = await import('../../../host/node.js');
  const dir = await tempDir(t);
  const file = join(dir, 'tokens.yaml');
  await writeFile(file, 'http:\n  tokens:\n    - token: do-not-print-me-0123456789\n      principal: "x"\n');
  const err = t.throws(() => loadNodeConfig(['--config', file, '--data-dir', dir], {})) as unknown as Error;
  t.match(err.message, /http\.tokens/, 'the error names the key');
  t.notMatch(err.message, /do-not-print-me/, 'and not the token');
});
