/**
 * Forward authentication: each request is first described to an external
 * authorization service (method, host, URI, client address as X-Forwarded-*
 * headers, plus the headers you list). A 2xx answer lets the request go on,
 * carrying the `upstream_headers` the service set; any other answer is
 * relayed to the client (status, body, `client_headers`). When the service
 * cannot be reached or is too slow: `status_on_error` (403), unless
 * `allow_degradation` lets the request through.
 *
 * ```yaml
 * routes:
 *   - id: app
 *     uri: /app/*
 *     plugins:
 *       forward-auth:
 *         uri: http://127.0.0.1:9999/auth
 *         request_headers: [Authorization]
 *         upstream_headers: [X-User-ID]
 *         client_headers: [Location]
 * ```
 */
import type { Dispatcher } from 'undici';
import schema from '../schemas/forward-auth.json' with { type: 'json' };
import { compileTemplate, definePlugin, HEADER_FORMATS, renderTemplate, type Ctx, type Reply } from '../src/plugin.ts';
import { callError, poolFor, readCapped } from './http/pools.ts';

interface Conf {
  uri: string; request_method: 'GET' | 'POST'; max_req_body_size: number; request_headers: string[];
  extra_headers?: Record<string, string>; upstream_headers: string[]; client_headers: string[];
  timeout: number; keepalive: boolean; keepalive_timeout: number; keepalive_pool: number;
  ssl_verify: boolean; allow_degradation: boolean; status_on_error: number;
}
interface State {
  /** The pool behind a closure: the snapshot is deep-frozen, a pool must not be. */
  call: (o: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>; path: string; method: 'GET' | 'POST'; bodyLimit: number; timeout: number; reset: boolean;
  request: readonly string[]; extra: readonly [string, (ctx: Ctx) => string][];
  upstream: readonly string[]; client: readonly string[]; degrade: boolean; onError: Reply;
}

/** Headers the gateway frames itself or sets for the service: never copied from the client. */
const RESERVED = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'expect', 'te', 'trailer', 'proxy-connection', 'x-forwarded-proto', 'x-forwarded-method', 'x-forwarded-host', 'x-forwarded-uri', 'x-forwarded-for']);
/** Largest answer body relayed from the service to a refused client. */
const MAX_DENY_BODY = 1 << 20;
/** What a header value may hold (RFC 9110 field-value): anything else would let a variable inject a header. */
const validValue = HEADER_FORMATS['header-value'].test;

const lower = (l: readonly string[]) => Object.freeze(l.map((h) => h.toLowerCase()));

/** The headers of the call to the service; undefined when a resolved extra header is not a valid value. */
function authHeaders(s: State, ctx: Ctx): Record<string, string | string[]> | undefined {
  const req = ctx.request;
  const down = ctx.downstream;
  const h: Record<string, string | string[]> = {
    'x-forwarded-proto': down.scheme,
    'x-forwarded-method': req.method,
    'x-forwarded-host': down.host,
    'x-forwarded-uri': down.request_uri,
    'x-forwarded-for': req.client_ip,
  };
  if (s.method === 'POST') { const ce = req.headers['content-encoding']; if (ce) h['content-encoding'] = ce; }
  for (const [name, value] of s.extra) {
    const v = value(ctx);
    if (!validValue(v)) return undefined;
    h[name] = v;
  }
  for (const name of s.request) { const v = req.headers[name]; if (v !== undefined && h[name] === undefined) h[name] = v; }
  return h;
}

async function ask(s: State, ctx: Ctx): Promise<Reply | undefined> {
  const headers = authHeaders(s, ctx);
  if (!headers) {
    ctx.log.warn('forward-auth: an extra_headers value resolved to characters a header cannot carry');
    return s.onError;
  }
  let res: Dispatcher.ResponseData;
  try {
    res = await s.call({
      path: s.path, method: s.method, headers, reset: s.reset,
      body: s.method === 'POST' ? ctx.request.body ?? '' : undefined,
      signal: AbortSignal.timeout(s.timeout),
    });
  } catch (err) {
    ctx.log.warn('forward-auth: the authorization service failed', { error: callError(err) });
    if (!s.degrade) return s.onError;
    // Let through without the service's word: nothing a client sent may pass for it.
    for (const name of s.upstream) delete ctx.request.headers[name];
    return undefined;
  }
  if (res.statusCode >= 200 && res.statusCode < 300) {
    await res.body.dump({ limit: MAX_DENY_BODY }).catch(() => undefined);
    // APISIX: a listed header the service did not send is removed, so the client cannot supply it.
    for (const name of s.upstream) {
      const v = res.headers[name];
      if (v === undefined) delete ctx.request.headers[name];
      else ctx.request.headers[name] = v;
    }
    return undefined;
  }
  const body = await readCapped(res.body, MAX_DENY_BODY).catch(() => undefined);
  const out: Record<string, string | string[]> = {};
  for (const name of s.client) { const v = res.headers[name]; if (v !== undefined) out[name] = v; }
  // Only a real answer is relayed; 1xx or a status our host cannot send is a failure, closed.
  if (res.statusCode < 200 || res.statusCode > 599) return s.onError;
  return { status: res.statusCode, headers: out, body: body ?? '' };
}

/**
 * An extra_headers value compiled once: `$var` by the one variable list, an
 * unknown variable read as '' (APISIX's resolve_var).
 */
function extraHeader(value: string): (ctx: Ctx) => string {
  const t = compileTemplate(value, false, true);
  if (t.every((p) => typeof p === 'string')) { const fixed = t.join(''); return () => fixed; }
  return (ctx) => renderTemplate(t, ctx).text;
}

export default definePlugin<Conf, State>({
  name: 'forward-auth',
  version: '1.0.0',
  priority: 2002,
  schema,
  check(conf) {
    const bad = conf.request_headers.find((h) => RESERVED.has(h.toLowerCase()));
    if (bad) return `request_headers: "${bad}" cannot be sent to the authorization service (the gateway sets framing, Host and X-Forwarded-*)`;
    try { new URL(conf.uri); } catch { return `uri "${conf.uri}" is not a valid URL`; }
    return undefined;
  },
  init(conf) {
    const u = new URL(conf.uri);
    const pool = poolFor(conf.uri, { keepaliveTimeout: conf.keepalive_timeout, timeout: conf.timeout, sslVerify: conf.ssl_verify });
    return {
      call: (o) => pool.request(o),
      path: u.pathname + u.search, method: conf.request_method, bodyLimit: conf.max_req_body_size, timeout: conf.timeout,
      reset: !conf.keepalive, request: lower(conf.request_headers),
      extra: Object.entries(conf.extra_headers ?? {}).map(([k, v]) => [k.toLowerCase(), extraHeader(v)] as [string, (ctx: Ctx) => string]),
      upstream: lower(conf.upstream_headers), client: lower(conf.client_headers), degrade: conf.allow_degradation,
      onError: { status: conf.status_on_error },
    };
  },
  requestBody: (s) => (s.method === 'POST' ? s.bodyLimit : 0),
  phases: { access: ask },
});
