/**
 * One tracer provider per worker thread (module state is per thread): the
 * SDK's BasicTracerProvider with a BatchSpanProcessor and the OTLP/HTTP JSON
 * exporter, built from plugin_metadata at the first traced request and
 * replaced when a reload changes those settings (the old one is flushed and
 * shut down: at most one lives). What waits for the collector is bounded by
 * max_queue_size; spans past it are dropped and counted, never waited for.
 */
import { hostname } from 'node:os';
import type { Context, Tracer } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, RandomIdGenerator, type IdGenerator, type ReadableSpan, type Span, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { PluginLogger } from '../../src/plugin.ts';
import { RouteSampler } from './sampler.ts';

/** plugin_metadata.opentelemetry with its defaults (schemas/opentelemetry.metadata.json). */
export interface Metadata {
  trace_id_source: 'x-request-id' | 'random';
  resource?: Record<string, string | number | boolean>;
  collector: { address: string; request_timeout: number; request_headers?: Record<string, string | number | boolean> };
  batch_span_processor: { drop_on_queue_full?: boolean; max_queue_size?: number; batch_timeout?: number; inactive_timeout?: number; max_export_batch_size?: number };
  set_ngx_var: boolean;
}

/** Counts of this worker's tracing, for logs and tests. */
export interface TracingStats {
  /** Providers made and not yet shut down in this thread: at most 1. */
  live: number;
  /** Providers made in this thread so far. */
  created: number;
  /** Sampled spans waiting in the current provider's queue. */
  queued: number;
  /** Its queue bound (max_queue_size). */
  maxQueue: number;
  /** Spans the collector took, spans lost (queue full or a failed export), over the thread's life. */
  exported: number;
  dropped: number;
}

const totals = { live: 0, created: 0, exported: 0, dropped: 0 };

/** The collector URL of `address` (host:port or a URL), checked at load. */
export function collectorUrl(address: string): string {
  const url = new URL(/^https?:\/\//i.test(address) ? address : `http://${address}`);
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/traces';
  return url.href;
}

/** A trace id from X-Request-Id when asked and valid: the generator hands out `next` once. */
class IdSource implements IdGenerator {
  next: string | undefined;
  private readonly random = new RandomIdGenerator();
  generateTraceId(): string {
    const id = this.next;
    this.next = undefined;
    return id ?? this.random.generateTraceId();
  }
  generateSpanId(): string {
    return this.random.generateSpanId();
  }
}

/** A tracer and what counts its spans. */
export class Tracing {
  readonly tracer: Tracer;
  readonly ids = new IdSource();
  readonly meta: Metadata;
  queued = 0;
  readonly maxQueue: number;
  private readonly provider: BasicTracerProvider;
  private lastReport = 0;
  /** Spans lost since the last report, and why the last one was. */
  unreported = 0;
  private why = '';
  private closed: Promise<void> | undefined;

  constructor(meta: Metadata) {
    this.meta = meta;
    const c = meta.collector;
    const b = meta.batch_span_processor;
    this.maxQueue = b.max_queue_size ?? 1024;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(c.request_headers ?? {})) headers[k] = String(v);
    const exporter = new CountingExporter(new OTLPTraceExporter({ url: collectorUrl(c.address), headers, timeoutMillis: c.request_timeout * 1000 }), this);
    const batch = new BatchSpanProcessor(exporter, {
      maxQueueSize: this.maxQueue,
      maxExportBatchSize: Math.min(b.max_export_batch_size ?? 16, this.maxQueue),
      scheduledDelayMillis: Math.min(b.batch_timeout ?? 2, b.inactive_timeout ?? 1) * 1000,
      exportTimeoutMillis: c.request_timeout * 1000,
    });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'turnpike', hostname: hostname(), ...meta.resource }),
      sampler: new RouteSampler(),
      idGenerator: this.ids,
      spanProcessors: [new QueueGate(batch, this)],
    });
    this.tracer = this.provider.getTracer('turnpike', '1.0.0');
    totals.live++;
    totals.created++;
  }

  /** `n` spans lost (`why`): counted; report() logs them. */
  dropped(n: number, why: string): void {
    totals.dropped += n;
    this.unreported += n;
    this.why = why;
  }

  /**
   * Logs the spans lost since the last report, at most once a minute, through a
   * traced request's logger (called when unreported > 0; no logger is kept between requests).
   */
  report(log: PluginLogger): void {
    const now = Date.now();
    if (now - this.lastReport < 60_000) return;
    log.warn('opentelemetry dropped spans', { dropped: this.unreported, reason: this.why, total_dropped: totals.dropped });
    this.lastReport = now;
    this.unreported = 0;
  }

  /** Flushes what is queued and stops; bounded by the export timeout. */
  shutdown(): Promise<void> {
    if (this.closed) return this.closed;
    totals.live--;
    const limit = new Promise<void>((resolve) => setTimeout(resolve, this.meta.collector.request_timeout * 1000 + 500).unref());
    this.closed = Promise.race([this.provider.shutdown().catch(() => {}), limit]);
    return this.closed;
  }
}

/** In front of the BatchSpanProcessor: counts what waits, and drops (counted) past max_queue_size. */
class QueueGate implements SpanProcessor {
  private readonly inner: SpanProcessor;
  private readonly t: Tracing;
  constructor(inner: SpanProcessor, t: Tracing) {
    this.inner = inner;
    this.t = t;
  }
  onStart(span: Span, parent: Context): void { this.inner.onStart(span, parent); }
  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & 1) === 0) return;
    if (this.t.queued >= this.t.maxQueue) { this.t.dropped(1, `over max_queue_size (${this.t.maxQueue}) spans waiting for the collector`); return; }
    this.t.queued++;
    this.inner.onEnd(span);
  }
  forceFlush(): Promise<void> { return this.inner.forceFlush(); }
  shutdown(): Promise<void> { return this.inner.shutdown(); }
}

/** Around the OTLP exporter: a batch leaves the queue when handed over; its result is counted. */
class CountingExporter implements SpanExporter {
  private readonly inner: SpanExporter;
  private readonly t: Tracing;
  constructor(inner: SpanExporter, t: Tracing) {
    this.inner = inner;
    this.t = t;
  }
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.t.queued -= spans.length;
    this.inner.export(spans, (r) => {
      if (r.code === ExportResultCode.SUCCESS) totals.exported += spans.length;
      else this.t.dropped(spans.length, `export failed: ${r.error?.message ?? 'unknown error'}`);
      done(r);
    });
  }
  shutdown(): Promise<void> { return this.inner.shutdown(); }
  forceFlush(): Promise<void> { return this.inner.forceFlush?.() ?? Promise.resolve(); }
}

let current: { key: string; tracing: Tracing } | undefined;

/**
 * This thread's Tracing for the settings `key` (their JSON): made on first
 * use; other settings shut the previous one down (flushed) and replace it.
 */
export function tracingFor(key: string, meta: Metadata): Tracing {
  if (current?.key === key) return current.tracing;
  void current?.tracing.shutdown();
  current = { key, tracing: new Tracing(meta) };
  return current.tracing;
}

/** Flushes and shuts down this thread's provider (the gateway is stopping). */
export async function closeTracing(): Promise<void> {
  const c = current;
  current = undefined;
  await c?.tracing.shutdown();
}

/** This thread's counts (tests, logs). */
export function tracingStats(): TracingStats {
  return { ...totals, queued: current?.tracing.queued ?? 0, maxQueue: current?.tracing.maxQueue ?? 0 };
}
