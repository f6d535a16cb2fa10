/**
 * Compile, the last stage of a load: a checked document to a frozen snapshot
 * (upstreams, plugin instances, chains, router). Issues found only now (a
 * plugin's init, a shared credential, a route with nowhere to go) are added.
 */
import path from 'node:path';
import { availableParallelism } from 'node:os';
import type { Consumer, Credential, FunctionHost, PluginApi, PluginDef, SharedState } from '../plugin.ts';
import { Router, type RouteSpec } from '../router.ts';
import type { Listen, RouteEntry, ServerlessSettings, Snapshot, UpstreamEntry } from '../snapshot.ts';
import { LocalSharedState } from '../shared/local.ts';
import { Registry } from 'prom-client';
import { buildChain, canReply, type Instance } from './chain.ts';
import { PLUGIN_IMPORT_TIMEOUT_MS } from './plugins.ts';
import type { Checked, Place } from './check.ts';
import type { IssueList } from './issues.ts';
import type { GatewayDoc, UpstreamDoc } from './model.ts';
import { compileUpstreamCached, parseListen, parseTrustedProxies } from './upstream.ts';
import type { FileSet } from './ssl-files.ts';
import { checkTlsUse, compileListeners, compileSsls } from './ssls.ts';
import { compileRouteFilter } from './route-filter.ts';

/**
 * Half the cores, at least one: the main thread and the kernel's network work
 * need the rest. On 2 cores one worker measured 0.81-0.90 of the no-plugin
 * throughput against 0.70-0.78 for two (`npm run bench`, 2026-11-21).
 */
export const DEFAULT_THREADS = Math.max(1, Math.floor(availableParallelism() / 2));

const SERVERLESS_DEFAULTS: ServerlessSettings = {
  enabled: true, threads: DEFAULT_THREADS, concurrency: 64, timeoutMs: 1000, maxQueue: 1024, maxHeapMb: 128, maxResultBytes: 4 << 20, allowFsRead: [],
};

export interface CompileOptions {
  /** The function pool, as configured by the file being loaded (checking functions at load needs it). */
  functions: (settings: ServerlessSettings) => FunctionHost;
  pause: () => void | Promise<void>;
  /** The snapshot in force: unchanged upstreams are taken from it, balancer state and all. */
  previous?: Snapshot;
  shared?: SharedState;
  /** The gateway's Prometheus registry (plugins reach it as `api.metrics`); a per-load one when absent (validate). */
  metrics?: Registry;
  /** The certificate files' contents, and their paths (ssl-files.ts). */
  files?: FileSet;
  sslFiles?: readonly string[];
  /** How long one plugin instance's init may take (PLUGIN_IMPORT_TIMEOUT_MS when absent). */
  initTimeoutMs?: number;
}

type Layer = Map<string, Instance> | undefined;

/** The snapshot, or undefined with the reasons added to `issues`. */
export async function compileConfig(checked: Checked, file: string, hash: string, issues: IssueList, opts: CompileOptions): Promise<Snapshot | undefined> {
  const { doc } = checked;
  const serverless = serverlessSettings(doc);
  // One frozen Consumer per username, made before plugins init (anonymous_consumer names one).
  const byName = new Map<string, Consumer>((doc.consumers ?? []).map((c) => [String(c.username), Object.freeze({ username: String(c.username) })]));
  const api: PluginApi = { where: '', scope: '', functions: opts.functions(serverless), shared: opts.shared ?? new LocalSharedState(), load: {}, metrics: opts.metrics ?? new Registry(), consumer: (name) => byName.get(name) };
  const layers = await initPlugins(checked, issues, api, opts.initTimeoutMs ?? PLUGIN_IMPORT_TIMEOUT_MS);
  if (issues.size) return undefined;
  const upstreamCache = new Map<string, UpstreamEntry>();
  const upstreamOf = (id: string, u: UpstreamDoc) => compileUpstreamCached(id, u, opts.previous?.upstreamCache, upstreamCache);
  const consumers = await indexConsumers(checked, layers, issues, api);
  const routes = await compileRoutes(doc, layers, consumers.layers, upstreamOf, issues, opts.pause);
  const listeners = compileListeners(doc, issues);
  const admin = adminListen(doc);
  const before = issues.size;
  const ssls = compileSsls(doc, listeners, opts.files ?? new Map(), file, issues);
  // A broken entry already says why: not also "no certificate".
  if (issues.size === before) checkTlsUse(listeners, admin, ssls, issues);
  if (issues.size) return undefined;

  let router: Router;
  try {
    router = await Router.build(routes.specs, opts.pause);
  } catch (err) {
    issues.add('GW_ERR_CONFIG_SCHEMA', ['routes'], `routes cannot be compiled: ${(err as Error).message}`);
    return undefined;
  }
  const functionIds: string[] = [];
  for (const l of layers.values()) for (const inst of l?.values() ?? []) {
    const ids = (inst.state as { functionIds?: readonly string[] } | null)?.functionIds;
    if (ids) functionIds.push(...ids);
  }
  const origins = new Set<string>();
  // Nodes by origin (admission, health), and their pools (an https node's key adds its TLS settings).
  for (const r of routes.entries) for (const n of r.upstream?.nodes ?? []) { origins.add(n.origin); if (n.tls) origins.add(n.tls.poolKey); }
  return Object.freeze({
    file: path.resolve(file),
    hash,
    listen: { host: listeners[0].host, port: listeners[0].port },
    listeners: Object.freeze(listeners),
    admin,
    ssls,
    sslFiles: Object.freeze([...(opts.sslFiles ?? [])]),
    trustedProxies: parseTrustedProxies(doc.trusted_proxies).match,
    limits: Object.freeze({
      headerTimeoutMs: doc.client_header_timeout * 1000, bodyTimeoutMs: doc.client_body_timeout * 1000,
      keepAliveMs: doc.keepalive_timeout * 1000, maxBufferedResponse: doc.max_buffered_response_bytes,
    }),
    serverless,
    router,
    routes: Object.freeze(routes.entries),
    consumers: consumers.index,
    origins,
    functionIds: Object.freeze(functionIds),
    upstreamCache,
    plugins: checked.plugins,
  });
}

