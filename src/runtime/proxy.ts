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

/** How the caller takes a response body. */
export type BodyMode = 'stream' | 'buffer' | 'discard';

/** Where forward() delivers the response. */
export interface ResponseSink {
  /** The response head; the answer says how the body is delivered (a promise pauses the upstream meanwhile). */
  head(status: number, headers: OutgoingHttpHeaders, node: UpstreamNode): BodyMode | Promise<BodyMode>;
  /** stream mode: a chunk; false when the client cannot take more now. */
  data(chunk: Buffer): boolean;
  /** stream mode, after data() returned false: call `resume` when the client can take more. */
  drain(resume: () => void): void;
  /** The body is complete; in buffer mode, all of it. */
  end(body: Buffer | undefined): void;
  /** The exchange failed; `afterHead` when head() had been called. */
  fail(err: unknown, afterHead: boolean): void;
}

/** What forward() needs of the client side: undici-style abort signalling. */
export interface ClientSignal {
  readonly aborted: boolean;
  once(event: 'abort', fn: () => void): unknown;
  removeListener(event: 'abort', fn: () => void): unknown;
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

function upstreamError(err: unknown, node: UpstreamNode, up: UpstreamEntry): GatewayError {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError('GW_ERR_UPSTREAM_TIMEOUT', `upstream ${node.origin} did not answer within ${up.timeout.read / 1000}s`, { cause: err });
  }
  return new GatewayError('GW_ERR_UPSTREAM_UNAVAILABLE', `upstream ${node.origin} failed: ${code || (err as Error).message}`, { cause: err });
}

/**
 * Sends the request upstream with undici's dispatch API (no stream objects, no
 * promise per request: measured 25% faster than request() + pipe) and hands the
 * response to `sink`. Connection failures are retried on another node before
 * any response arrived, for idempotent requests whose body was not streamed.
 */
export function forward(pools: UpstreamPools, ctx: RequestCtx, up: UpstreamEntry, headers: Record<string, string | string[]>, gone: ClientSignal, sink: ResponseSink): void {
  const req = ctx.raw;
  const buffered = ctx.request.body;
  const streamed = buffered === undefined && hasBody(req);
  const body = buffered ?? (streamed ? req : null);
  if (buffered !== undefined) headers['content-length'] = String(buffered.length);
  const method = ctx.request.method;
  const mayRetry = !streamed && (IDEMPOTENT.has(method) || up.retryNonIdempotent);
  const path = ctx.request.target();
  // Only a consistent-hash balancer reads a key.
  const key = up.hashOn === undefined ? undefined : hashKey(ctx, up);
  let tried: Set<UpstreamNode> | undefined;
  let attempt = 0;

  const start = (): void => {
    let node = up.balancer.pick(key, tried);
    if (node && up.passive && pools.ejected(node)) node = pickHealthy(pools, up, key, tried, node);
    if (!node) {
      sink.fail(new GatewayError('GW_ERR_UPSTREAM_UNAVAILABLE', `no upstream node is available for route "${ctx.route.id}"`), false);
      return;
    }
    const target = node;
    if (up.passHost === 'node') headers.host = target.hostHeader;
    else if (ctx.upstreamHost !== undefined) headers.host = ctx.upstreamHost;
    else if (up.passHost === 'rewrite' && up.upstreamHost) headers.host = up.upstreamHost;
    else if (typeof ctx.request.headers.host === 'string') headers.host = ctx.request.headers.host;

    let controller: Dispatcher.DispatchController | undefined;
    let headSeen = false;
    let settled = false;
    let mode: BodyMode = 'stream';
    let chunks: Buffer[] | undefined;
    /** Chunks that arrive while an async head() decides. */
    let held: Buffer[] | undefined;
    let endedWhileHeld = false;
    const onGone = () => controller?.abort(new Error('client went away'));
    const settle = () => {
      settled = true;
      gone.removeListener('abort', onGone);
      up.balancer.release(target);
    };
    const deliver = (c: Dispatcher.DispatchController, chunk: Buffer) => {
      if (mode === 'stream') {
        if (!sink.data(chunk) && !c.paused) { c.pause(); sink.drain(() => c.resume()); }
      } else if (mode === 'buffer') chunks!.push(chunk);
    };
    const complete = () => {
      settle();
      sink.end(mode === 'buffer' ? Buffer.concat(chunks!) : undefined);
    };
    const abortWith = (c: Dispatcher.DispatchController, err: unknown) => {
      if (settled) return;
      settle();
      c.abort(err instanceof Error ? err : new Error(String(err)));
      sink.fail(err, true);
    };
    gone.once('abort', onGone);
    up.balancer.acquire(target);
    try {
      pools.get(target, up).dispatch({ path, method: method as Dispatcher.HttpMethod, headers, body, headersTimeout: up.timeout.read, bodyTimeout: up.timeout.read }, {
        onRequestStart(c) {
          controller = c;
          if (gone.aborted) c.abort(new Error('client went away'));
        },
        onResponseStart(c, status, h) {
          headSeen = true;
          pools.record(target, up, status);
          let decision: BodyMode | Promise<BodyMode>;
          try {
            decision = sink.head(status, h as OutgoingHttpHeaders, target);
          } catch (err) {
            abortWith(c, err);
            return;
          }
          if (typeof decision === 'string') {
            mode = decision;
            if (mode === 'buffer') chunks = [];
            return;
          }
          held = [];
          c.pause();
          decision.then((m) => {
            mode = m;
            if (mode === 'buffer') chunks = [];
            const queued = held!;
            held = undefined;
            for (const chunk of queued) deliver(c, chunk);
            if (endedWhileHeld) complete();
            else c.resume();
          }, (err) => abortWith(c, err));
        },
        onResponseData(c, chunk) {
          if (held) held.push(chunk);
          else deliver(c, chunk);
        },
        onResponseEnd() {
          if (settled) return;
          if (held) endedWhileHeld = true;
          else complete();
        },
        onResponseError(_c, err) {
          if (settled) return;
          settle();
          if (gone.aborted) return; // the client left: nobody to answer
          const code = (err as { code?: string }).code ?? '';
          if (!headSeen) {
            const connectFailure = CONNECT_ERRORS.has(code);
            if (connectFailure || code === 'UND_ERR_HEADERS_TIMEOUT') pools.record(target, up, 0);
            if (connectFailure && mayRetry && attempt < up.retries && up.nodes.length > 1) {
              attempt++;
              (tried ??= new Set()).add(target);
              log('warn', 'upstream node failed, retrying on another', { route: ctx.route.id, upstream: target.origin, error: code });
              start();
              return;
            }
          }
          sink.fail(upstreamError(err, target, up), headSeen);
        },
      });
    } catch (err) {
      // dispatch() refuses some requests synchronously (a header value it cannot send, say).
      if (!settled) { settle(); sink.fail(upstreamError(err, target, up), false); }
    }
  };
  start();
}
