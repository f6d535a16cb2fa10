/**
 * The request path: match a route on the snapshot taken at the start of the
 * request, run the phases, proxy, write the response, log.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { GatewayError, publicBody } from '../errors.ts';
import { accessLog, log } from '../log.ts';
import type { Reply, RequestRecord, ResponseView } from '../plugin.ts';
import type { Chain, RouteEntry, Snapshot, UpstreamNode } from '../snapshot.ts';
import { RequestCtx, RequestData } from './context.ts';
import { clientAddress, clientForwarding, forwardedHeaders, readTarget, type ClientForwarding } from './edge.ts';
import { closeIfUnread, readBody, watchBody } from './client-body.ts';
import { checkStatus, cleanHeaders } from './headers.ts';
import { normalizeRewritten } from './normalize.ts';
import { isThenable, PluginFailure, runLogPhase, runPhase, runRequestPhases } from './phases.ts';
import type { UpstreamPools } from './pools.ts';
import { forward, stripHopByHop, type BodyMode, type ClientSignal, type ResponseSink } from './proxy.ts';

/** The client's side of an upgrade request: its socket, the bytes after its head, and the tunnel once open. */
export interface Tunnel {
  readonly socket: Duplex;
  /** `websocket`: the protocol asked for. */
  readonly protocol: string;
  /** The upstream's status once switched (101), for the access log. */
  status?: number;
  /** Writes the upstream's switching head to the client and splices the two sockets; no byte either way for `idleMs` closes both. */
  open(status: number, headers: Record<string, string | string[]>, upstream: Duplex, idleMs: number): void;
}

export interface Runtime {
  /** The snapshot in force; read once per request. */
  snapshot(): Snapshot;
  readonly pools: UpstreamPools;
  onRequestDone?(status: number): void;
  /** The first TLS listener's port, once bound. */
  httpsPort?: number;
}

/** Whether the client left, and the upstream attempt to cancel when it does. */
class ClientGone implements ClientSignal {
  aborted = false;
  current: { cancel(): void } | undefined;
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.current?.cancel();
  }
}

function sendError(res: ServerResponse, err: GatewayError, requestId?: string): void {
  if (res.headersSent) { res.destroy(); return; }
  closeIfUnread(res);
  const body = publicBody(err, requestId);
  const headers: OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
  // The rest of a body past its cap is not read: the connection cannot carry another request.
  if (err.code === 'GW_ERR_BODY_TOO_LARGE') headers.connection = 'close';
  res.writeHead(err.status, headers);
  res.end(body);
}

/** A reply's body as bytes or text, and whether it was an object sent as JSON. */
export function replyBody(body: Reply['body']): { data: Buffer | string | undefined; json: boolean } {
  if (body === undefined || body === null) return { data: undefined, json: false };
  if (typeof body === 'string') return { data: body, json: false };
  if (body instanceof Uint8Array) return { data: Buffer.from(body.buffer, body.byteOffset, body.byteLength), json: false };
  return { data: JSON.stringify(body), json: true };
}

