/**
 * A Kong declarative file (`_format_version`) as a gateway.yaml document.
 * Kong's defaults that differ from Turnpike's are written out: routes strip
 * their matched prefix (strip_path true) and send the service's host
 * (preserve_host false). Whatever cannot be carried is reported with the path
 * it was written at.
 */
import type { PathSeg } from '../source.ts';
import { isMap } from '../compat/notes.ts';
import { looksLikeLua } from '../compat/plugins.ts';
import { anyAuthPlugin, KONG_PLUGINS } from './kong-plugins.ts';
import { httpsOnly, kongCertificates } from './kong-tls.ts';
import { jwtCredential, madeUp } from './kong-credentials.ts';
import { kongParts, kongPriority, orderLikeKong, type OrderedRoute } from './kong-order.ts';
import { kongHeaders, kongPath, kongPathOrder, kongUpstreamPath, type KongPath } from './kong-match.ts';

type Obj = Record<string, unknown>;

/** Something the import could not carry, where it was written, and why. */
export interface Dropped { path: PathSeg[]; what: string; why: string }

/**
 * The document, what was dropped, what was carried differently or made up as
 * Kong makes it up (`notes`: the import still succeeds), and where each output
 * route, service and consumer was written in the input.
 */
export interface Converted { doc: Obj; dropped: Dropped[]; notes: Dropped[]; origins: Map<object, PathSeg[]> }

/** A Kong name as a Turnpike id (letters, digits, _ . ~ -). */
export function kongId(name: unknown, fallback: string): string {
  const s = typeof name === 'string' ? name.replace(/[^A-Za-z0-9_.~-]+/g, '-').slice(0, 128) : '';
  return s || fallback;
}

const ALGORITHMS: Record<string, string> = { 'round-robin': 'roundrobin', 'least-connections': 'least_conn', 'consistent-hashing': 'chash', latency: 'least_conn' };

