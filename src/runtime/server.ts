/**
 * The request path: match a route on the snapshot taken at the start of the
 * request, run the phases, proxy, write the response, log.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { GatewayError, publicBody } from '../errors.ts';
import { accessLog, log } from '../log.ts';
import type { Reply, RequestRecord, ResponseView } from '../plugin.ts';
import type { Chain, Snapshot, UpstreamNode } from '../snapshot.ts';
import { clientAddress, RequestCtx, RequestData, splitUrl } from './context.ts';
import { isThenable, PluginFailure, runLogPhase, runPhase, runRequestPhases } from './phases.ts';
import { forward, stripHopByHop, type BodyMode, type ClientSignal, type ResponseSink, type UpstreamPools } from './proxy.ts';

export interface Runtime {
  /** The snapshot in force; read once per request. */
  snapshot(): Snapshot;
  readonly pools: UpstreamPools;
  onRequestDone?(status: number): void;
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

/** Reads a request body up to `limit` bytes; rejects with 413 past it. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) { reject(new GatewayError('GW_ERR_BODY_TOO_LARGE', `request body is larger than ${limit} bytes`)); return; }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) { reject(new GatewayError('GW_ERR_BODY_TOO_LARGE', `request body is larger than ${limit} bytes`)); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Sets X-Forwarded-For/-Proto/-Host and X-Real-IP; client values are kept only from trusted proxies. */
function forwardedHeaders(headers: Record<string, string | string[]>, req: IncomingMessage, clientIp: string, trusted: boolean): void {
  const peer = req.socket.remoteAddress ?? '';
  const xff = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = trusted && xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${peer}` : peer;
  headers['x-real-ip'] = clientIp;
  const proto = req.headers['x-forwarded-proto'];
  headers['x-forwarded-proto'] = trusted && typeof proto === 'string' ? proto : 'http';
  const fhost = req.headers['x-forwarded-host'];
  const host = trusted && typeof fhost === 'string' ? fhost : req.headers.host;
  if (host) headers['x-forwarded-host'] = host; else delete headers['x-forwarded-host'];
}

/** The `request` listener of the proxy server. */
export function createRequestHandler(rt: Runtime): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    try {
      handle(rt, req, res);
    } catch (err) {
      unexpected(res, err);
    }
  };
}

/** A failure outside any route's handling (a bug): logged, answered 500. */
function unexpected(res: ServerResponse, err: unknown): void {
  log('error', 'request failed', { error: err });
  sendError(res, err instanceof GatewayError ? err : new GatewayError('GW_ERR_PLUGIN_FAILED', 'internal error'));
}

/**
 * Synchronous until something is not: a request whose plugins (if any) are
 * sync is routed, run and dispatched in this call, with no promise made for it.
 */
function handle(rt: Runtime, req: IncomingMessage, res: ServerResponse): void {
  const started = performance.now();
  const snap = rt.snapshot();
  const [path, search] = splitUrl(req.url ?? '/');
  const method = req.method ?? 'GET';
  const match = snap.router.find(method, path, req.headers.host);
  if (!match) {
    const body = JSON.stringify({ error: `no route matches ${method} ${path}`, code: 'GW_ERR_ROUTE_NOT_FOUND' });
    res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    accessLog('', method, path, 404, '', performance.now() - started, undefined);
    rt.onRequestDone?.(404);
    return;
  }
  const route = match.route;
  const { ip, peerTrusted } = clientAddress(req, snap.trustedProxies);
  const ctx = new RequestCtx(snap, route, req, new RequestData(method, path, search, req.headers, ip));
  const x = new InFlight(rt, ctx, req, res, peerTrusted, started);
  // 'close' comes once per response: on(), not once(), spares a wrapper per request.
  res.on('close', () => x.closed());
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
  readonly peerTrusted: boolean;
  readonly started: number;
  constructor(rt: Runtime, ctx: RequestCtx, req: IncomingMessage, res: ServerResponse, peerTrusted: boolean, started: number) {
    this.rt = rt;
    this.ctx = ctx;
    this.req = req;
    this.res = res;
    this.peerTrusted = peerTrusted;
    this.started = started;
    this.method = ctx.request.method;
    this.path = ctx.request.path;
    this.bytesWritten0 = req.socket.bytesWritten;
  }

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
      const headers: OutgoingHttpHeaders = { ...reply.headers };
      if (json && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
      ctx.response = { status: reply.status, headers, body: data };
      const f = runPhase(chain.header_filter, ctx, false);
      return isThenable(f) ? Promise.resolve(f).then(() => writeWhole(chain, ctx, res)) : writeWhole(chain, ctx, res);
    }
    const route = ctx.entry;
    if (!route.upstream) throw new GatewayError('GW_ERR_NO_UPSTREAM', `route "${route.id}" has no upstream and no plugin answered`);
    const headers = stripHopByHop(ctx.request.headers);
    forwardedHeaders(headers, this.req, ctx.request.client_ip, this.peerTrusted);
    ctx.upstreamSentAt = performance.now();
    forward(this.rt.pools, ctx, route.upstream, headers, this.gone, new ProxySink(chain, ctx, res, this.gone));
  }

  /** The response is done or the client left: log phase, access log, counters. */
  closed(): void {
    const { ctx, res } = this;
    if (!res.writableFinished) this.gone.abort();
    const status = res.writableFinished ? res.statusCode : 499;
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
  };
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
  sendError(res, new GatewayError('GW_ERR_PLUGIN_FAILED', 'internal error'), requestId);
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
  constructor(chain: Chain, ctx: RequestCtx, res: ServerResponse, gone: ClientGone) {
    this.chain = chain;
    this.ctx = ctx;
    this.res = res;
    this.gone = gone;
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
    const r = runPhase(chain.header_filter, ctx, false);
    return isThenable(r) ? Promise.resolve(r).then(() => this.decide()) : this.decide();
  }

  private decide(): BodyMode {
    const response = this.ctx.response!;
    if (response.body !== undefined) return 'discard';
    if (this.chain.bufferResponse) return 'buffer';
    this.res.writeHead(response.status, response.headers);
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
  const { status, headers, body } = ctx.response!;
  delete headers['transfer-encoding'];
  headers['content-length'] = body === undefined ? 0 : Buffer.byteLength(body);
  res.writeHead(status, headers);
  res.end(ctx.request.method === 'HEAD' ? undefined : body);
}
