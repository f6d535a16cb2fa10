/**
 * Forwarding to upstream nodes with undici: one keep-alive pool per node,
 * bodies streamed both ways, retries on another node for connection failures.
 */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { Readable, type Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { GatewayError } from '../errors.ts';
import { log } from '../log.ts';
import type { UpstreamEntry, UpstreamNode } from '../snapshot.ts';
import { bodyTooLarge, type RequestCtx } from './context.ts';
import type { Slots, Waiter } from './pool-slots.ts';
import type { UpstreamPools } from './pools.ts';
import { tlsErrorCode } from './upstream-tls.ts';

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus those undici refuses to forward. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'expect', 'host']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Why an attempt still waiting for a connection slot ended. */
const CLIENT_GONE = new Error('client went away');
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'EPIPE']);

/** How the caller takes a response body. */
export type BodyMode = 'stream' | 'buffer' | 'discard';

/** Where forward() delivers the response. */
export interface ResponseSink {
  /** A 1xx before the response (103 Early Hints is passed on, others dropped). */
  info(status: number, headers: OutgoingHttpHeaders): void;
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
  /** An upgrade request (WebSocket) was switched: `socket` is the upstream's side of the tunnel. */
  upgrade?(status: number, headers: Record<string, string | string[]>, socket: Duplex, node: UpstreamNode, idleMs: number): void;
}

/** The client side of an exchange: whether it left, and the attempt to cancel when it does. */
export interface ClientSignal {
  readonly aborted: boolean;
  current: { cancel(): void } | undefined;
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

/** The client's body, counted as it streams: past `limit` bytes it fails with 413 and the upstream request is aborted. */
async function* capped(req: IncomingMessage, limit: number): AsyncGenerator<Buffer> {
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw bodyTooLarge(limit);
    yield chunk as Buffer;
  }
}

function upstreamError(err: unknown, node: UpstreamNode, up: UpstreamEntry): GatewayError {
  if (err instanceof GatewayError) return err; // the body cap (capped), not the upstream
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError('GW_ERR_UPSTREAM_TIMEOUT', `upstream ${node.origin} did not answer within ${up.timeout.read / 1000}s`, { cause: err });
  }
  return new GatewayError('GW_ERR_UPSTREAM_UNAVAILABLE', `upstream ${node.origin} failed: ${code || (err as Error).message}`, { cause: err });
}

/** One request's exchange with its upstream, across retries. */
class Exchange {
  tried: Set<UpstreamNode> | undefined;
  attempt = 0;
  readonly pools: UpstreamPools;
  readonly ctx: RequestCtx;
  readonly up: UpstreamEntry;
  readonly headers: Record<string, string | string[]>;
  readonly gone: ClientSignal;
  readonly sink: ResponseSink;
  readonly path: string;
  readonly method: Dispatcher.HttpMethod;
  readonly body: Buffer | Readable | null;
  readonly mayRetry: boolean;
  readonly key: string | undefined;
  /** The protocol of an upgrade request (`websocket`), or undefined. */
  readonly upgrade: string | undefined;
  constructor(pools: UpstreamPools, ctx: RequestCtx, up: UpstreamEntry, headers: Record<string, string | string[]>, gone: ClientSignal, sink: ResponseSink, path: string, method: Dispatcher.HttpMethod, body: Buffer | Readable | null, mayRetry: boolean, key: string | undefined, upgrade: string | undefined) {
    this.upgrade = upgrade;
    this.pools = pools;
    this.ctx = ctx;
    this.up = up;
    this.headers = headers;
    this.gone = gone;
    this.sink = sink;
    this.path = path;
    this.method = method;
    this.body = body;
    this.mayRetry = mayRetry;
    this.key = key;
  }

  start(): void {
    const { up, pools, ctx, headers } = this;
    let node = up.balancer.pick(this.key, this.tried);
    if (node && (up.passive || up.active) && pools.ejected(node)) node = pickHealthy(pools, up, this.key, this.tried, node);
    if (!node) {
      this.sink.fail(new GatewayError('GW_ERR_UPSTREAM_UNAVAILABLE', `no upstream node is available for route "${ctx.route.id}"`), false);
      return;
    }
    if (up.passHost === 'node') headers.host = node.hostHeader;
    else if (ctx.upstreamHost !== undefined) headers.host = ctx.upstreamHost;
    else if (up.passHost === 'rewrite' && up.upstreamHost) headers.host = up.upstreamHost;
    else if (typeof ctx.request.headers.host === 'string') headers.host = ctx.request.headers.host;
    ctx.upstreamAttempts?.start(node.host, node.port, headers);
    const attempt = new Attempt(this, node, pools.slots(node, up), this.body !== null && !Buffer.isBuffer(this.body));
    this.gone.current = attempt;
    up.balancer.acquire(node);
    if (attempt.slots.acquire(attempt.upload, attempt, up.timeout.connect)) attempt.admitted();
  }
}

