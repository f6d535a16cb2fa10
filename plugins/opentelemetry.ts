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
import metadataSchema from '../schemas/opentelemetry.metadata.json' with { type: 'json' };
import schema from '../schemas/opentelemetry.json' with { type: 'json' };
import { definePlugin } from '../src/plugin.ts';
import type { Conf, Traced } from './opentelemetry/runtime.ts';

/** The SDK and what uses it, imported by the first config that has the plugin (about a second: others never pay it). */
let runtime: Promise<typeof import('./opentelemetry/runtime.ts')> | undefined;
const load = () => (runtime ??= import('./opentelemetry/runtime.ts'));

/** The frozen state is the route's two handlers; the provider is this thread's, made at the first traced request. */
export default definePlugin<Conf, Traced>({
  name: 'opentelemetry',
  version: '1.0.0',
  priority: 12009,
  schema,
  metadataSchema,
  async init(conf, api) {
    return (await load()).compile(conf, api.metadata);
  },
  phases: {
    rewrite(s, ctx) { s.rewrite(ctx); },
    log(s, ctx) { s.log(ctx); },
  },
  async close() {
    if (runtime) await (await runtime).closeTracing();
  },
});