/** Converts a Kong document; `known` says whether Turnpike has a plugin of that name. */
export function convertKong(kong: Obj, known: (name: string) => boolean): Converted {
  const dropped: Dropped[] = [];
  const drop = (path: PathSeg[], what: string, why: string) => dropped.push({ path, what, why });
  const notes: Dropped[] = [];
  const note = (path: PathSeg[], what: string, why: string) => notes.push({ path, what, why });
  const out: Obj = {};
  const upstreams: Obj[] = [];
  const services: Obj[] = [];
  const routes: Obj[] = [];
  const consumers: Obj[] = [];
  const upstreamNames = new Set<string>();
  const origins = new Map<object, PathSeg[]>();
  const ordered: OrderedRoute[] = [];

  const kUpstreams = Array.isArray(kong.upstreams) ? kong.upstreams : [];
  kUpstreams.forEach((u, i) => {
    if (!isMap(u)) return;
    const at: PathSeg[] = ['upstreams', i];
    const id = kongId(u.name, `upstream-${i + 1}`);
    const nodes: Record<string, number> = {};
    (Array.isArray(u.targets) ? u.targets : []).forEach((t) => { if (isMap(t) && typeof t.target === 'string') nodes[t.target] = typeof t.weight === 'number' ? t.weight : 100; });
    if (!Object.keys(nodes).length) { drop(at, `upstream "${id}"`, 'it has no targets'); return; }
    const up: Obj = { id, nodes, type: ALGORITHMS[String(u.algorithm ?? 'round-robin')] ?? 'roundrobin' };
    if (u.algorithm === 'latency') drop([...at, 'algorithm'], 'algorithm: latency', 'least_conn is used instead');
    if (up.type === 'chash') {
      const on = String(u.hash_on ?? 'none');
      if (on === 'ip' || on === 'none') { up.hash_on = 'vars'; up.key = 'remote_addr'; }
      else if (on === 'header') { up.hash_on = 'header'; up.key = u.hash_on_header; }
      else if (on === 'cookie') { up.hash_on = 'cookie'; up.key = u.hash_on_cookie; }
      else if (on === 'consumer') up.hash_on = 'consumer';
      else { up.hash_on = 'vars'; up.key = 'uri'; drop([...at, 'hash_on'], `hash_on: ${on}`, 'hashed on the path instead'); }
    }
    if (isMap(u.healthchecks)) {
      const passive = isMap(u.healthchecks.passive) && isMap(u.healthchecks.passive.unhealthy) ? u.healthchecks.passive.unhealthy : undefined;
      if (passive && (passive.http_failures || passive.tcp_failures)) {
        up.checks = { passive: {
          ...(passive.http_failures ? { http_failures: passive.http_failures } : {}),
          ...(passive.tcp_failures ? { tcp_failures: passive.tcp_failures } : {}),
          ...(Array.isArray(passive.http_statuses) ? { http_statuses: passive.http_statuses } : {}),
        } };
      }
      const active = isMap(u.healthchecks.active) ? kongActiveChecks(u.healthchecks.active, [...at, 'healthchecks', 'active'], drop) : undefined;
      if (active) up.checks = { ...(up.checks as Obj | undefined), active };
    }
    upstreamNames.add(String(u.name));
    upstreams.push(up);
  });

  const identifies = anyAuthPlugin(kong);
  // Consumers first: acl groups are needed to map the acl plugin.
  const groups = new Map<string, string[]>();
  const kConsumers = Array.isArray(kong.consumers) ? kong.consumers : [];
  kConsumers.forEach((c, i) => {
    if (!isMap(c)) return;
    const username = kongId(c.username ?? c.custom_id, `consumer-${i + 1}`);
    for (const a of Array.isArray(c.acls) ? c.acls : []) {
      if (isMap(a) && typeof a.group === 'string') groups.set(a.group, [...(groups.get(a.group) ?? []), username]);
    }
  });
  // Credentials may sit in the consumer or at the top level, naming it (`consumer: alice`).
  const CREDENTIALS = ['keyauth_credentials', 'basicauth_credentials', 'jwt_secrets', 'acls', 'oauth2_credentials', 'hmacauth_credentials', 'mtls_auth_credentials'];
  const topCreds = new Map<string, { x: Obj; path: PathSeg[] }[]>();
  for (const f of CREDENTIALS) {
    (Array.isArray(kong[f]) ? kong[f] as unknown[] : []).forEach((x, k) => {
      if (!isMap(x)) return;
      const ref = isMap(x.consumer) ? x.consumer.username ?? x.consumer.id : x.consumer;
      const c = kConsumers.find((y) => isMap(y) && (y.username === ref || y.id === ref || y.custom_id === ref));
      if (!isMap(c)) { drop([f, k], `${f}[${k}]`, `its consumer "${String(ref)}" is not in the file`); return; }
      const key = `${kConsumers.indexOf(c)}|${f}`;
      topCreds.set(key, [...(topCreds.get(key) ?? []), { x, path: [f, k] }]);
      if (f === 'acls' && typeof x.group === 'string') {
        const username = kongId(c.username ?? c.custom_id, `consumer-${kConsumers.indexOf(c) + 1}`);
        groups.set(x.group, [...(groups.get(x.group) ?? []), username]);
      }
    });
  }
  kConsumers.forEach((c, i) => {
    if (!isMap(c)) return;
    const at: PathSeg[] = ['consumers', i];
    const username = kongId(c.username ?? c.custom_id, `consumer-${i + 1}`);
    const plugins: Obj = {};
    const items = (field: string) => [
      ...(Array.isArray(c[field]) ? c[field] as unknown[] : []).map((x, k) => ({ x, path: [...at, field, k] as PathSeg[] })),
      ...(topCreds.get(`${i}|${field}`) ?? []),
    ].filter((e): e is { x: Obj; path: PathSeg[] } => isMap(e.x));
    const cred = (field: string, target: string, conv: (x: Obj) => Obj) => {
      items(field).forEach(({ x, path }, k) => {
        const what = `${field}[${k}] of consumer "${username}"`;
        if (!known(target)) drop(path, what, `Turnpike has no ${target} plugin yet`);
        else if (plugins[target]) drop(path, what, `a Turnpike consumer holds one ${target} credential; the first was kept`);
        else plugins[target] = conv(autoFields(x, field, path, what));
      });
    };
    /** Kong makes up a credential's `auto` fields when the file leaves them out: so does the import, and says so. */
    const autoFields = (x: Obj, field: string, path: PathSeg[], what: string): Obj => {
      const { cred: y, made } = madeUp(x, field);
      if (made.length) note(path, what, `no ${made.join(' or ')}: made up as Kong does (32 random letters and digits), written in this file${made.includes('key') && field === 'jwt_secrets' ? '; tokens name it in iss (key_claim_name)' : ''}`);
      return y;
    };
    cred('keyauth_credentials', 'key-auth', (x) => ({ key: x.key }));
    cred('basicauth_credentials', 'basic-auth', (x) => ({ username: x.username, password: x.password }));
    cred('jwt_secrets', 'jwt-auth', jwtCredential);
    for (const f of ['oauth2_credentials', 'hmacauth_credentials', 'mtls_auth_credentials']) for (const { path } of items(f)) drop(path, `${f} of consumer "${username}"`, 'Turnpike has no such authentication yet');
    const own: Obj = {};
    addPlugins(c.plugins, [...at, 'plugins'], own, true);
    for (const [name, conf] of Object.entries(own)) {
      // Kong refuses authentication plugins on a consumer (no_consumer); the credential is what a consumer holds.
      if (name in plugins || AUTH_TARGETS.has(name)) {
        const k = (Array.isArray(c.plugins) ? c.plugins : []).findIndex((p) => isMap(p) && KONG_PLUGINS[String(p.name)]?.target === name);
        drop([...at, 'plugins', Math.max(0, k)], `plugin ${name} of consumer "${username}"`, 'an authentication plugin cannot be set on a consumer (Kong refuses it too); its credential is kept');
      } else plugins[name] = conf;
    }
    const consumer = { username, ...(Object.keys(plugins).length ? { plugins } : {}) };
    origins.set(consumer, at);
    consumers.push(consumer);
  });

  function addPlugins(list: unknown, at: PathSeg[], into: Obj, onConsumer = false): void {
    if (!Array.isArray(list)) return;
    list.forEach((p, k) => {
      if (!isMap(p) || typeof p.name !== 'string') return;
      const pat = [...at, k];
      if (p.enabled === false) return; // switched off in Kong: nothing to carry
      const config = isMap(p.config) ? p.config : {};
      if (p.name === 'pre-function' || p.name === 'post-function') {
        const lua = Object.values(config).some((v) => Array.isArray(v) && v.some((s) => typeof s === 'string' && looksLikeLua(s)));
        drop(pat, `plugin ${p.name}`, lua || !Object.keys(config).length ? 'its functions are Lua: port them to JavaScript (README "Lua → JavaScript")' : 'check its functions are JavaScript, then add it back');
        return;
      }
      const m = KONG_PLUGINS[p.name];
      if (!m) { drop(pat, `plugin ${p.name}`, 'not available in Turnpike (yet)'); return; }
      if (!known(m.target)) { drop(pat, `plugin ${p.name}`, `not available in Turnpike (yet): it maps to ${m.target}, which this Turnpike does not have`); return; }
      const { conf, lost } = m.map(config, { groups, onConsumer, identifies });
      for (const l of lost) drop([...pat, 'config'], `plugin ${p.name}: ${l}`, `${m.target} has no equivalent`);
      // A route's own proxy-rewrite (strip_path) and request-transformer's share one plugin.
      into[m.target] = m.target === 'proxy-rewrite' && isMap(into[m.target]) ? mergeRewrite(conf, into[m.target] as Obj) : conf;
    });
  }

  const kServices = Array.isArray(kong.services) ? kong.services : [];
  const serviceById = new Map<string, { id: string; path: string; host: string; upstream: Obj }>();
  kServices.forEach((s, i) => {
    if (!isMap(s)) return;
    const at: PathSeg[] = ['services', i];
    const id = kongId(s.name, `service-${i + 1}`);
    const target = serviceTarget(s);
    if ('why' in target) { drop(at, `service "${id}" and its routes`, target.why); return; }
    const up: Obj = upstreamNames.has(target.host)
      ? { pass_host: 'rewrite', upstream_host: target.host }
      : { scheme: target.scheme, nodes: { [`${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`]: 1 }, pass_host: 'node' };
    up.timeout = { connect: ms(s.connect_timeout), send: ms(s.write_timeout), read: ms(s.read_timeout) };
    up.retries = typeof s.retries === 'number' ? s.retries : 5;
    const svc: Obj = { id };
    let upstreamFull: Obj;
    if (upstreamNames.has(target.host)) {
      // A Kong upstream holds the nodes; the Host header and timeouts are the service's.
      const base = upstreams.find((u) => u.id === kongId(target.host, ''))!;
      upstreamFull = { ...structuredClone(base), ...up };
      delete upstreamFull.id;
    } else upstreamFull = up;
    svc.upstream = upstreamFull;
    const plugins: Obj = {};
    addPlugins(s.plugins, [...at, 'plugins'], plugins);
    if (Object.keys(plugins).length) svc.plugins = plugins;
    services.push(svc);
    origins.set(svc, at);
    serviceById.set(String(s.name ?? s.id ?? id), { id, path: target.path, host: target.host, upstream: upstreamFull });
    if (s.id !== undefined) serviceById.set(String(s.id), serviceById.get(String(s.name ?? s.id ?? id))!);
    (Array.isArray(s.routes) ? s.routes : []).forEach((r, k) => { if (isMap(r)) route(r, [...at, 'routes', k], k, serviceById.get(String(s.name ?? s.id ?? id))!); });
  });
  (Array.isArray(kong.routes) ? kong.routes : []).forEach((r, k) => {
    if (!isMap(r)) return;
    const ref = isMap(r.service) ? r.service.name ?? r.service.id : r.service;
    const svc = serviceById.get(String(ref));
    if (!svc) { drop(['routes', k], `route "${kongId(r.name, `route-${k + 1}`)}"`, `its service "${String(ref)}" is not in the file (or was dropped)`); return; }
    route(r, ['routes', k], k, svc);
  });

  function route(r: Obj, at: PathSeg[], index: number, svc: { id: string; path: string; host: string; upstream: Obj }): void {
    const id = kongId(r.name, `${svc.id}-${index + 1}`);
    const protocols = Array.isArray(r.protocols) ? r.protocols : ['http', 'https'];
    const bad = protocols.find((p) => p !== 'http' && p !== 'https');
    if (bad) { drop(at, `route "${id}"`, `protocol ${String(bad)} is not supported yet`); return; }
    const matchVars: unknown[][] = [];
    if (isMap(r.headers)) {
      const h = kongHeaders(r.headers);
      // Leaving the condition out would match requests the route was meant to refuse.
      if ('why' in h) { drop([...at, 'headers'], `route "${id}"`, h.why); return; }
      matchVars.push(...h.vars);
    }
    for (const k of ['snis', 'sources', 'destinations']) {
      const v = r[k];
      if (v && (Array.isArray(v) ? v.length : Object.keys(v as Obj).length)) {
        // Leaving the condition out would match requests the route was meant to refuse.
        drop([...at, k], `route "${id}"`, `it matches on ${k}, which Turnpike cannot match yet`);
        return;
      }
    }
    const paths = Array.isArray(r.paths) ? r.paths.filter((p): p is string => typeof p === 'string') : [];
    const converted: Exclude<KongPath, { why: string }>[] = [];
    for (const p of paths) {
      const conv = kongPath(p);
      if ('why' in conv) drop([...at, 'paths'], `route "${id}" path ${p}`, conv.why);
      else converted.push(conv);
    }
    if (paths.length && !converted.length) { drop(at, `route "${id}"`, 'none of its paths can be matched'); return; }
    if (!paths.length) converted.push(kongPath('/') as Exclude<KongPath, { why: string }>);
    const out: Obj = { id, uris: [...new Set(converted.flatMap((c) => c.uris))], service_id: svc.id };
    // A uri broader than its path: the route checks the path against every path it has, in Kong's order.
    if (converted.some((c) => c.filter)) matchVars.unshift(['uri', '~~', `^(?:${kongPathOrder(converted).map((c) => c.match).join('|')})`]);
    if (matchVars.length) out.vars = matchVars;
    if (Array.isArray(r.methods) && r.methods.length) out.methods = r.methods.map((m) => String(m).toUpperCase());
    if (Array.isArray(r.hosts) && r.hosts.length) {
      const hosts = r.hosts.map(String).map((h) => h.replace(/:\d+$/, ''));
      const bad = hosts.find((h) => !/^\*?[A-Za-z0-9._-]+$/.test(h));
      if (bad) { drop([...at, 'hosts'], `route "${id}"`, hostProblem(bad)); return; }
      out.hosts = hosts;
    }
    const plugins: Obj = {};
    // Kong's default router joins paths the v0 way whatever the route says (v1 is the traditional router's, deprecated).
    if (r.path_handling === 'v1') note([...at, 'path_handling'], `route "${id}"`, 'path_handling v1: the upstream path is joined the v0 way, as Kong\'s default router (traditional_compatible) does');
    const rewrite = kongUpstreamPath(converted, r.strip_path !== false, svc.path);
    if (rewrite) plugins['proxy-rewrite'] = { regex_uri: rewrite };
    if (r.preserve_host === true) out.upstream = { ...structuredClone(svc.upstream), pass_host: 'pass' };
    if (!protocols.includes('http')) httpsOnly(r, at, id, plugins, drop);
    addPlugins(r.plugins, [...at, 'plugins'], plugins);
    if (Object.keys(plugins).length) out.plugins = plugins;
    routes.push(out);
    origins.set(out, at);
    const kongPaths = paths.length ? converted : [];
    ordered.push({ out, at, key: kongPriority(r, kongPaths), parts: kongParts(kongPaths), hosts: ((out.hosts ?? []) as string[]).map((h) => h.toLowerCase()) });
  }
  orderLikeKong(ordered, note);

  // Top-level plugins: global, or attached to a service, route or consumer by name.
  const globals: Obj = {};
  (Array.isArray(kong.plugins) ? kong.plugins : []).forEach((p, k) => {
    if (!isMap(p)) return;
    const ref = (v: unknown) => (isMap(v) ? v.name ?? v.id : v);
    const owners = [['service', services, ref(p.service)], ['route', routes, ref(p.route)], ['consumer', consumers, ref(p.consumer)]].filter((o) => o[2] !== undefined && o[2] !== null);
    if (owners.length > 1) { drop(['plugins', k], `plugin ${String(p.name)}`, `it applies to a combination of ${owners.map((o) => o[0]).join(' and ')}, which Turnpike cannot scope a plugin to`); return; }
    if (!owners.length) { addPlugins([p], ['plugins'], globals); return; }
    const [kind, items, name] = owners[0] as [string, Obj[], unknown];
    const key = kind === 'consumer' ? 'username' : 'id';
    const item = items.find((x) => x[key] === kongId(name, ''));
    if (!item) { drop(['plugins', k], `plugin ${String(p.name)}`, `its ${kind} "${String(name)}" is not in the file (or was dropped)`); return; }
    const into = (item.plugins ??= {}) as Obj;
    addPluginsAt(p, k, into, kind === 'consumer');
  });
  function addPluginsAt(p: Obj, k: number, into: Obj, onConsumer: boolean): void {
    const before = dropped.length;
    addPlugins([p], ['plugins'], into, onConsumer);
    for (const d of dropped.slice(before)) d.path = ['plugins', k, ...d.path.slice(2)];
  }

  if (Object.keys(globals).length) out.global_rules = [{ id: 'kong-global-plugins', plugins: globals }];
  if (services.length) out.services = services;
  if (routes.length) out.routes = routes;
  if (consumers.length) out.consumers = consumers;
  const ssls = kongCertificates(kong, kongId, drop, origins);
  if (ssls.length) {
    out.ssls = ssls;
    // Kong serves them on its TLS port (8443, HTTP/2 on); here APISIX's ports.
    out.listen = [{ port: 9080 }, { port: 9443, tls: true, http2: true }];
  }
  inheritRewrites(routes, services, globals);
  for (const k of Object.keys(kong)) {
    if ([...CREDENTIALS].includes(k)) continue;
    if (!['_format_version', '_transform', '_comment', '_workspace', '_info', '_konnect', 'services', 'routes', 'upstreams', 'consumers', 'plugins', 'certificates', 'snis'].includes(k)) {
      drop([k], `${k}`, 'Turnpike has no equivalent yet');
    }
  }
  return { doc: out, dropped, notes, origins };
}

