// Purpose: the uplink authenticates to its target with SASL through the project's own Kafka
// client — PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 — against a Tributary target that refuses
// anonymous clients (users made with `tributary users add`). Per mechanism the edge forwards what
// it acknowledged, read back from the target by kcat (librdkafka) logged in as the same user; a
// wrong password leaves the partition retrying with the target's refusal as the reason, and the
// password appears in no log line of the edge.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { cliJs, eventually, sh, startBroker, tempDir } from '../helpers/index.js';
import { kcatReadScram, startSaslEdge, uplinkToolsPresent, verdict } from '../helpers/uplink.js';

const SITE = 'edge1';
const PASSWORD = 'alice-uplink-secret';

const readTarget = (bootstrap: string, topic: string) => kcatReadScram(bootstrap, topic, 'alice', PASSWORD);
const edgeWith = (t: Test, target: string, topic: string, sasl: object) => startSaslEdge(t, SITE, target, topic, sasl);

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