/**
 * One try on one node: undici's dispatch handler. A class, not closures: the
 * request path creates one per request, and tsx wraps every closure it creates.
 */
class Attempt implements Dispatcher.DispatchHandler, Waiter {
  controller: Dispatcher.DispatchController | undefined;
  /** Holds one of the node's slots (admitted, not yet settled). */
  holding = false;
  headSeen = false;
  /** The response head's status (0: none yet), for ctx.upstreamAttempts. */
  status = 0;
  settled = false;
  mode: BodyMode = 'stream';
  chunks: Buffer[] | undefined;
  /** Bytes buffered so far (buffer mode), held under max_buffered_response_bytes. */
  buffered = 0;
  /** Chunks that arrive while an async head() decides. */
  held: Buffer[] | undefined;
  endedWhileHeld = false;

  readonly x: Exchange;
  readonly node: UpstreamNode;
  readonly slots: Slots;
  /** The request body streams from the client: counts against the node's upload share. */
  readonly upload: boolean;
  constructor(x: Exchange, node: UpstreamNode, slots: Slots, upload: boolean) {
    this.x = x;
    this.node = node;
    this.slots = slots;
    this.upload = upload;
  }

  /** A slot is ours: send the request. */
  admitted(): void {
    this.holding = true;
    const { x, node } = this;
    const up = x.up;
    try {
      // servername: one per node, or undici takes it from each request's Host and reconnects when it changes (upstream-tls.ts sets the real SNI).
      x.pools.get(node, up).dispatch({ path: x.path, method: x.method, headers: x.headers, body: x.body, headersTimeout: up.timeout.read, bodyTimeout: up.timeout.read, upgrade: x.upgrade, servername: node.host } as Dispatcher.DispatchOptions, this);
    } catch (err) {
      // dispatch() refuses some requests synchronously (a header value it cannot send, say).
      if (!this.settled) { this.settle(err); x.sink.fail(upstreamError(err, node, up), false); }
    }
  }

  /** No slot came within the wait: 503. */
  expired(err: GatewayError): void {
    if (this.settled) return;
    this.settle(err);
    log('warn', 'upstream connections busy, request refused', { route: this.x.ctx.route.id, upstream: this.node.origin, ...this.slots.usage() });
    this.x.sink.fail(err, false);
  }

  cancel(): void {
    if (this.holding) { this.controller?.abort(new Error('client went away')); return; }
    if (this.settled) return;
    this.slots.cancel(this);
    this.settle(CLIENT_GONE);
  }

