/**
 * A gateway's Prometheus registry (prom-client): Node's runtime metrics, its
 * connections and requests, its upstream nodes' health, the node's identity.
 * Plugins add theirs through `api.metrics` (the prometheus plugin: per-route
 * series). In a host, each worker has one and the main thread sums them (metrics-host.ts).
 */
import type { Socket } from 'node:net';
import { hostname } from 'node:os';
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { UpstreamEntry, UpstreamNode } from '../snapshot.ts';
import { VERSION } from '../version.ts';

/** The prefix of every series the gateway exports. */
export const METRIC_PREFIX = 'turnpike_';

/** What the registry reads when scraped. */
export interface RegistrySources {
  /** This worker's index; absent for a gateway that runs alone. */
  worker?: number;
  /** Emits `connection` for each accepted socket (every listener's). */
  server: { on(event: 'connection', fn: (socket: Socket) => void): unknown };
  /** Requests answered so far (every route, matched or not). */
  requests(): number;
  /** Upstreams in force that have health checks, and whether a node is healthy now. */
  upstreams(): Iterable<UpstreamEntry>;
  healthy(node: UpstreamNode): boolean;
  /** Function pool figures (calls, failures by kind, queue depth, replacements). */
  functions(): FunctionStats;
}

/** The function pool's counts, as metrics show them. */
export interface FunctionStats { calls: number; failures: Record<string, number>; queued: number; replaced: number }

/** Node's runtime metrics, one set per thread and label (each set runs an event-loop monitor: gateways share it). */
const runtimeSets = new Map<string, Registry>();

/**
 * Adds Node's runtime metrics (prom-client's defaults, `turnpike_` prefix) to
 * `registry`, labelled with the worker ('main' for a host's main thread,
 * none for a gateway that runs alone).
 */
export function runtimeMetrics(registry: Registry, worker?: string): void {
  const key = worker ?? '';
  let set = runtimeSets.get(key);
  if (!set) {
    set = new Registry();
    collectDefaultMetrics({ register: set, prefix: METRIC_PREFIX, labels: worker === undefined ? {} : { worker } });
    runtimeSets.set(key, set);
  }
  for (const m of set.getMetricsAsArray()) registry.registerMetric(m as unknown as Metric);
}

/** A gateway's registry, its series read from `src` when scraped. */
export function createRegistry(src: RegistrySources): Registry {
  const registry = new Registry();
  const p = METRIC_PREFIX;
  runtimeMetrics(registry, src.worker === undefined ? undefined : String(src.worker));
  let accepted = 0;
  let active = 0;
  src.server.on('connection', (socket) => {
    accepted++;
    active++;
    socket.once('close', () => { active--; });
  });
  new Gauge({
    name: `${p}http_current_connections`, help: 'HTTP connections: active (open now), accepted and handled (since start)', labelNames: ['state'], registers: [registry],
    collect() {
      this.set({ state: 'active' }, active);
      this.set({ state: 'accepted' }, accepted);
      // Node hands every accepted connection to the server: nginx's handled differs only past its connection limit.
      this.set({ state: 'handled' }, accepted);
    },
  });
  new Gauge({ name: `${p}http_requests_total`, help: 'The total number of client requests since start', registers: [registry], collect() { this.set(src.requests()); } });
  new Gauge({
    name: `${p}node_info`, help: 'Info of the Turnpike node', labelNames: ['hostname', 'version'], registers: [registry], aggregator: 'first',
    collect() { this.set({ hostname: hostname(), version: VERSION }, 1); },
  });
  new Gauge({
    // Health lives in a table every worker shares: each worker reads the same value, so the host takes one.
    name: `${p}upstream_status`, help: 'Upstream node health (1 healthy, 0 not), for upstreams with health checks', labelNames: ['name', 'ip', 'port'], registers: [registry], aggregator: 'first',
    collect() {
      this.reset();
      for (const up of src.upstreams()) for (const n of up.nodes) this.set({ name: up.id, ip: n.host, port: String(n.port) }, src.healthy(n) ? 1 : 0);
    },
  });
  functionMetrics(registry, src);
  return registry;
}

function functionMetrics(registry: Registry, src: RegistrySources): void {
  const p = METRIC_PREFIX;
  new Counter({ name: `${p}function_calls_total`, help: 'Serverless function calls', registers: [registry], collect() { this.reset(); this.inc(src.functions().calls); } });
  new Counter({
    name: `${p}function_failures_total`, help: 'Serverless function calls that failed, by kind (timeout, busy: queue full, error)', labelNames: ['kind'], registers: [registry],
    collect() { this.reset(); for (const [kind, n] of Object.entries(src.functions().failures)) this.inc({ kind }, n); },
  });
  new Gauge({ name: `${p}function_queue_depth`, help: 'Serverless function calls waiting for a worker', registers: [registry], collect() { this.set(src.functions().queued); } });
  new Counter({ name: `${p}function_worker_replacements_total`, help: 'Function worker threads replaced (crashed, stuck, over their memory limit)', registers: [registry], collect() { this.reset(); this.inc(src.functions().replaced); } });
}
