// Differential test against Mosquitto: seeded scripts of MQTT sessions (several clients, clean
// and persistent sessions, overlapping subscriptions, pipelined publishes at mixed QoS, retained
// messages, DISCONNECT, abrupt closes, wills) run against a real Mosquitto 2.0 and the real
// Tributary process; what every client received must be the same, except for the differences
// named in INTENDED_DIFFERENCES (test/helpers/mqtt-script-compare.ts). A difference fails with
// the seed and a shrunk script. First the harness checks itself: the same scripts against two
// Mosquittos must show no difference (the settling makes scripts deterministic), and a delivery
// removed from one observation must be reported.
//
//   MQTT_DIFF_SCRIPTS=N   seeded scripts per protocol version, all of them, no time budget (a
//                         soak); without it, the CI size: 200 per version within RUN_BUDGET_MS
//   MQTT_DIFF_SEED=S      run only the script of seed S (replay), with its observations printed
//   MQTT_DIFF_V5=0        MQTT 3.1.1 scripts only (by default MQTT 5 scripts run too)
import t from 'tap';
import { haveCommand, tempDir } from '../helpers/index.js';
import { clientName, formatScript, generate, namedScripts, shrink, TOPICS, type Script } from '../helpers/mqtt-script.js';
import { compare, formatDifferences, formatIntendedDifferences, type Difference } from '../helpers/mqtt-script-compare.js';
import { resetServer, runScript, startMosquitto, type Observation } from '../helpers/mqtt-script-runner.js';
import { ServerPair } from '../helpers/mqtt-script-pair.js';

/** Seeded scripts per protocol version in CI. */
const CI_SCRIPTS = 200;
const SCRIPTS = Number(process.env.MQTT_DIFF_SCRIPTS ?? CI_SCRIPTS);
const REPLAY_SEED = process.env.MQTT_DIFF_SEED !== undefined ? Number(process.env.MQTT_DIFF_SEED) : undefined;
const VERSIONS: Array<4 | 5> = process.env.MQTT_DIFF_V5 === '0' ? [4] : [4, 5];
/** Servers run side by side; each pair runs its share of the scripts one after another. */
const LANES = 3;
const soak = process.env.MQTT_DIFF_SCRIPTS !== undefined;
/** Wall-clock bounds for CI (a loaded 2-core machine), per protocol version: the scripts, then shrinking. A soak has none. */
const RUN_BUDGET_MS = soak ? Infinity : 35_000;
const SHRINK_BUDGET_MS = soak ? 120_000 : 12_000;
/** Scripts run against two Mosquittos to check the harness itself. */
const SELF_CHECK_SCRIPTS = 12;
/** Base of the seeds of a run; fixed so CI runs the same scripts every time. */
const SEED_BASE = 9_000;

interface Failure {
  script: Script;
  diffs: Difference[];
}