/** The `connect` listener: the gateway is no forward proxy, so CONNECT is answered 405 and the connection closed. */
export function createConnectHandler(rt: Runtime): (req: IncomingMessage, socket: Duplex) => void {
  const body = publicBody(new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', 'CONNECT is not supported: this gateway is not a forward proxy'));
  const answer = `HTTP/1.1 405 Method Not Allowed\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
  return (req, socket) => {
    socket.on('error', () => {});
    socket.end(answer);
    accessLog('', 'CONNECT', req.url ?? '', 405, '', 0, undefined);
    rt.onRequestDone?.(405);
  };
}

/** The `request` listener of the proxy server. */
export function createRequestHandler(rt: Runtime): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => serve(rt, req, res);
}

/** One request (an upgrade when `tunnel` is given); a bug in handling it is answered 500, never thrown. */
export function serve(rt: Runtime, req: IncomingMessage, res: ServerResponse, tunnel?: Tunnel): void {
  try {
    handle(rt, req, res, tunnel);
  } catch (err) {
    unexpected(res, err);
  }
}

/** A failure outside any route's handling (a bug): logged, answered 500. */
function unexpected(res: ServerResponse, err: unknown): void {
  log('error', 'request failed', { error: err });
  sendError(res, err instanceof GatewayError ? err : new GatewayError('GW_ERR_INTERNAL', 'internal error'));
}

/** Answers before any route runs (400, 404, 405): JSON body, access log, counters. */
function refuse(rt: Runtime, res: ServerResponse, err: GatewayError, method: string, path: string, started: number): void {
  sendError(res, err);
  accessLog('', method, path, err.status, '', performance.now() - started, undefined);
  rt.onRequestDone?.(err.status);
}

/**
 * Synchronous until something is not: a request whose plugins (if any) are
 * sync is routed, run and dispatched in this call, with no promise made for it.
 */
function handle(rt: Runtime, req: IncomingMessage, res: ServerResponse, tunnel?: Tunnel): void {
  const started = performance.now();
  const snap = rt.snapshot();
  const method = req.method ?? 'GET';
  const target = readTarget(req);
  if (typeof target === 'string') {
    refuse(rt, res, new GatewayError('GW_ERR_BAD_REQUEST', target), method, req.url ?? '', started);
    return;
  }
  const path = target.path;
  // A route with vars or remote_addrs is tried on the request's data, made before the route is known.
  let data: RequestData | undefined;
  let probe: RequestCtx | undefined;
  const accept = snap.router.filtered ? (r: RouteEntry) => {
    data ??= requestData(snap, req, method, path, target.search);
    return r.filter!(probe ??= new RequestCtx(snap, r, req, data));
  } : undefined;
  const match = snap.router.find(method, path, target.host, accept);
  if (!match) {
    refuse(rt, res, new GatewayError('GW_ERR_ROUTE_NOT_FOUND', `no route matches ${method} ${path}`), method, path, started);
    return;
  }
  if (tunnel && !match.route.websocket) {
    refuse(rt, res, new GatewayError('GW_ERR_ROUTE_NOT_FOUND', `route "${match.route.id}" does not take WebSocket upgrades (enable_websocket)`), method, path, started);
    return;
  }
  if (method === 'TRACE' && !match.route.allowTrace) {
    refuse(rt, res, new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', 'TRACE is not allowed on this route'), method, path, started);
    return;
  }
  if (target.escapedSlash && !match.route.allowEncodedSlashes) {
    refuse(rt, res, new GatewayError('GW_ERR_BAD_REQUEST', 'encoded slashes (%2F, %5C) are not allowed in the path of this route'), method, path, started);
    return;
  }
  const route = match.route;
  const peerTrusted = snap.trustedProxies(req.socket.remoteAddress ?? '');
  const ctx = probe?.route === route ? probe : new RequestCtx(snap, route, req, data ?? requestData(snap, req, method, path, target.search, peerTrusted));
  ctx.matched = match.matched;
  ctx.httpsPort = rt.httpsPort;
  const x = new InFlight(rt, ctx, req, res, started, tunnel, peerTrusted ? undefined : clientForwarding(req));
  // 'close' comes once per response: on(), not once(), spares a wrapper per request.
  res.on('close', () => x.closed());
  const cl = x.contentLength;
  if ((cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined) {
    watchBody(req, res, snap.limits.bodyTimeoutMs, () => x.bodyStalled(snap.limits.bodyTimeoutMs));
  }
  try {
    if (route.chain.requestBody > 0 && method !== 'GET' && method !== 'HEAD') {
      x.settle(readBody(req, route.chain.requestBody).then((body) => { ctx.request.body = body; return x.run(); }));
      return;
    }
    x.settle(x.run());
  } catch (err) {
    answerError(err, ctx, res, x.gone);
  }
}

/** What plugins see of the request; `peerTrusted` when the caller already asked. */
function requestData(snap: Snapshot, req: IncomingMessage, method: string, path: string, search: string, peerTrusted = snap.trustedProxies(req.socket.remoteAddress ?? '')): RequestData {
  return new RequestData(method, path, search, req.headers, clientAddress(req, snap.trustedProxies, peerTrusted));
}

/** One request from its route on: phases, then a reply or the upstream. Its state lives in this one object, not in closures. */
class InFlight {
  readonly gone = new ClientGone();
  /** As received, for the access log: plugins may rewrite ctx.request's. */
  readonly method: string;
  readonly path: string;
  readonly rt: Runtime;
  readonly ctx: RequestCtx;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly started: number;
  /** Content-Length as the client sent it, before any plugin ran. */
  readonly contentLength: string | undefined;
  readonly tunnel: Tunnel | undefined;
  /** Forwarding headers an untrusted client sent: not passed on. */
  readonly sentForwarding: ClientForwarding | undefined;
  constructor(rt: Runtime, ctx: RequestCtx, req: IncomingMessage, res: ServerResponse, started: number, tunnel: Tunnel | undefined, sentForwarding: ClientForwarding | undefined) {
    this.tunnel = tunnel;
    this.sentForwarding = sentForwarding;
    this.contentLength = req.headers['content-length'];
    this.rt = rt;
    this.ctx = ctx;
    this.req = req;
    this.res = res;
    this.started = started;
    this.method = ctx.request.method;
    this.path = ctx.request.path;
    this.bytesWritten0 = req.socket.bytesWritten;
    this.bytesRead0 = req.socket.bytesRead;
  }

  /** The connection's bytes read once this request's head was (for a chunked body's size). */
  readonly bytesRead0: number;

  /** The connection's bytes written before this response (keep-alive reuses it). */
  readonly bytesWritten0: number;

  /** Runs the request phases, then answers; a promise only when something was async. */
  run(): void | Promise<void> {
    const r = runRequestPhases(this.ctx);
    return isThenable<Reply | undefined>(r) ? Promise.resolve(r).then((reply) => this.answer(reply)) : this.answer(r);
  }

  /** Routes a failure of an async step to the error answer. */
  settle(p: void | Promise<void>): void {
    if (p) p.catch((err) => answerError(err, this.ctx, this.res, this.gone));
  }

  private answer(reply: Reply | undefined): void | Promise<void> {
    const { ctx, res } = this;
    const chain = ctx.chain;
    if (reply) {
      const { data, json } = replyBody(reply.body);
      const headers: OutgoingHttpHeaders = cleanHeaders(reply.headers ?? {}, 'response');
      if (json && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
      ctx.response = { status: reply.status, headers, body: data };
      const f = runPhase(chain.header_filter, ctx, false);
      return isThenable(f) ? Promise.resolve(f).then(() => writeWhole(chain, ctx, res)) : writeWhole(chain, ctx, res);
    }
    const route = ctx.entry;
    if (!route.upstream) throw new GatewayError('GW_ERR_NO_UPSTREAM', `route "${route.id}" has no upstream and no plugin answered`);
    if (ctx.request.path !== this.path) {
      const p = normalizeRewritten(ctx.request.path);
      if (p === undefined) throw new GatewayError('GW_ERR_INTERNAL', `route "${route.id}": a plugin rewrote the path to one that is not valid`);
      ctx.request.path = p;
    }
    let headers: Record<string, string | string[]>;
    if (chain.rewrite.length + chain.access.length + chain.before_proxy.length === 0) headers = stripHopByHop(ctx.request.headers);
    else {
      // Plugins may have set any name in any case: framing comes from the request as received, and
      // hop-by-hop headers (Expect, Proxy-Authorization, what the client's Connection names) go as without plugins.
      const cleaned = cleanHeaders(ctx.request.headers, 'request');
      const connection = this.req.headers.connection;
      if (connection !== undefined) cleaned.connection = connection;
      headers = stripHopByHop(cleaned);
      if (this.contentLength !== undefined) headers['content-length'] = this.contentLength;
    }
    forwardedHeaders(headers, this.req, ctx.request.client_ip, this.sentForwarding);
    ctx.upstreamSentAt = performance.now();
    forward(this.rt.pools, ctx, route.upstream, headers, this.gone, new ProxySink(chain, ctx, res, this.gone, this.tunnel), this.tunnel?.protocol);
  }

  /** client_body_timeout passed with no body byte: 408 (or a cut connection after the head), and the upstream attempt ends. */
  bodyStalled(ms: number): void {
    log('warn', 'client stopped sending the request body', { route: this.ctx.route.id, seconds: ms / 1000 });
    sendError(this.res, new GatewayError('GW_ERR_CLIENT_TIMEOUT', `no request body bytes for ${ms / 1000}s`), this.ctx.vars.request_id as string | undefined);
    this.gone.abort();
  }

  /** The response is done or the client left: log phase, access log, counters. */
  closed(): void {
    const { ctx, res } = this;
    if (!res.writableFinished) this.gone.abort();
    const status = this.tunnel?.status ?? (res.writableFinished ? res.statusCode : 499);
    if (ctx.chain.log.length) ctx.record = exchangeRecord(this, status);
    runLogPhase(ctx);
    accessLog(ctx.route.id, this.method, this.path, status, ctx.upstreamOrigin, performance.now() - this.started, ctx.vars.request_id as string | undefined, ctx.request.client_ip);
    this.rt.onRequestDone?.(status);
  }
}

/** What the log phase is told of this exchange. */
function exchangeRecord(x: InFlight, status: number): RequestRecord {
  const { ctx, started } = x;
  const latency = performance.now() - started;
  return {
    start_time: Date.now() - latency,
    latency,
    upstream_latency: ctx.upstreamHeadAt > 0 ? ctx.upstreamHeadAt - ctx.upstreamSentAt : undefined,
    upstream: ctx.upstreamOrigin ? ctx.upstreamOrigin.slice(ctx.upstreamOrigin.indexOf('//') + 2) : undefined,
    status,
    response_size: x.req.socket.bytesWritten - x.bytesWritten0,
    request_size: requestSize(x),
  };
}

/**
 * The request's head as received (request line, `name: value` lines) plus its
 * body: the declared Content-Length, or for a chunked body the bytes read
 * from the connection after the head arrived.
 */
function requestSize(x: InFlight): number {
  const req = x.req;
  let n = req.method!.length + (req.url?.length ?? 0) + 12 + 2;
  const h = req.rawHeaders;
  for (let i = 0; i < h.length; i += 2) n += h[i].length + h[i + 1].length + 4;
  if (req.headers['transfer-encoding'] !== undefined) return n + req.socket.bytesRead - x.bytesRead0;
  const cl = Number(x.contentLength ?? 0);
  return n + (Number.isFinite(cl) ? cl : 0);
}

/** Answers a failure of the phases or the proxy: logged with route and plugin, a JSON body for the client. */
function answerError(err: unknown, ctx: RequestCtx, res: ServerResponse, gone: ClientGone): void {
  if (gone.aborted) return;
  const requestId = ctx.vars.request_id as string | undefined;
  if (err instanceof PluginFailure) {
    log('error', 'plugin failed', { route: ctx.route.id, plugin: err.plugin, error: err.error });
    sendError(res, err.error instanceof GatewayError ? err.error : new GatewayError('GW_ERR_PLUGIN_FAILED', err.message), requestId);
    return;
  }
  if (err instanceof GatewayError) {
    if (err.status >= 500) log('error', err.message, { route: ctx.route.id, code: err.code });
    sendError(res, err, requestId);
    return;
  }
  log('error', 'request failed', { route: ctx.route.id, error: err });
  sendError(res, new GatewayError('GW_ERR_INTERNAL', 'internal error'), requestId);
}

/**
 * Writes the upstream's response. With no plugin on the response, chunks go
 * straight from undici to the client; otherwise header_filter runs on the head,
 * then the body streams, or is buffered for body_filter, or is dropped when a
 * plugin replaced it. A class: one per request, no closures.
 */
class ProxySink implements ResponseSink {
  readonly chain: Chain;
  readonly ctx: RequestCtx;
  readonly res: ServerResponse;
  readonly gone: ClientGone;
  /** The upstream's Content-Length: a streamed body keeps it whatever header_filter did. */
  length: string | undefined;
  readonly tunnel: Tunnel | undefined;
  constructor(chain: Chain, ctx: RequestCtx, res: ServerResponse, gone: ClientGone, tunnel?: Tunnel) {
    this.tunnel = tunnel;
    this.chain = chain;
    this.ctx = ctx;
    this.res = res;
    this.gone = gone;
  }

  upgrade(status: number, headers: Record<string, string | string[]>, upstream: Duplex, node: UpstreamNode, idleMs: number): void {
    this.ctx.upstreamOrigin = node.origin;
    if (!this.tunnel || this.res.headersSent) { upstream.destroy(); return; }
    this.tunnel.status = status;
    this.tunnel.open(status, headers, upstream, idleMs);
  }

  info(status: number, h: OutgoingHttpHeaders): void {
    // Early hints are worth passing on; other 1xx mean nothing to the client.
    if (status !== 103 || this.res.headersSent || (this.ctx.raw.httpVersionMajor === 1 && this.ctx.raw.httpVersionMinor === 0)) return;
    const hints: Record<string, string | string[]> = {};
    for (const k in h) {
      const v = h[k];
      if (typeof v === 'string' || Array.isArray(v)) hints[k] = v;
    }
    if (hints.link !== undefined) this.res.writeEarlyHints(hints);
  }

  head(status: number, h: OutgoingHttpHeaders, node: UpstreamNode): BodyMode | Promise<BodyMode> {
    const { ctx, chain, res } = this;
    ctx.upstreamOrigin = node.origin;
    ctx.upstreamHeadAt = performance.now();
    const response: ResponseView = { status, headers: stripHopByHop(h) };
    ctx.response = response;
    if (chain.header_filter.length === 0 && !chain.bufferResponse) {
      res.writeHead(status, response.headers);
      return 'stream';
    }
    this.length = response.headers['content-length'] as string | undefined;
    const r = runPhase(chain.header_filter, ctx, false);
    return isThenable(r) ? Promise.resolve(r).then(() => this.decide()) : this.decide();
  }

  private decide(): BodyMode {
    const response = this.ctx.response!;
    if (response.body !== undefined) return 'discard';
    if (this.chain.bufferResponse) return 'buffer';
    const headers = cleanHeaders(response.headers, 'response');
    if (this.length !== undefined) headers['content-length'] = this.length;
    this.res.writeHead(checkStatus(response.status), headers);
    return 'stream';
  }

  data(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  drain(resume: () => void): void {
    this.res.once('drain', resume);
  }

  end(body: Buffer | undefined): void {
    const { ctx, res } = this;
    if (res.headersSent) { res.end(); return; }
    if (body !== undefined) ctx.response!.body = body;
    try {
      const w = writeWhole(this.chain, ctx, res);
      if (w) w.catch((err) => this.fail(err, false));
    } catch (err) {
      this.fail(err, false);
    }
  }

  fail(err: unknown, afterHead: boolean): void {
    if (afterHead && this.res.headersSent) { this.res.destroy(); return; }
    answerError(err, this.ctx, this.res, this.gone);
  }
}

/** body_filter (when a plugin needs the body), then writes the whole response with its length. */
function writeWhole(chain: Chain, ctx: RequestCtx, res: ServerResponse): void | Promise<void> {
  const response = ctx.response!;
  if (chain.bufferResponse) {
    if (response.body === undefined) response.body = Buffer.alloc(0);
    const r = runPhase(chain.body_filter, ctx, false);
    if (isThenable(r)) return Promise.resolve(r).then(() => endWith(ctx, res));
  }
  endWith(ctx, res);
}

function endWith(ctx: RequestCtx, res: ServerResponse): void {
  const { status, body } = ctx.response!;
  const headers: OutgoingHttpHeaders = cleanHeaders(ctx.response!.headers, 'response');
  headers['content-length'] = body === undefined ? 0 : Buffer.byteLength(body);
  res.writeHead(checkStatus(status), headers);
  res.end(ctx.request.method === 'HEAD' ? undefined : body);
}