/** Turnpike plugins that authenticate: a credential on a consumer, never a consumer's plugin. */
const AUTH_TARGETS = new Set(['key-auth', 'basic-auth', 'jwt-auth']);

/**
 * Two proxy-rewrite configs as one: `over`'s path rule wins (a replace.uri
 * over strip_path's regex_uri), header rules are united, `over`'s first.
 */
export function mergeRewrite(over: Obj, base: Obj): Obj {
  const out: Obj = { ...base, ...over };
  if (over.uri !== undefined) delete out.regex_uri;
  else if (over.regex_uri !== undefined) delete out.uri;
  const h = (c: Obj) => (isMap(c.headers) ? c.headers : {}) as Obj;
  const bh = h(base), oh = h(over);
  const headers: Obj = {};
  for (const k of ['set', 'add']) {
    const m = { ...(isMap(bh[k]) ? bh[k] : {}), ...(isMap(oh[k]) ? oh[k] : {}) };
    if (Object.keys(m).length) headers[k] = m;
  }
  const remove = [...new Set([...(Array.isArray(bh.remove) ? bh.remove : []), ...(Array.isArray(oh.remove) ? oh.remove : [])])];
  if (remove.length) headers.remove = remove;
  if (Object.keys(headers).length) out.headers = headers; else delete out.headers;
  return out;
}

