/**
 * /metrics for a host of several workers: the main thread asks every worker
 * for its registry as JSON (worker-protocol.ts), waits a bounded time, and
 * sums what came with prom-client's AggregatorRegistry (counters and
 * histograms summed; gauges by each metric's aggregator). A worker that does
 * not answer in time is left out and counted in turnpike_metrics_workers_missing.
 */
import type { Worker } from 'node:worker_threads';
import { AggregatorRegistry, Registry } from 'prom-client';
import { METRIC_PREFIX, runtimeMetrics } from './metrics-registry.ts';
import type { MetricsJson, ToWorker } from './worker-protocol.ts';

/** How long /metrics waits for a worker's answer. */
export const METRICS_TIMEOUT_MS = 2000;

/** Process-wide series (CPU, memory, file descriptors): the main thread reports them once, workers leave them out. */
const PROCESS_WIDE = `${METRIC_PREFIX}process_`;

/** What a worker sends for /metrics: its registry without the process-wide series. */
export async function workerMetrics(registry: Registry): Promise<MetricsJson> {
  return (await registry.getMetricsAsJSON()).filter((m) => !m.name.startsWith(PROCESS_WIDE));
}

/** The main thread's half of /metrics. */
export class HostMetrics {
  /** The main thread's own runtime metrics (worker="main") and the process-wide ones. */
  private readonly main = new Registry();
  private seq = 0;
  private readonly waiting = new Map<number, (data: MetricsJson) => void>();
  private readonly timeoutMs: number;
  constructor(timeoutMs = METRICS_TIMEOUT_MS) {
    this.timeoutMs = timeoutMs;
    runtimeMetrics(this.main, 'main');
  }

  /** A worker's answer to a `metrics` request. */
  answer(seq: number, data: MetricsJson): void {
    this.waiting.get(seq)?.(data);
  }

  /**
   * Every worker's registry summed, with the main thread's; `expected` is how
   * many workers the host has (those being replaced count as missing).
   */
  async render(workers: readonly Worker[], expected: number): Promise<string> {
    const answers = await Promise.all(workers.map((w) => this.ask(w)));
    const got = answers.filter((a): a is MetricsJson => a !== undefined);
    got.push(await this.main.getMetricsAsJSON());
    const missing = expected - (got.length - 1);
    const text = await AggregatorRegistry.aggregate(got).metrics();
    return text + [
      `# HELP ${METRIC_PREFIX}metrics_workers_missing Workers whose series are not in this scrape (no answer within ${this.timeoutMs} ms, or being replaced).`,
      `# TYPE ${METRIC_PREFIX}metrics_workers_missing gauge`,
      `${METRIC_PREFIX}metrics_workers_missing ${missing}`,
    ].join('\n') + '\n';
  }

  private ask(worker: Worker): Promise<MetricsJson | undefined> {
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), this.timeoutMs);
      const done = (data: MetricsJson | undefined) => {
        clearTimeout(timer);
        this.waiting.delete(seq);
        resolve(data);
      };
      this.waiting.set(seq, done);
      try {
        worker.postMessage({ type: 'metrics', seq } satisfies ToWorker);
      } catch {
        done(undefined);
      }
    });
  }
}
