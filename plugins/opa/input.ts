/** The input document opa sends, in APISIX's shape (apisix/plugins/opa/helper.lua). */
import type { Ctx } from '../../src/plugin.ts';

export interface InputOptions { withRoute: boolean; withService: boolean; withConsumer: boolean }

/** `{ input: { type, request, var, route?, service?, consumer? } }` for one request. */
export function buildInput(o: InputOptions, ctx: Ctx): { input: Record<string, unknown> } {
  const req = ctx.request;
  const down = ctx.downstream;
  const input: Record<string, unknown> = {
    type: 'http',
    request: {
      scheme: down.scheme,
      method: req.method,
      host: down.host,
      port: down.port,
      path: req.path,
      headers: req.headers,
      query: req.query,
    },
    var: {
      server_addr: down.server_addr,
      server_port: String(down.port),
      remote_addr: down.remote_addr,
      remote_port: String(down.remote_port),
      timestamp: Math.floor(Date.now() / 1000),
    },
  };
  if (o.withRoute) input.route = ctx.route.config ?? { id: ctx.route.id, uri: ctx.route.uri };
  if (o.withConsumer && ctx.consumer) input.consumer = { username: ctx.consumer.username };
  if (o.withService && ctx.service) input.service = ctx.service.config ?? { id: ctx.service.id };
  return { input };
}
