/**
 * The prometheus plugin's series: APISIX's http_status, http_latency and
 * bandwidth, registered once per registry, and their cells bound once per
 * (route, matched pattern, node, consumer) and per status code, so that a
 * request only walks small maps of objects and adds numbers.
 */
import type { Ctx, RequestRecord } from '../../src/plugin.ts';
import type { Registry } from 'prom-client';
import { CellCounter, CellHistogram, register, type CounterCell, type HistogramCell } from './cells.ts';

/** APISIX's latency buckets, in ms (1 ms to 60 s). */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000]);

/** The plugin's three metrics in one registry. */
export interface RouteMetrics {
  readonly status: CellCounter;
  readonly latency: CellHistogram;
  readonly bandwidth: CellCounter;
}

const byRegistry = new WeakMap<Registry, RouteMetrics>();

/** The plugin's metrics in `registry`, registered on first use (they outlive reloads: counters never go back). */
export function routeMetrics(registry: Registry, prefix = 'turnpike_', buckets: readonly number[] = DEFAULT_BUCKETS): RouteMetrics {
  let m = byRegistry.get(registry);
  if (!m) {
    m = {
      status: register(registry, new CellCounter(`${prefix}http_status`, 'HTTP status codes per route, service and consumer')),
      latency: register(registry, new CellHistogram(`${prefix}http_latency`, 'HTTP request latency in milliseconds per route, service and consumer', buckets)),
      bandwidth: register(registry, new CellCounter(`${prefix}bandwidth`, 'Total bandwidth in bytes consumed per route, service and consumer')),
    };
    byRegistry.set(registry, m);
  }
  return m;
}

/** The cells of one (route, pattern, node, consumer). */
class Group {
  readonly request: HistogramCell;
  /** Bound on the first exchange that reached an upstream: a route that never does has no such series. */
  private up: HistogramCell | undefined;
  readonly turnpike: HistogramCell;
  private readonly latencyLabels: Record<string, string>;
  readonly ingress: CounterCell;
  readonly egress: CounterCell;
  /** http_status cells by code, bound on a code's first use. */
  readonly byCode = new Map<number, CounterCell>();
  readonly statusLabels: Record<string, string>;
  constructor(m: RouteMetrics, base: Record<string, string>, matched: { uri: string; host: string }) {
    const { route, service, consumer, node } = base;
    this.latencyLabels = { route, service, consumer, node };
    this.request = m.latency.cell({ type: 'request', ...this.latencyLabels });
    this.turnpike = m.latency.cell({ type: 'turnpike', ...this.latencyLabels });
    this.ingress = m.bandwidth.cell({ type: 'ingress', route, service, consumer, node });
    this.egress = m.bandwidth.cell({ type: 'egress', route, service, consumer, node });
    this.statusLabels = { route, matched_uri: matched.uri, matched_host: matched.host, service, consumer, node };
  }

  upstream(m: RouteMetrics): HistogramCell {
    return (this.up ??= m.latency.cell({ type: 'upstream', ...this.latencyLabels }));
  }

  statusCell(m: RouteMetrics, code: number): CounterCell {
    let c = this.byCode.get(code);
    if (!c) this.byCode.set(code, (c = m.status.cell({ code: String(code), ...this.statusLabels })));
    return c;
  }
}

const NO_MATCH = Object.freeze({ uri: '', host: '' });

/** `host:port` (or `[v6]:port`) → the address, APISIX's `balancer_ip`. */
function nodeLabel(upstream: string | undefined): string {
  if (!upstream) return '';
  const colon = upstream.lastIndexOf(':');
  const host = colon > 0 ? upstream.slice(0, colon) : upstream;
  return host.startsWith('[') ? host.slice(1, -1) : host;
}

function nameOf(config: Readonly<Record<string, unknown>> | undefined, id: string, preferName: boolean): string {
  const name = config?.name;
  return preferName && typeof name === 'string' && name !== '' ? name : id;
}

/**
 * One plugin instance's bound cells: route → matched pattern → node →
 * consumer → Group. Every key comes from the config (routes, patterns, nodes,
 * consumers) or is a status code, so nothing a client sends adds a series.
 */
export class Binder {
  private readonly m: RouteMetrics;
  private readonly preferName: boolean;
  private readonly routes = new Map<object, Map<object, Map<string, Map<string, Group>>>>();
  constructor(m: RouteMetrics, preferName: boolean) {
    this.m = m;
    this.preferName = preferName;
  }

  /** Counts one finished exchange. */
  count(ctx: Ctx, rec: RequestRecord): void {
    const g = this.group(ctx, rec.upstream ?? '');
    const m = this.m;
    g.statusCell(m, rec.status).value++;
    m.latency.observe(g.request, rec.latency);
    const up = rec.upstream_latency;
    if (up !== undefined) m.latency.observe(g.upstream(m), up);
    m.latency.observe(g.turnpike, up !== undefined && up < rec.latency ? rec.latency - up : up !== undefined ? 0 : rec.latency);
    g.ingress.value += rec.request_size;
    g.egress.value += rec.response_size;
  }

  private group(ctx: Ctx, upstream: string): Group {
    const matched = ctx.matched ?? NO_MATCH;
    let byPattern = this.routes.get(ctx.route);
    if (!byPattern) this.routes.set(ctx.route, (byPattern = new Map()));
    let byNode = byPattern.get(matched);
    if (!byNode) byPattern.set(matched, (byNode = new Map()));
    let byConsumer = byNode.get(upstream);
    if (!byConsumer) byNode.set(upstream, (byConsumer = new Map()));
    const consumer = ctx.consumer?.username ?? '';
    let g = byConsumer.get(consumer);
    if (!g) {
      const service = ctx.service ? nameOf(ctx.service.config, ctx.service.id, this.preferName) : '';
      g = new Group(this.m, { route: nameOf(ctx.route.config, ctx.route.id, this.preferName), service, consumer, node: nodeLabel(upstream) }, matched);
      byConsumer.set(consumer, g);
    }
    return g;
  }
}