/**
 * In Kong every level's request-transformer runs; in Turnpike a route's
 * proxy-rewrite (its strip_path, say) replaces its service's and the global
 * one. So a route's rewrite takes in the header rules of the levels above it.
 */
function inheritRewrites(routes: Obj[], services: Obj[], globals: Obj): void {
  for (const r of routes) {
    const own = isMap(r.plugins) ? r.plugins['proxy-rewrite'] : undefined;
    if (!isMap(own)) continue;
    const svc = services.find((s) => s.id === r.service_id);
    const above = [globals['proxy-rewrite'], isMap(svc?.plugins) ? svc.plugins['proxy-rewrite'] : undefined].filter(isMap);
    let merged: Obj = own;
    for (const a of above) {
      merged = mergeRewrite(merged, { headers: a.headers });
      // Kong's transformer runs after routing: a replace.uri above beats the route's strip_path.
      if (a.uri !== undefined && merged.uri === undefined) { merged.uri = a.uri; delete merged.regex_uri; }
    }
    (r.plugins as Obj)['proxy-rewrite'] = merged;
  }
}

/** Kong timeouts are milliseconds (default 60000); Turnpike's are seconds. */
function ms(v: unknown): number {
  return typeof v === 'number' && v > 0 ? v / 1000 : 60;
}

