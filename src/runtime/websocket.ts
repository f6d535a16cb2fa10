/**
 * WebSocket upgrades on routes with `enable_websocket: true`, through
 * http-proxy-3. The rewrite and access phases run first, so auth applies.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import { GatewayError } from '../errors.ts';
import { log } from '../log.ts';
import type { Reply } from '../plugin.ts';
import { clientAddress, RequestCtx, RequestData } from './context.ts';
import { CONSUMER_SET, PluginFailure, runPhase } from './phases.ts';
import type { Runtime } from './server.ts';

function rawReply(socket: Duplex, status: number, body: string): void {
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
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const match = snap.router.find(req.method ?? 'GET', path, req.headers.host);
      if (!match || !match.route.websocket || !match.route.upstream) return rawReply(socket, 404, JSON.stringify({ error: `no websocket route matches ${path}` }));
      const route = match.route;
      const upstream = match.route.upstream;
      const { ip } = clientAddress(req, snap.trustedProxies);
      const ctx = new RequestCtx(snap, route, req, new RequestData(req.method ?? 'GET', path, q < 0 ? '' : url.slice(q), req.headers, ip));
      try {
        let chain = route.chain;
        let reply: Reply | undefined = await runPhase(chain.rewrite, ctx, true, 0, route.consumerChains !== undefined);
        if (reply === CONSUMER_SET) {
          chain = route.consumerChains!.get(ctx.consumer!.username) ?? chain;
          reply = await runPhase(chain.rewrite, ctx, true, chain.rewrite.findIndex((s) => s.name === ctx.plugin) + 1);
        }
        if (!reply) reply = await runPhase(chain.access, ctx, true);
        if (!reply) reply = await runPhase(chain.before_proxy, ctx, true);
        if (reply) return rawReply(socket, reply.status, typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? ''));
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
