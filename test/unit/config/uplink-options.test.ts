// Purpose: the `uplink` config contract — off by default (the node is unchanged), lists given as
// a list or one comma-separated string (environment, --set), and every bad value refused with a
// message naming the key: bootstrap entries, topic patterns, rename placeholders, timeouts that
// disagree, and the bounds of each limit (boundary values on both sides). Also the state file's
// header and CRC, and the batch splitter's bounds.
import t from 'tap';
import { loadNodeConfig, prepareNode } from '../../../host/node.js';
import { ConfigError } from '../../../host/config/loader.js';
import { defaultUplinkOptions, resolveUplinkOptions, targetTopicOf, topicMatches } from '../../../host/sync/options.js';
import { decodeLinkState, encodeLinkState } from '../../../host/sync/state-file.js';
import { splitBatches } from '../../../host/sync/uplink.js';
import { tempDir } from '../../helpers/index.js';

const base = ['--kafka-port', '0', '--mqtt-port', '-1', '--mqtt-ws-port', '-1', '--http-port', '-1', '--set', 'schemas.port=-1'];

t.test('uplink config: no site = no uplink', async (t) => {
  const dir = await tempDir(t);
  const p = await prepareNode(loadNodeConfig([...base, '--data-dir', dir], {}));
  t.equal(p.uplink, null);
});

t.test('uplink config: lists as comma-separated strings from --set and the environment', async (t) => {
  const dir = await tempDir(t);
  const c = loadNodeConfig([...base, '--data-dir', dir, '--set', 'uplink.site=plant-7', '--set', 'uplink.bootstrap=a.example:9092, b.example:9093'], { TRIBUTARY_UPLINK_TOPICS: 'sensors.*,alarms' });
  const p = await prepareNode(c);
  t.same(p.uplink?.bootstrap, ['a.example:9092', 'b.example:9093']);
  t.same(p.uplink?.topics, ['sensors.*', 'alarms']);
  const json = loadNodeConfig([...base, '--data-dir', dir, '--set', 'uplink.site=x', '--set', 'uplink.bootstrap=["h:1"]', '--set', 'uplink.topics=["t"]'], {});
  t.same((await prepareNode(json)).uplink?.bootstrap, ['h:1'], 'JSON lists still work');
});

