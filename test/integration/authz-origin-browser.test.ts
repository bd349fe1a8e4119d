// Purpose: finding 4 in a real browser (Debian chromium driven by playwright-core) against a real
// broker process: a page served from another origin cannot open /ws or MQTT over WebSocket
// (`/mqtt`) — the upgrade is answered 403 before any frame, so the page's socket errors — while
// the broker's own page (same origin) opens /ws and subscribes. The refusals are counted.
import t from 'tap';
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import { startBroker, tempDir } from '../helpers/index.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? false : `chromium not found at ${CHROMIUM} (apt-get install chromium)`;
if (missing && process.env.CI) t.fail(missing);

/** In the page: open a WebSocket and report `open` or how it ended. */
function tryOpen([url, protocol]: [string, string]): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocol);
    ws.onopen = () => {
      ws.close();
      resolve('open');
    };
    ws.onerror = () => resolve('error');
    setTimeout(() => resolve('timeout'), 5000);
  });
}

t.test('Origin: a page from another site cannot open /ws or /mqtt; the broker\'s own page can', { skip: missing }, async (t) => {
  const b = await startBroker(t, { dataDir: await tempDir(t, 'tributary-origin-') });
  const http = `http://${b.listeners.http}`;
  // another site: a page on another port of the same machine is another origin
  const evil = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'));
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  t.teardown(() => evil.close());
  const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage();

  await page.goto(evilUrl);
  t.equal(await page.evaluate(tryOpen, [`ws://${b.listeners.http}/ws`, 'tributary.json.v1'] as [string, string]), 'error', 'cross-origin page: /ws refused');
  t.equal(await page.evaluate(tryOpen, [`ws://${b.listeners.mqttWs}/mqtt`, 'mqtt'] as [string, string]), 'error', 'cross-origin page: /mqtt refused');

  await page.goto(`${http}/`);
  t.equal(await page.evaluate(tryOpen, [`ws://${b.listeners.http}/ws`, 'tributary.json.v1'] as [string, string]), 'open', 'same-origin page: /ws opens');

  const metrics = await (await fetch(`${http}/metrics`)).text();
  t.match(metrics, /tributary_ws_refused_total\{code="403"\} [1-9]/, 'the /ws refusal is counted');
  t.match(metrics, /tributary_mqtt_denied_total\{what="origin"\} [1-9]/, 'the /mqtt refusal is counted');
  t.equal(await b.stop(), 0);
});
