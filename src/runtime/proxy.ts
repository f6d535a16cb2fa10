/**
 * Forwarding to upstream nodes with undici: one keep-alive pool per node,
 * bodies streamed both ways, retries on another node for connection failures.
 */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { GatewayError } from '../errors.ts';
import { log } from '../log.ts';
import type { UpstreamEntry, UpstreamNode } from '../snapshot.ts';
import type { RequestCtx } from './context.ts';

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus those undici refuses to forward. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'expect', 'host']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'EPIPE']);

export interface UpstreamResponse {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
  node: UpstreamNode;
}

/** Copies headers without hop-by-hop ones (and those the Connection header names). */
export function stripHopByHop(headers: Record<string, string | string[] | number | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const conn = headers.connection;
  const named = typeof conn === 'string' && conn !== 'keep-alive' && conn !== 'close' ? new Set(conn.toLowerCase().split(',').map((s) => s.trim())) : undefined;
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined || HOP_BY_HOP.has(k) || named?.has(k)) continue;
    out[k] = typeof v === 'number' ? String(v) : v;
  }
  return out;
}

/** What passive checks know of one node; kept by origin, so it survives reloads. */
interface NodeHealth { tcpFails: number; httpFails: number; ejectedUntil: number }

/** The pools to upstream nodes, and their health, shared across config snapshots by origin. */
export class UpstreamPools {
  private pools = new Map<string, Pool>();
  private health = new Map<string, NodeHealth>();

  /** True while passive checks keep `node` out of rotation. */
  ejected(node: UpstreamNode): boolean {
    const h = this.health.get(node.origin);
    return h !== undefined && h.ejectedUntil > Date.now();
  }

  /** Records the outcome of a request to `node`: a status, or a connection failure/timeout (0). */
  record(node: UpstreamNode, up: UpstreamEntry, status: number): void {
    const check = up.passive;
    if (!check) return;
    let h = this.health.get(node.origin);
    if (!h) this.health.set(node.origin, (h = { tcpFails: 0, httpFails: 0, ejectedUntil: 0 }));
    if (status === 0) h.tcpFails++;
    else if (check.httpStatuses.has(status)) h.httpFails++;
    else { h.tcpFails = 0; h.httpFails = 0; return; }
    if (h.tcpFails >= check.tcpFailures || h.httpFails >= check.httpFailures) {
      h.ejectedUntil = Date.now() + check.ejectionMs;
      h.tcpFails = 0;
      h.httpFails = 0;
      log('warn', 'upstream node ejected by passive health check', { upstream: up.id, node: node.origin, seconds: check.ejectionMs / 1000 });
    }
  }

  get(node: UpstreamNode, upstream: UpstreamEntry): Pool {
    let pool = this.pools.get(node.origin);
    if (!pool) {
      pool = new Pool(node.origin, {
        connections: upstream.keepalive.size,
        keepAliveTimeout: upstream.keepalive.idleMs,
        keepAliveMaxTimeout: Math.max(upstream.keepalive.idleMs, 1000),
        connect: { timeout: upstream.timeout.connect },
        pipelining: 1,
      });
      this.pools.set(node.origin, pool);
    }
    return pool;
  }

  /** Keeps pools of `origins`; closes the others once their requests finish. */
  retain(origins: ReadonlySet<string>): void {
    for (const [origin, pool] of this.pools) {
      if (origins.has(origin)) continue;
      this.pools.delete(origin);
      this.health.delete(origin);
      pool.close().catch(() => {});
    }
  }

  /** Number of pools kept (status and tests). */
  get size(): number { return this.pools.size; }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => {})));
  }
}

function hashKey(ctx: RequestCtx, up: UpstreamEntry): string | undefined {
  const req = ctx.request;
  switch (up.hashOn) {
    case 'header': { const v = req.headers[up.hashKey.toLowerCase()]; return Array.isArray(v) ? v[0] : v; }
    case 'cookie': {
      const c = req.headers.cookie;
      const m = c && up.cookie!.exec(c);
      return m ? m[1] : undefined;
    }
    case 'consumer': return ctx.consumer?.username;
    default:
      if (up.hashKey === 'remote_addr') return req.client_ip;
      if (up.hashKey === 'uri') return req.path;
      if (up.hashKey === 'host') return req.headers.host;
      if (up.hashKey.startsWith('arg_')) { const v = req.query[up.hashKey.slice(4)]; return Array.isArray(v) ? v[0] : v; }
      if (up.hashKey.startsWith('http_')) { const v = req.headers[up.hashKey.slice(5).replace(/_/g, '-')]; return Array.isArray(v) ? v[0] : v; }
      return undefined;
  }
}

