// Purpose: the web console's Uplink section in a real browser (Debian chromium driven by
// playwright-core) against real broker processes: with the target down it shows the link down
// and, per partition, the lag in records, bytes and seconds that /stats reports (records produced
// by kafkajs, the first stamped 90 s in the past), the rows cut at uplink.statusPartitionsMax with
// a note; once the target is up the link turns up and the lag falls to 0. Screenshots are saved to
// test-artifacts/console-uplink-down.png and console-uplink-up.png.
import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { chromium } from 'playwright-core';
import { projectRoot, startBroker, tempDir } from '../helpers/index.js';
import { freePort } from '../helpers/cluster.js';

const CHROMIUM = '/usr/bin/chromium';
const { Kafka, logLevel } = kafkajs;

t.test('console: the uplink section shows link state, lag in records, bytes and seconds, and capped rows', { skip: existsSync(CHROMIUM) || process.env.CI === 'true' ? false : `chromium not found at ${CHROMIUM} (apt-get install chromium)` }, async (t) => {
  const port = await freePort();
  const edge = await startBroker(t, {
    dataDir: await tempDir(t, 'tributary-console-uplink-'),
    args: [
      ...['--set', 'uplink.site=edge1', '--set', `uplink.bootstrap=127.0.0.1:${port}`, '--set', 'uplink.topics=telemetry', '--set', 'uplink.statusPartitionsMax=2'],
      ...['--set', 'uplink.topicScanIntervalMs=100', '--set', 'uplink.reconnectBackoffMs=100', '--set', 'uplink.reconnectBackoffMaxMs=300', '--set', 'uplink.connectTimeoutMs=1000', '--set', 'uplink.bandwidthWindowMs=2000'],
    ],
  });
  const http = `http://${edge.listeners.http}`;
  const created = await fetch(`${http}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'telemetry', partitions: 3 }) });
  t.equal(created.status, 200, 'topic telemetry with 3 partitions');
  const producer = new Kafka({ clientId: 'console-uplink', brokers: [edge.listeners.kafka!], logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  t.teardown(() => producer.disconnect());
  const old = Date.now() - 90_000;
  await producer.send({ topic: 'telemetry', acks: -1, messages: Array.from({ length: 30 }, (_, i) => ({ value: `reading-${i}`, partition: 0, timestamp: String(i === 0 ? old : Date.now()) })) });
  await producer.send({ topic: 'telemetry', acks: -1, messages: [{ value: 'one', partition: 2 }] });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${http}/`);
  await page.waitForSelector('#uplink-section:not([hidden])', { timeout: 15_000 });
  t.pass('the uplink section is shown (uplink.site is set)');
  await page.waitForFunction(() => document.querySelector('#uplink tr[data-source="telemetry-0"] td:nth-child(4)')?.textContent === '30', undefined, { timeout: 15_000 });
  t.equal(await page.textContent('#uplink-link'), 'link down', 'the link badge says down');
  const row = await page.$$eval('#uplink tr[data-source="telemetry-0"] td', (tds) => tds.map((td) => td.textContent ?? ''));
  t.equal(row[2], 'retrying', 'partition 0 is retrying');
  t.match(row[4], /^\d+ B$/, `lag bytes shown: ${row[4]}`);
  const seconds = Number(/^([\d.]+) min$/.exec(row[5])?.[1]) * 60;
  t.ok(seconds >= 84 && seconds <= 120, `lag shown as ${row[5]}: the first record was stamped 90 s ago`);
  t.match(row[9], /ECONNREFUSED|could be reached/, 'the reason is shown');
  const stats = (await (await fetch(`${http}/stats`)).json()) as { uplink: { lagBytes: number; partitions: Array<{ source: { partition: number }; lagBytes: number }> } };
  t.equal(row[4], `${stats.uplink.partitions.find((p) => p.source.partition === 0)!.lagBytes} B`, 'the console shows the lag bytes /stats reports');
  t.equal(await page.$$eval('#uplink tbody tr', (trs) => trs.length), 2, 'rows cut at uplink.statusPartitionsMax=2');
  t.match(await page.textContent('#uplink-note'), /1 more partition\(s\) not shown/, 'and the note says one is left out');
  t.equal(await page.textContent('.card[data-uplink="lag-records"] b'), '31', 'the link card: 31 records behind over all partitions');

  const dir = join(projectRoot, 'test-artifacts');
  await mkdir(dir, { recursive: true });
  await page.screenshot({ path: join(dir, 'console-uplink-down.png'), fullPage: true });

  await startBroker(t, { dataDir: await tempDir(t), args: ['--kafka-port', String(port)] });
  await page.waitForFunction(() => document.getElementById('uplink-link')?.textContent === 'link up' && document.querySelector('.card[data-uplink="lag-records"] b')?.textContent === '0', undefined, { timeout: 20_000 });
  t.pass('the target up: the link turns up and the lag falls to 0');
  t.equal(await page.textContent('.card[data-uplink="lag-seconds"] b'), '0.0 s', 'no unsent record: 0 s');
  await page.screenshot({ path: join(dir, 'console-uplink-up.png'), fullPage: true });
  t.same(pageErrors, [], 'no script errors in the page');
});