function serviceTarget(s: Obj): { scheme: string; host: string; port: number; path: string } | { why: string } {
  let scheme = String(s.protocol ?? 'http');
  let host = typeof s.host === 'string' ? s.host : '';
  let port = typeof s.port === 'number' ? s.port : undefined;
  let path = typeof s.path === 'string' ? s.path : '';
  if (typeof s.url === 'string') {
    try {
      const u = new URL(s.url);
      scheme = u.protocol.replace(/:$/, '');
      host = u.hostname.replace(/^\[|\]$/g, '');
      port = u.port ? Number(u.port) : undefined;
      path = u.pathname === '/' && !/^\w+:\/\/[^/]+\//.test(s.url) ? '' : u.pathname;
    } catch {
      return { why: `url "${s.url}" is not a URL` };
    }
  }
  if (scheme !== 'http' && scheme !== 'https') return { why: `protocol ${scheme} is not supported yet` };
  if (!host) return { why: 'it has no host or url' };
  return { scheme, host, port: port ?? (scheme === 'https' ? 443 : 80), path };
}

/** Fields Kong's and APISIX's active checks share (both are lua-resty-healthcheck's), by section. */
const ACTIVE_TOP = ['timeout', 'concurrency', 'http_path', 'https_verify_certificate'] as const;
const ACTIVE_HEALTHY = ['interval', 'http_statuses', 'successes'] as const;
const ACTIVE_UNHEALTHY = ['interval', 'http_statuses', 'http_failures', 'tcp_failures', 'timeouts'] as const;

