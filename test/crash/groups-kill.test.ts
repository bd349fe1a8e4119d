// Power cut after an offset commit is acknowledged: librdkafka consumers (confluent_kafka via
// /usr/bin/python3, a client nobody here wrote) commit ever larger offsets for their groups
// synchronously, one commit at a time, printing each offset once the broker acknowledged it;
// the real broker process is killed with SIGKILL at random moments, several times. After the
// last kill, the group coordinator's replay of __consumer_offsets (the CompactedTable) must give
// every group the last acknowledged offset — or the one commit that was in flight at the kill —
// on every partition: nothing lost, nothing invented.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Broker } from '../../host/broker/broker.js';
import { GroupCoordinator } from '../../host/broker/groups/index.js';
import { silentLogger } from '../../host/logging.js';
import { MetricsRegistry } from '../../host/metrics/registry.js';
import { eventually, startBroker, tempDir } from '../helpers/index.js';

const PYTHON = '/usr/bin/python3';
const TOPIC = 'events';
const PARTITIONS = 3;
const LANES = 4;
const ROUNDS = 4;

// One lane: group g<lane>, commits offset n on every partition, n = start+1, start+2, ...
const COMMITTER = `
import sys
from confluent_kafka import Consumer, TopicPartition, KafkaException
bootstrap, group, topic, partitions, start = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group, 'enable.auto.commit': False, 'log_level': 0})
n = start
while True:
    n += 1
    print('sending %d' % n, flush=True)
    try:
        res = c.commit(offsets=[TopicPartition(topic, p, n) for p in range(partitions)], asynchronous=False)
    except KafkaException as e:
        print('error %s' % e, flush=True)
        break
    if any(tp.error is not None for tp in res):
        print('error %s' % [str(tp.error) for tp in res], flush=True)
        break
    print('acked %d' % n, flush=True)
`;

function haveConfluentKafka(): boolean {
  return existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import confluent_kafka'], { stdio: 'ignore' }).status === 0;
}

interface Lane {
  group: string;
  /** Last offset the broker acknowledged for this group (all partitions), -1 before any. */
  acked: number;
  /** Largest offset ever sent (acknowledged or in flight at a kill). */
  sent: number;
}

function startCommitter(bootstrap: string, lane: Lane): ChildProcess {
  const child = spawn(PYTHON, ['-c', COMMITTER, bootstrap, lane.group, TOPIC, String(PARTITIONS), String(lane.sent)], { stdio: ['ignore', 'pipe', 'ignore'] });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const [what, n] = line.split(' ');
    if (what === 'sending') lane.sent = Math.max(lane.sent, Number(n));
    if (what === 'acked') lane.acked = Math.max(lane.acked, Number(n));
  });
  return child;
}

const python = haveConfluentKafka();
if (!python && process.env.CI) t.fail(`${PYTHON} with confluent_kafka is needed (Debian package python3-confluent-kafka)`);

t.test('every acknowledged offset commit survives kill -9 of the broker', { skip: python ? false : `${PYTHON} with confluent_kafka not installed` }, async (t) => {
  const dataDir = await tempDir(t, 'tributary-groups-crash-');
  const lanes: Lane[] = Array.from({ length: LANES }, (_, i) => ({ group: `g${i}`, acked: -1, sent: 0 }));
  for (let round = 1; round <= ROUNDS; round++) {
    const server = await startBroker(t, { dataDir, env: { TRIBUTARY_LOG_LEVEL: 'warn' } });
    if (round === 1) {
      const res = await fetch(`http://${server.listeners.http}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: TOPIC, partitions: PARTITIONS }) });
      t.equal(res.status, 200, 'topic created');
    }
    const before = lanes.map((l) => l.acked);
    const children = lanes.map((l) => startCommitter(server.listeners.kafka!, l));
    try {
      // Every lane has had commits acknowledged in this round, then a kill at a random moment.
      await eventually(() => lanes.every((l, i) => l.acked > before[i] + 2), 30_000);
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 400)));
      await server.kill();
    } finally {
      for (const c of children) c.kill('SIGKILL');
    }
  }

  const metrics = new MetricsRegistry();
  const broker = await Broker.open({ dataDir }, { logger: silentLogger, metrics });
  t.teardown(() => broker.close());
  const groups = await GroupCoordinator.open(broker, {}, { logger: silentLogger, metrics });
  t.teardown(() => groups.close());
  const anomalies: string[] = [];
  for (const lane of lanes) {
    const committed = await groups.fetchOffsets({ groupId: lane.group, partitions: null });
    t.equal(committed.length, PARTITIONS, `${lane.group}: one committed offset per partition`);
    for (const c of committed) {
      // lane.acked: the last acknowledged; lane.sent (> acked): the commit in flight at the kill.
      if (c.offset < lane.acked) anomalies.push(`lost: ${lane.group} ${c.topic}-${c.partition} has ${c.offset}, ${lane.acked} was acknowledged`);
      else if (c.offset > lane.sent) anomalies.push(`invented: ${lane.group} ${c.topic}-${c.partition} has ${c.offset}, only up to ${lane.sent} was sent`);
    }
  }
  t.comment(`${ROUNDS} kills; acknowledged per group: ${lanes.map((l) => `${l.group}=${l.acked}`).join(' ')}`);
  t.ok(lanes.every((l) => l.acked > ROUNDS * 2), 'commits were acknowledged in every round');
  t.same(anomalies, [], 'every acknowledged commit is there after the last kill');
});
