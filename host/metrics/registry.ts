// In-process metrics: counters, gauges and histograms with labels, rendered in Prometheus
// text format (exposition format 0.0.4) by `/metrics`.
//
// Bounded: a metric refuses new label sets past `maxSeriesPerMetric` (and counts the
// refusals), so a client that invents topic names cannot grow memory without end.

export type Labels = Record<string, string>;

const MAX_SERIES_PER_METRIC = 2_000;

/** Characters a label value must escape in the exposition format. */
const NEEDS_ESCAPE = /[\\"\n]/;

/** Single-label keys remembered (label name → value → key); emptied past this many values, a bound on what a client inventing topic names can grow. */
const SINGLE_KEYS_CACHED_MAX = 4 * MAX_SERIES_PER_METRIC;
const singleKeys = new Map<string, Map<string, string>>();
let singleKeysCached = 0;

/**
 * The series key of a label set. Called on every increment (per message for some, per append
 * for the broker's), so the common cases are cheap: one label is looked up in `singleKeys`
 * (no array, regex or string built, and the key found is the same string each time, its hash
 * already computed for the series map); more than one is built as below.
 */
function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  let name: string | undefined;
  let count = 0;
  for (const k in labels) {
    if (!Object.prototype.hasOwnProperty.call(labels, k)) continue;
    name = k;
    if (++count > 1) break;
  }
  if (count === 0) return '';
  if (count > 1) return builtLabelKey(labels);
  const value = labels[name!];
  if (typeof value !== 'string') return builtLabelKey(labels);
  let byValue = singleKeys.get(name!);
  let key = byValue?.get(value);
  if (key === undefined) {
    key = builtLabelKey(labels);
    if (singleKeysCached >= SINGLE_KEYS_CACHED_MAX) {
      singleKeys.clear();
      singleKeysCached = 0;
      byValue = undefined;
    }
    if (!byValue) singleKeys.set(name!, (byValue = new Map()));
    byValue.set(value, key);
    singleKeysCached++;
  }
  return key;
}

/** The series key built: names sorted, values escaped as the exposition format wants. */
function builtLabelKey(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length > 1) keys.sort();
  let out = '';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    let v = String(labels[k]);
    if (NEEDS_ESCAPE.test(v)) v = v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
    out += i === 0 ? `${k}="${v}"` : `,${k}="${v}"`;
  }
  return out;
}

abstract class Metric {
  protected readonly series = new Map<string, number>();
  private readonly collectors: Array<() => void> = [];
  dropped = 0;
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  protected slot(labels?: Labels): string | undefined {
    const key = labelKey(labels);
    if (!this.series.has(key)) {
      if (this.series.size >= MAX_SERIES_PER_METRIC) {
        this.dropped++;
        return undefined;
      }
      this.series.set(key, 0);
    }
    return key;
  }
  abstract render(): string;
  /** Called before each render to refresh the value from its source (e.g. RSS, lag, CPU time). */
  collect(fn: () => void): void {
    this.collectors.push(fn);
  }
  protected runCollectors(): void {
    for (const c of this.collectors) c();
  }
  value(labels?: Labels): number {
    return this.series.get(labelKey(labels)) ?? 0;
  }
  protected renderSimple(type: string): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${type}`];
    for (const [k, v] of this.series) lines.push(`${this.name}${k ? `{${k}}` : ''} ${v}`);
    return lines.join('\n');
  }
}

export class Counter extends Metric {
  inc(labels?: Labels, by = 1): void {
    const k = this.slot(labels);
    if (k !== undefined) this.series.set(k, this.series.get(k)! + by);
  }
  /** For a total kept elsewhere and read by a collector (CPU time from the OS): it only grows. */
  setTotal(value: number, labels?: Labels): void {
    const k = this.slot(labels);
    if (k !== undefined && value >= this.series.get(k)!) this.series.set(k, value);
  }
  render(): string {
    this.runCollectors();
    return this.renderSimple('counter');
  }
}

export class Gauge extends Metric {
  set(value: number, labels?: Labels): void {
    const k = this.slot(labels);
    if (k !== undefined) this.series.set(k, value);
  }
  add(delta: number, labels?: Labels): void {
    const k = this.slot(labels);
    if (k !== undefined) this.series.set(k, this.series.get(k)! + delta);
  }
  render(): string {
    this.runCollectors();
    return this.renderSimple('gauge');
  }
}

export class Histogram extends Metric {
  private readonly buckets: number[];
  private readonly counts = new Map<string, { buckets: number[]; sum: number; count: number }>();
  constructor(name: string, help: string, buckets: number[]) {
    super(name, help);
    this.buckets = [...buckets].sort((a, b) => a - b);
  }
  observe(value: number, labels?: Labels): void {
    const k = this.slot(labels);
    if (k === undefined) return;
    let h = this.counts.get(k);
    if (!h) this.counts.set(k, (h = { buckets: new Array(this.buckets.length).fill(0), sum: 0, count: 0 }));
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) h.buckets[i]++;
    h.sum += value;
    h.count++;
  }
  snapshot(labels?: Labels): { count: number; sum: number } {
    const h = this.counts.get(labelKey(labels));
    return { count: h?.count ?? 0, sum: h?.sum ?? 0 };
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, h] of this.counts) {
      const sep = k ? ',' : '';
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{${k}${sep}le="${b}"} ${h.buckets[i]}`));
      lines.push(`${this.name}_bucket{${k}${sep}le="+Inf"} ${h.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ''} ${h.sum}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ''} ${h.count}`);
    }
    return lines.join('\n');
  }
}

/** One registry per broker process; metrics are created once by name and shared. */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  counter(name: string, help: string): Counter {
    return this.getOrCreate(name, () => new Counter(name, help), Counter);
  }
  gauge(name: string, help: string): Gauge {
    return this.getOrCreate(name, () => new Gauge(name, help), Gauge);
  }
  histogram(name: string, help: string, buckets: number[]): Histogram {
    return this.getOrCreate(name, () => new Histogram(name, help, buckets), Histogram);
  }
  get(name: string): Metric | undefined {
    return this.metrics.get(name);
  }
  /** Prometheus text exposition. */
  render(): string {
    return [...this.metrics.values()].map((m) => m.render()).join('\n') + '\n';
  }

  private getOrCreate<T extends Metric>(name: string, make: () => T, type: abstract new (...args: never[]) => T): T {
    const existing = this.metrics.get(name);
    if (existing) {
      if (!(existing instanceof type)) throw new Error(`metric ${name} already registered with another type`);
      return existing;
    }
    const m = make();
    this.metrics.set(name, m);
    return m;
  }
}

/** Latency buckets in milliseconds, from 50 µs (a fast fsync) to 10 s. */
export const LATENCY_BUCKETS_MS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000];