/** The admin listener (`admin.listen` as an address or `{host, port, tls}`), or null when disabled. */
export function adminListen(doc: Pick<GatewayDoc, 'admin'>): (Listen & { tls: boolean }) | null {
  if (doc.admin?.enabled === false) return null;
  const l = doc.admin?.listen ?? '127.0.0.1:9180';
  if (typeof l === 'object') return Object.freeze({ host: l.host ?? '127.0.0.1', port: l.port, tls: l.tls === true });
  return Object.freeze({ ...parseListen(l, '127.0.0.1'), tls: false });
}

function serverlessSettings(doc: GatewayDoc): ServerlessSettings {
  const sl = doc.serverless;
  return Object.freeze(sl ? {
    enabled: sl.enabled, threads: sl.threads ?? DEFAULT_THREADS, concurrency: sl.concurrency, timeoutMs: sl.timeout_ms, maxQueue: sl.max_queue,
    maxHeapMb: sl.max_heap_mb, maxResultBytes: sl.max_result_bytes, allowFsRead: Object.freeze([...sl.allow_fs_read]),
  } : SERVERLESS_DEFAULTS);
}

/** Every plugin instance's state (init may check functions in a worker), per place scope. */
/**
 * `init`'s result within `ms`: a plugin whose init never settles (a fetch with
 * no timeout) rejects the load instead of holding every later reload behind it.
 */
