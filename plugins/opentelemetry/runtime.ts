/**
 * What the plugin compiles once the SDK is loaded: a route's sampler,
 * attribute readers and settings, and its two handlers. Imported by init only
 * when a config uses opentelemetry (the SDK takes about a second to import).
 */
import type { Ctx } from '../../src/plugin.ts';
import { closeTracing, collectorUrl, tracingFor, type Metadata } from './provider.ts';
import { compileSampler, type SamplerConf } from './sampler.ts';
import { attributeReader, RequestTrace, startTrace, type TraceConf } from './trace.ts';

/** The route config as written (schemas/opentelemetry.json). */
export interface Conf {
  sampler?: SamplerConf;
  additional_attributes?: string[];
  additional_header_prefix_attributes?: string[];
}

/** One route's handlers; what they close over is not frozen with the plugin state. */
export interface Traced {
  rewrite(ctx: Ctx): void;
  log(ctx: Ctx): void;
}

/** plugin_metadata with every default, and its collector address checked. */
function settings(metadata: unknown): Metadata {
  const given = (metadata ?? {}) as Partial<Metadata>;
  const meta: Metadata = {
    trace_id_source: given.trace_id_source ?? 'random', resource: given.resource, set_ngx_var: given.set_ngx_var ?? false,
    collector: { address: '127.0.0.1:4318', request_timeout: 3, ...given.collector }, batch_span_processor: { ...given.batch_span_processor },
  };
  try {
    collectorUrl(meta.collector.address);
  } catch {
    throw new Error(`plugin_metadata opentelemetry: collector.address "${meta.collector.address}" is not a host:port or URL`);
  }
  return meta;
}

/** Compiles one instance: sampler, attribute readers, header names; the provider comes at its first request. */
export function compile(conf: Conf, metadata: unknown): Traced {
  const meta = settings(metadata);
  const names = (conf.additional_header_prefix_attributes ?? []).map((h) => h.toLowerCase());
  // As APISIX: a trailing `*` makes a prefix, but a bare `*` is a (never sent) header name, not "every header".
  const isPrefix = (h: string) => h.length >= 2 && h.endsWith('*');
  const c: TraceConf = {
    key: JSON.stringify(meta),
    meta,
    sampler: compileSampler(conf.sampler),
    attributes: (conf.additional_attributes ?? []).map(attributeReader),
    headers: names.filter((h) => !isPrefix(h)),
    headerPrefixes: names.filter(isPrefix).map((h) => h.slice(0, -1)),
  };
  return {
    rewrite(ctx) {
      const t = tracingFor(c.key, c.meta);
      if (t.unreported > 0) t.report(ctx.log);
      ctx.upstreamAttempts = startTrace(c, t, ctx);
    },
    log(ctx) {
      const rt = ctx.upstreamAttempts;
      if (rt instanceof RequestTrace) rt.finish(c, ctx);
    },
  };
}

export { closeTracing };