  /** The attempt is over (`err`: why it failed); its slot and balancer count are given back. */
  settle(err?: unknown): void {
    this.settled = true;
    this.x.ctx.upstreamAttempts?.end(this.status, err);
    if (this.x.gone.current === this) this.x.gone.current = undefined;
    this.x.up.balancer.release(this.node);
    if (this.holding) {
      this.holding = false;
      this.slots.release(this.upload);
    }
  }

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.controller = c;
    if (this.x.gone.aborted) c.abort(new Error('client went away'));
  }

  onResponseStart(c: Dispatcher.DispatchController, status: number, h: Record<string, string | string[] | undefined>): void {
    const { x } = this;
    if (status < 200) {
      x.sink.info(status, h as OutgoingHttpHeaders);
      return;
    }
    this.headSeen = true;
    this.status = status;
    x.pools.record(this.node, x.up, status);
    let decision: BodyMode | Promise<BodyMode>;
    try {
      decision = x.sink.head(status, h as OutgoingHttpHeaders, this.node);
    } catch (err) {
      this.abortWith(c, err);
      return;
    }
    if (typeof decision === 'string') {
      this.setMode(decision);
      return;
    }
    this.held = [];
    c.pause();
    decision.then((m) => this.release(c, m), (err) => this.abortWith(c, err));
  }

  onRequestUpgrade(_c: Dispatcher.DispatchController, status: number, h: Record<string, string | string[] | undefined>, socket: Duplex): void {
    const { x, node } = this;
    this.headSeen = true;
    this.status = status;
    x.pools.record(node, x.up, status);
    // The socket left undici's pool: the slot is free again.
    this.settle();
    if (x.gone.aborted || !x.sink.upgrade) { socket.destroy(); return; }
    x.sink.upgrade(status, h as Record<string, string | string[]>, socket, node, x.up.timeout.tunnelIdle);
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.held) this.held.push(chunk);
    else this.deliver(c, chunk);
  }

  onResponseEnd(): void {
    if (this.settled) return;
    if (this.held) this.endedWhileHeld = true;
    else this.complete();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    if (this.settled) return;
    this.settle(err);
    const { x, node } = this;
    if (x.gone.aborted) return; // the client left: nobody to answer
    const code = (err as { code?: string }).code ?? '';
    // A response with no request in flight: undici closes the connection; say so.
    if (code === 'UND_ERR_SOCKET' && err.message === 'bad response') log('warn', 'upstream sent a response with no request in flight', { route: x.ctx.route.id, upstream: node.origin });
    const tlsCode = node.tls && tlsErrorCode(err);
    if (tlsCode) log('warn', 'upstream TLS failed', { route: x.ctx.route.id, upstream: node.origin, error: tlsCode, message: err.message });
    if (!this.headSeen) {
      const connectFailure = CONNECT_ERRORS.has(code) || tlsCode !== undefined;
      if (connectFailure || code === 'UND_ERR_HEADERS_TIMEOUT') x.pools.record(node, x.up, 0);
      if (connectFailure && x.mayRetry && x.attempt < x.up.retries && x.up.nodes.length > 1) {
        x.attempt++;
        (x.tried ??= new Set()).add(node);
        log('warn', 'upstream node failed, retrying on another', { route: x.ctx.route.id, upstream: node.origin, error: code });
        x.start();
        return;
      }
    }
    x.sink.fail(upstreamError(err, node, x.up), this.headSeen);
  }

  private setMode(m: BodyMode): void {
    this.mode = m;
    if (m === 'buffer') this.chunks = [];
  }

  private release(c: Dispatcher.DispatchController, m: BodyMode): void {
    this.setMode(m);
    const queued = this.held!;
    this.held = undefined;
    for (const chunk of queued) this.deliver(c, chunk);
    if (this.settled) return;
    if (this.endedWhileHeld) this.complete();
    else c.resume();
  }

  private deliver(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.mode === 'stream') {
      if (!this.x.sink.data(chunk) && !c.paused) {
        c.pause();
        this.x.sink.drain(() => c.resume());
      }
    } else if (this.mode === 'buffer') {
      this.buffered += chunk.length;
      const cap = this.x.ctx.snapshot.limits.maxBufferedResponse;
      if (this.buffered > cap) {
        this.chunks = undefined;
        this.abortWith(c, new GatewayError('GW_ERR_RESPONSE_TOO_LARGE', `upstream ${this.node.origin} sent a response over max_buffered_response_bytes (${cap}) on route "${this.x.ctx.route.id}", which buffers responses for body_filter`));
        return;
      }
      this.chunks!.push(chunk);
    }
  }

  private complete(): void {
    this.settle();
    this.x.sink.end(this.mode === 'buffer' ? Buffer.concat(this.chunks!) : undefined);
  }

  private abortWith(c: Dispatcher.DispatchController, err: unknown): void {
    if (this.settled) return;
    this.settle(err);
    c.abort(err instanceof Error ? err : new Error(String(err)));
    this.x.sink.fail(err, true);
  }
}

/**
 * Sends the request upstream with undici's dispatch API (no stream objects, no
 * promise per request: measured 25% faster than request() + pipe) and hands the
 * response to `sink`. Connection failures are retried on another node before
 * any response arrived, for idempotent requests whose body was not streamed.
 * With `upgrade`, the request asks the node to switch protocols (WebSocket):
 * the same node choice, retries and headers, and sink.upgrade gets the tunnel.
 */
export function forward(pools: UpstreamPools, ctx: RequestCtx, up: UpstreamEntry, headers: Record<string, string | string[]>, gone: ClientSignal, sink: ResponseSink, upgrade?: string): void {
  const req = ctx.raw;
  const buffered = ctx.request.body;
  const streamed = buffered === undefined && hasBody(req);
  if (buffered !== undefined) headers['content-length'] = String(buffered.length);
  const method = ctx.request.method;
  new Exchange(
    pools, ctx, up, headers, gone, sink, ctx.request.target(), method as Dispatcher.HttpMethod,
    buffered ?? (!streamed ? null : ctx.bodyLimit > 0 ? Readable.from(capped(req, ctx.bodyLimit), { objectMode: false }) : req),
    !streamed && (IDEMPOTENT.has(method) || up.retryNonIdempotent),
    // Only a consistent-hash balancer reads a key.
    up.hashKey?.(ctx),
    upgrade,
  ).start();
}
