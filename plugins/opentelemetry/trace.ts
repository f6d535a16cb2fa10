/**
 * One traced request: its server span (started in rewrite, ended in log) and
 * a client span per upstream attempt, each attempt's request carrying a
 * traceparent whose parent id is that client span's.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { Sampler } from '@opentelemetry/sdk-trace-base';
import { variable, type Ctx, type UpstreamAttempts, type VarReader } from '../../src/plugin.ts';
import type { Metadata, Tracing } from './provider.ts';
import { FOLLOW_PARENT, SAMPLER_KEY } from './sampler.ts';

/** A route's compiled config. */
export interface TraceConf {
  /** plugin_metadata's JSON: the provider it needs. */
  readonly key: string;
  readonly meta: Metadata;
  readonly sampler: Sampler;
  /** additional_attributes: attribute name and its reader. */
  readonly attributes: readonly (readonly [string, VarReader])[];
  /** additional_header_prefix_attributes: exact names, and prefixes (a trailing `*`). */
  readonly headers: readonly string[];
  readonly headerPrefixes: readonly string[];
}

const propagator = new W3CTraceContextPropagator();
const getter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (h) => Object.keys(h),
  get: (h, k) => h[k],
};
const setter: TextMapSetter<Record<string, unknown>> = { set: (h, k, v) => { h[k] = v; } };

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined);

/** APISIX's additional_attributes: a variable Turnpike knows, else what a plugin put in ctx.vars under that name. */
export function attributeReader(name: string): readonly [string, VarReader] {
  const bare = name.startsWith('$') ? name.slice(1) : name;
  return [bare, variable(bare) ?? ((ctx) => text(ctx.vars[bare]))];
}

const HEX32 = /^[0-9a-f]{32}$/;
/** trace_id_source x-request-id: the header (or request-id's id) when it is 32 hex digits, not all zero. */
function requestTraceId(ctx: Ctx): string | undefined {
  const v = (text(ctx.request.headers['x-request-id']) ?? text(ctx.vars.request_id))?.toLowerCase();
  return v && HEX32.test(v) && v !== '0'.repeat(32) ? v : undefined;
}

/** Starts the server span of `ctx`, sets the request's traceparent to it, and watches the upstream attempts. */
export function startTrace(c: TraceConf, t: Tracing, ctx: Ctx): RequestTrace {
  const headers = ctx.request.headers;
  const remote = propagator.extract(ROOT_CONTEXT, headers, getter);
  const hasParent = trace.getSpanContext(remote) !== undefined;
  // A tracestate without a valid traceparent means nothing (W3C): not passed on.
  if (!hasParent) delete headers.tracestate;
  if (!hasParent && c.meta.trace_id_source === 'x-request-id') t.ids.next = requestTraceId(ctx);
  const method = ctx.request.method;
  const span = t.tracer.startSpan(`${method} ${ctx.route.uri}`, { kind: SpanKind.SERVER }, remote.setValue(SAMPLER_KEY, c.sampler));
  t.ids.next = undefined;
  if (span.isRecording()) span.setAttributes(serverAttributes(ctx, method));
  const spanCtx = trace.setSpan(ROOT_CONTEXT, span);
  // As APISIX: later plugins (forward-auth…) and the upstream see the server span as parent; each attempt then sets its own.
  propagator.inject(spanCtx, headers, setter);
  if (c.meta.set_ngx_var) {
    const sc = span.spanContext();
    ctx.vars.opentelemetry_context_traceparent = headers.traceparent;
    ctx.vars.opentelemetry_trace_id = sc.traceId;
    ctx.vars.opentelemetry_span_id = sc.spanId;
  }
  return new RequestTrace(t, span, spanCtx, method);
}