/**
 * Kong's `healthchecks.active` as Turnpike's `checks.active`, or undefined when
 * Kong would not probe (both intervals 0, Kong's default). `https_sni` and gRPC
 * probes have no equivalent: listed. Kong's `headers` ({name: [values]}) become
 * `req_headers` lines.
 */
function kongActiveChecks(a: Obj, at: PathSeg[], drop: (path: PathSeg[], what: string, why: string) => void): Obj | undefined {
  const healthy = isMap(a.healthy) ? a.healthy : {};
  const unhealthy = isMap(a.unhealthy) ? a.unhealthy : {};
  if (!(Number(healthy.interval) > 0) && !(Number(unhealthy.interval) > 0)) return undefined;
  const type = String(a.type ?? 'http');
  if (type !== 'http' && type !== 'https' && type !== 'tcp') {
    drop([...at, 'type'], `active health checks of type ${type}`, 'Turnpike probes over http, https or tcp only');
    return undefined;
  }
  const out: Obj = { type };
  for (const k of ACTIVE_TOP) if (a[k] !== undefined && a[k] !== null) out[k] = a[k];
  // Kong's interval 0 stops probing on that side; Turnpike always probes both, so that side takes the other's interval.
  const other = (from: Obj, to: Obj) => (Number(from.interval) > 0 ? from.interval : to.interval);
  const pick = (from: Obj, keys: readonly string[], interval: unknown) => {
    const o: Obj = {};
    for (const k of keys) if (from[k] !== undefined && from[k] !== null) o[k] = from[k];
    o.interval = interval;
    return o;
  };
  out.healthy = pick(healthy, ACTIVE_HEALTHY, other(healthy, unhealthy));
  out.unhealthy = pick(unhealthy, ACTIVE_UNHEALTHY, other(unhealthy, healthy));
  const headers = isMap(a.headers) ? Object.entries(a.headers).flatMap(([name, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${name}: ${String(x)}`)) : [];
  if (headers.length) out.req_headers = headers;
  if (a.https_sni !== undefined && a.https_sni !== null) drop([...at, 'https_sni'], 'active health checks https_sni', 'probes use the node\'s address as SNI');
  return out;
}

/** Why a Kong route host cannot be carried. */
function hostProblem(host: string): string {
  // A template for envsubst or the like: Kong refuses such a host too, until the file is filled in.
  const placeholder = /\$\{[^}]*\}/.exec(host)?.[0];
  if (placeholder) return `host ${host} holds ${placeholder}, a placeholder nothing filled in (Kong refuses it as it is): fill the file in first (envsubst < kong.yml > filled.yml), then import that`;
  if (host.endsWith('.*')) return `host ${host}: a trailing wildcard cannot be matched yet (only a leading * wildcard)`;
  return `host ${host} is not a host name Turnpike can match (letters, digits, '.', '-', '_', a leading * wildcard)`;
}