async function withinDeadline<T>(v: T | PromiseLike<T>, ms: number): Promise<T> {
  // Any thenable, not only a Promise: a plugin may hand back its own.
  if (typeof (v as { then?: unknown } | null)?.then !== 'function') return v as T;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`init did not finish within ${ms} ms`)), ms); });
  try {
    return await Promise.race([v, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function initPlugins(checked: Checked, issues: IssueList, api: PluginApi, initTimeoutMs: number): Promise<Map<string, Layer>> {
  const initPlace = async (place: Place): Promise<Layer> => {
    if (!place.map) return undefined;
    const out = new Map<string, Instance>();
    for (const [name, conf] of Object.entries(place.map)) {
      const def = checked.plugins.get(name) as PluginDef;
      if (place.consumer && def.consumerSchema) continue; // credentials, not a chain member
      try {
        const state = def.init ? await withinDeadline(def.init(conf, { ...api, where: place.where, scope: place.scope, metadata: checked.metadata.get(name) }), initTimeoutMs) : conf;
        out.set(name, { def, state: deepFreeze(state), meta: checked.metas.get(place.scope)?.get(name) });
      } catch (err) {
        for (const line of String((err as Error).message ?? err).split('\n')) issues.add('GW_ERR_CONFIG_PLUGIN', [...place.at, name], `plugin ${name}: ${line}`, true);
      }
    }
    return out;
  };
  const layers = new Map<string, Layer>();
  for (const place of checked.places) layers.set(place.scope, await initPlace(place));
  return layers;
}

interface ConsumerLayer { consumer: Consumer; layer: Layer }

/**
 * Consumers by credential, per auth plugin, each with its credentials as the
 * plugin's consumerInit compiled them (keys imported once, here); a credential
 * two consumers share is an issue.
 */
async function indexConsumers(checked: Checked, layers: Map<string, Layer>, issues: IssueList, api: PluginApi): Promise<{ index: Map<string, Map<string, Credential>>; layers: ConsumerLayer[] }> {
  const index = new Map<string, Map<string, Credential>>();
  const withPlugins: ConsumerLayer[] = [];
  for (const [i, c] of (checked.doc.consumers ?? []).entries()) {
    const consumer = api.consumer(String(c.username))!;
    for (const [name, conf] of Object.entries(c.plugins ?? {})) {
      const def = checked.plugins.get(name) as PluginDef;
      if (!def.consumerKey) continue;
      const at = ['consumers', i, 'plugins', name];
      let credential: unknown = conf;
      try {
        if (def.consumerInit) credential = await def.consumerInit(conf, { ...api, where: `consumer "${consumer.username}"`, scope: `consumer:${consumer.username}` });
      } catch (err) {
        issues.add('GW_ERR_CONFIG_PLUGIN', at, `plugin ${name}: ${(err as Error)?.message ?? err}`, true);
        continue;
      }
      const key = def.consumerKey(conf);
      let idx = index.get(name);
      if (!idx) index.set(name, (idx = new Map()));
      if (idx.has(key)) issues.add('GW_ERR_CONFIG_REF', at, `plugin ${name}: the same credential is already used by consumer "${idx.get(key)!.consumer.username}"`, true);
      idx.set(key, Object.freeze({ consumer, credential: deepFreeze(credential) }));
    }
    const l = layers.get(`consumer:${c.username}`);
    if (l && l.size) withPlugins.push({ consumer, layer: l });
  }
  return { index, layers: withPlugins };
}

/** Each route's upstream and merged chains (one per consumer where it authenticates), and its router spec. */
async function compileRoutes(
  doc: GatewayDoc, layers: Map<string, Layer>, consumerLayers: ConsumerLayer[],
  upstreamOf: (id: string, u: UpstreamDoc) => UpstreamEntry, issues: IssueList, pause: () => void | Promise<void>,
): Promise<{ entries: RouteEntry[]; specs: RouteSpec[] }> {
  const upstreams = new Map<string, UpstreamEntry>();
  doc.upstreams?.forEach((u) => upstreams.set(String(u.id), upstreamOf(String(u.id), u)));
  const inline = (owner: string, u: UpstreamDoc) => upstreamOf(u.id !== undefined ? String(u.id) : owner, u);
  const globals = new Map<string, Instance>();
  for (const g of doc.global_rules ?? []) for (const [k, v] of layers.get(`global:${g.id}`) ?? []) globals.set(k, v);
  const services = new Map((doc.services ?? []).map((s) => [String(s.id), s]));
  const serviceViews = new Map<string, RouteEntry['service']>();
  const serviceView = (svc: NonNullable<GatewayDoc['services']>[number]) => {
    const id = String(svc.id);
    let v = serviceViews.get(id);
    if (!v) serviceViews.set(id, (v = Object.freeze({ id, config: withoutUpstream(svc) })));
    return v;
  };
  const entries: RouteEntry[] = [];
  const specs: RouteSpec[] = [];
  const routeDocs = doc.routes ?? [];
  for (let i = 0; i < routeDocs.length; i++) {
    if (i % 100 === 99) await pause();
    const r = routeDocs[i];
    const svc = r.service_id !== undefined ? services.get(String(r.service_id)) : undefined;
    const svcLayer = svc ? layers.get(`service:${svc.id}`) : undefined;
    const routeLayer = layers.get(`route:${r.id}`);
    const own = [globals, svcLayer, routeLayer];
    const upstream = r.upstream ? inline(`route:${r.id}`, r.upstream)
      : r.upstream_id !== undefined ? upstreams.get(String(r.upstream_id))
      : svc?.upstream ? inline(`service:${svc.id}`, svc.upstream)
      : svc?.upstream_id !== undefined ? upstreams.get(String(svc.upstream_id)) : undefined;
    if (!upstream && !canReply(own)) {
      issues.add('GW_ERR_CONFIG_REF', ['routes', i], `route "${r.id}" has no upstream (upstream, upstream_id, or a service with one) and no plugin that answers requests itself (mocking, a serverless function)`);
      continue;
    }
    const hasAuth = [...new Set([...globals.values(), ...(svcLayer?.values() ?? []), ...(routeLayer?.values() ?? [])])].some((inst) => inst.def.consumerKey);
    let consumerChains: Map<string, ReturnType<typeof buildChain>> | undefined;
    if (hasAuth && consumerLayers.length) {
      consumerChains = new Map();
      for (const c of consumerLayers) consumerChains.set(c.consumer.username, buildChain([globals, svcLayer, c.layer, routeLayer]));
    }
    const uris = r.uris ?? [r.uri as string];
    const filter = compileRouteFilter(r);
    const entry: RouteEntry = Object.freeze({
      id: String(r.id), uri: uris[0], serviceId: svc ? String(svc.id) : undefined, upstream,
      config: withoutUpstream(r), service: svc ? serviceView(svc) : undefined,
      websocket: r.enable_websocket, chain: buildChain(own), consumerChains,
      allowTrace: r.methods?.includes('TRACE') ?? false, allowEncodedSlashes: r.allow_encoded_slashes, filter,
    });
    entries.push(entry);
    specs.push({ route: entry, uris, methods: r.methods ? new Set(r.methods) : undefined, hosts: r.hosts ?? (r.host ? [r.host] : undefined), priority: r.priority, order: i, filtered: filter !== undefined });
  }
  return { entries, specs };
}

/** A route or service as written, minus its upstream (what plugins may show, e.g. opa's with_route). */
function withoutUpstream(doc: object): Readonly<Record<string, unknown>> {
  const { upstream: _, ...rest } = doc as Record<string, unknown>;
  return deepFreeze(rest);
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v) && !(v instanceof RegExp) && !ArrayBuffer.isView(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}
