// Purpose: the uplink's state on the compacted internal table — a save comes back after a broker
// restart; the one-time migration takes a trusted state file into the table and renames the file
// (so it is never read again: a later change to the table wins over it); a file that fails its
// checks is not trusted (the link starts without state and says why) and is left in place.
import t from 'tap';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../../host/logging.js';
import { encodeLinkState } from '../../../host/sync/state-file.js';
import { LinkStateTable, UPLINK_STATE_TOPIC } from '../../../host/sync/state-table.js';
import { openBroker } from '../broker/broker-fixture.js';

const deps = { logger: silentLogger };
const fileState = () => ({ producer: { producerId: 42, producerEpoch: 0, partitions: { 'p7.t/0': { nextSequence: 9, inFlight: [{ producerId: 42, baseSequence: 5, recordCount: 4, firstSourceOffset: 20, lastSourceOffset: 23 }] } } }, checkpoints: { 't/0': 20 } });

t.test('uplink state table: migrated once from the state file, then the table wins, across a restart', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  await mkdir(join(dataDir, '__uplink'), { recursive: true });
  await writeFile(join(dataDir, '__uplink', 'p7.state'), encodeLinkState(fileState()));
  const distrust: string[] = [];
  const first = await LinkStateTable.open(broker, dataDir, 'p7', deps, (w) => distrust.push(w));
  t.same(first.state, fileState(), 'the file\'s state, taken over');
  t.same(distrust, []);
  t.same((await readdir(join(dataDir, '__uplink'))).sort(), ['p7.state.migrated'], 'the file renamed: never read again');
  t.equal(broker.describeTopic(UPLINK_STATE_TOPIC)?.config['cleanup.policy'], 'compact', 'kept on a compacted internal topic');
  first.state.checkpoints['t/0'] = 99;
  first.state.producer.producerId = 43;
  await first.save();
  // A stale file reappearing must not win over the table.
  await writeFile(join(dataDir, '__uplink', 'p7.state'), encodeLinkState(fileState()));
  await broker.close();
  const { broker: again } = await openBroker(t, { dataDir });
  const reopened = await LinkStateTable.open(again, dataDir, 'p7', deps, (w) => distrust.push(w));
  t.same([reopened.state.checkpoints['t/0'], reopened.state.producer.producerId], [99, 43], 'the saved state after a restart, from the table');
  const other = await LinkStateTable.open(again, dataDir, 'other-site', deps, (w) => distrust.push(w));
  t.same(other.state, { producer: { producerId: -1, producerEpoch: -1, partitions: {} }, checkpoints: {} }, 'a site with neither: empty state');
});

t.test('uplink state table: a damaged state file is not trusted, said, and left in place', async (t) => {
  const { broker, dataDir } = await openBroker(t);
  await mkdir(join(dataDir, '__uplink'), { recursive: true });
  const bytes = encodeLinkState(fileState());
  bytes[bytes.length - 2] ^= 1;
  await writeFile(join(dataDir, '__uplink', 'p7.state'), bytes);
  const distrust: string[] = [];
  const table = await LinkStateTable.open(broker, dataDir, 'p7', deps, (w) => distrust.push(w));
  t.equal(table.state.producer.producerId, -1, 'no producer id taken from a damaged file');
  t.match(distrust.join(), /p7\.state: CRC mismatch/);
  t.same(await readdir(join(dataDir, '__uplink')), ['p7.state'], 'left in place');
});
