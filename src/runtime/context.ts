/** The per-request context handed to plugins. */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { GatewayError, publicBody } from '../errors.ts';
import { log } from '../log.ts';
import type { Consumer, Credential, Ctx, Downstream, PluginLogger, Reply, RequestRecord, RequestView, ResponseView, UpstreamAttempts } from '../plugin.ts';
import type { Chain, RouteEntry, Snapshot } from '../snapshot.ts';

function parseQuery(search: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (search.length <= 1) return out;
  for (const [k, v] of new URLSearchParams(search)) {
    const prev = out[k];
    // push, not spread: a query of thousands of repeated keys must stay linear.
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}

/** True when `now` holds what `before` held: the same keys, each with the same value or values. */
function sameQuery(now: Record<string, string | string[]>, before: Record<string, string | string[]> | undefined): boolean {
  if (before === undefined) return false;
  let n = 0;
  for (const k in now) {
    const a = now[k], b = before[k];
    if (Array.isArray(a)) {
      if (!Array.isArray(b) || a.length !== b.length) return false;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    } else if (a !== b) return false;
    n++;
  }
  return n === Object.keys(before).length;
}

/** Request data as plugins see it; the query is parsed only if someone reads it. */
export class RequestData implements RequestView {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body?: Buffer;
  /** Raw `?a=b` of the incoming URL, used as is unless `query` was touched. */
  readonly search: string;
  private parsedQuery: Record<string, string | string[]> | undefined;
  /** A copy of the query as first parsed, to tell a read (raw bytes kept) from a change (re-encoded). */
  private queryAsReceived: Record<string, string | string[]> | undefined;
  private clientIp: string;
  private derivedScheme: 'http' | 'https' | undefined;
  /** The connection and the gateway's trust, for `scheme` (set by RequestCtx; read only if a plugin asks). */
  raw: IncomingMessage | undefined;
  trusted: ((ip: string) => boolean) | undefined;

  constructor(method: string, path: string, search: string, headers: IncomingHttpHeaders, clientIp: string) {
    this.method = method;
    this.path = path;
    this.search = search;
    this.headers = headers;
    this.clientIp = clientIp;
  }

  get client_ip(): string { return this.clientIp; }

  /** See Ctx.setClientAddress. */
  setClientIp(ip: string): boolean {
    if (isIP(ip) === 0) return false;
    this.clientIp = ip;
    return true;
  }

  get scheme(): 'http' | 'https' {
    return (this.derivedScheme ??= schemeOf(this.raw, this.trusted));
  }

  received(name: string): string | undefined {
    const h = this.raw?.rawHeaders;
    if (!h) return typeof this.headers[name] === 'string' ? this.headers[name] as string : undefined;
    let out: string | undefined;
    for (let i = 0; i < h.length; i += 2) {
      if (h[i].length === name.length && h[i].toLowerCase() === name) out = out === undefined ? h[i + 1] : `${out}, ${h[i + 1]}`;
    }
    return out;
  }

  get query(): Record<string, string | string[]> {
    if (this.parsedQuery === undefined) {
      this.parsedQuery = parseQuery(this.search);
      const copy: Record<string, string | string[]> = {};
      for (const k in this.parsedQuery) { const v = this.parsedQuery[k]; copy[k] = Array.isArray(v) ? v.slice() : v; }
      this.queryAsReceived = copy;
    }
    return this.parsedQuery;
  }
  set query(q: Record<string, string | string[]>) {
    this.parsedQuery = q;
  }

  /** Path and query to send upstream. */
  target(): string {
    return this.path + this.currentSearch();
  }

  /** `?a=b` as the upstream would receive it now: the raw bytes unless `query` was changed (reading it changes nothing). */
  currentSearch(): string {
    if (this.parsedQuery === undefined || sameQuery(this.parsedQuery, this.queryAsReceived)) return this.search;
    const qs = new URLSearchParams();
    for (const k in this.parsedQuery) {
      const v = this.parsedQuery[k];
      if (Array.isArray(v)) for (const x of v) qs.append(k, String(x));
      else if (v !== undefined && v !== null) qs.append(k, String(v));
    }
    const s = qs.toString();
    return s ? '?' + s : '';
  }
}

/** One request's context. */
export class RequestCtx implements Ctx {
  readonly request: RequestData;
  response?: ResponseView;
  vars: Record<string, unknown> = {};
  readonly route: RouteEntry;
  readonly service?: RouteEntry['service'];
  /** Set by the server from the router's match. */
  matched?: { readonly uri: string; readonly host: string };
  consumer?: Consumer;
  upstreamHost?: string;
  /** The node that answered (access log). */
  upstreamOrigin = '';
  /** performance.now() when the request went upstream, and when the response head came back (0: not yet). */
  upstreamSentAt = 0;
  upstreamHeadAt = 0;
  /** Set before the log phase runs. */
  record?: RequestRecord;
  /** The chain in force: the route's, or its consumer's once one is known. */
  chain: Chain;
  /** The plugin currently running: tags its log lines. */
  plugin = '';
  /** Bytes of request body this request may stream upstream (0: no cap of its own); see limitRequestBody. */
  bodyLimit = 0;
  /** The gateway's first TLS listener's port (downstream.https_port). */
  httpsPort: number | undefined = undefined;
  upstreamAttempts?: UpstreamAttempts;
  private logger?: PluginLogger;

  readonly snapshot: Snapshot;
  readonly entry: RouteEntry;
  readonly raw: IncomingMessage;
  constructor(snapshot: Snapshot, entry: RouteEntry, raw: IncomingMessage, request: RequestData) {
    this.snapshot = snapshot;
    this.entry = entry;
    this.raw = raw;
    this.request = request;
    request.raw = raw;
    request.trusted = snapshot.trustedProxies;
    this.route = entry;
    this.chain = entry.chain;
    this.service = entry.service;
  }

  get log(): PluginLogger {
    return (this.logger ??= {
      info: (msg, f) => log('info', msg, { route: this.route.id, plugin: this.plugin, ...f }),
      warn: (msg, f) => log('warn', msg, { route: this.route.id, plugin: this.plugin, ...f }),
      error: (msg, f) => log('error', msg, { route: this.route.id, plugin: this.plugin, ...f }),
    });
  }

  findConsumer(plugin: string, key: string): Consumer | undefined {
    return this.snapshot.consumers.get(plugin)?.get(key)?.consumer;
  }

  setClientAddress(ip: string): boolean {
    return this.request.setClientIp(ip);
  }

  limitRequestBody(bytes: number): Reply | undefined {
    if (!(bytes > 0)) return undefined;
    this.bodyLimit = this.bodyLimit > 0 ? Math.min(this.bodyLimit, bytes) : bytes;
    const body = this.request.body;
    const declared = Number(this.raw.headers['content-length']);
    if ((body !== undefined ? body.length : declared) > this.bodyLimit) return bodyTooLargeReply(this.bodyLimit);
    return undefined;
  }

  findCredential<T = unknown>(plugin: string, key: string): Credential<T> | undefined {
    return this.snapshot.consumers.get(plugin)?.get(key) as Credential<T> | undefined;
  }

  get downstream(): Downstream {
    const sock = this.raw.socket;
    const host = this.raw.headers.host;
    return {
      scheme: this.request.scheme,
      host: host ? hostWithoutPort(host) : sock.localAddress ?? '',
      port: sock.localPort ?? 0,
      request_uri: this.raw.url ?? '/',
      server_addr: sock.localAddress ?? '',
      remote_addr: sock.remoteAddress ?? '',
      remote_port: sock.remotePort ?? 0,
      https_port: this.httpsPort,
    };
  }
}

/** The error a body past its cap ends with (streamed: thrown by the proxy; declared: a reply). */
export function bodyTooLarge(limit: number): GatewayError {
  return new GatewayError('GW_ERR_BODY_TOO_LARGE', `request body is larger than ${limit} bytes`);
}

function bodyTooLargeReply(limit: number): Reply {
  return { status: 413, headers: { 'content-type': 'application/json' }, body: publicBody(bodyTooLarge(limit)) };
}

/** TLS, or what a trusted proxy says in X-Forwarded-Proto (as received: before any plugin's edits). */
function schemeOf(raw: IncomingMessage | undefined, trusted: ((ip: string) => boolean) | undefined): 'http' | 'https' {
  if (!raw || !trusted) return 'http';
  if ((raw.socket as TLSSocket).encrypted) return 'https';
  if (!trusted(raw.socket.remoteAddress ?? '')) return 'http';
  const h = raw.rawHeaders;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i].toLowerCase() !== 'x-forwarded-proto') continue;
    // A chain of proxies may list several; the first is what the client used.
    return h[i + 1].split(',')[0].trim().toLowerCase() === 'https' ? 'https' : 'http';
  }
  return 'http';
}

/** `Example.com:8080` → `example.com`, `[::1]:80` → `[::1]`. */
function hostWithoutPort(host: string): string {
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':');
  return (end > 0 ? host.slice(0, end) : host).toLowerCase();
}
