// Purpose: producer ids are unique across a cluster (issue 11: producer-id blocks are a
// compare-and-set in the metadata log, host/broker/producer-ids.ts). Three real `tributary start`
// processes; idempotent librdkafka producers (/usr/bin/python3 confluent_kafka, a client nobody
// here wrote) are started all at once, a few bootstrapped through each node, so every node runs
// InitProducerId and reserves blocks concurrently. Each producer's id is read from librdkafka's
// own `eos` debug log, and no two producers may hold the same one (a shared id would make one
// producer's batch look like a duplicate of another's and be dropped).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { haveCommand, tempDir } from '../helpers/index.js';
import { startCluster } from '../helpers/cluster.js';

const PYTHON = '/usr/bin/python3';
const PER_NODE = 4;

// argv: topic, then one bootstrap address per node. Starts PER_NODE idempotent producers per
// address at once, produces one record each, and prints {"pids": [[address, pid], ...]} with the
// producer id each one was given (librdkafka logs it when InitProducerId answers).
const SCRIPT = `
import sys, json, re, time, logging
from confluent_kafka import Producer
topic, per_node, addresses = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
class Catch(logging.Handler):
    def __init__(self):
        super().__init__(); self.pid = None
    def emit(self, record):
        m = re.search(r'PID\\{Id:(\\d+),Epoch:(\\d+)', record.getMessage())
        if m and self.pid is None and int(m.group(1)) >= 0: self.pid = int(m.group(1))
producers = []
for a in addresses:
    for k in range(per_node):
        h = Catch(); log = logging.getLogger('p-%s-%d' % (a, k)); log.addHandler(h); log.setLevel(logging.DEBUG)
        p = Producer({'bootstrap.servers': a, 'enable.idempotence': True, 'debug': 'eos', 'logger': log, 'message.timeout.ms': 20000})
        producers.append((a, p, h))
for a, p, h in producers: p.produce(topic, value=b'x')
deadline = time.time() + 30
while time.time() < deadline and any(h.pid is None for _, _, h in producers):
    for _, p, _ in producers: p.poll(0.01)
for _, p, _ in producers: p.flush(20)
print(json.dumps({'pids': [[a, h.pid] for a, _, h in producers]}))
`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function tools(t: any): boolean {
  if (haveCommand(PYTHON) && spawnSync(PYTHON, ['-c', 'import confluent_kafka']).status === 0) return true;
  if (process.env.CI === 'true') t.fail(`required in CI: ${PYTHON} with confluent_kafka (Debian python3-confluent-kafka)`);
  else t.skip(`${PYTHON} with confluent_kafka not installed`);
  return false;
}

t.test('cluster: idempotent producers started at once through every node get distinct producer ids', { timeout: 90_000 }, async (t) => {
  if (!tools(t)) return;
  const dir = await tempDir(t, 'tributary-pids-');
  // Blocks of 1: every InitProducerId reserves a block, so the nodes race on the mark each time.
  const c = await startCluster(t, 3, { set: ['cluster.tickMs=50', 'kafka.producerIdBlockSize=1'] });
  await c.waitForLeader();
  const res = await fetch(`${c.httpUrl(1)}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'pids', partitions: 1, replicationFactor: 3 }) });
  t.ok(res.status === 200 || res.status === 201, `topic created (${res.status} ${await res.text()})`);
  const script = join(dir, 'pids.py');
  await writeFile(script, SCRIPT);
  const addresses = [1, 2, 3].map((id) => c.node(id).proc!.listeners.kafka!);
  const child = spawn(PYTHON, [script, 'pids', String(PER_NODE), ...addresses], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.equal(code, 0, `the producers ran (${stderr.slice(-500)})`);
  const { pids } = JSON.parse(stdout.trim().split('\n').pop()!) as { pids: [string, number | null][] };
  const got = pids.map(([, pid]) => pid);
  t.equal(got.filter((p) => p === null).length, 0, `every one of ${pids.length} producers was given an id: ${JSON.stringify(pids)}`);
  t.equal(new Set(got).size, got.length, `no id given twice across the three nodes: ${got.join(', ')}`);
  await c.stopAll();
});
