// Purpose: the web console's Cluster section in a real browser (Debian chromium driven by
// playwright-core) against three real broker processes on loopback: it shows every node with its
// addresses and broker state, the controller (as /stats and the quorum name it), and each
// replicated partition's leader, leader epoch, replicas and in-sync replicas. A follower killed
// with kill -9 turns its row to not connected / fenced and its partitions to under-replicated; once
// it is restarted and caught up they are whole again. On a single node the section stays hidden.
// Screenshots: test-artifacts/console-cluster-whole.png and console-cluster-degraded.png.
import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { projectRoot, startBroker, tempDir } from '../helpers/index.js';
import { startCluster } from '../helpers/cluster.js';

const CHROMIUM = '/usr/bin/chromium';
const FAST = ['cluster.tickMs=50', 'cluster.sessionTimeoutMs=1000', 'cluster.replicaLagTimeMaxMs=2000', 'cluster.replicationCheckIntervalMs=100'];

/** Each partition row's cells: [name, leader, epoch, replicas, isr, marker, follower lag]. */
const partitionRows = (page: Page) => page.$$eval('#cluster-partitions tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent ?? '')));

t.test('console: the cluster section shows nodes, the controller, leaders and ISR, and a killed follower', { timeout: 180_000, skip: existsSync(CHROMIUM) || process.env.CI === 'true' ? false : `chromium not found at ${CHROMIUM} (apt-get install chromium)` }, async (t) => {
  const c = await startCluster(t, 3, { set: FAST });
  const { leader: controller } = await c.waitForLeader();
  // Watch from a node that is not the controller, and kill the third one.
  const watch = controller === 1 ? 2 : 1;
  const victim = [1, 2, 3].find((id) => id !== controller && id !== watch)!;
  const created = await fetch(`${c.httpUrl(watch)}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'readings', partitions: 3, replicationFactor: 3 }) });
  t.equal(created.status, 200, 'topic readings: 3 partitions, replication factor 3');

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${c.httpUrl(watch)}/`);
  await page.waitForSelector('#cluster-section:not([hidden])', { timeout: 15_000 });
  t.pass('the cluster section is shown (cluster.* is set)');
  await page.waitForFunction(() => document.querySelectorAll('#cluster-partitions tr[data-partition^="readings-"]').length === 3, undefined, { timeout: 20_000 });
  t.equal(await page.textContent('#cluster-controller'), `controller ${controller}`, `the badge names the controller the quorum elected (node ${controller})`);
  const nodes = await page.$$eval('#cluster-nodes tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent ?? '')));
  t.equal(nodes.length, 3, 'three node rows');
  t.match(nodes.find((r) => r[0].startsWith(`${controller}`))![0], /\(controller\)/, 'the controller row says so');
  t.match(nodes.find((r) => r[0].startsWith(`${watch}`))![0], /\(this node\)/, 'the node serving the page says so');
  t.ok(nodes.every((r) => r[3] === 'live'), 'every broker live');
  t.equal(await page.isVisible('#cluster-lag-note'), true, 'seen from a follower: the note says lag is known to the controller');
  const stats = (await (await fetch(`${c.httpUrl(watch)}/stats`)).json()) as { cluster: { partitions: Array<{ topic: string; partition: number; leader: number; leaderEpoch: number; replicas: number[]; isr: number[] }> } };
  const whole = (await partitionRows(page)).filter((r) => r[0].startsWith('readings-'));
  for (const p of stats.cluster.partitions.filter((x) => x.topic === 'readings')) {
    const row = whole.find((r) => r[0] === `readings-${p.partition}`)!;
    t.same(row.slice(1, 5), [String(p.leader), String(p.leaderEpoch), p.replicas.join(', '), p.isr.join(', ')], `readings-${p.partition}: leader, epoch, replicas and ISR as /stats reports them`);
  }
  t.ok(whole.every((r) => r[4].split(', ').length === 3 && r[5] === ''), 'every partition fully in sync');
  // Follower lag: this node knows it for the partitions it leads (each follower 0 behind once it
  // has fetched), and sends the reader to the leader's console for the others.
  await page.waitForFunction((w) => Array.from(document.querySelectorAll('#cluster-partitions tbody tr')).every((tr) => {
    const td = Array.from(tr.querySelectorAll('td')).map((x) => x.textContent ?? '');
    return td[1] === String(w) ? /^\d+: 0, \d+: 0$/.test(td[6] ?? '') : td[6] === `— (node ${td[1]}'s console)`;
  }), watch, { timeout: 20_000 });
  const ledHere = (await partitionRows(page)).filter((r) => r[1] === String(watch));
  t.ok(ledHere.length > 0, `node ${watch} leads ${ledHere.length} partition(s) (user and internal topics); each shows both followers 0 behind: ${ledHere.map((r) => `${r[0]} [${r[6]}]`).join('; ')}`);
  const artifacts = join(projectRoot, 'test-artifacts');
  await mkdir(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'console-cluster-whole.png'), fullPage: true });

  await c.kill9(victim);
  await page.waitForFunction((v) => {
    const row = document.querySelector(`#cluster-nodes tr[data-node="${v}"]`);
    const cells = row ? Array.from(row.querySelectorAll('td')).map((td) => td.textContent) : [];
    const parts = Array.from(document.querySelectorAll('#cluster-partitions tr[data-partition^="readings-"]'));
    return cells[4] === 'no' && cells[3] === 'fenced' && parts.length === 3 && parts.every((tr) => tr.querySelectorAll('td')[5]?.textContent === 'under-replicated');
  }, victim, { timeout: 30_000 });
  const degraded = (await partitionRows(page)).filter((r) => r[0].startsWith('readings-'));
  t.ok(degraded.every((r) => !r[4].split(', ').includes(String(victim)) && r[1] !== String(victim)), `node ${victim} killed: shown not connected and fenced; it leads nothing and is out of every ISR, each partition marked under-replicated`);
  const summary = (await page.textContent('#cluster-summary')) ?? '';
  const counted = Number(/(\d+) under-replicated/.exec(summary)?.[1]);
  const shown = (await partitionRows(page)).filter((r) => r[5] === 'under-replicated').length;
  t.ok(counted >= 3 && counted === shown, `the summary counts them with the internal topics' partitions (${counted}, ${shown} rows marked): ${summary}`);
  await page.screenshot({ path: join(artifacts, 'console-cluster-degraded.png'), fullPage: true });

  await c.start(victim);
  await page.waitForFunction(() => {
    const parts = Array.from(document.querySelectorAll('#cluster-partitions tr[data-partition^="readings-"]'));
    return parts.length === 3 && parts.every((tr) => tr.querySelectorAll('td')[4]?.textContent?.split(', ').length === 3);
  }, undefined, { timeout: 30_000 });
  t.pass(`node ${victim} restarted: back in every ISR`);
  t.same(pageErrors, [], 'no script errors on the page');
});

t.test('console: a single node hides the cluster section (/stats says cluster: null)', { timeout: 60_000, skip: existsSync(CHROMIUM) || process.env.CI === 'true' ? false : `chromium not found at ${CHROMIUM}` }, async (t) => {
  const single = await startBroker(t, { dataDir: await tempDir(t, 'tributary-console-single-') });
  const http = `http://${single.listeners.http}`;
  const stats = (await (await fetch(`${http}/stats`)).json()) as { cluster: unknown };
  t.equal(stats.cluster, null, '/stats: cluster null');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${http}/`);
  await page.waitForFunction(() => (document.querySelector('#process')?.textContent ?? '') !== '', undefined, { timeout: 15_000 });
  t.equal(await page.isHidden('#cluster-section'), true, 'the cluster section stays hidden');
});