function serverAttributes(ctx: Ctx, method: string): Attributes {
  const d = ctx.downstream;
  const ua = text(ctx.request.headers['user-agent']);
  const a: Attributes = {
    'net.host.name': d.host, 'http.host': d.host, 'http.method': method, 'http.scheme': d.scheme, 'http.target': d.request_uri,
    'http.request.method': method, 'url.scheme': d.scheme, 'url.path': ctx.request.path,
    'turnpike.route_id': ctx.route.id, 'http.route': ctx.route.uri,
  };
  if (ua !== undefined) { a['http.user_agent'] = ua; a['user_agent.original'] = ua; }
  const routeName = ctx.route.config?.name;
  if (typeof routeName === 'string') a['turnpike.route_name'] = routeName;
  if (ctx.service) {
    a['turnpike.service_id'] = ctx.service.id;
    const name = ctx.service.config?.name;
    if (typeof name === 'string') a['turnpike.service_name'] = name;
  }
  return a;
}

/** A request's spans; the proxy tells it about each attempt (Ctx.upstreamAttempts). */
export class RequestTrace implements UpstreamAttempts {
  private client: Span | undefined;
  private attempts = 0;
  private clientParent: Context | undefined;
  private readonly t: Tracing;
  private readonly server: Span;
  private readonly serverCtx: Context;
  private readonly method: string;
  constructor(t: Tracing, server: Span, serverCtx: Context, method: string) {
    this.t = t;
    this.server = server;
    this.serverCtx = serverCtx;
    this.method = method;
  }

  start(host: string, port: number, headers: Record<string, string | string[]>): void {
    this.clientParent ??= this.serverCtx.setValue(SAMPLER_KEY, FOLLOW_PARENT);
    const span = this.t.tracer.startSpan(`${this.method} ${host}:${port}`, { kind: SpanKind.CLIENT }, this.clientParent);
    if (span.isRecording()) {
      span.setAttributes({ 'net.peer.name': host, 'net.peer.port': port, 'server.address': host, 'server.port': port, 'http.method': this.method, 'http.request.method': this.method });
      if (this.attempts > 0) span.setAttribute('http.request.resend_count', this.attempts);
    }
    this.attempts++;
    this.client = span;
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, setter);
  }

  end(status: number, error: unknown): void {
    const span = this.client;
    if (!span) return;
    this.client = undefined;
    if (span.isRecording()) {
      if (status > 0) span.setAttributes({ 'http.status_code': status, 'http.response.status_code': status });
      if (error) {
        const code = (error as { code?: unknown }).code;
        const message = (error as Error).message ?? String(error);
        span.setAttribute('error.type', typeof code === 'string' ? code : (error as Error).name ?? 'Error');
        span.setStatus({ code: SpanStatusCode.ERROR, message });
      } else if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `upstream error: ${status}` });
    }
    span.end();
  }

  /** The log phase: status, consumer and the additional attributes, then the server span ends. */
  finish(c: TraceConf, ctx: Ctx): void {
    this.end(0, this.client ? new Error('the request ended before the upstream answered') : undefined);
    const span = this.server;
    if (span.isRecording()) {
      const status = ctx.record?.status ?? ctx.response?.status ?? 0;
      const source = ctx.record?.upstream ? 'upstream' : 'turnpike';
      span.setAttributes({ 'http.status_code': status, 'http.response.status_code': status, 'turnpike.response_source': source });
      if (ctx.consumer) span.setAttribute('turnpike.consumer', ctx.consumer.username);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `${source} error: ${status}` });
      for (const [name, read] of c.attributes) {
        const v = read(ctx);
        if (v !== undefined) span.setAttribute(name, v);
      }
      if (c.headers.length + c.headerPrefixes.length) this.headerAttributes(c, ctx);
    }
    span.end();
  }

  private headerAttributes(c: TraceConf, ctx: Ctx): void {
    const h = ctx.request.headers;
    for (const name of c.headers) {
      const v = text(h[name]);
      if (v !== undefined) this.server.setAttribute(name, v);
    }
    if (!c.headerPrefixes.length) return;
    for (const name in h) {
      if (!c.headerPrefixes.some((p) => name.startsWith(p))) continue;
      const v = text(h[name]);
      if (v !== undefined) this.server.setAttribute(name, v);
    }
  }
}
