/**
 * Counts what the routes it is on do, as APISIX's prometheus plugin does:
 * `turnpike_http_status` (code, route, matched_uri, matched_host, service,
 * consumer, node), `turnpike_http_latency` (type request | upstream |
 * turnpike, ms) and `turnpike_bandwidth` (type ingress | egress, bytes). The
 * admin listener's `/metrics` serves them, summed over the host's workers,
 * with the host's own series (connections, requests, upstream health, Node's
 * runtime). Requests of routes without the plugin are not in these series.
 *
 * ```yaml
 * global_rules:
 *   - id: metrics
 *     plugins:
 *       prometheus:
 *         prefer_name: true
 * ```
 */
import schema from '../schemas/prometheus.json' with { type: 'json' };
import { definePlugin } from '../src/plugin.ts';
import { Binder, routeMetrics } from './prometheus/series.ts';

interface Conf { prefer_name: boolean }

export default definePlugin<Conf, Binder>({
  name: 'prometheus',
  version: '0.2',
  priority: 500,
  schema,
  init: (conf, api) => new Binder(routeMetrics(api.metrics), conf.prefer_name),
  phases: {
    log(binder, ctx) {
      if (ctx.record) binder.count(ctx, ctx.record);
    },
  },
});
