// kcat (librdkafka) balanced consumers (-G) against Tributary: consume with commit, restart the
// broker, resume after the commit; and static membership (group.instance.id) across runs.
import t from 'tap';
import { spawn } from 'node:child_process';
import { haveCommand, tempDir } from '../helpers/index.js';
import { startStack } from './kafka-groups-stack.js';

const HAVE_KCAT = haveCommand('kcat');

/** Runs kcat until it exits (it does after -c N messages); resolves with its output lines. */
function kcat(args: string[], timeoutMs = 30_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('kcat', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kcat ${args.join(' ')} timed out; stdout:\n${out}\nstderr:\n${err}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out.split('\n').filter((l) => l.length > 0));
      else reject(new Error(`kcat exited ${code}: ${err}`));
    });
  });
}

const enc = (s: string) => new TextEncoder().encode(s);

const consumeArgs = (address: string, group: string, count: number, extra: string[] = []) => [
  '-b', address, '-G', group, 'telemetry', '-c', String(count), '-q', '-f', '%p:%o:%s\\n',
  '-X', 'auto.offset.reset=earliest', '-X', 'session.timeout.ms=6000', '-X', 'heartbeat.interval.ms=500', ...extra,
];

t.test('kcat -G: consume with commit, broker restart, resume after the committed offsets', { skip: HAVE_KCAT ? false : 'kcat is not installed (apt-get install kcat)' }, async (t) => {
  const stack = await startStack(t, await tempDir(t, 'tributary-kcat-groups-'));
  await stack.broker.createTopic('telemetry', 2);
  await stack.broker.produce('telemetry', Array.from({ length: 10 }, (_, i) => ({ key: enc(`dev${i % 4}`), value: enc(`t${i}`) })), { acks: -1 });

  const first = await kcat(consumeArgs(stack.address, 'kgroup', 10));
  t.same(first.map((l) => l.split(':')[2]).sort(), Array.from({ length: 10 }, (_, i) => `t${i}`).sort(), 'all ten consumed');
  const committed = await stack.groups.fetchOffsets({ groupId: 'kgroup' });
  const ends = [0, 1].map((partition) => stack.broker.offsets({ topic: 'telemetry', partition }).highWatermark);
  t.same(committed.map((c) => [c.partition, c.offset]).sort(), ends.map((e, p) => [p, e]), 'kcat committed the end of both partitions on exit');

  await stack.restart();
  await stack.broker.produce('telemetry', Array.from({ length: 6 }, (_, i) => ({ key: enc(`dev${i % 4}`), value: enc(`n${i}`) })), { acks: -1 });
  const second = await kcat(consumeArgs(stack.address, 'kgroup', 6));
  t.same(second.map((l) => l.split(':')[2]).sort(), Array.from({ length: 6 }, (_, i) => `n${i}`).sort(), 'exactly the six new messages after the restart');
  for (const line of second) {
    const [p, o] = line.split(':').map(Number);
    t.ok(o >= ends[p], `partition ${p} offset ${o} is past the committed ${ends[p]}`);
  }
});

t.test('kcat -G with group.instance.id: the static member stays after exit and is replaced by the next run', { skip: HAVE_KCAT ? false : 'kcat is not installed (apt-get install kcat)' }, async (t) => {
  const stack = await startStack(t, await tempDir(t, 'tributary-kcat-static-'));
  await stack.broker.createTopic('telemetry', 2);
  await stack.broker.produce('telemetry', Array.from({ length: 4 }, (_, i) => ({ key: enc(`dev${i}`), value: enc(`a${i}`) })), { acks: -1 });
  const staticArgs = ['-X', 'group.instance.id=edge-1'];
  const first = await kcat(consumeArgs(stack.address, 'static', 4, staticArgs));
  t.equal(first.length, 4);
  const d1 = stack.groups.describeGroups(['static'])[0];
  t.equal(d1.members.length, 1, 'a static member does not leave on exit; its session keeps it');
  t.equal(d1.members[0].groupInstanceId, 'edge-1');
  await stack.broker.produce('telemetry', Array.from({ length: 4 }, (_, i) => ({ key: enc(`dev${i}`), value: enc(`b${i}`) })), { acks: -1 });
  const second = await kcat(consumeArgs(stack.address, 'static', 4, staticArgs));
  t.same(second.map((l) => l.split(':')[2]).sort(), ['b0', 'b1', 'b2', 'b3'], 'the same instance resumes after its commits');
  const d2 = stack.groups.describeGroups(['static'])[0];
  t.equal(d2.members.length, 1, 'the rejoin replaced the old incarnation instead of adding a member');
  t.equal(d2.members[0].groupInstanceId, 'edge-1');
  t.not(d2.members[0].memberId, d1.members[0].memberId, 'under a new member id');
});
