/**
 * Loading a config: text in, a frozen snapshot or every problem out. The
 * `validate` command, startup and every reload run this same function.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { availableParallelism } from 'node:os';
import schema from '../../schemas/gateway.schema.json' with { type: 'json' };
import { formatIssue, type ConfigIssue, type ErrorCode } from '../errors.ts';
import type { Consumer, FunctionHost, PluginDef, SharedState } from '../plugin.ts';
import { LocalSharedState } from '../shared/local.ts';
import { Router, type RouteSpec } from '../router.ts';
import type { RouteEntry, ServerlessSettings, Snapshot, UpstreamEntry } from '../snapshot.ts';
import { buildChain, canReply, type Instance } from './chain.ts';
import { interpolate } from './interpolate.ts';
import type { GatewayDoc, PluginMap, UpstreamDoc } from './model.ts';
import { loadPlugins } from './plugins.ts';
import { formatPath, offsetPosition, parseSource, sourceWithData, type PathSeg } from './source.ts';
import { compileUpstreamCached, parseListen, trustMatcher } from './upstream.ts';
import { SchemaSet } from './validate.ts';

export interface LoadOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /** The function pool, as configured by the file being loaded (checking functions at load needs it). */
  functions: (settings: ServerlessSettings) => FunctionHost;
  /**
   * Called between the stages of a load and every few hundred routes. A running
   * gateway passes one that yields to its event loop, so a large reload does
   * not hold requests for its whole duration.
   */
  pause?: () => Promise<void>;
  /**
   * Parses YAML elsewhere (a running gateway: on another thread); undefined
   * when the text has errors or that failed, and the load parses it here.
   */
  parse?: (text: string) => Promise<{ data: unknown } | undefined>;
  /** The snapshot in force: unchanged upstreams are taken from it, balancer state and all. */
  previous?: Snapshot;
  /** State shared by the host's workers (plugins reach it as `api.shared`); a per-load local one when absent. */
  shared?: SharedState;
}

export type LoadResult =
  | { ok: true; hash: string; snapshot: Snapshot }
  | { ok: false; hash: string; issues: ConfigIssue[] };

