// The process metrics read the real process: RSS against /proc/self/status, open descriptors
// against a file this test opens, CPU time against work this test does.
import t from 'tap';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { maxOpenFiles, registerProcessMetrics } from '../../../host/metrics/process.js';

function sample(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`${name} not rendered`);
  return Number(m[1]);
}

t.test('RSS, heap, CPU, descriptors and start time come from the process', async (t) => {
  const metrics = new MetricsRegistry();
  registerProcessMetrics(metrics);
  const first = metrics.render();
  const vmRssKb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
  const rss = sample(first, 'process_resident_memory_bytes');
  t.ok(Math.abs(rss - vmRssKb * 1024) < 0.2 * vmRssKb * 1024, `RSS ${rss} within 20% of VmRSS ${vmRssKb} kB`);
  t.match(first, /# TYPE process_cpu_seconds_total counter/);
  t.ok(sample(first, 'nodejs_heap_size_used_bytes') > 0 && sample(first, 'nodejs_heap_size_used_bytes') <= sample(first, 'nodejs_heap_size_total_bytes'));
  const start = sample(first, 'process_start_time_seconds');
  t.ok(Math.abs(start - (Date.now() / 1000 - process.uptime())) <= 2, 'start time matches the process uptime');

  const fds = sample(first, 'process_open_fds');
  const extra = [openSync('/proc/self/status', 'r'), openSync('/proc/self/status', 'r'), openSync('/proc/self/status', 'r')];
  const cpuBefore = sample(first, 'process_cpu_seconds_total');
  const until = process.cpuUsage().user + 50_000;
  let x = 0;
  while (process.cpuUsage().user < until) x += Math.sqrt(x + 1); // 50 ms of CPU
  const second = metrics.render();
  for (const fd of extra) closeSync(fd);
  t.equal(sample(second, 'process_open_fds'), fds + 3, 'three more descriptors seen');
  t.ok(sample(second, 'process_cpu_seconds_total') - cpuBefore >= 0.045, 'CPU time grew by the work done');
  t.ok(sample(second, 'process_max_fds') >= fds + 3);
});

t.test('max open files: the soft limit of the "Max open files" line', async (t) => {
  const limits = 'Limit                     Soft Limit           Hard Limit           Units\nMax cpu time              unlimited            unlimited            seconds\nMax open files            1024                 524288               files\n';
  t.equal(maxOpenFiles(limits), 1024);
  t.equal(maxOpenFiles('Max open files            unlimited            unlimited            files\n'), null);
  t.equal(maxOpenFiles(''), null);
});

t.test('a counter total set from outside only grows', async (t) => {
  const metrics = new MetricsRegistry();
  const c = metrics.counter('z_total', 'z');
  c.setTotal(5);
  c.setTotal(3);
  t.equal(c.value(), 5);
});
