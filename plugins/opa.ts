/**
 * Open Policy Agent: each request is described to OPA's data API
 * (`POST {host}/v1/data/{policy}` with APISIX's input document) and goes on
 * only when the decision allows it. A decision is `true`/`false` or an
 * object `{ allow, reason, status_code, headers }`. Fails closed: OPA down or
 * slow → 403; an answer that is not a decision → 503.
 *
 * ```yaml
 * routes:
 *   - id: orders
 *     uri: /orders/*
 *     plugins:
 *       opa:
 *         host: http://127.0.0.1:8181
 *         policy: example
 *         with_route: true
 *         send_headers_upstream: [X-User]
 * ```
 */
import type { Dispatcher } from 'undici';
import schema from '../schemas/opa.json' with { type: 'json' };
import { definePlugin, HEADER_FORMATS, type Ctx, type Reply } from '../src/plugin.ts';
import { callError, poolFor, readCapped } from './http/pools.ts';
import { buildInput, type InputOptions } from './opa/input.ts';

interface Conf {
  host: string; policy: string; timeout: number; keepalive: boolean; keepalive_timeout: number; keepalive_pool: number;
  ssl_verify: boolean; send_headers_upstream?: string[]; with_route: boolean; with_service: boolean; with_consumer: boolean;
}
interface State {
  /** The pool behind a closure: the snapshot is deep-frozen, a pool must not be. */
  call: (o: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;
  path: string; timeout: number; reset: boolean; input: InputOptions; upstream?: readonly string[];
}

/** Largest decision read from OPA; a larger answer is not a decision. */
const MAX_ANSWER = 1 << 20;
const UNAVAILABLE: Reply = Object.freeze({ status: 403 });
const INVALID: Reply = Object.freeze({ status: 503 });
const validName = HEADER_FORMATS['header-name'].test;
const validValue = HEADER_FORMATS['header-value'].test;
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer']);

/** A decision's `headers`, lower-cased, keeping only names and values a header can carry. */
function decisionHeaders(h: unknown, ctx: Ctx): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h || typeof h !== 'object' || Array.isArray(h)) return out;
  for (const [k, v] of Object.entries(h)) {
    const value = typeof v === 'number' ? String(v) : v;
    if (validName(k) && !FRAMING.has(k.toLowerCase()) && typeof value === 'string' && validValue(value)) out[k.toLowerCase()] = value;
    else ctx.log.warn('opa: a decision header was dropped (not a valid header)', { header: k.slice(0, 64) });
  }
  return out;
}

/** Turns OPA's answer into the request's fate: undefined lets it go on. */
function decide(s: State, ctx: Ctx, data: unknown): Reply | undefined {
  const result = data && typeof data === 'object' ? (data as { result?: unknown }).result : undefined;
  if (result === true) return undefined;
  if (result === false) return UNAVAILABLE;
  if (!result || typeof result !== 'object' || Array.isArray(result)) {
    ctx.log.error('opa: invalid decision format: `result` field does not exist or is not a decision');
    return INVALID;
  }
  const r = result as { allow?: unknown; reason?: unknown; status_code?: unknown; headers?: unknown };
  const headers = decisionHeaders(r.headers, ctx);
  // Only `allow: true` allows: a string, number or anything else a policy returns by mistake refuses.
  if (r.allow === true) {
    for (const name of s.upstream ?? []) {
      const v = headers[name];
      if (v === undefined) delete ctx.request.headers[name];
      else ctx.request.headers[name] = v;
    }
    return undefined;
  }
  let status = 403;
  if (r.status_code !== undefined) {
    if (!Number.isInteger(r.status_code) || (r.status_code as number) < 200 || (r.status_code as number) > 599) {
      ctx.log.error('opa: invalid decision: status_code is not an HTTP status');
      return INVALID;
    }
    status = r.status_code as number;
  }
  const reason = r.reason === undefined || r.reason === null ? undefined : typeof r.reason === 'string' ? r.reason : JSON.stringify(r.reason);
  return reason === undefined ? { status, headers } : { status, headers, body: reason };
}

async function access(s: State, ctx: Ctx): Promise<Reply | undefined> {
  let res: Dispatcher.ResponseData;
  try {
    res = await s.call({
      path: s.path, method: 'POST', reset: s.reset,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(buildInput(s.input, ctx)),
      signal: AbortSignal.timeout(s.timeout),
    });
  } catch (err) {
    ctx.log.error('opa: failed to process OPA decision', { error: callError(err) });
    return UNAVAILABLE;
  }
  let data: unknown;
  try {
    const body = await readCapped(res.body, MAX_ANSWER);
    if (!body) throw new Error(`answer larger than ${MAX_ANSWER} bytes`);
    data = JSON.parse(body.toString('utf8'));
  } catch (err) {
    ctx.log.error('opa: invalid response body', { status: res.statusCode, error: callError(err) });
    return INVALID;
  }
  return decide(s, ctx, data);
}

export default definePlugin<Conf, State>({
  name: 'opa',
  version: '1.0.0',
  priority: 2001,
  schema,
  check(conf) {
    try { new URL(`${conf.host.replace(/\/+$/, '')}/v1/data/${conf.policy}`); } catch { return `host "${conf.host}" is not a valid URL`; }
    return undefined;
  },
  init(conf) {
    const url = new URL(`${conf.host.replace(/\/+$/, '')}/v1/data/${conf.policy}`);
    const pool = poolFor(url.href, { keepaliveTimeout: conf.keepalive_timeout, timeout: conf.timeout, sslVerify: conf.ssl_verify });
    return {
      call: (o) => pool.request(o),
      path: url.pathname, timeout: conf.timeout, reset: !conf.keepalive,
      input: { withRoute: conf.with_route, withService: conf.with_service, withConsumer: conf.with_consumer },
      upstream: conf.send_headers_upstream?.map((h) => h.toLowerCase()),
    };
  },
  phases: { access },
});