t.test('uplink config: each mistake names its key', async (t) => {
  const dir = await tempDir(t);
  const cases: Array<[string[], RegExp]> = [
    [['uplink.site=x'], /uplink\.bootstrap is empty/],
    [['uplink.site=x', 'uplink.bootstrap=nohost'], /uplink\.bootstrap entry "nohost" is not host:port/],
    [['uplink.site=x', 'uplink.bootstrap=h:70000', 'uplink.topics=t'], /uplink\.bootstrap entry "h:70000"/],
    [['uplink.site=x', 'uplink.bootstrap=h:1'], /uplink\.topics is empty/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=__consumer_offsets'], /uplink\.topics entry "__consumer_offsets"/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=a*b'], /uplink\.topics entry "a\*b"/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.rename={site}'], /uplink\.rename "\{site\}" has no \{topic\}/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.rename={topic}.{zone}'], /unknown placeholder \{zone\}/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.produceTimeoutMs=30000'], /uplink\.produceTimeoutMs \(30000\) must be below uplink\.requestTimeoutMs/],
    [['uplink.site=bad site'], /uplink\.site/],
    [['uplink.inFlightMax=0'], /uplink\.inFlightMax/],
    [['uplink.readBytesMax=1023'], /uplink\.readBytesMax/],
    [['uplink.batchBytesMax=1023'], /uplink\.batchBytesMax/],
    [['uplink.inFlightBatchesMax=0'], /uplink\.inFlightBatchesMax/],
    [['uplink.inFlightBytesMax=1023'], /uplink\.inFlightBytesMax/],
    [['uplink.bandwidthBytesPerSec=-1'], /uplink\.bandwidthBytesPerSec/],
    [['uplink.bandwidthBurstBytes=1023'], /uplink\.bandwidthBurstBytes/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.priorities=al*rms'], /uplink\.priorities entry "al\*rms"/],
    [['uplink.inFlightBatchesMax=6'], /uplink\.inFlightBatchesMax/],
    [['uplink.transactionBatchesMax=0'], /uplink\.transactionBatchesMax/],
    [['uplink.transactionBatchesMax=65'], /uplink\.transactionBatchesMax/],
    [['uplink.rawBatchRecordsMin=0'], /uplink\.rawBatchRecordsMin/],
    [['uplink.downlinkFetchBytes=1023'], /uplink\.downlinkFetchBytes/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.downlink=commands'], /uplink\.downlink entry "commands" is not central=local/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.downlink={site}.cmd=__mqtt'], /uplink\.downlink entry "\{site\}\.cmd=__mqtt"/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.downlink={zone}.cmd=cmd'], /unknown placeholder \{zone\}/],
    [['uplink.site=central', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.downlink=a=b'], /uplink\.downlinkOriginSite "central" equals uplink\.site/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.downlink=a=b', 'uplink.downlinkWaitMs=30000'], /uplink\.downlinkWaitMs \(30000\) must be below uplink\.requestTimeoutMs/],
    [['uplink.compression=brotli'], /uplink\.compression/],
    [['uplink.bandwidthWindowMs=99'], /uplink\.bandwidthWindowMs/],
    [['uplink.bandwidthWindowMs=3600001'], /uplink\.bandwidthWindowMs/],
    [['uplink.statusPartitionsMax=0'], /uplink\.statusPartitionsMax/],
    [['uplink.statusPartitionsMax=100001'], /uplink\.statusPartitionsMax/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.reservedTopics=al*rms'], /uplink\.reservedTopics entry "al\*rms"/],
    [['uplink.reservedShareMax=0'], /uplink\.reservedShareMax.*must be a number greater than 0 and at most 1/],
    [['uplink.reservedShareMax=1.01'], /uplink\.reservedShareMax.*must be a number greater than 0 and at most 1/],
    [['uplink.reservedShareMax=-0.5'], /uplink\.reservedShareMax/],
    [['uplink.reservedShareMax=half'], /uplink\.reservedShareMax/],
    [['uplink.stallAlarmSec=-1'], /uplink\.stallAlarmSec/],
    [['uplink.stallAlarmSec=31536001'], /uplink\.stallAlarmSec/],
    [['uplink.backlogAgeMsMax=-1'], /uplink\.backlogAgeMsMax/],
    [['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.drainOrderTopics=t=newest'], /uplink\.drainOrderTopics entry "t=newest" is not pattern=order/],
    [['uplink.newestFirstRecords=0'], /uplink\.newestFirstRecords/],
    [['uplink.fencedRecheckMs=-1'], /uplink\.fencedRecheckMs/],
    [['uplink.fencedRecheckMs=86400001'], /uplink\.fencedRecheckMs/],
  ];
  for (const [sets, pattern] of cases) {
    const argv = [...base, '--data-dir', dir, ...sets.flatMap((s) => ['--set', s])];
    const err = await (async () => prepareNode(loadNodeConfig(argv, {})))().catch((e) => e);
    t.ok(err instanceof ConfigError, `${sets.join(' ')}: a ConfigError`);
    t.match(String(err?.message), pattern, `${sets.join(' ')}: ${err?.message}`);
  }
});

t.test('uplink config: limits at their boundary are accepted', async (t) => {
  const dir = await tempDir(t);
  const ok = ['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', 'uplink.inFlightMax=1', 'uplink.readBytesMax=1024', 'uplink.batchBytesMax=1024', 'uplink.queuedMax=0', 'uplink.inFlightBatchesMax=5', 'uplink.rawBatchRecordsMin=1', 'uplink.downlinkFetchBytes=1024', 'uplink.downlink={site}.commands=commands, central.all=broadcast', 'uplink.downlinkWaitMs=29999', 'uplink.bandwidthBytesPerSec=0', 'uplink.bandwidthBurstBytes=1024', 'uplink.priorities=alarms,sensors.*', 'uplink.inFlightBytesMax=1024', 'uplink.transactionBatchesMax=64'];
  const p = await prepareNode(loadNodeConfig([...base, '--data-dir', dir, ...ok.flatMap((s) => ['--set', s])], {}));
  t.same([p.uplink?.inFlightMax, p.uplink?.readBytesMax, p.uplink?.batchBytesMax, p.uplink?.queuedMax, p.uplink?.inFlightBatchesMax, p.uplink?.rawBatchRecordsMin, p.uplink?.downlinkFetchBytes], [1, 1024, 1024, 0, 5, 1, 1024]);
  t.same([p.uplink?.bandwidthBytesPerSec, p.uplink?.bandwidthBurstBytes, p.uplink?.priorities], [0, 1024, ['alarms', 'sensors.*']], 'no cap, the smallest burst, priorities as a comma-separated string');
  t.equal(p.uplink?.transactionBatchesMax, 64, 'the most batches per transaction');
  t.ok(p.budget.items.some((i) => i.key === 'uplink.inFlightBytesMax' && i.bytes === 1024), 'the link\'s batches in flight are counted in the memory budget');
  t.ok(p.budget.perPartition.some((i) => i.key.includes('uplink.readBytesMax') && i.bytes > 0), 'its per-partition read, batch and fetch are listed apart');
  t.same(p.uplink?.downlink, [{ central: 'x.commands', local: 'commands' }, { central: 'central.all', local: 'broadcast' }], '{site} filled in, comma-separated pairs');
  t.equal(p.uplink?.compression, 'lz4', 'uplink.compression: lz4 by default');
  for (const [window, rows] of [[100, 1], [3_600_000, 100_000]]) {
    const q = await prepareNode(loadNodeConfig([...base, '--data-dir', dir, ...['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', `uplink.bandwidthWindowMs=${window}`, `uplink.statusPartitionsMax=${rows}`, 'uplink.compression=zstd'].flatMap((s) => ['--set', s])], {}));
    t.same([q.uplink?.bandwidthWindowMs, q.uplink?.statusPartitionsMax, q.uplink?.compression], [window, rows, 'zstd'], `bandwidthWindowMs=${window} and statusPartitionsMax=${rows} accepted (bounds)`);
  }
});

t.test('uplink config: the lanes, the liveness alarm, the age bound and the drain order at their boundaries', async (t) => {
  const dir = await tempDir(t);
  const at = async (sets: string[]) => (await prepareNode(loadNodeConfig([...base, '--data-dir', dir, ...['uplink.site=x', 'uplink.bootstrap=h:1', 'uplink.topics=t', ...sets].flatMap((s) => ['--set', s])], {}))).uplink!;
  const low = await at(['uplink.stallAlarmSec=0', 'uplink.backlogAgeMsMax=0', 'uplink.reservedTopics=alarms, cmd.*']);
  t.same([low.stallAlarmSec, low.backlogAgeMsMax, low.reservedTopics], [0, 0, ['alarms', 'cmd.*']], 'alarm off, no age bound, reserved topics as a comma-separated string');
  const high = await at(['uplink.stallAlarmSec=31536000', `uplink.backlogAgeMsMax=${Number.MAX_SAFE_INTEGER}`]);
  t.same([high.stallAlarmSec, high.backlogAgeMsMax], [31_536_000, Number.MAX_SAFE_INTEGER], 'a year; the largest safe integer');
  const d = await at([]);
  t.same([d.stallAlarmSec, d.backlogAgeMsMax, d.reservedTopics], [60, 0, []], 'defaults: a minute, none, no lane');
  const shares = await Promise.all(['1', '0.001'].map(async (v) => (await at([`uplink.reservedShareMax=${v}`])).reservedShareMax));
  t.same([d.reservedShareMax, ...shares], [0.8, 1, 0.001], 'reservedShareMax: 0.8 by default; 1 (a strict lane) and a tiny share accepted');
  const nf = await at(['uplink.drainOrderTopics=telemetry.*=newest-first, logs=oldest-first', 'uplink.newestFirstRecords=1']);
  t.same([nf.drainOrderTopics, nf.newestFirstRecords], [[{ pattern: 'telemetry.*', order: 'newest-first' }, { pattern: 'logs', order: 'oldest-first' }], 1], 'drain orders as a comma-separated string; the smallest head window');
  t.same([d.drainOrderTopics, d.newestFirstRecords], [[], 1000], 'default: oldest-first everywhere, a 1000-record head');
  const fences = await Promise.all(['0', '86400000'].map(async (v) => (await at([`uplink.fencedRecheckMs=${v}`])).fencedRecheckMs));
  t.same([d.fencedRecheckMs, ...fences], [60_000, 0, 86_400_000], 'fencedRecheckMs: a minute by default; 0 (blocked until restart) and a day accepted');
});

t.test('uplink: topic patterns and rename templates', async (t) => {
  t.ok(topicMatches(['sensors.*'], 'sensors.temp'));
  t.notOk(topicMatches(['sensors.*'], 'sensorsX'));
  t.ok(topicMatches(['alarms'], 'alarms'));
  t.notOk(topicMatches(['alarms'], 'alarms2'));
  t.notOk(topicMatches(['*'], '__consumer_offsets'), 'internal topics never match');
  t.equal(targetTopicOf(defaultUplinkOptions.rename, 'p7', 'sensors.temp', 2), 'p7.sensors.temp');
  t.equal(targetTopicOf('{site}-{topic}-{partition}', 'p7', 't', 2), 'p7-t-2');
  t.equal(resolveUplinkOptions({ ...defaultUplinkOptions }), null);
});

t.test('uplink state file: header, length and CRC are checked', async (t) => {
  const state = { producer: { producerId: 7, producerEpoch: 0, partitions: { 'x.t/0': { nextSequence: 12, inFlight: [{ producerId: 7, baseSequence: 12, recordCount: 3, firstSourceOffset: 40, lastSourceOffset: 42 }] } } }, checkpoints: { 't/0': 40 } };
  const bytes = encodeLinkState(state);
  t.match(bytes.toString('utf8', 0, 40), /^TRIBUTARY-UPLINK-STATE 1 [0-9a-f]{8} \d+\n/);
  t.same(decodeLinkState(bytes), state, 'round trip');
  const flipped = Buffer.from(bytes);
  flipped[flipped.length - 3] ^= 1;
  t.equal(decodeLinkState(flipped), 'CRC mismatch');
  t.match(decodeLinkState(bytes.subarray(0, bytes.length - 1)) as string, /body is \d+ bytes, the header says/);
  t.equal(decodeLinkState(Buffer.from('garbage')), 'no header line');
});

t.test('uplink: batches are split by records and by estimated bytes', async (t) => {
  const recs = Array.from({ length: 10 }, () => ({ key: null, value: Buffer.alloc(100) }));
  t.same(splitBatches(recs, 4, 1 << 20).map((b) => [b.from, b.records.length]), [[0, 4], [4, 4], [8, 2]], 'by record count');
  t.same(splitBatches(recs, 100, 300).map((b) => b.records.length), [2, 2, 2, 2, 2], 'by bytes (140 each, 300 max)');
  t.same(splitBatches([{ key: null, value: Buffer.alloc(5000) }], 100, 300).map((b) => b.records.length), [1], 'one record larger than the bound still goes alone');
  t.same(splitBatches([], 10, 10), []);
});