/** Another node than an ejected `first`; `first` itself when every node is ejected (better than none). */
function pickHealthy(pools: UpstreamPools, up: UpstreamEntry, key: string | undefined, tried: Set<UpstreamNode> | undefined, first: UpstreamNode): UpstreamNode {
  const skip = new Set(tried);
  for (let n: UpstreamNode | undefined = first; n; n = up.balancer.pick(key, skip)) {
    if (!pools.ejected(n)) return n;
    skip.add(n);
  }
  return first;
}

function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * Sends the request upstream and resolves with the response head; the caller
 * streams or buffers the body. Rejects with a GatewayError (502/504).
 */
export async function forward(pools: UpstreamPools, ctx: RequestCtx, up: UpstreamEntry, headers: Record<string, string | string[]>, signal: import('node:events').EventEmitter & { aborted: boolean }): Promise<UpstreamResponse> {
  const req = ctx.raw;
  const buffered = ctx.request.body;
  const streamed = buffered === undefined && hasBody(req);
  const body = buffered ?? (streamed ? req : null);
  if (buffered !== undefined) {
    headers['content-length'] = String(buffered.length);
  }
  const method = ctx.request.method;
  const mayRetry = !streamed && (IDEMPOTENT.has(method) || up.retryNonIdempotent);
  const path = ctx.request.target();
  // Only a consistent-hash balancer reads a key.
  const key = up.hashOn === undefined ? undefined : hashKey(ctx, up);
  let tried: Set<UpstreamNode> | undefined;
  for (let attempt = 0; ; attempt++) {
    let node = up.balancer.pick(key, tried);
    if (node && up.passive && pools.ejected(node)) node = pickHealthy(pools, up, key, tried, node);
    if (!node) throw new GatewayError('GW_ERR_UPSTREAM_UNAVAILABLE', `no upstream node is available for route "${ctx.route.id}"`);
    if (up.passHost === 'node') headers.host = node.hostHeader;
    else if (ctx.upstreamHost !== undefined) headers.host = ctx.upstreamHost;
    else if (up.passHost === 'rewrite' && up.upstreamHost) headers.host = up.upstreamHost;
    else if (typeof ctx.request.headers.host === 'string') headers.host = ctx.request.headers.host;
    up.balancer.acquire(node);
    try {
      const res = await pools.get(node, up).request({
        path, method, headers, body, signal,
        headersTimeout: up.timeout.read, bodyTimeout: up.timeout.read,
      });
      pools.record(node, up, res.statusCode);
      return { status: res.statusCode, headers: res.headers as OutgoingHttpHeaders, body: res.body, node };
    } catch (err) {
      if (signal.aborted) throw err;
      const code = (err as { code?: string }).code ?? '';
      if (CONNECT_ERRORS.has(code) || code === 'UND_ERR_HEADERS_TIMEOUT') pools.record(node, up, 0);
      const connectFailure = CONNECT_ERRORS.has(code);
      if (connectFailure && mayRetry && attempt < up.retries && up.nodes.length > 1) {
        (tried ??= new Set()).add(node);
        log('warn', 'upstream node failed, retrying on another', { route: ctx.route.id, upstream: node.origin, error: code });
        continue;
      }
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
        throw new GatewayError('GW_ERR_UPSTREAM_TIMEOUT', `upstream ${node.origin} did not answer within ${up.timeout.read / 1000}s`, { cause: err });
      }
      throw new GatewayError('GW_ERR_UPSTREAM_UNAVAILABLE', `upstream ${node.origin} failed: ${code || (err as Error).message}`, { cause: err });
    } finally {
      up.balancer.release(node);
    }
  }
}
