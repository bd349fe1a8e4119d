// Purpose: the web console in a real browser (Debian chromium driven by playwright-core) against a real broker process: it lists topics, and a record published over MQTT by mqtt.js appears in its live tail; a screenshot is saved to test-artifacts/console.png.
import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { chromium } from 'playwright-core';
import { projectRoot, startBroker, tempDir } from '../helpers/index.js';

const CHROMIUM = '/usr/bin/chromium';

t.test('console: a record published over MQTT appears in the live tail', { skip: existsSync(CHROMIUM) ? false : `chromium not found at ${CHROMIUM} (apt-get install chromium)` }, async (t) => {
  const dataDir = await tempDir(t, 'tributary-console-');
  const broker = await startBroker(t, { dataDir });
  const http = `http://${broker.listeners.http}`;

  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port('mqtt')}`, { clientId: 'console-test', reconnectPeriod: 0 });
  t.teardown(() => client.endAsync(true));
  // The first publish creates the stream topic "sensors" (default route: first level = topic).
  await client.publishAsync('sensors/room1/temp', 'warm-up', { qos: 1 });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${http}/`);
  await page.waitForSelector('#topics tr[data-topic="sensors"]', { timeout: 15_000 });
  t.pass('the topics table lists the MQTT-created topic');
  await page.waitForSelector('#health.ok', { timeout: 10_000 });

  await page.fill('#tail-topic', 'sensors');
  await page.click('#tail-button');
  await page.waitForFunction(() => document.getElementById('tail-status')?.textContent?.startsWith('tailing'), undefined, { timeout: 10_000 });

  const marker = `21.5 °C #${Math.random().toString(36).slice(2, 8)}`;
  await client.publishAsync('sensors/room1/temp', marker, { qos: 1 });
  await page.waitForFunction((m) => document.getElementById('tail-records')?.textContent?.includes(m), marker, { timeout: 10_000 });
  const row = await page.textContent('#tail-records tr:first-child');
  t.match(row, marker, 'the value is shown');
  t.match(row, 'sensors/room1/temp', 'the key (the MQTT topic) is shown');

  // A few more, so the rate chart has something to draw.
  for (let i = 0; i < 20; i++) await client.publishAsync(`sensors/room${i % 3}/temp`, String(20 + i / 10), { qos: 0 });
  await page.waitForFunction(() => (document.getElementById('tail-records')?.children.length ?? 0) >= 21, undefined, { timeout: 10_000 });
  await page.waitForFunction(() => Number(document.querySelector('.card[data-gateway="ws"] b')?.textContent) >= 1, undefined, { timeout: 10_000 });
  const wsClients = Number(await page.textContent('.card[data-gateway="ws"] b'));
  t.ok(wsClients >= 1, `the console counts its own WebSocket (${wsClients})`);
  await page.waitForFunction(() => Number(document.querySelector('.card[data-gateway="mqtt"] b')?.textContent) >= 1, undefined, { timeout: 10_000 });
  t.pass('the console counts the MQTT client');
  await page.waitForTimeout(600); // one more chart frame and stats refresh

  const dir = join(projectRoot, 'test-artifacts');
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'console.png');
  await page.screenshot({ path, fullPage: true });
  t.ok(existsSync(path), `screenshot saved to ${path}`);
  t.same(pageErrors, [], 'no script errors in the page');
});
