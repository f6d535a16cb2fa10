/** Turns an upstream as written into the entry the proxy reads. */
import { createBalancer } from '../balancer.ts';
import { compileIpMatcher, KNOWN_REQUEST_VARIABLES, variable, type Ctx } from '../plugin.ts';
import type { ActiveCheck, Listen, UpstreamEntry, UpstreamNode } from '../snapshot.ts';
import type { ActiveCheckDoc, UpstreamDoc } from './model.ts';
import { compileNodeTls } from './upstream-tls.ts';

/** `host:port`, `[v6]:port`, or a bare host with the scheme's port. */
export function splitHostPort(s: string, defaultPort: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (m) return { host: m[1], port: m[2] ? Number(m[2]) : defaultPort };
  const i = s.lastIndexOf(':');
  if (i > 0 && /^\d+$/.test(s.slice(i + 1))) return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
  return { host: s, port: defaultPort };
}

/** `9080` or `127.0.0.1:9080`. */
export function parseListen(v: number | string, defaultHost: string): Listen {
  if (typeof v === 'number') return { host: defaultHost, port: v };
  if (/^\d+$/.test(v)) return { host: defaultHost, port: Number(v) };
  const { host, port } = splitHostPort(v, 0);
  return { host: host || defaultHost, port };
}

/** Compiles one upstream, or reuses `previous`'s compile of the same definition. */
export function compileUpstreamCached(id: string, doc: UpstreamDoc, previous: ReadonlyMap<string, UpstreamEntry> | undefined, next: Map<string, UpstreamEntry>): UpstreamEntry {
  const key = `${id}\0${JSON.stringify(doc)}`;
  const entry = next.get(key) ?? previous?.get(key) ?? compileUpstream(id, doc);
  next.set(key, entry);
  return entry;
}

/** chash's key of one request, compiled once (an unknown variable was refused by hashKeyProblem). */
function hashReader(on: UpstreamDoc['hash_on'], key: string): (ctx: Ctx) => string | undefined {
  if (on === 'consumer') return (ctx) => ctx.consumer?.username;
  if (on === 'header') {
    const name = key.toLowerCase();
    return (ctx) => { const v = ctx.request.headers[name]; return Array.isArray(v) ? v[0] : v; };
  }
  if (on === 'cookie') return variable(`cookie_${key}`, true)!;
  return variable(key, true) ?? (() => undefined);
}

/** Why an upstream's chash key cannot be read, or undefined (APISIX would hash every request alike, silently). */
export function hashKeyProblem(doc: UpstreamDoc): string | undefined {
  if (doc.type !== 'chash' || (doc.hash_on ?? 'vars') !== 'vars' || variable(doc.key, true)) return undefined;
  return `"${doc.key}" is not a variable Turnpike knows (known: ${KNOWN_REQUEST_VARIABLES})`;
}

/** Compiles one upstream; `id` names it in errors and logs. */
export function compileUpstream(id: string, doc: UpstreamDoc): UpstreamEntry {
  const defaultPort = doc.scheme === 'https' ? 443 : 80;
  const raw = Array.isArray(doc.nodes)
    ? doc.nodes.map((n) => ({ host: n.host, port: n.port ?? defaultPort, weight: n.weight ?? 1 }))
    : Object.entries(doc.nodes).map(([hp, weight]) => ({ ...splitHostPort(hp, defaultPort), weight }));
  const nodes: UpstreamNode[] = raw.map((n) => {
    const h = n.host.includes(':') ? `[${n.host}]` : n.host;
    const origin = `${doc.scheme}://${h}:${n.port}`;
    return Object.freeze({
      host: n.host, port: n.port, weight: n.weight, origin, hostHeader: n.port === defaultPort ? h : `${h}:${n.port}`,
      tls: doc.scheme === 'https' ? compileNodeTls(doc, n.host, origin) : undefined,
    });
  });
  return Object.freeze({
    id,
    nodes: Object.freeze(nodes),
    balancer: createBalancer(doc.type, nodes),
    hashOn: doc.type === 'chash' ? doc.hash_on : undefined,
    hashKey: doc.type === 'chash' ? hashReader(doc.hash_on, doc.key) : undefined,
    // nginx's 60 s for an idle tunnel unless the file sets read: 6 s would cut quiet WebSocket chats.
    timeout: Object.freeze({ connect: doc.timeout.connect * 1000, send: doc.timeout.send * 1000, read: (doc.timeout.read ?? 6) * 1000, tunnelIdle: (doc.timeout.read ?? 60) * 1000 }),
    retries: doc.retries ?? Math.max(0, nodes.length - 1),
    retryNonIdempotent: doc.retry_non_idempotent,
    passHost: doc.pass_host,
    upstreamHost: doc.upstream_host,
    keepalive: Object.freeze({ size: doc.keepalive_pool.size, idleMs: doc.keepalive_pool.idle_timeout * 1000 }),
    passive: doc.checks?.passive && Object.freeze({
      tcpFailures: doc.checks.passive.tcp_failures,
      httpFailures: doc.checks.passive.http_failures,
      httpStatuses: new Set(doc.checks.passive.http_statuses),
      ejectionMs: doc.checks.passive.ejection_seconds * 1000,
    }),
    active: doc.checks?.active && compileActive(doc.checks.active),
  });
}

function compileActive(a: ActiveCheckDoc): ActiveCheck {
  const headers: Record<string, string> = {};
  for (const h of a.req_headers ?? []) {
    const i = h.indexOf(':');
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return Object.freeze({
    type: a.type, timeoutMs: a.timeout * 1000, concurrency: a.concurrency, host: a.host, port: a.port,
    method: a.http_method, path: a.http_path, body: a.http_req_body, verify: a.https_verify_certificate, headers: Object.freeze(headers),
    healthyIntervalMs: a.healthy.interval * 1000, healthyStatuses: new Set(a.healthy.http_statuses), successes: a.healthy.successes,
    unhealthyIntervalMs: a.unhealthy.interval * 1000, unhealthyStatuses: new Set(a.unhealthy.http_statuses),
    httpFailures: a.unhealthy.http_failures, tcpFailures: a.unhealthy.tcp_failures, timeouts: a.unhealthy.timeouts,
  });
}

/**
 * `trusted_proxies` (addresses and CIDRs, IPv4 and IPv6) as one node:net
 * BlockList (compileIpMatcher), and the entries that are neither, by index
 * (config errors, each at its line).
 */
export function parseTrustedProxies(list: readonly string[]): { match: (ip: string) => boolean; problems: { index: number; message: string }[] } {
  const problems: { index: number; message: string }[] = [];
  const good: string[] = [];
  list.forEach((entry, index) => {
    try {
      compileIpMatcher([entry]);
      good.push(entry);
    } catch {
      problems.push({ index, message: `"${entry}" is not an IP address or CIDR (the prefix length is 0-32 for IPv4, 0-128 for IPv6)` });
    }
  });
  if (good.length === 0) return { match: () => false, problems };
  const matcher = compileIpMatcher(good);
  return { match: (ip) => matcher.match(ip) === true, problems };
}
