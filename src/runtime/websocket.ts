/**
 * WebSocket upgrades on routes with `enable_websocket: true`, through
 * http-proxy-3. The rewrite and access phases run first, so auth applies.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import { GatewayError } from '../errors.ts';
import { log } from '../log.ts';
import { RequestCtx, RequestData } from './context.ts';
import { clientAddress, readTarget } from './edge.ts';
import { PluginFailure, runRequestPhases } from './phases.ts';
import { replyBody, type Runtime } from './server.ts';

function rawReply(socket: Duplex, status: number, body: string | Buffer): void {
  if (socket.destroyed) return;
  socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/** The `upgrade` listener of the proxy server. */
export function createUpgradeHandler(rt: Runtime): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const proxy = createProxyServer({ ws: true, xfwd: true });
  proxy.on('error', (err: Error, _req: unknown, target: unknown) => {
    log('warn', 'websocket proxy error', { error: err.message });
    const s = target as Duplex | undefined;
    if (s && typeof s.destroy === 'function') s.destroy();
  });
  return (req, socket, head) => {
    socket.on('error', () => {});
    void (async () => {
      const snap = rt.snapshot();
      const target = readTarget(req);
      if (typeof target === 'string') return rawReply(socket, 400, JSON.stringify({ error: target, code: 'GW_ERR_BAD_REQUEST' }));
      const { path, search } = target;
      const match = snap.router.find(req.method ?? 'GET', path, target.host);
      if (match && target.escapedSlash && !match.route.allowEncodedSlashes) return rawReply(socket, 400, JSON.stringify({ error: 'encoded slashes are not allowed in this path', code: 'GW_ERR_BAD_REQUEST' }));
      if (!match || !match.route.websocket || !match.route.upstream) return rawReply(socket, 404, JSON.stringify({ error: `no websocket route matches ${path}` }));
      const route = match.route;
      const upstream = match.route.upstream;
      const ip = clientAddress(req, snap.trustedProxies);
      const ctx = new RequestCtx(snap, route, req, new RequestData(req.method ?? 'GET', path, search, req.headers, ip));
      try {
        const reply = await runRequestPhases(ctx);
        if (reply) return rawReply(socket, reply.status, replyBody(reply.body).data ?? '');
        const node = upstream.balancer.pick(undefined);
        if (!node) return rawReply(socket, 502, '{"error":"no upstream node is available"}');
        req.url = ctx.request.target();
        proxy.ws(req, socket, head, { target: node.origin, changeOrigin: upstream.passHost === 'node' });
      } catch (err) {
        const e = err instanceof PluginFailure ? err.error : err;
        log('error', 'websocket upgrade failed', { route: route.id, error: e });
        rawReply(socket, e instanceof GatewayError ? e.status : 500, '{"error":"internal error"}');
      }
    })();
  };
}
