/**
 * Counters and histograms whose label sets are bound once: `cell(labels)`
 * hashes the labels the first time and hands back a plain object the request
 * path only adds to (prom-client's own `labels()` children hash every label
 * again on each `inc`). They plug into a prom-client Registry as metrics
 * (`get()` answers in prom-client's JSON form, so the registry escapes label
 * values, renders the text format, and AggregatorRegistry sums them across
 * workers).
 */
import type { Registry } from 'prom-client';

export type Labels = Readonly<Record<string, string>>;

/** One label set of a counter. */
export interface CounterCell { readonly labels: Labels; value: number }

/** One label set of a histogram: per-bucket (not cumulative) counts, the last one past every bound. */
export interface HistogramCell { readonly labels: Labels; readonly counts: Float64Array; sum: number; count: number }

interface MetricValue { labels: Record<string, string | number>; value: number; metricName?: string }

/** What prom-client's Registry asks of a metric. */
interface MetricLike {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly aggregator: string;
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }>;
}

function keyOf(labels: Labels): string {
  return JSON.stringify(labels);
}

/** A counter of bound cells. */
export class CellCounter implements MetricLike {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly cells = new Map<string, CounterCell>();
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  /** The cell for `labels` (the same object for equal labels, across reloads). */
  cell(labels: Labels): CounterCell {
    const key = keyOf(labels);
    let c = this.cells.get(key);
    if (!c) this.cells.set(key, (c = { labels: Object.freeze({ ...labels }), value: 0 }));
    return c;
  }

  /** How many label sets exist. */
  get size(): number { return this.cells.size; }

  async get() {
    const values: MetricValue[] = [];
    for (const c of this.cells.values()) values.push({ labels: c.labels, value: c.value });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** A histogram of bound cells; `bounds` are the buckets' upper bounds, ascending. */
export class CellHistogram implements MetricLike {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly bounds: readonly number[];
  private readonly cells = new Map<string, HistogramCell>();
  constructor(name: string, help: string, bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.bounds = bounds;
  }

  cell(labels: Labels): HistogramCell {
    const key = keyOf(labels);
    let c = this.cells.get(key);
    if (!c) this.cells.set(key, (c = { labels: Object.freeze({ ...labels }), counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 }));
    return c;
  }

  /** Adds `v` to `c`: one bucket, the sum and the count. */
  observe(c: HistogramCell, v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    c.counts[i]++;
    c.sum += v;
    c.count++;
  }

  get size(): number { return this.cells.size; }

  async get() {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.cells.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += c.counts[i];
        values.push({ labels: { ...c.labels, le: this.bounds[i] }, value: acc, metricName: bucket });
      }
      values.push({ labels: { ...c.labels, le: '+Inf' }, value: c.count, metricName: bucket });
      values.push({ labels: c.labels, value: c.sum, metricName: `${this.name}_sum` });
      values.push({ labels: c.labels, value: c.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** Registers a cell metric (prom-client's Registry takes any object of this shape). */
export function register<M extends MetricLike>(registry: Registry, metric: M): M {
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
  return metric;
}
