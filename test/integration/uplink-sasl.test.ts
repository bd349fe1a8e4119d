// Purpose: the uplink authenticates to its target with SASL through the project's own Kafka
// client — PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 — against a Tributary target that refuses
// anonymous clients (users made with `tributary users add`). Per mechanism the edge forwards what
// it acknowledged, read back from the target by kcat (librdkafka) logged in as the same user; a
// wrong password leaves the partition retrying with the target's refusal as the reason, and the
// password appears in no log line of the edge.
import t, { type Test } from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliJs, eventually, sh, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { kcatReadAll, uplinkToolsPresent, verdict, type TargetRecord } from '../helpers/uplink.js';

const SITE = 'edge1';
const PASSWORD = 'alice-uplink-secret';

/** Every record of a target topic, read by kcat logged in with SCRAM-SHA-512. */
function readTarget(bootstrap: string, topic: string): Promise<TargetRecord[]> {
  return kcatReadAll(bootstrap, topic, ['-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=SCRAM-SHA-512', '-X', 'sasl.username=alice', '-X', `sasl.password=${PASSWORD}`]);
}

async function edgeWith(t: Test, target: string, topic: string, sasl: object): Promise<BrokerProcess> {
  const dir = await tempDir(t);
  const config = join(dir, 'edge.json');
  await writeFile(config, JSON.stringify({ uplink: { site: SITE, bootstrap: [target], topics: [topic], sasl, topicScanIntervalMs: 100, pollWaitMs: 200, reconnectBackoffMs: 100, reconnectBackoffMaxMs: 500 }, broker: { defaultPartitions: 1 } }), { mode: 0o600 });
  return startBroker(t, { dataDir: join(dir, 'data'), args: ['--config', config] });
}

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('uplink SASL: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 to a target that refuses anonymous clients', async (t) => {
    const targetDir = await tempDir(t);
    const setup = await startBroker(t, { dataDir: targetDir });
    const add = await sh(process.execPath, [cliJs, 'users', 'add', 'alice', '--password', PASSWORD, '--kafka', setup.listeners.kafka!]);
    t.equal(add.code, 0, `users add alice: ${add.stderr}`);
    t.equal(await setup.stop(), 0, 'the target set up with user alice (SCRAM-SHA-256 and -512 credentials)');
    const target = await startBroker(t, { dataDir: targetDir, args: ['--set', 'security.allowAnonymous=false'] });
    const k = target.listeners.kafka!;

    // The three mechanisms and the wrong password side by side (one edge each): the test stays under a minute.
    const wrongPassword = async () => {
      const wrong = 'not-the-password';
      const edge = await edgeWith(t, k, 'm-wrong', { mechanism: 'SCRAM-SHA-256', user: 'alice', password: wrong });
      await sh('kcat', ['-P', '-b', edge.listeners.kafka!, '-t', 'm-wrong', '-p', '0', '-X', 'acks=all'], 'x\n');
      const retrying = await eventually(() => edge.logs.find((l) => l.msg === 'uplink partition retrying' && /refused SASL SCRAM-SHA-256 for user "alice"/.test(String(l.err))), 30_000, 100);
      t.ok(retrying, `a wrong password: the partition retries with the target's refusal: ${String(retrying?.err)}`);
      t.notOk(edge.logs.some((l) => JSON.stringify(l).includes(wrong)), 'the wrong password is in no log line either');
    };
    await Promise.all([wrongPassword(), ...(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const).map(async (mechanism) => {
      const topic = `m-${mechanism.toLowerCase()}`;
      const edge = await edgeWith(t, k, topic, { mechanism, user: 'alice', password: PASSWORD });
      const values = Array.from({ length: 50 }, (_, i) => `${mechanism}-${i}`);
      const r = await sh('kcat', ['-P', '-b', edge.listeners.kafka!, '-t', topic, '-p', '0', '-X', 'acks=all'], values.join('\n') + '\n');
      t.equal(r.code, 0, `50 records acknowledged by the edge on ${topic}`);
      const v = await eventually(async () => {
        const got = verdict(await readTarget(k, `${SITE}.${topic}`).catch(() => []), { site: SITE, topic, partition: 0 }, values);
        return got.found >= values.length ? got : Promise.reject(new Error(`found ${got.found}`));
      }, 30_000, 200);
      t.same({ found: v.found, lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered }, { found: 50, lost: 0, duplicated: 0, reordered: 0 }, `${mechanism}: every record once, in order, in the target`);
      t.notOk(edge.logs.some((l) => JSON.stringify(l).includes(PASSWORD)), `${mechanism}: the password is in no log line`);
      t.equal(await edge.stop(), 0, `${mechanism}: the edge stops cleanly`);
    })]);
  });
}
