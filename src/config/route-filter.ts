/**
 * A route's `vars` and `remote_addr(s)` compiled into one predicate: the
 * conditions a request must meet, besides path, method and host, for the
 * route to take it. The router asks it only of routes that have one.
 */
import { compileExpr, ExprError, type Predicate } from '../expr.ts';
import { compileIpMatcher } from '../plugin.ts';
import { ROUTE_VARIABLES } from '../vars.ts';
import type { GatewayDoc } from './model.ts';

type RouteDoc = NonNullable<GatewayDoc['routes']>[number];

/**
 * The route's filter, or undefined when it has none; throws the first
 * mistake as an ExprError placed below the route (`['vars', 1, 2]`).
 */
export function compileRouteFilter(r: RouteDoc): Predicate | undefined {
  const parts = [addressFilter(r), varsFilter(r)].filter((p) => p !== undefined);
  if (parts.length < 2) return parts[0];
  const [a, b] = parts;
  return (ctx) => a(ctx) && b(ctx);
}

/** Every mistake in the route's filter (compileRouteFilter stops at the first). */
export function routeFilterProblems(r: RouteDoc): ExprError[] {
  const out: ExprError[] = [];
  for (const f of [addressFilter, varsFilter]) {
    try { f(r); } catch (err) { if (err instanceof ExprError) out.push(err); else throw err; }
  }
  return out;
}

function addressFilter(r: RouteDoc): Predicate | undefined {
  const addrs = r.remote_addrs ?? (r.remote_addr !== undefined ? [r.remote_addr] : undefined);
  if (!addrs) return undefined;
  let m: ReturnType<typeof compileIpMatcher>;
  try { m = compileIpMatcher(addrs); } catch (err) { throw new ExprError([r.remote_addrs ? 'remote_addrs' : 'remote_addr'], (err as Error).message); }
  // An address that is not one (a unix socket peer) matches no list: fail closed.
  return (ctx) => m.match(ctx.request.client_ip) === true;
}

function varsFilter(r: RouteDoc): Predicate | undefined {
  if (r.vars === undefined) return undefined;
  try {
    return compileExpr(r.vars, ROUTE_VARIABLES);
  } catch (err) {
    if (err instanceof ExprError) throw new ExprError(['vars', ...err.at], err.message);
    throw err;
  }
}
