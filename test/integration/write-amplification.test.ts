// Purpose: /metrics exports the node's write amplification — bytes the kernel accounts as written
// to storage by the broker (/proc/self/io write_bytes) per record batch byte appended — and it
// means what it says: large batches cost about their own size (plus indexes and metadata), while
// small fsynced appends cost far more than their size (each rewrites a page).
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, tempDir } from '../helpers/index.js';
import { processDiskWriteBytes } from '../../host/broker/broker-metrics.js';

const haveIo = existsSync('/proc/self/io') && processDiskWriteBytes() !== undefined;

function gauge(metrics: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics);
  return m ? Number(m[1]) : undefined;
}

t.test('write amplification: processDiskWriteBytes reads write_bytes, undefined without it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-io-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'io'), 'rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 12288\ncancelled_write_bytes: 0\n');
  t.equal(processDiskWriteBytes(join(dir, 'io')), 12288);
  t.equal(processDiskWriteBytes(join(dir, 'missing')), undefined);
  await writeFile(join(dir, 'other'), 'rchar: 10\n');
  t.equal(processDiskWriteBytes(join(dir, 'other')), undefined);
});

t.test('write amplification: ~1 for large batches, much more for small fsynced appends', { skip: haveIo || process.env.CI === 'true' ? false : 'no /proc/self/io write_bytes on this kernel' }, async (t) => {
  const dataDir = await tempDir(t);
  const broker = await startBroker(t, { dataDir });
  const base = `http://127.0.0.1:${broker.port('http')}`;
  const statuses: number[] = [];
  const post = async (body: unknown) => {
    const res = await fetch(`${base}/topics/wa/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    statuses.push(res.status);
    await res.arrayBuffer();
  };
  const bytesIn = (metrics: string) => Number(/^tributary_broker_bytes_in_total\{topic="wa"\} (\d+)$/m.exec(metrics)![1]);
  const scrape = async () => (await (await fetch(`${base}/metrics`)).text());

  const before = await scrape();
  t.ok((gauge(before, 'tributary_process_disk_write_bytes') ?? -1) >= 0, 'write bytes exported');
  t.equal(gauge(before, 'tributary_broker_write_amplification'), undefined, 'no ratio before anything was appended');

  for (let i = 0; i < 24; i++) await post([{ key: `big-${i}`, value: 'x'.repeat(64 * 1024) }]);
  const large = await scrape();
  const waLarge = gauge(large, 'tributary_broker_write_amplification')!;
  const appended = bytesIn(large);
  t.ok(appended >= 24 * 64 * 1024, `appended ${appended} batch bytes`);
  t.ok(waLarge >= 0.9 && waLarge < 2, `64 KiB batches: amplification ${waLarge.toFixed(2)} (the log once, indexes and metadata)`);

  for (let i = 0; i < 150; i++) await post([{ key: 'small', value: '21.5' }]);
  t.same(new Set(statuses), new Set([200]), `${statuses.length} appends acknowledged (fsynced: flush always)`);
  const small = await scrape();
  const waSmall = gauge(small, 'tributary_broker_write_amplification')!;
  const written = gauge(small, 'tributary_process_disk_write_bytes')! - gauge(large, 'tributary_process_disk_write_bytes')!;
  const smallPhase = written / (bytesIn(small) - appended);
  t.ok(smallPhase > 5, `150 small fsynced appends: ${written} bytes written for ${bytesIn(small) - appended} appended (${smallPhase.toFixed(1)}×: each fsync rewrites a page)`);
  t.ok(waSmall > waLarge, `the node-wide ratio rose: ${waLarge.toFixed(2)} → ${waSmall.toFixed(2)}`);
  await broker.stop();
});
