/**
 * opentelemetry (APISIX priority 12009): a server span per request and a
 * client span per upstream attempt (retries: one each), W3C `traceparent` and
 * `tracestate` in and out (an unsampled request still passes its context on),
 * exported in batches over OTLP/HTTP (JSON) with the OpenTelemetry JS SDK.
 * Export never holds or fails a request: past max_queue_size spans are dropped
 * and counted. The collector and batching are plugin-wide settings, APISIX's
 * plugin_metadata (or its older plugin_attr); without them spans go to
 * 127.0.0.1:4318.
 *
 * ```yaml
 * plugin_metadata:
 *   - id: opentelemetry
 *     collector: { address: 127.0.0.1:4318 }   # Jaeger, Tempo, the OTel Collector
 * routes:
 *   - uri: /orders/*
 *     plugins:
 *       opentelemetry:
 *         sampler: { name: always_on }
 *         additional_attributes: [http_x_tenant, remote_addr]
 *         additional_header_prefix_attributes: ["x-b3-*"]
 * ```
 */
import metadataSchema from '../schemas/opentelemetry-metadata.json' with { type: 'json' };
import schema from '../schemas/opentelemetry.json' with { type: 'json' };
import { definePlugin } from '../src/plugin.ts';
import { closeTracing, collectorUrl, tracingFor, type Metadata } from './opentelemetry/provider.ts';
import { compileSampler, type SamplerConf } from './opentelemetry/sampler.ts';
import { attributeReader, RequestTrace, startTrace, type TraceConf } from './opentelemetry/trace.ts';

interface Conf {
  sampler?: SamplerConf;
  additional_attributes?: string[];
  additional_header_prefix_attributes?: string[];
}

/** The frozen state holds the settings; the provider is this thread's, made at the first traced request. */
export default definePlugin<Conf, TraceConf>({
  name: 'opentelemetry',
  version: '1.0.0',
  priority: 12009,
  schema,
  metadataSchema,
  init(conf, api) {
    const given = (api.metadata ?? {}) as Partial<Metadata>;
    const meta: Metadata = {
      trace_id_source: given.trace_id_source ?? 'random', resource: given.resource, set_ngx_var: given.set_ngx_var ?? false,
      collector: { address: '127.0.0.1:4318', request_timeout: 3, ...given.collector }, batch_span_processor: { ...given.batch_span_processor },
    };
    try {
      collectorUrl(meta.collector.address);
    } catch {
      throw new Error(`plugin_metadata opentelemetry: collector.address "${meta.collector.address}" is not a host:port or URL`);
    }
    const names = (conf.additional_header_prefix_attributes ?? []).map((h) => h.toLowerCase());
    return {
      key: JSON.stringify(meta),
      meta,
      sampler: compileSampler(conf.sampler),
      attributes: (conf.additional_attributes ?? []).map(attributeReader),
      // As APISIX: a trailing `*` makes a prefix, but a bare `*` is a (never sent) header name, not "every header".
      headers: names.filter((h) => !(h.length >= 2 && h.endsWith('*'))),
      headerPrefixes: names.filter((h) => h.length >= 2 && h.endsWith('*')).map((h) => h.slice(0, -1)),
    };
  },
  phases: {
    rewrite(c, ctx) {
      const t = tracingFor(c.key, c.meta);
      t.log ??= ctx.log;
      ctx.upstreamAttempts = startTrace(c, t, ctx);
    },
    log(c, ctx) {
      const rt = ctx.upstreamAttempts;
      if (rt instanceof RequestTrace) rt.finish(c, ctx);
    },
  },
  close: closeTracing,
});