/** sha256 of the raw file text. */
export function hashText(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The text of a config file, or the issue that says why it cannot be read. */
export async function readConfigText(file: string): Promise<{ text: string } | { issue: ConfigIssue }> {
  try {
    return { text: await readFile(file, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? (err as Error).message})`;
    return { issue: { code: 'GW_ERR_CONFIG_READ', file, line: 0, col: 0, path: '', message: why } };
  }
}

/** Reads and loads a config file. */
export async function loadConfigFile(file: string, opts: LoadOptions): Promise<LoadResult> {
  const read = await readConfigText(file);
  if ('issue' in read) return { ok: false, hash: '', issues: [read.issue] };
  return loadConfigText(read.text, file, opts);
}

/** Every issue as `file:line:col: path: message`, one per line. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map(formatIssue).join('\n');
}

/**
 * Half the cores, at least one: the main thread and the kernel's network work
 * need the rest. On 2 cores one worker measured 0.81-0.90 of the no-plugin
 * throughput against 0.70-0.78 for two (`npm run bench`, 2026-11-21).
 */
export const DEFAULT_THREADS = Math.max(1, Math.floor(availableParallelism() / 2));

const SERVERLESS_DEFAULTS: ServerlessSettings = {
  enabled: true, threads: DEFAULT_THREADS, concurrency: 64, timeoutMs: 1000, maxQueue: 1024, maxHeapMb: 128, maxResultBytes: 4 << 20, allowFsRead: [],
};

/** A `pause` for a running gateway: lets the requests queued meanwhile run, then goes on. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The file's own schema never changes: compiled once (~15 ms a load on 2 cores), unlike plugins' schemas, which may. */
const GATEWAY_SCHEMA = new SchemaSet();

/** Loads config text; `file` names it in messages and anchors relative paths. */
export async function loadConfigText(text: string, file: string, opts: LoadOptions): Promise<LoadResult> {
  const hash = hashText(text);
  const display = path.relative(process.cwd(), file) || file;
  const issues: ConfigIssue[] = [];
  const fail = (): LoadResult => ({ ok: false, hash, issues: issues.sort((a, b) => a.line - b.line || a.col - b.col) });

  if (!/^\s*[^\s#]/m.test(text)) {
    issues.push({ code: 'GW_ERR_CONFIG_YAML', file: display, line: 1, col: 1, path: '', message: 'file is empty: a gateway needs at least one route' });
    return fail();
  }
  const { text: expanded, missing } = interpolate(text, opts.env ?? process.env);
  for (const m of missing) {
    const pos = offsetPosition(text, m.offset);
    issues.push({ code: 'GW_ERR_CONFIG_ENV', file: display, line: pos.line, col: pos.col, path: '', message: `environment variable ${m.name} is not set and has no default (write \${{${m.name}:=default}} to give one)` });
  }
  const pause = opts.pause ?? (() => undefined);
  const yamlText = missing.length ? text : expanded;
  const parsed = opts.parse && !missing.length ? await opts.parse(yamlText) : undefined;
  const src = parsed ? sourceWithData(yamlText, parsed.data) : parseSource(yamlText);
  await pause();
  for (const e of src.yamlErrors) issues.push({ code: 'GW_ERR_CONFIG_YAML', file: display, line: e.line, col: e.col, path: '', message: `YAML: ${e.message}` });
  if (issues.length) return fail();

  const add = (code: ErrorCode, at: readonly PathSeg[], message: string, atKey = false) => {
    const pos = src.position(at, atKey);
    issues.push({ code, file: display, line: pos.line, col: pos.col, path: formatPath(at), message });
  };

  const data = src.data;
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    add('GW_ERR_CONFIG_SCHEMA', [], 'the file must be a mapping with routes, services, upstreams, consumers');
    return fail();
  }
  for (const p of GATEWAY_SCHEMA.validate('gateway', schema, data, [])) add('GW_ERR_CONFIG_SCHEMA', p.path, p.message, p.atKey);
  const schemas = new SchemaSet();
  await pause();
  const doc = data as GatewayDoc;
  const schemaOk = issues.length === 0;
  let plugins = new Map<string, PluginDef>();
  const places: { where: string; scope: string; at: PathSeg[]; map: PluginMap | undefined; consumer: boolean }[] = [];
  try {
    await checkDocument();
  } catch (err) {
    // Checks below assume a schema-valid shape; on a malformed one the schema errors already say why.
    if (schemaOk) throw err;
  }
  if (issues.length) return fail();
  await pause();
  return compile();

  async function checkDocument(): Promise<void> {

  // Plugins: load modules, then check every instance against its own schema.
  const loaded = await loadPlugins(Array.isArray(doc.plugin_paths) ? doc.plugin_paths.filter((p) => typeof p === 'string') : [], path.dirname(path.resolve(file)));
  plugins = loaded.plugins;
  for (const p of loaded.problems) add('GW_ERR_PLUGIN_MODULE', ['plugin_paths', p.index], p.message);

  doc.global_rules?.forEach((g, i) => places.push({ where: `global rule "${g.id}"`, scope: `global:${g.id}`, at: ['global_rules', i, 'plugins'], map: g.plugins, consumer: false }));
  doc.services?.forEach((s, i) => places.push({ where: `service "${s.id}"`, scope: `service:${s.id}`, at: ['services', i, 'plugins'], map: s.plugins, consumer: false }));
  doc.consumers?.forEach((c, i) => places.push({ where: `consumer "${c.username}"`, scope: `consumer:${c.username}`, at: ['consumers', i, 'plugins'], map: c.plugins, consumer: true }));
  doc.routes?.forEach((r, i) => places.push({ where: `route "${r.id}"`, scope: `route:${r.id}`, at: ['routes', i, 'plugins'], map: r.plugins, consumer: false }));

  for (const place of places) {
    for (const [name, conf] of Object.entries(place.map ?? {})) {
      const at = [...place.at, name];
      const def = plugins.get(name);
      if (!def) {
        add('GW_ERR_CONFIG_PLUGIN', at, `unknown plugin "${name}" (known: ${[...plugins.keys()].sort().join(', ')})`, true);
        continue;
      }
      const sch = place.consumer && def.consumerSchema ? def.consumerSchema : def.schema;
      const key = (place.consumer && def.consumerSchema ? 'consumer:' : 'plugin:') + name;
      const found = schemas.validate(key, sch, conf, at);
      for (const p of found) add('GW_ERR_CONFIG_PLUGIN', p.path, `plugin ${name}: ${p.message}`, p.atKey);
      if (found.length === 0 && def.check && !(place.consumer && def.consumerSchema)) {
        const msg = def.check(conf);
        if (msg) add('GW_ERR_CONFIG_PLUGIN', at, `plugin ${name}: ${msg}`, true);
      }
    }
  }

  // References and uniqueness.
  const ids = (kind: string, list: { id?: unknown; username?: unknown }[] | undefined, field: 'id' | 'username') => {
    const seen = new Map<string, number>();
    list?.forEach((item, i) => {
      const id = String(item[field]);
      if (item[field] === undefined) return;
      if (seen.has(id)) add('GW_ERR_CONFIG_REF', [kind, i, field], `duplicate ${field} "${id}" (first used at ${kind}[${seen.get(id)}])`);
      else seen.set(id, i);
    });
    return seen;
  };
  const upstreamIds = ids('upstreams', doc.upstreams, 'id');
  const serviceIds = ids('services', doc.services, 'id');
  ids('routes', doc.routes, 'id');
  ids('consumers', doc.consumers, 'username');
  ids('global_rules', doc.global_rules, 'id');
  doc.upstreams?.forEach((u, i) => { if (u.id === undefined) add('GW_ERR_CONFIG_SCHEMA', ['upstreams', i], 'missing required field "id"'); });
  doc.services?.forEach((s, i) => {
    if (s.upstream_id !== undefined && !upstreamIds.has(String(s.upstream_id))) add('GW_ERR_CONFIG_REF', ['services', i, 'upstream_id'], `upstream "${s.upstream_id}" is not defined in upstreams`);
    if (s.upstream_id !== undefined && s.upstream) add('GW_ERR_CONFIG_REF', ['services', i, 'upstream'], 'give either upstream_id or upstream, not both');
  });
  doc.routes?.forEach((r, i) => {
    if (!r || typeof r !== 'object') return;
    if (r.uri === undefined && r.uris === undefined) add('GW_ERR_CONFIG_SCHEMA', ['routes', i], 'route needs "uri" or "uris"');
    if (r.uri !== undefined && r.uris !== undefined) add('GW_ERR_CONFIG_SCHEMA', ['routes', i, 'uris'], 'give either uri or uris, not both', true);
    if (r.host !== undefined && r.hosts !== undefined) add('GW_ERR_CONFIG_SCHEMA', ['routes', i, 'hosts'], 'give either host or hosts, not both', true);
    if (r.service_id !== undefined && !serviceIds.has(String(r.service_id))) add('GW_ERR_CONFIG_REF', ['routes', i, 'service_id'], `service "${r.service_id}" is not defined in services`);
    if (r.upstream_id !== undefined && !upstreamIds.has(String(r.upstream_id))) add('GW_ERR_CONFIG_REF', ['routes', i, 'upstream_id'], `upstream "${r.upstream_id}" is not defined in upstreams`);
    if (r.upstream_id !== undefined && r.upstream) add('GW_ERR_CONFIG_REF', ['routes', i, 'upstream'], 'give either upstream_id or upstream, not both');
  });
  }

  async function compile(): Promise<LoadResult> {
  // Compile: upstreams, plugin instances (init may check functions in a worker), chains, router.
  const upstreams = new Map<string, UpstreamEntry>();
  const upstreamCache = new Map<string, UpstreamEntry>();
  const upstreamOf = (id: string, u: UpstreamDoc) => compileUpstreamCached(id, u, opts.previous?.upstreamCache, upstreamCache);
  doc.upstreams?.forEach((u) => upstreams.set(String(u.id), upstreamOf(String(u.id), u)));
  const inline = (owner: string, u: UpstreamDoc) => upstreamOf(u.id !== undefined ? String(u.id) : owner, u);

  const sl = doc.serverless;
  const serverless: ServerlessSettings = Object.freeze(sl ? {
    enabled: sl.enabled, threads: sl.threads ?? DEFAULT_THREADS, concurrency: sl.concurrency, timeoutMs: sl.timeout_ms, maxQueue: sl.max_queue,
    maxHeapMb: sl.max_heap_mb, maxResultBytes: sl.max_result_bytes, allowFsRead: Object.freeze([...sl.allow_fs_read]),
  } : SERVERLESS_DEFAULTS);
  const functions = opts.functions(serverless);
  const shared = opts.shared ?? new LocalSharedState();

  const initPlace = async (place: (typeof places)[number]): Promise<Map<string, Instance> | undefined> => {
    if (!place.map) return undefined;
    const out = new Map<string, Instance>();
    for (const [name, conf] of Object.entries(place.map)) {
      const def = plugins.get(name) as PluginDef;
      if (place.consumer && def.consumerSchema) continue; // credentials, not a chain member
      try {
        const state = def.init ? await def.init(conf, { where: place.where, scope: place.scope, functions, shared }) : conf;
        out.set(name, { def, state: deepFreeze(state) });
      } catch (err) {
        for (const line of String((err as Error).message ?? err).split('\n')) add('GW_ERR_CONFIG_PLUGIN', [...place.at, name], `plugin ${name}: ${line}`, true);
      }
    }
    return out;
  };
  const layer = new Map<string, Map<string, Instance> | undefined>();
  for (const place of places) layer.set(place.scope, await initPlace(place));
  if (issues.length) return fail();

  const globals = new Map<string, Instance>();
  for (const g of doc.global_rules ?? []) for (const [k, v] of layer.get(`global:${g.id}`) ?? []) globals.set(k, v);

  const consumerIndex = new Map<string, Map<string, Consumer>>();
  const consumerLayers: { consumer: Consumer; layer: Map<string, Instance> | undefined }[] = [];
  doc.consumers?.forEach((c, i) => {
    const consumer = Object.freeze({ username: String(c.username) });
    for (const [name, conf] of Object.entries(c.plugins ?? {})) {
      const def = plugins.get(name) as PluginDef;
      if (!def.consumerKey) continue;
      const key = def.consumerKey(conf);
      let idx = consumerIndex.get(name);
      if (!idx) consumerIndex.set(name, (idx = new Map()));
      if (idx.has(key)) add('GW_ERR_CONFIG_REF', ['consumers', i, 'plugins', name], `plugin ${name}: the same credential is already used by consumer "${idx.get(key)!.username}"`, true);
      idx.set(key, consumer);
    }
    const l = layer.get(`consumer:${c.username}`);
    if (l && l.size) consumerLayers.push({ consumer, layer: l });
  });

  const services = new Map((doc.services ?? []).map((s) => [String(s.id), s]));
  const specs: RouteSpec[] = [];
  const routes: RouteEntry[] = [];
  const functionIds: string[] = [];
  const routeDocs = doc.routes ?? [];
  for (let i = 0; i < routeDocs.length; i++) {
    if (i % 100 === 99) await pause();
    const r = routeDocs[i];
    const svc = r.service_id !== undefined ? services.get(String(r.service_id)) : undefined;
    const svcLayer = svc ? layer.get(`service:${svc.id}`) : undefined;
    const routeLayer = layer.get(`route:${r.id}`);
    const layers = [globals, svcLayer, routeLayer];
    const upstream = r.upstream ? inline(`route:${r.id}`, r.upstream)
      : r.upstream_id !== undefined ? upstreams.get(String(r.upstream_id))
      : svc?.upstream ? inline(`service:${svc.id}`, svc.upstream)
      : svc?.upstream_id !== undefined ? upstreams.get(String(svc.upstream_id)) : undefined;
    if (!upstream && !canReply(layers)) {
      add('GW_ERR_CONFIG_REF', ['routes', i], `route "${r.id}" has no upstream (upstream, upstream_id, or a service with one) and no plugin that answers requests itself (mocking, a serverless function)`);
      continue;
    }
    const chain = buildChain(layers);
    const hasAuth = [...new Set([...globals.values(), ...(svcLayer?.values() ?? []), ...(routeLayer?.values() ?? [])])].some((inst) => inst.def.consumerKey);
    let consumerChains: Map<string, ReturnType<typeof buildChain>> | undefined;
    if (hasAuth && consumerLayers.length) {
      consumerChains = new Map();
      for (const c of consumerLayers) consumerChains.set(c.consumer.username, buildChain([globals, svcLayer, c.layer, routeLayer]));
    }
    const uris = r.uris ?? [r.uri as string];
    const entry: RouteEntry = Object.freeze({
      id: String(r.id), uri: uris[0], serviceId: svc ? String(svc.id) : undefined, upstream,
      websocket: r.enable_websocket, chain, consumerChains,
    });
    routes.push(entry);
    specs.push({ route: entry, uris, methods: r.methods ? new Set(r.methods) : undefined, hosts: r.hosts ?? (r.host ? [r.host] : undefined), priority: r.priority, order: i });
  }
  for (const l of layer.values()) for (const inst of l?.values() ?? []) {
    const ids = (inst.state as { functionIds?: readonly string[] } | null)?.functionIds;
    if (ids) functionIds.push(...ids);
  }
  if (issues.length) return fail();

  let router: Router;
  try {
    router = await Router.build(specs, pause);
  } catch (err) {
    add('GW_ERR_CONFIG_SCHEMA', ['routes'], `routes cannot be compiled: ${(err as Error).message}`);
    return fail();
  }

  const origins = new Set<string>();
  for (const r of routes) for (const n of r.upstream?.nodes ?? []) origins.add(n.origin);
  const snapshot: Snapshot = Object.freeze({
    file: path.resolve(file),
    hash,
    listen: parseListen(doc.listen, '0.0.0.0'),
    admin: doc.admin?.enabled === false ? null : parseListen(doc.admin?.listen ?? '127.0.0.1:9180', '127.0.0.1'),
    trustedProxies: trustMatcher(doc.trusted_proxies),
    serverless,
    router,
    routes: Object.freeze(routes),
    consumers: consumerIndex,
    origins,
    functionIds: Object.freeze(functionIds),
    upstreamCache,
  });
  return { ok: true, hash, snapshot };
  }
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v) && !(v instanceof RegExp) && !ArrayBuffer.isView(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}