if (!haveCommand('mosquitto')) {
  if (process.env.CI) t.fail('mosquitto is not installed: .ci/run installs the Debian package mosquitto');
  else t.test('mosquitto not installed (Debian package mosquitto): differential test against Mosquitto skipped', { skip: true }, () => undefined);
} else {
  t.test('the harness is deterministic: Mosquitto against Mosquitto shows no difference, and a lost delivery is caught', async (t) => {
    // Two Mosquittos run the same scripts: any difference would be the harness's own timing, not a
    // server's behaviour. Then one observation loses a delivery, and the comparison must say so.
    const dir = await tempDir(t, 'tributary-mqtt-diff-self-');
    const [a, b] = await Promise.all([startMosquitto(dir), startMosquitto(dir)]);
    t.teardown(() => Promise.all([a.stop(), b.stop()]));
    let delivered = 0;
    let lastScript: Script | undefined;
    let lastObservation: Observation | undefined;
    for (let i = 0; i < SELF_CHECK_SCRIPTS; i++) {
      const script = generate(SEED_BASE + 1_000_000 + i, { protocolVersion: 4 });
      const prefix = `self${i}-`;
      const [x, y] = await Promise.all([runScript(script, { port: a.port, clientIdPrefix: prefix }), runScript(script, { port: b.port, clientIdPrefix: prefix })]);
      const ids = Array.from({ length: script.clients }, (_, c) => prefix + clientName(c));
      await Promise.all([resetServer(a.port, 4, ids, TOPICS), resetServer(b.port, 4, ids, TOPICS)]);
      const diffs = compare(script, x, y);
      t.same(diffs, [], `seed ${script.seed}: Mosquitto twice\n${formatScript(script)}\n${formatDifferences(diffs)}`);
      const n = x.connections.reduce((sum, c) => sum + c.received.length, 0);
      delivered += n;
      if (n > 0) [lastScript, lastObservation] = [script, x];
    }
    t.ok(delivered > SELF_CHECK_SCRIPTS, `the scripts deliver messages (${delivered})`);
    const lossy = structuredClone(lastObservation!);
    const victim = lossy.connections.find((c) => c.received.some((r) => !r.retain))!;
    victim.received.splice(victim.received.findIndex((r) => !r.retain), 1);
    const caught = compare(lastScript!, lastObservation!, lossy);
    t.ok(caught.some((d) => d.kind.startsWith('live delivery') && d.connection === victim.key), `a dropped delivery is reported: ${caught.map((d) => d.kind).join(', ')}`);
  });

  for (const protocolVersion of VERSIONS) {
    const label = protocolVersion === 5 ? 'MQTT 5' : 'MQTT 3.1.1';
    if (REPLAY_SEED !== undefined) {
      // seeds of this file's runs carry their protocol version (SEED_BASE + version × 100,000 + i)
      const seedVersion = Math.floor((REPLAY_SEED - SEED_BASE) / 100_000);
      if ((seedVersion === 4 || seedVersion === 5) && seedVersion !== protocolVersion) continue;
      t.test(`${label}: replay of seed ${REPLAY_SEED} behaves as on Mosquitto`, async (t) => {
        const script = generate(REPLAY_SEED, { protocolVersion });
        const pair = await ServerPair.start();
        t.teardown(() => pair.stop());
        const res = await pair.run(script);
        t.comment(formatScript(script));
        t.comment('mosquitto: ' + JSON.stringify(res.mosquitto, null, 1));
        t.comment('tributary: ' + JSON.stringify(res.tributary, null, 1));
        t.same(res.diffs, [], `seed ${REPLAY_SEED}:\n${formatDifferences(res.diffs)}`);
      });
      continue;
    }

    t.test(`${label}: hand-written sessions (issue 9's defect reports and reduced findings) deliver what Mosquitto delivers`, async (t) => {
      const pair = await ServerPair.start();
      t.teardown(() => pair.stop());
      for (const { name, script } of namedScripts(protocolVersion)) {
        const res = await pair.run(script);
        if (res.diffs.length > 0) t.comment(`${name}:\n${formatScript(script)}\n${formatDifferences(res.diffs)}`);
        t.same(res.diffs, [], name);
      }
    });

    t.test(`${label}: ${SCRIPTS} seeded session scripts deliver what Mosquitto delivers`, async (t) => {
      const started = Date.now();
      // The run budget counts from the first pair of servers being up, not from the test's start:
      // on a loaded machine starting the two servers alone took most of the budget (0 scripts run).
      let runStarted = Infinity;
      const failures: Failure[] = [];
      let ran = 0;
      let next = 0;
      const seeds = Array.from({ length: SCRIPTS }, (_, i) => SEED_BASE + protocolVersion * 100_000 + i);
      const lane = async () => {
        // one pair serves many scripts: client ids are unique per run and retained messages are
        // cleared after each, so a script sees the servers as fresh (a leak would show as a
        // payload of another script); a shrunk script is confirmed on a brand-new pair
        const pair = await ServerPair.start();
        runStarted = Math.min(runStarted, Date.now());
        try {
          while (next < seeds.length && Date.now() - runStarted < RUN_BUDGET_MS) {
            const script = generate(seeds[next++], { protocolVersion });
            const res = await pair.run(script);
            ran++;
            if (res.diffs.length > 0) failures.push({ script, diffs: res.diffs });
          }
        } finally {
          await pair.stop();
        }
      };
      // every lane ends before the test does, even when one could not start its servers
      const lanes = await Promise.allSettled(Array.from({ length: LANES }, lane));
      for (const l of lanes) {
        if (l.status === 'fulfilled') continue;
        t.comment(`a lane of servers failed: ${(l.reason as Error).message}`);
        t.fail(`a lane of servers failed: ${(l.reason as Error).message.split('\n')[0]}`);
      }
      t.comment(`${ran} scripts in ${Date.now() - runStarted} ms (the servers up ${runStarted - started} ms after the start), ${failures.length} with differences`);
      if (ran < seeds.length) t.comment(`time budget reached: ${seeds.length - ran} scripts not run (MQTT_DIFF_SCRIPTS=N runs all N)`);
      t.ok(ran >= Math.min(seeds.length, 20), `at least 20 scripts ran (${ran})`);
      if (failures.length === 0) return;

      // group failures by kind of difference (a script may show several); shrink the first script
      // of each kind, most frequent kind first, while time allows
      const byKind = new Map<string, Failure[]>();
      for (const f of failures.sort((a, b) => a.script.seed - b.script.seed)) {
        for (const k of new Set(f.diffs.map((d) => d.kind))) byKind.set(k, [...(byKind.get(k) ?? []), f]);
      }
      const kinds = [...byKind].sort((a, b) => b[1].length - a[1].length);
      t.comment(`intended differences (not failures):\n${formatIntendedDifferences()}`);
      const shrinkDeadline = Date.now() + SHRINK_BUDGET_MS;
      const pair = await ServerPair.start();
      t.teardown(() => pair.stop());
      for (const [kind, fs] of kinds) {
        let report = fs[0];
        let note = 'not shrunk (time budget)';
        if (Date.now() < shrinkDeadline) {
          const { script, complete } = await shrink(
            report.script,
            async (candidate) => {
              const res = await pair.run(candidate);
              return res.diffs.some((d) => d.kind === kind);
            },
            shrinkDeadline,
          );
          // confirm the shrunk script on servers that never saw another script
          const fresh = await ServerPair.start();
          const res = await fresh.run(script).finally(() => fresh.stop());
          if (res.diffs.some((d) => d.kind === kind)) {
            report = { script, diffs: res.diffs };
            note = complete ? 'minimal' : 'partly shrunk (time budget)';
          } else note = 'shrunk script did not fail on fresh servers: full script shown';
        }
        if (note.startsWith('shrunk script did not fail')) {
          // A difference that the same whole script does not show again on fresh servers depends on
          // timing between the two brokers' processes (seen: a retained delivery racing a SUBSCRIBE
          // on a loaded machine). It is reported with its seeds for a soak to chase, not failed on.
          const again = await ServerPair.start();
          const res = await again.run(fs[0].script).finally(() => again.stop());
          if (!res.diffs.some((d) => d.kind === kind)) {
            t.comment(`difference "${kind}" not reproduced on fresh servers (timing-dependent), seeds ${fs.map((f) => f.script.seed).join(' ')}:\n${formatScript(fs[0].script)}\n${formatDifferences(fs[0].diffs)}`);
            continue;
          }
          report = { script: fs[0].script, diffs: res.diffs };
        }
        const seedsText = fs.map((f) => f.script.seed).join(' ');
        t.comment(`difference "${kind}", script ${note}:\n${formatScript(report.script)}\n${formatDifferences(report.diffs)}`);
        t.fail(`difference "${kind}" in ${fs.length} of ${ran} scripts, seeds ${seedsText} (replay: MQTT_DIFF_SEED=<seed>${protocolVersion === 5 ? ' MQTT_DIFF_V5=1' : ''})`);
      }
    });
  }
}
