// The process's own health in `/metrics`: memory, CPU, descriptors and uptime, under the
// names Prometheus' client libraries use (`process_*`, `nodejs_*`), so a stock Node or
// node-exporter dashboard reads them. A gateway nobody watches needs these most: a creeping
// RSS or a descriptor leak is seen in a graph weeks before the kernel's OOM killer or EMFILE.
//
// Every value is read when `/metrics` renders (collectors), never on a timer: an idle broker
// does no work for them. Reading `/proc/self/fd` costs one directory listing per scrape,
// bounded by the process's descriptor limit.
import { readdirSync, readFileSync } from 'node:fs';
import type { MetricsRegistry } from './registry.js';

/** The soft limit on open descriptors ("Max open files" in /proc/self/limits), or null off Linux. */
export function maxOpenFiles(limits: string): number | null {
  const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  return soft && /^\d+$/.test(soft) ? Number(soft) : null;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function openFiles(): number | null {
  try {
    return readdirSync('/proc/self/fd').length - 1; // the listing's own descriptor is not the process's
  } catch {
    return null;
  }
}

/** Registers the process and Node.js runtime metrics on `metrics`. */
export function registerProcessMetrics(metrics: MetricsRegistry, startedAtMs = Date.now() - process.uptime() * 1000): void {
  const rss = metrics.gauge('process_resident_memory_bytes', 'Resident set size of the broker process, bytes');
  rss.collect(() => rss.set(process.memoryUsage.rss()));
  const cpu = metrics.counter('process_cpu_seconds_total', 'User and system CPU time the broker process has used, seconds');
  cpu.collect(() => {
    const u = process.cpuUsage();
    cpu.setTotal((u.user + u.system) / 1e6);
  });
  metrics.gauge('process_start_time_seconds', 'When the broker process started, seconds since the Unix epoch').set(Math.round(startedAtMs / 1000));
  const fds = metrics.gauge('process_open_fds', 'Open file descriptors (log segments, indexes, sockets)');
  fds.collect(() => {
    const n = openFiles();
    if (n !== null) fds.set(n);
  });
  const limits = readOrNull('/proc/self/limits');
  const max = limits === null ? null : maxOpenFiles(limits);
  if (max !== null) metrics.gauge('process_max_fds', 'Soft limit on open file descriptors').set(max);
  const heapUsed = metrics.gauge('nodejs_heap_size_used_bytes', 'V8 heap in use, bytes');
  const heapTotal = metrics.gauge('nodejs_heap_size_total_bytes', 'V8 heap reserved, bytes');
  const external = metrics.gauge('nodejs_external_memory_bytes', 'Memory held outside the V8 heap by buffers and the wasm core (reserved, not necessarily resident), bytes');
  heapUsed.collect(() => heapUsed.set(process.memoryUsage().heapUsed));
  heapTotal.collect(() => heapTotal.set(process.memoryUsage().heapTotal));
  external.collect(() => external.set(process.memoryUsage().external));
}
